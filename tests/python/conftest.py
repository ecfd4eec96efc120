"""Shared fixtures: the medgrain binary (MEDGRAIN_BIN, set by scripts/test.sh) and one demo run per session."""
import os
import subprocess
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def medgrain_bin() -> str:
    path = os.environ.get("MEDGRAIN_BIN")
    if not path or not Path(path).is_file():
        # Never skip: a missing binary is a broken test setup.
        pytest.fail("MEDGRAIN_BIN must point at a built medgrain binary (scripts/test.sh sets it)")
    return path


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory, medgrain_bin) -> Path:
    out = tmp_path_factory.mktemp("demo") / "out"
    proc = subprocess.run([medgrain_bin, "demo", "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return out
