"""Several workers on one shared OUT (`plan`, `build --worker I/N`, `merge`, `status`), triplets recipe: the merged
output of workers running at once equals a single-process build of the same plan (same parts, rows, stats); merge is
idempotent and names missing shards; a rerun redoes only what is missing; changed inputs are refused naming them;
two workers given the same index still leave every shard written once."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

CONFIG = """
recipe = "triplets"
[output]
shard_size = 16
[[source]]
name = "synth-2d"
kind = "image-folder"
root = "synth/2d"
images = "images/*.png"
masks = "masks/{stem}.png"
metadata = "metadata.csv"
[generator]
kind = "template"
"""


def mg(bin_, *args, env=None):
    return subprocess.run([bin_, "-q", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, medgrain_bin):
    d = tmp_path_factory.mktemp("workers")
    r = mg(medgrain_bin, "synth", "--out", str(d / "synth"), "--images-per-kind", "20", "--volumes", "0")
    assert r.returncode == 0, r.stderr
    (d / "c.toml").write_text(CONFIG)
    return d


def dataset(out: Path):
    parts = sorted((out / "triplets").glob("part-*.parquet"))
    return {
        "parts": [(p.name, pq.read_table(p).to_pylist()) for p in parts],
        "stats": json.loads((out / "stats.json").read_text()),
        "errors": (out / "errors.jsonl").read_text(),
    }


def single(bin_, d, name):
    out = d / name
    assert mg(bin_, "plan", str(d / "c.toml"), "--out", str(out)).returncode == 0
    r = mg(bin_, "build", str(d / "c.toml"), "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out


def test_workers_at_once_equal_one_process_and_merge_is_idempotent(medgrain_bin, corpus):
    d = corpus
    want = dataset(single(medgrain_bin, d, "single"))
    out = d / "shared"
    r = mg(medgrain_bin, "plan", str(d / "c.toml"), "--out", str(out))
    assert r.returncode == 0, r.stderr
    plan = json.loads((out / "plan.json").read_text())
    assert len(plan["shards"]) == 9 and sum(s["count"] for s in plan["shards"]) == 140
    # the same inputs give the same plan
    again = d / "plan-again"
    assert mg(medgrain_bin, "plan", str(d / "c.toml"), "--out", str(again)).returncode == 0
    assert json.loads((again / "plan.json").read_text()) == plan
    # three processes at once on one OUT: worker 0 twice (two workers given the same index), worker 1 via Slurm's
    # variable
    procs = [subprocess.Popen([medgrain_bin, "-q", "build", str(d / "c.toml"), "--out", str(out), "--worker", w],
                              env={**os.environ, "SLURM_ARRAY_TASK_ID": "1"}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for w in ("0/2", "0/2", "slurm/2")]
    for p in procs:
        _, err = p.communicate()
        assert p.returncode == 0, err
    assert not (out / "stats.json").exists(), "workers leave assembling to merge"
    r = mg(medgrain_bin, "merge", str(out))
    assert r.returncode == 0, r.stderr
    got = dataset(out)
    assert got == want
    first = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert mg(medgrain_bin, "merge", str(out)).returncode == 0
    second = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert first == second, "merge is idempotent"
    assert not list(out.rglob("*.tmp"))


def test_missing_shards_are_named_and_only_they_are_redone(medgrain_bin, corpus):
    d = corpus
    out = d / "missing"
    assert mg(medgrain_bin, "plan", str(d / "c.toml"), "--out", str(out)).returncode == 0
    r = mg(medgrain_bin, "build", str(d / "c.toml"), "--out", str(out), "--worker", "k8s/3",
           env={"JOB_COMPLETION_INDEX": "0"})
    assert r.returncode == 0, r.stderr
    r = mg(medgrain_bin, "merge", str(out))
    assert r.returncode == 1 and "6 of 9 shards are not finished" in r.stderr and "1, 2, 4, 5, 7, 8" in r.stderr, \
        r.stderr
    s = subprocess.run([medgrain_bin, "status", str(out)], capture_output=True, text=True)
    assert s.returncode == 0 and "shards 3 done of 9" in s.stdout and "missing shards 1, 2, 4, 5, 7, 8" in s.stdout, \
        s.stdout
    j = json.loads(subprocess.run([medgrain_bin, "status", str(out), "--json"], capture_output=True, text=True).stdout)
    assert (j["done"], j["missing"], j["samples_total"]) == (3, [1, 2, 4, 5, 7, 8], 140)
    assert j["rerun"].startswith("medgrain build ") and str(out) in j["rerun"]
    # a corrupt marker is redone, never trusted
    (out / ".medgrain/shards/triplets-00003.json").write_text('{"plan_hash": ')
    r = mg(medgrain_bin, "build", str(d / "c.toml"), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "shards 9 (2 kept from a previous run)" in r.stdout, r.stdout
    want = dataset(single(medgrain_bin, d, "single-2"))
    assert dataset(out) == want


def test_changed_inputs_and_bad_workers_are_refused(medgrain_bin, corpus, tmp_path):
    d = tmp_path / "c"
    shutil.copytree(corpus / "synth", d / "synth")
    (d / "c.toml").write_text(CONFIG)
    out = d / "out"
    r = mg(medgrain_bin, "build", str(d / "c.toml"), "--out", str(out), "--worker", "0/2")
    assert r.returncode == 2 and "medgrain plan" in r.stderr, r.stderr
    assert mg(medgrain_bin, "plan", str(d / "c.toml"), "--out", str(out)).returncode == 0
    for bad in ("2/2", "x/2", "0/0", "slurm/2"):
        r = mg(medgrain_bin, "build", str(d / "c.toml"), "--out", str(out), "--worker", bad,
               env={"SLURM_ARRAY_TASK_ID": ""} if bad.startswith("slurm") else None)
        assert r.returncode == 2, (bad, r.stderr)
    images = sorted((d / "synth/2d/images").glob("*.png"))
    shutil.copy(images[0], images[0].with_name("zz_new.png"))
    images[1].unlink()
    r = mg(medgrain_bin, "build", str(d / "c.toml"), "--out", str(out), "--worker", "0/2")
    assert r.returncode == 2, r.stderr
    # the metadata CSV still lists the deleted image: it stays in the listing, now a file of 0 bytes
    assert "added synth-2d/images/zz_new.png" in r.stderr and f"synth-2d/images/{images[1].name} (" in r.stderr
    r = mg(medgrain_bin, "plan", str(d / "c.toml"), "--out", str(out))
    assert r.returncode == 2 and "zz_new.png" in r.stderr
    assert mg(medgrain_bin, "plan", str(d / "c.toml"), "--out", str(out), "--force").returncode == 0
    r = mg(medgrain_bin, "build", str(d / "c.toml"), "--out", str(out), "--worker", "0/2", "--force")
    assert r.returncode == 2 and "--force" in r.stderr
    # merge of shards planned for another config: refused, naming both hashes
    # (exit 1: the deleted image is one failed sample)
    assert mg(medgrain_bin, "build", str(d / "c.toml"), "--out", str(out), "--worker", "0/1").returncode == 1
    (d / "c.toml").write_text(CONFIG.replace('kind = "template"', 'kind = "template"\nmax_image_side = 256'))
    r = mg(medgrain_bin, "merge", str(out))
    assert r.returncode == 2 and "two configs" in r.stderr and r.stderr.count("hash") >= 1, r.stderr


def test_a_worker_whose_model_server_is_down_exits_3_and_merge_waits(medgrain_bin, corpus, tmp_path):
    d = corpus
    cfg = tmp_path / "openai.toml"
    cfg.write_text(CONFIG.replace("root = \"synth/2d\"", f"root = \"{d / 'synth/2d'}\"").replace(
        '"images/*.png"', '"images/*_000[0-2].png"').replace(
        'kind = "template"',
        'kind = "openai"\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "m"\nmax_retries = 0\ntimeout_s = 2'))
    out = tmp_path / "out"
    assert mg(medgrain_bin, "plan", str(cfg), "--out", str(out)).returncode == 0
    r = mg(medgrain_bin, "build", str(cfg), "--out", str(out), "--worker", "0/1", env={"OPENAI_API_KEY": "k"})
    assert r.returncode == 3, (r.returncode, r.stderr)
    r = mg(medgrain_bin, "merge", str(out))
    assert r.returncode == 1 and "2 of 2 shards are not finished" in r.stderr, r.stderr


def test_merge_killed_anywhere_then_rerun_gives_the_same_files(medgrain_bin, corpus, tmp_path):
    import random
    import signal
    import time
    d = corpus
    cfg = tmp_path / "one.toml"
    cfg.write_text(CONFIG.replace("root = \"synth/2d\"", f"root = \"{d / 'synth/2d'}\"")
                   .replace("shard_size = 16", "shard_size = 1"))
    out = tmp_path / "out"
    assert mg(medgrain_bin, "plan", str(cfg), "--out", str(out)).returncode == 0
    assert mg(medgrain_bin, "build", str(cfg), "--out", str(out), "--worker", "0/1").returncode == 0
    ref = tmp_path / "ref"
    shutil.copytree(out, ref)
    assert mg(medgrain_bin, "merge", str(ref)).returncode == 0
    want = {p.name: p.read_bytes() for p in ref.iterdir() if p.is_file() and p.name != "plan.json"}
    rng = random.Random(20261202)
    kills = 0
    for _ in range(12):
        p = subprocess.Popen([medgrain_bin, "-q", "merge", str(out)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.0, 0.04))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            kills += 1
        p.wait()
    print(f"\nmerge killed {kills} times of 12")
    assert kills >= 3, "some kills must land while merge runs"
    assert mg(medgrain_bin, "merge", str(out)).returncode == 0
    got = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != "plan.json"}
    # the manifest names the config it was made from (the same here); everything else is byte for byte the same
    mw, mg_ = json.loads(want.pop("manifest.json")), json.loads(got.pop("manifest.json"))
    assert {k: v for k, v in mw.items() if k != "config_path"} == {k: v for k, v in mg_.items() if k != "config_path"}
    assert got == want
    assert not list(out.rglob("*.tmp"))


def test_sigterm_and_a_straggling_shard_stop_a_worker_with_exit_3(medgrain_bin, corpus, tmp_path):
    """Slurm pre-empts and Kubernetes evicts with SIGTERM; a model server may hang: the worker stops with exit 3
    (worth retrying), nothing half-written is taken for a finished shard, and the next run completes the dataset."""
    import re
    import signal
    import time
    d = corpus
    slow = subprocess.Popen([medgrain_bin, "mock-server", "--port", "0", "--latency-ms", "4000"],
                            stdout=subprocess.PIPE, text=True)
    fast = subprocess.Popen([medgrain_bin, "mock-server", "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        urls = [re.search(r"(http://\S+/v1)", p.stdout.readline()).group(1) for p in (slow, fast)]

        def cfg_for(url):
            cfg = tmp_path / "openai.toml"
            cfg.write_text(CONFIG.replace("root = \"synth/2d\"", f"root = \"{d / 'synth/2d'}\"").replace(
                '"images/*.png"', '"images/*_000[0-2].png"').replace(
                'kind = "template"', f'kind = "openai"\nbase_url = "{url}"\nmodel = "mock-model"\ntimeout_s = 60'))
            return cfg
        out = tmp_path / "out"
        env = {"OPENAI_API_KEY": "k"}
        assert mg(medgrain_bin, "plan", str(cfg_for(urls[0])), "--out", str(out)).returncode == 0
        t0 = time.time()
        r = mg(medgrain_bin, "build", str(tmp_path / "openai.toml"), "--out", str(out), "--worker", "0/1",
               "--shard-timeout", "1", env=env)
        assert r.returncode == 3 and "past --shard-timeout" in r.stderr, (r.returncode, r.stderr)
        assert time.time() - t0 < 3.5, "the worker stops at the limit, not when the server answers"
        assert not list((out / ".medgrain/shards").glob("triplets-*.json"))
        p = subprocess.Popen([medgrain_bin, "-q", "build", str(tmp_path / "openai.toml"), "--out", str(out),
                              "--worker", "0/1"], stderr=subprocess.PIPE, text=True, env={**os.environ, **env})
        time.sleep(1.0)
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=10) == 3
        assert "SIGTERM" in p.stderr.read()
        assert not list((out / ".medgrain/shards").glob("triplets-*.json"))
        # the plan was made for this config; a server that answers at once (same config but its URL) needs a new
        # plan: the same inputs give the same shards
        assert mg(medgrain_bin, "plan", str(cfg_for(urls[1])), "--out", str(out), "--force").returncode == 0
        r = mg(medgrain_bin, "build", str(tmp_path / "openai.toml"), "--out", str(out), "--worker", "0/1", env=env)
        assert r.returncode == 0, r.stderr
        r = mg(medgrain_bin, "merge", str(out))
        assert r.returncode == 0, r.stderr
        assert json.loads((out / "stats.json").read_text())["rows"] == 21
    finally:
        for p in (slow, fast):
            p.kill()
