"""Triplets cut from the synthetic CT volumes (`kind = "nifti"` source in the demo): one row per lesion's largest
axial cross-section, the lesion found as an ROI with the patient side and size of the ground truth, the slice shown
in radiological convention (patient right on the image's left)."""
import io
import json
import math

import nibabel as nib
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image


@pytest.fixture(scope="module")
def ct_rows(demo_dir):
    rows = [r for r in pq.read_table(demo_dir / "triplets").to_pylist() if r["source"] == "synth-ct"]
    assert rows, "the demo must contain CT-slice triplets"
    return rows


def test_every_lesion_is_found_on_its_largest_slice(demo_dir, ct_rows):
    d3 = demo_dir / "synth/3d"
    found = 0
    for line in (d3 / "ground_truth.jsonl").read_text().splitlines():
        t = json.loads(line)
        for f in t["findings"]:
            if not (f["present"] and f["mask"]):
                continue
            mask = np.asanyarray(nib.load(d3 / f["mask"]).dataobj) > 0
            best = int(np.argmax(mask.sum(axis=(0, 1))))
            row = next(r for r in ct_rows if r["source_path"] == f"volumes/{t['volume']}" and r["slice"]["index"] == best)
            assert row["slice"]["axis"] == "axial"
            roi = next(x for x in row["rois"] if x["label"] == f["finding"])
            assert roi["side_frame"] == "patient"
            if f["side"]:
                assert roi["side"] == f["side"], (f, roi)
            r = f["size_mm"] / 2
            lo = 2 * math.sqrt(max(r * r - 2.0 ** 2, 0.0)) - 1.8  # slices are 4 mm: the centre may be 2 mm away
            assert lo <= roi["measurements"]["long_axis_mm"] <= f["size_mm"] + 1.8, (f, roi["measurements"])
            # spherical lesions cut across: round, convex outlines; elongation = minor/major axis = √(1 − e²)
            m = roi["measurements"]
            if roi["area_px"] >= 30:
                assert m["elongation"] >= 0.8 and m["solidity"] >= 0.85, (f, m)
            assert abs(m["elongation"] - math.sqrt(1 - m["eccentricity"] ** 2)) < 1e-9, m
            assert f["finding"] in row["diseases"]
            found += 1
    assert found >= 4


def test_slices_are_radiological_and_untouched_by_rendering(demo_dir, ct_rows):
    row = ct_rows[0]
    img = np.asarray(Image.open(io.BytesIO(row["image"]["bytes"])))
    assert img.shape == (row["height"], row["width"])
    vol = nib.load(demo_dir / "synth/3d" / row["source_path"])
    hu = np.asanyarray(vol.dataobj)[:, :, row["slice"]["index"]].astype(float)
    # The volume is stored LPS (i → patient left, j → posterior): display rows are j, columns are i.
    expected = np.clip((hu.T - (40 - 200)) / 400, 0, 1) * 255
    assert np.array_equal(img, np.round(expected).astype(np.uint8))
    assert "#axial" in row["image"]["path"]
