"""`medgrain report ground` on the synthetic CT-RATE-style reports against the generator's ground truth: every
present finding grounded to its true anatomy node with its size; every absent finding negated and never present."""
import json
import subprocess

import pytest


@pytest.fixture(scope="module")
def grounded(medgrain_bin, demo_dir):
    r = subprocess.run([medgrain_bin, "report", "ground", str(demo_dir / "synth/3d/reports.csv"), "--json"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return [json.loads(l) for l in r.stdout.splitlines()]


def test_every_line_has_the_spec_shape(grounded):
    assert grounded
    for g in grounded:
        assert set(g) >= {"volume_id", "section", "sentence", "anatomy", "findings", "abnormal"}
        assert g["section"] in ("findings", "impressions")
        for f in g["findings"]:
            assert set(f) >= {"finding", "negated", "uncertain", "size_mm", "anatomy"}
        assert g["abnormal"] == any(not f["negated"] for f in g["findings"])


def test_findings_match_ground_truth(grounded, demo_dir):
    truth = [json.loads(l) for l in (demo_dir / "synth/3d/ground_truth.jsonl").read_text().splitlines()]
    present_checked = absent_checked = 0
    for t in truth:
        mine = [f for g in grounded if g["volume_id"] == t["volume"] and g["section"] == "findings" for f in g["findings"]]
        for f in t["findings"]:
            same = [m for m in mine if m["finding"] == f["finding"]]
            assert same, (t["volume"], f)
            if f["present"]:
                hits = [m for m in same if not m["negated"] and m["anatomy"] == f["anatomy"]]
                assert hits, (t["volume"], f, same)
                if f["size_mm"] is not None:
                    assert any(m["size_mm"] == pytest.approx(f["size_mm"]) for m in hits), (f, hits)
                present_checked += 1
            else:
                assert all(m["negated"] for m in same), (t["volume"], f, same)
                absent_checked += 1
    assert present_checked >= 8 and absent_checked >= 20


def test_bad_csv_is_a_clear_error(medgrain_bin, tmp_path):
    bad = tmp_path / "r.csv"
    bad.write_text("Name,Text\na,b\n")
    r = subprocess.run([medgrain_bin, "report", "ground", str(bad), "--json"], capture_output=True, text=True)
    assert r.returncode == 2 and "VolumeName" in r.stderr
