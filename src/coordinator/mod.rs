//! The embedded coordinator: one ZAB peer per broker, driven on its own
//! thread (control plane, not a shard) by an io_uring runtime.
//!
//! # Layout
//!
//! - [`wal`]: the append-only log of the core's `Persist` records, crash
//!   recovery (torn tail cut off) and the boot counter.
//! - [`driver`]: the event loop: ticks, group-committed WAL writes,
//!   links to the other voters, the tools' port.
//! - [`protocol`]: the tools' request/response frames.
//! - [`client`]: a blocking client of that protocol and the
//!   `ringtail coordinator` shell (zkCli's `ls`, `get`, `stat`, ...).
//!
//! - [`jobs`]: other threads' work on the tree (a `Send` handle).
//! - [`topics`]: the topic table in Kafka's layout, the broker's
//!   [`crate::metadata::TopicStore`].
//!
//! [`start`] also opens this broker's session and keeps
//! `/brokers/ids/<broker.id>` (ephemeral, Kafka's v5 JSON with `rack`
//! when `broker.rack` is set; its czxid is the broker epoch,
//! [`Coordinator::broker_epoch`]) and `/cluster/id` in the tree, as a
//! Kafka broker does in ZooKeeper; [`Coordinator::shutdown`] closes the
//! session so the broker's node goes at once.
//!
//! The same thread runs the control plane ([`crate::controller`]): the
//! cluster view ([`Coordinator::view`], [`Coordinator::subscribe`]), the
//! controller's decisions when this broker holds `/controller`, leaders'
//! ISR writes ([`Coordinator::isr_writer`]) and controlled shutdown
//! ([`Coordinator::controlled_shutdown`]).
//!
//! The controller: the first broker to create the ephemeral `/controller`
//! (`{"version":2,"brokerid":N,"timestamp":"ms","kraftControllerEpoch":-1}`)
//! holds it, in one `multi` with the increment of `/controller_epoch`
//! (conditional on its version), as Kafka's
//! `registerControllerAndIncrementControllerEpoch` does. The broker whose
//! peer leads tries first; the others wait a second, so the controller
//! is usually on the leader. When the holder's session ends the node
//! goes and the next broker takes over with the next epoch.
//!
//! Stat times: the driver hands the core the wall clock before every
//! input, and the leader stamps each proposal with it (ZooKeeper's
//! leader does the same in prep), so ctime/mtime are real milliseconds
//! and equal on every peer.

pub mod client;
pub mod driver;
pub mod jobs;
pub mod json;
pub mod protocol;
pub mod topics;
pub mod wal;

use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ringtail_coordinator::clients::{ClientOp, Response};
use ringtail_coordinator::ids::{NodeId, SessionId, Zxid};
use ringtail_coordinator::kafka;
use ringtail_coordinator::peer::{Config, Peer};
use ringtail_coordinator::txn::{CreateMode, ErrorCode, OpResult, WriteOp};
use ringtail_io::rt::net::TcpListener;
use ringtail_io::rt::time::{sleep, timeout};

use crate::config::BrokerConfig;
use crate::controller::driver::Settings;
use crate::controller::{ClusterView, IsrWriter, Published};
use arc_swap::ArcSwap;
use driver::Node;

/// The control plane's pieces the coordinator thread drives.
struct Control {
    registration: Registration,
    published: Arc<Published>,
    broker_epoch: Arc<AtomicI64>,
    settings: Settings,
}

/// The real-time length of one core tick.
pub const TICK_MS: u64 = 50;
/// ZooKeeper's default `clientPort`, used when `coordinator.client.port`
/// is unset and the port is free.
pub const CLIENT_PORT_DEFAULT: u16 = 2181;
/// The WAL is rewritten compactly once past this size (and doubled since
/// the last rewrite).
const WAL_COMPACT_BYTES_MIN: u64 = 64 << 20;
/// The broker session's timeout; the core clamps it to 2..20 ticks.
const SESSION_TIMEOUT_MS: u32 = 1000;

/// A running coordinator thread.
pub struct Coordinator {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    inbox: Arc<jobs::Inbox>,
    broker_id: i32,
    published: Arc<Published>,
    broker_epoch: Arc<AtomicI64>,
    /// The tools' address, when listening.
    pub client_addr: Option<SocketAddr>,
}

/// How long a broker's start waits for its ensemble before it falls back
/// to the cached topic table.
const TOPICS_LOAD_WAIT: Duration = Duration::from_secs(20);

impl Coordinator {
    /// The broker's topic table in the tree.
    pub fn topic_store(&self, broker_id: i32) -> Box<dyn crate::metadata::TopicStore> {
        Box::new(topics::TreeTopics {
            client: jobs::TreeClient {
                inbox: self.inbox.clone(),
            },
            broker_id,
            load_wait: TOPICS_LOAD_WAIT,
        })
    }

    /// The cluster view, rebuilt from this peer's committed tree within a
    /// tick (50 ms) of every change (see [`crate::controller`]).
    pub fn view(&self) -> Arc<ArcSwap<ClusterView>> {
        self.published.view()
    }

    /// Calls `f` at once with the current view (on the calling thread),
    /// then with each new view on the `cluster-view` thread (not the
    /// coordinator thread, so `f` may block; views published meanwhile
    /// are coalesced into the latest). `f` must not subscribe.
    pub fn subscribe(&self, f: Box<dyn Fn(Arc<ClusterView>) + Send>) {
        self.published.subscribe(f);
    }

    /// This broker's epoch (KIP-380): the czxid of its current
    /// `/brokers/ids/N`, -1 while unregistered. Changes when the broker
    /// registers again (a new session after an expiry).
    pub fn broker_epoch(&self) -> i64 {
        self.broker_epoch.load(Ordering::SeqCst)
    }

    /// A handle for partition leaders' ISR changes.
    pub fn isr_writer(&self) -> IsrWriter {
        IsrWriter {
            client: jobs::TreeClient {
                inbox: self.inbox.clone(),
            },
        }
    }

    /// Kafka's controlled shutdown, blocking: creates the ephemeral
    /// `/admin/controlled_shutdown/<broker.id>`, on which the controller
    /// moves this broker's leaderships to other ISR members and removes
    /// it from the ISRs of partitions others lead; returns once no
    /// partition state names this broker leader while another live ISR
    /// member (not shutting down) exists, and no partition led by another
    /// broker has it in its ISR (so a follower's exit cannot leave an ISR
    /// that only a quorum it breaks could shrink). `Err` after `wait`
    /// (naming the partitions left) or without a quorum; the broker may
    /// stop anyway. The marker goes with the broker's session.
    pub fn controlled_shutdown(&self, wait: Duration) -> Result<(), String> {
        let me = self.broker_id;
        let client = jobs::TreeClient {
            inbox: self.inbox.clone(),
        };
        client.run(wait + Duration::from_secs(1), move |ctx| async move {
            crate::controller::driver::controlled_shutdown(&ctx, me, wait).await
        })?
    }

    /// The cluster id in the tree (`/cluster/id`, Kafka's JSON), which the
    /// first broker to register created: every broker of the cluster
    /// reports it. Waits up to `wait` for the ensemble and registration.
    pub fn cluster_id(&self, wait: Duration) -> Result<String, String> {
        let client = jobs::TreeClient {
            inbox: self.inbox.clone(),
        };
        client.run(wait + Duration::from_secs(1), move |ctx| async move {
            let deadline = std::time::Instant::now() + wait;
            ctx.synced(deadline).await?;
            ctx.session(deadline).await?;
            let (data, _) = ctx
                .get(kafka::CLUSTER_ID)
                .ok_or_else(|| format!("{} is missing", kafka::CLUSTER_ID))?;
            let text = String::from_utf8_lossy(&data).to_string();
            json::parse(&text)
                .ok()
                .and_then(|v| v.get("id").and_then(json::Json::as_str).map(str::to_string))
                .ok_or_else(|| format!("{} holds no id: {text}", kafka::CLUSTER_ID))
        })?
    }

    /// Closes the broker's session (its ephemeral node goes) and stops the
    /// thread. Waits at most a few seconds for a quorum.
    pub fn shutdown(mut self) {
        self.published.stop();
        self.inbox.close();
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        self.published.stop();
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// What the broker registers in the tree.
#[derive(Clone, Debug)]
struct Registration {
    broker_id: u32,
    broker_json: String,
    cluster_id: String,
}

fn resolve(host: &str, port: u16, key: &str) -> Result<SocketAddr, String> {
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("{key}: cannot resolve {host}:{port}"))
}

/// Kafka's `/brokers/ids/N` JSON (version 5).
fn broker_json(config: &BrokerConfig) -> String {
    let endpoints: Vec<String> = config
        .advertised_listeners
        .iter()
        .map(|l| format!("\"{}://{}:{}\"", l.name, l.host, l.port))
        .collect();
    let protocols: Vec<String> = config
        .advertised_listeners
        .iter()
        .map(|l| format!("\"{}\":\"PLAINTEXT\"", l.name))
        .collect();
    let a = config.advertised();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let rack = config
        .broker_rack
        .as_ref()
        .map_or(String::new(), |r| format!(",\"rack\":{}", json::quote(r)));
    format!(
        "{{\"listener_security_protocol_map\":{{{}}},\"endpoints\":[{}],\"jmx_port\":-1,\"features\":{{}},\"host\":\"{}\",\"timestamp\":\"{now_ms}\",\"port\":{},\"version\":5{rack}}}",
        protocols.join(","),
        endpoints.join(","),
        a.host,
        a.port
    )
}

fn peer_config(config: &BrokerConfig, me: NodeId, voters: Vec<NodeId>, incarnation: u64) -> Config {
    Config {
        id: me,
        voters,
        observers: Vec::new(),
        incarnation,
        tick_ms: TICK_MS,
        // 2 s to get through discovery and sync, 500 ms of silence
        // before giving up on a leader or learner.
        init_limit_ticks: 40,
        sync_limit_ticks: 10,
        // Different resend periods per voter break symmetric rounds.
        election_resend_ticks: 2 + (me.0 + incarnation) % 4,
        snapshot_every_txns: 10_000,
        log_keep_txns: 500,
        zxid_counter_max: u32::MAX,
        data_bytes_max: config.message_max_bytes.min(1 << 20),
        client_requests_max: 1024,
        bug_ack_newleader_before_txns: false,
    }
}

/// Binds `addr`, waiting up to 2 s while it is in use: after a broker
/// exits, the kernel frees its io_uring-owned listeners a little late
/// (the broker's own listener has the same grace, `broker::probe_listen`).
fn bind_with_grace(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        match std::net::TcpListener::bind(addr) {
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// Binds the tools' port: the configured one (an error if taken) or
/// ZooKeeper's default when free.
fn bind_client(config: &BrokerConfig, host: &str) -> Result<Option<std::net::TcpListener>, String> {
    match config.coordinator_client_port {
        Some(port) => {
            let addr = resolve(host, port, "coordinator.client.port")?;
            bind_with_grace(addr)
                .map(Some)
                .map_err(|e| format!("coordinator.client.port: cannot listen on {addr}: {e}"))
        }
        None => {
            let addr = resolve(host, CLIENT_PORT_DEFAULT, "coordinator.client.port")?;
            match std::net::TcpListener::bind(addr) {
                Ok(l) => Ok(Some(l)),
                Err(e) => {
                    eprintln!(
                        "warning: coordinator.client.port unset and {addr} is taken ({e}): no tools port"
                    );
                    Ok(None)
                }
            }
        }
    }
}

/// Starts the coordinator thread: recovers the WAL, binds the peer and
/// tools ports (errors name the key), then runs until
/// [`Coordinator::shutdown`]. Does not wait for an election.
pub fn start(config: &BrokerConfig, cluster_id: &str) -> Result<Coordinator, String> {
    let me = NodeId(config.broker_id as u64);
    let voters = &config.coordinator_voters;
    let mut others = Vec::new();
    let mut peer_addr = None;
    for v in voters {
        let addr = resolve(&v.host, v.port, "coordinator.voters")?;
        if v.id == me.0 {
            peer_addr = Some(addr);
        } else {
            others.push((NodeId(v.id), addr));
        }
    }
    let voter_ids: Vec<NodeId> = if voters.is_empty() {
        vec![me]
    } else {
        voters.iter().map(|v| NodeId(v.id)).collect()
    };
    let peer_listener = match peer_addr {
        Some(addr) => Some(
            bind_with_grace(addr)
                .map_err(|e| format!("coordinator.voters: cannot listen on {addr}: {e}"))?,
        ),
        None => None,
    };
    let client_host =
        peer_addr.map_or_else(|| config.listeners[0].host.clone(), |a| a.ip().to_string());
    let client_listener = bind_client(
        config,
        if client_host.is_empty() {
            "0.0.0.0"
        } else {
            &client_host
        },
    )?;
    let client_addr = client_listener.as_ref().and_then(|l| l.local_addr().ok());
    let dir = config.coordinator_dir();
    let recovered = wal::recover(&dir)?;
    if recovered.truncated_bytes > 0 {
        eprintln!(
            "coordinator: cut a torn tail of {} bytes off {}",
            recovered.truncated_bytes,
            wal::wal_path(&dir).display()
        );
    }
    let cfg = peer_config(config, me, voter_ids, recovered.incarnation);
    let peer = Peer::restore(cfg, recovered.state.clone())
        .map_err(|e| format!("coordinator.data.dir {}: {e}", dir.display()))?;
    let registration = Registration {
        broker_id: config.broker_id as u32,
        broker_json: broker_json(config),
        cluster_id: cluster_id.to_string(),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = stop.clone();
    let inbox = Arc::new(jobs::Inbox::default());
    let thread_inbox = inbox.clone();
    let published = Arc::new(Published::default());
    let broker_epoch = Arc::new(AtomicI64::new(-1));
    let control = Control {
        registration,
        published: published.clone(),
        broker_epoch: broker_epoch.clone(),
        settings: Settings {
            unclean: config.unclean_leader_election_enable,
            rebalance: config.auto_leader_rebalance_enable,
            rebalance_interval_ms: config.leader_imbalance_check_interval_ms,
        },
    };
    // Listeners move to the thread as std sockets and are re-bound there
    // on the ring (same address, the std socket is closed first).
    let peer_addr_bound = peer_listener.as_ref().and_then(|l| l.local_addr().ok());
    drop(peer_listener);
    drop(client_listener);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let thread = std::thread::Builder::new()
        .name("coordinator".into())
        .spawn(move || {
            ringtail_io::rt::block_on(async move {
                let wal = match wal::Wal::open(&dir, &recovered, WAL_COMPACT_BYTES_MIN) {
                    Ok(w) => w,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let node = Node::new(peer, wal, &others);
                let bind = |addr: Option<SocketAddr>, key: &str| match addr {
                    None => Ok(None),
                    Some(a) => TcpListener::bind_reuseport(a)
                        .map(Some)
                        .map_err(|e| format!("{key}: cannot listen on {a}: {e}")),
                };
                let listeners = bind(peer_addr_bound, "coordinator.voters")
                    .and_then(|p| Ok((p, bind(client_addr, "coordinator.client.port")?)));
                let (peer_l, client_l) = match listeners {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                run(
                    node,
                    others,
                    peer_l,
                    client_l,
                    thread_stop,
                    thread_inbox,
                    control,
                )
                .await;
            });
        })
        .map_err(|e| format!("cannot start the coordinator thread: {e}"))?;
    match ready_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            let _ = thread.join();
            return Err(e);
        }
        Err(_) => return Err("the coordinator thread died during start-up".into()),
    }
    let delivery = published.clone();
    if let Err(e) = std::thread::Builder::new()
        .name("cluster-view".into())
        .spawn(move || delivery.deliver())
    {
        stop.store(true, Ordering::SeqCst);
        let _ = thread.join();
        return Err(format!("cannot start the cluster-view thread: {e}"));
    }
    Ok(Coordinator {
        stop,
        thread: Some(thread),
        inbox,
        broker_id: config.broker_id,
        published,
        broker_epoch,
        client_addr,
    })
}

async fn run(
    node: Rc<Node>,
    others: Vec<(NodeId, SocketAddr)>,
    peer_listener: Option<TcpListener>,
    client_listener: Option<TcpListener>,
    stop: Arc<AtomicBool>,
    inbox: Arc<jobs::Inbox>,
    control: Control,
) {
    use ringtail_io::rt::spawn;
    spawn(driver::ticker(node.clone(), Duration::from_millis(TICK_MS)));
    spawn(driver::wal_writer(node.clone()));
    for (id, _) in &others {
        spawn(driver::sender(node.clone(), *id));
    }
    if let Some(l) = peer_listener {
        spawn(driver::peer_acceptor(node.clone(), l));
    }
    if let Some(l) = client_listener {
        spawn(driver::client_acceptor(node.clone(), l));
    }
    let session = Rc::new(std::cell::Cell::new(None));
    let ctx = Rc::new(jobs::Ctx {
        node: node.clone(),
        session: session.clone(),
    });
    spawn(jobs::serve(inbox, ctx.clone()));
    spawn(crate::controller::driver::run(
        ctx,
        control.published,
        control.settings,
        stop.clone(),
    ));
    spawn(register(
        node.clone(),
        control.registration,
        session.clone(),
        control.broker_epoch,
        stop.clone(),
    ));
    while !stop.load(Ordering::SeqCst) {
        sleep(Duration::from_millis(TICK_MS)).await;
    }
    if let Some(s) = session.get() {
        let close = node.request(Some(s), ClientOp::Write(WriteOp::CloseSession), Zxid::ZERO);
        match timeout(Duration::from_secs(3), close).await {
            Ok((_, Response::Write { .. })) => {}
            other => eprintln!("coordinator: could not close the broker session: {other:?}"),
        }
    }
}

async fn write(
    node: &Node,
    session: Option<SessionId>,
    op: WriteOp,
) -> Result<OpResult, ErrorCode> {
    match node
        .request(session, ClientOp::Write(op), Zxid::ZERO)
        .await
        .1
    {
        Response::Write {
            result: OpResult::Error(code),
            ..
        } => Err(code),
        Response::Write { result, .. } => Ok(result),
        Response::Error(code) => Err(code),
        _ => Err(ErrorCode::RuntimeInconsistency),
    }
}

fn create(path: &str, data: &[u8], mode: CreateMode) -> WriteOp {
    WriteOp::Create {
        path: path.to_string(),
        data: data.to_vec(),
        mode,
    }
}

/// Keeps this broker registered: a session, Kafka's persistent parents,
/// `/cluster/id`, and the ephemeral `/brokers/ids/N`; pings the session
/// and starts over when it or the node is gone (a session expired while
/// the ensemble had no leader, say).
async fn register(
    node: Rc<Node>,
    reg: Registration,
    session: Rc<std::cell::Cell<Option<SessionId>>>,
    broker_epoch: Arc<AtomicI64>,
    stop: Arc<AtomicBool>,
) {
    let retry = Duration::from_millis(200);
    let me = kafka::broker_id(reg.broker_id);
    'outer: while !stop.load(Ordering::SeqCst) {
        let s = match write(
            &node,
            None,
            WriteOp::CreateSession {
                timeout_ms: SESSION_TIMEOUT_MS,
            },
        )
        .await
        {
            Ok(OpResult::SessionCreated { session, .. }) => session,
            _ => {
                sleep(retry).await;
                continue;
            }
        };
        session.set(Some(s));
        for path in kafka::PERSISTENT_PATHS {
            if let Err(code) =
                write(&node, Some(s), create(path, b"", CreateMode::Persistent)).await
            {
                if code != ErrorCode::NodeExists {
                    sleep(retry).await;
                    continue 'outer;
                }
            }
        }
        let cluster = format!("{{\"version\":\"1\",\"id\":\"{}\"}}", reg.cluster_id);
        match write(
            &node,
            Some(s),
            create(
                kafka::CLUSTER_ID,
                cluster.as_bytes(),
                CreateMode::Persistent,
            ),
        )
        .await
        {
            Ok(_) | Err(ErrorCode::NodeExists) => {}
            Err(_) => {
                sleep(retry).await;
                continue 'outer;
            }
        }
        // An ephemeral left by this broker's previous session goes when
        // that session expires; Kafka's broker waits for it the same way.
        loop {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            match write(
                &node,
                Some(s),
                create(&me, reg.broker_json.as_bytes(), CreateMode::Ephemeral),
            )
            .await
            {
                Ok(_) => break,
                Err(ErrorCode::NodeExists) if owner(&node, &me) == Some(s) => break,
                Err(ErrorCode::SessionExpired) => continue 'outer,
                Err(_) => sleep(retry).await,
            }
        }
        let epoch = node.with_peer(|p| p.tree().stat(&me).map_or(-1, |st| st.czxid.0 as i64));
        broker_epoch.store(epoch, Ordering::SeqCst);
        eprintln!(
            "coordinator: registered {me} (session 0x{:x}, broker epoch {epoch})",
            s.0
        );
        let mut controller_absent = 0u32;
        while !stop.load(Ordering::SeqCst) {
            controller(&node, s, &reg, &mut controller_absent).await;
            sleep(Duration::from_millis(u64::from(SESSION_TIMEOUT_MS) / 4)).await;
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let _ = node.request(Some(s), ClientOp::Ping, Zxid::ZERO).await;
            let alive = node.with_peer(|p| p.tree().session(s).is_some());
            let serving = matches!(
                node.role(),
                ringtail_coordinator::peer::RoleKind::Leading { established: true }
                    | ringtail_coordinator::peer::RoleKind::Following { active: true }
            );
            if serving && (!alive || owner(&node, &me) != Some(s)) {
                eprintln!(
                    "coordinator: session 0x{:x} or {me} is gone; registering again",
                    s.0
                );
                session.set(None);
                broker_epoch.store(-1, Ordering::SeqCst);
                continue 'outer;
            }
        }
    }
}

/// Kafka's `/controller` JSON.
fn controller_json(broker_id: u32) -> String {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!(
        "{{\"version\":2,\"brokerid\":{broker_id},\"timestamp\":\"{now_ms}\",\"kraftControllerEpoch\":-1}}"
    )
}

/// Takes `/controller` when it is free (see the module doc): the broker
/// whose peer leads at once, the others after it stayed free for a
/// second of checks.
async fn controller(node: &Node, s: SessionId, reg: &Registration, absent: &mut u32) {
    let present = node.with_peer(|p| p.tree().node(kafka::CONTROLLER).is_some());
    if present {
        *absent = 0;
        return;
    }
    *absent += 1;
    let leading = matches!(
        node.role(),
        ringtail_coordinator::peer::RoleKind::Leading { established: true }
    );
    if !leading && *absent < 4 {
        return;
    }
    if node.with_peer(|p| p.tree().node(kafka::CONTROLLER_EPOCH).is_none()) {
        match write(
            node,
            Some(s),
            create(kafka::CONTROLLER_EPOCH, b"0", CreateMode::Persistent),
        )
        .await
        {
            Ok(_) | Err(ErrorCode::NodeExists) => {}
            Err(_) => return,
        }
    }
    let Some((epoch, version)) = node.with_peer(|p| {
        let n = p.tree().node(kafka::CONTROLLER_EPOCH)?;
        let epoch: i64 = std::str::from_utf8(&n.data).ok()?.trim().parse().ok()?;
        Some((epoch, n.stat.version))
    }) else {
        return;
    };
    let ops = vec![
        create(
            kafka::CONTROLLER,
            controller_json(reg.broker_id).as_bytes(),
            CreateMode::Ephemeral,
        ),
        WriteOp::SetData {
            path: kafka::CONTROLLER_EPOCH.to_string(),
            data: (epoch + 1).to_string().into_bytes(),
            version,
        },
    ];
    if let Ok(OpResult::Multi(results)) = write(node, Some(s), WriteOp::Multi(ops)).await {
        if !results.iter().any(|r| matches!(r, OpResult::Error(_))) {
            eprintln!(
                "coordinator: broker {} is the controller (epoch {})",
                reg.broker_id,
                epoch + 1
            );
        }
    }
}

fn owner(node: &Node, path: &str) -> Option<SessionId> {
    node.with_peer(|p| p.tree().stat(path).and_then(|s| s.ephemeral_owner))
}
