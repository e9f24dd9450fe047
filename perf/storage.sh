#!/usr/bin/env bash
# Storage engine benchmarks (issue 2) against this machine's limits, measured
# by fio on the same disk in the same run. Prints a markdown table and
# rewrites the storage section of perf/RESULTS.md.
#
#   perf/storage.sh            # full run (~4 GiB written several times)
#   SMALL=1 perf/storage.sh    # quick run with smaller sizes
#
# Needs root for dropping the page cache before the read-side comparisons.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
data=${RINGTAIL_BENCH_DIR:-$root/target/bench-data}
mkdir -p "$data"
command -v fio >/dev/null || { apt-get update -qq && apt-get install -y -qq fio >/dev/null; }
cargo build --release -q -p ringtail-perf
bench=$root/target/release/storage-bench

if [ "${SMALL:-0}" = 1 ]; then
  sync1_bytes=$((32 << 20)); sync_bytes=$((128 << 20)); big_bytes=$((512 << 20)); recover_bytes=$((1 << 30))
else
  sync1_bytes=$((128 << 20)); sync_bytes=$((512 << 20)); big_bytes=$((2 << 30)); recover_bytes=$((4 << 30))
fi

drop_caches() {
  sync
  if echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; then caches=dropped; else caches=kept; fi
}

# value NAME < bench output
value() { awk -v n="$1" '$1=="RESULT" && $2==n {print $3}'; }

# fio_bw ARGS...: sequential job on $data, prints MB/s (1e6 bytes/s).
fio_bw() {
  local out
  out=$(fio --name=limit --directory="$data" --ioengine=psync --output-format=json "$@")
  python3 -c "import json,sys; j=json.load(sys.stdin)['jobs'][0]; rw=j['write'] if j['write']['bw_bytes'] else j['read']; print('%.1f' % (rw['bw_bytes']/1e6))" <<<"$out"
}

ratio() { python3 -c "print(f'{$1/$2*100:.0f}%')"; }

rounds=${ROUNDS:-3}
# median of the arguments
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

rm -rf "${data:?}"/*
# Each workload runs $rounds times, Ringtail and fio interleaved, so noise
# from the rest of the machine hits both sides alike; medians are reported.
s1=(); f1=(); p1=(); sg=(); fg=(); pg=(); sb=(); fb=()
for round in $(seq "$rounds"); do
  echo "== round $round: append, fdatasync after every batch (1 writer)"
  sync
  out=$($bench append --dir "$data/log" --sync group --writers 1 --total-bytes $sync1_bytes)
  bs=$(value batch_bytes <<<"$out"); bs=${bs%.*}
  s1+=("$(value append_mb_s <<<"$out")"); p1+=("$(value latency_p99_us <<<"$out")")
  f1+=("$(fio_bw --rw=write --bs="$bs" --size=$sync1_bytes --fdatasync=1)"); rm -f "$data"/limit*

  echo "== round $round: append with group commit (16 writers)"
  sync
  out=$($bench append --dir "$data/log" --sync group --writers 16 --total-bytes $sync_bytes)
  sg+=("$(value append_mb_s <<<"$out")"); pg+=("$(value latency_p99_us <<<"$out")")
  per_sync=$(value bytes_per_fdatasync <<<"$out"); per_sync=${per_sync%.*}
  fg+=("$(fio_bw --rw=write --bs="$per_sync" --size=$sync_bytes --fdatasync=1)"); rm -f "$data"/limit*

  echo "== round $round: append without fsync (8 writers)"
  sync
  out=$($bench append --dir "$data/log" --sync none --writers 8 --total-bytes $big_bytes)
  sb+=("$(value append_mb_s <<<"$out")")
  sync
  fb+=("$(fio_bw --rw=write --bs=1m --size=$big_bytes)"); rm -f "$data"/limit*
done
ours_sync1=$(median "${s1[@]}"); fio_sync1=$(median "${f1[@]}"); p99_sync1=$(median "${p1[@]}")
ours_group=$(median "${sg[@]}"); fio_group=$(median "${fg[@]}"); p99_group=$(median "${pg[@]}")
ours_buffered=$(median "${sb[@]}"); fio_buffered=$(median "${fb[@]}")

echo "== recovery scan of an unclean log"
$bench prepare-recovery --dir "$data/recover" --total-bytes $recover_bytes >/dev/null
drop_caches
out=$($bench recover --dir "$data/recover")
ours_recover=$(value recovery_mb_s <<<"$out"); recover_s=$(value recovery_s <<<"$out")
fio --name=limit --directory="$data" --rw=write --bs=1m --size=$recover_bytes --ioengine=psync >/dev/null
drop_caches
fio_read=$(fio_bw --rw=read --bs=1m --size=$recover_bytes)
rm -f "$data"/limit*

echo "== clean open of 10,000 segments"
out=$($bench open-segments --dir "$data/open" --segments 10000)
open_ms=$(value open_ms <<<"$out"); opened=$(value segments_opened <<<"$out")

echo "== memory per idle partition log"
out=$($bench memory --dir "$data/mem" --logs 1000)
rss_per_log=$(value rss_per_log_bytes <<<"$out"); heap_per_log=$(value heap_per_log_bytes <<<"$out")

disk=$(df -h "$data" | awk 'NR==2 {print $1" ("$2")"}')
table=$(cat <<MD
Machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, kernel $(uname -r), disk $disk; $(date -u +%Y-%m-%d).
Page cache before read-side runs: $caches. Batch size $bs B (1 KiB records). Appends: median of $rounds rounds, each Ringtail run followed by its fio run.

| workload | Ringtail | limit (fio, same run) | ratio | target |
|---|---|---|---|---|
| append, fdatasync every batch (1 writer) | $ours_sync1 MB/s (p99 $p99_sync1 us) | $fio_sync1 MB/s \`--rw=write --bs=$bs --fdatasync=1\` | $(ratio $ours_sync1 $fio_sync1) | >= 85% |
| append, group commit (16 writers, $per_sync B per fdatasync) | $ours_group MB/s (p99 $p99_group us) | $fio_group MB/s \`--rw=write --bs=$per_sync --fdatasync=1\` | $(ratio $ours_group $fio_group) | >= 85% |
| append, no fsync (8 writers, grouped WRITEV) | $ours_buffered MB/s | $fio_buffered MB/s \`--rw=write --bs=1m\` (buffered) | $(ratio $ours_buffered $fio_buffered) | >= 90% |
| recovery scan, unclean $((recover_bytes >> 30)) GiB log (CRC-32C of every batch) | $ours_recover MB/s ($recover_s s) | $fio_read MB/s \`--rw=read --bs=1m\` | $(ratio $ours_recover $fio_read) | >= 80% |
| clean open, 10,000 segments | $open_ms ms ($opened file opened) | | | < 1000 ms |
| memory per open idle partition log (1000 logs) | RSS $rss_per_log B, heap $heap_per_log B | | | <= 65536 B |

Commands: \`perf/storage.sh\` (builds \`storage-bench\` from \`perf/src/bin/storage_bench.rs\` and runs the fio jobs above with \`--ioengine=psync\` in \`$data\`).
MD
)
echo "$table"
results=$root/perf/RESULTS.md
[ -f "$results" ] || printf '# Ringtail benchmark results\n' > "$results"
python3 - "$results" "$table" <<'PY'
import re, sys
path, table = sys.argv[1], sys.argv[2]
text = open(path).read()
section = "<!-- storage:begin -->\n## Storage engine (issue 2)\n\n" + table + "\n<!-- storage:end -->"
if "<!-- storage:begin -->" in text:
    text = re.sub(r"<!-- storage:begin -->.*?<!-- storage:end -->", lambda m: section, text, flags=re.S)
else:
    text = text.rstrip() + "\n\n" + section + "\n"
open(path, "w").write(text)
PY
rm -rf "${data:?}"
