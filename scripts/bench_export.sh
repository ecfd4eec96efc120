#!/usr/bin/env bash
# Export rate per format: a synthetic 2D corpus of 7×PER_KIND images built with the template writer, then
# `medgrain export` to each format, timed. Usage: bash scripts/bench_export.sh BIN [PER_KIND]
set -euo pipefail
BIN=$(realpath "$1"); per_kind=${2:-300}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/synth2d_config.sh"
d=$(mktemp -d); trap 'rm -rf "$d"' EXIT
"$BIN" -q synth --out "$d/synth" --images-per-kind "$per_kind" --volumes 0
synth2d_config 256 "$d/build.toml"
"$BIN" -q build "$d/build.toml" --out "$d/out"
rows=$(python3 -c "import json,sys; print(json.load(open('$d/out/stats.json'))['rows'])")
for f in llava sharegpt webdataset coco vqa hf; do
  s=$(date +%s.%N)
  "$BIN" -q export "$d/out" --format "$f" --to "$d/exp-$f" >/dev/null
  e=$(date +%s.%N)
  python3 -c "r=$rows; t=$e-$s; import os; print(f'export --format $f: {r} rows in {t:.2f} s ({r/t:,.0f} rows/s); output {sum(os.path.getsize(os.path.join(a,f)) for a,_,fs in os.walk(\"$d/exp-$f\") for f in fs)/1e6:.1f} MB')"
done
