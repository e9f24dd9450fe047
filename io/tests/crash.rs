//! Crash test: a real child process appends with group commit and is killed
//! with SIGKILL at random moments. Some cycles also simulate a power loss by
//! dropping bytes past the last acknowledged durable position (and tearing
//! the tail), or losing whole unsynced segments and index files. After
//! each cycle the log is reopened and every batch acknowledged as durable
//! must be present, in order and byte-identical.
//!
//! `RINGTAIL_CRASH_CYCLES` (default 100) and `RINGTAIL_CRASH_SEED` set the
//! run; a failure prints the seed and cycle to replay.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use ringtail_io::log::{batch::BatchHeader, Log, LogConfig, Offset};
use ringtail_io::rt;

const SEGMENT_BYTES: u64 = 64 * 1024;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ack {
    last: i64,
    crc: u32,
    segment: i64,
    end: u64,
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs the child for a random moment, kills it, returns its durable acks.
fn run_child(dir: &Path, seed: u64, rng: &mut Rng) -> Vec<(i64, Ack)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crash_child"))
        .arg(dir)
        .arg(seed.to_string())
        .arg("10000")
        .arg(SEGMENT_BYTES.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            lines.push(line);
        }
        lines
    });
    std::thread::sleep(Duration::from_millis(5 + rng.below(60)));
    child.kill().expect("kill -9");
    let status = child.wait().expect("wait");
    let lines = reader.join().expect("reader");
    // It must die by our SIGKILL, not by a panic or error exit of its own.
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "child ended by itself: {status:?}, output {:?}",
        lines.last()
    );
    assert!(
        lines.first().is_some_and(|l| l.starts_with("READY")) || lines.is_empty(),
        "child failed before READY: {status:?} {lines:?}"
    );
    if lines.is_empty() {
        // Killed before it finished opening: nothing acknowledged.
        return Vec::new();
    }
    lines
        .iter()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            if f.len() != 6 || f[0] != "ACK" {
                return None; // READY, or a line cut by the kill
            }
            let base = f[1].parse().ok()?;
            Some((
                base,
                Ack {
                    last: f[2].parse().ok()?,
                    crc: f[3].parse().ok()?,
                    segment: f[4].parse().ok()?,
                    end: f[5].parse().ok()?,
                },
            ))
        })
        .collect()
}

fn segment_paths(dir: &Path) -> Vec<(i64, PathBuf)> {
    let mut out: Vec<(i64, PathBuf)> = std::fs::read_dir(dir)
        .expect("ls")
        .filter_map(|e| {
            let path = e.expect("entry").path();
            let name = path.file_name()?.to_str()?.to_owned();
            let base = name.strip_suffix(".log")?.parse().ok()?;
            Some((base, path))
        })
        .collect();
    out.sort();
    out
}

/// Drops what a power loss could drop: bytes past the last durable
/// acknowledgement (sometimes replaced by a torn write), segments created
/// after it, and index files.
fn simulate_power_loss(dir: &Path, acked: &BTreeMap<i64, Ack>, rng: &mut Rng) -> String {
    let durable = acked.values().max_by_key(|a| (a.segment, a.end)).copied();
    let (seg, end) = durable.map_or((0, 0), |a| (a.segment, a.end));
    let mut did = Vec::new();
    for (base, path) in segment_paths(dir) {
        if base > seg && rng.below(2) == 0 {
            std::fs::remove_file(&path).expect("drop unsynced segment");
            let _ = std::fs::remove_file(path.with_extension("index"));
            let _ = std::fs::remove_file(path.with_extension("timeindex"));
            did.push(format!("dropped segment {base}"));
        } else if base >= seg {
            let size = std::fs::metadata(&path).expect("stat").len();
            let floor = if base == seg { end } else { 0 };
            if size > floor {
                let keep = floor + rng.below(size - floor + 1);
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .expect("open");
                file.set_len(keep).expect("truncate");
                did.push(format!(
                    "cut segment {base} to {keep} (durable end {floor})"
                ));
                if rng.below(2) == 0 {
                    use std::os::unix::fs::FileExt;
                    let garbage: Vec<u8> =
                        (0..1 + rng.below(300)).map(|_| rng.next() as u8).collect();
                    file.write_all_at(&garbage, keep).expect("tear");
                    did.push(format!("tore {} bytes", garbage.len()));
                }
            }
        }
        if rng.below(4) == 0 {
            let _ = std::fs::remove_file(path.with_extension("index"));
        }
    }
    did.join(", ")
}

/// Reopens the log and checks every acknowledged batch.
fn verify(dir: &Path, acked: &BTreeMap<i64, Ack>, clean_close: bool, context: &str) {
    rt::block_on(async {
        let config = LogConfig {
            segment_bytes: SEGMENT_BYTES,
            index_interval_bytes: 1024,
            retention_ms: None,
            ..LogConfig::default()
        };
        let log = Log::open(dir, config)
            .await
            .unwrap_or_else(|e| panic!("{context}: reopen failed: {e}"));
        let mut stored: BTreeMap<i64, (i64, u32)> = BTreeMap::new();
        let mut next = log.offsets().log_start;
        let mut expected_next = next.0;
        loop {
            let r = log
                .read(next, 1 << 20, None)
                .await
                .unwrap_or_else(|e| panic!("{context}: read at {next}: {e}"));
            let Some(slice) = r.slice else { break };
            let bytes = slice.read_to_vec().await.expect("slice bytes");
            let mut at = 0;
            while at < bytes.len() {
                let h = BatchHeader::parse(&bytes[at..]).expect("stored header");
                assert_eq!(
                    h.base_offset, expected_next,
                    "{context}: offsets not contiguous"
                );
                expected_next = h.next_offset();
                stored.insert(
                    h.base_offset,
                    (h.last_offset(), crc32c::crc32c(&bytes[at..at + h.size])),
                );
                at += h.size;
            }
            next = r.next_offset;
        }
        assert!(
            log.verify().await.expect("verify").is_none(),
            "{context}: corrupt log"
        );
        for (base, ack) in acked {
            match stored.get(base) {
                Some(&(last, crc)) if last == ack.last && crc == ack.crc => {}
                other => panic!(
                    "{context}: acknowledged batch {base} {ack:?} lost or changed: {other:?}"
                ),
            }
        }
        assert_eq!(log.offsets().written, Offset(expected_next));
        if clean_close {
            log.close().await.expect("close");
        }
    });
}

#[test]
fn acknowledged_durable_batches_survive_kill_and_power_loss() {
    let cycles = env_u64("RINGTAIL_CRASH_CYCLES", 100);
    let seed = env_u64("RINGTAIL_CRASH_SEED", 0x5eed_c4a5);
    let dir = std::env::temp_dir().join(format!("ringtail-crash-{}-{seed}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let mut rng = Rng(seed);
    let mut acked: BTreeMap<i64, Ack> = BTreeMap::new();
    let mut total_acks = 0usize;
    let mut power_losses = 0;
    for cycle in 0..cycles {
        let context = format!("seed {seed} cycle {cycle} (replay: RINGTAIL_CRASH_SEED={seed} RINGTAIL_CRASH_CYCLES={})", cycle + 1);
        let acks = run_child(&dir, rng.next(), &mut rng);
        total_acks += acks.len();
        acked.extend(acks);
        let mut context = context;
        if rng.below(2) == 0 {
            power_losses += 1;
            let what = simulate_power_loss(&dir, &acked, &mut rng);
            context.push_str(&format!(" after power loss: {what}"));
        }
        verify(&dir, &acked, rng.below(3) == 0, &context);
    }
    println!(
        "crash test: seed {seed}, {cycles} kill -9 cycles, {power_losses} simulated power losses, \
         {total_acks} durable acks verified, {} batches in the log",
        acked.len()
    );
    assert!(total_acks > 0, "the child never acknowledged anything");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
