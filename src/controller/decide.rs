//! The controller's decisions as a pure function of the cluster view:
//! Kafka's ZooKeeper-mode controller (`PartitionStateMachine`,
//! `ReplicaStateMachine`, `KafkaController.onBrokerFailure`,
//! `doControlledShutdown`, `checkAndTriggerAutoLeaderRebalance`), rule by
//! rule. The driver writes each [`StateChange`] as one `multi` fenced by
//! the controller epoch and the state's version, and decides again from
//! the next view; so every rule only has to move a partition one step
//! closer to where it should be.
//!
//! Words used below, for broker `b` and one partition:
//! - live: `/brokers/ids/b` exists;
//! - restarted: live with a registration (czxid, its broker epoch) newer
//!   than the partition state's last write (mzxid): the state was written
//!   for its previous life (KIP-380);
//! - shutting down: `b` asked for a controlled shutdown;
//! - keepable: live, not restarted, not shutting down.
//!
//! Rules (every change bumps the leader epoch):
//! 1. The leader is gone, restarted, or there is none: elect with
//!    [`elect_leader`] the first replica in assignment order that is in
//!    the ISR and keepable; else one that is in the ISR, live and not
//!    shutting down (a restarted replica, the old leader included: it
//!    leads again, but in a new epoch, so followers truncate to what the
//!    new epoch starts from and the leader never resumes an epoch whose
//!    tail its crash may have lost); else, with unclean election, any
//!    live replica not shutting down (ISR = that replica alone). The new
//!    ISR is the old one less members that are not keepable, with the new
//!    leader kept. Nobody electable: leader -1 and the ISR unchanged, so
//!    that a returning member can lead later (no change when already -1).
//! 2. The leader is shutting down and another ISR member is keepable (or
//!    at least live and not shutting down): that one leads.
//! 3. Otherwise ISR members that are not keepable leave the ISR (the
//!    leader stays, the ISR never empties): Kafka's `OfflineReplica`
//!    transition for brokers that died, restarted or shut down.
//! 4. Preferred leader (when `rebalance_due`): when the first replica is
//!    keepable, in the ISR and not the leader, and the leader is fine, it
//!    becomes the leader. Kafka also waits until a broker's imbalance
//!    passes `leader.imbalance.per.broker.percentage` (10%); Ringtail
//!    moves every partition whose preferred leader is ready.

use std::collections::BTreeSet;

use super::view::{ClusterView, PartitionInfo};
use crate::replication::election::elect_leader;
use crate::replication::NodeId;

/// One partition-state write the controller wants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateChange {
    pub topic: String,
    pub partition: i32,
    pub old_leader: i32,
    pub old_leader_epoch: i32,
    pub old_isr: Vec<i32>,
    /// -1: offline.
    pub leader: i32,
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
    /// The state's znode version this change is based on.
    pub expected_version: i32,
    /// Why, for the log: `broker 1 gone`, `preferred leader`, ...
    pub reason: String,
}

fn list(v: &[i32]) -> String {
    let items: Vec<String> = v.iter().map(i32::to_string).collect();
    format!("[{}]", items.join(","))
}

impl std::fmt::Display for StateChange {
    /// `t-0 leader 1 -> 2, epoch 3 -> 4, isr [1,2,3] -> [2,3] (broker 1 gone)`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}-{} leader {} -> {}, epoch {} -> {}, isr {} -> {} ({})",
            self.topic,
            self.partition,
            self.old_leader,
            self.leader,
            self.old_leader_epoch,
            self.leader_epoch,
            list(&self.old_isr),
            list(&self.isr),
            self.reason
        )
    }
}

/// Every state change the controller should write now, in topic and
/// partition order. Partitions without a readable state are left alone.
pub fn decide(view: &ClusterView, rebalance_due: bool, unclean: bool) -> Vec<StateChange> {
    let mut out = Vec::new();
    for t in view.topics.values() {
        for (p, info) in t.partitions.iter().enumerate() {
            if info.version < 0 {
                continue;
            }
            let judge = Judge { view, info };
            if let Some((leader, isr, reason)) = judge.decide(rebalance_due, unclean) {
                out.push(StateChange {
                    topic: t.name.clone(),
                    partition: p as i32,
                    old_leader: info.leader,
                    old_leader_epoch: info.leader_epoch,
                    old_isr: info.isr.clone(),
                    leader,
                    leader_epoch: info.leader_epoch.saturating_add(1),
                    isr,
                    expected_version: info.version,
                    reason,
                });
            }
        }
    }
    out
}

/// One partition seen against the live brokers.
struct Judge<'a> {
    view: &'a ClusterView,
    info: &'a PartitionInfo,
}

type Decision = (i32, Vec<i32>, String);

impl Judge<'_> {
    fn live(&self, b: i32) -> bool {
        self.view.brokers.contains_key(&b)
    }

    fn restarted(&self, b: i32) -> bool {
        self.view
            .brokers
            .get(&b)
            .is_some_and(|i| i.epoch > self.info.mzxid)
    }

    fn shutting(&self, b: i32) -> bool {
        self.view.shutting_down.contains(&b)
    }

    fn eligible(&self, b: i32) -> bool {
        self.live(b) && !self.shutting(b)
    }

    fn keepable(&self, b: i32) -> bool {
        self.eligible(b) && !self.restarted(b)
    }

    fn elect(&self, ok: impl Fn(i32) -> bool, unclean: bool) -> Option<(i32, bool)> {
        let replicas: Vec<NodeId> = self.info.replicas.iter().map(|&r| NodeId(r)).collect();
        let isr: Vec<NodeId> = self.info.isr.iter().map(|&r| NodeId(r)).collect();
        elect_leader(&replicas, &isr, |n| ok(n.0), unclean).map(|(n, u)| (n.0, u))
    }

    /// Why `b` has to leave the ISR, if it does.
    fn unfit(&self, b: i32) -> Option<String> {
        if !self.live(b) {
            Some(format!("broker {b} gone"))
        } else if self.shutting(b) {
            Some(format!("broker {b} shutting down"))
        } else if self.restarted(b) {
            Some(format!("broker {b} restarted"))
        } else {
            None
        }
    }

    /// The ISR for `leader`: the old one less unfit members, the leader
    /// kept; never empty.
    fn isr_for(&self, leader: i32, reasons: &mut Vec<String>) -> Vec<i32> {
        let mut isr = Vec::new();
        for &b in &self.info.isr {
            match self.unfit(b) {
                Some(why) if b != leader => {
                    if !reasons.contains(&why) {
                        reasons.push(why);
                    }
                }
                _ => isr.push(b),
            }
        }
        if isr.is_empty() {
            return self.info.isr.clone();
        }
        isr
    }

    fn decide(&self, rebalance_due: bool, unclean: bool) -> Option<Decision> {
        let l = self.info.leader;
        if l < 0 || !self.live(l) || self.restarted(l) {
            return self.elect_new(unclean);
        }
        let mut reasons = Vec::new();
        let mut leader = l;
        if self.shutting(l) {
            let other = self
                .elect(|b| b != l && self.keepable(b), false)
                .or_else(|| self.elect(|b| b != l && self.eligible(b), false));
            if let Some((n, _)) = other {
                leader = n;
                reasons.push(format!("controlled shutdown of broker {l}"));
            }
        } else if rebalance_due {
            let preferred = self.info.replicas.first().copied().unwrap_or(-1);
            if preferred != l && self.info.isr.contains(&preferred) && self.keepable(preferred) {
                leader = preferred;
                reasons.push("preferred leader".to_string());
            }
        }
        let isr = self.isr_for(leader, &mut reasons);
        if leader == l && isr == self.info.isr {
            return None;
        }
        Some((leader, isr, reasons.join("; ")))
    }

    /// Rule 1: the leader is gone, restarted or absent.
    fn elect_new(&self, unclean: bool) -> Option<Decision> {
        let l = self.info.leader;
        let mut reasons = vec![match l {
            -1 => "offline".to_string(),
            l if !self.live(l) => format!("broker {l} gone"),
            l => format!("broker {l} restarted"),
        }];
        let elected = self
            .elect(|b| self.keepable(b), false)
            .or_else(|| self.elect(|b| self.eligible(b), false))
            .or_else(|| {
                unclean
                    .then(|| self.elect(|b| self.eligible(b), true))
                    .flatten()
            });
        match elected {
            Some((n, true)) => {
                reasons.push("unclean election".to_string());
                Some((n, vec![n], reasons.join("; ")))
            }
            Some((n, false)) => {
                let isr = self.isr_for(n, &mut reasons);
                Some((n, isr, reasons.join("; ")))
            }
            None if l >= 0 => {
                reasons.push("no live ISR member".to_string());
                Some((-1, self.info.isr.clone(), reasons.join("; ")))
            }
            None => None,
        }
    }
}

/// What a controlled shutdown of `broker` still waits for, as
/// `topic-partition` names: partitions it leads while another live ISR
/// member that is not shutting down could take over, and partitions led
/// by another broker whose ISR still lists it (Kafka's controller moves a
/// shutting-down follower's replicas offline, out of the ISR, before it
/// answers).
pub fn shutdown_pending(view: &ClusterView, broker: i32) -> Vec<String> {
    let mut out = Vec::new();
    for t in view.topics.values() {
        for (p, info) in t.partitions.iter().enumerate() {
            let movable = info.leader == broker
                && info
                    .isr
                    .iter()
                    .any(|&b| b != broker && view.live(b) && !view.shutting_down.contains(&b));
            let follower = info.leader >= 0 && info.leader != broker && info.isr.contains(&broker);
            if movable || follower {
                out.push(format!("{}-{p}", t.name));
            }
        }
    }
    out
}

/// Used by the tests and the driver's log: brokers named in a view.
pub fn brokers_named(view: &ClusterView) -> BTreeSet<i32> {
    let mut out: BTreeSet<i32> = view.brokers.keys().copied().collect();
    for t in view.topics.values() {
        for p in &t.partitions {
            out.extend(p.replicas.iter().copied());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::controller::view::{BrokerInfo, TopicInfo};
    use crate::replication::election::{write_isr, IsrWrite, PartitionState};
    use crate::replication::{LeaderEpoch, PartitionVersion};
    use crate::sim_rng::Rng;

    fn broker(id: i32, epoch: i64) -> BrokerInfo {
        BrokerInfo {
            id,
            host: "127.0.0.1".into(),
            port: 9092,
            rack: None,
            epoch,
        }
    }

    /// A simulated tree: brokers come and go, leaders change their ISR,
    /// the controller decides and its changes are applied.
    struct Sim {
        seed: u64,
        rng: Rng,
        zxid: i64,
        brokers: Vec<i32>,
        view: ClusterView,
        unclean: bool,
        log: Vec<String>,
    }

    impl Sim {
        fn new(seed: u64) -> Sim {
            let mut rng = Rng(seed);
            let n = 2 + rng.below(4) as i32;
            let brokers: Vec<i32> = (1..=n).collect();
            let mut zxid = 1;
            let mut view = ClusterView::default();
            for &b in &brokers {
                zxid += 1;
                view.brokers.insert(b, broker(b, zxid));
            }
            let rack_list: Vec<(i32, Option<String>)> =
                brokers.iter().map(|&b| (b, None)).collect();
            for t in 0..2 {
                let rf = 1 + rng.below(n.min(3) as u64) as i16;
                let parts = 1 + rng.below(4) as i32;
                let assignment = crate::controller::assign::assign_replicas(
                    &rack_list,
                    parts,
                    rf,
                    0,
                    rng.next(),
                )
                .expect("assign");
                zxid += 1;
                let partitions = assignment
                    .into_iter()
                    .map(|replicas| PartitionInfo {
                        leader: replicas[0],
                        leader_epoch: 0,
                        isr: replicas.clone(),
                        replicas,
                        version: 0,
                        controller_epoch: 1,
                        mzxid: zxid,
                    })
                    .collect();
                let name = format!("t{t}");
                view.topics.insert(
                    name.clone(),
                    Arc::new(TopicInfo {
                        name,
                        id: [t as u8; 16],
                        partitions,
                        configs: BTreeMap::new(),
                    }),
                );
            }
            let unclean = rng.below(4) == 0;
            Sim {
                seed,
                rng,
                zxid,
                brokers,
                view,
                unclean,
                log: Vec::new(),
            }
        }

        fn fail(&self, what: &str) -> ! {
            panic!(
                "seed {}: {what}\nhistory:\n{}\nview: {:#?}",
                self.seed,
                self.log.join("\n"),
                self.view
            )
        }

        fn bump(&mut self) -> i64 {
            self.zxid += 1;
            self.zxid
        }

        fn set(&mut self, topic: &str, p: usize, f: impl FnOnce(&mut PartitionInfo)) {
            let zxid = self.bump();
            let t = Arc::make_mut(self.view.topics.get_mut(topic).expect("topic"));
            let info = &mut t.partitions[p];
            f(info);
            info.version += 1;
            info.mzxid = zxid;
        }

        fn random_partition(&mut self) -> (String, usize) {
            let names: Vec<String> = self.view.topics.keys().cloned().collect();
            let name = names[self.rng.index(names.len())].clone();
            let p = self.rng.index(self.view.topics[&name].partitions.len());
            (name, p)
        }

        /// One random event that is not the controller's.
        fn event(&mut self) {
            let b = self.brokers[self.rng.index(self.brokers.len())];
            match self.rng.below(10) {
                0 | 1 => {
                    if self.view.brokers.remove(&b).is_some() {
                        self.view.shutting_down.remove(&b);
                        self.log.push(format!("broker {b} dies"));
                    }
                }
                2 | 3 => {
                    if !self.view.live(b) {
                        let epoch = self.bump();
                        self.view.brokers.insert(b, broker(b, epoch));
                        self.log.push(format!("broker {b} returns (epoch {epoch})"));
                    }
                }
                4 => {
                    // Dies and returns before the controller looks.
                    self.view.shutting_down.remove(&b);
                    let epoch = self.bump();
                    self.view.brokers.insert(b, broker(b, epoch));
                    self.log.push(format!("broker {b} bounces (epoch {epoch})"));
                }
                5 => {
                    if self.view.live(b) && self.rng.below(3) == 0 {
                        self.view.shutting_down.insert(b);
                        self.log.push(format!("broker {b} asks to shut down"));
                    }
                }
                _ => self.leader_isr_change(),
            }
        }

        /// A partition leader shrinks or expands its ISR through
        /// `write_isr`, as `IsrWriter` does.
        fn leader_isr_change(&mut self) {
            let (name, p) = self.random_partition();
            let info = self.view.topics[&name].partitions[p].clone();
            let leader = info.leader;
            if leader < 0 || !self.view.live(leader) {
                return;
            }
            let mut isr = info.isr.clone();
            let mut joining = None;
            let outside: Vec<i32> = info
                .replicas
                .iter()
                .copied()
                .filter(|r| !isr.contains(r) && self.view.live(*r))
                .collect();
            if !outside.is_empty() && self.rng.below(2) == 0 {
                let j = outside[self.rng.index(outside.len())];
                let epoch = self.view.brokers[&j].epoch;
                isr.push(j);
                joining = Some((NodeId(j), epoch));
            } else if isr.len() > 1 {
                let others: Vec<i32> = isr.iter().copied().filter(|&b| b != leader).collect();
                let out = others[self.rng.index(others.len())];
                isr.retain(|&b| b != out);
            } else {
                return;
            }
            let current = PartitionState {
                leader: Some(NodeId(leader)),
                leader_epoch: LeaderEpoch(info.leader_epoch),
                isr: info.isr.iter().map(|&b| NodeId(b)).collect(),
                version: PartitionVersion(info.version),
            };
            let ids: Vec<NodeId> = isr.iter().map(|&b| NodeId(b)).collect();
            let view = &self.view;
            let registered = |n: NodeId, e: i64| {
                view.brokers.get(&n.0).is_some_and(|b| b.epoch == e)
                    && !view.shutting_down.contains(&n.0)
            };
            let w = write_isr(
                &current,
                NodeId(leader),
                LeaderEpoch(info.leader_epoch),
                &ids,
                PartitionVersion(info.version),
                joining,
                registered,
            );
            if let IsrWrite::Applied(next) = w {
                let isr: Vec<i32> = next.isr.iter().map(|n| n.0).collect();
                self.log
                    .push(format!("leader {leader} of {name}-{p} sets isr {isr:?}"));
                self.set(&name, p, |i| i.isr = isr);
            }
        }

        /// The controller decides; every change is checked, then applied.
        fn control(&mut self, rebalance_due: bool) {
            let changes = decide(&self.view, rebalance_due, self.unclean);
            for c in &changes {
                self.check(c, rebalance_due);
            }
            // Every partition whose leader restarted was changed.
            for t in self.view.topics.values() {
                for (p, info) in t.partitions.iter().enumerate() {
                    let bounced = self
                        .view
                        .brokers
                        .get(&info.leader)
                        .is_some_and(|b| b.epoch > info.mzxid);
                    if bounced
                        && !changes
                            .iter()
                            .any(|c| c.topic == t.name && c.partition == p as i32)
                    {
                        self.fail(&format!("{}-{p}: restarted leader kept its epoch", t.name));
                    }
                }
            }
            for c in changes {
                self.log.push(format!("controller: {c}"));
                let (leader, epoch, isr) = (c.leader, c.leader_epoch, c.isr.clone());
                self.set(&c.topic, c.partition as usize, |i| {
                    i.leader = leader;
                    i.leader_epoch = epoch;
                    i.isr = isr;
                });
            }
        }

        fn check(&self, c: &StateChange, rebalance_due: bool) {
            let info = &self.view.topics[&c.topic].partitions[c.partition as usize];
            let v = &self.view;
            let say = |what: &str| self.fail(&format!("{c}: {what}"));
            if c.expected_version != info.version {
                say("not based on the current version");
            }
            if c.leader_epoch != info.leader_epoch + 1 {
                say("epoch does not grow by one");
            }
            if c.isr.is_empty() {
                say("empty ISR");
            }
            if c.isr.iter().any(|b| !info.replicas.contains(b)) {
                say("ISR member is not a replica");
            }
            if c.isr.iter().collect::<BTreeSet<_>>().len() != c.isr.len() {
                say("ISR repeats a broker");
            }
            if c.leader >= 0 {
                if !c.isr.contains(&c.leader) {
                    say("leader outside the new ISR");
                }
                if !v.live(c.leader) {
                    say("leader not live");
                }
                // A leader that is shutting down keeps leading only when
                // no other ISR member can take over.
                let kept = c.leader == info.leader
                    && v.brokers
                        .get(&c.leader)
                        .is_some_and(|b| b.epoch <= info.mzxid);
                if !kept && v.shutting_down.contains(&c.leader) {
                    say("a broker shutting down was elected");
                }
                if kept
                    && v.shutting_down.contains(&c.leader)
                    && c.isr
                        .iter()
                        .any(|&b| b != c.leader && v.live(b) && !v.shutting_down.contains(&b))
                {
                    say("a leader shutting down kept leading with another ISR member ready");
                }
                let clean = !c.reason.contains("unclean");
                if (!self.unclean || clean) && !info.isr.contains(&c.leader) {
                    say("leader not from the old ISR");
                }
                if clean && c.isr.iter().any(|b| !info.isr.contains(b)) {
                    say("the controller added to the ISR");
                }
                if !self.unclean && !clean {
                    say("unclean election while disabled");
                }
            } else if c.isr != info.isr {
                say("an offline partition's ISR changed");
            }
            if c.reason.contains("preferred") && !rebalance_due {
                say("preferred election when not due");
            }
        }

        /// After the controller's changes, deciding again changes nothing.
        fn check_fixpoint(&self) {
            let again = decide(&self.view, false, self.unclean);
            if let Some(c) = again.first() {
                self.fail(&format!("not a fixpoint: {c}"));
            }
        }
    }

    #[test]
    fn decisions_keep_the_invariants_over_random_histories() {
        let seeds = std::env::var("RINGTAIL_DECIDE_SEEDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(2000u64);
        let mut changes = 0;
        for seed in 0..seeds {
            let mut sim = Sim::new(seed);
            for step in 0..60 {
                for _ in 0..sim.rng.below(4) {
                    sim.event();
                }
                let rebalance_due = step % 7 == 0;
                let before = sim.log.len();
                sim.control(rebalance_due);
                changes += sim.log.len() - before;
                sim.check_fixpoint();
            }
            // Everyone returns and stays: every partition gets a leader,
            // and with rebalancing its preferred one.
            for b in sim.brokers.clone() {
                sim.view.shutting_down.remove(&b);
                if !sim.view.live(b) {
                    let epoch = sim.bump();
                    sim.view.brokers.insert(b, broker(b, epoch));
                }
            }
            sim.control(true);
            sim.control(true);
            for t in sim.view.topics.values() {
                for (p, info) in t.partitions.iter().enumerate() {
                    if info.leader < 0 {
                        sim.fail(&format!("{}-{p} offline with every broker back", t.name));
                    }
                    if info.isr.contains(&info.replicas[0]) && info.leader != info.replicas[0] {
                        sim.fail(&format!("{}-{p}: preferred leader not restored", t.name));
                    }
                }
            }
        }
        assert!(
            changes > seeds as usize,
            "the histories made too few changes: {changes}"
        );
    }

    fn one_partition(replicas: &[i32], leader: i32, isr: &[i32], mzxid: i64) -> ClusterView {
        let mut view = ClusterView::default();
        view.topics.insert(
            "t".into(),
            Arc::new(TopicInfo {
                name: "t".into(),
                id: [0; 16],
                partitions: vec![PartitionInfo {
                    replicas: replicas.to_vec(),
                    leader,
                    leader_epoch: 3,
                    isr: isr.to_vec(),
                    version: 5,
                    controller_epoch: 1,
                    mzxid,
                }],
                configs: BTreeMap::new(),
            }),
        );
        view
    }

    #[test]
    fn the_rules_one_by_one() {
        // The leader is gone: the next ISR member in assignment order.
        let mut v = one_partition(&[1, 2, 3], 1, &[1, 2, 3], 10);
        v.brokers.insert(2, broker(2, 5));
        v.brokers.insert(3, broker(3, 6));
        let c = decide(&v, false, false);
        assert_eq!(c.len(), 1);
        assert_eq!(
            c[0].to_string(),
            "t-0 leader 1 -> 2, epoch 3 -> 4, isr [1,2,3] -> [2,3] (broker 1 gone)"
        );
        // It restarted: someone else leads, it leaves the ISR.
        v.brokers.insert(1, broker(1, 11));
        assert_eq!(
            decide(&v, false, false)[0].to_string(),
            "t-0 leader 1 -> 2, epoch 3 -> 4, isr [1,2,3] -> [2,3] (broker 1 restarted)"
        );
        // ... unless it is the only live ISR member: then it leads again in
        // a new epoch.
        let mut v = one_partition(&[1, 2, 3], 1, &[1, 2], 10);
        v.brokers.insert(1, broker(1, 11));
        v.brokers.insert(3, broker(3, 6));
        assert_eq!(
            decide(&v, false, false)[0].to_string(),
            "t-0 leader 1 -> 1, epoch 3 -> 4, isr [1,2] -> [1] (broker 1 restarted; broker 2 gone)"
        );
        // Nobody electable: offline, ISR kept; unclean picks a live replica.
        v.brokers.remove(&1);
        assert_eq!(
            decide(&v, false, false)[0].to_string(),
            "t-0 leader 1 -> -1, epoch 3 -> 4, isr [1,2] -> [1,2] (broker 1 gone; no live ISR member)"
        );
        assert_eq!(
            decide(&v, false, true)[0].to_string(),
            "t-0 leader 1 -> 3, epoch 3 -> 4, isr [1,2] -> [3] (broker 1 gone; unclean election)"
        );
        let offline = one_partition(&[1, 2, 3], -1, &[1, 2], 10);
        assert!(decide(&offline, false, false).is_empty());
        // Controlled shutdown: leadership moves, the broker leaves ISRs.
        let mut v = one_partition(&[1, 2, 3], 1, &[1, 2, 3], 10);
        for b in 1..=3 {
            v.brokers.insert(b, broker(b, b as i64));
        }
        v.shutting_down.insert(1);
        assert_eq!(
            decide(&v, false, false)[0].to_string(),
            "t-0 leader 1 -> 2, epoch 3 -> 4, isr [1,2,3] -> [2,3] (controlled shutdown of broker 1; broker 1 shutting down)"
        );
        assert_eq!(shutdown_pending(&v, 1), vec!["t-0".to_string()]);
        // A follower shutting down waits until it is out of the ISR.
        v.shutting_down = BTreeSet::from([3]);
        assert_eq!(shutdown_pending(&v, 3), vec!["t-0".to_string()]);
        assert_eq!(
            decide(&v, true, false)[0].to_string(),
            "t-0 leader 1 -> 1, epoch 3 -> 4, isr [1,2,3] -> [1,2] (broker 3 shutting down)"
        );
        // Preferred leader, only when due.
        let mut v = one_partition(&[1, 2, 3], 2, &[1, 2, 3], 10);
        for b in 1..=3 {
            v.brokers.insert(b, broker(b, b as i64));
        }
        assert!(decide(&v, false, false).is_empty());
        assert_eq!(
            decide(&v, true, false)[0].to_string(),
            "t-0 leader 2 -> 1, epoch 3 -> 4, isr [1,2,3] -> [1,2,3] (preferred leader)"
        );
        // Broker 1 is a follower in 2's ISR: its shutdown waits for that.
        assert_eq!(shutdown_pending(&v, 1), vec!["t-0".to_string()]);
        let offline = one_partition(&[1, 2, 3], -1, &[1, 2], 10);
        assert!(shutdown_pending(&offline, 1).is_empty());
        assert_eq!(brokers_named(&v), BTreeSet::from([1, 2, 3]));
    }
}
