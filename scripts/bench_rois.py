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
