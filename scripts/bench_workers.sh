#!/usr/bin/env bash
# Throughput with 1 and 2 workers on this machine, and merge time for many shards (BENCHMARKS.md, "Workers"):
#   bash scripts/bench_workers.sh target/release/medgrain [IMAGES]
# Writes a synthetic 2D corpus, plans it (shard size 64), builds it with one process, then with two `--worker` processes
# at once plus `merge`, and finally plans the same corpus with shard size 1 (one shard per image) to time `merge` over
# that many markers.
set -euo pipefail
source "$(dirname "$0")/synth2d_config.sh"
BIN="$(realpath "${1:?medgrain binary}")"
N="${2:-10000}"
WORK="${MEDGRAIN_BENCH_DIR:-$(mktemp -d)}"
per_kind=$(( (N + 6) / 7 ))
"$BIN" -q synth --out "$WORK/synth" --images-per-kind "$per_kind" --volumes 0 > /dev/null
conf() { synth2d_config "$1" "$WORK/c$1.toml"; }
conf 64
conf 1
now() { date +%s.%N; }
rm -rf "$WORK/one" "$WORK/two" "$WORK/many"
"$BIN" -q plan "$WORK/c64.toml" --out "$WORK/one" > /dev/null
t0=$(now); "$BIN" -q build "$WORK/c64.toml" --out "$WORK/one" > /dev/null; t1=$(now)
"$BIN" -q plan "$WORK/c64.toml" --out "$WORK/two" > /dev/null
t2=$(now)
"$BIN" -q build "$WORK/c64.toml" --out "$WORK/two" --worker 0/2 > /dev/null &
"$BIN" -q build "$WORK/c64.toml" --out "$WORK/two" --worker 1/2 > /dev/null
wait
t3=$(now); "$BIN" -q merge "$WORK/two" > /dev/null; t4=$(now)
"$BIN" -q plan "$WORK/c1.toml" --out "$WORK/many" > /dev/null
t5=$(now); "$BIN" -q build "$WORK/c1.toml" --out "$WORK/many" > /dev/null; t6=$(now)
t7=$(now); "$BIN" -q merge "$WORK/many" > /dev/null; t8=$(now)
images=$(( per_kind * 7 ))
awk -v n="$images" -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" -v e="$t4" -v f="$t5" -v g="$t6" -v h="$t7" -v i="$t8" 'BEGIN {
  printf "| run | wall time | images/s |\n|---|---|---|\n";
  printf "| 1 process (build) | %.1f s | %.0f |\n", b - a, n / (b - a);
  printf "| 2 workers at once | %.1f s | %.0f |\n", d - c, n / (d - c);
  printf "| merge of the 2 workers (shards of 64) | %.2f s | |\n", e - d;
  printf "| build with one shard per image (%d shards) | %.1f s | %.0f |\n", n, g - f, n / (g - f);
  printf "| merge of %d shards | %.2f s | |\n", n, i - h;
}'
