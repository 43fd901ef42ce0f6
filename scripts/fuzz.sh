#!/usr/bin/env bash
# Fuzzes the readers of untrusted input for a bounded time each: the text front end
# (normalization + G2P + chunking), every voice reader and every weight reader.
# Usage: scripts/fuzz.sh [TARGET ...] [-- SECONDS]   (default: every target, 300 s each)
#   scripts/fuzz.sh voice_npz weights_onnx -- 120
# Needs the nightly toolchain and cargo-fuzz (installed here if missing). Corpora grow under
# fuzz/corpus/<target> (ignored by git), seeded from fuzz/seeds/<target>; crashes land in
# fuzz/artifacts/<target>. The build is shared across checkouts in $KOKORO_CACHE/fuzz-target.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
targets=()
seconds=300
while [ $# -gt 0 ]; do
  case "$1" in
    --) seconds="${2:?seconds after --}"; shift 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(sed -n 's/^name = "\([a-z_]*\)"$/\1/p' Cargo.toml)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
target_dir="${KOKORO_CACHE:-$HOME/.cache/kokoro-burn}/fuzz-target"
mkdir -p "$target_dir"

for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  if [ "$target" = text ]; then
    # Seed with the committed G2P corpus (one file per line of the tricky set).
    i=0
    while IFS= read -r line; do
      [ -z "$line" ] || [ "${line#\#}" != "$line" ] && continue
      printf '\0%s' "$line" > "corpus/text/tricky-$i"; i=$((i + 1))
    done < ../crates/kokoro-text/tests/fixtures/tricky.txt
  fi
  seeds=()
  [ -d "seeds/$target" ] && seeds+=("seeds/$target")
  echo "== $target: $seconds s"
  # Voice files are ~0.5 MB, hence max_len; the rss limit catches unbounded allocations.
  log="$target_dir/$target.log"
  rc=0
  cargo +nightly fuzz run --target-dir "$target_dir" "$target" "corpus/$target" "${seeds[@]}" -- \
    -max_total_time="$seconds" -max_len=1200000 -rss_limit_mb=4096 -print_final_stats=1 >"$log" 2>&1 || rc=$?
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done [0-9]+ runs)' "$log" || true
  if [ "$rc" != 0 ]; then
    tail -40 "$log" >&2
    echo "fuzz: $target failed (exit $rc; log $log, crashes in fuzz/artifacts/$target)" >&2
    exit 1
  fi
done
