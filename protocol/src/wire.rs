//! Kafka's primitive wire types, decoded from `&[u8]` and encoded into any
//! [`BufMut`] (`BytesMut`, `Vec<u8>`).
//!
//! Decoding never panics: every read checks the remaining length first and
//! returns a [`DecodeError`]. Lengths read off the wire are checked against
//! the bytes that remain before anything is allocated, so a hostile length
//! prefix cannot make us reserve gigabytes.

use bytes::BufMut;
use thiserror::Error;

/// Why a byte sequence is not a valid encoding of the expected type.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The input ended before the value did.
    #[error("truncated input: needed {needed} more bytes, {available} available")]
    Truncated { needed: usize, available: usize },
    /// A length prefix is negative (where null is not allowed) or larger
    /// than the bytes that remain.
    #[error("invalid length {length} for {what}")]
    InvalidLength { what: &'static str, length: i64 },
    /// A string is not valid UTF-8.
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// A varint runs past its maximum width (5 bytes for 32 bits, 10 for 64).
    #[error("varint longer than {max_bytes} bytes")]
    VarintTooLong { max_bytes: usize },
    /// A field that the schema declares non-nullable was null.
    #[error("null {what} where the schema does not allow null")]
    UnexpectedNull { what: &'static str },
    /// The message version is outside the range this decoder knows.
    #[error("unsupported version {version} for api key {api_key}")]
    UnsupportedVersion { api_key: i16, version: i16 },
    /// A field holds a value outside its domain.
    #[error("invalid value {value} for {what}")]
    InvalidValue { what: &'static str, value: i64 },
}

/// A cursor over a borrowed byte slice. Borrowed values (`&str`, `&[u8]`)
/// point into the original slice, so decoding a request copies nothing.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The unread rest of the input.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// Takes the next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError::Truncated {
                needed: n,
                available: self.remaining(),
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub fn i8(&mut self) -> Result<i8, DecodeError> {
        Ok(i8::from_be_bytes(self.array()?))
    }

    pub fn i16(&mut self) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    pub fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub fn uuid(&mut self) -> Result<[u8; 16], DecodeError> {
        self.array()
    }

    /// Kafka's UNSIGNED_VARINT: 7 bits per byte, little-endian groups, at
    /// most 5 bytes.
    pub fn unsigned_varint(&mut self) -> Result<u32, DecodeError> {
        // Most lengths and counts fit in one byte.
        if let Some(&byte) = self.buf.get(self.pos) {
            if byte < 0x80 {
                self.pos += 1;
                return Ok(u32::from(byte));
            }
        }
        let mut value: u32 = 0;
        for i in 0..5 {
            let byte = self.array::<1>()?[0];
            // The fifth byte may carry only the top 4 bits of a u32.
            if i == 4 && byte > 0x0f {
                return Err(DecodeError::VarintTooLong { max_bytes: 5 });
            }
            value |= u32::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::VarintTooLong { max_bytes: 5 })
    }

    fn unsigned_varlong(&mut self) -> Result<u64, DecodeError> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let byte = self.array::<1>()?[0];
            if i == 9 && byte > 0x01 {
                return Err(DecodeError::VarintTooLong { max_bytes: 10 });
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::VarintTooLong { max_bytes: 10 })
    }

    /// Kafka's VARINT: zigzag-encoded signed 32-bit.
    pub fn varint(&mut self) -> Result<i32, DecodeError> {
        let raw = self.unsigned_varint()?;
        Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
    }

    /// Kafka's VARLONG: zigzag-encoded signed 64-bit.
    pub fn varlong(&mut self) -> Result<i64, DecodeError> {
        let raw = self.unsigned_varlong()?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    /// Converts a decoded length into a byte count that fits in the input.
    fn checked_len(&self, what: &'static str, length: i64) -> Result<usize, DecodeError> {
        match usize::try_from(length) {
            Ok(n) if n <= self.remaining() => Ok(n),
            _ => Err(DecodeError::InvalidLength { what, length }),
        }
    }

    fn utf8(bytes: &'a [u8]) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8)
    }

    /// NULLABLE_STRING: i16 length, -1 for null.
    pub fn nullable_string(&mut self) -> Result<Option<&'a str>, DecodeError> {
        let length = self.i16()?;
        if length == -1 {
            return Ok(None);
        }
        let n = self.checked_len("string", length.into())?;
        Ok(Some(Self::utf8(self.take(n)?)?))
    }

    /// STRING: i16 length, never null.
    pub fn string(&mut self) -> Result<&'a str, DecodeError> {
        self.nullable_string()?
            .ok_or(DecodeError::UnexpectedNull { what: "string" })
    }

    /// COMPACT_NULLABLE_STRING: unsigned varint length + 1, 0 for null.
    pub fn compact_nullable_string(&mut self) -> Result<Option<&'a str>, DecodeError> {
        match self.compact_nullable_bytes_raw("compact string")? {
            None => Ok(None),
            Some(bytes) => Ok(Some(Self::utf8(bytes)?)),
        }
    }

    /// COMPACT_STRING: never null.
    pub fn compact_string(&mut self) -> Result<&'a str, DecodeError> {
        self.compact_nullable_string()?
            .ok_or(DecodeError::UnexpectedNull {
                what: "compact string",
            })
    }

    /// STRING or COMPACT_STRING depending on whether the message version is
    /// flexible.
    pub fn string_v(&mut self, flexible: bool) -> Result<&'a str, DecodeError> {
        if flexible {
            self.compact_string()
        } else {
            self.string()
        }
    }

    /// NULLABLE_STRING or COMPACT_NULLABLE_STRING.
    pub fn nullable_string_v(&mut self, flexible: bool) -> Result<Option<&'a str>, DecodeError> {
        if flexible {
            self.compact_nullable_string()
        } else {
            self.nullable_string()
        }
    }

    /// NULLABLE_BYTES (and RECORDS): i32 length, -1 for null.
    pub fn nullable_bytes(&mut self) -> Result<Option<&'a [u8]>, DecodeError> {
        let length = self.i32()?;
        if length == -1 {
            return Ok(None);
        }
        let n = self.checked_len("bytes", length.into())?;
        Ok(Some(self.take(n)?))
    }

    /// BYTES: never null.
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        self.nullable_bytes()?
            .ok_or(DecodeError::UnexpectedNull { what: "bytes" })
    }

    fn compact_nullable_bytes_raw(
        &mut self,
        what: &'static str,
    ) -> Result<Option<&'a [u8]>, DecodeError> {
        let length_plus_one = self.unsigned_varint()?;
        if length_plus_one == 0 {
            return Ok(None);
        }
        let n = self.checked_len(what, i64::from(length_plus_one) - 1)?;
        Ok(Some(self.take(n)?))
    }

    /// COMPACT_NULLABLE_BYTES (and COMPACT_RECORDS).
    pub fn compact_nullable_bytes(&mut self) -> Result<Option<&'a [u8]>, DecodeError> {
        self.compact_nullable_bytes_raw("compact bytes")
    }

    /// COMPACT_BYTES: never null.
    pub fn compact_bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        self.compact_nullable_bytes()?
            .ok_or(DecodeError::UnexpectedNull {
                what: "compact bytes",
            })
    }

    /// NULLABLE_BYTES or COMPACT_NULLABLE_BYTES.
    pub fn nullable_bytes_v(&mut self, flexible: bool) -> Result<Option<&'a [u8]>, DecodeError> {
        if flexible {
            self.compact_nullable_bytes()
        } else {
            self.nullable_bytes()
        }
    }

    /// An array length: i32 (-1 = null) or, when flexible, unsigned varint
    /// N+1 (0 = null). Returns `None` for null.
    ///
    /// Every element takes at least one byte on the wire, so a count larger
    /// than the remaining input is rejected here; callers may then size a
    /// `Vec` from it without trusting the peer.
    pub fn nullable_array_len(&mut self, flexible: bool) -> Result<Option<usize>, DecodeError> {
        let length: i64 = if flexible {
            i64::from(self.unsigned_varint()?) - 1
        } else {
            self.i32()?.into()
        };
        if length == -1 {
            return Ok(None);
        }
        self.checked_len("array", length).map(Some)
    }

    /// A non-nullable array length.
    pub fn array_len(&mut self, flexible: bool) -> Result<usize, DecodeError> {
        self.nullable_array_len(flexible)?
            .ok_or(DecodeError::UnexpectedNull { what: "array" })
    }

    /// Reads a tagged-field section, handing each field to `on_field(tag,
    /// data)`; fields the callback does not know it simply ignores, as
    /// Kafka requires of unknown tags.
    pub fn tagged_fields(
        &mut self,
        mut on_field: impl FnMut(u32, &'a [u8]) -> Result<(), DecodeError>,
    ) -> Result<(), DecodeError> {
        let count = self.unsigned_varint()?;
        // Each field takes at least two bytes (tag and size).
        self.checked_len("tagged fields", i64::from(count))?;
        for _ in 0..count {
            let tag = self.unsigned_varint()?;
            let size = self.unsigned_varint()?;
            let n = self.checked_len("tagged field", i64::from(size))?;
            on_field(tag, self.take(n)?)?;
        }
        Ok(())
    }

    /// Skips a tagged-field section.
    pub fn skip_tagged_fields(&mut self) -> Result<(), DecodeError> {
        self.tagged_fields(|_, _| Ok(()))
    }
}

/// Number of bytes [`WireWrite::put_unsigned_varint`] writes for `value`.
pub fn unsigned_varint_len(value: u32) -> usize {
    match value {
        0..=0x7f => 1,
        0x80..=0x3fff => 2,
        0x4000..=0x1f_ffff => 3,
        0x20_0000..=0xfff_ffff => 4,
        _ => 5,
    }
}

/// Number of bytes a zigzag VARINT takes.
pub fn varint_len(value: i32) -> usize {
    unsigned_varint_len(zigzag32(value))
}

/// Number of bytes a zigzag VARLONG takes.
pub fn varlong_len(value: i64) -> usize {
    let mut raw = zigzag64(value);
    let mut n = 1;
    while raw >= 0x80 {
        raw >>= 7;
        n += 1;
    }
    n
}

fn zigzag32(value: i32) -> u32 {
    ((value << 1) ^ (value >> 31)) as u32
}

fn zigzag64(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

/// Kafka's encodings on top of [`BufMut`]. Fixed-width integers come from
/// `BufMut` itself (`put_i32`, ...), which is already big-endian.
///
/// Lengths are `usize` and must fit the wire type; a longer string or
/// array is a programming error on our side, so it is asserted, not
/// returned.
pub trait WireWrite: BufMut {
    fn put_unsigned_varint(&mut self, mut value: u32) {
        while value >= 0x80 {
            self.put_u8((value as u8) | 0x80);
            value >>= 7;
        }
        self.put_u8(value as u8);
    }

    fn put_varint(&mut self, value: i32) {
        self.put_unsigned_varint(zigzag32(value));
    }

    fn put_varlong(&mut self, value: i64) {
        let mut raw = zigzag64(value);
        while raw >= 0x80 {
            self.put_u8((raw as u8) | 0x80);
            raw >>= 7;
        }
        self.put_u8(raw as u8);
    }

    fn put_string(&mut self, value: &str) {
        let length = i16::try_from(value.len()).expect("string longer than i16::MAX");
        self.put_i16(length);
        self.put_slice(value.as_bytes());
    }

    fn put_nullable_string(&mut self, value: Option<&str>) {
        match value {
            None => self.put_i16(-1),
            Some(s) => self.put_string(s),
        }
    }

    fn put_compact_string(&mut self, value: &str) {
        self.put_compact_len(value.len());
        self.put_slice(value.as_bytes());
    }

    fn put_compact_nullable_string(&mut self, value: Option<&str>) {
        match value {
            None => self.put_unsigned_varint(0),
            Some(s) => self.put_compact_string(s),
        }
    }

    fn put_string_v(&mut self, flexible: bool, value: &str) {
        if flexible {
            self.put_compact_string(value);
        } else {
            self.put_string(value);
        }
    }

    fn put_nullable_string_v(&mut self, flexible: bool, value: Option<&str>) {
        if flexible {
            self.put_compact_nullable_string(value);
        } else {
            self.put_nullable_string(value);
        }
    }

    /// BYTES: i32 length and the bytes. (Not `put_bytes`, which `BufMut`
    /// already defines as a fill.)
    fn put_sized_bytes(&mut self, value: &[u8]) {
        let length = i32::try_from(value.len()).expect("bytes longer than i32::MAX");
        self.put_i32(length);
        self.put_slice(value);
    }

    fn put_nullable_bytes(&mut self, value: Option<&[u8]>) {
        match value {
            None => self.put_i32(-1),
            Some(b) => self.put_sized_bytes(b),
        }
    }

    fn put_compact_bytes(&mut self, value: &[u8]) {
        self.put_compact_len(value.len());
        self.put_slice(value);
    }

    fn put_compact_nullable_bytes(&mut self, value: Option<&[u8]>) {
        match value {
            None => self.put_unsigned_varint(0),
            Some(b) => self.put_compact_bytes(b),
        }
    }

    /// The N+1 length prefix of compact strings, bytes and arrays.
    fn put_compact_len(&mut self, len: usize) {
        let len = u32::try_from(len)
            .ok()
            .and_then(|n| n.checked_add(1))
            .expect("compact length overflows u32");
        self.put_unsigned_varint(len);
    }

    /// Array length prefix, classic (i32) or compact (varint N+1).
    fn put_array_len(&mut self, flexible: bool, len: usize) {
        if flexible {
            self.put_compact_len(len);
        } else {
            self.put_i32(i32::try_from(len).expect("array longer than i32::MAX"));
        }
    }

    /// Null array: i32 -1 or compact 0.
    fn put_null_array(&mut self, flexible: bool) {
        if flexible {
            self.put_unsigned_varint(0);
        } else {
            self.put_i32(-1);
        }
    }

    /// An empty tagged-field section, written only in flexible versions.
    fn put_empty_tagged_fields(&mut self, flexible: bool) {
        if flexible {
            self.put_unsigned_varint(0);
        }
    }

    fn put_uuid(&mut self, value: &[u8; 16]) {
        self.put_slice(value);
    }
}

impl<B: BufMut + ?Sized> WireWrite for B {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Prng;

    #[test]
    fn fixed_width_integers_are_big_endian() {
        let mut buf = Vec::new();
        buf.put_i8(-2);
        buf.put_i16(0x0102);
        buf.put_i32(-3);
        buf.put_i64(0x0102_0304_0506_0708);
        buf.put_u32(0xdead_beef);
        let mut r = Reader::new(&buf);
        assert_eq!(r.i8(), Ok(-2));
        assert_eq!(r.i16(), Ok(0x0102));
        assert_eq!(r.i32(), Ok(-3));
        assert_eq!(r.i64(), Ok(0x0102_0304_0506_0708));
        assert_eq!(r.u32(), Ok(0xdead_beef));
        assert_eq!(r.remaining(), 0);
        assert_eq!(&buf[1..3], &[1, 2]);
    }

    #[test]
    fn truncated_integers_are_errors() {
        assert_eq!(
            Reader::new(&[1, 2, 3]).i32(),
            Err(DecodeError::Truncated {
                needed: 4,
                available: 3
            })
        );
        assert!(Reader::new(&[]).i8().is_err());
        assert!(Reader::new(&[0; 7]).i64().is_err());
    }

    #[test]
    fn varints_match_kafka_examples() {
        // Values from Kafka's ByteUtilsTest.
        let cases: &[(i32, &[u8])] = &[
            (0, &[0x00]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (63, &[0x7e]),
            (-64, &[0x7f]),
            (64, &[0x80, 0x01]),
            (-65, &[0x81, 0x01]),
            (i32::MAX, &[0xfe, 0xff, 0xff, 0xff, 0x0f]),
            (i32::MIN, &[0xff, 0xff, 0xff, 0xff, 0x0f]),
        ];
        for &(value, bytes) in cases {
            let mut buf = Vec::new();
            buf.put_varint(value);
            assert_eq!(buf, bytes, "encoding {value}");
            assert_eq!(varint_len(value), bytes.len());
            assert_eq!(Reader::new(bytes).varint(), Ok(value));
        }
    }

    #[test]
    fn unsigned_varint_round_trips_and_rejects_overlong() {
        for value in [0, 1, 127, 128, 16383, 16384, u32::MAX] {
            let mut buf = Vec::new();
            buf.put_unsigned_varint(value);
            assert_eq!(buf.len(), unsigned_varint_len(value));
            assert_eq!(Reader::new(&buf).unsigned_varint(), Ok(value));
        }
        let overlong = [0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(
            Reader::new(&overlong).unsigned_varint(),
            Err(DecodeError::VarintTooLong { max_bytes: 5 })
        );
        // Fifth byte with bits above u32.
        assert!(Reader::new(&[0x80, 0x80, 0x80, 0x80, 0x10])
            .unsigned_varint()
            .is_err());
        assert!(Reader::new(&[0x80]).unsigned_varint().is_err());
    }

    #[test]
    fn varlong_round_trips_random_values() {
        let mut rng = Prng::new(0x5eed_0001);
        for _ in 0..10_000 {
            let value = rng.next_u64() as i64 >> rng.below(64);
            let mut buf = Vec::new();
            buf.put_varlong(value);
            assert_eq!(buf.len(), varlong_len(value), "seed {}", rng.seed());
            assert_eq!(
                Reader::new(&buf).varlong(),
                Ok(value),
                "seed {}",
                rng.seed()
            );
        }
        for value in [i64::MIN, i64::MAX, 0, -1] {
            let mut buf = Vec::new();
            buf.put_varlong(value);
            assert_eq!(Reader::new(&buf).varlong(), Ok(value));
        }
        assert!(Reader::new(&[0xff; 10]).varlong().is_err());
    }

    #[test]
    fn strings_classic_and_compact() {
        let mut buf = Vec::new();
        buf.put_string("héllo");
        buf.put_nullable_string(None);
        buf.put_compact_string("kafka");
        buf.put_compact_nullable_string(None);
        buf.put_compact_string("");
        let mut r = Reader::new(&buf);
        assert_eq!(r.string(), Ok("héllo"));
        assert_eq!(r.nullable_string(), Ok(None));
        assert_eq!(r.compact_string(), Ok("kafka"));
        assert_eq!(r.compact_nullable_string(), Ok(None));
        assert_eq!(r.compact_string(), Ok(""));
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn string_errors() {
        assert_eq!(
            Reader::new(&[0xff, 0xff]).string(),
            Err(DecodeError::UnexpectedNull { what: "string" })
        );
        assert_eq!(
            Reader::new(&[0xff, 0xfe]).nullable_string(),
            Err(DecodeError::InvalidLength {
                what: "string",
                length: -2
            })
        );
        assert_eq!(
            Reader::new(&[0, 5, b'a']).string(),
            Err(DecodeError::InvalidLength {
                what: "string",
                length: 5
            })
        );
        assert_eq!(
            Reader::new(&[0, 2, 0xc3, 0x28]).string(),
            Err(DecodeError::InvalidUtf8)
        );
        assert_eq!(
            Reader::new(&[0]).compact_string(),
            Err(DecodeError::UnexpectedNull {
                what: "compact string"
            })
        );
    }

    #[test]
    fn bytes_classic_and_compact() {
        let mut buf = Vec::new();
        buf.put_sized_bytes(b"abc");
        buf.put_nullable_bytes(None);
        buf.put_compact_bytes(b"xy");
        buf.put_compact_nullable_bytes(None);
        let mut r = Reader::new(&buf);
        assert_eq!(r.bytes(), Ok(&b"abc"[..]));
        assert_eq!(r.nullable_bytes(), Ok(None));
        assert_eq!(r.compact_bytes(), Ok(&b"xy"[..]));
        assert_eq!(r.compact_nullable_bytes(), Ok(None));
        assert!(Reader::new(&[0, 0, 0, 9, 1]).bytes().is_err());
        assert!(Reader::new(&[0x80, 0x80, 0x80, 0x80, 0x0f])
            .compact_bytes()
            .is_err());
    }

    #[test]
    fn arrays_reject_counts_larger_than_input() {
        let mut buf = Vec::new();
        buf.put_array_len(false, 2);
        buf.put_i8(0);
        buf.put_i8(0);
        assert_eq!(Reader::new(&buf).array_len(false), Ok(2));
        assert_eq!(
            Reader::new(&[0x7f, 0xff, 0xff, 0xff]).array_len(false),
            Err(DecodeError::InvalidLength {
                what: "array",
                length: i64::from(i32::MAX)
            })
        );
        assert_eq!(Reader::new(&[0xff; 4]).nullable_array_len(false), Ok(None));
        assert_eq!(Reader::new(&[0]).nullable_array_len(true), Ok(None));
        assert_eq!(Reader::new(&[1]).array_len(true), Ok(0));
        let mut buf = Vec::new();
        buf.put_null_array(true);
        buf.put_null_array(false);
        assert_eq!(buf, [0, 0xff, 0xff, 0xff, 0xff]);
    }

    #[test]
    fn tagged_fields_are_visited_and_skipped() {
        let mut buf = Vec::new();
        buf.put_unsigned_varint(2);
        buf.put_unsigned_varint(0);
        buf.put_unsigned_varint(2);
        buf.put_compact_string("x");
        buf.put_unsigned_varint(7);
        buf.put_unsigned_varint(3);
        buf.put_slice(b"abc");
        buf.put_i8(42);
        let mut seen = Vec::new();
        let mut r = Reader::new(&buf);
        r.tagged_fields(|tag, data| {
            seen.push((tag, data.to_vec()));
            Ok(())
        })
        .expect("valid tagged fields");
        assert_eq!(seen, vec![(0, vec![2, b'x']), (7, b"abc".to_vec())]);
        assert_eq!(r.i8(), Ok(42));

        let mut r = Reader::new(&buf);
        r.skip_tagged_fields().expect("valid tagged fields");
        assert_eq!(r.i8(), Ok(42));

        // A field whose size runs past the end.
        assert!(Reader::new(&[1, 0, 9, 1]).skip_tagged_fields().is_err());
    }

    #[test]
    fn uuid_round_trips() {
        let id = [7u8; 16];
        let mut buf = Vec::new();
        buf.put_uuid(&id);
        assert_eq!(Reader::new(&buf).uuid(), Ok(id));
        assert!(Reader::new(&buf[..15]).uuid().is_err());
    }

    #[test]
    fn random_input_never_panics() {
        let mut rng = Prng::new(0x5eed_0002);
        let mut input = vec![0u8; 64];
        for _ in 0..20_000 {
            rng.fill(&mut input);
            let len = rng.below(input.len() as u64) as usize;
            let mut r = Reader::new(&input[..len]);
            // Any result is fine; the test is that none of these panic.
            let _ = r.compact_nullable_string();
            let _ = r.nullable_string();
            let _ = r.varlong();
            let _ = r.skip_tagged_fields();
            let _ = r.compact_bytes();
            let _ = r.nullable_array_len(rng.below(2) == 0);
        }
    }
}
