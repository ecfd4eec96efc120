"""Grounded reports and VQA written by the demo's RadGenome recipe, against the synthetic 3D ground truth."""
import csv
import json

import pyarrow.parquet as pq
import pytest


@pytest.fixture(scope="module")
def truth(demo_dir):
    return {json.loads(l)["volume"]: json.loads(l)
            for l in (demo_dir / "synth/3d/ground_truth.jsonl").read_text().splitlines()}


def read_parts(d):
    """Every shard's Parquet part, in shard order, as one list of rows."""
    parts = sorted(d.glob("part-*.parquet"))
    assert parts, d
    tables = [pq.read_table(p) for p in parts]
    return tables[0].column_names, [r for t in tables for r in t.to_pylist()]


@pytest.fixture(scope="module")
def grounded(demo_dir):
    names, rows = read_parts(demo_dir / "grounded_reports")
    # `split` is null without a [splits] table (SPEC: rows gain split)
    assert names == ["volume_id", "anatomy", "region", "sentence", "abnormal", "negated", "mask_ref", "split"]
    assert all(r["split"] is None for r in rows)
    return rows


@pytest.fixture(scope="module")
def vqa(demo_dir):
    names, rows = read_parts(demo_dir / "vqa")
    assert names[:8] == ["id", "volume_id", "anatomy", "question_type", "question", "answer", "template_id",
                         "mask_ref"]
    return rows


def test_present_findings_are_grounded_with_masks(grounded, truth, demo_dir):
    for volume, t in truth.items():
        for f in t["findings"]:
            if not f["present"]:
                continue
            rows = [r for r in grounded if r["volume_id"] == volume and r["anatomy"] == f["anatomy"] and r["abnormal"]]
            assert rows, (volume, f)
            for r in rows:
                assert r["region"] == f["anatomy"].split("/")[0]
                if r["mask_ref"]:
                    assert (demo_dir / "synth/3d" / r["mask_ref"]).is_file()
            if f["anatomy"].startswith("lung/"):
                assert all(r["mask_ref"] and r["mask_ref"].startswith(f"masks/{volume[:-7]}/lung_") for r in rows)


def test_negated_template_sentences_do_not_make_regions_abnormal(grounded, truth):
    """RadGenome's pitfall: "Pericardial effusion-thickening was not observed" must not be a heart finding."""
    for volume, t in truth.items():
        has_pe = any(f["finding"] == "pericardial effusion" and f["present"] for f in t["findings"])
        heart_abnormal = any(r["abnormal"] for r in grounded if r["volume_id"] == volume and r["anatomy"] == "heart")
        assert heart_abnormal == has_pe, volume
    negated = [r for r in grounded if "was not observed" in r["sentence"]]
    assert negated and all(not r["abnormal"] and r["negated"] for r in negated)


def test_vqa_answers_agree_with_ground_truth(vqa, truth):
    assert {r["question_type"] for r in vqa} == {"abnormality", "presence", "location", "size", "disorders"}
    for volume, t in truth.items():
        mine = [r for r in vqa if r["volume_id"] == volume]
        absent = {f["finding"] for f in t["findings"] if not f["present"]}
        present = [f for f in t["findings"] if f["present"]]
        for r in mine:
            if r["question_type"] == "presence" and r["answer"] == "Yes":
                assert not any(a in r["question"] for a in absent if all(a not in p["finding"] for p in present)), r
        for f in present:
            if f["size_mm"] is not None and f["finding"] != "pericardial effusion":
                sizes = [r["answer"] for r in mine if r["question_type"] == "size" and r["anatomy"] == f["anatomy"]]
                assert any(f"{f['size_mm']:.0f} mm" in s for s in sizes), (volume, f, sizes)
        [disorders] = [r for r in mine if r["question_type"] == "disorders"]
        for f in present:
            assert f["finding"] in disorders["answer"]
    for r in vqa:
        assert r["template_id"].startswith(r["question_type"] + "-")
    assert len({r["id"] for r in vqa}) == len(vqa)


def test_radgenome_style_csvs(demo_dir, grounded, vqa):
    with open(demo_dir / "grounded_reports/grounded_reports.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["Volumename", "Anatomy", "Sentence"] and len(rows) == len(grounded)
    with open(demo_dir / "vqa/vqa.csv", newline="") as fh:
        qa = list(csv.DictReader(fh))
    assert list(qa[0]) == ["Volumename", "Anatomy", "Question", "Answer"] and len(qa) == len(vqa)


def test_inspect_counts_them(medgrain_bin, demo_dir, grounded, vqa):
    import subprocess
    r = subprocess.run([medgrain_bin, "inspect", str(demo_dir), "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    ins = json.loads(r.stdout)
    assert ins["grounded_report_rows"] == len(grounded) and ins["vqa_rows"] == len(vqa)


def test_size_answers_carry_mask_measurements(vqa, truth, demo_dir):
    checked = 0
    for volume, t in truth.items():
        for f in t["findings"]:
            if not (f["present"] and f["mask"]):
                continue
            rows = [r for r in vqa if r["volume_id"] == volume and r["question_type"] == "size"
                    and r["anatomy"] == f["anatomy"] and f"{f['size_mm']:.0f} mm" in r["answer"]]
            assert rows, (volume, f)
            r = rows[0]
            assert r["measured_mm"] is not None and (demo_dir / "synth/3d" / r["mask_ref"]).is_file()
            if r["answer"].count("mm") == 1:  # one lesion of its kind in this place: compare directly
                assert abs(r["measured_mm"] - f["size_mm"]) <= 1.8 + 1e-6, (f, r)
                assert r["qc_flags"] == []  # report and mask agree on synthetic data
            checked += 1
    assert checked >= 4


def test_grounded_reports_recipe_from_a_config(medgrain_bin, demo_dir, tmp_path, grounded, vqa):
    import subprocess
    cfg = tmp_path / "reports.toml"
    d3 = demo_dir / "synth/3d"
    cfg.write_text(f"""
recipe = "grounded-reports"
[reports]
csv = "{d3 / 'reports.csv'}"
root = "{d3}"
masks = "masks"
lesions = "lesions"
""")
    out = tmp_path / "out"
    r = subprocess.run([medgrain_bin, "build", str(cfg), "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert read_parts(out / "grounded_reports")[1] == grounded
    assert read_parts(out / "vqa")[1] == vqa
    cfg.write_text('recipe = "grounded-reports"\n')
    r = subprocess.run([medgrain_bin, "build", str(cfg), "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 2 and "[reports]" in r.stderr
