#!/usr/bin/env bash
# Crash soak (not in CI): many kill -9 / power-loss cycles over several seeds.
#   perf/soak-crash.sh [cycles per seed, default 2000] [seeds, default 5]
set -euo pipefail
cd "$(dirname "$0")/.."
cycles=${1:-2000}
seeds=${2:-5}
cargo build --release -q -p ringtail-io --tests --bins
for seed in $(seq 1 "$seeds"); do
  RINGTAIL_CRASH_SEED=$seed RINGTAIL_CRASH_CYCLES=$cycles \
    cargo test --release -q -p ringtail-io --test crash -- --nocapture 2>&1 | grep -E "crash test|panicked|FAILED"
done
