"""Classical CT locators (`medgrain locate`, and `locator = …` in a volume source) on the synthetic chest CTs,
against their ground-truth organ masks: lungs per side against the union of that side's lobe masks, bone against
the vertebrae masks, the body containing every organ; the triplet recipe's ROIs carry the locator as `origin`."""
import json
import subprocess

import nibabel as nib
import numpy as np
import pyarrow.parquet as pq
import pytest


def dice(a, b):
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


@pytest.fixture(scope="module")
def volumes(demo_dir):
    d3 = demo_dir / "synth/3d"
    vols = sorted((d3 / "volumes").glob("*.nii.gz"))[:3]
    assert vols
    return d3, vols


def locate(bin_, vol, loc, out):
    r = subprocess.run([bin_, "-q", "locate", str(vol), "--locator", loc, "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return {p.name.replace(".nii.gz", ""): np.asanyarray(nib.load(p).dataobj) > 0 for p in out.glob("*.nii.gz")}


def test_lungs_bone_and_body_against_ground_truth(medgrain_bin, volumes, tmp_path):
    d3, vols = volumes
    scores = []
    for vol in vols:
        stem = vol.name.replace(".nii.gz", "")
        organ = lambda n: np.asanyarray(nib.load(d3 / "masks" / stem / f"{n}.nii.gz").dataobj) > 0
        lungs = locate(medgrain_bin, vol, "classical:ct-lung", tmp_path / stem / "lung")
        assert set(lungs) == {"right_lung", "left_lung"}
        right = organ("lung_upper_lobe_right") | organ("lung_middle_lobe_right") | organ("lung_lower_lobe_right")
        left = organ("lung_upper_lobe_left") | organ("lung_lower_lobe_left")
        dr, dl = dice(lungs["right_lung"], right), dice(lungs["left_lung"], left)
        # the side is right: swapping would give ~0
        assert dice(lungs["right_lung"], left) < 0.05
        bone = locate(medgrain_bin, vol, "classical:ct-bone", tmp_path / stem / "bone")["bone"]
        vert = np.zeros_like(bone)
        for p in (d3 / "masks" / stem).glob("vertebrae_*.nii.gz"):
            vert |= np.asanyarray(nib.load(p).dataobj) > 0
        db = dice(bone, vert)
        body = locate(medgrain_bin, vol, "classical:ct-body", tmp_path / stem / "body")["body"]
        inside = []
        for p in (d3 / "masks" / stem).glob("*.nii.gz"):
            m = np.asanyarray(nib.load(p).dataobj) > 0
            if m.any():
                inside.append(np.logical_and(m, body).sum() / m.sum())
        assert not body[0, 0, :].any(), "the air around the patient is not body"
        scores.append((stem, round(dr, 3), round(dl, 3), round(db, 3), round(min(inside), 4)))
    print("\n(volume, Dice right lung, Dice left lung, Dice bone, least organ fraction inside body):", scores)
    for _, dr, dl, db, ins in scores:
        assert dr >= 0.9 and dl >= 0.9 and db >= 0.9 and ins >= 0.99


def test_locator_in_a_volume_source(medgrain_bin, volumes, tmp_path):
    d3, vols = volumes
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"""
recipe = "triplets"
[[source]]
name = "ct-located"
kind = "nifti"
root = "{d3}"
images = "volumes/{vols[0].name}"
locator = "classical:ct-lung"
select = "largest"
window = "lung"
[source.defaults]
modality = "CT"
[generator]
kind = "template"
""")
    out = tmp_path / "out"
    r = subprocess.run([medgrain_bin, "-q", "build", str(cfg), "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rows = pq.read_table(out / "triplets").to_pylist()
    assert len(rows) >= 1
    rois = [x for row in rows for x in row["rois"]]
    assert {x["label"] for x in rois} == {"right lung", "left lung"}
    assert all(x["origin"] == "classical:ct-lung" for x in rois)
    for x in rois:
        assert x["side"] == x["label"].split()[0], x  # the patient side of each lung, measured independently
    # the locator's masks are kept for the build (one file per volume) and used again, not recomputed: a kept file
    # whose names are changed by hand shows up in the rows of a rebuild of the same OUT
    import gzip
    import shutil
    kept = list((out / ".medgrain" / "located").glob("*/*.located.gz"))
    assert len(kept) == 1, kept
    raw = gzip.decompress(kept[0].read_bytes())
    header, bits = raw.split(b"\n", 1)
    assert b'"right lung"' in header
    kept[0].write_bytes(gzip.compress(header.replace(b'"right lung"', b'"kept right lung"') + b"\n" + bits))
    shutil.rmtree(out / ".medgrain" / "shards")
    shutil.rmtree(out / "triplets")
    r = subprocess.run([medgrain_bin, "-q", "build", str(cfg), "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    labels = {x["label"] for row in pq.read_table(out / "triplets").to_pylist() for x in row["rois"]}
    assert labels == {"kept right lung", "left lung"}, labels
    bad = cfg.read_text().replace("classical:ct-lung", "classical:ct-liver")
    cfg.write_text(bad)
    r = subprocess.run([medgrain_bin, "-q", "build", str(cfg), "--out", str(tmp_path / "o2")], capture_output=True,
                       text=True)
    assert r.returncode == 2 and "locator" in r.stderr


def test_rules_on_a_real_ct_slice_equal_scipy(medgrain_bin, tmp_path):
    """pydicom's CT_small.dcm (a real 128×128 chest CT slice: vertebra, aorta, lung edges; nobody here wrote it) as
    a volume of depth 1: `ct-body` and `ct-bone` must equal the documented rules computed with scipy on pydicom's
    HU — threshold, holes filled (4-connectivity from the border), the largest component; bone: seeds > 250 HU
    inside the body grown through connected voxels > 100 HU, holes filled, components of ≥ 1 cm³ (0.661468² mm² ×
    5 mm slices)."""
    import math

    import pydicom
    from PIL import Image
    from pydicom.data import get_testdata_file
    from scipy import ndimage

    path = get_testdata_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    filled = ndimage.binary_fill_holes(hu > -500)
    lab, n = ndimage.label(filled)
    sizes = ndimage.sum_labels(np.ones_like(lab), lab, index=range(1, n + 1))
    body = lab == 1 + int(np.argmax(sizes))
    voxel = float(ds.PixelSpacing[0]) * float(ds.PixelSpacing[1]) * float(ds.SliceThickness)
    min_voxels = math.ceil(1000 / voxel)
    # cortical seeds > 250 HU grown through connected voxels > 100 HU, holes filled, components ≥ 1 cm³
    glab, _ = ndimage.label((hu > 100) & body)
    seeds = np.unique(glab[(hu > 250) & body])
    grown = ndimage.binary_fill_holes(np.isin(glab, seeds[seeds > 0]))
    blab, bn = ndimage.label(grown)
    bsizes = ndimage.sum_labels(np.ones_like(blab), blab, index=range(1, bn + 1))
    bone = np.isin(blab, [i + 1 for i, s in enumerate(bsizes) if s >= min_voxels])
    assert 0.5 < body.mean() < 1 and bone.sum() > 500, "the slice has a body and a vertebra"
    for loc, ref in [("classical:ct-body", body), ("classical:ct-bone", bone)]:
        out = tmp_path / loc.split("-")[-1]
        r = subprocess.run([medgrain_bin, "-q", "locate", path, "--locator", loc, "--out", str(out)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        (png,) = out.glob("*.png")
        ours = np.asarray(Image.open(png)) > 0
        assert ours.shape == ref.shape
        assert np.array_equal(ours, ref), f"{loc}: {(ours != ref).sum()} pixels differ"
    # the lungs of this cropped slice touch the image edge: not inside the body, so no lung is claimed
    r = subprocess.run([medgrain_bin, "-q", "locate", path, "--locator", "classical:ct-lung", "--out",
                        str(tmp_path / "lung")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert not list((tmp_path / "lung").glob("*.png")), r.stdout
