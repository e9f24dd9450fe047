//! Child process for the crash test (`io/tests/crash.rs`) and the crash soak
//! script: opens (recovering) the log in `argv[1]`, then appends random
//! batches from several tasks with group commit, printing one line per batch
//! once it is durable:
//!
//! `ACK <base> <last> <crc32c of stored bytes> <segment base> <end position>`
//!
//! It runs until killed (the test sends SIGKILL) or for `argv[3]` ms.

use std::io::Write;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ringtail_io::log::{batch, Log, LogConfig, Offset};
use ringtail_io::rt;

/// splitmix64: small, seedable, good enough for test data.
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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: crash_child <log dir> <seed> <run ms> <segment bytes>");
        std::process::exit(2);
    }
    let dir = args[1].clone();
    let seed: u64 = args[2].parse().expect("seed");
    let run_ms: u64 = args[3].parse().expect("run ms");
    let segment_bytes: u64 = args[4].parse().expect("segment bytes");
    let config = LogConfig {
        segment_bytes,
        index_interval_bytes: 1024,
        retention_ms: None,
        ..LogConfig::default()
    };
    rt::block_on(async move {
        let log = match Log::open(&dir, config).await {
            Ok(log) => log,
            Err(e) => {
                eprintln!("open failed: {e}");
                std::process::exit(3);
            }
        };
        println!("READY {}", log.offsets().written);
        let _ = std::io::stdout().flush();
        let deadline = Instant::now() + Duration::from_millis(run_ms);
        let mut tasks = Vec::new();
        for worker in 0..8u64 {
            let log = log.clone();
            tasks.push(rt::spawn(async move {
                let mut rng = Rng(seed ^ (worker << 48));
                while Instant::now() < deadline {
                    let count = 1 + rng.below(20) as usize;
                    let values: Vec<Vec<u8>> = (0..count)
                        .map(|_| {
                            let len = 10 + rng.below(200) as usize;
                            (0..len).map(|_| rng.next() as u8).collect()
                        })
                        .collect();
                    let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
                    let mut bytes = batch::build(0, 1_700_000_000_000, &refs);
                    let info = match log.append(BytesMut::from(&bytes[..]), 3).await {
                        Ok(info) => info,
                        Err(e) => {
                            eprintln!("append failed: {e}");
                            std::process::exit(4);
                        }
                    };
                    if let Err(e) = log.wait_durable(Offset(info.last_offset.0 + 1)).await {
                        eprintln!("sync failed: {e}");
                        std::process::exit(5);
                    }
                    batch::assign(&mut bytes, info.base_offset.0, 3);
                    let end = info.position + bytes.len() as u64;
                    let line = format!(
                        "ACK {} {} {} {} {}\n",
                        info.base_offset,
                        info.last_offset,
                        crc32c::crc32c(&bytes),
                        info.segment_base,
                        end
                    );
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(line.as_bytes());
                    let _ = out.flush();
                }
            }));
        }
        for t in tasks {
            t.await;
        }
        log.close().await.expect("close");
    });
}
