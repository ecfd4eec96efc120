#!/usr/bin/env python3
"""The classical CT locator rules, former and current, written out with scipy and scored against TotalSegmentator's
own segmentation of its example CT (../shared/data/totalseg): the figures README.md and BENCHMARKS.md quote for the
rules medgrain used before (bone > 250 HU; the two largest air components as lungs) beside the current ones. The
current rules as medgrain runs them are checked in tests/python/test_real_ct.py.

    python scripts/real_ct_locator_rules.py
"""
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

DATA = Path(__file__).resolve().parents[1].parent / "shared/data/totalseg"
BONE = ("vertebrae_", "rib_", "sacrum", "hip_", "femur_", "humerus_", "scapula_", "clavicula_", "sternum", "skull")
LOBES = ("lung_upper_lobe_left", "lung_lower_lobe_left", "lung_upper_lobe_right", "lung_middle_lobe_right",
         "lung_lower_lobe_right")


def fill_axial(m):
    out = m.copy()
    for k in range(m.shape[2]):
        out[:, :, k] = ndi.binary_fill_holes(m[:, :, k])
    return out


def keep(m, min_voxels):
    lab, n = ndi.label(m)
    if n == 0:
        return m
    sizes = ndi.sum(m, lab, range(1, n + 1))
    ok = np.zeros(n + 1, bool)
    ok[1:] = sizes >= min_voxels
    return ok[lab]


def main():
    ct = nib.load(DATA / "example_ct_sm.nii.gz")
    hu = np.asarray(ct.dataobj, dtype=np.float64)
    seg = np.asarray(nib.load(DATA / "example_seg.nii.gz").dataobj)
    classes = {int(v): n for v, n in (l.split() for l in (DATA / "classes.txt").read_text().splitlines() if l.strip())}
    ts_bone = np.isin(seg, [v for v, n in classes.items() if n.startswith(BONE)])
    ts_lung = np.isin(seg, [v for v, n in classes.items() if n in LOBES])
    body = fill_axial(hu > -500)
    lab, n = ndi.label(body)
    body = lab == (np.argmax(ndi.sum(body, lab, range(1, n + 1))) + 1)
    cm3 = int(np.ceil(1000 / abs(np.linalg.det(ct.affine[:3, :3]))))
    print(f"TotalSegmentator bone: {ts_bone.sum()} voxels, HU percentiles 10/50/90: "
          f"{np.percentile(hu[ts_bone], [10, 50, 90]).round(0).tolist()}")
    former = keep(body & (hu > 250), cm3)
    grow = body & (hu > 100)
    glab, _ = ndi.label(grow)
    seeds = np.unique(glab[body & (hu > 250)])
    current = keep(fill_axial(np.isin(glab, seeds[seeds > 0])), cm3)
    for name, m in (("former: > 250 HU", former), ("current: seeds > 250 HU grown > 100 HU, holes filled", current)):
        print(f"bone {name}: {(m & ts_bone).sum() / ts_bone.sum():.4f} of TotalSegmentator bone inside, "
              f"precision {(m & ts_bone).sum() / max(m.sum(), 1):.4f}")
    air = body & (hu < -400)
    alab, an = ndi.label(air)
    sizes = ndi.sum(air, alab, range(1, an + 1))
    order = np.argsort(-sizes, kind="stable")
    min_v = max(body.sum() // 2000, cm3)
    big = [r + 1 for r in order if sizes[r] >= min_v]
    paren = [c for c in big if -950 < np.median(hu[alab == c]) < -600]
    for name, comps in (("former: two largest air components", big[:2]),
                        ("current: two largest parenchyma-like components", paren[:2])):
        m = fill_axial(np.isin(alab, comps))
        print(f"lungs {name}: Dice {2 * (m & ts_lung).sum() / (m.sum() + ts_lung.sum()):.4f}")


if __name__ == "__main__":
    main()
