"""`medgrain rois` against scipy.ndimage on label maps nobody here wrote (Debian mricron-data atlases: AAL with
117 labels, AICHA, JHU white matter, Harvard-Oxford) and on the synthetic masks: per label, voxel count, bounding
box, number of components, component sizes and centroids, for connectivity 1 and full."""
import json
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

ATLASES = Path("/usr/share/mricron/templates")


def atlas(name):
    p = ATLASES / name
    if not p.is_file():
        pytest.fail(f"{p} is missing: install Debian's mricron-data (scripts/test.sh does)")
    return p


def rois(medgrain_bin, path, k=None):
    args = [medgrain_bin, "rois", str(path), "--json"] + (["--connectivity", str(k)] if k else [])
    r = subprocess.run(args, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


def reference(data, k):
    """Per label: (voxels, bbox, components as (size, bbox, centroid)), computed by scipy on the label's box."""
    structure = ndimage.generate_binary_structure(data.ndim, k)
    data = np.asarray(data).astype(np.int64)
    out = {}
    for label, box in enumerate(ndimage.find_objects(data), start=1):
        if box is None:
            continue
        mask = data[box] == label
        lo = [sl.start for sl in box]
        lab, n = ndimage.label(mask, structure=structure)
        idx = np.arange(1, n + 1)
        sizes = ndimage.sum_labels(mask, lab, idx).astype(int)
        objs = ndimage.find_objects(lab)
        coms = ndimage.center_of_mass(mask, lab, idx)
        comps = [(int(sz), [[sl.start + o, sl.stop + o] for sl, o in zip(ob, lo)], [c + o for c, o in zip(com, lo)])
                 for sz, ob, com in zip(sizes, objs, coms)]
        out[label] = (int(mask.sum()), [[sl.start, sl.stop] for sl in box], comps)
    return out


def key(c):
    return (-c[0], c[1], [round(v, 6) for v in c[2]])


def compare(ours, ref):
    assert [l["label"] for l in ours["labels"]] == sorted(ref), "labels ascending, all present"
    for l in ours["labels"]:
        voxels, bbox, comps = ref[l["label"]]
        assert l["voxels"] == voxels and l["bbox"] == bbox, l["label"]
        mine = [(c["voxels"], c["bbox"], c["centroid"]) for c in l["components"]]
        sizes = [m[0] for m in mine]
        assert sizes == sorted(sizes, reverse=True), "components largest first"
        assert len(mine) == len(comps), l["label"]
        for a, b in zip(sorted(mine, key=key), sorted(comps, key=key)):
            assert a[0] == b[0] and a[1] == b[1], (l["label"], a, b)
            assert np.allclose(a[2], b[2], atol=1e-9), (l["label"], a, b)


@pytest.mark.parametrize("name,ks", [("aal.nii.gz", [1, 3]), ("AICHAmc.nii.gz", [1, 3]),
                                     ("JHU-WhiteMatter-labels-1mm.nii.gz", [3]),
                                     ("HarvardOxford-cort-maxprob-thr0-1mm.nii.gz", [1])])
def test_atlases_match_scipy(medgrain_bin, name, ks):
    path = atlas(name)
    data = np.asanyarray(nib.load(path).dataobj)
    for k in ks:
        ours = rois(medgrain_bin, path, k)
        assert ours["shape"] == list(data.shape) and ours["connectivity"] == k
        compare(ours, reference(data, k))


def test_atlas_names_and_physical_figures(medgrain_bin):
    path = atlas("aal.nii.gz")
    img = nib.load(path)
    ours = rois(medgrain_bin, path)
    assert len(ours["labels"]) == 116
    first = ours["labels"][0]
    assert first["name"] == "Precentral_L"
    voxel = float(np.prod(img.header.get_zooms()[:3]))
    assert first["volume_mm3"] == pytest.approx(first["voxels"] * voxel)
    c = first["components"][0]
    ras = img.affine @ np.append(c["centroid"], 1.0)
    assert np.allclose(c["centroid_ras"], ras[:3])
    assert c["centroid_ras"][0] < 0, "a left-hemisphere label has a negative RAS x"


def test_synthetic_masks_match_scipy(medgrain_bin, demo_dir):
    for path in sorted((demo_dir / "synth/3d/masks/synth_ct_000").glob("lung_*.nii.gz"))[:2]:
        data = np.asanyarray(nib.load(path).dataobj)
        compare(rois(medgrain_bin, path, 1), reference(data, 1))
    for path in sorted((demo_dir / "synth/2d/masks").glob("*.png"))[:12]:
        data = np.asarray(Image.open(path))
        ours = rois(medgrain_bin, path)
        assert ours["connectivity"] == 2 and ours["spacing_mm"] is None
        compare(ours, reference(data, 2))


def test_bad_connectivity_and_bad_files(medgrain_bin, tmp_path):
    r = subprocess.run([medgrain_bin, "rois", str(atlas("aal.nii.gz")), "--json", "--connectivity", "4"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "connectivity" in r.stderr
    bad = tmp_path / "float.nii"
    img = nib.Nifti1Image(np.full((3, 3, 3), 0.5, dtype=np.float32), np.eye(4))
    nib.save(img, bad)
    r = subprocess.run([medgrain_bin, "rois", str(bad), "--json"], capture_output=True, text=True)
    assert r.returncode == 1 and "not a label" in json.loads(r.stdout)["error"]


def test_lesion_measurements_match_synthetic_ground_truth(medgrain_bin, demo_dir):
    d3 = demo_dir / "synth/3d"
    checked = 0
    for line in (d3 / "ground_truth.jsonl").read_text().splitlines():
        t = json.loads(line)
        volume = d3 / "volumes" / t["volume"]
        for f in t["findings"]:
            if not (f["present"] and f["mask"]):
                continue
            r = subprocess.run([medgrain_bin, "rois", str(d3 / f["mask"]), "--json", "--image", str(volume)],
                               capture_output=True, text=True)
            assert r.returncode == 0, r.stdout + r.stderr
            [label] = json.loads(r.stdout)["labels"]
            [comp] = label["components"]
            m = comp["measurements"]
            pixel = 1.8
            assert abs(m["long_axis_mm"] - f["size_mm"]) <= pixel + 1e-6, (f, m)
            assert abs(m["short_axis_mm"] - f["size_mm"]) <= pixel + 1e-6, (f, m)
            assert np.allclose(comp["centroid_ras"], f["center_ras"], atol=pixel), (f, comp)
            expected = "hyperattenuating" if f["anatomy"].startswith("lung") else "hypoattenuating"
            assert m["attenuation"] == expected, (f, m)
            assert -20 <= m["mean_hu"] <= 70
            checked += 1
    assert checked >= 4
