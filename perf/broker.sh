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
#
# Every workload runs with two load generators: librdkafka's
# rdkafka_performance (independent of this project) and ringtail-perf
# (perf/, lighter per record). Each line reports the generator's own CPU
# use: a generator near 100% of its core, not the broker, set the rate.
# The zero-copy CPU comparison runs ROUNDS (default 3) interleaved rounds
# and reports medians, next to the kernel's own floor for that ratio on
# this machine (perf/zero-copy-floor.py: sendfile vs pread+send).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
for pair in fio:fio iperf3:iperf3 taskset:util-linux /usr/bin/time:time; do
  command -v "${pair%%:*}" >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pair##*:}" >/dev/null; }
done
rdperf=$(perf/build-rdkafka-perf.sh)
cargo build --release -q -p ringtail -p ringtail-perf
ringtail=$root/target/release/ringtail
rtperf=$root/target/release/ringtail-perf
rounds=${ROUNDS:-3}
data=$root/target/bench-broker
port=${PORT:-19092}
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
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break # exited: port taken, bad config, ...
    (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && return
    sleep 0.1
  done
  echo "broker did not start:"; cat "$data.log"; exit 1
}
stop_broker() { kill -TERM "$pid"; wait "$pid" || true; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
ticks_per_s=$(getconf CLK_TCK)

# gen_cpu: the last timed load generator's CPU use, as % of one core.
gen_cpu() { awk '{printf "%.0f", ($2 + $3) / $1 * 100}' "$data.time"; }
timed() { /usr/bin/time -o "$data.time" -f '%e %U %S' "$@"; }

# produce TOPIC ACKS [extra rdkafka_performance args]: prints "msgs/s MB/s gen_cpu%"
produce() {
  local topic=$1 acks=$2; shift 2
  local out
  out=$(timed taskset -c 1 "$rdperf" -P -t "$topic" -b "$bootstrap" -s $size -c $records -a "$acks" -q \
    -X linger.ms=5 -X batch.size=1000000 -X queue.buffering.max.messages=10000000 -X queue.buffering.max.kbytes=8388608 "$@" 2>&1 |
    tee -a "$data.perf.log" |
    awk '/messages produced/ {for (i=1;i<=NF;i++) {if ($i=="msgs/s") m=$(i-1); if ($i ~ /^MB\/s/) b=$(i-1)}} END {print m, b}')
  echo "$out $(gen_cpu)"
}

# rt_produce TOPIC ACKS: the same workload from ringtail-perf (batch.size
# and linger.ms as above); prints "msgs/s MB/s gen_cpu%" (MB = 10^6 B).
rt_produce() {
  local topic=$1 acks=$2
  timed taskset -c 1 "$rtperf" produce --bootstrap-server "$bootstrap" --topic "$topic" --create-topic \
    --partitions $partitions --num-records $records --record-size $size --throughput -1 --acks "$acks" \
    --batch-size 1000000 --linger-ms 5 --reporting-interval 1000 2>&1 | tee -a "$data.perf.log" |
    awk -v size=$size '/records sent,.*99th/ {r=$4} END {printf "%.0f %.2f", r, r*size/1e6}'
  echo " $(gen_cpu)"
}

# consume TOPIC: prints "msgs/s MB/s cpu_seconds_of_broker"
consume() {
  local topic=$1 parts=() p
  for p in $(seq 0 $((partitions - 1))); do parts+=(-p "$p"); done
  local before; before=$(cpu_ticks)
  local out
  out=$(timed taskset -c 1 "$rdperf" -C -t "$topic" -b "$bootstrap" "${parts[@]}" -o beginning -c $records -q \
    -X fetch.max.bytes=52428800 -X max.partition.fetch.bytes=4194304 2>&1 | tee -a "$data.perf.log" |
    awk '/consumed in/ {for (i=1;i<=NF;i++) {if ($i=="msgs/s") m=$(i-1); if ($i=="MB/s)") {b=$(i-1); gsub(/\(/, "", b)}}} END {print m, b}')
  local after; after=$(cpu_ticks)
  echo "$out $(python3 -c "print(($after - $before) / $ticks_per_s)") $(gen_cpu)"
}

# rt_consume TOPIC: ringtail-perf reads the topic from the beginning
# (CRC-32C checked, records counted); prints "msgs/s MB/s broker_cpu_s gen_cpu%".
rt_consume() {
  local topic=$1 before after out
  before=$(cpu_ticks)
  out=$(timed taskset -c 1 "$rtperf" consume --bootstrap-server "$bootstrap" --topic "$topic" --messages $records \
    --from-beginning --max-partition-fetch-bytes 4194304 2>&1 | tee -a "$data.perf.log" |
    awk -F', ' -v size=$size 'NF >= 6 && $6+0 > 0 {r=$6} END {printf "%.0f %.2f", r, r*size/1e6}')
  after=$(cpu_ticks)
  echo "$out $(python3 -c "print(($after - $before) / $ticks_per_s)") $(gen_cpu)"
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
read -r p1_rate p1_mb p1_gen < <(produce bench-acks1 1)
read -r p1r_rate p1r_mb p1r_gen < <(rt_produce bench-acks1-rt 1)
echo "== tailing consumers, zero-copy"
read -r c_rate c_mb c_cpu c_gen < <(consume bench-acks1)
read -r cr_rate cr_mb cr_cpu cr_gen < <(rt_consume bench-acks1)
stop_broker
# Where the fetched bytes went, from the shard's io_uring counters.
io_counts() { grep -o 'spliced file->socket [0-9]*, read file->memory [0-9]*, sent memory->socket [0-9]*' "$data.log" | awk '{print $3, $6, $9}' | tr -d ','; }
read -r zc_spliced zc_read zc_sent < <(io_counts)

echo "== broker CPU per GB fetched: zero-copy and copy, $rounds interleaved rounds (ringtail-perf consume)"
zc_cpus=() copy_cpus=()
for round in $(seq "$rounds"); do
  start_broker
  read -r _ _ cpu _ < <(rt_consume bench-acks1)
  zc_cpus+=("$cpu")
  stop_broker
  start_broker --override fetch.zero.copy=false
  read -r _ c0_mb cpu _ < <(rt_consume bench-acks1)
  copy_cpus+=("$cpu")
  stop_broker
  [ "$round" = 1 ] && read -r copy_spliced copy_read copy_sent < <(io_counts)
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
zc_cpu=$(median "${zc_cpus[@]}")
copy_cpu=$(median "${copy_cpus[@]}")
read -r _ _ floor_zc _ floor_copy _ floor_ratio < <(DIR=$data python3 perf/zero-copy-floor.py 1024 "$rounds")

echo "== produce acks=all"
rm -rf "$data"; mkdir -p "$data"
start_broker
read -r pall_rate pall_mb pall_gen < <(produce bench-acksall -1)
read -r pallr_rate pallr_mb pallr_gen < <(rt_produce bench-acksall-rt all)
stop_broker
# The broker's shutdown line: "... holding B bytes; F group-commit fdatasyncs ...".
flush=$(awk '/group-commit fdatasyncs/ {b+=$(NF-6); f+=$(NF-4)} END {if (f>0) printf "%d", b/f; else print 1048576}' "$data.log")
flush=$(( flush > 4096 ? flush : 4096 ))
rm -rf "$data"; mkdir -p "$data"

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
# The same amount of data as one produce run: a short fio run would
# measure the disk's burst, the broker writes for longer.
fio_sync=$(fio_bw --rw=write --bs="$flush" --size=$total_bytes --fdatasync=1)
iperf3 -s -1 -p 5299 -A 0 >/dev/null 2>&1 &
sleep 0.5
iperf=$(iperf3 -c 127.0.0.1 -p 5299 -t 10 -A 1 -J | python3 -c "import json,sys; print('%.1f' % (json.load(sys.stdin)['end']['sum_received']['bits_per_second']/8e6))")

ratio() { python3 -c "print(f'{float(\"$1\")/float(\"$2\")*100:.0f}%')"; }
gb=$(python3 -c "print($total_bytes / 1e9)")
cpu_gb=$(python3 -c "print(f'{$zc_cpu / $gb:.2f}')")
cpu0_gb=$(python3 -c "print(f'{$copy_cpu / $gb:.2f}')")
cpu_rd_gb=$(python3 -c "print(f'{$c_cpu / $gb:.2f}')")
cpu_rt_gb=$(python3 -c "print(f'{$cr_cpu / $gb:.2f}')")
per_gb() { python3 -c "import sys; print(' '.join(f'{float(x) / $gb:.2f}' for x in sys.argv[1:]))" "$@"; }
table=$(cat <<MD
Machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, kernel $(uname -r), disk $(df -h "$data" | awk 'NR==2 {print $1}'); $(date -u +%Y-%m-%d).
Broker: one shard on CPU 0. Load generators on CPU 1: \`rdkafka_performance\` (librdkafka $(strings "$rdperf" | grep -m1 -oE 'librdkafka v?[0-9]+\.[0-9]+\.[0-9]+' || echo bundled)) and \`ringtail-perf\`, each with its CPU use (% of its core).
$records records of $size B, $partitions partitions, \`linger.ms=5 batch.size=1000000\` for both producers.

| workload | Ringtail | limit (same run) | ratio | target |
|---|---|---|---|---|
| produce acks=1, rdkafka_performance | $p1_mb MB/s ($p1_rate msgs/s; generator CPU $p1_gen%) | fio buffered write $fio_buffered MB/s | $(ratio "$p1_mb" "$fio_buffered") | >= 70% |
| produce acks=1, ringtail-perf | $p1r_mb MB/s ($p1r_rate msgs/s; generator CPU $p1r_gen%) | fio buffered write $fio_buffered MB/s | $(ratio "$p1r_mb" "$fio_buffered") | >= 70% |
| produce acks=all, rdkafka_performance | $pall_mb MB/s ($pall_rate msgs/s; generator CPU $pall_gen%) | fio \`--fdatasync=1 --bs=$flush\` (broker's bytes per fdatasync) $fio_sync MB/s | $(ratio "$pall_mb" "$fio_sync") | >= 70% |
| produce acks=all, ringtail-perf | $pallr_mb MB/s ($pallr_rate msgs/s; generator CPU $pallr_gen%) | same fio $fio_sync MB/s | $(ratio "$pallr_mb" "$fio_sync") | >= 70% |
| tailing fetch, one consumer, rdkafka_performance | $c_mb MB/s (generator CPU $c_gen%; broker $cpu_rd_gb s/GB) | iperf3 one stream $iperf MB/s | $(ratio "$c_mb" "$iperf") | >= 60% |
| tailing fetch, one consumer, ringtail-perf | $cr_mb MB/s (generator CPU $cr_gen%; broker $cpu_rt_gb s/GB) | iperf3 one stream $iperf MB/s | $(ratio "$cr_mb" "$iperf") | >= 60% |
| broker CPU per GB fetched (median of $rounds interleaved rounds, ringtail-perf consume) | zero-copy $cpu_gb s/GB (rounds: $(per_gb "${zc_cpus[@]}")) | copy path (\`fetch.zero.copy=false\`) $cpu0_gb s/GB (rounds: $(per_gb "${copy_cpus[@]}")) | $(ratio "$cpu_gb" "$cpu0_gb") | <= 50% |
| the kernel's floor for that ratio (\`perf/zero-copy-floor.py\`: sendfile vs pread+send, sender CPU) | sendfile $floor_zc s/GB | pread+send $floor_copy s/GB | $(python3 -c "print(f'{float(\"$floor_ratio\")*100:.0f}%')") | |
| bytes moved by the broker while serving fetches (io_uring counters) | zero-copy: spliced $zc_spliced, read into memory $zc_read, sent from memory $zc_sent | copy path: spliced $copy_spliced, read into memory $copy_read, sent from memory $copy_sent | | no user-space copy |
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
