//! InitProducerId v0-5 for idempotent producers.
//!
//! A producer without an id gets a new one (from the persisted block
//! allocator in [`crate::producer_ids`], so ids never repeat across
//! restarts) with epoch 0. A producer that names its id and epoch (v3+,
//! KIP-360, after an UNKNOWN_PRODUCER_ID or a timed-out batch) keeps its id
//! with the epoch bumped; once the epoch would reach `i16::MAX` it gets a
//! new id at epoch 0, as Kafka does. Transactions are not implemented, so
//! a transactional id is refused with COORDINATOR_NOT_AVAILABLE.
//!
//! Kafka itself hands a non-transactional producer a new id even when it
//! names its old one; bumping the epoch instead keeps the id stable, which
//! the broker may do because it has no per-id state to fence.

use std::path::Path;
use std::rc::Rc;

use ringtail_protocol::messages::kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProducerId,
};
use ringtail_protocol::ErrorCode;

use super::{decode, respond};
use crate::producer_ids::{self, ProducerIdError};
use crate::server::{Header, Response};
use crate::shard::Shard;

const NO_PRODUCER_ID: i64 = -1;
const NO_PRODUCER_EPOCH: i16 = -1;

pub async fn handle(header: &Header, body: &[u8], shard: &Rc<Shard>) -> Response {
    let request: InitProducerIdRequest = match decode(header, body) {
        Ok(r) => r,
        Err(refusal) => return refusal,
    };
    let dir = shard.shared.config.log_dirs[0].join("__cluster_metadata");
    let response = match answer(&request, &dir) {
        Ok((id, epoch)) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch),
        Err(code) => InitProducerIdResponse::default()
            .with_error_code(code.code())
            .with_producer_id(ProducerId(NO_PRODUCER_ID))
            .with_producer_epoch(NO_PRODUCER_EPOCH),
    };
    respond(header, &response)
}

/// (producer id, epoch) for the request, or the error to answer.
fn answer(request: &InitProducerIdRequest, dir: &Path) -> Result<(i64, i16), ErrorCode> {
    match request.transactional_id.as_ref().map(|t| t.0.as_str()) {
        None => {}
        // Kafka refuses an empty transactional id outright.
        Some("") => return Err(ErrorCode::InvalidRequest),
        Some(id) => {
            eprintln!(
                "InitProducerId for transactional id {id:?}: transactions are not implemented"
            );
            return Err(ErrorCode::CoordinatorNotAvailable);
        }
    }
    // Before v3 these fields are absent and decode as -1.
    let (id, epoch) = (request.producer_id.0, request.producer_epoch);
    let storage = |e: ProducerIdError| {
        eprintln!("InitProducerId: {e}");
        ErrorCode::KafkaStorageError
    };
    match (id, epoch) {
        (NO_PRODUCER_ID, NO_PRODUCER_EPOCH) => {
            Ok((producer_ids::allocate(dir).map_err(storage)?, 0))
        }
        // Kafka: both or neither.
        (NO_PRODUCER_ID, _) | (_, NO_PRODUCER_EPOCH) => Err(ErrorCode::InvalidRequest),
        (id, epoch) if id < 0 || epoch < 0 => Err(ErrorCode::InvalidRequest),
        (id, epoch) => {
            if !producer_ids::issued(dir, id).map_err(storage)? {
                return Err(ErrorCode::UnknownProducerId);
            }
            match bumped(epoch) {
                Some(next) => Ok((id, next)),
                None => Ok((producer_ids::allocate(dir).map_err(storage)?, 0)),
            }
        }
    }
}

/// The next epoch, or `None` when the epoch space of this id is used up
/// (Kafka treats `i16::MAX - 1` as exhausted, keeping `i16::MAX` unused).
fn bumped(epoch: i16) -> Option<i16> {
    (epoch < i16::MAX - 1).then(|| epoch + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_bump_until_exhausted() {
        assert_eq!(bumped(0), Some(1));
        assert_eq!(bumped(i16::MAX - 2), Some(i16::MAX - 1));
        assert_eq!(bumped(i16::MAX - 1), None);
        assert_eq!(bumped(i16::MAX), None);
    }
}
