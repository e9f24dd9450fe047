#!/usr/bin/env bash
# Cluster soak (issue 7, not in CI): three brokers (each with its
# coordinator peer) under a continuous idempotent acks=all producer
# (confluent-kafka from .venv, tests/clients/cluster_client.py); each
# cycle kills a random broker with SIGKILL or, when run as root, cuts it
# off in its network namespace (half of the cycles), waits for the
# failover, restores it (restart or heal) and waits until every replica
# is back in the ISR. At the end it reads everything back, compares the
# replicas byte for byte below the high watermark and prints one line:
#
#   acknowledged=N read_back=N lost=0 duplicated=0 failover_p50_ms=X failover_p99_ms=Y cycles=200 failed_deliveries=0 metadata_p50_ms=Z metadata_p99_ms=W
#
# The victim of each cycle is the leader of a random partition. Failover
# time: from the kill (or cut) to the first acks=all delivery report,
# delivered after it, on a partition the broker led (this includes the
# client noticing: a request in flight to a cut-off broker waits for its
# 5 s socket timeout); metadata time: from the kill (or cut) until
# Metadata names another leader for each of them. Exits non-zero when anything
# acknowledged is lost or duplicated, a delivery failed, or the replicas
# differ. The body is the ignored test `soak_kill_and_cut_cycles` in
# tests/cluster.rs (the same harness as the cluster tests).
#
#   perf/cluster-soak.sh          # 200 cycles
#   perf/cluster-soak.sh 20       # 20 cycles
#   SEED=123 perf/cluster-soak.sh # replay one run's choices
set -euo pipefail
cd "$(dirname "$0")/.."
cycles=${1:-${CYCLES:-200}}
log=${LOG:-target/cluster-soak.log}
mkdir -p "$(dirname "$log")"
.venv/bin/python -c 'import confluent_kafka' 2>/dev/null || {
  echo "confluent-kafka is not in .venv: run tests/run-all.sh (it installs the clients) first"; exit 2; }
env=(RINGTAIL_SOAK_CYCLES="$cycles")
[ -n "${SEED:-}" ] && env+=(RINGTAIL_SOAK_SEED="$SEED")
echo "soak: $cycles cycles; progress and broker logs of a failure in $log"
set +e
env "${env[@]}" cargo test --release -p ringtail --test cluster soak_kill_and_cut_cycles \
  -- --ignored --nocapture --exact > "$log" 2>&1
rc=$?
set -e
grep -E '^\[soak\] (seed|no network)' "$log" || true
grep -E '^acknowledged=' "$log" || { echo "no summary line; the end of $log:"; tail -n 60 "$log"; }
grep -E 'panicked|^test .* FAILED' "$log" | head -5 || true
exit $rc
