//! OffsetForLeaderEpoch v2-4 (KIP-101, KIP-320): where a leader epoch
//! ends in this leader's log. Followers ask it before fetching, to find
//! where to truncate; consumers ask it after a leader change, to check
//! that the position they hold still exists.
//!
//! A replicated partition answers through its replication core (which
//! fences by `current_leader_epoch` and answers from the epoch cache); a
//! single-replica partition has written every batch in epoch 0.

use std::rc::Rc;

use ringtail_protocol::messages::kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use ringtail_protocol::messages::kafka_protocol::messages::{
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};
use ringtail_protocol::{ErrorCode, LeaderEpoch, NodeId};

use super::{decode, respond};
use crate::partition::replica::error_code;
use crate::replication::{Correlation, Input, Message, Output};
use crate::server::{Header, Response};
use crate::shard::{self, Shard};

pub async fn handle(header: &Header, body: &[u8], shard: &Rc<Shard>) -> Response {
    let request: OffsetForLeaderEpochRequest = match decode(header, body) {
        Ok(r) => r,
        Err(refusal) => return refusal,
    };
    let snapshot = shard.shared.metadata.snapshot();
    let replica = request.replica_id.0;
    let mut topics = Vec::with_capacity(request.topics.len());
    for t in &request.topics {
        let name = t.topic.0.to_string();
        let meta = snapshot.topic(&name).cloned();
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let index = p.partition;
            let answer = EpochEndOffset::default()
                .with_partition(index)
                .with_leader_epoch(-1)
                .with_end_offset(-1);
            let Some(meta) = meta.as_ref().filter(|m| index >= 0 && index < m.partitions) else {
                partitions.push(answer.with_error_code(ErrorCode::UnknownTopicOrPartition.code()));
                continue;
            };
            let owner = shard.shared.owner(meta, index);
            let (topic, current, asked) = (name.clone(), p.current_leader_epoch, p.leader_epoch);
            let correlation = header.correlation_id.0;
            let found = shard::run_on(owner, move || async move {
                end_offset(&topic, index, replica, correlation, current, asked)
            })
            .await
            .unwrap_or(Err(ErrorCode::NotLeaderOrFollower));
            partitions.push(match found {
                Ok((epoch, end)) => answer.with_leader_epoch(epoch).with_end_offset(end),
                Err(code) => answer.with_error_code(code.code()),
            });
        }
        topics.push(
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic.clone())
                .with_partitions(partitions),
        );
    }
    respond(
        header,
        &OffsetForLeaderEpochResponse::default().with_topics(topics),
    )
}

/// On the owner shard: `(epoch, end offset)` of the largest epoch <=
/// `asked`, Kafka's `endOffsetForEpoch`.
fn end_offset(
    topic: &str,
    index: i32,
    replica: i32,
    correlation: i32,
    current: i32,
    asked: i32,
) -> Result<(i32, i64), ErrorCode> {
    let Some(p) = shard::current().partition(topic, index) else {
        return Err(crate::cluster::absent_partition_error(topic, index));
    };
    if !p.is_replicated() {
        if current > 0 {
            return Err(ErrorCode::UnknownLeaderEpoch);
        }
        let end = p.log.offsets().written.0;
        return Ok(if asked >= 0 { (0, end) } else { (-1, -1) });
    }
    if p.replication().is_none() {
        return Err(ErrorCode::NotLeaderOrFollower);
    }
    // The core answers as it answers a follower; consumers get the same.
    let correlation = Correlation(correlation as u32 as u64);
    let from = NodeId(replica);
    let outputs = p.step(Input::Message {
        from,
        msg: Message::OffsetsForLeaderEpoch {
            correlation,
            current_leader_epoch: LeaderEpoch(current),
            leader_epoch: LeaderEpoch(asked),
        },
    });
    let mut answer = Err(ErrorCode::NotLeaderOrFollower);
    let mut rest = Vec::new();
    for o in outputs {
        match o {
            Output::Send {
                to,
                msg:
                    Message::OffsetsForLeaderEpochResponse {
                        correlation: c,
                        result,
                    },
            } if to == from && c == correlation => {
                answer = result
                    .map(|e| (e.leader_epoch.0, e.end_offset.0))
                    .map_err(error_code);
            }
            other => rest.push(other),
        }
    }
    p.apply(rest);
    answer
}
