//! The leader's half: follower progress, the HW, ISR shrink and expand,
//! produce completion, and the answers to followers' fetches.

use std::collections::{BTreeMap, VecDeque};

use super::election::PartitionState;
use super::{
    Acks, Correlation, FetchResult, LeaderEpoch, Message, NodeId, Offset, Output, PartitionVersion,
    Replica, ReplicationError, RequestId, Role,
};

/// What the leader knows of one follower (Kafka's `Replica` state).
#[derive(Clone, Copy, Debug)]
struct Progress {
    /// The last validated fetch offset; `None` until this leader has seen
    /// one in its current leadership.
    log_end: Option<Offset>,
    last_caught_up_ms: i64,
    /// The leader's LEO and the time at this follower's previous fetch.
    last_fetch_leader_end: Offset,
    last_fetch_ms: i64,
    /// The broker epoch of the follower's last validated fetch.
    broker_epoch: i64,
}

impl Progress {
    fn new(in_sync: bool, now_ms: i64) -> Progress {
        Progress {
            log_end: None,
            // An ISR member gets a full lag period to show up.
            last_caught_up_ms: if in_sync { now_ms } else { i64::MIN / 2 },
            last_fetch_leader_end: Offset(0),
            last_fetch_ms: i64::MIN / 2,
            broker_epoch: -1,
        }
    }
}

#[derive(Clone, Debug)]
struct PendingIsr {
    isr: Vec<NodeId>,
    joining: Option<(NodeId, i64)>,
    sent_ms: i64,
    /// The controller refused it: keep counting it, stop proposing.
    rejected: bool,
}

/// A produce waiting for its acknowledgement.
#[derive(Clone, Copy, Debug)]
pub(super) struct Waiting {
    pub request: RequestId,
    base: Offset,
    end: Offset,
    acks: Acks,
    deadline_ms: i64,
}

pub(super) struct Leader {
    replicas: Vec<NodeId>,
    /// The committed ISR (what the znode holds, as far as we know).
    pub isr: Vec<NodeId>,
    pending: Option<PendingIsr>,
    version: PartitionVersion,
    /// The log end when this epoch began: a follower joins the ISR only
    /// once it has everything before it.
    epoch_start: Offset,
    followers: BTreeMap<NodeId, Progress>,
    waiting: VecDeque<Waiting>,
}

impl Leader {
    pub fn new(
        me: NodeId,
        isr: Vec<NodeId>,
        replicas: Vec<NodeId>,
        version: PartitionVersion,
        epoch_start: Offset,
        now_ms: i64,
    ) -> Leader {
        let followers = replicas
            .iter()
            .filter(|&&r| r != me)
            .map(|&r| (r, Progress::new(isr.contains(&r), now_ms)))
            .collect();
        Leader {
            replicas,
            isr,
            pending: None,
            version,
            epoch_start,
            followers,
            waiting: VecDeque::new(),
        }
    }

    /// The controller bumped the epoch and kept us leader (it changed the
    /// ISR itself): keep what we know of followers still assigned.
    pub fn new_epoch(
        &mut self,
        me: NodeId,
        isr: Vec<NodeId>,
        replicas: Vec<NodeId>,
        version: PartitionVersion,
        epoch_start: Offset,
        now_ms: i64,
    ) {
        let mut followers = BTreeMap::new();
        for &r in replicas.iter().filter(|&&r| r != me) {
            let mut p = self
                .followers
                .get(&r)
                .copied()
                .unwrap_or_else(|| Progress::new(false, now_ms));
            if isr.contains(&r) && !self.isr.contains(&r) {
                p.last_caught_up_ms = now_ms;
            }
            followers.insert(r, p);
        }
        self.followers = followers;
        self.replicas = replicas;
        self.isr = isr;
        self.pending = None;
        self.version = version;
        self.epoch_start = epoch_start;
    }

    /// The committed ISR plus a pending change (Kafka's `maximalIsr`).
    pub fn maximal_isr(&self) -> Vec<NodeId> {
        self.maximal_members().collect()
    }

    /// [`Leader::maximal_isr`] without allocating (it runs on every fetch).
    fn maximal_members(&self) -> impl Iterator<Item = NodeId> + '_ {
        let added = self.pending.iter().flat_map(|p| p.isr.iter());
        self.isr
            .iter()
            .chain(added.filter(|r| !self.isr.contains(r)))
            .copied()
    }

    pub fn take_waiting(&mut self) -> VecDeque<Waiting> {
        std::mem::take(&mut self.waiting)
    }

    pub fn lag(&self, now_ms: i64) -> Vec<(NodeId, Option<Offset>, i64)> {
        self.followers
            .iter()
            .map(|(&r, p)| (r, p.log_end, now_ms.saturating_sub(p.last_caught_up_ms)))
            .collect()
    }

    /// `isr` in assignment order.
    fn ordered(&self, mut isr: Vec<NodeId>) -> Vec<NodeId> {
        isr.sort_by_key(|r| self.replicas.iter().position(|x| x == r));
        isr
    }
}

impl Replica {
    fn leader(&self) -> &Leader {
        match &self.role {
            Role::Leader(l) => l,
            _ => unreachable!("leader-only path"),
        }
    }

    fn leader_mut(&mut self) -> &mut Leader {
        match &mut self.role {
            Role::Leader(l) => l,
            _ => unreachable!("leader-only path"),
        }
    }

    /// Whether a produce with these acks would be taken now, checked as
    /// Kafka's `appendRecordsToLeader` does before it validates anything
    /// else: leadership, then `min.insync.replicas` for `acks=all`. The
    /// driver asks before the idempotence check, so a refused batch is
    /// never answered OUT_OF_ORDER_SEQUENCE_NUMBER for a gap left by the
    /// refusal of the batch before it (librdkafka bumps its producer epoch
    /// on that answer and renumbers every unacknowledged message,
    /// possibly-persisted ones included, which duplicates them).
    pub fn admits(&self, acks: Acks) -> Result<(), ReplicationError> {
        let Role::Leader(l) = &self.role else {
            return Err(ReplicationError::NotLeaderOrFollower);
        };
        if acks == Acks::All && l.isr.len() < self.config.min_insync_replicas {
            return Err(ReplicationError::NotEnoughReplicas);
        }
        if acks != Acks::None && l.waiting.len() >= self.config.waiting_produces_max {
            return Err(ReplicationError::TooManyWaiting);
        }
        Ok(())
    }

    pub(super) fn on_produce(
        &mut self,
        request: RequestId,
        acks: Acks,
        records: u32,
        timeout_ms: i64,
    ) {
        assert!(records > 0, "a produce carries at least one record");
        let refuse = |out: &mut Vec<Output>, e| {
            out.push(Output::ProduceDone {
                request,
                result: Err(e),
            })
        };
        if let Err(e) = self.admits(acks) {
            return refuse(&mut self.out, e);
        }
        let base = self.log.assigned;
        let end = Offset(base.0 + i64::from(records));
        self.log.assigned = end;
        self.out.push(Output::Append {
            request,
            base_offset: base,
            records,
            leader_epoch: self.leader_epoch,
        });
        if acks != Acks::None {
            let deadline_ms = self.now_ms.saturating_add(timeout_ms);
            self.leader_mut().waiting.push_back(Waiting {
                request,
                base,
                end,
                acks,
                deadline_ms,
            });
        }
        // A single-replica ISR may already be complete (a no-op until the
        // append is reported).
        self.leader_complete_waiting();
    }

    pub(super) fn leader_on_log_progress(&mut self) {
        self.leader_update_hw();
        self.leader_complete_waiting();
    }

    /// HW = min over the maximal ISR of each member's durable end; it only
    /// moves forward.
    pub(super) fn leader_update_hw(&mut self) {
        let l = self.leader();
        let mut hw = self.log.durable;
        for r in l.maximal_members() {
            if r == self.me() {
                continue;
            }
            match l.followers.get(&r).and_then(|p| p.log_end) {
                Some(end) => hw = hw.min(end),
                None => return,
            }
        }
        if hw > self.high_watermark {
            self.set_high_watermark(hw);
            self.leader_complete_waiting();
        }
    }

    /// Answers the produces that are done: `acks=1` once written, and
    /// `acks=all` once under the HW.
    fn leader_complete_waiting(&mut self) {
        let (written, hw) = (self.log.written, self.high_watermark);
        let min_isr = self.config.min_insync_replicas;
        let l = self.leader_mut();
        let enough = l.maximal_members().count() >= min_isr;
        let mut done = Vec::new();
        l.waiting.retain(|w| {
            let result = match w.acks {
                Acks::Leader if w.end <= written => Ok(w.base),
                Acks::All if w.end <= hw && enough => Ok(w.base),
                Acks::All if w.end <= hw => Err(ReplicationError::NotEnoughReplicasAfterAppend),
                _ => return true,
            };
            done.push(Output::ProduceDone {
                request: w.request,
                result,
            });
            false
        });
        self.out.extend(done);
    }

    pub(super) fn leader_on_tick(&mut self) {
        let now = self.now_ms;
        let l = self.leader_mut();
        let mut expired = Vec::new();
        l.waiting.retain(|w| {
            if w.deadline_ms > now {
                return true;
            }
            expired.push(Output::ProduceDone {
                request: w.request,
                result: Err(ReplicationError::RequestTimedOut),
            });
            false
        });
        self.out.extend(expired);
        self.leader_maybe_shrink();
        self.leader_retry_isr();
    }

    /// Kafka's `maybeShrinkIsr`: drop ISR members that have not caught up
    /// within `replica_lag_time_max_ms`.
    fn leader_maybe_shrink(&mut self) {
        let (now, lag_max, me) = (self.now_ms, self.config.replica_lag_time_max_ms, self.me());
        let l = self.leader();
        if l.pending.is_some() {
            return;
        }
        let out_of_sync: Vec<NodeId> = l
            .isr
            .iter()
            .copied()
            .filter(|&r| r != me)
            .filter(|r| {
                l.followers
                    .get(r)
                    .is_none_or(|p| now.saturating_sub(p.last_caught_up_ms) > lag_max)
            })
            .collect();
        if out_of_sync.is_empty() {
            return;
        }
        let isr: Vec<NodeId> = l
            .isr
            .iter()
            .copied()
            .filter(|r| !out_of_sync.contains(r))
            .collect();
        self.leader_propose(isr, None);
    }

    fn leader_propose(&mut self, isr: Vec<NodeId>, joining: Option<(NodeId, i64)>) {
        let (now, epoch) = (self.now_ms, self.leader_epoch);
        let l = self.leader_mut();
        let isr = l.ordered(isr);
        l.pending = Some(PendingIsr {
            isr: isr.clone(),
            joining,
            sent_ms: now,
            rejected: false,
        });
        let version = l.version;
        self.out.push(Output::ProposeIsr {
            leader_epoch: epoch,
            isr,
            version,
            joining,
        });
    }

    fn leader_retry_isr(&mut self) {
        let (now, retry, epoch) = (self.now_ms, self.config.isr_retry_ms, self.leader_epoch);
        let l = self.leader_mut();
        let version = l.version;
        let Some(p) = l.pending.as_mut() else { return };
        if p.rejected || now.saturating_sub(p.sent_ms) < retry {
            return;
        }
        p.sent_ms = now;
        let (isr, joining) = (p.isr.clone(), p.joining);
        self.out.push(Output::ProposeIsr {
            leader_epoch: epoch,
            isr,
            version,
            joining,
        });
    }

    pub(super) fn on_isr_committed(
        &mut self,
        leader_epoch: LeaderEpoch,
        isr: Vec<NodeId>,
        version: PartitionVersion,
    ) {
        if leader_epoch != self.leader_epoch {
            return;
        }
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        if l.pending.as_ref().is_none_or(|p| p.isr != isr) || version <= l.version {
            return;
        }
        l.isr = isr;
        l.version = version;
        l.pending = None;
        // A shrink may let the HW move; any produce under it completes.
        self.leader_update_hw();
        self.leader_complete_waiting();
    }

    pub(super) fn on_isr_rejected(
        &mut self,
        leader_epoch: LeaderEpoch,
        version: PartitionVersion,
        current: PartitionState,
    ) {
        if leader_epoch != self.leader_epoch {
            return;
        }
        if let Role::Leader(l) = &mut self.role {
            if l.version != version {
                return;
            }
            let unchanged = current.leader_epoch == leader_epoch && current.isr == l.isr;
            if unchanged && current.version > version {
                // The znode does not hold it, and its new version fences
                // any copy of the proposal still in flight.
                l.pending = None;
                l.version = current.version;
            } else if let Some(p) = l.pending.as_mut() {
                p.rejected = true;
            }
        }
    }

    pub(super) fn leader_on_fetch(
        &mut self,
        from: NodeId,
        correlation: Correlation,
        replica_epoch: i64,
        current_leader_epoch: LeaderEpoch,
        fetch_offset: Offset,
        last_fetched_epoch: LeaderEpoch,
    ) {
        let reply = |out: &mut Vec<Output>, result| {
            out.push(Output::Send {
                to: from,
                msg: Message::FetchResponse {
                    correlation,
                    result,
                },
            })
        };
        if let Err(e) = self.check_leader_epoch(current_leader_epoch) {
            return reply(&mut self.out, FetchResult::Error(e));
        }
        if !self.leader().followers.contains_key(&from) {
            return reply(
                &mut self.out,
                FetchResult::Error(ReplicationError::NotLeaderOrFollower),
            );
        }
        let leo = self.log.written;
        // KIP-320: the follower's last record must be in our log.
        if last_fetched_epoch != LeaderEpoch::UNKNOWN {
            let ours = self.epochs.end_offset_for(last_fetched_epoch, leo);
            if ours.leader_epoch != last_fetched_epoch || ours.end_offset < fetch_offset {
                let high_watermark = self.high_watermark;
                return reply(
                    &mut self.out,
                    FetchResult::Diverging {
                        diverging: ours,
                        high_watermark,
                    },
                );
            }
        } else if fetch_offset.0 != 0 {
            // Only an empty log may fetch without an epoch (no log start
            // offsets above zero are modelled).
            return reply(
                &mut self.out,
                FetchResult::Error(ReplicationError::OffsetOutOfRange),
            );
        }
        if fetch_offset > leo || fetch_offset.0 < 0 {
            return reply(
                &mut self.out,
                FetchResult::Error(ReplicationError::OffsetOutOfRange),
            );
        }
        self.leader_record_progress(from, fetch_offset, leo, replica_epoch);
        self.leader_maybe_expand(from);
        self.leader_update_hw();
        self.out.push(Output::ServeFetch {
            to: from,
            correlation,
            read_from: fetch_offset,
            read_end: leo,
            high_watermark: self.high_watermark,
        });
    }

    /// Kafka's `updateFetchState`.
    fn leader_record_progress(
        &mut self,
        from: NodeId,
        fetch_offset: Offset,
        leo: Offset,
        broker_epoch: i64,
    ) {
        let now = self.now_ms;
        let p = self
            .leader_mut()
            .followers
            .get_mut(&from)
            .expect("checked by the caller");
        if fetch_offset >= leo {
            p.last_caught_up_ms = p.last_caught_up_ms.max(now);
        } else if fetch_offset >= p.last_fetch_leader_end {
            p.last_caught_up_ms = p.last_caught_up_ms.max(p.last_fetch_ms);
        }
        p.last_fetch_leader_end = leo;
        p.last_fetch_ms = now;
        p.log_end = Some(fetch_offset);
        p.broker_epoch = broker_epoch;
    }

    /// Kafka's `maybeExpandIsr` with `isFollowerInSync`: the follower has
    /// reached the HW and the start of this leader's epoch.
    fn leader_maybe_expand(&mut self, from: NodeId) {
        let hw = self.high_watermark;
        let l = self.leader();
        if l.pending.is_some() || l.isr.contains(&from) {
            return;
        }
        let Some(p) = l.followers.get(&from).copied() else {
            return;
        };
        let Some(end) = p.log_end else { return };
        if end >= hw && end >= l.epoch_start {
            let mut isr = l.isr.clone();
            isr.push(from);
            // It reached the HW just now: a full lag period before it can
            // be judged out of sync again (no flapping on the next tick).
            let now = self.now_ms;
            if let Some(p) = self.leader_mut().followers.get_mut(&from) {
                p.last_caught_up_ms = p.last_caught_up_ms.max(now);
            }
            self.leader_propose(isr, Some((from, p.broker_epoch)));
        }
    }
}
