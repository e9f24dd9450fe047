//! ApiVersions v0-4, with Kafka's rules for versions newer than ours: the
//! answer is v0 with UNSUPPORTED_VERSION and our range, header always v0.

use bytes::BytesMut;
use ringtail_protocol::messages::kafka_protocol::messages::ApiVersionsRequest;
use ringtail_protocol::messages::{
    self, api_versions_reply, supported_range, validate_api_versions_request,
};
use ringtail_protocol::ApiKey;

use crate::server::{Header, Response};

pub fn handle(header: &Header, body: &[u8]) -> Response {
    let own = supported_range(ApiKey::ApiVersions).expect("ApiVersions is supported");
    let mut reply = api_versions_reply(header.api_version);
    if header.api_version <= own.max {
        match messages::decode_request::<ApiVersionsRequest>(header.api_version, body) {
            Ok(request) => {
                if let Err(code) = validate_api_versions_request(&request, header.api_version) {
                    reply.response.error_code = code.code();
                }
            }
            Err(e) => return Response::Close(e.to_string()),
        }
    }
    let mut buf = BytesMut::new();
    reply.encode_frame(header.correlation_id, &mut buf);
    Response::Frame(buf)
}
