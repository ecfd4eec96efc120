"""Times `medgrain locate --locator expert:onnx` against the same model run by onnxruntime in Python, same machine,
same run, on a 512×512×N CT-like volume. The model is a small fully convolutional net built here with the `onnx`
package from random fixed weights (Conv 1→16 3×3, ReLU, Conv 16→16 3×3, ReLU, Conv 16→2 1×1 → two-class logits),
free N/H/W, whole slices, batch 4 on both sides; the Python side does what medgrain does (nibabel read, window
normalisation, batched inference, argmax + softmax confidence, mask written as NIfTI gz).
Usage: python scripts/bench_expert.py MEDGRAIN_BIN [WORKDIR] [SLICES]"""
import glob
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

binary = sys.argv[1]
work = Path(sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp())
slices = int(sys.argv[3]) if len(sys.argv) > 3 else 100
work.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)

vol = work / f"ct_512x512x{slices}.nii.gz"
if not vol.exists():
    zz, yy, xx = np.mgrid[0:slices, 0:512, 0:512]
    body = ((xx - 256) / 200) ** 2 + ((yy - 256) / 150) ** 2 <= 1
    hu = np.where(body, 40 + 30 * rng.standard_normal((slices, 512, 512)), -1000)
    for _ in range(12):
        c = rng.uniform([0, 150, 150], [slices, 360, 360])
        r = rng.uniform(5, 30)
        hu[((zz - c[0]) * 2 / r) ** 2 + ((yy - c[1]) / r) ** 2 + ((xx - c[2]) / r) ** 2 <= 1] = 300
    data = np.transpose(hu, (2, 1, 0)).astype(np.int16)
    nib.save(nib.Nifti1Image(data, np.diag([0.8, 0.8, 2.0, 1.0])), vol)

model = work / "fcn.onnx"
w1 = (rng.standard_normal((16, 1, 3, 3)) * 0.5).astype(np.float32)
w2 = (rng.standard_normal((16, 16, 3, 3)) * 0.2).astype(np.float32)
w3 = (rng.standard_normal((2, 16, 1, 1)) * 0.5).astype(np.float32)
nodes = [
    helper.make_node("Conv", ["image", "w1"], ["a"], pads=[1, 1, 1, 1]),
    helper.make_node("Relu", ["a"], ["ar"]),
    helper.make_node("Conv", ["ar", "w2"], ["b"], pads=[1, 1, 1, 1]),
    helper.make_node("Relu", ["b"], ["br"]),
    helper.make_node("Conv", ["br", "w3"], ["logits"]),
]
graph = helper.make_graph(nodes, "fcn", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, "H", "W"])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2, "H", "W"])],
                          initializer=[numpy_helper.from_array(a, n) for n, a in [("w1", w1), ("w2", w2), ("w3", w3)]])
m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
m.ir_version = 8
onnx.save(m, str(model))
lib = sorted(glob.glob(str(Path(ort.__file__).parent / "capi" / "libonnxruntime.so*")))[0]
cfg = work / "fcn.toml"
cfg.write_text(f'model = "{model}"\nlibrary = "{lib}"\nclasses = ["background", "dense"]\n'
               f'normalize = "window"\nwindow = [40.0, 400.0]\nbatch = 4\n')


def ours():
    t = time.perf_counter()
    r = subprocess.run([binary, "-q", "locate", str(vol), "--locator", "expert:onnx", "--onnx", str(cfg),
                        "--out", str(work / "ours")], capture_output=True, text=True, check=True)
    return time.perf_counter() - t, r.stdout.strip()


def python_ref():
    t = time.perf_counter()
    img = nib.load(vol)
    hu = np.asanyarray(img.dataobj).astype(np.float64)
    x = np.clip(hu * (1 / 400) + (-(40 - 200) / 400), 0, 1).astype(np.float32)
    batch = np.transpose(x, (2, 1, 0))[:, None]
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    masks, conf = [], []
    for i in range(0, batch.shape[0], 4):
        lo = sess.run(None, {"image": batch[i:i + 4]})[0]
        c = lo.argmax(axis=1)
        e = np.exp(lo - lo.max(axis=1, keepdims=True))
        masks.append(c == 1)
        conf.append((e.max(axis=1) / e.sum(axis=1))[c == 1])
    mask = np.transpose(np.concatenate(masks), (2, 1, 0))
    (work / "ref").mkdir(exist_ok=True)
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), img.affine), work / "ref" / "dense.nii.gz")
    return time.perf_counter() - t, int(mask.sum()), float(np.concatenate(conf).mean())


for _ in range(2):  # second round is the one reported (warm file cache)
    t_ours, line = ours()
    t_ref, voxels, conf = python_ref()
ours_mask = np.asanyarray(nib.load(work / "ours" / "dense.nii.gz").dataobj) > 0
ref_mask = np.asanyarray(nib.load(work / "ref" / "dense.nii.gz").dataobj) > 0
print(f"volume 512x512x{slices}; medgrain: {t_ours:.2f} s ({line}); onnxruntime in Python: {t_ref:.2f} s "
      f"({voxels} voxels, mean confidence {conf:.4f}); masks differ in {(ours_mask != ref_mask).sum()} voxels")
