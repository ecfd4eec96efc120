"""Evaluation rate of `medgrain eval` beside the Python reference implementations (scripts/eval_reference.py) on
the same inputs in the same run, both pinned to one core (taskset -c 0).

    python scripts/bench_eval.py MEDGRAIN_BIN [--questions 200000] [--volumes 8] [--reports 5000]

Needs the test venv (numpy, scipy, nibabel, nltk, rouge-score). Prints one line per measurement."""
import argparse
import warnings
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from rouge_score import rouge_scorer
from nltk.translate.bleu_score import corpus_bleu
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_reference import ref_finding, ref_vqa  # noqa: E402

os.sched_setaffinity(0, {0})  # this process and its children: one core
warnings.filterwarnings("ignore")  # NLTK warns on every zero n-gram precision (the protocol: no smoothing)

WORDS = ["left lung", "right lung", "liver", "nodule", "pleural effusion", "two nodules", "mass", "2.5 cm",
         "consolidation", "heart", "no", "yes", "the spleen", "ground-glass opacity"]


def timed(cmd):
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if p.returncode not in (0, 1):
        sys.exit(p.stderr)
    return dt, p.stdout


def bench_vqa(bin_, n, tmp):
    rng = random.Random(1)
    gold, preds, items = [], {}, []
    for i in range(n):
        closed = rng.random() < 0.5
        ans = rng.choice(["yes", "no"]) if closed else rng.choice(WORDS)
        pred = rng.choice([ans, f"Yes, the {ans}.", rng.choice(WORDS), f"I see {ans} in {rng.choice(WORDS)}"])
        gold.append({"id": str(i), "answer": ans, "closed": closed, "qtype": "PRES", "modality": "CT"})
        items.append({"qid": i, "question": "q", "answer": ans, "answer_type": "CLOSED" if closed else "OPEN",
                      "question_type": "PRES", "modality": "CT"})
        preds[str(i)] = pred
    (tmp / "gold.json").write_text(json.dumps(items))
    (tmp / "pred.jsonl").write_text("".join(json.dumps({"qid": int(k), "answer": v}) + "\n" for k, v in preds.items()))
    for protocol in ("llava-med", "medtrinity"):
        dt, _ = timed([bin_, "eval", "vqa", "--pred", str(tmp / "pred.jsonl"), "--gold", str(tmp / "gold.json"),
                       "--protocol", protocol, "--json"])
        t = time.perf_counter()
        ref_vqa(gold, preds, protocol)
        rt = time.perf_counter() - t
        print(f"vqa {protocol}: {n} questions: medgrain {dt:.2f} s ({n / dt:,.0f} questions/s), "
              f"Python reference {rt:.2f} s ({n / rt:,.0f} questions/s, scoring only, no file reading): {rt / dt:.1f}x")


def bench_grounding(bin_, volumes, shape, tmp):
    rng = np.random.default_rng(2)
    g_dir, p_dir = tmp / f"g{shape[0]}", tmp / f"p{shape[0]}"
    g_dir.mkdir(), p_dir.mkdir()
    zz, yy, xx = np.ogrid[: shape[0], : shape[1], : shape[2]]
    for i in range(volumes):
        m = np.zeros(shape, np.uint8)
        for _ in range(6):
            c = [rng.integers(20, s - 20) for s in shape]
            m[((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2) <= rng.uniform(4, 18) ** 2] = 1
        p = np.roll(m, 2, axis=0)
        nib.save(nib.Nifti1Image(m, np.eye(4)), g_dir / f"f{i}.nii.gz")
        nib.save(nib.Nifti1Image(p, np.eye(4)), p_dir / f"f{i}.nii.gz")
    dt, _ = timed([bin_, "eval", "grounding", "--pred", str(p_dir), "--gold", str(g_dir), "--json"])
    t = time.perf_counter()
    for i in range(volumes):
        g = np.asarray(nib.load(g_dir / f"f{i}.nii.gz").dataobj)
        p = np.asarray(nib.load(p_dir / f"f{i}.nii.gz").dataobj)
        ref_finding(g, p)
    rt = time.perf_counter() - t
    print(f"grounding {'x'.join(map(str, shape))}: {volumes} findings: medgrain {dt:.2f} s ({volumes / dt:.2f} volumes/s), "
          f"Python reference (nibabel + scipy) {rt:.2f} s ({volumes / rt:.2f} volumes/s): {rt / dt:.1f}x")


def bench_report(bin_, reports_csv, n, tmp):
    import csv
    rows = list(csv.DictReader(open(reports_csv, newline="")))
    fields = ["VolumeName", "Findings_EN", "Impressions_EN"]
    with open(tmp / "gold.csv", "w", newline="") as g, open(tmp / "pred.csv", "w", newline="") as p:
        wg, wp = csv.DictWriter(g, fields, extrasaction="ignore"), csv.DictWriter(p, fields, extrasaction="ignore")
        wg.writeheader(), wp.writeheader()
        for i in range(n):
            r = dict(rows[i % len(rows)], VolumeName=f"v{i}")
            wg.writerow(r)
            q = dict(rows[(i + 1) % len(rows)], VolumeName=f"v{i}")
            wp.writerow(q)
    dt, _ = timed([bin_, "eval", "report", "--pred", str(tmp / "pred.csv"), "--gold", str(tmp / "gold.csv"), "--json"])
    # Reference for the text metrics only (the finding labels come from medgrain's own grounding by definition).
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    gold = list(csv.DictReader(open(tmp / "gold.csv")))
    pred = list(csv.DictReader(open(tmp / "pred.csv")))
    t = time.perf_counter()
    refs, hyps = [], []
    for g, q in zip(gold, pred):
        gt, pt = f"{g['Findings_EN']} {g['Impressions_EN']}", f"{q['Findings_EN']} {q['Impressions_EN']}"
        scorer.score(gt, pt)
        refs.append([scorer._tokenizer.tokenize(gt)]), hyps.append(scorer._tokenizer.tokenize(pt))
    corpus_bleu(refs, hyps)
    rt = time.perf_counter() - t
    print(f"report: {n} reports: medgrain {dt:.2f} s ({n / dt:,.0f} reports/s, grounding + BLEU-4 + ROUGE-L), "
          f"rouge-score + NLTK (text metrics only) {rt:.2f} s ({n / rt:,.0f} reports/s)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin")
    ap.add_argument("--questions", type=int, default=200_000)
    ap.add_argument("--volumes", type=int, default=4)
    ap.add_argument("--reports", type=int, default=5000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        bench_vqa(a.bin, a.questions, tmp)
        bench_grounding(a.bin, a.volumes * 4, (128, 128, 96), tmp)
        bench_grounding(a.bin, a.volumes, (512, 512, 300), tmp)
        subprocess.run([a.bin, "-q", "synth", "--out", str(tmp / "synth"), "--images-per-kind", "1", "--volumes", "8"],
                       check=True)
        bench_report(a.bin, tmp / "synth/3d/reports.csv", a.reports, tmp)


if __name__ == "__main__":
    main()
