"""Organ context of triplet ROIs (`organs = …` in a volume source): each synthetic lesion's ROI, on its largest
axial slice, names the organ the ground truth places it in (lobe or liver), with relation "inside" or "enclosed"
(the synthetic organ masks exclude the lesion's own voxels), and the description says so."""
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
            checked += 1
    assert checked >= 6
