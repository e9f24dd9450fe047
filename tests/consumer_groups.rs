//! Consumer groups against a real broker process.
//!
//! The same scenario twice: with confluent-kafka (librdkafka) when the
//! project's `.venv` has it (tests/run-all.sh installs it; without it that
//! test says so and is skipped), and always with the raw protocol:
//!
//! 1. three members join a 6-partition topic's group with the range
//!    assignor; each partition is owned by exactly one member (two each);
//! 2. each owner commits offset `10 + p` (with metadata) for its
//!    partitions;
//! 3. one member leaves; its partitions move to the other two (three each);
//! 4. the broker restarts (SIGTERM, start on the same directory); the
//!    commits are still there, metadata included, and consumption resumes
//!    at the committed offsets;
//! 5. (confluent-kafka) a consumer that stays up keeps its assignment
//!    across a broker restart, without a rebalance.
//!
//! The raw test also checks fencing at the wire: a stale generation gets
//! ILLEGAL_GENERATION, an unknown member UNKNOWN_MEMBER_ID, a group with
//! members cannot be deleted, an empty one can.

#[path = "clients/harness.rs"]
mod harness;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use harness::{run_with_timeout, temp_dir, Broker};
use ringtail::admin::client::Client;
use ringtail_protocol::batch::{batches, BatchBuilder};
use ringtail_protocol::messages::kafka_protocol::messages::create_topics_request::CreatableTopic;
use ringtail_protocol::messages::kafka_protocol::messages::fetch_request::{
    FetchPartition, FetchTopic,
};
use ringtail_protocol::messages::kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use ringtail_protocol::messages::kafka_protocol::messages::leave_group_request::MemberIdentity;
use ringtail_protocol::messages::kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use ringtail_protocol::messages::kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use ringtail_protocol::messages::kafka_protocol::messages::produce_request::{
    PartitionProduceData, TopicProduceData,
};
use ringtail_protocol::messages::kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use ringtail_protocol::messages::kafka_protocol::messages::{
    CreateTopicsRequest, DeleteGroupsRequest, FetchRequest, GroupId, HeartbeatRequest,
    JoinGroupRequest, LeaveGroupRequest, OffsetCommitRequest, OffsetFetchRequest, ProduceRequest,
    SyncGroupRequest, TopicName,
};
use ringtail_protocol::messages::kafka_protocol::protocol::StrBytes;

const TOPIC: &str = "orders";
const GROUP: &str = "g1";
const PARTITIONS: i32 = 6;
/// Single-record batches per partition, so a batch's base offset is its
/// record's offset.
const RECORDS: i32 = 20;
const WAIT: Duration = Duration::from_secs(60);

fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_string())
}

fn connect(broker: &Broker, name: &str) -> Client {
    Client::connect(&broker.bootstrap(), name).expect("connect to the broker")
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn create_and_fill(broker: &Broker) {
    let mut c = connect(broker, "setup");
    let topic = CreatableTopic::default()
        .with_name(TopicName(s(TOPIC)))
        .with_num_partitions(PARTITIONS)
        .with_replication_factor(1);
    let r = c
        .send(
            &CreateTopicsRequest::default()
                .with_topics(vec![topic])
                .with_timeout_ms(10_000),
        )
        .expect("CreateTopics");
    assert_eq!(r.topics[0].error_code, 0, "{r:?}");
    for i in 0..RECORDS {
        let partition_data = (0..PARTITIONS)
            .map(|p| {
                let mut b = BatchBuilder::new();
                let value = format!("{p}-{i}");
                b.append(0, None, Some(value.as_bytes()), &[]);
                PartitionProduceData::default()
                    .with_index(p)
                    .with_records(Some(Bytes::from(b.build())))
            })
            .collect();
        let r = c
            .send(
                &ProduceRequest::default()
                    .with_acks(-1)
                    .with_timeout_ms(10_000)
                    .with_topic_data(vec![TopicProduceData::default()
                        .with_name(TopicName(s(TOPIC)))
                        .with_partition_data(partition_data)]),
            )
            .expect("Produce");
        for p in &r.responses[0].partition_responses {
            assert_eq!(p.error_code, 0, "{r:?}");
        }
    }
}

/// Kafka's consumer protocol: a subscription (v0) and an assignment (v0).
fn subscription(topics: &[&str]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(topics.len() as i32);
    for t in topics {
        b.put_i16(t.len() as i16);
        b.put_slice(t.as_bytes());
    }
    b.put_i32(-1);
    b.freeze()
}

fn encode_assignment(partitions: &[i32]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(1);
    b.put_i16(TOPIC.len() as i16);
    b.put_slice(TOPIC.as_bytes());
    b.put_i32(partitions.len() as i32);
    for p in partitions {
        b.put_i32(*p);
    }
    b.put_i32(-1);
    b.freeze()
}

fn decode_assignment(mut b: Bytes) -> Vec<i32> {
    if b.is_empty() {
        return Vec::new();
    }
    b.get_i16();
    let mut out = Vec::new();
    for _ in 0..b.get_i32() {
        let len = b.get_i16() as usize;
        b.advance(len);
        for _ in 0..b.get_i32() {
            out.push(b.get_i32());
        }
    }
    out.sort_unstable();
    out
}

/// Range assignment over the member ids in sorted order, as Kafka's
/// RangeAssignor does for one topic.
fn range_assign(members: &[String]) -> Vec<(String, Vec<i32>)> {
    let mut ids = members.to_vec();
    ids.sort();
    let n = ids.len() as i32;
    let (per, extra) = (PARTITIONS / n, PARTITIONS % n);
    let mut next = 0;
    ids.into_iter()
        .enumerate()
        .map(|(i, id)| {
            let count = per + i32::from((i as i32) < extra);
            let parts: Vec<i32> = (next..next + count).collect();
            next += count;
            (id, parts)
        })
        .collect()
}

/// What a member thread shows the test.
#[derive(Debug, Clone, Default)]
struct Seen {
    member_id: String,
    generation: i32,
    partitions: Vec<i32>,
}

struct Member {
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Member {
    fn start(broker: &Broker, name: &str) -> Member {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let client = connect(broker, name);
        let (seen2, stop2) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || run_member(client, &seen2, &stop2));
        Member {
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn seen(&self) -> Seen {
        self.seen.lock().expect("member state").clone()
    }

    /// Stops heartbeating and leaves the group (LeaveGroup).
    fn leave(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.join().expect("member thread");
        }
    }
}

/// One member: join (with the MEMBER_ID_REQUIRED round trip), sync (the
/// leader assigns), heartbeat; rejoin on a rebalance; leave when told.
fn run_member(mut c: Client, seen: &Mutex<Seen>, stop: &AtomicBool) {
    let mut member_id = String::new();
    'join: loop {
        let join = JoinGroupRequest::default()
            .with_group_id(GroupId(s(GROUP)))
            .with_session_timeout_ms(6_000)
            .with_rebalance_timeout_ms(10_000)
            .with_member_id(s(&member_id))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(subscription(&[TOPIC]))]);
        let r = c.send(&join).expect("JoinGroup");
        member_id = r.member_id.to_string();
        match r.error_code {
            0 => {}
            79 | 27 => continue, // MEMBER_ID_REQUIRED, REBALANCE_IN_PROGRESS
            code => panic!("JoinGroup: error {code}"),
        }
        let generation = r.generation_id;
        let assignments = if r.leader == r.member_id {
            let ids: Vec<String> = r.members.iter().map(|m| m.member_id.to_string()).collect();
            range_assign(&ids)
                .into_iter()
                .map(|(id, parts)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s(&id))
                        .with_assignment(encode_assignment(&parts))
                })
                .collect()
        } else {
            Vec::new()
        };
        let sync = SyncGroupRequest::default()
            .with_group_id(GroupId(s(GROUP)))
            .with_generation_id(generation)
            .with_member_id(s(&member_id))
            .with_protocol_type(Some(s("consumer")))
            .with_protocol_name(Some(s("range")))
            .with_assignments(assignments);
        let r = c.send(&sync).expect("SyncGroup");
        match r.error_code {
            0 => {}
            27 => continue,
            code => panic!("SyncGroup: error {code}"),
        }
        *seen.lock().expect("member state") = Seen {
            member_id: member_id.clone(),
            generation,
            partitions: decode_assignment(r.assignment),
        };
        loop {
            if stop.load(Ordering::Acquire) {
                let leave = LeaveGroupRequest::default()
                    .with_group_id(GroupId(s(GROUP)))
                    .with_members(vec![MemberIdentity::default().with_member_id(s(&member_id))]);
                let r = c.send(&leave).expect("LeaveGroup");
                assert_eq!(r.error_code, 0, "{r:?}");
                assert_eq!(r.members[0].error_code, 0, "{r:?}");
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
            let hb = HeartbeatRequest::default()
                .with_group_id(GroupId(s(GROUP)))
                .with_generation_id(generation)
                .with_member_id(s(&member_id));
            match c.send(&hb).expect("Heartbeat").error_code {
                0 => {}
                27 => {
                    seen.lock().expect("member state").partitions.clear();
                    continue 'join;
                }
                code => panic!("Heartbeat: error {code}"),
            }
        }
    }
}

/// Partitions of the members' current assignments, if they are disjoint,
/// cover the topic and each member holds `each`.
fn owned_exactly_once(members: &[&Member], each: usize) -> Option<BTreeMap<i32, String>> {
    let seen: Vec<Seen> = members.iter().map(|m| m.seen()).collect();
    if seen.iter().any(|s| s.partitions.len() != each) {
        return None;
    }
    if seen.iter().any(|s| s.generation != seen[0].generation) {
        return None;
    }
    let mut owners = BTreeMap::new();
    for s in &seen {
        for p in &s.partitions {
            if owners.insert(*p, s.member_id.clone()).is_some() {
                return None;
            }
        }
    }
    (owners.len() == PARTITIONS as usize).then_some(owners)
}

fn commit(c: &mut Client, seen: &Seen) -> Vec<i16> {
    let partitions = seen
        .partitions
        .iter()
        .map(|&p| {
            OffsetCommitRequestPartition::default()
                .with_partition_index(p)
                .with_committed_offset(i64::from(10 + p))
                .with_committed_metadata(Some(s(&format!("meta-{p}"))))
        })
        .collect();
    let r = c
        .send(
            &OffsetCommitRequest::default()
                .with_group_id(GroupId(s(GROUP)))
                .with_generation_id_or_member_epoch(seen.generation)
                .with_member_id(s(&seen.member_id))
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s(TOPIC)))
                    .with_partitions(partitions)]),
        )
        .expect("OffsetCommit");
    r.topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect()
}

/// (offset, metadata) committed for each partition, by OffsetFetch v7.
fn committed(c: &mut Client) -> Vec<(i64, String)> {
    let v = c
        .version::<OffsetFetchRequest>()
        .expect("OffsetFetch")
        .min(7);
    let r = c
        .roundtrip(
            v,
            &OffsetFetchRequest::default()
                .with_group_id(GroupId(s(GROUP)))
                .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                    .with_name(TopicName(s(TOPIC)))
                    .with_partition_indexes((0..PARTITIONS).collect())])),
        )
        .expect("OffsetFetch");
    assert_eq!(r.error_code, 0, "{r:?}");
    let mut out: Vec<(i32, i64, String)> = r.topics[0]
        .partitions
        .iter()
        .map(|p| {
            assert_eq!(p.error_code, 0, "{r:?}");
            let meta = p
                .metadata
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_default();
            (p.partition_index, p.committed_offset, meta)
        })
        .collect();
    out.sort();
    out.into_iter().map(|(_, o, m)| (o, m)).collect()
}

/// The offset of the first record a fetch at `offset` returns.
fn first_fetched(c: &mut Client, partition: i32, offset: i64) -> i64 {
    let v = c.version_at_most::<FetchRequest>(12).expect("Fetch");
    let r = c
        .roundtrip(
            v,
            &FetchRequest::default()
                .with_max_wait_ms(100)
                .with_max_bytes(1 << 20)
                .with_topics(vec![FetchTopic::default()
                    .with_topic(TopicName(s(TOPIC)))
                    .with_partitions(vec![FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(1 << 20)])]),
        )
        .expect("Fetch");
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 0, "{r:?}");
    let records = p.records.clone().unwrap_or_default();
    let batch = batches(&records)
        .next()
        .expect("a batch at the committed offset")
        .expect("a valid batch");
    batch.base_offset().0
}

#[test]
fn raw_protocol_group_rebalances_and_commits_survive_restart() {
    let mut broker = Broker::start("groups-raw", &[]);
    create_and_fill(&broker);
    let mut members: Vec<Member> = (0..3)
        .map(|i| Member::start(&broker, &format!("m{i}")))
        .collect();
    let mut owners = None;
    wait_for("three members with two partitions each", || {
        owners = owned_exactly_once(&members.iter().collect::<Vec<_>>(), 2);
        owners.is_some()
    });
    let mut c = connect(&broker, "checker");
    for m in &members {
        let seen = m.seen();
        assert_eq!(commit(&mut c, &seen), vec![0; seen.partitions.len()]);
        // Fencing: a stale generation and an unknown member are refused.
        let stale = Seen {
            generation: seen.generation - 1,
            ..seen.clone()
        };
        assert!(
            commit(&mut c, &stale).iter().all(|&e| e == 22),
            "ILLEGAL_GENERATION"
        );
        let unknown = Seen {
            member_id: "nobody".into(),
            ..seen.clone()
        };
        assert!(
            commit(&mut c, &unknown).iter().all(|&e| e == 25),
            "UNKNOWN_MEMBER_ID"
        );
    }
    let nonempty = c
        .send(&DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(GROUP))]))
        .expect("DeleteGroups");
    assert_eq!(nonempty.results[0].error_code, 68, "NON_EMPTY_GROUP");

    let moved = members[2].seen().partitions;
    members[2].leave();
    let rest: Vec<&Member> = members[..2].iter().collect();
    let mut after = None;
    wait_for("two members with three partitions each", || {
        after = owned_exactly_once(&rest, 3);
        after.is_some()
    });
    let after = after.expect("waited");
    let remaining: Vec<String> = rest.iter().map(|m| m.seen().member_id).collect();
    for p in moved {
        assert!(remaining.contains(&after[&p]), "partition {p} did not move");
    }
    let last_generation = members[0].seen().generation;
    for m in &mut members {
        m.leave();
    }
    drop(c);

    broker.restart();
    // The generation survives the restart: a new member continues the
    // count, so members of generations before the restart stay fenced.
    let mut member = Member::start(&broker, "after-restart");
    wait_for("a member after the restart", || {
        member.seen().partitions.len() == PARTITIONS as usize
    });
    assert!(
        member.seen().generation > last_generation,
        "generation {} after restart, {last_generation} before",
        member.seen().generation
    );
    member.leave();
    let mut c = connect(&broker, "checker");
    let expected: Vec<(i64, String)> = (0..PARTITIONS)
        .map(|p| (i64::from(10 + p), format!("meta-{p}")))
        .collect();
    assert_eq!(committed(&mut c), expected, "commits after restart");
    for (p, (offset, _)) in expected.iter().enumerate() {
        assert_eq!(first_fetched(&mut c, p as i32, *offset), *offset);
    }
    let deleted = c
        .send(&DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(GROUP))]))
        .expect("DeleteGroups");
    assert_eq!(deleted.results[0].error_code, 0, "{deleted:?}");
    let gone = committed(&mut c);
    assert!(gone.iter().all(|(o, _)| *o == -1), "{gone:?}");
    broker.stop();
}

/// The project's Python, if it has confluent-kafka.
fn python_with_confluent() -> Option<PathBuf> {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let ok = Command::new(&venv)
        .args(["-c", "import confluent_kafka"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(venv)
}

#[test]
fn confluent_kafka_group_rebalances_and_commits_survive_restart() {
    let Some(python) = python_with_confluent() else {
        eprintln!(
            "SKIPPED: .venv/bin/python with confluent_kafka not found \
             (tests/run-all.sh installs it); the raw-protocol test covers the scenario"
        );
        return;
    };
    let scratch = temp_dir("groups-py");
    let script = scratch.join("groups.py");
    std::fs::write(&script, PYTHON_SCENARIO).expect("write the script");
    let mut broker = Broker::start("groups-py-broker", &[]);
    let run = |broker: &Broker, phase: &str| {
        let out = run_with_timeout(
            Command::new(&python)
                .arg(&script)
                .arg(broker.bootstrap())
                .arg(phase),
            Duration::from_secs(180),
            &scratch,
        );
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success() && stdout.lines().last() == Some("OK"),
            "{phase}: {}\nstdout:\n{stdout}\nstderr:\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            broker.log()
        );
        eprintln!("{phase}: {stdout}");
    };
    run(&broker, "first");
    broker.restart();
    run(&broker, "second");

    // A live consumer keeps its assignment across a broker restart: the
    // group comes back Stable with its members, so there is no rebalance.
    let marker = scratch.join("assigned");
    let live = Command::new(&python)
        .arg(&script)
        .arg(broker.bootstrap())
        .arg("live")
        .arg(&marker)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the live consumer");
    wait_for("the live consumer's assignment", || marker.exists());
    broker.restart();
    let out = live.wait_with_output().expect("the live consumer");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.lines().last() == Some("OK"),
        "live: {}\nstdout:\n{stdout}\nstderr:\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        broker.log()
    );
    eprintln!("live: {stdout}");
    broker.stop();
}

/// The confluent-kafka scenario; each consumer is used from its own thread
/// only (librdkafka's synchronous commit from another thread stalls).
const PYTHON_SCENARIO: &str = r#"
import json, sys, threading, time
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

bootstrap, phase = sys.argv[1], sys.argv[2]
TOPIC, GROUP, PARTS, PER_PART = "orders", "g1", 6, 50

def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)

def log(msg):
    print("%.1f %s" % (time.time() % 1000, msg), file=sys.stderr, flush=True)

def wait_for(cond, what, timeout=60):
    log("waiting for " + what)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.2)
    fail("timed out waiting for " + what)

class Member(threading.Thread):
    def __init__(self, name):
        super().__init__(daemon=True)
        self.name = name
        self.assigned = set()
        self.stop = False
        self.error = None
        self.want_commit = False
        self.committed = False
        self.c = Consumer({
            "bootstrap.servers": bootstrap, "group.id": GROUP, "client.id": name,
            "partition.assignment.strategy": "range", "enable.auto.commit": False,
            "session.timeout.ms": 6000, "heartbeat.interval.ms": 300,
            "auto.offset.reset": "earliest",
        })
    def run(self):
        def on_assign(c, parts):
            self.assigned = {p.partition for p in parts}
        def on_revoke(c, parts):
            self.assigned = set()
        try:
            self.c.subscribe([TOPIC], on_assign=on_assign, on_revoke=on_revoke)
            while not self.stop:
                if self.want_commit and not self.committed:
                    offs = [TopicPartition(TOPIC, p, 10 + p, "meta-%d" % p) for p in sorted(self.assigned)]
                    for tp in self.c.commit(offsets=offs, asynchronous=False):
                        if tp.error:
                            self.error = "commit %s: %s" % (tp, tp.error)
                    self.committed = True
                m = self.c.poll(0.1)
                if m is not None and m.error() and not m.error().retriable():
                    self.error = str(m.error())
        except Exception as e:
            self.error = repr(e)
        finally:
            self.c.close()  # LeaveGroup

def owners(members):
    owned = [p for m in members for p in m.assigned]
    return sorted(owned) == list(range(PARTS)) and all(m.assigned for m in members)

if phase == "first":
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(TOPIC, PARTS, 1)]).values():
        f.result()
    p = Producer({"bootstrap.servers": bootstrap})
    for part in range(PARTS):
        for i in range(PER_PART):
            p.produce(TOPIC, key=b"k%d" % i, value=b"%d-%d" % (part, i), partition=part)
    if p.flush(30) != 0:
        fail("produce did not finish")
    members = [Member("m%d" % i) for i in range(3)]
    for m in members:
        m.start()
    wait_for(lambda: owners(members) and all(len(m.assigned) == 2 for m in members), "3 members x 2 partitions")
    first = {m.name: sorted(m.assigned) for m in members}
    for parts in first.values():
        if parts[1] != parts[0] + 1:
            fail("not a range assignment: %s" % first)
    for m in members:
        m.want_commit = True
    wait_for(lambda: all(m.committed for m in members), "commits")
    leaving = members[2]
    moved = set(leaving.assigned)
    leaving.stop = True
    leaving.join(30)
    rest = members[:2]
    wait_for(lambda: owners(rest) and all(len(m.assigned) == 3 for m in rest), "2 members x 3 partitions")
    second = {m.name: sorted(m.assigned) for m in rest}
    if not moved <= set(p for m in rest for p in m.assigned):
        fail("partitions of the leaving member did not move")
    for m in rest:
        m.stop = True
    for m in rest:
        m.join(30)
    errors = [m.error for m in members if m.error]
    if errors:
        fail("consumer errors: %s" % errors)
    print(json.dumps({"first": first, "second": second, "moved": sorted(moved)}), flush=True)
    print("OK", flush=True)
elif phase == "live":
    marker = sys.argv[3]
    assigned, revoked = [], []
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "live", "client.id": "live",
                  "session.timeout.ms": 10000, "heartbeat.interval.ms": 300,
                  "auto.offset.reset": "earliest"})
    c.subscribe([TOPIC], on_assign=lambda c, p: assigned.append(len(p)),
                on_revoke=lambda c, p: revoked.append(len(p)))
    deadline = time.time() + 60
    while not assigned and time.time() < deadline:
        c.poll(0.1)
    if assigned != [PARTS]:
        fail("live consumer got %s" % assigned)
    open(marker, "w").close()
    # The broker restarts meanwhile; keep polling past a session timeout.
    end = time.time() + 20
    while time.time() < end:
        c.poll(0.1)
    # Checked before close(), which revokes the assignment itself.
    if assigned != [PARTS] or revoked:
        fail("rebalanced across the restart: assigned %s revoked %s" % (assigned, revoked))
    c.close()
    print(json.dumps({"assigned": assigned}), flush=True)
    print("OK", flush=True)
else:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "client.id": "resumer",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "session.timeout.ms": 6000, "heartbeat.interval.ms": 300})
    committed = c.committed([TopicPartition(TOPIC, p) for p in range(PARTS)], timeout=30)
    for tp in committed:
        if tp.offset != 10 + tp.partition:
            fail("committed %s, expected %d" % (tp, 10 + tp.partition))
        if tp.metadata != "meta-%d" % tp.partition:
            fail("metadata %r" % tp.metadata)
    c.subscribe([TOPIC])
    first_seen = {}
    deadline = time.time() + 60
    while len(first_seen) < PARTS and time.time() < deadline:
        m = c.poll(0.2)
        if m is None or m.error():
            continue
        first_seen.setdefault(m.partition(), m.offset())
    c.close()
    if first_seen != {p: 10 + p for p in range(PARTS)}:
        fail("resumed at %s" % first_seen)
    s = Consumer({"bootstrap.servers": bootstrap, "group.id": "standalone", "enable.auto.commit": False})
    s.assign([TopicPartition(TOPIC, 0, 0)])
    s.commit(offsets=[TopicPartition(TOPIC, 0, 7)], asynchronous=False)
    got = s.committed([TopicPartition(TOPIC, 0)], timeout=10)[0].offset
    s.close()
    if got != 7:
        fail("standalone commit read back %d" % got)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    ids = sorted(g.group_id for g in admin.list_consumer_groups().result(timeout=30).valid)
    if "g1" not in ids or "standalone" not in ids:
        fail("list_consumer_groups: %s" % ids)
    desc = admin.describe_consumer_groups(["g1"])["g1"].result(timeout=30)
    if str(desc.state).split(".")[-1] != "EMPTY":
        fail("g1 is %s" % desc.state)
    for g, f in admin.delete_consumer_groups(["g1"]).items():
        f.result(timeout=30)
    ids = sorted(g.group_id for g in admin.list_consumer_groups().result(timeout=30).valid)
    if "g1" in ids:
        fail("g1 still listed after delete: %s" % ids)
    print(json.dumps({"resumed": first_seen, "groups": ids}), flush=True)
    print("OK", flush=True)
"#;
