//! Three real `ringtail broker` processes, each with its coordinator peer,
//! for tests/cluster.rs and the cluster soak (perf/cluster-soak.sh).
//!
//! - **Loopback** clusters listen on 127.0.0.1 with ports picked below the
//!   kernel's ephemeral range (outgoing connections never take them, so a
//!   restarted broker gets its port back; see [`pick_ports`]).
//! - **Namespaced** clusters run each broker in a network namespace the
//!   test makes (`ip netns add`), joined by veth pairs to a bridge in the
//!   root namespace on a private 10.231.X.0/24; a broker is cut off by
//!   taking its veth's root end down and healed by bringing it up. That
//!   needs root; [`Cluster::namespaced`] says why when it cannot, and the
//!   test skips. Everything made is removed by a drop guard, also when the
//!   test panics, and leftovers of killed runs (their pid is gone) are
//!   removed at the next start.
//!
//! Brokers are started, killed with SIGKILL, stopped with SIGTERM (which
//! must exit 0 and say `shutdown complete`) and restarted with the same
//! config; each keeps its stderr in a file, and the tails of all of them
//! are printed when a test panics. The clients are confluent-kafka
//! (librdkafka) through tests/clients/cluster_client.py and Ringtail's own
//! `ringtail topics` and `ringtail coordinator` commands.

#![allow(dead_code)] // The tests and the soak each use part of it.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const BIN: &str = env!("CARGO_BIN_EXE_ringtail");
/// How long a broker may take to listen (a fresh ensemble elects first).
pub const START_TIMEOUT: Duration = Duration::from_secs(40);
/// How long a SIGTERM may take: a controlled shutdown moves leadership
/// away first (`controlled.shutdown.max.wait.ms` below).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(40);

/// Settings every test broker gets, after its addresses and before the
/// test's own overrides: short failure detection, no preferred-leader
/// moves unless a test asks for them.
pub const DEFAULT_OVERRIDES: &[&str] = &[
    "shard.count=2",
    "replica.lag.time.max.ms=2000",
    "replica.socket.timeout.ms=3000",
    "replica.fetch.backoff.ms=100",
    "leader.imbalance.check.interval.seconds=3600",
    "controlled.shutdown.max.wait.ms=10000",
];

static RUNS: AtomicU32 = AtomicU32::new(0);
static SERIAL: Mutex<()> = Mutex::new(());

/// One cluster test at a time in this process: three brokers each are
/// enough for a 2-core CI machine.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn python() -> PathBuf {
    let venv = repo().join(".venv/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// Panics unless confluent-kafka loads (tests/run-all.sh installs it).
pub fn require_confluent_kafka() {
    let python = python();
    let probe = Command::new(&python)
        .args(["-c", "import confluent_kafka"])
        .output();
    assert!(
        probe.is_ok_and(|o| o.status.success()),
        "confluent-kafka is not installed for {}: run tests/run-all.sh, which installs it into .venv",
        python.display()
    );
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

/// The last `max_bytes` of a file.
pub fn tail(path: &Path, max_bytes: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let start = text.len().saturating_sub(max_bytes);
    String::from_utf8_lossy(&text[start..]).into_owned()
}

/// Waits up to `timeout` for `child`; `None` if it still runs.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => return None,
            Err(e) => panic!("wait for child: {e}"),
        }
    }
}

/// A finished command.
#[derive(Debug)]
pub struct Out {
    pub ok: bool,
    pub status: String,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "({})\n---- stdout ----\n{}\n---- stderr ----\n{}",
            self.status,
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

/// Runs `command` to its end or `timeout` (then kills it), output through
/// files so a chatty child cannot block on a full pipe.
pub fn run(command: &mut Command, timeout: Duration, scratch: &Path) -> Out {
    let n = RUNS.fetch_add(1, Ordering::Relaxed);
    let out_path = scratch.join(format!("cmd-{n}.out"));
    let err_path = scratch.join(format!("cmd-{n}.err"));
    let mut child = command
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("create stdout file"))
        .stderr(File::create(&err_path).expect("create stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    let (ok, status) = match wait_timeout(&mut child, timeout) {
        Some(s) => (s.success(), s.to_string()),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            (false, format!("killed after {timeout:?}"))
        }
    };
    let out = Out {
        ok,
        status,
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
    };
    let _ = std::fs::remove_file(out_path);
    let _ = std::fs::remove_file(err_path);
    out
}

/// Polls `f` every 100 ms until it returns `Some`, for at most `timeout`;
/// panics naming `what` and the last value `describe` gave.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => {
                panic!("{what}: not within {timeout:?}; last: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// `n` distinct ports from the range below the kernel's ephemeral ports
/// (`ip_local_port_range`), all held while they are picked. The kernel
/// never hands these out for `bind(0)` or outgoing connections, so
/// nothing but another test that picks the same way can take one between
/// the pick and the broker's bind, or while a broker is down for a
/// restart (the race tests/coordinator_cluster.rs has).
pub fn pick_ports(n: usize) -> Vec<u16> {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let (first, last) = if low > 12000 {
        (10000, low - 1)
    } else {
        // A machine whose ephemeral range starts low: stay above it.
        (61000, 65535)
    };
    let span = last - first + 1;
    let mut seed = (std::process::id() as u64) << 20
        ^ now_ms()
        ^ u64::from(RUNS.fetch_add(1, Ordering::Relaxed)) << 40;
    let mut held = Vec::new();
    let mut tries = 0;
    while held.len() < n {
        tries += 1;
        assert!(tries < 10_000, "no {n} free ports in {first}..={last}");
        // xorshift64
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let port = (first + (seed % u64::from(span)) as u32) as u16;
        if held.iter().any(|(p, _)| *p == port) {
            continue;
        }
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
            held.push((port, l));
        }
    }
    held.into_iter().map(|(p, _)| p).collect()
}

/// One partition line of `ringtail topics --describe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    pub partition: i32,
    pub leader: Option<i32>,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

impl std::fmt::Display for PartitionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p{} leader {:?} replicas {:?} isr {:?}",
            self.partition, self.leader, self.replicas, self.isr
        )
    }
}

fn id_list(s: &str) -> Vec<i32> {
    s.split(',').filter_map(|x| x.trim().parse().ok()).collect()
}

/// Parses kafka-topics.sh's `--describe` partition lines:
/// `\tTopic: t\tPartition: 0\tLeader: 1\tReplicas: 1,2,3\tIsr: 1,2,3`.
pub fn parse_describe(text: &str) -> Vec<PartitionState> {
    let mut out = Vec::new();
    for line in text.lines() {
        let fields: BTreeMap<&str, &str> = line
            .split('\t')
            .filter_map(|f| f.split_once(": "))
            .collect();
        let (Some(p), Some(leader), Some(replicas), Some(isr)) = (
            fields.get("Partition"),
            fields.get("Leader"),
            fields.get("Replicas"),
            fields.get("Isr"),
        ) else {
            continue;
        };
        let Ok(partition) = p.trim().parse() else {
            continue;
        };
        out.push(PartitionState {
            partition,
            leader: leader.trim().parse().ok().filter(|l: &i32| *l >= 0),
            replicas: id_list(replicas),
            isr: id_list(isr),
        });
    }
    out.sort_by_key(|p| p.partition);
    out
}

/// One broker process and everything it was started with.
pub struct Node {
    pub id: i32,
    /// The address it listens on and advertises (127.0.0.1 or its
    /// namespace's address).
    pub host: String,
    pub kafka_port: u16,
    pub voter_port: u16,
    pub client_port: u16,
    pub metrics_port: u16,
    pub netns: Option<String>,
    /// `log.dirs`.
    pub data: PathBuf,
    pub log_path: PathBuf,
    overrides: Vec<String>,
    child: Option<Child>,
    /// Cut off from the bridge (namespaced clusters).
    pub cut: bool,
}

impl Node {
    pub fn bootstrap(&self) -> String {
        format!("{}:{}", self.host, self.kafka_port)
    }

    /// The `ringtail coordinator --server` address.
    pub fn coordinator_server(&self) -> String {
        format!("{}:{}", self.host, self.client_port)
    }

    pub fn metrics_addr(&self) -> String {
        format!("{}:{}", self.host, self.metrics_port)
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The directory of one partition's log.
    pub fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.data.join(format!("{topic}-{partition}"))
    }

    /// The end of this broker's stderr.
    pub fn log_tail(&self, max_bytes: usize) -> String {
        format!(
            "---- broker {} log {} (last {} KiB) ----\n{}",
            self.id,
            self.log_path.display(),
            max_bytes / 1024,
            tail(&self.log_path, max_bytes)
        )
    }

    fn log_len(&self) -> usize {
        std::fs::metadata(&self.log_path).map_or(0, |m| m.len() as usize)
    }

    fn log_since(&self, from: usize) -> String {
        let text = std::fs::read(&self.log_path).unwrap_or_default();
        String::from_utf8_lossy(&text[from.min(text.len())..]).into_owned()
    }

    /// Starts the process; returns the log length before it, for
    /// [`Node::wait_ready`].
    fn spawn(&mut self) -> usize {
        assert!(self.child.is_none(), "broker {} already runs", self.id);
        let mut log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open broker log");
        let before = self.log_len();
        use std::io::Write;
        let _ = writeln!(log, "==== harness: start at unix ms {} ====", now_ms());
        let mut command = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, BIN]);
                c
            }
            None => Command::new(BIN),
        };
        command.arg("broker");
        for o in &self.overrides {
            command.args(["--override", o]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn broker {}: {e}", self.id));
        self.child = Some(child);
        before
    }

    /// Waits until this start said it listens and the Kafka port takes a
    /// connection. A start that fails because a killed predecessor's
    /// socket is still bound is retried for a few seconds.
    fn wait_ready(&mut self, mut from: usize) {
        let deadline = Instant::now() + START_TIMEOUT;
        let addr: SocketAddr = self.bootstrap().parse().expect("broker address");
        loop {
            let new = self.log_since(from);
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                if new.contains("Address already in use") && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(200));
                    from = self.spawn();
                    continue;
                }
                panic!(
                    "broker {} exited during start-up ({status}):\n{}",
                    self.id,
                    self.log_tail(16 * 1024)
                );
            }
            if new.contains(" listening on ")
                && TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
            {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "broker {} not listening after {START_TIMEOUT:?}:\n{}",
                    self.id,
                    self.log_tail(16 * 1024)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the broker and waits until it listens.
    pub fn start(&mut self) {
        let from = self.spawn();
        self.wait_ready(from);
    }

    /// SIGKILL: no clean shutdown, the next start recovers.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM; [`Node::wait_stopped`] waits for the exit. Returns
    /// the log length at the signal.
    fn signal_term(&mut self) -> Option<usize> {
        let child = self.child.as_ref()?;
        let from = self.log_len();
        let pid = libc::pid_t::try_from(child.id()).expect("pid");
        // SAFETY: a plain kill(2) on our own, not yet reaped, child.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0, "kill");
        Some(from)
    }

    /// Panics unless the broker exits 0 within [`STOP_TIMEOUT`] after
    /// saying `shutdown complete`.
    fn wait_stopped(&mut self, from: usize) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        match wait_timeout(&mut child, STOP_TIMEOUT) {
            Some(s) if s.success() => {}
            Some(s) => panic!(
                "broker {} exited with {s} after SIGTERM\n{}",
                self.id,
                self.log_tail(16 * 1024)
            ),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "broker {} still running {STOP_TIMEOUT:?} after SIGTERM\n{}",
                    self.id,
                    self.log_tail(16 * 1024)
                );
            }
        }
        assert!(
            self.log_since(from).contains("shutdown complete"),
            "broker {}: no 'shutdown complete' after SIGTERM\n{}",
            self.id,
            self.log_tail(16 * 1024)
        );
    }

    /// SIGTERM, then [`Node::wait_stopped`]. Returns how long it took.
    pub fn stop(&mut self) -> Duration {
        let began = Instant::now();
        if let Some(from) = self.signal_term() {
            self.wait_stopped(from);
        }
        began.elapsed()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The namespaces, veth pairs and bridge of a namespaced cluster.
struct Net {
    bridge: String,
    namespaces: Vec<String>,
    /// The root-namespace ends of the veth pairs, one per broker.
    veths: Vec<String>,
    /// The third octet of 10.231.X.0/24.
    subnet: u8,
}

fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip {}: {} {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

const NETNS_PREFIX: &str = "ringtail-ctest-";

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes namespaces and links that earlier, killed runs of this harness
/// left (named with a pid that no longer runs).
fn remove_leftovers() {
    if let Ok(list) = ip(&["netns", "list"]) {
        for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
            let Some(rest) = name.strip_prefix(NETNS_PREFIX) else {
                continue;
            };
            let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|p| !pid_alive(p)) {
                let _ = ip(&["netns", "del", name]);
            }
        }
    }
    if let Ok(list) = ip(&["-o", "link", "show"]) {
        for line in list.lines() {
            // "12: rc1a2bn0v1@if3: <...>" or "11: rc1a2bn0: <...>"
            let Some(name) = line.split(": ").nth(1) else {
                continue;
            };
            let name = name.split('@').next().unwrap_or(name);
            let Some(rest) = name.strip_prefix("rc") else {
                continue;
            };
            let Some((pid_hex, _)) = rest.split_once('n') else {
                continue;
            };
            let pid = u32::from_str_radix(pid_hex, 16).ok();
            if pid.is_some_and(|p| !pid_alive(p)) {
                let _ = ip(&["link", "del", name]);
            }
        }
    }
}

impl Net {
    fn create(n: usize) -> Result<Net, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not root: network namespaces need CAP_NET_ADMIN".into());
        }
        ip(&["netns", "list"]).map_err(|e| format!("no usable `ip netns` (iproute2): {e}"))?;
        remove_leftovers();
        let pid = std::process::id();
        let run = RUNS.fetch_add(1, Ordering::Relaxed);
        // A /24 no route of this machine mentions yet.
        let routes = ip(&["-4", "route", "show", "table", "all"])?;
        let subnet = (0..254u32)
            .map(|k| ((pid + run * 37 + k) % 254 + 1) as u8)
            .find(|x| !routes.contains(&format!("10.231.{x}.")))
            .ok_or("no free 10.231.X.0/24")?;
        let mut net = Net {
            bridge: format!("rc{pid:x}n{run}"),
            namespaces: Vec::new(),
            veths: Vec::new(),
            subnet,
        };
        // On error `net` is dropped, which removes what was made so far.
        ip(&["link", "add", &net.bridge, "type", "bridge"])?;
        ip(&[
            "addr",
            "add",
            &format!("10.231.{subnet}.1/24"),
            "dev",
            &net.bridge,
        ])?;
        ip(&["link", "set", &net.bridge, "up"])?;
        for i in 0..n {
            let ns = format!("{NETNS_PREFIX}{pid}-{run}-{i}");
            ip(&["netns", "add", &ns])?;
            net.namespaces.push(ns.clone());
            let host_end = format!("{}v{i}", net.bridge);
            let ns_end = format!("{}p{i}", net.bridge);
            ip(&[
                "link", "add", &host_end, "type", "veth", "peer", "name", &ns_end,
            ])?;
            net.veths.push(host_end.clone());
            ip(&["link", "set", &ns_end, "netns", &ns])?;
            let addr = format!("{}/24", net.addr(i));
            ip(&["-n", &ns, "addr", "add", &addr, "dev", &ns_end])?;
            ip(&["-n", &ns, "link", "set", &ns_end, "up"])?;
            // Traffic to the namespace's own address goes through lo.
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&["link", "set", &host_end, "master", &net.bridge])?;
            ip(&["link", "set", &host_end, "up"])?;
        }
        Ok(net)
    }

    fn addr(&self, i: usize) -> String {
        format!("10.231.{}.{}", self.subnet, 11 + i)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("cleanup: {e}");
            }
        }
        for v in &self.veths {
            // Usually gone with its peer's namespace.
            let _ = ip(&["link", "del", v]);
        }
        if let Err(e) = ip(&["link", "del", &self.bridge]) {
            eprintln!("cleanup: {e}");
        }
    }
}

/// Three (or `n`) brokers forming one cluster.
pub struct Cluster {
    pub name: String,
    pub nodes: Vec<Node>,
    /// The test's scratch directory (broker dirs, client output).
    pub root: PathBuf,
    net: Option<Net>,
}

impl Cluster {
    /// `n` brokers on 127.0.0.1 (not started).
    pub fn loopback(name: &str, n: usize, overrides: &[&str]) -> Cluster {
        let ports = pick_ports(4 * n);
        let hosts = vec!["127.0.0.1".to_string(); n];
        Cluster::build(name, hosts, ports, None, overrides)
    }

    /// `n` brokers, each in its own network namespace (not started), or
    /// why that cannot be done here.
    pub fn namespaced(name: &str, n: usize, overrides: &[&str]) -> Result<Cluster, String> {
        let net = Net::create(n)?;
        let hosts = (0..n).map(|i| net.addr(i)).collect();
        // Each broker has its own address: Kafka's and ZooKeeper's usual
        // ports, as on separate machines.
        let ports = (0..n).flat_map(|_| [9092, 2888, 2181, 9644]).collect();
        Ok(Cluster::build(name, hosts, ports, Some(net), overrides))
    }

    fn build(
        name: &str,
        hosts: Vec<String>,
        ports: Vec<u16>,
        net: Option<Net>,
        overrides: &[&str],
    ) -> Cluster {
        let n = hosts.len();
        let run = RUNS.fetch_add(1, Ordering::Relaxed);
        let root = std::env::temp_dir().join(format!(
            "ringtail-cluster-{name}-{}-{run}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("create test dir");
        let voters = (0..n)
            .map(|i| format!("{}@{}:{}", i + 1, hosts[i], ports[4 * i + 1]))
            .collect::<Vec<_>>()
            .join(",");
        let nodes = (0..n)
            .map(|i| {
                let id = i as i32 + 1;
                let dir = root.join(format!("broker-{id}"));
                std::fs::create_dir_all(&dir).expect("create broker dir");
                let (host, kafka, voter, client, metrics) = (
                    hosts[i].clone(),
                    ports[4 * i],
                    ports[4 * i + 1],
                    ports[4 * i + 2],
                    ports[4 * i + 3],
                );
                let mut all = vec![
                    format!("broker.id={id}"),
                    format!("listeners=PLAINTEXT://{host}:{kafka}"),
                    format!("advertised.listeners=PLAINTEXT://{host}:{kafka}"),
                    format!("log.dirs={}", dir.join("data").display()),
                    format!("coordinator.voters={voters}"),
                    format!("coordinator.client.port={client}"),
                    format!("metrics.listen={host}:{metrics}"),
                    format!("cluster.id=ringtail-ctest-{name}"),
                ];
                all.extend(DEFAULT_OVERRIDES.iter().map(|s| s.to_string()));
                all.extend(overrides.iter().map(|s| s.to_string()));
                Node {
                    id,
                    host,
                    kafka_port: kafka,
                    voter_port: voter,
                    client_port: client,
                    metrics_port: metrics,
                    netns: net.as_ref().map(|net| net.namespaces[i].clone()),
                    data: dir.join("data"),
                    log_path: dir.join("broker.log"),
                    overrides: all,
                    child: None,
                    cut: false,
                }
            })
            .collect();
        Cluster {
            name: name.to_string(),
            nodes,
            root,
            net,
        }
    }

    /// The node with broker id `id`.
    pub fn node(&mut self, id: i32) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no broker {id}"))
    }

    pub fn ids(&self) -> Vec<i32> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// Starts every broker at once (each waits for its ensemble) and
    /// waits until all listen and all are registered.
    pub fn start_all(&mut self) {
        let froms: Vec<usize> = self.nodes.iter_mut().map(Node::spawn).collect();
        for (node, from) in self.nodes.iter_mut().zip(froms) {
            node.wait_ready(from);
        }
        let ids = self.ids();
        self.wait_registered(&ids, Duration::from_secs(30));
    }

    /// Starts one broker again with the same config.
    pub fn start(&mut self, id: i32) {
        self.node(id).start();
    }

    pub fn kill9(&mut self, id: i32) {
        eprintln!("[{}] SIGKILL broker {id}", self.name);
        self.node(id).kill9();
    }

    pub fn stop(&mut self, id: i32) -> Duration {
        eprintln!("[{}] SIGTERM broker {id}", self.name);
        let took = self.node(id).stop();
        eprintln!("[{}] broker {id} stopped cleanly in {took:?}", self.name);
        took
    }

    /// SIGTERM to every running broker at once (a whole-cluster stop),
    /// then waits for each clean exit.
    pub fn stop_all(&mut self) {
        eprintln!("[{}] SIGTERM all brokers", self.name);
        let froms: Vec<Option<usize>> = self.nodes.iter_mut().map(Node::signal_term).collect();
        for (node, from) in self.nodes.iter_mut().zip(froms) {
            if let Some(from) = from {
                node.wait_stopped(from);
            }
        }
    }

    /// Whether brokers can be cut off (namespaced clusters).
    pub fn can_cut(&self) -> bool {
        self.net.is_some()
    }

    /// Cuts broker `id` off from everyone: its veth's root end goes down.
    pub fn cut(&mut self, id: i32) {
        let i = self.nodes.iter().position(|n| n.id == id).expect("node");
        let net = self.net.as_ref().expect("a namespaced cluster");
        ip(&["link", "set", &net.veths[i], "down"]).unwrap_or_else(|e| panic!("{e}"));
        self.nodes[i].cut = true;
        eprintln!("[{}] cut broker {id} off", self.name);
    }

    pub fn heal(&mut self, id: i32) {
        let i = self.nodes.iter().position(|n| n.id == id).expect("node");
        let net = self.net.as_ref().expect("a namespaced cluster");
        ip(&["link", "set", &net.veths[i], "up"]).unwrap_or_else(|e| panic!("{e}"));
        self.nodes[i].cut = false;
        eprintln!("[{}] healed broker {id}", self.name);
    }

    /// Every broker's address, for clients (they find the live ones).
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(Node::bootstrap)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The addresses of brokers that run and are not cut off.
    pub fn live_bootstrap(&mut self) -> String {
        let mut live = Vec::new();
        for n in &mut self.nodes {
            if n.is_running() && !n.cut {
                live.push(n.bootstrap());
            }
        }
        assert!(!live.is_empty(), "no live broker");
        live.join(",")
    }

    /// `ringtail coordinator --server <a live broker> ARGS`.
    pub fn coordinator(&mut self, args: &[&str]) -> Out {
        let server = self
            .nodes
            .iter_mut()
            .find_map(|n| (n.is_running() && !n.cut).then(|| n.coordinator_server()))
            .expect("no live broker");
        let mut c = Command::new(BIN);
        c.args(["coordinator", "--server", &server]).args(args);
        run(&mut c, Duration::from_secs(20), &self.root)
    }

    /// The ids under `/brokers/ids`, as a live broker's peer sees them.
    pub fn registered(&mut self) -> Result<Vec<i32>, String> {
        let out = self.coordinator(&["ls", "/brokers/ids"]);
        if !out.ok {
            return Err(out.to_string());
        }
        let inner = out
            .stdout
            .trim()
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .ok_or_else(|| out.to_string())?;
        let mut ids: Vec<i32> = inner.split(", ").filter_map(|s| s.parse().ok()).collect();
        ids.sort();
        Ok(ids)
    }

    pub fn wait_registered(&mut self, ids: &[i32], timeout: Duration) {
        let mut want = ids.to_vec();
        want.sort();
        let name = self.name.clone();
        wait_for(
            timeout,
            &format!("[{name}] /brokers/ids = {want:?}"),
            || {
                let got = self.registered()?;
                if got == want {
                    Ok(())
                } else {
                    Err(format!("{got:?}"))
                }
            },
        );
    }

    /// `ringtail topics --bootstrap-server <live brokers> ARGS`.
    pub fn topics(&mut self, args: &[&str]) -> Out {
        let bootstrap = self.live_bootstrap();
        self.topics_via(&bootstrap, args)
    }

    /// `ringtail topics --bootstrap-server BOOTSTRAP ARGS`.
    fn topics_via(&self, bootstrap: &str, args: &[&str]) -> Out {
        let mut c = Command::new(BIN);
        c.args(["topics", "--bootstrap-server", bootstrap])
            .args(args);
        run(&mut c, Duration::from_secs(30), &self.root)
    }

    /// `topics --create`, which must succeed.
    pub fn create_topic(&mut self, topic: &str, partitions: u32, rf: u32, configs: &[&str]) {
        let (p, r) = (partitions.to_string(), rf.to_string());
        let mut args = vec![
            "--create",
            "--topic",
            topic,
            "--partitions",
            &p,
            "--replication-factor",
            &r,
        ];
        for c in configs {
            args.extend(["--config", c]);
        }
        let out = self.topics(&args);
        assert!(out.ok, "[{}] topics {}: {out}", self.name, args.join(" "));
    }

    /// The partitions `topics --describe --topic T` lists, with the whole
    /// output (for messages).
    pub fn describe(&mut self, topic: &str) -> Result<(Vec<PartitionState>, String), String> {
        let out = self.topics(&["--describe", "--topic", topic]);
        if !out.ok {
            return Err(out.to_string());
        }
        Ok((parse_describe(&out.stdout), out.stdout))
    }

    /// Waits until `check` accepts the described partitions; returns them.
    pub fn wait_partitions(
        &mut self,
        topic: &str,
        timeout: Duration,
        what: &str,
        check: impl Fn(&[PartitionState]) -> bool,
    ) -> Vec<PartitionState> {
        let name = self.name.clone();
        wait_for(timeout, &format!("[{name}] {topic}: {what}"), || {
            let (parts, text) = self.describe(topic)?;
            if !parts.is_empty() && check(&parts) {
                Ok(parts)
            } else {
                Err(text)
            }
        })
    }

    /// Waits until every partition has a leader and all `n` replicas in
    /// its ISR, as every live broker describes it: a broker just healed
    /// from a cut answers Metadata from the view it had before the cut
    /// (its ISRs full) until its coordinator peer has caught up, as a
    /// Kafka broker answers from its metadata cache.
    pub fn wait_fully_replicated(&mut self, topic: &str, timeout: Duration) -> Vec<PartitionState> {
        let n = self.nodes.len();
        let name = self.name.clone();
        let full = |parts: &[PartitionState]| {
            !parts.is_empty()
                && parts
                    .iter()
                    .all(|p| p.leader.is_some() && p.replicas.len() == n && p.isr.len() == n)
        };
        wait_for(
            timeout,
            &format!("[{name}] {topic}: every replica in the ISR, as every live broker says"),
            || {
                let live: Vec<String> = self
                    .nodes
                    .iter_mut()
                    .filter_map(|n| (n.is_running() && !n.cut).then(|| n.bootstrap()))
                    .collect();
                let mut agreed = Vec::new();
                for b in &live {
                    let out = self.topics_via(b, &["--describe", "--topic", topic]);
                    let parts = parse_describe(&out.stdout);
                    if !out.ok || !full(&parts) {
                        return Err(format!("via {b}: {out}"));
                    }
                    agreed = parts;
                }
                Ok(agreed)
            },
        )
    }

    /// Runs tests/clients/cluster_client.py with `args` to its end.
    pub fn client(&self, args: &[&str], timeout: Duration) -> Out {
        let mut c = self.client_command(None, args);
        run(&mut c, timeout, &self.root)
    }

    /// The command running tests/clients/cluster_client.py with `args`,
    /// in broker `inside`'s network namespace if given (there it reaches
    /// that broker even while it is cut off, and nothing else).
    pub fn client_command(&self, inside: Option<i32>, args: &[&str]) -> Command {
        let script = repo().join("tests/clients/cluster_client.py");
        let mut c = match inside {
            Some(id) => {
                let node = self.nodes.iter().find(|n| n.id == id).expect("node");
                let ns = node.netns.as_deref().expect("a namespaced cluster");
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(python());
                c
            }
            None => Command::new(python()),
        };
        c.arg(script).args(args);
        c
    }

    /// Broker `id`'s `/metrics` fetched from inside its own network
    /// namespace (reachable while it is cut off), for diagnostics.
    pub fn scrape_inside(&self, id: i32) -> String {
        let node = self.nodes.iter().find(|n| n.id == id).expect("node");
        let Some(ns) = node.netns.as_deref() else {
            return scrape(node).unwrap_or_else(|e| e);
        };
        let url = format!("http://{}/metrics", node.metrics_addr());
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns])
            .arg(python())
            .args(["-c", "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())"])
            .arg(url);
        let out = run(&mut c, Duration::from_secs(20), &self.root);
        if out.ok {
            out.stdout
        } else {
            out.to_string()
        }
    }

    /// Starts the idempotent `acks=all` producer on `topic`, bootstrapped
    /// with every broker.
    pub fn producer(&self, topic: &str, rate: u32) -> ProducerProc {
        self.producer_with(&self.bootstrap(), topic, rate)
    }

    /// The same with a `bootstrap` list of the test's choice.
    pub fn producer_with(&self, bootstrap: &str, topic: &str, rate: u32) -> ProducerProc {
        let n = RUNS.fetch_add(1, Ordering::Relaxed);
        let stop_file = self.root.join(format!("producer-{n}.stop"));
        let out_path = self.root.join(format!("producer-{n}.out"));
        let err_path = self.root.join(format!("producer-{n}.err"));
        let child = Command::new(python())
            .arg(repo().join("tests/clients/cluster_client.py"))
            .args(["produce", bootstrap, topic])
            .arg(&stop_file)
            .arg(rate.to_string())
            .stdin(Stdio::null())
            .stdout(File::create(&out_path).expect("producer stdout"))
            .stderr(File::create(&err_path).expect("producer stderr"))
            .spawn()
            .expect("start the producer");
        ProducerProc {
            child: Some(child),
            exit_reported: false,
            stop_file,
            out_path,
            err_path,
        }
    }

    /// Reads every partition of `topic` back (cluster_client.py read).
    pub fn read_back(&mut self, topic: &str) -> ReadBack {
        let bootstrap = self.live_bootstrap();
        self.read_back_from(&bootstrap, topic)
    }

    /// The same through the brokers of `bootstrap`.
    pub fn read_back_from(&self, bootstrap: &str, topic: &str) -> ReadBack {
        let out = self.client(&["read", bootstrap, topic], Duration::from_secs(90));
        assert!(out.ok, "[{}] read {topic}: {out}", self.name);
        ReadBack::parse(&out.stdout)
    }

    /// Tails of every broker's log.
    pub fn log_tails(&self, max_bytes: usize) -> String {
        self.nodes
            .iter()
            .map(|n| n.log_tail(max_bytes))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.kill9();
        }
        if std::thread::panicking() {
            eprintln!(
                "==== [{}] broker logs (data kept in {}) ====\n{}",
                self.name,
                self.root.display(),
                self.log_tails(6 * 1024)
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.root);
        }
        // `net` drops after this: the processes in the namespaces are gone.
    }
}

/// One acknowledged or failed message of the producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub index: u64,
    pub partition: i32,
    /// The offset for an acknowledged message.
    pub offset: Option<i64>,
    pub at_ms: u64,
}

/// What the producer printed.
#[derive(Debug, Default)]
pub struct ProducerReport {
    pub acked: Vec<Delivery>,
    /// (index, partition, error name)
    pub failed: Vec<(u64, i32, String)>,
    /// DONE sent acked failed, once it finished.
    pub done: Option<(u64, u64, u64)>,
    /// How the producer ended when it did not finish cleanly (exit status
    /// and the end of its stderr), e.g. a fatal idempotence error.
    pub failure: Option<String>,
}

impl ProducerReport {
    pub fn parse(text: &str) -> ProducerReport {
        let mut r = ProducerReport::default();
        for line in text.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            match f.as_slice() {
                ["ACK", i, p, o, t] => r.acked.push(Delivery {
                    index: i.parse().expect("index"),
                    partition: p.parse().expect("partition"),
                    offset: Some(o.parse().expect("offset")),
                    at_ms: t.parse().expect("time"),
                }),
                ["ERR", i, p, e, _t] => r.failed.push((
                    i.parse().expect("index"),
                    p.parse().expect("partition"),
                    e.to_string(),
                )),
                ["DONE", s, a, f] => {
                    r.done = Some((
                        s.parse().expect("sent"),
                        a.parse().expect("acked"),
                        f.parse().expect("failed"),
                    ))
                }
                _ => {}
            }
        }
        r
    }
}

/// The running producer of [`Cluster::producer`].
pub struct ProducerProc {
    child: Option<Child>,
    exit_reported: bool,
    stop_file: PathBuf,
    out_path: PathBuf,
    err_path: PathBuf,
}

impl ProducerProc {
    /// What it printed so far.
    pub fn report(&self) -> ProducerReport {
        ProducerReport::parse(&std::fs::read_to_string(&self.out_path).unwrap_or_default())
    }

    pub fn stderr(&self) -> String {
        tail(&self.err_path, 8 * 1024)
    }

    /// Waits until at least `n` more messages than `base` are
    /// acknowledged (`partition`: on that one only).
    pub fn wait_acks(
        &mut self,
        base: usize,
        n: usize,
        partition: Option<i32>,
        timeout: Duration,
    ) -> ProducerReport {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.report();
            let count = r
                .acked
                .iter()
                .filter(|d| partition.is_none_or(|p| d.partition == p))
                .count();
            if count >= base + n {
                return r;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                // What it acknowledged is still checked (finish_and_check):
                // a fatal client error is often the symptom of a lost write.
                if !self.exit_reported {
                    self.exit_reported = true;
                    eprintln!(
                        "the producer exited ({status}) early, with {count} acks (on {partition:?}):\n{}",
                        self.stderr()
                    );
                }
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "fewer than {n} acks (on {partition:?}) past {base} within {timeout:?}: {count}; {} failed: {:?}\n{}",
                r.failed.len(),
                &r.failed[..r.failed.len().min(5)],
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the client still runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Acknowledged count on `partition` (all with `None`).
    pub fn acked(&self, partition: Option<i32>) -> usize {
        self.report()
            .acked
            .iter()
            .filter(|d| partition.is_none_or(|p| d.partition == p))
            .count()
    }

    /// Tells it to stop, waits for its flush; returns the full report.
    pub fn finish(mut self, timeout: Duration) -> ProducerReport {
        std::fs::write(&self.stop_file, b"stop").expect("stop file");
        let mut child = self.child.take().expect("running");
        let status = wait_timeout(&mut child, timeout);
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let mut r = self.report();
        if !status.is_some_and(|s| s.success()) || r.done.is_none() {
            r.failure = Some(format!(
                "the producer did not finish cleanly ({}):\n{}",
                status.map_or(format!("still running after {timeout:?}"), |s| s
                    .to_string()),
                self.stderr()
            ));
        }
        r
    }
}

impl Drop for ProducerProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A topic read back from the beginning to each partition's high
/// watermark.
#[derive(Debug, Default)]
pub struct ReadBack {
    /// partition -> (low, high watermark)
    pub ends: BTreeMap<i32, (i64, i64)>,
    /// partition -> (offset, value) in read order
    pub records: BTreeMap<i32, Vec<(i64, String)>>,
}

impl ReadBack {
    pub fn parse(text: &str) -> ReadBack {
        let mut r = ReadBack::default();
        for line in text.lines() {
            let f: Vec<&str> = line.splitn(4, ' ').collect();
            match f.as_slice() {
                ["END", p, low, high] => {
                    r.ends.insert(
                        p.parse().expect("partition"),
                        (low.parse().expect("low"), high.parse().expect("high")),
                    );
                }
                ["READ", p, o, v] => r
                    .records
                    .entry(p.parse().expect("partition"))
                    .or_default()
                    .push((o.parse().expect("offset"), v.to_string())),
                _ => {}
            }
        }
        r
    }

    pub fn total(&self) -> usize {
        self.records.values().map(Vec::len).sum()
    }
}

/// Checks a producer's acknowledgements against the read-back: every
/// acknowledged value is stored exactly at its acknowledged (partition,
/// offset); no value of this producer is stored twice; within each
/// partition this producer's values are in production order, and every
/// value read was produced. Returns (acknowledged, read, lost, duplicated)
/// and the first problems found.
pub fn check_delivery(acked: &[Delivery], read: &ReadBack) -> (Summary, Vec<String>) {
    let mut problems = Vec::new();
    let mut at: BTreeMap<(i32, i64), u64> = BTreeMap::new();
    let mut seen: BTreeMap<u64, (i32, i64)> = BTreeMap::new();
    let mut duplicated = 0;
    for (&p, records) in &read.records {
        let mut last_index = None;
        let mut last_offset = -1;
        for (offset, value) in records {
            if *offset <= last_offset {
                problems.push(format!("p{p}: offset {offset} read after {last_offset}"));
            }
            last_offset = *offset;
            let Some(index) = value.strip_prefix("v-").and_then(|s| s.parse::<u64>().ok()) else {
                problems.push(format!("p{p}@{offset}: unexpected value {value:?}"));
                continue;
            };
            if let Some(prev) = seen.insert(index, (p, *offset)) {
                duplicated += 1;
                problems.push(format!(
                    "v-{index} stored twice: p{}@{} and p{p}@{offset}",
                    prev.0, prev.1
                ));
            }
            if last_index.is_some_and(|l| index <= l) {
                problems.push(format!(
                    "p{p}@{offset}: v-{index} after v-{}: production order broken",
                    last_index.unwrap_or(0)
                ));
            }
            last_index = Some(index);
            at.insert((p, *offset), index);
        }
    }
    let mut lost = 0;
    for d in acked {
        let offset = d.offset.expect("acknowledged");
        match at.get(&(d.partition, offset)) {
            Some(i) if *i == d.index => {}
            other => {
                lost += 1;
                if problems.len() < 40 {
                    problems.push(format!(
                        "v-{} acknowledged at p{}@{offset} (unix ms {}), read there: {}; v-{} read at {:?}",
                        d.index,
                        d.partition,
                        d.at_ms,
                        other.map_or("nothing".to_string(), |i| format!("v-{i}")),
                        d.index,
                        seen.get(&d.index)
                    ));
                }
            }
        }
    }
    (
        Summary {
            acknowledged: acked.len(),
            read: read.total(),
            lost,
            duplicated,
        },
        problems,
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub acknowledged: usize,
    pub read: usize,
    pub lost: usize,
    pub duplicated: usize,
}

/// The bytes of a partition's log below `hw`: whole batches in offset
/// order over all its `.log` segments, which must be contiguous from the
/// log start and end exactly at `hw`.
pub fn log_bytes_below(dir: &Path, hw: i64) -> Result<Vec<u8>, String> {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    segments.sort();
    let mut out = Vec::new();
    let mut next: Option<i64> = None;
    'segments: for seg in &segments {
        let bytes = std::fs::read(seg).map_err(|e| format!("{}: {e}", seg.display()))?;
        let mut pos = 0usize;
        while pos + 61 <= bytes.len() {
            let base = i64::from_be_bytes(bytes[pos..pos + 8].try_into().expect("8"));
            let len = i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().expect("4"));
            let total = 12
                + usize::try_from(len)
                    .map_err(|_| format!("{}: negative batch length at {pos}", seg.display()))?;
            if pos + total > bytes.len() {
                break; // a torn tail: beyond anything committed
            }
            let delta = i32::from_be_bytes(bytes[pos + 23..pos + 27].try_into().expect("4"));
            let last = base + i64::from(delta);
            if last >= hw {
                break 'segments;
            }
            if let Some(n) = next {
                if base != n {
                    return Err(format!(
                        "{}: batch at position {pos} starts at offset {base}, expected {n}",
                        seg.display()
                    ));
                }
            }
            out.extend_from_slice(&bytes[pos..pos + total]);
            next = Some(last + 1);
            pos += total;
        }
    }
    let end = next.unwrap_or(0);
    if end != hw {
        return Err(format!(
            "{}: whole batches end at offset {end}, not at the high watermark {hw} (replica behind, or HW inside a batch)",
            dir.display()
        ));
    }
    Ok(out)
}

/// The batch containing byte `pos` of [`log_bytes_below`]'s output:
/// (base offset, position of the batch), for messages.
pub fn batch_at(bytes: &[u8], pos: usize) -> (i64, usize) {
    let mut at = 0;
    while at + 12 <= bytes.len() {
        let base = i64::from_be_bytes(bytes[at..at + 8].try_into().expect("8"));
        let len = i32::from_be_bytes(bytes[at + 8..at + 12].try_into().expect("4")) as usize;
        if pos < at + 12 + len {
            return (base, at);
        }
        at += 12 + len;
    }
    (-1, at)
}

/// A `high-watermark-checkpoint` file's entry for (topic, partition), if
/// the broker wrote one (Kafka's checkpoint format: version, count, then
/// `topic partition offset` lines). Looked for in the partition directory
/// and in the log dir (Kafka's `replication-offset-checkpoint`).
pub fn checkpointed_hw(node: &Node, topic: &str, partition: i32) -> Option<i64> {
    let candidates = [
        node.partition_dir(topic, partition)
            .join("high-watermark-checkpoint"),
        node.data.join("high-watermark-checkpoint"),
        node.data.join("replication-offset-checkpoint"),
    ];
    for path in candidates {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        for line in text.lines().skip(2) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if let [t, p, o] = f.as_slice() {
                if *t == topic && p.parse() == Ok(partition) {
                    return o.parse().ok();
                }
            }
        }
    }
    None
}

/// Compares every replica's log of each partition byte for byte below
/// that partition's high watermark `hws[p]`; the brokers should be
/// stopped. Returns the problems (empty when identical).
pub fn compare_replicas(cluster: &Cluster, topic: &str, hws: &BTreeMap<i32, i64>) -> Vec<String> {
    let mut problems = Vec::new();
    for (&p, &hw) in hws {
        let mut first: Option<(i32, Vec<u8>)> = None;
        for node in &cluster.nodes {
            let dir = node.partition_dir(topic, p);
            let cp = checkpointed_hw(node, topic, p);
            match log_bytes_below(&dir, hw) {
                Err(e) => problems.push(format!(
                    "broker {} p{p}: {e} (its HW checkpoint: {cp:?})",
                    node.id
                )),
                Ok(bytes) => {
                    eprintln!(
                        "[{}] {topic}-{p} on broker {}: {} bytes below HW {hw} (checkpointed HW {cp:?})",
                        cluster.name,
                        node.id,
                        bytes.len()
                    );
                    match &first {
                        None => first = Some((node.id, bytes)),
                        Some((id, want)) if *want != bytes => {
                            let at = want
                                .iter()
                                .zip(&bytes)
                                .position(|(a, b)| a != b)
                                .unwrap_or(want.len().min(bytes.len()));
                            let (base, batch_pos) = batch_at(want, at);
                            problems.push(format!(
                                "{topic}-{p}: broker {} and broker {id} differ below HW {hw} at byte {at} (batch at offset {base}, position {batch_pos}); lengths {} vs {}",
                                node.id,
                                bytes.len(),
                                want.len()
                            ));
                        }
                        Some(_) => {}
                    }
                }
            }
        }
    }
    problems
}

/// `ringtail log verify` on every replica of every partition (brokers
/// stopped); returns the failures.
pub fn verify_logs(cluster: &Cluster, topic: &str, partitions: i32) -> Vec<String> {
    let mut problems = Vec::new();
    for node in &cluster.nodes {
        for p in 0..partitions {
            let dir = node.partition_dir(topic, p);
            let mut c = Command::new(BIN);
            c.args(["log", "verify"]).arg(&dir);
            let out = run(&mut c, Duration::from_secs(30), &cluster.root);
            if !out.ok || !out.stdout.contains("all batches valid") {
                problems.push(format!("broker {} {}: {out}", node.id, dir.display()));
            }
        }
    }
    problems
}

/// A Prometheus text scrape of one broker's `/metrics`.
pub fn scrape(node: &Node) -> Result<String, String> {
    use std::io::{Read, Write};
    let addr: SocketAddr = node.metrics_addr().parse().map_err(|e| format!("{e}"))?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("metrics of broker {} at {addr}: {e}", node.id))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    s.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| e.to_string())?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP header end")?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(format!("GET /metrics: {head}"));
    }
    Ok(body.to_string())
}

/// The value of the sample `name{labels...}` (the given labels must
/// match; others may be there) in a scrape.
pub fn metric(scrape: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    for line in scrape.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (metric_name, label_text) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.strip_suffix('}').unwrap_or(rest)),
            None => (series, ""),
        };
        if metric_name != name {
            continue;
        }
        let have: BTreeMap<&str, &str> = label_text
            .split(',')
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                Some((k.trim(), v.trim().trim_matches('"')))
            })
            .collect();
        if labels.iter().all(|(k, v)| have.get(k) == Some(v)) {
            return value.parse().ok();
        }
    }
    None
}
