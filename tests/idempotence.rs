//! Idempotent producing with injected retries, through a broker restart.
//!
//! A real `ringtail broker` process, a real idempotent client
//! (confluent-kafka / librdkafka from `.venv`, `enable.idempotence=true`,
//! `acks=all`, tests/clients/idempotent_producer.py) and, between them, a
//! fault-injecting TCP proxy on 127.0.0.1 (the broker advertises the
//! proxy's address, so every connection of the client goes through it).
//! The proxy forwards Produce requests, and for chosen ones reads the
//! broker's answer (so the batch is appended and durable) but closes the
//! client's connection instead of passing it on: the client must retry a
//! batch the broker already stored. One of them is held while the broker
//! is killed with SIGKILL and restarted, so the retry meets a broker that
//! rebuilt its producer state from its snapshot and log.
//!
//! The test then reads the partition back and checks that every message
//! was acknowledged exactly once, at the offset where it is stored, in
//! order, with nothing duplicated and nothing missing.

#[path = "clients/harness.rs"]
mod harness;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::{temp_dir, wait_timeout, Broker};

const TOPIC: &str = "idem";
const MESSAGES: usize = 400;
/// Messages per flush: each phase is at least one Produce request.
const PHASE: usize = 20;
/// Produce requests (1-based, in the order the proxy sees them, retries
/// included) whose responses are dropped with the client's connection.
const DROPPED: [usize; 3] = [3, 7, 11];
/// The Produce request whose response is held while the broker is killed
/// and restarted, then dropped the same way.
const HELD_FOR_RESTART: usize = 15;
const CLIENT_TIMEOUT: Duration = Duration::from_secs(240);

const PRODUCE: i16 = 0;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> PathBuf {
    let venv = repo().join(".venv/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// What the proxy tells the test.
#[derive(Debug)]
enum Event {
    /// The response to this Produce request was dropped with the connection.
    Dropped(usize),
    /// The response to this Produce request is held; the connection closes
    /// once the test sends on the release channel.
    Held(usize),
}

struct Proxy {
    port: u16,
    broker_port: Arc<AtomicU16>,
    produce_requests: Arc<AtomicUsize>,
    events: Receiver<Event>,
    release: Sender<()>,
}

#[derive(Clone)]
struct Shared {
    broker_port: Arc<AtomicU16>,
    produce_requests: Arc<AtomicUsize>,
    events: Sender<Event>,
    release: Arc<Mutex<Receiver<()>>>,
}

impl Proxy {
    fn start(listener: TcpListener) -> Proxy {
        let port = listener.local_addr().expect("proxy addr").port();
        let (events_tx, events) = channel();
        let (release, release_rx) = channel();
        let shared = Shared {
            broker_port: Arc::new(AtomicU16::new(0)),
            produce_requests: Arc::new(AtomicUsize::new(0)),
            events: events_tx,
            release: Arc::new(Mutex::new(release_rx)),
        };
        let proxy = Proxy {
            port,
            broker_port: shared.broker_port.clone(),
            produce_requests: shared.produce_requests.clone(),
            events,
            release,
        };
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let shared = shared.clone();
                std::thread::spawn(move || connection(client, shared));
            }
        });
        proxy
    }
}

/// One Kafka frame: the 4-byte size and the body.
fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).ok()?;
    let size = i32::from_be_bytes(size);
    let size = usize::try_from(size).ok().filter(|s| *s <= 64 << 20)?;
    let mut frame = vec![0u8; 4 + size];
    frame[..4].copy_from_slice(&(size as i32).to_be_bytes());
    stream.read_exact(&mut frame[4..]).ok()?;
    Some(frame)
}

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Relays one client connection to the broker, breaking it where planned.
fn connection(mut client: TcpStream, shared: Shared) {
    let port = shared.broker_port.load(Ordering::SeqCst);
    let Ok(mut broker) = TcpStream::connect(("127.0.0.1", port)) else {
        // The broker is down (restarting): the client reconnects later.
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    // correlation id -> (produce request number, held?)
    let doomed: Arc<Mutex<Vec<(i32, usize, bool)>>> = Arc::new(Mutex::new(Vec::new()));
    let (mut client_r, mut broker_w) = (client.try_clone().unwrap(), broker.try_clone().unwrap());
    let upstream = {
        let doomed = doomed.clone();
        let counter = shared.produce_requests.clone();
        std::thread::spawn(move || {
            while let Some(frame) = read_frame(&mut client_r) {
                if frame.len() >= 12 && i16_at(&frame, 4) == PRODUCE {
                    let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                    let correlation_id = i32_at(&frame, 8);
                    if DROPPED.contains(&n) || n == HELD_FOR_RESTART {
                        doomed
                            .lock()
                            .unwrap()
                            .push((correlation_id, n, n == HELD_FOR_RESTART));
                    }
                }
                if broker_w.write_all(&frame).is_err() {
                    break;
                }
            }
            let _ = broker_w.shutdown(Shutdown::Both);
            let _ = client_r.shutdown(Shutdown::Both);
        })
    };
    while let Some(frame) = read_frame(&mut broker) {
        let correlation_id = i32_at(&frame, 4);
        let hit = {
            let list = doomed.lock().unwrap();
            list.iter()
                .find(|(id, _, _)| *id == correlation_id)
                .map(|&(_, n, held)| (n, held))
        };
        if let Some((n, held)) = hit {
            if held {
                let _ = shared.events.send(Event::Held(n));
                let _ = shared.release.lock().unwrap().recv();
            } else {
                let _ = shared.events.send(Event::Dropped(n));
            }
            break;
        }
        if client.write_all(&frame).is_err() {
            break;
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = broker.shutdown(Shutdown::Both);
    let _ = upstream.join();
}

#[test]
fn retried_produces_are_stored_once_across_a_sigkill_restart() {
    let python = python();
    let probe = Command::new(&python)
        .args(["-c", "import confluent_kafka"])
        .output();
    assert!(
        probe.is_ok_and(|o| o.status.success()),
        "confluent-kafka is not installed for {}: run tests/run-all.sh, which installs it into .venv",
        python.display()
    );
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
    let proxy = Proxy::start(listener);
    let advertised = format!("advertised.listeners=PLAINTEXT://127.0.0.1:{}", proxy.port);
    let mut broker = Broker::start(
        "idempotence",
        &[
            &advertised,
            // Small segments: rolls (and producer snapshots) happen while
            // the client produces; housekeeping snapshots often too.
            "log.segment.bytes=2048",
            "log.retention.check.interval.ms=300",
        ],
    );
    proxy.broker_port.store(broker.port, Ordering::SeqCst);

    let scratch = temp_dir("idempotence-client");
    let out_path = scratch.join("stdout");
    let err_path = scratch.join("stderr");
    let mut child = Command::new(&python)
        .arg(repo().join("tests/clients/idempotent_producer.py"))
        .arg(format!("127.0.0.1:{}", proxy.port))
        .args([TOPIC, &MESSAGES.to_string(), &PHASE.to_string()])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("run the idempotent producer");

    let deadline = Instant::now() + CLIENT_TIMEOUT;
    let mut dropped = BTreeSet::new();
    let mut restarted = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the client") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the client did not finish within {CLIENT_TIMEOUT:?}\n{}\n{}",
                std::fs::read_to_string(&err_path).unwrap_or_default(),
                broker.log()
            );
        }
        match proxy.events.recv_timeout(Duration::from_millis(50)) {
            Ok(Event::Dropped(n)) => {
                eprintln!("proxy: dropped the response to Produce request {n}");
                dropped.insert(n);
            }
            Ok(Event::Held(n)) => {
                // The broker answered: the batch is durable (acks=all).
                // Kill it before the client learns that, restart it on
                // the same directory and port, then break the connection.
                eprintln!("proxy: holding the response to Produce request {n}; SIGKILL + restart");
                broker.kill_and_restart();
                restarted = true;
                proxy.release.send(()).unwrap();
                dropped.insert(n);
            }
            Err(_) => {}
        }
    };
    let _ = wait_timeout(&mut child, Duration::from_secs(1));
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let context = || format!("---- client stderr ----\n{stderr}\n{}", broker.log());
    assert!(status.success(), "client failed ({status})\n{}", context());
    assert!(
        restarted,
        "the proxy never held a response for the restart ({} Produce requests)\n{}",
        proxy.produce_requests.load(Ordering::SeqCst),
        context()
    );
    let planned: BTreeSet<usize> = DROPPED.iter().copied().chain([HELD_FOR_RESTART]).collect();
    assert_eq!(dropped, planned, "every planned fault was injected");

    let mut acked: Vec<Option<i64>> = vec![None; MESSAGES];
    let mut read: Vec<(i64, String)> = Vec::new();
    let mut end = None;
    for line in stdout.lines() {
        let parts: Vec<&str> = line.splitn(3, ' ').collect();
        match parts.as_slice() {
            ["ACK", i, offset] => {
                let i: usize = i.parse().unwrap();
                assert!(acked[i].is_none(), "message {i} acknowledged twice");
                acked[i] = Some(offset.parse().unwrap());
            }
            ["ERR", i, e] => panic!("message {i} failed: {e}\n{}", context()),
            ["READ", offset, value] => read.push((offset.parse().unwrap(), value.to_string())),
            ["END", high] => end = Some(high.parse::<i64>().unwrap()),
            _ => {}
        }
    }
    // Every message acknowledged exactly once, in order, at consecutive
    // offsets; the partition holds exactly those, nothing twice.
    let expected: Vec<(i64, String)> = (0..MESSAGES)
        .map(|i| {
            let offset = acked[i].unwrap_or_else(|| panic!("message {i} not acknowledged"));
            (offset, format!("m-{i}"))
        })
        .collect();
    for (i, (offset, _)) in expected.iter().enumerate() {
        assert_eq!(*offset, i as i64, "message {i} stored at offset {offset}");
    }
    assert_eq!(
        read.len(),
        MESSAGES,
        "the partition holds {} records for {MESSAGES} messages (duplicates or gaps)",
        read.len()
    );
    assert_eq!(
        read, expected,
        "read back differs from what was acknowledged"
    );
    assert_eq!(end, Some(MESSAGES as i64), "log end");
    eprintln!(
        "{} Produce requests through the proxy, {} responses dropped, 1 broker SIGKILL",
        proxy.produce_requests.load(Ordering::SeqCst),
        dropped.len()
    );

    // The producer state is persisted: a clean stop leaves snapshots.
    broker.stop();
    let snapshots: Vec<String> = std::fs::read_dir(broker.partition_dir(TOPIC, 0))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".snapshot"))
        .collect();
    assert!(
        snapshots.contains(&format!("{MESSAGES:020}.snapshot")),
        "no producer snapshot at the log end after a clean stop: {snapshots:?}"
    );
    broker.verify_partition(TOPIC, 0);
}
