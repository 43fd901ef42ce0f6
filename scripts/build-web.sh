#!/usr/bin/env bash
# Builds the browser package from a fresh machine, in one command:
#   1. the engine for wasm32 (cargo, profile `web`: opt-level 3, LTO, SIMD128),
#   2. its JavaScript bindings with wasm-bindgen-cli, installed here at exactly the version of the
#      `wasm-bindgen` crate in Cargo.lock (under $KOKORO_CACHE/tools; the two must match),
#   3. the npm package `kokoro-burn` (worker/dist, packed to $KOKORO_CACHE/web/kokoro-burn-*.tgz),
#   4. the demo app (www/dist: the app, its service worker and the package).
# KOKORO_WASM_PROFILE=release builds faster (no LTO, larger wasm) for development.
set -euo pipefail
cd "$(dirname "$0")/.."

export KOKORO_CACHE="${KOKORO_CACHE:-$HOME/.cache/kokoro-burn}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$KOKORO_CACHE/target}"
profile="${KOKORO_WASM_PROFILE:-web}"
tools="$KOKORO_CACHE/tools"

version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
[ -n "$version" ] || { echo "build-web: no wasm-bindgen in Cargo.lock" >&2; exit 1; }
if ! "$tools/bin/wasm-bindgen" --version 2>/dev/null | grep -qx "wasm-bindgen $version"; then
  echo "== installing wasm-bindgen-cli $version (matches Cargo.lock) into $tools"
  cargo install --quiet wasm-bindgen-cli --version "$version" --root "$tools" --force
fi
rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

echo "== kokoro-wasm for wasm32 (profile $profile)"
cargo build --quiet --profile "$profile" -p kokoro-wasm --target wasm32-unknown-unknown
wasm="$CARGO_TARGET_DIR/wasm32-unknown-unknown/$profile/kokoro_wasm.wasm"

echo "== bindings and the npm package"
rm -rf worker/dist
mkdir -p worker/dist/pkg
"$tools/bin/wasm-bindgen" --target web --out-dir worker/dist/pkg "$wasm"
cp worker/src/*.js worker/src/index.d.ts worker/src/protocol.d.ts worker/dist/
mkdir -p "$KOKORO_CACHE/web"
(cd worker && npm pack --silent --pack-destination "$KOKORO_CACHE/web" >/dev/null)

echo "== the demo app (www/dist)"
rm -rf www/dist
mkdir -p www/dist
cp www/index.html www/app.js www/sw.js www/style.css www/manifest.webmanifest www/dist/
cp -r worker/dist www/dist/kokoro-burn

# What a browser downloads: the engine's wasm (and, with KOKORO_WEB_SIZES=1, the weights: slow to compress).
node -e '
const fs = require("fs"), zlib = require("zlib");
const size = (f) => { const b = fs.readFileSync(f); return [b.length, zlib.gzipSync(b, { level: 9 }).length,
  zlib.brotliCompressSync(b, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: b.length } }).length]; };
const mb = (n) => (n / 1e6).toFixed(1) + " MB";
for (const f of process.argv.slice(1)) {
  if (!fs.existsSync(f)) continue;
  const [raw, gz, br] = size(f).map(mb);
  console.log(`${f.split("/").pop()}: ${raw} raw, ${gz} gzip -9, ${br} brotli 11`);
}
' worker/dist/pkg/kokoro_wasm_bg.wasm ${KOKORO_WEB_SIZES:+"$KOKORO_CACHE/kokoro-v1_0-int8.safetensors"} 2>/dev/null || true
echo "npm package: $(ls "$KOKORO_CACHE"/web/kokoro-burn-*.tgz) ($(stat -c %s "$KOKORO_CACHE"/web/kokoro-burn-*.tgz) bytes)"
