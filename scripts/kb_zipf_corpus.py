"""Writes N synthetic passages (JSONL) whose word statistics look like a real corpus's, for BM25 latency at scale
(#18, BENCHMARKS.md "BM25 at 10M chunks"): words from WordNet 3.0's noun and adjective lemmas (Debian wordnet-base,
≈ 139k single words and phrases, in WordNet's order shuffled by the seed) drawn with Zipf weights 1/rank (s = 1, as
word frequencies in English and in PubMed abstracts roughly follow), 35 % function words, 3–6 sentences of 8–20
words per passage (≈ 80 words, as `kb_synthetic_corpus.py`). `kb_synthetic_corpus.py` draws from 140 words only, so
at millions of passages every query term's postings list holds most of the corpus — no real corpus looks like that.
Vectorised with NumPy (≈ 1 min per million passages here); deterministic per seed.

    python scripts/kb_zipf_corpus.py N OUT.jsonl [SEED]
"""
import json
import sys

import numpy as np

FILLER = "the a of in with and is are may be seen shows typically often usually on at by from which as".split()


def vocabulary(seed):
    words = []
    for part in ("noun", "adj"):
        for line in open(f"/usr/share/wordnet/index.{part}", encoding="latin-1"):
            if line.startswith(" "):
                continue
            w = line.split(" ", 1)[0].replace("_", " ")
            if w.isascii() and w[:1].isalpha():
                words.append(w)
    words = sorted(set(words))
    np.random.default_rng(seed).shuffle(words)
    return np.array(words, dtype=object)


def main():
    n, out = int(sys.argv[1]), sys.argv[2]
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    vocab = vocabulary(seed)
    cdf = np.cumsum(1.0 / np.arange(1, len(vocab) + 1))
    cdf /= cdf[-1]
    filler = np.array(FILLER, dtype=object)
    rng = np.random.default_rng(seed + 1)
    block = 100_000
    with open(out, "w") as f:
        for start in range(0, n, block):
            m = min(block, n - start)
            n_sent = rng.integers(3, 7, size=m)
            lengths = rng.integers(8, 21, size=int(n_sent.sum()))
            total = int(lengths.sum())
            is_term = rng.random(total) < 0.65
            words = np.where(is_term, vocab[np.searchsorted(cdf, rng.random(total))],
                             filler[rng.integers(0, len(filler), size=total)])
            lines, w, s = [], 0, 0
            for i in range(m):
                sents = []
                for _ in range(n_sent[i]):
                    k = lengths[s]
                    sents.append(" ".join(words[w:w + k]).capitalize() + ".")
                    w += k
                    s += 1
                lines.append(json.dumps({"id": f"z{start + i}", "title": "", "text": " ".join(sents),
                                         "source": "synthetic-zipf"}))
            f.write("\n".join(lines) + "\n")
            print(f"{start + m}/{n}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
