#!/usr/bin/env python3
"""The 2D triplet path against the Python reference (`scripts/triplets_reference.py`), both pinned to one core
(`taskset -c 0`), on the same corpus, in one run (#18, BENCHMARKS.md "Triplet path against a Python reference").

    python scripts/bench_triplets.py target/release/medgrain WORKDIR [IMAGES_PER_KIND] [VOLUMES] [ROUNDS]

Cases: `medgrain synth` images (seven kinds, 256×256 PNG) and the same images resized to 512² and 1024² (Pillow,
bilinear; masks nearest); 512×512 16-bit CT-style DICOM files made from the greyscale ones (pydicom; modality LUT
and window in the header); CT slices cut from `medgrain synth` volumes (each lesion's largest axial section).
medgrain runs `build` with the template writer (one process, input hashing on, as by default); the reference does
the same steps (see its docstring). Times are wall clock of the whole command, best of ROUNDS. Before timing, the
two outputs are compared row by row on what both compute the same way: every ROI's box, area and RLE counts.
Prints a table and one JSON line per case."""
import io
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

HERE = Path(__file__).resolve().parent
PY = sys.executable


def config(root, images, masks, extra=""):
    return f"""recipe = "triplets"
[output]
shard_size = 256
[[source]]
name = "bench"
kind = "image-folder"
root = "{root}"
images = "{images}"
masks = "{masks}"
metadata = "metadata.csv"
{extra}
[generator]
kind = "template"
"""


NIFTI = """recipe = "triplets"
[output]
shard_size = 256
[[source]]
name = "bench"
kind = "nifti"
root = "{root}"
images = "volumes/*.nii.gz"
masks = "lesions/{{stem}}/*.nii.gz"
select = "largest"
plane = "axial"
window = "mediastinum"
[source.defaults]
modality = "CT"
organ = "chest"
[generator]
kind = "template"
"""


def resized(src, dst, size):
    if (dst / "metadata.csv").exists():
        return
    (dst / "images").mkdir(parents=True, exist_ok=True)
    (dst / "masks").mkdir(parents=True, exist_ok=True)
    for p in sorted((src / "images").glob("*.png")):
        Image.open(p).resize((size, size), Image.BILINEAR).save(dst / "images" / p.name)
        Image.open(src / "masks" / p.name).resize((size, size), Image.NEAREST).save(dst / "masks" / p.name)
    shutil.copy(src / "metadata.csv", dst / "metadata.csv")


def dicoms(src, dst):
    """16-bit CT-style DICOM (HU = 8·grey − 1024, window 40/400) from the greyscale 512² images."""
    if (dst / "metadata.csv").exists():
        return
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, CTImageStorage, generate_uid
    (dst / "images").mkdir(parents=True, exist_ok=True)
    (dst / "masks").mkdir(parents=True, exist_ok=True)
    lines = ["file,modality,organ,disease,notes"]
    import csv
    with open(src / "metadata.csv", newline="") as f:
        meta = {r["file"]: r for r in csv.DictReader(f)}
    for p in sorted((src / "images").glob("*.png")):
        img = np.asarray(Image.open(p))
        if img.ndim == 3:
            continue
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[p.name])
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, ds.file_meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.PatientID, ds.StudyInstanceUID = "CT", "BENCH", generate_uid(entropy_srcs=["study"])
        ds.SeriesInstanceUID = generate_uid(entropy_srcs=["series"])
        ds.Rows, ds.Columns = img.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        ds.WindowCenter, ds.WindowWidth = 40, 400
        ds.PixelSpacing = [0.7, 0.7]
        ds.PixelData = (img.astype(np.uint16) * 8).tobytes()
        stem = p.stem
        ds.save_as(dst / "images" / f"{stem}.dcm", enforce_file_format=True)
        shutil.copy(src / "masks" / p.name, dst / "masks" / p.name)
        m = meta[f"images/{p.name}"]
        lines.append(f"images/{stem}.dcm,CT,{m['organ']},{m['disease']},")
    (dst / "metadata.csv").write_text("\n".join(lines) + "\n")


def rois_by_path(folder):
    out = {}
    for f in sorted(Path(folder).rglob("*.parquet")):
        for r in pq.read_table(f, columns=["source_path", "rois"]).to_pylist():
            out.setdefault(r["source_path"], []).extend(
                sorted((tuple(x["bbox_xyxy"]), x["area_px"], x["mask_rle"]["counts"]) for x in r["rois"]))
    return out


def run(args, cwd):
    t = time.perf_counter()
    subprocess.run(["taskset", "-c", "0"] + args, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main():
    binary = str(Path(sys.argv[1]).resolve())
    work = Path(sys.argv[2]).resolve()
    per_kind = int(sys.argv[3]) if len(sys.argv) > 3 else 72
    volumes = int(sys.argv[4]) if len(sys.argv) > 4 else 16
    rounds = int(sys.argv[5]) if len(sys.argv) > 5 else 3
    work.mkdir(parents=True, exist_ok=True)
    synth = work / "synth"
    if not (synth / "2d" / "metadata.csv").exists():
        subprocess.run([binary, "-q", "synth", "--out", str(synth), "--images-per-kind", str(per_kind),
                        "--volumes", str(volumes)], check=True)
    resized(synth / "2d", work / "png512", 512)
    resized(synth / "2d", work / "png1024", 1024)
    dicoms(work / "png512", work / "dicom512")
    cases = [
        ("PNG 256²", "png", synth / "2d", config(synth / "2d", "images/*.png", "masks/{stem}.png")),
        ("PNG 512²", "png", work / "png512", config(work / "png512", "images/*.png", "masks/{stem}.png")),
        ("PNG 1024²", "png", work / "png1024", config(work / "png1024", "images/*.png", "masks/{stem}.png")),
        ("DICOM 512² (16-bit CT)", "dicom", work / "dicom512",
         config(work / "dicom512", "images/*.dcm", "masks/{stem}.png")),
        ("CT slices from volumes", "nifti", synth / "3d", NIFTI.format(root=synth / "3d")),
    ]
    print(f"| case | rows | medgrain (s) | rows/s | Python reference (s) | rows/s | ratio |")
    print("|---|---|---|---|---|---|---|")
    results = []
    for name, case, root, cfg in cases:
        d = work / f"run-{case}-{root.name}"
        d.mkdir(exist_ok=True)
        (d / "build.toml").write_text(cfg)
        ours, ref = [], []
        for k in range(rounds):
            ours.append(run([binary, "-q", "build", "build.toml", "--out", "out", "--force"], d))
            shutil.rmtree(d / "ref", ignore_errors=True)
            ref.append(run([PY, str(HERE / "triplets_reference.py"), case, str(root), "ref"], d))
        a, b = rois_by_path(d / "out" / "triplets"), rois_by_path(d / "ref")
        same = (a == b) if case != "nifti" else None  # slices: radiological flips differ in detail; not compared
        if same is False:
            bad = [k for k in a if a.get(k) != b.get(k)][:3]
            sys.exit(f"{name}: the reference's ROIs differ from medgrain's for {bad}")
        n = sum(pq.ParquetFile(f).metadata.num_rows for f in (d / "out" / "triplets").glob("*.parquet"))
        o, r = min(ours), min(ref)
        print(f"| {name} | {n} | {o:.2f} | {n / o:,.0f} | {r:.2f} | {n / r:,.0f} | {r / o:.1f}× |")
        results.append({"case": name, "rows": n, "medgrain_s": ours, "reference_s": ref, "ratio": r / o,
                        "rois_equal": same})
    for x in results:
        print(json.dumps(x))


if __name__ == "__main__":
    main()
