"""`medgrain dedup` and `medgrain phash` against the `imagehash` library, on real images nobody here made.

Corpus: scikit-image's sample images, pydicom's test images (rendered), nibabel's example 4D image and the real CT
of ../shared/data/totalseg (one axial and three coronal slices at 1 mm), all at least 64 px on the short side (the
size of the benchmark images users check against: VQA-RAD, SLAKE, PathVQA). Tiny images (10×10 RT dose) and
neighbouring slices of one volume are left out: pHash cannot tell adjacent CT slices apart (distance 2–4), which the
README states.

- The hash equals `str(imagehash.phash(PIL.Image.open(f)))` on every original, every transformed copy (PNG and
  JPEG) and every demo image.
- Copies the test makes (JPEG quality 50/70/90, resize 0.5/0.75/1.5/2×, 2 % crops from a corner and centred,
  brightness ±10 %) as a reference set: recall ≥ 0.99 at the default distance, at most 0.1 % false matches among
  distinct images; a copy of an image inside the dataset is a `duplicate_within`.
- Rows carry exactly the flags of dedup.jsonl; verify passes after the rewrite; a second run gives the same flags;
  `export --exclude-leaks` leaves out exactly the leaked rows; an unreadable reference file is listed (exit 1)."""
import io
import json
import shutil
import subprocess
import warnings
from pathlib import Path

import imagehash
import nibabel as nib
import numpy as np
import pyarrow.parquet as pq
import pydicom
import pytest
import skimage.data as skdata
from PIL import Image, ImageEnhance
from pydicom.data import get_testdata_file

ROOT = Path(__file__).resolve().parents[2]
CT = ROOT.parent / "shared/data/totalseg/example_ct_sm.nii.gz"

SKIMAGE = ["astronaut", "camera", "coins", "moon", "coffee", "chelsea", "rocket", "page", "text", "clock", "horse",
           "brick", "grass", "gravel", "immunohistochemistry", "hubble_deep_field", "retina", "cell", "colorwheel",
           "logo", "microaneurysms"]
DICOM = ["CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "liver_1frame.dcm", "examples_palette.dcm",
         "examples_rgb_color.dcm", "image_dfl.dcm", "693_J2KI.dcm", "GDCMJ2K_TextGBR.dcm"]


def save_8bit(a, path, upsample=1):
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 3 and a.shape[-1] not in (3, 4):
        a = a[..., 0]
    lo, hi = np.percentile(a, 0.5), np.percentile(a, 99.5)
    im = Image.fromarray(np.clip((a - lo) / max(hi - lo, 1e-9) * 255, 0, 255).astype(np.uint8))
    if upsample > 1:
        im = im.resize((im.width * upsample, im.height * upsample), Image.Resampling.BICUBIC)
    im.save(path)


def make_corpus(folder: Path):
    folder.mkdir(parents=True)
    for n in SKIMAGE:
        a = getattr(skdata, n)()
        if a.dtype == bool:
            a = a.astype(np.uint8) * 255
        save_8bit(a, folder / f"sk_{n}.png")
    ct = np.asarray(nib.load(CT).dataobj)
    save_8bit(np.rot90(ct[:, :, 12]), folder / "ct_ax12.png", upsample=3)
    for y in (30, 50, 70):
        save_8bit(np.rot90(ct[:, y, :]), folder / f"ct_cor{y}.png", upsample=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for f in DICOM:
            a = pydicom.dcmread(get_testdata_file(f)).pixel_array
            if a.ndim == 3 and a.shape[-1] != 3:
                a = a[0]
            save_8bit(a, folder / f"dcm_{f[:-4]}.png")
    nd = Path(nib.__file__).parent / "tests/data"
    a = np.asarray(nib.load(nd / "example4d.nii.gz").dataobj)[..., 0]
    save_8bit(np.rot90(a[:, :, 12]), folder / "nib_example4d_12.png")
    files = sorted(folder.glob("*.png"))
    assert len(files) == 35 and min(min(Image.open(f).size) for f in files) >= 64
    return files


def variants(im):
    out = {}
    rgb = im.convert("RGB") if im.mode not in ("L", "RGB") else im
    for q in (50, 70, 90):
        b = io.BytesIO()
        rgb.save(b, "JPEG", quality=q)
        out[f"jpeg{q}.jpg"] = b.getvalue()
    for s in (0.5, 0.75, 1.5, 2.0):
        out[f"resize{s}.png"] = im.resize((round(im.width * s), round(im.height * s)), Image.Resampling.BILINEAR)
    w, h = im.size
    dx, dy = round(w * 0.02), round(h * 0.02)
    out["crop2.png"] = im.crop((dx, dy, w, h))
    out["crop2c.png"] = im.crop((dx // 2, dy // 2, w - dx + dx // 2, h - dy + dy // 2))
    for f in (0.9, 1.1):
        out[f"bright{f}.png"] = ImageEnhance.Brightness(rgb).enhance(f)
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, medgrain_bin):
    base = tmp_path_factory.mktemp("dedup")
    files = make_corpus(base / "images")
    # One image twice inside the dataset: a duplicate within.
    shutil.copy(base / "images/sk_camera.png", base / "images/zz_copy_of_camera.png")
    ref = base / "ref"
    ref.mkdir()
    origin = {}
    for f in files:
        for k, v in variants(Image.open(f)).items():
            name = f"{f.stem}__{k}"
            if isinstance(v, bytes):
                (ref / name).write_bytes(v)
            else:
                v.save(ref / name)
            origin[name] = f.name
    (ref / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (base / "build.toml").write_text(
        'recipe = "triplets"\n[output]\nshard_size = 16\n[[source]]\nname = "real"\nkind = "image-folder"\n'
        'root = "images"\nimages = "*.png"\nlicense = "mixed (scikit-image, pydicom, nibabel test data)"\n'
        '[generator]\nkind = "template"\n')
    p = subprocess.run([medgrain_bin, "-q", "build", str(base / "build.toml"), "--out", str(base / "out")],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return base, files, origin


def rows_of(out):
    rows = []
    for f in sorted((out / "triplets").glob("*.parquet")):
        rows += pq.read_table(f, columns=["id", "source_path", "qc"]).to_pylist()
    return rows


def test_phash_equals_imagehash(medgrain_bin, corpus, demo_dir):
    base, files, _ = corpus
    paths = files + sorted((base / "ref").glob("*__*")) + sorted((demo_dir / "synth/2d/images").glob("*.png"))[:40]
    p = subprocess.run([medgrain_bin, "phash", *map(str, paths)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    ours = dict(reversed(line.split("  ", 1)) for line in p.stdout.splitlines())
    assert len(ours) == len(paths)
    mismatched = [f for f in paths if ours[str(f)] != str(imagehash.phash(Image.open(f)))]
    assert mismatched == [], mismatched[:5]
    assert any(str(f).endswith(".jpg") for f in paths)


def test_dedup_recall_false_matches_flags_and_export(medgrain_bin, corpus, tmp_path):
    base, files, origin = corpus
    out = base / "out"
    p = subprocess.run([medgrain_bin, "dedup", str(out), "--against", f"bench={base / 'ref'}", "--json"],
                       capture_output=True, text=True)
    assert p.returncode == 1, p.stderr  # the broken reference file
    summary = json.loads(p.stdout)
    lines = [json.loads(x) for x in (out / "dedup.jsonl").read_text().splitlines()]
    assert [x["file"] for x in lines if x["kind"] == "unreadable"] == ["broken.png"]
    rows = rows_of(out)
    by_id = {r["id"]: r for r in rows}
    assert summary["rows"] == len(rows) == len(files) + 1
    found = {(by_id[x["id"]]["source_path"], x["file"]) for x in lines if x["kind"] == "near_duplicate_of"}
    same = {("zz_copy_of_camera.png", n) for n, o in origin.items() if o == "sk_camera.png"}
    true_pairs = {(o, n) for n, o in origin.items()}
    recall = len(found & true_pairs) / len(true_pairs)
    false = found - true_pairs - same
    distinct_pairs = len(rows) * len(origin) - len(true_pairs) - len(same)
    print(f"dedup recall {recall:.4f} over {len(true_pairs)} copies; false matches {len(false)} of {distinct_pairs}")
    assert recall >= 0.99, sorted(true_pairs - found)
    assert len(false) <= 0.001 * distinct_pairs, sorted(false)
    within = [x for x in lines if x["kind"] == "duplicate_within"]
    assert [(by_id[x["id"]]["source_path"], by_id[x["other"]]["source_path"], x["distance"]) for x in within] == [
        ("zz_copy_of_camera.png", "sk_camera.png", 0)]
    # Flags in the rows equal dedup.jsonl.
    want = {}
    for x in lines:
        if x["kind"] == "near_duplicate_of":
            want.setdefault(x["id"], set()).add(f"near_duplicate_of:bench:{x['file']}")
        elif x["kind"] == "duplicate_within":
            want.setdefault(x["id"], set()).add(f"duplicate_within:{x['other']}")
    got = {r["id"]: set(r["qc"]["flags"]) for r in rows if r["qc"]["flags"]}
    assert got == want
    v = subprocess.run([medgrain_bin, "verify", str(out)], capture_output=True, text=True)
    assert v.returncode == 0, v.stdout
    # Again: the same flags, not doubled.
    subprocess.run([medgrain_bin, "dedup", str(out), "--against", f"bench={base / 'ref'}"], capture_output=True)
    assert {r["id"]: sorted(r["qc"]["flags"]) for r in rows_of(out) if r["qc"]["flags"]} == \
        {k: sorted(v) for k, v in want.items()}
    # A build run again on the same output keeps every shard (the markers know the rewritten parts) and the flags.
    b = subprocess.run([medgrain_bin, "-q", "build", str(base / "build.toml"), "--out", str(out)],
                       capture_output=True, text=True)
    assert b.returncode == 0, b.stderr
    assert {r["id"]: sorted(r["qc"]["flags"]) for r in rows_of(out) if r["qc"]["flags"]} == \
        {k: sorted(v) for k, v in want.items()}
    # Export without the leaked rows.
    leaked = {x["id"] for x in lines if x["kind"] == "near_duplicate_of"}
    e = subprocess.run([medgrain_bin, "export", str(out), "--format", "coco", "--to", str(tmp_path / "coco"),
                        "--exclude-leaks"], capture_output=True, text=True)
    assert e.returncode == 0, e.stderr
    coco = json.loads((tmp_path / "coco/instances.json").read_text())
    assert {i["medgrain_id"] for i in coco["images"]} == set(by_id) - leaked
    assert json.loads((tmp_path / "coco/export.json").read_text())["excluded_leaks"] == len(leaked)


def test_dedup_bad_arguments(medgrain_bin, demo_dir, tmp_path):
    shutil.copytree(demo_dir / "triplets", tmp_path / "d/triplets")
    e = subprocess.run([medgrain_bin, "export", str(tmp_path / "d"), "--format", "coco", "--to", str(tmp_path / "x"),
                        "--exclude-leaks"], capture_output=True, text=True)
    assert e.returncode == 2 and "medgrain dedup" in e.stderr
    for args, needle in ((["--against", "nofolder"], "NAME=FOLDER"),
                         (["--against", f"a={tmp_path / 'missing'}"], "not a folder"),
                         (["--against", f"a={tmp_path}", "--against", f"a={tmp_path}"], "twice"),
                         (["--max-distance", "40"], "at most 31")):
        p = subprocess.run([medgrain_bin, "dedup", str(tmp_path / "d"), *args], capture_output=True, text=True)
        assert p.returncode == 2 and needle in p.stderr, (args, p.stderr)
    p = subprocess.run([medgrain_bin, "dedup", str(tmp_path)], capture_output=True, text=True)
    assert p.returncode == 2 and "triplets" in p.stderr
