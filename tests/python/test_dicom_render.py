"""`medgrain render` (the display image the triplet recipe stores for DICOM) against pydicom's pixel values, with
the DICOM standard's LINEAR VOI function (PS3.3 C.11.2.1.2.1) written out here: the file's window, an explicit
window, MONOCHROME1 inverted (pydicom's CR test files 6154/6247/6278), and colour files equal to pydicom's RGB
`pixel_array` (YCbCr converted)."""
import subprocess
import warnings

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.pixels import apply_modality_lut

from test_dicom_reference import OURS_FAIL, ROOT

# Windowed grey files medgrain cannot render (pydicom can), each with its reason from test_dicom_reference's list;
# asserted exactly, so a fix or a regression shows.
RENDER_FAIL: set[str] = set()


def voi_linear(x, c, w):
    lo, hi = c - 0.5 - (w - 1) / 2, c - 0.5 + (w - 1) / 2
    y = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255
    y = np.where(x <= lo, 0, np.where(x > hi, 255, y))
    return np.floor(np.clip(y, 0, 255) + 0.5).astype(np.uint8)


def render(bin_, path, out, *extra):
    r = subprocess.run([bin_, "-q", "render", str(path), "--out", str(out), *extra], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return np.asarray(Image.open(out))


def first_window(ds):
    c, w = ds.WindowCenter, ds.WindowWidth
    c = float(c[0]) if isinstance(c, pydicom.multival.MultiValue) else float(c)
    w = float(w[0]) if isinstance(w, pydicom.multival.MultiValue) else float(w)
    return c, w


def windowed_files():
    out = []
    for p in sorted(ROOT.rglob("*")):
        if not p.is_file():
            continue
        try:
            ds = pydicom.dcmread(p)
        except Exception:
            continue
        if "PixelData" in ds and "WindowCenter" in ds and ds.get("SamplesPerPixel", 1) == 1:
            out.append((p, ds))
    return out


def test_grey_files_follow_the_files_window_and_monochrome1_is_inverted(medgrain_bin, tmp_path):
    checked, mono1 = 0, 0
    failed = {}
    warnings.simplefilter("ignore")
    for p, ds in windowed_files():
        try:
            arr = ds.pixel_array
        except Exception:
            continue
        if arr.ndim == 3:  # multi-frame: frame 0
            arr = arr[0]
        r = subprocess.run([medgrain_bin, "-q", "render", str(p), "--out", str(tmp_path / "x.png")],
                           capture_output=True, text=True)
        if r.returncode != 0:
            failed[str(p.relative_to(ROOT))] = r.stderr.strip()
            continue
        img = np.asarray(Image.open(tmp_path / "x.png"))
        hu = np.asarray(apply_modality_lut(arr, ds), dtype=np.float64)
        expected = voi_linear(hu, *first_window(ds))
        if ds.PhotometricInterpretation == "MONOCHROME1":
            expected = 255 - expected
            mono1 += 1
        lossy = str(ds.file_meta.TransferSyntaxUID) in ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51",
                                                        "1.2.840.10008.1.2.4.91")
        diff = np.abs(img.astype(int) - expected.astype(int))
        if lossy:
            assert diff.mean() < 1.0, p.name
        else:
            assert diff.max() == 0, (p.name, diff.max(), int((diff > 0).sum()))
        checked += 1
    print(f"\n{checked} windowed files rendered as the standard says ({mono1} MONOCHROME1)")
    for k, v in failed.items():
        print(f"  cannot render {k}: {OURS_FAIL.get(k, '?')} — {v[-160:]}")
    assert set(failed) == RENDER_FAIL, failed
    assert RENDER_FAIL <= set(OURS_FAIL)
    assert checked >= 20 and mono1 == 3


def test_explicit_windows_and_presets(medgrain_bin, tmp_path):
    p = ROOT / "CT_small.dcm"
    ds = pydicom.dcmread(p)
    hu = np.asarray(apply_modality_lut(ds.pixel_array, ds), dtype=np.float64)
    assert np.array_equal(render(medgrain_bin, p, tmp_path / "a.png", "--window=-600,1500"),
                          voi_linear(hu, -600, 1500))
    assert np.array_equal(render(medgrain_bin, p, tmp_path / "b.png", "--window", "bone"), voi_linear(hu, 400, 1800))
    bad = subprocess.run([medgrain_bin, "-q", "render", str(p), "--out", str(tmp_path / "c.png"), "--window", "wide"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "--window" in bad.stderr
    # no window in the file: its full range
    mr = ROOT / "MR_small.dcm"
    ds = pydicom.dcmread(mr)
    del ds.WindowCenter
    del ds.WindowWidth
    ds.save_as(tmp_path / "nowin.dcm")
    img = render(medgrain_bin, tmp_path / "nowin.dcm", tmp_path / "d.png")
    assert img.min() == 0 and img.max() == 255
    frame = subprocess.run([medgrain_bin, "-q", "render", str(mr), "--out", str(tmp_path / "e.png"), "--frame", "3"],
                           capture_output=True, text=True)
    assert frame.returncode == 1 and "frame 3" in frame.stderr


@pytest.mark.parametrize("name", ["SC_rgb_small_odd.dcm", "SC_rgb_rle.dcm", "SC_ybr_full_422_uncompressed.dcm",
                                  "SC_rgb_rle_16bit.dcm"])
def test_colour_files_render_as_pydicoms_rgb(medgrain_bin, tmp_path, name):
    ds = pydicom.dcmread(ROOT / name)
    ref = ds.pixel_array
    if ds.BitsAllocated == 16:
        ref = np.floor(ref.astype(np.float64) / 65535 * 255 + 0.5).astype(np.uint8)
    img = render(medgrain_bin, ROOT / name, tmp_path / "c.png")
    assert img.shape == ref.shape and np.array_equal(img, ref), name
