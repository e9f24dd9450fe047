//! FindCoordinator v0-4 (v4: batched keys). On one node the coordinator of
//! every group is this broker. Transactions are not implemented, so
//! transaction keys get COORDINATOR_NOT_AVAILABLE.
//!
//! librdkafka also reads this API's presence as "the broker supports LZ4"
//! (its feature map ties LZ4 to FindCoordinator), so advertising it is what
//! lets librdkafka producers send lz4 batches.

use std::rc::Rc;

use ringtail_protocol::messages::kafka_protocol::messages::find_coordinator_response::Coordinator;
use ringtail_protocol::messages::kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse,
};
use ringtail_protocol::messages::kafka_protocol::protocol::StrBytes;
use ringtail_protocol::ErrorCode;

use super::{decode, respond, str_bytes};
use crate::server::{Header, Response};
use crate::shard::Shard;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// (error, message) for a key, or `None` when this broker coordinates it.
fn refuse(key: &str, key_type: i8) -> Option<(ErrorCode, &'static str)> {
    match key_type {
        KEY_TYPE_GROUP if key.is_empty() => {
            Some((ErrorCode::InvalidRequest, "the group id is empty"))
        }
        KEY_TYPE_GROUP => None,
        KEY_TYPE_TRANSACTION => Some((
            ErrorCode::CoordinatorNotAvailable,
            "transactions are not supported",
        )),
        _ => Some((ErrorCode::InvalidRequest, "unknown coordinator key type")),
    }
}

pub async fn handle(header: &Header, body: &[u8], shard: &Rc<Shard>) -> Response {
    let request: FindCoordinatorRequest = match decode(header, body) {
        Ok(r) => r,
        Err(refusal) => return refusal,
    };
    let config = &shard.shared.config;
    let me = config.advertised();
    let (node, host, port) = (
        BrokerId(config.broker_id),
        str_bytes(&me.host),
        i32::from(me.port),
    );
    if header.api_version >= 4 {
        let coordinators = request
            .coordinator_keys
            .iter()
            .map(|key| {
                let c = Coordinator::default().with_key(key.clone());
                match refuse(key, request.key_type) {
                    None => c.with_node_id(node).with_host(host.clone()).with_port(port),
                    Some((code, message)) => c
                        .with_node_id(BrokerId(-1))
                        .with_host(StrBytes::default())
                        .with_port(-1)
                        .with_error_code(code.code())
                        .with_error_message(Some(str_bytes(message))),
                }
            })
            .collect();
        return respond(
            header,
            &FindCoordinatorResponse::default().with_coordinators(coordinators),
        );
    }
    let key_type = if header.api_version >= 1 {
        request.key_type
    } else {
        KEY_TYPE_GROUP
    };
    let response = match refuse(&request.key, key_type) {
        None => FindCoordinatorResponse::default()
            .with_node_id(node)
            .with_host(host)
            .with_port(port),
        Some((code, message)) => {
            let r = FindCoordinatorResponse::default()
                .with_node_id(BrokerId(-1))
                .with_port(-1)
                .with_error_code(code.code());
            if header.api_version >= 1 {
                r.with_error_message(Some(str_bytes(message)))
            } else {
                r
            }
        }
    };
    respond(header, &response)
}
