"""Batch API files: `batch export` writes OpenAI Batch JSONL within the size limits; answers obtained for those
lines (here by replaying each body against `medgrain mock-server`, as a batch service would) are read back by
`batch import`, after which `build` with `offline = true` writes every sample without sending a request."""
import json
import subprocess
import urllib.request
from pathlib import Path

import pytest


@pytest.fixture()
def mock_server(medgrain_bin):
    proc = subprocess.Popen([medgrain_bin, "mock-server", "--port", "0"], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    url = next(w for w in line.split() if w.startswith("http://"))
    yield url
    proc.kill()
    proc.wait()


def stats(url):
    with urllib.request.urlopen(url + "/stats") as r:
        return json.loads(r.read())


def test_export_import_then_offline_build(tmp_path, medgrain_bin, demo_dir, mock_server):
    config = tmp_path / "batch.toml"
    config.write_text(f"""
[output]
shard_size = 50
[[source]]
name = "synth-2d"
kind = "image-folder"
root = "{demo_dir / 'synth/2d'}"
images = "images/*.png"
masks = "masks/{{stem}}.png"
metadata = "metadata.csv"
[generator]
kind = "openai"
base_url = "{mock_server}"
model = "mock-model"
price_prompt_per_mtok = 2.5
price_completion_per_mtok = 10.0
""")
    out = tmp_path / "out"
    r = subprocess.run([medgrain_bin, "batch", "export", str(config), "--out", str(out), "--max-lines", "100"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    files = sorted((out / "batch").glob("requests-*.jsonl"))
    lines = [json.loads(l) for f in files for l in f.read_text().splitlines()]
    assert len(files) == 3 and len(lines) == 252
    assert all(len(f.read_text().splitlines()) <= 100 for f in files)
    ids = set()
    for l in lines:
        assert set(l) == {"custom_id", "method", "url", "body"}
        assert l["method"] == "POST" and l["url"] == "/v1/chat/completions"
        assert l["body"]["model"] == "mock-model"
        image = l["body"]["messages"][1]["content"][1]["image_url"]["url"]
        assert image.startswith("data:image/png;base64,")
        ids.add(l["custom_id"])
    assert len(ids) == 252

    # A batch service answers every line; one line fails, as a real batch may.
    results = tmp_path / "output.jsonl"
    with results.open("w") as fh:
        for i, l in enumerate(lines):
            if i == 7:
                fh.write(json.dumps({"id": f"r{i}", "custom_id": l["custom_id"], "response": None,
                                     "error": {"code": "server_error", "message": "boom"}}) + "\n")
                continue
            req = urllib.request.Request(mock_server + "/chat/completions", data=json.dumps(l["body"]).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req) as resp:
                body = json.loads(resp.read())
            fh.write(json.dumps({"id": f"r{i}", "custom_id": l["custom_id"],
                                 "response": {"status_code": 200, "request_id": f"q{i}", "body": body},
                                 "error": None}) + "\n")
    r = subprocess.run([medgrain_bin, "batch", "import", str(config), "--out", str(out), str(results)],
                       capture_output=True, text=True)
    assert r.returncode == 1, r.stdout + r.stderr  # one failed line
    assert "imported 251 answers" in r.stdout

    sent = stats(mock_server)["requests"]
    offline = config.read_text().replace('model = "mock-model"', 'model = "mock-model"\noffline = true')
    config.write_text(offline)
    r = subprocess.run([medgrain_bin, "build", str(config), "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 1, r.stderr
    errors = [json.loads(l) for l in (out / "errors.jsonl").read_text().splitlines()]
    assert len(errors) == 1 and "offline" in errors[0]["error"]
    assert stats(mock_server)["requests"] == sent + 1  # only our own /stats call
    import pyarrow.parquet as pq
    table = pq.read_table(out / "triplets")
    assert table.num_rows == 251
    assert set(table.column("generator").combine_chunks().field("kind").to_pylist()) == {"openai"}
    st = json.loads((out / "stats.json").read_text())
    gen = table.column("generator").to_pylist()
    assert st["prompt_tokens"] == sum(g["prompt_tokens"] for g in gen) > 0
    assert st["completion_tokens"] == sum(g["completion_tokens"] for g in gen) > 0
    assert st["estimated_cost_usd"] == pytest.approx(st["prompt_tokens"] / 1e6 * 2.5 + st["completion_tokens"] / 1e6 * 10.0)

    # The byte limit splits files too (each body is ~100 kB: a 1 MB limit gives many files).
    small = tmp_path / "small"
    r = subprocess.run([medgrain_bin, "batch", "export", str(config), "--out", str(small), "--max-mb", "1"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    parts = sorted((small / "batch").glob("requests-*.jsonl"))
    assert len(parts) > 5 and all(p.stat().st_size <= 1024 * 1024 for p in parts)
    assert sum(len(p.read_text().splitlines()) for p in parts) == 252

    # Exporting again writes only what is still missing.
    r = subprocess.run([medgrain_bin, "batch", "export", str(config), "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "1 requests" in r.stdout and "251 already cached" in r.stdout
