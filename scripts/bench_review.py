#!/usr/bin/env python3
"""`medgrain review` on a large dataset: a copy of a built dataset's rows replicated to N rows (default 1,000,000; ids
made unique, images replaced by an 8x8 PNG so that the copy stays small), then: time from start to the printed URL,
the first grid page, a sample page reached from the grid (its link carries the row's place), and a filtered page
(which waits for the background index of every part's summary columns).

Usage: python scripts/bench_review.py path/to/medgrain BUILT_DATASET [--rows 1000000]   (the test venv's python)"""
import argparse
import io
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image


def get(url, cookie):
    t = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Cookie": cookie})) as r:
        body = r.read()
    return time.perf_counter() - t, body


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("medgrain")
    ap.add_argument("dataset")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--part-rows", type=int, default=4096)
    a = ap.parse_args()
    src = Path(a.dataset)
    t = pa.concat_tables([pq.read_table(p) for p in sorted((src / "triplets").glob("*.parquet"))])
    buf = io.BytesIO()
    Image.new("L", (8, 8), 128).save(buf, format="PNG")
    tiny = buf.getvalue()
    img = t.column("image").combine_chunks()
    t = t.set_column(t.schema.get_field_index("image"), "image", pa.StructArray.from_arrays(
        [pa.array([tiny] * len(t), pa.binary()), img.field("path")], names=["bytes", "path"]))
    tmp = Path(tempfile.mkdtemp(prefix="bench_review_"))
    try:
        out = tmp / "ds"
        (out / "triplets").mkdir(parents=True)
        shutil.copy(src / "manifest.json", out / "manifest.json")
        made, k = 0, 0
        t0 = time.perf_counter()
        while made < a.rows:
            n = min(a.part_rows, a.rows - made)
            idx = pa.array([(made + i) % len(t) for i in range(n)])
            part = t.take(idx)
            ids = pc.binary_join_element_wise(part.column("id"), pa.array([f"{made + i:08d}" for i in range(n)]), "-")
            part = part.set_column(part.schema.get_field_index("id"), "id", ids)
            pq.write_table(part, out / "triplets" / f"part-{k:05d}.parquet")
            made += n
            k += 1
        size = sum(p.stat().st_size for p in (out / "triplets").glob("*.parquet")) / 1e9
        print(f"dataset: {made:,} rows in {k} parts, {size:.2f} GB (made in {time.perf_counter() - t0:.0f} s)")
        t0 = time.perf_counter()
        proc = subprocess.Popen([a.medgrain, "review", str(out)], stdout=subprocess.PIPE, text=True)
        url = proc.stdout.readline().split()[-1]
        started = time.perf_counter() - t0
        base, token = url.split("/?token=")
        cookie = f"medgrain_review={token}"
        try:
            first, body = get(base + "/", cookie)
            link = body.decode().split('href="/sample/')[1].split('"')[0].replace("&amp;", "&")
            sample, _ = get(base + "/sample/" + link, cookie)
            image, _ = get(base + "/image/" + link.replace("?at=", "?at="), cookie)
            filtered, _ = get(base + "/?modality=CT", cookie)
            print(f"start to URL {started:.2f} s; first grid page {first:.3f} s; a sample page from the grid "
                  f"{sample:.3f} s; its image {image:.3f} s; "
                  f"first filtered page {filtered:.2f} s (it waits for the background index)")
        finally:
            proc.kill()
            proc.wait()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
