#!/usr/bin/env python3
"""Files per second for `medgrain deid`, beside dicognito (load, anonymize, save with pydicom) on the same files in
the same run, each pinned to one core (taskset -c 0), and medgrain on every core:

- pydicom's own test files (every *.dcm pydicom ships; the files medgrain refuses count as processed);
- a 300-slice CT series made here (512 x 512, 16-bit, explicit VR little endian, planted identifying values).

Usage: python scripts/bench_deid.py path/to/medgrain [--slices 300]
(run with the test venv's python: pydicom and dicognito; MEDGRAIN_DEID_SECRET is set by the script)."""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def make_series(folder: Path, n: int):
    folder.mkdir(parents=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    rng = np.random.default_rng(0)
    for k in range(n):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = "CT", study, series, frame
        ds.PatientName, ds.PatientID, ds.PatientBirthDate = "DOE^JANE", "MRN123456", "19600101"
        ds.InstitutionName, ds.ReferringPhysicianName, ds.AccessionNumber = "General Hospital", "SMITH^JOHN", "A1"
        ds.StudyDate, ds.StudyTime, ds.StudyDescription = "20240101", "120000", "CT CHEST"
        ds.InstanceNumber = k + 1
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.ImagePositionPatient = [-250.0, -250.0, float(k)]
        ds.PixelSpacing, ds.SliceThickness = [0.98, 0.98], 1.0
        ds.Rows = ds.Columns = 512
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.PixelData = rng.integers(0, 2000, (512, 512), dtype=np.uint16).tobytes()
        ds.save_as(folder / f"{k:04d}.dcm", enforce_file_format=True)


def run_medgrain(bin_, files_or_dir, out, one_core):
    cmd = [bin_, "-q", "deid", *map(str, files_or_dir), "--out", str(out)]
    if one_core:
        cmd = ["taskset", "-c", "0", *cmd]
    env = {**os.environ, "MEDGRAIN_DEID_SECRET": "benchmark-secret-0123456789", "RAYON_NUM_THREADS": "1" if one_core else ""}
    if not one_core:
        env.pop("RAYON_NUM_THREADS")
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t
    if r.returncode not in (0, 1):
        sys.exit(r.stderr)
    return dt


DICOGNITO = r"""
import sys, time
from pathlib import Path
import pydicom
from dicognito.anonymizer import Anonymizer
files, out = [Path(p) for p in sys.argv[2:]], Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
a = Anonymizer(seed="bench")
t = time.perf_counter()
for i, f in enumerate(files):
    try:
        ds = pydicom.dcmread(f)
        a.anonymize(ds)
        ds.save_as(out / f"{i}.dcm")
    except Exception:
        pass
print(time.perf_counter() - t)
"""


def run_dicognito(files, out):
    shutil.rmtree(out, ignore_errors=True)
    r = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", DICOGNITO, str(out), *map(str, files)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(r.stderr)
    # the loop's own time: the interpreter's start and imports are left out in the reference's favour
    return float(r.stdout.split()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("medgrain")
    ap.add_argument("--slices", type=int, default=300)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_deid_"))
    try:
        test_files = sorted(Path(pydicom.data.get_testdata_file("CT_small.dcm")).parent.glob("*.dcm"))
        series = tmp / "series"
        make_series(series, a.slices)
        series_files = sorted(series.glob("*.dcm"))
        mb = sum(f.stat().st_size for f in series_files) / 1e6
        print(f"| corpus | files | medgrain, 1 core | medgrain, {os.cpu_count()} cores | dicognito + pydicom, 1 core | ratio (1 core) |")
        print("|---|---|---|---|---|---|")
        for name, files, arg in [("pydicom test files", test_files, test_files),
                                 (f"{a.slices}-slice CT series 512x512 ({mb:.0f} MB)", series_files, [series])]:
            one = min(run_medgrain(a.medgrain, arg, tmp / "m1", True) for _ in range(3))
            many = min(run_medgrain(a.medgrain, arg, tmp / "m2", False) for _ in range(3))
            ref = min(run_dicognito(files, tmp / "d") for _ in range(2))
            n = len(files)
            print(f"| {name} | {n} | {n / one:.0f} files/s | {n / many:.0f} files/s | {n / ref:.0f} files/s | "
                  f"{ref / one:.1f}x |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
