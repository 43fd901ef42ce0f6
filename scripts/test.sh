#!/usr/bin/env bash
# The whole test suite: fetch the real weights and voices (cached), then every Rust test.
#
# Caches outside the clone so CI reruns are fast: downloads and converted weights in
# $KOKORO_CACHE (default ~/.cache/kokoro-burn), the cargo target folder in $CARGO_TARGET_DIR
# (default ~/.cache/kokoro-burn/target).
set -euo pipefail
cd "$(dirname "$0")/.."

export KOKORO_CACHE="${KOKORO_CACHE:-$HOME/.cache/kokoro-burn}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$KOKORO_CACHE/target}"
export CARGO_TERM_COLOR=never

for tool in cargo python3 npm; do
  command -v "$tool" >/dev/null || { echo "scripts/test.sh: '$tool' is required" >&2; exit 1; }
done

echo "== fetch weights and voices (cached in $KOKORO_CACHE)"
cargo run --quiet -p kokoro-cli -- fetch

echo "== kokoro-model builds for the browser (wasm32-unknown-unknown)"
rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
cargo check --quiet -p kokoro-model --target wasm32-unknown-unknown

echo "== cargo test --workspace"
cargo test --workspace --no-fail-fast 2>&1 | tee "$KOKORO_CACHE/last-test.log"
