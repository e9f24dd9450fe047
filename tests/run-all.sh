#!/usr/bin/env bash
# Runs Ringtail's whole test suite on a fresh Debian machine: installs what
# the tests need (by package name), then formatting, lints and every test.
# The README's test command and .ci/run both call this script.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

# Debian packages the tests use, as "command:package" pairs.
apt_needs=(
  "mount:mount"        # the full-disk test mounts a 2 MiB tmpfs
  "python3:python3"
)
missing=()
for pair in "${apt_needs[@]}"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy (all targets, warnings denied)"
cargo clippy --workspace --all-targets -q -- -D warnings

log "cargo test (release: the simulator and crash tests run thousands of cycles)"
cargo test --workspace --release
