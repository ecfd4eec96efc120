"""Hybrid retrieval against a plain Python reference on the WordNet noun.state evaluation of
tests/python/test_knowledge.py, in one run: recall@5 and MRR@10 of our `kb search` (bm25, dense, hybrid) beside
rank_bm25 (BM25Okapi, [a-z0-9]+ tokens, title + text), the same MiniLM ranking, and their RRF (k = 60, depth 50 —
what `kb search --mode hybrid` fuses).

Usage (in a scratch folder; the test venv's python, MEDGRAIN_EMBED_MODEL set):
    python /path/to/scripts/hybrid_vs_reference.py /path/to/medgrain
"""
import json, re, shutil, subprocess, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests/python"))
from test_knowledge import wordnet_corpus
from rank_bm25 import BM25Okapi

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/medgrain"
DEPTH, K = 50, 60
wordnet_corpus(Path("wn.jsonl"))
docs = [json.loads(l) for l in open("wn.jsonl")]
queries = [json.loads(l) for l in open(Path(__file__).resolve().parents[1] / "tests/python/kb_eval_queries.jsonl")]
shutil.rmtree("kb", ignore_errors=True)
subprocess.run([BIN, "-q", "kb", "build", "--input", "wn.jsonl", "--out", "kb"], check=True, capture_output=True)
Path("q.txt").write_text("".join(q["query"] + "\n" for q in queries))


def ours(mode, top):
    out = subprocess.run([BIN, "kb", "search", "kb", "--queries", "q.txt", "--json", "--top", str(top), "--mode", mode],
                         check=True, capture_output=True, text=True).stdout.splitlines()
    return [[h["id"].split("#")[0] for h in json.loads(l)["hits"]] for l in out]


def score(lists):
    r5, rr = 0, 0.0
    for q, ids in zip(queries, lists):
        rank = next((i for i, x in enumerate(ids[:10]) if x in q["relevant"]), None)
        r5 += rank is not None and rank < 5
        rr += 0 if rank is None else 1 / (rank + 1)
    return f"recall@5 {r5 / len(queries):.3f} MRR@10 {rr / len(queries):.3f}"


def rrf(*lists_per_query):
    fused = []
    for lists in zip(*lists_per_query):
        s = {}
        for l in lists:
            for r, x in enumerate(l[:DEPTH]):
                s[x] = s.get(x, 0) + 1 / (K + r + 1)
        fused.append([x for x, _ in sorted(s.items(), key=lambda kv: (-kv[1], kv[0]))])
    return fused


tok = lambda s: re.findall(r"[a-z0-9]+", s.lower())
bm = BM25Okapi([tok(d["title"] + " " + d["text"]) for d in docs])
ref_bm25 = []
for q in queries:
    s = bm.get_scores(tok(q["query"]))
    ref_bm25.append([docs[i]["id"] for i in sorted(range(len(docs)), key=lambda i: -s[i])[:DEPTH]])
our_bm25, our_dense = ours("bm25", DEPTH), ours("dense", DEPTH)
print("ours  bm25   ", score(our_bm25))
print("ours  dense  ", score(our_dense))
print("ours  hybrid ", score(ours("hybrid", 10)))
print("ref   rank_bm25 (title+text)      ", score(ref_bm25))
print("ref   RRF(rank_bm25, our dense)   ", score(rrf(ref_bm25, our_dense)))
print("ref   RRF(our bm25, our dense)    ", score(rrf(our_bm25, our_dense)))
