#!/usr/bin/env bash
# Builds librdkafka's rdkafka_performance (the standard Kafka load
# generator) from the source bundled in the rdkafka-sys crate. Prints the
# binary's path. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$PWD/target/rdkafka-perf
bin=$out/build/examples/rdkafka_performance
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
need=()
for pair in cmake:cmake make:make; do command -v "${pair%%:*}" >/dev/null || need+=("${pair##*:}"); done
dpkg -s zlib1g-dev >/dev/null 2>&1 || need+=(zlib1g-dev)
dpkg -s libzstd-dev >/dev/null 2>&1 || need+=(libzstd-dev)
dpkg -s libcurl4-openssl-dev >/dev/null 2>&1 || need+=(libcurl4-openssl-dev)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo fetch -q --manifest-path perf/rdkafka/Cargo.toml
src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/rdkafka-sys-*/librdkafka | sort -V | tail -1)
mkdir -p "$out"
rm -rf "$out/src" && cp -r "$src" "$out/src"
cmake -S "$out/src" -B "$out/build" -DRDKAFKA_BUILD_EXAMPLES=ON -DRDKAFKA_BUILD_TESTS=OFF \
  -DWITH_SSL=OFF -DWITH_SASL=OFF -DWITH_CURL=OFF -DWITH_ZSTD=ON -DENABLE_LZ4_EXT=OFF \
  -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$out/build" --target rdkafka_performance -j"$(nproc)" >/dev/null
echo "$bin"
