//! OffsetCommit v2-8. Member commits are checked against the group's
//! generation and member ids; generation -1 with no member id is a
//! "simple" commit (assign()-mode consumers), allowed while the group has
//! no members. Offsets of unknown topics or partitions are refused here;
//! the rest are answered once their records are durable in
//! `__consumer_offsets`.

use std::rc::Rc;

use ringtail_protocol::messages::kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use ringtail_protocol::messages::kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse,
};
use ringtail_protocol::ErrorCode;

use super::join_group::{driver_error_code, error_code};
use super::{decode, respond};
use crate::group::coordinator::{CommitRequest, OffsetAndMetadata};
use crate::group::driver;
use crate::server::{Header, Response};
use crate::shard::Shard;

pub async fn handle(header: &Header, body: &[u8], shard: &Rc<Shard>) -> Response {
    let request: OffsetCommitRequest = match decode(header, body) {
        Ok(r) => r,
        Err(refusal) => return refusal,
    };
    let v = header.api_version;
    let group_id = request.group_id.0.to_string();
    let now = ringtail_io::log::system_clock_ms();
    let snapshot = shard.shared.metadata.snapshot();
    // (topic, partition) -> error code, in request order.
    let mut answers: Vec<(String, i32, i16)> = Vec::new();
    let mut offsets = Vec::new();
    for t in &request.topics {
        let name = t.name.0.to_string();
        let known = snapshot.topic(&name).map(|m| m.partitions);
        for p in &t.partitions {
            let index = p.partition_index;
            if !known.is_some_and(|n| (0..n).contains(&index)) {
                answers.push((
                    name.clone(),
                    index,
                    ErrorCode::UnknownTopicOrPartition.code(),
                ));
                continue;
            }
            answers.push((name.clone(), index, 0));
            offsets.push((
                (name.clone(), index),
                OffsetAndMetadata {
                    offset: p.committed_offset,
                    leader_epoch: if v >= 6 { p.committed_leader_epoch } else { -1 },
                    metadata: p
                        .committed_metadata
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_default(),
                    commit_timestamp_ms: now,
                },
            ));
        }
    }
    drop(snapshot);
    if !offsets.is_empty() {
        let req = CommitRequest {
            group_id: group_id.clone(),
            generation_id: request.generation_id_or_member_epoch,
            member_id: request.member_id.to_string(),
            group_instance_id: if v >= 7 {
                request.group_instance_id.as_ref().map(|s| s.to_string())
            } else {
                None
            },
            offsets,
        };
        let result = driver::on_group_shard(shard, &group_id, move || driver::commit(req)).await;
        match result {
            Ok(results) => {
                for ((topic, partition), r) in results {
                    let code = r.err().map_or(0, |e| error_code(e).code());
                    if let Some(a) = answers
                        .iter_mut()
                        .find(|(t, p, _)| *t == topic && *p == partition)
                    {
                        a.2 = code;
                    }
                }
            }
            Err(e) => {
                let code = driver_error_code("OffsetCommit", &group_id, &e).code();
                for a in answers.iter_mut().filter(|a| a.2 == 0) {
                    a.2 = code;
                }
            }
        }
    }
    let mut out = OffsetCommitResponse::default();
    for t in &request.topics {
        let name = t.name.0.to_string();
        let mut topic = OffsetCommitResponseTopic::default();
        topic.name = t.name.clone();
        topic.partitions = t
            .partitions
            .iter()
            .map(|p| {
                let mut rp = OffsetCommitResponsePartition::default();
                rp.partition_index = p.partition_index;
                rp.error_code = answers
                    .iter()
                    .find(|(t, i, _)| *t == name && *i == p.partition_index)
                    .map_or(0, |a| a.2);
                rp
            })
            .collect();
        out.topics.push(topic);
    }
    respond(header, &out)
}
