"""`medgrain reorient` against nibabel's `as_closest_canonical` on files nobody here wrote (every 3D NIfTI in the
nibabel wheel's test data and the mricron AAL atlas) and on a synthetic CT stored LPS: same voxel array, same
affine, RAS+ orientation."""
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from test_probe_nifti_raster import nifti_files, reference_nifti

MRICRON = Path("/usr/share/mricron/templates")
AAL = MRICRON / "aal.nii.gz"


def three_d_files():
    out = []
    for p in nifti_files():
        img, _, _ = reference_nifti(p)
        if len(img.shape) == 3 or (len(img.shape) == 4 and img.shape[3] == 1):
            out.append(p)
    assert AAL.is_file(), "Debian mricron-data is missing (scripts/test.sh installs it)"
    return out + [AAL, MRICRON / "JHU-WhiteMatter-labels-2mm.nii.gz", MRICRON / "inia19-NeuroMaps.nii.gz"]


def test_reorient_equals_nibabel_as_closest_canonical(medgrain_bin, tmp_path):
    checked, moved = 0, 0
    for p in three_d_files():
        img, _, _ = reference_nifti(p)
        ref = nib.as_closest_canonical(img)
        out = tmp_path / (p.name.replace(".nii", "").replace(".gz", "") + "_ras.nii.gz")
        r = subprocess.run([medgrain_bin, "-q", "reorient", str(p), "--out", str(out)], capture_output=True, text=True)
        assert r.returncode == 0, (p.name, r.stderr)
        ours = nib.load(out)
        want = ref.get_fdata(dtype=np.float64)
        if want.ndim == 4:
            want = want[..., 0]
        got = ours.get_fdata(dtype=np.float64)
        assert got.shape == want.shape, p.name
        assert np.array_equal(got, want, equal_nan=True), p.name
        # the affine is stored as float32 in the header
        assert np.allclose(ours.affine, ref.affine, atol=1e-4 * max(1.0, np.abs(ref.affine).max())), p.name
        assert nib.aff2axcodes(ours.affine) == ("R", "A", "S")
        moved += nib.aff2axcodes(img.affine) != ("R", "A", "S")
        checked += 1
    print(f"\n{checked} volumes reoriented as nibabel does ({moved} were not RAS before)")
    assert checked >= 7 and moved >= 2


def test_lps_volume_and_bad_inputs(medgrain_bin, tmp_path):
    data = np.arange(4 * 3 * 2, dtype=np.int16).reshape(4, 3, 2)
    aff = np.array([[0, 0, -3.0, 10], [-2.0, 0, 0, 20], [0, 1.5, 0, -5], [0, 0, 0, 1]])
    src = tmp_path / "odd.nii.gz"
    nib.save(nib.Nifti1Image(data, aff), src)
    out = tmp_path / "odd_ras.nii.gz"
    r = subprocess.run([medgrain_bin, "-q", "reorient", str(src), "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    ref = nib.as_closest_canonical(nib.load(src))
    got = nib.load(out)
    assert got.get_data_dtype() == np.int16
    assert np.array_equal(np.asanyarray(got.dataobj), np.asanyarray(ref.dataobj))
    assert np.allclose(got.affine, ref.affine)
    four = tmp_path / "4d.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2, 3), np.float32), np.eye(4)), four)
    r = subprocess.run([medgrain_bin, "-q", "reorient", str(four), "--out", str(tmp_path / "x.nii.gz")],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "3D" in r.stderr
