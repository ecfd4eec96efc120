"""Times `medgrain rois` against scipy.ndimage (+ scikit-image-free reference) on a 512×512×300 label map with
20 labels, in the same run. Usage: python scripts/bench_rois.py MEDGRAIN_BIN [WORKDIR]"""
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

binary = sys.argv[1]
work = Path(sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp())
work.mkdir(parents=True, exist_ok=True)
path = work / "labels_512x512x300.nii.gz"
rng = np.random.default_rng(0)
shape = (512, 512, 300)
if not path.exists():
    data = np.zeros(shape, dtype=np.uint8)
    zz, yy, xx = None, None, None
    for label in range(1, 21):
        for _ in range(3):  # three blobs per label
            c = rng.uniform([40, 40, 20], [472, 472, 280])
            r = rng.uniform(8, 40)
            lo = np.maximum((c - r).astype(int), 0)
            hi = np.minimum((c + r).astype(int) + 1, shape)
            sub = np.ogrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
            ball = sum(((g - cc) / r) ** 2 for g, cc in zip(sub, c)) <= 1
            data[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]][ball] = label
    nib.save(nib.Nifti1Image(data, np.diag([0.8, 0.8, 1.5, 1.0])), path)

def ours(k):
    t = time.perf_counter()
    out = subprocess.run([binary, "rois", str(path), "--json", "--connectivity", str(k)], capture_output=True, text=True, check=True)
    return time.perf_counter() - t, json.loads(out.stdout)

def scipy_ref(k):
    t = time.perf_counter()
    img = nib.load(path)
    data = np.asanyarray(img.dataobj)
    structure = ndimage.generate_binary_structure(3, k)
    n_comp = 0
    for label, box in enumerate(ndimage.find_objects(data), start=1):
        if box is None:
            continue
        mask = data[box] == label
        lab, n = ndimage.label(mask, structure=structure)
        idx = np.arange(1, n + 1)
        ndimage.sum_labels(mask, lab, idx)
        ndimage.find_objects(lab)
        ndimage.center_of_mass(mask, lab, idx)
        n_comp += n
    return time.perf_counter() - t, n_comp

for k in (1, 3):
    t_ours, rep = ours(k)
    t_ref, n_ref = scipy_ref(k)
    n_ours = sum(len(l["components"]) for l in rep["labels"])
    assert n_ours == n_ref, (n_ours, n_ref)
    print(f"connectivity {k}: medgrain rois {t_ours:.2f} s (incl. gzip read + JSON), "
          f"scipy.ndimage {t_ref:.2f} s (incl. nibabel read); {n_ours} components in 20 labels")

# Shape descriptors: medgrain rois now also reports axis lengths / elongation / flatness per component; the same
# figures from scikit-image's regionprops (axis_major_length, axis_minor_length, inertia_tensor_eigvals) per label's
# components, in the same run.
from skimage.measure import label as sk_label, regionprops  # noqa: E402


def skimage_ref():
    t = time.perf_counter()
    data = np.asanyarray(nib.load(path).dataobj)
    n = 0
    for label, box in enumerate(ndimage.find_objects(data), start=1):
        if box is None:
            continue
        lab = sk_label(data[box] == label, connectivity=3)
        for p in regionprops(lab):
            p.axis_major_length, p.axis_minor_length, p.inertia_tensor_eigvals
            n += 1
    return time.perf_counter() - t, n


t_sk, n_sk = skimage_ref()
t_ours, rep = ours(3)
print(f"shape descriptors: medgrain rois (components + shapes, connectivity 3) {t_ours:.2f} s; "
      f"scikit-image label + regionprops axes {t_sk:.2f} s; {n_sk} components")

# Classical locators on a 512×512×300 CT-like volume (body, two lungs, spine), written once.
ct = work / "ct_512x512x300.nii.gz"
if not ct.exists():
    y, x = np.ogrid[0:512, 0:512]
    vol = np.full((300, 512, 512), -1000, np.int16)
    vol[:, ((x - 256) / 220.0) ** 2 + ((y - 256) / 170.0) ** 2 <= 1] = 40
    for cx in (170, 342):
        vol[:, ((x - cx) / 70.0) ** 2 + ((y - 240) / 110.0) ** 2 <= 1] = -850
    vol[:, ((x - 256) / 25.0) ** 2 + ((y - 380) / 25.0) ** 2 <= 1] = 700
    vol += rng.normal(0, 20, vol.shape).astype(np.int16)
    nib.save(nib.Nifti1Image(np.ascontiguousarray(vol.transpose(2, 1, 0)), np.diag([-0.7, -0.7, 1.0, 1.0])), ct)
for loc in ("classical:ct-body", "classical:ct-lung", "classical:ct-bone"):
    t = time.perf_counter()
    out = subprocess.run([binary, "-q", "locate", str(ct), "--locator", loc, "--out", str(work / "located")],
                         capture_output=True, text=True, check=True)
    print(f"{loc}: {time.perf_counter() - t:.2f} s (read gz + locate + write masks) — {out.stdout.strip()}")
