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


def _match(ours_label, lab, props_by_label):
    """Pairs our components with scikit-image's regions of the same component labelling (by bbox)."""
    out = []
    for c in ours_label["components"]:
        lo = tuple(b[0] for b in c["bbox"])
        hi = tuple(b[1] for b in c["bbox"])
        cands = [p for p in props_by_label if tuple(p.bbox[:len(lo)]) == lo and tuple(p.bbox[len(lo):]) == hi
                 and p.area == c["voxels"]]
        assert len(cands) >= 1, (ours_label["label"], c["bbox"])
        out.append((c, cands[0]))
    return out


def test_shape_descriptors_equal_scikit_image_regionprops(medgrain_bin, tmp_path):
    """2D: axial slices of the AAL atlas and scikit-image's coins image (thresholded, labelled), saved as 16-bit PNG
    label maps; 3D: the AAL atlas. Every component's regionprops figures against scikit-image 0.26 in the same run."""
    from skimage import data
    from skimage.measure import label as sk_label, regionprops
    aal = np.asanyarray(nib.load(atlas("aal.nii.gz")).dataobj).astype(np.int64)
    coins = data.coins()
    coin_labels = sk_label(coins > 110, connectivity=2)
    maps = {"aal_z40": aal[:, :, 40].T[::-1].copy(), "aal_z55": aal[:, :, 55].T[::-1].copy(), "coins": coin_labels}
    worst = {}
    n2 = 0
    for name, m in maps.items():
        p = tmp_path / f"{name}.png"
        Image.fromarray(m.astype(np.uint16)).save(p)
        ours = rois(medgrain_bin, p, 2)
        for l in ours["labels"]:
            comp_lab = sk_label(m == l["label"], connectivity=2)
            props = regionprops(comp_lab)
            for c, ref in _match(l, comp_lab, props):
                s = c["shape"]
                for ours_key, ref_val in [("area", ref.area), ("perimeter", ref.perimeter),
                                          ("eccentricity", ref.eccentricity),
                                          ("major_axis_length", ref.axis_major_length),
                                          ("minor_axis_length", ref.axis_minor_length),
                                          ("extent", ref.extent), ("equivalent_diameter", ref.equivalent_diameter_area),
                                          ("convex_area", ref.area_convex), ("solidity", ref.solidity)]:
                    d = abs(s[ours_key] - float(ref_val))
                    worst[ours_key] = max(worst.get(ours_key, 0.0), d / max(1.0, abs(float(ref_val))))
                if ref.axis_minor_length > 0 and ref.eccentricity < 0.999:
                    # orientation is defined modulo π for a symmetric ellipse
                    d = abs(s["orientation"] - ref.orientation)
                    worst["orientation"] = max(worst.get("orientation", 0.0), min(d, abs(d - np.pi)))
                n2 += 1
    print(f"\n2D: {n2} components; worst relative difference per figure: {worst}")
    for k in ["area", "perimeter", "extent", "equivalent_diameter", "major_axis_length", "minor_axis_length",
              "eccentricity", "orientation"]:
        assert worst[k] < 1e-9, (k, worst[k])
    # convex hull: same definition (edge midpoints' hull, centres inside or on it); equal on every component here
    assert worst["convex_area"] < 1e-9 and worst["solidity"] < 1e-9, worst
    assert n2 >= 100
    # 3D axis lengths, AAL
    ours = rois(medgrain_bin, atlas("aal.nii.gz"), 3)
    w3, n3 = 0.0, 0
    for l in ours["labels"][:40]:
        comp_lab = sk_label(aal == l["label"], connectivity=3)
        for c, ref in _match(l, comp_lab, regionprops(comp_lab)):
            if c["voxels"] < 5:
                continue
            for k, v in [("major_axis_length", ref.axis_major_length), ("minor_axis_length", ref.axis_minor_length)]:
                w3 = max(w3, abs(c["shape"][k] - v) / max(1.0, v))
            n3 += 1
    print(f"3D: {n3} components, worst relative axis-length difference {w3:.2e}")
    assert n3 >= 40 and w3 < 1e-6
