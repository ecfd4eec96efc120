"""A real CT nobody here wrote: TotalSegmentator's example abdominal CT (122×101×30 at 3 mm, the patient not centred in
the field of view) and TotalSegmentator's own multilabel segmentation of it (../shared/data/totalseg). Checked against
numpy/nibabel on the same files:
- the triplet recipe (nifti source, `mask_labels`): every structure's row sits on its largest axial cross-section and
  its ROIs cover exactly TotalSegmentator's pixels there; every `_left`/`_right` structure gets that patient side;
- the classical locators against TotalSegmentator: organs inside `ct-body`, bone inside `ct-bone`, lungs' Dice;
- the grounded-reports recipe on per-class masks split from the multilabel file: organ volumes and HU equal numpy's.
The figures are printed (pytest -s) and reported in BENCHMARKS.md."""
import csv
import json
import os
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pyarrow.parquet as pq
import pytest
from pycocotools import mask as M

DATA = Path(__file__).resolve().parents[2].parent / "shared/data/totalseg"
BONE_PREFIXES = ("vertebrae_", "rib_", "sacrum", "hip_", "femur_", "humerus_", "scapula_", "clavicula_", "sternum",
                 "skull")
LUNG_LOBES = ("lung_upper_lobe_left", "lung_lower_lobe_left", "lung_upper_lobe_right", "lung_middle_lobe_right",
              "lung_lower_lobe_right")


@pytest.fixture(scope="module")
def ts():
    if not (DATA / "example_ct_sm.nii.gz").is_file():
        pytest.fail(f"the real CT is missing from {DATA} (see ../shared/data/README.md)")
    ct = nib.load(DATA / "example_ct_sm.nii.gz")
    seg = nib.load(DATA / "example_seg.nii.gz")
    hu = np.asarray(ct.dataobj, dtype=np.float64) * (ct.dataobj.slope or 1) + (ct.dataobj.inter or 0)
    labels = np.asarray(seg.dataobj).astype(np.int32)
    classes = {int(v): n for v, n in (l.split() for l in (DATA / "classes.txt").read_text().splitlines() if l.strip())}
    assert nib.aff2axcodes(ct.affine) == ("R", "A", "S")
    return ct, hu, labels, classes


def run(args):
    r = subprocess.run(args, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r


def test_largest_cross_sections_and_patient_sides(medgrain_bin, ts, tmp_path):
    ct, hu, labels, classes = ts
    (tmp_path / "volumes").mkdir()
    (tmp_path / "ml").mkdir()
    (tmp_path / "volumes/example.nii.gz").symlink_to(DATA / "example_ct_sm.nii.gz")
    (tmp_path / "ml/example.nii.gz").symlink_to(DATA / "example_seg.nii.gz")
    (tmp_path / "classes.txt").write_text((DATA / "classes.txt").read_text())
    cfg = tmp_path / "ts.toml"
    cfg.write_text(f"""
recipe = "triplets"
[generator]
kind = "template"
[[source]]
name = "totalseg"
kind = "nifti"
root = "{tmp_path}"
images = "volumes/*.nii.gz"
masks = "ml/{{stem}}.nii.gz"
mask_labels = "classes.txt"
select = "largest"
window = "abdomen"
[source.defaults]
modality = "CT"
organ = "abdomen"
[source.rois]
min_area_px = 1  # TotalSegmentator gives lung_middle_lobe_right one voxel here: every structure must show
""")
    out = tmp_path / "out"
    run([medgrain_bin, "-q", "build", str(cfg), "--out", str(out)])
    rows = pq.read_table(out / "triplets").to_pylist()
    by_slice = {r["slice"]["index"]: r for r in rows}
    present = [v for v in np.unique(labels) if v > 0]
    sided = checked = 0
    for v in present:
        name = classes[int(v)]
        per_slice = (labels == v).sum(axis=(0, 1))
        best = per_slice.max()
        # the structure's row is on a slice where its cross-section is largest (ties: any of them)
        cands = [k for k, r in by_slice.items() if any(x["label"] == name for x in r["rois"])]
        assert cands, f"{name}: no row"
        k = max(cands, key=lambda k: per_slice[k])
        assert per_slice[k] == best, (name, k, per_slice[k], best)
        # RAS storage shown radiologically: rows run anterior → posterior (j reversed), columns patient right → left
        # (i reversed)
        want = (labels[:, :, k] == v).T[::-1, ::-1]
        got = np.zeros_like(want)
        rois = [x for x in by_slice[k]["rois"] if x["label"] == name]
        for x in rois:
            got |= M.decode({"size": x["mask_rle"]["size"], "counts": x["mask_rle"]["counts"]}).astype(bool)
        assert np.array_equal(got, want), name
        checked += 1
        parts = name.split("_")
        if "left" in parts or "right" in parts:  # kidney_left, rib_right_9, …
            side = "left" if "left" in parts else "right"
            for x in rois:
                assert x["side_frame"] == "patient"
                assert x["side"] == side, (name, x["side"], x["centroid_xy"])
            sided += 1
    print(f"\nreal CT: {checked} structures on their largest cross-section, {sided} sided structures all correct")
    assert checked == len(present) and sided >= 20


def locate(medgrain_bin, loc, out):
    run([medgrain_bin, "-q", "locate", str(DATA / "example_ct_sm.nii.gz"), "--locator", loc, "--out", str(out)])
    return {p.name.removesuffix(".nii.gz"): np.asarray(nib.load(p).dataobj) > 0 for p in out.glob("*.nii.gz")}


def test_classical_locators_against_totalsegmentator(medgrain_bin, ts, tmp_path):
    ct, hu, labels, classes = ts
    body = locate(medgrain_bin, "classical:ct-body", tmp_path / "body")["body"]
    bone = locate(medgrain_bin, "classical:ct-bone", tmp_path / "bone")["bone"]
    lungs = locate(medgrain_bin, "classical:ct-lung", tmp_path / "lung")
    organs = labels > 0
    ts_bone = np.isin(labels, [v for v, n in classes.items() if n.startswith(BONE_PREFIXES)])
    ts_lung = np.isin(labels, [v for v, n in classes.items() if n in LUNG_LOBES])
    body_frac = (organs & body).sum() / organs.sum()
    bone_frac = (ts_bone & bone).sum() / ts_bone.sum()
    bone_precision = (ts_bone & bone).sum() / bone.sum()
    ours = np.zeros_like(body)
    for m in lungs.values():
        ours |= m
    dice = 2 * (ours & ts_lung).sum() / (ours.sum() + ts_lung.sum())
    print(f"\nreal CT: organ voxels inside ct-body {body_frac:.4f}; TotalSegmentator bone inside ct-bone "
          f"{bone_frac:.4f} (ct-bone voxels that are TotalSegmentator bone: {bone_precision:.4f}); "
          f"lung Dice against the lobes {dice:.4f} ({sorted(lungs)})")
    assert body_frac >= 0.99
    assert bone_frac >= 0.9
    assert ts_lung.sum() > 0 and dice >= 0.9
    # each lung on its side of the patient: the right lung's voxels are TotalSegmentator's right lobes
    right = np.isin(labels, [v for v, n in classes.items() if n in LUNG_LOBES and n.endswith("_right")])
    if "right_lung" in lungs:
        assert (lungs["right_lung"] & right).sum() / lungs["right_lung"].sum() > 0.9


def test_grounded_reports_on_the_real_ct_equal_numpy(medgrain_bin, ts, tmp_path):
    ct, hu, labels, classes = ts
    root = tmp_path / "root"
    (root / "volumes").mkdir(parents=True)
    (root / "volumes/example_ct_sm.nii.gz").symlink_to(DATA / "example_ct_sm.nii.gz")
    masks = root / "masks/example_ct_sm"
    masks.mkdir(parents=True)
    present = [int(v) for v in np.unique(labels) if v > 0]
    for v in present:
        nib.save(nib.Nifti1Image((labels == v).astype(np.uint8), ct.affine), masks / f"{classes[v]}.nii.gz")
    report = root / "reports.csv"
    with open(report, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["VolumeName", "Findings_EN", "Impressions_EN"])
        w.writerow(["example_ct_sm.nii.gz",
                    "The liver and spleen are normal in size. No pleural effusion. Both kidneys are unremarkable.",
                    "No acute abnormality."])
    cfg = tmp_path / "r.toml"
    cfg.write_text(f"""
recipe = "grounded-reports"
[reports]
csv = "{report}"
root = "{root}"
masks = "masks"
volumes = "volumes"
""")
    out = tmp_path / "out"
    run([medgrain_bin, "-q", "build", str(cfg), "--out", str(out)])
    recs = [json.loads(l) for p in sorted((out / "structured_findings").glob("part-*.jsonl"))
            for l in p.read_text().splitlines()]
    assert len(recs) == 1
    voxel_ml = abs(np.linalg.det(ct.affine[:3, :3])) / 1000
    seen = 0
    for organ in recs[0]["organs"]:
        v = next(k for k, n in classes.items() if n == organ["class"])
        m = labels == v
        assert organ["volume_ml"] == pytest.approx(m.sum() * voxel_ml, rel=1e-9), organ["class"]
        assert organ["mean_hu"] == pytest.approx(hu[m].mean(), abs=1e-6), organ["class"]
        assert organ["std_hu"] == pytest.approx(hu[m].std(), abs=1e-4), organ["class"]
        seen += 1
    print(f"\nreal CT: {seen} organs' volume and HU equal numpy's")
    # every class that has a node in the anatomy is measured (TotalSegmentator's v2 names)
    assert seen >= 30, [o["class"] for o in recs[0]["organs"]]
