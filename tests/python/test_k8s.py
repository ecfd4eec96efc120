"""`medgrain k8s`: the Indexed Job and the merge Job, loaded into the official `kubernetes` Python client's V1Job
model (no cluster here), checked field by field; then the command lines the pods would run, run here with
JOB_COMPLETION_INDEX set per index, give the same dataset as a single-process build of the plan."""
import json
import os
import subprocess
from pathlib import Path

import yaml
from kubernetes.client import ApiClient

from test_workers import CONFIG, dataset


def v1job(path: Path):
    data = yaml.safe_load(path.read_text())
    return data, ApiClient()._ApiClient__deserialize(data, "V1Job")


def test_indexed_job_and_merge_job_and_their_commands(medgrain_bin, tmp_path):
    r = subprocess.run([medgrain_bin, "-q", "synth", "--out", str(tmp_path / "synth"), "--images-per-kind", "10",
                        "--volumes", "0"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG)
    out = tmp_path / "out"
    assert subprocess.run([medgrain_bin, "-q", "plan", str(cfg), "--out", str(out)]).returncode == 0
    r = subprocess.run([medgrain_bin, "k8s", str(cfg), "--out", str(out), "--workers", "3", "--image",
                        "registry.example/medgrain:0.1", "--pvc", "datasets", "--parallelism", "2"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    raw, job = v1job(out / "k8s/workers.yaml")
    assert job.kind == "Job" and job.api_version == "batch/v1"
    s = job.spec
    assert (s.completion_mode, s.completions, s.parallelism, s.backoff_limit_per_index) == ("Indexed", 3, 2, 3)
    rules = s.pod_failure_policy.rules
    assert [(x.action, x.on_exit_codes.values if x.on_exit_codes else None) for x in rules] == \
        [("FailIndex", [2]), ("Count", [3]), ("Ignore", None)]
    assert rules[2].on_pod_conditions[0].type == "DisruptionTarget"
    pod = s.template.spec
    assert pod.restart_policy == "Never"  # required by podFailurePolicy
    (c,) = pod.containers
    assert c.image == "registry.example/medgrain:0.1" and c.command[:2] == ["sh", "-c"]
    assert "--worker k8s/3" in c.command[2]
    assert pod.volumes[0].persistent_volume_claim.claim_name == "datasets"
    assert c.volume_mounts[0].name == pod.volumes[0].name
    _, merge = v1job(out / "k8s/merge.yaml")
    assert merge.spec.completions == 1 and merge.spec.template.spec.containers[0].command[2].startswith(
        "medgrain merge ")

    # what the pods run, here: every index, then the merge Job's command
    env = {**os.environ, "PATH": f"{Path(medgrain_bin).parent}:{os.environ['PATH']}"}
    for i in range(3):
        r = subprocess.run(c.command, env={**env, "JOB_COMPLETION_INDEX": str(i)}, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    r = subprocess.run(merge.spec.template.spec.containers[0].command, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    single = tmp_path / "single"
    assert subprocess.run([medgrain_bin, "-q", "plan", str(cfg), "--out", str(single)]).returncode == 0
    assert subprocess.run([medgrain_bin, "-q", "build", str(cfg), "--out", str(single)],
                          capture_output=True).returncode == 0
    assert dataset(out) == dataset(single)
    # an unusable config exits 2: the policy fails that index instead of retrying it
    bad = tmp_path / "bad.toml"
    bad.write_text("recipe = \"nope\"\n")
    r = subprocess.run(["sh", "-c", c.command[2].replace(str(cfg), str(bad))],
                       env={**env, "JOB_COMPLETION_INDEX": "0"}, capture_output=True, text=True)
    assert r.returncode == 2, (r.returncode, r.stderr)
