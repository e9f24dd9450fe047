#!/usr/bin/env bash
# Cluster benchmark (issue 7): produce throughput with replication factor 3
# and acks=all on three local brokers against replication factor 1 and
# acks=all on the same three brokers (same processes, same machine: the
# difference is the cost of replication), and produce -> consume latency
# p99 for both at the same fixed rate. Load generator: ringtail-perf (perf/).
# Rewrites the cluster section of perf/RESULTS.md (not with SMALL=1).
#
#   perf/cluster-bench.sh           # 500,000 records of 1 KiB per produce run, 3 rounds
#   SMALL=1 perf/cluster-bench.sh   # smoke run: 50,000 records, 1 round, prints only
#   ROUNDS=5 perf/cluster-bench.sh  # more rounds
#
# Settings: 16 partitions, 1 KiB records, Kafka's Java producer defaults
# (ringtail-perf --defaults java), one producer, closed loop (--throughput
# -1) for throughput, ROUNDS interleaved rounds (RF 1 then RF 3, RF 3
# then RF 1, ...; each run on a topic of its own), medians reported;
# end-to-end latency at half the RF 3 median rate,
# open loop, latency from each record's intended send time to its
# consumption. Topics are made first with `ringtail topics --create`
# (RF 3 with min.insync.replicas=2), so no run times a topic creation.
# Brokers: SHARDS (default 1) shards each; PORT (default 19300) is the
# first of the ports used (PORT..PORT+33). Data in target/cluster-bench,
# logs and every command's output in target/cluster-bench-logs.
#
# Run it on a quiet machine: three brokers and the load generator share
# the cores, so anything else running skews the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
small=${SMALL:-0}
shards=${SHARDS:-1}
base=${PORT:-19300}
size=1024
partitions=16
if [ "$small" = 1 ]; then records=50000; e2e_secs=3; rounds=${ROUNDS:-1}; else records=500000; e2e_secs=20; rounds=${ROUNDS:-3}; fi

cargo build --release -q -p ringtail -p ringtail-perf --bins
target=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
ringtail=$target/release/ringtail
perf=$target/release/ringtail-perf

data=$root/target/cluster-bench
logs=$root/target/cluster-bench-logs
rm -rf "$data" "$logs"; mkdir -p "$data" "$logs"
: > "$logs/commands.txt"
note() { printf '%s\n' "$*" | sed -e "s#$target/release/##g" -e "s#$root/##g" >> "$logs/commands.txt"; }

kafka_port() { echo $((base + $1)); }
voters=$(for i in 1 2 3; do printf '%s@127.0.0.1:%s,' "$i" $((base + 10 + i)); done)
voters=${voters%,}
bootstrap=$(for i in 1 2 3; do printf '127.0.0.1:%s,' "$(kafka_port "$i")"; done)
bootstrap=${bootstrap%,}

pids=()
start_cluster() {
  pids=()
  for i in 1 2 3; do
    local args=(broker --override broker.id="$i" --override "listeners=PLAINTEXT://127.0.0.1:$(kafka_port "$i")"
      --override log.dirs="$data/broker-$i" --override "coordinator.voters=$voters"
      --override coordinator.client.port=$((base + 20 + i)) --override metrics.listen=127.0.0.1:$((base + 30 + i))
      --override shard.count="$shards" --override cluster.id=ringtail-cluster-bench)
    note "$ringtail ${args[*]} &"
    "$ringtail" "${args[@]}" 2> "$logs/broker-$i.log" &
    pids+=($!)
  done
  # Formed: all three registered and every Kafka port taking connections
  # (a broker registers before its listener is up).
  for _ in $(seq 300); do
    local ids listening=0
    ids=$("$ringtail" coordinator --server 127.0.0.1:$((base + 21)) ls /brokers/ids 2>/dev/null || true)
    for i in 1 2 3; do (exec 3<>"/dev/tcp/127.0.0.1/$(kafka_port "$i")") 2>/dev/null && listening=$((listening + 1)); done
    [ "$ids" = "[1, 2, 3]" ] && [ "$listening" = 3 ] && return
    sleep 0.1
  done
  echo "the cluster did not form within 30 s:"; tail -n 20 "$logs"/broker-*.log; exit 1
}
stop_cluster() {
  [ ${#pids[@]} -gt 0 ] || return 0
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" || true
  pids=()
}
trap 'stop_cluster; rm -rf "$data"' EXIT

topics() {
  note "$ringtail topics --bootstrap-server $bootstrap $*"
  "$ringtail" topics --bootstrap-server "$bootstrap" "$@"
}
create() { # TOPIC RF
  local configs=()
  [ "$2" -gt 1 ] && configs=(--config min.insync.replicas=2)
  topics --create --topic "$1" --partitions $partitions --replication-factor "$2" "${configs[@]}" > /dev/null
}
# Waits until every partition of TOPIC lists RF replicas in its ISR.
wait_isr() { # TOPIC RF
  for _ in $(seq 300); do
    if "$ringtail" topics --bootstrap-server "$bootstrap" --describe --topic "$1" 2>/dev/null |
      awk -v rf="$2" -v n=$partitions -F'\t' '
        /Partition: / { for (i = 1; i <= NF; i++) if ($i ~ /^Isr: /) { split(substr($i, 6), a, ","); if (length(a) == rf) ok++ } }
        END { exit !(ok == n) }'; then
      return
    fi
    sleep 0.1
  done
  echo "$1: ISR never reached $2 replicas:"; "$ringtail" topics --bootstrap-server "$bootstrap" --describe --topic "$1"; exit 1
}

rt() { # NAME ringtail-perf-args...
  local name=$1; shift
  note "$perf $*"
  "$perf" "$@" > "$logs/$name.out" 2> "$logs/$name.err" ||
    { echo "ringtail-perf $name failed:"; cat "$logs/$name.err"; exit 1; }
  tail -n 2 "$logs/$name.out"
}
# FIELD of the last line with VERB in NAME.out (records_per_sec, mb_per_sec, p99_ms).
field() { # NAME VERB FIELD
  python3 - "$logs/$1.out" "$2" "$3" <<'PY'
import re, sys
path, verb, field = sys.argv[1:]
line = [l for l in open(path).read().splitlines() if f" records {verb}, " in l][-1]
m = re.match(r"(\d+) records \w+, ([\d.]+) records/sec \(([\d.]+) MB/sec\).*?([\d.]+) ms 99th", line)
print({"records_per_sec": m.group(2), "mb_per_sec": m.group(3), "p99_ms": m.group(4)}[field])
PY
}

echo "== three brokers, topics with RF 1 and RF 3 ($partitions partitions each)"
start_cluster
for round in $(seq "$rounds"); do for rf in 1 3; do create "rf$rf-r$round" $rf; done; done
for rf in 1 3; do create "e2e-rf$rf" $rf; done
for round in $(seq "$rounds"); do for rf in 1 3; do wait_isr "rf$rf-r$round" $rf; done; done
for rf in 1 3; do wait_isr "e2e-rf$rf" $rf; done
topics --describe --topic rf3-r1 > "$logs/describe-rf3.txt"

echo "== produce, acks=all, closed loop, $rounds interleaved rounds"
rates1=() rates3=() mbs1=() mbs3=() p99s1=() p99s3=()
for round in $(seq "$rounds"); do
  order="1 3"; [ $((round % 2)) = 0 ] && order="3 1"
  for rf in $order; do
    rt "produce-rf$rf-r$round" produce --bootstrap-server "$bootstrap" --topic "rf$rf-r$round" --num-records $records \
      --record-size $size --throughput -1 --acks all --partitions $partitions
  done
  rates1+=("$(field "produce-rf1-r$round" sent records_per_sec)"); rates3+=("$(field "produce-rf3-r$round" sent records_per_sec)")
  mbs1+=("$(field "produce-rf1-r$round" sent mb_per_sec)"); mbs3+=("$(field "produce-rf3-r$round" sent mb_per_sec)")
  p99s1+=("$(field "produce-rf1-r$round" sent p99_ms)"); p99s3+=("$(field "produce-rf3-r$round" sent p99_ms)")
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
rate1=$(median "${rates1[@]}"); mb1=$(median "${mbs1[@]}"); p99_1=$(median "${p99s1[@]}")
rate3=$(median "${rates3[@]}"); mb3=$(median "${mbs3[@]}"); p99_3=$(median "${p99s3[@]}")

echo "== produce -> consume latency, acks=all, at half the RF 3 maximum"
half=$(python3 -c "print(max(1, int(float('$rate3') / 2)))")
for rf in 1 3; do
  rt "e2e-rf$rf" end-to-end --bootstrap-server "$bootstrap" --topic "e2e-rf$rf" --num-records $((half * e2e_secs)) \
    --record-size $size --throughput "$half" --acks all --partitions $partitions
done
e2e1=$(field e2e-rf1 received p99_ms); e2e3=$(field e2e-rf3 received p99_ms)
ack1=$(field e2e-rf1 sent p99_ms); ack3=$(field e2e-rf3 sent p99_ms)
stop_cluster

ratio() { python3 -c "print(f'{float(\"$1\") / float(\"$2\"):.2f}')"; }
table=$(cat <<MD
Machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, kernel $(uname -r), disk $(df -h "$root/target" | awk 'NR==2 {print $1}'); $(date -u +%Y-%m-%dT%H:%M:%SZ).
Three brokers on 127.0.0.1 ($shards shard each, not pinned; the load generator shares the cores), every broker a coordinator voter.
$records records of $size B, $partitions partitions, one ringtail-perf producer with Kafka's Java producer defaults, acks=all.
RF 3 topics have min.insync.replicas=2; an acks=all answer waits for the batch to be durable on every ISR member.
On one machine the three replicas share its disk and cores: RF 3 writes and fsyncs every byte three times and moves it
over loopback twice more, so about 1/3 of RF 1's rate is the ceiling here (on three machines each broker writes its own copy).

| workload | RF 1 (acks=all) | RF 3 (acks=all) | RF 3 / RF 1 |
|---|---|---|---|
| produce, closed loop (median of $rounds rounds) | $mb1 MB/s ($rate1 records/s), ack p99 $p99_1 ms; rounds: ${rates1[*]} records/s | $mb3 MB/s ($rate3 records/s), ack p99 $p99_3 ms; rounds: ${rates3[*]} records/s | $(ratio "$rate3" "$rate1") |
| produce -> consume latency p99 at $half records/s (half the RF 3 median maximum) | $e2e1 ms (ack p99 $ack1 ms) | $e2e3 ms (ack p99 $ack3 ms) | $(ratio "$e2e3" "$e2e1") |

Commands (\`perf/cluster-bench.sh\`, ROUNDS=$rounds):
\`\`\`
$(cat "$logs/commands.txt")
\`\`\`
MD
)
echo
echo "$table"
echo
echo "throughput RF3/RF1 = $(ratio "$rate3" "$rate1"); end-to-end p99 RF3/RF1 = $(ratio "$e2e3" "$e2e1")"
if [ "$small" = 1 ]; then
  echo "(SMALL=1: smoke run, perf/RESULTS.md left as it is)"
  exit 0
fi
results=$root/perf/RESULTS.md
python3 - "$results" "$table" <<'PY'
import re, sys
path, table = sys.argv[1], sys.argv[2]
text = open(path).read()
section = "<!-- cluster:begin -->\n## Three-broker cluster (issue 7, `perf/cluster-bench.sh`)\n\n" + table + "\n<!-- cluster:end -->"
if "<!-- cluster:begin -->" in text:
    text = re.sub(r"<!-- cluster:begin -->.*?<!-- cluster:end -->", lambda m: section, text, flags=re.S)
else:
    text = text.rstrip() + "\n\n" + section + "\n"
open(path, "w").write(text)
PY
echo "wrote the cluster section of perf/RESULTS.md"
