//! Follower fetchers: the network half of the follower role.
//!
//! Each shard keeps one link per leader broker (Kafka's
//! `ReplicaFetcherThread`, one per source broker, here one per shard): a
//! TCP connection to the leader's advertised listener carrying one Fetch
//! at a time for every partition of this shard that follows that leader,
//! and OffsetsForLeaderEpoch requests for partitions that must find
//! where their log diverges first.
//!
//! The core says when a partition may fetch (only once its log is
//! durable: flush before fetch). A partition that got records in a
//! response is fsyncing when the next request is built; the link waits
//! for all such partitions (their fsyncs run at once) so that one request
//! carries them all. Sent without them, the request would find no new
//! data at the leader (a sticky producer writes one partition at a time)
//! and park for `replica.fetch.wait.max.ms`, and the partitions that
//! missed it could report their durable offsets, which move the HW and
//! answer `acks=all`, only after that long poll: the cluster benchmark's
//! produce -> consume p99 was 508 ms with the 500 ms default and a 20 ms
//! wait here. The wait is bounded by `replica.fetch.wait.max.ms` in case a
//! partition stops asking.
//!
//! A failed connection answers the partitions' requests with an error, so
//! their cores back off (`replica.fetch.backoff.ms`) and ask again, rather
//! than waiting out `replica.socket.timeout.ms`.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ringtail_io::rt;
use ringtail_io::rt::net::TcpStream;
use ringtail_io::rt::sync::Notify;
use ringtail_protocol::messages::kafka_protocol::messages::fetch_request::{
    FetchPartition, FetchTopic,
};
use ringtail_protocol::messages::kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use ringtail_protocol::messages::kafka_protocol::messages::{
    BrokerId, FetchRequest, FetchResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse, TopicName,
};
use ringtail_protocol::messages::kafka_protocol::protocol::{Decodable, Request, StrBytes};
use ringtail_protocol::messages::{self};
use ringtail_protocol::{frame, ApiKey, CorrelationId, LeaderEpoch, NodeId, Offset};

use super::epochs::EpochEndOffset;
use super::{BatchMeta, Correlation, FetchResult, Input, Message, ReplicationError};
use crate::partition::replica::replication_error;
use crate::shard;

const FETCH_VERSION: i16 = 12;
const EPOCH_VERSION: i16 = 4;
/// Pause before reconnecting to a leader that refused or dropped us.
const RECONNECT: Duration = Duration::from_millis(200);
const RESPONSE_BYTES_MAX: usize = 256 << 20;

type Key = (String, i32);

#[derive(Clone, Copy)]
struct PendingFetch {
    correlation: Correlation,
    current_leader_epoch: LeaderEpoch,
    fetch_offset: Offset,
    last_fetched_epoch: LeaderEpoch,
}

#[derive(Clone, Copy)]
struct PendingEpoch {
    correlation: Correlation,
    current_leader_epoch: LeaderEpoch,
    leader_epoch: LeaderEpoch,
}

struct Link {
    leader: i32,
    fetches: RefCell<BTreeMap<Key, PendingFetch>>,
    epochs: RefCell<BTreeMap<Key, PendingEpoch>>,
    /// Partitions that got records in the last response and have not
    /// asked again yet.
    syncing: RefCell<BTreeSet<Key>>,
    broker_epoch: Cell<i64>,
    wake: Notify,
}

thread_local! {
    static LINKS: RefCell<HashMap<i32, Rc<Link>>> = RefCell::new(HashMap::new());
}

/// Queues a follower's request (a core `Send` output) for its leader.
pub fn send(to: NodeId, topic: &str, partition: i32, broker_epoch: i64, msg: Message) {
    let link = LINKS.with(|links| {
        links
            .borrow_mut()
            .entry(to.0)
            .or_insert_with(|| {
                let link = Rc::new(Link {
                    leader: to.0,
                    fetches: RefCell::new(BTreeMap::new()),
                    epochs: RefCell::new(BTreeMap::new()),
                    syncing: RefCell::new(BTreeSet::new()),
                    broker_epoch: Cell::new(broker_epoch),
                    wake: Notify::new(),
                });
                rt::spawn(run(link.clone()));
                link
            })
            .clone()
    });
    link.broker_epoch.set(broker_epoch);
    let key = (topic.to_string(), partition);
    match msg {
        Message::Fetch {
            correlation,
            current_leader_epoch,
            fetch_offset,
            last_fetched_epoch,
            ..
        } => {
            link.epochs.borrow_mut().remove(&key);
            link.syncing.borrow_mut().remove(&key);
            link.fetches.borrow_mut().insert(
                key,
                PendingFetch {
                    correlation,
                    current_leader_epoch,
                    fetch_offset,
                    last_fetched_epoch,
                },
            );
        }
        Message::OffsetsForLeaderEpoch {
            correlation,
            current_leader_epoch,
            leader_epoch,
        } => {
            link.fetches.borrow_mut().remove(&key);
            link.syncing.borrow_mut().remove(&key);
            link.epochs.borrow_mut().insert(
                key,
                PendingEpoch {
                    correlation,
                    current_leader_epoch,
                    leader_epoch,
                },
            );
        }
        // Answers are sent by the handlers, never queued here.
        Message::FetchResponse { .. } | Message::OffsetsForLeaderEpochResponse { .. } => return,
    }
    link.wake.notify();
}

/// Feeds one answer to a partition of this shard.
fn deliver(leader: i32, key: &Key, msg: Message, batches: Vec<(BatchMeta, BytesMut)>) {
    let Some(p) = shard::current().partition(&key.0, key.1) else {
        return;
    };
    if !batches.is_empty() {
        p.stash_fetched(batches);
    }
    p.step_apply(Input::Message {
        from: NodeId(leader),
        msg,
    });
}

struct Conn {
    stream: TcpStream,
    next_correlation: i32,
}

async fn connect(leader: i32) -> Result<Conn, String> {
    let addr = crate::cluster::broker_addr(leader)
        .ok_or_else(|| format!("broker {leader} is not registered"))?;
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect to broker {leader} at {addr}: {e}"))?;
    Ok(Conn {
        stream,
        next_correlation: 1,
    })
}

impl Conn {
    async fn roundtrip<T: Request>(
        &mut self,
        version: i16,
        request: &T,
    ) -> Result<T::Response, String>
    where
        T::Response: Decodable,
    {
        self.roundtrip_tagged(version, request, &[]).await
    }

    /// Like `roundtrip`, with top-level tagged fields `(tag, bytes)` (tags
    /// below 64, bytes below 128) written by hand in place of the empty
    /// section a flexible request ends with.
    async fn roundtrip_tagged<T: Request>(
        &mut self,
        version: i16,
        request: &T,
        tagged: &[(u8, Bytes)],
    ) -> Result<T::Response, String>
    where
        T::Response: Decodable,
    {
        let correlation = CorrelationId(self.next_correlation);
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let mut buf = BytesMut::new();
        let client_id = format!("ringtail-replica-{}", crate::cluster::broker_id());
        messages::encode_request_frame(version, correlation, Some(&client_id), request, &mut buf)
            .map_err(|e| e.to_string())?;
        if !tagged.is_empty() {
            if buf.last() != Some(&0) || tagged.len() > 127 {
                return Err("request does not end with an empty tagged-field section".into());
            }
            buf.truncate(buf.len() - 1);
            buf.extend_from_slice(&[tagged.len() as u8]);
            for (tag, bytes) in tagged {
                if *tag > 127 || bytes.len() > 127 {
                    return Err("tagged field too large for the hand encoding".into());
                }
                buf.extend_from_slice(&[*tag, bytes.len() as u8]);
                buf.extend_from_slice(bytes);
            }
            let size = (buf.len() - frame::SIZE_PREFIX_BYTES) as i32;
            buf[..frame::SIZE_PREFIX_BYTES].copy_from_slice(&size.to_be_bytes());
        }
        let (sent, _) = self.stream.send_all(buf.freeze()).await;
        sent.map_err(|e| format!("send: {e}"))?;
        let api = ApiKey::from_key(T::KEY).expect("a known API");
        let body = self.read_frame().await?;
        let (got, rest) = messages::parse_response_header(api, version, &body)
            .map_err(|e| format!("response header: {e}"))?;
        if got != correlation {
            return Err(format!(
                "correlation id {} answers request {}",
                got.0, correlation.0
            ));
        }
        messages::decode_response::<T::Response>(api, version, rest).map_err(|e| e.to_string())
    }

    async fn read_exact(&mut self, n: usize) -> Result<BytesMut, String> {
        let mut buf = BytesMut::with_capacity(n);
        while buf.len() < n {
            let want = n - buf.len();
            let (got, b) = self.stream.recv_bytes(buf, want).await;
            buf = b;
            match got {
                Ok(0) => return Err("the leader closed the connection".into()),
                Ok(_) => {}
                Err(e) => return Err(format!("recv: {e}")),
            }
        }
        Ok(buf)
    }

    async fn read_frame(&mut self) -> Result<BytesMut, String> {
        let prefix = self.read_exact(frame::SIZE_PREFIX_BYTES).await?;
        let prefix: [u8; 4] = prefix[..].try_into().expect("four bytes");
        frame::check(&prefix, RESPONSE_BYTES_MAX).map_err(|e| e.to_string())?;
        let size = i32::from_be_bytes(prefix) as usize;
        self.read_exact(size).await
    }
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// The link's loop: one request at a time, epochs before fetches.
async fn run(link: Rc<Link>) {
    let mut conn: Option<Conn> = None;
    loop {
        if link.fetches.borrow().is_empty() && link.epochs.borrow().is_empty() {
            link.wake.notified().await;
            continue;
        }
        // Let partitions that are syncing the last answer join this one.
        if !link.syncing.borrow().is_empty() && link.epochs.borrow().is_empty() {
            let config = &crate::shard::current().shared.config;
            let bound = Duration::from_millis(config.replica_fetch_wait_max_ms.max(0) as u64);
            let _ = rt::time::timeout(bound, async {
                while !link.syncing.borrow().is_empty() {
                    link.wake.notified().await;
                }
            })
            .await;
            link.syncing.borrow_mut().clear();
        }
        if crate::shard::current()
            .shared
            .stopping
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return;
        }
        if conn.is_none() {
            match connect(link.leader).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    eprintln!("replica fetcher: {e}");
                    fail_all(&link, ReplicationError::NotLeaderOrFollower);
                    rt::time::sleep(RECONNECT).await;
                    continue;
                }
            }
        }
        let c = conn.as_mut().expect("connected above");
        let result = if !link.epochs.borrow().is_empty() {
            ask_epochs(&link, c).await
        } else {
            fetch(&link, c).await
        };
        if let Err(e) = result {
            eprintln!("replica fetcher for leader {}: {e}", link.leader);
            conn = None;
            rt::time::sleep(RECONNECT).await;
        }
    }
}

/// Answers every queued request with `error` (the connection failed).
fn fail_all(link: &Link, error: ReplicationError) {
    let fetches = std::mem::take(&mut *link.fetches.borrow_mut());
    let epochs = std::mem::take(&mut *link.epochs.borrow_mut());
    fail_fetches(link.leader, fetches, error);
    fail_epochs(link.leader, epochs, error);
}

/// Answers these Fetch requests with `error`, so their cores back off and
/// ask again rather than wait out `replica.socket.timeout.ms`.
fn fail_fetches(
    leader: i32,
    fetches: impl IntoIterator<Item = (Key, PendingFetch)>,
    error: ReplicationError,
) {
    for (key, f) in fetches {
        let msg = Message::FetchResponse {
            correlation: f.correlation,
            result: FetchResult::Error(error),
        };
        deliver(leader, &key, msg, Vec::new());
    }
}

/// Answers these OffsetsForLeaderEpoch requests with `error`.
fn fail_epochs(
    leader: i32,
    epochs: impl IntoIterator<Item = (Key, PendingEpoch)>,
    error: ReplicationError,
) {
    for (key, e) in epochs {
        let msg = Message::OffsetsForLeaderEpochResponse {
            correlation: e.correlation,
            result: Err(error),
        };
        deliver(leader, &key, msg, Vec::new());
    }
}

async fn ask_epochs(link: &Link, conn: &mut Conn) -> Result<(), String> {
    let asked = std::mem::take(&mut *link.epochs.borrow_mut());
    let mut topics: BTreeMap<&str, Vec<OffsetForLeaderPartition>> = BTreeMap::new();
    for ((topic, partition), e) in &asked {
        topics.entry(topic).or_default().push(
            OffsetForLeaderPartition::default()
                .with_partition(*partition)
                .with_current_leader_epoch(e.current_leader_epoch.0)
                .with_leader_epoch(e.leader_epoch.0),
        );
    }
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(crate::cluster::broker_id()))
        .with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    OffsetForLeaderTopic::default()
                        .with_topic(topic_name(t))
                        .with_partitions(ps)
                })
                .collect(),
        );
    let response: OffsetForLeaderEpochResponse = match conn.roundtrip(EPOCH_VERSION, &request).await
    {
        Ok(r) => r,
        Err(e) => {
            fail_epochs(link.leader, asked, ReplicationError::NotLeaderOrFollower);
            return Err(e);
        }
    };
    for t in &response.topics {
        for p in &t.partitions {
            let key = (t.topic.0.to_string(), p.partition);
            let Some(a) = asked.get(&key) else { continue };
            let result = if p.error_code == 0 {
                Ok(EpochEndOffset {
                    leader_epoch: LeaderEpoch(p.leader_epoch),
                    end_offset: Offset(p.end_offset),
                })
            } else {
                Err(replication_error(p.error_code))
            };
            deliver(
                link.leader,
                &key,
                Message::OffsetsForLeaderEpochResponse {
                    correlation: a.correlation,
                    result,
                },
                Vec::new(),
            );
        }
    }
    Ok(())
}

async fn fetch(link: &Link, conn: &mut Conn) -> Result<(), String> {
    let asked = std::mem::take(&mut *link.fetches.borrow_mut());
    if asked.is_empty() {
        return Ok(());
    }
    let config = &shard::current().shared.config;
    let mut topics: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
    for ((topic, partition), f) in &asked {
        topics.entry(topic).or_default().push(
            FetchPartition::default()
                .with_partition(*partition)
                .with_current_leader_epoch(f.current_leader_epoch.0)
                .with_fetch_offset(f.fetch_offset.0)
                .with_last_fetched_epoch(f.last_fetched_epoch.0)
                .with_partition_max_bytes(config.replica_fetch_max_bytes),
        );
    }
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(config.broker_id))
        .with_max_wait_ms(config.replica_fetch_wait_max_ms)
        .with_min_bytes(1)
        .with_max_bytes(config.replica_fetch_response_max_bytes)
        .with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    FetchTopic::default()
                        .with_topic(topic_name(t))
                        .with_partitions(ps)
                })
                .collect(),
        );
    // Fetch v15's ReplicaState (tag 1): replica id and broker epoch, so
    // the leader can name this broker's life in an ISR expansion.
    // kafka-protocol writes tag 1 only from v15, so it is added by hand.
    let mut state = BytesMut::new();
    bytes::BufMut::put_i32(&mut state, config.broker_id);
    bytes::BufMut::put_i64(&mut state, link.broker_epoch.get());
    bytes::BufMut::put_u8(&mut state, 0);
    let tagged = [(1u8, state.freeze())];
    let response: FetchResponse = match conn
        .roundtrip_tagged(FETCH_VERSION, &request, &tagged)
        .await
    {
        Ok(r) => r,
        Err(e) => {
            fail_fetches(link.leader, asked, ReplicationError::NotLeaderOrFollower);
            return Err(e);
        }
    };
    let mut answered = BTreeSet::new();
    for t in &response.responses {
        for p in &t.partitions {
            let key = (t.topic.0.to_string(), p.partition_index);
            let Some(f) = asked.get(&key) else { continue };
            answered.insert(key.clone());
            let hw = Offset(p.high_watermark);
            let (result, batches) = if p.error_code != 0 {
                (
                    FetchResult::Error(replication_error(p.error_code)),
                    Vec::new(),
                )
            } else if p.diverging_epoch.epoch >= 0 {
                (
                    FetchResult::Diverging {
                        diverging: EpochEndOffset {
                            leader_epoch: LeaderEpoch(p.diverging_epoch.epoch),
                            end_offset: Offset(p.diverging_epoch.end_offset),
                        },
                        high_watermark: hw,
                    },
                    Vec::new(),
                )
            } else {
                let batches = split_batches(p.records.clone().unwrap_or_default());
                if !batches.is_empty() {
                    link.syncing.borrow_mut().insert(key.clone());
                }
                (
                    FetchResult::Records {
                        high_watermark: hw,
                        batches: batches.iter().map(|(m, _)| *m).collect(),
                    },
                    batches,
                )
            };
            deliver(
                link.leader,
                &key,
                Message::FetchResponse {
                    correlation: f.correlation,
                    result,
                },
                batches,
            );
        }
    }
    // A partition the answer left out asks again after its timeout; tell
    // it now instead.
    let unanswered = asked.into_iter().filter(|(key, _)| !answered.contains(key));
    fail_fetches(
        link.leader,
        unanswered,
        ReplicationError::NotLeaderOrFollower,
    );
    Ok(())
}

/// Cuts a record set into whole batches (a partial last batch, which
/// Kafka may send at the byte limit, is dropped).
fn split_batches(records: Bytes) -> Vec<(BatchMeta, BytesMut)> {
    let mut out = Vec::new();
    let mut at = 0usize;
    // baseOffset int64, batchLength int32, partitionLeaderEpoch int32,
    // magic int8, crc int32, attributes int16, lastOffsetDelta int32.
    const HEADER: usize = 8 + 4 + 4 + 1 + 4 + 2 + 4;
    while records.len() - at >= HEADER {
        let b = &records[at..];
        let base = i64::from_be_bytes(b[0..8].try_into().expect("8 bytes"));
        let length = i32::from_be_bytes(b[8..12].try_into().expect("4 bytes"));
        let epoch = i32::from_be_bytes(b[12..16].try_into().expect("4 bytes"));
        let last_delta = i32::from_be_bytes(b[23..27].try_into().expect("4 bytes"));
        if length < 0 {
            break;
        }
        let size = 12 + length as usize;
        if records.len() - at < size {
            break;
        }
        let meta = BatchMeta {
            base_offset: Offset(base),
            end_offset: Offset(base + i64::from(last_delta) + 1),
            leader_epoch: LeaderEpoch(epoch),
        };
        out.push((meta, BytesMut::from(&records[at..at + size])));
        at += size;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_epoch_travels_in_tag_1_of_fetch_v12() {
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(2))
            .with_max_wait_ms(500)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name("t"))
                .with_partitions(vec![
                    FetchPartition::default().with_fetch_offset(7)
                ])]);
        let mut buf = BytesMut::new();
        messages::encode_request_frame(
            FETCH_VERSION,
            CorrelationId(9),
            Some("x"),
            &request,
            &mut buf,
        )
        .expect("encodes");
        assert_eq!(buf.last(), Some(&0));
        // What roundtrip_tagged does, then the broker's decoder.
        let mut state = BytesMut::new();
        bytes::BufMut::put_i32(&mut state, 2);
        bytes::BufMut::put_i64(&mut state, 4_294_967_308);
        bytes::BufMut::put_u8(&mut state, 0);
        buf.truncate(buf.len() - 1);
        buf.extend_from_slice(&[1, 1, state.len() as u8]);
        buf.extend_from_slice(&state);
        let body = &buf[frame::SIZE_PREFIX_BYTES..];
        let (_, rest) = ringtail_protocol::header::RequestHeader::parse(body).expect("header");
        let decoded =
            ringtail_protocol::fetch::FetchRequest::decode(FETCH_VERSION, rest).expect("decodes");
        assert_eq!(decoded.replica_id.0, 2);
        assert_eq!(decoded.replica_epoch, 4_294_967_308);
        assert_eq!(decoded.topics[0].partitions[0].fetch_offset.0, 7);
    }
    use ringtail_protocol::batch::builder::BatchBuilder;

    #[test]
    fn splits_whole_batches_and_drops_a_partial_tail() {
        let mut all = Vec::new();
        for (base, n) in [(0i64, 3), (3, 2)] {
            let mut b = BatchBuilder::new().stored_at(Offset(base), LeaderEpoch(1));
            for i in 0..n {
                b.append(0, None, Some(format!("v{i}").as_bytes()), &[]);
            }
            all.extend_from_slice(&b.build());
        }
        let whole = split_batches(Bytes::from(all.clone()));
        assert_eq!(whole.len(), 2);
        assert_eq!(whole[0].0.base_offset, Offset(0));
        assert_eq!(whole[0].0.end_offset, Offset(3));
        assert_eq!(whole[1].0.end_offset, Offset(5));
        let cut = split_batches(Bytes::from(all[..all.len() - 5].to_vec()));
        assert_eq!(cut.len(), 1);
    }
}
