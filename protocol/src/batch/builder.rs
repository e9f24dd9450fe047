//! Encodes uncompressed records into a valid v2 batch, as a Kafka producer
//! would: offsets 0..n, base timestamp of the first record, CRC filled in.
//! Used by tests, the perf load generator and the console producer.

use bytes::BufMut;

use super::{patch, Attributes, MAGIC_V2, RECORD_BATCH_OVERHEAD};
use crate::types::{LeaderEpoch, Offset, ProducerEpoch, ProducerId, Sequence};
use crate::wire::{varint_len, varlong_len, WireWrite};

/// Builder for one uncompressed batch.
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    base_offset: Offset,
    partition_leader_epoch: LeaderEpoch,
    producer_id: ProducerId,
    producer_epoch: ProducerEpoch,
    base_sequence: Sequence,
    transactional: bool,
    base_timestamp: Option<i64>,
    max_timestamp: i64,
    count: i32,
    records: Vec<u8>,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchBuilder {
    /// A non-idempotent, non-transactional batch with base offset 0, as a
    /// client sends it.
    pub fn new() -> Self {
        Self {
            base_offset: Offset(0),
            partition_leader_epoch: LeaderEpoch::UNKNOWN,
            producer_id: ProducerId::NONE,
            producer_epoch: ProducerEpoch::NONE,
            base_sequence: Sequence::NONE,
            transactional: false,
            base_timestamp: None,
            max_timestamp: -1,
            count: 0,
            records: Vec::new(),
        }
    }

    /// Makes the batch idempotent.
    pub fn producer(
        mut self,
        id: ProducerId,
        epoch: ProducerEpoch,
        base_sequence: Sequence,
    ) -> Self {
        self.producer_id = id;
        self.producer_epoch = epoch;
        self.base_sequence = base_sequence;
        self
    }

    pub fn transactional(mut self, transactional: bool) -> Self {
        self.transactional = transactional;
        self
    }

    /// Base offset and leader epoch, for building batches as the broker
    /// stores them (tests of the log, replication).
    pub fn stored_at(mut self, base_offset: Offset, epoch: LeaderEpoch) -> Self {
        self.base_offset = base_offset;
        self.partition_leader_epoch = epoch;
        self
    }

    /// Number of records appended so far.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size the batch will have when built.
    pub fn size_bytes(&self) -> usize {
        RECORD_BATCH_OVERHEAD + self.records.len()
    }

    /// Appends one record with the next offset delta.
    pub fn append(
        &mut self,
        timestamp_ms: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&[u8], Option<&[u8]>)],
    ) {
        let base_timestamp = *self.base_timestamp.get_or_insert(timestamp_ms);
        self.max_timestamp = self.max_timestamp.max(timestamp_ms);
        let timestamp_delta = timestamp_ms.wrapping_sub(base_timestamp);
        let offset_delta = self.count;

        let body_len = 1
            + varlong_len(timestamp_delta)
            + varint_len(offset_delta)
            + nullable_len(key)
            + nullable_len(value)
            + varint_len(len_i32(headers.len()))
            + headers
                .iter()
                .map(|(k, v)| nullable_len(Some(k)) + nullable_len(*v))
                .sum::<usize>();

        let r = &mut self.records;
        r.put_varint(len_i32(body_len));
        r.put_i8(0);
        r.put_varlong(timestamp_delta);
        r.put_varint(offset_delta);
        put_nullable(r, key);
        put_nullable(r, value);
        r.put_varint(len_i32(headers.len()));
        for (k, v) in headers {
            put_nullable(r, Some(k));
            put_nullable(r, *v);
        }
        self.count = self
            .count
            .checked_add(1)
            .expect("more than i32::MAX records in one batch");
    }

    /// Appends the encoded batch to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let start = out.len();
        let total = self.size_bytes();
        let mut attributes = Attributes::default().0;
        if self.transactional {
            attributes |= Attributes::TRANSACTIONAL_BIT;
        }
        out.reserve(total);
        out.put_i64(self.base_offset.0);
        out.put_i32(len_i32(total - super::LOG_OVERHEAD));
        out.put_i32(self.partition_leader_epoch.0);
        out.put_i8(MAGIC_V2);
        out.put_u32(0); // CRC, filled in below once the covered bytes exist.
        out.put_i16(attributes);
        out.put_i32((self.count - 1).max(0));
        out.put_i64(self.base_timestamp.unwrap_or(-1));
        out.put_i64(self.max_timestamp);
        out.put_i64(self.producer_id.0);
        out.put_i16(self.producer_epoch.0);
        out.put_i32(self.base_sequence.0);
        out.put_i32(self.count);
        out.put_slice(&self.records);
        debug_assert_eq!(out.len() - start, total);
        patch::update_crc(&mut out[start..]);
    }

    /// The encoded batch.
    pub fn build(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size_bytes());
        self.encode_into(&mut out);
        out
    }
}

fn len_i32(len: usize) -> i32 {
    i32::try_from(len).expect("record field longer than i32::MAX")
}

fn nullable_len(bytes: Option<&[u8]>) -> usize {
    match bytes {
        None => varint_len(-1),
        Some(b) => varint_len(len_i32(b.len())) + b.len(),
    }
}

fn put_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => out.put_varint(-1),
        Some(b) => {
            out.put_varint(len_i32(b.len()));
            out.put_slice(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::RecordBatch;
    use super::*;
    use bytes::Bytes;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
        TimestampType,
    };

    /// kafka-protocol's encoder is the oracle: same records, same bytes.
    #[test]
    fn matches_kafka_protocol_encoding() {
        // Ascending, because kafka-protocol takes the minimum as base timestamp
        // while Java's producer (and this builder) take the first record's.
        let timestamps = [1_700_000_000_000i64, 1_700_000_000_007, 1_700_000_000_009];
        let mut ours = BatchBuilder::new().producer(ProducerId(5), ProducerEpoch(1), Sequence(100));
        let mut theirs = Vec::new();
        for (i, &ts) in timestamps.iter().enumerate() {
            let key = format!("key-{i}");
            let value = format!("value-{i}");
            let headers: &[(&[u8], Option<&[u8]>)] = &[(b"trace", Some(b"abc"))];
            ours.append(ts, Some(key.as_bytes()), Some(value.as_bytes()), headers);
            let mut record_headers = kafka_protocol::indexmap::IndexMap::new();
            record_headers.insert(
                kafka_protocol::protocol::StrBytes::from_static_str("trace"),
                Some(Bytes::from_static(b"abc")),
            );
            theirs.push(Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: 5,
                producer_epoch: 1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: 100 + i as i32,
                timestamp: ts,
                key: Some(Bytes::from(key)),
                value: Some(Bytes::from(value)),
                headers: record_headers,
            });
        }
        let mut oracle = bytes::BytesMut::new();
        RecordBatchEncoder::encode(
            &mut oracle,
            &theirs,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .expect("oracle encodes");
        let built = ours.build();
        assert_eq!(built, oracle.to_vec());

        let batch = RecordBatch::new(&built).expect("valid");
        assert!(batch.is_crc_valid());
        let decoded =
            RecordBatchDecoder::decode(&mut Bytes::from(built.clone())).expect("oracle decodes");
        assert_eq!(decoded.records.len(), 3);
    }

    #[test]
    fn empty_and_null_fields() {
        let mut b = BatchBuilder::new();
        assert!(b.is_empty());
        b.append(5, None, None, &[]);
        assert_eq!(b.len(), 1);
        let bytes = b.build();
        assert_eq!(bytes.len(), b.size_bytes());
        let batch = RecordBatch::new(&bytes).expect("valid");
        assert_eq!(batch.record_count(), 1);
        assert_eq!(batch.last_offset_delta(), 0);
        assert_eq!(batch.max_timestamp(), 5);
    }
}
