"""The 3D synthetic corpus read by nibabel: geometry, HU realism, masks, lesions against ground truth, reports."""
import csv
import json

import nibabel as nib
import numpy as np
import pytest


@pytest.fixture(scope="module")
def d3(demo_dir):
    return demo_dir / "synth/3d"


@pytest.fixture(scope="module")
def truth(d3):
    return [json.loads(l) for l in (d3 / "ground_truth.jsonl").read_text().splitlines()]


def test_volumes_have_geometry_and_realistic_hu(d3, truth):
    assert len(truth) >= 8
    for t in truth:
        img = nib.load(d3 / "volumes" / t["volume"])
        assert img.get_data_dtype() == np.int16
        assert img.header.get_zooms() == pytest.approx((1.8, 1.8, 4.0))
        assert nib.aff2axcodes(img.affine) == ("L", "P", "S")
        hu = np.asarray(img.dataobj)
        assert hu.shape == (192, 192, 80)
        name = t["volume"].removesuffix(".nii.gz")
        masks = d3 / "masks" / name
        def median_in(cls):
            m = np.asarray(nib.load(masks / f"{cls}.nii.gz").dataobj).astype(bool)
            assert m.any(), cls
            return float(np.median(hu[m]))
        assert hu[0, 0, 0] == pytest.approx(-1000, abs=60)  # air at the corner
        assert median_in("lung_upper_lobe_left") == pytest.approx(-850, abs=40)
        assert 20 <= median_in("liver") <= 90
        assert median_in("vertebrae_T5") > 400
        assert 20 <= median_in("heart") <= 60


def test_masks_are_binary_and_disjoint(d3, truth):
    name = truth[0]["volume"].removesuffix(".nii.gz")
    total = None
    files = sorted((d3 / "masks" / name).glob("*.nii.gz"))
    for f in files:
        m = np.asarray(nib.load(f).dataobj)
        assert m.dtype == np.uint8 and set(np.unique(m)) <= {0, 1}, f.name
        total = m.astype(int) if total is None else total + m
    assert total.max() == 1, "organ masks must not overlap"
    names = {f.name.removesuffix(".nii.gz") for f in files}
    for needed in ["lung_upper_lobe_left", "lung_lower_lobe_left", "lung_upper_lobe_right",
                   "lung_middle_lobe_right", "lung_lower_lobe_right", "heart", "aorta", "trachea", "liver"]:
        assert needed in names


LOBE_FILE = {
    "lung/right lung/right lung upper lobe": "lung_upper_lobe_right",
    "lung/right lung/right lung middle lobe": "lung_middle_lobe_right",
    "lung/right lung/right lung lower lobe": "lung_lower_lobe_right",
    "lung/left lung/left lung upper lobe": "lung_upper_lobe_left",
    "lung/left lung/left lung lower lobe": "lung_lower_lobe_left",
    "abdomen/liver": "liver",
}


def test_lesions_match_their_ground_truth(d3, truth):
    lesions = 0
    for t in truth:
        name = t["volume"].removesuffix(".nii.gz")
        for f in t["findings"]:
            if not f["present"] or not f["mask"]:
                continue
            lesions += 1
            img = nib.load(d3 / f["mask"])
            m = np.asarray(img.dataobj).astype(bool)
            zooms = img.header.get_zooms()
            voxel_mm3 = float(np.prod(zooms))
            r = f["size_mm"] / 2
            if f["size_mm"] >= 15:  # smaller spheres are too coarse on a 1.8 x 1.8 x 4 mm grid to compare volumes
                assert m.sum() * voxel_mm3 == pytest.approx(4 / 3 * np.pi * r**3, rel=0.25)
            ijk = np.argwhere(m).mean(axis=0)
            centre = img.affine @ np.append(ijk, 1.0)
            assert np.allclose(centre[:3], f["center_ras"], atol=max(zooms)), f
            # The lesion lies in the organ/lobe its anatomy names (the organ mask keeps lesion voxels).
            organ = np.asarray(nib.load(d3 / "masks" / name / f"{LOBE_FILE[f['anatomy']]}.nii.gz").dataobj).astype(bool)
            assert (organ[m]).mean() > 0.95, (t["volume"], f)
            # Extent along each world axis matches the diameter within one voxel.
            for axis in range(3):
                idx = np.argwhere(m)[:, axis]
                extent = (idx.max() - idx.min() + 1) * zooms[axis]
                assert abs(extent - f["size_mm"]) <= zooms[axis] + 1e-6, (f, axis, extent)
            side = f["side"]
            if side:
                # RAS: patient right is +x.
                assert (centre[0] > 0) == (side == "right"), f
    assert lesions >= 4


def test_reports_state_findings_and_negations(d3, truth):
    with open(d3 / "reports.csv", newline="") as fh:
        reports = {r["VolumeName"]: r for r in csv.DictReader(fh)}
    assert set(reports) == {t["volume"] for t in truth}
    for t in truth:
        text = reports[t["volume"]]["Findings_EN"].lower()
        assert reports[t["volume"]]["Impressions_EN"].strip()
        for f in t["findings"]:
            if f["present"] and f["size_mm"] and f["finding"] in ("nodule", "mass", "hypodense lesion"):
                mm = f["size_mm"]
                spoken = f"{mm / 10:.1f} cm" if mm >= 30 else f"{round(mm)} mm"
                assert spoken in text, (f, text)
        negated = {f["finding"] for f in t["findings"] if not f["present"]}
        if "pericardial effusion" in negated:
            assert "pericardial effusion-thickening was not observed" in text
        if "pleural effusion" in negated:
            assert "no pleural effusion was observed" in text


def test_volume_shape_and_organ_masks_options(medgrain_bin, tmp_path):
    """`synth --volume-shape --organ-masks` (the real-size timing corpus of #18): the grid, the field of view kept,
    TotalSegmentator's class names (checked against its own class table in ../shared/data/totalseg), binary uint8
    masks; then the grounded-reports recipe's organ volumes and HU statistics against numpy on the same files."""
    import subprocess
    from pathlib import Path
    classes_txt = Path(__file__).resolve().parents[2].parent / "shared/data/totalseg/classes.txt"
    if not classes_txt.is_file():
        pytest.fail(f"{classes_txt} is missing (see ../shared/data/README.md)")
    classes = {l.split()[1] for l in classes_txt.read_text().splitlines() if l.strip()}
    out = tmp_path / "s"
    r = subprocess.run([medgrain_bin, "-q", "synth", "--out", str(out), "--images-per-kind", "1", "--volumes", "1",
                        "--volume-shape", "96,80,40", "--organ-masks", "117"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    d3 = out / "3d"
    img = nib.load(d3 / "volumes/synth_ct_000.nii.gz")
    assert img.shape == (96, 80, 40)
    assert img.header.get_zooms() == pytest.approx((192 * 1.8 / 96, 192 * 1.8 / 80, 80 * 4.0 / 40))
    masks = sorted((d3 / "masks/synth_ct_000").glob("*.nii.gz"))
    names = [m.name.removesuffix(".nii.gz") for m in masks]
    assert len(masks) == 117 and set(names) <= classes, set(names) - classes
    hu = np.asarray(img.dataobj).astype(np.float64)
    for bad in (["--volume-shape", "96,80"], ["--volume-shape", "8,8,8"], ["--volume-shape", "a,b,c"]):
        r = subprocess.run([medgrain_bin, "synth", "--out", str(tmp_path / "x"), *bad], capture_output=True, text=True)
        assert r.returncode == 2 and "volume-shape" in r.stderr, (bad, r.stderr)
    (tmp_path / "rep.toml").write_text(f"""recipe = "grounded-reports"
[reports]
csv = "{d3 / 'reports.csv'}"
root = "{d3}"
masks = "masks"
lesions = "lesions"
volumes = "volumes"
""")
    r = subprocess.run([medgrain_bin, "-q", "build", str(tmp_path / "rep.toml"), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(l) for f in sorted((tmp_path / "o/structured_findings").glob("*.jsonl"))
            for l in f.read_text().splitlines()]
    organs = {o["class"]: o for o in rows[0]["organs"]}
    assert sorted(organs) == sorted(names)
    voxel_ml = float(np.prod(img.header.get_zooms())) / 1000
    for m, name in zip(masks, names):
        mask = np.asarray(nib.load(m).dataobj)
        assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}, name
        sel = hu[mask > 0]
        o = organs[name]
        assert o["volume_ml"] == pytest.approx(len(sel) * voxel_ml, rel=1e-6), name  # zooms are float32
        if len(sel):
            assert o["mean_hu"] == pytest.approx(sel.mean(), rel=1e-9, abs=1e-9), name
            assert o["std_hu"] == pytest.approx(sel.std(), rel=1e-6, abs=1e-6), name
