#!/usr/bin/env python3
"""Negation on real clinical text: the NegEx annotated test set (../shared/data/negex/Annotations-1-120.txt,
2,376 concept-sentence pairs from 120 discharge summaries) through `medgrain report context` and through medspacy's
ConText (PyPI medspacy, its default rules) on the same rows. Development on odd-numbered reports, results on
even-numbered ones (the data's README convention).

    MEDGRAIN_BIN=target/release/medgrain python scripts/negex_eval.py [--json]

prints accuracy and negated-class precision/recall/F1 per half and tool (the table in BENCHMARKS.md).
tests/python/test_real_reports.py imports this module and asserts on the same figures."""
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NEGEX = ROOT.parent / "shared/data/negex/Annotations-1-120.txt"


def squash(s: str) -> str:
    return " ".join(s.split())


def read_rows(path: Path = NEGEX):
    """(report number, concept, sentence, negated) per row; 'Negation' is read as negated (README)."""
    rows = []
    with open(path, newline="", encoding="utf-8") as fh:
        rd = csv.reader(fh, delimiter="\t")
        header = next(rd)
        assert header[:4] == ["Report No.", "Concept", "Sentence", "Negation"], header
        for r in rd:
            if not r or not r[0].strip():
                continue
            label = r[3].strip()
            assert label in ("Affirmed", "Negated", "Negation"), label
            sentence = r[2].strip()
            if len(sentence) >= 2 and sentence[0] == sentence[-1] == '"':
                sentence = sentence[1:-1]
            rows.append((int(r[0]), r[1].strip(), sentence, label != "Affirmed"))
    return rows


def medgrain_predictions(medgrain_bin: str, rows):
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "pairs.jsonl"
        f.write_text("".join(json.dumps({"concept": c, "sentence": s}) + "\n" for _, c, s, _ in rows))
        r = subprocess.run([medgrain_bin, "report", "context", str(f), "--json"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    out = [json.loads(l) for l in r.stdout.splitlines()]
    assert len(out) == len(rows)
    return out


def medspacy_python() -> str:
    cache = Path(os.environ.get("MEDGRAIN_CACHE", Path.home() / ".cache/medgrain"))
    return os.environ.get("MEDSPACY_PYTHON", str(cache / "venv-medspacy/bin/python"))


def medspacy_predictions(rows):
    """medspacy's ConText, run in its own venv (MEDSPACY_PYTHON; see tests/python/requirements-medspacy.txt)."""
    payload = json.dumps([[c, s] for _, c, s, _ in rows])
    r = subprocess.run([medspacy_python(), __file__, "--medspacy-worker"], input=payload, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert len(out) == len(rows)
    return out


def _medspacy_worker(pairs):
    """medspacy's ConText with its default rules; the concept is the only target (a literal, case-insensitive
    rule), the sentence is whitespace-squashed like medgrain's input."""
    rows = [(0, c, s, False) for c, s in pairs]
    import medspacy
    from medspacy.ner import TargetRule

    nlp = medspacy.load()
    matcher = nlp.get_pipe("medspacy_target_matcher")
    concepts = sorted({squash(c).lower() for _, c, _, _ in rows})
    matcher.add([TargetRule(c, "CONCEPT") for c in concepts])
    preds = []
    for _, c, s, _ in rows:
        doc = nlp(squash(s))
        want = squash(c).lower()
        ents = [e for e in doc.ents if e.text.lower() == want]
        preds.append({"found": bool(ents), "negated": bool(ents) and ents[0]._.is_negated})
    return preds


def scores(gold, pred):
    tp = sum(g and p for g, p in zip(gold, pred))
    fp = sum((not g) and p for g, p in zip(gold, pred))
    fn = sum(g and (not p) for g, p in zip(gold, pred))
    acc = sum(g == p for g, p in zip(gold, pred)) / len(gold)
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return {"n": len(gold), "negated": sum(gold), "accuracy": acc, "precision": prec, "recall": rec, "f1": f1}


def evaluate(medgrain_bin: str):
    rows = read_rows()
    mg = medgrain_predictions(medgrain_bin, rows)
    ms = medspacy_predictions(rows)
    result = {"rows": len(rows), "medgrain_not_found": sum(not p["found"] for p in mg),
              "medspacy_not_found": sum(not p["found"] for p in ms)}
    for half, parity in (("odd", 1), ("even", 0)):
        idx = [i for i, r in enumerate(rows) if r[0] % 2 == parity]
        gold = [rows[i][3] for i in idx]
        result[half] = {
            "medgrain": scores(gold, [mg[i]["negated"] for i in idx]),
            "medspacy": scores(gold, [ms[i]["negated"] for i in idx]),
        }
    result["_rows"] = rows
    result["_medgrain"] = mg
    return result


def main():
    if "--medspacy-worker" in sys.argv:
        print(json.dumps(_medspacy_worker(json.load(sys.stdin))))
        return
    medgrain_bin = os.environ.get("MEDGRAIN_BIN", str(ROOT / "target/release/medgrain"))
    res = evaluate(medgrain_bin)
    if "--errors" in sys.argv:
        for (no, c, s, g), p in zip(res["_rows"], res["_medgrain"]):
            if no % 2 == 1 and g != p["negated"]:
                print(f"[{no}] gold={'NEG' if g else 'AFF'} cue={p['cue']} concept={c!r}: {squash(s)[:300]}")
    public = {k: v for k, v in res.items() if not k.startswith("_")}
    if "--json" in sys.argv:
        print(json.dumps(public, indent=2))
        return
    print(f"NegEx annotated test set: {res['rows']} rows")
    print("| half | tool | rows | negated | accuracy | precision (negated) | recall (negated) | F1 (negated) |")
    print("|---|---|---|---|---|---|---|---|")
    for half in ("odd", "even"):
        for tool in ("medgrain", "medspacy"):
            s = res[half][tool]
            print(f"| {half} | {tool} | {s['n']} | {s['negated']} | {s['accuracy']:.3f} | {s['precision']:.3f} | "
                  f"{s['recall']:.3f} | {s['f1']:.3f} |")


if __name__ == "__main__":
    main()
