//! Real third-party Kafka clients against a real broker process.
//!
//! Each client test starts `ringtail broker` on a free loopback port and
//! runs one client script from tests/clients/: create topics, produce
//! keyed and unkeyed messages with every codec (with acks 0, 1 and all
//! where the client lets the test choose), read them back by assignment
//! and check content and per-partition order; tests/clients/common.py
//! describes the scheme and the edge cases. The test then checks on disk
//! that each topic's batches carry the codec the client used (the broker
//! stores them as sent), restarts the broker with SIGTERM, reads
//! everything again and compares the digest of what was read, and finally
//! runs `ringtail log verify` on every partition.
//!
//! `clients_read_each_others_data` has every client read the others'
//! topics; `list_offsets_by_timestamp` checks ListOffsets' timestamp
//! lookups against Kafka's answers.
//!
//! The clients are installed by tests/run-all.sh (kcat from Debian, the
//! Python clients in `.venv`, kafkajs in tests/clients/node_modules). A
//! missing client fails its test with that advice; it never passes
//! silently.

#[path = "clients/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use harness::{run_with_timeout, temp_dir, Broker};
use ringtail_protocol::batch::{batches, Compression};
use ringtail_protocol::RecordBatch;

const CODECS: [(&str, Compression); 5] = [
    ("none", Compression::None),
    ("gzip", Compression::Gzip),
    ("snappy", Compression::Snappy),
    ("lz4", Compression::Lz4),
    ("zstd", Compression::Zstd),
];
/// Partitions per topic and messages per topic, as in tests/clients/common.py.
const PARTITIONS: i32 = 3;
const MESSAGES_PER_TOPIC: usize = 300;
/// One client run: five topics produced and read, or read again.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(180);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn clients_dir() -> PathBuf {
    repo().join("tests/clients")
}

const INSTALL_HINT: &str = "run tests/run-all.sh, which installs the test clients \
     (kcat via apt, confluent-kafka and kafka-python into .venv, kafkajs into tests/clients/node_modules)";

/// The interpreter for the Python clients: the project's `.venv` when it
/// exists, else `python3` from PATH.
fn python() -> PathBuf {
    let venv = repo().join(".venv/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// A client: how to run its script, and how to check it is installed.
struct Client {
    name: &'static str,
    program: PathBuf,
    script: &'static str,
    probe: Vec<String>,
    /// Fills `{prefix}-edge` too (tombstone, empty and binary keys and
    /// values, a 512 KiB value, explicit partitions and timestamps).
    edge: bool,
    /// Extra environment for the script.
    env: Vec<(&'static str, &'static str)>,
}

impl Client {
    fn confluent() -> Client {
        Client {
            name: "confluent-kafka",
            program: python(),
            script: "confluent_client.py",
            edge: true,
            env: Vec::new(),
            probe: vec!["-c".into(), "import confluent_kafka".into()],
        }
    }

    fn kafka_python() -> Client {
        Client {
            name: "kafka-python",
            program: python(),
            script: "kafka_python_client.py",
            edge: true,
            env: Vec::new(),
            probe: vec![
                "-c".into(),
                "import kafka, lz4, snappy, zstandard; assert kafka.__version__ >= '3'".into(),
            ],
        }
    }

    fn kafkajs() -> Client {
        Client {
            name: "kafkajs",
            program: PathBuf::from("node"),
            script: "kafkajs.js",
            edge: true,
            env: Vec::new(),
            probe: vec![
                "-e".into(),
                "for (const m of ['kafkajs', 'kafkajs-snappy', 'lz4js', '@bokuweb/zstd-wasm']) require(m)"
                    .into(),
            ],
        }
    }

    fn kcat() -> Client {
        Client {
            name: "kcat",
            program: PathBuf::from("bash"),
            script: "kcat.sh",
            edge: false,
            env: Vec::new(),
            probe: vec!["-c".into(), "kcat -V".into()],
        }
    }

    /// Fails the test (never skips it) when the client is not installed.
    fn require_installed(&self) {
        let out = Command::new(&self.program)
            .args(&self.probe)
            .current_dir(clients_dir())
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!(
                "{} is not installed ({} {:?} failed: {}): {INSTALL_HINT}",
                self.name,
                self.program.display(),
                self.probe,
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => panic!(
                "{} is not installed ({} cannot run: {e}): {INSTALL_HINT}",
                self.name,
                self.program.display()
            ),
        }
    }

    /// Runs the script; returns its stdout, or fails the test with all it
    /// printed and the broker's log.
    fn run(&self, broker: &Broker, prefix: &str, mode: &str, scratch: &Path) -> String {
        let out = self.spawn(broker, &[prefix, mode], scratch);
        self.check(&out, mode, broker)
    }

    /// Runs the script with the bootstrap address and `args`.
    fn spawn(&self, broker: &Broker, args: &[&str], scratch: &Path) -> Output {
        let mut command = Command::new(&self.program);
        command
            .arg(clients_dir().join(self.script))
            .arg(broker.bootstrap())
            .args(args)
            .current_dir(clients_dir())
            .env("KAFKAJS_NO_PARTITIONER_WARNING", "1")
            .envs(self.env.iter().copied());
        run_with_timeout(&mut command, CLIENT_TIMEOUT, scratch)
    }

    /// The script's stdout if it succeeded; else fails the test with all
    /// it printed and the broker's log.
    fn check(&self, out: &Output, what: &str, broker: &Broker) -> String {
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "{} {} {what} failed ({}):\n---- stdout ----\n{stdout}\n---- stderr ----\n{stderr}\n{}",
            self.name,
            self.script,
            out.status,
            broker.log()
        );
        stdout
    }
}

fn digest(name: &str, stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("DIGEST "))
        .unwrap_or_else(|| panic!("{name} printed no DIGEST line:\n{stdout}"))
        .to_string()
}

/// Calls `f` with each batch stored in one partition's segment files, in
/// order, straight from the files.
fn for_each_stored_batch(
    broker: &Broker,
    topic: &str,
    partition: i32,
    mut f: impl FnMut(&Path, RecordBatch<'_>),
) {
    let dir = broker.partition_dir(topic, partition);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    for file in files {
        let bytes = std::fs::read(&file).expect("read segment");
        for batch in batches(&bytes) {
            let batch = batch.unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            assert!(
                batch.is_crc_valid(),
                "{}: stored batch fails its CRC",
                file.display()
            );
            f(&file, batch);
        }
    }
}

/// Records per stored batch of one partition.
fn batch_record_counts(broker: &Broker, topic: &str, partition: i32) -> Vec<i32> {
    let mut counts = Vec::new();
    for_each_stored_batch(broker, topic, partition, |_, b| {
        counts.push(b.record_count())
    });
    counts
}

/// Reads every batch the broker stored for `topic` and checks that each
/// carries `codec` (clients batch several records, and the broker must
/// keep the client's compression) and that they hold all the records.
fn check_stored_codec(broker: &Broker, topic: &str, codec: Compression) {
    let mut records = 0usize;
    let mut batch_count = 0usize;
    for p in 0..PARTITIONS {
        for_each_stored_batch(broker, topic, p, |file, batch| {
            assert_eq!(
                batch.compression(),
                Some(codec),
                "{}: batch at offset {} is stored with {:?}, the client sent {codec:?}",
                file.display(),
                batch.base_offset().0,
                batch.compression()
            );
            records += usize::try_from(batch.record_count()).expect("count >= 0");
            batch_count += 1;
        });
    }
    assert_eq!(records, MESSAGES_PER_TOPIC, "{topic}: records stored");
    assert!(
        batch_count < records,
        "{topic}: {batch_count} batches for {records} records: the client never batched, so its codec was hardly exercised"
    );
}

/// How the broker is taken down between the two reads.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Restart {
    /// SIGTERM: a clean shutdown.
    Clean,
    /// SIGKILL: the next start recovers the logs.
    Kill,
}

/// The whole scenario for one client; `overrides` are extra broker
/// settings. Returns the stopped broker, whose data stays until it drops.
fn exercise(client: Client, prefix: &str, restart: Restart, overrides: &[&str]) -> Broker {
    client.require_installed();
    let scratch = temp_dir(&format!("{prefix}-scratch"));
    // kcat can only create topics through auto-creation.
    let mut settings = vec!["num.partitions=3", "auto.create.topics.enable=true"];
    settings.extend_from_slice(overrides);
    let mut broker = Broker::start(prefix, &settings);
    let first = client.run(&broker, prefix, "produce", &scratch);
    eprint!("{}", first);
    for (name, codec) in CODECS {
        check_stored_codec(&broker, &format!("{prefix}-{name}"), codec);
    }

    match restart {
        Restart::Clean => broker.restart(),
        Restart::Kill => broker.kill_and_restart(),
    }
    let second = client.run(&broker, prefix, "verify", &scratch);
    assert_eq!(
        digest(client.name, &first),
        digest(client.name, &second),
        "{}: what was read after a restart ({restart:?}) differs from what was read before",
        client.name
    );

    broker.stop();
    let mut topics: Vec<String> = CODECS
        .iter()
        .map(|(c, _)| format!("{prefix}-{c}"))
        .collect();
    if client.edge {
        topics.push(format!("{prefix}-edge"));
    }
    for topic in topics {
        for p in 0..PARTITIONS {
            broker.verify_partition(&topic, p);
        }
    }
    let _ = std::fs::remove_dir_all(scratch);
    broker
}

/// Every client reads the topics each other client produced: codec
/// implementations differ (librdkafka's C codecs, Python's modules,
/// kafkajs' pure-JS and WASM ones), and the broker stores batches as sent,
/// so each reader sees the other producers' bytes.
#[test]
fn clients_read_each_others_data() {
    let clients = [
        (Client::confluent(), "x-confluent"),
        (Client::kafka_python(), "x-kafkapython"),
        (Client::kafkajs(), "x-kafkajs"),
        (Client::kcat(), "x-kcat"),
    ];
    for (client, _) in &clients {
        client.require_installed();
    }
    let scratch = temp_dir("cross-scratch");
    // Fetches copy through user space here; the other tests use the
    // default zero-copy path.
    let mut broker = Broker::start("cross", &["num.partitions=3", "fetch.zero.copy=false"]);
    for (client, prefix) in &clients {
        client.run(&broker, prefix, "produce", &scratch);
    }
    for (reader, own) in &clients {
        for (_, prefix) in clients.iter().filter(|(_, p)| p != own) {
            let out = reader.run(&broker, prefix, "read", &scratch);
            eprintln!(
                "{} read {prefix}: {}",
                reader.name,
                digest(reader.name, &out)
            );
        }
    }
    broker.stop();
    let _ = std::fs::remove_dir_all(scratch);
}

/// ListOffsets by timestamp as kafka-python's `offsets_for_times` uses it:
/// Kafka answers with the first record at or after the target and that
/// record's timestamp; and MAX_TIMESTAMP through confluent-kafka's admin
/// client: the record with the largest timestamp (tests/clients/timestamps.py
/// has the cases).
#[test]
fn list_offsets_by_timestamp() {
    let client = Client {
        name: "kafka-python and confluent-kafka",
        script: "timestamps.py",
        probe: vec!["-c".into(), "import kafka, confluent_kafka".into()],
        ..Client::kafka_python()
    };
    client.require_installed();
    let scratch = temp_dir("timestamps-scratch");
    let mut broker = Broker::start("timestamps", &[]);
    let out = client.spawn(&broker, &["ts"], &scratch);
    // The script's premise: its records went into two batches per topic.
    for codec in ["none", "gzip"] {
        let topic = format!("ts-ts-{codec}");
        let counts = batch_record_counts(&broker, &topic, 0);
        assert_eq!(
            counts,
            vec![5, 3],
            "{topic}: records per stored batch\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    assert_eq!(
        batch_record_counts(&broker, "ts-ts-unordered", 0),
        vec![3],
        "ts-ts-unordered: records per stored batch"
    );
    client.check(&out, "offsets_for_times", &broker);
    broker.stop();
    let _ = std::fs::remove_dir_all(scratch);
}

#[test]
fn confluent_kafka_python() {
    exercise(Client::confluent(), "confluent", Restart::Clean, &[]);
}

#[test]
fn kafka_python() {
    exercise(Client::kafka_python(), "kafkapython", Restart::Clean, &[]);
}

#[test]
fn kafkajs() {
    exercise(Client::kafkajs(), "kafkajs", Restart::Clean, &[]);
}

/// The same with SIGKILL instead of SIGTERM: everything the clients read
/// before (all of it acknowledged or, for acks=0, appended) is there after
/// the recovery.
#[test]
fn confluent_kafka_python_after_sigkill() {
    exercise(Client::confluent(), "confluent-kill", Restart::Kill, &[]);
}

#[test]
fn kcat() {
    exercise(Client::kcat(), "kcat", Restart::Clean, &[]);
}

/// kcat's scenario with 4 KiB segments and at most 2 KiB batches: the
/// uncompressed topic's partitions (~15 KB each) spread over several
/// segments, so fetches, the restart's reopening and `log verify` cross
/// segment boundaries. (A batch
/// larger than a segment is refused with RECORD_LIST_TOO_LARGE, as in
/// Kafka.)
#[test]
fn kcat_with_small_segments() {
    let client = Client {
        env: vec![("KCAT_PRODUCER_OPTS", "-X batch.size=2048")],
        ..Client::kcat()
    };
    let broker = exercise(
        client,
        "kcat-segments",
        Restart::Clean,
        &["log.segment.bytes=4096"],
    );
    // ~45 KB of uncompressed records in batches of at most 2 KiB fill well
    // over nine 4 KiB segments, however the partitioner spread them (one
    // partition alone may get few: librdkafka's sticky partitioner puts
    // runs of unkeyed messages on one partition).
    let mut segments_total = 0;
    for p in 0..PARTITIONS {
        let dir = broker.partition_dir("kcat-segments-none", p);
        let segments = std::fs::read_dir(&dir)
            .expect("partition dir")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "log"))
            })
            .count();
        eprintln!("{}: {segments} segments", dir.display());
        segments_total += segments;
    }
    assert!(
        segments_total >= 9,
        "kcat-segments-none: {segments_total} segments in all"
    );
}
