//! One module per Kafka API; `dispatch` picks it by key and version.
//!
//! Each handler decodes its request, does the work (sending partition work
//! to owner shards) and encodes the answer. Kafka error codes are chosen
//! here, at the boundary, from the typed errors below.

pub mod alter_configs;
pub mod api_versions;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod sync_group;

use std::rc::Rc;
use std::sync::Arc;

use bytes::BytesMut;
use ringtail_io::log::LogError;
use ringtail_protocol::messages::kafka_protocol::protocol::{
    Encodable, Message, Request, StrBytes,
};
use ringtail_protocol::messages::{self, encode_response_frame};
use ringtail_protocol::{ApiKey, ErrorCode};

use super::{Header, Response};
use crate::metadata::{MetaError, TopicMeta};
use crate::shard::{self, Shard};

pub async fn dispatch(
    header: Header,
    frame: BytesMut,
    body_offset: usize,
    shard: Rc<Shard>,
) -> Response {
    if header.api_key == ApiKey::ApiVersions {
        return api_versions::handle(&header, &frame[body_offset..]);
    }
    if !messages::is_supported(header.api_key, header.api_version) {
        // Kafka cannot parse such a request and closes the connection.
        return Response::Close(format!(
            "{:?} v{} is not supported (client {:?})",
            header.api_key, header.api_version, header.client_id
        ));
    }
    match header.api_key {
        ApiKey::Metadata => metadata::handle(&header, &frame[body_offset..], &shard).await,
        ApiKey::Produce => produce::handle(&header, frame, body_offset, &shard).await,
        ApiKey::FindCoordinator => {
            find_coordinator::handle(&header, &frame[body_offset..], &shard).await
        }
        ApiKey::Fetch => fetch::handle(&header, &frame[body_offset..], &shard).await,
        ApiKey::ListOffsets => list_offsets::handle(&header, &frame[body_offset..], &shard).await,
        ApiKey::CreateTopics => create_topics::handle(&header, &frame[body_offset..], &shard).await,
        ApiKey::DeleteTopics => delete_topics::handle(&header, &frame[body_offset..], &shard).await,
        ApiKey::CreatePartitions => {
            create_partitions::handle(&header, &frame[body_offset..], &shard).await
        }
        ApiKey::DescribeConfigs => {
            describe_configs::handle(&header, &frame[body_offset..], &shard).await
        }
        ApiKey::AlterConfigs => alter_configs::handle(&header, &frame[body_offset..], &shard).await,
        ApiKey::IncrementalAlterConfigs => {
            incremental_alter_configs::handle(&header, &frame[body_offset..], &shard).await
        }
        ApiKey::DescribeCluster => {
            describe_cluster::handle(&header, &frame[body_offset..], &shard).await
        }
        ApiKey::DeleteRecords => {
            delete_records::handle(&header, &frame[body_offset..], &shard).await
        }
        ApiKey::InitProducerId => {
            init_producer_id::handle(&header, &frame[body_offset..], &shard).await
        }
        ApiKey::JoinGroup => join_group::handle(&header, &frame[body_offset..], &shard).await,
        ApiKey::SyncGroup => sync_group::handle(&header, &frame[body_offset..], &shard).await,
        ApiKey::Heartbeat => heartbeat::handle(&header, &frame[body_offset..], &shard).await,
        ApiKey::LeaveGroup => leave_group::handle(&header, &frame[body_offset..], &shard).await,
        ApiKey::OffsetCommit => offset_commit::handle(&header, &frame[body_offset..], &shard).await,
        ApiKey::OffsetFetch => offset_fetch::handle(&header, &frame[body_offset..], &shard).await,
        ApiKey::OffsetForLeaderEpoch => {
            offset_for_leader_epoch::handle(&header, &frame[body_offset..], &shard).await
        }
        ApiKey::ListGroups => list_groups::handle(&header, &frame[body_offset..], &shard).await,
        ApiKey::DescribeGroups => {
            describe_groups::handle(&header, &frame[body_offset..], &shard).await
        }
        ApiKey::DeleteGroups => delete_groups::handle(&header, &frame[body_offset..], &shard).await,
        ApiKey::OffsetDelete => offset_delete::handle(&header, &frame[body_offset..], &shard).await,
        other => Response::Close(format!("{other:?} has no handler")),
    }
}

/// Decodes a control-plane request, or the response that refuses it.
pub fn decode<T: Request>(header: &Header, body: &[u8]) -> Result<T, Response> {
    messages::decode_request::<T>(header.api_version, body)
        .map_err(|e| Response::Close(e.to_string()))
}

/// Encodes a control-plane response frame for `header`'s version.
pub fn respond<R: Encodable + Message>(header: &Header, response: &R) -> Response {
    let mut buf = BytesMut::new();
    match encode_response_frame(
        header.api_key,
        header.api_version,
        header.correlation_id,
        response,
        &mut buf,
    ) {
        Ok(()) => Response::Frame(buf),
        Err(e) => Response::Close(format!(
            "cannot encode {:?} v{}: {e}",
            header.api_key, header.api_version
        )),
    }
}

pub fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub fn uuid(id: &[u8; 16]) -> uuid::Uuid {
    uuid::Uuid::from_bytes(*id)
}

pub fn meta_error_code(e: &MetaError) -> ErrorCode {
    match e {
        MetaError::TopicExists(_) => ErrorCode::TopicAlreadyExists,
        MetaError::UnknownTopic(_) => ErrorCode::UnknownTopicOrPartition,
        MetaError::InvalidName { .. } => ErrorCode::InvalidTopicException,
        MetaError::InvalidPartitions(_) => ErrorCode::InvalidPartitions,
        MetaError::InvalidReplicationFactor { .. } => ErrorCode::InvalidReplicationFactor,
        MetaError::InvalidConfig { .. } => ErrorCode::InvalidConfig,
        MetaError::Storage { .. } => ErrorCode::KafkaStorageError,
    }
}

pub fn log_error_code(e: &LogError) -> ErrorCode {
    match e {
        LogError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
        LogError::InvalidBatch(_) | LogError::Corrupt { .. } => ErrorCode::CorruptMessage,
        LogError::BatchTooLarge { .. } => ErrorCode::RecordListTooLarge,
        LogError::Io { .. } | LogError::Failed { .. } | LogError::Compaction { .. } => {
            ErrorCode::KafkaStorageError
        }
        LogError::Config(_) => ErrorCode::InvalidConfig,
        LogError::Closed | LogError::Truncating { .. } | LogError::Truncated { .. } => {
            ErrorCode::NotLeaderOrFollower
        }
    }
}

/// Opens partitions `from..topic.partitions` on their owner shards.
pub async fn open_partitions(
    shard: &Shard,
    topic: &Arc<TopicMeta>,
    from: i32,
) -> Result<(), String> {
    // The assignment is in the tree; the view shows it a tick later.
    crate::cluster::wait_for_topic(
        &topic.name,
        topic.partitions,
        std::time::Duration::from_secs(5),
    )
    .await;
    for index in from..topic.partitions {
        if !crate::cluster::is_replica(&topic.name, index) {
            continue;
        }
        let owner = shard.shared.owner(topic, index);
        let topic = topic.clone();
        shard::run_on(owner, move || async move {
            shard::current()
                .open_partition(topic, index)
                .await
                .map(drop)
        })
        .await
        .map_err(|_| "owner shard stopped".to_string())??;
    }
    Ok(())
}

/// Hands a topic's current settings to the open logs of its partitions.
pub async fn push_topic_config(shared: Arc<crate::shard::Shared>, topic: Arc<TopicMeta>) {
    for index in 0..topic.partitions {
        let owner = shared.owner(&topic, index);
        let (shared, t) = (shared.clone(), topic.clone());
        let applied = shard::run_on(owner, move || async move {
            let Some(p) = shard::current().partition(&t.name, index) else {
                return Ok(());
            };
            p.log
                .set_config(crate::partition::log_config(&shared.config, &t))
        })
        .await;
        if let Ok(Err(e)) = applied {
            eprintln!("{}-{index}: new topic config not applied: {e}", topic.name);
        }
    }
}

/// Finds a topic, creating it when auto-creation applies (Metadata and
/// Produce do this when `auto.create.topics.enable=true`).
pub async fn topic_or_create(
    shard: &Shard,
    name: &str,
    allow_create: bool,
) -> Result<Arc<TopicMeta>, ErrorCode> {
    if let Some(t) = shard.shared.metadata.snapshot().topic(name) {
        return Ok(t.clone());
    }
    let config = &shard.shared.config;
    if !(allow_create && config.auto_create_topics_enable) {
        return Err(ErrorCode::UnknownTopicOrPartition);
    }
    let (owned, partitions, replication) = (
        name.to_string(),
        config.num_partitions,
        config.default_replication_factor,
    );
    let created = shard
        .shared
        .write_metadata(move |m| {
            m.create_topic(&owned, partitions, replication, Default::default())
        })
        .await;
    let topic = match created {
        Ok(t) => {
            eprintln!("auto-created topic {name} with {} partitions", t.partitions);
            t
        }
        // Another connection created it first.
        Err(MetaError::TopicExists(_)) => match shard.shared.metadata.snapshot().topic(name) {
            Some(t) => t.clone(),
            None => return Err(ErrorCode::UnknownTopicOrPartition),
        },
        Err(e @ MetaError::InvalidName { .. }) => return Err(meta_error_code(&e)),
        Err(e) => {
            eprintln!("auto-creating {name}: {e}");
            return Err(meta_error_code(&e));
        }
    };
    open_partitions(shard, &topic, 0).await.map_err(|e| {
        eprintln!("{e}");
        ErrorCode::KafkaStorageError
    })?;
    Ok(topic)
}
