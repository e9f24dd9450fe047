//! CreateTopics v2-7: name checks, partition count and replication factor
//! (-1 means the broker defaults, v4+), topic configs, `validate_only`.
//! Manual replica assignments need a cluster and are refused.

use std::collections::BTreeMap;
use std::rc::Rc;

use ringtail_protocol::messages::kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use ringtail_protocol::messages::kafka_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse,
};
use ringtail_protocol::ErrorCode;

use super::{decode, meta_error_code, open_partitions, respond, str_bytes, uuid};
use crate::metadata::{validate_topic_config, validate_topic_name, MetaError};
use crate::server::{Header, Response};
use crate::shard::Shard;

pub async fn handle(header: &Header, body: &[u8], shard: &Rc<Shard>) -> Response {
    let request: CreateTopicsRequest = match decode(header, body) {
        Ok(r) => r,
        Err(refusal) => return refusal,
    };
    let config = &shard.shared.config;
    let mut results = Vec::new();
    for t in &request.topics {
        let name = t.name.0.to_string();
        let partitions = if t.num_partitions == -1 {
            config.num_partitions
        } else {
            t.num_partitions
        };
        let replication = if t.replication_factor == -1 {
            config.default_replication_factor
        } else {
            t.replication_factor
        };
        let mut result = CreatableTopicResult::default()
            .with_name(t.name.clone())
            .with_num_partitions(partitions)
            .with_replication_factor(replication);
        let outcome = create_one(
            shard,
            &name,
            partitions,
            replication,
            t,
            request.validate_only,
        )
        .await;
        match outcome {
            Ok(id) => result = result.with_topic_id(uuid(&id)),
            Err((code, message)) => {
                eprintln!("create topic {name}: {message}");
                result = result
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(&message)))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1);
            }
        }
        results.push(result);
    }
    respond(
        header,
        &CreateTopicsResponse::default().with_topics(results),
    )
}

async fn create_one(
    shard: &Rc<Shard>,
    name: &str,
    partitions: i32,
    replication: i16,
    t: &ringtail_protocol::messages::kafka_protocol::messages::create_topics_request::CreatableTopic,
    validate_only: bool,
) -> Result<[u8; 16], (ErrorCode, String)> {
    let fail = |e: MetaError| (meta_error_code(&e), e.to_string());
    if !t.assignments.is_empty() {
        return Err((
            ErrorCode::InvalidReplicaAssignment,
            "manual replica assignment needs a multi-broker cluster".into(),
        ));
    }
    let mut configs = BTreeMap::new();
    for c in &t.configs {
        let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
        validate_topic_config(&c.name, &value).map_err(fail)?;
        configs.insert(c.name.to_string(), value);
    }
    if validate_only {
        validate_topic_name(name).map_err(fail)?;
        if shard.shared.metadata.snapshot().topic(name).is_some() {
            return Err(fail(MetaError::TopicExists(name.into())));
        }
        if partitions < 1 {
            return Err(fail(MetaError::InvalidPartitions(format!(
                "{partitions} partitions"
            ))));
        }
        return Ok([0; 16]);
    }
    let owned = name.to_string();
    let topic = shard
        .shared
        .write_metadata(move |m| m.create_topic(&owned, partitions, replication, configs))
        .await
        .map_err(fail)?;
    open_partitions(shard, &topic, 0)
        .await
        .map_err(|e| (ErrorCode::KafkaStorageError, e))?;
    eprintln!("created topic {name} with {partitions} partitions");
    Ok(topic.id)
}
