//! Hand-written Fetch codec (API key 1), versions 4 to 12.
//!
//! The response encoder is built for zero-copy serving: it writes every
//! byte except the record sets into a small buffer and returns a list of
//! [`FetchPart`]s, header ranges interleaved with "holes" of known length
//! that the connection fills from segment files (splice, sendfile). The
//! frame's size prefix and each record set's length prefix already count
//! those holes.
//!
//! Version notes (Kafka's FetchRequest/Response JSON): v4 adds
//! isolation_level, last_stable_offset and aborted_transactions, v5
//! log_start_offset, v7 fetch sessions (session id/epoch, forgotten
//! topics, top-level error code), v9 current_leader_epoch, v11 rack_id and
//! preferred_read_replica, v12 the flexible encoding, last_fetched_epoch,
//! and the diverging_epoch/current_leader tagged fields.

use std::ops::Range;

use bytes::{BufMut, BytesMut};

use crate::api_key::ApiKey;
use crate::error_code::ErrorCode;
use crate::frame;
use crate::header::encode_response_header;
use crate::produce::LeaderIdAndEpoch;
use crate::types::{CorrelationId, LeaderEpoch, NodeId, Offset, PartitionId, ProducerId};
use crate::wire::{DecodeError, Reader, WireWrite};

pub const MIN_VERSION: i16 = 4;
pub const MAX_VERSION: i16 = 12;

fn check_version(version: i16) -> Result<(), DecodeError> {
    if (MIN_VERSION..=MAX_VERSION).contains(&version) {
        Ok(())
    } else {
        Err(DecodeError::UnsupportedVersion {
            api_key: ApiKey::Fetch.key(),
            version,
        })
    }
}

/// Which records a consumer may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsolationLevel {
    /// Up to the high watermark.
    ReadUncommitted = 0,
    /// Up to the last stable offset, with aborted transactions listed.
    ReadCommitted = 1,
}

/// A decoded Fetch request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest<'a> {
    /// v12+ tagged field 0; `None` when absent.
    pub cluster_id: Option<&'a str>,
    /// -1 for consumers, the follower's broker id for replication.
    pub replica_id: NodeId,
    /// The follower's broker epoch, -1 when absent: Fetch v15's
    /// `ReplicaState.ReplicaEpoch` (tagged field 1, KIP-903), which
    /// Ringtail's followers also send with v12.
    pub replica_epoch: i64,
    pub max_wait_ms: i32,
    pub min_bytes: i32,
    pub max_bytes: i32,
    pub isolation_level: IsolationLevel,
    /// v7+; 0 (no session) before.
    pub session_id: i32,
    /// v7+; -1 (FINAL_EPOCH, no session) before.
    pub session_epoch: i32,
    pub topics: Vec<FetchTopic<'a>>,
    /// v7+: partitions to drop from an incremental fetch session.
    pub forgotten_topics: Vec<ForgottenTopic<'a>>,
    /// v11+; empty before.
    pub rack_id: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchTopic<'a> {
    pub topic: &'a str,
    pub partitions: Vec<FetchPartition>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchPartition {
    pub partition: PartitionId,
    /// v9+; -1 (unknown) before.
    pub current_leader_epoch: LeaderEpoch,
    pub fetch_offset: Offset,
    /// v12+; -1 before.
    pub last_fetched_epoch: LeaderEpoch,
    /// v5+; only followers set it; -1 otherwise.
    pub log_start_offset: Offset,
    pub partition_max_bytes: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForgottenTopic<'a> {
    pub topic: &'a str,
    pub partitions: Vec<PartitionId>,
}

impl FetchRequest<'_> {
    /// Whether a broker (follower) sent this, rather than a consumer.
    pub fn is_from_follower(&self) -> bool {
        self.replica_id.0 >= 0
    }
}

impl<'a> FetchRequest<'a> {
    /// Decodes a request body (the bytes after the request header).
    pub fn decode(version: i16, body: &'a [u8]) -> Result<Self, DecodeError> {
        check_version(version)?;
        let flexible = ApiKey::Fetch.is_flexible(version);
        let mut r = Reader::new(body);
        let replica_id = NodeId(r.i32()?);
        let max_wait_ms = r.i32()?;
        let min_bytes = r.i32()?;
        let max_bytes = r.i32()?;
        let isolation_level = match r.i8()? {
            0 => IsolationLevel::ReadUncommitted,
            1 => IsolationLevel::ReadCommitted,
            other => {
                return Err(DecodeError::InvalidValue {
                    what: "isolation level",
                    value: other.into(),
                })
            }
        };
        let (session_id, session_epoch) = if version >= 7 {
            (r.i32()?, r.i32()?)
        } else {
            (0, -1)
        };
        let topic_count = r.array_len(flexible)?;
        let mut topics = Vec::with_capacity(topic_count);
        for _ in 0..topic_count {
            topics.push(decode_topic(&mut r, version, flexible)?);
        }
        let mut forgotten_topics = Vec::new();
        if version >= 7 {
            let count = r.array_len(flexible)?;
            forgotten_topics.reserve(count);
            for _ in 0..count {
                let topic = r.string_v(flexible)?;
                let partition_count = r.array_len(flexible)?;
                let mut partitions = Vec::with_capacity(partition_count);
                for _ in 0..partition_count {
                    partitions.push(PartitionId(r.i32()?));
                }
                if flexible {
                    r.skip_tagged_fields()?;
                }
                forgotten_topics.push(ForgottenTopic { topic, partitions });
            }
        }
        let rack_id = if version >= 11 {
            r.string_v(flexible)?
        } else {
            ""
        };
        let mut cluster_id = None;
        let mut replica_epoch = -1;
        if flexible {
            r.tagged_fields(|tag, data| {
                match tag {
                    0 => cluster_id = Reader::new(data).compact_nullable_string()?,
                    1 => {
                        // ReplicaState: ReplicaId int32, ReplicaEpoch int64.
                        let mut state = Reader::new(data);
                        let _id = state.i32()?;
                        replica_epoch = state.i64()?;
                    }
                    _ => {}
                }
                Ok(())
            })?;
        }
        Ok(FetchRequest {
            cluster_id,
            replica_id,
            replica_epoch,
            max_wait_ms,
            min_bytes,
            max_bytes,
            isolation_level,
            session_id,
            session_epoch,
            topics,
            forgotten_topics,
            rack_id,
        })
    }
}

fn decode_topic<'a>(
    r: &mut Reader<'a>,
    version: i16,
    flexible: bool,
) -> Result<FetchTopic<'a>, DecodeError> {
    let topic = r.string_v(flexible)?;
    let partition_count = r.array_len(flexible)?;
    let mut partitions = Vec::with_capacity(partition_count);
    for _ in 0..partition_count {
        let partition = PartitionId(r.i32()?);
        let current_leader_epoch = if version >= 9 {
            LeaderEpoch(r.i32()?)
        } else {
            LeaderEpoch::UNKNOWN
        };
        let fetch_offset = Offset(r.i64()?);
        let last_fetched_epoch = if version >= 12 {
            LeaderEpoch(r.i32()?)
        } else {
            LeaderEpoch::UNKNOWN
        };
        let log_start_offset = if version >= 5 {
            Offset(r.i64()?)
        } else {
            Offset::NONE
        };
        let partition_max_bytes = r.i32()?;
        if flexible {
            r.skip_tagged_fields()?;
        }
        partitions.push(FetchPartition {
            partition,
            current_leader_epoch,
            fetch_offset,
            last_fetched_epoch,
            log_start_offset,
            partition_max_bytes,
        });
    }
    if flexible {
        r.skip_tagged_fields()?;
    }
    Ok(FetchTopic { topic, partitions })
}

/// A Fetch response to encode. Record bytes are not part of it: each
/// partition states only how many it will send.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FetchResponse<'a> {
    pub throttle_time_ms: i32,
    /// v7+: session-level error (e.g. FETCH_SESSION_ID_NOT_FOUND).
    pub error_code: ErrorCode,
    /// v7+: 0 when there is no session.
    pub session_id: i32,
    pub topics: Vec<FetchableTopicResponse<'a>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchableTopicResponse<'a> {
    pub topic: &'a str,
    pub partitions: Vec<FetchPartitionResponse<'a>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPartitionResponse<'a> {
    pub partition_index: PartitionId,
    pub error_code: ErrorCode,
    pub high_watermark: Offset,
    pub last_stable_offset: Offset,
    pub log_start_offset: Offset,
    /// v12+ tagged field 0: the follower's log diverged from the leader's
    /// at this epoch and offset (KIP-320).
    pub diverging_epoch: Option<EpochEndOffset>,
    /// v12+ tagged field 1: the leader the client should use instead.
    pub current_leader: Option<LeaderIdAndEpoch>,
    /// `None` is encoded as null, which is what Kafka sends for
    /// READ_UNCOMMITTED fetches; READ_COMMITTED fetches get a list, empty
    /// when no aborted transaction overlaps the returned records.
    pub aborted_transactions: Option<&'a [AbortedTransaction]>,
    /// v11+: -1 (read from the leader).
    pub preferred_read_replica: NodeId,
    /// Bytes of record batches that will follow for this partition. 0
    /// encodes an empty (not null) record set, which is what clients
    /// expect when there is no data.
    pub records_len: u32,
}

impl FetchPartitionResponse<'_> {
    /// A partition answer with no data and no error.
    pub fn empty(partition_index: PartitionId, high_watermark: Offset) -> Self {
        Self {
            partition_index,
            error_code: ErrorCode::None,
            high_watermark,
            last_stable_offset: high_watermark,
            log_start_offset: Offset(0),
            diverging_epoch: None,
            current_leader: None,
            aborted_transactions: None,
            preferred_read_replica: NodeId(-1),
            records_len: 0,
        }
    }

    /// A partition-level error with Kafka's -1 placeholders.
    pub fn failed(partition_index: PartitionId, error_code: ErrorCode) -> Self {
        Self {
            error_code,
            high_watermark: Offset::NONE,
            last_stable_offset: Offset::NONE,
            log_start_offset: Offset::NONE,
            ..Self::empty(partition_index, Offset::NONE)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTransaction {
    pub producer_id: ProducerId,
    pub first_offset: Offset,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEndOffset {
    pub epoch: LeaderEpoch,
    pub end_offset: Offset,
}

/// One piece of an encoded Fetch response, in send order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchPart {
    /// Bytes of the encode buffer.
    Bytes(Range<usize>),
    /// `len` record bytes of `topics[topic].partitions[partition]`, to be
    /// sent from wherever they live.
    Records {
        topic: usize,
        partition: usize,
        len: u32,
    },
}

/// Result of [`FetchResponse::encode_frame`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchFrame {
    pub parts: Vec<FetchPart>,
    /// Bytes of the whole frame, size prefix included: the buffer bytes
    /// plus every record hole.
    pub frame_len: usize,
}

impl FetchFrame {
    /// Concatenates the parts, taking record bytes from `records` (which
    /// must return exactly `len` bytes). For tests and for callers that do
    /// not splice.
    pub fn assemble<'r>(
        &self,
        buf: &[u8],
        mut records: impl FnMut(usize, usize) -> &'r [u8],
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.frame_len);
        for part in &self.parts {
            match part {
                FetchPart::Bytes(range) => out.extend_from_slice(&buf[range.clone()]),
                FetchPart::Records {
                    topic,
                    partition,
                    len,
                } => {
                    let bytes = records(*topic, *partition);
                    assert_eq!(bytes.len(), *len as usize, "record source length");
                    out.extend_from_slice(bytes);
                }
            }
        }
        debug_assert_eq!(out.len(), self.frame_len);
        out
    }
}

/// Tracks the buffer region since the last hole while encoding.
struct PartsWriter {
    parts: Vec<FetchPart>,
    region_start: usize,
    records_total: usize,
}

impl PartsWriter {
    fn hole(&mut self, buf: &BytesMut, topic: usize, partition: usize, len: u32) {
        if len == 0 {
            return;
        }
        self.parts
            .push(FetchPart::Bytes(self.region_start..buf.len()));
        self.parts.push(FetchPart::Records {
            topic,
            partition,
            len,
        });
        self.region_start = buf.len();
        self.records_total += len as usize;
    }
}

impl FetchResponse<'_> {
    /// Encodes the whole response frame (size prefix, response header,
    /// body without record bytes) at the end of `buf` and returns the send
    /// plan. Ranges in the plan index into `buf`.
    ///
    /// Panics on a version outside 4..=12 or a frame over i32::MAX bytes:
    /// the handler checks the version first and bounds record bytes by the
    /// request's `max_bytes`, so either is a bug, not bad input.
    pub fn encode_frame(
        &self,
        version: i16,
        correlation_id: CorrelationId,
        buf: &mut BytesMut,
    ) -> FetchFrame {
        assert!(
            (MIN_VERSION..=MAX_VERSION).contains(&version),
            "fetch response v{version} is not supported"
        );
        // One allocation up front: about 60 bytes per partition plus names.
        let names: usize = self.topics.iter().map(|t| t.topic.len() + 8).sum();
        buf.reserve(32 + names + 64 * self.partition_count());
        let frame_start = frame::begin(buf);
        encode_response_header(
            buf,
            correlation_id,
            ApiKey::Fetch.response_header_version(version),
        );
        let mut writer = PartsWriter {
            parts: Vec::with_capacity(2 * self.partition_count() + 1),
            region_start: frame_start,
            records_total: 0,
        };
        self.encode_body(version, buf, &mut writer);
        frame::finish_with_extra(buf, frame_start, writer.records_total);
        if writer.region_start < buf.len() {
            writer
                .parts
                .push(FetchPart::Bytes(writer.region_start..buf.len()));
        }
        FetchFrame {
            parts: writer.parts,
            frame_len: buf.len() - frame_start + writer.records_total,
        }
    }

    pub fn partition_count(&self) -> usize {
        self.topics.iter().map(|t| t.partitions.len()).sum()
    }

    fn encode_body(&self, version: i16, buf: &mut BytesMut, writer: &mut PartsWriter) {
        let flexible = ApiKey::Fetch.is_flexible(version);
        buf.put_i32(self.throttle_time_ms);
        if version >= 7 {
            buf.put_i16(self.error_code.code());
            buf.put_i32(self.session_id);
        }
        buf.put_array_len(flexible, self.topics.len());
        for (t, topic) in self.topics.iter().enumerate() {
            buf.put_string_v(flexible, topic.topic);
            buf.put_array_len(flexible, topic.partitions.len());
            for (p, partition) in topic.partitions.iter().enumerate() {
                let len = partition.records_len;
                assert!(len <= i32::MAX as u32, "record set larger than i32::MAX");
                // Everything up to the records' length prefix, then the
                // hole for the record bytes, then the partition's tags.
                let aborted = partition.aborted_transactions.map_or(0, <[_]>::len);
                if aborted <= STAGED_ABORTED_MAX {
                    staged::<PARTITION_STAGE_BYTES>(buf, |w| {
                        encode_partition(partition, version, flexible, w)
                    });
                } else {
                    encode_partition(partition, version, flexible, buf);
                }
                writer.hole(buf, t, p, len);
                if flexible {
                    staged::<TAGS_STAGE_BYTES>(buf, |w| encode_partition_tags(partition, w));
                }
            }
            buf.put_empty_tagged_fields(flexible);
        }
        buf.put_empty_tagged_fields(flexible);
    }
}

/// Stack space for one partition's fields before the records: at most 44
/// bytes, plus 17 per aborted transaction. Kept small because the stage is
/// zeroed each time; partitions with more aborted transactions (rare:
/// READ_COMMITTED fetches over aborted data) are written directly.
const PARTITION_STAGE_BYTES: usize = 64;
const STAGED_ABORTED_MAX: usize = (PARTITION_STAGE_BYTES - 44) / 17;
/// A partition's v12 tags take at most 1 + 15 + 11 bytes.
const TAGS_STAGE_BYTES: usize = 32;

/// Writes through a stack buffer and copies the result into `buf` once.
///
/// `BytesMut`'s `put_*` methods are out-of-line calls that end in a
/// `memcpy` per field; writing each partition's ~40 bytes field by field
/// took two thirds of the encoder's instructions (callgrind). A `&mut
/// [u8]` writer inlines to plain stores.
fn staged<const N: usize>(buf: &mut BytesMut, write: impl FnOnce(&mut &mut [u8])) {
    let mut scratch = [0u8; N];
    let left = {
        let mut w: &mut [u8] = &mut scratch;
        write(&mut w);
        w.len()
    };
    buf.put_slice(&scratch[..N - left]);
}

/// A partition's fields up to and including the records' length prefix.
fn encode_partition(
    partition: &FetchPartitionResponse<'_>,
    version: i16,
    flexible: bool,
    buf: &mut impl BufMut,
) {
    buf.put_i32(partition.partition_index.0);
    buf.put_i16(partition.error_code.code());
    buf.put_i64(partition.high_watermark.0);
    buf.put_i64(partition.last_stable_offset.0);
    if version >= 5 {
        buf.put_i64(partition.log_start_offset.0);
    }
    match partition.aborted_transactions {
        None => buf.put_null_array(flexible),
        Some(aborted) => {
            buf.put_array_len(flexible, aborted.len());
            for txn in aborted {
                buf.put_i64(txn.producer_id.0);
                buf.put_i64(txn.first_offset.0);
                buf.put_empty_tagged_fields(flexible);
            }
        }
    }
    if version >= 11 {
        buf.put_i32(partition.preferred_read_replica.0);
    }
    // An empty set is length 0 (compact: 1), never null: clients treat
    // null records as an error but an empty set as "no data yet".
    let len = partition.records_len as usize;
    if flexible {
        buf.put_compact_len(len);
    } else {
        buf.put_i32(len as i32);
    }
}

/// The v12 partition tagged fields, in tag order.
fn encode_partition_tags(partition: &FetchPartitionResponse<'_>, buf: &mut impl BufMut) {
    let count = u32::from(partition.diverging_epoch.is_some())
        + u32::from(partition.current_leader.is_some());
    buf.put_unsigned_varint(count);
    if let Some(diverging) = partition.diverging_epoch {
        // Tag 0, size 13: epoch i32, end_offset i64, empty tags.
        buf.put_unsigned_varint(0);
        buf.put_unsigned_varint(13);
        buf.put_i32(diverging.epoch.0);
        buf.put_i64(diverging.end_offset.0);
        buf.put_unsigned_varint(0);
    }
    if let Some(leader) = partition.current_leader {
        // Tag 1, size 9: leader_id i32, leader_epoch i32, empty tags.
        buf.put_unsigned_varint(1);
        buf.put_unsigned_varint(9);
        buf.put_i32(leader.leader_id.0);
        buf.put_i32(leader.leader_epoch.0);
        buf.put_unsigned_varint(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Prng;
    use bytes::Bytes;
    use kafka_protocol::messages::fetch_request as oreq;
    use kafka_protocol::messages::fetch_response as oresp;
    use kafka_protocol::messages::{BrokerId, ResponseHeader, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn sb(s: &str) -> StrBytes {
        StrBytes::from_string(s.to_owned())
    }

    fn encode_oracle<T: Encodable>(message: &T, version: i16) -> Vec<u8> {
        let mut buf = BytesMut::new();
        message.encode(&mut buf, version).expect("oracle encodes");
        buf.to_vec()
    }

    fn random_oracle_request(rng: &mut Prng) -> oreq::FetchRequest {
        let topics = (0..rng.below(4))
            .map(|_| {
                let partitions = (0..rng.below(4))
                    .map(|_| {
                        oreq::FetchPartition::default()
                            .with_partition(rng.below(1000) as i32)
                            .with_current_leader_epoch(rng.range_i64(-1, 100) as i32)
                            .with_fetch_offset(rng.next_u64() as i64 >> 3)
                            .with_last_fetched_epoch(rng.range_i64(-1, 100) as i32)
                            .with_log_start_offset(rng.range_i64(-1, 1 << 40))
                            .with_partition_max_bytes(rng.below(1 << 20) as i32)
                    })
                    .collect();
                oreq::FetchTopic::default()
                    .with_topic(TopicName(sb(&rng.name(30))))
                    .with_partitions(partitions)
            })
            .collect();
        let forgotten = (0..rng.below(3))
            .map(|_| {
                oreq::ForgottenTopic::default()
                    .with_topic(TopicName(sb(&rng.name(10))))
                    .with_partitions((0..rng.below(4)).map(|i| i as i32).collect())
            })
            .collect();
        oreq::FetchRequest::default()
            .with_cluster_id(rng.chance(1, 2).then(|| sb(&rng.name(22))))
            .with_replica_id(BrokerId(rng.range_i64(-1, 5) as i32))
            .with_max_wait_ms(rng.below(1000) as i32)
            .with_min_bytes(rng.below(1000) as i32)
            .with_max_bytes(rng.below(1 << 30) as i32)
            .with_isolation_level(rng.below(2) as i8)
            .with_session_id(rng.below(1 << 20) as i32)
            .with_session_epoch(rng.range_i64(-1, 100) as i32)
            .with_topics(topics)
            .with_forgotten_topics_data(forgotten)
            .with_rack_id(sb(&rng.name(8)))
    }

    /// kafka-protocol refuses to encode a non-default field that a
    /// version lacks, so clear those first.
    fn request_for_version(mut o: oreq::FetchRequest, v: i16) -> oreq::FetchRequest {
        if v < 7 {
            o.session_id = 0;
            o.session_epoch = -1;
            o.forgotten_topics_data.clear();
        }
        if v < 11 {
            o.rack_id = StrBytes::default();
        }
        if v < 12 {
            o.cluster_id = None;
        }
        for t in &mut o.topics {
            for p in &mut t.partitions {
                if v < 5 {
                    p.log_start_offset = -1;
                }
                if v < 9 {
                    p.current_leader_epoch = -1;
                }
                if v < 12 {
                    p.last_fetched_epoch = -1;
                }
            }
        }
        o
    }

    fn assert_same(ours: &FetchRequest<'_>, o: &oreq::FetchRequest, v: i16) {
        let seed_note = format!("v{v}");
        assert_eq!(ours.replica_id.0, o.replica_id.0, "{seed_note}");
        assert_eq!(ours.max_wait_ms, o.max_wait_ms);
        assert_eq!(ours.min_bytes, o.min_bytes);
        assert_eq!(ours.max_bytes, o.max_bytes);
        assert_eq!(ours.isolation_level as i8, o.isolation_level);
        if v >= 7 {
            assert_eq!(ours.session_id, o.session_id);
            assert_eq!(ours.session_epoch, o.session_epoch);
            assert_eq!(ours.forgotten_topics.len(), o.forgotten_topics_data.len());
            for (f, of) in ours.forgotten_topics.iter().zip(&o.forgotten_topics_data) {
                assert_eq!(f.topic, of.topic.0.as_str());
                let ids: Vec<i32> = f.partitions.iter().map(|p| p.0).collect();
                assert_eq!(ids, of.partitions);
            }
        } else {
            assert_eq!((ours.session_id, ours.session_epoch), (0, -1));
            assert!(ours.forgotten_topics.is_empty());
        }
        let rack = if v >= 11 { o.rack_id.as_str() } else { "" };
        assert_eq!(ours.rack_id, rack);
        let cluster = if v >= 12 {
            o.cluster_id.as_deref()
        } else {
            None
        };
        assert_eq!(ours.cluster_id, cluster);
        assert_eq!(ours.topics.len(), o.topics.len());
        for (t, ot) in ours.topics.iter().zip(&o.topics) {
            assert_eq!(t.topic, ot.topic.0.as_str());
            assert_eq!(t.partitions.len(), ot.partitions.len());
            for (p, op) in t.partitions.iter().zip(&ot.partitions) {
                assert_eq!(p.partition.0, op.partition);
                assert_eq!(p.fetch_offset.0, op.fetch_offset);
                assert_eq!(p.partition_max_bytes, op.partition_max_bytes);
                let epoch = if v >= 9 { op.current_leader_epoch } else { -1 };
                assert_eq!(p.current_leader_epoch.0, epoch);
                let last = if v >= 12 { op.last_fetched_epoch } else { -1 };
                assert_eq!(p.last_fetched_epoch.0, last);
                let start = if v >= 5 { op.log_start_offset } else { -1 };
                assert_eq!(p.log_start_offset.0, start);
            }
        }
    }

    #[test]
    fn decodes_what_kafka_protocol_encodes_v4_to_v12() {
        let mut rng = Prng::new(0x5eed_0401);
        for _ in 0..500 {
            let all_fields = random_oracle_request(&mut rng);
            for version in MIN_VERSION..=MAX_VERSION {
                let oracle = request_for_version(all_fields.clone(), version);
                let bytes = encode_oracle(&oracle, version);
                let ours = FetchRequest::decode(version, &bytes)
                    .unwrap_or_else(|e| panic!("seed {} v{version}: {e}", rng.seed()));
                assert_same(&ours, &oracle, version);
            }
        }
    }

    #[test]
    fn request_truncations_fail_and_corruption_never_panics() {
        let mut rng = Prng::new(0x5eed_0402);
        for _ in 0..60 {
            let all_fields = random_oracle_request(&mut rng);
            for version in [4, 7, 11, 12] {
                let full =
                    encode_oracle(&request_for_version(all_fields.clone(), version), version);
                for len in 0..full.len() {
                    assert!(
                        FetchRequest::decode(version, &full[..len]).is_err(),
                        "seed {} v{version} len {len}",
                        rng.seed()
                    );
                }
                for _ in 0..50 {
                    let mut damaged = full.clone();
                    let at = rng.below(damaged.len() as u64) as usize;
                    damaged[at] = rng.next_u64() as u8;
                    let _ = FetchRequest::decode(version, &damaged);
                }
            }
        }
    }

    #[test]
    fn bad_isolation_level_and_versions_are_errors() {
        let oracle = oreq::FetchRequest::default().with_isolation_level(1);
        let mut bytes = encode_oracle(&oracle, 4);
        assert_eq!(
            FetchRequest::decode(4, &bytes).map(|r| r.isolation_level),
            Ok(IsolationLevel::ReadCommitted)
        );
        bytes[16] = 2;
        assert!(FetchRequest::decode(4, &bytes).is_err());
        assert!(FetchRequest::decode(3, &bytes).is_err());
        assert!(FetchRequest::decode(13, &bytes).is_err());
    }

    struct RandomResponse {
        names: Vec<String>,
        aborted: Vec<AbortedTransaction>,
        records: Vec<Vec<Vec<u8>>>,
    }

    fn random_parts(rng: &mut Prng) -> RandomResponse {
        let names: Vec<String> = (0..rng.below(4)).map(|_| rng.name(20)).collect();
        let records = names
            .iter()
            .map(|_| {
                (0..rng.below(4))
                    .map(|_| {
                        if rng.chance(1, 3) {
                            Vec::new()
                        } else {
                            rng.bytes(300)
                        }
                    })
                    .collect()
            })
            .collect();
        // Sometimes more than fit the encoder's stack stage.
        let aborted_count = [0, 1, 2, 3 * STAGED_ABORTED_MAX][rng.below(4) as usize];
        let aborted = (0..aborted_count)
            .map(|i| AbortedTransaction {
                producer_id: ProducerId(i as i64 + 100),
                first_offset: Offset(rng.below(1 << 30) as i64),
            })
            .collect();
        RandomResponse {
            names,
            aborted,
            records,
        }
    }

    fn build<'a>(rng: &mut Prng, parts: &'a RandomResponse) -> FetchResponse<'a> {
        let topics = parts
            .names
            .iter()
            .zip(&parts.records)
            .map(|(name, records)| FetchableTopicResponse {
                topic: name,
                partitions: records
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        let mut p = if rng.chance(1, 5) {
                            FetchPartitionResponse::failed(
                                PartitionId(i as i32),
                                ErrorCode::OffsetOutOfRange,
                            )
                        } else {
                            FetchPartitionResponse::empty(
                                PartitionId(i as i32),
                                Offset(rng.below(1 << 40) as i64),
                            )
                        };
                        p.records_len = r.len() as u32;
                        p.aborted_transactions = match rng.below(3) {
                            0 => None,
                            1 => Some(&[]),
                            _ => Some(&parts.aborted),
                        };
                        if rng.chance(1, 4) {
                            p.diverging_epoch = Some(EpochEndOffset {
                                epoch: LeaderEpoch(3),
                                end_offset: Offset(rng.below(1000) as i64),
                            });
                        }
                        if rng.chance(1, 4) {
                            p.current_leader = Some(LeaderIdAndEpoch {
                                leader_id: NodeId(2),
                                leader_epoch: LeaderEpoch(rng.below(9) as i32),
                            });
                        }
                        p
                    })
                    .collect(),
            })
            .collect();
        FetchResponse {
            throttle_time_ms: rng.below(100) as i32,
            error_code: ErrorCode::None,
            session_id: rng.below(1000) as i32,
            topics,
        }
    }

    fn response_for_version(mut o: oresp::FetchResponse, v: i16) -> oresp::FetchResponse {
        if v < 7 {
            o.error_code = 0;
            o.session_id = 0;
        }
        for t in &mut o.responses {
            for p in &mut t.partitions {
                if v < 5 {
                    p.log_start_offset = -1;
                }
                if v < 12 {
                    p.diverging_epoch = Default::default();
                    p.current_leader = Default::default();
                }
            }
        }
        o
    }

    fn to_oracle(response: &FetchResponse<'_>, records: &[Vec<Vec<u8>>]) -> oresp::FetchResponse {
        let topics = response
            .topics
            .iter()
            .zip(records)
            .map(|(t, recs)| {
                let partitions = t
                    .partitions
                    .iter()
                    .zip(recs)
                    .map(|(p, r)| {
                        let mut data = oresp::PartitionData::default()
                            .with_partition_index(p.partition_index.0)
                            .with_error_code(p.error_code.code())
                            .with_high_watermark(p.high_watermark.0)
                            .with_last_stable_offset(p.last_stable_offset.0)
                            .with_log_start_offset(p.log_start_offset.0)
                            .with_aborted_transactions(p.aborted_transactions.map(|a| {
                                a.iter()
                                    .map(|t| {
                                        oresp::AbortedTransaction::default()
                                            .with_producer_id(t.producer_id.0.into())
                                            .with_first_offset(t.first_offset.0)
                                    })
                                    .collect()
                            }))
                            .with_preferred_read_replica(BrokerId(p.preferred_read_replica.0))
                            .with_records(Some(Bytes::from(r.clone())));
                        if let Some(d) = p.diverging_epoch {
                            data = data.with_diverging_epoch(
                                oresp::EpochEndOffset::default()
                                    .with_epoch(d.epoch.0)
                                    .with_end_offset(d.end_offset.0),
                            );
                        }
                        if let Some(l) = p.current_leader {
                            data = data.with_current_leader(
                                oresp::LeaderIdAndEpoch::default()
                                    .with_leader_id(BrokerId(l.leader_id.0))
                                    .with_leader_epoch(l.leader_epoch.0),
                            );
                        }
                        data
                    })
                    .collect();
                oresp::FetchableTopicResponse::default()
                    .with_topic(TopicName(sb(t.topic)))
                    .with_partitions(partitions)
            })
            .collect();
        oresp::FetchResponse::default()
            .with_throttle_time_ms(response.throttle_time_ms)
            .with_error_code(response.error_code.code())
            .with_session_id(response.session_id)
            .with_responses(topics)
    }

    #[test]
    fn response_frame_matches_kafka_protocol_v4_to_v12() {
        let mut rng = Prng::new(0x5eed_0403);
        for _ in 0..400 {
            let parts = random_parts(&mut rng);
            let response = build(&mut rng, &parts);
            let all_fields = to_oracle(&response, &parts.records);
            for version in MIN_VERSION..=MAX_VERSION {
                let oracle = response_for_version(all_fields.clone(), version);
                let correlation = rng.next_u64() as i32;
                let mut buf = BytesMut::new();
                buf.put_slice(b"junk before");
                let plan = response.encode_frame(version, CorrelationId(correlation), &mut buf);
                let ours = plan.assemble(&buf, |t, p| &parts.records[t][p]);

                let mut expected = BytesMut::new();
                ResponseHeader::default()
                    .with_correlation_id(correlation)
                    .encode(
                        &mut expected,
                        ApiKey::Fetch.response_header_version(version),
                    )
                    .expect("oracle encodes");
                expected.extend_from_slice(&encode_oracle(&oracle, version));
                let mut framed = (expected.len() as i32).to_be_bytes().to_vec();
                framed.extend_from_slice(&expected);
                assert_eq!(ours, framed, "seed {} v{version}", rng.seed());
                assert_eq!(plan.frame_len, framed.len());
                assert_eq!(frame::check(&ours, usize::MAX), Ok(Some(ours.len())));
            }
        }
    }

    #[test]
    fn empty_partitions_get_an_empty_record_set_not_null() {
        let response = FetchResponse {
            topics: vec![FetchableTopicResponse {
                topic: "t",
                partitions: vec![FetchPartitionResponse::empty(PartitionId(0), Offset(10))],
            }],
            ..FetchResponse::default()
        };
        for (version, tail) in [(11, &[0, 0, 0, 0][..]), (12, &[1, 0, 0, 0][..])] {
            let mut buf = BytesMut::new();
            let plan = response.encode_frame(version, CorrelationId(1), &mut buf);
            assert_eq!(plan.parts, vec![FetchPart::Bytes(0..buf.len())]);
            // Records length, then (v12) partition, topic, response tags.
            assert!(buf.ends_with(tail), "v{version}: {:?}", &buf[..]);
        }
    }

    #[test]
    fn holes_sit_between_header_ranges() {
        let response = FetchResponse {
            topics: vec![FetchableTopicResponse {
                topic: "t",
                partitions: vec![
                    FetchPartitionResponse {
                        records_len: 100,
                        ..FetchPartitionResponse::empty(PartitionId(0), Offset(10))
                    },
                    FetchPartitionResponse {
                        records_len: 7,
                        ..FetchPartitionResponse::empty(PartitionId(1), Offset(10))
                    },
                ],
            }],
            ..FetchResponse::default()
        };
        let mut buf = BytesMut::new();
        let plan = response.encode_frame(12, CorrelationId(1), &mut buf);
        assert_eq!(plan.parts.len(), 5);
        assert!(matches!(
            plan.parts[1],
            FetchPart::Records {
                topic: 0,
                partition: 0,
                len: 100
            }
        ));
        assert!(matches!(
            plan.parts[3],
            FetchPart::Records {
                topic: 0,
                partition: 1,
                len: 7
            }
        ));
        assert_eq!(plan.frame_len, buf.len() + 107);
        let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        assert_eq!(size + 4, plan.frame_len);
    }
}
