"""`medgrain export`: every format read by its real consumer.

- webdataset: the `webdataset` package reads every sample once; image bytes equal the Parquet image, the mask's
  values equal pycocotools' decode of each ROI's RLE, the text equals the description;
- coco: pycocotools loads the file, `annToMask` equals the row's RLE decode, COCOeval of the annotations against
  themselves gives AP 1.0 (segm and bbox);
- hf: `datasets.load_dataset(DEST)` returns the triplets with images decoded, and the vqa / grounded-reports configs;
- llava / sharegpt: a checker following LLaVA's loader conventions (turn order, one image token in the first human
  turn, image present, normalised boxes mapped back to pixels equal `bbox_xyxy` within one pixel);
- vqa: VQA-RAD-style fields; `medgrain eval vqa` scores the export against itself at 1.0; ROI masks equal the RLE;
- files: content-addressed names are the SHA-256 of the bytes; export.json lists every file with size and SHA-256;
- bad input: non-empty DEST refused (exit 2), --force replaces only an export, --split without splits exit 2, a row
  whose image is not an image listed in errors.jsonl (exit 1) while the rest is exported."""
import hashlib
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def export(medgrain_bin, src, fmt, dest, *extra, code=0):
    p = subprocess.run([medgrain_bin, "export", str(src), "--format", fmt, "--to", str(dest), *extra],
                       capture_output=True, text=True)
    assert p.returncode == code, p.stderr + p.stdout
    return p


def triplet_rows(dataset):
    rows = []
    for f in sorted((dataset / "triplets").glob("*.parquet")):
        rows += pq.read_table(f).to_pylist()
    assert len(rows) > 100
    return rows


def rle_decode(roi):
    r = roi["mask_rle"]
    return mask_utils.decode({"size": list(r["size"]), "counts": r["counts"].encode()}).astype(bool)


@pytest.fixture(scope="module")
def rows(demo_dir):
    return {r["id"]: r for r in triplet_rows(demo_dir)}


def check_manifest(dest):
    m = json.loads((dest / "export.json").read_text())
    listed = {f["path"] for f in m["files"]}
    on_disk = {str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()} - {"export.json"}
    assert listed == on_disk
    for f in m["files"]:
        data = (dest / f["path"]).read_bytes()
        assert len(data) == f["bytes"] and hashlib.sha256(data).hexdigest() == f["sha256"], f["path"]
        if f["path"].startswith(("images/", "masks/", "volumes/")):
            assert Path(f["path"]).name.split(".")[0] == f["sha256"]  # content-addressed
    return m


def test_webdataset_read_by_webdataset(medgrain_bin, demo_dir, rows, tmp_path):
    import webdataset as wds
    dest = tmp_path / "wds"
    export(medgrain_bin, demo_dir, "webdataset", dest, "--shard-mb", "1")
    shards = sorted(str(p) for p in dest.glob("shard-*.tar"))
    assert len(shards) >= 3  # 1 MB shards of a few MB of images
    seen = set()
    for s in wds.WebDataset(shards, shardshuffle=False):
        key = s["__key__"]
        assert key not in seen
        seen.add(key)
        row = rows[key]
        assert s["png"] == row["image"]["bytes"]
        assert s["txt"].decode() == row["description"]
        meta = json.loads(s["json"])
        assert meta["id"] == key and meta["modality"] == row["modality"] and "image" not in meta
        mask = np.array(Image.open(io.BytesIO(s["mask.png"])))
        assert mask.shape == (row["height"], row["width"])
        assert set(np.unique(mask)) <= set(range(len(row["rois"]) + 1))
        for i, roi in enumerate(row["rois"]):
            np.testing.assert_array_equal(mask == i + 1, rle_decode(roi))
    assert seen == set(rows)
    for s in shards:
        assert Path(s).stat().st_size <= 1024 * 1024 or len(list(wds.WebDataset(s, shardshuffle=False))) == 1
    check_manifest(dest)


def test_coco_read_by_pycocotools(medgrain_bin, demo_dir, rows, tmp_path):
    dest = tmp_path / "coco"
    export(medgrain_bin, demo_dir, "coco", dest)
    coco = COCO(str(dest / "instances.json"))
    assert len(coco.getImgIds()) == len(rows)
    n = 0
    for img in coco.loadImgs(coco.getImgIds()):
        row = rows[img["medgrain_id"]]
        assert (dest / img["file_name"]).read_bytes() == row["image"]["bytes"]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[img["id"]]))
        assert len(anns) == len(row["rois"])
        for ann, roi in zip(anns, row["rois"]):
            np.testing.assert_array_equal(coco.annToMask(ann).astype(bool), rle_decode(roi))
            x0, y0, x1, y1 = roi["bbox_xyxy"]
            assert ann["bbox"] == [x0, y0, x1 - x0, y1 - y0]
            assert coco.loadCats(ann["category_id"])[0]["name"] == roi["label"]
            assert ann["area"] == roi["area_px"] and ann["iscrowd"] == 0
            n += 1
    assert n > 100
    for iou in ("segm", "bbox"):
        dets = coco.loadRes([dict(a, score=1.0) for a in coco.dataset["annotations"]])
        e = COCOeval(coco, dets, iou)
        e.evaluate(), e.accumulate(), e.summarize()
        assert e.stats[0] == pytest.approx(1.0)
    check_manifest(dest)


def test_hf_read_by_datasets(medgrain_bin, demo_dir, rows, tmp_path):
    import datasets
    dest = tmp_path / "hf"
    export(medgrain_bin, demo_dir, "hf", dest)
    ds = datasets.load_dataset(str(dest))
    assert list(ds) == ["train"] and ds["train"].num_rows == len(rows)
    first = ds["train"][0]
    assert isinstance(first["image"], Image.Image)
    assert first["id"] in rows and first["image"].size == (rows[first["id"]]["width"], rows[first["id"]]["height"])
    vqa = datasets.load_dataset(str(dest), "vqa")
    n_vqa = sum(pq.read_metadata(f).num_rows for f in (demo_dir / "vqa").glob("*.parquet"))
    assert vqa["train"].num_rows == n_vqa
    gr = datasets.load_dataset(str(dest), "grounded_reports")
    assert gr["train"].num_rows == sum(pq.read_metadata(f).num_rows for f in (demo_dir / "grounded_reports").glob("*.parquet"))
    card = (dest / "README.md").read_text()
    assert card.startswith("---\n") and "task_categories" in card and "size_categories" in card
    check_manifest(dest)


BOX = re.compile(r"\[(\d\.\d{3}), (\d\.\d{3}), (\d\.\d{3}), (\d\.\d{3})\]")


def check_conversation(dest, image, turns, rows_by_image):
    """LLaVA's conventions: alternate human/gpt starting with human, `<image>` once, in the first human turn."""
    assert (dest / image).is_file()
    assert len(turns) >= 2 and len(turns) % 2 == 0
    assert all(t[0] == ("human" if i % 2 == 0 else "gpt") for i, t in enumerate(turns))
    assert turns[0][1].count("<image>") == 1 and all("<image>" not in t[1] for t in turns[1:])
    assert all(t[1].strip() for t in turns)
    row = rows_by_image.get(image)
    boxes = BOX.findall(turns[0][1])
    if row is not None and boxes:
        assert len(boxes) == len(row["rois"])
        for b, roi in zip(boxes, row["rois"]):
            x0, y0, x1, y1 = (float(v) for v in b)
            px = [x0 * row["width"], y0 * row["height"], x1 * row["width"], y1 * row["height"]]
            assert np.allclose(px, roi["bbox_xyxy"], atol=1.0), (px, roi["bbox_xyxy"])
    return bool(boxes)


def rows_by_image(dest, rows):
    out = {}
    for r in rows.values():
        h = hashlib.sha256(r["image"]["bytes"]).hexdigest()
        out[f"images/{h[:2]}/{h}.png"] = r
    return out


def test_llava_and_sharegpt_follow_loader_conventions(medgrain_bin, demo_dir, rows, tmp_path):
    export(medgrain_bin, demo_dir, "llava", tmp_path / "llava")
    export(medgrain_bin, demo_dir, "sharegpt", tmp_path / "sharegpt")
    llava = json.loads((tmp_path / "llava/llava.json").read_text())
    by_img = rows_by_image(tmp_path / "llava", rows)
    with_boxes = 0
    for rec in llava:
        turns = [(t["from"], t["value"]) for t in rec["conversations"]]
        with_boxes += check_conversation(tmp_path / "llava", rec["image"], turns, by_img)
    ids = [r["id"] for r in llava]
    assert len(ids) == len(set(ids))
    captions = {r["id"]: r for r in llava if r["id"] in rows}
    assert len(captions) == len(rows)
    for i, rec in captions.items():
        assert rec["conversations"][1]["value"] == rows[i]["description"]
    assert with_boxes == sum(1 for r in rows.values() if r["rois"])
    assert any(r["id"].endswith("-grounded-vqa") and r["image"].endswith(".nii.gz") for r in llava)
    # Closed and open fact questions.
    facts = [t["value"] for r in llava if r["id"].endswith("-vqa") for t in r["conversations"][1::2]]
    assert "Yes" in facts and "No" in facts and "CT" in facts
    # Deterministic: the same export twice gives the same file.
    export(medgrain_bin, demo_dir, "llava", tmp_path / "llava2")
    assert (tmp_path / "llava2/llava.json").read_bytes() == (tmp_path / "llava/llava.json").read_bytes()
    sharegpt = json.loads((tmp_path / "sharegpt/sharegpt.json").read_text())
    assert len(sharegpt) == len(llava)
    for rec, lrec in zip(sharegpt, llava):
        assert rec["images"] == [lrec["image"]]
        turns = [("human" if m["role"] == "user" else "gpt" if m["role"] == "assistant" else m["role"],
                  m["content"].replace("<image>", "<image>\n", 1)) for m in rec["messages"]]
        check_conversation(tmp_path / "sharegpt", rec["images"][0], turns, by_img)
        assert [t[1] for t in turns[1::2]] == [t["value"] for t in lrec["conversations"][1::2]]
    check_manifest(tmp_path / "sharegpt")


def test_vqa_export_and_eval_against_itself(medgrain_bin, demo_dir, rows, tmp_path):
    dest = tmp_path / "vqa"
    export(medgrain_bin, demo_dir, "vqa", dest)
    items = json.loads((dest / "vqa.json").read_text())
    keys = {"qid", "image_name", "question", "answer", "answer_type", "question_type", "modality", "location", "mask_ref"}
    assert all(set(i) == keys for i in items)
    assert {i["answer_type"] for i in items} == {"CLOSED", "OPEN"}
    assert len({i["qid"] for i in items}) == len(items)
    by_img = rows_by_image(dest, rows)
    checked = 0
    for i in items:
        assert (dest / i["image_name"]).is_file()
        if i["mask_ref"]:
            assert (dest / i["mask_ref"]).is_file()
            row = by_img.get(i["image_name"])
            if row is not None:  # a triplet ROI question: the PNG mask is the ROI's RLE
                m = np.array(Image.open(dest / i["mask_ref"])) > 0
                assert any(np.array_equal(m, rle_decode(r)) for r in row["rois"])
                checked += 1
    assert checked > 50
    grounded = [i for i in items if i["image_name"].startswith("volumes/")]
    assert len(grounded) == sum(pq.read_metadata(f).num_rows for f in (demo_dir / "vqa").glob("*.parquet"))
    pred = tmp_path / "pred.jsonl"
    pred.write_text("".join(json.dumps({"qid": i["qid"], "answer": i["answer"]}) + "\n" for i in items))
    p = subprocess.run([medgrain_bin, "eval", "vqa", "--pred", str(pred), "--gold", str(dest / "vqa.json"),
                        "--protocol", "llava-med", "--json"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    o = json.loads(p.stdout)["overall"]
    assert o["closed_accuracy"] == 1.0 and o["open_recall"] == 1.0 and o["questions"] == len(items)
    check_manifest(dest)


def test_export_refusals_and_bad_rows(medgrain_bin, demo_dir, tmp_path):
    dest = tmp_path / "d"
    dest.mkdir()
    (dest / "mine.txt").write_text("keep")
    p = export(medgrain_bin, demo_dir, "coco", dest, code=2)
    assert "not empty" in p.stderr
    p = export(medgrain_bin, demo_dir, "coco", dest, "--force", code=2)  # not an export: never deleted
    assert (dest / "mine.txt").read_text() == "keep"
    export(medgrain_bin, demo_dir, "coco", tmp_path / "e")
    export(medgrain_bin, demo_dir, "llava", tmp_path / "e", code=2)
    export(medgrain_bin, demo_dir, "llava", tmp_path / "e", "--force")
    assert not (tmp_path / "e/instances.json").exists() and (tmp_path / "e/llava.json").is_file()
    p = export(medgrain_bin, demo_dir, "coco", tmp_path / "s", "--split", "test", code=2)
    assert "split" in p.stderr
    p = export(medgrain_bin, tmp_path / "d", "coco", tmp_path / "x", code=2)
    assert "not a medgrain dataset" in p.stderr
    p = export(medgrain_bin, demo_dir, "coco", demo_dir / "inside", code=2)
    # A dataset with one row whose image bytes are not an image: listed, the rest exported, exit 1.
    bad = tmp_path / "bad"
    shutil.copytree(demo_dir / "triplets", bad / "triplets")
    part = sorted((bad / "triplets").glob("*.parquet"))[0]
    t = pq.read_table(part)
    rows_ = t.to_pylist()
    broken = [rows_[3]["id"], rows_[5]["id"]]
    rows_[3]["image"]["bytes"] = b"garbage bytes"
    rows_[5]["image"]["bytes"] = rows_[5]["image"]["bytes"][: len(rows_[5]["image"]["bytes"]) // 2]  # truncated PNG
    pq.write_table(pa.Table.from_pylist(rows_, schema=t.schema), part)
    out = tmp_path / "bad_out"
    export(medgrain_bin, bad, "coco", out, code=1)
    errs = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [e["id"] for e in errs] == broken and {e["stage"] for e in errs} == {"image"}
    assert "decoded" in errs[1]["error"]
    coco = json.loads((out / "instances.json").read_text())
    n_rows = sum(pq.read_metadata(f).num_rows for f in (bad / "triplets").glob("*.parquet"))
    assert len(coco["images"]) == n_rows - 2
    assert not list(out.rglob("*.tmp-*"))
