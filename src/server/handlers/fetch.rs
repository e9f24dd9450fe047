//! Fetch v4-12 for consumers: whole batches from the owner shards' logs as
//! file slices, sent from the page cache without a user-space copy, up to
//! the high watermark. A fetch below `min_bytes` parks until data arrives
//! or `max_wait_ms` passes (long poll). No fetch sessions: every answer is
//! a full response with session id 0, which all clients accept.

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ringtail_io::log::{FileSlice, LogError, Offset as LogOffset};
use ringtail_io::rt;
use ringtail_protocol::fetch::{
    FetchPartitionResponse, FetchRequest, FetchResponse, FetchableTopicResponse, IsolationLevel,
};
use ringtail_protocol::{ErrorCode, Offset, PartitionId};

use super::log_error_code;
use crate::partition::{DataWaiter, Partition};
use crate::replication::{Correlation, FetchResult, Input, Message, Output, RoleKind};
use crate::server::{Header, Response};
use crate::shard::{self, Shard, ShardId};
use ringtail_protocol::{LeaderEpoch, NodeId};

static ZERO_COPY: AtomicBool = AtomicBool::new(true);

/// Whether record bytes are spliced from the page cache (default) or read
/// into memory and sent (`fetch.zero.copy=false`, for comparison).
pub fn zero_copy() -> bool {
    ZERO_COPY.load(Ordering::Relaxed)
}

pub fn set_zero_copy(on: bool) {
    ZERO_COPY.store(on, Ordering::Relaxed);
}

#[derive(Clone)]
struct Target {
    topic: String,
    partition: i32,
    offset: i64,
    max_bytes: u64,
    owner: Option<ShardId>,
    current_leader_epoch: i32,
    last_fetched_epoch: i32,
}

/// A follower's Fetch: who sent it, in which life, and the request's
/// correlation id (the core matches answers by it).
#[derive(Clone, Copy)]
struct Replica {
    id: i32,
    epoch: i64,
    correlation: i32,
}

/// One partition's answer, produced on its owner shard.
struct PartitionRead {
    error: ErrorCode,
    high_watermark: i64,
    log_start: i64,
    slice: Option<FileSlice>,
    /// Offsets the slice moves the consumer past (for metrics).
    served: u64,
    /// KIP-320: where a follower's log diverges from ours.
    diverging: Option<(i32, i64)>,
}

impl PartitionRead {
    fn failed(error: ErrorCode) -> PartitionRead {
        PartitionRead {
            error,
            high_watermark: -1,
            log_start: -1,
            slice: None,
            served: 0,
            diverging: None,
        }
    }

    fn bytes(&self) -> u64 {
        self.slice.as_ref().map_or(0, |s| s.len)
    }
}

pub async fn handle(header: &Header, body: &[u8], shard: &Rc<Shard>) -> Response {
    let version = header.api_version;
    let request = match FetchRequest::decode(version, body) {
        Ok(r) => r,
        Err(e) => return Response::Close(format!("malformed Fetch v{version}: {e}")),
    };
    let replica = request.is_from_follower().then_some(Replica {
        id: request.replica_id.0,
        epoch: request.replica_epoch,
        correlation: header.correlation_id.0,
    });
    let snapshot = shard.shared.metadata.snapshot();
    let targets: Vec<Target> = request
        .topics
        .iter()
        .flat_map(|t| {
            let meta = snapshot.topic(t.topic).cloned();
            let shared = &shard.shared;
            t.partitions.iter().map(move |p| Target {
                topic: t.topic.to_string(),
                partition: p.partition.0,
                offset: p.fetch_offset.0,
                max_bytes: p.partition_max_bytes.max(0) as u64,
                owner: meta
                    .as_ref()
                    .filter(|m| p.partition.0 >= 0 && p.partition.0 < m.partitions)
                    .map(|m| shared.owner(m, p.partition.0)),
                current_leader_epoch: p.current_leader_epoch.0,
                last_fetched_epoch: p.last_fetched_epoch.0,
            })
        })
        .collect();
    let max_bytes = request.max_bytes.max(0) as u64;
    let min_bytes = request.min_bytes.max(0) as u64;
    let deadline = Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
    let reads = loop {
        let reads = read_all(&targets, max_bytes, replica).await;
        let total: u64 = reads.iter().map(PartitionRead::bytes).sum();
        let failed = reads.iter().any(|r| r.error != ErrorCode::None);
        let now = Instant::now();
        if total >= min_bytes.max(1) || failed || now >= deadline {
            break reads;
        }
        wait_for_data(&targets, deadline - now, replica.is_some()).await;
        // Woken at once (data seen but not yet readable) must not become a
        // loop that never yields: the task that makes it readable runs on
        // this thread.
        rt::yield_now().await;
        if Instant::now() >= deadline {
            break read_all(&targets, max_bytes, replica).await;
        }
    };
    let aborted: &[ringtail_protocol::fetch::AbortedTransaction] = &[];
    let mut response = FetchResponse::default();
    let mut slices = Vec::new();
    for (target, read) in targets.iter().zip(reads) {
        // Counted here, on the answer actually sent: a long poll may read
        // a partition several times before it answers.
        if read.error != ErrorCode::None {
            crate::metrics::shard::request_error(header.api_key, read.error);
        }
        if let Some(slice) = &read.slice {
            crate::metrics::shard::fetched(&target.topic, target.partition, slice.len, read.served);
        }
        let mut partition = if read.error == ErrorCode::None {
            FetchPartitionResponse::empty(
                PartitionId(target.partition),
                Offset(read.high_watermark),
            )
        } else {
            FetchPartitionResponse::failed(PartitionId(target.partition), read.error)
        };
        if read.error == ErrorCode::OffsetOutOfRange || read.error == ErrorCode::None {
            partition.high_watermark = Offset(read.high_watermark);
            partition.last_stable_offset = Offset(read.high_watermark);
            partition.log_start_offset = Offset(read.log_start);
        }
        if let Some((epoch, end_offset)) = read.diverging {
            partition.diverging_epoch = Some(ringtail_protocol::fetch::EpochEndOffset {
                epoch: ringtail_protocol::LeaderEpoch(epoch),
                end_offset: Offset(end_offset),
            });
        }
        if request.isolation_level == IsolationLevel::ReadCommitted {
            partition.aborted_transactions = Some(aborted);
        }
        if let Some(slice) = read.slice {
            partition.records_len = slice.len as u32;
            slices.push(slice);
        }
        match response.topics.last_mut() {
            Some(t) if t.topic == target.topic => t.partitions.push(partition),
            _ => response.topics.push(FetchableTopicResponse {
                topic: &target.topic,
                partitions: vec![partition],
            }),
        }
    }
    let mut buf = BytesMut::with_capacity(128 + 64 * targets.len());
    let frame = response.encode_frame(version, header.correlation_id, &mut buf);
    Response::Fetch { buf, frame, slices }
}

/// Reads every target, one job per owner shard, within `max_bytes` for the
/// whole response (the first batch always comes whole).
async fn read_all(
    targets: &[Target],
    max_bytes: u64,
    replica: Option<Replica>,
) -> Vec<PartitionRead> {
    let mut reads: Vec<Option<PartitionRead>> = (0..targets.len()).map(|_| None).collect();
    let mut owners: Vec<ShardId> = targets.iter().filter_map(|t| t.owner).collect();
    owners.sort_by_key(|s| s.0);
    owners.dedup();
    let mut used = 0u64;
    for owner in owners {
        let batch: Vec<(usize, Target)> = targets
            .iter()
            .enumerate()
            .filter(|(_, t)| t.owner == Some(owner))
            .map(|(i, t)| (i, t.clone()))
            .collect();
        let budget = max_bytes.saturating_sub(used);
        let first = used == 0;
        let answers = shard::run_on(owner, move || read_on_owner(batch, budget, first, replica))
            .await
            .unwrap_or_default();
        for (i, read) in answers {
            used += read.bytes();
            reads[i] = Some(read);
        }
    }
    reads
        .into_iter()
        .map(|r| r.unwrap_or_else(|| PartitionRead::failed(ErrorCode::UnknownTopicOrPartition)))
        .collect()
}

async fn read_on_owner(
    batch: Vec<(usize, Target)>,
    mut budget: u64,
    mut first: bool,
    replica: Option<Replica>,
) -> Vec<(usize, PartitionRead)> {
    let shard = shard::current();
    let mut out = Vec::with_capacity(batch.len());
    for (i, t) in batch {
        let Some(p) = shard.partition(&t.topic, t.partition) else {
            let code = crate::cluster::absent_partition_error(&t.topic, t.partition);
            out.push((i, PartitionRead::failed(code)));
            continue;
        };
        // Where this fetch may read up to: the HW for consumers, what the
        // replication core allows for a follower.
        let (start, hw, read_end) = match replica {
            Some(r) => match serve_follower(&p, &t, r) {
                Ok(range) => range,
                Err(read) => {
                    out.push((i, read));
                    continue;
                }
            },
            None => {
                if let Err(code) = check_leader(&p, t.current_leader_epoch) {
                    out.push((i, PartitionRead::failed(code)));
                    continue;
                }
                let hw = p.high_watermark();
                (t.offset, hw, hw)
            }
        };
        let log_start = p.log_start().0;
        let limit = t.max_bytes.min(budget);
        let read = if limit == 0 && !first {
            Ok((None, 0))
        } else {
            p.log
                .read(LogOffset(start), limit.max(1), Some(read_end))
                .await
                .map(|r| (r.slice, (r.next_offset.0 - start).max(0) as u64))
        };
        let read = match read {
            Ok((slice, served)) => {
                let n = slice.as_ref().map_or(0, |s| s.len);
                budget = budget.saturating_sub(n);
                first &= n == 0;
                PartitionRead {
                    error: ErrorCode::None,
                    high_watermark: hw.0,
                    log_start,
                    slice,
                    served,
                    diverging: None,
                }
            }
            Err(e) => PartitionRead {
                error: match e {
                    LogError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
                    other => {
                        eprintln!(
                            "{}-{}: read at {} failed: {other}",
                            t.topic, t.partition, t.offset
                        );
                        log_error_code(&other)
                    }
                },
                high_watermark: hw.0,
                log_start,
                slice: None,
                served: 0,
                diverging: None,
            },
        };
        out.push((i, read));
    }
    out
}

/// A consumer reads a replicated partition from its leader only, in the
/// leader's epoch when it names one (KIP-320).
fn check_leader(p: &Partition, current_leader_epoch: i32) -> Result<(), ErrorCode> {
    let Some(r) = p.replication() else {
        return if p.is_replicated() {
            Err(ErrorCode::NotLeaderOrFollower)
        } else {
            Ok(())
        };
    };
    if r.role() != RoleKind::Leader {
        return Err(ErrorCode::NotLeaderOrFollower);
    }
    let ours = r.leader_epoch().0;
    match current_leader_epoch {
        e if e < 0 || e == ours => Ok(()),
        e if e < ours => Err(ErrorCode::FencedLeaderEpoch),
        _ => Err(ErrorCode::UnknownLeaderEpoch),
    }
}

/// A follower's fetch of one partition, through the replication core:
/// the range to send `(from, hw, end)`, or the answer instead of records.
fn serve_follower(
    p: &Rc<Partition>,
    t: &Target,
    r: Replica,
) -> Result<(i64, LogOffset, LogOffset), PartitionRead> {
    if p.replication().is_none() {
        return Err(PartitionRead::failed(ErrorCode::NotLeaderOrFollower));
    }
    let correlation = Correlation(r.correlation as u32 as u64);
    let outputs = p.step(Input::Message {
        from: NodeId(r.id),
        msg: Message::Fetch {
            correlation,
            replica_epoch: r.epoch,
            current_leader_epoch: LeaderEpoch(t.current_leader_epoch),
            fetch_offset: Offset(t.offset),
            last_fetched_epoch: LeaderEpoch(t.last_fetched_epoch),
        },
    });
    let mut answer = None;
    let mut rest = Vec::with_capacity(outputs.len());
    for o in outputs {
        match o {
            Output::ServeFetch {
                to,
                correlation: c,
                read_from,
                read_end,
                high_watermark,
            } if to.0 == r.id && c == correlation => {
                answer = Some(Ok((
                    read_from.0,
                    LogOffset(high_watermark.0),
                    LogOffset(read_end.0),
                )))
            }
            Output::Send {
                to,
                msg:
                    Message::FetchResponse {
                        correlation: c,
                        result,
                    },
            } if to.0 == r.id && c == correlation => {
                answer = Some(Err(match result {
                    FetchResult::Error(e) => {
                        PartitionRead::failed(crate::partition::replica::error_code(e))
                    }
                    FetchResult::Diverging {
                        diverging,
                        high_watermark,
                    } => PartitionRead {
                        error: ErrorCode::None,
                        high_watermark: high_watermark.0,
                        log_start: p.log_start().0,
                        slice: None,
                        served: 0,
                        diverging: Some((diverging.leader_epoch.0, diverging.end_offset.0)),
                    },
                    FetchResult::Records { high_watermark, .. } => PartitionRead {
                        error: ErrorCode::None,
                        high_watermark: high_watermark.0,
                        log_start: p.log_start().0,
                        slice: None,
                        served: 0,
                        diverging: None,
                    },
                }))
            }
            other => rest.push(other),
        }
    }
    p.apply(rest);
    answer.unwrap_or_else(|| Err(PartitionRead::failed(ErrorCode::NotLeaderOrFollower)))
}

/// Parks until one of the partitions gets data or `wait` passes: data
/// under the HW for a consumer, any written data for a follower.
async fn wait_for_data(targets: &[Target], wait: Duration, follower: bool) {
    let waiter = DataWaiter::for_this_task().await;
    for t in targets {
        let Some(owner) = t.owner else { continue };
        let (topic, partition, offset, waiter) =
            (t.topic.clone(), t.partition, t.offset, waiter.clone());
        let _ = shard::run_on(owner, move || async move {
            if let Some(p) = shard::current().partition(&topic, partition) {
                // Data that arrived since the read counts at once, judged
                // as the read judges it (the core's log end for a
                // follower: the log's own written end runs ahead of it
                // until the core hears of the append, and a wake on that
                // would find nothing to read).
                let end = if follower {
                    p.follower_readable_end()
                } else {
                    p.high_watermark()
                };
                if end.0 > offset {
                    waiter.wake();
                } else {
                    p.wait_for_data(waiter);
                }
            }
        })
        .await;
    }
    waiter.park(wait).await;
}
