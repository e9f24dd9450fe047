//! Three real broker processes on loopback form one coordinator ensemble
//! (`coordinator.voters` lists all three). Everything is checked through
//! the `ringtail coordinator` shell, as an operator would with zkCli:
//!
//! - a leader is elected (`srvr` says `Mode: leader`) and `ls /brokers/ids`
//!   shows `[0, 1, 2]`;
//! - a writer thread keeps creating sequential nodes through the shells
//!   of all three brokers while the leader is killed
//!   with SIGKILL and restarted, `RINGTAIL_COORD_CYCLES` times (default 5;
//!   `perf/soak-coordinator.sh` runs 50+); after each kill a new leader is
//!   elected and a write succeeds (the time from the kill to that write
//!   is the election time, printed as p50/p99);
//! - at the end every acknowledged create is present on every peer and
//!   `/brokers/ids` is `[0, 1, 2]` again; SIGTERM closes a broker's
//!   session, so its node goes.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ringtail");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

struct Broker {
    id: u32,
    kafka_port: u16,
    client_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Broker {
    fn start(&mut self, voters: &str) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("stderr.log"))
            .expect("log file");
        let overrides = [
            format!("broker.id={}", self.id),
            format!("listeners=PLAINTEXT://127.0.0.1:{}", self.kafka_port),
            format!("log.dirs={}", self.dir.join("data").display()),
            format!("coordinator.voters={voters}"),
            format!("coordinator.client.port={}", self.client_port),
            "cluster.id=ringtail-coordinator-test".to_string(),
            "shard.count=1".to_string(),
        ];
        let mut cmd = Command::new(BIN);
        cmd.arg("broker");
        for o in &overrides {
            cmd.args(["--override", o]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn broker");
        self.child = Some(child);
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
    }

    fn server(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Runs one shell command; returns stdout when it exits 0.
fn shell(server: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(BIN)
        .args(["coordinator", "--server", server])
        .args(args)
        .output()
        .expect("run shell");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn mode(server: &str) -> Option<String> {
    let out = shell(server, &["srvr"])?;
    out.lines()
        .find_map(|l| l.strip_prefix("Mode: "))
        .map(str::to_string)
}

fn children(server: &str, path: &str) -> Option<BTreeSet<String>> {
    let out = shell(server, &["ls", path])?;
    let inner = out.trim().strip_prefix('[')?.strip_suffix(']')?;
    Some(
        inner
            .split(", ")
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

fn create_seq(server: &str) -> Option<String> {
    let out = shell(server, &["create", "-s", "/load/n-", "payload"])?;
    out.trim()
        .strip_prefix("Created /load/")
        .map(str::to_string)
}

fn wait_leader(brokers: &[Broker], timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        for (i, b) in brokers.iter().enumerate() {
            if b.child.is_some() && mode(&b.server()).as_deref() == Some("leader") {
                return i;
            }
        }
        assert!(Instant::now() < deadline, "no leader within {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_serving(broker: &Broker, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !matches!(
        mode(&broker.server()).as_deref(),
        Some("leader" | "follower")
    ) {
        assert!(
            Instant::now() < deadline,
            "broker {} did not rejoin within {timeout:?}",
            broker.id
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_children(server: &str, path: &str, want: &BTreeSet<String>, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let got = children(server, path);
        if got.as_ref() == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{server} {path}: want {want:?}, got {got:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[test]
fn three_brokers_elect_register_and_survive_leader_kills() {
    let cycles: usize = std::env::var("RINGTAIL_COORD_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let root = std::env::temp_dir().join(format!("ringtail-coord-cluster-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let mut brokers: Vec<Broker> = (0..3)
        .map(|id| {
            let dir = root.join(format!("broker-{id}"));
            std::fs::create_dir_all(&dir).expect("mkdir");
            Broker {
                id,
                kafka_port: free_port(),
                client_port: free_port(),
                dir,
                child: None,
            }
        })
        .collect();
    let voters = brokers
        .iter()
        .map(|b| format!("{}@127.0.0.1:{}", b.id, free_port()))
        .collect::<Vec<_>>()
        .join(",");
    for b in &mut brokers {
        b.start(&voters);
    }
    let leader = wait_leader(&brokers, Duration::from_secs(30));
    eprintln!("first leader: broker {leader}");
    let all_ids: BTreeSet<String> = ["0", "1", "2"].iter().map(|s| s.to_string()).collect();
    for b in &brokers {
        wait_serving(b, Duration::from_secs(30));
        wait_children(
            &b.server(),
            "/brokers/ids",
            &all_ids,
            Duration::from_secs(30),
        );
    }
    let cluster = shell(&brokers[0].server(), &["get", "/cluster/id"]).expect("get /cluster/id");
    assert!(cluster.contains("ringtail-coordinator-test"), "{cluster}");
    let stat = shell(&brokers[1].server(), &["stat", "/brokers/ids/2"]).expect("stat");
    assert!(
        stat.contains("ephemeralOwner = 0x") && !stat.contains("ephemeralOwner = 0x0\n"),
        "{stat}"
    );
    assert!(shell(&brokers[leader].server(), &["create", "/load", ""]).is_some());

    // A writer keeps creating through all three shells while leaders die;
    // it records only the creates the shell acknowledged.
    let servers: Vec<String> = brokers.iter().map(Broker::server).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let writer_acked = Arc::new(Mutex::new(BTreeSet::new()));
    let writer = {
        let (stop, acked) = (stop.clone(), writer_acked.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                if let Some(name) = create_seq(&servers[i % 3]) {
                    acked.lock().expect("lock").insert(name);
                } else {
                    std::thread::sleep(Duration::from_millis(10));
                }
                i += 1;
            }
        })
    };
    let mut acked = BTreeSet::new();
    let mut elections = Vec::new();
    for cycle in 0..cycles {
        let leader = wait_leader(&brokers, Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(200));
        brokers[leader].kill9();
        let killed_at = Instant::now();
        let survivors: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
        let mut attempt = 0;
        let elected = loop {
            let b = &brokers[survivors[attempt % 2]];
            attempt += 1;
            if let Some(name) = create_seq(&b.server()) {
                acked.insert(name);
                break killed_at.elapsed();
            }
            assert!(
                killed_at.elapsed() < Duration::from_secs(30),
                "cycle {cycle}: no write succeeded within 30 s of killing leader {leader}"
            );
        };
        let new_leader = wait_leader(&brokers, Duration::from_secs(30));
        assert_ne!(new_leader, leader, "a dead broker cannot lead");
        eprintln!("cycle {cycle}: killed leader {leader}, broker {new_leader} leads, first write after {elected:?}");
        elections.push(elected);
        brokers[leader].start(&voters);
        wait_serving(&brokers[leader], Duration::from_secs(30));
    }

    stop.store(true, Ordering::SeqCst);
    writer.join().expect("writer");
    acked.extend(writer_acked.lock().expect("lock").iter().cloned());

    // Every acknowledged create is on every peer, and every broker is
    // registered again once the killed sessions expired.
    for b in &brokers {
        wait_serving(b, Duration::from_secs(30));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = children(&b.server(), "/load").unwrap_or_default();
            let missing: Vec<&String> = acked.difference(&got).collect();
            if missing.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "broker {} lost acknowledged creates: {missing:?}",
                b.id
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        wait_children(
            &b.server(),
            "/brokers/ids",
            &all_ids,
            Duration::from_secs(30),
        );
    }
    // A clean shutdown closes the broker's session: its node goes and the
    // others keep serving.
    let child = brokers[2].child.take().expect("running");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let output = child.wait_with_output().expect("wait");
    assert!(output.status.success(), "broker 2 exit {:?}", output.status);
    let two: BTreeSet<String> = ["0", "1"].iter().map(|s| s.to_string()).collect();
    wait_children(
        &brokers[0].server(),
        "/brokers/ids",
        &two,
        Duration::from_secs(10),
    );
    let log = std::fs::read_to_string(brokers[2].dir.join("stderr.log")).unwrap_or_default();
    assert!(!log.contains("could not close"), "{log}");
    elections.sort();
    if !elections.is_empty() {
        eprintln!(
            "{} acknowledged creates; election time (SIGKILL of the leader -> first acknowledged write) over {} cycles: p50 {:?}, p99 {:?}, max {:?}",
            acked.len(),
            elections.len(),
            percentile(&elections, 50.0),
            percentile(&elections, 99.0),
            elections[elections.len() - 1]
        );
    }
    drop(brokers);
    let _ = std::fs::remove_dir_all(&root);
}
