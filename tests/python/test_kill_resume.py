"""Killed anywhere, resumed, the same dataset: `medgrain demo` (synthetic corpus, knowledge base, the triplet recipe and
the grounded-reports recipe) is killed with SIGKILL at random moments (a fixed seed) and rerun until it finishes,
with the template writer and with the OpenAI-compatible writer against the mock server. The final output must equal
an uninterrupted run's: the same rows in the same parts (ids, text, masks), the same grounded-report, VQA and
structured-findings rows, the same stats and errors; no temporary file left where a reader could take it; and no
model request paid twice (the mock server counts them)."""
import json
import random
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq
import pytest

SEED = 20261202
DIRS_PER_WRITER = 2
ATTEMPTS_PER_DIR = 6


def snapshot(out: Path):
    snap = {}
    for sub in ("triplets", "grounded_reports", "vqa"):
        parts = sorted((out / sub).glob("part-*.parquet"))
        snap[sub] = [(p.name, pq.read_table(p).to_pylist()) for p in parts]
    snap["structured_findings"] = [(p.name, p.read_text()) for p in sorted((out / "structured_findings").glob("*.jsonl"))]
    snap["stats"] = json.loads((out / "stats.json").read_text())
    snap["errors"] = (out / "errors.jsonl").read_text()
    snap["csv"] = [(out / "grounded_reports/grounded_reports.csv").read_text(), (out / "vqa/vqa.csv").read_text()]
    return snap


def start_mock(medgrain_bin):
    p = subprocess.Popen([medgrain_bin, "mock-server", "--port", "0"], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    url = re.search(r"(http://\S+/v1)", line).group(1)
    return p, url


def requests_sent(url):
    with urllib.request.urlopen(url + "/stats", timeout=10) as r:
        stats = json.loads(r.read())
    return stats


def demo_cmd(medgrain_bin, out, url):
    cmd = [medgrain_bin, "-q", "demo", "--out", str(out)]
    if url:
        cmd += ["--generator-url", url, "--model", "mock-model"]
    return cmd


@pytest.mark.parametrize("writer", ["template", "openai"])
def test_sigkill_anywhere_resumes_to_the_uninterrupted_output(medgrain_bin, tmp_path, writer, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    mocks = []
    try:
        url_ref = None
        if writer == "openai":
            m, url_ref = start_mock(medgrain_bin)
            mocks.append(m)
        ref = tmp_path / "ref"
        t0 = time.monotonic()
        r = subprocess.run(demo_cmd(medgrain_bin, ref, url_ref), capture_output=True, text=True)
        duration = time.monotonic() - t0
        assert r.returncode == 0, r.stderr
        want = snapshot(ref)

        rng = random.Random(f"{SEED}-{writer}")
        kills, moments = 0, []
        for d in range(DIRS_PER_WRITER):
            out = tmp_path / f"killed-{d}"
            url_run = None
            if writer == "openai":  # one server per output folder: its counts are that folder's requests
                m, url_run = start_mock(medgrain_bin)
                mocks.append(m)
            for _ in range(ATTEMPTS_PER_DIR):
                p = subprocess.Popen(demo_cmd(medgrain_bin, out, url_run), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
                # anywhere from start-up on; resumed runs pick up where the last one stopped
                wait = rng.uniform(0.03, 0.3) * duration
                time.sleep(wait)
                if p.poll() is None:
                    p.send_signal(signal.SIGKILL)
                    kills += 1
                    moments.append(round(wait, 2))
                p.wait()
            r = subprocess.run(demo_cmd(medgrain_bin, out, url_run), capture_output=True, text=True)
            assert r.returncode == 0, r.stderr
            got = snapshot(out)
            for key in want:
                assert got[key] == want[key], (d, key)
            leftovers = [str(p.relative_to(out)) for p in out.rglob("*.tmp")]
            assert not leftovers, leftovers
            if writer == "openai":
                ref_stats, run_stats = requests_sent(url_ref), requests_sent(url_run)
                print(f"\nopenai: requests uninterrupted {ref_stats}, killed and resumed {run_stats}")
                # every prompt answered once: nothing already answered was asked again after a kill
                assert run_stats["successful_prompts"] == ref_stats["successful_prompts"], (ref_stats, run_stats)
                assert run_stats["max_successes_per_prompt"] == 1, run_stats
        print(f"\n{writer}: uninterrupted run {duration:.1f} s; killed {kills} times, after {moments} s of each run")
        assert kills >= 10, "the kills must land while the run is working"
    finally:
        for m in mocks:
            m.kill()
            m.wait()
