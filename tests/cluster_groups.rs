//! Group coordination in a cluster (issue 7): `__consumer_offsets` is
//! replicated like any partition and the group coordinator fails over
//! with it. Three real `ringtail broker` processes (the harness of
//! tests/cluster.rs) with `offsets.topic.replication.factor=3`, and
//! confluent-kafka (librdkafka) consumers through
//! tests/clients/cluster_groups.py:
//!
//! - two consumers of one group read the first half of every partition
//!   of an RF 3 topic and commit their positions synchronously;
//! - `__consumer_offsets` has three replicas per partition; every broker's
//!   FindCoordinator names the leader of the group's offsets partition,
//!   whose OffsetFetch answers the committed offsets, while the other two
//!   answer NOT_COORDINATOR (Ringtail's own client, raw requests);
//! - that broker is killed with SIGKILL; a new consumer of the group
//!   finds the new coordinator, reads back exactly the committed offsets,
//!   resumes at them and reads every record to the end, in order, with
//!   the values the producer sent; FindCoordinator now names a live
//!   broker.
//! - a member that survives its coordinator's SIGKILL keeps its
//!   membership: the new coordinator loaded the group's metadata from the
//!   replicated log, so the member's heartbeats and commits go on there
//!   without a rejoin, and it reads and commits to the end.

mod cluster_harness;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use cluster_harness::{
    python, repo, require_confluent_kafka, run, serial, wait_for, wait_timeout, Cluster, Out,
};
use ringtail::admin::client::Client;
use ringtail_protocol::messages::kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use ringtail_protocol::messages::kafka_protocol::messages::{
    FindCoordinatorRequest, GroupId, OffsetFetchRequest, TopicName,
};
use ringtail_protocol::messages::kafka_protocol::protocol::StrBytes;

const WAIT: Duration = Duration::from_secs(30);
const SURVIVOR_GROUP: &str = "audit";
const TOPIC: &str = "orders";
const GROUP: &str = "billing";
const PARTITIONS: i32 = 3;
const RECORDS: usize = 600;
/// Kafka's `offsets.topic.num.partitions`, as the broker creates it.
const OFFSETS_PARTITIONS: i32 = 50;

/// Runs tests/clients/cluster_groups.py with `args`.
fn groups(c: &Cluster, args: &[&str], timeout: Duration) -> Out {
    let mut cmd = Command::new(python());
    cmd.arg(repo().join("tests/clients/cluster_groups.py"))
        .args(args);
    let out = run(&mut cmd, timeout, &c.root);
    assert!(out.ok, "[{}] cluster_groups.py {}: {out}", c.name, args[0]);
    out
}

/// Lines `PREFIX a b c...` split after the prefix.
fn fields<'a>(out: &'a Out, prefix: &str) -> Vec<Vec<&'a str>> {
    out.stdout
        .lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .map(|rest| rest.split(' ').collect())
        .collect()
}

fn num<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().unwrap_or_else(|e| panic!("{s:?}: {e:?}"))
}

/// `COMMITTED p offset` lines.
fn committed(out: &Out) -> BTreeMap<i32, i64> {
    fields(out, "COMMITTED ")
        .iter()
        .map(|f| (num(f[0]), num(f[1])))
        .collect()
}

/// The broker FindCoordinator names for `group`.
fn coordinator_of(c: &Cluster, bootstrap: &str, group: &str) -> i32 {
    let out = groups(c, &["coordinator", bootstrap, group], WAIT);
    let f = fields(&out, "COORDINATOR ");
    assert_eq!(f.len(), 1, "{out}");
    num(f[0][0])
}

/// The broker FindCoordinator names for the group.
fn coordinator(c: &Cluster, bootstrap: &str) -> i32 {
    let out = groups(c, &["coordinator", bootstrap, GROUP], WAIT);
    let f = fields(&out, "COORDINATOR ");
    assert_eq!(f.len(), 1, "{out}");
    num(f[0][0])
}

/// Kafka's NOT_COORDINATOR.
const NOT_COORDINATOR: i16 = 16;

fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_string())
}

/// FindCoordinator (v3, one key) sent to the broker at `addr`: the node
/// id it names.
fn find_coordinator(addr: &str) -> i32 {
    let mut c = Client::connect(addr, "find").expect("connect");
    let r = c
        .roundtrip(
            3,
            &FindCoordinatorRequest::default()
                .with_key(s(GROUP))
                .with_key_type(0),
        )
        .expect("FindCoordinator");
    assert_eq!(r.error_code, 0, "{addr}: {r:?}");
    r.node_id.0
}

/// OffsetFetch (v7) for the group sent to the broker at `addr`: the
/// group-level error code and the offsets committed.
fn offset_fetch(addr: &str) -> (i16, BTreeMap<i32, i64>) {
    let mut c = Client::connect(addr, "fetch").expect("connect");
    let r = c
        .roundtrip(
            7,
            &OffsetFetchRequest::default()
                .with_group_id(GroupId(s(GROUP)))
                .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                    .with_name(TopicName(s(TOPIC)))
                    .with_partition_indexes((0..PARTITIONS).collect())])),
        )
        .expect("OffsetFetch");
    let offsets = r
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .filter(|p| p.committed_offset >= 0)
        .map(|p| (p.partition_index, p.committed_offset))
        .collect();
    (r.error_code, offsets)
}

/// Kafka's `partitionFor`: `abs(String.hashCode) % partitions`.
fn offsets_partition(group: &str) -> i32 {
    let h = group
        .encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % OFFSETS_PARTITIONS
}

/// Values sent, by (partition, offset).
type Sent = BTreeMap<(i32, i64), String>;

/// A started three-broker cluster with `TOPIC` (RF 3) holding `RECORDS`
/// records: what was sent by (partition, offset), and each partition's
/// end.
fn cluster_with_records(name: &str) -> (Cluster, Sent, BTreeMap<i32, i64>) {
    let mut c = Cluster::loopback(name, 3, &["offsets.topic.replication.factor=3"]);
    c.start_all();
    c.create_topic(TOPIC, PARTITIONS as u32, 3, &["min.insync.replicas=2"]);
    c.wait_fully_replicated(TOPIC, WAIT);
    let bootstrap = c.bootstrap();
    let produced = groups(
        &c,
        &["produce", &bootstrap, TOPIC, &RECORDS.to_string()],
        Duration::from_secs(60),
    );
    let mut sent: BTreeMap<(i32, i64), String> = BTreeMap::new();
    for f in fields(&produced, "ACK ") {
        sent.insert((num(f[1]), num(f[2])), format!("v-{}", f[0]));
    }
    assert_eq!(sent.len(), RECORDS, "{produced}");
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    for &(p, o) in sent.keys() {
        let e = ends.entry(p).or_insert(0);
        *e = (*e).max(o + 1);
    }
    for p in 0..PARTITIONS {
        let n = sent.keys().filter(|(q, _)| *q == p).count() as i64;
        assert_eq!(
            ends.get(&p),
            Some(&n),
            "partition {p}: offsets 0.. without gaps"
        );
    }
    (c, sent, ends)
}

#[test]
fn a_surviving_member_keeps_its_membership_when_the_coordinator_dies() {
    let _serial = serial();
    require_confluent_kafka();
    let started = Instant::now();
    let (mut c, sent, ends) = cluster_with_records("survivor");
    let bootstrap = c.bootstrap();
    let go = c.root.join("survivor.go");
    let out_path = c.root.join("survivor.out");
    let err_path = c.root.join("survivor.err");
    let mut child = Command::new(python())
        .arg(repo().join("tests/clients/cluster_groups.py"))
        .args(["survive", &bootstrap, TOPIC, SURVIVOR_GROUP])
        .arg(&go)
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("survivor stdout"))
        .stderr(std::fs::File::create(&err_path).expect("survivor stderr"))
        .spawn()
        .expect("start the survivor");
    let read_out = || std::fs::read_to_string(&out_path).unwrap_or_default();
    wait_for(Duration::from_secs(45), "the survivor commits half", || {
        if read_out().lines().any(|l| l == "READY") {
            Ok(())
        } else {
            Err(format!(
                "{}\n{}",
                read_out(),
                std::fs::read_to_string(&err_path).unwrap_or_default()
            ))
        }
    });
    let coord = coordinator_of(&c, &bootstrap, SURVIVOR_GROUP);
    let killed_at = Instant::now();
    c.kill9(coord);
    std::fs::write(&go, b"go").expect("write the go file");
    let status = wait_timeout(&mut child, Duration::from_secs(60));
    let text = read_out();
    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
    if status.is_none() {
        let _ = child.kill();
    }
    assert!(
        status.is_some_and(|s| s.success()),
        "[{}] survivor ({status:?}):\n{text}\n---- stderr ----\n{err}",
        c.name
    );
    let done_ms = killed_at.elapsed().as_millis();
    let out = Out {
        ok: true,
        status: "0".into(),
        stdout: text,
        stderr: err,
    };
    let members: Vec<String> = fields(&out, "MEMBER ")
        .iter()
        .map(|f| f[0].to_string())
        .collect();
    assert_eq!(members.len(), 2, "{out}");
    assert_eq!(
        members[0], members[1],
        "the member kept its id across the failover: {out}"
    );
    assert_eq!(
        fields(&out, "ASSIGNS ")[0][0],
        "1",
        "no rejoin, no second assignment: {out}"
    );
    // Its commits before the kill, then after it: the ends.
    let commits: Vec<(i32, i64)> = fields(&out, "COMMITTED ")
        .iter()
        .map(|f| (num(f[0]), num(f[1])))
        .collect();
    let halves: Vec<(i32, i64)> = ends.iter().map(|(p, e)| (*p, e / 2)).collect();
    let whole: Vec<(i32, i64)> = ends.iter().map(|(p, e)| (*p, *e)).collect();
    assert_eq!(commits, [halves.clone(), whole].concat(), "{out}");
    // What it read after the kill: the second half of each partition.
    let mut read: BTreeMap<(i32, i64), String> = BTreeMap::new();
    for f in fields(&out, "READ ") {
        let key = (num(f[0]), num(f[1]));
        assert!(
            read.insert(key, f[2].to_string()).is_none(),
            "read twice: {key:?}"
        );
    }
    let want: BTreeMap<(i32, i64), String> = sent
        .iter()
        .filter(|((p, o), _)| *o >= ends[p] / 2)
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    assert_eq!(read, want, "the second half, once");
    let live = c.live_bootstrap();
    let moved_to = coordinator_of(&c, &live, SURVIVOR_GROUP);
    assert_ne!(moved_to, coord);
    eprintln!(
        "[{}] member {} survived coordinator {coord}'s SIGKILL (now {moved_to}) and finished {done_ms} ms after it; {} ms in all",
        c.name,
        members[0],
        started.elapsed().as_millis()
    );
    c.stop_all();
}

#[test]
fn committed_offsets_survive_the_coordinator_and_consumers_resume_there() {
    let _serial = serial();
    require_confluent_kafka();
    let started = Instant::now();
    let (mut c, sent, ends) = cluster_with_records("groups");
    let bootstrap = c.bootstrap();

    // Two consumers of the group read the first half of each partition
    // and commit.
    let limits = ends
        .iter()
        .map(|(p, end)| format!("{p}:{}", end / 2))
        .collect::<Vec<_>>()
        .join(",");
    let first = groups(
        &c,
        &["commit", &bootstrap, TOPIC, GROUP, &limits],
        Duration::from_secs(60),
    );
    let commits = committed(&first);
    eprintln!(
        "[{}] {} assigned {:?}, committed {commits:?} of ends {ends:?}",
        c.name,
        GROUP,
        fields(&first, "ASSIGNED ")
    );
    let halves: BTreeMap<i32, i64> = ends.iter().map(|(p, e)| (*p, e / 2)).collect();
    assert_eq!(
        commits, halves,
        "the group committed half of each partition: {first}"
    );
    let committed_total: i64 = commits.values().sum();

    // `__consumer_offsets` has three replicas everywhere, and the group's
    // coordinator is the leader of its offsets partition.
    let offsets = c.wait_fully_replicated("__consumer_offsets", WAIT);
    assert_eq!(offsets.len(), OFFSETS_PARTITIONS as usize);
    assert!(offsets.iter().all(|p| p.replicas.len() == 3));
    let index = offsets_partition(GROUP);
    let leader = offsets
        .iter()
        .find(|p| p.partition == index)
        .and_then(|p| p.leader)
        .expect("a leader");
    let coord = coordinator(&c, &bootstrap);
    assert_eq!(
        coord, leader,
        "FindCoordinator names the leader of __consumer_offsets-{index}"
    );
    for n in &c.nodes {
        let addr = n.bootstrap();
        assert_eq!(
            find_coordinator(&addr),
            leader,
            "broker {}'s FindCoordinator",
            n.id
        );
        let (code, offsets) = offset_fetch(&addr);
        if n.id == leader {
            assert_eq!(
                (code, &offsets),
                (0, &commits),
                "OffsetFetch at the coordinator"
            );
        } else {
            assert_eq!(
                code, NOT_COORDINATOR,
                "OffsetFetch at broker {}, which does not lead __consumer_offsets-{index}",
                n.id
            );
        }
    }

    // The coordinator dies; a new consumer of the group resumes.
    let killed_at = Instant::now();
    c.kill9(coord);
    let live = c.live_bootstrap();
    let resumed = groups(
        &c,
        &["resume", &live, TOPIC, GROUP, &PARTITIONS.to_string()],
        Duration::from_secs(60),
    );
    let resumed_ms = killed_at.elapsed().as_millis();
    let moved_to = coordinator(&c, &live);
    eprintln!(
        "[{}] killed coordinator {coord}; the group resumed through broker {moved_to} {resumed_ms} ms after the kill",
        c.name
    );
    assert_ne!(moved_to, coord, "FindCoordinator names a live broker");
    let moved_addr = c.node(moved_to).bootstrap();
    assert_eq!(
        offset_fetch(&moved_addr),
        (0, commits.clone()),
        "OffsetFetch at the new coordinator"
    );

    // The committed offsets survived, exactly.
    let after = committed(&resumed);
    for p in 0..PARTITIONS {
        let want = commits.get(&p).copied().unwrap_or(-1);
        assert_eq!(
            after.get(&p).copied(),
            Some(want),
            "partition {p}: committed offset after the failover ({after:?} vs {commits:?})"
        );
    }
    // The new consumer starts at them and reads every record to the end.
    let mut read: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    for f in fields(&resumed, "READ ") {
        read.entry(num(f[0]))
            .or_default()
            .push((num(f[1]), f[2].to_string()));
    }
    for p in 0..PARTITIONS {
        let from = commits.get(&p).copied().unwrap_or(0);
        let want: Vec<(i64, String)> = (from..ends[&p])
            .map(|o| (o, sent[&(p, o)].clone()))
            .collect();
        let got = read.remove(&p).unwrap_or_default();
        assert_eq!(
            got.first().map(|r| r.0),
            want.first().map(|r| r.0),
            "partition {p}: resumes at its committed offset {from}"
        );
        assert_eq!(
            got, want,
            "partition {p}: every record from {from} to the end, once, in order"
        );
    }
    assert!(read.is_empty(), "no other partition: {read:?}");
    eprintln!(
        "[{}] resumed at {commits:?}, read {} records to {ends:?}; {} ms in all",
        c.name,
        RECORDS as i64 - committed_total,
        started.elapsed().as_millis()
    );
    c.stop_all();
}
