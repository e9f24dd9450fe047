#!/usr/bin/env bash
# Coordinator write throughput and latency, 1 voter vs 3 voters, fdatasync on.
#
# Starts one broker (a one-voter ensemble), then three brokers (three
# voters) on loopback, each with its coordinator WAL on the same disk, and
# drives OPS creates then OPS set-data operations from CLIENTS concurrent
# connections through the tools port (`ringtail coordinator bench`; real
# sockets, every write fdatasynced by a quorum before it is acknowledged).
# With three voters the clients spread over all three peers; followers
# forward writes to the leader, as ZooKeeper's do. Prints ops/s and
# p50/p99/p99.9 latency per phase, and fio's fdatasync latency of the same
# disk as the reference for one durable write.
#
#   perf/coordinator-bench.sh
#   OPS=20000 CLIENTS=32 SIZE=100 DIR=/mnt/ssd/tmp perf/coordinator-bench.sh
#   BIN=target/release/ringtail perf/coordinator-bench.sh   # skip the build
set -euo pipefail
cd "$(dirname "$0")/.."
ops=${OPS:-10000}
clients=${CLIENTS:-16}
size=${SIZE:-100}
base=${DIR:-${TMPDIR:-/tmp}}/ringtail-coord-bench-$$
bin=${BIN:-}
if [ -z "$bin" ]; then
  cargo build --release -q -p ringtail --bin ringtail
  bin=${CARGO_TARGET_DIR:-target}/release/ringtail
fi
mkdir -p "$base"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$base"
}
trap cleanup EXIT

# ports N: N distinct free ports (all held open until printed).
ports() {
  python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

# start_broker ID VOTERS CLIENT_PORT KAFKA_PORT
start_broker() {
  local id=$1 voters=$2 cport=$3 kport=$4
  local args=(broker --override "broker.id=$id"
    --override "listeners=PLAINTEXT://127.0.0.1:$kport"
    --override "log.dirs=$base/b$id-$cport/data"
    --override "coordinator.client.port=$cport"
    --override "shard.count=1")
  if [ -n "$voters" ]; then args+=(--override "coordinator.voters=$voters"); fi
  mkdir -p "$base/b$id-$cport"
  "$bin" "${args[@]}" >/dev/null 2>"$base/b$id-$cport/stderr.log" &
  pids+=($!)
}

wait_serving() {
  local server=$1
  for _ in $(seq 1 300); do
    if "$bin" coordinator --server "$server" srvr 2>/dev/null | grep -qE 'Mode: (leader|follower)$'; then
      # The broker registers right after the peer serves.
      "$bin" coordinator --server "$server" sync / >/dev/null 2>&1 && return 0
    fi
    sleep 0.1
  done
  echo "coordinator at $server did not start" >&2
  return 1
}

stop_all() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  pids=()
}

echo "== machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), disk of $base: $(df -h --output=source,fstype "$base" | tail -1)"
echo "== $ops ops per phase, $clients clients, $size B per node"

echo "== 1 voter"
read -r c1 k1 < <(ports 2)
start_broker 0 "" "$c1" "$k1"
wait_serving "127.0.0.1:$c1"
"$bin" coordinator --server "127.0.0.1:$c1" bench --ops "$ops" --clients "$clients" --size "$size"
stop_all

echo "== 3 voters"
read -r -a p < <(ports 9)
voters="0@127.0.0.1:${p[0]},1@127.0.0.1:${p[1]},2@127.0.0.1:${p[2]}"
cp=("${p[3]}" "${p[4]}" "${p[5]}")
for i in 0 1 2; do start_broker "$i" "$voters" "${cp[$i]}" "${p[$((6 + i))]}"; done
servers=""
for i in 0 1 2; do
  wait_serving "127.0.0.1:${cp[$i]}"
  servers+="${servers:+,}127.0.0.1:${cp[$i]}"
done
for i in 0 1 2; do
  "$bin" coordinator --server "127.0.0.1:${cp[$i]}" srvr | grep -E '^(Server id|Mode)' | paste -sd' '
done
"$bin" coordinator --server "127.0.0.1:${cp[0]}" bench --ops "$ops" --clients "$clients" --size "$size" --servers "$servers"
stop_all

echo "== fio fdatasync reference (4 KiB writes, fdatasync after each)"
if command -v fio >/dev/null; then
  fio --name=x --directory="$base" --rw=write --bs=4k --fdatasync=1 --size=64m \
    --output-format=json 2>/dev/null | python3 -c '
import json, sys
job = json.load(sys.stdin)["jobs"][0]
p = job["sync"]["lat_ns"]["percentile"]
w = job["write"]["clat_ns"]["percentile"]
us = lambda d, q: d[q] / 1000
print("fio fdatasync p50_us=%.0f p99_us=%.0f p99.9_us=%.0f (write clat p50_us=%.0f p99_us=%.0f)" % (
    us(p, "50.000000"), us(p, "99.000000"), us(p, "99.900000"),
    us(w, "50.000000"), us(w, "99.000000")))'
  rm -f "$base"/x.*
else
  echo "fio not installed"
fi
