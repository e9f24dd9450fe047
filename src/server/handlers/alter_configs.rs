//! AlterConfigs v0-2: replaces a topic's whole set of overrides (keys left
//! out, or sent with a null value, go back to the broker's value).
//! `validate_only` checks without changing anything. Broker configs are
//! static (`server.properties`), so broker resources are refused.
//!
//! The resource checks and the write are shared with
//! IncrementalAlterConfigs.

use std::collections::BTreeSet;
use std::rc::Rc;

use ringtail_protocol::messages::kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use ringtail_protocol::messages::kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse,
};
use ringtail_protocol::messages::kafka_protocol::protocol::StrBytes;
use ringtail_protocol::ErrorCode;

use super::describe_configs::{is_list, RESOURCE_BROKER, RESOURCE_TOPIC};
use super::{decode, meta_error_code, respond, str_bytes};
use crate::metadata::{validate_topic_config, MetaError};
use crate::server::{Header, Response};
use crate::shard::Shard;

/// A refusal: the code and a message naming what was wrong.
pub type Refusal = (ErrorCode, String);

/// Refuses a resource that is not an alterable topic.
pub fn check_resource(resource_type: i8, name: &str) -> Result<(), Refusal> {
    match resource_type {
        RESOURCE_TOPIC => Ok(()),
        RESOURCE_BROKER => Err((
            ErrorCode::InvalidRequest,
            format!(
                "broker configs are static: change them in server.properties (broker {name:?})"
            ),
        )),
        other => Err((
            ErrorCode::InvalidRequest,
            format!("resource type {other} is not supported (2 = topic, 4 = broker)"),
        )),
    }
}

/// Refuses a key that appears twice among one resource's changes.
pub fn check_unique_keys<'a>(keys: impl Iterator<Item = &'a str>) -> Result<(), Refusal> {
    let mut seen = BTreeSet::new();
    for k in keys {
        if !seen.insert(k) {
            return Err((
                ErrorCode::InvalidRequest,
                format!("config {k:?} appears more than once for the resource"),
            ));
        }
    }
    Ok(())
}

/// The (type, name) of resources named more than once in a request: every
/// entry of such a resource is refused, as Kafka does.
pub fn duplicate_resources<'a>(
    resources: impl Iterator<Item = (i8, &'a str)>,
) -> BTreeSet<(i8, &'a str)> {
    let mut seen = BTreeSet::new();
    resources.filter(|r| !seen.insert(*r)).collect()
}

pub fn duplicate_resource_refusal(name: &str) -> Refusal {
    (
        ErrorCode::InvalidRequest,
        format!("resource {name:?} appears more than once in the request"),
    )
}

/// `value` as stored: a list-valued key's items without the spaces
/// around them (`compact, delete` is `compact,delete`), so what is stored
/// has one spelling and no blanks, which the topic table's
/// space-separated lines cannot hold.
pub fn normalized(key: &str, value: &str) -> String {
    if is_list(key) {
        value
            .split(',')
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(",")
    } else {
        value.to_string()
    }
}

/// Sets (`Some`) or removes (`None`) topic overrides; with `replace_all`
/// the changes become the whole set.
pub async fn apply_topic_changes(
    shard: &Shard,
    name: &str,
    changes: Vec<(String, Option<String>)>,
    replace_all: bool,
    validate_only: bool,
) -> Result<(), Refusal> {
    let fail = |e: MetaError| (meta_error_code(&e), e.to_string());
    if validate_only {
        for (k, v) in &changes {
            if let Some(v) = v {
                validate_topic_config(k, v).map_err(fail)?;
            }
        }
        if shard.shared.metadata.snapshot().topic(name).is_none() {
            return Err(fail(MetaError::UnknownTopic(name.into())));
        }
        return Ok(());
    }
    let (owned, written) = (name.to_string(), changes.clone());
    let topic = shard
        .shared
        .write_metadata(move |m| m.alter_configs(&owned, &written, replace_all))
        .await
        .map_err(fail)?;
    eprintln!("topic {name}: configs altered: {changes:?} (replace all: {replace_all})");
    // Open logs take the new settings on their owner shards, as Kafka's
    // dynamic topic configs do, shortly after the answer.
    ringtail_io::rt::spawn(super::push_topic_config(shard.shared.clone(), topic));
    Ok(())
}

/// The error code and message to answer for `outcome` (logged).
pub fn answer(name: &str, outcome: Result<(), Refusal>) -> (i16, Option<StrBytes>) {
    match outcome {
        Ok(()) => (ErrorCode::None.code(), None),
        Err((code, message)) => {
            eprintln!("alter configs of {name}: {message}");
            (code.code(), Some(str_bytes(&message)))
        }
    }
}

pub async fn handle(header: &Header, body: &[u8], shard: &Rc<Shard>) -> Response {
    let request: AlterConfigsRequest = match decode(header, body) {
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
        let checked = if duplicates.contains(&(r.resource_type, name)) {
            Err(duplicate_resource_refusal(name))
        } else {
            check_resource(r.resource_type, name)
                .and_then(|()| check_unique_keys(r.configs.iter().map(|c| c.name.as_str())))
        };
        let outcome = match checked {
            Err(refusal) => Err(refusal),
            Ok(()) => {
                // A null value leaves the key out, as Kafka does.
                let changes: Vec<(String, Option<String>)> = r
                    .configs
                    .iter()
                    .filter_map(|c| {
                        c.value.as_ref().map(|v| {
                            let key = c.name.as_str();
                            (key.to_string(), Some(normalized(key, v.as_str())))
                        })
                    })
                    .collect();
                apply_topic_changes(shard, name, changes, true, request.validate_only).await
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
        &AlterConfigsResponse::default().with_responses(responses),
    )
}
