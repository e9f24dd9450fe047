//! The controller against real broker processes (three brokers, three
//! coordinator voters, loopback), read through `ringtail coordinator` as
//! an operator would with zkCli. No records are produced: this is the
//! control plane (partition states in the tree), with the replication
//! driver's followers fetching empty logs.
//!
//! - kill -9 of the broker leading partition 0: within seconds the state
//!   names another ISR member at leader epoch 1, the ISR lost the dead
//!   broker (in every partition), and a broker's log has the controller's
//!   line for it;
//! - the dead broker restarts: its registration is new (another czxid,
//!   the broker epoch) and it leads nothing in its old epoch; the
//!   partition's leader (the replication driver) adds it back to the ISR
//!   through the ISR writer, and the preferred-leader check makes it the
//!   leader again in a new epoch;
//! - a controlled-shutdown request (`/admin/controlled_shutdown/N`, which
//!   `Coordinator::controlled_shutdown` creates) moves every leadership of
//!   that broker to another ISR member and takes it out of the others'
//!   ISRs;
//! - fencing: once `/controller_epoch` moved on, the controller's write
//!   with the old epoch fails (it logs that it was deposed) and the
//!   partition states are written under the new epoch only.
//!
//! The brokers come from tests/cluster_harness (as in tests/cluster.rs).

mod cluster_harness;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cluster_harness::{pick_ports, serial, Cluster, BIN};

const TOPIC: &str = "ctl";
const PARTITIONS: usize = 3;

/// A broker's whole stderr (the controller's lines are checked in it).
fn broker_log(c: &mut Cluster, id: i32) -> String {
    std::fs::read_to_string(&c.node(id).log_path).unwrap_or_default()
}

/// `ringtail coordinator --server S ARGS`; stdout when it exits 0.
fn shell(server: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(BIN)
        .args(["coordinator", "--server", server])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ringtail");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn get(server: &str, path: &str) -> Option<String> {
    shell(server, &["get", path]).map(|s| s.lines().next().unwrap_or("").to_string())
}

fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A partition state, parsed from Kafka's JSON.
#[derive(Clone, Debug, PartialEq)]
struct State {
    controller_epoch: i64,
    leader: i32,
    leader_epoch: i32,
    isr: Vec<i32>,
}

fn field<'a>(json: &'a str, name: &str) -> &'a str {
    let key = format!("\"{name}\":");
    let rest = json
        .split_once(&key)
        .map(|(_, r)| r)
        .unwrap_or_else(|| panic!("no {name} in {json}"));
    if rest.starts_with('[') {
        &rest[1..rest.find(']').expect("]")]
    } else {
        rest.split([',', '}']).next().unwrap_or("")
    }
}

fn parse_state(json: &str) -> State {
    let int = |name| {
        field(json, name)
            .parse()
            .unwrap_or_else(|_| panic!("{name} in {json}"))
    };
    State {
        controller_epoch: int("controller_epoch"),
        leader: int("leader") as i32,
        leader_epoch: int("leader_epoch") as i32,
        isr: field(json, "isr")
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().expect("isr member"))
            .collect(),
    }
}

fn state(server: &str, p: usize) -> Option<State> {
    get(
        server,
        &format!("/brokers/topics/{TOPIC}/partitions/{p}/state"),
    )
    .map(|s| parse_state(&s))
}

fn states(server: &str) -> Option<Vec<State>> {
    (0..PARTITIONS).map(|p| state(server, p)).collect()
}

/// czxid of a node, from `stat`.
fn czxid(server: &str, path: &str) -> Option<String> {
    shell(server, &["stat", path])?
        .lines()
        .find_map(|l| l.strip_prefix("cZxid = ").map(str::to_string))
}

fn list(v: &[i32]) -> String {
    let items: Vec<String> = v.iter().map(i32::to_string).collect();
    format!("[{}]", items.join(","))
}

fn controller_of(server: &str) -> Option<i32> {
    field(&get(server, "/controller")?, "brokerid").parse().ok()
}

fn epoch_of(server: &str) -> Option<i64> {
    get(server, "/controller_epoch")?.trim().parse().ok()
}

#[test]
fn the_controller_fails_over_fences_and_drains() {
    let _serial = serial();
    let mut c = Cluster::loopback(
        "controller",
        3,
        &[
            "shard.count=1",
            // Preferred leaders come back within a second.
            "leader.imbalance.check.interval.seconds=1",
            // Kafka's default: ISR changes here come from the controller.
            "replica.lag.time.max.ms=30000",
        ],
    );
    c.start_all();
    c.create_topic(TOPIC, 3, 3, &[]);
    let first = c.node(1).coordinator_server();
    let initial = eventually("the states", || states(&first));
    assert!(initial
        .iter()
        .all(|s| s.leader_epoch == 0 && s.isr.len() == 3));
    let controller = eventually("a controller", || controller_of(&first));

    // 1. The controller epoch moves on behind the controller's back (as
    //    when another broker took over), then the leader of a partition
    //    (one the controller does not lead) dies with kill -9.
    let k = (0..PARTITIONS)
        .find(|&p| initial[p].leader != controller)
        .expect("a partition led by another broker");
    let dead = initial[k].leader;
    let server = c.node(controller).coordinator_server();
    let fenced_epoch = epoch_of(&server).expect("epoch") + 100;
    assert!(shell(
        &server,
        &["set", "/controller_epoch", &fenced_epoch.to_string()]
    )
    .is_some());
    let old_registration = czxid(&server, &format!("/brokers/ids/{dead}")).expect("registration");
    c.kill9(dead);
    let started = Instant::now();
    let after = eventually("new leaders without the dead broker", || {
        let now = states(&server)?;
        now.iter()
            .all(|s| s.leader != dead && !s.isr.contains(&dead))
            .then_some(now)
    });
    let failover = started.elapsed();
    let pk = &after[k];
    let expected_isr: Vec<i32> = initial[k]
        .isr
        .iter()
        .copied()
        .filter(|&b| b != dead)
        .collect();
    assert!(initial[k].isr.contains(&pk.leader), "{pk:?}");
    assert_eq!(pk.leader_epoch, 1, "{pk:?}");
    assert_eq!(pk.isr, expected_isr, "{pk:?}");
    // Every write after the epoch moved carries the new epoch: the first
    // try with the old one failed on the fence.
    for s in &after {
        assert_eq!(s.controller_epoch, fenced_epoch, "{after:?}");
    }
    let log = broker_log(&mut c, controller);
    assert!(log.contains("controller: deposed"), "{log}");
    let line = format!(
        "controller: {TOPIC}-{k} leader {dead} -> {}, epoch 0 -> 1, isr {} -> {} (broker {dead} gone)",
        pk.leader,
        list(&initial[k].isr),
        list(&pk.isr)
    );
    assert!(log.contains(&line), "no {line:?} in:\n{log}");
    println!("failover after kill -9 of broker {dead}: {failover:?}; {line}");

    // 2. It restarts with a new registration and leads nothing in an old
    //    epoch.
    c.start(dead);
    let new_registration = eventually("the new registration", || {
        czxid(&server, &format!("/brokers/ids/{dead}")).filter(|z| *z != old_registration)
    });
    println!("broker {dead} registered again: cZxid {old_registration} -> {new_registration}");
    let now = states(&server).expect("states");
    for (p, s) in now.iter().enumerate() {
        assert!(
            s.leader != dead || s.leader_epoch > initial[p].leader_epoch,
            "{p}: {s:?}"
        );
    }

    // Its replica catches up (an empty log) and the leader of partition k
    // adds it back to the ISR through the controller module's ISR writer,
    // naming its new broker epoch (KIP-903); then, as the preferred
    // replica (first in the assignment), it leads again in a new epoch.
    let back = eventually("the preferred leader back at partition k", || {
        let s = state(&server, k)?;
        (s.leader == dead).then_some(s)
    });
    assert!(back.leader_epoch >= 2, "{back:?}");
    let log = broker_log(&mut c, controller);
    assert!(
        log.contains(&format!(
            "controller: {TOPIC}-{k} leader {} -> {dead}",
            pk.leader
        )) && log.contains("(preferred leader)"),
        "{log}"
    );
    println!("broker {dead} rejoined the ISR and leads partition {k} again: {back:?}");
    let now = states(&server).expect("states");

    // 3. A controlled shutdown of the broker leading partition 0: its
    //    leaderships move to other ISR members, it leaves the ISRs.
    let draining = now[0].leader;
    let _ = shell(&server, &["create", "/admin/controlled_shutdown", ""]);
    let marker = format!("/admin/controlled_shutdown/{draining}");
    assert!(shell(&server, &["create", &marker, ""]).is_some());
    let drained = eventually("leaderships moved off the draining broker", || {
        let s = states(&server)?;
        s.iter()
            .all(|s| {
                if s.leader == draining {
                    s.isr == vec![draining]
                } else {
                    !s.isr.contains(&draining)
                }
            })
            .then_some(s)
    });
    assert_ne!(drained[0].leader, draining, "{drained:?}");
    let log = broker_log(&mut c, controller);
    assert!(
        log.contains(&format!("(controlled shutdown of broker {draining}")),
        "{log}"
    );
    assert!(shell(&server, &["delete", &marker]).is_some());

    // 4. The controller itself dies: another broker takes over in a later
    //    epoch, and partitions it led move or go offline.
    let before = states(&server).expect("states");
    let led: Vec<usize> = (0..PARTITIONS)
        .filter(|&p| before[p].leader == controller)
        .collect();
    c.kill9(controller);
    let other = c
        .ids()
        .into_iter()
        .find(|&b| b != controller)
        .expect("another broker");
    let server = c.node(other).coordinator_server();
    let (next, epoch) = eventually("a new controller", || {
        let c = controller_of(&server)?;
        (c != controller).then_some((c, epoch_of(&server)?))
    });
    assert!(epoch > fenced_epoch, "epoch {epoch} after {fenced_epoch}");
    let last = eventually("partitions off the dead controller", || {
        let s = states(&server)?;
        led.iter().all(|&p| s[p].leader != controller).then_some(s)
    });
    for &p in &led {
        assert_eq!(last[p].controller_epoch, epoch, "{:?}", last[p]);
        assert!(
            last[p].leader_epoch > before[p].leader_epoch,
            "{:?}",
            last[p]
        );
    }
    println!("broker {next} took over as controller in epoch {epoch}");
}

/// The control plane's Rust API on three in-process coordinators (each
/// its own thread, real sockets between them): the published view and a
/// subscriber, replica assignment through the topic store, leaders' ISR
/// proposals (commit, idempotent retry, stale version, KIP-903 refusal of
/// a joining replica with a wrong broker epoch) and a blocking controlled
/// shutdown that returns once leadership moved.
#[test]
fn the_control_plane_api_in_process() {
    use std::collections::BTreeMap;
    use std::sync::mpsc;
    use std::sync::Arc;

    use ringtail::config::BrokerConfig;
    use ringtail::controller::{ClusterView, IsrOutcome};
    use ringtail::metadata::{random_id, TopicMeta};

    let _serial = serial();
    let root = std::env::temp_dir().join(format!("ringtail-controller-api-{}", std::process::id()));
    // A port picked free may be taken by an outgoing connection before it
    // is bound: start again on new ports then.
    let start_all = || -> Result<Vec<ringtail::coordinator::Coordinator>, String> {
        let _ = std::fs::remove_dir_all(&root);
        let ports = pick_ports(9);
        let voters = (0..3)
            .map(|i| format!("{i}@127.0.0.1:{}", ports[i]))
            .collect::<Vec<_>>()
            .join(",");
        let mut started = Vec::new();
        for i in 0..3usize {
            let pairs: Vec<(String, String)> = [
                ("broker.id", i.to_string()),
                (
                    "listeners",
                    format!("PLAINTEXT://127.0.0.1:{}", ports[6 + i]),
                ),
                ("log.dirs", root.join(i.to_string()).display().to_string()),
                ("coordinator.client.port", ports[3 + i].to_string()),
                ("coordinator.voters", voters.clone()),
                ("broker.rack", format!("rack-{i}")),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            let (config, _) = BrokerConfig::from_pairs(&pairs).expect("config");
            match ringtail::coordinator::start(&config, "controller-api-test") {
                Ok(c) => started.push(c),
                Err(e) => {
                    for c in started {
                        c.shutdown();
                    }
                    return Err(e);
                }
            }
        }
        Ok(started)
    };
    let mut attempts = 0;
    let coordinators = loop {
        match start_all() {
            Ok(c) => break c,
            Err(e) if e.contains("in use") && attempts < 5 => {
                attempts += 1;
                eprintln!("starting again on other ports: {e}");
            }
            Err(e) => panic!("start: {e}"),
        }
    };
    let view = coordinators[0].view();
    let (tx, rx) = mpsc::channel::<Arc<ClusterView>>();
    coordinators[0].subscribe(Box::new(move |v| {
        let _ = tx.send(v);
    }));
    let wait_view = |what: &str, f: &dyn Fn(&ClusterView) -> bool| -> Arc<ClusterView> {
        eventually(what, || {
            let v = view.load_full();
            f(&v).then_some(v)
        })
    };
    let v = wait_view("three brokers in the view", &|v| v.brokers.len() == 3);
    for (id, b) in &v.brokers {
        assert_eq!(b.rack.as_deref(), Some(format!("rack-{id}").as_str()));
        assert_eq!(b.epoch, coordinators[*id as usize].broker_epoch(), "{b:?}");
    }
    // Rack-aware assignment: 3 racks, RF 3, every partition on all racks.
    let store = coordinators[1].topic_store(1);
    let topic = TopicMeta {
        name: "api".into(),
        id: random_id(),
        partitions: 2,
        replication_factor: 3,
        configs: BTreeMap::new(),
    };
    store.write(None, Some(&topic)).expect("create");
    let v = wait_view("the topic in the view", &|v| v.topics.contains_key("api"));
    let t = v.topics["api"].clone();
    assert_eq!(t.id, topic.id);
    let p0 = t.partitions[0].clone();
    assert_eq!(p0.replicas.len(), 3);
    assert_eq!((p0.leader, p0.leader_epoch), (p0.replicas[0], 0));
    assert_eq!(p0.isr, p0.replicas);
    // The subscriber saw it too (views in order, the topic in one).
    let seen = eventually("the subscriber's view with the topic", || {
        rx.recv_timeout(Duration::from_millis(100))
            .ok()
            .filter(|v| v.topics.contains_key("api"))
    });
    assert!(seen.zxid >= v.zxid || seen.topics["api"] == t);

    // ISR proposals from the leader of partition 0.
    let leader = p0.leader;
    let (x, y) = (p0.replicas[1], p0.replicas[2]);
    let writer = coordinators[2].isr_writer();
    let propose = |isr: Vec<i32>, expected: i32, joining: Option<(i32, i64)>| {
        let w = writer.clone();
        ringtail_io::rt::block_on(async move {
            w.propose("api".into(), 0, leader, 0, isr, expected, joining)
                .await
        })
        .expect("an answer")
    };
    let v0 = p0.version;
    assert_eq!(
        propose(vec![leader, x], v0, None),
        IsrOutcome::Committed { version: v0 + 1 }
    );
    // The retry of a write whose answer was lost.
    assert_eq!(
        propose(vec![leader, x], v0, None),
        IsrOutcome::Committed { version: v0 + 1 }
    );
    // A proposal based on a version that moved on.
    assert_eq!(
        propose(vec![leader], v0, None),
        IsrOutcome::Rejected {
            leader,
            leader_epoch: 0,
            isr: vec![leader, x],
            version: v0 + 1
        }
    );
    // KIP-903: y joins only in its current broker epoch; a refusal
    // rewrites the state at a new version.
    let y_epoch = coordinators[y as usize].broker_epoch();
    assert!(y_epoch > 0);
    assert_eq!(
        propose(vec![leader, x, y], v0 + 1, Some((y, y_epoch - 1))),
        IsrOutcome::Rejected {
            leader,
            leader_epoch: 0,
            isr: vec![leader, x],
            version: v0 + 2
        }
    );
    assert_eq!(
        propose(vec![leader, x, y], v0 + 2, Some((y, y_epoch))),
        IsrOutcome::Committed { version: v0 + 3 }
    );

    // The leader asks for a controlled shutdown: it returns once another
    // ISR member leads each of its partitions.
    coordinators[leader as usize]
        .controlled_shutdown(Duration::from_secs(20))
        .expect("controlled shutdown");
    // The published view follows within a tick, one partition state at a
    // time: wait until it shows them all moved (the controller writes
    // partition 1's state just after partition 0's).
    let leader_view = coordinators[leader as usize].view();
    let after = eventually("the view after the controlled shutdown", || {
        let v = leader_view.load_full();
        let parts = &v.topics["api"].partitions;
        let moved = parts[0].leader_epoch == 1
            && parts
                .iter()
                .all(|info| info.leader != leader && !info.isr.contains(&leader));
        moved.then_some(v)
    });
    assert!(after.shutting_down.contains(&leader));
    for (p, info) in after.topics["api"].partitions.iter().enumerate() {
        assert_ne!(info.leader, leader, "partition {p}: {info:?}");
        assert!(!info.isr.contains(&leader), "partition {p}: {info:?}");
    }
    let moved = &after.topics["api"].partitions[0];
    assert!(moved.leader == x || moved.leader == y, "{moved:?}");
    assert_eq!(moved.leader_epoch, 1, "{moved:?}");
    // A follower's controlled shutdown returns once it is out of the ISR
    // of partition 1 (led by another broker).
    let p1 = after.topics["api"].partitions[1].clone();
    let follower = *p1
        .isr
        .iter()
        .find(|&&b| b != p1.leader)
        .expect("a follower of partition 1");
    coordinators[follower as usize]
        .controlled_shutdown(Duration::from_secs(20))
        .expect("a follower's controlled shutdown");
    let follower_view = coordinators[follower as usize].view();
    eventually("the follower out of partition 1's ISR", || {
        let v = follower_view.load_full();
        (!v.topics["api"].partitions[1].isr.contains(&follower)).then_some(())
    });
    // The old leader's epoch is fenced now.
    assert!(matches!(
        propose(vec![leader, x, y], moved.version, None),
        IsrOutcome::Rejected { .. }
    ));
    for c in coordinators {
        c.shutdown();
    }
    let _ = std::fs::remove_dir_all(&root);
}
