#!/usr/bin/env bash
# Broker benchmarks (issue 3): librdkafka's rdkafka_performance against one
# Ringtail node, next to this machine's limits measured in the same run
# (fio on the same disk, iperf3 on loopback). Rewrites the broker section
# of perf/RESULTS.md.
#
#   perf/broker.sh              # 4 GiB produced per produce run
#   SMALL=1 perf/broker.sh      # quick check
#
# The broker runs one shard pinned to CPU 0; the load generator (and
# iperf3's client) run on CPU 1, so neither steals the other's core.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
for pair in fio:fio iperf3:iperf3 taskset:util-linux; do
  command -v "${pair%%:*}" >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pair##*:}" >/dev/null; }
done
rdperf=$(perf/build-rdkafka-perf.sh)
cargo build --release -q -p ringtail
ringtail=$root/target/release/ringtail
data=$root/target/bench-broker
port=19092
bootstrap=127.0.0.1:$port
if [ "${SMALL:-0}" = 1 ]; then records=500000; else records=4000000; fi
size=1024
partitions=16

pid=
start_broker() {
  # Start every run without dirty pages left by the previous one.
  sync
  taskset -c 0 "$ringtail" broker --override log.dirs="$data" --override listeners=PLAINTEXT://$bootstrap \
    --override shard.count=1 --override num.partitions=$partitions "$@" 2> "$data.log" &
  pid=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && return; sleep 0.1; done
  echo "broker did not start:"; cat "$data.log"; exit 1
}
stop_broker() { kill -TERM "$pid"; wait "$pid" || true; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
ticks_per_s=$(getconf CLK_TCK)

# produce TOPIC ACKS [extra rdkafka_performance args]: prints "msgs/s MB/s"
produce() {
  local topic=$1 acks=$2; shift 2
  taskset -c 1 "$rdperf" -P -t "$topic" -b "$bootstrap" -s $size -c $records -a "$acks" -q \
    -X linger.ms=5 -X batch.size=1000000 -X queue.buffering.max.messages=10000000 -X queue.buffering.max.kbytes=8388608 "$@" 2>&1 |
    tee -a "$data.perf.log" |
    awk '/messages produced/ {for (i=1;i<=NF;i++) {if ($i=="msgs/s") m=$(i-1); if ($i ~ /^MB\/s/) b=$(i-1)}} END {print m, b}'
}

# consume TOPIC: prints "msgs/s MB/s cpu_seconds_of_broker"
consume() {
  local topic=$1 parts=() p
  for p in $(seq 0 $((partitions - 1))); do parts+=(-p "$p"); done
  local before; before=$(cpu_ticks)
  local out
  out=$(taskset -c 1 "$rdperf" -C -t "$topic" -b "$bootstrap" "${parts[@]}" -o beginning -c $records -q \
    -X fetch.max.bytes=52428800 -X max.partition.fetch.bytes=4194304 2>&1 | tee -a "$data.perf.log" |
    awk '/consumed in/ {for (i=1;i<=NF;i++) {if ($i=="msgs/s") m=$(i-1); if ($i=="MB/s)") {b=$(i-1); gsub(/\(/, "", b)}}} END {print m, b}')
  local after; after=$(cpu_ticks)
  echo "$out $(python3 -c "print(($after - $before) / $ticks_per_s)")"
}

rm -rf "$data" "$data".*; mkdir -p "$data"
fio_dir=$root/target/bench-fio; rm -rf "$fio_dir"; mkdir -p "$fio_dir"
fio_bw() {
  sync
  fio --name=limit --directory="$fio_dir" --ioengine=psync --output-format=json "$@" |
    python3 -c "import json,sys; j=json.load(sys.stdin)['jobs'][0]; rw=j['write'] if j['write']['bw_bytes'] else j['read']; print('%.1f' % (rw['bw_bytes']/1e6))"
  rm -f "$fio_dir"/limit*
}
total_bytes=$((records * size))

echo "== produce acks=1"
start_broker
read -r p1_rate p1_mb < <(produce bench-acks1 1)
echo "== tailing consumer, zero-copy"
read -r c_rate c_mb c_cpu < <(consume bench-acks1)
stop_broker
# Where the fetched bytes went, from the shard's io_uring counters.
io_counts() { grep -o 'spliced file->socket [0-9]*, read file->memory [0-9]*, sent memory->socket [0-9]*' "$data.log" | awk '{print $3, $6, $9}' | tr -d ','; }
read -r zc_spliced zc_read zc_sent < <(io_counts)

echo "== tailing consumer, zero-copy off"
start_broker --override fetch.zero.copy=false
read -r c0_rate c0_mb c0_cpu < <(consume bench-acks1)
stop_broker
read -r copy_spliced copy_read copy_sent < <(io_counts)

echo "== produce acks=all"
rm -rf "$data"; mkdir -p "$data"
start_broker
read -r pall_rate pall_mb < <(produce bench-acksall -1)
stop_broker
# The broker's shutdown line: "... holding B bytes; F group-commit fdatasyncs ...".
flush=$(awk '/group-commit fdatasyncs/ {b+=$(NF-6); f+=$(NF-4)} END {if (f>0) printf "%d", b/f; else print 1048576}' "$data.log")
flush=$(( flush > 4096 ? flush : 4096 ))

echo "== produce p99 at half the maximum rate"
# The maximum is measured in the same per-message latency mode (-l), which
# costs the load generator CPU; half of it is then offered open-loop (-r).
start_broker
lat=$data/latency.txt
read -r lmax_rate _ < <(produce bench-latency-max 1 -l -A /dev/null)
half=$(python3 -c "print(int(float('$lmax_rate') / 2))")
taskset -c 1 "$rdperf" -P -t bench-latency -b "$bootstrap" -s $size -c $((half * 10)) -a 1 -q -l -A "$lat" -r "$half" \
  -X linger.ms=5 -X batch.size=1000000 >> "$data.perf.log" 2>&1
read -r p50 p99 p999 < <(python3 - "$lat" <<'PY'
import sys
vals = []
for line in open(sys.argv[1]):
    f = line.split()
    if f:
        try: vals.append(float(f[0]))
        except ValueError: pass
vals.sort()
q = lambda p: vals[min(len(vals) - 1, int(len(vals) * p))] / 1000.0
print(f"{q(0.5):.2f} {q(0.99):.2f} {q(0.999):.2f}")
PY
)
stop_broker

echo "== limits"
fio_buffered=$(fio_bw --rw=write --bs=1m --size=$total_bytes)
fio_sync=$(fio_bw --rw=write --bs="$flush" --size=1g --fdatasync=1)
iperf3 -s -1 -p 5299 -A 0 >/dev/null 2>&1 &
sleep 0.5
iperf=$(iperf3 -c 127.0.0.1 -p 5299 -t 10 -A 1 -J | python3 -c "import json,sys; print('%.1f' % (json.load(sys.stdin)['end']['sum_received']['bits_per_second']/8e6))")

ratio() { python3 -c "print(f'{float(\"$1\")/float(\"$2\")*100:.0f}%')"; }
gb=$(python3 -c "print($total_bytes / 1e9)")
cpu_gb=$(python3 -c "print(f'{$c_cpu / $gb:.2f}')")
cpu0_gb=$(python3 -c "print(f'{$c0_cpu / $gb:.2f}')")
table=$(cat <<MD
Machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, kernel $(uname -r), disk $(df -h "$data" | awk 'NR==2 {print $1}'); $(date -u +%Y-%m-%d).
Broker: one shard on CPU 0; load generator \`rdkafka_performance\` (librdkafka $(strings "$rdperf" | grep -m1 -oE 'librdkafka v?[0-9]+\.[0-9]+\.[0-9]+' || echo bundled)) on CPU 1.
$records records of $size B, $partitions partitions, \`linger.ms=5 batch.size=1000000\`.

| workload | Ringtail | limit (same run) | ratio | target |
|---|---|---|---|---|
| produce acks=1 | $p1_mb MB/s ($p1_rate msgs/s) | fio buffered write $fio_buffered MB/s | $(ratio "$p1_mb" "$fio_buffered") | >= 70% |
| produce acks=all (fdatasync before ack) | $pall_mb MB/s ($pall_rate msgs/s) | fio \`--fdatasync=1 --bs=$flush\` (broker's bytes per fdatasync) $fio_sync MB/s | $(ratio "$pall_mb" "$fio_sync") | >= 70% |
| tailing fetch, one consumer | $c_mb MB/s | iperf3 one stream $iperf MB/s | $(ratio "$c_mb" "$iperf") | >= 60% |
| broker CPU per GB fetched | zero-copy $cpu_gb s/GB | copy path (\`fetch.zero.copy=false\`) $cpu0_gb s/GB ($c0_mb MB/s) | $(ratio "$cpu_gb" "$cpu0_gb") | <= 50% |
| bytes moved by the broker while serving those fetches (io_uring counters) | zero-copy: spliced $zc_spliced, read into memory $zc_read, sent from memory $zc_sent | copy path: spliced $copy_spliced, read into memory $copy_read, sent from memory $copy_sent | | no user-space copy |
| produce latency, acks=1, at half the maximum rate ($half of $lmax_rate msgs/s, latency mode) | p50 $p50 ms, p99 $p99 ms, p99.9 $p999 ms | | | reported |

Commands: \`perf/broker.sh\` (rdkafka_performance built by \`perf/build-rdkafka-perf.sh\`; exact invocations in the script).
MD
)
echo "$table"
results=$root/perf/RESULTS.md
[ -f "$results" ] || printf '# Ringtail benchmark results\n' > "$results"
python3 - "$results" "$table" <<'PY'
import re, sys
path, table = sys.argv[1], sys.argv[2]
text = open(path).read()
section = "<!-- broker:begin -->\n## Single-node broker (issue 3)\n\n" + table + "\n<!-- broker:end -->"
if "<!-- broker:begin -->" in text:
    text = re.sub(r"<!-- broker:begin -->.*?<!-- broker:end -->", lambda m: section, text, flags=re.S)
else:
    text = text.rstrip() + "\n\n" + section + "\n"
open(path, "w").write(text)
PY
rm -rf "$data" "$fio_dir"
