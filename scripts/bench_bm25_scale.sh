#!/usr/bin/env bash
# BM25 at PubMed scale (#18, BENCHMARKS.md "BM25 at 10M chunks"): Zipf-vocabulary corpora of 1M and N passages
# (scripts/kb_zipf_corpus.py), `kb build` (BM25 only, both cores), then query latency in process with the 50
# evaluation queries of tests/python/kb_eval_queries.jsonl (kb_latency example, 5 rounds, top 10).
#   PYTHON=venv/bin/python bash scripts/bench_bm25_scale.sh target/release/medgrain WORKDIR [N]   (NumPy; ≈ 25 GB free for 10M)
set -euo pipefail
BIN=$(realpath "$1"); WORK=$2; N=${3:-10000000}
HERE=$(cd "$(dirname "$0")" && pwd)
PY=${PYTHON:-python3}
mkdir -p "$WORK"
python3 -c "import json,sys; [print(json.loads(l)['query']) for l in open('$HERE/../tests/python/kb_eval_queries.jsonl')]" > "$WORK/queries.txt"
(cd "$HERE/.." && cargo build -q --release -p medgrain-knowledge --example kb_latency)
LAT="$HERE/../target/release/examples/kb_latency"
for n in 1000000 "$N"; do
  [ -s "$WORK/z$n.jsonl" ] || { echo "== corpus $n"; /usr/bin/time -f "corpus %e s" "$PY" "$HERE/kb_zipf_corpus.py" "$n" "$WORK/z$n.jsonl" 2>&1 | grep -v "/"; }
  rm -rf "$WORK/kb$n"
  echo "== kb build $n ($(du -h "$WORK/z$n.jsonl" | cut -f1))"
  env -u MEDGRAIN_EMBED_MODEL /usr/bin/time -f "kb build %e s, peak RSS %M KB" "$BIN" kb build \
    --input "$WORK/z$n.jsonl" --out "$WORK/kb$n" 2>&1 | grep -v "^\[" | tail -4
  du -sh "$WORK/kb$n"
  echo "== latency $n"
  /usr/bin/time -f "latency run peak RSS %M KB" "$LAT" "$WORK/kb$n" "$WORK/queries.txt" 5 10
done
