//! DescribeGroups v0-5: state, protocol and members of each group (member
//! metadata and assignments only while Stable, as Kafka shows them). An
//! unknown group is described as Dead with no error, as Kafka does before
//! v6.

use std::rc::Rc;

use ringtail_protocol::messages::kafka_protocol::messages::describe_groups_response::{
    DescribedGroup, DescribedGroupMember,
};
use ringtail_protocol::messages::kafka_protocol::messages::{
    DescribeGroupsRequest, DescribeGroupsResponse,
};

use super::join_group::driver_error_code;
use super::{decode, respond, str_bytes};
use crate::group::driver;
use crate::server::{Header, Response};
use crate::shard::Shard;

pub async fn handle(header: &Header, body: &[u8], shard: &Rc<Shard>) -> Response {
    let request: DescribeGroupsRequest = match decode(header, body) {
        Ok(r) => r,
        Err(refusal) => return refusal,
    };
    let v = header.api_version;
    let mut out = DescribeGroupsResponse::default();
    for id in &request.groups {
        let group_id = id.0.to_string();
        let g = group_id.clone();
        let summary = driver::on_group_shard(shard, &group_id, move || async move {
            driver::with(|c, _| c.group(&g).map(|g| g.summary()))
        })
        .await;
        let mut d = DescribedGroup::default();
        d.group_id = id.clone();
        d.authorized_operations = i32::MIN;
        match summary {
            Ok(Some(s)) => {
                d.group_state = str_bytes(s.state.name());
                d.protocol_type = str_bytes(&s.protocol_type);
                d.protocol_data = str_bytes(&s.protocol_name);
                d.members = s
                    .members
                    .into_iter()
                    .map(|m| {
                        let mut dm = DescribedGroupMember::default();
                        dm.member_id = str_bytes(&m.member_id);
                        if v >= 4 {
                            dm.group_instance_id = m.group_instance_id.as_deref().map(str_bytes);
                        }
                        dm.client_id = str_bytes(&m.client_id);
                        dm.client_host = str_bytes(&m.client_host);
                        dm.member_metadata = m.metadata;
                        dm.member_assignment = m.assignment;
                        dm
                    })
                    .collect();
            }
            Ok(None) => d.group_state = str_bytes("Dead"),
            Err(e) => {
                d.error_code = driver_error_code("DescribeGroups", &group_id, &e).code();
            }
        }
        out.groups.push(d);
    }
    respond(header, &out)
}
