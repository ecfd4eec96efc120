"""`medgrain review DIR`: the review server, driven in a real browser (Debian chromium + chromedriver, PyPI selenium)
and probed over HTTP: keys move and decide, review.sqlite holds exactly the decisions made, the ROI outline drawn on
the page lies on the mask's boundary pixels (read back from a screenshot), and the security rules hold (token,
path traversal, escaping, POSTs without the token, non-loopback warning)."""
import io
import json
import shutil
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from test_inspect_html import CHROMEDRIVER, CHROMIUM, HOSTILE, SCREENSHOTS, build_hostile_dataset

import os


@pytest.fixture(scope="module")
def browser():
    o = webdriver.ChromeOptions()
    o.binary_location = CHROMIUM
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000", "--disable-dev-shm-usage"]:
        o.add_argument(a)
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=o)
    yield d
    d.quit()


def copy_dataset(demo_dir, dst):
    dst.mkdir()
    shutil.copy(demo_dir / "manifest.json", dst / "manifest.json")
    shutil.copytree(demo_dir / "triplets", dst / "triplets")
    return dst


class Server:
    def __init__(self, bin_, dataset, *extra):
        self.proc = subprocess.Popen([bin_, "review", str(dataset), *extra], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert "token=" in line, (line, self.proc.stderr.read() if self.proc.poll() is not None else "")
        self.url = line.split()[-1]
        self.base, self.token = self.url.split("/?token=")

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def http(url, data=None, headers=None, method=None):
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def decisions(dataset):
    with sqlite3.connect(dataset / "review.sqlite") as c:
        return c.execute("SELECT sample_id, decision, reviewer, before, after FROM decisions ORDER BY seq").fetchall()


def press(browser, key):
    ActionChains(browser).send_keys(key).perform()


def current_id(browser):
    return browser.current_url.split("/sample/")[1].split("?")[0]


def test_keys_move_and_decide_and_sqlite_holds_exactly_that(medgrain_bin, demo_dir, tmp_path, browser):
    ds = copy_dataset(demo_dir, tmp_path / "ds")
    s = Server(medgrain_bin, ds, "--reviewer", "dr-test")
    try:
        browser.get(s.url)  # the token goes into a cookie; later pages need no token in the URL
        cells = browser.find_elements(By.CSS_SELECTOR, "a.cell")
        assert len(cells) == 48
        ids = [c.get_attribute("href").split("/sample/")[1].split("?")[0] for c in cells[:4]]
        first = cells[0].get_attribute("href")
        assert "?at=0.0" in first  # grid links carry the row's place: no wait for the index
        browser.get(first)
        assert browser.find_element(By.ID, "decision").text == "undecided"
        press(browser, "j")
        WebDriverWait(browser, 5).until(lambda b: current_id(b) == ids[1])
        press(browser, "k")
        WebDriverWait(browser, 5).until(lambda b: current_id(b) == ids[0])
        press(browser, "a")  # accept, then on to the next
        WebDriverWait(browser, 5).until(lambda b: current_id(b) == ids[1])
        press(browser, "r")  # reject, then on
        WebDriverWait(browser, 5).until(lambda b: current_id(b) == ids[2])
        original = browser.find_element(By.NAME, "roi_analysis").get_attribute("value")
        press(browser, "e")
        area = browser.find_element(By.NAME, "roi_analysis")
        area.send_keys(Keys.END, " Reviewed: margin irregular.")
        ActionChains(browser).key_down(Keys.CONTROL).send_keys(Keys.ENTER).key_up(Keys.CONTROL).perform()
        WebDriverWait(browser, 5).until(lambda b: b.find_element(By.ID, "decision").text == "edited")
        got = decisions(ds)
        assert [(g[0], g[1], g[2]) for g in got] == [(ids[0], "accepted", "dr-test"), (ids[1], "rejected", "dr-test"),
                                                     (ids[2], "edited", "dr-test")]
        before, after = json.loads(got[2][3]), json.loads(got[2][4])
        assert before["roi_analysis"] == original
        assert after["roi_analysis"] == original + " Reviewed: margin irregular."
        assert {k: v for k, v in after.items() if k != "roi_analysis"} == \
            {k: v for k, v in before.items() if k != "roi_analysis"}
        # the grid filters by decision
        browser.get(s.base + "/?decision=accepted")
        assert [c.get_attribute("href").split("/sample/")[1].split("?")[0]
                for c in browser.find_elements(By.CSS_SELECTOR, "a.cell")] == [ids[0]]
        assert [l for l in browser.get_log("browser") if l["level"] == "SEVERE"] == []
    finally:
        s.stop()
    # inspect counts the decisions; export --reviewed accepted takes the accepted and edited rows, with the edit
    r = subprocess.run([medgrain_bin, "inspect", str(ds), "--json"], capture_output=True, text=True)
    assert json.loads(r.stdout)["review_decisions"] == {"accepted": 1, "edited": 1, "rejected": 1}
    dest = tmp_path / "llava"
    r = subprocess.run([medgrain_bin, "export", str(ds), "--format", "llava", "--to", str(dest), "--reviewed",
                        "accepted"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    records = json.loads((dest / "llava.json").read_text())
    by_id = {}
    for rec in records:
        row_id = next(i for i in ids + [rec["id"]] if rec["id"].startswith(i))
        by_id.setdefault(row_id, []).append(json.dumps(rec))
    assert set(by_id) == {ids[0], ids[2]}, set(by_id)
    assert any("Reviewed: margin irregular." in t for t in by_id[ids[2]])
    assert not any("Reviewed: margin irregular." in t for t in by_id[ids[0]])
    # the HTML report shows them too
    r = subprocess.run([medgrain_bin, "inspect", str(ds), "--html", str(tmp_path / "r.html")], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    html = (tmp_path / "r.html").read_text()
    assert "Review decisions" in html and "<td>accepted</td><td>1</td>" in html and "<td>edited</td><td>1</td>" in html
    r = subprocess.run([medgrain_bin, "export", str(demo_dir), "--format", "llava", "--to", str(tmp_path / "x"),
                        "--reviewed", "accepted"], capture_output=True, text=True)
    assert r.returncode == 2 and "review.sqlite" in r.stderr


def test_the_drawn_outline_lies_on_the_mask_boundary(medgrain_bin, demo_dir, tmp_path, browser):
    ds = copy_dataset(demo_dir, tmp_path / "ds")
    rows = [r for p in sorted((ds / "triplets").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    row = next(r for r in rows if r["modality"] == "CT" and len(r["rois"]) == 1 and r["rois"][0]["area_px"] > 150)
    s = Server(medgrain_bin, ds)
    try:
        browser.get(s.url)
        browser.get(s.base + "/sample/" + row["id"])
        frame = browser.find_element(By.CSS_SELECTOR, ".frame")
        shot = np.asarray(Image.open(io.BytesIO(frame.screenshot_as_png)).convert("RGB")).astype(int)
        H, W = shot.shape[:2]
        h, w = row["height"], row["width"]
        sy, sx = H / h, W / w
        red = (shot[..., 0] > 200) & (shot[..., 1] < 70) & (shot[..., 2] < 70)
        ys, xs = np.nonzero(red)
        assert len(ys) > 50
        rle = row["rois"][0]["mask_rle"]
        m = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)
        # boundary pixels: in the mask, with a 4-neighbour outside it
        p = np.pad(m, 1)
        inner = p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
        boundary = m & ~inner
        near = np.zeros_like(boundary)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                near |= np.roll(np.roll(boundary, dy, 0), dx, 1)
        # every red screen pixel maps onto (or next to) a boundary pixel of the mask
        u = np.clip((xs / sx).astype(int), 0, w - 1)
        v = np.clip((ys / sy).astype(int), 0, h - 1)
        assert near[v, u].mean() == 1.0, near[v, u].mean()
        # and the outline covers the boundary: almost every boundary pixel has red drawn next to it
        drawn = np.zeros_like(boundary)
        drawn[v, u] = True
        grown = np.zeros_like(drawn)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                grown |= np.roll(np.roll(drawn, dy, 0), dx, 1)
        assert (grown & boundary).sum() / boundary.sum() >= 0.95
        # the ROI toggle hides it
        browser.find_element(By.CSS_SELECTOR, "input[data-roi='roi-0']").click()
        hidden = np.asarray(Image.open(io.BytesIO(frame.screenshot_as_png)).convert("RGB")).astype(int)
        assert ((hidden[..., 0] > 200) & (hidden[..., 1] < 70) & (hidden[..., 2] < 70)).sum() == 0
        browser.find_element(By.CSS_SELECTOR, "input[data-roi='roi-0']").click()
        if os.environ.get("MEDGRAIN_SAVE_SCREENSHOTS"):
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            browser.save_screenshot(str(SCREENSHOTS / "review_sample.png"))
    finally:
        s.stop()


def test_security(medgrain_bin, demo_dir, tmp_path, browser):
    ds = copy_dataset(demo_dir, tmp_path / "ds")
    sid = pq.read_table(sorted((ds / "triplets").glob("*.parquet"))[0]).to_pylist()[0]["id"]
    s = Server(medgrain_bin, ds)
    try:
        cookie = {"Cookie": f"medgrain_review={s.token}"}
        # no token, a wrong token: 403 on every route
        for path in ["/", f"/sample/{sid}", f"/image/{sid}", "/nothing"]:
            assert http(s.base + path)[0] == 403, path
            assert http(s.base + path + "?token=" + "0" * 32)[0] == 403, path
            assert http(s.base + path, headers={"Cookie": "medgrain_review=wrong"})[0] == 403, path
        assert http(s.base + f"/sample/{sid}", headers=cookie)[0] == 200
        # path traversal in every route that takes a name: 404, nothing from outside served
        for route in ["sample", "image"]:
            for name in ["../../../../etc/passwd", "..%2f..%2f..%2fetc%2fpasswd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
                         "%2Fetc%2Fpasswd", "/etc/passwd", "..", "manifest.json", "..%2fmanifest.json"]:
                code, body = http(f"{s.base}/{route}/{name}", headers=cookie)
                assert code == 404, (route, name, code)
                assert b"root:" not in body and b"[[source]]" not in body, (route, name)
        code, body = http(s.base + "//etc/passwd", headers=cookie)
        assert code == 404 and b"root:" not in body
        # POSTs: without the token header, with a wrong id, with a bad decision: nothing changes
        post = lambda body, h: http(s.base + "/api/decide", data=json.dumps(body).encode(),
                                    headers={"Content-Type": "application/json", **h}, method="POST")
        assert post({"id": sid, "decision": "accepted"}, {})[0] == 403
        assert post({"id": sid, "decision": "accepted"}, cookie)[0] == 403  # cookie alone: a cross-site form
        hdr = {**cookie, "x-review-token": s.token}
        assert post({"id": "not-a-row", "decision": "accepted"}, hdr)[0] == 404
        assert post({"id": sid, "decision": "approved"}, hdr)[0] == 400
        assert post({"id": sid, "decision": "edited", "sections": {"evil": "x"}}, hdr)[0] == 400
        assert decisions(ds) == []
        assert post({"id": sid, "decision": "accepted"}, hdr)[0] == 200
        assert len(decisions(ds)) == 1
    finally:
        s.stop()
    # a second server on the same folder works beside a first one
    a, b = Server(medgrain_bin, ds, "--reviewer", "a"), Server(medgrain_bin, ds, "--reviewer", "b")
    try:
        for srv in (a, b):
            hdr = {"Cookie": f"medgrain_review={srv.token}", "x-review-token": srv.token,
                   "Content-Type": "application/json"}
            assert http(srv.base + "/api/decide", data=json.dumps({"id": sid, "decision": "rejected"}).encode(),
                        headers=hdr, method="POST")[0] == 200
        assert [d[2] for d in decisions(ds)][-2:] == ["a", "b"]
    finally:
        a.stop()
        b.stop()
    # binding beyond loopback needs --host and warns
    r = subprocess.Popen([medgrain_bin, "review", str(ds), "--host", "0.0.0.0"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert "token=" in r.stdout.readline()
    finally:
        r.kill()
        _, err = r.communicate()
    assert "WARNING" in err and "not loopback" in err
    # not a dataset: exit 2 naming what is missing
    (tmp_path / "empty").mkdir()
    r = subprocess.run([medgrain_bin, "review", str(tmp_path / "empty")], capture_output=True, text=True, timeout=20)
    assert r.returncode == 2 and "manifest.json" in r.stderr


def test_text_from_the_dataset_is_shown_not_run(medgrain_bin, demo_dir, tmp_path, browser):
    ds = build_hostile_dataset(medgrain_bin, demo_dir, tmp_path)
    s = Server(medgrain_bin, ds)
    try:
        browser.get(s.url)
        for cell in [c.get_attribute("href") for c in browser.find_elements(By.CSS_SELECTOR, "a.cell")]:
            browser.get(cell)
            assert browser.execute_script("return window.__pwned === undefined")
            assert browser.execute_script("return document.querySelectorAll('img[src=\"x\"]').length") == 0
        labels = browser.execute_script("return [...document.querySelectorAll('.facts .label')].map(l => l.textContent)")
        assert set(labels) <= set(HOSTILE) and labels
        assert "<b>evil</b>" in browser.execute_script("return document.body.innerText")
    finally:
        s.stop()


def test_volume_page(medgrain_bin, demo_dir, tmp_path, browser):
    """The grounded-reports page of a volume: every sentence of its report with its anatomy path (as the Parquet rows
    say), slices with outlines named after the report's masks, its VQA pairs; unknown names are 404."""
    ds = tmp_path / "ds"
    # a grounded-reports dataset alone (no triplets): the grid is empty, the volumes are listed; the inputs stay where
    # the manifest says
    shutil.copytree(demo_dir, ds, ignore=shutil.ignore_patterns("synth", "triplets"))
    shutil.copy(ds / "grounded_reports/manifest.json", ds / "manifest.json")
    grounded = [r for p in sorted((ds / "grounded_reports").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    vqa = [r for p in sorted((ds / "vqa").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    vid = grounded[0]["volume_id"]
    s = Server(medgrain_bin, ds)
    try:
        browser.get(s.url)
        links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "ul.volumes a")]
        assert len(links) == len({r["volume_id"] for r in grounded})
        browser.get(s.base + "/volume/" + vid)
        rows = browser.execute_script(
            "return [...document.querySelectorAll('tr.sentence')].map(t => [...t.cells].map(c => c.textContent))")
        want = [[r["anatomy"] or "", r["sentence"], "yes" if r["abnormal"] else "no", "yes" if r["negated"] else "no"]
                for r in grounded if r["volume_id"] == vid]
        assert rows == want
        qa = browser.execute_script(
            "return [...document.querySelectorAll('tr.qa')].map(t => [...t.cells].map(c => c.textContent))")
        assert qa == [[q["question_type"], q["question"], q["answer"]] for q in vqa if q["volume_id"] == vid]
        assert browser.execute_script("return document.querySelectorAll('.slice img').length") >= 1
        organs = browser.execute_script("return [...document.querySelectorAll('path.organ')].map(p => p.dataset.label)")
        masks = {Path(r["mask_ref"]).name.replace(".nii.gz", "") for r in grounded if r["volume_id"] == vid and r["mask_ref"]}
        assert organs and set(organs) <= masks
        assert [l for l in browser.get_log("browser") if l["level"] == "SEVERE"] == []
        cookie = {"Cookie": f"medgrain_review={s.token}"}
        for name in ["nothing.nii.gz", "..%2f..%2fetc%2fpasswd", "%2Fetc%2Fpasswd", "..", "manifest.json"]:
            assert http(f"{s.base}/volume/{name}", headers=cookie)[0] == 404, name
        assert http(f"{s.base}/volume/{vid}")[0] == 403
        if os.environ.get("MEDGRAIN_SAVE_SCREENSHOTS"):
            browser.execute_script("document.querySelector('.slice').scrollIntoView()")
            browser.save_screenshot(str(SCREENSHOTS / "review_volume.png"))
    finally:
        s.stop()


def test_a_killed_server_leaves_a_sound_database(medgrain_bin, demo_dir, tmp_path):
    """Decisions are committed one transaction each (WAL): SIGKILL right after them loses none and corrupts nothing."""
    ds = copy_dataset(demo_dir, tmp_path / "ds")
    ids = [r["id"] for r in pq.read_table(sorted((ds / "triplets").glob("*.parquet"))[0]).to_pylist()[:20]]
    s = Server(medgrain_bin, ds)
    hdr = {"Cookie": f"medgrain_review={s.token}", "x-review-token": s.token, "Content-Type": "application/json"}
    for i in ids:
        assert http(s.base + "/api/decide", data=json.dumps({"id": i, "decision": "accepted"}).encode(), headers=hdr,
                    method="POST")[0] == 200
    s.proc.kill()  # SIGKILL: no shutdown, no checkpoint
    s.proc.wait()
    with sqlite3.connect(ds / "review.sqlite") as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert [r[0] for r in c.execute("SELECT sample_id FROM decisions ORDER BY seq")] == ids
