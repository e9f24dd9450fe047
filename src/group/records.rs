//! Kafka's `__consumer_offsets` records, so the topic reads like Kafka's:
//!
//! ```text
//! OffsetCommitKey   (version 1): group string, topic string, partition int32
//! OffsetCommitValue (version 3): offset int64, leader_epoch int32,
//!                                metadata string, commit_timestamp int64
//! GroupMetadataKey  (version 2): group string
//! GroupMetadataValue(version 3): protocol_type string, generation int32,
//!     protocol string?, leader string?, current_state_timestamp int64,
//!     members [member_id, group_instance_id?, client_id, client_host,
//!              rebalance_timeout int32, session_timeout int32,
//!              subscription bytes, assignment bytes]
//! ```
//!
//! A null value is a tombstone (offset deleted, group deleted).

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

use super::coordinator::{Group, OffsetAndMetadata};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: Bytes,
    pub value: Option<Bytes>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecordError {
    #[error("truncated {0}")]
    Truncated(&'static str),
    #[error("unknown key version {0}")]
    UnknownKeyVersion(i16),
    #[error("unknown value version {0}")]
    UnknownValueVersion(i16),
    #[error("invalid utf-8 in {0}")]
    Utf8(&'static str),
}

/// What a replayed record says (the parts the coordinator restores).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    Offset {
        group: String,
        topic: String,
        partition: i32,
        value: Option<OffsetAndMetadata>,
    },
    Group {
        group: String,
        value: Option<GroupMeta>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMeta {
    pub protocol_type: String,
    pub generation_id: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// When the group entered its state (v2+; wall clock ms), if known:
    /// an Empty group's offsets expire from there (KIP-211).
    pub current_state_timestamp_ms: Option<i64>,
    pub members: Vec<MemberMeta>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMeta {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

fn put_str(b: &mut BytesMut, s: &str) {
    let s = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
    b.put_i16(s.len() as i16);
    b.put_slice(s);
}

fn put_nullable_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(b, s),
        None => b.put_i16(-1),
    }
}

fn put_bytes(b: &mut BytesMut, v: &[u8]) {
    b.put_i32(v.len() as i32);
    b.put_slice(v);
}

fn offset_key(group: &str, topic: &str, partition: i32) -> Bytes {
    let mut k = BytesMut::new();
    k.put_i16(1);
    put_str(&mut k, group);
    put_str(&mut k, topic);
    k.put_i32(partition);
    k.freeze()
}

fn group_key(group: &str) -> Bytes {
    let mut k = BytesMut::new();
    k.put_i16(2);
    put_str(&mut k, group);
    k.freeze()
}

pub fn offset_commit(group: &str, topic: &str, partition: i32, om: &OffsetAndMetadata) -> Record {
    let mut v = BytesMut::new();
    v.put_i16(3);
    v.put_i64(om.offset);
    v.put_i32(om.leader_epoch);
    put_str(&mut v, &om.metadata);
    v.put_i64(om.commit_timestamp_ms);
    Record {
        key: offset_key(group, topic, partition),
        value: Some(v.freeze()),
    }
}

pub fn offset_tombstone(group: &str, topic: &str, partition: i32) -> Record {
    Record {
        key: offset_key(group, topic, partition),
        value: None,
    }
}

pub fn group_tombstone(group: &str) -> Record {
    Record {
        key: group_key(group),
        value: None,
    }
}

/// The group's metadata record; `state_timestamp_ms` is the wall-clock
/// time it entered its state, -1 when unknown (as Kafka writes it).
pub fn group_metadata(group: &Group, state_timestamp_ms: i64) -> Record {
    let mut v = BytesMut::new();
    v.put_i16(3);
    put_str(&mut v, group.protocol_type.as_deref().unwrap_or(""));
    v.put_i32(group.generation_id);
    put_nullable_str(&mut v, group.protocol_name.as_deref());
    put_nullable_str(&mut v, group.leader_id.as_deref());
    v.put_i64(state_timestamp_ms);
    let protocol = group.protocol_name.clone().unwrap_or_default();
    let members: Vec<_> = group.members().collect();
    v.put_i32(members.len() as i32);
    for m in members {
        put_str(&mut v, &m.id);
        put_nullable_str(&mut v, m.instance_id.as_deref());
        put_str(&mut v, &m.client_id);
        put_str(&mut v, &m.client_host);
        v.put_i32(m.rebalance_timeout_ms);
        v.put_i32(m.session_timeout_ms);
        let subscription = m
            .protocols
            .iter()
            .find(|(p, _)| *p == protocol)
            .map(|(_, s)| s.clone())
            .unwrap_or_default();
        put_bytes(&mut v, &subscription);
        put_bytes(&mut v, &m.assignment);
    }
    Record {
        key: group_key(&group.id),
        value: Some(v.freeze()),
    }
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], RecordError> {
        if self.buf.len() < n {
            return Err(RecordError::Truncated(what));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn i16(&mut self, what: &'static str) -> Result<i16, RecordError> {
        let b = self.take(2, what)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self, what: &'static str) -> Result<i32, RecordError> {
        let b = self.take(4, what)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i64(&mut self, what: &'static str) -> Result<i64, RecordError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    fn nullable_string(&mut self, what: &'static str) -> Result<Option<String>, RecordError> {
        let len = self.i16(what)?;
        if len < 0 {
            return Ok(None);
        }
        let b = self.take(len as usize, what)?;
        String::from_utf8(b.to_vec())
            .map(Some)
            .map_err(|_| RecordError::Utf8(what))
    }

    fn bytes(&mut self, what: &'static str) -> Result<Bytes, RecordError> {
        let len = self.i32(what)?;
        if len < 0 {
            return Ok(Bytes::new());
        }
        Ok(Bytes::copy_from_slice(self.take(len as usize, what)?))
    }

    fn string(&mut self, what: &'static str) -> Result<String, RecordError> {
        let len = self.i16(what)?;
        let len = usize::try_from(len).map_err(|_| RecordError::Truncated(what))?;
        let b = self.take(len, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| RecordError::Utf8(what))
    }
}

/// Decodes a record key and value (Kafka's versions 0-1 offset keys and
/// version 2 group keys; offset values 0-3; group values any version, of
/// which only the protocol type and generation are read).
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Decoded, RecordError> {
    let mut k = Reader { buf: key };
    match k.i16("key version")? {
        0 | 1 => {
            let group = k.string("group")?;
            let topic = k.string("topic")?;
            let partition = k.i32("partition")?;
            let value = value.map(decode_offset_value).transpose()?;
            Ok(Decoded::Offset {
                group,
                topic,
                partition,
                value,
            })
        }
        2 => {
            let group = k.string("group")?;
            let value = value.map(decode_group_value).transpose()?;
            Ok(Decoded::Group { group, value })
        }
        v => Err(RecordError::UnknownKeyVersion(v)),
    }
}

/// GroupMetadataValue versions 0-3 (v1 adds the rebalance timeout, v2 the
/// state timestamp, v3 the instance id).
fn decode_group_value(v: &[u8]) -> Result<GroupMeta, RecordError> {
    let mut r = Reader { buf: v };
    let version = r.i16("value version")?;
    if !(0..=3).contains(&version) {
        return Err(RecordError::UnknownValueVersion(version));
    }
    let protocol_type = r.string("protocol type")?;
    let generation_id = r.i32("generation")?;
    let protocol = r.nullable_string("protocol")?;
    let leader = r.nullable_string("leader")?;
    let current_state_timestamp_ms = if version >= 2 {
        Some(r.i64("state timestamp")?).filter(|ts| *ts >= 0)
    } else {
        None
    };
    let count = r.i32("members")?;
    let count = usize::try_from(count).map_err(|_| RecordError::Truncated("members"))?;
    let mut members = Vec::with_capacity(count.min(r.buf.len() / 8));
    for _ in 0..count {
        let member_id = r.string("member id")?;
        let group_instance_id = if version >= 3 {
            r.nullable_string("instance id")?
        } else {
            None
        };
        let client_id = r.string("client id")?;
        let client_host = r.string("client host")?;
        let rebalance_timeout_ms = if version >= 1 {
            r.i32("rebalance timeout")?
        } else {
            -1
        };
        let session_timeout_ms = r.i32("session timeout")?;
        let subscription = r.bytes("subscription")?;
        let assignment = r.bytes("assignment")?;
        members.push(MemberMeta {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms: if rebalance_timeout_ms < 0 {
                session_timeout_ms
            } else {
                rebalance_timeout_ms
            },
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    Ok(GroupMeta {
        protocol_type,
        generation_id,
        protocol,
        leader,
        current_state_timestamp_ms,
        members,
    })
}

fn decode_offset_value(v: &[u8]) -> Result<OffsetAndMetadata, RecordError> {
    let mut r = Reader { buf: v };
    let version = r.i16("value version")?;
    let offset = r.i64("offset")?;
    let leader_epoch = if version >= 3 {
        r.i32("leader epoch")?
    } else {
        -1
    };
    let metadata = r.string("metadata")?;
    let commit_timestamp_ms = r.i64("commit timestamp")?;
    if !(0..=3).contains(&version) {
        return Err(RecordError::UnknownValueVersion(version));
    }
    Ok(OffsetAndMetadata {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
    })
}

/// The topics of a consumer-protocol subscription (version, then the
/// topic list, in every version), or `None` when it does not parse.
pub fn consumer_subscription_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut r = Reader { buf: metadata };
    r.i16("version").ok()?;
    let count = r.i32("topics").ok()?;
    let count = usize::try_from(count).ok()?;
    if count > r.buf.len() / 2 {
        return None;
    }
    (0..count).map(|_| r.string("topic").ok()).collect()
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// A consumer-protocol subscription (v0) of `topics`.
    pub fn subscription(topics: &[&str]) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(0);
        b.put_i32(topics.len() as i32);
        for t in topics {
            put_str(&mut b, t);
        }
        b.put_i32(-1);
        b.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_records_round_trip() {
        let om = OffsetAndMetadata {
            offset: 42,
            leader_epoch: 3,
            metadata: "meta".into(),
            commit_timestamp_ms: 1_700_000_000_000,
        };
        let r = offset_commit("g", "t", 5, &om);
        let d = decode(&r.key, r.value.as_deref()).unwrap();
        assert_eq!(
            d,
            Decoded::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 5,
                value: Some(om)
            }
        );
        let t = offset_tombstone("g", "t", 5);
        assert!(matches!(
            decode(&t.key, None).unwrap(),
            Decoded::Offset { value: None, .. }
        ));
        assert!(decode(&r.key[..5], None).is_err());
        assert!(decode(&[0, 9], None).is_err());
    }

    #[test]
    fn subscription_topics_parse() {
        let mut b = BytesMut::new();
        b.put_i16(1);
        b.put_i32(2);
        put_str(&mut b, "a");
        put_str(&mut b, "bb");
        b.put_i32(-1);
        assert_eq!(
            consumer_subscription_topics(&b),
            Some(vec!["a".to_string(), "bb".to_string()])
        );
        assert_eq!(consumer_subscription_topics(&[0, 1, 0x7f, 0, 0, 0]), None);
    }
}
