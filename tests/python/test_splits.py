"""`[splits]`: every row carries its split; a patient's images, a volume's slices never fall in two splits; the
assignment is the documented hash (recomputed here from the README's definition), stable when the dataset grows;
stats.json and inspect count per split; `export --split` and the `hf` card follow it; DICOM PatientID works as a key;
a sample without its key is an error line, bad ratios are exit 2."""
import csv
import hashlib
import json
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pydicom
import pytest
from pydicom.data import get_testdata_file


def assign(seed, key, ratios):
    u = int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "little") / 2 ** 64
    if u < ratios[0]:
        return "train"
    if u < ratios[0] + ratios[1]:
        return "validation"
    return "test"


def rows_of(out):
    rows = []
    for f in sorted((out / "triplets").glob("*.parquet")):
        rows += pq.read_table(f, columns=["id", "source", "source_path", "slice", "split"]).to_pylist()
    return rows


def build(medgrain_bin, cfg, out, code=0):
    p = subprocess.run([medgrain_bin, "-q", "build", str(cfg), "--out", str(out)], capture_output=True, text=True)
    assert p.returncode == code, p.stderr
    return p


SPLITS = '[splits]\nby = "patient"\nkey = "patient_id"\nratios = [0.6, 0.2, 0.2]\nseed = 7\n'


def folder_with_patients(demo_dir, root, n=90, missing=None):
    (root / "images").mkdir(parents=True)
    imgs = sorted((demo_dir / "synth/2d/images").glob("*.png"))[:n]
    with open(root / "metadata.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "modality", "patient_id"])
        for i, p in enumerate(imgs):
            shutil.copy(p, root / "images" / p.name)
            pid = "" if missing == i else f"P{i // 4:03d}"
            w.writerow([f"images/{p.name}", "CT", pid])
    return imgs


def config(root, extra=SPLITS):
    cfg = root / "build.toml"
    cfg.write_text('recipe = "triplets"\n[output]\nshard_size = 16\n[[source]]\nname = "s"\nkind = "image-folder"\n'
                   f'root = "."\nimages = "images/*.png"\nmetadata = "metadata.csv"\n[generator]\nkind = "template"\n{extra}')
    return cfg


def test_patient_splits(medgrain_bin, demo_dir, tmp_path):
    import datasets
    root = tmp_path / "p"
    folder_with_patients(demo_dir, root)
    build(medgrain_bin, config(root), root / "out")
    rows = rows_of(root / "out")
    meta = {r["file"]: r["patient_id"] for r in csv.DictReader(open(root / "metadata.csv"))}
    assert len(rows) == 90 and all(r["split"] in ("train", "validation", "test") for r in rows)
    by_patient = {}
    for r in rows:
        pid = meta[r["source_path"]]
        by_patient.setdefault(pid, set()).add(r["split"])
        assert r["split"] == assign(7, pid, [0.6, 0.2, 0.2])
    assert all(len(s) == 1 for s in by_patient.values())
    counts = {s: sum(r["split"] == s for r in rows) for s in ("train", "validation", "test")}
    assert all(counts.values())  # 23 patients: every split is used
    stats = json.loads((root / "out/stats.json").read_text())
    assert stats["by_split"] == counts
    ins = json.loads(subprocess.run([medgrain_bin, "inspect", str(root / "out"), "--json"], capture_output=True,
                                    text=True).stdout)
    assert ins["by_split"] == counts
    # Export of one split, and the hf card with all three.
    p = subprocess.run([medgrain_bin, "export", str(root / "out"), "--format", "coco", "--to", str(tmp_path / "c"),
                        "--split", "test"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    coco = json.loads((tmp_path / "c/instances.json").read_text())
    assert {i["medgrain_id"] for i in coco["images"]} == {r["id"] for r in rows if r["split"] == "test"}
    p = subprocess.run([medgrain_bin, "export", str(root / "out"), "--format", "hf", "--to", str(tmp_path / "hf")],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    ds = datasets.load_dataset(str(tmp_path / "hf"))
    assert {k: ds[k].num_rows for k in ds} == counts
    for k in ds:
        assert {meta[x] for x in ds[k]["source_path"]}.isdisjoint(
            {meta[x] for j in ds if j != k for x in ds[j]["source_path"]})
    # Grown dataset: 30 more images, the first 90 keep their split.
    root2 = tmp_path / "p2"
    folder_with_patients(demo_dir, root2, n=120)
    build(medgrain_bin, config(root2), root2 / "out")
    before = {r["source_path"]: r["split"] for r in rows}
    after = {r["source_path"]: r["split"] for r in rows_of(root2 / "out")}
    assert len(after) == 120 and all(after[k] == v for k, v in before.items())


def test_volume_splits_keep_slices_together(medgrain_bin, demo_dir, tmp_path):
    cfg = tmp_path / "demo.toml"
    text = (demo_dir / "demo.toml").read_text().replace('root = "synth/', f'root = "{demo_dir}/synth/')
    text = text.replace('kb = "kb"', f'kb = "{demo_dir}/kb"')
    cfg.write_text(text + '\n[splits]\nby = "volume"\nratios = [0.5, 0.25, 0.25]\nseed = 3\n')
    build(medgrain_bin, cfg, tmp_path / "out")
    rows = rows_of(tmp_path / "out")
    vols = {}
    for r in rows:
        assert r["split"] == assign(3, r["source_path"].rsplit("/", 1)[-1], [0.5, 0.25, 0.25])  # the file name
        if r["slice"] is not None:
            vols.setdefault(r["source_path"], set()).add(r["split"])
    assert vols and all(len(s) == 1 for s in vols.values())
    assert sum(len(s) for s in vols.values()) < sum(1 for r in rows if r["slice"] is not None)  # several slices/volume


def test_grounded_report_rows_follow_their_volume(medgrain_bin, demo_dir, tmp_path):
    """The grounded-reports recipe with [splits] by volume: every grounded and VQA row carries its volume's split,
    the same one the triplet recipe gives that volume's slices (key: the volume's file name)."""
    d3 = demo_dir / "synth/3d"
    cfg = tmp_path / "r.toml"
    cfg.write_text(f'recipe = "grounded-reports"\n[reports]\ncsv = "{d3 / "reports.csv"}"\nroot = "{d3}"\n'
                   'masks = "masks"\nlesions = "lesions"\nvolumes = "volumes"\n'
                   '[splits]\nby = "volume"\nratios = [0.5, 0.25, 0.25]\nseed = 3\n')
    p = subprocess.run([medgrain_bin, "-q", "build", str(cfg), "--out", str(tmp_path / "out")], capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stderr
    for sub in ("grounded_reports", "vqa"):
        rows = []
        for f in sorted((tmp_path / "out" / sub).glob("*.parquet")):
            rows += pq.read_table(f, columns=["volume_id", "split"]).to_pylist()
        assert rows and all(r["split"] == assign(3, r["volume_id"], [0.5, 0.25, 0.25]) for r in rows)
        assert len({r["split"] for r in rows}) > 1
    cfg.write_text(cfg.read_text().replace('by = "volume"', 'by = "patient"'))
    p = subprocess.run([medgrain_bin, "build", str(cfg), "--out", str(tmp_path / "o2")], capture_output=True, text=True)
    assert p.returncode == 2 and "volume" in p.stderr


def test_dicom_patient_id_is_the_default_key(medgrain_bin, tmp_path):
    (tmp_path / "dcm").mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    pids = {}
    for i in range(15):
        pid = f"PAT-{i % 5}"
        ds.PatientID = pid
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.{1000 + i}"
        arr = ds.pixel_array.copy()
        arr[i:i + 4, :] = 500  # distinct images
        ds.PixelData = arr.tobytes()
        ds.save_as(tmp_path / "dcm" / f"img{i:02d}.dcm")
        pids[f"img{i:02d}.dcm"] = pid
    cfg = tmp_path / "b.toml"
    cfg.write_text('recipe = "triplets"\n[[source]]\nname = "d"\nkind = "image-folder"\nroot = "dcm"\nimages = "*.dcm"\n'
                   '[generator]\nkind = "template"\n[splits]\nby = "patient"\n')
    build(medgrain_bin, cfg, tmp_path / "out")
    rows = rows_of(tmp_path / "out")
    assert len(rows) == 15
    for r in rows:
        assert r["split"] == assign(0, pids[r["source_path"]], [0.8, 0.1, 0.1])


def test_missing_key_and_bad_ratios(medgrain_bin, demo_dir, tmp_path):
    root = tmp_path / "m"
    imgs = folder_with_patients(demo_dir, root, n=12, missing=5)
    build(medgrain_bin, config(root), root / "out", code=1)
    errs = [json.loads(x) for x in (root / "out/errors.jsonl").read_text().splitlines()]
    assert [(e["stage"], e["source_path"]) for e in errs] == [("split", f"images/{imgs[5].name}")]
    assert "patient_id" in errs[0]["error"]
    assert len(rows_of(root / "out")) == 11
    for bad, needle in (('[splits]\nby = "patient"\nratios = [0.5, 0.2, 0.2]\n', "ratios"),
                        ('[splits]\nby = "image"\nkey = "x"\n', "key"),
                        ('[splits]\nby = "subject"\n', "subject")):
        p = build(medgrain_bin, config(root, bad), tmp_path / "o", code=2)
        assert needle in p.stderr, p.stderr
    # The other config checks still run with a [splits] table and without one.
    for extra in ("", SPLITS):
        cfg = config(root, extra).read_text().replace("shard_size = 16", "shard_size = 0")
        (root / "zero.toml").write_text(cfg)
        p = build(medgrain_bin, root / "zero.toml", tmp_path / "z", code=2)
        assert "shard_size" in p.stderr
        (root / "gr.toml").write_text('recipe = "grounded-reports"\n' + extra.replace('"patient"', '"volume"').replace(
            'key = "patient_id"\n', ""))
        p = build(medgrain_bin, root / "gr.toml", tmp_path / "g", code=2)
        assert "[reports]" in p.stderr
    p = subprocess.run([medgrain_bin, "export", str(demo_dir), "--format", "llava", "--to", str(tmp_path / "x"),
                        "--split", "train"], capture_output=True, text=True)
    assert p.returncode == 2 and "[splits]" in p.stderr
