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

for tool in cargo python3 npm node; do
  command -v "$tool" >/dev/null || { echo "scripts/test.sh: '$tool' is required" >&2; exit 1; }
done

echo "== fetch weights and voices (cached in $KOKORO_CACHE)"
cargo run --quiet -p kokoro-cli -- fetch

echo "== kokoro-model builds for the browser (wasm32-unknown-unknown)"
rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
cargo check --quiet -p kokoro-model --target wasm32-unknown-unknown

echo "== kokoro-text in wasm: en-US, en-GB and both, sizes, and a run in Node"
./scripts/text-wasm-size.sh

echo "== cargo test --workspace"
cargo test --workspace --no-fail-fast 2>&1 | tee "$KOKORO_CACHE/last-test.log"

echo "== the golden test on burn-wgpu (a GPU, or Mesa's lavapipe Vulkan on the CPU)"
if ! ls /usr/share/vulkan/icd.d/*.json >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null && apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null; }
  else
    echo "scripts/test.sh: no Vulkan driver; install mesa-vulkan-drivers (lavapipe) for the wgpu test" >&2
    exit 1
  fi
fi
# --release: shares the compiled burn-wgpu with the README's main command (`cargo run --release`).
cargo test --release -p kokoro-model --features wgpu --test golden_wgpu 2>&1 | tee -a "$KOKORO_CACHE/last-test.log"
