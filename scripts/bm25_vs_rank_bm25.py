"""Recall@5 of our BM25 (`kb search --mode bm25`) beside PyPI rank_bm25 (BM25Okapi, a plain [a-z0-9]+ tokeniser,
text only and title + text) on the WordNet noun.state evaluation of tests/python/test_knowledge.py, in one run.

Usage (in a scratch folder; the test venv's python): python /path/to/scripts/bm25_vs_rank_bm25.py /path/to/medgrain
"""
import json, re, subprocess, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests/python"))
from test_knowledge import wordnet_corpus
from rank_bm25 import BM25Okapi
BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/medgrain"
n = wordnet_corpus(Path("wn.jsonl"))
docs = [json.loads(l) for l in open("wn.jsonl")]
queries = [json.loads(l) for l in open(Path(__file__).resolve().parents[1] / "tests/python/kb_eval_queries.jsonl")]
import shutil
shutil.rmtree("kb", ignore_errors=True)
subprocess.run([BIN, "-q", "kb", "build", "--input", "wn.jsonl", "--out", "kb", "--embed-model", "/nonexistent"], capture_output=True)
if not Path("kb").exists():
    r = subprocess.run([BIN, "-q", "kb", "build", "--input", "wn.jsonl", "--out", "kb"], capture_output=True, text=True); print(r.stderr[-300:])
Path("q.txt").write_text("".join(q["query"] + "\n" for q in queries))
out = subprocess.run([BIN, "kb", "search", "kb", "--queries", "q.txt", "--json", "--top", "10", "--mode", "bm25"], capture_output=True, text=True).stdout.splitlines()
def score(rank_lists):
    r5 = sum(any(x in q["relevant"] for x in ids[:5]) for q, ids in zip(queries, rank_lists)) / len(queries)
    return r5
ours = [[h["id"].split("#")[0] for h in json.loads(l)["hits"]] for l in out]
print("ours bm25 recall@5", score(ours))
tok = lambda s: re.findall(r"[a-z0-9]+", s.lower())
for name, text in [("text only", lambda d: d["text"]), ("title+text", lambda d: d["title"] + " " + d["text"])]:
    bm = BM25Okapi([tok(text(d)) for d in docs])
    ranks = []
    for q in queries:
        s = bm.get_scores(tok(q["query"]))
        top = sorted(range(len(docs)), key=lambda i: -s[i])[:10]
        ranks.append([docs[i]["id"] for i in top])
    print("rank_bm25", name, score(ranks))
