"""Reference implementations of medgrain's evaluation protocols, written from their description in the README
("Evaluating a model"), independent of the Rust code: the tests (tests/python/test_eval.py) compare `medgrain eval`
with them, and scripts/bench_eval.py times both on the same inputs. BLEU is NLTK's own `sentence_bleu`; Dice and
connected components are scipy's."""
import re
from collections import Counter

import numpy as np
from nltk.translate.bleu_score import sentence_bleu
from scipy import ndimage

MARKS = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!", ":"]
NUMBERS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
           "seven": "7", "eight": "8", "nine": "9", "ten": "10"}


def ref_tokens(text):
    digit_comma = re.search(r"\d,\d", text) is not None
    out = text
    for m in MARKS:
        if (m + " ") in text or (" " + m) in text or digit_comma:
            out = out.replace(m, "")
        else:
            out = out.replace(m, " ")
    out = re.sub(r"\.(?!\d)", "", out)
    words = [NUMBERS.get(w, w) for w in out.lower().split()]
    words = [w.replace(",", "") for w in words if w not in ("a", "an", "the")]
    return [w for w in words if w]


def ref_closed(pred, gold):
    p, g = ref_tokens(pred), ref_tokens(gold)
    if not g:
        return not p
    if g in (["yes"], ["no"]):
        first = next((t for t in p if t in ("yes", "no")), None)
        return first == g[0]
    return any(p[i:i + len(g)] == g for i in range(len(p) - len(g) + 1))


def ref_open(pred, gold):
    p, g = ref_tokens(pred), ref_tokens(gold)
    cp, cg = Counter(p), Counter(g)
    if not p:
        em = 0.0
    else:
        em = sum(1 for w in cg if w in cp) / len(p)
    if not cp or not cg:
        f1 = prec = rec = 0.0
    else:
        tp = sum(c for w, c in cp.items() if w in cg)
        fp = sum(c for w, c in cp.items() if w not in cg)
        fn = sum(c for w, c in cg.items() if w not in cp)
        if tp == 0:
            f1 = prec = rec = 0.0
        else:
            prec, rec = tp / (tp + fp), tp / (tp + fn)
            f1 = 2 * prec * rec / (prec + rec)
    bleu = [sentence_bleu([g], p, weights=w) for w in ((1, 0, 0, 0), (0, 1, 0, 0), (0, 0, 1, 0))]
    return {"exact_match": em, "f1": f1, "precision": prec, "recall": rec,
            "bleu1": bleu[0], "bleu2": bleu[1], "bleu3": bleu[2]}


def ref_vqa(gold, preds, protocol):
    """gold: list of dicts id/answer/closed/qtype/modality; preds: id → answer."""
    groups = {"overall": {}, "by_question_type": {}, "by_modality": {}}

    def acc(kind, key):
        d = groups[kind] if kind == "overall" else groups[kind].setdefault(key, {})
        d.setdefault("closed", []), d.setdefault("open", [])
        return d

    for g in gold:
        ans = preds.get(g["id"], "")
        targets = [acc("overall", None), acc("by_question_type", g["qtype"]), acc("by_modality", g["modality"])]
        if g["closed"]:
            v = ref_closed(ans, g["answer"])
            for t in targets:
                t["closed"].append(v)
        else:
            v = ref_open(ans, g["answer"])
            for t in targets:
                t["open"].append(v)

    def summary(d):
        mean = lambda xs: (sum(xs) / len(xs)) if xs else None  # noqa: E731
        out = {"closed": len(d["closed"]), "open": len(d["open"]), "questions": len(d["closed"]) + len(d["open"])}
        if protocol == "llava-med":
            out["closed_accuracy"] = mean([float(x) for x in d["closed"]])
            out["open_recall"] = mean([x["recall"] for x in d["open"]])
        else:
            for k in ("exact_match", "f1", "precision", "recall", "bleu1", "bleu2", "bleu3"):
                out[k] = mean([x[k] for x in d["open"]])
            out["yes_no_accuracy"] = mean([float(x) for x in d["closed"]])
        return out

    return {"overall": summary(groups["overall"]),
            "by_question_type": {k: summary(v) for k, v in groups["by_question_type"].items()},
            "by_modality": {k: summary(v) for k, v in groups["by_modality"].items()}}



FULL = np.ones((3, 3, 3), dtype=bool)


def ref_finding(gold, pred):
    g, p = gold != 0, pred != 0
    s = g.sum() + p.sum()
    dice = 1.0 if s == 0 else 2 * np.logical_and(g, p).sum() / s
    gl, gn = ndimage.label(g, structure=FULL)
    pl, pn = ndimage.label(p, structure=FULL)
    gsize = np.bincount(gl.ravel(), minlength=gn + 1)
    psize = np.bincount(pl.ravel(), minlength=pn + 1)
    cands = []
    for a in range(1, gn + 1):
        inside = pl[gl == a]
        for b, n in zip(*np.unique(inside[inside > 0], return_counts=True)):
            d = 2 * n / (gsize[a] + psize[b])
            if d >= 0.2:
                cands.append((-d, a, int(b)))
    cands.sort()
    ug, up, tp = set(), set(), 0
    for _, a, b in cands:
        if a not in ug and b not in up:
            ug.add(a), up.add(b)
            tp += 1
    return {"dice": dice, "hit": dice >= 0.1, "gold_instances": gn, "pred_instances": pn, "tp": tp,
            "fp": pn - tp, "fn": gn - tp}


def prf(tp, fp, fn):
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


