//! OffsetFetch v1-8: committed offsets of listed partitions (-1 where
//! none) or, from v2, of every partition the group committed (topics
//! null). v7+ `require_stable` answers UNSTABLE_OFFSET_COMMIT while a
//! commit of the partition waits for durability; v8 batches groups.

use std::rc::Rc;

use ringtail_protocol::messages::kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use ringtail_protocol::messages::kafka_protocol::messages::{
    OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use ringtail_protocol::ErrorCode;

use super::join_group::driver_error_code;
use super::{decode, respond, str_bytes};
use crate::group::coordinator::TopicPartition;
use crate::group::driver;
use crate::server::{Header, Response};
use crate::shard::Shard;

/// One partition's answer: offset, leader epoch, metadata, error code.
type Fetched = (TopicPartition, i64, i32, String, i16);

/// Committed offsets of one group, on its shard.
async fn fetch_group(
    shard: &Shard,
    group_id: String,
    partitions: Option<Vec<TopicPartition>>,
    require_stable: bool,
) -> Result<Vec<Fetched>, ErrorCode> {
    let g = group_id.clone();
    let result = driver::on_group_shard(shard, &group_id, move || async move {
        driver::with(|c, _| {
            c.fetch_offsets(&g, partitions.as_deref())
                .into_iter()
                .map(|(tp, om)| {
                    if require_stable && c.has_pending_offsets(&g, &tp) {
                        let code = ErrorCode::UnstableOffsetCommit.code();
                        return (tp, -1, -1, String::new(), code);
                    }
                    match om {
                        Some(om) => (tp, om.offset, om.leader_epoch, om.metadata, 0),
                        None => (tp, -1, -1, String::new(), 0),
                    }
                })
                .collect::<Vec<Fetched>>()
        })
    })
    .await;
    result.map_err(|e| driver_error_code("OffsetFetch", &group_id, &e))
}

fn listed(topics: impl Iterator<Item = (TopicName, Vec<i32>)>) -> Vec<TopicPartition> {
    topics
        .flat_map(|(name, parts)| {
            let name = name.0.to_string();
            parts.into_iter().map(move |p| (name.clone(), p))
        })
        .collect()
}

/// Groups the answers by topic, in first-seen order.
fn by_topic(rows: Vec<Fetched>) -> Vec<(String, Vec<Fetched>)> {
    let mut out: Vec<(String, Vec<Fetched>)> = Vec::new();
    for row in rows {
        match out.iter_mut().find(|(t, _)| *t == row.0 .0) {
            Some((_, list)) => list.push(row),
            None => out.push((row.0 .0.clone(), vec![row])),
        }
    }
    out
}

pub async fn handle(header: &Header, body: &[u8], shard: &Rc<Shard>) -> Response {
    let request: OffsetFetchRequest = match decode(header, body) {
        Ok(r) => r,
        Err(refusal) => return refusal,
    };
    let v = header.api_version;
    let require_stable = v >= 7 && request.require_stable;
    if v >= 8 {
        let mut out = OffsetFetchResponse::default();
        for g in &request.groups {
            let partitions = g.topics.as_ref().map(|ts| {
                listed(
                    ts.iter()
                        .map(|t| (t.name.clone(), t.partition_indexes.clone())),
                )
            });
            let group_id = g.group_id.0.to_string();
            let mut rg = OffsetFetchResponseGroup::default();
            rg.group_id = g.group_id.clone();
            match fetch_group(shard, group_id, partitions, require_stable).await {
                Ok(rows) => {
                    rg.topics = by_topic(rows)
                        .into_iter()
                        .map(|(name, rows)| {
                            let mut t = OffsetFetchResponseTopics::default();
                            t.name = TopicName(str_bytes(&name));
                            t.partitions = rows
                                .into_iter()
                                .map(|(tp, offset, epoch, metadata, code)| {
                                    let mut p = OffsetFetchResponsePartitions::default();
                                    p.partition_index = tp.1;
                                    p.committed_offset = offset;
                                    p.committed_leader_epoch = epoch;
                                    p.metadata = Some(str_bytes(&metadata));
                                    p.error_code = code;
                                    p
                                })
                                .collect();
                            t
                        })
                        .collect();
                }
                Err(code) => rg.error_code = code.code(),
            }
            out.groups.push(rg);
        }
        return respond(header, &out);
    }
    let partitions = request.topics.as_ref().map(|ts| {
        listed(
            ts.iter()
                .map(|t| (t.name.clone(), t.partition_indexes.clone())),
        )
    });
    let group_id = request.group_id.0.to_string();
    let mut out = OffsetFetchResponse::default();
    match fetch_group(shard, group_id, partitions, require_stable).await {
        Ok(rows) => {
            out.topics = by_topic(rows)
                .into_iter()
                .map(|(name, rows)| {
                    let mut t = OffsetFetchResponseTopic::default();
                    t.name = TopicName(str_bytes(&name));
                    t.partitions = rows
                        .into_iter()
                        .map(|(tp, offset, epoch, metadata, code)| {
                            let mut p = OffsetFetchResponsePartition::default();
                            p.partition_index = tp.1;
                            p.committed_offset = offset;
                            if v >= 5 {
                                p.committed_leader_epoch = epoch;
                            }
                            p.metadata = Some(str_bytes(&metadata));
                            p.error_code = code;
                            p
                        })
                        .collect();
                    t
                })
                .collect();
        }
        Err(code) => {
            if v >= 2 {
                out.error_code = code.code();
            }
        }
    }
    respond(header, &out)
}
