"""Organ context of triplet ROIs (`organs = …` in a volume source): each synthetic lesion's ROI, on its largest
axial slice, names the organ the ground truth places it in (lobe or liver), with relation "inside" or "enclosed"
(the synthetic organ masks exclude the lesion's own voxels), and the description says so; its patient-frame
position (side, anterior/posterior, superior/inferior of the volume's centre) agrees with the truth centre."""
import json
import subprocess

import nibabel as nib
import numpy as np
import pyarrow.parquet as pq


def words(s):
    return set(s.replace("_", " ").split())


def test_lesions_get_the_organ_of_the_ground_truth(medgrain_bin, demo_dir, tmp_path):
    d3 = demo_dir / "synth/3d"
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"""
recipe = "triplets"
[[source]]
name = "ct"
kind = "nifti"
root = "{d3}"
images = "volumes/*.nii.gz"
masks = "lesions/{{stem}}/*.nii.gz"
organs = "masks/{{stem}}/*.nii.gz"
select = "largest"
[source.defaults]
modality = "CT"
organ = "chest"
[generator]
kind = "template"
""")
    out = tmp_path / "out"
    r = subprocess.run([medgrain_bin, "-q", "build", str(cfg), "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rows = pq.read_table(out / "triplets").to_pylist()
    checked = 0
    for line in (d3 / "ground_truth.jsonl").read_text().splitlines():
        t = json.loads(line)
        for f in t["findings"]:
            if not (f["present"] and f["mask"]):
                continue
            mask_name = f["mask"].split("/")[-1].replace(".nii.gz", "").lstrip("0123456789_").replace("_", " ")
            # this lesion's ROI: on its largest axial slice, with its pixel count there (a volume may hold two
            # lesions of the same name; the axial display grid is the voxel grid, 1.8 mm square)
            m = np.asanyarray(nib.load(d3 / f["mask"]).dataobj) > 0
            k = int(np.argmax(m.sum(axis=(0, 1))))
            cands = [(row, roi) for row in rows if row["source_path"] == f"volumes/{t['volume']}"
                     and row["slice"]["index"] == k for roi in row["rois"]
                     if roi["label"] == mask_name and roi["area_px"] == int(m[:, :, k].sum())]
            assert len(cands) == 1, (t["volume"], f, len(cands))
            row, roi = cands[0]
            ctx = roi["organ_context"]
            assert ctx is not None, (t["volume"], f)
            assert words(ctx["organ"]) == words(f["anatomy"].split("/")[-1]), (ctx, f["anatomy"])
            assert ctx["relation"] in ("inside", "enclosed"), ctx
            assert f"lies within the {ctx['organ']}" in row["sections"]["roi_analysis"]
            # patient-frame position against the truth centre and the volume's centre (RAS: +y anterior, +z
            # superior); offsets within 3 mm of the 5 % threshold are not judged
            img = nib.load(d3 / "volumes" / t["volume"])
            lo = img.affine @ [0, 0, 0, 1]
            hi = img.affine @ [*(np.array(img.shape) - 1), 1]
            centre, fov = (lo[:3] + hi[:3]) / 2, np.abs(hi[:3] - lo[:3])
            terms = roi["patient_position"].split(", ")
            if f["side"]:
                assert terms[0] == f["side"], (terms, f)
            for axis, pos, neg in [(0, "right", "left"), (1, "anterior", "posterior"), (2, "superior", "inferior")]:
                d = f["center_ras"][axis] - centre[axis]
                if abs(abs(d) - 0.05 * fov[axis]) < 3.0:
                    continue
                want = (pos if d > 0 else neg) if abs(d) > 0.05 * fov[axis] else None
                got = pos if pos in terms else neg if neg in terms else None
                assert got == want, (axis, d, terms, f)
            checked += 1
    assert checked >= 6
