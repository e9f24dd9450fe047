//! Fast leader election (ZooKeeper's `FastLeaderElection.lookForLeader`),
//! one notification at a time and without threads or timers.
//!
//! Election only picks a candidate; safety does not depend on it, because
//! discovery (LEADERINFO/ACKEPOCH) refuses a leader that is behind a quorum.

use std::collections::BTreeMap;

use crate::ids::NodeId;
use crate::message::{Notification, PeerState, Vote};

/// What the election state machine decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Lead(Vote),
    Follow(Vote),
}

#[derive(Clone, Debug)]
pub struct Election {
    /// `None` only for an observer that has not heard a voter yet: an
    /// observer's own vote never counts (ZooKeeper gives it `Long.MIN_VALUE`).
    pub proposal: Option<Vote>,
    /// Votes of this round (`recvset`), by voter.
    recv: BTreeMap<NodeId, (Vote, u64)>,
    /// Votes of peers that already finished an election (`outofelection`).
    out_of: BTreeMap<NodeId, (Vote, u64, PeerState)>,
    pub ticks_since_send: u64,
}

/// What the election needs from its peer.
pub struct Context<'a> {
    pub me: NodeId,
    pub voters: &'a [NodeId],
    pub self_vote: Vote,
    pub logical_clock: &'a mut u64,
}

impl Context<'_> {
    fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id)
    }

    fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }
}

/// The effect of one notification: maybe a broadcast of our proposal, a
/// reply to the sender, and a decision.
#[derive(Debug, Default)]
pub struct Effect {
    pub broadcast: bool,
    pub reply: bool,
    pub decision: Option<Decision>,
}

impl Election {
    /// Starts a round: the caller bumps the logical clock and broadcasts.
    pub fn start(ctx: &Context<'_>) -> Election {
        let proposal = ctx.is_voter(ctx.me).then_some(ctx.self_vote);
        let mut election = Election {
            proposal,
            recv: BTreeMap::new(),
            out_of: BTreeMap::new(),
            ticks_since_send: 0,
        };
        election.record_self(ctx);
        election
    }

    fn record_self(&mut self, ctx: &Context<'_>) {
        if let (true, Some(p)) = (ctx.is_voter(ctx.me), self.proposal) {
            self.recv.insert(ctx.me, (p, *ctx.logical_clock));
        }
    }

    pub fn on_notification(&mut self, ctx: &mut Context<'_>, from: NodeId, n: &Notification) -> Effect {
        let mut effect = Effect::default();
        if !ctx.is_voter(from) {
            // Observers learn the leader from voters; answer, never count.
            effect.reply = n.state == PeerState::Looking;
            return effect;
        }
        if !ctx.is_voter(n.vote.leader) {
            return effect;
        }
        match n.state {
            PeerState::Looking => self.on_looking(ctx, from, n, &mut effect),
            PeerState::Following | PeerState::Leading => self.on_decided(ctx, from, n, &mut effect),
            PeerState::Observing => {}
        }
        effect
    }

    fn on_looking(&mut self, ctx: &mut Context<'_>, from: NodeId, n: &Notification, effect: &mut Effect) {
        if n.election_epoch < *ctx.logical_clock {
            // The sender is behind: tell it where we are (the receiver
            // thread of ZooKeeper's FLE does the same). Only a voter
            // answers: a voter answers every observer notification, so an
            // observer answering back would ping-pong forever (the
            // simulator found that storm).
            effect.reply = ctx.is_voter(ctx.me);
            return;
        }
        if n.election_epoch > *ctx.logical_clock {
            *ctx.logical_clock = n.election_epoch;
            self.recv.clear();
            let own = ctx.is_voter(ctx.me).then_some(ctx.self_vote);
            self.proposal = match own {
                Some(own) if !n.vote.beats(&own) => Some(own),
                _ => Some(n.vote),
            };
            effect.broadcast = true;
        } else if self.proposal.is_none_or(|p| n.vote.beats(&p)) {
            self.proposal = Some(n.vote);
            effect.broadcast = true;
        }
        self.recv.insert(from, (n.vote, n.election_epoch));
        self.record_self(ctx);
        let Some(proposal) = self.proposal else { return };
        let agreeing = self
            .recv
            .values()
            .filter(|(v, e)| *v == proposal && *e == *ctx.logical_clock)
            .count();
        if agreeing >= ctx.quorum() {
            effect.decision = Some(decide(ctx, proposal));
        }
    }

    fn on_decided(&mut self, ctx: &mut Context<'_>, from: NodeId, n: &Notification, effect: &mut Effect) {
        self.out_of.insert(from, (n.vote, n.election_epoch, n.state));
        if n.election_epoch == *ctx.logical_clock {
            self.recv.insert(from, (n.vote, n.election_epoch));
            let agreeing = self
                .recv
                .values()
                .filter(|(v, e)| *v == n.vote && *e == n.election_epoch)
                .count();
            if agreeing >= ctx.quorum() && self.check_leader(ctx, n.vote.leader, n.election_epoch) {
                effect.decision = Some(decide(ctx, n.vote));
                return;
            }
        }
        // Joining an ensemble that already agreed: votes from peers that
        // finished an election compare by leader and epoch only.
        let agreeing = self
            .out_of
            .values()
            .filter(|(v, _, _)| v.leader == n.vote.leader && v.peer_epoch == n.vote.peer_epoch)
            .count();
        if agreeing >= ctx.quorum() && self.check_leader(ctx, n.vote.leader, n.election_epoch) {
            *ctx.logical_clock = n.election_epoch;
            effect.decision = Some(decide(ctx, n.vote));
        }
    }

    /// FLE's `checkLeader`: follow someone else only after it said it
    /// leads; lead only if the votes are from this round.
    fn check_leader(&self, ctx: &Context<'_>, leader: NodeId, election_epoch: u64) -> bool {
        if leader == ctx.me {
            return *ctx.logical_clock == election_epoch;
        }
        self.out_of
            .get(&leader)
            .is_some_and(|(_, _, state)| *state == PeerState::Leading)
    }
}

fn decide(ctx: &Context<'_>, vote: Vote) -> Decision {
    if vote.leader == ctx.me {
        Decision::Lead(vote)
    } else {
        Decision::Follow(vote)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Epoch, Zxid};

    fn vote(leader: u64, zxid: u64) -> Vote {
        Vote {
            leader: NodeId(leader),
            zxid: Zxid(zxid),
            peer_epoch: Epoch(1),
        }
    }

    #[test]
    fn order_is_epoch_zxid_id() {
        assert!(vote(1, 5).beats(&vote(3, 4)));
        assert!(vote(3, 5).beats(&vote(1, 5)));
        let newer_epoch = Vote {
            peer_epoch: Epoch(2),
            ..vote(1, 0)
        };
        assert!(newer_epoch.beats(&vote(3, 100)));
    }

    #[test]
    fn three_voters_pick_the_most_recent() {
        let voters = [NodeId(1), NodeId(2), NodeId(3)];
        let mut clock = 1;
        let mut ctx = Context {
            me: NodeId(1),
            voters: &voters,
            self_vote: vote(1, 9),
            logical_clock: &mut clock,
        };
        let mut e = Election::start(&ctx);
        let n = Notification {
            vote: vote(2, 3),
            election_epoch: 1,
            state: PeerState::Looking,
        };
        let effect = e.on_notification(&mut ctx, NodeId(2), &n);
        assert!(!effect.broadcast, "our own vote is better");
        assert_eq!(effect.decision, None);
        let n = Notification {
            vote: vote(1, 9),
            election_epoch: 1,
            state: PeerState::Looking,
        };
        let effect = e.on_notification(&mut ctx, NodeId(3), &n);
        assert_eq!(effect.decision, Some(Decision::Lead(vote(1, 9))));
    }
}
