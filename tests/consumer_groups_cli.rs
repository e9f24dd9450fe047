//! `ringtail consumer-groups` and `ringtail console-consumer --group`
//! against a real broker process.
//!
//! - A confluent-kafka (librdkafka) consumer group, driven from the
//!   project's `.venv` (tests/run-all.sh installs it; without it that test
//!   says so and is skipped), commits known offsets while it stays
//!   subscribed: `--list` shows the group, `--describe` its offsets, log
//!   end offsets, lag and member per partition; reset and delete are
//!   refused while it is active, with Kafka's messages. After it closes,
//!   `--reset-offsets --to-earliest --execute` moves the commits to 0, a
//!   new confluent consumer re-reads from 0, `--to-offset` clamps,
//!   `--dry-run` changes nothing, `--delete-offsets` drops one
//!   partition's commit, `--delete` removes the group.
//! - `console-consumer --group` resumes where a previous run committed
//!   (nothing repeated, nothing lost); two console consumers in one group
//!   split the partitions, the second starting at the first's commits;
//!   SIGINT commits and leaves, so the other takes over at once; a
//!   librdkafka consumer shares a group with a console consumer.

#[path = "clients/harness.rs"]
mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use harness::{run_with_timeout, temp_dir, wait_timeout, Broker};
use ringtail::admin::client::Client;
use ringtail_protocol::batch::BatchBuilder;
use ringtail_protocol::messages::kafka_protocol::messages::create_topics_request::CreatableTopic;
use ringtail_protocol::messages::kafka_protocol::messages::produce_request::{
    PartitionProduceData, TopicProduceData,
};
use ringtail_protocol::messages::kafka_protocol::messages::{
    CreateTopicsRequest, ProduceRequest, TopicName,
};
use ringtail_protocol::messages::kafka_protocol::protocol::StrBytes;

const WAIT: Duration = Duration::from_secs(60);

fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_string())
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn create_topic(broker: &Broker, topic: &str, partitions: i32) {
    let mut c = Client::connect(&broker.bootstrap(), "setup").expect("connect");
    let t = CreatableTopic::default()
        .with_name(TopicName(s(topic)))
        .with_num_partitions(partitions)
        .with_replication_factor(1);
    let r = c
        .send(
            &CreateTopicsRequest::default()
                .with_topics(vec![t])
                .with_timeout_ms(10_000),
        )
        .expect("CreateTopics");
    assert_eq!(r.topics[0].error_code, 0, "{r:?}");
}

/// Appends `counts[p]` records to each partition `p`, valued
/// `{tag}-p{p}-{i}`, one batch per partition.
fn produce(broker: &Broker, topic: &str, tag: &str, counts: &[usize]) {
    let mut c = Client::connect(&broker.bootstrap(), "setup").expect("connect");
    let partition_data = counts
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(p, n)| {
            let mut b = BatchBuilder::new();
            for i in 0..*n {
                let value = format!("{tag}-p{p}-{i}");
                b.append(0, None, Some(value.as_bytes()), &[]);
            }
            PartitionProduceData::default()
                .with_index(p as i32)
                .with_records(Some(Bytes::from(b.build())))
        })
        .collect();
    let r = c
        .send(
            &ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(10_000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(TopicName(s(topic)))
                    .with_partition_data(partition_data)]),
        )
        .expect("Produce");
    for p in &r.responses[0].partition_responses {
        assert_eq!(p.error_code, 0, "{r:?}");
    }
}

/// Runs `ringtail consumer-groups --bootstrap-server B args...`.
fn groups(broker: &Broker, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringtail"))
        .arg("consumer-groups")
        .arg("--bootstrap-server")
        .arg(broker.bootstrap())
        .args(args)
        .output()
        .expect("run ringtail consumer-groups");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One data row of `--describe`'s offsets table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    topic: String,
    partition: String,
    current: String,
    log_end: String,
    lag: String,
    consumer_id: String,
    host: String,
    client_id: String,
}

/// The rows of `--describe`, checking the header is Kafka's.
fn describe(broker: &Broker, group: &str) -> (Vec<Row>, String) {
    let (ok, stdout, stderr) = groups(broker, &["--describe", "--group", group]);
    assert!(ok, "describe {group}: {stdout}{stderr}");
    // Messages (a group that does not exist) come before any table.
    let mut lines = stdout
        .lines()
        .skip_while(|l| !l.starts_with("GROUP "))
        .filter(|l| !l.is_empty());
    let mut rows = Vec::new();
    if let Some(header) = lines.next() {
        let cols: Vec<&str> = header.split_whitespace().collect();
        assert_eq!(
            cols,
            [
                "GROUP",
                "TOPIC",
                "PARTITION",
                "CURRENT-OFFSET",
                "LOG-END-OFFSET",
                "LAG",
                "CONSUMER-ID",
                "HOST",
                "CLIENT-ID"
            ],
            "{stdout}"
        );
        for line in lines {
            let c: Vec<&str> = line.split_whitespace().collect();
            assert!(c.len() == 9 && c[0] == group, "row {line:?} in\n{stdout}");
            rows.push(Row {
                topic: c[1].into(),
                partition: c[2].into(),
                current: c[3].into(),
                log_end: c[4].into(),
                lag: c[5].into(),
                consumer_id: c[6].into(),
                host: c[7].into(),
                client_id: c[8].into(),
            });
        }
    }
    (rows, stdout + &stderr)
}

fn listed(broker: &Broker) -> Vec<String> {
    let (ok, stdout, stderr) = groups(broker, &["--list"]);
    assert!(ok, "--list: {stdout}{stderr}");
    stdout.lines().map(str::to_owned).collect()
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

fn python_ok(out: &Output, what: &str, broker: &Broker) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.lines().last() == Some("OK"),
        "{what}: {}\nstdout:\n{stdout}\nstderr:\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        broker.log()
    );
    stdout
}

const TOPIC: &str = "clicks";
/// Records per partition, and the offsets the Python member commits.
const COUNTS: [usize; 3] = [10, 20, 30];
const COMMITS: [i64; 3] = [4, 20, 0];

#[test]
fn consumer_groups_describes_resets_and_deletes_a_librdkafka_group() {
    let Some(python) = python_with_confluent() else {
        eprintln!(
            "SKIPPED: .venv/bin/python with confluent_kafka not found \
             (tests/run-all.sh installs it)"
        );
        return;
    };
    let scratch = temp_dir("groups-cli-py");
    let script = scratch.join("member.py");
    std::fs::write(&script, PYTHON_MEMBER).expect("write the script");
    let mut broker = Broker::start("groups-cli-py-broker", &[]);
    create_topic(&broker, TOPIC, 3);
    produce(&broker, TOPIC, "r", &COUNTS);

    // Refusals that need no group.
    let (ok, _, stderr) = groups(&broker, &["--describe"]);
    assert!(!ok && stderr.contains("Option [describe] takes one of these options"));
    let (ok, _, stderr) = groups(&broker, &["--list", "--describe"]);
    assert!(!ok && stderr.contains("exactly one action"), "{stderr}");
    let (_, out) = describe(&broker, "nope");
    assert!(
        out.contains("Error: Consumer group 'nope' does not exist."),
        "{out}"
    );
    let (ok, stdout, _) = groups(&broker, &["--delete", "--group", "nope"]);
    assert!(
        !ok && stdout.contains("* Group 'nope' could not be deleted due to: org.apache.kafka.common.errors.GroupIdNotFoundException"),
        "{stdout}"
    );

    // A subscribed librdkafka member commits COMMITS and stays.
    let ready = scratch.join("ready");
    let stop = scratch.join("stop");
    let member = Command::new(&python)
        .arg(&script)
        .arg(broker.bootstrap())
        .arg("hold")
        .arg(&ready)
        .arg(&stop)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the Python member");
    wait_for("the Python member's commits", || ready.exists());
    assert!(listed(&broker).contains(&"pyg".to_owned()));
    let (rows, out) = describe(&broker, "pyg");
    assert_eq!(rows.len(), 3, "{out}");
    for (p, row) in rows.iter().enumerate() {
        let current = COMMITS[p];
        let end = COUNTS[p] as i64;
        assert_eq!(row.topic, TOPIC, "{out}");
        assert_eq!(row.partition, p.to_string(), "{out}");
        assert_eq!(row.current, current.to_string(), "{out}");
        assert_eq!(row.log_end, end.to_string(), "{out}");
        assert_eq!(row.lag, (end - current).to_string(), "{out}");
        assert!(row.consumer_id.starts_with("pyclient-"), "{out}");
        assert_eq!(row.host, "/127.0.0.1", "{out}");
        assert_eq!(row.client_id, "pyclient", "{out}");
    }
    assert!(!out.contains("no active members"), "{out}");
    let (ok, stdout, _) = groups(&broker, &["--describe", "--group", "pyg", "--state"]);
    assert!(
        ok && stdout.contains("Stable") && stdout.contains("range"),
        "{stdout}"
    );
    let (ok, stdout, _) = groups(
        &broker,
        &["--describe", "--group", "pyg", "--members", "--verbose"],
    );
    assert!(ok && stdout.contains("clicks(0,1,2)"), "{stdout}");

    // Active: reset and delete are refused, the commits stay.
    let (ok, stdout, _) = groups(
        &broker,
        &[
            "--reset-offsets",
            "--group",
            "pyg",
            "--topic",
            TOPIC,
            "--to-earliest",
            "--execute",
        ],
    );
    assert!(
        !ok && stdout.contains(
            "Error: Assignments can only be reset if the group 'pyg' is inactive, but the current state is Stable."
        ),
        "{stdout}"
    );
    let (ok, stdout, _) = groups(&broker, &["--delete", "--group", "pyg"]);
    assert!(
        !ok && stdout.contains("GroupNotEmptyException: The group is not empty."),
        "{stdout}"
    );
    assert_eq!(describe(&broker, "pyg").0, rows);

    // The member closes: its rows stay, without a consumer.
    std::fs::write(&stop, b"").expect("stop file");
    let out = member.wait_with_output().expect("the Python member");
    python_ok(&out, "hold", &broker);
    let (rows, out) = describe(&broker, "pyg");
    assert!(
        out.contains("Consumer group 'pyg' has no active members."),
        "{out}"
    );
    let currents: Vec<&str> = rows.iter().map(|r| r.current.as_str()).collect();
    assert_eq!(currents, ["4", "20", "0"], "{out}");
    assert!(
        rows.iter()
            .all(|r| r.consumer_id == "-" && r.host == "-" && r.client_id == "-"),
        "{out}"
    );

    // Dry run, then the reset to earliest.
    let (ok, stdout, _) = groups(
        &broker,
        &[
            "--reset-offsets",
            "--group",
            "pyg",
            "--topic",
            "clicks:1",
            "--to-offset",
            "500",
            "--dry-run",
        ],
    );
    assert!(ok, "{stdout}");
    assert_eq!(
        new_offsets(&stdout),
        vec![(1, 20)],
        "clamped to the log end"
    );
    let (ok, stdout, _) = groups(
        &broker,
        &[
            "--reset-offsets",
            "--group",
            "pyg",
            "--all-topics",
            "--shift-by",
            "-3",
        ],
    );
    assert!(
        ok && stdout.contains("--execute option is missing"),
        "{stdout}"
    );
    assert_eq!(new_offsets(&stdout), vec![(0, 1), (1, 17), (2, 0)]);
    let currents: Vec<String> = describe(&broker, "pyg")
        .0
        .into_iter()
        .map(|r| r.current)
        .collect();
    assert_eq!(currents, ["4", "20", "0"], "dry runs change nothing");
    let (ok, stdout, _) = groups(
        &broker,
        &[
            "--reset-offsets",
            "--group",
            "pyg",
            "--topic",
            TOPIC,
            "--to-earliest",
            "--execute",
        ],
    );
    assert!(ok, "{stdout}");
    assert_eq!(new_offsets(&stdout), vec![(0, 0), (1, 0), (2, 0)]);
    let (rows, out) = describe(&broker, "pyg");
    let currents: Vec<&str> = rows.iter().map(|r| r.current.as_str()).collect();
    assert_eq!(currents, ["0", "0", "0"], "{out}");

    // A new member re-reads every partition from 0.
    let out = run_with_timeout(
        Command::new(&python)
            .arg(&script)
            .arg(broker.bootstrap())
            .arg("reread"),
        Duration::from_secs(60),
        &scratch,
    );
    let stdout = python_ok(&out, "reread", &broker);
    assert!(stdout.contains(r#"{"0": 0, "1": 0, "2": 0}"#), "{stdout}");

    // --delete-offsets drops one partition's commit; --list --state.
    let (ok, stdout, _) = groups(
        &broker,
        &["--delete-offsets", "--group", "pyg", "--topic", "clicks:2"],
    );
    assert!(
        ok && stdout.contains("Request succeed for deleting offsets with topic clicks group pyg")
            && stdout.contains("Successful"),
        "{stdout}"
    );
    let partitions: Vec<String> = describe(&broker, "pyg")
        .0
        .into_iter()
        .map(|r| r.partition)
        .collect();
    assert_eq!(partitions, ["0", "1"]);
    let (ok, stdout, _) = groups(&broker, &["--list", "--state"]);
    assert!(
        ok && stdout
            .lines()
            .any(|l| l.split_whitespace().eq(["pyg", "Empty"])),
        "{stdout}"
    );

    let (ok, stdout, _) = groups(&broker, &["--delete", "--group", "pyg"]);
    assert!(
        ok && stdout.contains("Deletion of requested consumer groups ('pyg') was successful."),
        "{stdout}"
    );
    assert!(!listed(&broker).contains(&"pyg".to_owned()));
    let (_, out) = describe(&broker, "pyg");
    assert!(
        out.contains("Error: Consumer group 'pyg' does not exist."),
        "{out}"
    );
    broker.stop();
}

/// (partition, new offset) of a NEW-OFFSET table.
fn new_offsets(stdout: &str) -> Vec<(i32, i64)> {
    let mut lines = stdout
        .lines()
        .skip_while(|l| !l.starts_with("GROUP"))
        .filter(|l| !l.is_empty());
    let header: Vec<&str> = lines.next().expect("a table").split_whitespace().collect();
    assert_eq!(header, ["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"]);
    lines
        .map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            (
                c[2].parse().expect("partition"),
                c[3].parse().expect("offset"),
            )
        })
        .collect()
}

/// The librdkafka member: "hold" subscribes, commits COMMITS through the
/// group, touches the ready file and stays until the stop file appears;
/// "reread" subscribes (auto.offset.reset=latest, so only the commits
/// can make it start at 0) and reports the first offset per partition.
const PYTHON_MEMBER: &str = r#"
import json, os, sys, time
from confluent_kafka import Consumer, TopicPartition

bootstrap, phase = sys.argv[1], sys.argv[2]
TOPIC, COUNTS, COMMITS = "clicks", [10, 20, 30], [4, 20, 0]

def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)

assigned = []
def on_assign(c, parts):
    assigned[:] = parts

c = Consumer({"bootstrap.servers": bootstrap, "group.id": "pyg", "client.id": "pyclient",
              "enable.auto.commit": False, "auto.offset.reset": "latest" if phase == "reread" else "earliest",
              "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
c.subscribe([TOPIC], on_assign=on_assign)
if phase == "hold":
    ready, stop = sys.argv[3], sys.argv[4]
    deadline = time.time() + 40
    while len(assigned) < 3 and time.time() < deadline:
        c.poll(0.2)
    if len(assigned) < 3:
        fail("assigned %s" % assigned)
    c.commit(offsets=[TopicPartition(TOPIC, p, o) for p, o in enumerate(COMMITS)], asynchronous=False)
    open(ready, "w").close()
    deadline = time.time() + 50
    while not os.path.exists(stop) and time.time() < deadline:
        c.poll(0.2)
    c.close()
    print("OK", flush=True)
else:
    first, count = {}, 0
    deadline = time.time() + 40
    while count < sum(COUNTS) and time.time() < deadline:
        m = c.poll(0.2)
        if m is None or m.error():
            continue
        first.setdefault(str(m.partition()), m.offset())
        count += 1
    c.close()
    if count != sum(COUNTS):
        fail("read %d of %d" % (count, sum(COUNTS)))
    print(json.dumps(dict(sorted(first.items()))), flush=True)
    print("OK", flush=True)
"#;

/// A `ringtail console-consumer` process writing to a file.
struct ConsoleConsumer {
    child: Option<Child>,
    out: PathBuf,
    err: PathBuf,
}

impl ConsoleConsumer {
    fn start(broker: &Broker, dir: &Path, name: &str, args: &[&str]) -> ConsoleConsumer {
        let out = dir.join(format!("{name}.out"));
        let err = dir.join(format!("{name}.err"));
        let child = Command::new(env!("CARGO_BIN_EXE_ringtail"))
            .arg("console-consumer")
            .arg("--bootstrap-server")
            .arg(broker.bootstrap())
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).expect("stdout file"))
            .stderr(std::fs::File::create(&err).expect("stderr file"))
            .spawn()
            .expect("start console-consumer");
        ConsoleConsumer {
            child: Some(child),
            out,
            err,
        }
    }

    /// Printed lines: `Partition:P\tvalue`.
    fn lines(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines().map(str::to_owned).collect()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// SIGINT (Ctrl-C), then the exit status; it must exit cleanly.
    fn interrupt(&mut self) {
        let mut child = self.child.take().expect("running");
        let pid = libc::pid_t::try_from(child.id()).expect("pid");
        // SAFETY: signals our own child, not yet reaped.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
        let status = wait_timeout(&mut child, Duration::from_secs(20));
        assert!(
            status.is_some_and(|s| s.success()),
            "console-consumer after SIGINT: {status:?}\n{}",
            self.stderr()
        );
    }

    /// Waits for the exit (--max-messages, --timeout-ms).
    fn wait(&mut self) {
        let mut child = self.child.take().expect("running");
        let status = wait_timeout(&mut child, WAIT);
        assert!(
            status.is_some_and(|s| s.success()),
            "console-consumer: {status:?}\n{}",
            self.stderr()
        );
    }
}

impl Drop for ConsoleConsumer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Partition of a `Partition:P\tvalue` line.
fn partition_of(line: &str) -> i32 {
    line.strip_prefix("Partition:")
        .and_then(|l| l.split('\t').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("not a Partition:P line: {line:?}"))
}

fn value_of(line: &str) -> String {
    line.split('\t').nth(1).expect("a value").to_owned()
}

/// The partitions each member holds, by client id, from `--describe`.
fn assignment_by_client(broker: &Broker, group: &str) -> BTreeMap<String, BTreeSet<i32>> {
    let mut out: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    for r in describe(broker, group).0 {
        if r.consumer_id != "-" {
            if let Ok(p) = r.partition.parse() {
                out.entry(r.client_id).or_default().insert(p);
            }
        }
    }
    out
}

#[test]
fn console_consumers_resume_and_share_a_group() {
    let scratch = temp_dir("groups-cli-console");
    let broker = Broker::start("groups-cli-console-broker", &[]);
    create_topic(&broker, "lines", 4);
    produce(&broker, "lines", "a", &[10, 10, 10, 10]);
    let print = ["--property", "print.partition=true"];

    // Resume: 15 messages, then the rest; nothing twice, nothing lost.
    let first = [
        &["--topic", "lines", "--group", "cg", "--from-beginning"][..],
        &print,
        &["--max-messages", "15"],
    ]
    .concat();
    let mut run1 = ConsoleConsumer::start(&broker, &scratch, "run1", &first);
    run1.wait();
    assert_eq!(run1.lines().len(), 15, "{}", run1.stderr());
    assert!(run1.stderr().contains("Processed a total of 15 messages"));
    let (rows, out) = describe(&broker, "cg");
    let committed: i64 = rows
        .iter()
        .map(|r| r.current.parse::<i64>().unwrap_or(0))
        .sum();
    assert_eq!(committed, 15, "{out}");
    let second = [
        &["--topic", "lines", "--group", "cg"][..],
        &print,
        &["--timeout-ms", "3000"],
    ]
    .concat();
    let mut run2 = ConsoleConsumer::start(&broker, &scratch, "run2", &second);
    run2.wait();
    let mut values: Vec<String> = run1
        .lines()
        .iter()
        .chain(&run2.lines())
        .map(|l| value_of(l))
        .collect();
    values.sort();
    let mut expected: Vec<String> = (0..4)
        .flat_map(|p| (0..10).map(move |i| format!("a-p{p}-{i}")))
        .collect();
    expected.sort();
    assert_eq!(values, expected, "run 2:\n{}", run2.stderr());
    let (rows, out) = describe(&broker, "cg");
    assert!(rows.iter().all(|r| r.lag == "0"), "{out}");

    // Two members: A alone reads everything and commits when B's join
    // rebalances the group; B starts at A's commits.
    let shared = [
        &["--topic", "lines", "--group", "cg2", "--from-beginning"][..],
        &print,
    ]
    .concat();
    let mut a = ConsoleConsumer::start(
        &broker,
        &scratch,
        "a",
        &[&shared[..], &["--consumer-property", "client.id=member-a"]].concat(),
    );
    wait_for("A to read all 40 records", || a.lines().len() >= 40);
    let mut b = ConsoleConsumer::start(
        &broker,
        &scratch,
        "b",
        &[
            &shared[..],
            &[
                "--consumer-property",
                "client.id=member-b",
                "--consumer-property",
                "heartbeat.interval.ms=500",
            ],
        ]
        .concat(),
    );
    let mut split = BTreeMap::new();
    wait_for("A and B to hold two partitions each", || {
        split = assignment_by_client(&broker, "cg2");
        split.len() == 2 && split.values().all(|p| p.len() == 2)
    });
    produce(&broker, "lines", "b", &[10, 10, 10, 10]);
    wait_for("A and B to read the 40 new records", || {
        a.lines().len() + b.lines().len() >= 80
    });
    std::thread::sleep(Duration::from_millis(500));
    let (a_lines, b_lines) = (a.lines(), b.lines());
    assert_eq!(
        a_lines.len() + b_lines.len(),
        80,
        "A:\n{}\nB:\n{}",
        a.stderr(),
        b.stderr()
    );
    for line in &a_lines[40..] {
        assert!(
            split["member-a"].contains(&partition_of(line)),
            "A read {line} with {split:?}"
        );
    }
    for line in &b_lines {
        assert!(
            split["member-b"].contains(&partition_of(line)),
            "B read {line} with {split:?}"
        );
        assert!(
            value_of(line).starts_with("b-"),
            "B re-read {line}: A's commits were lost"
        );
    }
    let distinct: BTreeSet<String> = a_lines
        .iter()
        .chain(&b_lines)
        .map(|l| value_of(l))
        .collect();
    assert_eq!(distinct.len(), 80);

    // Ctrl-C on A: it commits and leaves; B takes all four partitions.
    a.interrupt();
    assert!(
        a.stderr().contains("Processed a total of"),
        "{}",
        a.stderr()
    );
    wait_for("B to hold all four partitions", || {
        let split = assignment_by_client(&broker, "cg2");
        split.len() == 1 && split.get("member-b").is_some_and(|p| p.len() == 4)
    });
    produce(&broker, "lines", "c", &[1, 1, 1, 1]);
    wait_for("B to read the 4 newest records", || {
        b.lines().len() >= b_lines.len() + 4
    });
    b.interrupt();
    let (rows, out) = describe(&broker, "cg2");
    assert!(out.contains("has no active members"), "{out}");
    assert!(
        rows.iter().all(|r| r.lag == "0" && r.current == "21"),
        "{out}"
    );
    let after: Vec<String> = b.lines()[b_lines.len()..]
        .iter()
        .map(|l| value_of(l))
        .collect();
    assert_eq!(
        after.len(),
        4,
        "nothing read twice after the takeover: {after:?}"
    );

    if let Some(python) = python_with_confluent() {
        librdkafka_shares_a_group_with_a_console_consumer(&broker, &python, &scratch);
    } else {
        eprintln!("SKIPPED (mixed group): .venv/bin/python with confluent_kafka not found");
    }
}

/// A console consumer and a librdkafka consumer in one group: each gets
/// two of the four partitions.
fn librdkafka_shares_a_group_with_a_console_consumer(
    broker: &Broker,
    python: &Path,
    scratch: &Path,
) {
    let mut console = ConsoleConsumer::start(
        broker,
        scratch,
        "mixed",
        &[
            "--topic",
            "lines",
            "--group",
            "mixed",
            "--consumer-property",
            "client.id=console",
            "--consumer-property",
            "heartbeat.interval.ms=500",
        ],
    );
    let script = scratch.join("mixed.py");
    std::fs::write(&script, PYTHON_MIXED).expect("write the script");
    let stop = scratch.join("mixed-stop");
    let member = Command::new(python)
        .arg(&script)
        .arg(broker.bootstrap())
        .arg(&stop)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the Python member");
    let mut split = BTreeMap::new();
    wait_for(
        "the console and librdkafka members to hold two partitions each",
        || {
            split = assignment_by_client(broker, "mixed");
            split.len() == 2 && split.values().all(|p| p.len() == 2)
        },
    );
    let all: BTreeSet<i32> = split.values().flatten().copied().collect();
    assert_eq!(all.len(), 4, "{split:?}");
    assert!(
        split.contains_key("console") && split.contains_key("pymixed"),
        "{split:?}"
    );
    std::fs::write(&stop, b"").expect("stop file");
    let out = member.wait_with_output().expect("the Python member");
    python_ok(&out, "mixed", broker);
    console.interrupt();
}

const PYTHON_MIXED: &str = r#"
import os, sys, time
from confluent_kafka import Consumer
bootstrap, stop = sys.argv[1], sys.argv[2]
c = Consumer({"bootstrap.servers": bootstrap, "group.id": "mixed", "client.id": "pymixed",
              "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
c.subscribe(["lines"])
deadline = time.time() + 50
while not os.path.exists(stop) and time.time() < deadline:
    c.poll(0.2)
c.close()
print("OK", flush=True)
"#;
