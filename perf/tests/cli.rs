//! Black-box tests of the `ringtail-perf` binary against a real broker:
//! the broker binary from the same target directory (built first, a no-op
//! when it is up to date) on a free port with a temporary data directory.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ringtail_perf::consume::ConsumeReport;
use ringtail_perf::stats::{parse_line, ParsedLine};

/// target/<profile>, from this test executable's path (target/<profile>/deps/cli-*).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps")
        .to_path_buf()
}

/// The broker binary of this profile, brought up to date once per run.
fn broker_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let profile = profile_dir();
        let target = profile.parent().expect("target dir").to_path_buf();
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .args(["build", "-q", "-p", "ringtail", "--bin", "ringtail"])
            .arg("--manifest-path")
            .arg(&manifest)
            .arg("--target-dir")
            .arg(&target);
        match profile.file_name().and_then(|n| n.to_str()) {
            Some("debug") => {}
            Some("release") => {
                build.arg("--release");
            }
            Some(other) => {
                build.args(["--profile", other]);
            }
            None => panic!("no profile directory name in {}", profile.display()),
        }
        let status = build.status().expect("cargo runs");
        let binary = profile.join("ringtail");
        assert!(
            status.success() || binary.exists(),
            "building the broker failed and {} does not exist",
            binary.display()
        );
        binary
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A broker process, stopped with SIGTERM (and its data removed) on drop.
struct Broker {
    child: Child,
    dir: PathBuf,
    bootstrap: String,
}

impl Broker {
    /// Starts a broker on a free port. The port is free when picked, but
    /// another test's outgoing connection can take it before the broker
    /// binds; the broker then exits naming the listener, and this retries
    /// on a new port.
    fn start(name: &str) -> Broker {
        for _ in 0..5 {
            if let Some(broker) = Broker::try_start(name) {
                return broker;
            }
        }
        panic!("broker {name}: every port tried was taken before it could bind");
    }

    fn try_start(name: &str) -> Option<Broker> {
        let dir = std::env::temp_dir().join(format!(
            "ringtail-perf-{name}-{}-{}",
            std::process::id(),
            STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let port = free_port();
        let bootstrap = format!("127.0.0.1:{port}");
        let child = Command::new(broker_binary())
            .arg("broker")
            .arg("--override")
            .arg(format!("log.dirs={}", dir.join("data").display()))
            .arg("--override")
            .arg(format!("listeners=PLAINTEXT://{bootstrap}"))
            .args(["--override", "shard.count=1"])
            .args(["--override", "num.partitions=4"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(broker_log(&dir)).expect("broker log"))
            .spawn()
            .expect("broker starts");
        let mut broker = Broker {
            child,
            dir,
            bootstrap,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(&broker.bootstrap).is_err() {
            let log = std::fs::read_to_string(broker_log(&broker.dir)).unwrap_or_default();
            if let Ok(Some(status)) = broker.child.try_wait() {
                if log.contains(&format!("cannot listen on {}", broker.bootstrap)) {
                    return None; // dropped: data removed
                }
                panic!("broker exited with {status} before listening:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "broker did not listen in 60 s:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(broker)
    }
}

static STARTS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn broker_log(dir: &std::path::Path) -> PathBuf {
    dir.join("broker.log")
}

impl Drop for Broker {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn perf(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_ringtail-perf"))
        .args(args)
        .output()
        .expect("ringtail-perf runs");
    eprintln!(
        "$ ringtail-perf {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout_lines(output: &Output) -> Vec<String> {
    String::from_utf8(output.stdout.clone())
        .expect("utf-8 output")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Runs `produce` and returns its summary line, parsed.
fn produce(broker: &Broker, topic: &str, records: u64, throughput: &str, acks: &str) -> ParsedLine {
    let n = records.to_string();
    let output = perf(&[
        "produce",
        "--bootstrap-server",
        &broker.bootstrap,
        "--topic",
        topic,
        "--num-records",
        &n,
        "--record-size",
        "200",
        "--throughput",
        throughput,
        "--acks",
        acks,
        "--partitions",
        "4",
        "--producers",
        "2",
        "--create-topic",
    ]);
    assert!(output.status.success(), "produce failed");
    let lines = stdout_lines(&output);
    let last = lines.last().expect("a summary line");
    let summary = parse_line(last).unwrap_or_else(|| panic!("unparsable summary {last:?}"));
    assert_eq!(summary.records, records);
    assert_eq!(summary.verb, "sent");
    assert_eq!(summary.percentiles_ms.len(), 4);
    assert!(summary.percentiles_ms.windows(2).all(|w| w[0] <= w[1]));
    assert!(summary.max_ms >= summary.percentiles_ms[3]);
    for line in &lines[..lines.len() - 1] {
        let progress = parse_line(line).unwrap_or_else(|| panic!("unparsable {line:?}"));
        assert!(progress.percentiles_ms.is_empty());
    }
    summary
}

/// Runs `consume` and returns the report row's columns.
fn consume(broker: &Broker, topic: &str, messages: u64, threads: &str) -> Vec<String> {
    let n = messages.to_string();
    let output = perf(&[
        "consume",
        "--bootstrap-server",
        &broker.bootstrap,
        "--topic",
        topic,
        "--messages",
        &n,
        "--from-beginning",
        "--threads",
        threads,
        "--timeout",
        "5000",
    ]);
    assert!(output.status.success(), "consume failed");
    let lines = stdout_lines(&output);
    assert_eq!(lines.len(), 2, "header and row: {lines:?}");
    assert_eq!(lines[0], ConsumeReport::HEADER);
    let row: Vec<String> = lines[1].split(", ").map(str::to_owned).collect();
    assert_eq!(row.len(), 10, "{row:?}");
    row
}

#[test]
fn produce_with_acks_1_and_all_then_consume_everything() {
    let broker = Broker::start("acks");
    let sent_1 = produce(&broker, "perf-acks", 3000, "-1", "1");
    let sent_all = produce(&broker, "perf-acks", 3000, "-1", "all");
    assert!(sent_1.records_per_sec > 0.0 && sent_all.records_per_sec > 0.0);

    let row = consume(&broker, "perf-acks", 6000, "2");
    assert_eq!(row[4], "6000", "data.consumed.in.nMsg");
    let mb: f64 = row[2].parse().expect("MB column");
    let expected_mb = 6000.0 * 200.0 / (1024.0 * 1024.0);
    assert!((mb - expected_mb).abs() < 1e-3, "{mb} MB consumed");
    for column in &row[3..] {
        column.parse::<f64>().expect("numeric column");
    }
}

#[test]
fn open_loop_holds_the_rate_and_consume_stops_at_the_count() {
    let broker = Broker::start("rate");
    let started = Instant::now();
    let sent = produce(&broker, "perf-rate", 3000, "2000", "1");
    // 3000 records at 2000/s take 1.5 s however fast the broker is.
    assert!(started.elapsed() >= Duration::from_millis(1400));
    assert!(
        sent.records_per_sec <= 2000.0 * 1.1,
        "{} records/sec",
        sent.records_per_sec
    );
    // Asking for fewer than there are stops at (about) the count.
    let row = consume(&broker, "perf-rate", 1000, "1");
    let got: u64 = row[4].parse().expect("count");
    assert!((1000..=3000).contains(&got), "{got}");
}

#[test]
fn end_to_end_reports_both_latencies() {
    let broker = Broker::start("e2e");
    let output = perf(&[
        "end-to-end",
        "--bootstrap-server",
        &broker.bootstrap,
        "--topic",
        "perf-e2e",
        "--num-records",
        "2000",
        "--record-size",
        "64",
        "--throughput",
        "2000",
        "--create-topic",
        "--partitions",
        "2",
    ]);
    assert!(output.status.success(), "end-to-end failed");
    let lines = stdout_lines(&output);
    let parsed: Vec<ParsedLine> = lines
        .iter()
        .map(|l| parse_line(l).unwrap_or_else(|| panic!("unparsable {l:?}")))
        .collect();
    let sent = parsed
        .iter()
        .find(|p| p.verb == "sent" && !p.percentiles_ms.is_empty());
    let received = parsed.iter().find(|p| p.verb == "received");
    assert_eq!(sent.expect("a sent summary").records, 2000);
    let received = received.expect("a received summary");
    assert_eq!(received.records, 2000);
    assert_eq!(received.percentiles_ms.len(), 4);
}

#[test]
fn bad_arguments_fail_cleanly() {
    let broker = Broker::start("args");
    let output = perf(&[
        "produce",
        "--bootstrap-server",
        &broker.bootstrap,
        "--topic",
        "perf-missing",
        "--num-records",
        "10",
        "--record-size",
        "10",
        "--throughput",
        "-1",
        "--acks",
        "2",
    ]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--acks"));
}

/// The request-shape line a produce run prints on stderr:
/// (requests, batches per request).
fn request_shape(output: &Output) -> (u64, f64) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains(" Produce requests, "))
        .unwrap_or_else(|| panic!("no request shape in {stderr}"));
    let words: Vec<&str> = line.split([' ', '(']).collect();
    let requests = words[0].parse().expect("request count");
    let per = words
        .iter()
        .position(|w| w.starts_with("batches/request"))
        .map(|i| words[i - 1].parse().expect("batches per request"))
        .expect("batches/request");
    (requests, per)
}

#[test]
fn client_defaults_set_the_request_shape() {
    let broker = Broker::start("shape");
    let run = |topic: &str, extra: &[&str]| {
        let mut args = vec![
            "produce",
            "--bootstrap-server",
            &broker.bootstrap,
            "--topic",
            topic,
            "--num-records",
            "4000",
            "--record-size",
            "1024",
            "--throughput",
            "-1",
            "--partitions",
            "4",
            "--create-topic",
        ];
        args.extend_from_slice(extra);
        let output = perf(&args);
        assert!(output.status.success(), "produce {extra:?} failed");
        let summary = parse_line(stdout_lines(&output).last().expect("summary")).expect("parses");
        assert_eq!(summary.records, 4000);
        output
    };
    // librdkafka's shape: one partition's batch per request, batches up to
    // 1 MB; 4000 KiB of records cannot go in fewer than 4 requests.
    let rdkafka = run("shape-rdkafka", &["--defaults", "librdkafka"]);
    let stderr = String::from_utf8_lossy(&rdkafka.stderr);
    assert!(stderr.contains("batch.size=1000000"), "{stderr}");
    assert!(stderr.contains("max.in.flight=1000000"), "{stderr}");
    let (requests, per) = request_shape(&rdkafka);
    assert_eq!(per, 1.0);
    assert!(requests >= 4, "{requests} requests");
    // Java's shape, records spread over the partitions record by record:
    // each request carries a batch of every partition.
    let java = run("shape-java", &["--partitioner", "round-robin"]);
    let (_, per) = request_shape(&java);
    assert!(per > 1.0, "{per} batches/request");
}
