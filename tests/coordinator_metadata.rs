//! The topic table lives in the coordinator's tree, in Kafka's layout.
//! Real broker processes; topics are made with `ringtail topics` (the
//! broker's admin client) and the tree is read with `ringtail coordinator`
//! as an operator would with zkCli:
//!
//! - one broker (one voter): a pre-tree local table is migrated into the
//!   tree on the first start; created topics appear under `/brokers/topics`
//!   with Kafka's JSON, their partition states and `/config/topics/T`;
//!   `/controller` and `/controller_epoch` are there; stat times are wall
//!   clock; growing a topic rewrites its node, a config change (Kafka's
//!   IncrementalAlterConfigs) its config node; a delete removes every node;
//!   a restart with the local cache removed still finds the topics (the
//!   tree is the source of truth) and bumps the controller epoch;
//! - three brokers (three voters): a topic created through broker 1 is
//!   read from every peer's tree, the name is taken for broker 2 as well,
//!   and broker 1 restarted after kill -9 finds it again.

#[path = "wire/mod.rs"]
mod wire;

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ringtail_protocol::messages::kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use ringtail_protocol::messages::kafka_protocol::messages::{
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use ringtail_protocol::messages::kafka_protocol::protocol::StrBytes;

const BIN: &str = env!("CARGO_BIN_EXE_ringtail");

/// IncrementalAlterConfigs v0 SETs on one topic over the Kafka protocol;
/// returns the resource's error code.
fn set_topic_configs(bootstrap: &str, topic: &str, configs: &[(&str, &str)]) -> i16 {
    let s = |t: &str| StrBytes::from_string(t.to_string());
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(topic))
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        AlterableConfig::default()
                            .with_name(s(k))
                            .with_config_operation(0)
                            .with_value(Some(s(v)))
                    })
                    .collect(),
            ),
    ]);
    let response: IncrementalAlterConfigsResponse =
        wire::Conn::connect(bootstrap, "coordinator-metadata-test").call(0, &request);
    response.responses[0].error_code
}

/// `n` distinct free ports: all are held while they are picked, so the
/// kernel cannot hand out one twice.
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

struct Broker {
    id: u32,
    kafka_port: u16,
    client_port: u16,
    dir: PathBuf,
    voters: String,
    child: Option<Child>,
    /// Times started: the log has one "listening on" line per start.
    starts: usize,
}

impl Broker {
    fn new(name: &str, id: u32, voters: String, client_port: u16, kafka_port: u16) -> Broker {
        let dir = std::env::temp_dir().join(format!(
            "ringtail-coord-meta-{name}-{}-{id}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        Broker {
            id,
            kafka_port,
            client_port,
            dir,
            voters,
            child: None,
            starts: 0,
        }
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("stderr.log"))
            .expect("log file");
        let mut overrides = vec![
            format!("broker.id={}", self.id),
            format!("listeners=PLAINTEXT://127.0.0.1:{}", self.kafka_port),
            format!("log.dirs={}", self.dir.join("data").display()),
            format!("coordinator.client.port={}", self.client_port),
            "shard.count=1".to_string(),
        ];
        if !self.voters.is_empty() {
            overrides.push(format!("coordinator.voters={}", self.voters));
        }
        let mut cmd = Command::new(BIN);
        cmd.arg("broker");
        for o in &overrides {
            cmd.args(["--override", o]);
        }
        self.starts += 1;
        self.child = Some(
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawn broker"),
        );
    }

    /// Waits until this start logged that it listens (a killed
    /// predecessor's socket may accept for a moment) and the Kafka port
    /// accepts connections.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("broker {} exited with {status}: {}", self.id, self.log());
            }
            let started = self.log().matches(" listening on ").count() >= self.starts;
            if started && TcpStream::connect(("127.0.0.1", self.kafka_port)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "broker {} not ready: {}",
                self.id,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: a plain kill(2) on our own child's pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let status = child.wait().expect("wait");
            assert!(
                status.success(),
                "broker {}: {status}: {}",
                self.id,
                self.log()
            );
        }
    }

    fn server(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.kafka_port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill9();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn ringtail(args: &[&str]) -> Out {
    let out = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ringtail");
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn topics(b: &Broker, args: &[&str]) -> Out {
    let bootstrap = b.bootstrap();
    let mut all = vec!["topics", "--bootstrap-server", &bootstrap];
    all.extend_from_slice(args);
    ringtail(&all)
}

fn ok_topics(b: &Broker, args: &[&str]) -> String {
    let out = topics(b, args);
    assert!(out.ok, "topics {args:?}: {}{}", out.stdout, out.stderr);
    out.stdout
}

/// `ringtail coordinator --server S ARGS`; stdout when it exits 0.
fn shell(server: &str, args: &[&str]) -> Option<String> {
    let mut all = vec!["coordinator", "--server", server];
    all.extend_from_slice(args);
    let out = ringtail(&all);
    out.ok.then_some(out.stdout)
}

fn get(server: &str, path: &str) -> Option<String> {
    shell(server, &["get", path]).map(|s| s.lines().next().unwrap_or("").to_string())
}

fn ls(server: &str, path: &str) -> Option<String> {
    shell(server, &["ls", path]).map(|s| s.trim().to_string())
}

/// Polls `f` until it returns `Some` (a read on a follower may lag).
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `TopicId` column of `--describe`.
fn described_id(b: &Broker, topic: &str) -> String {
    let out = ok_topics(b, &["--describe", "--topic", topic]);
    out.lines()
        .next()
        .and_then(|l| l.split('\t').find_map(|c| c.strip_prefix("TopicId: ")))
        .unwrap_or_else(|| panic!("no TopicId in {out}"))
        .to_string()
}

fn topic_json(id: &str, partitions: u32, broker: u32) -> String {
    let parts: Vec<String> = (0..partitions)
        .map(|p| format!("\"{p}\":[{broker}]"))
        .collect();
    format!(
        "{{\"version\":3,\"topic_id\":\"{id}\",\"partitions\":{{{}}},\"adding_replicas\":{{}},\"removing_replicas\":{{}}}}",
        parts.join(",")
    )
}

/// `/brokers/topics/T`'s JSON for a given assignment.
fn assigned_json(id: &str, assignment: &[Vec<u32>]) -> String {
    let parts: Vec<String> = assignment
        .iter()
        .enumerate()
        .map(|(p, r)| {
            let r: Vec<String> = r.iter().map(u32::to_string).collect();
            format!("\"{p}\":[{}]", r.join(","))
        })
        .collect();
    format!(
        "{{\"version\":3,\"topic_id\":\"{id}\",\"partitions\":{{{}}},\"adding_replicas\":{{}},\"removing_replicas\":{{}}}}",
        parts.join(",")
    )
}

/// Each partition's replicas in `/brokers/topics/T`'s JSON (partitions
/// in order: the writer emits them so).
fn replicas_of(json: &str) -> Vec<Vec<u32>> {
    let body = json
        .split_once("\"partitions\":{")
        .and_then(|(_, rest)| rest.split_once('}'))
        .map(|(parts, _)| parts)
        .unwrap_or_else(|| panic!("no partitions in {json}"));
    body.split("],")
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (_, list) = p.split_once(":[").unwrap_or_else(|| panic!("{json}"));
            list.trim_end_matches(']')
                .split(',')
                .filter(|b| !b.is_empty())
                .map(|b| b.parse().unwrap_or_else(|_| panic!("{json}")))
                .collect()
        })
        .collect()
}

/// A partition state's field, e.g. `"leader"` or `"isr"` (raw JSON text).
fn state_field(state: &str, name: &str) -> String {
    let key = format!("\"{name}\":");
    let rest = state
        .split_once(&key)
        .map(|(_, r)| r)
        .unwrap_or_else(|| panic!("no {name} in {state}"));
    if rest.starts_with('[') {
        rest[..=rest.find(']').expect("]")].to_string()
    } else {
        rest.split([',', '}']).next().unwrap_or("").to_string()
    }
}

fn stat_field(stat: &str, name: &str) -> String {
    stat.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} = ")))
        .unwrap_or_else(|| panic!("no {name} in {stat}"))
        .to_string()
}

/// The milliseconds in `ctime = Sat Nov 21 20:50:33 UTC 2026 (1763...)`.
fn stat_ms(stat: &str, name: &str) -> u64 {
    let v = stat_field(stat, name);
    v.rsplit_once('(')
        .and_then(|(_, ms)| ms.strip_suffix(')'))
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("{name} = {v}"))
}

#[test]
fn topics_live_in_the_tree_and_survive_a_restart() {
    let ports = free_ports(2);
    let mut b = Broker::new("one", 0, String::new(), ports[0], ports[1]);
    // A table from before the tree (the local file alone) is migrated
    // into the tree on the first start.
    let cache = b.dir.join("data/__cluster_metadata/topics");
    std::fs::create_dir_all(cache.parent().expect("parent")).expect("cache dir");
    std::fs::write(
        &cache,
        "# ringtail topic table v1\ntopic legacy 0123456789abcdef0123456789abcdef 2 1 retention.ms=5000\n",
    )
    .expect("write a legacy table");
    b.start();
    b.wait_ready();
    let zk = b.server();
    assert_eq!(ls(&zk, "/brokers/topics").as_deref(), Some("[legacy]"));
    assert_eq!(
        get(&zk, "/brokers/topics/legacy").as_deref(),
        Some(topic_json("ASNFZ4mrze8BI0VniavN7w", 2, 0).as_str())
    );
    assert_eq!(
        get(&zk, "/config/topics/legacy").as_deref(),
        Some("{\"version\":1,\"config\":{\"retention.ms\":\"5000\"}}")
    );
    assert_eq!(described_id(&b, "legacy"), "ASNFZ4mrze8BI0VniavN7w");
    let mirrored = std::fs::read_to_string(&cache).expect("cache");
    assert!(
        mirrored.contains("# mirror of the coordinator tree"),
        "{mirrored}"
    );
    ok_topics(&b, &["--delete", "--topic", "legacy"]);

    let before = now_ms();
    ok_topics(
        &b,
        &[
            "--create",
            "--topic",
            "orders",
            "--partitions",
            "3",
            "--config",
            "retention.ms=60000",
        ],
    );
    ok_topics(&b, &["--create", "--topic", "audit", "--partitions", "1"]);
    let after = now_ms();
    assert_eq!(
        ls(&zk, "/brokers/topics").as_deref(),
        Some("[audit, orders]")
    );

    let orders_id = described_id(&b, "orders");
    assert_eq!(
        get(&zk, "/brokers/topics/orders").as_deref(),
        Some(topic_json(&orders_id, 3, 0).as_str())
    );
    assert_eq!(
        ls(&zk, "/brokers/topics/orders/partitions").as_deref(),
        Some("[0, 1, 2]")
    );
    // The first controller's epoch (taken right after registration).
    eventually("controller epoch 1", || {
        (get(&zk, "/controller_epoch").as_deref() == Some("1")).then_some(())
    });
    for p in 0..3 {
        let state = get(&zk, &format!("/brokers/topics/orders/partitions/{p}/state"))
            .expect("partition state");
        assert!(
            state == "{\"controller_epoch\":1,\"leader\":0,\"version\":1,\"leader_epoch\":0,\"isr\":[0]}"
                || state == "{\"controller_epoch\":0,\"leader\":0,\"version\":1,\"leader_epoch\":0,\"isr\":[0]}",
            "{state}"
        );
    }
    assert_eq!(
        get(&zk, "/config/topics/orders").as_deref(),
        Some("{\"version\":1,\"config\":{\"retention.ms\":\"60000\"}}")
    );
    assert_eq!(
        get(&zk, "/config/topics/audit").as_deref(),
        Some("{\"version\":1,\"config\":{}}")
    );
    let controller = get(&zk, "/controller").expect("/controller");
    assert!(
        controller.starts_with("{\"version\":2,\"brokerid\":0,\"timestamp\":\"")
            && controller.ends_with("\",\"kraftControllerEpoch\":-1}"),
        "{controller}"
    );
    let controller_stat = shell(&zk, &["stat", "/controller"]).expect("stat /controller");
    assert_ne!(stat_field(&controller_stat, "ephemeralOwner"), "0x0");

    // Stat times are the leader's wall clock when it proposed.
    let stat = shell(&zk, &["stat", "/brokers/topics/orders"]).expect("stat");
    let ctime = stat_ms(&stat, "ctime");
    assert!(
        (before.saturating_sub(1000)..=after + 1000).contains(&ctime),
        "ctime {ctime} outside [{before}, {after}]:\n{stat}"
    );
    assert!(stat_field(&stat, "ctime").contains(" UTC "), "{stat}");
    assert_eq!(stat_field(&stat, "dataVersion"), "0");

    // Growing a topic rewrites its node (version 1) and adds states.
    ok_topics(&b, &["--alter", "--topic", "orders", "--partitions", "5"]);
    assert_eq!(
        get(&zk, "/brokers/topics/orders").as_deref(),
        Some(topic_json(&orders_id, 5, 0).as_str())
    );
    let stat = shell(&zk, &["stat", "/brokers/topics/orders"]).expect("stat");
    assert_eq!(stat_field(&stat, "dataVersion"), "1");
    assert!(stat_ms(&stat, "mtime") >= ctime, "{stat}");
    assert!(get(&zk, "/brokers/topics/orders/partitions/4/state").is_some());

    // A config change rewrites /config/topics/T at the next version.
    assert_eq!(
        set_topic_configs(
            &b.bootstrap(),
            "orders",
            &[("retention.ms", "120000"), ("cleanup.policy", "compact")]
        ),
        0
    );
    assert_eq!(
        get(&zk, "/config/topics/orders").as_deref(),
        Some("{\"version\":1,\"config\":{\"cleanup.policy\":\"compact\",\"retention.ms\":\"120000\"}}")
    );
    let stat = shell(&zk, &["stat", "/config/topics/orders"]).expect("stat");
    assert_eq!(stat_field(&stat, "dataVersion"), "1");

    // A delete removes the topic's nodes, its config and the marker.
    ok_topics(&b, &["--delete", "--topic", "audit"]);
    assert_eq!(ls(&zk, "/brokers/topics").as_deref(), Some("[orders]"));
    assert_eq!(ls(&zk, "/config/topics").as_deref(), Some("[orders]"));
    assert_eq!(ls(&zk, "/admin/delete_topics").as_deref(), Some("[]"));
    assert!(get(&zk, "/brokers/topics/audit/partitions/0/state").is_none());

    // A name taken in the tree cannot be created again.
    let again = topics(&b, &["--create", "--topic", "orders"]);
    assert!(
        !again.ok && again.stderr.contains("TOPIC_ALREADY_EXISTS"),
        "{}",
        again.stderr
    );

    // Restart without the local cache: the tree alone has the table.
    b.terminate();
    std::fs::remove_file(&cache).expect("remove the cache");
    b.start();
    b.wait_ready();
    assert_eq!(ok_topics(&b, &["--list"]), "orders\n");
    assert_eq!(described_id(&b, "orders"), orders_id);
    let described = ok_topics(&b, &["--describe", "--topic", "orders"]);
    assert!(described.contains("PartitionCount: 5"), "{described}");
    assert!(described.contains("retention.ms=120000"), "{described}");
    assert!(described.contains("cleanup.policy=compact"), "{described}");
    // The restarted broker took the controller with the next epoch.
    eventually("controller epoch 2", || {
        (get(&zk, "/controller_epoch").as_deref() == Some("2")).then_some(())
    });
    let cached = std::fs::read_to_string(&cache).expect("the cache is rewritten");
    assert!(cached.contains("topic orders "), "{cached}");
}

#[test]
fn a_topic_created_through_one_broker_is_in_every_peers_tree() {
    let ports = free_ports(9);
    let peer_ports = &ports[..3];
    let voters = (0..3)
        .map(|i| format!("{i}@127.0.0.1:{}", peer_ports[i]))
        .collect::<Vec<_>>()
        .join(",");
    let mut brokers: Vec<Broker> = (0..3usize)
        .map(|i| {
            Broker::new(
                "three",
                i as u32,
                voters.clone(),
                ports[3 + i],
                ports[6 + i],
            )
        })
        .collect();
    for b in &mut brokers {
        b.start();
    }
    for b in &mut brokers {
        b.wait_ready();
    }
    ok_topics(
        &brokers[1],
        &["--create", "--topic", "shared", "--partitions", "2"],
    );
    let id = described_id(&brokers[1], "shared");
    // Replication factor 1: each partition on one of the three brokers.
    let expected = eventually("the topic", || {
        get(&brokers[1].server(), "/brokers/topics/shared")
    });
    let assignment = replicas_of(&expected);
    assert_eq!(assignment.len(), 2, "{expected}");
    assert!(
        assignment.iter().all(|r| r.len() == 1 && r[0] <= 2),
        "{expected}"
    );
    assert_eq!(expected, assigned_json(&id, &assignment));
    for b in &brokers {
        let server = b.server();
        let got = eventually("the topic on every peer", || {
            get(&server, "/brokers/topics/shared").filter(|g| *g == expected)
        });
        assert_eq!(got, expected);
        let leader = assignment[1][0];
        eventually("the partition state on every peer", || {
            get(&server, "/brokers/topics/shared/partitions/1/state").filter(|s| {
                s.contains(&format!("\"leader\":{leader},"))
                    && s.ends_with(&format!("\"isr\":[{leader}]}}"))
            })
        });
    }
    // The name is the cluster's: broker 2 cannot create it too.
    let clash = topics(&brokers[2], &["--create", "--topic", "shared"]);
    assert!(
        !clash.ok && clash.stderr.contains("TOPIC_ALREADY_EXISTS"),
        "{}",
        clash.stderr
    );
    // One controller for the ensemble.
    let controller = eventually("a controller", || get(&brokers[0].server(), "/controller"));
    assert!(
        ["0", "1", "2"]
            .iter()
            .any(|id| controller.contains(&format!("\"brokerid\":{id},"))),
        "{controller}"
    );

    // Broker 1 dies hard and comes back: its topic comes from the tree.
    brokers[1].kill9();
    brokers[1].start();
    brokers[1].wait_ready();
    assert_eq!(ok_topics(&brokers[1], &["--list"]), "shared\n");
    assert_eq!(described_id(&brokers[1], "shared"), id);
    // Deleting it through its broker removes it from every peer's tree.
    ok_topics(&brokers[1], &["--delete", "--topic", "shared"]);
    for b in &brokers {
        let server = b.server();
        eventually("the topic gone from every peer", || {
            (ls(&server, "/brokers/topics").as_deref() == Some("[]")).then_some(())
        });
    }
}

/// Three brokers, a topic with `--replication-factor 3`: every partition
/// has its replicas on the three brokers, leaders spread one per broker,
/// each state names the first replica leader with all three in the ISR at
/// leader epoch 0; a factor above the live brokers is refused with
/// INVALID_REPLICATION_FACTOR; every broker lists the topic.
#[test]
fn a_replicated_topic_is_assigned_over_the_three_brokers() {
    let ports = free_ports(9);
    let voters = (0..3)
        .map(|i| format!("{i}@127.0.0.1:{}", ports[i]))
        .collect::<Vec<_>>()
        .join(",");
    let mut brokers: Vec<Broker> = (0..3usize)
        .map(|i| Broker::new("rf3", i as u32, voters.clone(), ports[3 + i], ports[6 + i]))
        .collect();
    for b in &mut brokers {
        b.start();
    }
    for b in &mut brokers {
        b.wait_ready();
    }
    // All three registered before the topic is made (the assignment is
    // over the live brokers).
    eventually("three registered brokers", || {
        (ls(&brokers[0].server(), "/brokers/ids").as_deref() == Some("[0, 1, 2]")).then_some(())
    });
    let too_many = topics(
        &brokers[0],
        &["--create", "--topic", "wide", "--replication-factor", "4"],
    );
    assert!(
        !too_many.ok && too_many.stderr.contains("INVALID_REPLICATION_FACTOR"),
        "{}{}",
        too_many.stdout,
        too_many.stderr
    );
    ok_topics(
        &brokers[0],
        &[
            "--create",
            "--topic",
            "replicated",
            "--partitions",
            "3",
            "--replication-factor",
            "3",
        ],
    );
    let id = described_id(&brokers[0], "replicated");
    let server = brokers[0].server();
    let json = eventually("the topic", || get(&server, "/brokers/topics/replicated"));
    let assignment = replicas_of(&json);
    assert_eq!(json, assigned_json(&id, &assignment));
    assert_eq!(assignment.len(), 3, "{json}");
    for r in &assignment {
        let mut sorted = r.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![0, 1, 2], "{json}");
    }
    let mut leaders: Vec<u32> = assignment.iter().map(|r| r[0]).collect();
    leaders.sort_unstable();
    assert_eq!(leaders, vec![0, 1, 2], "leaders not spread: {json}");
    for b in &brokers {
        let server = b.server();
        for (p, r) in assignment.iter().enumerate() {
            let state = eventually("the partition state on every peer", || {
                get(
                    &server,
                    &format!("/brokers/topics/replicated/partitions/{p}/state"),
                )
            });
            assert_eq!(state_field(&state, "leader"), r[0].to_string(), "{state}");
            assert_eq!(state_field(&state, "leader_epoch"), "0", "{state}");
            let isr: Vec<String> = r.iter().map(u32::to_string).collect();
            assert_eq!(
                state_field(&state, "isr"),
                format!("[{}]", isr.join(",")),
                "{state}"
            );
        }
    }
    // Every broker's Metadata answer lists it. A broker loads the whole
    // cluster's topics at start (brokers 1 and 2 are restarted for that
    // until the broker refreshes its table from the cluster view).
    for b in &mut brokers[1..] {
        b.terminate();
        b.start();
        b.wait_ready();
    }
    for b in &brokers {
        assert_eq!(ok_topics(b, &["--list"]), "replicated\n");
        assert_eq!(described_id(b, "replicated"), id);
    }
}
