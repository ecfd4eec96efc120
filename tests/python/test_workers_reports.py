"""Several workers on one shared OUT for the grounded-reports recipe (`plan`, `build --worker I/N`, `merge`,
`status`): the merged output of workers running at once equals a single-process build (same Parquet parts and rows,
same structured findings, same RadGenome-style CSVs, same errors); shards are balanced by the bytes of each report's
masks and volume; merge names missing shards and refuses a config changed since the plan; a report whose text changed
since planning is refused naming its shard; `--shard-timeout` stops a worker with exit 3."""
import json
import os
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest


def mg(bin_, *args, env=None):
    return subprocess.run([bin_, "-q", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def config(d3: Path, shard_volumes=2) -> str:
    return f"""
recipe = "grounded-reports"
[reports]
csv = "{d3 / 'reports.csv'}"
root = "{d3}"
masks = "masks"
lesions = "lesions"
volumes = "volumes"
shard_volumes = {shard_volumes}
"""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, medgrain_bin):
    d = tmp_path_factory.mktemp("workers-reports")
    r = mg(medgrain_bin, "synth", "--out", str(d / "synth"), "--images-per-kind", "1", "--volumes", "9")
    assert r.returncode == 0, r.stderr
    (d / "c.toml").write_text(config(d / "synth/3d"))
    return d


def dataset(out: Path):
    snap = {}
    for sub in ("grounded_reports", "vqa"):
        snap[sub] = [(p.name, pq.read_table(p).to_pylist()) for p in sorted((out / sub).glob("part-*.parquet"))]
    snap["findings"] = [(p.name, p.read_text()) for p in sorted((out / "structured_findings").glob("*.jsonl"))]
    snap["csv"] = [(out / "grounded_reports/grounded_reports.csv").read_text(), (out / "vqa/vqa.csv").read_text()]
    snap["errors"] = (out / "errors.jsonl").read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    counts = manifest["counts"]
    counts.pop("shards_resumed")
    snap["counts"] = counts
    # every output file with its size and SHA-256: workers and one process wrote the same bytes
    snap["files"] = manifest["files"]
    return snap


@pytest.fixture(scope="module")
def single(corpus, medgrain_bin):
    out = corpus / "single"
    assert mg(medgrain_bin, "plan", str(corpus / "c.toml"), "--out", str(out)).returncode == 0
    r = mg(medgrain_bin, "build", str(corpus / "c.toml"), "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out


def test_the_plan_covers_every_report_once_balanced_by_bytes(corpus, single):
    plan = json.loads((single / "plan.json").read_text())
    assert plan["recipe"] == "grounded-reports"
    with open(corpus / "synth/3d/reports.csv", newline="") as f:
        import csv
        names = [row["VolumeName"] for row in csv.DictReader(f)]
    assert [i["path"] for i in plan["inputs"]] == names
    # each input's work is the bytes of its mask, lesion and volume files, as the file system says
    d3 = corpus / "synth/3d"
    for i in plan["inputs"]:
        stem = i["path"].removesuffix(".gz").removesuffix(".nii")
        want = sum(p.stat().st_size for p in (d3 / "masks" / stem).glob("*.nii*"))
        want += sum(p.stat().st_size for p in (d3 / "lesions" / stem).glob("*.nii*"))
        want += (d3 / "volumes" / i["path"]).stat().st_size
        assert i["bytes"] == want, i
    covered = [k for s in plan["shards"] for k in range(s["first"], s["first"] + s["count"])]
    assert covered == list(range(len(names)))
    assert len(plan["shards"]) == (len(names) + 1) // 2
    for s in plan["shards"]:
        assert s["bytes"] == sum(i["bytes"] for i in plan["inputs"][s["first"]:s["first"] + s["count"]])


def test_workers_at_once_equal_one_process(corpus, single, medgrain_bin):
    out = corpus / "workers"
    assert mg(medgrain_bin, "plan", str(corpus / "c.toml"), "--out", str(out)).returncode == 0
    procs = [subprocess.Popen([medgrain_bin, "-q", "build", str(corpus / "c.toml"), "--out", str(out),
                               "--worker", f"{i}/3"], stderr=subprocess.PIPE, text=True) for i in range(3)]
    for p in procs:
        assert p.wait() == 0, p.stderr.read()
    # the workers do not assemble
    assert not (out / "manifest.json").exists()
    st = json.loads(mg(medgrain_bin, "status", str(out), "--json").stdout)
    assert st["recipe"] == "grounded-reports" and st["missing"] == [] and st["samples_done"] == 9
    r = mg(medgrain_bin, "merge", str(out))
    assert r.returncode == 0, r.stderr
    assert dataset(out) == dataset(single)
    # merge again: the same files
    assert mg(medgrain_bin, "merge", str(out)).returncode == 0
    assert dataset(out) == dataset(single)


def test_missing_shards_are_named_then_a_worker_finishes_them(corpus, single, medgrain_bin):
    out = corpus / "missing"
    assert mg(medgrain_bin, "plan", str(corpus / "c.toml"), "--out", str(out)).returncode == 0
    assert mg(medgrain_bin, "build", str(corpus / "c.toml"), "--out", str(out), "--worker", "0/2").returncode == 0
    r = mg(medgrain_bin, "merge", str(out))
    assert r.returncode == 1 and "shards 1, 3" in r.stderr, r.stderr
    st = json.loads(mg(medgrain_bin, "status", str(out), "--json").stdout)
    assert st["missing"] == [1, 3] and st["done"] == 3 and "--out" in st["rerun"]
    # a truncated marker is not trusted: its shard is redone
    marker = out / ".medgrain/shards/reports-00002.json"
    marker.write_text(marker.read_text()[:20])
    st = json.loads(mg(medgrain_bin, "status", str(out), "--json").stdout)
    assert st["missing"] == [1, 2, 3]
    assert mg(medgrain_bin, "build", str(corpus / "c.toml"), "--out", str(out), "--worker", "1/2").returncode == 0
    assert mg(medgrain_bin, "build", str(corpus / "c.toml"), "--out", str(out), "--worker", "0/2").returncode == 0
    assert mg(medgrain_bin, "merge", str(out)).returncode == 0
    assert dataset(out) == dataset(single)


def test_changed_reports_and_configs_are_refused(corpus, medgrain_bin, tmp_path):
    import shutil
    d3 = tmp_path / "3d"
    shutil.copytree(corpus / "synth/3d", d3)
    cfg = tmp_path / "c.toml"
    cfg.write_text(config(d3))
    out = tmp_path / "out"
    assert mg(medgrain_bin, "plan", str(cfg), "--out", str(out)).returncode == 0
    import csv
    original = (d3 / "reports.csv").read_text()
    with open(d3 / "reports.csv", newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames, list(reader)

    def write(rows):
        with open(d3 / "reports.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)
    # the same volumes, the third report's text changed: its shard (1, with two reports per shard) is named
    name = rows[2]["VolumeName"]
    write(rows[:2] + [{**rows[2], "Findings_EN": rows[2]["Findings_EN"] + " No pleural effusion."}] + rows[3:])
    r = mg(medgrain_bin, "build", str(cfg), "--out", str(out), "--worker", "0/2")
    assert r.returncode == 2 and "report text of shard 1" in r.stderr and name in r.stderr, r.stderr
    # a report removed: named
    write(rows[:2] + rows[3:])
    r = mg(medgrain_bin, "build", str(cfg), "--out", str(out), "--worker", "0/2")
    assert r.returncode == 2 and f"removed reports/{name}" in r.stderr, r.stderr
    (d3 / "reports.csv").write_text(original)
    assert mg(medgrain_bin, "build", str(cfg), "--out", str(out), "--worker", "0/1").returncode == 0
    # the config changed since the plan: merge names both hashes
    plan = json.loads((out / "plan.json").read_text())
    cfg.write_text(config(d3, shard_volumes=3))
    r = mg(medgrain_bin, "merge", str(out))
    assert r.returncode == 2 and plan["config_hash"][:12] in r.stderr and "two configs" in r.stderr, r.stderr


def test_a_straggling_shard_stops_its_worker_with_exit_3(corpus, medgrain_bin, tmp_path):
    out = tmp_path / "out"
    cfg = corpus / "c.toml"
    assert mg(medgrain_bin, "plan", str(cfg), "--out", str(out)).returncode == 0
    # a limit no shard of two CT volumes meets
    r = mg(medgrain_bin, "build", str(cfg), "--out", str(out), "--worker", "0/1", "--shard-timeout", "0.001")
    assert r.returncode == 3 and "past --shard-timeout" in r.stderr, (r.returncode, r.stderr)
    r = mg(medgrain_bin, "build", str(cfg), "--out", str(out), "--worker", "0/1", "--shard-timeout", "0")
    assert r.returncode == 2 and "positive" in r.stderr
    # with a generous limit the same worker finishes
    r = mg(medgrain_bin, "build", str(cfg), "--out", str(out), "--worker", "0/1", "--shard-timeout", "600")
    assert r.returncode == 0, r.stderr
    assert mg(medgrain_bin, "merge", str(out)).returncode == 0
    st = json.loads(mg(medgrain_bin, "status", str(out), "--json").stdout)
    assert st["missing"] == [] and st["rerun"] is None
