//! Metadata v0-12: brokers, controller, topics with ids, partitions with
//! leader, replicas and ISR. Unknown topics are auto-created when the
//! request allows it (v4+ flag; always before v4) and the broker does.

use std::rc::Rc;
use std::sync::Arc;

use ringtail_protocol::messages::kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use ringtail_protocol::messages::kafka_protocol::messages::{
    BrokerId, MetadataRequest, MetadataResponse, TopicName,
};
use ringtail_protocol::ErrorCode;

use super::{decode, respond, str_bytes, topic_or_create, uuid};
use crate::controller::view::ClusterView;
use crate::metadata::TopicMeta;
use crate::server::{Header, Response};
use crate::shard::Shard;

/// Kafka's "authorized operations were not requested" marker.
const OPERATIONS_UNKNOWN: i32 = i32::MIN;

pub async fn handle(header: &Header, body: &[u8], shard: &Rc<Shard>) -> Response {
    let request: MetadataRequest = match decode(header, body) {
        Ok(r) => r,
        Err(refusal) => return refusal,
    };
    let config = &shard.shared.config;
    let view = crate::cluster::view();
    let view = view.as_deref();
    let allow_create = header.api_version < 4 || request.allow_auto_topic_creation;
    let snapshot = shard.shared.metadata.snapshot();
    let mut topics = Vec::new();
    match &request.topics {
        None => {
            for t in snapshot.topics.values() {
                topics.push(describe(t, config.broker_id, view));
            }
        }
        Some(wanted) => {
            for w in wanted {
                let name = match (&w.name, snapshot.topic_by_id(w.topic_id.as_bytes())) {
                    (Some(name), _) => name.to_string(),
                    (None, Some(t)) => t.name.clone(),
                    (None, None) => {
                        topics.push(
                            MetadataResponseTopic::default()
                                .with_error_code(ErrorCode::UnknownTopicId.code())
                                .with_topic_id(w.topic_id)
                                .with_topic_authorized_operations(OPERATIONS_UNKNOWN),
                        );
                        continue;
                    }
                };
                match topic_or_create(shard, &name, allow_create).await {
                    Ok(t) => topics.push(describe(&t, config.broker_id, view)),
                    Err(code) => topics.push(
                        MetadataResponseTopic::default()
                            .with_error_code(code.code())
                            .with_name(Some(TopicName(str_bytes(&name))))
                            .with_topic_authorized_operations(OPERATIONS_UNKNOWN),
                    ),
                }
            }
        }
    }
    let (brokers, controller) = brokers(config, view);
    let response = MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(str_bytes(&shard.shared.cluster_id)))
        .with_controller_id(BrokerId(controller))
        .with_topics(topics)
        .with_cluster_authorized_operations(OPERATIONS_UNKNOWN);
    respond(header, &response)
}

/// The live brokers (registered in the tree) and the controller; this
/// broker alone until the tree answers.
pub fn brokers(
    config: &crate::config::BrokerConfig,
    view: Option<&ClusterView>,
) -> (Vec<MetadataResponseBroker>, i32) {
    let advertised = config.advertised();
    let me = MetadataResponseBroker::default()
        .with_node_id(BrokerId(config.broker_id))
        .with_host(str_bytes(&advertised.host))
        .with_port(i32::from(advertised.port))
        .with_rack(config.broker_rack.as_deref().map(str_bytes));
    let Some(view) = view.filter(|v| v.brokers.contains_key(&config.broker_id)) else {
        return (vec![me], config.broker_id);
    };
    let brokers = view
        .brokers
        .values()
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.id))
                .with_host(str_bytes(&b.host))
                .with_port(i32::from(b.port))
                .with_rack(b.rack.as_deref().map(str_bytes))
        })
        .collect();
    (brokers, view.controller.unwrap_or(-1))
}

fn ids(v: &[i32]) -> Vec<BrokerId> {
    v.iter().map(|&i| BrokerId(i)).collect()
}

fn describe(
    topic: &Arc<TopicMeta>,
    broker_id: i32,
    view: Option<&ClusterView>,
) -> MetadataResponseTopic {
    let states = view.and_then(|v| v.topics.get(&topic.name));
    let partitions = (0..topic.partitions)
        .map(|index| {
            let answer = MetadataResponsePartition::default().with_partition_index(index);
            match states.and_then(|t| t.partitions.get(index as usize)) {
                Some(p) => {
                    let live = |id: &i32| view.is_some_and(|v| v.brokers.contains_key(id));
                    let error = if p.leader < 0 || !live(&p.leader) {
                        ErrorCode::LeaderNotAvailable.code()
                    } else {
                        0
                    };
                    answer
                        .with_error_code(error)
                        .with_leader_id(BrokerId(if error == 0 { p.leader } else { -1 }))
                        .with_leader_epoch(p.leader_epoch)
                        .with_replica_nodes(ids(&p.replicas))
                        .with_isr_nodes(ids(&p.isr))
                        .with_offline_replicas(ids(&p
                            .replicas
                            .iter()
                            .copied()
                            .filter(|r| !live(r))
                            .collect::<Vec<_>>()))
                }
                None => answer
                    .with_leader_id(BrokerId(broker_id))
                    .with_leader_epoch(0)
                    .with_replica_nodes(vec![BrokerId(broker_id)])
                    .with_isr_nodes(vec![BrokerId(broker_id)]),
            }
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(&topic.name))))
        .with_topic_id(uuid(&topic.id))
        .with_is_internal(topic.name.starts_with("__"))
        .with_partitions(partitions)
        .with_topic_authorized_operations(OPERATIONS_UNKNOWN)
}
