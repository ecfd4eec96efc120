#!/usr/bin/env python3
"""The 2D triplet path written as a competent Python user would write it, for `scripts/bench_triplets.py` (#18).

    python scripts/triplets_reference.py CASE ROOT OUT

The same steps `medgrain build` runs per sample with the template writer, with the field's usual libraries:
decode (Pillow for PNG, pydicom for DICOM with its modality and VOI LUTs, nibabel for a slice cut from a volume),
luminance, connected components per label (scipy.ndimage.label, full connectivity), per ROI its box, area,
centroid, position words, COCO RLE (pycocotools), shape descriptors (scikit-image regionprops: perimeter,
eccentricity, axis lengths, solidity), 32-bin IBSI entropy / uniformity, appearance against a ring (scipy binary
dilation blocked by other ROIs, erosion for the core), foreground fraction, a template description of the five
sections, an id (SHA-256), the input files' SHA-256 and pyarrow Parquet parts of 256 rows with the image bytes.
Nothing is slowed on purpose: whole-array numpy operations, work cropped to each ROI's window.

CASE is `png` (ROOT holds images/*.png, masks/{stem}.png, metadata.csv), `dicom` (images/*.dcm, masks/{stem}.png,
metadata.csv) or `nifti` (ROOT holds volumes/*.nii.gz and lesions/{stem}/*.nii.gz: each lesion's largest axial
cross-section, mediastinum window). Prints one JSON line: {"rows": N, "rois": M, "seconds": S}.
"""
import csv
import hashlib
import io
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image
from pycocotools import mask as mask_util
from scipy import ndimage
from skimage.measure import regionprops

FULL = np.ones((3, 3), dtype=bool)
CROSS = ndimage.generate_binary_structure(2, 1)
MODALITY_WORDS = {"CT": "computed tomography (CT)", "MRI": "magnetic resonance (MR)", "X-ray": "radiograph (X-ray)"}
ORDINALS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth"]


def horizontal(f):
    return "left" if f < 0.2 else "center-left" if f < 0.4 else "center" if f < 0.6 else \
        "center-right" if f < 0.8 else "right"


def vertical(f):
    return "upper" if f < 1 / 3 else "middle" if f < 2 / 3 else "lower"


def luminance(img):
    if img.ndim == 3:
        img = img[..., 0] * 0.299 + img[..., 1] * 0.587 + img[..., 2] * 0.114
    return img.astype(np.float32) / 255.0


def entropy_uniformity(values, bins=32):
    lo, hi = values.min(), values.max()
    if hi > lo:
        k = np.minimum(np.floor(bins * (values - lo) / (hi - lo)).astype(int), bins - 1)
    else:
        k = np.zeros(len(values), dtype=int)
    p = np.bincount(k, minlength=bins) / len(values)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum()), float((p * p).sum())


def appearance(luma, inside, others, box):
    """Contrast against a ring, core texture and edge sharpness, in a window around the ROI."""
    area = int(inside[box].sum())
    radius = int(min(max(round(math.sqrt(area / math.pi) * 0.6), 3), 25))
    h, w = inside.shape
    r0, r1 = max(box[0].start - radius - 1, 0), min(box[0].stop + radius + 1, h)
    c0, c1 = max(box[1].start - radius - 1, 0), min(box[1].stop + radius + 1, w)
    roi, blocked, val = inside[r0:r1, c0:c1], others[r0:r1, c0:c1], luma[r0:r1, c0:c1]
    free = ~blocked
    grown_once = ndimage.binary_dilation(roi, FULL, mask=free | roi)
    grown = ndimage.binary_dilation(roi, FULL, iterations=radius, mask=free | roi)
    eroded_once = ndimage.binary_erosion(roi, CROSS, border_value=0)
    core = eroded_once
    for _ in range(1, max(radius // 2, 1)):
        nxt = ndimage.binary_erosion(core, CROSS, border_value=0)
        if not nxt.any():
            break
        core = nxt
    if not core.any():
        core = roi
    ring = grown & ~roi & free
    if not ring.any():
        return None
    mean_in, mean_ring = float(val[roi].mean()), float(val[ring].mean())
    std_core = float(val[core].std())
    inner, outer = val[roi & ~eroded_once], val[grown_once & ~roi & free]
    diff = mean_in - mean_ring
    sharp = min(max((inner.mean() - outer.mean()) / diff, 0.0), 1.5) if len(inner) and len(outer) and \
        abs(diff) > 1e-9 else 0.0
    contrast = "brighter" if diff > 0.04 else "darker" if diff < -0.04 else "similar"
    margin = "indistinct" if contrast == "similar" else "well-defined" if sharp >= 0.5 else "ill-defined"
    return {"mean_inside": mean_in, "mean_ring": mean_ring, "std_inside": std_core, "edge_sharpness": float(sharp),
            "contrast": contrast, "texture": "heterogeneous" if std_core > 0.06 else "homogeneous", "margin": margin}


def rois_of(labels, luma, names):
    h, w = labels.shape
    any_roi = labels != 0
    out = []
    for label in np.unique(labels[any_roi]):
        comp, n = ndimage.label(labels == label, structure=FULL)
        sizes = np.bincount(comp.ravel())[1:]
        boxes = ndimage.find_objects(comp)
        for k in sorted(range(n), key=lambda k: -sizes[k]):  # largest first
            box = boxes[k]
            inside = comp == k + 1
            crop = inside[box]
            ys, xs = np.nonzero(crop)
            cy, cx = ys.mean() + box[0].start, xs.mean() + box[1].start
            props = regionprops(crop.astype(np.uint8))[0]
            values = luma[box][crop].astype(np.float64)
            ent, uni = entropy_uniformity(values)
            rle = mask_util.encode(np.asfortranarray(inside.astype(np.uint8)))
            perim = props.perimeter
            x = (cx + 0.5) / w
            out.append({
                "label": names.get(int(label), f"label {label}"), "label_id": int(label),
                "bbox_xyxy": [box[1].start, box[0].start, box[1].stop, box[0].stop],
                "mask_rle": {"size": [h, w], "counts": rle["counts"].decode()},
                "area_px": int(sizes[k]), "area_fraction": float(sizes[k]) / (h * w),
                "centroid_xy": [float(cx), float(cy)],
                "position": f"{horizontal(x)}, {vertical((cy + 0.5) / h)}",
                "side": None if horizontal(x) == "center" else ("left" if x < 0.5 else "right"),
                "measurements": {
                    "circularity": 4 * math.pi * sizes[k] / perim ** 2 if perim > 0 else 0.0,
                    "solidity": float(props.solidity), "eccentricity": float(props.eccentricity),
                    "elongation": float(props.axis_minor_length / props.axis_major_length)
                    if props.axis_major_length > 0 else None,
                    "entropy_bits": ent, "uniformity": uni},
                "appearance": appearance(luma, inside, any_roi & ~inside, box),
            })
    return out


def foreground_fraction(luma):
    border = np.concatenate([luma[0], luma[-1], luma[:, 0], luma[:, -1]])
    bg = np.sort(border)[len(border) // 2]
    return float((np.abs(luma - bg) > 0.08).mean())


def describe(meta, width, height, colour, fg, rois):
    modality = MODALITY_WORDS.get(meta["modality"], meta["modality"])
    sec = {"modality": f"The image is a {modality} image of the {meta['organ']} ({width}×{height} pixels, "
                       f"{'colour' if colour else 'greyscale'})."}
    sec["organ_detection"] = f"The examination concerns the {meta['organ']}. Tissue occupies about " \
                             f"{round(fg * 100)}% of the frame; the rest is background."
    parts = [f"There are {len(rois)} regions of interest."] if rois else ["No region of interest is marked."]
    for i, r in enumerate(rois):
        x0, y0, x1, y1 = r["bbox_xyxy"]
        parts.append(f"The {ORDINALS[min(i, 9)]} region, {r['area_fraction'] * 100:.1f}% of the image area "
                     f"({x1 - x0}×{y1 - y0} pixels), sits in the {r['position']} part of the frame"
                     + (f", on the {r['side']} side of the image." if r["side"] else "."))
        m = r["measurements"]
        parts.append(f"Its outline is {'round' if m['circularity'] > 0.85 else 'irregular'} and "
                     f"{'smooth' if m['solidity'] > 0.9 else 'lobulated'}.")
    sec["roi_analysis"] = " ".join(parts)
    tex = [f"The {ORDINALS[min(i, 9)]} region is {a['contrast']} than its surroundings, {a['texture']}, with a "
           f"{a['margin']} margin (entropy {r['measurements']['entropy_bits']:.2f} bits)."
           for i, r in enumerate(rois) if (a := r["appearance"])]
    sec["lesion_texture"] = " ".join(tex) or "No lesion texture can be assessed."
    sec["local_global"] = f"The findings ({', '.join(meta['diseases']) or 'none'}) lie within the {meta['organ']}."
    qc = [f"missing:{d}" for d in meta["diseases"] if d != "normal" and d not in sec["local_global"]]
    return sec, {"passed": not qc, "flags": qc}


def png_bytes(img):
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def row(source, rel, meta, img, labels, image_bytes, names, slice_=None):
    h, w = labels.shape
    luma = luminance(img)
    rois = rois_of(labels, luma, names)
    colour = img.ndim == 3
    sec, qc = describe(meta, w, h, colour, foreground_fraction(luma), rois)
    key = f"{source}\0{rel}" + (f"\0{slice_}" if slice_ else "")
    return {
        "id": hashlib.sha256(key.encode()).hexdigest()[:32], "source": source, "source_path": rel,
        "image": {"bytes": image_bytes, "path": rel}, "width": w, "height": h, "modality": meta["modality"],
        "organ": meta["organ"], "diseases": meta["diseases"],
        "coarse_caption": f"{MODALITY_WORDS.get(meta['modality'], meta['modality'])} image of the {meta['organ']}"
                          f" showing {', '.join(meta['diseases'])}.",
        "rois": rois, "description": " ".join(sec.values()), "sections": sec, "qc": qc,
    }


def read_metadata(root):
    with open(root / "metadata.csv", newline="") as f:
        return {r["file"]: {"modality": r["modality"], "organ": r["organ"],
                            "diseases": [d for d in r["disease"].split(";") if d]} for r in csv.DictReader(f)}


def png_rows(root):
    meta = read_metadata(root)
    for path in sorted((root / "images").glob("*.png")):
        rel = f"images/{path.name}"
        data = path.read_bytes()
        img = np.asarray(Image.open(io.BytesIO(data)))
        labels = np.asarray(Image.open(root / "masks" / path.name))
        m = meta[rel]
        yield row("synth-2d", rel, m, img, labels, data, {1: m["diseases"][0]}), \
            [path, root / "masks" / path.name]


def dicom_rows(root):
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut
    meta = read_metadata(root)
    for path in sorted((root / "images").glob("*.dcm")):
        rel = f"images/{path.name}"
        ds = pydicom.dcmread(path)
        hu = apply_modality_lut(ds.pixel_array, ds)
        shown = apply_voi_lut(hu, ds)
        lo, hi = float(ds.WindowCenter) - float(ds.WindowWidth) / 2, float(ds.WindowCenter) + float(ds.WindowWidth) / 2
        img = np.clip(np.round((shown - lo) / (hi - lo) * 255), 0, 255).astype(np.uint8)
        mask = root / "masks" / f"{path.stem}.png"
        labels = np.asarray(Image.open(mask))
        m = meta[rel]
        yield row("dicom", rel, m, img, labels, png_bytes(img), {1: m["diseases"][0]}), [path, mask]


def nifti_rows(root):
    import nibabel as nib
    for vol_path in sorted((root / "volumes").glob("*.nii.gz")):
        stem = vol_path.name[:-len(".nii.gz")]
        vol = nib.as_closest_canonical(nib.load(vol_path))  # RAS: radiological display flips x
        hu = np.asarray(vol.dataobj, dtype=np.float64)
        masks = sorted((root / "lesions" / stem).glob("*.nii.gz"))
        arrays = [np.asarray(nib.as_closest_canonical(nib.load(p)).dataobj) > 0 for p in masks]
        for p, m in zip(masks, arrays):
            z = int(np.argmax(m.sum(axis=(0, 1))))
            img = np.clip(np.round((hu[:, :, z] - (40 - 200)) / 400 * 255), 0, 255).astype(np.uint8)
            img = np.flipud(img.T)[:, ::-1]  # rows anterior → posterior, patient's left on the right
            labels = np.zeros(img.shape, dtype=np.uint8)
            for k, mm in enumerate(arrays, start=1):
                labels[np.flipud(mm[:, :, z].T)[:, ::-1]] = k
            name = p.name[:-len(".nii.gz")]
            meta = {"modality": "CT", "organ": "chest", "diseases": [name]}
            names = {k: q.name[:-len(".nii.gz")] for k, q in enumerate(masks, start=1)}
            yield row("ct", f"volumes/{vol_path.name}", meta, img, labels, png_bytes(img), names,
                      f"axial{z}"), [vol_path] + masks


def main():
    case, root, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    out.mkdir(parents=True, exist_ok=True)
    rows_of = {"png": png_rows, "dicom": dicom_rows, "nifti": nifti_rows}[case]
    t = time.perf_counter()
    n = n_rois = part = 0
    batch, hashed, inputs = [], set(), []
    for r, files in rows_of(root):
        for f in files:
            if f not in hashed:
                hashed.add(f)
                inputs.append({"path": str(f), "sha256": sha256_file(f)})
        batch.append(r)
        n += 1
        n_rois += len(r["rois"])
        if len(batch) == 256:
            pq.write_table(pa.Table.from_pylist(batch), out / f"part-{part:05}.parquet", compression="snappy")
            batch, part = [], part + 1
    if batch:
        pq.write_table(pa.Table.from_pylist(batch), out / f"part-{part:05}.parquet", compression="snappy")
    (out / "inputs.jsonl").write_text("".join(json.dumps(i) + "\n" for i in inputs))
    print(json.dumps({"rows": n, "rois": n_rois, "seconds": time.perf_counter() - t}))


if __name__ == "__main__":
    main()
