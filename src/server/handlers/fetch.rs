//! Fetch v4-12 for consumers: whole batches from the owner shards' logs as
//! file slices, sent from the page cache without a user-space copy, up to
//! the high watermark. A fetch below `min_bytes` parks until data arrives
//! or `max_wait_ms` passes (long poll). No fetch sessions: every answer is
//! a full response with session id 0, which all clients accept.

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ringtail_io::log::{FileSlice, LogError, Offset as LogOffset};
use ringtail_io::rt;
use ringtail_protocol::fetch::{
    FetchPartitionResponse, FetchRequest, FetchResponse, FetchableTopicResponse, IsolationLevel,
};
use ringtail_protocol::{ErrorCode, Offset, PartitionId};

use super::log_error_code;
use crate::partition::DataWaiter;
use crate::server::{Header, Response};
use crate::shard::{self, Shard, ShardId};

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
}

/// One partition's answer, produced on its owner shard.
struct PartitionRead {
    error: ErrorCode,
    high_watermark: i64,
    log_start: i64,
    slice: Option<FileSlice>,
    /// Offsets the slice moves the consumer past (for metrics).
    served: u64,
}

impl PartitionRead {
    fn failed(error: ErrorCode) -> PartitionRead {
        PartitionRead {
            error,
            high_watermark: -1,
            log_start: -1,
            slice: None,
            served: 0,
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
    if request.is_from_follower() {
        return Response::Close(
            "replica fetches need replication, which this broker does not run".into(),
        );
    }
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
            })
        })
        .collect();
    let max_bytes = request.max_bytes.max(0) as u64;
    let min_bytes = request.min_bytes.max(0) as u64;
    let deadline = Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
    let reads = loop {
        let reads = read_all(&targets, max_bytes).await;
        let total: u64 = reads.iter().map(PartitionRead::bytes).sum();
        let failed = reads.iter().any(|r| r.error != ErrorCode::None);
        let now = Instant::now();
        if total >= min_bytes.max(1) || failed || now >= deadline {
            break reads;
        }
        wait_for_data(&targets, deadline - now).await;
        if Instant::now() >= deadline {
            break read_all(&targets, max_bytes).await;
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
async fn read_all(targets: &[Target], max_bytes: u64) -> Vec<PartitionRead> {
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
        let answers = shard::run_on(owner, move || read_on_owner(batch, budget, first))
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
) -> Vec<(usize, PartitionRead)> {
    let shard = shard::current();
    let mut out = Vec::with_capacity(batch.len());
    for (i, t) in batch {
        let Some(p) = shard.partition(&t.topic, t.partition) else {
            out.push((i, PartitionRead::failed(ErrorCode::UnknownTopicOrPartition)));
            continue;
        };
        let hw = p.high_watermark();
        let log_start = p.log_start().0;
        let limit = t.max_bytes.min(budget);
        let read = if limit == 0 && !first {
            Ok((None, 0))
        } else {
            p.log
                .read(LogOffset(t.offset), limit.max(1), Some(hw))
                .await
                .map(|r| (r.slice, (r.next_offset.0 - t.offset).max(0) as u64))
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
            },
        };
        out.push((i, read));
    }
    out
}

/// Parks until one of the partitions gets data or `wait` passes.
async fn wait_for_data(targets: &[Target], wait: Duration) {
    let waker = std::future::poll_fn(|cx| Poll::Ready(cx.waker().clone())).await;
    let waiter = DataWaiter::new(waker);
    for t in targets {
        let Some(owner) = t.owner else { continue };
        let (topic, partition, offset, waiter) =
            (t.topic.clone(), t.partition, t.offset, waiter.clone());
        let _ = shard::run_on(owner, move || async move {
            if let Some(p) = shard::current().partition(&topic, partition) {
                // Data that arrived since the read counts at once.
                if p.high_watermark().0 > offset {
                    waiter.wake();
                } else {
                    p.wait_for_data(waiter);
                }
            }
        })
        .await;
    }
    let woken = waiter.clone();
    let _ = rt::time::timeout(
        wait,
        std::future::poll_fn(move |_| {
            if woken.woken.load(Ordering::Acquire) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }),
    )
    .await;
    waiter.done.store(true, Ordering::Release);
}
