"""`medgrain eval`: every metric against an independent implementation.

- VQA: the protocols re-implemented here from their published description (README "Evaluating a model"), with
  NLTK's own `sentence_bleu` for BLEU-1..3; compared on every question type and modality of a VQA-RAD/SLAKE-style
  gold file with answers perturbed in every way the normalisation handles, on the LLaVA conversation layout and on
  the demo's own grounded VQA (against itself: 1.0; against a corrupted copy: the drop predicted by counting).
- Grounding: scipy's Dice and connected components (full connectivity) on masks nibabel writes, on synthetic blobs
  and on a real CT's TotalSegmentator segmentation (../shared/data/totalseg), one mask per class.
- Reports: finding sets from `medgrain report ground` (the protocol's labeller), precision/recall/F1 counted here,
  NLTK `corpus_bleu` for BLEU-4 and `rouge-score` for ROUGE-L.
- Bad input: unmatched, missing, duplicated ids, empty answers, wrong grids are listed (exit 1); unknown layouts
  exit 2 naming the expected fields."""
import json
import random
import re
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pyarrow.parquet as pq
import pytest
from nltk.translate.bleu_score import corpus_bleu
from rouge_score import rouge_scorer
from scipy import ndimage

# NLTK warns on every zero n-gram precision, which is the protocol here (no smoothing).
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

ROOT = Path(__file__).resolve().parents[2]
TOTALSEG = ROOT.parent / "shared/data/totalseg"
sys.path.insert(0, str(ROOT / "scripts"))
from eval_reference import FULL, prf, ref_closed, ref_finding, ref_tokens, ref_vqa  # noqa: E402

def assert_scores_equal(ours, ref):
    assert set(ours) == set(ref), (sorted(ours), sorted(ref))
    for k, v in ref.items():
        if v is None or isinstance(v, int):
            assert ours[k] == v, k
        else:
            assert ours[k] == pytest.approx(v, abs=1e-12), k


def run_eval(medgrain_bin, *args):
    return subprocess.run([medgrain_bin, "eval", *args], capture_output=True, text=True)


def eval_json(medgrain_bin, *args, code=0):
    p = run_eval(medgrain_bin, *args, "--json")
    assert p.returncode == code, p.stderr + p.stdout
    return json.loads(p.stdout)


# ---------------------------------------------------------------- hand-derived normalisation cases, one per rule
@pytest.mark.parametrize("pred,gold,hit", [
    ("YES", "yes", True),                       # case
    ("Yes, it is.", "yes", True),              # punctuation next to a space deleted, final period deleted
    ("No, there is a nodule", "no", True),     # the first yes/no decides
    ("There is a nodule.", "no", False),       # "no" inside "nodule" is not an answer
    ("the left lung", "Left lung", True),      # articles
    ("left-lung", "left lung", True),          # a mark between words becomes a space
    ("two", "2", True),                        # number words
    ("none", "0", True),
    ("1,000", "1000", True),                   # digit-comma-digit
    ("lung left", "left lung", False),         # closed non-yes/no answers: tokens in order
    ("", "yes", False),                        # empty answer
])
def test_normalisation_rules_by_hand(medgrain_bin, tmp_path, pred, gold, hit):
    assert ref_closed(pred, gold) == hit  # the reference agrees with the hand-derived value
    (tmp_path / "gold.json").write_text(json.dumps([{"qid": 1, "question": "q", "answer": gold,
                                                     "answer_type": "CLOSED"}]))
    (tmp_path / "pred.jsonl").write_text(json.dumps({"qid": 1, "answer": pred}) + "\n")
    r = eval_json(medgrain_bin, "vqa", "--pred", str(tmp_path / "pred.jsonl"), "--gold", str(tmp_path / "gold.json"),
                  "--protocol", "llava-med")
    assert r["overall"]["closed_accuracy"] == (1.0 if hit else 0.0)
    assert r["empty_answers"] == ([] if pred else ["1"])


# ---------------------------------------------------------------- VQA against the reference
ORGANS = ["left lung", "right lung", "liver", "heart", "spleen", "kidney", "brain", "bladder"]
FINDINGS = ["pleural effusion", "nodule", "mass", "consolidation", "fracture", "two nodules", "2.5 cm lesion",
            "ground-glass opacity", "1,200 ml", "none"]


def perturb(rng, answer, closed):
    kind = rng.randrange(12)
    if kind == 0:
        return answer
    if kind == 1:
        return answer.upper() + "."
    if kind == 2:
        return f"The answer is: {answer}!"
    if kind == 3:
        return f"Yes, {answer}" if rng.random() < 0.5 else f"No, {answer}"
    if kind == 4:
        return rng.choice(ORGANS + FINDINGS)
    if kind == 5:
        return ""
    if kind == 6:
        return f"{answer} {answer}"
    if kind == 7:
        return answer.replace("2", "two").replace("1", "one")
    if kind == 8:
        return f"I think it is a {answer}, possibly (likely) {rng.choice(ORGANS)}."
    if kind == 9:
        return "nodule" if closed else answer.split()[0]
    if kind == 10:
        return "x-ray shows " + answer.replace(" ", "-")
    return f"There is no {answer}; yes"


def make_vqa(seed, n=400):
    rng = random.Random(seed)
    gold, preds = [], {}
    for i in range(n):
        r = rng.random()
        if r < 0.4:
            answer, closed = rng.choice(["yes", "no", "Yes", "No"]), True
        elif r < 0.55:
            answer, closed = rng.choice(ORGANS), True  # SLAKE-style closed, not yes/no
        else:
            answer, closed = rng.choice(ORGANS + FINDINGS + [f"{o} and {f}" for o in ORGANS[:3] for f in FINDINGS[:3]]), False
        gold.append({"id": str(1000 + i), "answer": answer, "closed": closed,
                     "qtype": rng.choice(["PRES", "POS", "ABN", "SIZE"]), "modality": rng.choice(["CT", "MRI", "X-Ray"])})
        preds[str(1000 + i)] = perturb(rng, answer, closed)
    return gold, preds


@pytest.mark.parametrize("protocol", ["llava-med", "medtrinity"])
def test_vqa_matches_reference_on_perturbed_answers(medgrain_bin, tmp_path, protocol):
    gold, preds = make_vqa(7)
    # VQA-RAD / SLAKE layout: numeric qid, answer_type with stray spaces as in VQA-RAD, content_type for SLAKE.
    items = []
    for k, g in enumerate(gold):
        it = {"qid": int(g["id"]), "image_name": f"img{k}.jpg", "question": "q?", "answer": g["answer"],
              "answer_type": "CLOSED " if g["closed"] else "OPEN", "modality": g["modality"]}
        it["question_type" if k % 2 else "content_type"] = g["qtype"]
        items.append(it)
    (tmp_path / "gold.json").write_text(json.dumps(items))
    with open(tmp_path / "pred.jsonl", "w") as f:
        for i, a in preds.items():
            f.write(json.dumps({"question_id": int(i), "text": a}) + "\n")
    r = eval_json(medgrain_bin, "vqa", "--pred", str(tmp_path / "pred.jsonl"), "--gold", str(tmp_path / "gold.json"),
                  "--protocol", protocol, code=0)
    ref = ref_vqa(gold, preds, protocol)
    assert r["protocol"] == protocol
    assert_scores_equal(r["overall"], ref["overall"])
    assert set(r["by_question_type"]) == set(ref["by_question_type"])
    for k in ref["by_question_type"]:
        assert_scores_equal(r["by_question_type"][k], ref["by_question_type"][k])
    for k in ref["by_modality"]:
        assert_scores_equal(r["by_modality"][k], ref["by_modality"][k])
    # Perturbations do hit and miss: the scores are neither 0 nor 1.
    key = "closed_accuracy" if protocol == "llava-med" else "yes_no_accuracy"
    assert 0.2 < r["overall"][key] < 0.9
    assert r["empty_answers"] and r["unmatched"] == [] and r["missing"] == []


def test_vqa_llava_conversation_layout_without_answer_type(medgrain_bin, tmp_path):
    """PathVQA in LLaVA's layout: closed questions are those with a yes/no answer."""
    gold, preds = make_vqa(11, n=120)
    items = [{"id": g["id"], "image": "x.png", "conversations": [
        {"from": "human", "value": "<image>\nWhat is shown?"}, {"from": "gpt", "value": g["answer"]}]} for g in gold]
    (tmp_path / "gold.jsonl").write_text("\n".join(json.dumps(i) for i in items) + "\n")
    with open(tmp_path / "pred.jsonl", "w") as f:
        for i, a in preds.items():
            f.write(json.dumps({"id": i, "answer": a}) + "\n")
    for g in gold:
        g["closed"] = ref_tokens(g["answer"]) in (["yes"], ["no"])
        g["qtype"], g["modality"] = "unknown", "unknown"
    r = eval_json(medgrain_bin, "vqa", "--pred", str(tmp_path / "pred.jsonl"), "--gold", str(tmp_path / "gold.jsonl"),
                  "--protocol", "medtrinity")
    assert_scores_equal(r["overall"], ref_vqa(gold, preds, "medtrinity")["overall"])


def demo_vqa_rows(demo_dir):
    rows = []
    for f in sorted((demo_dir / "vqa").glob("*.parquet")):
        rows += pq.read_table(f).to_pylist()
    assert len(rows) > 50
    return rows


def test_demo_vqa_against_itself_and_a_corrupted_copy(medgrain_bin, demo_dir, tmp_path):
    rows = demo_vqa_rows(demo_dir)
    pred = tmp_path / "self.jsonl"
    pred.write_text("".join(json.dumps({"id": r["id"], "answer": r["answer"]}) + "\n" for r in rows))
    for protocol in ("llava-med", "medtrinity"):
        r = eval_json(medgrain_bin, "vqa", "--pred", str(pred), "--gold", str(demo_dir), "--protocol", protocol)
        o = r["overall"]
        assert o["questions"] == len(rows)
        if protocol == "llava-med":
            assert o["closed_accuracy"] == 1.0 and o["open_recall"] == 1.0
        else:
            assert o["yes_no_accuracy"] == 1.0 and o["f1"] == 1.0 and o["precision"] == 1.0 and o["recall"] == 1.0
            assert o["bleu1"] == 1.0
    # Corrupt: flip every 3rd yes/no answer, replace every 2nd open answer by a word no answer has.
    closed = [r for r in rows if r["answer"].lower() in ("yes", "no")]
    opened = [r for r in rows if r["answer"].lower() not in ("yes", "no")]
    flip = {r["id"] for r in closed[::3]}
    blank = {r["id"] for r in opened[::2]}
    lines = []
    for r in rows:
        a = r["answer"]
        if r["id"] in flip:
            a = "No" if a.lower() == "yes" else "Yes"
        if r["id"] in blank:
            a = "indeterminate"
        lines.append(json.dumps({"id": r["id"], "answer": a}))
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n")
    r = eval_json(medgrain_bin, "vqa", "--pred", str(tmp_path / "bad.jsonl"), "--gold", str(demo_dir / "vqa"),
                  "--protocol", "llava-med")
    assert r["overall"]["closed_accuracy"] == pytest.approx(1 - len(flip) / len(closed), abs=1e-12)
    assert r["overall"]["open_recall"] == pytest.approx(1 - len(blank) / len(opened), abs=1e-12)


def test_vqa_bad_input_is_listed_not_fatal(medgrain_bin, tmp_path):
    gold = [{"qid": i, "question": "q", "answer": "yes", "answer_type": "CLOSED"} for i in range(5)]
    gold.append({"qid": 2, "question": "dup", "answer": "no", "answer_type": "CLOSED"})
    (tmp_path / "gold.json").write_text(json.dumps(gold))
    (tmp_path / "pred.jsonl").write_text("\n".join([
        json.dumps({"qid": 0, "answer": "yes"}),
        json.dumps({"qid": 0, "answer": "no"}),      # duplicate: the first is scored
        json.dumps({"qid": 1, "answer": ""}),        # empty
        json.dumps({"qid": 77, "answer": "yes"}),    # not in gold
        "this is not json",
        json.dumps({"qid": 3}),                      # no answer
        json.dumps({"qid": 4, "answer": "Yes."}),
    ]) + "\n")
    p = run_eval(medgrain_bin, "vqa", "--pred", str(tmp_path / "pred.jsonl"), "--gold", str(tmp_path / "gold.json"),
                 "--protocol", "llava-med", "--json")
    assert p.returncode == 1, p.stderr
    r = json.loads(p.stdout)
    assert r["duplicates"] == ["0"] and r["unmatched"] == ["77"] and r["empty_answers"] == ["1"]
    assert r["missing"] == ["2", "3"] and r["duplicate_gold"] == ["2"]
    assert [b.split(":")[0] for b in r["bad_lines"]] == ["line 5", "line 6"]
    assert r["overall"]["closed_accuracy"] == pytest.approx(2 / 5)  # ids 0 and 4 right; 1, 2, 3 wrong
    # Text output names the problems too.
    t = run_eval(medgrain_bin, "vqa", "--pred", str(tmp_path / "pred.jsonl"), "--gold", str(tmp_path / "gold.json"),
                 "--protocol", "llava-med")
    assert t.returncode == 1 and "77" in t.stdout and "line 5" in t.stdout


def test_vqa_unknown_gold_layout_exit_2(medgrain_bin, tmp_path):
    (tmp_path / "gold.json").write_text(json.dumps([{"image": "a.png", "caption": "x"}]))
    (tmp_path / "pred.jsonl").write_text("")
    p = run_eval(medgrain_bin, "vqa", "--pred", str(tmp_path / "pred.jsonl"), "--gold", str(tmp_path / "gold.json"),
                 "--protocol", "llava-med")
    assert p.returncode == 2
    assert "qid" in p.stderr and "answer" in p.stderr
    (tmp_path / "obj.json").write_text(json.dumps({"a": 1}))
    p = run_eval(medgrain_bin, "vqa", "--pred", str(tmp_path / "pred.jsonl"), "--gold", str(tmp_path / "obj.json"),
                 "--protocol", "medtrinity")
    assert p.returncode == 2 and "expected" in p.stderr
    (tmp_path / "ok.json").write_text(json.dumps([{"qid": 1, "answer": "yes"}]))
    p = run_eval(medgrain_bin, "vqa", "--pred", str(tmp_path / "nope.jsonl"), "--gold", str(tmp_path / "ok.json"),
                 "--protocol", "medtrinity")
    assert p.returncode == 1 and "nope.jsonl" in p.stderr


# ---------------------------------------------------------------- grounding against scipy
def check_grounding(r, expected):
    assert set(r["by_finding"]) == set(expected)
    for k, e in expected.items():
        got = r["by_finding"][k]
        assert got["dice"] == pytest.approx(e["dice"], abs=1e-12), k
        for f in ("hit", "gold_instances", "pred_instances", "tp", "fp", "fn"):
            assert got[f] == e[f], (k, f, got[f], e[f])
    tp, fp, fn = (sum(e[f] for e in expected.values()) for f in ("tp", "fp", "fn"))
    p, rc, f1 = prf(tp, fp, fn)
    o = r["overall"]
    assert o["dice"] == pytest.approx(np.mean([e["dice"] for e in expected.values()]), abs=1e-12)
    assert o["hit_rate"] == pytest.approx(np.mean([e["hit"] for e in expected.values()]), abs=1e-12)
    assert (o["instance_precision"], o["instance_recall"], o["instance_f1"]) == pytest.approx((p, rc, f1), abs=1e-12)


def blobs(rng, shape, n):
    m = np.zeros(shape, dtype=np.uint8)
    zz, yy, xx = np.indices(shape)
    for _ in range(n):
        c = [rng.integers(3, s - 3) for s in shape]
        rad = rng.uniform(1.5, 5)
        m[((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2) <= rad ** 2] = 1
    return m


def test_grounding_matches_scipy_on_synthetic_masks(medgrain_bin, tmp_path):
    rng = np.random.default_rng(3)
    shape, aff = (40, 36, 24), np.diag([0.8, 0.8, 2.0, 1.0])
    (tmp_path / "gold/case1").mkdir(parents=True)
    (tmp_path / "pred/case1").mkdir(parents=True)
    expected = {}
    for i in range(8):
        g = blobs(rng, shape, int(rng.integers(1, 5)))
        if i == 0:
            p = g.copy()                                         # perfect
        elif i == 1:
            p = ndimage.binary_dilation(g, iterations=2)         # over-segmented
        elif i == 2:
            p = np.roll(g, 3, axis=0)                            # shifted
        elif i == 3:
            p = blobs(rng, shape, 3)                             # unrelated
        elif i == 4:
            p = np.zeros_like(g)                                 # nothing found
        elif i == 5:
            p = g.copy()
            lab, n = ndimage.label(g, structure=FULL)
            p[lab == 1] = 0                                      # one instance missed
            p |= blobs(rng, shape, 1)                            # one extra
        else:
            p = ndimage.binary_erosion(g) | blobs(rng, shape, 2)
        name = f"case1/finding_{i}"
        nib.save(nib.Nifti1Image(g.astype(np.uint8), aff), tmp_path / "gold" / f"{name}.nii.gz")
        nib.save(nib.Nifti1Image((p != 0).astype(np.int16) * 3, aff), tmp_path / "pred" / f"{name}.nii")
        expected[name] = ref_finding(g, p)
    r = eval_json(medgrain_bin, "grounding", "--pred", str(tmp_path / "pred"), "--gold", str(tmp_path / "gold"))
    check_grounding(r, expected)
    assert 0 < r["overall"]["dice"] < 1 and r["missing"] == [] and r["wrong_grid"] == []


def test_grounding_matches_scipy_on_real_totalsegmentator_masks(medgrain_bin, tmp_path):
    """A real CT's TotalSegmentator segmentation: one gold mask per class; predictions eroded, dilated or shifted
    by scipy (ribs and vertebrae give many small instances, the colon a long winding one)."""
    img = nib.load(TOTALSEG / "example_seg.nii.gz")
    seg = np.asarray(img.dataobj)
    names = dict(line.split(maxsplit=1) for line in (TOTALSEG / "classes.txt").read_text().splitlines() if line.strip())
    (tmp_path / "gold").mkdir()
    (tmp_path / "pred").mkdir()
    expected = {}
    for k, v in enumerate(sorted(int(x) for x in np.unique(seg) if x)):
        g = (seg == v).astype(np.uint8)
        op = k % 4
        p = [ndimage.binary_erosion(g), ndimage.binary_dilation(g), np.roll(g, 2, axis=1), g][op]
        name = names[str(v)].strip()
        nib.save(nib.Nifti1Image(g, img.affine), tmp_path / "gold" / f"{name}.nii.gz")
        nib.save(nib.Nifti1Image(p.astype(np.uint8), img.affine), tmp_path / "pred" / f"{name}.nii.gz")
        expected[name] = ref_finding(g, p)
    assert len(expected) == 41
    r = eval_json(medgrain_bin, "grounding", "--pred", str(tmp_path / "pred"), "--gold", str(tmp_path / "gold"))
    check_grounding(r, expected)


def test_grounding_bad_input_is_listed(medgrain_bin, tmp_path):
    aff = np.eye(4)
    g = np.zeros((10, 10, 10), np.uint8)
    g[2:5, 2:5, 2:5] = 1
    for d in ("gold", "pred"):
        (tmp_path / d).mkdir()
    for name in ("a", "b", "c", "d"):
        nib.save(nib.Nifti1Image(g, aff), tmp_path / "gold" / f"{name}.nii.gz")
    nib.save(nib.Nifti1Image(g, aff), tmp_path / "pred" / "a.nii.gz")
    nib.save(nib.Nifti1Image(g[:, :, :9], aff), tmp_path / "pred" / "b.nii.gz")                # other shape
    nib.save(nib.Nifti1Image(g, np.diag([2, 1, 1, 1])), tmp_path / "pred" / "c.nii.gz")       # other affine
    nib.save(nib.Nifti1Image(g, aff), tmp_path / "pred" / "extra.nii.gz")                     # no gold
    (tmp_path / "pred" / "d.nii.gz").write_bytes(b"not a nifti")                              # unreadable
    p = run_eval(medgrain_bin, "grounding", "--pred", str(tmp_path / "pred"), "--gold", str(tmp_path / "gold"), "--json")
    assert p.returncode == 1, p.stderr
    r = json.loads(p.stdout)
    assert r["overall"]["findings"] == 4
    assert r["by_finding"]["a"]["dice"] == 1.0
    for k in ("b", "c", "d"):
        assert r["by_finding"][k]["dice"] == 0.0 and r["by_finding"][k]["fn"] == 1
    assert [w.split(":")[0] for w in r["wrong_grid"]] == ["b", "c"]
    assert r["unmatched"] == ["extra"] and len(r["unreadable"]) == 1 and "d.nii.gz" in r["unreadable"][0]
    assert r["overall"]["dice"] == pytest.approx(0.25)
    p = run_eval(medgrain_bin, "grounding", "--pred", str(tmp_path / "pred"), "--gold", str(tmp_path / "empty"))
    assert p.returncode != 0 and "empty" in p.stderr


# ---------------------------------------------------------------- reports: labels from `report ground`, metrics here
def ground_sets(medgrain_bin, csv_path, uncertain_present=True):
    p = subprocess.run([medgrain_bin, "report", "ground", str(csv_path), "--json"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    findings, anat = {}, {}
    for line in p.stdout.splitlines():
        s = json.loads(line)
        f_set = findings.setdefault(s["volume_id"], set())
        a_set = anat.setdefault(s["volume_id"], set())
        for f in s["findings"]:
            if f["negated"] or (f["uncertain"] and not uncertain_present):
                continue
            f_set.add(f["finding"])
            a_set.add(f"{f['finding']}@{f['anatomy'] or '-'}")
    return findings, anat


def read_reports(path):
    import csv
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_report_eval_matches_reference(medgrain_bin, demo_dir, tmp_path):
    import csv
    gold_rows = read_reports(demo_dir / "synth/3d/reports.csv")
    assert len(gold_rows) >= 6
    rng = random.Random(5)
    pred_rows = []
    for i, r in enumerate(gold_rows):
        if i == 0:
            continue  # missing: scored as an empty report
        sents = re.split(r"(?<=\.)\s+", r["Findings_EN"])
        if i % 3 == 1:
            sents = [s for s in sents if rng.random() < 0.6]                            # findings dropped
        elif i % 3 == 2:
            sents = [s.replace("No ", "There is ").replace(" not ", " ") for s in sents]  # negations removed
        pred_rows.append({"VolumeName": r["VolumeName"], "Findings_EN": " ".join(sents),
                          "Impressions_EN": r["Impressions_EN"] if i % 2 else "Possible pleural effusion."})
    pred_rows.append({"VolumeName": "not_in_gold.nii.gz", "Findings_EN": "No effusion.", "Impressions_EN": ""})
    for name, rows in (("gold.csv", gold_rows), ("pred.csv", pred_rows)):
        with open(tmp_path / name, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["VolumeName", "Findings_EN", "Impressions_EN"], extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
    for uncertain in ("present", "absent"):
        p = run_eval(medgrain_bin, "report", "--pred", str(tmp_path / "pred.csv"), "--gold", str(tmp_path / "gold.csv"),
                     "--uncertain", uncertain, "--json")
        assert p.returncode == 1, p.stderr  # one missing, one unmatched
        r = json.loads(p.stdout)
        gf, ga = ground_sets(medgrain_bin, tmp_path / "gold.csv", uncertain == "present")
        pf, pa = ground_sets(medgrain_bin, tmp_path / "pred.csv", uncertain == "present")
        ids = [g["VolumeName"] for g in gold_rows]
        per = {}
        tp = fp = fn = 0
        for i in ids:
            g, q = gf.get(i, set()), pf.get(i, set())
            for f in g | q:
                c = per.setdefault(f, [0, 0, 0])
                c[0 if (f in g and f in q) else 1 if f in q else 2] += 1
            tp, fp, fn = tp + len(g & q), fp + len(q - g), fn + len(g - q)
        assert (r["tp"], r["fp"], r["fn"]) == (tp, fp, fn)
        assert (r["precision"], r["recall"], r["f1"]) == pytest.approx(prf(tp, fp, fn), abs=1e-12)
        assert set(r["by_finding"]) == set(per)
        for f, (a, b, c) in per.items():
            got = r["by_finding"][f]
            assert (got["tp"], got["fp"], got["fn"]) == (a, b, c), f
            assert got["f1"] == pytest.approx(prf(a, b, c)[2], abs=1e-12)
        assert r["macro_f1"] == pytest.approx(np.mean([prf(*c)[2] for c in per.values()]), abs=1e-12)
        atp = sum(len(ga.get(i, set()) & pa.get(i, set())) for i in ids)
        afp = sum(len(pa.get(i, set()) - ga.get(i, set())) for i in ids)
        afn = sum(len(ga.get(i, set()) - pa.get(i, set())) for i in ids)
        assert r["with_anatomy"]["f1"] == pytest.approx(prf(atp, afp, afn)[2], abs=1e-12)
        assert 0 < r["f1"] < 1 and fp > 0 and fn > 0
    # Text metrics: rouge-score and NLTK on the same texts.
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    tok = scorer._tokenizer
    pred_text = {r["VolumeName"]: f"{r['Findings_EN']} {r['Impressions_EN']}".strip() for r in pred_rows}
    refs, hyps, rl = [], [], []
    for g in gold_rows:
        gt = f"{g['Findings_EN']} {g['Impressions_EN']}".strip()
        pt = pred_text.get(g["VolumeName"], "")
        refs.append([tok.tokenize(gt)])
        hyps.append(tok.tokenize(pt))
        rl.append(scorer.score(gt, pt)["rougeL"].fmeasure)
    assert r["bleu4"] == pytest.approx(corpus_bleu(refs, hyps), abs=1e-12)
    assert r["rouge_l"] == pytest.approx(np.mean(rl), abs=1e-12)
    assert r["missing"] == [gold_rows[0]["VolumeName"]] and r["unmatched"] == ["not_in_gold.nii.gz"]
    # Against itself: every score is 1.
    p = run_eval(medgrain_bin, "report", "--pred", str(tmp_path / "gold.csv"), "--gold", str(tmp_path / "gold.csv"), "--json")
    assert p.returncode == 0
    s = json.loads(p.stdout)
    assert s["f1"] == 1.0 and s["bleu4"] == pytest.approx(1.0) and s["rouge_l"] == pytest.approx(1.0)


def test_report_eval_other_layout_and_unknown_layout(medgrain_bin, tmp_path):
    (tmp_path / "gold.csv").write_text("id,report\n1,There is a small right pleural effusion. No pneumothorax.\n"
                                       "2,No acute abnormality.\n")
    (tmp_path / "pred.csv").write_text("id,report\n1,Small pleural effusion on the right.\n2,Pneumothorax on the left.\n"
                                       "2,duplicate row\n")
    p = run_eval(medgrain_bin, "report", "--pred", str(tmp_path / "pred.csv"), "--gold", str(tmp_path / "gold.csv"), "--json")
    assert p.returncode == 1, p.stderr
    r = json.loads(p.stdout)
    assert (r["tp"], r["fp"], r["fn"]) == (1, 1, 0)  # effusion found; pneumothorax invented
    assert r["duplicates"] == ["pred:2"]
    (tmp_path / "bad.csv").write_text("patient,words\n1,x\n")
    p = run_eval(medgrain_bin, "report", "--pred", str(tmp_path / "pred.csv"), "--gold", str(tmp_path / "bad.csv"))
    assert p.returncode == 2 and "VolumeName" in p.stderr and "report" in p.stderr
