#!/usr/bin/env bash
# Cost of recording input checksums (OUT/inputs.jsonl): the same build with and without --no-input-hash, same run.
# Usage: bash scripts/bench_input_hash.sh BIN [PER_KIND]
set -euo pipefail
BIN=$(realpath "$1"); per_kind=${2:-300}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/synth2d_config.sh"
d=$(mktemp -d); trap 'rm -rf "$d"' EXIT
"$BIN" -q synth --out "$d/synth" --images-per-kind "$per_kind" --volumes 0
synth2d_config 256 "$d/build.toml"
for flag in --no-input-hash ""; do
  s=$(date +%s.%N)
  "$BIN" -q build "$d/build.toml" --out "$d/out$flag" $flag
  e=$(date +%s.%N)
  n=$(python3 -c "import json; print(json.load(open('$d/out$flag/stats.json'))['rows'])")
  python3 -c "t=$e-$s; print(f'build ${flag:-(hashing inputs)}: $n rows in {t:.2f} s ({$n/t:,.0f} rows/s)')"
done
wc -l < "$d/out/inputs.jsonl" | xargs echo "inputs.jsonl lines:"
