#!/usr/bin/env python3
"""DICOM decode throughput, medgrain `probe` against pydicom in the same run (BENCHMARKS.md, "DICOM decode").

    ~/.cache/medgrain/venv/bin/python scripts/bench_dicom_probe.py target/release/medgrain

Copies pydicom's CT_small.dcm 300 times, JPEG2000.dcm and JPGExtended.dcm (12-bit JPEG) 100 times each into a
temporary folder; medgrain decodes each set in one `probe FILES... --json` process (decode + raw/scaled statistics +
JSON), pydicom in this process (`dcmread` + `pixel_array` + min/max/sum). Best of three runs per side."""
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pydicom

ROOT = Path(pydicom.__file__).parent / "data/test_files"


def best_of(fn, runs=3):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    medgrain = sys.argv[1] if len(sys.argv) > 1 else "target/release/medgrain"
    warnings.simplefilter("ignore")
    print("| files | medgrain | pydicom | ratio |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as d:
        for name, copies in (("CT_small.dcm", 300), ("JPEG2000.dcm", 100), ("JPGExtended.dcm", 100)):
            folder = Path(d) / name
            folder.mkdir()
            files = []
            for i in range(copies):
                f = folder / f"{i:04d}.dcm"
                shutil.copy(ROOT / name, f)
                files.append(str(f))

            def ours():
                r = subprocess.run([medgrain, "-q", "probe", *files, "--json"], capture_output=True, text=True)
                assert r.returncode == 0, r.stderr[-500:]

            def theirs():
                for f in files:
                    a = pydicom.dcmread(f).pixel_array
                    _ = (a.min(), a.max(), a.astype(np.float64).sum())

            t_ours, t_theirs = best_of(ours), best_of(theirs)
            print(f"| {copies} × {name} | {t_ours:.3f} s · {copies / t_ours:,.0f} images/s | "
                  f"{t_theirs:.3f} s · {copies / t_theirs:,.0f} images/s | {t_theirs / t_ours:.2f}× |")


if __name__ == "__main__":
    main()
