//! Deterministic scenarios for known ZooKeeper replication bugs, run on
//! the simulator with scripted faults instead of random ones.

use ringtail_coordinator::clients::{ClientOp, Response};
use ringtail_coordinator::ids::Zxid;
use ringtail_coordinator::peer::RoleKind;
use ringtail_coordinator::sim::{Options, Sim};
use ringtail_coordinator::txn::{CreateMode, OpResult, WriteOp};

const SEED: u64 = 1154;

fn create(path: &str) -> WriteOp {
    WriteOp::Create {
        path: path.to_string(),
        data: b"v".to_vec(),
        mode: CreateMode::Persistent,
    }
}

fn created(response: &Response) -> Zxid {
    match response {
        Response::Write {
            zxid,
            result: OpResult::Created { .. },
        } => *zxid,
        other => panic!("expected a create, got {other:?}"),
    }
}

fn wait_leader(sim: &mut Sim) -> usize {
    let found = sim
        .run_until(20_000, |s| s.leader().is_some())
        .expect("invariants hold");
    assert!(found, "a leader is elected");
    sim.leader().expect("leader")
}

/// Waits until every live peer is up to date with one established leader.
fn wait_stable(sim: &mut Sim, peers: &[usize]) -> usize {
    let stable = |s: &Sim| {
        s.leader().is_some()
            && peers.iter().all(|&i| {
                s.peer(i).is_some_and(|p| {
                    matches!(
                        p.role(),
                        RoleKind::Leading { established: true } | RoleKind::Following { active: true }
                    )
                })
            })
    };
    assert!(
        sim.run_until(20_000, stable).expect("invariants hold"),
        "ensemble settles"
    );
    sim.leader().expect("leader")
}

fn others(leader: usize) -> (usize, usize) {
    let rest: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    (rest[0], rest[1])
}

fn has_node(sim: &Sim, i: usize, path: &str) -> bool {
    sim.peer(i).is_some_and(|p| p.tree().node(path).is_some())
}

/// ZOOKEEPER-1154: a peer that logged a proposal no quorum saw, and was
/// away while a new epoch committed other transactions, must be truncated
/// before it gets the DIFF; otherwise its log holds a txn nobody else has.
#[test]
fn zookeeper_1154_diverged_follower_is_truncated_before_diff() {
    let mut sim = Sim::new(Options::scripted(SEED, 3));
    let old = wait_stable(&mut sim, &[0, 1, 2]);
    let session = sim.open_session(old).expect("session");
    for i in 0..3 {
        sim.write(old, session, create(&format!("/base{i}"))).expect("write");
    }
    // The old leader logs a proposal that never leaves it.
    sim.isolate(old);
    let id = sim
        .submit(old, Some(session), ClientOp::Write(create("/orphan")))
        .expect("submit");
    sim.run_for(20).expect("invariants hold");
    let orphan = sim.peer(old).expect("up").last_zxid();
    assert!(
        sim.peer(old).expect("up").log().iter().any(|t| t.zxid == orphan),
        "the orphan is logged"
    );
    sim.crash(old).expect("crash");
    sim.heal_network();
    let (a, b) = others(old);
    let new = wait_stable(&mut sim, &[a, b]);
    let session = sim.open_session(new).expect("session");
    let after = created(&sim.write(new, session, create("/after")).expect("write"));
    assert!(after.epoch() > orphan.epoch());

    let truncs_before = sim.stats.truncs_sent;
    sim.restart(old).expect("restart");
    wait_stable(&mut sim, &[0, 1, 2]);
    assert!(sim.stats.truncs_sent > truncs_before, "the diverged peer got a TRUNC");
    let digests: Vec<u64> = (0..3).map(|i| sim.peer(i).expect("up").tree().digest()).collect();
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "trees agree: {digests:?}");
    for i in 0..3 {
        assert!(!has_node(&sim, i, "/orphan"), "peer {i} applied the orphan");
        assert!(has_node(&sim, i, "/after"));
        assert!(
            sim.peer(i).expect("up").log().iter().all(|t| t.zxid != orphan),
            "peer {i} still logs the orphan"
        );
    }
    assert!(
        !matches!(sim.response(id), Some(Response::Write { .. })),
        "nobody was told the orphan succeeded"
    );
}

/// ZOOKEEPER-3911: proposals a learner receives in a DIFF that the leader
/// has not committed must not be applied as committed. The checker fails
/// the run if any non-leader applies a zxid before a leader committed it.
#[test]
fn zookeeper_3911_uncommitted_diff_entries_are_not_applied() {
    let mut sim = Sim::new(Options::scripted(SEED + 1, 3));
    let leader = wait_stable(&mut sim, &[0, 1, 2]);
    let (f1, f2) = others(leader);
    let session = sim.open_session(leader).expect("session");
    sim.write(leader, session, create("/a")).expect("write");
    sim.crash(f2).expect("crash");
    // f1 stays connected but its disk stalls: the leader proposes, nobody acks.
    sim.hold_disk(f1, true);
    let pending = sim
        .submit(leader, Some(session), ClientOp::Write(create("/pending")))
        .expect("submit");
    sim.run_for(10).expect("invariants hold");
    let pending_zxid = sim.peer(leader).expect("up").last_zxid();
    // f2 comes back and syncs while /pending is outstanding; its disk
    // stalls too, so its NEWLEADER ack cannot commit /pending either.
    sim.restart(f2).expect("restart");
    sim.hold_disk(f2, true);
    sim.run_for(150).expect("invariants hold");
    for i in [f1, f2] {
        let p = sim.peer(i).expect("up");
        assert!(
            p.committed_zxid() < pending_zxid,
            "peer {i} applied the uncommitted {pending_zxid}"
        );
        assert!(!has_node(&sim, i, "/pending"));
    }
    assert!(sim.response(pending).is_none(), "nobody was told /pending succeeded");
    // Now the leader dies; whatever the survivors decide, they agree.
    sim.crash(leader).expect("crash");
    sim.hold_disk(f1, false);
    sim.hold_disk(f2, false);
    wait_stable(&mut sim, &[f1, f2]);
    sim.restart(leader).expect("restart");
    let l = wait_stable(&mut sim, &[0, 1, 2]);
    let session = sim.open_session(l).expect("session");
    sim.write(l, session, create("/end")).expect("write");
    sim.run_for(200).expect("invariants hold");
    let digests: Vec<u64> = (0..3).map(|i| sim.peer(i).expect("up").tree().digest()).collect();
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "trees agree: {digests:?}");
}

/// The ZOOKEEPER-4643 / 4646 / 3911-family sequence: a learner syncs by
/// DIFF, writes currentEpoch, acks NEWLEADER, crashes. If the synced txns
/// were not durable when it acked, it restarts with the newer epoch and a
/// shorter log, wins the next election and truncates committed txns away
/// on the peer that had them.
fn newleader_ack_scenario(bug: bool, check_promises: bool) -> Result<Vec<Zxid>, String> {
    let mut opts = Options::scripted(SEED + 4643, 3);
    opts.bug_ack_newleader_before_txns = bug;
    opts.check_promises = check_promises;
    let mut sim = Sim::new(opts);
    let leader = wait_stable(&mut sim, &[0, 1, 2]);
    let (b, c) = others(leader);
    let session = sim.open_session(leader)?;
    // C misses W1..W3, committed by the leader and B.
    sim.isolate(c);
    let mut written = Vec::new();
    for i in 0..3 {
        written.push(created(&sim.write(leader, session, create(&format!("/w{i}")))?));
    }
    // B goes down; C comes back: the leader loses its quorum, and the next
    // epoch is formed by the leader and C, which syncs W1..W3 by DIFF.
    sim.crash(b)?;
    sim.heal_network();
    let epoch = written[0].epoch();
    let established = sim.run_until(20_000, |s| {
        s.peer(leader)
            .and_then(|p| p.established_epoch())
            .is_some_and(|e| e > epoch)
    })?;
    if !established {
        return Err("no new epoch".into());
    }
    // C acked NEWLEADER (the epoch is established); crash it before UPTODATE.
    sim.crash(c)?;
    sim.crash(leader)?;
    // B (older epoch, has W1..W3) and C (newer epoch) must agree on a
    // history that still holds W1..W3.
    sim.restart(b)?;
    sim.restart(c)?;
    let found = sim.run_until(20_000, |s| s.leader().is_some())?;
    if !found {
        return Err("no leader after restart".into());
    }
    let l = sim.leader().ok_or("leader")?;
    let session = sim.open_session(l)?;
    sim.write(l, session, create("/probe"))?;
    sim.run_for(500)?;
    for i in [b, c] {
        for (n, zxid) in written.iter().enumerate() {
            if !has_node(&sim, i, &format!("/w{n}")) {
                return Err(format!("peer {i} lost committed /w{n} ({zxid})"));
            }
        }
    }
    Ok(written)
}

#[test]
fn zookeeper_4643_newleader_ack_waits_for_synced_txns() {
    let written = newleader_ack_scenario(false, true).expect("no committed txn is lost");
    assert_eq!(written.len(), 3);
}

#[test]
fn zookeeper_4643_old_behaviour_loses_committed_txns() {
    // With the promise check on, the simulator flags the early ack itself.
    let early = newleader_ack_scenario(true, true).expect_err("the early ack is caught");
    assert!(early.contains("ZOOKEEPER-4643"), "{early}");
    // With it off, the loss happens and the history checker sees it.
    let loss = newleader_ack_scenario(true, false).expect_err("the old behaviour loses data");
    assert!(loss.contains("lost") || loss.contains("committed history"), "{loss}");
    println!("old behaviour: {loss}");
}

/// ZOOKEEPER-4785: a learner joins by DIFF while the leader keeps
/// committing; proposals arrive before and after NEWLEADER, the learner's
/// disk is slow, and the learner's acks become the quorum. Then the peers
/// holding the only other copies crash. Nothing committed may be lost.
#[test]
fn zookeeper_4785_no_loss_in_diff_sync_with_concurrent_proposals() {
    let mut sim = Sim::new(Options::scripted(SEED + 4785, 3));
    let leader = wait_stable(&mut sim, &[0, 1, 2]);
    let (b, c) = others(leader);
    let session = sim.open_session(leader).expect("session");
    sim.crash(c).expect("crash");
    let mut paths = Vec::new();
    for i in 0..5 {
        let path = format!("/before{i}");
        sim.write(leader, session, create(&path)).expect("write");
        paths.push(path);
    }
    // C rejoins with a slow disk while writes keep coming.
    sim.restart(c).expect("restart");
    sim.hold_disk(c, true);
    let mut pending = Vec::new();
    for i in 0..5 {
        let path = format!("/during{i}");
        pending.push(
            sim.submit(leader, Some(session), ClientOp::Write(create(&path)))
                .expect("submit"),
        );
        paths.push(path);
        sim.run_for(3).expect("invariants hold");
    }
    sim.hold_disk(c, false);
    assert!(
        sim.run_until(5_000, |s| s
            .peer(c)
            .is_some_and(|p| p.role() == RoleKind::Following { active: true }))
            .expect("invariants hold"),
        "C is up to date"
    );
    // B leaves: from now on C's acks are the quorum.
    sim.crash(b).expect("crash");
    for i in 0..3 {
        let path = format!("/after{i}");
        sim.write(leader, session, create(&path)).expect("write");
        paths.push(path);
    }
    // The leader and C crash; C and B must still hold everything.
    sim.crash(c).expect("crash");
    sim.crash(leader).expect("crash");
    sim.restart(b).expect("restart");
    sim.restart(c).expect("restart");
    let l = wait_leader(&mut sim);
    let session = sim.open_session(l).expect("session");
    sim.write(l, session, create("/probe")).expect("write");
    sim.run_for(500).expect("invariants hold");
    for i in [b, c] {
        for path in &paths {
            assert!(has_node(&sim, i, path), "peer {i} lost {path}");
        }
    }
}

/// The zxid counter is 32 bits; when it runs out the leader forces a new
/// epoch (`XidRolloverException`). Writes then continue in the next epoch.
#[test]
fn zxid_counter_rollover_forces_a_new_epoch() {
    let mut opts = Options::scripted(SEED + 32, 3);
    opts.zxid_counter_max = 4;
    let mut sim = Sim::new(opts);
    let mut zxids = Vec::new();
    for i in 0..10 {
        // A write may meet ConnectionLoss while the ensemble re-elects.
        for _attempt in 0..20 {
            let leader = wait_stable(&mut sim, &[0, 1, 2]);
            let Ok(session) = sim.open_session(leader) else {
                continue;
            };
            match sim
                .write(leader, session, create(&format!("/n{i}")))
                .expect("invariants hold")
            {
                Response::Write { zxid, .. } => {
                    zxids.push(zxid);
                    break;
                }
                _ => sim.run_for(100).expect("invariants hold"),
            }
        }
    }
    assert_eq!(zxids.len(), 10, "every write eventually commits");
    assert!(zxids.windows(2).all(|w| w[0] < w[1]));
    assert!(zxids.iter().all(|z| z.counter() <= 4));
    let epochs: std::collections::BTreeSet<u32> = zxids.iter().map(|z| z.epoch().0).collect();
    assert!(epochs.len() >= 3, "rollover moved through epochs: {epochs:?}");
}

/// A session that stops pinging expires on the leader's decision; the
/// closeSession transaction removes its ephemeral nodes on every peer. A
/// session that keeps pinging (through a follower) survives.
#[test]
fn session_expiry_removes_ephemerals_everywhere() {
    let mut sim = Sim::new(Options::scripted(SEED + 7, 3));
    let leader = wait_stable(&mut sim, &[0, 1, 2]);
    let (follower, _) = others(leader);
    let doomed = sim.open_session(follower).expect("session");
    let kept = sim.open_session(follower).expect("session");
    let ephemeral = |p: &str| WriteOp::Create {
        path: p.to_string(),
        data: Vec::new(),
        mode: CreateMode::Ephemeral,
    };
    sim.write(follower, doomed, ephemeral("/doomed")).expect("write");
    sim.write(follower, kept, ephemeral("/kept")).expect("write");
    // Timeout is 20 ticks (1 s); ping the kept session every 200 ms for 3 s.
    for _ in 0..15 {
        sim.submit(follower, Some(kept), ClientOp::Ping).expect("ping");
        sim.run_for(200).expect("invariants hold");
    }
    for i in 0..3 {
        assert!(
            !has_node(&sim, i, "/doomed"),
            "peer {i} still has the expired session's node"
        );
        assert!(has_node(&sim, i, "/kept"), "peer {i} lost a live session's node");
        let tree = sim.peer(i).expect("up").tree();
        assert!(tree.session(doomed).is_none());
        assert!(tree.session(kept).is_some());
    }
}
