#!/usr/bin/env bash
# kcat (Debian's, on librdkafka 2.0) against Ringtail.
#
# Usage: kcat.sh BOOTSTRAP TOPIC_PREFIX produce|verify|read
#
# produce: sends the messages of common.py (same scheme, kept in step by
# hand) to one topic per codec, then reads them back and checks them.
# verify: only reads and checks; read: the same for topics another client
# produced (kcat ignores headers either way). All print the digest of what
# was read.
#
# kcat has no admin commands: its producer's Metadata request auto-creates
# each topic, so the broker must run with auto.create.topics.enable=true
# and num.partitions=3 (the script checks the partition count). kcat -C
# without -G reads by assignment, no consumer group.
set -euo pipefail
export LC_ALL=C

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

[ $# -eq 3 ] && { [ "$3" = produce ] || [ "$3" = verify ] || [ "$3" = read ]; } ||
  fail "usage: $0 BOOTSTRAP TOPIC_PREFIX produce|verify|read"
command -v kcat >/dev/null || fail "kcat is not installed: run tests/run-all.sh"
bootstrap=$1 prefix=$2 mode=$3

partitions=3 keyed=150 unkeyed=150 keys=8
declare -A acks=([none]=0 [gzip]=1) # per codec topic; others use acks=all
pad="$(printf 'ringtail-%.0s' $(seq 12))$(printf '\303\251')" # U+00E9 in UTF-8
codecs="none gzip snappy lz4 zstd"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

kcat -V | grep -m1 '^Version' | sed 's/^/kcat /'

keyed_lines() { # codec: "key<TAB>value" lines in production order
  for ((i = 0; i < keyed; i++)); do
    printf 'key-%d\t%s|%s|keyed|%05d|%s\n' $((i % keys)) "$prefix" "$1" "$i" "$pad"
  done
}
unkeyed_lines() { # codec: value lines in production order
  for ((i = 0; i < unkeyed; i++)); do
    printf '%s|%s|unkeyed|%05d|%s\n' "$prefix" "$1" "$i" "$pad"
  done
}

produce() { # codec
  local topic="$prefix-$1"
  local opts=(-b "$bootstrap" -t "$topic" -z "$1" -X linger.ms=20 -X "acks=${acks[$1]:-all}" -q)
  # Extra producer settings from the test driver, e.g. "-X batch.size=2048".
  read -r -a extra <<<"${KCAT_PRODUCER_OPTS:-}"
  opts+=("${extra[@]}")
  # One producer for both, so production order is the line order even with
  # acks=0; a line without the key delimiter gets a null key.
  { keyed_lines "$1"; unkeyed_lines "$1"; } | kcat -P "${opts[@]}" -K $'\t' ||
    fail "$topic: kcat -P exited $?"
}

wait_end_offsets() { # topic total: acks=0 producers do not wait for the append
  local args=() p sum deadline=$((SECONDS + 30))
  for ((p = 0; p < partitions; p++)); do args+=(-t "$1:$p:-1"); done
  while :; do
    sum=$(kcat -Q -b "$bootstrap" "${args[@]}" | awk '{ s += $NF } END { print s + 0 }')
    [ "$sum" -ge "$2" ] || [ $SECONDS -ge $deadline ] && return
    sleep 0.1
  done
}

check_topic() { # codec; adds the topic's digest lines
  local codec=$1 topic="$prefix-$1" p
  local count
  count=$(kcat -L -b "$bootstrap" -t "$topic" | grep -c '^ *partition ' || true)
  [ "$count" -eq "$partitions" ] ||
    fail "$topic: $count partitions, expected $partitions (auto-creation with num.partitions=3)"
  : >"$work/all"
  wait_end_offsets "$topic" $((keyed + unkeyed))
  for ((p = 0; p < partitions; p++)); do
    kcat -C -b "$bootstrap" -t "$topic" -p "$p" -o beginning -e -q \
      -f '%o\t%k\t%s\n' >"$work/p$p" || fail "$topic-$p: kcat -C exited $?"
    # Offsets 0, 1, 2, ...; production order inside the partition; one
    # partition per key (checked across partitions below).
    awk -F'\t' -v topic="$topic" -v p="$p" -v keyed="$keyed" '
      {
        if ($1 != NR - 1) { printf "FAIL: %s-%s: offset %s where %d was due\n", topic, p, $1, NR - 1; exit 1 }
        split($3, f, "|")
        index_ = (f[3] == "keyed") ? f[4] + 0 : keyed + f[4]
        if (NR > 1 && index_ <= last) { printf "FAIL: %s-%s@%s: message %d after %d: per-partition order broken\n", topic, p, $1, index_, last; exit 1 }
        last = index_
      }' "$work/p$p" >&2 || exit 1
    awk -F'\t' -v p="$p" '$2 != "" { print $2 "\t" p }' "$work/p$p" >>"$work/keys"
    cut -f2- "$work/p$p" >>"$work/all"
    sed "s/^/$topic|$p|/" "$work/p$p" >>"$work/digest"
  done
  split_keys=$(sort -u "$work/keys" | cut -f1 | uniq -d)
  [ -z "$split_keys" ] || fail "$topic: keys in more than one partition: $split_keys"
  rm -f "$work/keys"
  { keyed_lines "$codec"; unkeyed_lines "$codec" | sed 's/^/\t/'; } | sort >"$work/want"
  sort "$work/all" >"$work/got"
  if ! cmp -s "$work/want" "$work/got"; then
    diff "$work/want" "$work/got" | head -20 >&2
    fail "$topic: messages read differ from those sent ($(wc -l <"$work/got") read, $(wc -l <"$work/want") sent)"
  fi
  echo "$topic: $(wc -l <"$work/got") messages in order" >&2
}

if [ "$mode" = produce ]; then
  for codec in $codecs; do produce "$codec"; done
fi
: >"$work/digest"
for codec in $codecs; do check_topic "$codec"; done
echo "DIGEST $(sha256sum <"$work/digest" | cut -d' ' -f1)"
