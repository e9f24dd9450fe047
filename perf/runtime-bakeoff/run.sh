#!/usr/bin/env bash
# Runtime bake-off for docs/adr/0001-runtime.md.
#
# Installs fio, iperf3 and strace, builds one benchmark binary per candidate
# runtime in release mode, runs every workload REPS times (median reported),
# takes fio and iperf3 reference numbers in the same run, then one untimed
# pass under `strace -c -f` and one under `perf record` of the
# io_uring:io_uring_submit_req tracepoint to show which syscalls and which
# io_uring opcodes each path really uses. Prints markdown tables on stdout.
#
# Environment:
#   BAKEOFF_DATA  data directory, must be on the same filesystem as /work
#                 (default: <repo>/target-bakeoff-data); emptied at the end.
#   REPS          repetitions per workload (default 3).
#   OUT           where raw logs go (default: /tmp/runtime-bakeoff-<date>).
#   SKIP_TRACE=1  skip the strace/perf passes.
#   SMOKE=1       tiny sizes, one repetition: checks the script, not the disk.
#
# All network traffic is to 127.0.0.1. Data on disk stays under 3 GiB: the
# 1 GiB transfer source is removed before the 2 GiB buffered append runs,
# and each append file is removed by the benchmark right after its run.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target-bakeoff}"
DATA="${BAKEOFF_DATA:-$REPO/target-bakeoff-data}"
REPS="${REPS:-3}"
OUT="${OUT:-/tmp/runtime-bakeoff-$(date -u +%Y%m%dT%H%M%SZ)}"
CANDIDATES=(glommio tokio-uring monoio compio raw)
BIN_DIR="$CARGO_TARGET_DIR/release"
RESULTS="$OUT/results.txt"
FIO_SCALE=1
IPERF_SECS=10
if [[ "${SMOKE:-0}" == 1 ]]; then
    export BAKEOFF_MIB=64
    REPS=1 FIO_SCALE=16 IPERF_SECS=1
fi

mkdir -p "$OUT" "$DATA"
: >"$RESULTS"
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

# --- tools -------------------------------------------------------------------
need=()
for tool in fio iperf3 strace; do command -v "$tool" >/dev/null || need+=("$tool"); done
if ((${#need[@]})); then
    log "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# --- machine -----------------------------------------------------------------
data_dev="$(df --output=source "$DATA" | tail -1)"
work_dev="$(df --output=source /work | tail -1)"
if [[ "$data_dev" != "$work_dev" ]]; then
    echo "data dir $DATA is on $data_dev, /work is on $work_dev: pick one on the same disk" >&2
    exit 1
fi
{
    echo "date_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "nproc=$(nproc)"
    echo "kernel=$(uname -r)"
    echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
    echo "mem=$(free -g | awk '/Mem:/ {print $2}')GiB"
    echo "disk=$data_dev $(lsblk -dno SIZE,ROTA,SCHED "/dev/$(basename "$data_dev")" 2>/dev/null | xargs) fs=$(df --output=fstype "$DATA" | tail -1)"
    echo "rustc=$(rustc --version)"
    echo "fio=$(fio --version) iperf3=$(iperf3 --version | head -1)"
} | tee "$OUT/machine.txt" >&2

# --- build -------------------------------------------------------------------
built=()
for c in "${CANDIDATES[@]}"; do
    log "building $c"
    if (cd "$HERE" && cargo build --release --quiet --features "$c") >"$OUT/build-$c.log" 2>&1; then
        built+=("$c")
        echo "BUILD candidate=$c ok" >>"$RESULTS"
    else
        err="$(grep -m1 -E '^error' "$OUT/build-$c.log" | tr ' ' '_' || true)"
        echo "BUILD candidate=$c failed error=${err:-see_build-$c.log}" >>"$RESULTS"
        log "build of $c failed, see $OUT/build-$c.log"
    fi
done

bin_of() { if [[ "$1" == raw ]]; then echo "$BIN_DIR/bench-raw"; else echo "$BIN_DIR/bench-$1"; fi; }

# Runs one candidate workload; a crash or hang is recorded, not fatal.
bench() {
    local c="$1" w="$2" path="$3"
    local out
    if out="$(timeout 300 "$(bin_of "$c")" "$w" "$path" 2>>"$OUT/stderr-$c.log")"; then
        echo "$out" | grep '^RESULT' >>"$RESULTS" || true
    else
        echo "RESULT candidate=$c workload=$w failed rc=$?" >>"$RESULTS"
    fi
}

fio_run() { # label, then fio args; records write bandwidth in MB/s
    local label="$1"; shift
    local f="$DATA/fio.dat"
    sync
    fio --name=bakeoff --filename="$f" --ioengine=psync --rw=write --bs=64k \
        --output-format=json "$@" >"$OUT/fio-$label.json"
    rm -f "$f"
    python3 - "$OUT/fio-$label.json" "$label" >>"$RESULTS" <<'EOF'
import json, sys
job = json.load(open(sys.argv[1]))["jobs"][0]["write"]
print(f"RESULT candidate=fio workload={sys.argv[2]} mb_s={job['bw_bytes'] / 1e6:.1f}")
EOF
}

SRC="$DATA/source-1g.dat"
for rep in $(seq 1 "$REPS"); do
    log "rep $rep/$REPS: C (file -> loopback socket)"
    for c in "${built[@]}"; do
        for w in send-copy send-zc; do bench "$c" "$w" "$SRC"; done
    done
    bench raw send-sendfile "$SRC"
    rm -f "$SRC"

    log "rep $rep/$REPS: A and B (appends)"
    for c in "${built[@]}"; do
        for w in append-sync4 append-sync16 append-buffered; do
            sync
            bench "$c" "$w" "$DATA/append-$c.dat"
        done
    done

    log "rep $rep/$REPS: fio"
    fio_run append-sync4 --size=$((1024 / FIO_SCALE))m --fdatasync=4
    fio_run append-sync16 --size=$((1024 / FIO_SCALE))m --fdatasync=16
    fio_run append-sync1 --size=$((1024 / FIO_SCALE))m --fdatasync=1
    # Same shapes through fio's io_uring engine (fsync as IORING_OP_FSYNC):
    # separates "io_uring" from "this runtime" when psync and the runtimes differ.
    fio_run uring-append-sync4 --size=$((1024 / FIO_SCALE))m --fdatasync=4 --ioengine=io_uring
    fio_run uring-append-sync16 --size=$((1024 / FIO_SCALE))m --fdatasync=16 --ioengine=io_uring
    fio_run append-buffered --size=$((2048 / FIO_SCALE))m
done

log "iperf3 single stream on 127.0.0.1"
IPERF_PORT=5299
iperf3 -s -D -B 127.0.0.1 -p "$IPERF_PORT" -I "$OUT/iperf3.pid"
sleep 1
for rep in $(seq 1 "$REPS"); do
    iperf3 -c 127.0.0.1 -p "$IPERF_PORT" -t "$IPERF_SECS" -A 0,1 -J >"$OUT/iperf3-$rep.json"
    python3 - "$OUT/iperf3-$rep.json" >>"$RESULTS" <<'EOF'
import json, sys
end = json.load(open(sys.argv[1]))["end"]
mb_s = end["sum_received"]["bits_per_second"] / 8 / 1e6
print(f"RESULT candidate=iperf3 workload=send-copy mb_s={mb_s:.1f} sender_cpu_pct={end['cpu_utilization_percent']['host_total']:.1f}")
EOF
done
kill "$(cat "$OUT/iperf3.pid")" 2>/dev/null || true

if [[ "${SKIP_TRACE:-0}" != 1 ]]; then
    # Untimed: which syscalls and which io_uring opcodes each path issues.
    # 256 MiB transfers and appends keep the traced runs short.
    SRC256="$DATA/source-256m.dat"
    for c in "${built[@]}"; do
        ws=(append-sync4 send-copy send-zc)
        [[ "$c" == raw ]] && ws+=(send-sendfile)
        for w in "${ws[@]}"; do
            path="$SRC256"; [[ "$w" == append-* ]] && path="$DATA/append-$c.dat"
            BAKEOFF_MIB=256 "$(bin_of "$c")" "$w" "$path" >/dev/null 2>&1 # warm the source
            log "strace/perf $c $w"
            BAKEOFF_MIB=256 BAKEOFF_SKIP_WARM=1 strace -c -f -o "$OUT/strace-$c-$w.txt" \
                "$(bin_of "$c")" "$w" "$path" >/dev/null 2>&1 || true
            # submit_req: every SQE by opcode; queue_async_work: SQEs the
            # kernel could not complete inline and handed to io-wq threads.
            BAKEOFF_MIB=256 BAKEOFF_SKIP_WARM=1 perf record -q \
                -e io_uring:io_uring_submit_req -e io_uring:io_uring_queue_async_work \
                -o "$OUT/perf-$c-$w.data" "$(bin_of "$c")" "$w" "$path" >/dev/null 2>&1 || true
            perf script -i "$OUT/perf-$c-$w.data" 2>/dev/null |
                sed -nE 's/.*io_uring:(io_uring_[a-z_]+):.*opcode ([A-Z_]+).*/\1 \2/p' |
                sort | uniq -c | sort -rn >"$OUT/uring-ops-$c-$w.txt" || true
            rm -f "$OUT/perf-$c-$w.data"
            if [[ "$w" == send-* ]]; then
                # Where the CPU goes: _copy_from_iter is a user->kernel copy
                # (send of a user buffer), copy_splice_read a splice that
                # fell back to copying, splice_to_socket/skb_append_pagefrags
                # page references. The receiver's recv copy (_copy_to_iter)
                # shares the process name, so it is not the sender's.
                BAKEOFF_MIB=256 BAKEOFF_SKIP_WARM=1 perf record -q -e cpu-clock -F 4999 \
                    -o "$OUT/cpu-$c-$w.data" "$(bin_of "$c")" "$w" "$path" >/dev/null 2>&1 || true
                perf report -i "$OUT/cpu-$c-$w.data" --no-children --sort sym --stdio 2>/dev/null |
                    grep -E '\] (_copy_from_iter|_copy_to_iter|copy_splice_read|filemap_splice_read|splice_to_socket|skb_append_pagefrags|filemap_read)$' \
                    >"$OUT/copies-$c-$w.txt" || true
                rm -f "$OUT/cpu-$c-$w.data"
            fi
        done
    done
    rm -f "$SRC256"
fi

rm -rf "$DATA"
log "raw results in $OUT"
python3 "$HERE/summarize.py" "$OUT"
