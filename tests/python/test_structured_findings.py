"""RadGPT-style structured findings of the grounded-reports recipe: organ and lesion figures against nibabel/numpy
on the same masks, lesion sizes and places against the synthetic ground truth, report/mask contradictions, and
shard-level resume."""
import csv
import json
import subprocess

import nibabel as nib
import numpy as np
import pytest


def load_findings(out):
    rows = []
    for p in sorted((out / "structured_findings").glob("part-*.jsonl")):
        rows += [json.loads(l) for l in p.read_text().splitlines()]
    return {r["volume_id"]: r for r in rows}


@pytest.fixture(scope="module")
def findings(demo_dir):
    return load_findings(demo_dir)


@pytest.fixture(scope="module")
def truth(demo_dir):
    return {json.loads(l)["volume"]: json.loads(l)
            for l in (demo_dir / "synth/3d/ground_truth.jsonl").read_text().splitlines()}


def test_organ_volume_and_hu_match_numpy(findings, demo_dir):
    d3 = demo_dir / "synth/3d"
    checked = 0
    for vol, rec in list(findings.items())[:3]:
        ct = nib.load(d3 / "volumes" / vol)
        hu = np.asarray(ct.dataobj, dtype=np.float64) * (ct.dataobj.slope or 1) + (ct.dataobj.inter or 0)
        voxel_ml = abs(np.linalg.det(ct.affine[:3, :3])) / 1000
        stem = vol.removesuffix(".nii.gz")
        for organ in rec["organs"]:
            mask = np.asarray(nib.load(d3 / "masks" / stem / f"{organ['class']}.nii.gz").dataobj) > 0
            assert organ["volume_ml"] == pytest.approx(mask.sum() * voxel_ml, rel=1e-9)
            assert organ["mean_hu"] == pytest.approx(hu[mask].mean(), abs=1e-6)
            assert organ["std_hu"] == pytest.approx(hu[mask].std(), abs=1e-4)
            checked += 1
    assert checked >= 30


def test_every_synthetic_lesion_is_measured_placed_and_reported(findings, truth):
    n = 0
    for vol, t in truth.items():
        lesions = {l["mask_ref"]: l for o in findings[vol]["organs"] for l in o["lesions"]}
        for f in t["findings"]:
            if not (f["present"] and f["mask"]):
                continue
            got = lesions[f["mask"]]
            assert got["anatomy"] == f["anatomy"], (vol, f, got)
            assert got["finding"] == f["finding"]
            # within one voxel of the true diameter (in-plane spacing 1.8 mm)
            assert abs(got["measurements"]["long_axis_mm"] - f["size_mm"]) <= 1.8 + 1e-6, (f, got)
            assert got["reported"] == "present"
            n += 1
    assert n >= 10
    # synthetic reports agree with their masks: no contradiction anywhere
    assert all(r["qc"] == {"passed": True, "flags": []} for r in findings.values()), \
        {v: r["qc"] for v, r in findings.items() if r["qc"]["flags"]}
    assert all(r["summary"] for r in findings.values())


def run_recipe(bin_, cfg, out):
    r = subprocess.run([bin_, "build", str(cfg), "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


def write_config(tmp_path, d3, csv_path, shard=3):
    cfg = tmp_path / "reports.toml"
    cfg.write_text(f"""
recipe = "grounded-reports"
[reports]
csv = "{csv_path}"
root = "{d3}"
lesions = "lesions"
volumes = "volumes"
shard_volumes = {shard}
""")
    return cfg


def test_contradictions_between_report_and_masks_are_flagged(medgrain_bin, demo_dir, truth, tmp_path):
    d3 = demo_dir / "synth/3d"
    rows = list(csv.DictReader(open(d3 / "reports.csv")))
    # Pick a volume with a masked nodule on a known side; flip the side in its report, and drop every sentence
    # about its liver lesion.
    vol, nod = next((v, f) for v, t in truth.items() for f in t["findings"]
                    if f["present"] and f["mask"] and f["finding"] == "nodule" and f["side"])
    other = "left" if nod["side"] == "right" else "right"
    for r in rows:
        if r["VolumeName"] == vol:
            r["Findings_EN"] = r["Findings_EN"].replace(nod["side"], "@@").replace(other, nod["side"]).replace("@@", other)
            r["Impressions_EN"] = r["Impressions_EN"].replace(nod["side"], "@@").replace(other, nod["side"]).replace("@@", other)
            r["Findings_EN"] = " ".join(s for s in r["Findings_EN"].split(". ") if "hypodense" not in s.lower())
            r["Impressions_EN"] = " ".join(s for s in r["Impressions_EN"].split(". ") if "hypodense" not in s.lower())
    bad = tmp_path / "reports.csv"
    with open(bad, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    out = tmp_path / "out"
    run_recipe(medgrain_bin, write_config(tmp_path, d3, bad), out)
    got = load_findings(out)
    flags = got[vol]["qc"]["flags"]
    assert not got[vol]["qc"]["passed"]
    assert any(f.startswith("laterality_mismatch:nodule@") for f in flags), flags
    has_liver_lesion = any(f["present"] and f["finding"] == "hypodense lesion" for f in truth[vol]["findings"])
    assert has_liver_lesion == any(f == "unreported_lesion:hypodense lesion@liver" for f in flags), flags
    # the other volumes are untouched
    assert all(r["qc"]["passed"] for v, r in got.items() if v != vol)


def test_shards_resume_and_only_changed_shards_are_redone(medgrain_bin, demo_dir, tmp_path):
    d3 = demo_dir / "synth/3d"
    src = d3 / "reports.csv"
    out = tmp_path / "out"
    cfg = write_config(tmp_path, d3, src, shard=3)
    first = run_recipe(medgrain_bin, cfg, out)
    assert "shards 3 (0 resumed)" in first, first
    before = {p.name: p.read_bytes() for p in sorted((out / "vqa").glob("part-*.parquet"))}
    second = run_recipe(medgrain_bin, cfg, out)
    assert "shards 3 (3 resumed)" in second, second
    # change the last report: only the last shard is redone, the output equals a fresh run
    rows = list(csv.DictReader(open(src)))
    rows[-1]["Findings_EN"] += " A 7 mm nodule is seen in the right upper lobe."
    changed = tmp_path / "changed.csv"
    with open(changed, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    cfg = write_config(tmp_path, d3, changed, shard=3)
    third = run_recipe(medgrain_bin, cfg, out)
    assert "shards 3 (2 resumed)" in third, third
    after = {p.name: p.read_bytes() for p in sorted((out / "vqa").glob("part-*.parquet"))}
    assert after["part-00000.parquet"] == before["part-00000.parquet"]
    assert after["part-00002.parquet"] != before["part-00002.parquet"]
    fresh = tmp_path / "fresh"
    run_recipe(medgrain_bin, cfg, fresh)
    for name in ["grounded_reports/grounded_reports.csv", "vqa/vqa.csv"]:
        assert (out / name).read_bytes() == (fresh / name).read_bytes()
    assert load_findings(out) == load_findings(fresh)
