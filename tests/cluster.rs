//! Multi-broker clusters (issue 7): three real `ringtail broker` processes,
//! each with its coordinator peer (`coordinator.voters` lists all three),
//! a real client (confluent-kafka / librdkafka through
//! tests/clients/cluster_client.py) and Ringtail's own `ringtail topics`.
//! The harness is tests/cluster_harness/mod.rs.
//!
//! - formation: Metadata lists the three brokers; an RF 3 topic with
//!   `min.insync.replicas=2` has its replicas on all three, leaders
//!   spread, every replica in the ISR, as `topics --describe`, the
//!   client's Metadata from every broker and the leaders' `/metrics`
//!   (in-sync replicas, under-replicated partitions) all say;
//! - failover under load: an idempotent `acks=all` producer (keyed and
//!   unkeyed) runs while the leader of partition 0 is killed with SIGKILL
//!   and restarted and a follower is stopped with SIGTERM and restarted;
//!   every acknowledged record is then read at its acknowledged offset,
//!   in order, exactly once, and the three replicas of each partition hold
//!   identical bytes below the high watermark;
//! - clean stops of leaders under load: the same checks while the leader
//!   of each partition in turn is stopped with SIGTERM (a controlled
//!   shutdown) and restarted;
//! - cut-off leader (network namespaces, root only; skipped with a message
//!   otherwise): the leader of partition 0 is cut off, another replica
//!   takes over and `acks=all` writes go on, while a client inside the
//!   cut-off broker's namespace finds that it never acknowledges
//!   `acks=all` (its followers are out of reach) and whatever it took
//!   with `acks=1` is gone after it rejoins; healed, the old leader
//!   rejoins as a follower and the replicas converge byte for byte;
//! - `min.insync.replicas`: with two of three brokers stopped, `acks=all`
//!   is refused with NOT_ENOUGH_REPLICAS (and nothing of it stored) while
//!   `acks=1` succeeds, and the leader's metrics count the partition
//!   under-replicated; with the brokers back `acks=all` works again. An
//!   idempotent batch is refused for leadership and the ISR before its
//!   sequence is looked at, as Kafka does (a follower answers
//!   NOT_LEADER_OR_FOLLOWER, the lone leader NOT_ENOUGH_REPLICAS, never
//!   OUT_OF_ORDER_SEQUENCE_NUMBER, which makes librdkafka bump its epoch
//!   and renumber, and so duplicate, messages it may already have stored);
//! - the last broker standing (no coordinator quorum) still takes `acks=1`
//!   writes and serves readers and Metadata.
//!
//! `soak_kill_and_cut_cycles` (ignored; `perf/cluster-soak.sh` runs it)
//! repeats kills and cuts for many cycles and prints one summary line.
//!
//! The tests run one at a time (three brokers each) and each prints what
//! it did; on a failure the tails of every broker's log are printed and
//! its data is kept.

mod cluster_harness;
#[path = "wire/mod.rs"]
mod wire;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use cluster_harness::{
    check_delivery, compare_replicas, metric, now_ms, require_confluent_kafka, run, scrape, serial,
    verify_logs, wait_for, Cluster, Out, PartitionState, ProducerProc, ProducerReport, ReadBack,
};

const WAIT: Duration = Duration::from_secs(30);

/// Kafka error codes the raw-protocol checks expect.
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const NOT_ENOUGH_REPLICAS: i16 = 19;

fn leader_of(parts: &[PartitionState], partition: i32) -> i32 {
    parts
        .iter()
        .find(|p| p.partition == partition)
        .and_then(|p| p.leader)
        .unwrap_or_else(|| panic!("partition {partition} has no leader: {parts:?}"))
}

/// Waits until broker `id`'s `/metrics` has `name{labels}` = `want`.
fn wait_metric(c: &mut Cluster, id: i32, name: &str, labels: &[(&str, &str)], want: f64) {
    let what = format!("[{}] broker {id}: {name}{labels:?} = {want}", c.name);
    let node = c.node(id);
    wait_for(Duration::from_secs(10), &what, || {
        let text = scrape(node)?;
        match metric(&text, name, labels) {
            Some(v) if v == want => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
}

fn sorted(v: &[i32]) -> Vec<i32> {
    let mut v = v.to_vec();
    v.sort();
    v
}

/// `produce-once`'s results in message order: "OK" or the error name.
fn once_results(out: &Out) -> Vec<String> {
    let mut results: Vec<(usize, String)> = out
        .stdout
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            match f.as_slice() {
                ["RESULT", i, "OK", _] => Some((i.parse().ok()?, "OK".to_string())),
                ["RESULT", i, "ERR", e] => Some((i.parse().ok()?, e.to_string())),
                _ => None,
            }
        })
        .collect();
    results.sort();
    results.into_iter().map(|(_, r)| r).collect()
}

/// The first acknowledgement on `partition` delivered after `since_ms`,
/// as milliseconds after it.
fn first_ack_after(report: &ProducerReport, partition: i32, since_ms: u64) -> Option<u64> {
    report
        .acked
        .iter()
        .filter(|d| d.partition == partition && d.at_ms > since_ms)
        .map(|d| d.at_ms - since_ms)
        .min()
}

/// An RF 3 topic `topic` (3 partitions, `min.insync.replicas=2`) with
/// every replica in the ISR, and an idempotent acks=all producer at
/// `rate` records/s that has `warm` acknowledgements already.
fn loaded_topic(
    c: &mut Cluster,
    topic: &str,
    rate: u32,
    warm: usize,
) -> (Vec<PartitionState>, ProducerProc) {
    c.create_topic(topic, 3, 3, &["min.insync.replicas=2"]);
    let parts = c.wait_fully_replicated(topic, WAIT);
    let mut producer = c.producer(topic, rate);
    producer.wait_acks(0, warm, None, WAIT);
    (parts, producer)
}

/// Stops the producer, reads the topic back, checks every acknowledged
/// record against it, stops the cluster and compares the replicas' bytes
/// below each partition's high watermark; panics on any problem.
fn finish_and_check(
    c: &mut Cluster,
    producer: ProducerProc,
    topic: &str,
    partitions: i32,
) -> ReadBack {
    let report = producer.finish(Duration::from_secs(90));
    // Everything the producer sent has reached every replica before the
    // high watermarks are read.
    c.wait_fully_replicated(topic, WAIT);
    let read: ReadBack = c.read_back(topic);
    let (summary, problems) = check_delivery(&report.acked, &read);
    eprintln!(
        "[{}] acknowledged={} read_back={} lost={} duplicated={} high watermarks {:?}",
        c.name, summary.acknowledged, summary.read, summary.lost, summary.duplicated, read.ends
    );
    // Lost or duplicated acknowledged records first: a client failure is
    // often only their symptom (a fatal OUT_OF_ORDER_SEQUENCE_NUMBER when
    // the new leader lacks an acknowledged batch).
    assert!(
        problems.is_empty(),
        "[{}] read-back does not match the acknowledgements:\n{}\n{}",
        c.name,
        problems.join("\n"),
        report.failure.as_deref().unwrap_or("")
    );
    if let Some(failure) = &report.failure {
        panic!("[{}] {failure}", c.name);
    }
    let (sent, _, _) = report.done.expect("the producer says DONE");
    assert!(
        report.failed.is_empty(),
        "[{}] {} of {sent} messages failed (first: {:?})",
        c.name,
        report.failed.len(),
        &report.failed[..report.failed.len().min(10)]
    );
    assert_eq!(
        report.acked.len() as u64,
        sent,
        "every message sent is acknowledged"
    );
    assert_eq!(
        summary.read, summary.acknowledged,
        "the topic holds exactly the acknowledged records"
    );
    let hws: BTreeMap<i32, i64> = read.ends.iter().map(|(p, (_, high))| (*p, *high)).collect();
    assert_eq!(hws.len(), partitions as usize, "{hws:?}");
    c.stop_all();
    let mut problems = compare_replicas(c, topic, &hws);
    problems.extend(verify_logs(c, topic, partitions));
    assert!(
        problems.is_empty(),
        "[{}] replicas differ below the high watermark:\n{}",
        c.name,
        problems.join("\n")
    );
    eprintln!(
        "[{}] all {} replicas of {partitions} partitions identical below the high watermark",
        c.name,
        c.nodes.len()
    );
    read
}

#[test]
fn formation_metadata_lists_three_brokers_and_rf3_partitions() {
    let _serial = serial();
    require_confluent_kafka();
    let mut c = Cluster::loopback("formation", 3, &[]);
    c.start_all();
    eprintln!("[formation] /brokers/ids = {:?}", c.registered());

    // The client's Metadata lists every broker at its advertised address.
    let bootstrap = c.nodes[0].bootstrap();
    let meta = c.client(&["meta", &bootstrap], WAIT);
    assert!(meta.ok, "meta: {meta}");
    let brokers: BTreeSet<String> = meta
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("BROKER "))
        .map(str::to_string)
        .collect();
    let want: BTreeSet<String> = c
        .nodes
        .iter()
        .map(|n| format!("{} {}", n.id, n.bootstrap()))
        .collect();
    assert_eq!(brokers, want, "Metadata brokers from broker 1: {meta}");

    c.create_topic("t", 3, 3, &["min.insync.replicas=2"]);
    let parts = c.wait_fully_replicated("t", WAIT);
    let (_, text) = c.describe("t").expect("describe");
    eprintln!("[formation] topics --describe:\n{text}");
    assert!(
        text.contains("PartitionCount: 3\tReplicationFactor: 3")
            && text.contains("min.insync.replicas=2"),
        "{text}"
    );
    assert_eq!(parts.len(), 3, "{text}");
    for p in &parts {
        assert_eq!(sorted(&p.replicas), vec![1, 2, 3], "{text}");
        assert_eq!(sorted(&p.isr), vec![1, 2, 3], "{text}");
        assert_eq!(
            p.leader,
            Some(p.replicas[0]),
            "a new partition is led by its preferred (first) replica: {text}"
        );
    }
    let preferred: BTreeSet<i32> = parts.iter().map(|p| p.replicas[0]).collect();
    assert_eq!(
        preferred.len(),
        3,
        "3 partitions on 3 brokers: one preferred leader each: {text}"
    );

    // Every broker answers Metadata alike (the client asks a different
    // one each time).
    for n in 0..3 {
        let bootstrap = c.nodes[n].bootstrap();
        let meta = c.client(&["meta", &bootstrap], WAIT);
        assert!(meta.ok, "meta: {meta}");
        for p in &parts {
            let line = format!(
                "PARTITION t {} {} {} {}",
                p.partition,
                p.leader.expect("leader"),
                p.replicas
                    .iter()
                    .map(i32::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
                p.isr
                    .iter()
                    .map(i32::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            );
            let got: Vec<&str> = meta
                .stdout
                .lines()
                .filter(|l| l.starts_with(&format!("PARTITION t {} ", p.partition)))
                .collect();
            // The ISR's order may differ between answers; compare sets.
            let ok = got.len() == 1 && {
                let f: Vec<&str> = got[0].split(' ').collect();
                let set = |s: &str| {
                    sorted(
                        &s.split(',')
                            .filter_map(|x| x.parse().ok())
                            .collect::<Vec<i32>>(),
                    )
                };
                f.len() == 6
                    && f[3] == p.leader.expect("leader").to_string()
                    && set(f[4]) == sorted(&p.replicas)
                    && set(f[5]) == sorted(&p.isr)
            };
            assert!(
                ok,
                "broker {}'s Metadata for partition {}: {got:?}, describe says {line}",
                c.nodes[n].id, p.partition
            );
        }
    }

    // The replication metrics agree: each leader counts 3 in-sync
    // replicas of 3, no broker has an under-replicated partition.
    for p in &parts {
        let partition = p.partition.to_string();
        let labels = [("topic", "t"), ("partition", partition.as_str())];
        let leader = p.leader.expect("leader");
        wait_metric(&mut c, leader, "ringtail_partition_replicas", &labels, 3.0);
        wait_metric(
            &mut c,
            leader,
            "ringtail_partition_in_sync_replicas",
            &labels,
            3.0,
        );
    }
    for id in c.ids() {
        wait_metric(&mut c, id, "ringtail_partitions_under_replicated", &[], 0.0);
    }
    c.stop_all();
}

#[test]
fn failover_under_load_keeps_every_acknowledged_record() {
    let _serial = serial();
    require_confluent_kafka();
    const T: &str = "failover";
    let mut c = Cluster::loopback("failover", 3, &[]);
    c.start_all();
    let (parts, mut producer) = loaded_topic(&mut c, T, 300, 300);

    // 1. SIGKILL the leader of partition 0: another ISR member takes
    // over and acks=all writes to partition 0 go on.
    let leader = leader_of(&parts, 0);
    let before = producer.acked(Some(0));
    let killed_at = now_ms();
    c.kill9(leader);
    let after = c.wait_partitions(T, WAIT, "partition 0 led by a live broker", |ps| {
        ps[0].leader.is_some_and(|l| l != leader)
    });
    let elected_ms = now_ms() - killed_at;
    let report = producer.wait_acks(before, 50, Some(0), WAIT);
    eprintln!(
        "[failover] killed leader {leader}; new leader {} in Metadata after {elected_ms} ms, first acks=all delivery on partition 0 {:?} ms after the kill",
        leader_of(&after, 0),
        first_ack_after(&report, 0, killed_at)
    );
    c.start(leader);
    c.wait_fully_replicated(T, WAIT);
    eprintln!("[failover] broker {leader} restarted and back in every ISR");

    // 2. SIGTERM a follower of partition 0 (a controlled shutdown moves
    // any leadership it has away first), write on, restart it.
    let (parts, text) = c.describe(T).expect("describe");
    let p0 = &parts[0];
    let follower = *p0
        .replicas
        .iter()
        .find(|r| Some(**r) != p0.leader)
        .unwrap_or_else(|| panic!("no follower: {text}"));
    let before = producer.acked(None);
    c.stop(follower);
    c.wait_partitions(
        T,
        Duration::from_secs(10),
        &format!("every partition led by another broker than {follower} after its clean stop"),
        |ps| {
            ps.iter()
                .all(|p| p.leader.is_some() && p.leader != Some(follower))
        },
    );
    producer.wait_acks(before, 200, None, WAIT);
    c.start(follower);
    c.wait_fully_replicated(T, WAIT);
    eprintln!("[failover] follower {follower} stopped cleanly, restarted, back in every ISR");

    let before = producer.acked(None);
    producer.wait_acks(before, 100, None, WAIT);
    finish_and_check(&mut c, producer, T, 3);
}

#[test]
fn clean_stop_of_leaders_under_load_keeps_every_acknowledged_record() {
    let _serial = serial();
    require_confluent_kafka();
    const T: &str = "cleanstop";
    let mut c = Cluster::loopback("cleanstop", 3, &[]);
    c.start_all();
    let (_, mut producer) = loaded_topic(&mut c, T, 300, 300);
    // SIGTERM the leader of each partition in turn: a controlled shutdown
    // moves its leaderships to other ISR members first, writes go on; it
    // restarts and rejoins every ISR.
    for partition in 0..3 {
        let (parts, _) = c.describe(T).expect("describe");
        let leader = leader_of(&parts, partition);
        let before = producer.acked(Some(partition));
        let stopped_at = now_ms();
        c.stop(leader);
        c.wait_partitions(
            T,
            Duration::from_secs(10),
            &format!("every partition led by another broker than {leader} after its clean stop"),
            |ps| {
                ps.iter()
                    .all(|p| p.leader.is_some() && p.leader != Some(leader))
            },
        );
        let report = producer.wait_acks(before, 50, Some(partition), WAIT);
        eprintln!(
            "[cleanstop] leader {leader} of partition {partition} stopped cleanly; first acks=all delivery on it {:?} ms after the SIGTERM",
            first_ack_after(&report, partition, stopped_at)
        );
        c.start(leader);
        c.wait_fully_replicated(T, WAIT);
    }
    let before = producer.acked(None);
    producer.wait_acks(before, 100, None, WAIT);
    finish_and_check(&mut c, producer, T, 3);
}

#[test]
fn cut_off_leader_is_replaced_and_rejoins_as_follower() {
    let _serial = serial();
    const T: &str = "cut";
    let mut c = match Cluster::namespaced("cut", 3, &[]) {
        Ok(c) => c,
        Err(why) => {
            eprintln!("SKIPPED cut_off_leader_is_replaced_and_rejoins_as_follower: {why}");
            return;
        }
    };
    require_confluent_kafka();
    c.start_all();
    let (parts, mut producer) = loaded_topic(&mut c, T, 300, 300);

    let leader = leader_of(&parts, 0);
    let before = producer.acked(Some(0));
    let cut_at = now_ms();
    c.cut(leader);
    // A client inside the cut-off broker's namespace still reaches it
    // (and only it). acks=1 writes it may take, as a leader that does
    // not know yet it was replaced: nobody else gets them, so they must
    // be gone once it rejoins. acks=all writes it must never
    // acknowledge: its followers are out of reach (Jepsen 2013).
    let own = c.node(leader).bootstrap();
    let mut acks1 = c.client_command(
        Some(leader),
        &["produce-once", &own, T, "0", "1", "5", "3000"],
    );
    let mut acks_all = c.client_command(
        Some(leader),
        &["produce-once", &own, T, "0", "all", "3", "5000"],
    );
    let scratch = c.root.clone();
    let isolated = std::thread::spawn(move || {
        let a = run(&mut acks1, Duration::from_secs(30), &scratch);
        let b = run(&mut acks_all, Duration::from_secs(30), &scratch);
        (a, b)
    });
    // The others see its session expire; the controller elects another
    // ISR member and takes the cut broker out of the ISR, so acks=all
    // (min.insync.replicas=2 of the two left) goes on.
    let after = c.wait_partitions(
        T,
        WAIT,
        "partition 0 led by a reachable broker, ISR without the cut one",
        |ps| ps[0].leader.is_some_and(|l| l != leader) && !ps[0].isr.contains(&leader),
    );
    let elected_ms = now_ms() - cut_at;
    let report = producer.wait_acks(before, 100, Some(0), WAIT);
    eprintln!(
        "[cut] cut off leader {leader}; broker {} leads partition 0 after {elected_ms} ms (ISR {:?}); first acks=all delivery on it {:?} ms after the cut",
        leader_of(&after, 0),
        after[0].isr,
        first_ack_after(&report, 0, cut_at)
    );
    let (acks1, acks_all) = isolated.join().expect("isolated client");
    assert!(
        acks1.ok && acks_all.ok,
        "isolated clients: {acks1}\n{acks_all}"
    );
    let (r1, r_all) = (once_results(&acks1), once_results(&acks_all));
    eprintln!("[cut] through the cut-off broker {leader}: acks=1 {r1:?}, acks=all {r_all:?}");
    // Checked at the end, so that what follows (rejoining, convergence)
    // is exercised and reported too.
    let mut isolated_problem = None;
    if r_all.len() != 3 || r_all.iter().any(|r| r == "OK") {
        let metrics = c.scrape_inside(leader);
        let p0: Vec<&str> = metrics
            .lines()
            .filter(|l| l.contains(&format!("topic=\"{T}\",partition=\"0\"")))
            .collect();
        let problem = format!(
            "the cut-off broker {leader} acknowledged acks=all writes its followers cannot have \
             (cut at unix ms {cut_at}):\n{acks_all}\nits acks=1 client: {acks1}\n\
             its metrics for partition 0 then:\n{}",
            p0.join("\n")
        );
        eprintln!("[cut] PROBLEM: {problem}");
        isolated_problem = Some(problem);
    }
    c.heal(leader);
    let healed_at = Instant::now();
    c.wait_fully_replicated(T, WAIT);
    eprintln!(
        "[cut] healed broker {leader}; back in every ISR after {:?}",
        healed_at.elapsed()
    );
    let before = producer.acked(None);
    producer.wait_acks(before, 100, None, WAIT);
    let read = finish_and_check(&mut c, producer, T, 3);
    if let Some(problem) = isolated_problem {
        let kept: Vec<&(i64, String)> = read.records[&0]
            .iter()
            .filter(|(_, v)| v.starts_with("once-all-"))
            .collect();
        panic!("{problem}\nof those, in partition 0 after the heal: {kept:?}");
    }
}

#[test]
fn acks_all_refused_below_min_insync_replicas() {
    let _serial = serial();
    require_confluent_kafka();
    const T: &str = "minisr";
    let mut c = Cluster::loopback("min-isr", 3, &[]);
    c.start_all();
    c.create_topic(T, 1, 3, &["min.insync.replicas=2"]);
    let parts = c.wait_fully_replicated(T, WAIT);
    let leader = leader_of(&parts, 0);
    let produce = |c: &mut Cluster, acks: &str| -> Vec<String> {
        let bootstrap = c.live_bootstrap();
        let out = c.client(&["produce-once", &bootstrap, T, "0", acks, "3"], WAIT);
        assert!(out.ok, "produce-once acks={acks}: {out}");
        once_results(&out)
    };
    let ok3 = vec!["OK".to_string(); 3];
    assert_eq!(produce(&mut c, "all"), ok3, "acks=all with 3 in the ISR");
    // A first read while the coordinator has its quorum: the reader's
    // group.id makes librdkafka look for its group coordinator, which
    // creates __consumer_offsets on first use (without a quorum it could
    // not be made; last_broker_without_quorum_keeps_serving_clients).
    let first = c.read_back(T);
    assert_eq!(first.total(), 3, "{first:?}");

    // An idempotent producer speaking the protocol itself: one batch
    // (sequence 0) acknowledged by all three; the followers learn the
    // producer from fetching it. A follower refuses its retry and a
    // batch after a gap as a follower, not by their sequences.
    let mut idem = wire::Conn::connect(&c.node(leader).bootstrap(), "min-isr-test");
    let (pid, epoch) = idem.init_producer_id();
    let (code, _) = idem.produce(T, 0, -1, Some((pid, epoch, 0)), &[b"idem-0"]);
    assert_eq!(code, 0, "idempotent acks=all with 3 in the ISR");
    let followers: Vec<i32> = c.ids().into_iter().filter(|id| *id != leader).collect();
    let mut at_follower = wire::Conn::connect(&c.node(followers[0]).bootstrap(), "min-isr-test");
    for (what, seq) in [("retry", 0), ("gap", 5)] {
        let (code, _) = at_follower.produce(T, 0, -1, Some((pid, epoch, seq)), &[b"x"]);
        assert_eq!(
            code, NOT_LEADER_OR_FOLLOWER,
            "idempotent {what} (sequence {seq}) at follower {}",
            followers[0]
        );
    }

    // Stop both followers cleanly, one at a time: each clean stop takes
    // the broker out of the ISR (while the coordinator still has a
    // quorum: with the second one gone only one voter of three is left).
    for (k, f) in followers.iter().enumerate() {
        c.stop(*f);
        let want: Vec<i32> = sorted(
            &c.ids()
                .into_iter()
                .filter(|id| !followers[..=k].contains(id))
                .collect::<Vec<_>>(),
        );
        c.wait_partitions(
            T,
            WAIT,
            &format!("ISR {want:?} after broker {f}'s clean stop"),
            |ps| ps[0].leader == Some(leader) && sorted(&ps[0].isr) == want,
        );
    }
    let refused = produce(&mut c, "all");
    assert_eq!(
        refused,
        vec!["NOT_ENOUGH_REPLICAS".to_string(); 3],
        "acks=all with ISR [{leader}] < min.insync.replicas=2"
    );
    // Sequence 5 after 0 is a gap, but the ISR is refused first.
    let (code, _) = idem.produce(T, 0, -1, Some((pid, epoch, 5)), &[b"idem-gap"]);
    assert_eq!(
        code, NOT_ENOUGH_REPLICAS,
        "idempotent acks=all after a gap with ISR [{leader}]"
    );
    assert_eq!(produce(&mut c, "1"), ok3, "acks=1 with one broker left");
    // The leader says so in its metrics: 1 in-sync replica of 3, the
    // partition under-replicated.
    let labels = [("topic", T), ("partition", "0")];
    wait_metric(
        &mut c,
        leader,
        "ringtail_partition_in_sync_replicas",
        &labels,
        1.0,
    );
    wait_metric(
        &mut c,
        leader,
        "ringtail_partition_under_replicated",
        &labels,
        1.0,
    );
    // The refused records were not appended: 3 + 3 records, the
    // acks=all ones before the stops and the acks=1 ones.
    let bootstrap = c.live_bootstrap();
    let out = c.client(&["read", &bootstrap, T], WAIT);
    assert!(out.ok, "read: {out}");
    let read = ReadBack::parse(&out.stdout);
    let values: Vec<&str> = read.records[&0].iter().map(|(_, v)| v.as_str()).collect();
    assert_eq!(
        values,
        [
            "once-all-0",
            "once-all-1",
            "once-all-2",
            "idem-0",
            "once-1-0",
            "once-1-1",
            "once-1-2"
        ],
        "the partition holds the acknowledged records only"
    );

    // With the followers back, acks=all works again.
    for f in &followers {
        c.start(*f);
    }
    let parts = c.wait_fully_replicated(T, WAIT);
    assert_eq!(
        produce(&mut c, "all"),
        ok3,
        "acks=all with the ISR full again"
    );
    // The refusals left no gap: the producer goes on at sequence 1.
    let mut idem = wire::Conn::connect(&c.node(leader_of(&parts, 0)).bootstrap(), "min-isr-test");
    let (code, _) = idem.produce(T, 0, -1, Some((pid, epoch, 1)), &[b"idem-1"]);
    assert_eq!(code, 0, "idempotent sequence 1 with the ISR full again");
    c.stop_all();
}

#[test]
fn last_broker_without_quorum_keeps_serving_clients() {
    let _serial = serial();
    require_confluent_kafka();
    const T: &str = "alone";
    let mut c = Cluster::loopback("alone", 3, &[]);
    c.start_all();
    c.create_topic(T, 1, 3, &[]);
    let parts = c.wait_fully_replicated(T, WAIT);
    let leader = leader_of(&parts, 0);
    for f in c.ids().into_iter().filter(|id| *id != leader) {
        c.stop(f);
    }
    // One broker of three: no coordinator quorum, so no topic can be made
    // (no group was used yet, so __consumer_offsets does not exist), but
    // the partition it leads with ISR [it] still takes acks=1 writes and
    // serves reads, as a Kafka broker does while ZooKeeper is away.
    let bootstrap = c.node(leader).bootstrap();
    for round in 0..2 {
        let out = c.client(&["produce-once", &bootstrap, T, "0", "1", "3"], WAIT);
        assert!(out.ok, "round {round}: produce-once acks=1: {out}");
        assert_eq!(
            once_results(&out),
            vec!["OK".to_string(); 3],
            "round {round}: acks=1 on the last broker: {out}"
        );
        // confluent-kafka's consumer needs a group.id, so librdkafka asks
        // for its group coordinator (FindCoordinator) while it reads.
        let out = c.client(&["read", &bootstrap, T], WAIT);
        assert!(out.ok, "round {round}: read from the last broker: {out}");
        let read = ReadBack::parse(&out.stdout);
        assert_eq!(read.total(), 3 * (round + 1), "round {round}: {read:?}");
        let out = c.client(&["meta", &bootstrap], WAIT);
        assert!(
            out.ok,
            "round {round}: Metadata from the last broker: {out}"
        );
    }
    c.stop_all();
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The soak (not in CI; `perf/cluster-soak.sh`): `RINGTAIL_SOAK_CYCLES`
/// (default 200) cycles, each a SIGKILL or (namespaced, as root) a cut of
/// the leader of a random partition under an idempotent `acks=all`
/// producer, then the broker restored; seeded by `RINGTAIL_SOAK_SEED`
/// (printed).
#[test]
#[ignore = "soak: run by perf/cluster-soak.sh"]
fn soak_kill_and_cut_cycles() {
    let _serial = serial();
    require_confluent_kafka();
    const T: &str = "soak";
    let cycles: usize = std::env::var("RINGTAIL_SOAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let seed: u64 = std::env::var("RINGTAIL_SOAK_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(now_ms);
    eprintln!(
        "[soak] seed {seed} (RINGTAIL_SOAK_SEED={seed} replays the choices), {cycles} cycles"
    );
    let mut rng = seed.max(1);
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut c = match Cluster::namespaced("soak", 3, &[]) {
        Ok(c) => c,
        Err(why) => {
            eprintln!("[soak] no network namespaces ({why}): SIGKILL only, on loopback");
            Cluster::loopback("soak", 3, &[])
        }
    };
    c.start_all();
    let (_, mut producer) = loaded_topic(&mut c, T, 200, 100);
    let mut failovers = Vec::new();
    let mut elections = Vec::new();
    for cycle in 0..cycles {
        if !producer.is_running() {
            eprintln!("[soak] cycle {cycle}: the producer stopped; checking what it acknowledged");
            break;
        }
        let (parts, _) = c.describe(T).expect("describe");
        // The leader of a random partition: every cycle moves leadership
        // (leaders do not move back by themselves while no preferred
        // leader election runs, so a random broker would often lead
        // nothing).
        let victim = parts[(next() % parts.len() as u64) as usize]
            .leader
            .unwrap_or_else(|| c.ids()[(next() % 3) as usize]);
        let affected: Vec<i32> = parts
            .iter()
            .filter(|p| p.leader == Some(victim))
            .map(|p| p.partition)
            .collect();
        let cut = c.can_cut() && next() % 2 == 0;
        let fault_at = now_ms();
        if cut {
            c.cut(victim);
        } else {
            c.kill9(victim);
        }
        // Failover time: fault -> the first acks=all delivery on a
        // partition the victim led, delivered after the fault.
        // Also the time until Metadata names another leader for every
        // partition the victim led.
        let mut took = None;
        let mut elected = None;
        if !affected.is_empty() {
            let deadline = Instant::now() + WAIT;
            while took.is_none() || elected.is_none() {
                if took.is_none() {
                    let report = producer.report();
                    took = affected
                        .iter()
                        .filter_map(|p| first_ack_after(&report, *p, fault_at))
                        .min();
                }
                if elected.is_none() {
                    if let Ok((parts, _)) = c.describe(T) {
                        let moved = affected.iter().all(|a| {
                            parts
                                .iter()
                                .any(|p| p.partition == *a && p.leader.is_some_and(|l| l != victim))
                        });
                        if moved {
                            elected = Some(now_ms() - fault_at);
                        }
                    }
                }
                assert!(
                    Instant::now() < deadline,
                    "[soak] cycle {cycle}: within {WAIT:?} of {} broker {victim}: first acks=all delivery on {affected:?} {took:?}, new leaders in Metadata {elected:?}",
                    if cut { "cutting off" } else { "killing" }
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if let Some(ms) = took {
            failovers.push(ms);
        }
        if let Some(ms) = elected {
            elections.push(ms);
        }
        if cut {
            c.heal(victim);
        } else {
            c.start(victim);
        }
        c.wait_fully_replicated(T, WAIT);
        eprintln!(
            "[soak] cycle {cycle}: {} broker {victim} (led {affected:?}), first acks=all delivery after {took:?} ms, new leaders in Metadata after {elected:?} ms, {} acknowledged",
            if cut { "cut" } else { "SIGKILL" },
            producer.acked(None)
        );
    }
    let report = producer.finish(Duration::from_secs(90));
    c.wait_fully_replicated(T, WAIT);
    let read = c.read_back(T);
    let (summary, problems) = check_delivery(&report.acked, &read);
    let hws: BTreeMap<i32, i64> = read.ends.iter().map(|(p, (_, high))| (*p, *high)).collect();
    c.stop_all();
    let mut replica_problems = compare_replicas(&c, T, &hws);
    replica_problems.extend(verify_logs(&c, T, 3));
    failovers.sort();
    elections.sort();
    println!(
        "acknowledged={} read_back={} lost={} duplicated={} failover_p50_ms={} failover_p99_ms={} cycles={cycles} failed_deliveries={} metadata_p50_ms={} metadata_p99_ms={} (failover: fault -> first acks=all delivery on a partition the broker led, {} cycles; metadata: fault -> Metadata names new leaders for all of them)",
        summary.acknowledged,
        summary.read,
        summary.lost,
        summary.duplicated,
        percentile(&failovers, 50.0),
        percentile(&failovers, 99.0),
        report.failed.len(),
        percentile(&elections, 50.0),
        percentile(&elections, 99.0),
        failovers.len()
    );
    assert!(
        problems.is_empty()
            && replica_problems.is_empty()
            && report.failed.is_empty()
            && report.failure.is_none(),
        "[soak] seed {seed}:\n{}\n{}\nfailed deliveries: {:?}\n{}",
        problems.join("\n"),
        replica_problems.join("\n"),
        &report.failed[..report.failed.len().min(10)],
        report.failure.as_deref().unwrap_or("")
    );
}
