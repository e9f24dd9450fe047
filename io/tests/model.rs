//! Seeded property test: random operations on a real log, checked after
//! every step against a simple in-memory model (a list of batches).
//!
//! `RINGTAIL_MODEL_SEEDS` (default 150) and `RINGTAIL_MODEL_SEED` (a single
//! seed to replay) control the run; a failure prints its seed and step.

use bytes::BytesMut;
use ringtail_io::log::batch::{self, BatchHeader};
use ringtail_io::log::{Log, LogConfig, LogError, Offset};
use ringtail_io::rt;

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

    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }
}

struct Stored {
    base: i64,
    next: i64,
    max_ts: i64,
    bytes: Vec<u8>,
}

struct Model {
    batches: Vec<Stored>,
    log_start: i64,
}

impl Model {
    fn end(&self) -> i64 {
        self.batches.last().map_or(self.log_start, |b| b.next)
    }

    fn visible(&self) -> impl Iterator<Item = &Stored> {
        self.batches.iter().filter(move |b| b.next > self.log_start)
    }
}

fn random_batch(rng: &mut Rng, ts: i64) -> Vec<u8> {
    let count = 1 + rng.below(10) as usize;
    let values: Vec<Vec<u8>> = (0..count)
        .map(|_| (0..1 + rng.below(2000)).map(|_| rng.next() as u8).collect())
        .collect();
    let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    batch::build(0, ts, &refs)
}

fn config(rng: &mut Rng) -> LogConfig {
    LogConfig {
        segment_bytes: 32 * 1024 + rng.below(96 * 1024),
        index_interval_bytes: 64 + rng.below(8192),
        retention_ms: None,
        loaded_indexes_max: 1 + rng.below(4) as usize,
        ..LogConfig::default()
    }
}

async fn check_read(log: &Log, model: &Model, rng: &mut Rng, ctx: &str) {
    let start = rng.range(model.log_start - 2, model.end() + 2);
    let max_bytes = 1 + rng.below(40_000);
    let max_offset = (rng.below(3) == 0).then(|| {
        // A batch boundary, like a high watermark.
        let vis: Vec<i64> = model.visible().map(|b| b.next).collect();
        if vis.is_empty() {
            model.end()
        } else {
            vis[rng.below(vis.len() as u64) as usize]
        }
    });
    let result = log
        .read(Offset(start), max_bytes, max_offset.map(Offset))
        .await;
    if start < model.log_start || start > model.end() {
        assert!(
            matches!(result, Err(LogError::OffsetOutOfRange { .. })),
            "{ctx}: read {start} should be out of range"
        );
        return;
    }
    let r = result.unwrap_or_else(|e| panic!("{ctx}: read {start}: {e}"));
    let upper = max_offset.unwrap_or(model.end()).min(model.end());
    // Expected: whole batches from the one holding `start`, below `upper`,
    // within max_bytes (at least one), not crossing a segment (so a prefix).
    let expected: Vec<&Stored> = model
        .visible()
        .filter(|b| b.next > start && b.next <= upper)
        .collect();
    let Some(slice) = r.slice else {
        assert!(
            expected.is_empty(),
            "{ctx}: read {start} max {max_bytes} returned nothing, expected {}",
            expected.len()
        );
        return;
    };
    let bytes = slice.read_to_vec().await.expect("slice");
    let mut at = 0;
    let mut taken = 0;
    while at < bytes.len() {
        let h = BatchHeader::parse(&bytes[at..]).expect("header");
        let want = expected
            .get(taken)
            .unwrap_or_else(|| panic!("{ctx}: extra batch at {}", h.base_offset));
        assert_eq!(
            &bytes[at..at + h.size],
            &want.bytes[..],
            "{ctx}: batch {} differs",
            want.base
        );
        at += h.size;
        taken += 1;
    }
    assert!(taken >= 1);
    assert!(
        slice.len <= max_bytes || taken == 1,
        "{ctx}: {} bytes over max {max_bytes}",
        slice.len
    );
    assert_eq!(
        r.next_offset.0,
        expected[taken - 1].next,
        "{ctx}: next offset"
    );
}

async fn check_timestamp(log: &Log, model: &Model, rng: &mut Rng, ctx: &str) {
    let target = rng.range(0, 12_000);
    let got = log
        .offset_for_timestamp(target)
        .await
        .expect("timestamp lookup");
    let want = model
        .visible()
        .find(|b| b.max_ts >= target)
        .map(|b| (b.max_ts, b.base.max(model.log_start)));
    assert_eq!(
        got.map(|t| (t.timestamp, t.offset.0)),
        want,
        "{ctx}: timestamp {target}"
    );
}

fn check_offsets(log: &Log, model: &Model, ctx: &str) {
    let o = log.offsets();
    assert!(
        o.durable <= o.written && o.written <= o.log_end,
        "{ctx}: {o:?}"
    );
    assert_eq!(o.written.0, model.end(), "{ctx}: written");
    assert_eq!(o.log_start.0, model.log_start, "{ctx}: log start");
}

fn run_seed(seed: u64) {
    let dir = std::env::temp_dir().join(format!("ringtail-model-{}-{seed}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut rng = Rng(seed);
    let config = config(&mut rng);
    let steps = 120;
    rt::block_on(async {
        let mut log = Log::open(&dir, config.clone()).await.expect("open");
        let mut model = Model {
            batches: Vec::new(),
            log_start: 0,
        };
        let mut ts = 1000i64;
        for step in 0..steps {
            let ctx = format!("seed {seed} step {step} (replay: RINGTAIL_MODEL_SEED={seed})");
            match rng.below(100) {
                0..=44 => {
                    ts += rng.range(-50, 100);
                    let bytes = random_batch(&mut rng, ts);
                    let info = log
                        .append(BytesMut::from(&bytes[..]), 2)
                        .await
                        .expect("append");
                    assert_eq!(info.base_offset.0, model.end(), "{ctx}");
                    let mut stored = bytes.clone();
                    batch::assign(&mut stored, info.base_offset.0, 2);
                    let h = batch::parse_exact(&stored).expect("batch");
                    model.batches.push(Stored {
                        base: h.base_offset,
                        next: h.next_offset(),
                        max_ts: h.max_timestamp,
                        bytes: stored,
                    });
                }
                45..=69 => check_read(&log, &model, &mut rng, &ctx).await,
                70..=76 => check_timestamp(&log, &model, &mut rng, &ctx).await,
                77..=80 => {
                    let to = rng.range(0, model.end());
                    let got = log.advance_log_start(Offset(to)).await.expect("advance");
                    model.log_start = model.log_start.max(to);
                    assert_eq!(got.0, model.log_start, "{ctx}");
                }
                81..=83 => {
                    let end = model.end();
                    log.wait_durable(Offset(end)).await.expect("durable");
                    assert!(log.offsets().durable.0 >= end, "{ctx}");
                }
                84..=88 => {
                    // Retention by a random size: whole sealed segments go.
                    let limit = rng.below(200_000);
                    let dir2 = dir.clone();
                    log.clone().close().await.expect("close");
                    let limited = LogConfig {
                        retention_bytes: Some(limit),
                        ..config.clone()
                    };
                    log = Log::open(&dir2, limited)
                        .await
                        .expect("reopen with retention");
                    log.apply_retention().await.expect("retention");
                    let start = log.offsets().log_start.0;
                    assert!(start >= model.log_start, "{ctx}: log start went back");
                    assert!(
                        start == model.log_start || model.batches.iter().any(|b| b.base == start),
                        "{ctx}: retention cut inside a batch at {start}"
                    );
                    model.log_start = start;
                    log.clone().close().await.expect("close");
                    log = Log::open(&dir, config.clone()).await.expect("reopen");
                }
                89..=94 => {
                    log.clone().close().await.expect("close");
                    log = Log::open(&dir, config.clone()).await.expect("clean reopen");
                }
                _ => {
                    // Unclean: drop without close. Written bytes stay in the
                    // page cache, so everything written must come back.
                    drop(log);
                    log = Log::open(&dir, config.clone())
                        .await
                        .expect("unclean reopen");
                }
            }
            check_offsets(&log, &model, &ctx);
        }
        assert!(
            log.verify().await.expect("verify").is_none(),
            "seed {seed}: corrupt at the end"
        );
        log.close().await.expect("close");
    });
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn random_operations_match_the_model() {
    if let Some(seed) = std::env::var("RINGTAIL_MODEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        run_seed(seed);
        return;
    }
    let seeds: u64 = std::env::var("RINGTAIL_MODEL_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(150);
    for seed in 0..seeds {
        run_seed(seed);
    }
    println!("log model test: {seeds} seeds x 120 steps");
}
