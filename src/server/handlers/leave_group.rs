//! LeaveGroup v0-5: v0-2 name one member; v3+ a batch of members, each by
//! member id or by `group.instance.id`, answered one by one.

use std::rc::Rc;

use ringtail_protocol::messages::kafka_protocol::messages::leave_group_response::MemberResponse;
use ringtail_protocol::messages::kafka_protocol::messages::{
    LeaveGroupRequest, LeaveGroupResponse,
};

use super::join_group::{driver_error_code, error_code};
use super::{decode, respond, str_bytes};
use crate::group::driver;
use crate::server::{Header, Response};
use crate::shard::Shard;

pub async fn handle(header: &Header, body: &[u8], shard: &Rc<Shard>) -> Response {
    let request: LeaveGroupRequest = match decode(header, body) {
        Ok(r) => r,
        Err(refusal) => return refusal,
    };
    let v = header.api_version;
    let group_id = request.group_id.0.to_string();
    let leaving: Vec<(String, Option<String>)> = if v >= 3 {
        request
            .members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(request.member_id.to_string(), None)]
    };
    let (g, l) = (group_id.clone(), leaving.clone());
    let result = driver::on_group_shard(shard, &group_id, move || async move {
        driver::with(|c, now| c.leave(now, &g, &l))
    })
    .await;
    let mut out = LeaveGroupResponse::default();
    let results = match result {
        Ok(Ok(results)) => results,
        Ok(Err(e)) => {
            out.error_code = error_code(e).code();
            return respond(header, &out);
        }
        Err(e) => {
            out.error_code = driver_error_code("LeaveGroup", &group_id, &e).code();
            return respond(header, &out);
        }
    };
    if v < 3 {
        out.error_code = results
            .first()
            .and_then(|r| r.err())
            .map_or(0, |e| error_code(e).code());
        return respond(header, &out);
    }
    out.members = leaving
        .into_iter()
        .zip(results)
        .map(|((member_id, instance_id), r)| {
            let mut m = MemberResponse::default();
            m.member_id = str_bytes(&member_id);
            m.group_instance_id = instance_id.as_deref().map(str_bytes);
            m.error_code = r.err().map_or(0, |e| error_code(e).code());
            m
        })
        .collect();
    respond(header, &out)
}
