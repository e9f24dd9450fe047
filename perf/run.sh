#!/usr/bin/env bash
# The standard workloads of issue 6, measured with ringtail-perf against one
# Ringtail node that this script starts, next to this machine's limits
# measured in the same run (perf/limits.sh); the agreement check against
# librdkafka's rdkafka_performance; and a sweep of open-loop rates plotted
# to perf/load-latency.png. Rewrites the run section of perf/RESULTS.md.
#
#   perf/run.sh            # full run: 2 GiB per produce workload, 4 GiB catch-up read
#   SMALL=1 perf/run.sh    # smoke run (about 1/10 of the data), labelled as such
#
# Workloads: 1 topic of 16 and of 100 partitions, 1 KiB records, acks=1 and
# acks=all, 1 and 4 producers (closed loop, Kafka's Java producer defaults);
# a tailing consumer reading while a producer writes; a catch-up consumer
# reading 4 GiB from disk after the page cache was dropped (needs root;
# otherwise the row says "warm"); produce->consume latency at half the
# maximum rate; the open-loop sweep.
#
# The broker runs one shard pinned to CPU 0, the load generators run on
# CPU 1 (as perf/broker.sh). Data lives in target/perf-run (wiped per group
# of workloads, so at most ~10 GiB at once), logs and every tool's output
# in target/perf-run-logs (data is removed at the end). Installs fio, iperf3, gnuplot-nox with apt when
# missing; builds rdkafka_performance with perf/build-rdkafka-perf.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
small=${SMALL:-0}

missing=()
for pair in fio:fio iperf3:iperf3 taskset:util-linux gnuplot:gnuplot-nox python3:python3; do
  command -v "${pair%%:*}" >/dev/null || missing+=("${pair##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
rdperf=$(perf/build-rdkafka-perf.sh)
cargo build --release -q -p ringtail -p ringtail-perf --bins
target=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
ringtail=$target/release/ringtail
perf=$target/release/ringtail-perf

size=1024
if [ "$small" = 1 ]; then
  records=200000          # per produce workload (195 MiB)
  catchup_records=400000  # the catch-up read (391 MiB)
  sweep_secs=1; sweep_steps="25 50 75 100"
  fixed_rate=20000; fixed_records=60000
  limit_size=512m; limit_runtime=10; iperf_secs=3
else
  records=2000000         # 1.9 GiB
  catchup_records=4194304 # 4 GiB
  sweep_secs=5; sweep_steps="10 20 30 40 50 60 70 80 90 100"
  fixed_rate=20000; fixed_records=600000
  limit_size=4g; limit_runtime=30; iperf_secs=10
fi

data=$root/target/perf-run
logs=$root/target/perf-run-logs
port=19192
bootstrap=127.0.0.1:$port
rm -rf "$data" "$logs"; mkdir -p "$data" "$logs"
: > "$logs/commands.txt"
began=$(date +%s)
# "== title" on the terminal; the section's start in sections.txt.
section() { echo "== $*"; echo "$(date +%s) $*" >> "$logs/sections.txt"; }
TIMEFORMAT='%U %S %R' # bash's `time`: user, sys, wall seconds

# Records a command for the report, with paths shortened.
note() { printf '%s\n' "$*" | sed -e "s#$target/release/##g" -e "s#$rdperf#rdkafka_performance#g" -e "s#$root/##g" >> "$logs/commands.txt"; }

pid=
start_broker() { # NAME [--override k=v ...]
  local name=$1; shift
  sync
  local args=(broker --override log.dirs="$data" --override "listeners=PLAINTEXT://$bootstrap"
    --override shard.count=1 --override num.partitions=16 "$@")
  note "taskset -c 0 $ringtail ${args[*]}"
  taskset -c 0 "$ringtail" "${args[@]}" 2> "$logs/broker-$name.log" &
  pid=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && return; sleep 0.1; done
  echo "broker did not start:"; cat "$logs/broker-$name.log"; exit 1
}
stop_broker() { kill -TERM "$pid"; wait "$pid" || true; pid=; }
wipe() { rm -rf "$data"; mkdir -p "$data"; }
trap '[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid"; rm -rf "$data"' EXIT
broker_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
ticks_per_s=$(getconf CLK_TCK)

# Runs ringtail-perf (on CPU 1) as NAME: stdout to NAME.out, stderr to
# NAME.err, its CPU to NAME.time, the broker's CPU seconds to NAME.broker.
rt() { # NAME ringtail-perf-args...
  local name=$1; shift
  note "taskset -c 1 $perf $*"
  local t0; t0=$(broker_ticks)
  { time taskset -c 1 "$perf" "$@" > "$logs/$name.out" 2> "$logs/$name.err"; } 2> "$logs/$name.time" ||
    { echo "ringtail-perf $name failed:"; cat "$logs/$name.err"; exit 1; }
  echo "$(( $(broker_ticks) - t0 )) $ticks_per_s" > "$logs/$name.broker"
  tail -1 "$logs/$name.out"
}
# The same for rdkafka_performance (producer), with broker.sh's settings.
rd() { # NAME TOPIC RECORDS [extra args]
  local name=$1 topic=$2 n=$3; shift 3
  local args=(-P -t "$topic" -b "$bootstrap" -s "$size" -c "$n" -a 1 -q -X linger.ms=5 -X batch.size=1000000
    -X queue.buffering.max.messages=10000000 -X queue.buffering.max.kbytes=8388608 "$@")
  note "taskset -c 1 $rdperf ${args[*]}"
  local t0; t0=$(broker_ticks)
  { time taskset -c 1 "$rdperf" "${args[@]}" > "$logs/$name.out" 2>&1; } 2> "$logs/$name.time" ||
    { echo "rdkafka_performance $name failed:"; cat "$logs/$name.out"; exit 1; }
  echo "$(( $(broker_ticks) - t0 )) $ticks_per_s" > "$logs/$name.broker"
  grep 'messages produced' "$logs/$name.out"
}
produce_args() { # TOPIC PARTITIONS ACKS PRODUCERS RECORDS RATE [more]
  local topic=$1 parts=$2 acks=$3 producers=$4 n=$5 rate=$6; shift 6
  echo produce --bootstrap-server $bootstrap --topic "$topic" --num-records "$n" --record-size $size \
    --throughput "$rate" --acks "$acks" --partitions "$parts" --producers "$producers" --create-topic "$@"
}
summary_field() { # NAME FIELD(records_per_sec|mb_per_sec): from NAME.out's last line
  python3 - "$logs/$1.out" "$2" <<'PY'
import re, sys
line = open(sys.argv[1]).read().strip().splitlines()[-1]
m = re.match(r"(\d+) records \w+, ([\d.]+) records/sec \(([\d.]+) MB/sec\)", line)
print({"records_per_sec": m.group(2), "mb_per_sec": m.group(3)}[sys.argv[2]])
PY
}

section "produce acks=1 and catch-up read"
wipe; start_broker acks1
for parts in 16 100; do
  for producers in 1 4; do
    n=$records
    [ "$parts" = 16 ] && [ "$producers" = 1 ] && n=$catchup_records
    # shellcheck disable=SC2046
    rt "produce-p$parts-acks1-k$producers" $(produce_args "p$parts-acks1-k$producers" $parts 1 $producers $n -1)
  done
done
stop_broker
cache=warm
if [ "$(id -u)" = 0 ] && sync && (echo 3 > /proc/sys/vm/drop_caches) 2>/dev/null; then cache=cold; fi
note "sync; echo 3 > /proc/sys/vm/drop_caches"
echo "$cache" > "$logs/catchup.cache"
start_broker catchup
rt catchup consume --bootstrap-server $bootstrap --topic p16-acks1-k1 --messages $catchup_records \
  --from-beginning --timeout 30000
stop_broker

section "produce, acks=all"
wipe; start_broker acksall
for parts in 16 100; do
  for producers in 1 4; do
    # shellcheck disable=SC2046
    rt "produce-p$parts-acksall-k$producers" $(produce_args "p$parts-acksall-k$producers" $parts all $producers $records -1)
  done
done
stop_broker
# "closed N partitions holding B bytes; F group-commit fdatasyncs this run"
flush=$(awk '/group-commit fdatasyncs/ {b+=$(NF-6); f+=$(NF-4)} END {if (f>0) printf "%d", b/f; else print 1048576}' \
  "$logs/broker-acksall.log")
flush=$(( flush > 4096 ? flush : 4096 ))

section "tailing consumer and end-to-end latency"
wipe; start_broker tail
# shellcheck disable=SC2046
rt tail-create $(produce_args tail 16 1 1 0 -1)
note "(in the background, started before the producer:)"
note "taskset -c 1 $perf consume --bootstrap-server $bootstrap --topic tail --messages $records --timeout 30000"
taskset -c 1 "$perf" consume --bootstrap-server $bootstrap --topic tail --messages $records --timeout 30000 \
  > "$logs/tail-consume.out" 2> "$logs/tail-consume.err" &
consumer=$!
sleep 1 # the consumer looks up the end offsets first
date +%s.%N > "$logs/tail-produce.start"
# shellcheck disable=SC2046
rt tail-produce $(produce_args tail 16 1 1 $records -1)
wait $consumer || { echo "tailing consumer failed:"; cat "$logs/tail-consume.err"; exit 1; }
tail -1 "$logs/tail-consume.out"
max_rate=$(summary_field produce-p16-acks1-k1 records_per_sec)
half=$(python3 -c "print(int(float('$max_rate') / 2))")
rt e2e end-to-end --bootstrap-server $bootstrap --topic e2e --num-records $(( half * sweep_secs * 2 )) \
  --record-size $size --throughput "$half" --partitions 16 --create-topic
stop_broker

section "load sweep"
for pct in $sweep_steps; do
  # A fresh broker and log per point: the whole sweep writes ~5x the
  # maximum rate's data per second of a point.
  wipe; start_broker "sweep-$pct"
  rate=$(python3 -c "print(int(float('$max_rate') * $pct / 100))")
  # shellcheck disable=SC2046
  rt "sweep-$pct" $(produce_args "sweep-$pct" 16 1 1 $(( rate * sweep_secs )) "$rate")
  echo "$pct $rate" > "$logs/sweep-$pct.rate"
  stop_broker
done

section "agreement with rdkafka_performance"
echo $fixed_rate > "$logs/agree.fixed_rate"
wipe; start_broker agree
# Topics made first, so that neither tool times its own topic creation.
for t in agree-fixed-rt agree-fixed-rd agree-max-rt agree-max-rd agree-max-java agree-max-if1 agree-max-if5; do
  # shellcheck disable=SC2046
  rt "create-$t" $(produce_args $t 16 1 1 0 -1)
done
for t in agree-p1-rt agree-p1-rd; do
  # shellcheck disable=SC2046
  rt "create-$t" $(produce_args $t 1 1 1 0 -1)
done
# shellcheck disable=SC2046
rt agree-fixed-rt $(produce_args agree-fixed-rt 16 1 1 $fixed_records $fixed_rate --defaults librdkafka)
rd agree-fixed-rd agree-fixed-rd $fixed_records -r $fixed_rate
# shellcheck disable=SC2046
rt agree-max-rt $(produce_args agree-max-rt 16 1 1 $records -1 --defaults librdkafka)
rd agree-max-rd agree-max-rd $records
# shellcheck disable=SC2046
rt agree-max-java $(produce_args agree-max-java 16 1 1 $records -1)
# How the broker answers the depth of pipelining: librdkafka's settings
# with 1 and 5 requests in flight instead of a million.
for f in 1 5; do
  # shellcheck disable=SC2046
  rt "agree-max-if$f" $(produce_args "agree-max-if$f" 16 1 1 $records -1 --defaults librdkafka --max-in-flight $f)
done
# One partition: no partitioner in play.
# shellcheck disable=SC2046
rt agree-p1-rt $(produce_args agree-p1-rt 1 1 1 $records -1 --defaults librdkafka)
rd agree-p1-rd agree-p1-rd $records
stop_broker
wipe

section "limits (perf/limits.sh)"
note "SIZE=$limit_size RUNTIME=$limit_runtime IPERF_SECONDS=$iperf_secs DIR=target/perf-limits perf/limits.sh $flush"
SIZE=$limit_size RUNTIME=$limit_runtime IPERF_SECONDS=$iperf_secs DIR=$root/target/perf-limits \
  perf/limits.sh "$flush" | tee "$logs/limits.txt"
rm -rf "$root/target/perf-limits"
echo $(( $(date +%s) - began )) > "$logs/duration"
section end

echo "== report"
python3 - "$logs" "$root/perf/RESULTS.md" "$small" "$rdperf" <<'PY'
import glob, os, re, sys, datetime
logs, results, small, rdperf = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4]
def read(name):
    return open(os.path.join(logs, name)).read()
def summary(name):
    line = read(name + ".out").strip().splitlines()[-1]
    m = re.match(r"(\d+) records (\w+), ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, ([\d.]+) ms max latency(?:, ([\d.]+) ms 50th, ([\d.]+) ms 95th, ([\d.]+) ms 99th, ([\d.]+) ms 99.9th)?\.", line)
    if not m:
        sys.exit(f"{name}: unparsable summary {line!r}")
    g = m.groups()
    return dict(records=int(g[0]), rate=float(g[2]), mib=float(g[3]), avg=float(g[4]), max=float(g[5]),
                p50=float(g[6] or 0), p95=float(g[7] or 0), p99=float(g[8] or 0), p999=float(g[9] or 0))
def all_summaries(name):
    out = []
    for line in read(name + ".out").strip().splitlines():
        m = re.match(r"(\d+) records (\w+), ([\d.]+) records/sec \(([\d.]+) MB/sec\).*, ([\d.]+) ms 50th, ([\d.]+) ms 95th, ([\d.]+) ms 99th, ([\d.]+) ms 99.9th\.", line)
        if m:
            out.append(dict(verb=m.group(2), rate=float(m.group(3)), p50=float(m.group(5)), p99=float(m.group(7)), p999=float(m.group(8))))
    return out
def times(name):  # load generator user, sys, wall
    return [float(x) for x in read(name + ".time").split()[-3:]]
def broker_cpu(name):
    t, hz = read(name + ".broker").split()
    return int(t) / int(hz)
def shape(name):
    m = re.search(r"\d+ Produce requests.*", read(name + ".err"))
    return m.group(0) if m else ""
def consume_row(name):
    row = read(name + ".out").strip().splitlines()[-1].split(", ")
    return dict(end=row[1], mib=float(row[2]), mib_s=float(row[3]), records=int(row[4]), rate=float(row[5]))
def rdkafka(name):
    m = re.search(r"(\d+) messages produced \((\d+) bytes\), (\d+) delivered .* in (\d+)ms: (\d+) msgs/s and ([\d.]+) MB/s", read(name + ".out"))
    return dict(delivered=int(m.group(3)), ms=int(m.group(4)), rate=float(m.group(5)), mb=float(m.group(6)))
limits, machine = {}, ""
for line in read("limits.txt").splitlines():
    if line.startswith("LIMIT "):
        f = line.split()
        limits[f[1]] = (float(f[2]), line.split("  ", 1)[1].strip() if "  " in line else "")
    elif line.startswith("# "):
        machine = line[2:]
def ratio(v, limit):
    return f"{v / limit * 100:.0f}%" if limit else ""
def lim(name):
    v, d = limits[name]
    return v, f"`{name}` {v:.1f} MiB/s"
def cpu(name, records):
    """Load generator's and broker's CPU: us per record and share of one core."""
    u, s, w = times(name)
    b = broker_cpu(name)
    return (f"{(u + s) / records * 1e6:.2f} us/rec ({(u + s) / w * 100:.0f}%) / "
            f"{b / records * 1e6:.2f} us/rec ({b / w * 100:.0f}%)")

rows = []
w1, w1d = lim("fio_write_buffered")
wall, walld = lim("fio_write_fdatasync")
for acks, (lv, ld) in (("1", (w1, w1d)), ("all", (wall, walld))):
    for parts in (16, 100):
        for k in (1, 4):
            name = f"produce-p{parts}-acks{acks}-k{k}"
            s = summary(name)
            rows.append(f"| produce, {parts} partitions, acks={acks}, {k} producer{'s' if k > 1 else ''} ({s['records']} records) "
                        f"| {s['mib']:.1f} MiB/s ({s['rate']:.0f} records/s), p99 {s['p99']:.1f} ms | {ld} | {ratio(s['mib'], lv)} | {cpu(name, s['records'])} |")
tail_c = consume_row("tail-consume")
tail_p = summary("tail-produce")
start = float(read("tail-produce.start"))
end = datetime.datetime.strptime(tail_c["end"][:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=datetime.timezone.utc).timestamp() + int(tail_c["end"][20:]) / 1000
tail_mib_s = tail_c["mib"] / max(end - start, 1e-3)
iv, ivd = lim("iperf3_loopback")
rows.append(f"| tailing consumer while one producer writes at its maximum ({tail_c['records']} records; producer {tail_p['mib']:.1f} MiB/s) "
            f"| {tail_mib_s:.1f} MiB/s (from the producer's start to the last record) | {ivd} | {ratio(tail_mib_s, iv)} | |")
cu = consume_row("catchup")
rv, rvd = lim("fio_read")
cache = read("catchup.cache").strip()
rows.append(f"| catch-up consumer, {cu['mib'] / 1024:.2f} GiB from the log start, {cache} page cache "
            f"| {cu['mib_s']:.1f} MiB/s ({cu['rate']:.0f} records/s) | {rvd} | {ratio(cu['mib_s'], rv)} | {cpu('catchup', cu['records'])} |")
e2e = all_summaries("e2e")
sent = next(x for x in e2e if x["verb"] == "sent")
e2e_records = next(int(l.split()[0]) for l in read("e2e.out").splitlines() if " records received, " in l)
recv = next(x for x in e2e if x["verb"] == "received")
rows.append(f"| produce->consume latency at half the maximum rate ({sent['rate']:.0f} records/s offered, 16 partitions, acks=1) "
            f"| p50 {recv['p50']:.1f} ms, p99 {recv['p99']:.1f} ms, p99.9 {recv['p999']:.1f} ms (produce ack p99 {sent['p99']:.1f} ms) | | | {cpu('e2e', 2 * e2e_records)} (produced and consumed) |")

fr, frd = summary("agree-fixed-rt"), rdkafka("agree-fixed-rd")
mr, mrd, mj = summary("agree-max-rt"), rdkafka("agree-max-rd"), summary("agree-max-java")
m1, m5 = summary("agree-max-if1"), summary("agree-max-if5")
p1, p1d = summary("agree-p1-rt"), rdkafka("agree-p1-rd")
def wall_rates(a, a_records, b, b_records):
    """Each tool's records over its whole process's wall time (setup
    included): a check on the tools' own clocks."""
    ra, rb = a_records / times(a)[2], b_records / times(b)[2]
    return f"{ra:.0f} vs {rb:.0f} ({ra / rb:.2f})"
agree = [
    "| workload | ringtail-perf | rdkafka_performance | ratio | records / process wall time (ratio) | CPU, generator / broker: ringtail-perf vs rdkafka_performance |",
    "|---|---|---|---|---|---|",
    f"| fixed rate, {int(read('agree.fixed_rate'))} records/s offered | {fr['rate']:.0f} records/s, p99 {fr['p99']:.1f} ms | {frd['rate']:.0f} records/s | {fr['rate'] / frd['rate']:.2f} | {wall_rates('agree-fixed-rt', fr['records'], 'agree-fixed-rd', frd['delivered'])} | {cpu('agree-fixed-rt', fr['records'])} vs {cpu('agree-fixed-rd', frd['delivered'])} |",
    f"| maximum rate, same settings (`--defaults librdkafka`) | {mr['rate']:.0f} records/s | {mrd['rate']:.0f} records/s | {mr['rate'] / mrd['rate']:.2f} | {wall_rates('agree-max-rt', mr['records'], 'agree-max-rd', mrd['delivered'])} | {cpu('agree-max-rt', mr['records'])} vs {cpu('agree-max-rd', mrd['delivered'])} |",
    f"| maximum rate, ringtail-perf with Java defaults (for the request shape) | {mj['rate']:.0f} records/s | | {mj['rate'] / mrd['rate']:.2f} | {wall_rates('agree-max-java', mj['records'], 'agree-max-rd', mrd['delivered'])} | {cpu('agree-max-java', mj['records'])} |",
    f"| maximum rate, ringtail-perf with librdkafka's settings but 1 request in flight | {m1['rate']:.0f} records/s | | {m1['rate'] / mrd['rate']:.2f} | {wall_rates('agree-max-if1', m1['records'], 'agree-max-rd', mrd['delivered'])} | {cpu('agree-max-if1', m1['records'])} |",
    f"| maximum rate, ringtail-perf with librdkafka's settings but 5 requests in flight | {m5['rate']:.0f} records/s | | {m5['rate'] / mrd['rate']:.2f} | {wall_rates('agree-max-if5', m5['records'], 'agree-max-rd', mrd['delivered'])} | {cpu('agree-max-if5', m5['records'])} |",
    f"| maximum rate, same settings, 1 partition | {p1['rate']:.0f} records/s | {p1d['rate']:.0f} records/s | {p1['rate'] / p1d['rate']:.2f} | {wall_rates('agree-p1-rt', p1['records'], 'agree-p1-rd', p1d['delivered'])} | {cpu('agree-p1-rt', p1['records'])} vs {cpu('agree-p1-rd', p1d['delivered'])} |",
]
shapes = [f"- `{n}`: {shape(n)}" for n in ("agree-fixed-rt", "agree-max-rt", "agree-max-java", "agree-max-if1", "agree-p1-rt", "produce-p16-acks1-k1")]

sweep = []
for f in sorted(glob.glob(os.path.join(logs, "sweep-*.rate")), key=lambda p: int(read(os.path.basename(p)).split()[0])):
    pct, rate = read(os.path.basename(f)).split()
    s = summary(os.path.basename(f)[:-5])
    sweep.append((int(pct), int(rate), s))
tsv = os.path.join(os.path.dirname(results), "load-latency.tsv")
with open(tsv, "w") as out:
    out.write("# offered MiB/s\tacknowledged MiB/s\tp50 ms\tp99 ms\tp99.9 ms\toffered % of max\n")
    for pct, rate, s in sweep:
        out.write(f"{rate * 1024 / 2**20:.2f}\t{s['mib']:.2f}\t{s['p50']:.3f}\t{s['p99']:.3f}\t{s['p999']:.3f}\t{pct}\n")
sweep_rows = ["| offered (% of max) | offered | acknowledged | p50 | p99 | p99.9 |", "|---|---|---|---|---|---|"]
for pct, rate, s in sweep:
    sweep_rows.append(f"| {pct}% | {rate} records/s ({rate * 1024 / 2**20:.1f} MiB/s) | {s['mib']:.1f} MiB/s | {s['p50']:.2f} ms | {s['p99']:.2f} ms | {s['p999']:.2f} ms |")

commands = read("commands.txt").strip()
marks = [l.split(" ", 1) for l in read("sections.txt").splitlines()]
sections = ", ".join(f"{name}: {int(marks[i + 1][0]) - int(t)} s" for i, (t, name) in enumerate(marks[:-1]))
label = ("**SMOKE RUN (`SMALL=1`): about a tenth of the data, on a machine shared with compilers. "
         "These figures only show that the script works; they are not results.**\n\n") if small else ""
lib = re.search(rb"librdkafka v?\d+\.\d+\.\d+", open(rdperf, "rb").read())
section = f"""<!-- run:begin -->
## Standard workloads (issue 6, `perf/run.sh`)

{label}Machine: {machine}. Run took {int(read('duration'))} s ({sections}).
Broker: one shard pinned to CPU 0 (release build); load generator `ringtail-perf` on CPU 1, Kafka's Java producer
defaults (batch.size 16384, linger.ms 5, max.in.flight 5, sticky partitioner) unless told; records of 1 KiB, MiB = 2^20 B.
Latencies are from each record's intended send time to its acknowledgement (closed loop: from the append).
CPU column: the load generator's and the broker's CPU time per record, and as a share of one core over the run
(near 100% on the generator's side: the generator, not the broker, set the rate; on a busy machine both shares are
low and the per-record costs are the steadier figure).

| workload | Ringtail | limit (perf/limits.sh, same run) | ratio | CPU, generator / broker |
|---|---|---|---|---|
""" + "\n".join(rows) + f"""

Limits: """ + "; ".join(f"`{k}` {v:.1f} MiB/s: {d}" for k, (v, d) in limits.items()) + f""".
The acks=all rows are set beside fio syncing the broker's average bytes per fdatasync in that run, one file at a
time; the broker syncs many partitions' files concurrently, so at small flushes it can exceed this "limit".

### Agreement with rdkafka_performance

Same broker, same workload (16 partitions, 1 KiB, acks=1), each tool on CPU 1; ringtail-perf with
`--defaults librdkafka` (batch.size 1000000, linger.ms 5, one partition per Produce request, up to 10^6 in flight)
and rdkafka_performance ({lib.group(0).decode() if lib else 'bundled librdkafka'}) with `linger.ms=5 batch.size=1000000`.
Ratio = ringtail-perf / rdkafka_performance, records/s (rdkafka's MB are 10^6 B).

""" + "\n".join(agree) + """

How the two measure: both count a record when its acknowledgement arrives and divide by the time to the last one;
neither compresses. rdkafka_performance's clock also covers its bootstrap (connect, metadata) and the linger of
its last batch, a few ms per run (ringtail-perf looks the topic up before its clock starts and flushes at the
end). Its `-r` limiter sleeps 1/rate after each message rather than keeping a schedule, so it offers a little less
than asked, and it busy-polls meanwhile (its CPU share at a fixed rate). At the maximum rate each tool's CPU per
record matters whenever the generator's core is not free: rdkafka_performance copies every message, hands it
between its threads and runs a delivery callback for it; ringtail-perf appends into the batch it sends. With the
same settings the two tools still differ in how many requests they actually keep in flight (each as many as it
makes before the answers come), and the broker's throughput depends on that depth: the in-flight rows and the
broker's CPU per record show how much.

Request shapes ringtail-perf sent:
""" + "\n".join(shapes) + """

### Throughput and latency against offered load

![throughput and p99 latency against offered load](load-latency.png)

16 partitions, acks=1, one producer (Java defaults), open loop, """ + f"""each point {sweep[0][2]['records'] / max(sweep[0][1], 1):.0f} s; 100% = the closed-loop maximum of the 16-partition acks=1 row.

""" + "\n".join(sweep_rows) + f"""

### Commands

```
{commands}
```
<!-- run:end -->"""
text = open(results).read() if os.path.exists(results) else "# Ringtail benchmark results\n"
if "<!-- run:begin -->" in text:
    text = re.sub(r"<!-- run:begin -->.*?<!-- run:end -->", lambda m: section, text, flags=re.S)
else:
    text = text.rstrip() + "\n\n" + section + "\n"
open(results, "w").write(text)
print(section)
PY
title="Ringtail, 16 partitions, 1 KiB, acks=1, one producer; $(date -u +%Y-%m-%d)"
[ "$small" = 1 ] && title="SMOKE RUN (SMALL=1, shared machine) - $title"
gnuplot -e "data='$root/perf/load-latency.tsv'; out='$root/perf/load-latency.png'; title='$title'" perf/plot.gp
echo "wrote perf/RESULTS.md (run section) and perf/load-latency.png in $(cat "$logs/duration") s of measuring"
