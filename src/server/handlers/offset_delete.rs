//! OffsetDelete v0: removes committed offsets of a group. Partitions of
//! topics the group's consumers subscribe to are refused with
//! GROUP_SUBSCRIBED_TO_TOPIC; a non-empty group whose subscriptions
//! cannot be read gets NON_EMPTY_GROUP.

use std::rc::Rc;

use ringtail_protocol::messages::kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use ringtail_protocol::messages::kafka_protocol::messages::{
    OffsetDeleteRequest, OffsetDeleteResponse,
};
use ringtail_protocol::ErrorCode;

use super::join_group::{driver_error_code, error_code};
use super::{decode, respond};
use crate::group::driver;
use crate::server::{Header, Response};
use crate::shard::Shard;

pub async fn handle(header: &Header, body: &[u8], shard: &Rc<Shard>) -> Response {
    let request: OffsetDeleteRequest = match decode(header, body) {
        Ok(r) => r,
        Err(refusal) => return refusal,
    };
    let group_id = request.group_id.0.to_string();
    let snapshot = shard.shared.metadata.snapshot();
    let mut known = Vec::new();
    for t in &request.topics {
        let name = t.name.0.to_string();
        let count = snapshot.topic(&name).map(|m| m.partitions);
        for p in &t.partitions {
            if count.is_some_and(|n| (0..n).contains(&p.partition_index)) {
                known.push((name.clone(), p.partition_index));
            }
        }
    }
    drop(snapshot);
    let (g, parts) = (group_id.clone(), known);
    let result = driver::on_group_shard(shard, &group_id, move || async move {
        driver::with(|c, _| c.delete_offsets(&g, &parts))
    })
    .await;
    let mut out = OffsetDeleteResponse::default();
    let results = match result {
        Ok(Ok(results)) => results,
        Ok(Err(e)) => {
            out.error_code = error_code(e).code();
            return respond(header, &out);
        }
        Err(e) => {
            out.error_code = driver_error_code("OffsetDelete", &group_id, &e).code();
            return respond(header, &out);
        }
    };
    for t in &request.topics {
        let name = t.name.0.to_string();
        let mut topic = OffsetDeleteResponseTopic::default();
        topic.name = t.name.clone();
        topic.partitions = t
            .partitions
            .iter()
            .map(|p| {
                let mut rp = OffsetDeleteResponsePartition::default();
                rp.partition_index = p.partition_index;
                rp.error_code = results
                    .iter()
                    .find(|((t, i), _)| *t == name && *i == p.partition_index)
                    .map_or(ErrorCode::UnknownTopicOrPartition.code(), |(_, r)| {
                        r.err().map_or(0, |e| error_code(e).code())
                    });
                rp
            })
            .collect();
        out.topics.push(topic);
    }
    respond(header, &out)
}
