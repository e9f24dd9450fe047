//! DeleteGroups v0-2: removes groups without members, with their
//! committed offsets (tombstones in `__consumer_offsets`). A group with
//! members gets NON_EMPTY_GROUP, an unknown one GROUP_ID_NOT_FOUND.

use std::rc::Rc;

use ringtail_protocol::messages::kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use ringtail_protocol::messages::kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse,
};

use super::join_group::{driver_error_code, error_code};
use super::{decode, respond};
use crate::group::driver;
use crate::server::{Header, Response};
use crate::shard::Shard;

pub async fn handle(header: &Header, body: &[u8], shard: &Rc<Shard>) -> Response {
    let request: DeleteGroupsRequest = match decode(header, body) {
        Ok(r) => r,
        Err(refusal) => return refusal,
    };
    let mut out = DeleteGroupsResponse::default();
    for id in &request.groups_names {
        let group_id = id.0.to_string();
        let g = group_id.clone();
        let result = driver::on_group_shard(shard, &group_id, move || async move {
            driver::with(|c, _| c.delete_group(&g))
        })
        .await;
        let mut r = DeletableGroupResult::default();
        r.group_id = id.clone();
        r.error_code = match result {
            Ok(Ok(())) => 0,
            Ok(Err(e)) => error_code(e).code(),
            Err(e) => driver_error_code("DeleteGroups", &group_id, &e).code(),
        };
        out.results.push(r);
    }
    respond(header, &out)
}
