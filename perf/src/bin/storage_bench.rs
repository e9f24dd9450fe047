//! Storage engine benchmarks for `perf/storage.sh`, which runs fio beside
//! them on the same disk and turns the numbers into ratios.
//!
//! Each subcommand prints `RESULT <name> <value> <unit>` lines.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use clap::{Parser, Subcommand, ValueEnum};
use ringtail_io::log::{batch, Log, LogConfig, Offset};
use ringtail_io::rt;

#[derive(Parser)]
#[command(about = "Benchmarks of the ringtail-io log store")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Sync {
    /// Appends only (page cache), like fio's buffered sequential write.
    None,
    /// Every append waits for durability; fdatasyncs are group-committed.
    Group,
}

#[derive(Subcommand)]
enum Command {
    /// Append throughput.
    Append {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, value_enum)]
        sync: Sync,
        /// Concurrent appenders (producers).
        #[arg(long, default_value_t = 1)]
        writers: usize,
        #[arg(long, default_value_t = 65536)]
        batch_bytes: usize,
        #[arg(long, default_value_t = 1 << 30)]
        total_bytes: u64,
    },
    /// Writes a log without closing it (an unclean shutdown) and removes
    /// its recovery point, so the next open scans every byte.
    PrepareRecovery {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 4 << 30)]
        total_bytes: u64,
    },
    /// Opens a log prepared by `prepare-recovery`; reports the scan rate.
    Recover {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Clean open of a log with many segments.
    OpenSegments {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 10_000)]
        segments: usize,
    },
    /// Resident memory per open idle partition log.
    Memory {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 1000)]
        logs: usize,
    },
}

fn result(name: &str, value: f64, unit: &str) {
    println!("RESULT {name} {value:.3} {unit}");
}

fn template(batch_bytes: usize) -> Vec<u8> {
    // Records of ~1 KiB, as in the broker benchmarks.
    let record = vec![0x5au8; 1000];
    let count = (batch_bytes / 1024).max(1);
    let refs: Vec<&[u8]> = (0..count).map(|_| record.as_slice()).collect();
    batch::build(0, 1_700_000_000_000, &refs)
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Command::Append {
            dir,
            sync,
            writers,
            batch_bytes,
            total_bytes,
        } => append(&dir, sync, writers, batch_bytes, total_bytes),
        Command::PrepareRecovery { dir, total_bytes } => prepare_recovery(&dir, total_bytes),
        Command::Recover { dir } => recover(&dir),
        Command::OpenSegments { dir, segments } => open_segments(&dir, segments),
        Command::Memory { dir, logs } => memory(&dir, logs),
    }
}

fn fresh(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("create bench dir");
}

fn append(dir: &Path, sync: Sync, writers: usize, batch_bytes: usize, total_bytes: u64) {
    fresh(dir);
    let template = template(batch_bytes);
    let per_batch = template.len() as u64;
    let batches = total_bytes.div_ceil(per_batch);
    // Every batch is built before the clock starts, as fio's buffer is:
    // the log takes ownership of each one, and copying a template per
    // append would time the benchmark's memcpy, not the log.
    let pool: Vec<BytesMut> = (0..batches)
        .map(|_| BytesMut::from(&template[..]))
        .collect();
    let pool = Rc::new(RefCell::new(pool));
    rt::block_on(async move {
        let log = Log::open(
            dir,
            LogConfig {
                retention_ms: None,
                ..LogConfig::default()
            },
        )
        .await
        .expect("open");
        let latencies = Rc::new(RefCell::new(Vec::with_capacity(batches as usize)));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..writers {
            let (log, pool, latencies) = (log.clone(), pool.clone(), latencies.clone());
            tasks.push(rt::spawn(async move {
                loop {
                    let Some(batch) = pool.borrow_mut().pop() else {
                        break;
                    };
                    let t0 = Instant::now();
                    let info = log.append(batch, 0).await.expect("append");
                    if sync == Sync::Group {
                        log.wait_durable(Offset(info.last_offset.0 + 1))
                            .await
                            .expect("durable");
                    }
                    latencies.borrow_mut().push(t0.elapsed());
                }
            }));
        }
        for t in tasks {
            t.await;
        }
        let elapsed = start.elapsed();
        let bytes = batches * per_batch;
        let fsyncs = log.stats().fsyncs;
        result(
            "append_mb_s",
            bytes as f64 / elapsed.as_secs_f64() / 1e6,
            "MB/s",
        );
        result("append_batches", batches as f64, "batches");
        result("batch_bytes", per_batch as f64, "B");
        result("fdatasyncs", fsyncs as f64, "calls");
        if fsyncs > 0 {
            result("bytes_per_fdatasync", bytes as f64 / fsyncs as f64, "B");
        }
        let mut lat = latencies.borrow().clone();
        lat.sort();
        let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
        result("latency_p50_us", pct(0.50).as_secs_f64() * 1e6, "us");
        result("latency_p99_us", pct(0.99).as_secs_f64() * 1e6, "us");
        log.close().await.expect("close");
    });
    let _ = std::fs::remove_dir_all(dir);
}

fn prepare_recovery(dir: &Path, total_bytes: u64) {
    fresh(dir);
    let template = template(1 << 20);
    let batches = total_bytes.div_ceil(template.len() as u64);
    rt::block_on(async {
        let log = Log::open(
            dir,
            LogConfig {
                retention_ms: None,
                ..LogConfig::default()
            },
        )
        .await
        .expect("open");
        for _ in 0..batches {
            log.append(BytesMut::from(&template[..]), 0)
                .await
                .expect("append");
        }
        // No close: the next open is unclean.
        let size = log.stats().size_bytes;
        result("prepared_bytes", size as f64, "B");
        result("prepared_segments", log.stats().segments as f64, "segments");
    });
    let _ = std::fs::remove_file(dir.join("recovery-point"));
}

fn recover(dir: &Path) {
    rt::block_on(async {
        let start = Instant::now();
        let log = Log::open(
            dir,
            LogConfig {
                retention_ms: None,
                ..LogConfig::default()
            },
        )
        .await
        .expect("recover");
        let elapsed = start.elapsed();
        let bytes = log.stats().size_bytes;
        result("recovered_bytes", bytes as f64, "B");
        result("recovery_s", elapsed.as_secs_f64(), "s");
        result(
            "recovery_mb_s",
            bytes as f64 / elapsed.as_secs_f64() / 1e6,
            "MB/s",
        );
        log.close().await.expect("close");
    });
    let _ = std::fs::remove_dir_all(dir);
}

/// Writes `count` one-batch segments in Kafka's layout directly (a real
/// roll per segment would measure fsyncs, not the open), then a clean
/// shutdown marker, and times a clean open.
fn open_segments(dir: &Path, count: usize) {
    fresh(dir);
    let one = batch::build(0, 1_700_000_000_000, &[&[7u8; 100]]);
    for i in 0..count as i64 {
        let mut bytes = one.clone();
        batch::assign(&mut bytes, i, 0);
        std::fs::write(dir.join(format!("{i:020}.log")), &bytes).expect("segment");
        std::fs::write(dir.join(format!("{i:020}.index")), []).expect("index");
        let mut ts = Vec::new();
        ts.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
        ts.extend_from_slice(&0u32.to_be_bytes());
        std::fs::write(dir.join(format!("{i:020}.timeindex")), ts).expect("timeindex");
    }
    std::fs::write(dir.join("clean-shutdown"), format!("0\n{count}\n")).expect("marker");
    rt::block_on(async {
        let start = Instant::now();
        let log = Log::open(dir, LogConfig::default()).await.expect("open");
        let elapsed = start.elapsed();
        let stats = log.stats();
        assert_eq!(stats.segments, count);
        result("open_segments", count as f64, "segments");
        result("open_ms", elapsed.as_secs_f64() * 1e3, "ms");
        result("segments_opened", stats.segments_open as f64, "files");
        result("indexes_loaded", stats.indexes_loaded as f64, "indexes");
        log.close().await.expect("close");
    });
    let _ = std::fs::remove_dir_all(dir);
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Creates `logs` partition logs with some data, closes them, then measures
/// resident memory of opening them all (idle: no appends in flight).
fn memory(dir: &Path, logs: usize) {
    fresh(dir);
    let template = template(16 << 10);
    rt::block_on(async {
        for i in 0..logs {
            let log = Log::open(dir.join(format!("topic-{i}")), LogConfig::default())
                .await
                .expect("open");
            for _ in 0..16 {
                log.append(BytesMut::from(&template[..]), 0)
                    .await
                    .expect("append");
            }
            log.close().await.expect("close");
        }
        // Let allocator caches settle before the baseline.
        rt::time::sleep(Duration::from_millis(50)).await;
        let before = rss_bytes();
        let mut open = Vec::with_capacity(logs);
        for i in 0..logs {
            open.push(
                Log::open(dir.join(format!("topic-{i}")), LogConfig::default())
                    .await
                    .expect("open"),
            );
        }
        let after = rss_bytes();
        let heap: usize = open.iter().map(|l| l.stats().heap_bytes).sum();
        result("logs_open", logs as f64, "logs");
        result(
            "rss_per_log_bytes",
            (after.saturating_sub(before)) as f64 / logs as f64,
            "B",
        );
        result("heap_per_log_bytes", heap as f64 / logs as f64, "B");
        for log in open {
            log.close().await.expect("close");
        }
    });
    let _ = std::fs::remove_dir_all(dir);
}
