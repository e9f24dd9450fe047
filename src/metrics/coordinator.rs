//! The embedded coordinator's figures. The coordinator thread publishes
//! them each tick (`observe`, its only writer); scrapes read them. Relaxed
//! atomics suffice: each value stands alone and a scrape may see one tick
//! late.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use ringtail_coordinator::peer::RoleKind;

/// Roles as exported in the `role` label, indexed by [`role_index`].
pub const ROLES: [&str; 4] = ["looking", "leader", "follower", "observer"];

static ROLE: AtomicU8 = AtomicU8::new(0);
/// 1 while this peer leads an established epoch or follows/observes an
/// active leader: the ensemble has a quorum that serves requests.
static IN_QUORUM: AtomicU8 = AtomicU8::new(0);
static EPOCH: AtomicU64 = AtomicU64::new(0);
static LAST_ZXID: AtomicU64 = AtomicU64::new(0);
static OUTSTANDING: AtomicU64 = AtomicU64::new(0);
static ELECTIONS: AtomicU64 = AtomicU64::new(0);
/// The epoch of the last settled role seen (u64::MAX: none yet).
static SETTLED_EPOCH: AtomicU64 = AtomicU64::new(u64::MAX);
/// 1 once the coordinator thread published anything.
static RUNNING: AtomicU8 = AtomicU8::new(0);

fn role_index(role: RoleKind) -> u8 {
    match role {
        RoleKind::Looking => 0,
        RoleKind::Leading { .. } => 1,
        RoleKind::Following { .. } => 2,
        RoleKind::Observing { .. } => 3,
    }
}

/// Whether the peer serves in a quorum: leads an established epoch, or
/// follows (observes) an active leader.
fn settled(role: RoleKind) -> bool {
    match role {
        RoleKind::Looking => false,
        RoleKind::Leading { established } => established,
        RoleKind::Following { active } | RoleKind::Observing { active } => active,
    }
}

/// An election ended when the peer settles in an epoch it was not settled
/// in before (`settled_epoch`: the last such epoch, if any).
fn election_ended(role: RoleKind, epoch: u64, settled_epoch: Option<u64>) -> bool {
    settled(role) && settled_epoch != Some(epoch)
}

/// Called by the coordinator thread after each tick. An election is
/// counted each time the peer settles (leads or follows) in an epoch it
/// was not settled in before, including the one after start-up.
pub fn observe(role: RoleKind, current_epoch: u32, last_zxid: u64, outstanding: usize) {
    let settled = settled(role);
    let epoch = u64::from(current_epoch);
    let last = SETTLED_EPOCH.load(Ordering::Relaxed);
    if election_ended(role, epoch, (last != u64::MAX).then_some(last)) {
        SETTLED_EPOCH.store(epoch, Ordering::Relaxed);
        ELECTIONS.store(ELECTIONS.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }
    ROLE.store(role_index(role), Ordering::Relaxed);
    IN_QUORUM.store(u8::from(settled), Ordering::Relaxed);
    EPOCH.store(epoch, Ordering::Relaxed);
    LAST_ZXID.store(last_zxid, Ordering::Relaxed);
    OUTSTANDING.store(outstanding as u64, Ordering::Relaxed);
    RUNNING.store(1, Ordering::Relaxed);
}

/// What a scrape reads.
#[derive(Debug, Clone, Copy)]
pub struct CoordinatorFigures {
    pub running: bool,
    pub role: usize,
    pub in_quorum: bool,
    pub epoch: u64,
    pub last_zxid: u64,
    pub outstanding: u64,
    pub elections: u64,
}

pub fn read() -> CoordinatorFigures {
    CoordinatorFigures {
        running: RUNNING.load(Ordering::Relaxed) == 1,
        role: usize::from(ROLE.load(Ordering::Relaxed)),
        in_quorum: IN_QUORUM.load(Ordering::Relaxed) == 1,
        epoch: EPOCH.load(Ordering::Relaxed),
        last_zxid: LAST_ZXID.load(Ordering::Relaxed),
        outstanding: OUTSTANDING.load(Ordering::Relaxed),
        elections: ELECTIONS.load(Ordering::Relaxed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_election_counts_once_when_the_peer_settles_in_a_new_epoch() {
        let leader = RoleKind::Leading { established: true };
        let follower = RoleKind::Following { active: true };
        // Start-up: looking, then leading before quorum acknowledged.
        assert!(!election_ended(RoleKind::Looking, 0, None));
        assert!(!election_ended(
            RoleKind::Leading { established: false },
            1,
            None
        ));
        // Established in epoch 1: one election; later ticks add none.
        assert!(election_ended(leader, 1, None));
        assert!(!election_ended(leader, 1, Some(1)));
        // Lost quorum, looked, then followed a new leader in epoch 2.
        assert!(!election_ended(RoleKind::Looking, 1, Some(1)));
        assert!(!election_ended(
            RoleKind::Following { active: false },
            2,
            Some(1)
        ));
        assert!(election_ended(follower, 2, Some(1)));
        assert!(settled(RoleKind::Observing { active: true }));
        assert!(!settled(RoleKind::Observing { active: false }));
    }
}
