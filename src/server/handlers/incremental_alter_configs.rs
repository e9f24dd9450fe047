//! IncrementalAlterConfigs v0-1: per-key changes to a topic's overrides.
//! SET (0) sets a value, DELETE (1) returns the key to the broker's value,
//! APPEND (2) and SUBTRACT (3) add or remove items of a list-valued key
//! such as `cleanup.policy`, starting from the value the topic has now
//! (its override or the inherited one), as Kafka does. `validate_only`
//! checks without changing anything; broker configs are static.

use std::rc::Rc;

use ringtail_protocol::messages::kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
use ringtail_protocol::messages::kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use ringtail_protocol::messages::kafka_protocol::messages::{
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use ringtail_protocol::ErrorCode;

use super::alter_configs::{
    answer, apply_topic_changes, check_resource, check_unique_keys, duplicate_resource_refusal,
    duplicate_resources, normalized, Refusal,
};
use super::decode;
use super::describe_configs::{is_list, topic_value};
use super::respond;
use crate::config::BrokerConfig;
use crate::metadata::TopicMeta;
use crate::server::{Header, Response};
use crate::shard::Shard;

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

pub async fn handle(header: &Header, body: &[u8], shard: &Rc<Shard>) -> Response {
    let request: IncrementalAlterConfigsRequest = match decode(header, body) {
        Ok(r) => r,
        Err(refusal) => return refusal,
    };
    let duplicates = duplicate_resources(
        request
            .resources
            .iter()
            .map(|r| (r.resource_type, r.resource_name.as_str())),
    );
    let mut responses = Vec::with_capacity(request.resources.len());
    for r in &request.resources {
        let name = r.resource_name.as_str();
        let outcome = if duplicates.contains(&(r.resource_type, name)) {
            Err(duplicate_resource_refusal(name))
        } else {
            match changes_of(shard, r) {
                Ok(changes) => {
                    apply_topic_changes(shard, name, changes, false, request.validate_only).await
                }
                Err(refusal) => Err(refusal),
            }
        };
        let (code, message) = answer(name, outcome);
        responses.push(
            AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone())
                .with_error_code(code)
                .with_error_message(message),
        );
    }
    respond(
        header,
        &IncrementalAlterConfigsResponse::default().with_responses(responses),
    )
}

/// The overrides the resource's operations make, checked against the
/// topic's current settings.
fn changes_of(
    shard: &Shard,
    r: &AlterConfigsResource,
) -> Result<Vec<(String, Option<String>)>, Refusal> {
    let name = r.resource_name.as_str();
    check_resource(r.resource_type, name)?;
    check_unique_keys(r.configs.iter().map(|c| c.name.as_str()))?;
    let snapshot = shard.shared.metadata.snapshot();
    let topic = snapshot.topic(name).ok_or_else(|| {
        (
            ErrorCode::UnknownTopicOrPartition,
            format!("topic {name:?} does not exist"),
        )
    })?;
    r.configs
        .iter()
        .map(|c| {
            change(
                &shard.shared.config,
                topic,
                c.name.as_str(),
                c.config_operation,
                c.value.as_ref().map(|v| v.as_str()),
            )
        })
        .collect::<Result<Vec<_>, _>>()
}

/// The override `key` gets from one operation: `Some` sets, `None` removes.
fn change(
    config: &BrokerConfig,
    topic: &TopicMeta,
    key: &str,
    operation: i8,
    value: Option<&str>,
) -> Result<(String, Option<String>), Refusal> {
    let needs_value = || {
        value.ok_or_else(|| {
            (
                ErrorCode::InvalidRequest,
                format!("config {key:?}: operation {operation} needs a value"),
            )
        })
    };
    let list_only = |what: &str| {
        if is_list(key) {
            Ok(())
        } else {
            Err((
                ErrorCode::InvalidConfig,
                format!("config {key:?} is not a list: {what} is not allowed"),
            ))
        }
    };
    let current = || -> Vec<String> {
        topic_value(config, topic, key)
            .map(|v| items(&v).map(str::to_string).collect())
            .unwrap_or_default()
    };
    let new = match operation {
        SET => Some(normalized(key, needs_value()?)),
        DELETE => None,
        APPEND => {
            list_only("APPEND")?;
            let mut list = current();
            for item in items(needs_value()?) {
                if !list.iter().any(|have| have == item) {
                    list.push(item.to_string());
                }
            }
            Some(list.join(","))
        }
        SUBTRACT => {
            list_only("SUBTRACT")?;
            let remove: Vec<&str> = items(needs_value()?).collect();
            let list: Vec<String> = current()
                .into_iter()
                .filter(|have| !remove.contains(&have.as_str()))
                .collect();
            Some(list.join(","))
        }
        other => {
            return Err((
                ErrorCode::InvalidRequest,
                format!("config {key:?}: unknown operation {other}"),
            ))
        }
    };
    Ok((key.to_string(), new))
}

fn items(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(configs: &[(&str, &str)]) -> TopicMeta {
        TopicMeta {
            name: "t".into(),
            id: [0; 16],
            partitions: 1,
            replication_factor: 1,
            configs: configs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn list_operations_start_from_the_current_value() {
        let config = BrokerConfig::default();
        let inherited = topic(&[]);
        let policy = "cleanup.policy";
        let set = |t: &TopicMeta, op, v| change(&config, t, policy, op, v).map(|c| c.1);
        assert_eq!(
            set(&inherited, APPEND, Some("compact")),
            Ok(Some("delete,compact".into()))
        );
        assert_eq!(
            set(&inherited, APPEND, Some("delete")),
            Ok(Some("delete".into()))
        );
        let both = topic(&[(policy, "compact,delete")]);
        assert_eq!(
            set(&both, SUBTRACT, Some("delete")),
            Ok(Some("compact".into()))
        );
        assert_eq!(set(&both, DELETE, None), Ok(None));
        assert_eq!(set(&both, SET, Some("delete")), Ok(Some("delete".into())));
        assert_eq!(
            set(&both, SET, Some(" compact , delete")),
            Ok(Some("compact,delete".into()))
        );
        assert_eq!(
            set(&both, SET, None).map_err(|e| e.0),
            Err(ErrorCode::InvalidRequest)
        );
        assert_eq!(
            set(&both, 9, Some("x")).map_err(|e| e.0),
            Err(ErrorCode::InvalidRequest)
        );
        assert_eq!(
            change(&config, &both, "retention.ms", APPEND, Some("5")).map_err(|e| e.0),
            Err(ErrorCode::InvalidConfig)
        );
    }
}
