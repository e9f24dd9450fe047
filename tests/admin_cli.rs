//! The admin CLI against a real broker process: `ringtail topics`,
//! `console-producer` and `console-consumer` run as a user runs them,
//! each a process of its own, on a broker started on a free loopback port.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringtail::admin::client::Client;
use ringtail::admin::producer::partition_for_key;
use ringtail_protocol::batch::{patch, BatchBuilder, RECORD_BATCH_OVERHEAD};
use ringtail_protocol::messages::kafka_protocol::messages::produce_request::{
    PartitionProduceData, TopicProduceData,
};
use ringtail_protocol::messages::kafka_protocol::messages::{ProduceRequest, TopicName};
use ringtail_protocol::messages::kafka_protocol::protocol::StrBytes;

const BIN: &str = env!("CARGO_BIN_EXE_ringtail");

/// A broker process with its own data directory; killed on drop.
struct Broker {
    child: Child,
    dir: PathBuf,
    addr: String,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

impl Broker {
    /// Starts a broker and waits until it accepts connections. The port
    /// is picked free and then released, so another process may take it
    /// first: then the broker exits and a new port is tried.
    fn start(name: &str) -> Broker {
        for attempt in 0..5 {
            let dir = std::env::temp_dir().join(format!(
                "ringtail-admin-cli-{name}-{}-{attempt}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("create the data dir");
            let port = free_port();
            let log = std::fs::File::create(dir.join("broker.log")).expect("log file");
            let child = Command::new(BIN)
                .args([
                    "broker",
                    "--override",
                    &format!("log.dirs={}", dir.join("data").display()),
                    "--override",
                    &format!("listeners=PLAINTEXT://127.0.0.1:{port}"),
                ])
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone log"))
                .stderr(log)
                .spawn()
                .expect("start the broker");
            let mut broker = Broker {
                child,
                dir,
                addr: format!("127.0.0.1:{port}"),
            };
            if broker.wait_ready() {
                return broker;
            }
        }
        panic!("the broker did not start on any of 5 ports");
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(self.dir.join("broker.log")).unwrap_or_default();
                eprintln!("broker exited with {status}: {log}");
                return false;
            }
            if TcpStream::connect(&self.addr).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `ringtail ARGS` with `stdin` fed and closed.
fn ringtail(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ringtail");
    let mut input = child.stdin.take().expect("piped stdin");
    let text = stdin.to_owned();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(text.as_bytes());
    });
    let out = child.wait_with_output().expect("wait for ringtail");
    writer.join().expect("stdin writer");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn topics(broker: &Broker, args: &[&str]) -> Output {
    let mut all = vec!["topics", "--bootstrap-server", &broker.addr];
    all.extend_from_slice(args);
    ringtail(&all, "")
}

fn ok(out: Output) -> Output {
    assert_eq!(
        out.code, 0,
        "stdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    out
}

/// One consumed line printed with print.partition, print.offset and
/// print.key.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Consumed {
    partition: i32,
    offset: i64,
    key: String,
    value: String,
}

fn parse_consumed(stdout: &str) -> Vec<Consumed> {
    stdout
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.splitn(4, '\t').collect();
            assert_eq!(fields.len(), 4, "{line:?}");
            Consumed {
                partition: fields[0]
                    .strip_prefix("Partition:")
                    .and_then(|p| p.parse().ok())
                    .unwrap_or_else(|| panic!("{line:?}")),
                offset: fields[1]
                    .strip_prefix("Offset:")
                    .and_then(|p| p.parse().ok())
                    .unwrap_or_else(|| panic!("{line:?}")),
                key: fields[2].to_owned(),
                value: fields[3].to_owned(),
            }
        })
        .collect()
}

fn consume_all(broker: &Broker, topic: &str, max: usize) -> Vec<Consumed> {
    let max = max.to_string();
    let out = ok(ringtail(
        &[
            "console-consumer",
            "--bootstrap-server",
            &broker.addr,
            "--topic",
            topic,
            "--from-beginning",
            "--max-messages",
            &max,
            "--timeout-ms",
            "20000",
            "--property",
            "print.partition=true",
            "--property",
            "print.offset=true",
            "--property",
            "print.key=true",
        ],
        "",
    ));
    assert!(
        out.stderr
            .contains(&format!("Processed a total of {max} messages")),
        "{}",
        out.stderr
    );
    parse_consumed(&out.stdout)
}

#[test]
fn topics_produce_consume_alter_delete() {
    let broker = Broker::start("flow");

    let out = ok(topics(
        &broker,
        &[
            "--create",
            "--topic",
            "orders",
            "--partitions",
            "3",
            "--replication-factor",
            "1",
        ],
    ));
    assert_eq!(out.stdout, "Created topic orders.\n");
    let again = topics(
        &broker,
        &["--create", "--topic", "orders", "--partitions", "3"],
    );
    assert_eq!(again.code, 1);
    assert!(
        again
            .stderr
            .starts_with("Error while executing topic command : TOPIC_ALREADY_EXISTS"),
        "{}",
        again.stderr
    );
    ok(topics(
        &broker,
        &["--create", "--topic", "orders", "--if-not-exists"],
    ));
    ok(topics(
        &broker,
        &["--create", "--topic", "audit", "--partitions", "1"],
    ));

    let list = ok(topics(&broker, &["--list"]));
    assert_eq!(list.stdout, "audit\norders\n");

    let describe = ok(topics(&broker, &["--describe", "--topic", "orders"]));
    let lines: Vec<&str> = describe.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", describe.stdout);
    let head: Vec<&str> = lines[0].split('\t').collect();
    assert_eq!(head[0], "Topic: orders");
    let id = head[1].strip_prefix("TopicId: ").expect("TopicId column");
    assert_eq!(id.len(), 22, "Kafka's base64 topic id: {id}");
    assert_eq!(&head[2..4], ["PartitionCount: 3", "ReplicationFactor: 1"]);
    assert!(head[4].starts_with("Configs: "), "{}", lines[0]);
    for (p, line) in lines[1..].iter().enumerate() {
        assert_eq!(
            *line,
            format!("\tTopic: orders\tPartition: {p}\tLeader: 0\tReplicas: 0\tIsr: 0")
        );
    }
    let missing = topics(&broker, &["--describe", "--topic", "nope"]);
    assert_eq!(missing.code, 1);
    assert!(missing
        .stderr
        .contains("Topic 'nope' does not exist as expected"));

    // Keyed lines, long enough that the producer sends several requests.
    let filler = "x".repeat(120);
    let mut input = String::new();
    for i in 0..400 {
        input.push_str(&format!("key{}:{i:04}-{filler}\n", i % 7));
    }
    ok(ringtail(
        &[
            "console-producer",
            "--bootstrap-server",
            &broker.addr,
            "--topic",
            "orders",
            "--property",
            "parse.key=true",
            "--property",
            "key.separator=:",
            "--producer-property",
            "acks=all",
        ],
        &input,
    ));

    let consumed = consume_all(&broker, "orders", 400);
    assert_eq!(consumed.len(), 400);
    let values: BTreeSet<&str> = consumed.iter().map(|c| c.value.as_str()).collect();
    assert_eq!(values.len(), 400, "every line exactly once");
    let mut partitions_of_key: BTreeMap<&str, BTreeSet<i32>> = BTreeMap::new();
    let mut by_partition: BTreeMap<i32, Vec<&Consumed>> = BTreeMap::new();
    for c in &consumed {
        partitions_of_key
            .entry(&c.key)
            .or_default()
            .insert(c.partition);
        by_partition.entry(c.partition).or_default().push(c);
        let expected = partition_for_key(c.key.as_bytes(), 3);
        assert_eq!(c.partition, expected, "murmur2 partition of {}", c.key);
    }
    assert_eq!(partitions_of_key.len(), 7);
    assert!(partitions_of_key.values().all(|p| p.len() == 1));
    for (p, records) in &by_partition {
        // Offsets 0, 1, 2, ... and lines in the order they were written.
        let offsets: Vec<i64> = records.iter().map(|c| c.offset).collect();
        assert_eq!(
            offsets,
            (0..records.len() as i64).collect::<Vec<_>>(),
            "partition {p}"
        );
        let seq: Vec<&str> = records.iter().map(|c| &c.value[..4]).collect();
        let mut sorted = seq.clone();
        sorted.sort_unstable();
        assert_eq!(seq, sorted, "partition {p} keeps the produced order");
    }

    // Unkeyed lines, and reading one partition from an offset.
    let out = ok(ringtail(
        &[
            "console-producer",
            "--bootstrap-server",
            &broker.addr,
            "--topic",
            "audit",
        ],
        "first\nsecond\nthird\n",
    ));
    assert_eq!(out.stdout, "");
    let out = ok(ringtail(
        &[
            "console-consumer",
            "--bootstrap-server",
            &broker.addr,
            "--topic",
            "audit",
            "--partition",
            "0",
            "--offset",
            "1",
            "--max-messages",
            "2",
            "--timeout-ms",
            "20000",
        ],
        "",
    ));
    assert_eq!(out.stdout, "second\nthird\n");

    // From the log end, nothing new arrives: --timeout-ms ends it.
    let started = Instant::now();
    let out = ok(ringtail(
        &[
            "console-consumer",
            "--bootstrap-server",
            &broker.addr,
            "--topic",
            "audit",
            "--timeout-ms",
            "700",
        ],
        "",
    ));
    assert_eq!(out.stdout, "");
    assert!(out.stderr.contains("Processed a total of 0 messages"));
    assert!(started.elapsed() < Duration::from_secs(10));

    ok(topics(
        &broker,
        &["--alter", "--topic", "orders", "--partitions", "5"],
    ));
    let describe = ok(topics(&broker, &["--describe", "--topic", "orders"]));
    assert!(
        describe.stdout.contains("\tPartitionCount: 5\t"),
        "{}",
        describe.stdout
    );
    assert_eq!(describe.stdout.lines().count(), 6);
    let shrink = topics(
        &broker,
        &["--alter", "--topic", "orders", "--partitions", "2"],
    );
    assert_eq!(shrink.code, 1);
    assert!(
        shrink.stderr.contains("INVALID_PARTITIONS"),
        "{}",
        shrink.stderr
    );

    ok(topics(&broker, &["--delete", "--topic", "orders"]));
    assert_eq!(ok(topics(&broker, &["--list"])).stdout, "audit\n");
    let gone = topics(&broker, &["--delete", "--topic", "orders"]);
    assert_eq!(gone.code, 1);
    ok(topics(
        &broker,
        &["--delete", "--topic", "orders", "--if-exists"],
    ));
}

/// Rewrites an uncompressed batch as one compressed with `codec` (the
/// attribute id) over `records`, as a producer sends it.
fn compressed_batch(plain: &[u8], codec: i16, records: &[u8]) -> Vec<u8> {
    let mut out = plain[..RECORD_BATCH_OVERHEAD].to_vec();
    out.extend_from_slice(records);
    let length = (out.len() - 12) as i32;
    out[8..12].copy_from_slice(&length.to_be_bytes());
    out[21..23].copy_from_slice(&codec.to_be_bytes());
    patch::update_crc(&mut out);
    out
}

/// Batches compressed by other clients come back decompressed.
#[test]
fn consumer_reads_compressed_batches() {
    let broker = Broker::start("codecs");
    ok(topics(
        &broker,
        &["--create", "--topic", "zipped", "--partitions", "1"],
    ));

    let mut client = Client::bootstrap(&broker.addr, "admin-cli-test").expect("connect");
    let mut expected = Vec::new();
    for (codec, name) in [(1i16, "gzip"), (2, "snappy"), (3, "lz4"), (4, "zstd")] {
        let mut builder = BatchBuilder::new();
        for i in 0..3 {
            let value = format!("{name}-{i}");
            builder.append(1_700_000_000_000, None, Some(value.as_bytes()), &[]);
            expected.push(value);
        }
        let plain = builder.build();
        let records = &plain[RECORD_BATCH_OVERHEAD..];
        let data = match codec {
            1 => {
                let mut e =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(records).expect("gzip");
                e.finish().expect("gzip")
            }
            // Kafka's Java producer frames snappy the xerial way.
            2 => {
                let block = snap::raw::Encoder::new()
                    .compress_vec(records)
                    .expect("snappy");
                let mut out = b"\x82SNAPPY\x00".to_vec();
                out.extend_from_slice(&1i32.to_be_bytes());
                out.extend_from_slice(&1i32.to_be_bytes());
                out.extend_from_slice(&(block.len() as i32).to_be_bytes());
                out.extend_from_slice(&block);
                out
            }
            3 => {
                let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
                e.write_all(records).expect("lz4");
                e.finish().expect("lz4")
            }
            _ => zstd::encode_all(records, 3).expect("zstd"),
        };
        let batch = compressed_batch(&plain, codec, &data);
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("zipped")))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(Bytes::from(batch)))])]);
        let response = client.send(&request).expect("produce");
        let code = response.responses[0].partition_responses[0].error_code;
        assert_eq!(code, 0, "{name} batch refused with code {code}");
    }

    let out = ok(ringtail(
        &[
            "console-consumer",
            "--bootstrap-server",
            &broker.addr,
            "--topic",
            "zipped",
            "--from-beginning",
            "--max-messages",
            "12",
            "--timeout-ms",
            "20000",
        ],
        "",
    ));
    assert_eq!(out.stdout, expected.join("\n") + "\n");
}

#[test]
fn refusals_are_clear() {
    let broker = Broker::start("refusals");
    let gzip = ringtail(
        &[
            "console-producer",
            "--bootstrap-server",
            &broker.addr,
            "--topic",
            "t",
            "--compression-codec",
            "gzip",
        ],
        "x\n",
    );
    assert_eq!(gzip.code, 1);
    assert!(
        gzip.stderr
            .contains("compression codec gzip is not supported"),
        "{}",
        gzip.stderr
    );
    let group = ringtail(
        &[
            "console-consumer",
            "--bootstrap-server",
            &broker.addr,
            "--topic",
            "t",
            "--group",
            "g",
            "--partition",
            "0",
        ],
        "",
    );
    assert_eq!(group.code, 1);
    assert!(
        group
            .stderr
            .contains("Options group and partition cannot be specified together."),
        "{}",
        group.stderr
    );

    ok(topics(
        &broker,
        &["--create", "--topic", "keyed", "--partitions", "2"],
    ));
    let bad = ringtail(
        &[
            "console-producer",
            "--bootstrap-server",
            &broker.addr,
            "--topic",
            "keyed",
            "--property",
            "parse.key=true",
        ],
        "k\tv\nno-separator\n",
    );
    assert_eq!(bad.code, 1);
    assert!(
        bad.stderr
            .contains("No key separator found on line number 2: 'no-separator'"),
        "{}",
        bad.stderr
    );
    // The line before the bad one was still sent.
    let out = ok(ringtail(
        &[
            "console-consumer",
            "--bootstrap-server",
            &broker.addr,
            "--topic",
            "keyed",
            "--from-beginning",
            "--max-messages",
            "1",
            "--timeout-ms",
            "20000",
            "--property",
            "print.key=true",
        ],
        "",
    ));
    assert_eq!(out.stdout, "k\tv\n");

    let unreachable = ringtail(
        &["topics", "--bootstrap-server", "127.0.0.1:1", "--list"],
        "",
    );
    assert_eq!(unreachable.code, 1);
    assert!(unreachable
        .stderr
        .starts_with("Error while executing topic command : cannot connect to 127.0.0.1:1"));
}

/// Topic configs change what the broker accepts and stores: compacted
/// topics refuse keyless records (INVALID_RECORD, as Kafka's LogValidator),
/// LogAppendTime topics carry the broker's clock.
#[test]
fn topic_configs_shape_what_is_stored() {
    let broker = Broker::start("configs");
    let out = topics(
        &broker,
        &[
            "--create",
            "--topic",
            "compacted",
            "--config",
            "cleanup.policy=compact",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let producer = [
        "console-producer",
        "--bootstrap-server",
        &broker.addr,
        "--topic",
        "compacted",
    ];
    let out = ringtail(&producer, "no-key\n");
    assert_ne!(
        out.code, 0,
        "a keyless record was accepted by a compacted topic"
    );
    assert!(out.stderr.contains("INVALID_RECORD"), "{}", out.stderr);
    let keyed = [&producer[..], &["--property", "parse.key=true"]].concat();
    let out = ringtail(&keyed, "k\tv\n");
    assert_eq!(out.code, 0, "{}", out.stderr);

    let out = topics(
        &broker,
        &[
            "--create",
            "--topic",
            "stamped",
            "--config",
            "message.timestamp.type=LogAppendTime",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let out = ringtail(
        &[
            "console-producer",
            "--bootstrap-server",
            &broker.addr,
            "--topic",
            "stamped",
        ],
        "hello\n",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = ringtail(
        &[
            "console-consumer",
            "--bootstrap-server",
            &broker.addr,
            "--topic",
            "stamped",
            "--from-beginning",
            "--max-messages",
            "1",
            "--property",
            "print.timestamp=true",
        ],
        "",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let stamp: i64 = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("LogAppendTime:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no LogAppendTime in {:?}", out.stdout));
    assert!(
        stamp >= before,
        "broker time {stamp} before the produce at {before}"
    );
}
