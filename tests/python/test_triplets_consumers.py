"""The triplet Parquet proven by its real consumers (pyarrow, Hugging Face datasets, pycocotools) and checked
against the synthetic ground truth and scipy's connected components."""
import io
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from scipy import ndimage

SPEC_COLUMNS = [
    "id", "source", "source_path", "slice", "license", "image", "width", "height", "modality", "organ",
    "diseases", "coarse_caption", "rois", "knowledge", "description", "sections", "generator", "qc",
]
ROI_FIELDS = [
    "label", "bbox_xyxy", "mask_rle", "area_px", "area_fraction", "centroid_xy", "position", "side",
    "side_frame", "origin", "score", "measurements",
]


@pytest.fixture(scope="module")
def table(demo_dir):
    return pq.read_table(demo_dir / "triplets")


@pytest.fixture(scope="module")
def all_rows(table):
    return table.to_pylist()


@pytest.fixture(scope="module")
def rows(all_rows):
    """The rows of the 2D images (the CT-slice rows are checked in test_ct_slices.py)."""
    return [r for r in all_rows if r["source"] == "synth-2d"]


@pytest.fixture(scope="module")
def truth(demo_dir):
    lines = (demo_dir / "synth/2d/ground_truth.jsonl").read_text().splitlines()
    return {json.loads(l)["image"]: json.loads(l) for l in lines}


def test_pyarrow_reads_every_spec_column(table, rows, truth):
    assert len(rows) == len(truth)
    for c in SPEC_COLUMNS:
        assert c in table.column_names, c
    roi_type = table.schema.field("rois").type.value_type
    for f in ROI_FIELDS:
        assert roi_type.get_field_index(f) >= 0, f
    for f in ["long_axis_mm", "short_axis_mm", "volume_mm3", "mean_hu", "std_hu", "attenuation", "circularity",
              "solidity", "eccentricity", "elongation", "entropy_bits", "uniformity"]:
        assert roi_type.field("measurements").type.get_field_index(f) >= 0, f
    assert str(table.schema.field("image").type) == "struct<bytes: binary, path: string>"
    sections = table.schema.field("sections").type
    assert [sections.field(i).name for i in range(sections.num_fields)] == [
        "modality", "organ_detection", "roi_analysis", "lesion_texture", "local_global"]


def test_huggingface_datasets_decodes_images(demo_dir, truth):
    from datasets import Image as HFImage
    from datasets import load_dataset

    files = sorted(str(p) for p in (demo_dir / "triplets").glob("*.parquet"))
    ds = load_dataset("parquet", data_files=files, split="train").filter(lambda r: r["source"] == "synth-2d")
    assert len(ds) == len(truth)
    assert isinstance(ds.features["image"], HFImage)
    for i in [0, len(ds) // 2, len(ds) - 1]:
        row = ds[i]
        img = row["image"]
        assert isinstance(img, Image.Image)
        assert img.size == (row["width"], row["height"])
        original = Image.open(demo_dir / "synth/2d" / row["source_path"])
        assert np.array_equal(np.asarray(img), np.asarray(original)), "stored pixels must equal the source"


def test_rle_matches_pycocotools_and_masks(demo_dir, rows):
    checked = 0
    for r in rows:
        mask = np.asarray(Image.open(demo_dir / "synth/2d/masks" / Path(r["source_path"]).name))
        for roi in r["rois"]:
            rle = {"size": roi["mask_rle"]["size"], "counts": roi["mask_rle"]["counts"].encode()}
            decoded = mask_utils.decode(rle)
            expected = (mask == roi["label_id"]).astype(np.uint8)
            assert np.array_equal(decoded, expected), r["source_path"]
            ours = mask_utils.encode(np.asfortranarray(expected))
            assert ours["counts"].decode() == roi["mask_rle"]["counts"]
            assert int(mask_utils.area(rle)) == roi["area_px"]
            x, y, w, h = mask_utils.toBbox(rle)
            assert [int(x), int(y), int(x + w), int(y + h)] == roi["bbox_xyxy"]
            ys, xs = np.nonzero(expected)
            assert roi["centroid_xy"] == pytest.approx([xs.mean(), ys.mean()], abs=1e-3)
            assert roi["area_fraction"] == pytest.approx(expected.mean())
            checked += 1
    assert checked > 200


def test_components_equal_scipy(demo_dir, rows):
    full = ndimage.generate_binary_structure(2, 2)
    for r in rows:
        mask = np.asarray(Image.open(demo_dir / "synth/2d/masks" / Path(r["source_path"]).name))
        for label in np.unique(mask[mask > 0]):
            _, n = ndimage.label(mask == label, structure=full)
            ours = [roi for roi in r["rois"] if roi["label_id"] == label]
            assert len(ours) == n, (r["source_path"], label)


def iou(a, b):
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])
    return inter / (area(a) + area(b) - inter)


def test_rois_recover_ground_truth_lesions(rows, truth):
    lesions = 0
    for r in rows:
        t = truth[r["source_path"]]
        assert r["modality"] == t["modality"] and r["organ"] == t["organ"]
        assert len(r["rois"]) == len(t["lesions"]), r["source_path"]
        for lesion in t["lesions"]:
            roi = next(x for x in r["rois"] if x["label_id"] == lesion["label"])
            if roi["area_px"] > 20:
                assert iou(roi["bbox_xyxy"], lesion["bbox_xyxy"]) >= 0.9, (r["source_path"], lesion)
                lesions += 1
    assert lesions > 150


def test_text_is_consistent_with_the_record(all_rows):
    rows = all_rows
    for r in rows:
        s = r["sections"]
        assert all(s[k].strip() for k in s), r["id"]
        text = r["description"].lower()
        for banned in ["bounding box", "caption", "annotation"]:
            assert banned not in text
        if r["organ"]:
            assert r["organ"] in text
        for roi in r["rois"][:4]:
            assert roi["position"] in r["description"]
        assert r["qc"]["passed"], r["qc"]["flags"]
        assert r["generator"]["kind"] == "template" and r["generator"]["prompt_version"]
        assert len(r["id"]) == 32


def test_stats_agree_with_the_rows(demo_dir, all_rows):
    rows = all_rows
    stats = json.loads((demo_dir / "stats.json").read_text())
    assert stats["rows"] == len(rows)
    by_mod = {}
    for r in rows:
        by_mod[r["modality"]] = by_mod.get(r["modality"], 0) + 1
    assert stats["by_modality"] == by_mod
    assert stats["rois"] == sum(len(r["rois"]) for r in rows)
    assert sum(stats["rois_per_sample"]["counts"]) == len(rows)
