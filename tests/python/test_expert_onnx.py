"""`expert:onnx`: a user's ONNX segmentation model as an ROI locator, run by medgrain through ONNX Runtime loaded at
run time (ort, load-dynamic, the PyPI onnxruntime wheel's libonnxruntime.so), against the same models run by
onnxruntime in Python on the same input.

The models are built here with the `onnx` package from fixed weights (no training, nothing downloaded):
- `smooth`: a 5×5 mean filter, minus 0.5, times 12 → one logit channel; free N, H, W. Receptive radius 2.
- `three`: a 3×3 convolution to three class scores, softmax over channels → probabilities; a fixed-size copy
  (`[1, 1, 48, 48]`) forces medgrain to tile, and a free-size copy is the whole-image reference.
- `labels`: the same convolution followed by ArgMax (int64 labels, `[N, 1, H, W]`).
Tiled runs must equal whole-image runs exactly because the tile margin (4) is at least the receptive radius: that is
the overlap-tile contract the README states; the margin-1 case is run too and must differ (36,033 of the 384,791 CT
voxels)."""
import glob
import json
import os
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import onnx
import onnxruntime as ort
import pyarrow.parquet as pq
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

OPSET = 17


def ort_library() -> str:
    libs = glob.glob(str(Path(ort.__file__).parent / "capi" / "libonnxruntime.so*"))
    assert libs, "the onnxruntime wheel ships libonnxruntime.so"
    return sorted(libs)[0]


def save_model(path, nodes, inits, in_shape, out_name, out_type, out_shape):
    graph = helper.make_graph(
        nodes, path.stem,
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info(out_name, out_type, out_shape)],
        initializer=[numpy_helper.from_array(a, n) for n, a in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def smooth_model(path, n="N", h="H", w="W"):
    k = np.full((1, 1, 5, 5), 1 / 25, np.float32)
    nodes = [
        helper.make_node("Conv", ["image", "k", "b"], ["c"], pads=[2, 2, 2, 2]),
        helper.make_node("Mul", ["c", "gain"], ["logits"]),
    ]
    inits = {"k": k, "b": np.array([-0.5], np.float32), "gain": np.array(12.0, np.float32)}
    return save_model(path, nodes, inits, [n, 1, h, w], "logits", TensorProto.FLOAT, [n, 1, h, w])


def three_class_weights():
    mean3 = np.full((3, 3), 1 / 9, np.float32)
    edge = np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]], np.float32)
    k = np.stack([np.zeros((3, 3), np.float32), 4 * mean3, 8 * mean3 + edge])[:, None]  # [3, 1, 3, 3]
    b = np.array([1.2, 0.0, -2.6], np.float32)
    return k.astype(np.float32), b


def three_model(path, shape, labels=False):
    k, b = three_class_weights()
    nodes = [helper.make_node("Conv", ["image", "k", "b"], ["scores"], pads=[1, 1, 1, 1])]
    if labels:
        nodes.append(helper.make_node("ArgMax", ["scores"], ["labels"], axis=1, keepdims=1))
        out = ("labels", TensorProto.INT64, [shape[0], 1, shape[2], shape[3]])
    else:
        nodes.append(helper.make_node("Softmax", ["scores"], ["probs"], axis=1))
        out = ("probs", TensorProto.FLOAT, [shape[0], 3, shape[2], shape[3]])
    return save_model(path, nodes, {"k": k, "b": b}, shape, *out)


def run_medgrain(bin_, args, env=None):
    return subprocess.run([bin_, "-q", *args], capture_output=True, text=True, env=env)


def write_cfg(path, **kv):
    lines = []
    for key, v in kv.items():
        lines.append(f"{key} = {json.dumps(v)}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def ct(tmp_path_factory, medgrain_bin):
    d = tmp_path_factory.mktemp("expert")
    r = run_medgrain(medgrain_bin, ["synth", "--out", str(d / "synth"), "--images-per-kind", "1", "--volumes", "1"])
    assert r.returncode == 0, r.stderr
    vol = sorted((d / "synth/3d/volumes").glob("*.nii.gz"))[0]
    return d, vol


def window01(hu, centre, width):
    # the README's formula, in float64 like medgrain, then float32 as the model input
    return np.clip(hu * (1 / width) + (-(centre - width / 2) / width), 0, 1).astype(np.float32)


@pytest.mark.parametrize("tiling", ["whole-slice", "tiled-40-batch-3", "tiled-40-margin-1"])
def test_smooth_model_on_ct_equals_onnxruntime(medgrain_bin, ct, tiling):
    """Tiles with a margin (4) at least the 5×5 filter's receptive radius (2) equal the whole slice; the negative
    case, margin 1, must differ — the test can tell a wrong margin from a right one."""
    d, vol = ct
    model = smooth_model(d / "smooth.onnx")
    extra = {"whole-slice": {}, "tiled-40-batch-3": {"tile": [40, 40], "tile_margin": 4, "batch": 3},
             "tiled-40-margin-1": {"tile": [40, 40], "tile_margin": 1, "batch": 3}}[tiling]
    cfg = write_cfg(d / f"smooth-{tiling}.toml", model=str(model), library=ort_library(), name="soft",
                    classes=["soft tissue"], normalize="window", window=[40.0, 400.0], **extra)
    out = d / f"out-{tiling}"
    r = run_medgrain(medgrain_bin, ["locate", str(vol), "--locator", "expert:onnx", "--onnx", str(cfg),
                                    "--out", str(out)])
    assert r.returncode == 0, r.stderr
    ours = np.asanyarray(nib.load(out / "soft_tissue.nii.gz").dataobj) > 0

    img = nib.load(vol)
    hu = np.asanyarray(img.dataobj).astype(np.float64) * float(img.dataobj.slope or 1) + float(img.dataobj.inter or 0)
    x = window01(hu, 40.0, 400.0)  # [X, Y, Z]; slices across Z (the S–I axis), H = Y, W = X
    batch = np.transpose(x, (2, 1, 0))[:, None]  # [Z, 1, Y, X]
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    logits = sess.run(None, {"image": batch})[0][:, 0]  # [Z, Y, X]
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    ref = np.transpose(p >= 0.5, (2, 1, 0))
    differ = ours != ref
    near = np.abs(np.transpose(logits, (2, 1, 0))) < 1e-4
    print(f"\n{tiling}: {ref.sum()} reference voxels, {differ.sum()} differ ({(differ & ~near).sum()} away from p = 0.5)")
    assert ref.sum() > 1000 and (~ref).sum() > 1000, "the model finds something and not everything"
    if tiling == "tiled-40-margin-1":
        assert (differ & ~near).sum() > 1000, "a margin below the receptive radius must show at the tile seams"
        return
    assert not (differ & ~near).any()
    # the mean confidence medgrain prints is the mean sigmoid over the mask
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("soft tissue:")][0]
    score = float(line.split("mean confidence ")[1].split()[0])
    assert abs(score - p.transpose(2, 1, 0)[ours].mean()) < 1e-4


def test_smooth_model_on_a_real_dicom_ct_slice_sees_hu(medgrain_bin, tmp_path):
    """pydicom's CT_small.dcm: the expert gets the file's HU (modality LUT), not its display rendering."""
    import pydicom
    from pydicom.data import get_testdata_file

    path = get_testdata_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    model = smooth_model(tmp_path / "smooth.onnx")
    cfg = write_cfg(tmp_path / "s.toml", model=str(model), library=ort_library(), classes=["dense"],
                    normalize="window", window=[300.0, 400.0])
    r = run_medgrain(medgrain_bin, ["locate", path, "--locator", "expert:onnx", "--onnx", str(cfg),
                                    "--out", str(tmp_path / "out")])
    assert r.returncode == 0, r.stderr
    ours = np.asarray(Image.open(tmp_path / "out" / "dense.png")) > 0
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    logits = sess.run(None, {"image": window01(hu, 300.0, 400.0)[None, None]})[0][0, 0]
    ref = logits >= 0
    assert 300 < ref.sum() < ref.size / 2, "the vertebra and nothing much else"
    assert not ((ours != ref) & (np.abs(logits) > 1e-4)).any(), (ours != ref).sum()


@pytest.fixture(scope="module")
def picture(tmp_path_factory):
    """A 2D grey image with soft blobs and fine texture, 131 × 97 (not a multiple of the 48-pixel tile)."""
    d = tmp_path_factory.mktemp("picture")
    yy, xx = np.mgrid[0:97, 0:131]
    rng = np.random.default_rng(7)
    img = 60 + 20 * rng.standard_normal((97, 131))
    for cy, cx, r, v in [(30, 35, 14, 150), (60, 95, 20, 230), (75, 30, 9, 200)]:
        img += v * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    px = np.clip(img, 0, 255).astype(np.uint8)
    path = d / "images" / "blobs.png"
    path.parent.mkdir()
    Image.fromarray(px).save(path)
    return d, path, px


def three_reference(d, px):
    ref_model = three_model(d / "three-free.onnx", ["N", 1, "H", "W"])
    lum = px.astype(np.float64) / 255.0  # luminance 0–1, then minmax over the image
    x = ((lum - lum.min()) * (1 / (lum.max() - lum.min()))).astype(np.float32)
    sess = ort.InferenceSession(str(ref_model), providers=["CPUExecutionProvider"])
    probs = sess.run(None, {"image": x[None, None]})[0][0]  # [3, H, W]
    srt = np.sort(probs, axis=0)
    return probs.argmax(axis=0), probs, (srt[-1] - srt[-2]) < 1e-6


def test_fixed_size_model_is_tiled_and_equals_whole_image(medgrain_bin, picture):
    d, path, px = picture
    model = three_model(d / "three-48.onnx", [1, 1, 48, 48])
    cfg = write_cfg(d / "three.toml", model=str(model), library=ort_library(), classes=["background", "mid", "high"],
                    normalize="minmax", output="probabilities", tile_margin=4)
    r = run_medgrain(medgrain_bin, ["locate", str(path), "--locator", "expert:onnx", "--onnx", str(cfg),
                                    "--out", str(d / "out")])
    assert r.returncode == 0, r.stderr
    ref, probs, tie = three_reference(d, px)
    for c, name in [(1, "mid"), (2, "high")]:
        ours = np.asarray(Image.open(d / "out" / f"{name}.png")) > 0
        assert ours.shape == px.shape
        truth = ref == c
        assert truth.sum() > 50, f"class {name} present in the reference"
        assert not ((ours != truth) & ~tie).any(), f"{name}: {(ours != truth).sum()} pixels differ"
        line = [ln for ln in r.stdout.splitlines() if ln.startswith(f"{name}:")][0]
        score = float(line.split("mean confidence ")[1].split()[0])
        assert abs(score - probs[c][ours].mean()) < 1e-4


def test_label_output_model(medgrain_bin, picture):
    d, path, px = picture
    model = three_model(d / "three-labels.onnx", ["N", 1, "H", "W"], labels=True)
    cfg = write_cfg(d / "labels.toml", model=str(model), classes=["background", "mid", "high"], normalize="minmax",
                    output="labels")
    env = dict(os.environ, ORT_DYLIB_PATH=ort_library())  # the library from the environment this time
    r = run_medgrain(medgrain_bin, ["locate", str(path), "--locator", "expert:onnx", "--onnx", str(cfg),
                                    "--out", str(d / "out-labels")], env=env)
    assert r.returncode == 0, r.stderr
    ref, _, tie = three_reference(d, px)
    for c, name in [(1, "mid"), (2, "high")]:
        ours = np.asarray(Image.open(d / "out-labels" / f"{name}.png")) > 0
        assert not ((ours != (ref == c)) & ~tie).any()
        assert "confidence" not in [ln for ln in r.stdout.splitlines() if ln.startswith(f"{name}:")][0]


def test_contract_violations_are_clear_errors(medgrain_bin, picture):
    d, path, _ = picture
    model = three_model(d / "three-48b.onnx", [1, 1, 48, 48])
    env = {k: v for k, v in os.environ.items() if k != "ORT_DYLIB_PATH"}
    cases = [
        # no library anywhere
        (dict(model=str(model), classes=["background", "mid", "high"]), env, "ORT_DYLIB_PATH"),
        # two names for three channels
        (dict(model=str(model), library=ort_library(), classes=["background", "x"]), None, "3-channel output"),
        # a fixed-size model with another tile
        (dict(model=str(model), library=ort_library(), classes=["a", "b", "c"], tile=[32, 32]), None, "fixed at"),
        # margin eats the tile
        (dict(model=str(model), library=ort_library(), classes=["a", "b", "c"], tile_margin=24), None, "no core"),
        # missing model file
        (dict(model=str(d / "nope.onnx"), library=ort_library(), classes=["x"]), None, "no such file"),
        # window without a width
        (dict(model=str(model), library=ort_library(), classes=["a", "b", "c"], normalize="window"), None, "window"),
    ]
    for i, (kv, e, needle) in enumerate(cases):
        cfg = write_cfg(d / f"bad{i}.toml", **kv)
        r = run_medgrain(medgrain_bin, ["locate", str(path), "--locator", "expert:onnx", "--onnx", str(cfg),
                                        "--out", str(d / f"bad{i}")], env=e)
        assert r.returncode != 0, kv
        assert needle in r.stderr, (kv, r.stderr)
        assert "panicked" not in r.stderr


def test_expert_in_build_sources(medgrain_bin, ct, picture, tmp_path):
    """The same experts inside `build`: a NIfTI source and an image folder without masks; ROIs carry
    origin = expert:<name> and score = the model's mean confidence."""
    d, vol = ct
    pd, path, _ = picture
    smooth = smooth_model(tmp_path / "smooth.onnx")
    three = three_model(tmp_path / "three.onnx", [1, 1, 48, 48])
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"""
recipe = "triplets"
[[source]]
name = "ct-expert"
kind = "nifti"
root = "{vol.parent}"
images = "{vol.name}"
locator = "expert:onnx"
select = "largest"
[source.defaults]
modality = "CT"
[source.onnx]
model = "smooth.onnx"
library = "{ort_library()}"
name = "dense"
classes = ["dense tissue"]
normalize = "window"
window = [300.0, 400.0]

[[source]]
name = "pictures"
kind = "image-folder"
root = "{pd}"
images = "images/*.png"
locator = "expert:onnx"
[source.onnx]
model = "three.onnx"
library = "{ort_library()}"
name = "blob-net"
classes = ["background", "mid", "high"]
normalize = "minmax"
output = "probabilities"
tile_margin = 4
[generator]
kind = "template"
""")
    out = tmp_path / "out"
    r = run_medgrain(medgrain_bin, ["build", str(cfg), "--out", str(out)])
    assert r.returncode == 0, r.stderr
    rows = pq.read_table(out / "triplets").to_pylist()
    by_source = {}
    for row in rows:
        by_source.setdefault(row["source"], []).extend(row["rois"])
    ct_rois, pic_rois = by_source["ct-expert"], by_source["pictures"]
    assert ct_rois and pic_rois
    assert {x["origin"] for x in ct_rois} == {"expert:dense"} and {x["label"] for x in ct_rois} == {"dense tissue"}
    assert {x["origin"] for x in pic_rois} == {"expert:blob-net"}
    assert {x["label"] for x in pic_rois} <= {"mid", "high"} and "high" in {x["label"] for x in pic_rois}
    for x in ct_rois:
        assert 0.5 <= x["score"] <= 1.0, x["score"]
    for x in pic_rois:
        assert 1 / 3 <= x["score"] <= 1.0, x["score"]
    # a rerun keeps every shard; a model file replaced under the same path (other weights) is a changed setting:
    # refused like a changed config, redone with --force
    r = subprocess.run([medgrain_bin, "build", str(cfg), "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0 and "(0 kept" not in r.stdout and " kept from a previous run" in r.stdout, r.stdout
    kept = int(r.stdout.split(" kept from a previous run")[0].rsplit("(", 1)[1])
    assert kept >= 1
    k, b = three_class_weights()
    smooth_model(tmp_path / "three.onnx")  # overwritten by another model under the same name
    three_model(tmp_path / "three.onnx", [1, 1, 48, 48])  # … and back to the same bytes: still resumable
    r = subprocess.run([medgrain_bin, "build", str(cfg), "--out", str(out)], capture_output=True, text=True)
    assert f"({kept} kept from a previous run)" in r.stdout, r.stdout
    raw = (tmp_path / "three.onnx").read_bytes()
    m = onnx.load_from_string(raw)
    m.graph.initializer[1].CopyFrom(numpy_helper.from_array(b + np.float32(0.5), "b"))  # other biases
    onnx.save(m, str(tmp_path / "three.onnx"))
    r = subprocess.run([medgrain_bin, "build", str(cfg), "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 2 and "expert model" in r.stderr, (r.stdout, r.stderr)
    r = subprocess.run([medgrain_bin, "build", str(cfg), "--out", str(out), "--force"], capture_output=True, text=True)
    assert r.returncode == 0 and "(0 kept from a previous run)" in r.stdout, r.stdout
    # a broken model is a config error before any sample is read
    cfg.write_text(cfg.read_text().replace('model = "three.onnx"', 'model = "missing.onnx"'))
    r = run_medgrain(medgrain_bin, ["build", str(cfg), "--out", str(tmp_path / "o2")])
    assert r.returncode == 2 and "missing.onnx" in r.stderr, r.stderr
