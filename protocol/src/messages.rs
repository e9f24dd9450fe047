//! Control-plane messages through the `kafka-protocol` crate, and the
//! table of what the broker advertises.
//!
//! The hot paths (Produce, Fetch) have hand-written codecs in
//! [`crate::produce`] and [`crate::fetch`]; everything else is rare enough
//! that the generated codecs' allocations do not matter.
//!
//! # Hostile array counts
//!
//! Upstream kafka-protocol 0.18 sizes a decoded array with
//! `Vec::with_capacity` straight from the wire count, so a 30-byte request
//! claiming two billion elements makes the allocator fail and the process
//! abort. The crate is vendored under `protocol/vendor/kafka-protocol`
//! with the capacity clamped to the bytes left; `RINGTAIL.md` there says
//! what changed and how to upgrade.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::{Decodable, Encodable, Message, Request};
use thiserror::Error;

use crate::api_key::ApiKey;
use crate::error_code::ErrorCode;
use crate::frame;
use crate::header::encode_response_header;
use crate::types::CorrelationId;

pub use kafka_protocol;

/// A version range the broker advertises for one API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiRange {
    pub api_key: ApiKey,
    pub min: i16,
    pub max: i16,
}

const fn range(api_key: ApiKey, min: i16, max: i16) -> ApiRange {
    ApiRange { api_key, min, max }
}

/// Exactly what ApiVersions advertises, in key order. Adding an API is one
/// line here plus its handler.
///
/// Produce starts at v0 as agreed for the broker, although Kafka 4 starts
/// at v3: v0-v2 carry the same fields minus transactional_id, and a client
/// that sends old-format (magic 0/1) records through them gets
/// INVALID_RECORD from batch validation.
pub const SUPPORTED: &[ApiRange] = &[
    range(ApiKey::Produce, 0, 11),
    range(ApiKey::Fetch, 4, 12),
    range(ApiKey::ListOffsets, 1, 7),
    range(ApiKey::Metadata, 0, 12),
    range(ApiKey::OffsetCommit, 2, 8),
    range(ApiKey::OffsetFetch, 1, 8),
    range(ApiKey::FindCoordinator, 0, 4),
    range(ApiKey::JoinGroup, 0, 9),
    range(ApiKey::Heartbeat, 0, 4),
    range(ApiKey::LeaveGroup, 0, 5),
    range(ApiKey::SyncGroup, 0, 5),
    range(ApiKey::DescribeGroups, 0, 5),
    range(ApiKey::ListGroups, 0, 5),
    range(ApiKey::ApiVersions, 0, 4),
    range(ApiKey::CreateTopics, 2, 7),
    range(ApiKey::DeleteTopics, 1, 6),
    range(ApiKey::DeleteRecords, 0, 2),
    range(ApiKey::InitProducerId, 0, 5),
    range(ApiKey::OffsetForLeaderEpoch, 2, 4),
    range(ApiKey::DescribeConfigs, 1, 4),
    range(ApiKey::AlterConfigs, 0, 2),
    range(ApiKey::CreatePartitions, 0, 3),
    range(ApiKey::DeleteGroups, 0, 2),
    range(ApiKey::IncrementalAlterConfigs, 0, 1),
    range(ApiKey::OffsetDelete, 0, 0),
    range(ApiKey::DescribeCluster, 0, 1),
];

/// The advertised range of `api_key`, if the broker serves it.
pub fn supported_range(api_key: ApiKey) -> Option<ApiRange> {
    SUPPORTED.iter().copied().find(|r| r.api_key == api_key)
}

/// Whether the broker serves `version` of `api_key`.
///
/// Kafka closes the connection when a request of any API but ApiVersions
/// comes in a version it does not serve (the request cannot be parsed, so
/// there is no error response to give); ApiVersions gets
/// [`api_versions_reply`].
pub fn is_supported(api_key: ApiKey, version: i16) -> bool {
    supported_range(api_key).is_some_and(|r| (r.min..=r.max).contains(&version))
}

/// Why a control-plane message could not be decoded or encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MessageError {
    #[error("{api_key} v{version} is not supported")]
    UnsupportedVersion { api_key: i16, version: i16 },
    #[error("malformed {api_key} v{version} request: {reason}")]
    Malformed {
        api_key: i16,
        version: i16,
        reason: String,
    },
    /// A response that the generated encoder refuses, e.g. a field set
    /// that the version lacks: a bug in the handler.
    #[error("cannot encode v{version} response: {reason}")]
    Encode { version: i16, reason: String },
}

fn check_message_version<M: Message>(api_key: i16, version: i16) -> Result<(), MessageError> {
    if (M::VERSIONS.min..=M::VERSIONS.max).contains(&version) {
        Ok(())
    } else {
        Err(MessageError::UnsupportedVersion { api_key, version })
    }
}

/// Decodes a request body (after the header) of `version`.
///
/// Trailing bytes after the message are ignored, as Kafka does.
pub fn decode_request<T: Request>(version: i16, body: &[u8]) -> Result<T, MessageError> {
    check_message_version::<T>(T::KEY, version)?;
    let malformed = |reason: String| MessageError::Malformed {
        api_key: T::KEY,
        version,
        reason,
    };
    let mut buf = Bytes::copy_from_slice(body);
    T::decode(&mut buf, version).map_err(|e| malformed(e.to_string()))
}

/// Encodes a response body of `version` (no size prefix, no header).
pub fn encode_response<R: Encodable + Message>(
    version: i16,
    response: &R,
    buf: &mut BytesMut,
) -> Result<(), MessageError> {
    if !(R::VERSIONS.min..=R::VERSIONS.max).contains(&version) {
        return Err(MessageError::Encode {
            version,
            reason: "version outside the message's range".to_owned(),
        });
    }
    let start = buf.len();
    response.encode(buf, version).map_err(|e| {
        buf.truncate(start);
        MessageError::Encode {
            version,
            reason: e.to_string(),
        }
    })
}

/// Encodes a whole response frame: size prefix, the header version that
/// `api_key` and `version` call for, and the body. On error `buf` is left
/// as it was.
pub fn encode_response_frame<R: Encodable + Message>(
    api_key: ApiKey,
    version: i16,
    correlation_id: CorrelationId,
    response: &R,
    buf: &mut BytesMut,
) -> Result<(), MessageError> {
    let start = frame::begin(buf);
    encode_response_header(
        buf,
        correlation_id,
        api_key.response_header_version(version),
    );
    match encode_response(version, response, buf) {
        Ok(()) => {
            frame::finish(buf, start);
            Ok(())
        }
        Err(e) => {
            buf.truncate(start);
            Err(e)
        }
    }
}

/// Client side, for the admin CLI, console tools and the perf load
/// generator: encodes a whole request frame (size prefix, the header
/// version the API calls for, body).
pub fn encode_request_frame<T: Request>(
    version: i16,
    correlation_id: CorrelationId,
    client_id: Option<&str>,
    request: &T,
    buf: &mut BytesMut,
) -> Result<(), MessageError> {
    let api_key = ApiKey::from_key(T::KEY).ok_or(MessageError::UnsupportedVersion {
        api_key: T::KEY,
        version,
    })?;
    if !(T::VERSIONS.min..=T::VERSIONS.max).contains(&version) {
        return Err(MessageError::UnsupportedVersion {
            api_key: T::KEY,
            version,
        });
    }
    let start = frame::begin(buf);
    let header = crate::header::RequestHeader {
        api_key,
        api_version: version,
        correlation_id,
        client_id,
    };
    header.encode(api_key.request_header_version(version), buf);
    if let Err(e) = request.encode(buf, version) {
        buf.truncate(start);
        return Err(MessageError::Encode {
            version,
            reason: e.to_string(),
        });
    }
    frame::finish(buf, start);
    Ok(())
}

/// Client side: splits a response frame body (after the size prefix) into
/// its correlation id and the response body, for `api_key`/`version`.
pub fn parse_response_header(
    api_key: ApiKey,
    version: i16,
    frame_body: &[u8],
) -> Result<(CorrelationId, &[u8]), crate::wire::DecodeError> {
    let mut r = crate::wire::Reader::new(frame_body);
    let correlation_id = CorrelationId(r.i32()?);
    if api_key.response_header_version(version) >= 1 {
        r.skip_tagged_fields()?;
    }
    Ok((correlation_id, r.rest()))
}

/// Client side: decodes a response body of `version`.
pub fn decode_response<R: Decodable + Message>(
    api_key: ApiKey,
    version: i16,
    body: &[u8],
) -> Result<R, MessageError> {
    check_message_version::<R>(api_key.key(), version)?;
    let mut buf = Bytes::copy_from_slice(body);
    R::decode(&mut buf, version).map_err(|e| MessageError::Malformed {
        api_key: api_key.key(),
        version,
        reason: e.to_string(),
    })
}

/// The ApiVersions answer and the version to encode it with.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiVersionsReply {
    pub version: i16,
    pub response: ApiVersionsResponse,
}

impl ApiVersionsReply {
    /// Encodes the frame; the header is v0 whatever the version.
    pub fn encode_frame(&self, correlation_id: CorrelationId, buf: &mut BytesMut) {
        encode_response_frame(
            ApiKey::ApiVersions,
            self.version,
            correlation_id,
            &self.response,
            buf,
        )
        .expect("ApiVersions responses built here are encodable in their version");
    }
}

fn api_version(r: &ApiRange) -> ApiVersion {
    ApiVersion::default()
        .with_api_key(r.api_key.key())
        .with_min_version(r.min)
        .with_max_version(r.max)
}

/// Builds the answer to an ApiVersions request of `request_version`,
/// with Kafka's rules:
///
/// - A version newer than the broker's is not parsed; the answer is v0
///   with UNSUPPORTED_VERSION, listing only ApiVersions' own range (as
///   Kafka's `ApiVersionsRequest.getErrorResponse` does since KIP-511), so
///   the client retries with the highest version both sides know.
/// - Otherwise the answer lists [`SUPPORTED`] in the request's version.
///
/// For a parsed v3+ request, check it with
/// [`validate_api_versions_request`] first.
pub fn api_versions_reply(request_version: i16) -> ApiVersionsReply {
    let own = supported_range(ApiKey::ApiVersions).expect("ApiVersions is always supported");
    if !(own.min..=own.max).contains(&request_version) {
        return ApiVersionsReply {
            version: 0,
            response: ApiVersionsResponse::default()
                .with_error_code(ErrorCode::UnsupportedVersion.code())
                .with_api_keys(vec![api_version(&own)]),
        };
    }
    ApiVersionsReply {
        version: request_version,
        response: ApiVersionsResponse::default()
            .with_error_code(ErrorCode::None.code())
            .with_api_keys(SUPPORTED.iter().map(api_version).collect()),
    }
}

/// Kafka refuses (INVALID_REQUEST) a v3+ ApiVersions whose client software
/// name or version does not match `[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?`.
pub fn validate_api_versions_request(
    request: &ApiVersionsRequest,
    version: i16,
) -> Result<(), ErrorCode> {
    if version < 3 {
        return Ok(());
    }
    let valid = |s: &str| {
        let bytes = s.as_bytes();
        let edge_ok = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
        edge_ok(bytes.first())
            && edge_ok(bytes.last())
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'.')
    };
    if valid(&request.client_software_name) && valid(&request.client_software_version) {
        Ok(())
    } else {
        Err(ErrorCode::InvalidRequest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::RequestHeader;
    use crate::testkit::Prng;
    use bytes::BufMut;
    use kafka_protocol::messages::{
        AlterConfigsRequest, CreatePartitionsRequest, CreateTopicsRequest, DeleteRecordsRequest,
        DeleteTopicsRequest, DescribeClusterRequest, DescribeConfigsRequest,
        IncrementalAlterConfigsRequest, InitProducerIdRequest, ListOffsetsRequest, MetadataRequest,
        MetadataResponse, TopicName,
    };
    use kafka_protocol::protocol::{HeaderVersion, StrBytes};

    #[test]
    fn supported_table_is_what_the_broker_advertises() {
        // The agreed data-plane and admin ranges. Other APIs (the group
        // APIs) join the table with one line each, so they are not pinned
        // here.
        let required: &[(ApiKey, i16, i16)] = &[
            (ApiKey::Produce, 0, 11),
            (ApiKey::Fetch, 4, 12),
            (ApiKey::ListOffsets, 1, 7),
            (ApiKey::Metadata, 0, 12),
            (ApiKey::ApiVersions, 0, 4),
            (ApiKey::CreateTopics, 2, 7),
            (ApiKey::DeleteTopics, 1, 6),
            (ApiKey::DeleteRecords, 0, 2),
            (ApiKey::InitProducerId, 0, 5),
            (ApiKey::DescribeConfigs, 1, 4),
            (ApiKey::AlterConfigs, 0, 2),
            (ApiKey::CreatePartitions, 0, 3),
            (ApiKey::IncrementalAlterConfigs, 0, 1),
            (ApiKey::DescribeCluster, 0, 1),
        ];
        for &(api_key, min, max) in required {
            assert_eq!(
                supported_range(api_key),
                Some(ApiRange { api_key, min, max }),
                "{api_key}"
            );
        }
        // Sorted by key, so each key appears once and ApiVersions lists
        // them in order.
        assert!(SUPPORTED.windows(2).all(|w| w[0].api_key < w[1].api_key));
        assert!(SUPPORTED.iter().all(|r| r.min <= r.max));
        assert!(is_supported(ApiKey::Fetch, 12));
        assert!(!is_supported(ApiKey::Fetch, 3));
        assert!(!is_supported(ApiKey::Envelope, 0));
    }

    /// Every advertised control-plane version must be decodable by the
    /// generated code (Produce and Fetch have their own codecs). Keyed by
    /// number, so adding an API to the table needs no change here.
    #[test]
    fn generated_codecs_cover_every_advertised_version() {
        for r in SUPPORTED {
            if matches!(r.api_key, ApiKey::Produce | ApiKey::Fetch) {
                continue;
            }
            let oracle = kafka_protocol::messages::ApiKey::try_from(r.api_key.key())
                .unwrap_or_else(|_| panic!("kafka-protocol lacks {}", r.api_key));
            let known = oracle.valid_versions();
            assert!(
                known.min <= r.min && r.max <= known.max,
                "{} advertises {}..={} but the codec knows {known}",
                r.api_key,
                r.min,
                r.max
            );
        }
    }

    #[test]
    fn typed_decode_checks_the_message_type_range() {
        fn assert_range<T: Request>(min: i16, max: i16) {
            assert!(T::VERSIONS.min <= min && max <= T::VERSIONS.max);
        }
        assert_range::<ListOffsetsRequest>(1, 7);
        assert_range::<CreateTopicsRequest>(2, 7);
        assert_range::<DeleteTopicsRequest>(1, 6);
        assert_range::<DeleteRecordsRequest>(0, 2);
        assert_range::<InitProducerIdRequest>(0, 5);
        assert_range::<DescribeConfigsRequest>(1, 4);
        assert_range::<AlterConfigsRequest>(0, 2);
        assert_range::<CreatePartitionsRequest>(0, 3);
        assert_range::<IncrementalAlterConfigsRequest>(0, 1);
        assert_range::<DescribeClusterRequest>(0, 1);
    }

    fn metadata_request() -> MetadataRequest {
        MetadataRequest::default()
            .with_topics(Some(vec![
                kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str("orders")))),
            ]))
            .with_allow_auto_topic_creation(true)
    }

    #[test]
    fn decodes_every_metadata_version_through_a_real_frame() {
        let request = metadata_request();
        for version in 0..=12i16 {
            let mut body = BytesMut::new();
            let header = RequestHeader {
                api_key: ApiKey::Metadata,
                api_version: version,
                correlation_id: CorrelationId(5),
                client_id: Some("test"),
            };
            header.encode(MetadataRequest::header_version(version), &mut body);
            let mut request = request.clone();
            if version < 4 {
                // v0-3 have no allow_auto_topic_creation (always true).
                request.allow_auto_topic_creation = true;
            }
            request.encode(&mut body, version).expect("oracle encodes");
            let (parsed, rest) = RequestHeader::parse(&body).expect("valid header");
            assert_eq!(parsed, header);
            let decoded: MetadataRequest =
                decode_request(version, rest).unwrap_or_else(|e| panic!("v{version}: {e}"));
            assert_eq!(decoded, request, "v{version}");
        }
    }

    #[test]
    fn truncations_and_corruption_are_errors_not_panics() {
        let request = metadata_request();
        let mut rng = Prng::new(0x5eed_0501);
        for version in [0i16, 9, 12] {
            let mut full = BytesMut::new();
            request.encode(&mut full, version).expect("oracle encodes");
            for len in 0..full.len() {
                assert!(
                    decode_request::<MetadataRequest>(version, &full[..len]).is_err(),
                    "v{version} len {len}"
                );
            }
            for _ in 0..2_000 {
                let mut damaged = full.to_vec();
                let at = rng.below(damaged.len() as u64) as usize;
                damaged[at] = rng.next_u64() as u8;
                let _ = decode_request::<MetadataRequest>(version, &damaged);
            }
        }
    }

    /// Would abort the process without the vendored patch: the
    /// allocator cannot serve 2^31 topic structs.
    #[test]
    fn hostile_array_counts_do_not_abort() {
        let mut body = Vec::new();
        body.put_i32(i32::MAX);
        body.put_slice(&[0; 8]);
        assert!(matches!(
            decode_request::<MetadataRequest>(1, &body),
            Err(MessageError::Malformed { api_key: 3, .. })
        ));
        let mut compact = Vec::new();
        compact.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        compact.put_slice(&[0; 8]);
        assert!(decode_request::<MetadataRequest>(12, &compact).is_err());
        let mut create = Vec::new();
        create.put_i32(1);
        create.put_i16(1);
        create.put_u8(b'x');
        create.put_i32(1);
        create.put_i16(1);
        create.put_i32(i32::MAX);
        assert!(decode_request::<CreateTopicsRequest>(2, &create).is_err());
    }

    /// Every control-plane request type, every advertised version: random
    /// bytes and damaged valid encodings decode to errors or values, never
    /// to a panic or an abort.
    #[test]
    fn every_control_plane_request_survives_damage() {
        fn fuzz<T: Request + Default>(rng: &mut Prng) {
            let range =
                supported_range(ApiKey::from_key(T::KEY).expect("known key")).expect("advertised");
            for version in range.min..=range.max {
                let mut valid = BytesMut::new();
                T::default()
                    .encode(&mut valid, version)
                    .expect("default request encodes");
                assert!(
                    decode_request::<T>(version, &valid).is_ok(),
                    "key {} v{version}",
                    T::KEY
                );
                for _ in 0..300 {
                    let mut damaged = valid.to_vec();
                    damaged.extend_from_slice(&rng.bytes(16));
                    for _ in 0..1 + rng.below(3) {
                        if damaged.is_empty() {
                            break;
                        }
                        let at = rng.below(damaged.len() as u64) as usize;
                        damaged[at] = rng.next_u64() as u8;
                    }
                    let _ = decode_request::<T>(version, &damaged);
                    let _ = decode_request::<T>(version, &rng.bytes(40));
                }
            }
        }
        let mut rng = Prng::new(0x5eed_0502);
        fuzz::<MetadataRequest>(&mut rng);
        fuzz::<ListOffsetsRequest>(&mut rng);
        fuzz::<ApiVersionsRequest>(&mut rng);
        fuzz::<CreateTopicsRequest>(&mut rng);
        fuzz::<DeleteTopicsRequest>(&mut rng);
        fuzz::<DeleteRecordsRequest>(&mut rng);
        fuzz::<InitProducerIdRequest>(&mut rng);
        fuzz::<DescribeConfigsRequest>(&mut rng);
        fuzz::<AlterConfigsRequest>(&mut rng);
        fuzz::<CreatePartitionsRequest>(&mut rng);
        fuzz::<IncrementalAlterConfigsRequest>(&mut rng);
        fuzz::<DescribeClusterRequest>(&mut rng);
    }

    #[test]
    fn unsupported_versions_are_refused_before_decoding() {
        assert_eq!(
            decode_request::<MetadataRequest>(99, &[]),
            Err(MessageError::UnsupportedVersion {
                api_key: 3,
                version: 99
            })
        );
        let mut buf = BytesMut::new();
        assert!(encode_response(99, &MetadataResponse::default(), &mut buf).is_err());
        assert!(buf.is_empty());
    }

    #[test]
    fn response_frame_uses_the_right_header() {
        let mut buf = BytesMut::new();
        encode_response_frame(
            ApiKey::Metadata,
            12,
            CorrelationId(9),
            &MetadataResponse::default(),
            &mut buf,
        )
        .expect("encodes");
        assert_eq!(&buf[4..8], &9i32.to_be_bytes());
        assert_eq!(buf[8], 0, "v1 response header carries empty tags");
        let mut oracle = BytesMut::new();
        MetadataResponse::default()
            .encode(&mut oracle, 12)
            .expect("oracle encodes");
        assert_eq!(&buf[9..], &oracle[..]);
        assert_eq!(frame::check(&buf, usize::MAX), Ok(Some(buf.len())));
    }

    fn decode_api_versions(frame: &[u8], version: i16) -> ApiVersionsResponse {
        assert_eq!(frame::check(frame, usize::MAX), Ok(Some(frame.len())));
        let mut body = Bytes::copy_from_slice(&frame[8..]);
        ApiVersionsResponse::decode(&mut body, version).expect("oracle decodes")
    }

    #[test]
    fn api_versions_lists_the_table_in_the_request_version() {
        for version in 0..=4 {
            let reply = api_versions_reply(version);
            assert_eq!(reply.version, version);
            let mut buf = BytesMut::new();
            reply.encode_frame(CorrelationId(1), &mut buf);
            // Header v0: the correlation id and nothing else, even for v3+.
            assert_eq!(&buf[4..8], &1i32.to_be_bytes());
            let decoded = decode_api_versions(&buf, version);
            assert_eq!(decoded.error_code, 0);
            assert_eq!(decoded.api_keys.len(), SUPPORTED.len());
            let produce = &decoded.api_keys[0];
            assert_eq!(
                (produce.api_key, produce.min_version, produce.max_version),
                (0, 0, 11)
            );
        }
    }

    #[test]
    fn api_versions_too_new_gets_a_v0_unsupported_version_answer() {
        let reply = api_versions_reply(5);
        assert_eq!(reply.version, 0);
        let mut buf = BytesMut::new();
        reply.encode_frame(CorrelationId(77), &mut buf);
        let decoded = decode_api_versions(&buf, 0);
        assert_eq!(decoded.error_code, ErrorCode::UnsupportedVersion.code());
        assert_eq!(decoded.api_keys.len(), 1);
        let own = &decoded.api_keys[0];
        assert_eq!((own.api_key, own.min_version, own.max_version), (18, 0, 4));
        // What a client parsing it as v0 sees, byte for byte.
        let expected: &[u8] = &[
            0, 0, 0, 16, // size
            0, 0, 0, 77, // correlation id
            0, 35, // UNSUPPORTED_VERSION
            0, 0, 0, 1, // one api key
            0, 18, 0, 0, 0, 4, // ApiVersions 0..=4
        ];
        assert_eq!(&buf[..], expected);
    }

    /// What the admin CLI does: encode a request frame, let the broker
    /// side parse it, answer, and read the answer back.
    #[test]
    fn client_side_round_trip() {
        let mut request_frame = BytesMut::new();
        encode_request_frame(
            12,
            CorrelationId(41),
            Some("ringtail-admin"),
            &metadata_request(),
            &mut request_frame,
        )
        .expect("encodes");
        let n = frame::check(&request_frame, 1 << 20)
            .expect("valid size")
            .expect("complete");
        let (header, body) = RequestHeader::parse(frame::body(&request_frame[..n])).expect("valid");
        assert_eq!(header.client_id, Some("ringtail-admin"));
        let decoded: MetadataRequest = decode_request(header.api_version, body).expect("valid");
        assert_eq!(decoded, metadata_request());

        let response =
            MetadataResponse::default().with_cluster_id(Some(StrBytes::from_static_str("c1")));
        let mut response_frame = BytesMut::new();
        encode_response_frame(
            ApiKey::Metadata,
            12,
            header.correlation_id,
            &response,
            &mut response_frame,
        )
        .expect("encodes");
        let (correlation, body) =
            parse_response_header(ApiKey::Metadata, 12, frame::body(&response_frame))
                .expect("valid");
        assert_eq!(correlation, CorrelationId(41));
        let back: MetadataResponse = decode_response(ApiKey::Metadata, 12, body).expect("valid");
        assert_eq!(back, response);
        assert!(decode_response::<MetadataResponse>(ApiKey::Metadata, 12, &body[..3]).is_err());
    }

    #[test]
    fn api_versions_client_software_rules() {
        let ok = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("librdkafka"))
            .with_client_software_version(StrBytes::from_static_str("2.3.0"));
        assert_eq!(validate_api_versions_request(&ok, 3), Ok(()));
        for bad in ["", "-rdkafka", "rd kafka", "x."] {
            let request = ok
                .clone()
                .with_client_software_version(StrBytes::from_string(bad.to_owned()));
            assert_eq!(
                validate_api_versions_request(&request, 3),
                Err(ErrorCode::InvalidRequest),
                "{bad:?}"
            );
            assert_eq!(validate_api_versions_request(&request, 2), Ok(()));
        }
    }
}
