"""`medgrain probe` against nibabel (NIfTI-1/2 files shipped in the nibabel wheel, plus the synthetic CT volumes)
and Pillow (PNG), computed in the same run: shape, dtype, raw and scaled min/max/sum, spacing, affine, orientation."""
import json
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

NIBABEL_DATA = Path(nib.__file__).parent / "tests" / "data"


def nifti_files():
    files = sorted(p for p in NIBABEL_DATA.iterdir() if p.name.endswith((".nii", ".nii.gz")))
    assert len(files) >= 8, "the nibabel wheel's test data is missing"
    return files


def probe(medgrain_bin, paths):
    r = subprocess.run([medgrain_bin, "probe", "--json", *map(str, paths)], capture_output=True, text=True)
    return r.returncode, [json.loads(l) for l in r.stdout.splitlines()]


def reference_nifti(path):
    with open(path, "rb") as fh:
        head = fh.read(4)
    if path.suffix == ".gz":
        import gzip
        head = gzip.open(path).read(4)
    version2 = int.from_bytes(head, "little") == 540 or int.from_bytes(head, "big") == 540
    img = (nib.Nifti2Image if version2 else nib.Nifti1Image).from_filename(str(path))
    raw = np.asanyarray(img.dataobj.get_unscaled())
    scaled = img.get_fdata(dtype=np.float64)
    return img, raw, scaled


def close(a, b, rel=1e-9):
    return a == pytest.approx(b, rel=rel, abs=1e-9)


@pytest.mark.parametrize("path", nifti_files(), ids=lambda p: p.name)
def test_nifti_matches_nibabel(medgrain_bin, path):
    code, [ours] = probe(medgrain_bin, [path])
    assert code == 0, ours
    img, raw, scaled = reference_nifti(path)
    assert ours["format"] == "nifti"
    assert ours["shape"] == list(raw.shape)
    assert ours["dtype"] == raw.dtype.name  # byte order is not part of the dtype name
    assert close(ours["raw"]["min"], float(np.nanmin(raw))) and close(ours["raw"]["max"], float(np.nanmax(raw)))
    assert close(ours["raw"]["sum"], float(np.nansum(raw, dtype=np.float64)))
    if raw.dtype.kind == "f":
        assert ours["raw"]["nan_count"] == int(np.isnan(raw).sum())
    assert close(ours["scaled"]["min"], float(np.nanmin(scaled))) and close(ours["scaled"]["max"], float(np.nanmax(scaled)))
    assert close(ours["scaled"]["sum"], float(np.nansum(scaled)))
    assert np.allclose(ours["spacing_mm"], img.header.get_zooms(), rtol=0, atol=1e-6)
    assert np.allclose(ours["affine"], img.affine, rtol=0, atol=1e-5)
    assert ours["orientation"] == "".join(nib.aff2axcodes(img.affine))


def test_synthetic_volumes_and_masks_match_nibabel(medgrain_bin, demo_dir):
    paths = sorted((demo_dir / "synth/3d/volumes").glob("*.nii.gz"))[:2]
    paths += sorted((demo_dir / "synth/3d/masks/synth_ct_000").glob("*.nii.gz"))[:3]
    code, lines = probe(medgrain_bin, paths)
    assert code == 0
    for path, ours in zip(paths, lines):
        img = nib.load(path)
        data = np.asanyarray(img.dataobj)
        assert ours["shape"] == list(data.shape) and ours["dtype"] == str(data.dtype)
        assert ours["raw"]["sum"] == float(data.sum(dtype=np.int64))
        assert np.allclose(ours["affine"], img.affine, atol=1e-5)
        assert ours["orientation"] == "".join(nib.aff2axcodes(img.affine)) == "LPS"


def test_png_matches_pillow(medgrain_bin, demo_dir):
    paths = [demo_dir / "synth/2d/images/fundus_0001.png", demo_dir / "synth/2d/images/ct_chest_0001.png",
             demo_dir / "synth/2d/masks/ct_chest_0001.png"]
    code, lines = probe(medgrain_bin, paths)
    assert code == 0
    for path, ours in zip(paths, lines):
        arr = np.asarray(Image.open(path))
        assert ours["format"] == "png" and ours["shape"] == list(arr.shape) and ours["dtype"] == str(arr.dtype)
        assert ours["raw"]["min"] == arr.min() and ours["raw"]["max"] == arr.max()
        assert ours["raw"]["sum"] == float(arr.sum(dtype=np.int64))


def test_unreadable_files_get_an_error_line_and_exit_1(medgrain_bin, tmp_path):
    good = nifti_files()[0]
    truncated = tmp_path / "truncated.nii"
    truncated.write_bytes(good.read_bytes()[:600])
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    huge = tmp_path / "huge.nii"
    hdr = bytearray(good.read_bytes()[:352])
    hdr[42:48] = (65535 // 2).to_bytes(2, "little") * 3  # dim[1..3] = 32767
    huge.write_bytes(bytes(hdr))
    code, lines = probe(medgrain_bin, [truncated, good, garbage, huge, tmp_path / "missing.nii"])
    assert code == 1
    assert [("error" in l) for l in lines] == [True, False, True, True, True]
    assert "truncated" in lines[0]["error"]
    assert lines[1]["format"] == "nifti"


def test_16_bit_tiff_and_png_and_skimage_files_match_pillow(medgrain_bin, tmp_path):
    """16-bit grey TIFF (little and big endian) and PNG written by Pillow from scikit-image's camera image (×257, so
    every 16-bit value differs from its 8-bit source), plus scikit-image's own PNG/TIFF files, read by Pillow."""
    import skimage
    from skimage import data
    sk = Path(skimage.__file__).parent / "data"
    cam16 = data.camera().astype(np.uint16) * 257 + np.arange(512, dtype=np.uint16)[None, :] % 257
    paths = []
    for mode, name in [("I;16", "cam16le.tif"), ("I;16B", "cam16be.tif"), ("I;16", "cam16.png")]:
        im = Image.fromarray(cam16)  # mode I;16
        if mode == "I;16B":
            im = Image.frombytes("I;16B", im.size, cam16.astype(">u2").tobytes())
        im.save(tmp_path / name)
        paths.append(tmp_path / name)
    paths += [sk / "camera.png", sk / "astronaut.png", sk / "logo.png", sk / "multipage.tif"]
    code, lines = probe(medgrain_bin, paths)
    assert code == 0, lines
    for path, ours in zip(paths, lines):
        arr = np.asarray(Image.open(path))
        if path.name.startswith("cam16"):
            assert arr.dtype.itemsize == 2 and np.array_equal(arr.astype(np.int64), cam16.astype(np.int64)), path.name
            assert ours["dtype"] == "uint16", (path.name, ours["dtype"])
        assert ours["shape"] == list(arr.shape), path.name
        assert ours["raw"]["min"] == arr.min() and ours["raw"]["max"] == arr.max(), path.name
        assert ours["raw"]["sum"] == float(arr.sum(dtype=np.int64)), path.name
        assert ours["format"] == ("tiff" if path.suffix == ".tif" else "png")
