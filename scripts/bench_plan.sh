#!/usr/bin/env bash
# Time and peak RSS of `medgrain plan` against the number of inputs (BENCHMARKS.md, "Planning many inputs"): writes N
# one-byte files (10,000 per folder; plan lists and sizes files, it does not decode them) and plans them.
#   bash scripts/bench_plan.sh target/release/medgrain 100000 1000000
set -euo pipefail
BIN="$(realpath "${1:?medgrain binary}")"
shift
WORK="${MEDGRAIN_BENCH_DIR:-$(mktemp -d)}"
echo "| inputs | plan wall time | peak RSS | plan.json |"
echo "|---|---|---|---|"
for n in "$@"; do
  d="$WORK/plan-$n"
  rm -rf "$d"
  python3 - "$d/images" "$n" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    sub = os.path.join(root, f"d{i // 10000:05d}")
    if i % 10000 == 0:
        os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, f"img{i:08d}.png"), "wb") as f:
        f.write(b"x")
PY
  cat > "$d/c.toml" <<TOML
recipe = "triplets"
[output]
shard_size = 256
[[source]]
name = "many"
kind = "image-folder"
root = "images"
images = "*/*.png"
[generator]
kind = "template"
TOML
  /usr/bin/time -f "%e %M" -o "$d/time.txt" "$BIN" -q plan "$d/c.toml" --out "$d/out" > /dev/null
  read -r secs kb < "$d/time.txt"
  echo "| $n | ${secs} s | $(( kb / 1024 )) MB | $(( $(stat -c %s "$d/out/plan.json") / 1048576 )) MB |"
  rm -rf "$d"
done
