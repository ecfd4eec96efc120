"""`medgrain rois` on DICOM Segmentation objects: pydicom's liver SEG files (1-bit, little and big endian) and a
two-segment, four-frame SEG built here from them with pydicom (overlapping segments, frames out of position
order). Per segment: voxel count, bounding box and connected components against scipy on pydicom's decoded frames
placed by their ImagePositionPatient."""
import copy
import json
import subprocess

import numpy as np
import pydicom
from pydicom.pixels import pack_bits
from pydicom.sequence import Sequence
from scipy import ndimage

from test_dicom_reference import ROOT


def rois(bin_, path):
    r = subprocess.run([bin_, "-q", "rois", str(path), "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def expected(vol, number):
    """vol: (slices, rows, cols) bool → our (column, row, slice) axes, with scipy's labelling (full connectivity)."""
    m = np.transpose(vol, (2, 1, 0))
    lab, n = ndimage.label(m, structure=ndimage.generate_binary_structure(3, 3))
    objs = ndimage.find_objects(lab)
    sizes = sorted((int((lab[o] == i + 1).sum()) for i, o in enumerate(objs)), reverse=True)
    box = ndimage.find_objects(m.astype(int))[0]
    return int(m.sum()), [[s.start, s.stop] for s in box], sizes


def test_pydicom_liver_segs(medgrain_bin):
    for name in ["liver_1frame.dcm", "liver_expb_1frame.dcm"]:
        ds = pydicom.dcmread(ROOT / name)
        vol = ds.pixel_array.astype(bool)[None]
        ours = rois(medgrain_bin, ROOT / name)
        assert ours["format"] == "dicom-seg" and ours["shape"] == [ds.Columns, ds.Rows, 1]
        (l,) = ours["labels"]
        assert l["name"] == "Liver" and l["label"] == 1
        voxels, bbox, sizes = expected(vol, 1)
        assert l["voxels"] == voxels and l["bbox"] == bbox
        assert [c["voxels"] for c in l["components"]] == sizes


def test_multi_segment_multi_frame_seg(medgrain_bin, tmp_path):
    src = pydicom.dcmread(ROOT / "liver_1frame.dcm")
    base = src.pixel_array.astype(bool)
    o = np.array(src.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient, float)
    normal = np.cross(o[:3], o[3:])
    ipp0 = np.array(src.PerFrameFunctionalGroupsSequence[0].PlanePositionSequence[0].ImagePositionPatient, float)
    step = 2.5
    # frames: (segment, slice index, mask) — listed out of slice order on purpose
    tumour = np.zeros_like(base)
    tumour[200:240, 180:230] = True
    frames = [(1, 1, np.roll(base, 3, axis=1)), (2, 0, tumour), (1, 0, base), (2, 1, np.roll(tumour, 5, axis=0))]
    ds = copy.deepcopy(src)
    ds.NumberOfFrames = len(frames)
    ds.PixelData = pack_bits(np.stack([f[2] for f in frames]).astype(np.uint8))
    item = src.PerFrameFunctionalGroupsSequence[0]
    per = []
    for seg, k, _ in frames:
        it = copy.deepcopy(item)
        it.SegmentIdentificationSequence[0].ReferencedSegmentNumber = seg
        it.PlanePositionSequence[0].ImagePositionPatient = [float(x) for x in ipp0 + k * step * normal]
        per.append(it)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per)
    s2 = copy.deepcopy(src.SegmentSequence[0])
    s2.SegmentNumber = 2
    s2.SegmentLabel = "Tumour"
    ds.SegmentSequence = Sequence([src.SegmentSequence[0], s2])
    p = tmp_path / "two_segments.dcm"
    ds.save_as(p)
    ours = rois(medgrain_bin, p)
    assert ours["shape"] == [ds.Columns, ds.Rows, 2]
    assert abs(ours["spacing_mm"][2] - step) < 1e-9
    by = {l["label"]: l for l in ours["labels"]}
    assert by[1]["name"] == "Liver" and by[2]["name"] == "Tumour"
    for number in (1, 2):
        vol = np.zeros((2,) + base.shape, bool)
        for seg, k, m in frames:
            if seg == number:
                vol[k] |= m
        voxels, bbox, sizes = expected(vol, number)
        assert by[number]["voxels"] == voxels and by[number]["bbox"] == bbox, number
        assert [c["voxels"] for c in by[number]["components"]] == sizes
    # the affine puts slice 1 one step along the normal from the first frame's position (LPS → RAS)
    a = np.array(ours["affine"])
    want = np.diag([-1, -1, 1]) @ (ipp0 + step * normal)
    assert np.allclose(a[:3, :3] @ [0, 0, 1] + a[:3, 3], want, atol=1e-6)
    # a non-SEG DICOM file is not a label map
    r = subprocess.run([medgrain_bin, "-q", "rois", str(ROOT / "CT_small.dcm"), "--json"], capture_output=True, text=True)
    assert r.returncode == 1 and "Segmentation" in json.loads(r.stdout)["error"]
