//! Produce v0-11: validate each partition's batch as Kafka's LogValidator
//! does, hand the batch bytes (a slice of the receive buffer, never copied)
//! to the partition's owner shard, and answer by `acks`: 0 nothing, 1 after
//! the leader's append, all after the batch is durable (group-committed
//! fdatasync; on one node the ISR is the leader alone).
//!
//! Ordering: everything before the append is enqueued runs without
//! awaiting, so pipelined requests of one connection append in order.

use std::rc::Rc;

use bytes::BytesMut;
use ringtail_io::log::Offset as LogOffset;
use ringtail_io::rt;
use ringtail_protocol::batch::{validate_produce_records, ProduceValidation};
use ringtail_protocol::header::write_response_frame;
use ringtail_protocol::produce::{
    Acks, PartitionProduceResponse, ProduceRequest, ProduceResponse, TopicProduceResponse,
};
use ringtail_protocol::{ErrorCode, Offset, PartitionId, RecordBatch};

use super::{log_error_code, topic_or_create};
use crate::partition::producers::{BatchInfo, Check};
use crate::partition::snapshot::batch_info;
use crate::server::{Header, Response};
use crate::shard::{self, Shard};

enum Plan {
    Failed(ErrorCode),
    Append {
        range: std::ops::Range<usize>,
        owner: shard::ShardId,
        /// The topic stamps batches with the broker's clock.
        log_append_time: bool,
    },
}

struct PartitionPlan {
    topic: String,
    index: i32,
    plan: Plan,
}

pub async fn handle(
    header: &Header,
    mut frame: BytesMut,
    body_offset: usize,
    shard: &Rc<Shard>,
) -> Response {
    let version = header.api_version;
    let (acks, timeout_ms, plans) = {
        let base = frame.as_ptr() as usize;
        let request = match ProduceRequest::decode(version, &frame[body_offset..]) {
            Ok(r) => r,
            Err(e) => return Response::Close(format!("malformed Produce v{version}: {e}")),
        };
        let acks = Acks::from_wire(request.acks);
        let mut plans = Vec::with_capacity(request.partition_count());
        for topic in &request.topics {
            let meta = match shard.shared.metadata.snapshot().topic(topic.name) {
                Some(t) => Ok(t.clone()),
                None => topic_or_create(shard, topic.name, true).await,
            };
            for p in &topic.partitions {
                let plan = match (&meta, acks, p.records) {
                    (_, None, _) => Plan::Failed(ErrorCode::InvalidRequiredAcks),
                    (Err(code), _, _) => Plan::Failed(*code),
                    (Ok(t), _, _) if p.index.0 < 0 || p.index.0 >= t.partitions => {
                        Plan::Failed(ErrorCode::UnknownTopicOrPartition)
                    }
                    (_, _, None) => Plan::Failed(ErrorCode::CorruptMessage),
                    (Ok(t), Some(_), Some(records)) => {
                        let validation = ProduceValidation {
                            max_message_bytes: t
                                .configs
                                .get("max.message.bytes")
                                .and_then(|v| v.parse().ok())
                                .unwrap_or(shard.shared.config.message_max_bytes),
                            require_keys: super::describe_configs::topic_value(
                                &shard.shared.config,
                                t,
                                "cleanup.policy",
                            )
                            .is_some_and(|p| p.split(',').any(|p| p.trim() == "compact")),
                            ..ProduceValidation::new(version)
                        };
                        match validate_produce_records(records, &validation) {
                            Ok(batch) => {
                                let start = records.as_ptr() as usize - base;
                                Plan::Append {
                                    range: start..start + batch.size_bytes(),
                                    owner: shard.shared.owner(t, p.index.0),
                                    log_append_time: t
                                        .configs
                                        .get("message.timestamp.type")
                                        .is_some_and(|v| v == "LogAppendTime"),
                                }
                            }
                            Err(e) => Plan::Failed(e.error_code()),
                        }
                    }
                };
                plans.push(PartitionPlan {
                    topic: topic.name.to_string(),
                    index: p.index.0,
                    plan,
                });
            }
        }
        (acks, request.timeout_ms, plans)
    };
    // Cut each batch out of the request buffer (no copy): the pieces are
    // disjoint, so each is an owned, mutable BytesMut the log can patch.
    let mut cut = 0usize;
    let mut appends = Vec::with_capacity(plans.len());
    let mut append_times: Vec<(usize, i64)> = Vec::new();
    for plan in &plans {
        let Plan::Append {
            range,
            owner,
            log_append_time,
        } = &plan.plan
        else {
            appends.push(None);
            continue;
        };
        let _ = frame.split_to(range.start - cut);
        let mut batch = frame.split_to(range.len());
        if *log_append_time {
            let now = ringtail_io::log::system_clock_ms();
            ringtail_protocol::batch::patch::set_log_append_time(&mut batch, now);
            append_times.push((appends.len(), now));
        }
        cut = range.end;
        let (topic, index, owner) = (plan.topic.clone(), plan.index, *owner);
        let acks = acks.unwrap_or(Acks::Leader);
        appends.push(Some(rt::spawn(async move {
            shard::run_on(owner, move || append(topic, index, batch, acks, timeout_ms))
                .await
                .unwrap_or(Err(ErrorCode::NotLeaderOrFollower))
        })));
    }
    let mut results = Vec::with_capacity(plans.len());
    for (plan, append) in plans.iter().zip(appends) {
        results.push(match (append, &plan.plan) {
            (Some(handle), _) => handle.await,
            (None, Plan::Failed(code)) => Err(*code),
            (None, Plan::Append { .. }) => unreachable!("every append was spawned"),
        });
    }
    for code in results.iter().filter_map(|r| r.err()) {
        crate::metrics::shard::request_error(header.api_key, code);
    }
    if acks == Some(Acks::None) {
        // No answer goes back for acks=0, so an error can only be reported
        // by closing the connection, as Kafka does.
        return match plans
            .iter()
            .zip(&results)
            .find_map(|(p, r)| r.err().map(|code| (p, code)))
        {
            Some((plan, code)) => Response::Close(format!(
                "acks=0 produce to {}-{} failed with {}",
                plan.topic,
                plan.index,
                code.name()
            )),
            None => Response::None,
        };
    }
    let mut response = ProduceResponse::default();
    for (plan, result) in plans.iter().zip(&results) {
        let partition = match result {
            Ok((base, start)) => PartitionProduceResponse::appended(
                PartitionId(plan.index),
                Offset(base.0),
                Offset(start.0),
            ),
            Err(code) => PartitionProduceResponse::failed(PartitionId(plan.index), *code),
        };
        match response.topics.last_mut() {
            Some(t) if t.name == plan.topic => t.partitions.push(partition),
            _ => response.topics.push(TopicProduceResponse {
                name: &plan.topic,
                partitions: vec![partition],
            }),
        }
    }
    let mut buf = BytesMut::with_capacity(64 + 48 * results.len());
    write_response_frame(
        &mut buf,
        header.api_key,
        version,
        header.correlation_id,
        |b| response.encode(version, b),
    );
    Response::Frame(buf)
}

/// Runs on the owner shard. The idempotence check, the producer state
/// update and the log's enqueue happen without an await in between, so
/// pipelined batches of one producer are judged in order.
async fn append(
    topic: String,
    index: i32,
    batch: BytesMut,
    acks: Acks,
    timeout_ms: i32,
) -> Result<(LogOffset, LogOffset), ErrorCode> {
    let shard = shard::current();
    let Some(partition) = shard.partition(&topic, index) else {
        // The topic exists (the caller checked): another broker holds it.
        return Err(crate::cluster::absent_partition_error(&topic, index));
    };
    if partition.is_replicated() {
        return append_replicated(partition, batch, acks, timeout_ms).await;
    }
    let durable = acks == Acks::All;
    let view = RecordBatch::new(&batch).map_err(|e| e.error_code())?;
    let base = partition.log.offsets().log_end.0;
    // The offsets the batch will get: the log assigns the log end at
    // enqueue, with no await between here and there.
    let idempotent = batch_info(&view).map(|b| BatchInfo {
        base_offset: base,
        last_offset: base + i64::from(view.last_offset_delta()),
        ..b
    });
    if let Some(b) = idempotent {
        if let Some((base_offset, last_offset)) = stored_retry(&partition, &b)? {
            // The first append may still be in flight: answer the retry
            // no sooner than the original would have been answered.
            if durable {
                partition
                    .log
                    .wait_durable(LogOffset(last_offset + 1))
                    .await
                    .map_err(|e| log_error_code(&e))?;
            }
            return Ok((LogOffset(base_offset), partition.log_start()));
        }
        partition.producers.borrow_mut().record(b);
    }
    let bytes = batch.len() as u64;
    let appended = partition.append(batch).await;
    let info = match appended {
        Ok(info) => info,
        Err(e) => {
            if let Some(b) = idempotent {
                partition
                    .producers
                    .borrow_mut()
                    .forget(b.producer_id, b.first_seq);
            }
            eprintln!("{topic}-{index}: append failed: {e}");
            return Err(log_error_code(&e));
        }
    };
    let records = (info.last_offset.0 - info.base_offset.0 + 1) as u64;
    crate::metrics::shard::appended(&topic, index, bytes, records);
    if durable {
        partition
            .log
            .wait_durable(LogOffset(info.last_offset.0 + 1))
            .await
            .map_err(|e| {
                eprintln!("{topic}-{index}: sync failed: {e}");
                log_error_code(&e)
            })?;
    }
    Ok((info.base_offset, partition.log_start()))
}

/// The producer-state check of an idempotent batch: `None` to append it,
/// the offsets of the stored batch it retries, or the refusal.
fn stored_retry(
    partition: &crate::partition::Partition,
    b: &BatchInfo,
) -> Result<Option<(i64, i64)>, ErrorCode> {
    let check = partition
        .producers
        .borrow()
        .check(b.producer_id, b.epoch, b.first_seq, b.last_seq);
    match check {
        Check::Append => Ok(None),
        Check::Duplicate {
            base_offset,
            last_offset,
        } => Ok(Some((base_offset, last_offset))),
        Check::Reject(code) => Err(code),
    }
}

/// A partition with several replicas: the replication core assigns the
/// offsets and answers (`acks=all` once the HW passes the batch, that is
/// once every ISR member has it durable). Runs on the owner shard; the
/// idempotence check, the core's step and the log's enqueue happen
/// without an await in between.
async fn append_replicated(
    partition: Rc<crate::partition::Partition>,
    batch: BytesMut,
    acks: Acks,
    timeout_ms: i32,
) -> Result<(LogOffset, LogOffset), ErrorCode> {
    use crate::replication::Acks as ReplAcks;
    let view = RecordBatch::new(&batch).map_err(|e| e.error_code())?;
    let delta = i64::from(view.last_offset_delta());
    let records = u32::try_from(delta + 1).map_err(|_| ErrorCode::CorruptMessage)?;
    let repl_acks = match acks {
        Acks::None => ReplAcks::None,
        Acks::Leader => ReplAcks::Leader,
        Acks::All => ReplAcks::All,
    };
    // Leadership and min.insync.replicas before the sequence, as Kafka:
    // see `Replica::admits`.
    partition.admits_produce(repl_acks)?;
    let idempotent = batch_info(&view);
    if let Some(b) = &idempotent {
        if let Some((base_offset, last_offset)) = stored_retry(&partition, b)? {
            // Answer a retry no sooner than the original: once the HW
            // passed it (acks=all).
            if acks == Acks::All {
                let timeout = std::time::Duration::from_millis(timeout_ms.max(0) as u64);
                partition
                    .wait_high_watermark_past(last_offset, timeout)
                    .await?;
            }
            return Ok((LogOffset(base_offset), partition.log_start()));
        }
    }
    let (base, done) =
        partition.produce(batch, repl_acks, records, i64::from(timeout_ms.max(0)))?;
    if let Some(b) = idempotent {
        partition.producers.borrow_mut().record(BatchInfo {
            base_offset: base.0,
            last_offset: base.0 + delta,
            ..b
        });
    }
    match done.await {
        Ok(Ok(offset)) => Ok((LogOffset(offset.0), partition.log_start())),
        Ok(Err(code)) => {
            let never_written = matches!(
                code,
                ErrorCode::KafkaStorageError | ErrorCode::UnknownServerError
            );
            if let (Some(b), true) = (idempotent, never_written) {
                partition
                    .producers
                    .borrow_mut()
                    .forget(b.producer_id, b.first_seq);
            }
            Err(code)
        }
        Err(_) => Err(ErrorCode::NotLeaderOrFollower),
    }
}
