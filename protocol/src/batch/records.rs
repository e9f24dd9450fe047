//! Records inside an uncompressed v2 batch.
//!
//! ```text
//! length: varint (bytes after this field)
//! attributes: int8 (unused, 0)
//! timestampDelta: varlong
//! offsetDelta: varint
//! keyLength: varint (-1 = null), key
//! valueLength: varint (-1 = null), value
//! headers count: varint, then each: keyLength varint, key, valueLength varint (-1 = null), value
//! ```

use crate::wire::{DecodeError, Reader};

use super::{BatchError, Compression, RecordBatch};

/// One record; keys, values and headers borrow from the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub attributes: i8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    headers_count: usize,
    headers_bytes: &'a [u8],
}

/// One record header. Kafka's header keys are strings, but the broker
/// never interprets them, so they stay bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    pub key: &'a [u8],
    pub value: Option<&'a [u8]>,
}

impl<'a> Record<'a> {
    /// Number of headers.
    pub fn headers_len(&self) -> usize {
        self.headers_count
    }

    /// The headers, in order. They were checked when the record was
    /// parsed, so iteration cannot fail.
    pub fn headers(&self) -> impl Iterator<Item = Header<'a>> + 'a {
        let mut r = Reader::new(self.headers_bytes);
        (0..self.headers_count).map_while(move |_| read_header(&mut r).ok())
    }

    /// Parses one record from the front of `r`.
    fn parse(r: &mut Reader<'a>) -> Result<Record<'a>, DecodeError> {
        let length = r.varint()?;
        let length = usize::try_from(length)
            .ok()
            .filter(|&n| n <= r.remaining())
            .ok_or(DecodeError::InvalidLength {
                what: "record",
                length: length.into(),
            })?;
        let mut body = Reader::new(r.take(length)?);
        let attributes = body.i8()?;
        let timestamp_delta = body.varlong()?;
        let offset_delta = body.varint()?;
        let key = read_varint_bytes(&mut body, "record key")?;
        let value = read_varint_bytes(&mut body, "record value")?;
        let headers_count = body.varint()?;
        let headers_count = usize::try_from(headers_count)
            .ok()
            .filter(|&n| n <= body.remaining())
            .ok_or(DecodeError::InvalidLength {
                what: "record headers",
                length: headers_count.into(),
            })?;
        let headers_start = body.rest();
        for _ in 0..headers_count {
            read_header(&mut body)?;
        }
        let headers_bytes = &headers_start[..headers_start.len() - body.remaining()];
        // Kafka's DefaultRecord.readFrom insists that the declared length
        // is exactly what the fields used.
        if body.remaining() != 0 {
            return Err(DecodeError::InvalidLength {
                what: "record (declared length exceeds fields)",
                length: length as i64,
            });
        }
        Ok(Record {
            attributes,
            timestamp_delta,
            offset_delta,
            key,
            value,
            headers_count,
            headers_bytes,
        })
    }
}

fn read_varint_bytes<'a>(
    r: &mut Reader<'a>,
    what: &'static str,
) -> Result<Option<&'a [u8]>, DecodeError> {
    let length = r.varint()?;
    if length == -1 {
        return Ok(None);
    }
    let n = usize::try_from(length)
        .ok()
        .filter(|&n| n <= r.remaining())
        .ok_or(DecodeError::InvalidLength {
            what,
            length: length.into(),
        })?;
    Ok(Some(r.take(n)?))
}

fn read_header<'a>(r: &mut Reader<'a>) -> Result<Header<'a>, DecodeError> {
    let key = read_varint_bytes(r, "header key")?
        .ok_or(DecodeError::UnexpectedNull { what: "header key" })?;
    let value = read_varint_bytes(r, "header value")?;
    Ok(Header { key, value })
}

/// Iterator over the records of an uncompressed batch. It yields exactly
/// `records count` records, then reports leftover bytes as an error, and
/// stops after the first error.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    reader: Reader<'a>,
    index: usize,
    count: usize,
    failed: bool,
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let index = self.index;
        let fail = |this: &mut Self, reason: String| {
            this.failed = true;
            Some(Err(BatchError::InvalidRecord { index, reason }))
        };
        if index == self.count {
            if self.reader.remaining() == 0 {
                return None;
            }
            let reason = format!("{} bytes after the last record", self.reader.remaining());
            return fail(self, reason);
        }
        match Record::parse(&mut self.reader) {
            Ok(record) => {
                self.index += 1;
                Some(Ok(record))
            }
            Err(e) => fail(self, e.to_string()),
        }
    }
}

impl<'a> RecordBatch<'a> {
    /// Iterates the records of an uncompressed batch.
    pub fn records(&self) -> Result<Records<'a>, BatchError> {
        match self.attributes().compression() {
            Some(Compression::None) => {}
            Some(compression) => return Err(BatchError::Compressed { compression }),
            None => {
                return Err(BatchError::UnknownCompression {
                    codec: self.attributes().compression_id(),
                })
            }
        }
        let count = self.record_count();
        let count = usize::try_from(count).map_err(|_| BatchError::InvalidRecordCount { count })?;
        Ok(Records {
            reader: Reader::new(self.records_bytes()),
            index: 0,
            count,
            failed: false,
        })
    }

    /// Walks every record of an uncompressed batch, checking structure and
    /// that there are exactly `records count` of them with offset deltas
    /// 0, 1, 2, ... as Kafka's producer writes them.
    pub fn check_records(&self) -> Result<(), BatchError> {
        for (index, record) in self.records()?.enumerate() {
            check_offset_delta(index, &record?)?;
        }
        Ok(())
    }
}

/// Record `index` of a batch must have offset delta `index`: producers
/// number records 0, 1, 2, ... and the broker assigns offsets by adding
/// the base offset, so a gap or repeat would make offsets lie.
pub(crate) fn check_offset_delta(index: usize, record: &Record<'_>) -> Result<(), BatchError> {
    if i64::from(record.offset_delta) == index as i64 {
        Ok(())
    } else {
        Err(BatchError::InvalidRecord {
            index,
            reason: format!(
                "offset delta {} where {index} was expected",
                record.offset_delta
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{patch, BatchBuilder, RecordBatch};
    use super::*;

    #[test]
    fn iterates_what_the_builder_wrote() {
        let mut b = BatchBuilder::new();
        b.append(100, Some(b"key"), Some(b"value"), &[]);
        b.append(
            90,
            None,
            None,
            &[(b"h1", Some(b"v1")), (b"h2", None), (b"", Some(b""))],
        );
        let bytes = b.build();
        let batch = RecordBatch::new(&bytes).expect("valid batch");
        let records: Vec<_> = batch
            .records()
            .expect("uncompressed")
            .collect::<Result<_, _>>()
            .expect("valid records");
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].offset_delta, 0);
        assert_eq!(records[0].timestamp_delta, 0);
        assert_eq!(records[0].key, Some(&b"key"[..]));
        assert_eq!(records[0].value, Some(&b"value"[..]));
        assert_eq!(records[0].headers_len(), 0);
        assert_eq!(records[1].offset_delta, 1);
        assert_eq!(records[1].timestamp_delta, -10);
        assert_eq!(records[1].key, None);
        assert_eq!(records[1].value, None);
        let headers: Vec<_> = records[1].headers().collect();
        assert_eq!(
            headers,
            vec![
                Header {
                    key: b"h1",
                    value: Some(b"v1")
                },
                Header {
                    key: b"h2",
                    value: None
                },
                Header {
                    key: b"",
                    value: Some(b"")
                },
            ]
        );
        batch.check_records().expect("valid records");
    }

    #[test]
    fn count_larger_than_records_is_an_error() {
        let mut b = BatchBuilder::new();
        b.append(1, None, Some(b"x"), &[]);
        let mut bytes = b.build();
        bytes[super::super::RECORDS_COUNT_OFFSET + 3] = 2;
        patch::update_crc(&mut bytes);
        let batch = RecordBatch::new(&bytes).expect("framing is fine");
        assert!(matches!(
            batch.check_records(),
            Err(BatchError::InvalidRecord { index: 1, .. })
        ));
    }

    #[test]
    fn count_smaller_than_records_is_an_error() {
        let mut b = BatchBuilder::new();
        b.append(1, None, Some(b"x"), &[]);
        b.append(1, None, Some(b"y"), &[]);
        let mut bytes = b.build();
        bytes[super::super::RECORDS_COUNT_OFFSET + 3] = 1;
        let batch = RecordBatch::new(&bytes).expect("framing is fine");
        assert!(matches!(
            batch.check_records(),
            Err(BatchError::InvalidRecord { index: 1, .. })
        ));
    }

    #[test]
    fn compressed_batches_are_not_iterated() {
        let mut b = BatchBuilder::new();
        b.append(1, None, Some(b"x"), &[]);
        let mut bytes = b.build();
        bytes[super::super::ATTRIBUTES_OFFSET + 1] = 1;
        let batch = RecordBatch::new(&bytes).expect("framing is fine");
        assert_eq!(
            batch.records().err(),
            Some(BatchError::Compressed {
                compression: Compression::Gzip
            })
        );
    }

    #[test]
    fn every_truncated_record_section_is_an_error() {
        let mut b = BatchBuilder::new();
        b.append(7, Some(b"kk"), Some(b"vvvv"), &[(b"h", Some(b"x"))]);
        let bytes = b.build();
        let records_start = super::super::RECORD_BATCH_OVERHEAD;
        let record_bytes = &bytes[records_start..];
        for len in 0..record_bytes.len() {
            let mut r = Reader::new(&record_bytes[..len]);
            assert!(Record::parse(&mut r).is_err(), "len {len}");
        }
    }
}
