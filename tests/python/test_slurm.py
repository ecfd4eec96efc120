"""`medgrain slurm` on a real Slurm: a single-node cluster on 127.0.0.1 (Debian slurm-wlm and munge, installed by the
test command; slurmctld and slurmd started here with a config this test writes, stopped at the end). A 4-task job
array builds each recipe (triplets; grounded reports) of a synthetic corpus and the merge job (afterany) assembles
it: the dataset equals a single-process build of the plan. Then the array is cancelled mid-run with scancel: the merge job names the missing
shards, and submitting again (finished shards are skipped) completes the dataset."""
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from test_workers import CONFIG, dataset
from test_workers_reports import config as reports_config
from test_workers_reports import dataset as reports_dataset


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.fail("the Slurm test starts slurmctld and slurmd itself and needs root")
    for tool in ("slurmctld", "slurmd", "sbatch", "squeue", "scancel", "munged"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is missing: scripts/test.sh installs slurm-wlm and munge")
    d = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool", "log"):
        (d / sub).mkdir()
    host = socket.gethostname().split(".")[0]
    conf = d / "slurm.conf"
    conf.write_text(f"""ClusterName=medgrain-test
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd.log
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
MaxArraySize=1001
NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")
    env = {**os.environ, "SLURM_CONF": str(conf)}
    if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode != 0:
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        subprocess.run(["sudo", "-u", "munge", "munged"] if shutil.which("sudo") else ["munged", "--force"],
                       check=False, capture_output=True)
        if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode != 0:
            subprocess.run(["munged", "--force"], check=True, capture_output=True)
    subprocess.run(["slurmctld", "-f", str(conf)], env=env, check=True)
    subprocess.run(["slurmd", "-f", str(conf)], env=env, check=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            out = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True).stdout
            if "idle" in out:
                break
            time.sleep(0.5)
        else:
            pytest.fail("the test cluster did not come up: " + (d / "log/slurmctld.log").read_text()[-2000:])
        yield env
    finally:
        subprocess.run(["scancel", "--user", "root"], env=env, capture_output=True)
        for pid_file in ("slurmd.pid", "slurmctld.pid"):
            p = d / pid_file
            if p.exists():
                subprocess.run(["kill", p.read_text().strip()], capture_output=True)


def wait_for(env, ids, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        q = subprocess.run(["squeue", "-h", "-j", ",".join(ids)], env=env, capture_output=True, text=True)
        if q.returncode == 0 and not q.stdout.strip():
            return
        time.sleep(0.5)
    pytest.fail(f"jobs {ids} did not finish in {timeout} s")


def submit(medgrain_bin, env, cfg, out, *extra):
    r = subprocess.run([medgrain_bin, "-q", "slurm", str(cfg), "--out", str(out), "--workers", "4", "--submit",
                        *extra], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    m = re.search(r"submitted workers (\d+) and merge (\d+)", r.stdout)
    assert m, r.stdout
    return m.group(1), m.group(2)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, medgrain_bin):
    d = tmp_path_factory.mktemp("slurm-corpus")
    r = subprocess.run([medgrain_bin, "-q", "synth", "--out", str(d / "synth"), "--images-per-kind", "10",
                        "--volumes", "6"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    (d / "c.toml").write_text(CONFIG.replace("shard_size = 16", "shard_size = 8"))
    single = d / "single"
    assert subprocess.run([medgrain_bin, "-q", "plan", str(d / "c.toml"), "--out", str(single)]).returncode == 0
    assert subprocess.run([medgrain_bin, "-q", "build", str(d / "c.toml"), "--out", str(single)],
                          capture_output=True).returncode == 0
    want = dataset(single)
    (d / "reports.toml").write_text(reports_config(d / "synth/3d"))
    single = d / "single-reports"
    assert subprocess.run([medgrain_bin, "-q", "plan", str(d / "reports.toml"), "--out", str(single)]).returncode == 0
    assert subprocess.run([medgrain_bin, "-q", "build", str(d / "reports.toml"), "--out", str(single)],
                          capture_output=True).returncode == 0
    return d, want, reports_dataset(single)


def test_job_array_and_merge_job_equal_one_process(medgrain_bin, slurm, corpus):
    d, want, _ = corpus
    out = d / "array"
    assert subprocess.run([medgrain_bin, "-q", "plan", str(d / "c.toml"), "--out", str(out)]).returncode == 0
    workers, merge = submit(medgrain_bin, slurm, d / "c.toml", out)
    script = (out / "slurm/workers.sbatch").read_text()
    assert "#SBATCH --array=0-3\n" in script and "--worker slurm/4" in script
    wait_for(slurm, [workers, merge])
    log = (out / "slurm/merge.log").read_text()
    assert "medgrain merge" in log, log
    assert dataset(out) == want
    assert sorted(p.name for p in (out / "slurm").glob("worker-*.log")) == [f"worker-{i}.log" for i in range(4)]


def test_grounded_reports_job_array_equals_one_process(medgrain_bin, slurm, corpus):
    d, _, want = corpus
    out = d / "array-reports"
    assert subprocess.run([medgrain_bin, "-q", "plan", str(d / "reports.toml"), "--out", str(out)]).returncode == 0
    workers, merge = submit(medgrain_bin, slurm, d / "reports.toml", out)
    wait_for(slurm, [workers, merge])
    log = (out / "slurm/merge.log").read_text()
    assert "medgrain merge" in log and "grounded rows" in log, log
    assert reports_dataset(out) == want
    # every task ran its own shards: 3 shards of two reports over 4 tasks, task 3 has none
    for i in range(4):
        assert (out / f"slurm/worker-{i}.log").exists()


def test_cancelled_mid_run_then_resubmitted_completes(medgrain_bin, slurm, corpus):
    d, want, _ = corpus
    out = d / "cancelled"
    assert subprocess.run([medgrain_bin, "-q", "plan", str(d / "c.toml"), "--out", str(out)]).returncode == 0
    # one task at a time; cancel the array as soon as its first task is done
    workers, merge = submit(medgrain_bin, slurm, d / "c.toml", out, "--throttle", "1")
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "slurm/worker-0.log").exists():
        time.sleep(0.05)
    while time.time() < deadline:
        q = subprocess.run(["squeue", "-h", "-r", "-j", workers, "-o", "%K %T"], env=slurm, capture_output=True,
                           text=True).stdout
        if not re.search(r"^0 ", q, re.M):
            break
        time.sleep(0.05)
    subprocess.run(["scancel", workers], env=slurm, check=True)
    wait_for(slurm, [workers, merge])
    log = (out / "slurm/merge.log").read_text()
    assert "are not finished" in log, log
    assert not (out / "stats.json").exists()
    # submitting again: finished shards are skipped, the rest is built, the merge job assembles
    workers, merge = submit(medgrain_bin, slurm, d / "c.toml", out)
    wait_for(slurm, [workers, merge])
    assert dataset(out) == want
