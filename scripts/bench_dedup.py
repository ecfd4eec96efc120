"""pHash rate of `medgrain phash` beside the `imagehash` library on the same files in the same run, both pinned to
one core, then `medgrain dedup` end to end (2 cores) on a built dataset against a reference folder.

    python scripts/bench_dedup.py MEDGRAIN_BIN [--per-kind 300]

Needs the test venv (Pillow, imagehash)."""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import imagehash
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin")
    ap.add_argument("--per-kind", type=int, default=300)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        subprocess.run([a.bin, "-q", "synth", "--out", str(d / "synth"), "--images-per-kind", str(a.per_kind),
                        "--volumes", "0"], check=True)
        files = sorted(str(p) for p in (d / "synth/2d/images").glob("*.png"))
        n = len(files)
        os.sched_setaffinity(0, {0})
        t = time.perf_counter()
        subprocess.run([a.bin, "phash", *files], check=True, capture_output=True)
        ours = time.perf_counter() - t
        t = time.perf_counter()
        for f in files:
            imagehash.phash(Image.open(f))
        ref = time.perf_counter() - t
        print(f"pHash of {n} 256x256 PNG files, one core: medgrain phash {ours:.2f} s ({n / ours:,.0f} images/s), "
              f"imagehash {ref:.2f} s ({n / ref:,.0f} images/s): {ref / ours:.1f}x")
        os.sched_setaffinity(0, set(range(os.cpu_count())))
        cfg = d / "build.toml"
        cfg.write_text('recipe = "triplets"\n[output]\nshard_size = 256\n[[source]]\nname = "s"\nkind = "image-folder"\n'
                       'root = "synth/2d"\nimages = "images/*.png"\n[generator]\nkind = "template"\n')
        subprocess.run([a.bin, "-q", "build", str(cfg), "--out", str(d / "out")], check=True)
        ref_dir = d / "ref"
        ref_dir.mkdir()
        for f in files[::10]:
            shutil.copy(f, ref_dir)
        t = time.perf_counter()
        p = subprocess.run([a.bin, "dedup", str(d / "out"), "--against", f"ref={ref_dir}", "--json"],
                           capture_output=True, text=True)
        dt = time.perf_counter() - t
        print(f"dedup of {n} rows against {len(files[::10])} reference images (2 cores, QC flags rewritten): "
              f"{dt:.2f} s ({n / dt:,.0f} rows/s) -> {p.stdout.strip()}")


if __name__ == "__main__":
    main()
