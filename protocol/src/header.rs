//! Request header parsing (v0, v1, v2) and response header encoding (v0,
//! v1).
//!
//! The header version is not on the wire; it follows from the API key and
//! version, see [`ApiKey::request_header_version`].

use bytes::{BufMut, BytesMut};
use thiserror::Error;

use crate::api_key::ApiKey;
use crate::frame;
use crate::types::CorrelationId;
use crate::wire::{DecodeError, Reader, WireWrite};

/// A parsed request header. `client_id` borrows from the request frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader<'a> {
    pub api_key: ApiKey,
    pub api_version: i16,
    pub correlation_id: CorrelationId,
    pub client_id: Option<&'a str>,
}

/// Why a request header could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HeaderError {
    /// Kafka closes the connection on an unknown key; the correlation id is
    /// kept so the close can be logged against the request.
    #[error("unknown api key {api_key} (correlation id {correlation_id})")]
    UnknownApiKey {
        api_key: i16,
        correlation_id: CorrelationId,
    },
    #[error("malformed request header: {0}")]
    Decode(#[from] DecodeError),
}

impl<'a> RequestHeader<'a> {
    /// Parses the header at the start of a frame body (the bytes after the
    /// size prefix) and returns it with the request body that follows.
    pub fn parse(frame_body: &'a [u8]) -> Result<(Self, &'a [u8]), HeaderError> {
        Self::parse_with(frame_body, |key, version| {
            key.request_header_version(version)
        })
    }

    /// Parses a header of an explicit version (0, 1 or 2); for tools and
    /// tests that know the version from elsewhere.
    pub fn parse_versioned(
        frame_body: &'a [u8],
        header_version: i16,
    ) -> Result<(Self, &'a [u8]), HeaderError> {
        Self::parse_with(frame_body, |_, _| header_version)
    }

    fn parse_with(
        frame_body: &'a [u8],
        header_version: impl FnOnce(ApiKey, i16) -> i16,
    ) -> Result<(Self, &'a [u8]), HeaderError> {
        let mut r = Reader::new(frame_body);
        let raw_key = r.i16()?;
        let api_version = r.i16()?;
        let correlation_id = CorrelationId(r.i32()?);
        let api_key = ApiKey::from_key(raw_key).ok_or(HeaderError::UnknownApiKey {
            api_key: raw_key,
            correlation_id,
        })?;
        let client_id = Self::parse_rest(&mut r, header_version(api_key, api_version))?;
        let header = RequestHeader {
            api_key,
            api_version,
            correlation_id,
            client_id,
        };
        Ok((header, r.rest()))
    }

    fn parse_rest(r: &mut Reader<'a>, header_version: i16) -> Result<Option<&'a str>, DecodeError> {
        if header_version == 0 {
            return Ok(None);
        }
        // The client id stays a classic NULLABLE_STRING in header v2: the
        // field predates flexible versions and Kafka kept its encoding so
        // that a broker can read it before knowing the API's rules.
        let client_id = r.nullable_string()?;
        if header_version >= 2 {
            r.skip_tagged_fields()?;
        }
        Ok(client_id)
    }

    /// Whether the request body uses the flexible encoding.
    pub fn is_flexible(&self) -> bool {
        self.api_key.is_flexible(self.api_version)
    }

    /// Encodes this header as `header_version` (for clients, tools and
    /// tests).
    pub fn encode(&self, header_version: i16, buf: &mut impl BufMut) {
        buf.put_i16(self.api_key.key());
        buf.put_i16(self.api_version);
        buf.put_i32(self.correlation_id.0);
        if header_version >= 1 {
            buf.put_nullable_string(self.client_id);
        }
        buf.put_empty_tagged_fields(header_version >= 2);
    }
}

/// Writes a response header: v0 is the correlation id, v1 adds an empty
/// tagged-field section.
pub fn encode_response_header(
    buf: &mut impl BufMut,
    correlation_id: CorrelationId,
    header_version: i16,
) {
    debug_assert!(header_version == 0 || header_version == 1);
    buf.put_i32(correlation_id.0);
    buf.put_empty_tagged_fields(header_version >= 1);
}

/// Writes a whole response frame: size prefix, the header version that
/// `api_key`/`api_version` call for, and the body that `body` writes.
pub fn write_response_frame(
    buf: &mut BytesMut,
    api_key: ApiKey,
    api_version: i16,
    correlation_id: CorrelationId,
    body: impl FnOnce(&mut BytesMut),
) {
    let start = frame::begin(buf);
    encode_response_header(
        buf,
        correlation_id,
        api_key.response_header_version(api_version),
    );
    body(buf);
    frame::finish(buf, start);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Prng;
    use bytes::Bytes;
    use kafka_protocol::messages::{RequestHeader as OracleHeader, ResponseHeader};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn oracle_bytes(
        key: ApiKey,
        version: i16,
        correlation: i32,
        client_id: Option<&str>,
        header_version: i16,
    ) -> Vec<u8> {
        let header = OracleHeader::default()
            .with_request_api_key(key.key())
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(client_id.map(|s| StrBytes::from_string(s.to_owned())));
        let mut buf = bytes::BytesMut::new();
        header
            .encode(&mut buf, header_version)
            .expect("oracle encodes");
        buf.to_vec()
    }

    #[test]
    fn parses_v1_and_v2_headers_like_kafka_writes_them() {
        let mut rng = Prng::new(0x5eed_0101);
        for _ in 0..2_000 {
            let key = ApiKey::ALL[rng.below(ApiKey::ALL.len() as u64) as usize];
            let version = rng.below(14) as i16;
            let correlation = rng.next_u64() as i32;
            let client = rng.name(20);
            let client_id = rng.chance(1, 4).then_some(client.as_str());
            let header_version = key.request_header_version(version);
            let mut bytes = oracle_bytes(key, version, correlation, client_id, header_version);
            bytes.extend_from_slice(b"BODY");
            let (header, body) =
                RequestHeader::parse(&bytes).unwrap_or_else(|e| panic!("seed {}: {e}", rng.seed()));
            assert_eq!(header.api_key, key);
            assert_eq!(header.api_version, version);
            assert_eq!(header.correlation_id, CorrelationId(correlation));
            assert_eq!(header.client_id, client_id, "seed {}", rng.seed());
            assert_eq!(body, b"BODY");

            let mut ours = Vec::new();
            header.encode(header_version, &mut ours);
            assert_eq!(ours, &bytes[..bytes.len() - 4], "seed {}", rng.seed());
        }
    }

    #[test]
    fn v2_header_skips_unknown_tagged_fields() {
        let mut bytes = Vec::new();
        bytes.put_i16(ApiKey::Metadata.key());
        bytes.put_i16(12);
        bytes.put_i32(7);
        bytes.put_nullable_string(Some("rdkafka"));
        bytes.put_unsigned_varint(1);
        bytes.put_unsigned_varint(5);
        bytes.put_unsigned_varint(2);
        bytes.put_slice(b"zz");
        bytes.put_u8(0x99);
        let (header, body) = RequestHeader::parse(&bytes).expect("valid header");
        assert_eq!(header.client_id, Some("rdkafka"));
        assert!(header.is_flexible());
        assert_eq!(body, &[0x99]);
    }

    #[test]
    fn v0_header_has_no_client_id() {
        let bytes = [0, 7, 0, 0, 0, 0, 0, 9, 0xee];
        let (header, body) = RequestHeader::parse_versioned(&bytes, 0).expect("valid header");
        assert_eq!(header.api_key, ApiKey::ControlledShutdown);
        assert_eq!(header.correlation_id, CorrelationId(9));
        assert_eq!(header.client_id, None);
        assert_eq!(body, &[0xee]);
    }

    #[test]
    fn unknown_key_keeps_the_correlation_id() {
        let bytes = [0x7f, 0, 0, 0, 0, 0, 0, 5];
        assert_eq!(
            RequestHeader::parse(&bytes),
            Err(HeaderError::UnknownApiKey {
                api_key: 0x7f00,
                correlation_id: CorrelationId(5)
            })
        );
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = oracle_bytes(ApiKey::Fetch, 12, 1, Some("client"), 2);
        for len in 0..bytes.len() {
            assert!(RequestHeader::parse(&bytes[..len]).is_err(), "len {len}");
        }
    }

    #[test]
    fn random_damage_never_panics() {
        let good = oracle_bytes(ApiKey::Produce, 9, 1, Some("producer-1"), 2);
        let mut rng = Prng::new(0x5eed_0102);
        for _ in 0..20_000 {
            let mut bytes = good.clone();
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(bytes.len() as u64) as usize;
                bytes[at] = rng.next_u64() as u8;
            }
            let _ = RequestHeader::parse(&bytes);
        }
    }

    #[test]
    fn response_headers_match_kafka_protocol() {
        for header_version in [0, 1] {
            let mut oracle = bytes::BytesMut::new();
            ResponseHeader::default()
                .with_correlation_id(-77)
                .encode(&mut oracle, header_version)
                .expect("oracle encodes");
            let mut ours = Vec::new();
            encode_response_header(&mut ours, CorrelationId(-77), header_version);
            assert_eq!(ours, oracle.to_vec());
        }
    }

    #[test]
    fn response_frame_carries_size_and_header() {
        let mut buf = BytesMut::new();
        write_response_frame(&mut buf, ApiKey::Metadata, 12, CorrelationId(3), |b| {
            b.put_slice(b"xy")
        });
        assert_eq!(
            buf.freeze(),
            Bytes::from_static(&[0, 0, 0, 7, 0, 0, 0, 3, 0, b'x', b'y'])
        );
        let mut buf = BytesMut::new();
        write_response_frame(&mut buf, ApiKey::ApiVersions, 3, CorrelationId(3), |_| {});
        assert_eq!(&buf[..], &[0, 0, 0, 4, 0, 0, 0, 3]);
    }
}
