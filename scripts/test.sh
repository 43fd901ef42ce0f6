#!/usr/bin/env bash
# The whole test suite: fetch the real weights and voices (cached), every Rust test, the wgpu
# golden test, then the browser package built from scratch and tested end to end in Chromium.
#
# Caches outside the clone so CI reruns are fast: downloads and converted weights in
# $KOKORO_CACHE (default ~/.cache/kokoro-burn), the cargo target folder in $CARGO_TARGET_DIR
# (default ~/.cache/kokoro-burn/target).
set -euo pipefail
cd "$(dirname "$0")/.."

export KOKORO_CACHE="${KOKORO_CACHE:-$HOME/.cache/kokoro-burn}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$KOKORO_CACHE/target}"
export CARGO_TERM_COLOR=never

# Each step says how long the one before it took, and the last line the total (cold-run budget: CI's 90 minutes).
started=$SECONDS last=
took() { echo "$(( ($SECONDS - $1) / 60 )) min $(( ($SECONDS - $1) % 60 )) s"; }
step() { [ -z "$last" ] || echo "   ($(took "$last"))"; last=$SECONDS; echo "== $*"; }
trap '[ -z "$last" ] || echo "   ($(took "$last"))"; echo "scripts/test.sh: $(took "$started") in all"' EXIT

for tool in cargo rustup python3 npm node; do
  command -v "$tool" >/dev/null || { echo "scripts/test.sh: '$tool' is required (see the README's Needs)" >&2; exit 1; }
done

# Everything the suite uses beyond the README's needs is installed here, before any step needs it
# (issue 12: a fresh machine lacked the wasm32 target and numpy although CI had them).
step "set up: rustup target, Python venv (scripts/requirements.txt), Debian packages"
rustup target list --installed | grep -x wasm32-unknown-unknown >/dev/null || rustup target add wasm32-unknown-unknown
./scripts/py -c 'import numpy, onnx, onnxruntime' # makes $KOKORO_CACHE/venv-* on first use
# Debian's chromium (browser tests), Mesa's lavapipe Vulkan driver (the wgpu test on the CPU), make
# (LAME's build) and Prometheus' promtool (the server's metrics and alerting rules).
missing=()
ls /usr/share/vulkan/icd.d/*.json >/dev/null 2>&1 || missing+=(mesa-vulkan-drivers libvulkan1)
command -v make >/dev/null || missing+=(make)
# Prometheus' promtool: checks the server's /metrics and tests the alerting rules.
command -v promtool >/dev/null || missing+=(prometheus)
# curl: the server's streaming test streams through it, as a shell user would.
command -v curl >/dev/null || missing+=(curl)
# ffmpeg: the server's AAC encoder (response_format aac).
command -v ffmpeg >/dev/null || missing+=(ffmpeg)
[ -x /usr/bin/chromium ] || [ -n "${CHROMIUM:-}" ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian packages: ${missing[*]}"
    apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null && apt-get install -y -qq "${missing[@]}" >/dev/null; }
  else
    echo "scripts/test.sh: needs Debian packages ${missing[*]} (apt-get install ${missing[*]}), or run as root on Debian" >&2
    exit 1
  fi
fi

# One dev build serves every Rust step: the tests, the `kokoro` binary that fetches, and the golden
# test on burn-wgpu (the feature is on for the whole workspace, so burn compiles once, not once per
# feature set or profile; on 2 cores each extra build of burn costs a quarter of an hour).
features=(--workspace --features kokoro-model/wgpu)
step "build the workspace and its tests (dev profile, burn-wgpu included)"
cargo test "${features[@]}" --no-run --quiet

step "fetch weights and voices (cached in $KOKORO_CACHE)"
"$CARGO_TARGET_DIR/debug/kokoro" fetch

step "kokoro-text in wasm: en-US, en-GB and both, sizes, and a run in Node"
./scripts/text-wasm-size.sh

step "cargo test --workspace (the golden test on burn-wgpu runs on a GPU, or Mesa's lavapipe Vulkan on the CPU)"
cargo test "${features[@]}" --no-fail-fast 2>&1 | tee "$KOKORO_CACHE/last-test.log"

step "the browser package: wasm + bindings + npm package + demo (scripts/build-web.sh)"
./scripts/build-web.sh

step "end-to-end in headless Chromium (Debian's): WebGPU (SwiftShader), CPU fallback, IndexedDB, offline"
(cd tests/browser && npm ci --no-audit --no-fund --silent)
# The package's TypeScript types, strictly, as a user's code uses them (tests/browser/types-check.ts).
(cd tests/browser && ./node_modules/.bin/tsc -p . && ./node_modules/.bin/tsc -p tsconfig.protocol.json)
KOKORO_BIN="$CARGO_TARGET_DIR/debug/kokoro" node --test --test-concurrency=1 tests/browser/ 2>&1 | tee -a "$KOKORO_CACHE/last-test.log"

step "the server's load benchmark, short (scripts/bench-serve.py: 2 clients, 2 requests, both scheduler policies; the figures are in docs/server.md)"
scripts/py scripts/bench-serve.py --bin "$CARGO_TARGET_DIR/debug/kokoro" --requests 2 --clients 2 --fifo-too
