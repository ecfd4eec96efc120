"""`manifest.json`'s `files` and `medgrain verify`: every output file is listed with the size and SHA-256 Python's
hashlib computes; verify passes on the dataset as built and names each altered, truncated or missing file and each
mask a row references that is gone (exit 1). Worker-built datasets list the same files as a single-process build."""
import hashlib
import json
import shutil
import subprocess
from pathlib import Path


def listed(out: Path, manifest: str):
    return {e["path"]: (e["bytes"], e["sha256"]) for e in json.loads((out / manifest).read_text())["files"]}


def on_disk(out: Path, paths):
    return {p: ((out / p).stat().st_size, hashlib.sha256((out / p).read_bytes()).hexdigest()) for p in paths}


def test_manifests_list_every_output_file_with_its_checksum(demo_dir):
    top = listed(demo_dir, "manifest.json")
    want = {f"triplets/{p.name}" for p in (demo_dir / "triplets").glob("part-*.parquet")} | {
        "errors.jsonl", "stats.json", "inputs.jsonl"}
    assert set(top) == want
    assert top == on_disk(demo_dir, top)
    reports = listed(demo_dir, "grounded_reports/manifest.json")
    want = {f"{sub}/{p.name}" for sub in ("grounded_reports", "vqa", "structured_findings")
            for p in (demo_dir / sub).glob("part-*")}
    want |= {"grounded_reports/grounded_reports.csv", "vqa/vqa.csv", "grounded_reports/errors.jsonl",
             "grounded_reports/stats.json"}
    assert set(reports) == want
    assert reports == on_disk(demo_dir, reports)


def test_verify_names_what_differs(demo_dir, medgrain_bin, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(demo_dir, out)
    r = subprocess.run([medgrain_bin, "verify", str(out), "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    v = json.loads(r.stdout)
    assert v["problems"] == [] and v["files"] >= 10 and v["referenced"] > 0
    parts = sorted((out / "triplets").glob("part-*.parquet"))
    data = bytearray(parts[0].read_bytes())
    data[100] ^= 0xFF
    parts[0].write_bytes(bytes(data))
    with open(out / "stats.json", "ab") as f:
        f.write(b" ")
    (out / "vqa/vqa.csv").unlink()
    # a mask a row points at, gone from the input root
    root = Path(json.loads((out / "grounded_reports/manifest.json").read_text())["inputs"]["root"])
    refs = set()
    import pyarrow.parquet as pq
    for p in (out / "grounded_reports").glob("part-*.parquet"):
        refs |= {m for m in pq.read_table(p, columns=["mask_ref"]).column("mask_ref").to_pylist() if m}
    gone = sorted(refs)[0]
    moved = tmp_path / "moved.nii.gz"
    shutil.move(root / gone, moved)
    try:
        r = subprocess.run([medgrain_bin, "verify", str(out), "--json"], capture_output=True, text=True)
    finally:
        shutil.move(moved, root / gone)
    assert r.returncode == 1
    problems = json.loads(r.stdout)["problems"]
    assert any(p.startswith(f"triplets/{parts[0].name}: altered") for p in problems), problems
    assert any(p.startswith("stats.json: ") and "bytes where the manifest says" in p for p in problems), problems
    assert "vqa/vqa.csv: missing" in problems
    assert any(p.startswith(f"{gone}: referenced by a row, missing") for p in problems), problems
    assert len(problems) == 4, problems
