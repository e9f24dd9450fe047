//! The sans-IO group coordinator: the classic protocol as Kafka's
//! `GroupCoordinator` and `GroupMetadata` run it, for every group of one
//! shard.
//!
//! Inputs are requests stamped with the current time (milliseconds on any
//! monotonic clock), [`Coordinator::tick`], and [`Coordinator::persisted`]
//! for records the driver made durable. Outputs collect in an internal
//! queue that the driver takes with [`Coordinator::drain`]: replies to
//! JoinGroup and SyncGroup (answered when the rebalance gets there), to
//! OffsetCommit (answered only once its records are durable), and records
//! to append to `__consumer_offsets`. Requests that are answered at once
//! (Heartbeat, LeaveGroup, queries) return their answer directly.
//!
//! # States (Kafka's names)
//!
//! ```text
//! Empty --join--> PreparingRebalance --all joined / rebalance timeout-->
//!   CompletingRebalance --leader's SyncGroup--> Stable
//! Stable/CompletingRebalance --join, leave, expiry--> PreparingRebalance
//! PreparingRebalance --nobody rejoined--> Empty;  Empty --delete--> Dead
//! ```
//!
//! A generation ends when a rebalance completes; only members that
//! rejoined in time survive it. Requests naming an older generation get
//! ILLEGAL_GENERATION, unknown member ids UNKNOWN_MEMBER_ID, and an old
//! member id for a static `group.instance.id` FENCED_INSTANCE_ID.
//!
//! # Where this differs from Kafka
//!
//! - The leader's SyncGroup completes the rebalance at once; the group
//!   metadata record is appended without holding the answers until it is
//!   durable (Kafka waits for `storeGroup`). A record lost in a crash only
//!   costs a rebalance after the restart.
//! - The group metadata record is also written when a join phase ends
//!   (with no assignments), so the generation survives a restart even if
//!   the leader never synced; replay restores such a group as Empty with
//!   its generation, and a Stable one with its members and assignments.
//! - A static member that restarts while its old id still owes a SyncGroup
//!   is not held to the old id's sync deadline (Kafka moves the pending
//!   sync to the new id, which can drop a healthy restart).
//! - Offsets are not removed when their topic is deleted.
//!
//! # Offset expiry (KIP-211)
//!
//! [`Coordinator::expire_offsets`], called every
//! `offsets.retention.check.interval.ms` (by `tick` once
//! [`Coordinator::set_offsets_retention`] is called), applies `offsets.retention.minutes`
//! as Kafka's `GroupMetadata.removeExpiredOffsets`: an Empty group's
//! offsets expire once the group has been Empty that long (from its commit
//! timestamps when that time is unknown); a Stable consumer group's offsets
//! of topics it no longer subscribes to expire by their commit timestamp;
//! a group without a protocol (assign()-mode consumers that only commit)
//! expires offsets by their commit timestamp; other groups (rebalancing,
//! or active ones) keep everything. Offsets with a commit in flight are
//! kept. Expired offsets get tombstones; an Empty group left without
//! offsets becomes Dead and gets a group tombstone. The core's clock is the
//! driver's; wall-clock timestamps (commit times, the state timestamp in
//! group records) are mapped onto it with the offset set by
//! [`Coordinator::set_wall_clock_offset`]. OffsetCommit v2-4's explicit
//! retention time is not honoured (every offset uses the broker setting).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;

use super::records::{self, Record};

#[cfg(test)]
#[path = "sim.rs"]
mod sim;

pub type ReplyTo = u64;
pub type TopicPartition = (String, i32);

/// Kafka's `group.min.session.timeout.ms` and `group.max.session.timeout.ms`.
pub const SESSION_TIMEOUT_MS_MIN: i32 = 6_000;
pub const SESSION_TIMEOUT_MS_MAX: i32 = 1_800_000;
/// Kafka's `group.initial.rebalance.delay.ms`: the first rebalance of an
/// empty group waits this long (extended per new member, up to the
/// rebalance timeout) so a starting fleet lands in one generation.
pub const INITIAL_REBALANCE_DELAY_MS: i64 = 3_000;
/// How long a new member may wait in a rebalance before it is dropped
/// (Kafka's `NewMemberJoinTimeoutMs`).
pub const NEW_MEMBER_JOIN_TIMEOUT_MS: i64 = 300_000;
/// Members per group (Kafka's `group.max.size` defaults to unbounded; a
/// bound keeps a misbehaving client from growing one group without end).
pub const GROUP_MEMBERS_MAX: usize = 10_000;
/// Kafka's `offset.metadata.max.bytes`.
pub const OFFSET_METADATA_BYTES_MAX: usize = 4_096;

/// Why a group request is refused; the handler maps each to Kafka's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("the group id is empty")]
    InvalidGroupId,
    #[error("the session timeout is outside the broker's bounds")]
    InvalidSessionTimeout,
    #[error("the protocol type or protocols do not match the group's")]
    InconsistentGroupProtocol,
    #[error("the member must rejoin with the member id it was given")]
    MemberIdRequired,
    #[error("the member id is not in the group")]
    UnknownMemberId,
    #[error("the generation is not the group's current one")]
    IllegalGeneration,
    #[error("another member holds this group.instance.id")]
    FencedInstanceId,
    #[error("the group is rebalancing")]
    RebalanceInProgress,
    #[error("the group is being removed")]
    CoordinatorNotAvailable,
    #[error("the group has the most members it may have")]
    GroupMaxSizeReached,
    #[error("the group does not exist")]
    GroupIdNotFound,
    #[error("the group has members")]
    NonEmptyGroup,
    #[error("the group's members subscribe to the topic")]
    GroupSubscribedToTopic,
    #[error("the offset metadata is too large")]
    OffsetMetadataTooLarge,
    #[error("the offsets could not be stored")]
    StorageFailed,
    /// This broker stopped coordinating the group (its offsets partition
    /// moved to another leader): the client finds the coordinator again.
    #[error("this broker is not the group's coordinator")]
    NotCoordinator,
    #[error("the offsets were not stored in time")]
    RequestTimedOut,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// Kafka's names, as ListGroups and DescribeGroups report them.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// v4+: a new member first gets MEMBER_ID_REQUIRED and its id.
    pub require_known_member_id: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JoinResult {
    pub error: Option<GroupError>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub skip_assignment: bool,
    pub member_id: String,
    /// Filled for the leader only.
    pub members: Vec<JoinedMember>,
}

impl JoinResult {
    fn error(member_id: &str, error: GroupError) -> JoinResult {
        JoinResult {
            error: Some(error),
            generation_id: -1,
            member_id: member_id.to_string(),
            ..JoinResult::default()
        }
    }
}

#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncResult {
    pub error: Option<GroupError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    fn error(error: GroupError) -> SyncResult {
        SyncResult {
            error: Some(error),
            ..SyncResult::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetAndMetadata {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

#[derive(Debug, Clone)]
pub struct CommitRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub offsets: Vec<(TopicPartition, OffsetAndMetadata)>,
}

pub type CommitResult = Vec<(TopicPartition, Result<(), GroupError>)>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Join(ReplyTo, JoinResult),
    Sync(ReplyTo, SyncResult),
    Commit(ReplyTo, CommitResult),
    /// Records for the group's `__consumer_offsets` partition. With a
    /// token, the driver answers [`Coordinator::persisted`] once they are
    /// durable (or failed).
    Persist {
        token: Option<u64>,
        group_id: String,
        records: Vec<Record>,
    },
}

/// One member as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSummary {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSummary {
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol_name: String,
    pub members: Vec<MemberSummary>,
}

#[derive(Debug, Clone)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    awaiting_join: Option<ReplyTo>,
    awaiting_sync: Option<ReplyTo>,
    last_heartbeat_ms: i64,
    is_new: bool,
    /// Join order, for electing a leader deterministically.
    seq: u64,
}

impl Member {
    fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn matches(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    /// Kafka's `shouldKeepAlive`: members inside a rebalance step are kept
    /// until the rebalance's own deadline decides, except new members
    /// that wait too long.
    fn alive_at(&self, now_ms: i64) -> bool {
        if self.awaiting_join.is_some() {
            !self.is_new || self.last_heartbeat_ms + NEW_MEMBER_JOIN_TIMEOUT_MS > now_ms
        } else if self.awaiting_sync.is_some() {
            true
        } else {
            self.last_heartbeat_ms + i64::from(self.session_timeout_ms) > now_ms
        }
    }
}

#[derive(Debug, Clone)]
pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader_id: Option<String>,
    members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with their expiry.
    pending_members: BTreeMap<String, i64>,
    /// group.instance.id -> member id.
    static_members: HashMap<String, String>,
    /// Members of this generation that have not sent SyncGroup yet.
    pending_sync: BTreeSet<String>,
    /// PreparingRebalance: when the join phase ends regardless.
    join_deadline_ms: Option<i64>,
    /// The initial delayed join: extensions left, and whether a member
    /// joined during the current delay.
    initial_delay_left_ms: Option<i64>,
    new_member_added: bool,
    /// When members still in `pending_sync` are dropped.
    sync_deadline_ms: Option<i64>,
    /// When the group entered its current state, on the core's clock, if
    /// known (set when it becomes Empty; restored from the metadata record).
    state_timestamp_ms: Option<i64>,
    pub offsets: BTreeMap<TopicPartition, OffsetAndMetadata>,
    /// Commits accepted but not yet durable, per partition.
    pending_offsets: BTreeMap<TopicPartition, usize>,
    next_seq: u64,
}

impl Group {
    fn new(id: &str) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: BTreeMap::new(),
            pending_members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_sync: BTreeSet::new(),
            join_deadline_ms: None,
            initial_delay_left_ms: None,
            new_member_added: false,
            sync_deadline_ms: None,
            state_timestamp_ms: None,
            offsets: BTreeMap::new(),
            pending_offsets: BTreeMap::new(),
            next_seq: 0,
        }
    }

    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    pub fn has_member(&self, member_id: &str) -> bool {
        self.members.contains_key(member_id)
    }

    pub fn is_pending_member(&self, member_id: &str) -> bool {
        self.pending_members.contains_key(member_id)
    }

    pub fn member(&self, member_id: &str) -> Option<&Member> {
        self.members.get(member_id)
    }

    /// Kafka's `isStaticMemberFenced`: the instance id belongs to another
    /// member id.
    fn static_fenced(&self, instance_id: Option<&str>, member_id: &str) -> bool {
        instance_id
            .and_then(|i| self.static_members.get(i))
            .is_some_and(|owner| owner != member_id)
    }

    fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    /// Protocol names every member supports.
    fn common_protocols(&self) -> Vec<String> {
        let mut it = self.members.values();
        let Some(first) = it.next() else {
            return Vec::new();
        };
        let mut names: Vec<String> = first.protocols.iter().map(|(n, _)| n.clone()).collect();
        for m in it {
            names.retain(|n| m.protocols.iter().any(|(p, _)| p == n));
        }
        names
    }

    fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        let common = self.common_protocols();
        protocols.iter().any(|(p, _)| common.contains(p))
    }

    /// Each member votes for its most preferred common protocol; most
    /// votes wins, ties go to the protocol the oldest member prefers.
    fn select_protocol(&self) -> Option<String> {
        let common = self.common_protocols();
        let mut votes: Vec<(String, usize)> = common.iter().map(|p| (p.clone(), 0)).collect();
        let mut by_age: Vec<&Member> = self.members.values().collect();
        by_age.sort_by_key(|m| m.seq);
        for m in &by_age {
            if let Some((name, _)) = m.protocols.iter().find(|(p, _)| common.contains(p)) {
                if let Some(v) = votes.iter_mut().find(|(p, _)| p == name) {
                    v.1 += 1;
                }
            }
        }
        let best = votes.iter().map(|(_, n)| *n).max()?;
        let first_choice = by_age.first().and_then(|m| {
            m.protocols
                .iter()
                .map(|(p, _)| p)
                .find(|p| votes.iter().any(|(v, n)| v == *p && *n == best))
        });
        first_choice.cloned()
    }

    fn all_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some())
    }

    pub fn summary(&self) -> GroupSummary {
        let stable = self.state == GroupState::Stable;
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let mut members: Vec<&Member> = self.members.values().collect();
        members.sort_by_key(|m| m.seq);
        GroupSummary {
            state: self.state,
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol_name: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            members: members
                .into_iter()
                .map(|m| MemberSummary {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata(&protocol)
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        }
    }

    /// Topics the members subscribe to, when their protocol is Kafka's
    /// consumer protocol (whose metadata starts with the topic list).
    fn subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = BTreeSet::new();
        for m in self.members.values() {
            topics.extend(records::consumer_subscription_topics(
                &m.metadata(protocol),
            )?);
        }
        Some(topics)
    }
}

/// Every group of one shard, and the output queue.
pub struct Coordinator {
    groups: HashMap<String, Group>,
    out: Vec<Output>,
    rng: u64,
    next_token: u64,
    pending_commits: HashMap<u64, PendingCommit>,
    /// Wall-clock ms minus core-clock ms (see the module docs).
    wall_offset_ms: i64,
    /// `offsets.retention.minutes` (in ms) and
    /// `offsets.retention.check.interval.ms`: `tick` expires offsets.
    offsets_retention: Option<OffsetsRetention>,
    /// Offsets expired so far (for the driver's log line).
    pub offsets_expired_total: u64,
}

#[derive(Debug, Clone, Copy)]
struct OffsetsRetention {
    retention_ms: i64,
    check_interval_ms: i64,
    next_check_ms: i64,
}

struct PendingCommit {
    reply_to: ReplyTo,
    group_id: String,
    offsets: Vec<(TopicPartition, OffsetAndMetadata)>,
    refused: CommitResult,
}

impl Coordinator {
    /// `seed` makes member ids reproducible in tests; the driver seeds it
    /// from the clock.
    pub fn new(seed: u64) -> Coordinator {
        Coordinator {
            groups: HashMap::new(),
            out: Vec::new(),
            rng: seed,
            next_token: 1,
            pending_commits: HashMap::new(),
            wall_offset_ms: 0,
            offsets_retention: None,
            offsets_expired_total: 0,
        }
    }

    /// Makes [`Coordinator::tick`] expire offsets (see the module docs)
    /// every `check_interval_ms`, the first time at `now_ms`.
    pub fn set_offsets_retention(
        &mut self,
        now_ms: i64,
        retention_ms: i64,
        check_interval_ms: i64,
    ) {
        assert!(retention_ms > 0 && check_interval_ms > 0);
        self.offsets_retention = Some(OffsetsRetention {
            retention_ms,
            check_interval_ms,
            next_check_ms: now_ms,
        });
    }

    /// Sets how the core's clock maps to the wall clock (wall = core +
    /// `offset_ms`), to read and write the wall-clock timestamps of
    /// records. Call before [`Coordinator::load`].
    pub fn set_wall_clock_offset(&mut self, offset_ms: i64) {
        self.wall_offset_ms = offset_ms;
    }

    pub fn drain(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.out)
    }

    pub fn group(&self, group_id: &str) -> Option<&Group> {
        self.groups.get(group_id)
    }

    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }

    fn next_random(&mut self) -> u64 {
        // splitmix64
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn new_member_id(&mut self, client_id: &str) -> String {
        let hi = self.next_random();
        let lo = self.next_random();
        let id =
            uuid::Builder::from_random_bytes((u128::from(hi) << 64 | u128::from(lo)).to_be_bytes())
                .into_uuid();
        format!("{client_id}-{id}")
    }

    // ----- JoinGroup -----

    pub fn join(&mut self, now_ms: i64, reply_to: ReplyTo, req: JoinRequest) {
        if let Err(e) = self.join_inner(now_ms, reply_to, &req) {
            self.out
                .push(Output::Join(reply_to, JoinResult::error(&req.member_id, e)));
        }
    }

    fn join_inner(
        &mut self,
        now_ms: i64,
        reply_to: ReplyTo,
        req: &JoinRequest,
    ) -> Result<(), GroupError> {
        if req.group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        if !(SESSION_TIMEOUT_MS_MIN..=SESSION_TIMEOUT_MS_MAX).contains(&req.session_timeout_ms) {
            return Err(GroupError::InvalidSessionTimeout);
        }
        if req.member_id.is_empty() {
            self.groups
                .entry(req.group_id.clone())
                .or_insert_with(|| Group::new(&req.group_id));
            self.join_new_member(now_ms, reply_to, req)
        } else {
            if !self.groups.contains_key(&req.group_id) {
                return Err(GroupError::UnknownMemberId);
            }
            self.join_known_member(now_ms, reply_to, req)
        }
    }

    fn join_new_member(
        &mut self,
        now_ms: i64,
        reply_to: ReplyTo,
        req: &JoinRequest,
    ) -> Result<(), GroupError> {
        let member_id = self.new_member_id(&req.client_id);
        let group = self.groups.get_mut(&req.group_id).expect("created");
        if group.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if !group.supports_protocols(&req.protocol_type, &req.protocols) {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        if group.members.len() + group.pending_members.len() >= GROUP_MEMBERS_MAX {
            return Err(GroupError::GroupMaxSizeReached);
        }
        if let Some(instance) = &req.group_instance_id {
            if let Some(old) = group.static_members.get(instance).cloned() {
                self.replace_static_member(now_ms, reply_to, req, &old, member_id);
                return Ok(());
            }
        } else if req.require_known_member_id {
            let expiry = now_ms + i64::from(req.session_timeout_ms);
            group.pending_members.insert(member_id.clone(), expiry);
            self.out.push(Output::Join(
                reply_to,
                JoinResult::error(&member_id, GroupError::MemberIdRequired),
            ));
            return Ok(());
        }
        self.add_member_and_rebalance(now_ms, reply_to, req, member_id);
        Ok(())
    }

    fn join_known_member(
        &mut self,
        now_ms: i64,
        reply_to: ReplyTo,
        req: &JoinRequest,
    ) -> Result<(), GroupError> {
        let group = self.groups.get_mut(&req.group_id).expect("checked");
        if group.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if !group.supports_protocols(&req.protocol_type, &req.protocols) {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        if group.pending_members.contains_key(&req.member_id) {
            if req.group_instance_id.is_some() {
                // Static members never get MEMBER_ID_REQUIRED.
                return Err(GroupError::UnknownMemberId);
            }
            group.pending_members.remove(&req.member_id);
            self.add_member_and_rebalance(now_ms, reply_to, req, req.member_id.clone());
            return Ok(());
        }
        if group.static_fenced(req.group_instance_id.as_deref(), &req.member_id) {
            return Err(GroupError::FencedInstanceId);
        }
        let Some(member) = group.members.get(&req.member_id) else {
            return Err(GroupError::UnknownMemberId);
        };
        let is_leader = group.leader_id.as_deref() == Some(member.id.as_str());
        let same = member.matches(&req.protocols);
        match group.state {
            GroupState::PreparingRebalance => {
                self.update_member_and_rebalance(now_ms, reply_to, req);
            }
            GroupState::CompletingRebalance if same => {
                // A repeated JoinGroup (lost response): answer again.
                let result = self.join_result(&req.group_id, &req.member_id, false);
                self.out.push(Output::Join(reply_to, result));
            }
            GroupState::Stable if same && !is_leader => {
                let result = self.join_result(&req.group_id, &req.member_id, false);
                self.out.push(Output::Join(reply_to, result));
            }
            GroupState::CompletingRebalance | GroupState::Stable | GroupState::Empty => {
                self.update_member_and_rebalance(now_ms, reply_to, req);
            }
            GroupState::Dead => return Err(GroupError::CoordinatorNotAvailable),
        }
        Ok(())
    }

    /// The JoinGroup answer for a member of the current generation.
    fn join_result(&self, group_id: &str, member_id: &str, skip_assignment: bool) -> JoinResult {
        let group = &self.groups[group_id];
        let leader = group.leader_id.clone().unwrap_or_default();
        let protocol = group.protocol_name.clone().unwrap_or_default();
        let members = if leader == member_id && !skip_assignment {
            let mut ms: Vec<&Member> = group.members.values().collect();
            ms.sort_by_key(|m| m.seq);
            ms.into_iter()
                .map(|m| JoinedMember {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    metadata: m.metadata(&protocol),
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinResult {
            error: None,
            generation_id: group.generation_id,
            protocol_type: group.protocol_type.clone(),
            protocol_name: group.protocol_name.clone(),
            leader,
            skip_assignment,
            member_id: member_id.to_string(),
            members,
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        now_ms: i64,
        reply_to: ReplyTo,
        req: &JoinRequest,
        member_id: String,
    ) {
        let group = self.groups.get_mut(&req.group_id).expect("exists");
        let seq = group.next_seq;
        group.next_seq += 1;
        let member = Member {
            id: member_id.clone(),
            instance_id: req.group_instance_id.clone(),
            client_id: req.client_id.clone(),
            client_host: req.client_host.clone(),
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            protocols: req.protocols.clone(),
            assignment: Bytes::new(),
            awaiting_join: Some(reply_to),
            awaiting_sync: None,
            last_heartbeat_ms: now_ms,
            is_new: true,
            seq,
        };
        if group.members.is_empty() {
            group.protocol_type = Some(req.protocol_type.clone());
        }
        if let Some(instance) = &req.group_instance_id {
            group
                .static_members
                .insert(instance.clone(), member_id.clone());
        }
        group.members.insert(member_id.clone(), member);
        if group.leader_id.is_none() {
            group.leader_id = Some(member_id);
        }
        if group.state == GroupState::PreparingRebalance && group.generation_id == 0 {
            group.new_member_added = true;
        }
        self.maybe_prepare_rebalance(now_ms, &req.group_id);
        self.try_complete_join(now_ms, &req.group_id);
    }

    fn update_member_and_rebalance(&mut self, now_ms: i64, reply_to: ReplyTo, req: &JoinRequest) {
        let group = self.groups.get_mut(&req.group_id).expect("exists");
        let member = group.members.get_mut(&req.member_id).expect("checked");
        if let Some(old) = member.awaiting_join.replace(reply_to) {
            // A second JoinGroup replaces the first; the first gets an
            // error so no request hangs.
            self.out.push(Output::Join(
                old,
                JoinResult::error(&req.member_id, GroupError::RebalanceInProgress),
            ));
        }
        member.protocols = req.protocols.clone();
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.session_timeout_ms = req.session_timeout_ms;
        member.last_heartbeat_ms = now_ms;
        self.maybe_prepare_rebalance(now_ms, &req.group_id);
        self.try_complete_join(now_ms, &req.group_id);
    }

    /// A known `group.instance.id` joins with an unknown member id: the new
    /// id replaces the old one, which is fenced from now on.
    fn replace_static_member(
        &mut self,
        now_ms: i64,
        reply_to: ReplyTo,
        req: &JoinRequest,
        old_id: &str,
        new_id: String,
    ) {
        let group = self.groups.get_mut(&req.group_id).expect("exists");
        let mut member = group.members.remove(old_id).expect("static member exists");
        if let Some(old) = member.awaiting_join.take() {
            self.out.push(Output::Join(
                old,
                JoinResult::error(old_id, GroupError::FencedInstanceId),
            ));
        }
        if let Some(old) = member.awaiting_sync.take() {
            self.out.push(Output::Sync(
                old,
                SyncResult::error(GroupError::FencedInstanceId),
            ));
        }
        let was_leader = group.leader_id.as_deref() == Some(old_id);
        let old_leader = group.leader_id.clone().unwrap_or_default();
        if was_leader {
            group.leader_id = Some(new_id.clone());
        }
        // Kafka moves a pending sync to the new id, so a restart just
        // before the old incarnation's sync deadline loses the new id to
        // that deadline. The new incarnation is fresh proof of life: its
        // session timeout covers it instead.
        group.pending_sync.remove(old_id);
        member.id = new_id.clone();
        member.last_heartbeat_ms = now_ms;
        member.protocols = req.protocols.clone();
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.session_timeout_ms = req.session_timeout_ms;
        group.static_members.insert(
            req.group_instance_id.clone().expect("static"),
            new_id.clone(),
        );
        let state = group.state;
        match state {
            GroupState::Stable => {
                group.members.insert(new_id.clone(), member);
                let next = group.select_protocol();
                if next == group.protocol_name {
                    // Same protocol: keep the assignment and answer with
                    // the old leader id so that a returning leader does
                    // not reassign a stable group.
                    let mut result = self.join_result(&req.group_id, &new_id, was_leader);
                    result.leader = old_leader;
                    result.members.clear();
                    self.out.push(Output::Join(reply_to, result));
                    self.persist_group(&req.group_id);
                } else {
                    let group = self.groups.get_mut(&req.group_id).expect("exists");
                    group
                        .members
                        .get_mut(&new_id)
                        .expect("inserted")
                        .awaiting_join = Some(reply_to);
                    self.prepare_rebalance(now_ms, &req.group_id);
                }
            }
            GroupState::CompletingRebalance | GroupState::PreparingRebalance => {
                member.awaiting_join = Some(reply_to);
                group.members.insert(new_id, member);
                if state == GroupState::CompletingRebalance {
                    self.prepare_rebalance(now_ms, &req.group_id);
                }
                self.try_complete_join(now_ms, &req.group_id);
            }
            GroupState::Empty | GroupState::Dead => {
                unreachable!("a group with a static member is neither Empty nor Dead")
            }
        }
    }

    fn maybe_prepare_rebalance(&mut self, now_ms: i64, group_id: &str) {
        let state = self.groups[group_id].state;
        if matches!(
            state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        ) {
            self.prepare_rebalance(now_ms, group_id);
        }
    }

    fn prepare_rebalance(&mut self, now_ms: i64, group_id: &str) {
        let group = self.groups.get_mut(group_id).expect("exists");
        if group.state == GroupState::CompletingRebalance {
            // The members waiting for their assignment must rejoin.
            for m in group.members.values_mut() {
                if let Some(to) = m.awaiting_sync.take() {
                    self.out.push(Output::Sync(
                        to,
                        SyncResult::error(GroupError::RebalanceInProgress),
                    ));
                }
            }
        }
        group.pending_sync.clear();
        group.sync_deadline_ms = None;
        let timeout = group.rebalance_timeout_ms();
        if group.state == GroupState::Empty {
            let delay = INITIAL_REBALANCE_DELAY_MS.min(timeout);
            group.join_deadline_ms = Some(now_ms + delay);
            group.initial_delay_left_ms = Some(timeout - delay);
            group.new_member_added = false;
        } else {
            group.join_deadline_ms = Some(now_ms + timeout);
            group.initial_delay_left_ms = None;
        }
        group.state = GroupState::PreparingRebalance;
    }

    /// Completes the join phase once every member rejoined (never during
    /// the initial delay).
    fn try_complete_join(&mut self, now_ms: i64, group_id: &str) {
        let group = &self.groups[group_id];
        if group.state == GroupState::PreparingRebalance
            && group.initial_delay_left_ms.is_none()
            && group.all_joined()
        {
            self.complete_join(now_ms, group_id);
        }
    }

    fn complete_join(&mut self, now_ms: i64, group_id: &str) {
        let group = self.groups.get_mut(group_id).expect("exists");
        let gone: Vec<String> = group
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            Self::remove_member_quietly(&mut self.out, group, &id);
        }
        group.join_deadline_ms = None;
        group.initial_delay_left_ms = None;
        group.generation_id += 1;
        if group.members.is_empty() {
            group.protocol_name = None;
            group.state = GroupState::Empty;
            group.state_timestamp_ms = Some(now_ms);
            group.leader_id = None;
            self.persist_group(group_id);
            return;
        }
        group.protocol_name = group.select_protocol();
        group.state = GroupState::CompletingRebalance;
        let leader_ok = group
            .leader_id
            .as_ref()
            .is_some_and(|l| group.members.contains_key(l));
        if !leader_ok {
            group.leader_id = group
                .members
                .values()
                .min_by_key(|m| m.seq)
                .map(|m| m.id.clone());
        }
        group.pending_sync = group.members.keys().cloned().collect();
        group.sync_deadline_ms = Some(now_ms + group.rebalance_timeout_ms());
        let mut replies = Vec::new();
        for m in group.members.values_mut() {
            let to = m.awaiting_join.take().expect("every member rejoined");
            m.last_heartbeat_ms = now_ms;
            m.is_new = false;
            // The old generation's assignment is void; the metadata record
            // written now must not look like a Stable group's on replay.
            m.assignment = Bytes::new();
            replies.push((to, m.id.clone()));
        }
        for (to, id) in replies {
            let result = self.join_result(group_id, &id, false);
            self.out.push(Output::Join(to, result));
        }
        self.persist_group(group_id);
    }

    /// Removes a member, answering its parked requests with
    /// UNKNOWN_MEMBER_ID; the caller updates the group's state.
    fn remove_member_quietly(out: &mut Vec<Output>, group: &mut Group, member_id: &str) {
        let Some(mut m) = group.members.remove(member_id) else {
            return;
        };
        if let Some(to) = m.awaiting_join.take() {
            out.push(Output::Join(
                to,
                JoinResult::error(member_id, GroupError::UnknownMemberId),
            ));
        }
        if let Some(to) = m.awaiting_sync.take() {
            out.push(Output::Sync(
                to,
                SyncResult::error(GroupError::UnknownMemberId),
            ));
        }
        if let Some(instance) = &m.instance_id {
            if group.static_members.get(instance).map(String::as_str) == Some(member_id) {
                group.static_members.remove(instance);
            }
        }
        group.pending_sync.remove(member_id);
        if group.leader_id.as_deref() == Some(member_id) {
            group.leader_id = group
                .members
                .values()
                .min_by_key(|m| m.seq)
                .map(|m| m.id.clone());
        }
    }

    /// Removes a member and moves the group on (Kafka's
    /// `removeMemberAndUpdateGroup`).
    fn remove_member(&mut self, now_ms: i64, group_id: &str, member_id: &str) {
        let group = self.groups.get_mut(group_id).expect("exists");
        Self::remove_member_quietly(&mut self.out, group, member_id);
        match group.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now_ms, group_id);
                self.try_complete_join(now_ms, group_id);
            }
            GroupState::PreparingRebalance => self.try_complete_join(now_ms, group_id),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    // ----- SyncGroup -----

    pub fn sync(&mut self, now_ms: i64, reply_to: ReplyTo, req: SyncRequest) {
        if let Err(e) = self.sync_inner(now_ms, reply_to, &req) {
            self.out.push(Output::Sync(reply_to, SyncResult::error(e)));
        }
    }

    fn sync_inner(
        &mut self,
        now_ms: i64,
        reply_to: ReplyTo,
        req: &SyncRequest,
    ) -> Result<(), GroupError> {
        if req.group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let group = self
            .groups
            .get_mut(&req.group_id)
            .ok_or(GroupError::UnknownMemberId)?;
        Self::check_member(
            group,
            req.group_instance_id.as_deref(),
            &req.member_id,
            req.generation_id,
        )?;
        if req.protocol_type.is_some() && req.protocol_type != group.protocol_type {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        if req.protocol_name.is_some() && req.protocol_name != group.protocol_name {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        match group.state {
            GroupState::Empty => Err(GroupError::UnknownMemberId),
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            GroupState::Dead => Err(GroupError::CoordinatorNotAvailable),
            GroupState::CompletingRebalance => {
                group.pending_sync.remove(&req.member_id);
                let member = group.members.get_mut(&req.member_id).expect("checked");
                member.last_heartbeat_ms = now_ms;
                if let Some(old) = member.awaiting_sync.replace(reply_to) {
                    self.out.push(Output::Sync(
                        old,
                        SyncResult::error(GroupError::RebalanceInProgress),
                    ));
                }
                if group.leader_id.as_deref() == Some(req.member_id.as_str()) {
                    self.complete_sync(now_ms, &req.group_id, &req.assignments);
                }
                Ok(())
            }
            GroupState::Stable => {
                group.pending_sync.remove(&req.member_id);
                let member = group.members.get_mut(&req.member_id).expect("checked");
                member.last_heartbeat_ms = now_ms;
                let result = SyncResult {
                    error: None,
                    protocol_type: group.protocol_type.clone(),
                    protocol_name: group.protocol_name.clone(),
                    assignment: member.assignment.clone(),
                };
                self.out.push(Output::Sync(reply_to, result));
                Ok(())
            }
        }
    }

    /// The leader's assignment: every member gets its part (or nothing),
    /// the waiting ones are answered, and the group is Stable.
    ///
    /// Members answered now get a fresh session: they may have waited on
    /// the leader for most of it.
    fn complete_sync(&mut self, now_ms: i64, group_id: &str, assignments: &[(String, Bytes)]) {
        let group = self.groups.get_mut(group_id).expect("exists");
        for m in group.members.values_mut() {
            m.assignment = assignments
                .iter()
                .find(|(id, _)| *id == m.id)
                .map(|(_, a)| a.clone())
                .unwrap_or_default();
            if let Some(to) = m.awaiting_sync.take() {
                m.last_heartbeat_ms = now_ms;
                self.out.push(Output::Sync(
                    to,
                    SyncResult {
                        error: None,
                        protocol_type: group.protocol_type.clone(),
                        protocol_name: group.protocol_name.clone(),
                        assignment: m.assignment.clone(),
                    },
                ));
            }
        }
        group.state = GroupState::Stable;
        self.persist_group(group_id);
    }

    /// The checks SyncGroup, Heartbeat and member commits share, in
    /// Kafka's order.
    fn check_member(
        group: &Group,
        instance_id: Option<&str>,
        member_id: &str,
        generation_id: i32,
    ) -> Result<(), GroupError> {
        if group.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if group.static_fenced(instance_id, member_id) {
            return Err(GroupError::FencedInstanceId);
        }
        if !group.members.contains_key(member_id) {
            return Err(GroupError::UnknownMemberId);
        }
        if generation_id != group.generation_id {
            return Err(GroupError::IllegalGeneration);
        }
        Ok(())
    }

    // ----- Heartbeat and LeaveGroup -----

    pub fn heartbeat(
        &mut self,
        now_ms: i64,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let group = self
            .groups
            .get_mut(group_id)
            .ok_or(GroupError::UnknownMemberId)?;
        Self::check_member(group, instance_id, member_id, generation_id)?;
        let state = group.state;
        let member = group.members.get_mut(member_id).expect("checked");
        match state {
            GroupState::Empty => Err(GroupError::UnknownMemberId),
            GroupState::Dead => Err(GroupError::CoordinatorNotAvailable),
            GroupState::PreparingRebalance => {
                member.last_heartbeat_ms = now_ms;
                Err(GroupError::RebalanceInProgress)
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                member.last_heartbeat_ms = now_ms;
                Ok(())
            }
        }
    }

    /// LeaveGroup for each (member id, instance id); the outer error is
    /// for the whole request.
    #[allow(clippy::type_complexity)]
    pub fn leave(
        &mut self,
        now_ms: i64,
        group_id: &str,
        leaving: &[(String, Option<String>)],
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let Some(group) = self.groups.get(group_id) else {
            return Ok(leaving
                .iter()
                .map(|_| Err(GroupError::UnknownMemberId))
                .collect());
        };
        if group.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let mut results = Vec::with_capacity(leaving.len());
        for (member_id, instance_id) in leaving {
            results.push(self.leave_one(now_ms, group_id, member_id, instance_id.as_deref()));
        }
        Ok(results)
    }

    fn leave_one(
        &mut self,
        now_ms: i64,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        let group = self.groups.get_mut(group_id).expect("exists");
        // An empty member id with an instance id names the static member.
        let id = match (member_id.is_empty(), instance_id) {
            (true, Some(i)) => group
                .static_members
                .get(i)
                .cloned()
                .ok_or(GroupError::UnknownMemberId)?,
            _ => member_id.to_string(),
        };
        if group.static_fenced(instance_id, &id) {
            return Err(GroupError::FencedInstanceId);
        }
        if group.pending_members.remove(&id).is_some() {
            self.try_complete_join(now_ms, group_id);
            return Ok(());
        }
        if !group.members.contains_key(&id) {
            return Err(GroupError::UnknownMemberId);
        }
        self.remove_member(now_ms, group_id, &id);
        Ok(())
    }

    // ----- Time -----

    /// Fires every deadline at or before `now_ms`: pending and session
    /// expiries, the end of join phases, members that never synced.
    pub fn tick(&mut self, now_ms: i64) {
        let mut ids: Vec<String> = self.groups.keys().cloned().collect();
        ids.sort();
        for id in ids {
            self.tick_group(now_ms, &id);
        }
        if let Some(r) = &mut self.offsets_retention {
            if now_ms >= r.next_check_ms {
                r.next_check_ms = now_ms + r.check_interval_ms;
                let retention_ms = r.retention_ms;
                self.expire_offsets(now_ms, retention_ms);
            }
        }
    }

    fn tick_group(&mut self, now_ms: i64, group_id: &str) {
        let group = self.groups.get_mut(group_id).expect("exists");
        let before = group.pending_members.len();
        group.pending_members.retain(|_, expiry| *expiry > now_ms);
        if group.pending_members.len() != before {
            self.try_complete_join(now_ms, group_id);
        }
        let expired: Vec<String> = self.groups[group_id]
            .members
            .values()
            .filter(|m| !m.alive_at(now_ms))
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            self.remove_member(now_ms, group_id, &id);
        }
        let group = &self.groups[group_id];
        if group.state == GroupState::PreparingRebalance
            && group.join_deadline_ms.is_some_and(|d| d <= now_ms)
        {
            self.join_deadline_passed(now_ms, group_id);
        }
        let group = &self.groups[group_id];
        if matches!(
            group.state,
            GroupState::CompletingRebalance | GroupState::Stable
        ) && group.sync_deadline_ms.is_some_and(|d| d <= now_ms)
        {
            let group = self.groups.get_mut(group_id).expect("exists");
            group.sync_deadline_ms = None;
            let laggards: Vec<String> = group.pending_sync.iter().cloned().collect();
            if !laggards.is_empty() {
                for id in &laggards {
                    Self::remove_member_quietly(&mut self.out, group, id);
                }
                self.prepare_rebalance(now_ms, group_id);
                self.try_complete_join(now_ms, group_id);
            }
        }
    }

    fn join_deadline_passed(&mut self, now_ms: i64, group_id: &str) {
        let group = self.groups.get_mut(group_id).expect("exists");
        if let Some(left) = group.initial_delay_left_ms {
            if group.new_member_added && left > 0 {
                let delay = INITIAL_REBALANCE_DELAY_MS.min(left);
                group.join_deadline_ms = Some(now_ms + delay);
                group.initial_delay_left_ms = Some(left - delay);
                group.new_member_added = false;
                return;
            }
        }
        self.complete_join(now_ms, group_id);
    }

    /// The earliest deadline of any group, for drivers that sleep.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        let mut next: Option<i64> = None;
        let mut take = |d: i64| next = Some(next.map_or(d, |n: i64| n.min(d)));
        for g in self.groups.values() {
            g.join_deadline_ms.into_iter().for_each(&mut take);
            g.sync_deadline_ms.into_iter().for_each(&mut take);
            g.pending_members.values().for_each(|d| take(*d));
            for m in g.members.values() {
                if m.awaiting_join.is_none() && m.awaiting_sync.is_none() {
                    take(m.last_heartbeat_ms + i64::from(m.session_timeout_ms));
                } else if m.is_new {
                    take(m.last_heartbeat_ms + NEW_MEMBER_JOIN_TIMEOUT_MS);
                }
            }
        }
        next
    }

    // ----- Offsets -----

    pub fn commit(&mut self, now_ms: i64, reply_to: ReplyTo, req: CommitRequest) {
        match self.check_commit(now_ms, &req) {
            Err(e) => {
                let result = req
                    .offsets
                    .iter()
                    .map(|(tp, _)| (tp.clone(), Err(e)))
                    .collect();
                self.out.push(Output::Commit(reply_to, result));
            }
            Ok(()) => self.store_offsets(reply_to, req),
        }
    }

    /// Kafka's `validateOffsetCommit`, creating the group for a simple
    /// (generation -1) commit.
    /// Kafka's `doCommitOffsets` checks, creating the group for a simple
    /// (generation -1) commit. An empty group id is valid here, as in
    /// Kafka (old clients commit offsets for the group "").
    fn check_commit(&mut self, now_ms: i64, req: &CommitRequest) -> Result<(), GroupError> {
        if !self.groups.contains_key(&req.group_id) {
            if req.generation_id < 0 {
                self.groups
                    .insert(req.group_id.clone(), Group::new(&req.group_id));
            } else {
                return Err(GroupError::IllegalGeneration);
            }
        }
        let group = self.groups.get_mut(&req.group_id).expect("exists");
        if group.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if group.static_fenced(req.group_instance_id.as_deref(), &req.member_id) {
            return Err(GroupError::FencedInstanceId);
        }
        if req.generation_id < 0 && group.state == GroupState::Empty {
            // The group only stores offsets (assign()-mode consumers).
            return Ok(());
        }
        Self::check_member(
            group,
            req.group_instance_id.as_deref(),
            &req.member_id,
            req.generation_id,
        )?;
        match group.state {
            GroupState::CompletingRebalance => Err(GroupError::RebalanceInProgress),
            _ => {
                let member = group.members.get_mut(&req.member_id).expect("checked");
                member.last_heartbeat_ms = now_ms;
                Ok(())
            }
        }
    }

    fn store_offsets(&mut self, reply_to: ReplyTo, req: CommitRequest) {
        let mut refused = Vec::new();
        let mut accepted = Vec::new();
        for (tp, om) in req.offsets {
            if om.metadata.len() > OFFSET_METADATA_BYTES_MAX {
                refused.push((tp, Err(GroupError::OffsetMetadataTooLarge)));
            } else {
                accepted.push((tp, om));
            }
        }
        if accepted.is_empty() {
            self.out.push(Output::Commit(reply_to, refused));
            return;
        }
        let group = self.groups.get_mut(&req.group_id).expect("exists");
        for (tp, _) in &accepted {
            *group.pending_offsets.entry(tp.clone()).or_default() += 1;
        }
        let records = accepted
            .iter()
            .map(|((topic, partition), om)| {
                records::offset_commit(&req.group_id, topic, *partition, om)
            })
            .collect();
        let token = self.next_token;
        self.next_token += 1;
        self.pending_commits.insert(
            token,
            PendingCommit {
                reply_to,
                group_id: req.group_id.clone(),
                offsets: accepted,
                refused,
            },
        );
        self.out.push(Output::Persist {
            token: Some(token),
            group_id: req.group_id,
            records,
        });
    }

    /// The driver made the records of `token` durable (`ok`) or could not.
    /// Commits become visible and are acknowledged only here.
    pub fn persisted(&mut self, token: u64, ok: bool) {
        self.persisted_with(
            token,
            if ok {
                Ok(())
            } else {
                Err(GroupError::StorageFailed)
            },
        );
    }

    /// As [`Coordinator::persisted`], with the reason of a failure, which
    /// every offset of the commit gets (Kafka maps the append's error to
    /// NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE or REQUEST_TIMED_OUT).
    pub fn persisted_with(&mut self, token: u64, outcome: Result<(), GroupError>) {
        let ok = outcome.is_ok();
        let Some(pending) = self.pending_commits.remove(&token) else {
            return;
        };
        let mut result = pending.refused;
        let mut group = self.groups.get_mut(&pending.group_id);
        for (tp, om) in pending.offsets {
            if let Some(g) = group.as_deref_mut() {
                if let Some(n) = g.pending_offsets.get_mut(&tp) {
                    *n -= 1;
                    if *n == 0 {
                        g.pending_offsets.remove(&tp);
                    }
                }
                if ok && g.state != GroupState::Dead {
                    g.offsets.insert(tp.clone(), om);
                }
            }
            result.push((tp, outcome));
        }
        self.out.push(Output::Commit(pending.reply_to, result));
    }

    /// Committed offsets of a group: the listed partitions (`None` where
    /// nothing is committed), or all of them.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[TopicPartition]>,
    ) -> Vec<(TopicPartition, Option<OffsetAndMetadata>)> {
        let group = self.groups.get(group_id);
        match partitions {
            Some(list) => list
                .iter()
                .map(|tp| (tp.clone(), group.and_then(|g| g.offsets.get(tp)).cloned()))
                .collect(),
            None => group
                .map(|g| {
                    g.offsets
                        .iter()
                        .map(|(tp, om)| (tp.clone(), Some(om.clone())))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Whether commits to the listed partitions wait for durability
    /// (OffsetFetch with `require_stable`).
    pub fn has_pending_offsets(&self, group_id: &str, tp: &TopicPartition) -> bool {
        self.groups
            .get(group_id)
            .is_some_and(|g| g.pending_offsets.contains_key(tp))
    }

    pub fn delete_offsets(
        &mut self,
        group_id: &str,
        partitions: &[TopicPartition],
    ) -> Result<CommitResult, GroupError> {
        let group = self
            .groups
            .get_mut(group_id)
            .filter(|g| g.state != GroupState::Dead)
            .ok_or(GroupError::GroupIdNotFound)?;
        let subscribed = if group.state == GroupState::Empty {
            BTreeSet::new()
        } else {
            group.subscribed_topics().ok_or(GroupError::NonEmptyGroup)?
        };
        let mut result = Vec::new();
        let mut tombstones = Vec::new();
        for tp in partitions {
            if subscribed.contains(&tp.0) {
                result.push((tp.clone(), Err(GroupError::GroupSubscribedToTopic)));
                continue;
            }
            if group.offsets.remove(tp).is_some() {
                tombstones.push(records::offset_tombstone(group_id, &tp.0, tp.1));
            }
            result.push((tp.clone(), Ok(())));
        }
        if !tombstones.is_empty() {
            self.out.push(Output::Persist {
                token: None,
                group_id: group_id.to_string(),
                records: tombstones,
            });
        }
        Ok(result)
    }

    pub fn delete_group(&mut self, group_id: &str) -> Result<(), GroupError> {
        let group = self
            .groups
            .get(group_id)
            .filter(|g| g.state != GroupState::Dead)
            .ok_or(GroupError::GroupIdNotFound)?;
        if group.state != GroupState::Empty {
            return Err(GroupError::NonEmptyGroup);
        }
        let mut group = self.groups.remove(group_id).expect("exists");
        group.state = GroupState::Dead;
        let mut tombstones: Vec<Record> = group
            .offsets
            .keys()
            .map(|(t, p)| records::offset_tombstone(group_id, t, *p))
            .collect();
        tombstones.push(records::group_tombstone(group_id));
        self.out.push(Output::Persist {
            token: None,
            group_id: group_id.to_string(),
            records: tombstones,
        });
        Ok(())
    }

    /// Expires committed offsets older than `retention_ms` (see the module
    /// docs), emitting their tombstones; returns how many expired.
    pub fn expire_offsets(&mut self, now_ms: i64, retention_ms: i64) -> usize {
        let mut ids: Vec<String> = self.groups.keys().cloned().collect();
        ids.sort();
        let mut total = 0;
        for id in ids {
            total += self.expire_group_offsets(now_ms, retention_ms, &id);
        }
        self.offsets_expired_total += total as u64;
        total
    }

    fn expire_group_offsets(&mut self, now_ms: i64, retention_ms: i64, group_id: &str) -> usize {
        let wall_offset_ms = self.wall_offset_ms;
        let group = self.groups.get_mut(group_id).expect("exists");
        // (base time of an offset, topics kept whatever their age)
        let commit_time = |om: &OffsetAndMetadata| om.commit_timestamp_ms - wall_offset_ms;
        let rule: Option<(Option<i64>, BTreeSet<String>)> =
            match (group.protocol_type.as_deref(), group.state) {
                (_, GroupState::Dead) => None,
                (Some(_), GroupState::Empty) => Some((group.state_timestamp_ms, BTreeSet::new())),
                (Some("consumer"), GroupState::Stable) => {
                    group.subscribed_topics().map(|topics| (None, topics))
                }
                (None, _) => Some((None, BTreeSet::new())),
                _ => None,
            };
        let Some((state_base, kept_topics)) = rule else {
            return 0;
        };
        let expired: Vec<TopicPartition> = group
            .offsets
            .iter()
            .filter(|(tp, om)| {
                !kept_topics.contains(&tp.0)
                    && !group.pending_offsets.contains_key(*tp)
                    && now_ms - state_base.unwrap_or_else(|| commit_time(om)) >= retention_ms
            })
            .map(|(tp, _)| tp.clone())
            .collect();
        let mut records: Vec<Record> = Vec::with_capacity(expired.len() + 1);
        for tp in &expired {
            group.offsets.remove(tp);
            records.push(records::offset_tombstone(group_id, &tp.0, tp.1));
        }
        // Kafka's cleanupGroupMetadata: an Empty group with nothing left
        // is removed.
        let dead = group.state == GroupState::Empty
            && group.offsets.is_empty()
            && group.pending_offsets.is_empty()
            && group.pending_members.is_empty();
        if dead {
            self.groups.remove(group_id);
            records.push(records::group_tombstone(group_id));
        }
        if !records.is_empty() {
            self.out.push(Output::Persist {
                token: None,
                group_id: group_id.to_string(),
                records,
            });
        }
        expired.len()
    }

    fn persist_group(&mut self, group_id: &str) {
        let group = &self.groups[group_id];
        let state_ts = group
            .state_timestamp_ms
            .map_or(-1, |ts| ts + self.wall_offset_ms);
        let record = records::group_metadata(group, state_ts);
        self.out.push(Output::Persist {
            token: None,
            group_id: group_id.to_string(),
            records: vec![record],
        });
    }

    // ----- Replay -----

    /// A group as its last metadata record left it. A Stable group (one
    /// whose leader handed out assignments) comes back with its members,
    /// whose sessions start now, so a broker restart needs no rebalance;
    /// a group that was rebalancing comes back Empty, keeping only its
    /// generation so members of older generations stay fenced.
    fn restore_group(&mut self, now_ms: i64, group_id: &str, meta: records::GroupMeta) {
        let mut g = Group::new(group_id);
        if let Some(old) = self.groups.remove(group_id) {
            g.offsets = old.offsets;
        }
        g.generation_id = meta.generation_id;
        g.protocol_type = (!meta.protocol_type.is_empty()).then_some(meta.protocol_type);
        g.state_timestamp_ms = meta
            .current_state_timestamp_ms
            .map(|ts| ts - self.wall_offset_ms);
        let stable = meta.protocol.is_some()
            && meta.members.iter().any(|m| !m.assignment.is_empty())
            && meta
                .leader
                .as_ref()
                .is_some_and(|l| meta.members.iter().any(|m| m.member_id == *l));
        if stable {
            let protocol = meta.protocol.clone().unwrap_or_default();
            for (seq, m) in meta.members.into_iter().enumerate() {
                if let Some(instance) = &m.group_instance_id {
                    g.static_members
                        .insert(instance.clone(), m.member_id.clone());
                }
                g.members.insert(
                    m.member_id.clone(),
                    Member {
                        id: m.member_id,
                        instance_id: m.group_instance_id,
                        client_id: m.client_id,
                        client_host: m.client_host,
                        session_timeout_ms: m.session_timeout_ms,
                        rebalance_timeout_ms: m.rebalance_timeout_ms,
                        protocols: vec![(protocol.clone(), m.subscription)],
                        assignment: m.assignment,
                        awaiting_join: None,
                        awaiting_sync: None,
                        last_heartbeat_ms: now_ms,
                        is_new: false,
                        seq: seq as u64,
                    },
                );
            }
            g.next_seq = g.members.len() as u64;
            g.protocol_name = meta.protocol;
            g.leader_id = meta.leader;
            g.state = GroupState::Stable;
        }
        self.groups.insert(group_id.to_string(), g);
    }

    /// Forgets every group whose offsets partition (of `partitions`) is
    /// `partition`: this shard stopped leading it, so another broker now
    /// coordinates those groups from the replicated log (Kafka's
    /// `GroupMetadataManager.removeGroupsForPartition`). Members waiting in
    /// a JoinGroup or SyncGroup are answered NOT_COORDINATOR so they find
    /// the new coordinator. Commits waiting for their append are answered
    /// by [`Coordinator::persisted_with`] as the append ends: an append
    /// the ISR took is committed whoever leads now. Returns how many
    /// groups were removed.
    pub fn unload_partition(&mut self, partition: i32, partitions: i32) -> usize {
        let ids: Vec<String> = self
            .groups
            .keys()
            .filter(|id| super::partition_for(id, partitions) == partition)
            .cloned()
            .collect();
        for id in &ids {
            let Some(group) = self.groups.remove(id) else {
                continue;
            };
            for m in group.members.values() {
                if let Some(to) = m.awaiting_join {
                    self.out.push(Output::Join(
                        to,
                        JoinResult::error(&m.id, GroupError::NotCoordinator),
                    ));
                }
                if let Some(to) = m.awaiting_sync {
                    self.out.push(Output::Sync(
                        to,
                        SyncResult::error(GroupError::NotCoordinator),
                    ));
                }
            }
        }
        ids.len()
    }

    /// Applies one record read back from `__consumer_offsets` at start;
    /// the last value per key wins. Unreadable records are skipped.
    pub fn load(
        &mut self,
        now_ms: i64,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), records::RecordError> {
        match records::decode(key, value)? {
            records::Decoded::Offset {
                group,
                topic,
                partition,
                value,
            } => {
                let tp = (topic, partition);
                match value {
                    Some(om) => {
                        self.groups
                            .entry(group.clone())
                            .or_insert_with(|| Group::new(&group))
                            .offsets
                            .insert(tp, om);
                    }
                    None => {
                        if let Some(g) = self.groups.get_mut(&group) {
                            g.offsets.remove(&tp);
                        }
                    }
                }
            }
            records::Decoded::Group { group, value } => match value {
                Some(meta) => self.restore_group(now_ms, &group, meta),
                None => {
                    self.groups.remove(&group);
                }
            },
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: &str = "g";

    fn join_req(member_id: &str, instance: Option<&str>) -> JoinRequest {
        JoinRequest {
            group_id: G.into(),
            member_id: member_id.into(),
            group_instance_id: instance.map(str::to_string),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 20_000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), records::tests_support::subscription(&["t"]))],
            require_known_member_id: true,
        }
    }

    fn joins(out: &[Output]) -> Vec<(ReplyTo, JoinResult)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Join(to, r) => Some((*to, r.clone())),
                _ => None,
            })
            .collect()
    }

    fn sync_req(member_id: &str, generation: i32, assign: &[(&str, &[u8])]) -> SyncRequest {
        SyncRequest {
            group_id: G.into(),
            generation_id: generation,
            member_id: member_id.into(),
            group_instance_id: None,
            protocol_type: None,
            protocol_name: None,
            assignments: assign
                .iter()
                .map(|(m, a)| (m.to_string(), Bytes::copy_from_slice(a)))
                .collect(),
        }
    }

    /// A new member: MEMBER_ID_REQUIRED, then the real join.
    fn new_member(c: &mut Coordinator, now: i64, to: ReplyTo) -> String {
        c.join(now, to, join_req("", None));
        let out = c.drain();
        let (_, r) = &joins(&out)[0];
        assert_eq!(r.error, Some(GroupError::MemberIdRequired));
        assert!(r.member_id.starts_with("c-"));
        c.join(now, to, join_req(&r.member_id, None));
        r.member_id.clone()
    }

    /// Two members in a Stable generation 1; returns (leader, follower).
    fn stable_pair(c: &mut Coordinator) -> (String, String) {
        let a = new_member(c, 0, 1);
        let b = new_member(c, 10, 2);
        assert!(
            joins(&c.drain()).is_empty(),
            "the initial delay holds the join"
        );
        // b joined during the delay, which extends it once.
        c.tick(INITIAL_REBALANCE_DELAY_MS + 1);
        assert!(joins(&c.drain()).is_empty(), "extended");
        c.tick(2 * INITIAL_REBALANCE_DELAY_MS + 2);
        let out = joins(&c.drain());
        assert_eq!(out.len(), 2);
        let leader = out.iter().find(|(_, r)| !r.members.is_empty()).unwrap();
        assert_eq!(leader.1.member_id, a, "the first joiner leads");
        assert_eq!(leader.1.members.len(), 2);
        assert!(out
            .iter()
            .all(|(_, r)| r.generation_id == 1 && r.leader == a));
        c.sync(9_000, 3, sync_req(&b, 1, &[]));
        assert!(c.drain().is_empty(), "the follower waits for the leader");
        c.sync(9_000, 4, sync_req(&a, 1, &[(&a, b"A"), (&b, b"B")]));
        let out = c.drain();
        let synced: Vec<_> = out
            .iter()
            .filter_map(|o| match o {
                Output::Sync(to, r) => Some((*to, r.assignment.clone())),
                _ => None,
            })
            .collect();
        assert!(synced.contains(&(3, Bytes::from_static(b"B"))));
        assert!(synced.contains(&(4, Bytes::from_static(b"A"))));
        assert_eq!(c.group(G).unwrap().state, GroupState::Stable);
        (a, b)
    }

    #[test]
    fn join_sync_heartbeat_and_fencing() {
        let mut c = Coordinator::new(1);
        let (a, b) = stable_pair(&mut c);
        assert_eq!(c.heartbeat(9_100, G, &b, None, 1), Ok(()));
        assert_eq!(
            c.heartbeat(9_100, G, &b, None, 0),
            Err(GroupError::IllegalGeneration)
        );
        assert_eq!(
            c.heartbeat(9_100, G, "ghost", None, 1),
            Err(GroupError::UnknownMemberId)
        );
        assert_eq!(
            c.heartbeat(9_100, "nope", &b, None, 1),
            Err(GroupError::UnknownMemberId)
        );
        // b stops heartbeating: its session ends, a rebalance starts, a is
        // told and rejoins alone into generation 2.
        c.heartbeat(15_000, G, &a, None, 1).unwrap();
        c.tick(19_200);
        assert!(!c.group(G).unwrap().has_member(&b));
        assert_eq!(
            c.heartbeat(19_300, G, &a, None, 1),
            Err(GroupError::RebalanceInProgress)
        );
        c.join(19_400, 5, join_req(&a, None));
        let out = joins(&c.drain());
        assert_eq!(out[0].1.generation_id, 2);
        assert_eq!(out[0].1.members.len(), 1);
    }

    #[test]
    fn rebalance_timeout_drops_members_that_do_not_rejoin() {
        let mut c = Coordinator::new(2);
        let (a, b) = stable_pair(&mut c);
        // A third member joins; a rejoins, b keeps heartbeating but never
        // rejoins: at the rebalance timeout b is out.
        let n = new_member(&mut c, 10_000, 6);
        c.join(10_100, 7, join_req(&a, None));
        for t in (10_200..30_000).step_by(1_000) {
            let _ = c.heartbeat(t, G, &b, None, 1);
            c.tick(t);
        }
        c.tick(30_001);
        let out = joins(&c.drain());
        let g = c.group(G).unwrap();
        assert_eq!(g.state, GroupState::CompletingRebalance);
        assert_eq!(g.generation_id, 2);
        assert!(g.has_member(&a) && g.has_member(&n) && !g.has_member(&b));
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn static_member_restart_keeps_its_assignment_and_fences_the_old_id() {
        let mut c = Coordinator::new(3);
        c.join(0, 1, join_req("", Some("i1")));
        c.tick(INITIAL_REBALANCE_DELAY_MS + 1);
        let first = joins(&c.drain())[0].1.clone();
        assert_eq!(first.error, None, "static members skip MEMBER_ID_REQUIRED");
        let old = first.member_id.clone();
        c.sync(5_000, 2, sync_req(&old, 1, &[(&old, b"P")]));
        c.drain();
        // The instance restarts with no member id.
        c.join(6_000, 3, join_req("", Some("i1")));
        let again = joins(&c.drain())[0].1.clone();
        assert_eq!(again.generation_id, 1, "no rebalance");
        assert_ne!(again.member_id, old);
        assert!(
            again.skip_assignment,
            "the returning leader must not reassign"
        );
        assert_eq!(
            c.heartbeat(6_100, G, &old, Some("i1"), 1),
            Err(GroupError::FencedInstanceId)
        );
        c.sync(6_200, 4, sync_req(&again.member_id, 1, &[]));
        let out = c.drain();
        assert!(matches!(&out[0], Output::Sync(4, r) if r.assignment == Bytes::from_static(b"P")));
    }

    #[test]
    fn commits_are_checked_and_acknowledged_when_durable() {
        let mut c = Coordinator::new(4);
        let (a, _b) = stable_pair(&mut c);
        let om = |offset| OffsetAndMetadata {
            offset,
            leader_epoch: -1,
            metadata: "m".into(),
            commit_timestamp_ms: 0,
        };
        let commit = |generation, member: &str| CommitRequest {
            group_id: G.into(),
            generation_id: generation,
            member_id: member.into(),
            group_instance_id: None,
            offsets: vec![(("t".into(), 0), om(5))],
        };
        c.commit(9_500, 10, commit(0, &a));
        assert!(
            matches!(&c.drain()[0], Output::Commit(10, r) if r[0].1 == Err(GroupError::IllegalGeneration))
        );
        c.commit(9_500, 11, commit(-1, ""));
        assert!(
            matches!(&c.drain()[0], Output::Commit(11, r) if r[0].1 == Err(GroupError::UnknownMemberId))
        );
        c.commit(9_500, 12, commit(1, &a));
        let token = match &c.drain()[0] {
            Output::Persist { token: Some(t), .. } => *t,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            c.fetch_offsets(G, None),
            vec![],
            "not visible before durable"
        );
        assert!(c.has_pending_offsets(G, &("t".into(), 0)));
        c.persisted(token, true);
        assert!(matches!(&c.drain()[0], Output::Commit(12, r) if r[0].1.is_ok()));
        assert_eq!(c.fetch_offsets(G, None)[0].1.as_ref().unwrap().offset, 5);
        assert_eq!(
            c.fetch_offsets(G, Some(&[("t".into(), 1)]))[0].1,
            None,
            "nothing committed reads as none"
        );
        assert_eq!(c.delete_group(G), Err(GroupError::NonEmptyGroup));
        assert_eq!(
            c.delete_offsets(G, &[("t".into(), 0)]).unwrap()[0].1,
            Err(GroupError::GroupSubscribedToTopic)
        );
        assert_eq!(c.delete_group("none"), Err(GroupError::GroupIdNotFound));
    }

    #[test]
    fn replay_restores_offsets_and_generations() {
        let mut c = Coordinator::new(5);
        let (a, b) = stable_pair(&mut c);
        let mut log: Vec<Record> = Vec::new();
        for o in c.drain() {
            if let Output::Persist { records, .. } = o {
                log.extend(records);
            }
        }
        c.commit(
            9_500,
            1,
            CommitRequest {
                group_id: G.into(),
                generation_id: 1,
                member_id: a.clone(),
                group_instance_id: None,
                offsets: vec![
                    (
                        ("t".into(), 0),
                        OffsetAndMetadata {
                            offset: 7,
                            leader_epoch: 2,
                            metadata: "x".into(),
                            commit_timestamp_ms: 1,
                        },
                    ),
                    (
                        ("t".into(), 1),
                        OffsetAndMetadata {
                            offset: 8,
                            leader_epoch: 2,
                            metadata: String::new(),
                            commit_timestamp_ms: 1,
                        },
                    ),
                ],
            },
        );
        for o in c.drain() {
            if let Output::Persist {
                records,
                token: Some(t),
                ..
            } = o
            {
                log.extend(records);
                c.persisted(t, true);
            }
        }
        c.leave(9_600, G, &[(a, None), (b, None)]).unwrap();
        c.delete_offsets(G, &[("t".into(), 1)]).unwrap();
        for o in c.drain() {
            if let Output::Persist { records, .. } = o {
                log.extend(records);
            }
        }
        let mut restored = Coordinator::new(6);
        for r in &log {
            restored.load(0, &r.key, r.value.as_deref()).unwrap();
        }
        let g = restored.group(G).unwrap();
        assert_eq!(g.state, GroupState::Empty);
        assert_eq!(g.generation_id, c.group(G).unwrap().generation_id);
        assert_eq!(restored.fetch_offsets(G, None), c.fetch_offsets(G, None));
        assert_eq!(restored.fetch_offsets(G, None).len(), 1);
        assert_eq!(restored.delete_group(G), Ok(()));
        for o in restored.drain() {
            if let Output::Persist { records, .. } = o {
                log.extend(records);
            }
        }
        let mut again = Coordinator::new(7);
        for r in &log {
            again.load(0, &r.key, r.value.as_deref()).unwrap();
        }
        assert!(again.group(G).is_none(), "tombstones delete the group");
    }

    #[test]
    fn a_stable_group_survives_a_restart_without_a_rebalance() {
        let mut c = Coordinator::new(8);
        let (a, b) = stable_pair(&mut c);
        // What the leader's SyncGroup persisted.
        let log = [records::group_metadata(c.group(G).unwrap(), -1)];
        let mut restored = Coordinator::new(9);
        for r in &log {
            restored.load(0, &r.key, r.value.as_deref()).unwrap();
        }
        let g = restored.group(G).unwrap();
        assert_eq!(g.state, GroupState::Stable);
        assert_eq!(g.generation_id, 1);
        assert_eq!(g.leader_id.as_deref(), Some(a.as_str()));
        assert_eq!(g.member(&b).unwrap().assignment, Bytes::from_static(b"B"));
        assert_eq!(restored.heartbeat(1_000, G, &b, None, 1), Ok(()));
        assert_eq!(restored.heartbeat(1_000, G, &a, None, 1), Ok(()));
        // A member that never comes back expires as usual.
        restored.heartbeat(9_000, G, &a, None, 1).unwrap();
        restored.tick(11_500);
        assert!(!restored.group(G).unwrap().has_member(&b));
        assert_eq!(
            restored.heartbeat(11_600, G, &a, None, 1),
            Err(GroupError::RebalanceInProgress)
        );
    }

    #[test]
    fn a_group_that_was_rebalancing_comes_back_empty_with_its_generation() {
        let mut c = Coordinator::new(10);
        let a = new_member(&mut c, 0, 1);
        c.tick(INITIAL_REBALANCE_DELAY_MS + 1);
        let log: Vec<Record> = c
            .drain()
            .into_iter()
            .flat_map(|o| match o {
                Output::Persist { records, .. } => records,
                _ => Vec::new(),
            })
            .collect();
        assert_eq!(c.group(G).unwrap().state, GroupState::CompletingRebalance);
        let mut restored = Coordinator::new(11);
        for r in &log {
            restored.load(0, &r.key, r.value.as_deref()).unwrap();
        }
        let g = restored.group(G).unwrap();
        assert_eq!((g.state, g.generation_id), (GroupState::Empty, 1));
        assert_eq!(
            restored.heartbeat(100, G, &a, None, 1),
            Err(GroupError::UnknownMemberId)
        );
    }

    /// Commits `offsets` for `member` (generation 1, or a simple consumer
    /// with generation -1) at `now` and makes them durable; returns every
    /// record the coordinator emitted.
    fn commit_durably(
        c: &mut Coordinator,
        now: i64,
        member: &str,
        generation: i32,
        offsets: &[(&str, i64)],
    ) -> Vec<Record> {
        let req = CommitRequest {
            group_id: G.into(),
            generation_id: generation,
            member_id: member.into(),
            group_instance_id: None,
            offsets: offsets
                .iter()
                .map(|(t, o)| {
                    let om = OffsetAndMetadata {
                        offset: *o,
                        leader_epoch: -1,
                        metadata: String::new(),
                        commit_timestamp_ms: now,
                    };
                    (((*t).to_string(), 0), om)
                })
                .collect(),
        };
        c.commit(now, 99, req);
        let out = c.drain();
        let Some(Output::Persist {
            token: Some(token),
            records,
            ..
        }) = out.first()
        else {
            panic!("commit refused: {out:?}");
        };
        c.persisted(*token, true);
        c.drain();
        records.clone()
    }

    fn persisted_records(out: &[Output]) -> Vec<Record> {
        out.iter()
            .flat_map(|o| match o {
                Output::Persist { records, .. } => records.clone(),
                _ => Vec::new(),
            })
            .collect()
    }

    fn committed(c: &Coordinator) -> Vec<String> {
        c.fetch_offsets(G, None)
            .into_iter()
            .map(|((t, _), _)| t)
            .collect()
    }

    /// KIP-211: a Stable group keeps the offsets of topics it subscribes to
    /// however old; once Empty, all its offsets expire `retention` after it
    /// became Empty, with tombstones, and the group goes with them. The
    /// state timestamp survives a replay on a clock with another origin.
    #[test]
    fn offsets_expire_once_the_group_is_empty_for_the_retention() {
        const RETENTION: i64 = 60_000;
        let mut c = Coordinator::new(7);
        let (a, b) = stable_pair(&mut c);
        let mut log = commit_durably(&mut c, 9_500, &a, 1, &[("t", 5), ("u", 9)]);
        assert_eq!(c.expire_offsets(9_500 + RETENTION - 1, RETENTION), 0);
        assert!(c.drain().is_empty());
        // "u" is not subscribed: it expires by its commit time; "t" stays.
        assert_eq!(c.expire_offsets(9_500 + RETENTION, RETENTION), 1);
        let out = c.drain();
        assert_eq!(
            persisted_records(&out),
            vec![records::offset_tombstone(G, "u", 0)]
        );
        log.extend(persisted_records(&out));
        assert_eq!(committed(&c), vec!["t".to_string()]);
        assert_eq!(c.expire_offsets(10 * RETENTION, RETENTION), 0, "active");
        // Everyone leaves at `empty_at`: the group is Empty from then on.
        let empty_at = 10 * RETENTION + 1;
        c.leave(empty_at, G, &[(a, None), (b, None)]).unwrap();
        assert_eq!(c.group(G).unwrap().state, GroupState::Empty);
        log.extend(persisted_records(&c.drain()));
        // A replay elsewhere: another clock origin, same wall times.
        let mut replayed = Coordinator::new(8);
        let shift = 1_000_000;
        replayed.set_wall_clock_offset(shift);
        for r in &log {
            replayed.load(0, &r.key, r.value.as_deref()).unwrap();
        }
        assert_eq!(committed(&replayed), vec!["t".to_string()]);
        for (c, origin) in [(&mut c, 0), (&mut replayed, shift)] {
            let at = |t: i64| t - origin;
            assert_eq!(c.expire_offsets(at(empty_at + RETENTION - 1), RETENTION), 0);
            assert!(c.drain().is_empty());
            assert_eq!(c.expire_offsets(at(empty_at + RETENTION), RETENTION), 1);
            assert_eq!(
                persisted_records(&c.drain()),
                vec![
                    records::offset_tombstone(G, "t", 0),
                    records::group_tombstone(G)
                ]
            );
            assert!(
                c.group(G).is_none(),
                "an empty group without offsets is removed"
            );
        }
    }

    /// With a retention set, the clock input alone expires offsets, at
    /// the check interval.
    #[test]
    fn tick_expires_offsets_at_the_check_interval() {
        let mut c = Coordinator::new(11);
        c.set_offsets_retention(0, 1_000, 300);
        commit_durably(&mut c, 100, "", -1, &[("x", 1)]);
        c.tick(0);
        c.tick(1_099);
        assert_eq!(committed(&c), vec!["x".to_string()]);
        // Checked at 1_099 (too young by 1 ms): the next check is at 1_399.
        c.tick(1_100);
        c.tick(1_398);
        assert_eq!(c.offsets_expired_total, 0);
        c.tick(1_399);
        assert_eq!(c.offsets_expired_total, 1);
        assert!(committed(&c).is_empty());
        assert_eq!(
            persisted_records(&c.drain()),
            vec![
                records::offset_tombstone(G, "x", 0),
                records::group_tombstone(G)
            ]
        );
    }

    /// A group that only stores offsets (assign() consumers) expires each
    /// offset by its own commit time; a commit in flight keeps its
    /// partition's offset; a rebalancing group keeps everything.
    #[test]
    fn simple_consumer_offsets_expire_by_commit_time() {
        const RETENTION: i64 = 1_000;
        let mut c = Coordinator::new(9);
        commit_durably(&mut c, 100, "", -1, &[("x", 1)]);
        commit_durably(&mut c, 500, "", -1, &[("y", 2)]);
        assert_eq!(c.expire_offsets(1_099, RETENTION), 0);
        assert_eq!(c.expire_offsets(1_100, RETENTION), 1);
        assert_eq!(committed(&c), vec!["y".to_string()]);
        c.drain();
        // A new commit of "y" is in flight: the old one is not expired.
        let req = CommitRequest {
            group_id: G.into(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
            offsets: vec![(
                ("y".into(), 0),
                OffsetAndMetadata {
                    offset: 3,
                    leader_epoch: -1,
                    metadata: String::new(),
                    commit_timestamp_ms: 1_600,
                },
            )],
        };
        c.commit(1_600, 5, req);
        let token = match &c.drain()[0] {
            Output::Persist { token: Some(t), .. } => *t,
            other => panic!("{other:?}"),
        };
        assert_eq!(c.expire_offsets(5_000, RETENTION), 0, "commit in flight");
        c.persisted(token, true);
        c.drain();
        assert_eq!(
            c.expire_offsets(2_599, RETENTION),
            0,
            "the new commit time counts"
        );
        assert_eq!(c.expire_offsets(2_600, RETENTION), 1);
        assert_eq!(
            persisted_records(&c.drain()),
            vec![
                records::offset_tombstone(G, "y", 0),
                records::group_tombstone(G)
            ]
        );
        // A consumer group in a rebalance keeps its offsets.
        let mut c = Coordinator::new(10);
        let (a, _b) = stable_pair(&mut c);
        commit_durably(&mut c, 9_500, &a, 1, &[("t", 1), ("u", 1)]);
        c.join(9_600, 50, join_req(&a, None));
        assert_eq!(c.group(G).unwrap().state, GroupState::PreparingRebalance);
        assert_eq!(c.expire_offsets(1_000_000, RETENTION), 0);
    }

    #[test]
    fn unload_partition_forgets_its_groups_only() {
        let partitions = 50;
        let mut c = Coordinator::new(7);
        let (a, _b) = stable_pair(&mut c);
        // A waiting join of the stable group's leader: a rejoin starts a
        // rebalance, which waits for the other member.
        c.join(9_500, 20, join_req(&a, None));
        assert!(joins(&c.drain()).is_empty(), "waits for the other member");
        // Groups on other partitions keep their offsets.
        let other = (0..)
            .map(|i| format!("other-{i}"))
            .find(|g| {
                super::super::partition_for(g, partitions)
                    != super::super::partition_for(G, partitions)
            })
            .unwrap();
        let om = OffsetAndMetadata {
            offset: 42,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: 0,
        };
        let key = records::offset_commit(&other, "t", 0, &om);
        c.load(0, &key.key, key.value.as_deref()).unwrap();
        let mine = super::super::partition_for(G, partitions);
        assert_eq!(c.unload_partition(mine, partitions), 1);
        assert!(c.group(G).is_none());
        let out = joins(&c.drain());
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, 20);
        assert_eq!(out[0].1.error, Some(GroupError::NotCoordinator));
        assert_eq!(
            c.group(&other).unwrap().offsets[&("t".to_string(), 0)].offset,
            42
        );
        assert_eq!(
            c.unload_partition(mine, partitions),
            0,
            "nothing left there"
        );
    }
}
