//! CreatePartitions v0-3: raises a topic's partition count to `count` (the
//! new total; Kafka never lowers it) and opens the new partitions on their
//! owner shards. Manual assignments need a cluster and are refused;
//! `validate_only` checks without changing anything.

use std::collections::BTreeSet;
use std::rc::Rc;

use ringtail_protocol::messages::kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use ringtail_protocol::messages::kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use ringtail_protocol::messages::kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse,
};
use ringtail_protocol::ErrorCode;

use super::{decode, meta_error_code, open_partitions, respond, str_bytes};
use crate::metadata::MetaError;
use crate::server::{Header, Response};
use crate::shard::Shard;

/// The most partitions one topic may reach through this API. Each
/// partition holds open files and memory on its shard; a typo such as
/// `count=10000000` must not stall the broker opening logs.
pub use crate::metadata::PARTITIONS_PER_TOPIC_MAX;

pub async fn handle(header: &Header, body: &[u8], shard: &Rc<Shard>) -> Response {
    let request: CreatePartitionsRequest = match decode(header, body) {
        Ok(r) => r,
        Err(refusal) => return refusal,
    };
    let mut seen = BTreeSet::new();
    let duplicates: BTreeSet<&str> = request
        .topics
        .iter()
        .map(|t| t.name.0.as_str())
        .filter(|name| !seen.insert(*name))
        .collect();
    let mut results = Vec::new();
    for t in &request.topics {
        let name = t.name.0.as_str();
        let outcome = if duplicates.contains(name) {
            Err((
                ErrorCode::InvalidRequest,
                format!("topic {name:?} appears more than once in the request"),
            ))
        } else {
            grow(shard, t, request.validate_only).await
        };
        let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        results.push(match outcome {
            Ok(()) => result,
            Err((code, message)) => {
                eprintln!("create partitions for {name}: {message}");
                result
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(&message)))
            }
        });
    }
    respond(
        header,
        &CreatePartitionsResponse::default().with_results(results),
    )
}

async fn grow(
    shard: &Rc<Shard>,
    t: &CreatePartitionsTopic,
    validate_only: bool,
) -> Result<(), (ErrorCode, String)> {
    let fail = |e: MetaError| (meta_error_code(&e), e.to_string());
    let name = t.name.0.as_str();
    if t.assignments.as_ref().is_some_and(|a| !a.is_empty()) {
        return Err((
            ErrorCode::InvalidReplicaAssignment,
            "manual replica assignment needs a multi-broker cluster".into(),
        ));
    }
    if t.count > PARTITIONS_PER_TOPIC_MAX {
        return Err(fail(MetaError::InvalidPartitions(format!(
            "{} partitions is more than the {PARTITIONS_PER_TOPIC_MAX} a topic may have",
            t.count
        ))));
    }
    if validate_only {
        let snapshot = shard.shared.metadata.snapshot();
        let topic = snapshot
            .topic(name)
            .ok_or_else(|| fail(MetaError::UnknownTopic(name.into())))?;
        if t.count <= topic.partitions {
            return Err(fail(MetaError::InvalidPartitions(format!(
                "topic currently has {} partitions, which is higher than or equal to the requested {}",
                topic.partitions, t.count
            ))));
        }
        return Ok(());
    }
    let (owned, count) = (name.to_string(), t.count);
    let (topic, before) = shard
        .shared
        .write_metadata(move |m| m.add_partitions(&owned, count))
        .await
        .map_err(fail)?;
    assert!(before < topic.partitions);
    open_partitions(shard, &topic, before)
        .await
        .map_err(|e| (ErrorCode::KafkaStorageError, e))?;
    eprintln!("topic {name}: partitions {before} -> {}", topic.partitions);
    Ok(())
}
