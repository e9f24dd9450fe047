//! SyncGroup v0-5: the leader hands in the assignment; every member of
//! the generation waits on the group's shard for its part. v3+ carry
//! `group.instance.id`, v5+ the protocol type and name (checked against
//! the group's).

use std::rc::Rc;

use ringtail_protocol::messages::kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use super::join_group::{code_of, driver_error_code};
use super::{decode, respond, str_bytes};
use crate::group::coordinator::SyncRequest;
use crate::group::driver;
use crate::server::{Header, Response};
use crate::shard::Shard;

pub async fn handle(header: &Header, body: &[u8], shard: &Rc<Shard>) -> Response {
    let request: SyncGroupRequest = match decode(header, body) {
        Ok(r) => r,
        Err(refusal) => return refusal,
    };
    let v = header.api_version;
    let group_id = request.group_id.0.to_string();
    let req = SyncRequest {
        group_id: group_id.clone(),
        generation_id: request.generation_id,
        member_id: request.member_id.to_string(),
        group_instance_id: if v >= 3 {
            request.group_instance_id.as_ref().map(|s| s.to_string())
        } else {
            None
        },
        protocol_type: if v >= 5 {
            request.protocol_type.as_ref().map(|s| s.to_string())
        } else {
            None
        },
        protocol_name: if v >= 5 {
            request.protocol_name.as_ref().map(|s| s.to_string())
        } else {
            None
        },
        assignments: request
            .assignments
            .iter()
            .map(|a| (a.member_id.to_string(), a.assignment.clone()))
            .collect(),
    };
    let result = driver::on_group_shard(shard, &group_id, move || driver::sync(req)).await;
    let mut out = SyncGroupResponse::default();
    let r = match result {
        Ok(r) => r,
        Err(e) => {
            out.error_code = driver_error_code("SyncGroup", &group_id, &e).code();
            return respond(header, &out);
        }
    };
    out.error_code = code_of(r.error);
    if v >= 5 {
        out.protocol_type = r.protocol_type.as_deref().map(str_bytes);
        out.protocol_name = r.protocol_name.as_deref().map(str_bytes);
    }
    out.assignment = r.assignment;
    respond(header, &out)
}
