#!/usr/bin/env bash
# This machine's limits, measured in one run, as denominators for the
# broker's numbers: a produce rate means little until it is set beside
# what the disk and the loopback network can do at all.
#
#   perf/limits.sh [FLUSH]          # FLUSH: bytes per fdatasync (default 1m;
#                                   # fio suffixes: 64k, 1m, 4m, or bytes)
#   SIZE=4g DIR=/mnt/data perf/limits.sh 256k
#
# Measures, on DIR (default target/limits, i.e. the disk the broker's
# data would go to) and on 127.0.0.1:
#   - fio sequential write, buffered (page cache; no fdatasync), bs 1m
#   - fio sequential write with fdatasync after every FLUSH bytes (what an
#     acks=all append costs when the broker group-commits FLUSH bytes)
#   - fio sequential read, bs 1m, after dropping the page cache (root
#     only; otherwise the read is marked warm)
#   - iperf3, one TCP stream over loopback, server on CPU 0, client on
#     CPU 1 (the broker/load-generator split perf/broker.sh uses)
#
# Prints one `LIMIT <name> <value> MiB/s` line per measurement (MiB, as
# Kafka's tools and ringtail-perf count MB) followed by a description,
# plus MB/s (10^6) for comparison with fio's and iperf3's own output.
# Installs fio and iperf3 with apt when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
flush=${1:-1m}
size=${SIZE:-1g}
runtime=${RUNTIME:-30}
iperf_secs=${IPERF_SECONDS:-10}
dir=${DIR:-$PWD/target/limits}

missing=()
for pair in fio:fio iperf3:iperf3 taskset:util-linux python3:python3; do
  command -v "${pair%%:*}" >/dev/null || missing+=("${pair##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

mkdir -p "$dir"
file=$dir/limits.fio
cleanup() { rm -f "$file"; [ -n "${iperf_pid:-}" ] && kill "$iperf_pid" 2>/dev/null; true; }
trap cleanup EXIT

# One core machines pin both iperf3 ends to CPU 0.
cpu_client=1
[ "$(nproc)" -ge 2 ] || cpu_client=0

limit() { # NAME BYTES_PER_SEC DESCRIPTION
  python3 -c 'import sys; n, b, d = sys.argv[1], float(sys.argv[2]), sys.argv[3]; print(f"LIMIT {n} {b / 2**20:.1f} MiB/s ({b / 1e6:.1f} MB/s)  {d}")' "$1" "$2" "$3"
}

fio_bytes_per_sec() { # fio args...: sequential job on $file, prints bytes/s
  fio --name=limits --filename="$file" --ioengine=psync --runtime="$runtime" \
    --output-format=json "$@" |
    python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"][0]; rw=j["write"] if j["write"]["bw_bytes"] else j["read"]; print(rw["bw_bytes"])'
}

echo "# $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, kernel $(uname -r), $dir on $(df -h "$dir" | awk 'NR==2 {print $1 " (" $2 ")"}'), $(date -u +%Y-%m-%dT%H:%M:%SZ)"

sync
rm -f "$file"
bw=$(fio_bytes_per_sec --rw=write --bs=1m --size="$size")
limit fio_write_buffered "$bw" "sequential write, bs 1m, $size, page cache (no fdatasync)"

sync
rm -f "$file"
bw=$(fio_bytes_per_sec --rw=write --bs="$flush" --size="$size" --fdatasync=1)
limit fio_write_fdatasync "$bw" "sequential write, fdatasync every $flush (bs $flush), up to $size or ${runtime}s"

# The read needs a whole file: lay it out buffered, then flush it.
rm -f "$file"
fio --name=layout --filename="$file" --rw=write --bs=1m --size="$size" --end_fsync=1 \
  --output-format=terse >/dev/null
cache=warm
if [ "$(id -u)" = 0 ] && sync && (echo 3 > /proc/sys/vm/drop_caches) 2>/dev/null; then
  cache=cold
fi
bw=$(fio_bytes_per_sec --rw=read --bs=1m --size="$size")
limit fio_read "$bw" "sequential read, bs 1m, $size, $cache page cache"

# One-off server (-1) per try; no probe connection, which the server would
# take for its client. A try counts when the client's JSON has the
# received total (a loaded machine sometimes gives an error report
# instead); the server is then restarted for the next try.
bw=
for _ in $(seq 5); do
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  taskset -c 0 iperf3 -s -1 -B 127.0.0.1 -p "$port" >/dev/null 2>&1 &
  iperf_pid=$!
  json=
  for _ in $(seq 50); do
    json=$(taskset -c "$cpu_client" iperf3 -c 127.0.0.1 -p "$port" -t "$iperf_secs" -J 2>/dev/null) && break
    json=; sleep 0.1
  done
  bw=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 8)' \
    <<<"$json" 2>/dev/null) || bw=
  kill "$iperf_pid" 2>/dev/null || true
  wait "$iperf_pid" 2>/dev/null || true
  iperf_pid=
  [ -n "$bw" ] && break
  echo "iperf3 try failed: $(head -c 300 <<<"$json")" >&2
  sleep 1
done
[ -n "$bw" ] || { echo "iperf3 gave no result in 5 tries" >&2; exit 1; }
limit iperf3_loopback "$bw" "one TCP stream on 127.0.0.1, server CPU 0, client CPU $cpu_client, ${iperf_secs}s"
