//! JoinGroup v0-9. The request waits on the group's shard until the
//! rebalance answers it (or refuses it at once). v4+ new members get
//! MEMBER_ID_REQUIRED with their id first; v5+ carry `group.instance.id`;
//! v7+ name the protocol type; v9 tells a returning static leader to skip
//! the assignment.
//!
//! Also home of [`error_code`], the mapping of the coordinator's errors to
//! Kafka's codes that every group handler uses.

use std::rc::Rc;

use ringtail_protocol::messages::kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use ringtail_protocol::messages::kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use ringtail_protocol::ErrorCode;

use super::{decode, respond, str_bytes};
use crate::group::coordinator::{GroupError, JoinRequest, JoinResult};
use crate::group::driver::{self, DriverError};
use crate::server::{Header, Response};
use crate::shard::Shard;

/// Kafka's code for each coordinator error.
pub fn error_code(e: GroupError) -> ErrorCode {
    match e {
        GroupError::InvalidGroupId => ErrorCode::InvalidGroupId,
        GroupError::InvalidSessionTimeout => ErrorCode::InvalidSessionTimeout,
        GroupError::InconsistentGroupProtocol => ErrorCode::InconsistentGroupProtocol,
        GroupError::MemberIdRequired => ErrorCode::MemberIdRequired,
        GroupError::UnknownMemberId => ErrorCode::UnknownMemberId,
        GroupError::IllegalGeneration => ErrorCode::IllegalGeneration,
        GroupError::FencedInstanceId => ErrorCode::FencedInstanceId,
        GroupError::RebalanceInProgress => ErrorCode::RebalanceInProgress,
        GroupError::CoordinatorNotAvailable | GroupError::StorageFailed => {
            ErrorCode::CoordinatorNotAvailable
        }
        GroupError::GroupMaxSizeReached => ErrorCode::GroupMaxSizeReached,
        GroupError::GroupIdNotFound => ErrorCode::GroupIdNotFound,
        GroupError::NonEmptyGroup => ErrorCode::NonEmptyGroup,
        GroupError::GroupSubscribedToTopic => ErrorCode::GroupSubscribedToTopic,
        GroupError::OffsetMetadataTooLarge => ErrorCode::OffsetMetadataTooLarge,
        GroupError::NotCoordinator => ErrorCode::NotCoordinator,
        GroupError::RequestTimedOut => ErrorCode::RequestTimedOut,
    }
}

/// Kafka's code when a request did not reach the group's coordinator
/// (logged, except while the coordinator is still loading at start).
pub fn driver_error_code(api: &str, group_id: &str, e: &DriverError) -> ErrorCode {
    match e {
        DriverError::Loading => ErrorCode::CoordinatorLoadInProgress,
        // The client looks the coordinator up again; nothing to log.
        DriverError::NotCoordinator => ErrorCode::NotCoordinator,
        other => {
            eprintln!("{api} for group {group_id}: {other}");
            ErrorCode::CoordinatorNotAvailable
        }
    }
}

pub fn code_of(result: Option<GroupError>) -> i16 {
    result.map_or(ErrorCode::None.code(), |e| error_code(e).code())
}

pub async fn handle(header: &Header, body: &[u8], shard: &Rc<Shard>) -> Response {
    let request: JoinGroupRequest = match decode(header, body) {
        Ok(r) => r,
        Err(refusal) => return refusal,
    };
    let v = header.api_version;
    let group_id = request.group_id.0.to_string();
    let req = JoinRequest {
        group_id: group_id.clone(),
        member_id: request.member_id.to_string(),
        group_instance_id: if v >= 5 {
            request.group_instance_id.as_ref().map(|s| s.to_string())
        } else {
            None
        },
        client_id: header.client_id.clone().unwrap_or_default(),
        // Kafka's form: InetAddress.toString of the peer, "/127.0.0.1".
        client_host: format!("/{}", header.peer.ip()),
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout; Kafka uses the session timeout.
        rebalance_timeout_ms: if v >= 1 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        },
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        require_known_member_id: v >= 4,
    };
    let result = driver::on_group_shard(shard, &group_id, move || driver::join(req)).await;
    let result = match result {
        Ok(r) => r,
        Err(e) => {
            let mut out = response(JoinResult::default(), v);
            out.error_code = driver_error_code("JoinGroup", &group_id, &e).code();
            out.generation_id = -1;
            out.member_id = request.member_id.clone();
            return respond(header, &out);
        }
    };
    respond(header, &response(result, v))
}

fn response(r: JoinResult, v: i16) -> JoinGroupResponse {
    let mut out = JoinGroupResponse::default();
    out.error_code = code_of(r.error);
    out.generation_id = r.generation_id;
    // Before v7 the protocol name is a non-nullable string.
    out.protocol_name = match (&r.protocol_name, v >= 7) {
        (Some(p), _) => Some(str_bytes(p)),
        (None, true) => None,
        (None, false) => Some(str_bytes("")),
    };
    if v >= 7 {
        out.protocol_type = r.protocol_type.as_deref().map(str_bytes);
    }
    out.leader = str_bytes(&r.leader);
    if v >= 9 {
        out.skip_assignment = r.skip_assignment;
    }
    out.member_id = str_bytes(&r.member_id);
    out.members = r
        .members
        .into_iter()
        .map(|m| {
            let mut jm = JoinGroupResponseMember::default();
            jm.member_id = str_bytes(&m.member_id);
            if v >= 5 {
                jm.group_instance_id = m.group_instance_id.as_deref().map(str_bytes);
            }
            jm.metadata = m.metadata;
            jm
        })
        .collect();
    out
}
