"""Writes N synthetic passages (JSONL) for knowledge-base throughput and latency benchmarks: sentences of 8-20
words drawn from a medical vocabulary with Zipf-like weights, 3-6 sentences per passage, deterministic per seed.
It is text-shaped noise for timing, not knowledge.

    python scripts/kb_synthetic_corpus.py N OUT.jsonl [SEED]
"""
import json
import random
import sys

TERMS = ("lung liver kidney spleen heart brain breast skin retina bone pancreas adrenal thyroid colon stomach "
         "nodule mass cyst lesion effusion consolidation atelectasis emphysema fibrosis fracture metastasis "
         "carcinoma glioma melanoma lymphoma pneumonia hemorrhage infarct edema abscess aneurysm stenosis "
         "hypodense hyperdense hypoechoic anechoic enhancing spiculated calcified necrotic cavitary diffuse focal "
         "bilateral left right upper lower lobe segment apical basal anterior posterior lateral medial "
         "CT MRI ultrasound radiograph dermoscopy fundus T2-weighted contrast HU mm cm follow-up biopsy "
         "benign malignant chronic acute inflammatory infectious congenital degenerative vascular").split()
FILLER = "the a of in with and is are may be seen shows typically often usually on at by from which as".split()


def main():
    n, out = int(sys.argv[1]), sys.argv[2]
    rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 0)
    weights = [1 / (i + 1) for i in range(len(TERMS))]
    with open(out, "w") as f:
        for i in range(n):
            sents = []
            for _ in range(rng.randint(3, 6)):
                k = rng.randint(8, 20)
                words = [rng.choices(TERMS, weights)[0] if rng.random() < 0.55 else rng.choice(FILLER)
                         for _ in range(k)]
                sents.append(" ".join(words).capitalize() + ".")
            f.write(json.dumps({"id": f"syn{i}", "title": "", "text": " ".join(sents), "source": "synthetic"}) + "\n")


if __name__ == "__main__":
    main()
