"""`medgrain probe` on every DICOM file with pixel data in pydicom's own test set, against pydicom (with pylibjpeg,
pylibjpeg-openjpeg, pylibjpeg-libjpeg and pyjpegls) computed in the same run: shape, the decoded array element for
element (a SHA-256 of it as float64, so a transposed or flipped frame fails), scaled (modality LUT) statistics and
pixel spacing for lossless and uncompressed transfer syntaxes; lossy JPEG by PSNR against pydicom's array. Files one
side cannot read are listed, and the list is asserted so a fix or a regression shows."""
import hashlib
import json
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut

ROOT = Path(pydicom.__file__).parent / "data/test_files"
LOSSY = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.81"}
# What medgrain cannot decode yet (and why), asserted exactly:
OURS_FAIL: dict[str, str] = {}
# Lossy files where the decoders disagree beyond the PSNR floor (none since libjpeg-turbo decodes DCT JPEG):
KNOWN_DIFFERENT: set[str] = set()


def pixel_files():
    out = []
    for p in sorted(ROOT.rglob("*")):
        if not p.is_file() or p.suffix.lower() not in (".dcm", ""):
            continue
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=False)
        except Exception:
            continue
        if "PixelData" in ds:
            out.append((p, ds))
    return out


@pytest.fixture(scope="module")
def compared(medgrain_bin, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("probe-npy")
    files = pixel_files()
    assert len(files) >= 80, len(files)
    rows = []
    for p, ds in files:
        warnings.simplefilter("ignore")
        try:
            ref = ds.pixel_array
            ref_err = None
        except Exception as e:  # listed, not hidden
            ref, ref_err = None, f"{type(e).__name__}: {e}"
        npy = Path(tmp) / str(len(rows))
        r = subprocess.run([medgrain_bin, "-q", "probe", str(p), "--json", "--npy-dir", str(npy)], capture_output=True,
                           text=True)
        ours = json.loads(r.stdout.splitlines()[0])
        assert ("error" in ours) == (r.returncode == 1), (p, r.returncode)
        ts = str(ds.file_meta.get("TransferSyntaxUID", "")) if hasattr(ds, "file_meta") else ""
        rows.append({"name": str(p.relative_to(ROOT)), "ds": ds, "ref": ref, "ref_err": ref_err, "ours": ours, "ts": ts})
    return rows


def test_lossless_files_match_pydicom_exactly(compared):
    exact = 0
    for row in compared:
        ours, ref = row["ours"], row["ref"]
        if ref is None or "error" in ours or row["ts"] in LOSSY:
            continue
        assert ours["shape"] == list(ref.shape), row["name"]
        raw = ref.astype(np.float64)
        # element for element, in pydicom's array order
        assert ours["raw_sha256"] == hashlib.sha256(np.ascontiguousarray(raw.astype("<f8")).tobytes()).hexdigest(), \
            row["name"]
        assert ours["raw"]["min"] == raw.min() and ours["raw"]["max"] == raw.max(), row["name"]
        assert ours["raw"]["sum"] == raw.sum(), row["name"]
        ds = row["ds"]
        if "RescaleSlope" in ds or "RescaleIntercept" in ds:
            scaled = np.asarray(apply_modality_lut(ref, ds), dtype=np.float64)
            assert ours["scaled"]["min"] == pytest.approx(scaled.min(), abs=1e-9), row["name"]
            assert ours["scaled"]["sum"] == pytest.approx(scaled.sum(), rel=1e-12), row["name"]
        if "PixelSpacing" in ds:
            assert ours["spacing_mm"] == [float(x) for x in ds.PixelSpacing], row["name"]
        assert ours["transfer_syntax"] == row["ts"]
        exact += 1
    print(f"\n{exact} lossless/uncompressed files equal to pydicom")
    assert exact >= 60


def psnr(ours, ref, bits):
    mse = float(np.mean((ours.astype(np.float64) - ref.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10((2 ** bits - 1) ** 2 / mse)


def test_lossy_files_by_psnr_against_pydicom(compared):
    checked = 0
    for row in compared:
        ours, ref = row["ours"], row["ref"]
        if ref is None or "error" in ours or row["ts"] not in LOSSY:
            continue
        assert ours["shape"] == list(ref.shape), row["name"]
        arr = np.load(ours["values_npy"])
        assert arr.shape == ref.shape, row["name"]
        # PSNR over the stored range: JPEG decoders may round and upsample chroma differently, never by much
        p = psnr(arr, ref, ds_bits(row["ds"]))
        ok = p >= 40.0
        print(f"{row['name']}: PSNR {p:.2f} dB against pydicom ({'ok' if ok else 'DIFFERENT'})")
        assert ok == (row["name"] not in KNOWN_DIFFERENT), (row["name"], p)
        checked += 1
    assert checked >= 10


def ds_bits(ds):
    return int(ds.get("BitsStored", ds.BitsAllocated))


def test_files_only_one_side_reads_are_listed(compared):
    ours_fail = {r["name"]: r["ours"]["error"] for r in compared if "error" in r["ours"] and r["ref"] is not None}
    theirs_fail = {r["name"]: r["ref_err"] for r in compared if r["ref"] is None and "error" not in r["ours"]}
    both_fail = [r["name"] for r in compared if r["ref"] is None and "error" in r["ours"]]
    print("\nmedgrain cannot read (pydicom can):")
    for k, v in ours_fail.items():
        print(f"  {k}: {OURS_FAIL.get(k, '?')} — {v[-120:]}")
    print("pydicom cannot read (medgrain can):", theirs_fail or "none")
    print("neither reads:", both_fail or "none")
    assert set(ours_fail) == set(OURS_FAIL)
    assert not theirs_fail


def test_truncated_and_non_dicom_files_are_error_lines(medgrain_bin, tmp_path):
    good = ROOT / "CT_small.dcm"
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(good.read_bytes()[:5000])
    fake = tmp_path / "fake.dcm"
    fake.write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 64)
    r = subprocess.run([medgrain_bin, "-q", "probe", str(cut), str(good), str(fake), "--json"],
                       capture_output=True, text=True)
    assert r.returncode == 1
    lines = [json.loads(l) for l in r.stdout.splitlines()]
    assert "error" in lines[0] and "error" not in lines[1] and "error" in lines[2]
    assert lines[1]["modality"] == "CT" and lines[1]["rescale"]["intercept"] == -1024
