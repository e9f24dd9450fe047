//! The follower's half: truncation by leader epoch, then the fetch loop.
//!
//! ```text
//! BecomeFollower -> Truncating: OffsetsForLeaderEpoch(last epoch)
//!   answer (E, end): own end of E == ... -> truncate to min(own, end) -> Fetching
//!   leader has an epoch we lack -> cut to our end of the floor epoch, ask again
//! Fetching: Fetch(LEO, last_fetched_epoch) once LEO is durable
//!   records -> append -> wait for LocalDurable -> next Fetch
//!   diverging epoch -> the same truncation rule as above
//! ```

use super::{
    BatchMeta, Correlation, EpochEndOffset, FetchResult, LeaderEpoch, Message, NodeId, Offset,
    Output, Replica, ReplicationError, Role,
};

#[derive(Clone, Copy, Debug)]
struct Inflight {
    correlation: Correlation,
    sent_ms: i64,
}

pub(super) struct Follower {
    leader: Option<NodeId>,
    /// The log agrees with the leader's up to its end (as far as the last
    /// epoch answer showed); until then, no Fetch.
    truncated: bool,
    inflight: Option<Inflight>,
    retry_at_ms: i64,
}

impl Follower {
    pub fn new(leader: Option<NodeId>) -> Follower {
        Follower {
            leader,
            truncated: false,
            inflight: None,
            retry_at_ms: i64::MIN,
        }
    }

    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }
}

/// What an epoch answer tells a follower to do.
enum Truncation {
    /// Truncate to this offset; the logs then agree.
    Done(Offset),
    /// Truncate to this offset and ask again with the new last epoch.
    Again(Offset),
    /// The leader could not say; ask again later.
    Retry,
}

impl Replica {
    fn follower_mut(&mut self) -> &mut Follower {
        match &mut self.role {
            Role::Follower(f) => f,
            _ => unreachable!("follower-only path"),
        }
    }

    /// Sends the next request if one is due: on timeouts, after backoffs,
    /// and whenever the log becomes durable.
    pub(super) fn follower_poll(&mut self) {
        let (now, timeout) = (self.now_ms, self.config.replica_request_timeout_ms);
        let epoch = self.leader_epoch;
        let log = self.log;
        let last_epoch = self.epochs.last_record_epoch(log.assigned);
        let f = self.follower_mut();
        let Some(leader) = f.leader else { return };
        if let Some(i) = f.inflight {
            if now.saturating_sub(i.sent_ms) < timeout {
                return;
            }
            f.inflight = None;
        }
        if now < f.retry_at_ms {
            return;
        }
        if !f.truncated && last_epoch == LeaderEpoch::UNKNOWN {
            // Nothing to disagree about.
            f.truncated = true;
        }
        let ask = !f.truncated;
        if !ask && log.durable < log.assigned {
            // Flush before fetch: the fetch offset is a durability report.
            return;
        }
        let correlation = self.correlation();
        let msg = if ask {
            Message::OffsetsForLeaderEpoch {
                correlation,
                current_leader_epoch: epoch,
                leader_epoch: last_epoch,
            }
        } else {
            Message::Fetch {
                correlation,
                replica_epoch: self.config.broker_epoch,
                current_leader_epoch: epoch,
                fetch_offset: log.assigned,
                last_fetched_epoch: last_epoch,
            }
        };
        self.follower_mut().inflight = Some(Inflight {
            correlation,
            sent_ms: now,
        });
        self.out.push(Output::Send { to: leader, msg });
    }

    /// Takes the answer if it is the one we wait for.
    fn follower_accept(&mut self, from: NodeId, correlation: Correlation) -> bool {
        let Role::Follower(f) = &mut self.role else {
            return false;
        };
        if f.leader != Some(from) || f.inflight.map(|i| i.correlation) != Some(correlation) {
            return false;
        }
        f.inflight = None;
        true
    }

    fn follower_back_off(&mut self) {
        let at = self
            .now_ms
            .saturating_add(self.config.replica_fetch_backoff_ms);
        self.follower_mut().retry_at_ms = at;
    }

    pub(super) fn follower_on_epoch_answer(
        &mut self,
        from: NodeId,
        correlation: Correlation,
        result: Result<EpochEndOffset, ReplicationError>,
    ) {
        if !self.follower_accept(from, correlation) {
            return;
        }
        match result {
            Ok(answer) => self.follower_apply_epoch_answer(answer),
            Err(_) => self.follower_back_off(),
        }
        self.follower_poll();
    }

    /// KIP-279's rule, for an OffsetsForLeaderEpoch answer and a fetch's
    /// diverging epoch alike.
    fn follower_truncation(&self, leader: EpochEndOffset) -> Truncation {
        if leader.is_undefined() {
            return Truncation::Retry;
        }
        let end = self.log.assigned;
        let ours = self.epochs.end_offset_for(leader.leader_epoch, end);
        if ours.is_undefined() {
            return Truncation::Done(leader.end_offset.min(end));
        }
        if ours.leader_epoch == leader.leader_epoch {
            Truncation::Done(ours.end_offset.min(leader.end_offset).min(end))
        } else {
            // We lack the leader's epoch: everything from our next epoch
            // after the floor one is not in the leader's log.
            Truncation::Again(ours.end_offset.min(end))
        }
    }

    fn follower_apply_epoch_answer(&mut self, answer: EpochEndOffset) {
        match self.follower_truncation(answer) {
            Truncation::Done(to) => {
                self.truncate_to(to);
                self.follower_mut().truncated = true;
            }
            Truncation::Again(to) => {
                self.truncate_to(to);
                self.follower_mut().truncated = false;
            }
            Truncation::Retry => {
                self.follower_mut().truncated = false;
                self.follower_back_off();
            }
        }
    }

    fn truncate_to(&mut self, to: Offset) {
        let to = to.max(Offset(0));
        if to >= self.log.assigned {
            return;
        }
        self.log.assigned = to;
        self.log.written = self.log.written.min(to);
        self.log.durable = self.log.durable.min(to);
        self.out.push(Output::Truncate { log_end: to });
        if self.epochs.truncate_from_end(to) {
            self.persist_epochs();
        }
        if self.high_watermark > to {
            self.set_high_watermark(to);
        }
    }

    pub(super) fn follower_on_fetch_response(
        &mut self,
        from: NodeId,
        correlation: Correlation,
        result: FetchResult,
    ) {
        if !self.follower_accept(from, correlation) {
            return;
        }
        match result {
            FetchResult::Records {
                high_watermark,
                batches,
            } => self.follower_append(high_watermark, &batches),
            FetchResult::Diverging { diverging, .. } => {
                self.follower_apply_epoch_answer(diverging);
            }
            FetchResult::Error(ReplicationError::OffsetOutOfRange) => {
                self.follower_mut().truncated = false;
                self.follower_back_off();
            }
            FetchResult::Error(_) => self.follower_back_off(),
        }
        self.follower_poll();
    }

    fn follower_append(&mut self, leader_hw: Offset, batches: &[BatchMeta]) {
        if !self.batches_fit(batches) {
            self.follower_back_off();
            return;
        }
        let mut epochs_changed = false;
        for b in batches {
            if b.leader_epoch > self.epochs.latest_epoch() {
                epochs_changed |= self.epochs.assign(b.leader_epoch, b.base_offset);
            }
        }
        if epochs_changed {
            self.persist_epochs();
        }
        if let Some(last) = batches.last() {
            self.log.assigned = last.end_offset;
            self.out.push(Output::AppendFetched {
                end_offset: last.end_offset,
            });
        }
        let hw = leader_hw.min(self.log.assigned);
        if hw > self.high_watermark {
            self.set_high_watermark(hw);
        }
    }

    /// Batches must continue our log without gaps, with epochs that never
    /// go down and none above the epoch we follow; anything else is a stale
    /// or broken answer, dropped.
    fn batches_fit(&self, batches: &[BatchMeta]) -> bool {
        let mut next = self.log.assigned;
        let mut epoch = self.epochs.last_record_epoch(next);
        for b in batches {
            if b.base_offset != next
                || b.end_offset <= b.base_offset
                || b.leader_epoch < epoch
                || b.leader_epoch > self.leader_epoch
                || b.leader_epoch.0 < 0
            {
                return false;
            }
            next = b.end_offset;
            epoch = b.leader_epoch;
        }
        true
    }
}
