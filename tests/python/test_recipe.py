"""Input checksums and `export --format recipe`: a licence that forbids redistributing pixels can still ship the
dataset as a recipe; another user rebuilds from their own copy and `verify --recipe` proves it is the same data.

- `build` writes OUT/inputs.jsonl: every input file (images, masks, the metadata CSV) with its size and SHA-256 —
  checked here with hashlib; manifest.json lists it; `--no-input-hash` skips it;
- the recipe holds the rows without pixels (each with the image's SHA-256), the inputs and the config, no image;
- a rebuild from a byte-identical copy in another folder verifies (exit 0); a copy with one pixel changed is named,
  input and row (exit 1)."""
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

CONFIG = ('recipe = "triplets"\n[output]\nshard_size = 16\n[[source]]\nname = "s"\nkind = "image-folder"\n'
          'root = "data"\nimages = "images/*.png"\nmasks = "masks/{stem}.png"\nmetadata = "metadata.csv"\n'
          'license = "CC-BY-NC-4.0 (not redistributable)"\n[generator]\nkind = "template"\n')


def copy_inputs(demo_dir, dest, n=40):
    src = demo_dir / "synth/2d"
    (dest / "data/images").mkdir(parents=True)
    (dest / "data/masks").mkdir(parents=True)
    imgs = sorted((src / "images").glob("*.png"))[:n]
    for p in imgs:
        shutil.copy(p, dest / "data/images" / p.name)
        m = src / "masks" / p.name
        if m.exists():
            shutil.copy(m, dest / "data/masks" / p.name)
    lines = (src / "metadata.csv").read_text().splitlines()
    keep = [lines[0]] + [line for line in lines[1:] if any(f"images/{p.name}" in line for p in imgs)]
    (dest / "data/metadata.csv").write_text("\n".join(keep) + "\n")
    (dest / "config.toml").write_text(CONFIG)
    return imgs


def run(medgrain_bin, *args, code=0):
    p = subprocess.run([medgrain_bin, *map(str, args)], capture_output=True, text=True)
    assert p.returncode == code, p.stderr + p.stdout
    return p


def test_recipe_rebuild_and_verify(medgrain_bin, demo_dir, tmp_path):
    a = tmp_path / "a"
    copy_inputs(demo_dir, a)
    run(medgrain_bin, "-q", "build", a / "config.toml", "--out", a / "out")
    inputs = [json.loads(x) for x in (a / "out/inputs.jsonl").read_text().splitlines()]
    on_disk = sorted(str(p.relative_to(a / "data")) for p in (a / "data").rglob("*") if p.is_file())
    assert sorted(i["path"] for i in inputs) == on_disk
    for i in inputs:
        data = (a / "data" / i["path"]).read_bytes()
        assert i["source"] == "s" and i["bytes"] == len(data) and i["sha256"] == hashlib.sha256(data).hexdigest()
    manifest = json.loads((a / "out/manifest.json").read_text())
    assert manifest["input_hashes"] is True and "inputs.jsonl" in {f["path"] for f in manifest["files"]}
    run(medgrain_bin, "verify", a / "out")
    # The recipe: no pixels.
    r = tmp_path / "recipe"
    run(medgrain_bin, "export", a / "out", "--format", "recipe", "--to", r)
    rows = [json.loads(x) for x in (r / "rows.jsonl").read_text().splitlines()]
    parquet_rows = []
    for f in sorted((a / "out/triplets").glob("*.parquet")):
        parquet_rows += pq.read_table(f).to_pylist()
    assert len(rows) == len(parquet_rows) == 40
    for row, pr in zip(rows, parquet_rows):
        assert row["id"] == pr["id"] and row["image_sha256"] == hashlib.sha256(pr["image"]["bytes"]).hexdigest()
        assert "image" not in row and row["license"] == "CC-BY-NC-4.0 (not redistributable)"
    assert not [p for p in r.rglob("*") if p.suffix in (".png", ".jpg", ".parquet")]
    assert (r / "inputs.jsonl").read_bytes() == (a / "out/inputs.jsonl").read_bytes()
    assert (r / "config.toml").read_text() == CONFIG
    # Another user's copy, in another folder: same data.
    b = tmp_path / "b"
    shutil.copytree(a / "data", b / "data")
    shutil.copy(r / "config.toml", b / "config.toml")
    run(medgrain_bin, "-q", "build", b / "config.toml", "--out", b / "out")
    p = run(medgrain_bin, "verify", b / "out", "--recipe", r, "--json")
    assert json.loads(p.stdout)["problems"] == []
    # A copy with one pixel changed: the input and its row are named.
    c = tmp_path / "c"
    shutil.copytree(a / "data", c / "data")
    shutil.copy(r / "config.toml", c / "config.toml")
    victim = sorted((c / "data/images").glob("*.png"))[7]
    arr = np.array(Image.open(victim))
    arr.flat[1234] = (int(arr.flat[1234]) + 40) % 256
    Image.fromarray(arr).save(victim)
    run(medgrain_bin, "-q", "build", c / "config.toml", "--out", c / "out")
    p = run(medgrain_bin, "verify", c / "out", "--recipe", r, "--json", code=1)
    problems = json.loads(p.stdout)["problems"]
    rel = f"images/{victim.name}"
    assert any(x.startswith(f"input s/{rel}: differs") for x in problems), problems
    assert any(x.startswith("row ") and rel in x and "image_sha256" in x for x in problems), problems
    assert len(problems) == 2, problems


def test_no_input_hash(medgrain_bin, demo_dir, tmp_path):
    copy_inputs(demo_dir, tmp_path, n=8)
    run(medgrain_bin, "-q", "build", tmp_path / "config.toml", "--out", tmp_path / "out", "--no-input-hash")
    assert not (tmp_path / "out/inputs.jsonl").exists()
    assert json.loads((tmp_path / "out/manifest.json").read_text())["input_hashes"] is False
    p = run(medgrain_bin, "export", tmp_path / "out", "--format", "recipe", "--to", tmp_path / "r", code=2)
    assert "no-input-hash" in p.stderr
