//! DeleteTopics v1-6 (by name; v6 also by topic id): the topic leaves the
//! table first (no new appends find it), then each owner shard closes the
//! partition's log and its directory is removed.

use std::rc::Rc;

use ringtail_protocol::messages::kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use ringtail_protocol::messages::kafka_protocol::messages::{
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use ringtail_protocol::ErrorCode;

use super::{decode, meta_error_code, respond, str_bytes, uuid};
use crate::partition::locate_dir;
use crate::server::{Header, Response};
use crate::shard::{self, Shard};

pub async fn handle(header: &Header, body: &[u8], shard: &Rc<Shard>) -> Response {
    let request: DeleteTopicsRequest = match decode(header, body) {
        Ok(r) => r,
        Err(refusal) => return refusal,
    };
    let snapshot = shard.shared.metadata.snapshot();
    // (name if known, id if given)
    let mut wanted: Vec<(Option<String>, Option<[u8; 16]>)> = request
        .topic_names
        .iter()
        .map(|n| (Some(n.0.to_string()), None))
        .collect();
    for t in &request.topics {
        let id = *t.topic_id.as_bytes();
        let name = t
            .name
            .as_ref()
            .map(|n| n.0.to_string())
            .or_else(|| snapshot.topic_by_id(&id).map(|m| m.name.clone()));
        wanted.push((name, (id != [0; 16]).then_some(id)));
    }
    let mut results = Vec::new();
    for (name, id) in wanted {
        let mut result = DeletableTopicResult::default()
            .with_name(name.as_ref().map(|n| TopicName(str_bytes(n))));
        if let Some(id) = id {
            result = result.with_topic_id(uuid(&id));
        }
        let outcome = match &name {
            None => Err((
                ErrorCode::UnknownTopicId,
                "no topic has this id".to_string(),
            )),
            Some(_) if !shard.shared.config.delete_topic_enable => Err((
                ErrorCode::TopicDeletionDisabled,
                "delete.topic.enable=false".to_string(),
            )),
            Some(name) => delete_one(shard, name).await,
        };
        match outcome {
            Ok(id) => result = result.with_topic_id(uuid(&id)),
            Err((code, message)) => {
                result = result
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(&message)));
            }
        }
        results.push(result);
    }
    respond(
        header,
        &DeleteTopicsResponse::default().with_responses(results),
    )
}

async fn delete_one(shard: &Rc<Shard>, name: &str) -> Result<[u8; 16], (ErrorCode, String)> {
    let owned = name.to_string();
    let topic = shard
        .shared
        .write_metadata(move |m| m.delete_topic(&owned))
        .await
        .map_err(|e| (meta_error_code(&e), e.to_string()))?;
    for index in 0..topic.partitions {
        let owner = shard.shared.owner(&topic, index);
        let topic_name = topic.name.clone();
        let closed = shard::run_on(owner, move || async move {
            shard::current().close_partition(&topic_name, index).await
        })
        .await
        .unwrap_or_else(|_| Err("owner shard stopped".into()));
        if let Err(e) = closed {
            eprintln!("delete topic {name}: {e}");
        }
        let dir = locate_dir(&shard.shared.config.log_dirs, name, index);
        if dir.is_dir() {
            std::fs::remove_dir_all(&dir).map_err(|e| {
                (
                    ErrorCode::KafkaStorageError,
                    format!("removing {}: {e}", dir.display()),
                )
            })?;
        }
    }
    eprintln!("deleted topic {name}");
    Ok(topic.id)
}
