//! ListOffsets v1-7: earliest (-2), latest (-1), max timestamp (-3, v7)
//! and by timestamp (the first batch whose max timestamp is at or after
//! the target; KIP-79).

use std::rc::Rc;

use ringtail_protocol::messages::kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use ringtail_protocol::messages::kafka_protocol::messages::{
    ListOffsetsRequest, ListOffsetsResponse,
};
use ringtail_protocol::ErrorCode;

use super::{decode, log_error_code, respond};
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
            let found = shard::run_on(owner, move || lookup(topic, index, timestamp))
                .await
                .unwrap_or(Err(ErrorCode::NotLeaderOrFollower));
            partitions.push(match found {
                Ok((ts, offset)) if header.api_version >= 4 => answer
                    .with_timestamp(ts)
                    .with_offset(offset)
                    .with_leader_epoch(0),
                Ok((ts, offset)) => answer.with_timestamp(ts).with_offset(offset),
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

/// Runs on the owner shard: (timestamp, offset), -1/-1 when no batch
/// matches a timestamp, as Kafka answers.
async fn lookup(topic: String, index: i32, timestamp: i64) -> Result<(i64, i64), ErrorCode> {
    let p = shard::current()
        .partition(&topic, index)
        .ok_or(ErrorCode::UnknownTopicOrPartition)?;
    match timestamp {
        LATEST => Ok((-1, p.high_watermark().0)),
        EARLIEST => Ok((-1, p.log_start().0)),
        MAX_TIMESTAMP => match p
            .log
            .max_timestamp()
            .await
            .map_err(|e| log_error_code(&e))?
        {
            Some(t) => Ok((t.timestamp, t.offset.0)),
            None => Ok((-1, -1)),
        },
        ts if ts < 0 => Err(ErrorCode::InvalidRequest),
        ts => match p
            .log
            .offset_for_timestamp(ts)
            .await
            .map_err(|e| log_error_code(&e))?
        {
            Some(t) if t.offset < p.high_watermark() => Ok((t.timestamp, t.offset.0)),
            _ => Ok((-1, -1)),
        },
    }
}
