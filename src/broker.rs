//! Start-up and shutdown of `ringtail broker`.
//!
//! Start: read the config, check each log dir's `meta.properties` (Kafka's
//! file: the broker id and cluster id it belongs to), load the topic
//! table, start one shard per core; each opens the partitions it owns and
//! listens. SIGINT/SIGTERM: every shard stops accepting, closes its logs
//! cleanly (the next start needs no recovery) and exits.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::config::BrokerConfig;
use crate::metadata::{random_id, Metadata};
use crate::shard::mesh::Mesh;
use crate::shard::{self, Shard, ShardId, Shared};

/// Reads or writes `meta.properties` in a log dir; returns the cluster id.
fn check_meta_properties(
    dir: &Path,
    broker_id: i32,
    cluster_id: Option<&str>,
) -> Result<String, String> {
    let path = dir.join("meta.properties");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let get = |key: &str| {
                text.lines()
                    .filter_map(|l| l.split_once('='))
                    .find(|(k, _)| k.trim() == key)
                    .map(|(_, v)| v.trim().to_string())
            };
            let stored_id = get("broker.id").or_else(|| get("node.id"));
            if stored_id.as_deref() != Some(&broker_id.to_string()) {
                return Err(format!(
                    "{} belongs to broker.id {} but this broker is {broker_id}",
                    path.display(),
                    stored_id.unwrap_or_else(|| "?".into())
                ));
            }
            let stored =
                get("cluster.id").ok_or_else(|| format!("{} has no cluster.id", path.display()))?;
            if let Some(wanted) = cluster_id {
                if wanted != stored {
                    return Err(format!(
                        "{} has cluster.id {stored}, but this broker's cluster (the coordinator's /cluster/id, or cluster.id) is {wanted}",
                        path.display()
                    ));
                }
            }
            Ok(stored)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = cluster_id.map_or_else(|| base64url(&random_id()), str::to_string);
            let text = format!(
                "#Written by ringtail\nversion=0\nbroker.id={broker_id}\ncluster.id={id}\n"
            );
            std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
            Ok(id)
        }
        Err(e) => Err(format!("reading {}: {e}", path.display())),
    }
}

/// The `cluster.id` in a log dir's `meta.properties`, if there is one.
fn stored_cluster_id(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("meta.properties")).ok()?;
    text.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == "cluster.id")
        .map(|(_, v)| v.trim().to_string())
}

/// Kafka cluster ids are 16 random bytes in URL-safe base64, unpadded.
fn base64url(bytes: &[u8; 16]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    let mut bits = 0u32;
    let mut nbits = 0;
    for &b in bytes {
        bits = (bits << 8) | u32::from(b);
        nbits += 8;
        while nbits >= 6 {
            nbits -= 6;
            out.push(ALPHABET[((bits >> nbits) & 63) as usize] as char);
        }
    }
    if nbits > 0 {
        out.push(ALPHABET[((bits << (6 - nbits)) & 63) as usize] as char);
    }
    out
}

/// Binds `addr` without SO_REUSEPORT to prove nobody listens there. After
/// a kill -9 the kernel frees the old process's listeners a few
/// milliseconds late (its io_uring is torn down asynchronously), so a
/// supervisor's immediate restart gets a short grace period.
///
/// The probe binds but never listens: a listening probe accepted the
/// connection of a client that was polling the port, and reset it when
/// it closed a moment later (seen in CI as "Connection reset by peer").
fn probe_listen(addr: std::net::SocketAddr) -> Result<(), String> {
    const GRACE: std::time::Duration = std::time::Duration::from_secs(2);
    let deadline = std::time::Instant::now() + GRACE;
    loop {
        match bind_only(addr) {
            Ok(()) => return Ok(()),
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => return Err(format!("listeners: cannot listen on {addr}: {e}")),
        }
    }
}

/// socket + SO_REUSEADDR (as a listener has it) + bind, then close.
fn bind_only(addr: std::net::SocketAddr) -> std::io::Result<()> {
    let (family, storage, len) = sockaddr(addr);
    // SAFETY: plain socket calls on a descriptor this function owns and
    // closes; `storage` holds a valid sockaddr of `len` bytes.
    unsafe {
        let fd = libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let one: libc::c_int = 1;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let rc = libc::bind(fd, (&storage as *const libc::sockaddr_storage).cast(), len);
        let result = if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        };
        libc::close(fd);
        result
    }
}

fn sockaddr(addr: std::net::SocketAddr) -> (libc::c_int, libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: an all-zero sockaddr_storage is valid; the family-specific
    // struct written into it fits (sockaddr_storage is the largest).
    unsafe {
        let mut storage: libc::sockaddr_storage = std::mem::zeroed();
        match addr {
            std::net::SocketAddr::V4(a) => {
                let sin = (&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>();
                (*sin).sin_family = libc::AF_INET as libc::sa_family_t;
                (*sin).sin_port = a.port().to_be();
                (*sin).sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
                (
                    libc::AF_INET,
                    storage,
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            }
            std::net::SocketAddr::V6(a) => {
                let sin6 =
                    (&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>();
                (*sin6).sin6_family = libc::AF_INET6 as libc::sa_family_t;
                (*sin6).sin6_port = a.port().to_be();
                (*sin6).sin6_addr.s6_addr = a.ip().octets();
                (*sin6).sin6_flowinfo = a.flowinfo();
                (*sin6).sin6_scope_id = a.scope_id();
                (
                    libc::AF_INET6,
                    storage,
                    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            }
        }
    }
}

fn block_signals() -> libc::sigset_t {
    // SAFETY: plain signal-mask calls on a zeroed, then initialised, set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn wait_for_signal(set: &libc::sigset_t) -> i32 {
    let mut signal = 0;
    // SAFETY: the set was initialised by `block_signals`.
    unsafe { libc::sigwait(set, &mut signal) };
    signal
}

/// Keeps freed request buffers in the allocator instead of handing them
/// back to the kernel. Produce requests are up to `message.max.bytes`
/// (1 MiB) each and live until their batch is written; with glibc's
/// defaults every such buffer was returned (munmap or heap trim) and the
/// next one faulted its pages in again, zeroed: 17% of a shard's CPU under
/// `acks=all` load was page faults. A broker's memory is meant to be
/// reused, so raise the thresholds once at start.
fn keep_freed_buffers() {
    // SAFETY: mallopt only changes glibc allocator tunables.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

/// Runs the broker until SIGINT or SIGTERM.
pub fn run(config: BrokerConfig) -> Result<(), String> {
    keep_freed_buffers();
    // Before any thread starts: threads inherit the mask, so SIGTERM and
    // SIGINT reach only the main thread's sigwait. A signal landing on a
    // thread that does not block them kills the process outright.
    let signals = block_signals();
    // The id this broker proposes: configured, or what its log dirs say,
    // or new. The tree's `/cluster/id` (created by the first broker to
    // register) decides; `meta.properties` is checked against it below.
    let mut proposed = config.cluster_id.clone();
    for dir in &config.log_dirs {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("log.dirs: cannot create {}: {e}", dir.display()))?;
        if proposed.is_none() {
            proposed = stored_cluster_id(dir);
        }
    }
    let proposed = proposed.unwrap_or_else(|| base64url(&random_id()));
    // The shards bind with SO_REUSEPORT, which would let a second broker
    // process share the port and split the clients between them. A plain
    // bind first fails if anyone listens there.
    let addr = config.listeners[0].socket_addr()?;
    probe_listen(addr)?;
    let metrics_listener = crate::metrics::http::bind(&config)?;
    let coordinator = crate::coordinator::start(&config, &proposed)?;
    let cluster_id = match coordinator.cluster_id(std::time::Duration::from_secs(30)) {
        Ok(id) => id,
        Err(e) => {
            eprintln!(
                "warning: cannot read the cluster id from the coordinator ({e}); using {proposed}"
            );
            proposed
        }
    };
    for dir in &config.log_dirs {
        // Kafka's InconsistentClusterIdException: a log dir of another
        // cluster is never mixed into this one.
        check_meta_properties(dir, config.broker_id, Some(&cluster_id))?;
    }
    // The tree is the topic table's home; the file is its cache
    // (src/metadata.rs explains the choice).
    let metadata = Metadata::open_with_store(
        &config.log_dirs[0].join("__cluster_metadata"),
        coordinator.topic_store(config.broker_id),
    )
    .map_err(|e| e.to_string())?;
    crate::server::handlers::fetch::set_zero_copy(config.fetch_zero_copy);
    let shards = config.shard_count;
    let shared = Arc::new(Shared {
        metadata,
        mesh: Arc::new(Mesh::new(shards)),
        cluster_id,
        stopping: AtomicBool::new(false),
        config,
    });
    crate::cluster::install(&coordinator, shared.clone());
    // The tree says which partitions are this broker's: wait until it
    // answers with this broker registered.
    if crate::cluster::wait_registered(std::time::Duration::from_secs(30)).is_none() {
        eprintln!(
            "warning: not registered with the coordinator after 30 s; opening the cached topics"
        );
    }
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let threads = shard::start(shared.clone(), move |shard: std::rc::Rc<Shard>| {
        let ready = ready_tx.clone();
        async move { shard_main(shard, ready).await }
    });
    for _ in 0..shards {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                stop_all(&shared);
                for t in threads {
                    let _ = t.join();
                }
                return Err(e);
            }
            Err(_) => return Err("a shard thread died during start-up".into()),
        }
    }
    if let Some(listener) = metrics_listener {
        let at = crate::metrics::http::spawn(listener, shared.clone())?;
        eprintln!("metrics at http://{at}/metrics");
    }
    let c = &shared.config;
    let topics = shared.metadata.snapshot().topics.len();
    eprintln!(
        "ringtail broker {} listening on {}:{} (advertised {}:{}), {shards} shards, {topics} topics, log.dirs {}, cluster {}",
        c.broker_id,
        c.listeners[0].host,
        c.listeners[0].port,
        c.advertised().host,
        c.advertised().port,
        c.log_dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(","),
        shared.cluster_id
    );
    let signal = wait_for_signal(&signals);
    eprintln!("received signal {signal}: shutting down");
    if shared.config.controlled_shutdown_enable {
        // Leadership moves away first, so producers fail over at once
        // instead of waiting for the session to expire.
        let wait = std::time::Duration::from_millis(shared.config.controlled_shutdown_max_wait_ms);
        if let Err(e) = coordinator.controlled_shutdown(wait) {
            eprintln!("controlled shutdown: {e}; stopping anyway");
        }
    }
    stop_all(&shared);
    let mut failure = None;
    for t in threads {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failure = Some(e),
            Err(_) => failure = Some("a shard thread panicked".into()),
        }
    }
    coordinator.shutdown();
    match failure {
        None => {
            eprintln!("shutdown complete");
            Ok(())
        }
        Some(e) => Err(e),
    }
}

fn stop_all(shared: &Arc<Shared>) {
    shard::request_stop(shared);
    for i in 0..shared.mesh.shards() {
        shared.mesh.send_from_control(
            ShardId(i),
            Box::new(|| Box::pin(async { shard::current().stop.notify() })),
        );
    }
}

async fn shard_main(
    shard: std::rc::Rc<Shard>,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
) -> Result<(), String> {
    let snapshot = shard.shared.metadata.snapshot();
    for topic in snapshot.topics.values() {
        for index in 0..topic.partitions {
            if shard.shared.owner(topic, index) == shard.id
                && crate::cluster::is_replica(&topic.name, index)
            {
                if let Err(e) = shard.open_partition(topic.clone(), index).await {
                    let _ = ready.send(Err(e.clone()));
                    return Err(e);
                }
            }
        }
    }
    ringtail_io::rt::spawn(crate::cluster::ticker(shard.clone()));
    if let Err(e) = crate::group::start(&shard).await {
        let _ = ready.send(Err(e.clone()));
        return Err(e);
    }
    crate::server::serve(shard, ready).await
}
