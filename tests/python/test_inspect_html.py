"""`medgrain inspect DIR --html FILE`, opened in a real browser (Debian chromium + chromedriver over WebDriver,
PyPI selenium): the report loads with no console errors and fetches nothing, its plots are there (SVG from
plotters), every gallery outline is exactly the crack boundary of the ROI's mask as pycocotools decodes the row's
RLE, and text from the dataset shows as text (no script runs)."""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from pycocotools import mask as mask_utils
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs/screenshots"


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
        pytest.fail("Debian chromium and chromium-driver are missing (scripts/test.sh installs them)")
    o = webdriver.ChromeOptions()
    o.binary_location = CHROMIUM
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,2200",
              "--disable-dev-shm-usage"]:
        o.add_argument(a)
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=o)
    yield d
    d.quit()


def report(bin_, dataset, out, *extra):
    r = subprocess.run([bin_, "inspect", str(dataset), "--html", str(out), *extra], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r


def crack_edges(mask):
    """Every unit edge between a set pixel and an unset one (or the border), as ((x0, y0), (x1, y1))."""
    h, w = mask.shape
    p = np.pad(mask, 1)
    out = set()
    for r, c in zip(*np.nonzero(mask)):
        R, C = r + 1, c + 1
        if not p[R - 1, C]:
            out.add(((c, r), (c + 1, r)))
        if not p[R + 1, C]:
            out.add(((c, r + 1), (c + 1, r + 1)))
        if not p[R, C - 1]:
            out.add(((c, r), (c, r + 1)))
        if not p[R, C + 1]:
            out.add(((c + 1, r), (c + 1, r + 1)))
    return out


def path_edges(d):
    out = set()
    for x, y, kind in re.findall(r"M(\d+) (\d+)([hv])1", d):
        x, y = int(x), int(y)
        out.add(((x, y), (x + 1, y)) if kind == "h" else ((x, y), (x, y + 1)))
    assert len(re.findall(r"M", d)) == len(out), "every move is one unit edge"
    return out


def test_report_loads_with_plots_and_exact_outlines(medgrain_bin, demo_dir, tmp_path, browser):
    out = tmp_path / "report.html"
    r = report(medgrain_bin, demo_dir, out, "--json")
    summary = json.loads(r.stdout)
    assert summary["plots"] >= 10 and summary["gallery"] == 24
    html = out.read_text()
    # self-contained: no script, stylesheet or image fetched from anywhere (the only URL is SVG's namespace)
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:)""", html)
    assert "<script" not in html
    browser.get(out.as_uri())
    severe = [l for l in browser.get_log("browser") if l["level"] == "SEVERE"]
    assert severe == []
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    n_plots = browser.execute_script("return document.querySelectorAll('div.plot > svg').length")
    assert n_plots == summary["plots"]
    bars = browser.execute_script(
        "return [...document.querySelectorAll('div.plot > svg')].map(s => s.querySelectorAll('rect').length)")
    assert all(b >= 3 for b in bars), bars
    assert browser.execute_script(
        "return [...document.querySelectorAll('figure.sample img')].every(i => i.complete && i.naturalWidth > 0)")
    titles = browser.execute_script("return [...document.querySelectorAll('h2')].map(h => h.textContent)")
    assert [t.split(" (")[0] for t in titles] == ["Triplets", "QC flags by source", "Grounded reports", "VQA",
                                                   "Gallery"]
    # the gallery's modalities: round-robin over what the sample holds
    mods = browser.execute_script(
        "return [...document.querySelectorAll('figure.sample figcaption')].map(f => f.textContent.split(' · ')[1])")
    assert len(set(mods)) >= 5, mods
    # each outline is the crack boundary of the mask pycocotools decodes from the row's RLE
    rows = {r["id"]: r for p in sorted((demo_dir / "triplets").glob("*.parquet")) for r in pq.read_table(p).to_pylist()}
    figures = browser.execute_script("""return [...document.querySelectorAll('figure.sample')].map(f => ({
        id: f.dataset.id, paths: [...f.querySelectorAll('path.roi')].map(p => [p.dataset.label, p.getAttribute('d')])}))""")
    checked = 0
    for f in figures:
        row = rows[f["id"]]
        assert [p[0] for p in f["paths"]] == [x["label"] for x in row["rois"]]
        for (label, d), roi in zip(f["paths"], row["rois"]):
            rle = {"size": roi["mask_rle"]["size"], "counts": roi["mask_rle"]["counts"].encode()}
            m = mask_utils.decode(rle).astype(bool)
            assert path_edges(d) == crack_edges(m), (f["id"], label)
            checked += 1
    assert checked >= 24
    # the sections and ROI facts are shown
    assert browser.execute_script("return document.querySelectorAll('dl.sections dt').length") >= 24 * 5
    browser.save_screenshot(str(tmp_path / "report.png"))
    browser.execute_script("document.querySelector('#gallery').scrollIntoView()")
    browser.save_screenshot(str(tmp_path / "gallery.png"))
    if os.environ.get("MEDGRAIN_SAVE_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / "report.png", SCREENSHOTS / "inspect_report.png")
        shutil.copy(tmp_path / "gallery.png", SCREENSHOTS / "inspect_gallery.png")


HOSTILE = ["<script>window.__pwned = 1</script>", "<img src=x onerror=\"window.__pwned = 2\">"]


def build_hostile_dataset(bin_, demo_dir, tmp_path):
    """A small dataset whose source name is `<b>evil</b>` and whose ROI labels are HOSTILE (markup that would run)."""
    cfg = tmp_path / "hostile.toml"
    cfg.write_text(f"""
[output]
shard_size = 50
[[source]]
name = "<b>evil</b>"
kind = "image-folder"
root = "{demo_dir / 'synth/2d'}"
images = "images/ct_abdomen_000*.png"
masks = "masks/{{stem}}.png"
metadata = "metadata.csv"
[source.labels]
1 = {json.dumps(HOSTILE[0])}
2 = {json.dumps(HOSTILE[1])}
3 = {json.dumps(HOSTILE[1])}
[generator]
kind = "template"
""")
    ds = tmp_path / "ds"
    r = subprocess.run([bin_, "-q", "build", str(cfg), "--out", str(ds)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return ds


def test_text_from_the_dataset_is_shown_not_run(medgrain_bin, demo_dir, tmp_path, browser):
    ds = build_hostile_dataset(medgrain_bin, demo_dir, tmp_path)
    out = tmp_path / "report.html"
    report(medgrain_bin, ds, out)
    browser.get(out.as_uri())
    assert browser.execute_script("return window.__pwned === undefined")
    assert browser.execute_script("return document.querySelectorAll('script, figure img[src=\"x\"]').length") == 0
    text = browser.execute_script("return document.body.innerText")
    assert HOSTILE[0] in text and "<b>evil</b>" in text
    assert [l for l in browser.get_log("browser") if l["level"] == "SEVERE"] == []


def test_not_a_dataset_is_refused(medgrain_bin, tmp_path):
    (tmp_path / "empty").mkdir()
    r = subprocess.run([medgrain_bin, "inspect", str(tmp_path / "empty"), "--html", str(tmp_path / "r.html")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "manifest.json" in r.stderr and not (tmp_path / "r.html").exists()
