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
  "kcat:kcat"          # tests/clients/kcat.sh (librdkafka 2.0 from Debian)
  "promtool:prometheus" # tests/metrics.rs: promtool and a real Prometheus server
  "ip:iproute2"        # tests/cluster.rs cuts brokers off in network namespaces (as root)
)
missing=()
for pair in "${apt_needs[@]}"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair##*:}")
done
# Debian's python3 makes virtualenvs only with python3-venv (ensurepip).
python3 -c 'import ensurepip' >/dev/null 2>&1 || missing+=("python3-venv")
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Third-party Kafka clients for tests/clients.rs. Each set is installed
# when its pin file changed since the last install (a stamp copy) or when
# it does not load; otherwise this costs nothing.
if ! cmp -s tests/clients/requirements.txt .venv/ringtail-requirements.txt ||
  ! .venv/bin/python -c 'import confluent_kafka, kafka, lz4, snappy, zstandard' >/dev/null 2>&1; then
  log "installing Python clients into .venv"
  python3 -m venv --clear .venv
  .venv/bin/pip install -q --disable-pip-version-check -r tests/clients/requirements.txt
  cp tests/clients/requirements.txt .venv/ringtail-requirements.txt
fi
if ! cmp -s tests/clients/package.json tests/clients/node_modules/ringtail-package.json ||
  ! (cd tests/clients && node -e "for (const m of ['kafkajs', 'kafkajs-snappy', 'lz4js', '@bokuweb/zstd-wasm']) require(m)") >/dev/null 2>&1; then
  log "installing kafkajs into tests/clients/node_modules"
  npm install --prefix tests/clients --no-audit --no-fund --loglevel=error >/dev/null
  cp tests/clients/package.json tests/clients/node_modules/ringtail-package.json
fi

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy (all targets, warnings denied)"
cargo clippy --workspace --all-targets -q -- -D warnings

log "cargo test (release: the simulators and crash tests run thousands of cycles; --show-output prints their counts)"
cargo test --workspace --release --no-fail-fast -- --show-output
