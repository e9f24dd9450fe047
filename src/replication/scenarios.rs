//! Named scenarios, scripted on the simulator (no random faults, 1 ms
//! links, an fsync every step), and direct tests of the core.

use super::sim::{Options, Sim};
use super::*;

fn scripted(brokers: usize, min_insync: usize, unclean: bool) -> Sim {
    let mut sim = Sim::new(
        7,
        Options {
            brokers,
            min_insync,
            unclean,
            chaos: false,
        },
    );
    assert!(sim
        .run_until(2_000, |s| s.converged())
        .expect("invariants hold"));
    sim
}

/// Produces one record per request and waits for the answers.
fn produce_and_wait(
    sim: &mut Sim,
    b: usize,
    acks: Acks,
    n: usize,
) -> Vec<Result<Offset, ReplicationError>> {
    let requests: Vec<RequestId> = (0..n).map(|_| sim.produce(b, acks, 1)).collect();
    let answered = sim
        .run_until(2_000, |s| requests.iter().all(|r| s.done.contains_key(r)))
        .expect("invariants hold");
    assert!(answered, "every produce is answered");
    requests.iter().map(|r| sim.done[r]).collect()
}

struct Jepsen {
    /// `acks=all` writes the leader took while alone in the ISR.
    acked_alone: usize,
    refused_alone: usize,
    /// Who led after the old leader was cut off.
    leader_after_cut: Option<usize>,
    lost: Vec<(usize, u64)>,
}

/// Jepsen's 2013 Kafka test: the ISR shrinks to the leader alone, then
/// the leader is partitioned away (from the followers, the controller and
/// all clients but one) and the rest of the cluster elects a new leader.
fn jepsen(min_insync: usize, unclean: bool) -> Jepsen {
    let mut sim = scripted(3, min_insync, unclean);
    let before = produce_and_wait(&mut sim, 0, Acks::All, 5);
    assert!(before.iter().all(|r| r.is_ok()), "{before:?}");

    // The followers lose the leader (they still reach the controller):
    // after replica.lag.time.max.ms the leader shrinks the ISR to itself.
    sim.cut_link(0, 1, true);
    sim.cut_link(0, 2, true);
    let shrunk = sim
        .run_until(3_000, |s| {
            s.controller_isr() == vec![0] && s.brokers[0].core.isr() == vec![NodeId(0)]
        })
        .expect("invariants hold");
    assert!(shrunk, "the leader shrinks the ISR to itself");

    // A client next to the leader keeps writing with acks=all.
    let alone = produce_and_wait(&mut sim, 0, Acks::All, 5);
    let acked_alone = alone.iter().filter(|r| r.is_ok()).count();
    let refused_alone = alone
        .iter()
        .filter(|r| **r == Err(ReplicationError::NotEnoughReplicas))
        .count();

    // Now the leader loses the controller too; its session expires.
    sim.cut_controller(0, true);
    sim.run_ms(1_000).expect("invariants hold");
    let leader_after_cut = sim.leader();
    if let Some(l) = leader_after_cut {
        assert_ne!(l, 0);
        let after = produce_and_wait(&mut sim, l, Acks::All, 3);
        assert!(after.iter().all(|r| r.is_ok()), "{after:?}");
    }

    sim.settle().expect("the replicas converge");
    let lost = sim.lost_on(sim.leader().expect("settled"));
    Jepsen {
        acked_alone,
        refused_alone,
        leader_after_cut,
        lost,
    }
}

#[test]
fn jepsen_2013_default_config_refuses_what_it_could_lose() {
    // min.insync.replicas=2, unclean election disabled: the leader alone
    // refuses acks=all writes, the partition goes offline rather than
    // electing a replica that lacks data, and nothing acknowledged is lost.
    let j = jepsen(2, false);
    assert_eq!(j.acked_alone, 0);
    assert_eq!(
        j.refused_alone, 5,
        "NOT_ENOUGH_REPLICAS while the ISR is the leader alone"
    );
    assert_eq!(j.leader_after_cut, None, "offline: no clean candidate");
    assert!(j.lost.is_empty(), "lost {:?}", j.lost);
}

#[test]
fn jepsen_2013_min_insync_1_trades_availability_not_data() {
    // The leader alone acknowledges, but with clean elections only it is
    // the only candidate: offline until it returns, then nothing is lost.
    let j = jepsen(1, false);
    assert_eq!(j.acked_alone, 5);
    assert_eq!(j.leader_after_cut, None);
    assert!(j.lost.is_empty(), "lost {:?}", j.lost);
}

#[test]
fn jepsen_2013_unclean_election_loses_acknowledged_writes() {
    // The 2013 result, reproduced on purpose: with min.insync.replicas=1
    // and unclean election, a replica outside the ISR takes over and the
    // old leader's acknowledged writes are truncated away when it returns.
    let j = jepsen(1, true);
    assert_eq!(j.acked_alone, 5);
    assert_eq!(j.leader_after_cut, Some(1), "an unclean election");
    assert_eq!(
        j.lost.len(),
        5,
        "exactly the writes acknowledged by the leader alone"
    );
    // min.insync.replicas=2 alone already keeps those writes from being
    // acknowledged, even with unclean election enabled.
    let j = jepsen(2, true);
    assert_eq!(j.acked_alone, 0);
    assert!(j.lost.is_empty(), "lost {:?}", j.lost);
}

#[test]
fn kip101_double_failover_keeps_acknowledged_records() {
    // KIP-101: leader A (b0) and follower B (b1), min.insync.replicas=1.
    let mut sim = scripted(2, 1, false);
    let m1 = produce_and_wait(&mut sim, 0, Acks::All, 1);
    assert_eq!(m1, vec![Ok(Offset(0))]);
    // m2: B fetches it, makes it durable, and its next fetch moves A's HW
    // to 2, acknowledging m2. B crashes before it hears of that HW.
    let m2 = sim.produce(0, Acks::All, 1);
    let acked = sim
        .run_until(1_000, |s| s.brokers[0].core.high_watermark() == Offset(2))
        .expect("invariants hold");
    assert!(acked);
    assert_eq!(sim.done.get(&m2), Some(&Ok(Offset(1))));
    assert_eq!(
        sim.brokers[1].core.high_watermark(),
        Offset(1),
        "B's HW lags"
    );
    assert_eq!(sim.brokers[1].disk.log.len(), 2, "B holds m2");
    // Both fail (power loss: only fsynced data survives), and both
    // sessions expire; the partition is offline with ISR {A, B}.
    sim.crash(1, false);
    sim.crash(0, false);
    sim.run_ms(600).expect("invariants hold");
    assert_eq!(sim.leader(), None);
    // B comes back first and is elected. Its HW checkpoint says 1: a
    // replica that truncated to its HW on restart (Kafka before KIP-101)
    // would drop the acknowledged m2 here.
    sim.restart(1, false);
    assert_eq!(sim.brokers[1].core.high_watermark(), Offset(1));
    let elected = sim
        .run_until(2_000, |s| s.brokers[1].core.role() == RoleKind::Leader)
        .expect("invariants hold");
    assert!(elected);
    assert_eq!(sim.brokers[1].disk.log.len(), 2, "B kept m2");
    // B takes m3. Had B truncated, m3 would sit at offset 1 while A, whose
    // HW checkpoint is 2, kept m2 there: divergence.
    let m3 = produce_and_wait(&mut sim, 1, Acks::All, 1);
    assert_eq!(m3, vec![Ok(Offset(2))]);
    assert_eq!(sim.brokers[0].disk.hw, Offset(2));
    // A returns, asks B where its epoch ends, keeps m2 and fetches m3.
    sim.restart(0, false);
    sim.settle().expect("the replicas converge");
    assert_eq!(sim.brokers[0].disk.log, sim.brokers[1].disk.log);
    assert_eq!(sim.brokers[0].disk.log.len(), 3);
    assert!(sim.lost_on(0).is_empty() && sim.lost_on(1).is_empty());
}

#[test]
fn unacknowledged_divergent_suffix_is_truncated_by_epoch() {
    // A (b0) writes m2 with acks=1 while cut off from B (b1), then dies;
    // B is elected and writes m3 at the same offset. When A returns, its
    // epoch's end on B is offset 1: A truncates m2 and fetches m3.
    let mut sim = scripted(2, 1, false);
    let m1 = produce_and_wait(&mut sim, 0, Acks::All, 1);
    assert_eq!(m1, vec![Ok(Offset(0))]);
    sim.cut_link(0, 1, true);
    let m2 = produce_and_wait(&mut sim, 0, Acks::Leader, 1);
    assert_eq!(m2, vec![Ok(Offset(1))], "acks=1: on the leader only");
    sim.crash(0, true);
    sim.cut_link(0, 1, false);
    let elected = sim
        .run_until(2_000, |s| s.brokers[1].core.role() == RoleKind::Leader)
        .expect("invariants hold");
    assert!(elected);
    let m3 = produce_and_wait(&mut sim, 1, Acks::All, 1);
    assert_eq!(m3, vec![Ok(Offset(1))]);
    assert_ne!(
        sim.brokers[0].disk.log[1], sim.brokers[1].disk.log[1],
        "diverged"
    );
    sim.restart(0, false);
    sim.settle().expect("the replicas converge");
    assert_eq!(sim.brokers[0].disk.log, sim.brokers[1].disk.log);
    assert_eq!(sim.brokers[0].disk.log.len(), 2);
    assert!(sim.lost_on(0).is_empty());
}

#[test]
fn kafka_7128_expansion_waits_for_the_epoch_start() {
    // KAFKA-7128: a new leader's HW can lag the old leader's, so a
    // follower that reached the new leader's HW may still lack records
    // the old leader committed. Such a follower joins the ISR only once
    // it reaches the start of the new leader's epoch. Four brokers.
    let mut sim = scripted(4, 1, false);
    let first = produce_and_wait(&mut sim, 0, Acks::All, 5);
    assert!(first.iter().all(|r| r.is_ok()));
    // b2 stops at offset 5 and leaves the ISR.
    sim.cut_link(0, 2, true);
    let shrunk = sim
        .run_until(3_000, |s| {
            s.controller_isr() == vec![0, 1, 3] && s.brokers[0].core.isr() == ids(&[0, 1, 3])
        })
        .expect("invariants hold");
    assert!(shrunk);
    // m5 is acknowledged once b1 and b3 fetched past it; b0 dies before
    // either hears of HW 6.
    let m5 = sim.produce(0, Acks::All, 1);
    let acked = sim
        .run_until(1_000, |s| s.brokers[0].core.high_watermark() == Offset(6))
        .expect("invariants hold");
    assert!(acked);
    assert_eq!(sim.done.get(&m5), Some(&Ok(Offset(5))));
    assert_eq!(sim.brokers[1].core.high_watermark(), Offset(5));
    sim.crash(0, false);
    // b1 is elected with ISR {1, 3}; b3 cannot reach it, so b1's HW
    // stays at 5 while b2 follows b1 from offset 5.
    sim.cut_link(1, 3, true);
    let elected = sim
        .run_until(2_000, |s| s.brokers[1].core.role() == RoleKind::Leader)
        .expect("invariants hold");
    assert!(elected);
    assert_eq!(sim.brokers[1].core.high_watermark(), Offset(5));
    // The moment b1 counts b2 in its ISR, cut them apart: whatever b1 was
    // sending b2 is lost.
    let counted = sim
        .run_until(3_000, |s| {
            s.brokers[1].core.maximal_isr().contains(&NodeId(2))
        })
        .expect("invariants hold");
    assert!(counted);
    sim.cut_link(1, 2, true);
    // The ISR change lands; every ISR member must hold m5 (checked after
    // every step), and so does any next leader.
    sim.run_ms(50)
        .expect("b2 joined the ISR holding everything committed");
    assert_eq!(sim.brokers[2].disk.log.len(), 6);
    sim.settle().expect("the replicas converge");
    assert!(sim.lost_on(sim.leader().expect("settled")).is_empty());
}

#[test]
fn kip903_a_replica_that_lost_its_disk_cannot_join_on_its_old_fetches() {
    // b2 lags outside the ISR, catches up, and the leader proposes it
    // into the ISR; before the proposal lands, b2 restarts with an empty
    // disk. The proposal names b2's old broker epoch, so the controller
    // refuses it: b2 must earn its place again from offset 0.
    let mut sim = scripted(3, 1, false);
    let first = produce_and_wait(&mut sim, 0, Acks::All, 3);
    assert!(first.iter().all(|r| r.is_ok()));
    sim.cut_link(0, 2, true);
    let shrunk = sim
        .run_until(3_000, |s| s.brokers[0].core.isr() == ids(&[0, 1]))
        .expect("invariants hold");
    assert!(shrunk);
    let more = produce_and_wait(&mut sim, 0, Acks::All, 3);
    assert!(more.iter().all(|r| r.is_ok()));
    sim.cut_link(0, 2, false);
    let proposed = sim
        .run_until(3_000, |s| {
            s.brokers[0].core.maximal_isr().contains(&NodeId(2))
        })
        .expect("invariants hold");
    assert!(proposed);
    sim.crash(2, false);
    sim.restart(2, true);
    sim.run_ms(50)
        .expect("the emptied replica stays out of the ISR");
    assert!(!sim.controller_isr().contains(&2) || sim.brokers[2].disk.log.len() >= 6);
    sim.settle().expect("the replicas converge");
    assert!(sim.lost_on(2).is_empty());
}

// ---- the core alone -------------------------------------------------------

fn ids(v: &[i32]) -> Vec<NodeId> {
    v.iter().map(|&i| NodeId(i)).collect()
}

fn entries(v: &[(i32, i64)]) -> Vec<epochs::EpochEntry> {
    v.iter()
        .map(|&(e, s)| epochs::EpochEntry {
            epoch: LeaderEpoch(e),
            start_offset: Offset(s),
        })
        .collect()
}

fn sent(outputs: &[Output]) -> Vec<Message> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Send { msg, .. } => Some(msg.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn follower_truncates_in_rounds_when_the_leader_skipped_its_epochs() {
    // KIP-279: the follower holds epochs 0, 2, 4; the leader 0, 3, 5.
    let leader_cache = epochs::LeaderEpochCache::from_entries(entries(&[(0, 0), (3, 5), (5, 8)]))
        .expect("ordered");
    let restored = Restored {
        log_end: Offset(10),
        epochs: entries(&[(0, 0), (2, 4), (4, 7)]),
        high_watermark: Offset(3),
    };
    let mut f = Replica::restore(Config::new(NodeId(2)), restored).expect("ordered");
    let mut now = 0;
    let mut out = f.step(
        now,
        Input::BecomeFollower {
            leader: Some(NodeId(1)),
            leader_epoch: LeaderEpoch(5),
            replicas: ids(&[1, 2]),
        },
    );
    let mut truncations = Vec::new();
    for _ in 0..4 {
        now += 1;
        let msgs = sent(&out);
        let Some(Message::OffsetsForLeaderEpoch {
            correlation,
            leader_epoch,
            ..
        }) = msgs.last().cloned()
        else {
            break;
        };
        let answer = leader_cache.end_offset_for(leader_epoch, Offset(12));
        out = f.step(
            now,
            Input::Message {
                from: NodeId(1),
                msg: Message::OffsetsForLeaderEpochResponse {
                    correlation,
                    result: Ok(answer),
                },
            },
        );
        truncations.extend(out.iter().filter_map(|o| match o {
            Output::Truncate { log_end } => Some(log_end.0),
            _ => None,
        }));
    }
    // Asked for 4, told (3, 8): cut to the end of our epoch 2 (7), ask for
    // 2, told (0, 5): our epoch 0 ends at 4, so 4.
    assert_eq!(truncations, vec![7, 4]);
    assert_eq!(f.epochs().entries(), &entries(&[(0, 0)])[..]);
    assert!(matches!(
        sent(&out).last(),
        Some(Message::Fetch {
            fetch_offset: Offset(4),
            last_fetched_epoch: LeaderEpoch(0),
            ..
        })
    ));
}

#[test]
fn leader_acknowledges_acks_all_only_when_durable_on_the_isr() {
    let mut config = Config::new(NodeId(0));
    config.min_insync_replicas = 2;
    let mut l = Replica::new(config);
    l.step(
        0,
        Input::BecomeLeader {
            leader_epoch: LeaderEpoch(1),
            isr: ids(&[0, 1]),
            replicas: ids(&[0, 1]),
            version: PartitionVersion(1),
        },
    );
    let produce = |request| Input::Produce {
        request: RequestId(request),
        acks: Acks::All,
        records: 2,
        timeout_ms: 1_000,
    };
    let out = l.step(1, produce(1));
    assert!(out.contains(&Output::Append {
        request: RequestId(1),
        base_offset: Offset(0),
        records: 2,
        leader_epoch: LeaderEpoch(1),
    }));
    let done = |out: &[Output]| out.iter().any(|o| matches!(o, Output::ProduceDone { .. }));
    assert!(!done(
        &l.step(2, Input::LocalAppended { log_end: Offset(2) })
    ));
    let fetch = |offset, epoch| Input::Message {
        from: NodeId(1),
        msg: Message::Fetch {
            correlation: Correlation(offset as u64 + 1),
            replica_epoch: 1,
            current_leader_epoch: LeaderEpoch(1),
            fetch_offset: Offset(offset),
            last_fetched_epoch: LeaderEpoch(epoch),
        },
    };
    // The follower has both records durable, the leader has not fsynced.
    assert!(!done(&l.step(3, fetch(2, 1))));
    assert_eq!(l.high_watermark(), Offset(0));
    let out = l.step(
        4,
        Input::LocalDurable {
            durable_end: Offset(2),
        },
    );
    assert!(out.contains(&Output::ProduceDone {
        request: RequestId(1),
        result: Ok(Offset(0)),
    }));
    // A fetch claiming an epoch the leader never had is told to truncate.
    let out = l.step(5, fetch(2, 0));
    assert!(matches!(
        sent(&out).last(),
        Some(Message::FetchResponse {
            result: FetchResult::Diverging { .. },
            ..
        })
    ));
    // The follower stops fetching: after the lag time the leader proposes
    // to drop it, and acks=all is refused once that is committed.
    let out = l.step(40_000, Input::Tick);
    assert!(out.contains(&Output::ProposeIsr {
        leader_epoch: LeaderEpoch(1),
        isr: ids(&[0]),
        version: PartitionVersion(1),
        joining: None,
    }));
    l.step(
        40_001,
        Input::IsrCommitted {
            leader_epoch: LeaderEpoch(1),
            isr: ids(&[0]),
            version: PartitionVersion(2),
        },
    );
    let out = l.step(40_002, produce(2));
    assert_eq!(
        out,
        vec![Output::ProduceDone {
            request: RequestId(2),
            result: Err(ReplicationError::NotEnoughReplicas),
        }]
    );
}
