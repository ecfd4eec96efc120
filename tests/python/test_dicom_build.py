"""DICOM in the triplet recipe. (1) `kind = "dicom-series"`: the demo's synthetic CTs written out as DICOM series
with pydicom (shuffled file names, unsigned storage with a rescale intercept) give the same slices, pixels, lesions
and patient sides as the same volumes read as NIfTI; a series with a missing slice is an error line, not a
misplaced mask. (2) `kind = "image-folder"` over pydicom's own DICOM files: the stored image is the display
rendering and the modality comes from the file."""
import io
import json
import random
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pyarrow.parquet as pq
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from test_dicom_reference import ROOT

LPS = np.diag([-1.0, -1.0, 1.0])


def write_series(vol_path: Path, out: Path, drop=None, seed=0):
    img = nib.load(vol_path)
    a = img.affine
    hu = np.asanyarray(img.dataobj).astype(np.int32)
    nx, ny, nz = hu.shape
    col_dir = LPS @ a[:3, 0] / np.linalg.norm(a[:3, 0])
    row_dir = LPS @ a[:3, 1] / np.linalg.norm(a[:3, 1])
    series = generate_uid()
    names = [f"{i:04d}.dcm" for i in range(nz)]
    random.Random(seed).shuffle(names)
    out.mkdir(parents=True)
    for k in range(nz):
        if k == drop:
            continue
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.SeriesInstanceUID, ds.StudyInstanceUID = "CT", series, "1.2.3"
        ds.InstanceNumber = nz - k
        ds.Rows, ds.Columns = ny, nx
        ds.ImageOrientationPatient = [float(x) for x in np.concatenate([col_dir, row_dir])]
        ds.ImagePositionPatient = [float(x) for x in LPS @ (a @ [0, 0, k, 1])[:3]]
        ds.PixelSpacing = [float(np.linalg.norm(a[:3, 1])), float(np.linalg.norm(a[:3, 0]))]
        ds.SliceThickness = float(np.linalg.norm(a[:3, 2]))
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.PixelData = (hu[:, :, k].T + 1024).astype(np.uint16).tobytes()
        ds.save_as(out / names[k], enforce_file_format=True)


def build(bin_, cfg: Path, out: Path):
    return subprocess.run([bin_, "-q", "build", str(cfg), "--out", str(out)], capture_output=True, text=True)


def test_dicom_series_source_equals_the_nifti_source(medgrain_bin, demo_dir, tmp_path):
    d3 = demo_dir / "synth/3d"
    truth = [json.loads(l) for l in (d3 / "ground_truth.jsonl").read_text().splitlines()]
    with_lesions = [t for t in truth if any(f["present"] and f["mask"] for f in t["findings"])][:2]
    root = tmp_path / "root"
    for t in with_lesions:
        stem = t["volume"].replace(".nii.gz", "")
        write_series(d3 / "volumes" / t["volume"], root / "series" / stem)
        shutil.copytree(d3 / "lesions" / stem, root / "lesions" / stem)
    # one more series with slice 10 missing: refused (its masks would land on the wrong slices)
    gap_stem = with_lesions[0]["volume"].replace(".nii.gz", "")
    write_series(d3 / "volumes" / with_lesions[0]["volume"], root / "series" / "gappy", drop=10, seed=3)
    shutil.copytree(d3 / "lesions" / gap_stem, root / "lesions" / "gappy")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"""
recipe = "triplets"
[[source]]
name = "ct-dicom"
kind = "dicom-series"
root = "{root}"
images = "series/*"
masks = "lesions/{{stem}}/*.nii.gz"
select = "largest"
window = "mediastinum"
[generator]
kind = "template"
""")
    out = tmp_path / "out"
    r = build(medgrain_bin, cfg, out)
    assert r.returncode == 1, r.stderr  # the gappy series is an error
    errors = [json.loads(l) for l in (out / "errors.jsonl").read_text().splitlines()]
    assert len(errors) == 1 and "gap" in errors[0]["error"] and "gappy" in errors[0]["source_path"], errors
    rows = pq.read_table(out / "triplets").to_pylist()
    nifti_rows = {(r["source_path"].split("/")[-1].replace(".nii.gz", ""), r["slice"]["index"]): r
                  for r in pq.read_table(demo_dir / "triplets").to_pylist() if r["source"] == "synth-ct"}
    compared = 0
    for row in rows:
        stem = row["source_path"].split("/")[-1]
        twin = nifti_rows[(stem, row["slice"]["index"])]
        a = np.asarray(Image.open(io.BytesIO(row["image"]["bytes"])))
        b = np.asarray(Image.open(io.BytesIO(twin["image"]["bytes"])))
        assert np.array_equal(a, b), (stem, row["slice"])
        assert row["modality"] == "CT"  # from the DICOM Modality tag: the config gives none
        ours = {(x["label"], x["side"], tuple(x["bbox_xyxy"]), x["mask_rle"]["counts"]) for x in row["rois"]}
        theirs = {(x["label"], x["side"], tuple(x["bbox_xyxy"]), x["mask_rle"]["counts"]) for x in twin["rois"]}
        assert ours == theirs, (stem, ours, theirs)
        compared += 1
    want = sum(1 for k in nifti_rows if k[0] in {t["volume"].replace(".nii.gz", "") for t in with_lesions})
    assert compared == want and compared >= 2


def test_image_folder_renders_dicom_files(medgrain_bin, tmp_path):
    root = tmp_path / "dcm"
    root.mkdir()
    for name in ["CT_small.dcm", "MR_small.dcm", "SC_rgb_rle.dcm"]:
        shutil.copy(ROOT / name, root / name)
    mono1 = next(p for p in ROOT.rglob("6154") if p.is_file())
    shutil.copy(mono1, root / "cr_6154.dcm")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"""
recipe = "triplets"
[[source]]
name = "pydicom-files"
kind = "image-folder"
root = "{root}"
images = "*.dcm"
[generator]
kind = "template"
""")
    out = tmp_path / "out"
    r = build(medgrain_bin, cfg, out)
    assert r.returncode == 0, r.stderr
    rows = {r["source_path"]: r for r in pq.read_table(out / "triplets").to_pylist()}
    assert rows["CT_small.dcm"]["modality"] == "CT" and rows["MR_small.dcm"]["modality"] == "MRI"
    assert rows["cr_6154.dcm"]["modality"] == "X-ray"
    for name, row in rows.items():
        stored = np.asarray(Image.open(io.BytesIO(row["image"]["bytes"])))
        rendered = tmp_path / f"{name}.png"
        rr = subprocess.run([medgrain_bin, "-q", "render", str(root / name), "--out", str(rendered)],
                            capture_output=True, text=True)
        assert rr.returncode == 0, rr.stderr
        assert np.array_equal(stored, np.asarray(Image.open(rendered))), name
        ds = pydicom.dcmread(root / name)
        assert (row["height"], row["width"]) == (ds.Rows, ds.Columns)
