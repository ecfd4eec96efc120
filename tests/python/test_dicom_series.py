"""DICOM series → volume (`medgrain probe DIR --json`) on series built from pydicom's CT_small and MR_small:
slices ordered by ImagePositionPatient whatever the file names and InstanceNumbers say, a missing slice reported as a
gap, two series in one folder kept apart, the affine derived by hand here from the DICOM tags (LPS → RAS)."""
import json
import random
import subprocess
from pathlib import Path

import numpy as np
import pydicom
from pydicom.data import get_testdata_file


def build_series(out: Path, src: str, n: int, step: float, uid: str, drop=None, seed=0):
    """n slices of `src`, slice k at IPP + k*step along the normal, pixel values + 10*k (so order is visible),
    shuffled file names and reversed InstanceNumbers; slice `drop` left out."""
    out.mkdir(parents=True, exist_ok=True)
    base = pydicom.dcmread(get_testdata_file(src))
    o = np.array(base.ImageOrientationPatient, dtype=float)
    normal = np.cross(o[:3], o[3:])
    names = [f"img{i:03d}.dcm" for i in range(n)]
    random.Random(seed).shuffle(names)
    kept = []
    for k in range(n):
        if k == drop:
            continue
        ds = pydicom.dcmread(get_testdata_file(src))
        ds.SeriesInstanceUID = uid
        ds.SOPInstanceUID = f"{uid}.{k}"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = n - k
        ds.ImagePositionPatient = [float(x) for x in np.array(base.ImagePositionPatient, float) + k * step * normal]
        arr = ds.pixel_array.astype(np.int32) + 10 * k
        ds.PixelData = arr.astype(ds.pixel_array.dtype).tobytes()
        ds.save_as(out / names[k], enforce_file_format=True)
        kept.append(k)
    return base, normal, kept


def probe(bin_, d):
    r = subprocess.run([bin_, "-q", "probe", str(d), "--json"], capture_output=True, text=True)
    return r.returncode, [json.loads(l) for l in r.stdout.splitlines()]


def expected_affine(base, normal, step):
    o = np.array(base.ImageOrientationPatient, float)
    ps = [float(x) for x in base.PixelSpacing]  # row spacing, column spacing
    a = np.eye(4)
    a[:3, 0] = o[:3] * ps[1]
    a[:3, 1] = o[3:] * ps[0]
    a[:3, 2] = normal * step
    a[:3, 3] = np.array(base.ImagePositionPatient, float)
    return np.diag([-1, -1, 1, 1]) @ a  # LPS → RAS


def test_series_order_gap_and_affine(medgrain_bin, tmp_path):
    d = tmp_path / "study"
    base, normal, kept = build_series(d / "ct", "CT_small.dcm", n=8, step=2.5, uid="1.2.3.4.100", drop=5)
    build_series(d / "mr", "MR_small.dcm", n=3, step=4.0, uid="1.2.3.4.200", seed=1)
    code, lines = probe(medgrain_bin, d)
    assert code == 0, lines
    ct = next(l for l in lines if l["series_uid"] == "1.2.3.4.100")
    mr = next(l for l in lines if l["series_uid"] == "1.2.3.4.200")
    assert ct["shape"] == [base.Columns, base.Rows, 7] and mr["shape"][2] == 3
    # ordered by position: slice k sits at k*2.5 mm, the dropped slice leaves a 5 mm step and is reported
    pos = np.array(ct["slice_positions_mm"])
    assert np.allclose(np.diff(pos), [2.5, 2.5, 2.5, 2.5, 5.0, 2.5])
    assert ct["gaps"] == [{"before_slice": 5, "step_mm": 5.0}] and not ct["irregular_spacing"]
    assert ct["spacing_mm"][2] == 2.5
    # values: HU of slice k = CT_small's HU + 10*k*slope; the volume's slice sums follow the kept order
    ref = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    hu0 = ref.pixel_array.astype(float) * float(ref.RescaleSlope) + float(ref.RescaleIntercept)
    total = sum((hu0 + 10 * k * float(ref.RescaleSlope)).sum() for k in kept)
    assert ct["scaled"]["sum"] == total
    assert np.allclose(np.array(ct["affine"]), expected_affine(base, normal, 2.5), atol=1e-9)
    files = ct["files"]
    assert len(files) == 7 and all(f.startswith("ct/") for f in files)


def test_slices_that_disagree_are_an_error_for_their_series(medgrain_bin, tmp_path):
    d = tmp_path / "bad"
    build_series(d, "CT_small.dcm", n=3, step=2.0, uid="9.9")
    ds = pydicom.dcmread(next(d.iterdir()))
    ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]  # a sagittal slice in an axial series
    ds.save_as(d / "odd.dcm", enforce_file_format=True)
    (d / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\1" * 10)
    code, lines = probe(medgrain_bin, d)
    assert code == 1
    errors = [l["error"] for l in lines if "error" in l]
    assert any("orientation" in e for e in errors) and len(errors) == 2
