//! Heartbeat v0-4: keeps a member's session alive and tells it about a
//! rebalance (REBALANCE_IN_PROGRESS). v3+ carry `group.instance.id`.
//! While the coordinator still loads at start, heartbeats get NONE, as
//! Kafka answers them.

use std::rc::Rc;

use ringtail_protocol::messages::kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use ringtail_protocol::ErrorCode;

use super::join_group::{driver_error_code, error_code};
use super::{decode, respond};
use crate::group::driver::{self, DriverError};
use crate::server::{Header, Response};
use crate::shard::Shard;

pub async fn handle(header: &Header, body: &[u8], shard: &Rc<Shard>) -> Response {
    let request: HeartbeatRequest = match decode(header, body) {
        Ok(r) => r,
        Err(refusal) => return refusal,
    };
    let group_id = request.group_id.0.to_string();
    let member_id = request.member_id.to_string();
    let instance_id = if header.api_version >= 3 {
        request.group_instance_id.as_ref().map(|s| s.to_string())
    } else {
        None
    };
    let generation = request.generation_id;
    let g = group_id.clone();
    let result = driver::on_group_shard(shard, &group_id, move || async move {
        driver::with(|c, now| c.heartbeat(now, &g, &member_id, instance_id.as_deref(), generation))
    })
    .await;
    let code = match result {
        Ok(Ok(())) => ErrorCode::None,
        Ok(Err(e)) => error_code(e),
        // Kafka answers heartbeats blindly while it loads the group.
        Err(DriverError::Loading) => ErrorCode::None,
        Err(e) => driver_error_code("Heartbeat", &group_id, &e),
    };
    let mut out = HeartbeatResponse::default();
    out.error_code = code.code();
    respond(header, &out)
}
