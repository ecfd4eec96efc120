#!/usr/bin/env bash
# Peak RSS of `build` (2D triplets, template writer, shard size 256) against the number of samples (BENCHMARKS.md,
# "Memory"): writes a synthetic 2D corpus of each size and builds it, reporting wall time and peak RSS.
#   bash scripts/bench_memory.sh target/release/medgrain 1000 10000 [100000]
set -euo pipefail
source "$(dirname "$0")/synth2d_config.sh"
BIN="$(realpath "${1:?medgrain binary}")"
shift
WORK="${MEDGRAIN_BENCH_DIR:-$(mktemp -d)}"
echo "| samples | build wall time | peak RSS |"
echo "|---|---|---|"
for n in "$@"; do
  per_kind=$(( (n + 6) / 7 ))
  d="$WORK/mem-$n"
  rm -rf "$d"
  "$BIN" -q synth --out "$d/synth" --images-per-kind "$per_kind" --volumes 0
  synth2d_config 256 "$d/build.toml"
  /usr/bin/time -f "%e %M" -o "$d/time.txt" "$BIN" -q build "$d/build.toml" --out "$d/out" > /dev/null
  read -r secs kb < "$d/time.txt"
  echo "| $(( per_kind * 7 )) | ${secs} s | $(( kb / 1024 )) MB |"
  rm -rf "$d/synth"
done
