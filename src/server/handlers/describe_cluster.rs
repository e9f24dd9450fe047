//! DescribeCluster v0-1: this broker (host and port of its first advertised
//! listener) as the whole cluster and its controller. Only the brokers
//! endpoint type (1) exists here; v1 asking for controllers (2) gets
//! UNSUPPORTED_ENDPOINT_TYPE.

use std::rc::Rc;

use ringtail_protocol::messages::kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use ringtail_protocol::messages::kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse,
};
use ringtail_protocol::ErrorCode;

use super::{decode, respond, str_bytes};
use crate::server::{Header, Response};
use crate::shard::Shard;

/// Kafka's EndpointType.BROKER.
const ENDPOINT_BROKERS: i8 = 1;

pub async fn handle(header: &Header, body: &[u8], shard: &Rc<Shard>) -> Response {
    let request: DescribeClusterRequest = match decode(header, body) {
        Ok(r) => r,
        Err(refusal) => return refusal,
    };
    let config = &shard.shared.config;
    // Before v1 the field is absent and decodes as 1.
    if request.endpoint_type != ENDPOINT_BROKERS {
        let message = format!(
            "endpoint type {} is not supported: this broker serves brokers (1) only",
            request.endpoint_type
        );
        let mut response = DescribeClusterResponse::default()
            .with_error_code(ErrorCode::UnsupportedEndpointType.code())
            .with_error_message(Some(str_bytes(&message)))
            .with_cluster_id(str_bytes(&shard.shared.cluster_id));
        if header.api_version >= 1 {
            response = response.with_endpoint_type(request.endpoint_type);
        }
        return respond(header, &response);
    }
    let view = crate::cluster::view();
    let (brokers, controller) = super::metadata::brokers(config, view.as_deref());
    let brokers = brokers
        .into_iter()
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(b.node_id)
                .with_host(b.host)
                .with_port(b.port)
                .with_rack(b.rack)
        })
        .collect();
    let response = DescribeClusterResponse::default()
        .with_endpoint_type(ENDPOINT_BROKERS)
        .with_cluster_id(str_bytes(&shard.shared.cluster_id))
        .with_controller_id(BrokerId(controller))
        .with_brokers(brokers);
    respond(header, &response)
}
