"""Mask sources for volume sources: a multilabel mask file with a class table (TotalSegmentator `--ml` / nnU-Net
style) gives the same rows as one binary file per structure; masks on another grid (SAT writes its own resampled
grid) are refused with a clear error, or resampled nearest-neighbour with `resample_masks = true`."""
import json
import subprocess

import nibabel as nib
import numpy as np
import pyarrow.parquet as pq


def build(bin_, tmp_path, name, body):
    cfg = tmp_path / f"{name}.toml"
    cfg.write_text(body)
    out = tmp_path / name
    r = subprocess.run([bin_, "-q", "build", str(cfg), "--out", str(out)], capture_output=True, text=True)
    return r, out


def mask_label(path):
    stem = path.name.replace(".nii.gz", "")
    return stem.lstrip("0123456789_").replace("_", " ")


def volumes_with_lesions(d3):
    out = []
    for v in sorted((d3 / "volumes").glob("*.nii.gz")):
        stem = v.name.replace(".nii.gz", "")
        files = sorted((d3 / "lesions" / stem).glob("*.nii.gz"))
        if files:
            out.append((v, stem, files))
    return out[:2]


def roi_key(r):
    return (r["label"], tuple(r["bbox_xyxy"]), r["mask_rle"]["counts"])


def test_multilabel_file_with_class_table_equals_binary_files(medgrain_bin, demo_dir, tmp_path):
    d3 = demo_dir / "synth/3d"
    vols = volumes_with_lesions(d3)
    (tmp_path / "ml").mkdir()
    table = {}
    for v, stem, files in vols:
        ref = nib.load(files[0])
        ml = np.zeros(ref.shape, np.uint8)
        for f in files:
            name = mask_label(f)
            value = table.setdefault(name, len(table) + 1)
            m = np.asanyarray(nib.load(f).dataobj) > 0
            assert not (ml[m] > 0).any(), "lesions overlap: a multilabel file cannot hold them"
            ml[m] = value
        nib.save(nib.Nifti1Image(ml, ref.affine), tmp_path / "ml" / f"{stem}.nii.gz")
    (tmp_path / "classes.txt").write_text("".join(f"{v} {k.replace(' ', '_')}\n" for k, v in table.items()))
    # names in the table use underscores for spaces (one token per name); the binary files' names have spaces
    common = f"""
recipe = "triplets"
[generator]
kind = "template"
[[source]]
name = "synth-ct"
kind = "nifti"
root = "{tmp_path}"
images = "volumes/*.nii.gz"
select = "largest"
window = "mediastinum"
"""
    (tmp_path / "volumes").mkdir()
    for v, _, _ in vols:
        (tmp_path / "volumes" / v.name).symlink_to(v)
    r, out = build(medgrain_bin, tmp_path, "ml_run", common + 'masks = "ml/{stem}.nii.gz"\nmask_labels = "classes.txt"\n'
                   + '[source.defaults]\nmodality = "CT"\norgan = "chest"\n')
    assert r.returncode == 0, r.stderr
    rows = pq.read_table(out / "triplets").to_pylist()
    stems = {stem for _, stem, _ in vols}
    ref_rows = [x for x in pq.read_table(demo_dir / "triplets").to_pylist()
                if x["source"] == "synth-ct" and x["source_path"].split("/")[-1].replace(".nii.gz", "") in stems]
    ours = sorted((x["source_path"].split("/")[-1], x["slice"]["index"], sorted(roi_key(r) for r in x["rois"]))
                  for x in rows)
    theirs = sorted((x["source_path"].split("/")[-1], x["slice"]["index"],
                     sorted((r["label"].replace(" ", "_"), tuple(r["bbox_xyxy"]), r["mask_rle"]["counts"])
                            for r in x["rois"])) for x in ref_rows)
    ours = [(a, b, sorted((l, bb, c) for l, bb, c in rr)) for a, b, rr in ours]
    assert ours == theirs and len(ours) >= 2


def test_masks_on_another_grid_are_refused_or_resampled(medgrain_bin, demo_dir, tmp_path):
    d3 = demo_dir / "synth/3d"
    (v, stem, files) = volumes_with_lesions(d3)[0]
    sat = tmp_path / "sat" / stem
    sat.mkdir(parents=True)
    for f in files:
        img = nib.load(f)
        m = np.asanyarray(img.dataobj)[::2, ::2, :]  # SAT-like coarser grid: 2× the in-plane spacing
        aff = img.affine.copy()
        aff[:3, 0] *= 2
        aff[:3, 1] *= 2
        nib.save(nib.Nifti1Image(m.astype(np.uint8), aff), sat / f"{mask_label(f)}.nii.gz")  # names with spaces
    (tmp_path / "volumes").mkdir()
    (tmp_path / "volumes" / v.name).symlink_to(v)
    common = f"""
recipe = "triplets"
[generator]
kind = "template"
[[source]]
name = "sat"
kind = "nifti"
root = "{tmp_path}"
images = "volumes/*.nii.gz"
masks = "sat/{{stem}}/*.nii.gz"
select = "largest"
"""
    r, out = build(medgrain_bin, tmp_path, "refused", common)
    assert r.returncode == 1
    err = json.loads((out / "errors.jsonl").read_text().splitlines()[0])
    assert "differs from the volume" in err["error"] and "resample_masks" in err["error"]
    r, out = build(medgrain_bin, tmp_path, "resampled", common + "resample_masks = true\n")
    assert r.returncode == 0, r.stderr
    rows = pq.read_table(out / "triplets").to_pylist()
    labels = {r["label"] for x in rows for r in x["rois"]}
    assert labels == {mask_label(f) for f in files}
    # each resampled lesion's box is within 2 voxels of its box on the original grid's largest slice
    ref = {(x["slice"]["index"], r["label"]): r["bbox_xyxy"] for x in pq.read_table(demo_dir / "triplets").to_pylist()
           if x["source"] == "synth-ct" and x["source_path"].endswith(v.name) for r in x["rois"]}
    compared = 0
    for x in rows:
        for r in x["rois"]:
            if (x["slice"]["index"], r["label"]) in ref:
                assert np.abs(np.array(r["bbox_xyxy"]) - ref[(x["slice"]["index"], r["label"])]).max() <= 2, r
                compared += 1
    assert compared >= 1
