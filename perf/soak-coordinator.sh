#!/usr/bin/env bash
# Coordinator soak: three broker processes on loopback, the ZAB leader
# killed with SIGKILL and restarted CYCLES times (default 50) under a
# stream of sequential creates through the `ringtail coordinator` shell.
# Fails if any acknowledged create is missing on any peer afterwards or no
# write succeeds within 30 s of a kill; prints the election time (kill ->
# first acknowledged write) p50/p99.
#
#   perf/soak-coordinator.sh            # 50 cycles
#   CYCLES=200 perf/soak-coordinator.sh
#   PROFILE=release perf/soak-coordinator.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cycles=${CYCLES:-50}
profile=()
if [ "${PROFILE:-dev}" = release ]; then profile=(--release); fi
RINGTAIL_COORD_CYCLES=$cycles cargo test -p ringtail "${profile[@]}" --test coordinator_cluster \
  -- --nocapture 2>&1 | grep -E "^(first leader|cycle|[0-9]+ acknowledged|test |thread|.*panicked)" 
exit "${PIPESTATUS[0]}"
