//! FindCoordinator v0-4 (v4: batched keys). A group's coordinator is the
//! leader of its `__consumer_offsets` partition, as the cluster view has it
//! (Kafka's `partitionFor` then the partition's leader); the topic is
//! created on first use, in the background, as Kafka does here. No leader
//! (offline, the topic being created, or its state not in the view yet):
//! COORDINATOR_NOT_AVAILABLE, and the client asks again. Transactions are not implemented, so transaction
//! keys get COORDINATOR_NOT_AVAILABLE.
//!
//! librdkafka also reads this API's presence as "the broker supports LZ4"
//! (its feature map ties LZ4 to FindCoordinator), so advertising it is what
//! lets librdkafka producers send lz4 batches.

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};

use ringtail_protocol::messages::kafka_protocol::messages::find_coordinator_response::Coordinator;
use ringtail_protocol::messages::kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse,
};
use ringtail_protocol::messages::kafka_protocol::protocol::StrBytes;
use ringtail_protocol::ErrorCode;

use super::{decode, respond, str_bytes};
use crate::group::{driver, partition_for, OFFSETS_TOPIC};
use crate::server::{Header, Response};
use crate::shard::Shard;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

type Refusal = (ErrorCode, &'static str);

/// (error, message) for a key, or `None` when it names a group.
fn refuse(key: &str, key_type: i8) -> Option<Refusal> {
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

/// The coordinator of group `key`: (node id, host, port).
async fn locate(shard: &Rc<Shard>, key: &str, key_type: i8) -> Result<(i32, String, i32), Refusal> {
    if let Some(refusal) = refuse(key, key_type) {
        return Err(refusal);
    }
    let existing = shard
        .shared
        .metadata
        .snapshot()
        .topic(OFFSETS_TOPIC)
        .cloned();
    let Some(topic) = existing else {
        // Kafka creates the topic on first use in the background and
        // answers COORDINATOR_NOT_AVAILABLE meanwhile; the client asks
        // again. Waiting here would hold up the answers queued behind
        // this one on the connection (50 partitions to assign and open).
        // One creation at a time in the process: without a coordinator
        // quorum each attempt waits for the tree's timeout, and clients
        // ask again every few hundred milliseconds.
        static CREATING: AtomicBool = AtomicBool::new(false);
        if !CREATING.swap(true, Ordering::AcqRel) {
            let shard = shard.clone();
            ringtail_io::rt::spawn(async move {
                if let Err(e) = driver::offsets_topic(&shard).await {
                    eprintln!("FindCoordinator: {e}");
                }
                CREATING.store(false, Ordering::Release);
            });
        }
        return Err((
            ErrorCode::CoordinatorNotAvailable,
            "the offsets topic is being created",
        ));
    };
    let Some(view) = crate::cluster::view() else {
        // No coordinator peer (never in a running broker): only this one.
        let me = shard.shared.config.advertised();
        return Ok((
            shard.shared.config.broker_id,
            me.host.clone(),
            i32::from(me.port),
        ));
    };
    let index = partition_for(key, topic.partitions);
    let not_available = (
        ErrorCode::CoordinatorNotAvailable,
        "the group's offsets partition has no leader",
    );
    let leader = view
        .partition(OFFSETS_TOPIC, index)
        .map(|p| p.leader)
        .filter(|&l| l >= 0)
        .ok_or(not_available)?;
    let broker = view.brokers.get(&leader).ok_or(not_available)?;
    Ok((leader, broker.host.clone(), i32::from(broker.port)))
}

pub async fn handle(header: &Header, body: &[u8], shard: &Rc<Shard>) -> Response {
    let request: FindCoordinatorRequest = match decode(header, body) {
        Ok(r) => r,
        Err(refusal) => return refusal,
    };
    if header.api_version >= 4 {
        let mut coordinators = Vec::with_capacity(request.coordinator_keys.len());
        for key in &request.coordinator_keys {
            let c = Coordinator::default().with_key(key.clone());
            coordinators.push(match locate(shard, key, request.key_type).await {
                Ok((node, host, port)) => c
                    .with_node_id(BrokerId(node))
                    .with_host(str_bytes(&host))
                    .with_port(port),
                Err((code, message)) => c
                    .with_node_id(BrokerId(-1))
                    .with_host(StrBytes::default())
                    .with_port(-1)
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(message))),
            });
        }
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
    let response = match locate(shard, &request.key, key_type).await {
        Ok((node, host, port)) => FindCoordinatorResponse::default()
            .with_node_id(BrokerId(node))
            .with_host(str_bytes(&host))
            .with_port(port),
        Err((code, message)) => {
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
