//! DeleteRecords v0-2: moves a partition's log start up to the requested
//! offset (-1: the high watermark) on its owner shard; segments wholly
//! below it are deleted. The answer's low watermark is the new log start,
//! which stays where it is when the offset is already below it. An offset
//! beyond the high watermark is OFFSET_OUT_OF_RANGE.

use std::rc::Rc;

use ringtail_io::log::Offset;
use ringtail_protocol::messages::kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use ringtail_protocol::messages::kafka_protocol::messages::{
    DeleteRecordsRequest, DeleteRecordsResponse,
};
use ringtail_protocol::ErrorCode;

use super::{decode, log_error_code, respond};
use crate::server::{Header, Response};
use crate::shard::{self, Shard};

/// Kafka's "delete up to the high watermark".
const HIGH_WATERMARK: i64 = -1;

pub async fn handle(header: &Header, body: &[u8], shard: &Rc<Shard>) -> Response {
    let request: DeleteRecordsRequest = match decode(header, body) {
        Ok(r) => r,
        Err(refusal) => return refusal,
    };
    let snapshot = shard.shared.metadata.snapshot();
    let mut topics = Vec::new();
    for t in &request.topics {
        let name = t.name.0.to_string();
        let meta = snapshot.topic(&name).cloned();
        let mut partitions = Vec::new();
        for p in &t.partitions {
            let index = p.partition_index;
            let outcome = match meta.as_ref().filter(|m| index >= 0 && index < m.partitions) {
                None => Err(ErrorCode::UnknownTopicOrPartition),
                Some(meta) => {
                    let (topic, offset) = (name.clone(), p.offset);
                    shard::run_on(shard.shared.owner(meta, index), move || {
                        delete_below(topic, index, offset)
                    })
                    .await
                    .unwrap_or(Err(ErrorCode::NotLeaderOrFollower))
                }
            };
            let answer = DeleteRecordsPartitionResult::default().with_partition_index(index);
            partitions.push(match outcome {
                Ok(log_start) => answer.with_low_watermark(log_start),
                Err(code) => answer.with_error_code(code.code()).with_low_watermark(-1),
            });
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(t.name.clone())
                .with_partitions(partitions),
        );
    }
    respond(
        header,
        &DeleteRecordsResponse::default().with_topics(topics),
    )
}

/// Runs on the owner shard: the new log start.
async fn delete_below(topic: String, index: i32, offset: i64) -> Result<i64, ErrorCode> {
    let p = shard::current()
        .partition(&topic, index)
        .ok_or(ErrorCode::UnknownTopicOrPartition)?;
    let high_watermark = p.high_watermark();
    let target = match offset {
        HIGH_WATERMARK => high_watermark,
        o if o < 0 || o > high_watermark.0 => return Err(ErrorCode::OffsetOutOfRange),
        o => Offset(o),
    };
    let log_start = p.log.advance_log_start(target).await.map_err(|e| {
        eprintln!("{topic}-{index}: delete records below {}: {e}", target.0);
        log_error_code(&e)
    })?;
    debug_assert!(log_start.0 >= target.0);
    eprintln!("{topic}-{index}: records below {} deleted", log_start.0);
    Ok(log_start.0)
}
