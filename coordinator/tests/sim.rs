//! Randomized simulation over many seeds.
//!
//! - `RINGTAIL_SIM_SEED=N` replays one seed (what a failure prints).
//! - `RINGTAIL_SIM_SEEDS=N` runs N seeds (default 10,000 in release, 1,000
//!   in an unoptimized build; soak with more).
//! - `RINGTAIL_SIM_FIRST=N` starts from seed N (default 0).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use ringtail_coordinator::sim::{run_seed, Stats};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.replace('_', "").parse().ok())
}

#[test]
fn simulate_seeds() {
    if let Some(seed) = env_u64("RINGTAIL_SIM_SEED") {
        match run_seed(seed) {
            Ok(stats) => println!("seed {seed} passed: {stats:?}"),
            Err(e) => panic!("{e}"),
        }
        return;
    }
    // 10,000 seeds is the CI bar (release mode); an unoptimized build runs
    // a tenth so a plain `cargo test` stays quick.
    let default = if cfg!(debug_assertions) { 1_000 } else { 10_000 };
    let count = env_u64("RINGTAIL_SIM_SEEDS").unwrap_or(default);
    let first = env_u64("RINGTAIL_SIM_FIRST").unwrap_or(0);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 8) as u64;
    let started = Instant::now();
    let next = AtomicU64::new(first);
    let total = Mutex::new(Stats::default());
    let failure: Mutex<Option<String>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= first + count || failure.lock().map_or(true, |f| f.is_some()) {
                    break;
                }
                let seed_started = Instant::now();
                let outcome = run_seed(seed);
                let seed_s = seed_started.elapsed().as_secs_f64();
                if seed_s > 2.0 {
                    println!("slow seed {seed}: {seed_s:.1} s wall");
                }
                match outcome {
                    Ok(stats) => {
                        if let Ok(mut t) = total.lock() {
                            add(&mut t, &stats);
                        }
                    }
                    Err(e) => {
                        if let Ok(mut f) = failure.lock() {
                            if f.as_ref().is_none_or(|_| false) {
                                *f = Some(e);
                            }
                        }
                        break;
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().ok().flatten() {
        panic!("{e}");
    }
    let t = total.into_inner().unwrap_or_default();
    println!(
        "simulated {count} seeds from {first} in {:.1} s wall: {:.1} h simulated ({} ms), {} steps, {} messages ({} dropped), \
         {} crashes, {} torn writes, {} elections, {} txns committed, {} writes acknowledged, {} session closes, \
         {} SNAP and {} TRUNC syncs",
        started.elapsed().as_secs_f64(),
        t.simulated_ms as f64 / 3_600_000.0,
        t.simulated_ms,
        t.steps,
        t.messages,
        t.dropped,
        t.crashes,
        t.torn_writes,
        t.elections,
        t.committed,
        t.acknowledged_writes,
        t.session_expiries,
        t.snapshots_sent,
        t.truncs_sent,
    );
}

fn add(t: &mut Stats, s: &Stats) {
    t.simulated_ms += s.simulated_ms;
    t.steps += s.steps;
    t.messages += s.messages;
    t.dropped += s.dropped;
    t.crashes += s.crashes;
    t.torn_writes += s.torn_writes;
    t.elections += s.elections;
    t.committed += s.committed;
    t.acknowledged_writes += s.acknowledged_writes;
    t.session_expiries += s.session_expiries;
    t.snapshots_sent += s.snapshots_sent;
    t.truncs_sent += s.truncs_sent;
}
