#!/usr/bin/env bash
# Builds the text front end for wasm32 (tools/text-wasm) with en-US, en-GB and both, reports the
# size raw / gzip / brotli, and runs each in Node on a sentence per dialect (first and second call).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kokoro-burn/target}"
wasm="$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm/kokoro_text_wasm_size.wasm"
for dialects in en-us en-gb en-us,en-gb; do
echo "== $dialects"
cargo build --quiet --profile wasm -p kokoro-text-wasm-size --target wasm32-unknown-unknown --no-default-features --features "$dialects"
node - "$wasm" <<'JS'
const fs = require("fs");
const zlib = require("zlib");
const bytes = fs.readFileSync(process.argv[2]);
const mb = (n) => (n / 1e6).toFixed(1) + " MB";
const gz = zlib.gzipSync(bytes, { level: 9 }).length;
const br = zlib.brotliCompressSync(bytes, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: bytes.length } }).length;
console.log(`wasm: ${mb(bytes.length)} raw, ${mb(gz)} gzip -9, ${mb(br)} brotli 11`);
const t0 = performance.now();
const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), {});
const t1 = performance.now();
const say = (text, british) => {
  const enc = new TextEncoder().encode(text);
  const ptr = instance.exports.alloc(enc.length);
  new Uint8Array(instance.exports.memory.buffer, ptr, enc.length).set(enc);
  return instance.exports.phonemize_len(ptr, enc.length, british);
};
const text = "The train to Leicester leaves at 10:30; don't be late, Dr. Smith.";
for (const british of [false, true]) {
  const a = performance.now(); const n = say(text, british);
  if (n === -2) { console.log(`${british ? "en-gb" : "en-us"}: not in this build`); continue; }
  if (n <= 0) { console.error("no phonemes"); process.exit(1); } const b = performance.now(); say(text, british); const c = performance.now();
  console.log(`${british ? "en-gb" : "en-us"}: ${n} phonemes; first call ${((b - a) / 1000).toFixed(2)} s, second ${((c - b) / 1000).toFixed(2)} s`);
}
console.log(`compile + instantiate ${((t1 - t0) / 1000).toFixed(2)} s; memory ${(instance.exports.memory.buffer.byteLength / 1e6).toFixed(0)} MB`);
JS
done
