//! ListGroups v0-5: the groups of every shard's coordinator. v4+ filter
//! by state (Kafka's names, case-insensitive); v5 by type, where every
//! group here is "classic".

use std::rc::Rc;

use ringtail_protocol::messages::kafka_protocol::messages::list_groups_response::ListedGroup;
use ringtail_protocol::messages::kafka_protocol::messages::{
    GroupId, ListGroupsRequest, ListGroupsResponse,
};
use ringtail_protocol::ErrorCode;

use super::{decode, respond, str_bytes};
use crate::group::driver::{self, DriverError};
use crate::server::{Header, Response};
use crate::shard::{self, Shard, ShardId};

pub async fn handle(header: &Header, body: &[u8], shard: &Rc<Shard>) -> Response {
    let request: ListGroupsRequest = match decode(header, body) {
        Ok(r) => r,
        Err(refusal) => return refusal,
    };
    let v = header.api_version;
    let states: Vec<String> = if v >= 4 {
        request
            .states_filter
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect()
    } else {
        Vec::new()
    };
    let classic_listed = v < 5
        || request.types_filter.is_empty()
        || request
            .types_filter
            .iter()
            .any(|t| t.eq_ignore_ascii_case("classic"));
    let mut out = ListGroupsResponse::default();
    if !classic_listed {
        return respond(header, &out);
    }
    for i in 0..shard.shared.mesh.shards() {
        let listed = shard::run_on(ShardId(i), || async {
            driver::with(|c, _| {
                c.groups()
                    .map(|g| {
                        (
                            g.id.clone(),
                            g.protocol_type.clone().unwrap_or_default(),
                            g.state.name(),
                        )
                    })
                    .collect::<Vec<_>>()
            })
        })
        .await;
        match listed {
            Ok(Ok(groups)) => {
                for (id, protocol_type, state) in groups {
                    if !states.is_empty() && !states.contains(&state.to_ascii_lowercase()) {
                        continue;
                    }
                    let mut g = ListedGroup::default();
                    g.group_id = GroupId(str_bytes(&id));
                    g.protocol_type = str_bytes(&protocol_type);
                    if v >= 4 {
                        g.group_state = str_bytes(state);
                    }
                    if v >= 5 {
                        g.group_type = str_bytes("classic");
                    }
                    out.groups.push(g);
                }
            }
            Ok(Err(DriverError::Loading)) => {
                out.error_code = ErrorCode::CoordinatorLoadInProgress.code()
            }
            _ => out.error_code = ErrorCode::CoordinatorNotAvailable.code(),
        }
    }
    out.groups.sort_by(|a, b| a.group_id.0.cmp(&b.group_id.0));
    respond(header, &out)
}
