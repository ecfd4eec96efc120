"""COCO instance annotations as an `image-folder` mask source (`annotations = "instances.json"`): polygons traced
from scikit-image's coins image (find_contours), boxes and RLE masks. Every ROI's mask must equal what pycocotools
makes of the same annotation (`frPyObjects` + `decode`: its own polygon and box rasteriser), compared as decoded
masks; ROI labels are the category names."""
import json
import shutil
import subprocess

import numpy as np
import pyarrow.parquet as pq
from PIL import Image
from pycocotools import mask as M
from skimage import data, measure


def test_polygons_boxes_and_rle_equal_pycocotools(medgrain_bin, tmp_path):
    coins = data.coins()
    h, w = coins.shape
    root = tmp_path / "imgs"
    root.mkdir()
    Image.fromarray(coins).save(root / "coins.png")
    Image.fromarray(data.camera()).save(root / "camera.png")
    lab = measure.label(coins > 110, connectivity=2)
    anns, expected = [], []
    for region in measure.regionprops(lab):
        if region.area < 400:
            continue
        contour = max(measure.find_contours(lab == region.label, 0.5), key=len)
        poly = [float(v) for yx in contour for v in (yx[1], yx[0])]  # (x, y) pairs
        anns.append({"id": len(anns) + 1, "image_id": 1, "category_id": 1, "segmentation": [poly],
                     "bbox": list(map(float, region.bbox))})
        expected.append(("coin", M.decode(M.merge(M.frPyObjects([poly], h, w))).astype(bool)))
    assert len(anns) >= 10
    # two boxes without segmentation (fractional corners) and one compressed-RLE region on the second image
    ch, cw = data.camera().shape
    for bb in ([30.3, 40.7, 100.2, 60.5], [200.0, 10.0, 50.0, 80.0]):
        anns.append({"id": len(anns) + 1, "image_id": 2, "category_id": 2, "bbox": bb})
    rle_mask = np.zeros((ch, cw), np.uint8, order="F")
    rle_mask[300:380, 100:260] = 1
    rle = M.encode(rle_mask)
    anns.append({"id": len(anns) + 1, "image_id": 2, "category_id": 3,
                 "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()}})
    coco = {"images": [{"id": 1, "file_name": "coins.png", "height": h, "width": w},
                       {"id": 2, "file_name": "camera.png", "height": ch, "width": cw}],
            "annotations": anns,
            "categories": [{"id": 1, "name": "coin"}, {"id": 2, "name": "box region"}, {"id": 3, "name": "rle region"}]}
    (root / "instances.json").write_text(json.dumps(coco))
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"""
recipe = "triplets"
[[source]]
name = "coco"
kind = "image-folder"
root = "{root}"
images = "*.png"
annotations = "instances.json"
[source.rois]
unit = "label"
min_area_px = 1          # keep every fragment: the comparison is pixel for pixel
[generator]
kind = "template"
""")
    out = tmp_path / "out"
    r = subprocess.run([medgrain_bin, "-q", "build", str(cfg), "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rows = {x["source_path"]: x for x in pq.read_table(out / "triplets").to_pylist()}
    got = rows["coins.png"]["rois"]
    ours = sorted((x["label"], M.decode({"size": x["mask_rle"]["size"], "counts": x["mask_rle"]["counts"]}).astype(bool).tobytes()) for x in got)
    # overlapping annotations (touching coins' contours share pixels): the later one keeps them, as documented
    later = np.zeros((h, w), bool)
    final = []
    for name, m in reversed(expected):
        final.append((name, m & ~later))
        later |= m
    theirs = sorted((name, m.tobytes()) for name, m in final)
    assert len(ours) == len(theirs)
    assert ours == theirs, "polygon masks differ from pycocotools"
    cam = rows["camera.png"]["rois"]
    ref_boxes = [M.decode(M.frPyObjects(np.array([bb]), ch, cw))[:, :, 0].astype(bool) for bb in
                 ([30.3, 40.7, 100.2, 60.5], [200.0, 10.0, 50.0, 80.0])]
    got_boxes = sorted(M.decode({"size": x["mask_rle"]["size"], "counts": x["mask_rle"]["counts"]}).astype(bool).tobytes()
                       for x in cam if x["label"] == "box region")
    assert got_boxes == sorted(m.tobytes() for m in ref_boxes)
    (rle_roi,) = [x for x in cam if x["label"] == "rle region"]
    assert np.array_equal(M.decode({"size": rle_roi["mask_rle"]["size"], "counts": rle_roi["mask_rle"]["counts"]}),
                          rle_mask)
    # a config with both masks and annotations is refused
    cfg.write_text(cfg.read_text().replace('annotations = "instances.json"',
                                           'annotations = "instances.json"\nmasks = "m/{stem}.png"'))
    r = subprocess.run([medgrain_bin, "-q", "build", str(cfg), "--out", str(tmp_path / "o2")], capture_output=True,
                       text=True)
    assert r.returncode == 2 and "not both" in r.stderr


def test_box_csv_vindr_and_rsna_layouts_equal_pycocotools_boxes(medgrain_bin, tmp_path):
    """Box lists as CSV: VinDr-CXR corners keyed by image id (file stem), RSNA origin + size with empty rows for
    images without a box. Each ROI's mask must equal pycocotools' rasterisation of the same COCO bbox."""
    root = tmp_path / "imgs"
    root.mkdir()
    cam = data.camera()
    h, w = cam.shape
    for name in ("1.2.840.1", "b", "c"):  # a DICOM-UID-like stem with dots, matched without its extension
        Image.fromarray(cam).save(root / f"{name}.png")
    vindr = [("1.2.840.1", "Nodule/Mass", 100.5, 120.0, 180.25, 170.0), ("1.2.840.1", "Aortic enlargement", 300, 50, 360, 140),
             ("b", "Pleural effusion", 10, 400, 200, 500), ("c", "No finding", None, None, None, None)]
    lines = ["image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max"]
    for img, cls, *box in vindr:
        lines.append(",".join([img, cls, "0", "R1"] + ["" if v is None else str(v) for v in box]))
    (root / "train.csv").write_text("\n".join(lines) + "\n")
    rsna = [("b", 50.0, 60.0, 120.0, 90.5, 1), ("c", None, None, None, None, 0)]
    (root / "rsna.csv").write_text("patientId,x,y,width,height,Target\n" + "".join(
        ",".join([p] + ["" if v is None else str(v) for v in (x, y, bw, bh)] + [str(t)]) + "\n"
        for p, x, y, bw, bh, t in rsna))

    def build(annotations, columns, out):
        cfg = tmp_path / f"{out}.toml"
        cfg.write_text(f"""
recipe = "triplets"
[[source]]
name = "boxes"
kind = "image-folder"
root = "{root}"
images = "*.png"
annotations = "{annotations}"
box_columns = {columns}
[source.rois]
unit = "label"
min_area_px = 1
[generator]
kind = "template"
""")
        r = subprocess.run([medgrain_bin, "-q", "build", str(cfg), "--out", str(tmp_path / out)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        return {x["source_path"]: x["rois"] for x in pq.read_table(tmp_path / out / "triplets").to_pylist()}

    def decoded(roi):
        return M.decode({"size": roi["mask_rle"]["size"], "counts": roi["mask_rle"]["counts"]}).astype(bool)

    def coco_box(xywh):
        return M.decode(M.frPyObjects(np.array([xywh], float), h, w))[:, :, 0].astype(bool)

    rows = build("train.csv", '{ file = "image_id", label = "class_name" }', "vindr")
    assert rows["c.png"] == []  # "No finding": listed, no box
    for img, cls, x0, y0, x1, y1 in vindr[:3]:
        (roi,) = [x for x in rows[f"{img}.png"] if x["label"] == cls]
        assert np.array_equal(decoded(roi), coco_box([x0, y0, x1 - x0, y1 - y0])), cls
    rows = build("rsna.csv", '{ file = "patientId", label = "Target" }', "rsna")
    (roi,) = rows["b.png"]
    assert roi["label"] == "1" and np.array_equal(decoded(roi), coco_box([50.0, 60.0, 120.0, 90.5]))
    assert rows["c.png"] == [] and rows["1.2.840.1.png"] == []
