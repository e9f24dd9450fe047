//! The controller's side of a partition, as pure functions: the state it
//! keeps in `/brokers/topics/T/partitions/P/state`, leader election from
//! the ISR, and the compare-and-set a leader's ISR change goes through.
//!
//! The controller's driver (a later session) reads and writes the znode;
//! these functions decide what to write, so the simulator and the real
//! controller make the same decisions.

use super::{LeaderEpoch, NodeId, PartitionVersion};

/// The partition-state znode: leader, leader epoch, ISR, and the znode
/// version that fences concurrent writers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionState {
    /// `None` while the partition is offline (no eligible replica alive).
    pub leader: Option<NodeId>,
    pub leader_epoch: LeaderEpoch,
    pub isr: Vec<NodeId>,
    pub version: PartitionVersion,
}

/// Who leads after the current leader is gone, as Kafka's
/// `OfflinePartitionLeaderElectionStrategy` picks: the first replica in
/// assignment order that is alive and in the ISR; with
/// `unclean.leader.election.enable` and no such replica, the first live
/// replica (which may lack acknowledged records: that is what "unclean"
/// means). Returns the leader and whether the election was unclean.
pub fn elect_leader(
    replicas: &[NodeId],
    isr: &[NodeId],
    live: impl Fn(NodeId) -> bool,
    unclean_enabled: bool,
) -> Option<(NodeId, bool)> {
    if let Some(&r) = replicas.iter().find(|&&r| isr.contains(&r) && live(r)) {
        return Some((r, false));
    }
    if unclean_enabled {
        return replicas.iter().find(|&&r| live(r)).map(|&r| (r, true));
    }
    None
}

/// What a leader's ISR change did to the znode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IsrWrite {
    /// Written; the state now holds it at a new version.
    Applied(PartitionState),
    /// The znode already holds exactly this change: a retry of a write
    /// whose answer was lost (Kafka's `checkLeaderAndIsrZkData`). Treat as
    /// success at the current version.
    AlreadyApplied(PartitionState),
    /// The znode moved on (a new leader or epoch): the leader must wait
    /// for the controller's LeaderAndIsr.
    Conflict(PartitionState),
    /// The joining replica is not alive in the broker epoch the leader
    /// validated (KIP-903). The state is rewritten unchanged at a new
    /// version (write it), so that no copy of this proposal still in
    /// flight can apply later.
    Ineligible(PartitionState),
}

/// The compare-and-set on the partition-state znode version for a leader's
/// ISR change. Only the leader of the current epoch may change the ISR
/// this way, and the ISR must keep the leader. A joining replica must be
/// registered and alive in the broker epoch it fetched with
/// (`registered(id, broker_epoch)`).
pub fn write_isr(
    current: &PartitionState,
    leader: NodeId,
    leader_epoch: LeaderEpoch,
    isr: &[NodeId],
    expected: PartitionVersion,
    joining: Option<(NodeId, i64)>,
    registered: impl Fn(NodeId, i64) -> bool,
) -> IsrWrite {
    let same_leadership = current.leader == Some(leader) && current.leader_epoch == leader_epoch;
    if same_leadership && current.isr == isr {
        return IsrWrite::AlreadyApplied(current.clone());
    }
    if !same_leadership || current.version != expected || !isr.contains(&leader) {
        return IsrWrite::Conflict(current.clone());
    }
    let added_unchecked = isr
        .iter()
        .any(|r| !current.isr.contains(r) && joining.is_none_or(|(j, _)| j != *r));
    if added_unchecked || joining.is_some_and(|(j, epoch)| !registered(j, epoch)) {
        return IsrWrite::Ineligible(PartitionState {
            version: PartitionVersion(current.version.0 + 1),
            ..current.clone()
        });
    }
    IsrWrite::Applied(PartitionState {
        leader: Some(leader),
        leader_epoch,
        isr: isr.to_vec(),
        version: PartitionVersion(current.version.0 + 1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[i32]) -> Vec<NodeId> {
        v.iter().map(|&i| NodeId(i)).collect()
    }

    #[test]
    fn elects_from_the_isr_unless_unclean() {
        let replicas = ids(&[0, 1, 2]);
        let live = |n: NodeId| n.0 != 0;
        assert_eq!(
            elect_leader(&replicas, &ids(&[0, 2]), live, false),
            Some((NodeId(2), false))
        );
        assert_eq!(elect_leader(&replicas, &ids(&[0]), live, false), None);
        assert_eq!(
            elect_leader(&replicas, &ids(&[0]), live, true),
            Some((NodeId(1), true))
        );
    }

    #[test]
    fn isr_writes_are_fenced_by_version_and_epoch() {
        let state = PartitionState {
            leader: Some(NodeId(0)),
            leader_epoch: LeaderEpoch(3),
            isr: ids(&[0, 1, 2]),
            version: PartitionVersion(7),
        };
        let shrink = ids(&[0, 1]);
        let any = |_: NodeId, _: i64| true;
        let IsrWrite::Applied(next) = write_isr(
            &state,
            NodeId(0),
            LeaderEpoch(3),
            &shrink,
            PartitionVersion(7),
            None,
            any,
        ) else {
            panic!("the current leader's write applies")
        };
        assert_eq!(next.version, PartitionVersion(8));
        // The retry of a write whose answer was lost.
        assert!(matches!(
            write_isr(
                &next,
                NodeId(0),
                LeaderEpoch(3),
                &shrink,
                PartitionVersion(7),
                None,
                any,
            ),
            IsrWrite::AlreadyApplied(_)
        ));
        assert!(matches!(
            write_isr(
                &next,
                NodeId(0),
                LeaderEpoch(3),
                &ids(&[0]),
                PartitionVersion(7),
                None,
                any,
            ),
            IsrWrite::Conflict(_)
        ));
        assert!(matches!(
            write_isr(
                &state,
                NodeId(0),
                LeaderEpoch(2),
                &shrink,
                PartitionVersion(7),
                None,
                any,
            ),
            IsrWrite::Conflict(_)
        ));
        assert!(matches!(
            write_isr(
                &state,
                NodeId(1),
                LeaderEpoch(3),
                &shrink,
                PartitionVersion(7),
                None,
                any,
            ),
            IsrWrite::Conflict(_)
        ));
        // KIP-903: an expansion naming a broker epoch that is no longer
        // the replica's registration is refused, and so is one that adds
        // a replica without naming it.
        let small = PartitionState {
            isr: ids(&[0, 1]),
            ..state.clone()
        };
        let only_epoch_9 = |r: NodeId, e: i64| r == NodeId(2) && e == 9;
        let grow = |joining| {
            write_isr(
                &small,
                NodeId(0),
                LeaderEpoch(3),
                &ids(&[0, 1, 2]),
                PartitionVersion(7),
                joining,
                only_epoch_9,
            )
        };
        assert!(matches!(grow(Some((NodeId(2), 9))), IsrWrite::Applied(_)));
        assert!(matches!(
            grow(Some((NodeId(2), 8))),
            IsrWrite::Ineligible(_)
        ));
        assert!(matches!(grow(None), IsrWrite::Ineligible(_)));
    }
}
