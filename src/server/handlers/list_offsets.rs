//! ListOffsets v1-7: earliest (-2), latest (-1), max timestamp (-3, v7)
//! and by timestamp: the first record whose timestamp is at or after the
//! target (KIP-79), found through the time index, then inside the batch.

use std::rc::Rc;

use ringtail_io::log::Offset as LogOffset;
use ringtail_protocol::batch::TimestampType;
use ringtail_protocol::messages::kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use ringtail_protocol::messages::kafka_protocol::messages::{
    ListOffsetsRequest, ListOffsetsResponse,
};
use ringtail_protocol::{ErrorCode, RecordBatch};

use super::{decode, log_error_code, respond};
use crate::admin::codec::plain_batch;
use crate::partition::Partition;
use crate::server::{Header, Response};
use crate::shard::{self, Shard};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

pub async fn handle(header: &Header, body: &[u8], shard: &Rc<Shard>) -> Response {
    let request: ListOffsetsRequest = match decode(header, body) {
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
            let answer = ListOffsetsPartitionResponse::default().with_partition_index(index);
            let Some(meta) = meta.as_ref().filter(|m| index >= 0 && index < m.partitions) else {
                partitions.push(
                    answer
                        .with_error_code(ErrorCode::UnknownTopicOrPartition.code())
                        .with_timestamp(-1)
                        .with_offset(-1),
                );
                continue;
            };
            let owner = shard.shared.owner(meta, index);
            let (topic, timestamp) = (name.clone(), p.timestamp);
            let found = shard::run_on(owner, move || async move {
                let epoch = leader_epoch(&topic, index)?;
                lookup(topic, index, timestamp)
                    .await
                    .map(|(ts, o)| (ts, o, epoch))
            })
            .await
            .unwrap_or(Err(ErrorCode::NotLeaderOrFollower));
            partitions.push(match found {
                Ok((ts, offset, epoch)) if header.api_version >= 4 => answer
                    .with_timestamp(ts)
                    .with_offset(offset)
                    .with_leader_epoch(epoch),
                Ok((ts, offset, _)) => answer.with_timestamp(ts).with_offset(offset),
                Err(code) => answer
                    .with_error_code(code.code())
                    .with_timestamp(-1)
                    .with_offset(-1),
            });
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions),
        );
    }
    respond(header, &ListOffsetsResponse::default().with_topics(topics))
}

/// Runs on the owner shard: the leader epoch to report, or why this
/// broker cannot answer (a replicated partition answers on its leader).
fn leader_epoch(topic: &str, index: i32) -> Result<i32, ErrorCode> {
    let Some(p) = shard::current().partition(topic, index) else {
        return Err(crate::cluster::absent_partition_error(topic, index));
    };
    if !p.is_replicated() {
        return Ok(0);
    }
    match p.replication() {
        Some(r) if r.role() == crate::replication::RoleKind::Leader => Ok(r.leader_epoch().0),
        _ => Err(ErrorCode::NotLeaderOrFollower),
    }
}

/// Runs on the owner shard: (timestamp, offset), -1/-1 when no record
/// matches a timestamp, as Kafka answers.
async fn lookup(topic: String, index: i32, timestamp: i64) -> Result<(i64, i64), ErrorCode> {
    let p = shard::current()
        .partition(&topic, index)
        .ok_or(ErrorCode::UnknownTopicOrPartition)?;
    let log_start = p.log_start().0;
    match timestamp {
        LATEST => Ok((-1, p.high_watermark().0)),
        EARLIEST => Ok((-1, log_start)),
        MAX_TIMESTAMP => match p
            .log
            .max_timestamp()
            .await
            .map_err(|e| log_error_code(&e))?
        {
            // The batch holding the largest timestamp: answer its record.
            Some(t) => {
                let batch_start = batch_base(&p, t.offset).await?;
                Ok(
                    first_record(&p, batch_start, log_start, |ts| ts >= t.timestamp)
                        .await?
                        .unwrap_or((t.timestamp, t.offset.0)),
                )
            }
            None => Ok((-1, -1)),
        },
        ts if ts < 0 => Err(ErrorCode::InvalidRequest),
        ts => match p
            .log
            .offset_for_timestamp(ts)
            .await
            .map_err(|e| log_error_code(&e))?
        {
            Some(t) if t.offset < p.high_watermark() => {
                Ok(first_record(&p, t.offset, log_start, |r| r >= ts)
                    .await?
                    .unwrap_or((-1, -1)))
            }
            _ => Ok((-1, -1)),
        },
    }
}

/// The base offset of the batch holding `offset`.
async fn batch_base(p: &Partition, offset: LogOffset) -> Result<LogOffset, ErrorCode> {
    let read = p
        .log
        .read(offset, 1, None)
        .await
        .map_err(|e| log_error_code(&e))?;
    let Some(slice) = read.slice else {
        return Ok(offset);
    };
    let bytes = slice.read_to_vec().await.map_err(|e| log_error_code(&e))?;
    let batch = RecordBatch::new(&bytes).map_err(|e| e.error_code())?;
    Ok(LogOffset(batch.base_offset().0))
}

/// Kafka answers ListOffsets with the first *record* (not batch) at or past
/// the target: read the batch at `offset` (the first whose max timestamp
/// qualifies), decompress it if needed, and walk its records. Records of a
/// LogAppendTime batch all carry the batch's timestamp.
async fn first_record(
    p: &Partition,
    offset: LogOffset,
    log_start: i64,
    matches: impl Fn(i64) -> bool,
) -> Result<Option<(i64, i64)>, ErrorCode> {
    let read = p
        .log
        .read(offset, 1, None)
        .await
        .map_err(|e| log_error_code(&e))?;
    let Some(slice) = read.slice else {
        return Ok(None);
    };
    let bytes = slice.read_to_vec().await.map_err(|e| log_error_code(&e))?;
    let batch = RecordBatch::new(&bytes).map_err(|e| e.error_code())?;
    let base = batch.base_offset().0;
    if batch.timestamp_type() == TimestampType::LogAppendTime {
        return Ok(
            matches(batch.max_timestamp()).then(|| (batch.max_timestamp(), base.max(log_start)))
        );
    }
    let plain = plain_batch(&batch).map_err(|_| ErrorCode::CorruptMessage)?;
    let plain = RecordBatch::new(&plain).map_err(|e| e.error_code())?;
    for record in plain.records().map_err(|e| e.error_code())? {
        let record = record.map_err(|e| e.error_code())?;
        let (ts, off) = (
            plain.base_timestamp() + record.timestamp_delta,
            base + i64::from(record.offset_delta),
        );
        if off >= log_start && matches(ts) {
            return Ok(Some((ts, off)));
        }
    }
    Ok(None)
}
