//! Prometheus metrics of a real broker process, read by real tools.
//!
//! - `scrape_is_promtool_clean_and_counts_real_traffic`: kcat produces and
//!   consumes with a group; every scrape passes `promtool check metrics`
//!   with no warning, and the counters and gauges agree with what kcat did
//!   and with the log on disk.
//! - `dashboard_and_rules_use_only_exported_metrics`: `promtool check
//!   rules` / `check config` / `test rules` on deploy/prometheus, and
//!   every metric name the Grafana dashboard and the alert rules query
//!   appears in a real scrape.
//! - `prometheus_server_sees_throughput_and_lag`: a real Prometheus
//!   server (Debian's `prometheus`) scrapes the broker every second; its
//!   query API shows bytes in and out moving and the consumer group's lag
//!   going from 200 to 0 as the group catches up.
//!
//! promtool, prometheus and kcat come from Debian (tests/run-all.sh
//! installs them). A missing tool fails the test with that advice.

#[path = "clients/harness.rs"]
mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use harness::{run_with_timeout, temp_dir, Broker};

const TOOL_TIMEOUT: Duration = Duration::from_secs(60);
const INSTALL_HINT: &str = "run tests/run-all.sh, which installs kcat and prometheus \
     (promtool) from Debian";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// A broker with its `/metrics` endpoint on a free loopback port.
struct MetricsBroker {
    broker: Broker,
    metrics_port: u16,
    scratch: PathBuf,
}

impl MetricsBroker {
    fn start(name: &str) -> MetricsBroker {
        let metrics_port = free_port();
        let listen = format!("metrics.listen=127.0.0.1:{metrics_port}");
        let broker = Broker::start(name, &[&listen, "num.partitions=2"]);
        MetricsBroker {
            broker,
            metrics_port,
            scratch: temp_dir(&format!("{name}-scratch")),
        }
    }

    /// GET `path` from the metrics endpoint: (status line, content type, body).
    fn get(&self, path: &str) -> (String, String, String) {
        http_get(&format!("127.0.0.1:{}", self.metrics_port), path)
    }

    /// A scrape's body, after checking status and content type.
    fn scrape(&self) -> String {
        let (status, content_type, body) = self.get("/metrics");
        assert!(
            status.contains(" 200 "),
            "GET /metrics: {status}\n{body}\n{}",
            self.broker.log()
        );
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "content type {content_type:?}"
        );
        body
    }

    /// Runs kcat with `args`; fails the test with its output unless it
    /// succeeds.
    fn kcat(&self, args: &[&str]) -> String {
        let mut command = Command::new("kcat");
        command.arg("-b").arg(self.broker.bootstrap()).args(args);
        let out = run_with_timeout(&mut command, TOOL_TIMEOUT, &self.scratch);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "kcat {args:?} failed ({}): {stderr}\n{}",
            out.status,
            self.broker.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Creates `topic` with `partitions` through the admin CLI.
    fn create_topic(&self, topic: &str, partitions: u32) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ringtail"));
        command
            .args(["topics", "--bootstrap-server", &self.broker.bootstrap()])
            .args(["--create", "--topic", topic, "--partitions"])
            .arg(partitions.to_string());
        let out = run_with_timeout(&mut command, TOOL_TIMEOUT, &self.scratch);
        assert!(
            out.status.success(),
            "topics --create {topic}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Scrapes until `name` sums to `want` (the coordinator publishes at
    /// its first tick after start-up); returns that scrape.
    fn scrape_until(&self, name: &str, want: f64) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let body = self.scrape();
            if sum(&samples(&body), name, &[]) == want {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "{name} never reached {want}:\n{body}\n{}",
                self.broker.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Produces `count` messages of ~100 bytes to `topic` (acks=all).
    fn produce(&self, topic: &str, count: usize) {
        let path = self.scratch.join(format!("{topic}-{count}.txt"));
        let lines: String = (0..count)
            .map(|i| format!("message {i:05} {}\n", "x".repeat(80)))
            .collect();
        std::fs::write(&path, lines).expect("write messages");
        let file = path.to_str().expect("utf-8 path");
        self.kcat(&["-P", "-t", topic, "-X", "acks=all", "-l", file]);
    }

    /// Consumes exactly `count` messages of `topic` as `group` (which
    /// commits them when kcat closes).
    fn consume(&self, topic: &str, group: &str, count: usize) -> usize {
        let count_arg = count.to_string();
        let out = self.kcat(&[
            "-C",
            "-G",
            group,
            "-X",
            "auto.offset.reset=earliest",
            "-c",
            &count_arg,
            topic,
        ]);
        out.lines().filter(|l| l.starts_with("message ")).count()
    }
}

fn http_get(addr: &str, path: &str) -> (String, String, String) {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read answer");
    let text = String::from_utf8(raw).expect("utf-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP head");
    let status = head.lines().next().unwrap_or_default().to_string();
    let content_type = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("Content-Type: ")
                .or(l.strip_prefix("content-type: "))
        })
        .unwrap_or_default()
        .to_string();
    (status, content_type, body.to_string())
}

/// Runs a Debian tool, failing (never skipping) when it is missing.
fn tool(program: &str, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} cannot run ({e}): {INSTALL_HINT}"));
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(input);
    child.wait_with_output().expect("wait")
}

/// `promtool check metrics` on a scrape: must pass with no output at all
/// (a lint warning is printed and fails the test).
fn promtool_check_metrics(body: &str) {
    let out = tool("promtool", &["check", "metrics"], Some(body));
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && printed.trim().is_empty(),
        "promtool check metrics ({}):\n{printed}\n---- scrape ----\n{body}",
        out.status
    );
}

/// Samples of a scrape: `name{labels}` (labels as written) -> value.
fn samples(body: &str) -> BTreeMap<String, f64> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("sample line");
            (
                series.to_string(),
                value.parse().unwrap_or_else(|_| panic!("value of {l}")),
            )
        })
        .collect()
}

/// Sum of the samples of `name` whose labels contain every `filters` pair.
fn sum(samples: &BTreeMap<String, f64>, name: &str, filters: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(series, _)| {
            let (n, labels) = series.split_once('{').unwrap_or((series, ""));
            n == name
                && filters
                    .iter()
                    .all(|(k, v)| labels.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, v)| v)
        .sum()
}

fn names(samples: &BTreeMap<String, f64>) -> BTreeSet<String> {
    samples
        .keys()
        .map(|s| s.split('{').next().unwrap_or(s).to_string())
        .collect()
}

#[test]
fn scrape_is_promtool_clean_and_counts_real_traffic() {
    let b = MetricsBroker::start("metrics-scrape");
    let idle = b.scrape_until("ringtail_coordinator_in_quorum", 1.0);
    promtool_check_metrics(&idle);
    let s = samples(&idle);
    assert_eq!(sum(&s, "ringtail_coordinator_in_quorum", &[]), 1.0);
    assert_eq!(
        sum(&s, "ringtail_coordinator_role", &[("role", "leader")]),
        1.0
    );
    assert!(sum(&s, "ringtail_coordinator_elections_total", &[]) >= 1.0);
    assert!(sum(&s, "process_resident_memory_bytes", &[]) > 1e6);
    assert!(sum(&s, "ringtail_log_dir_filesystem_size_bytes", &[]) > 0.0);
    assert_eq!(sum(&s, "ringtail_metrics_shards_missing", &[]), 0.0);
    assert_eq!(b.get("/nothing").0.split(' ').nth(1), Some("404"));

    // A group reading a one-partition topic has a committed offset in
    // every partition it read, so its lag is exact.
    b.create_topic("orders", 2);
    b.create_topic("audit", 1);
    b.produce("orders", 500);
    b.produce("audit", 500);
    assert_eq!(b.consume("audit", "billing", 300), 300);
    // An out-of-range fetch is answered with an error code, counted.
    b.kcat(&[
        "-C", "-t", "orders", "-p", "0", "-o", "1000000", "-c", "1", "-e",
    ]);

    // A long poll (fetch.min.bytes above what is there) reads the
    // partition before and after its wait; only the answer counts.
    b.create_topic("single", 1);
    b.produce("single", 10);
    let read = b.kcat(&[
        "-C",
        "-t",
        "single",
        "-o",
        "beginning",
        "-e",
        "-X",
        "fetch.min.bytes=1000000",
        "-X",
        "fetch.wait.max.ms=300",
    ]);
    assert_eq!(
        read.lines().filter(|l| l.starts_with("message ")).count(),
        10
    );

    let body = b.scrape();
    promtool_check_metrics(&body);
    let s = samples(&body);
    let single = [("topic", "single")];
    assert_eq!(
        sum(&s, "ringtail_partition_records_out_total", &single),
        10.0
    );
    assert_eq!(
        sum(&s, "ringtail_partition_bytes_out_total", &single),
        sum(&s, "ringtail_partition_bytes_in_total", &single)
    );
    let topic = [("topic", "orders")];
    // What producers wrote: records by count, bytes as stored on disk.
    assert_eq!(
        sum(&s, "ringtail_partition_records_in_total", &topic),
        500.0
    );
    assert_eq!(sum(&s, "ringtail_partition_log_end_offset", &topic), 500.0);
    assert_eq!(sum(&s, "ringtail_partition_high_watermark", &topic), 500.0);
    assert_eq!(sum(&s, "ringtail_partition_log_start_offset", &topic), 0.0);
    let on_disk: u64 = (0..2)
        .map(|p| {
            std::fs::metadata(
                b.broker
                    .partition_dir("orders", p)
                    .join("00000000000000000000.log"),
            )
            .map_or(0, |m| m.len())
        })
        .sum();
    assert!(on_disk > 500 * 80);
    assert_eq!(
        sum(&s, "ringtail_partition_bytes_in_total", &topic),
        on_disk as f64
    );
    assert_eq!(
        sum(&s, "ringtail_partition_size_bytes", &topic),
        on_disk as f64
    );
    assert_eq!(sum(&s, "ringtail_partition_segments", &topic), 2.0);
    // Consumers read at least what kcat printed (it prefetches more).
    let audit = [("topic", "audit")];
    assert!(sum(&s, "ringtail_partition_records_out_total", &audit) >= 300.0);
    assert!(sum(&s, "ringtail_partition_bytes_out_total", &audit) >= 300.0 * 80.0);
    assert_eq!(sum(&s, "ringtail_partition_records_out_total", &topic), 0.0);
    // The group committed 300 and is 200 behind.
    let group = [("consumergroup", "billing"), ("topic", "audit")];
    assert_eq!(sum(&s, "kafka_consumergroup_current_offset", &group), 300.0);
    assert_eq!(sum(&s, "kafka_consumergroup_lag", &group), 200.0);
    // Requests, errors, latency histograms.
    assert!(sum(&s, "ringtail_requests_total", &[("api", "Produce")]) >= 1.0);
    assert!(sum(&s, "ringtail_requests_total", &[("api", "Fetch")]) >= 2.0);
    assert!(sum(&s, "ringtail_requests_total", &[("api", "OffsetCommit")]) >= 1.0);
    assert!(
        sum(
            &s,
            "ringtail_request_errors_total",
            &[("api", "Fetch"), ("error", "OFFSET_OUT_OF_RANGE")]
        ) >= 1.0
    );
    assert_eq!(
        sum(
            &s,
            "ringtail_request_duration_seconds_count",
            &[("api", "Produce")]
        ),
        sum(&s, "ringtail_requests_total", &[("api", "Produce")])
    );
    assert_eq!(
        sum(
            &s,
            "ringtail_request_duration_seconds_bucket",
            &[("api", "Produce"), ("le", "+Inf")]
        ),
        sum(&s, "ringtail_requests_total", &[("api", "Produce")])
    );
    // acks=all made the broker fdatasync; io_uring did the work.
    assert!(sum(&s, "ringtail_fdatasync_duration_seconds_count", &[]) >= 1.0);
    assert!(sum(&s, "ringtail_fdatasync_duration_seconds_sum", &[]) > 0.0);
    assert!(sum(&s, "ringtail_io_uring_submissions_total", &[]) > 0.0);
    assert!(sum(&s, "ringtail_io_uring_completions_total", &[]) > 0.0);
    assert!(sum(&s, "ringtail_io_bytes_total", &[("op", "socket_receive")]) > 2.0 * on_disk as f64);
    assert!(sum(&s, "ringtail_shard_busy_seconds_total", &[]) > 0.0);
    // kcat opened at least three connections (producer, group consumer,
    // plain consumer), each to bootstrap and to the broker.
    assert!(sum(&s, "ringtail_connections_accepted_total", &[]) >= 3.0);
    assert_eq!(sum(&s, "ringtail_partitions_offline", &[]), 0.0);
    assert_eq!(sum(&s, "ringtail_partitions_under_replicated", &[]), 0.0);
    assert_eq!(sum(&s, "ringtail_partition_in_sync_replicas", &topic), 2.0);
    // Counters never go backwards between scrapes.
    let before = samples(&idle);
    for (series, v) in &before {
        if series.contains("_total") && s.contains_key(series) {
            assert!(s[series] >= *v, "{series} went from {v} to {}", s[series]);
        }
    }
}

/// Metric names a PromQL expression refers to: identifiers of the
/// families Ringtail exports (`ringtail_`, `kafka_`, `process_`).
fn metric_names_in(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut word = String::new();
    for c in expr.chars().chain([' ']) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
            continue;
        }
        if ["ringtail_", "kafka_", "process_"]
            .iter()
            .any(|p| word.starts_with(p))
        {
            out.insert(std::mem::take(&mut word));
        }
        word.clear();
    }
    out
}

/// Every string under an `expr` or `query`/`definition` key of the JSON.
fn dashboard_queries(text: &str) -> Vec<String> {
    // The dashboard is plain JSON; the values we want are strings after
    // one of these keys. A tiny scanner keeps the test free of a JSON
    // dependency.
    let mut out = Vec::new();
    for key in [
        "\"expr\": \"",
        "\"definition\": \"",
        "\"query\": \"label_values",
    ] {
        let mut rest = text;
        while let Some(at) = rest.find(key) {
            let start = at + key.len();
            let tail = &rest[start..];
            let mut end = 0;
            let mut escaped = false;
            for (i, c) in tail.char_indices() {
                match c {
                    '\\' if !escaped => escaped = true,
                    '"' if !escaped => {
                        end = i;
                        break;
                    }
                    _ => escaped = false,
                }
            }
            out.push(tail[..end].replace("\\\"", "\""));
            rest = &tail[end..];
        }
    }
    out
}

#[test]
fn dashboard_and_rules_use_only_exported_metrics() {
    let deploy = repo().join("deploy/prometheus");
    for args in [
        vec!["check", "rules", "ringtail.rules.yml"],
        vec!["check", "config", "prometheus.yml"],
        vec!["test", "rules", "ringtail.rules.test.yml"],
    ] {
        let out = Command::new("promtool")
            .args(&args)
            .current_dir(&deploy)
            .output()
            .unwrap_or_else(|e| panic!("promtool cannot run ({e}): {INSTALL_HINT}"));
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // A scrape after traffic that exercises every family: produce,
    // consume with a group, one error.
    let b = MetricsBroker::start("metrics-names");
    b.produce("events", 50);
    assert_eq!(b.consume("events", "readers", 20), 20);
    b.kcat(&[
        "-C", "-t", "events", "-p", "0", "-o", "1000000", "-c", "1", "-e",
    ]);
    let exported = names(&samples(&b.scrape()));

    let dashboard = std::fs::read_to_string(repo().join("deploy/grafana/ringtail.json"))
        .expect("deploy/grafana/ringtail.json");
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 20, "dashboard queries: {queries:?}");
    let rules = std::fs::read_to_string(deploy.join("ringtail.rules.yml")).expect("rules");
    let mut used = BTreeSet::new();
    for q in queries.iter().map(String::as_str).chain([rules.as_str()]) {
        used.extend(metric_names_in(q));
    }
    for name in [
        "ringtail_partition_bytes_in_total",
        "ringtail_request_duration_seconds_bucket",
        "kafka_consumergroup_lag",
        "ringtail_partitions_under_replicated",
        "ringtail_coordinator_in_quorum",
    ] {
        assert!(
            used.contains(name),
            "the dashboard or rules never use {name}"
        );
    }
    let missing: Vec<&String> = used.iter().filter(|n| !exported.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "the dashboard or alert rules query names no scrape has: {missing:?}\nexported: {exported:?}"
    );
}

/// A Prometheus server on a free loopback port with its own storage,
/// scraping one target every second; killed when dropped.
struct Prometheus {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Prometheus {
    fn start(dir: &Path, target: &str) -> Prometheus {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: ringtail\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("write prometheus.yml");
        let port = free_port();
        let log = dir.join("prometheus.log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).expect("log"))
            .stderr(
                std::fs::File::options()
                    .append(true)
                    .open(&log)
                    .expect("log"),
            )
            .spawn()
            .unwrap_or_else(|e| panic!("prometheus cannot run ({e}): {INSTALL_HINT}"));
        let p = Prometheus { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = TcpStream::connect(("127.0.0.1", port)).is_ok()
                && http_get(&p.addr(), "/-/ready").0.contains(" 200 ");
            if ready {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready in 30 s:\n{}",
                harness::tail(&p.log, 8192)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// One instant query; the values of its result series (empty when
    /// the result is empty).
    fn query(&self, promql: &str) -> Vec<f64> {
        let encoded: String = promql
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let (status, _, body) = http_get(&self.addr(), &format!("/api/v1/query?query={encoded}"));
        assert!(
            status.contains(" 200 ") && body.contains("\"status\":\"success\""),
            "query {promql}: {status}\n{body}"
        );
        // Each vector sample ends with `"value":[<time>,"<value>"]`.
        body.match_indices("\"value\":[")
            .filter_map(|(at, key)| {
                let rest = &body[at + key.len()..];
                let quoted = rest.split_once(",\"")?.1;
                quoted.split_once('"')?.0.parse().ok()
            })
            .collect()
    }

    /// Polls `promql` until `ok` holds for its first value, or fails
    /// after `wait` with the last answer.
    fn wait_for(&self, promql: &str, wait: Duration, ok: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + wait;
        loop {
            let values = self.query(promql);
            if let Some(&v) = values.first() {
                if ok(v) {
                    return v;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{promql} never met the expectation in {wait:?}; last answer {values:?}\n{}",
                harness::tail(&self.log, 4096)
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn prometheus_server_sees_throughput_and_lag() {
    let b = MetricsBroker::start("metrics-prometheus");
    let dir = temp_dir("metrics-prometheus-server");
    b.create_topic("clicks", 1);
    let prom = Prometheus::start(&dir, &format!("127.0.0.1:{}", b.metrics_port));
    let wait = Duration::from_secs(20);
    prom.wait_for("up{job=\"ringtail\"}", wait, |v| v == 1.0);

    // The topic exists (at zero) in a few scrapes before data arrives, so
    // increase() sees the whole rise.
    b.produce("clicks", 1);
    prom.wait_for(
        "count_over_time(sum(ringtail_partition_records_in_total{topic=\"clicks\"})[1m:1s])",
        wait,
        |v| v >= 3.0,
    );
    b.produce("clicks", 299);
    assert_eq!(b.consume("clicks", "dash", 100), 100);

    prom.wait_for(
        "sum(ringtail_partition_records_in_total{topic=\"clicks\"})",
        wait,
        |v| v == 300.0,
    );
    let bytes_in = prom.wait_for(
        "sum(increase(ringtail_partition_bytes_in_total{topic=\"clicks\"}[1m]))",
        wait,
        |v| v > 299.0 * 80.0,
    );
    let rate_out = prom.wait_for(
        "sum(rate(ringtail_partition_bytes_out_total{topic=\"clicks\"}[1m]))",
        wait,
        |v| v > 0.0,
    );
    let lag = "sum(kafka_consumergroup_lag{consumergroup=\"dash\",topic=\"clicks\"})";
    prom.wait_for(lag, wait, |v| v == 200.0);
    prom.wait_for(
        "sum(kafka_consumergroup_current_offset{consumergroup=\"dash\",topic=\"clicks\"})",
        wait,
        |v| v == 100.0,
    );

    // The group catches up: lag falls to 0, and its history held 200.
    assert_eq!(b.consume("clicks", "dash", 200), 200);
    prom.wait_for(lag, wait, |v| v == 0.0);
    prom.wait_for(&format!("max_over_time({lag}[2m:1s])"), wait, |v| {
        v == 200.0
    });
    prom.wait_for(
        "sum(rate(ringtail_requests_total{api=\"Produce\"}[1m]))",
        wait,
        |v| v > 0.0,
    );
    eprintln!("prometheus saw {bytes_in:.0} bytes in over 1m, {rate_out:.0} B/s out, lag 200 -> 0");
}
