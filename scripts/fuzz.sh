#!/usr/bin/env bash
# Fuzzes the text front end (normalization + G2P + chunking) for a bounded time.
# Usage: scripts/fuzz.sh [SECONDS]   (default 300). Needs a nightly toolchain and cargo-fuzz.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-300}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
mkdir -p corpus/text
# Seed with the committed G2P corpus (one file per line of the tricky set).
i=0
while IFS= read -r line; do
  [ -z "$line" ] || [ "${line#\#}" != "$line" ] && continue
  printf '\0%s' "$line" > "corpus/text/tricky-$i"; i=$((i + 1))
done < ../crates/kokoro-text/tests/fixtures/tricky.txt
cargo +nightly fuzz run text corpus/text -- -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=4096
