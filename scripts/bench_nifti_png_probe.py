#!/usr/bin/env python3
"""NIfTI and PNG decode throughput, medgrain `probe` against nibabel and Pillow in the same run (BENCHMARKS.md,
"NIfTI and PNG decode").

    ~/.cache/medgrain/venv/bin/python scripts/bench_nifti_png_probe.py target/release/medgrain

Inputs written here by nibabel/Pillow into a temporary folder: a 512×512×300 int16 `.nii.gz` with a CT-like body
and noise, and 200 PNGs of 512×512 8-bit grey (half noise, half gradients). Both sides decode everything and take
min/max/sum; medgrain's time includes process start and JSON output. Three runs each."""
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main():
    medgrain = sys.argv[1] if len(sys.argv) > 1 else "target/release/medgrain"
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        z, y, x = np.mgrid[0:300, 0:512, 0:512]
        body = ((x - 256) ** 2 / 200 ** 2 + (y - 256) ** 2 / 150 ** 2) < 1
        vol = np.where(body, 40, -1000).astype(np.int16) + rng.normal(0, 20, body.shape).astype(np.int16)
        vol = np.ascontiguousarray(np.transpose(vol, (2, 1, 0)))
        nii = d / "ct.nii.gz"
        nib.save(nib.Nifti1Image(vol, np.diag([0.8, 0.8, 1.0, 1.0])), nii)
        del vol, z, y, x, body
        pngs = []
        for i in range(200):
            if i % 2:
                a = rng.integers(0, 256, (512, 512), dtype=np.uint8)
            else:
                a = (np.add.outer(np.arange(512), np.arange(512)) // 4 % 256).astype(np.uint8)
            p = d / f"img{i:03d}.png"
            Image.fromarray(a).save(p)
            pngs.append(str(p))
        mb_nii = nii.stat().st_size / 1e6
        mb_png = sum(Path(p).stat().st_size for p in pngs) / 1e6

        def ours(files):
            r = subprocess.run([medgrain, "-q", "probe", *files, "--json"], capture_output=True, text=True)
            assert r.returncode == 0, r.stderr[-300:]

        def nibabel_side():
            a = np.asarray(nib.load(nii).dataobj, dtype=np.float64)
            _ = (a.min(), a.max(), a.sum())

        def pillow_side():
            for p in pngs:
                a = np.asarray(Image.open(p))
                _ = (a.min(), a.max(), a.astype(np.float64).sum())

        print("| input | medgrain (3 runs) | reference (3 runs) |")
        print("|---|---|---|")
        o = [timed(lambda: ours([str(nii)])) for _ in range(3)]
        r = [timed(nibabel_side) for _ in range(3)]
        print(f"| NIfTI 512×512×300 int16 gz, {mb_nii:.0f} MB | {' / '.join(f'{t:.2f}' for t in o)} s | "
              f"nibabel `dataobj` → float64: {' / '.join(f'{t:.2f}' for t in r)} s |")
        o = [timed(lambda: ours(pngs)) for _ in range(3)]
        r = [timed(pillow_side) for _ in range(3)]
        print(f"| 200 × PNG 512×512 8-bit, {mb_png:.0f} MB | {' / '.join(f'{t:.2f}' for t in o)} s "
              f"(≈ {200 / min(o):,.0f} images/s) | Pillow + numpy: {' / '.join(f'{t:.2f}' for t in r)} s "
              f"(≈ {200 / min(r):,.0f} images/s) |")


if __name__ == "__main__":
    main()
