"""Bounded mutation fuzzing of `medgrain probe` (the DICOM, NIfTI and raster entry points) on stable Rust: real
seed files from pydicom's and nibabel's test data are truncated, have header bytes flipped, dimensions set absurd
(65535³) or voxels set to NaN; every variant must give a JSON line (stats or an error), exit 0 or 1, never a panic,
never a crash, and stay under a 2 GiB address-space limit (an attempt to allocate for 65535³ voxels would die).
DICOM element lengths are checked against the file size before dicom-rs reads the file (it allocates a value's
claimed length first: 4.26 GB for one flipped RT dose file before that check existed). Deterministic (fixed seed);
the number of variants is printed. The cargo-fuzz targets in `fuzz/` (nightly) cover the same entry points with
coverage-guided fuzzing; see fuzz/README.md."""
import gzip
import json
import random
import resource
import struct
import subprocess
from pathlib import Path

import nibabel
import numpy as np
import pydicom

PYDICOM = Path(pydicom.__file__).parent / "data/test_files"
NIBABEL = Path(nibabel.__file__).parent / "tests/data"
SEEDS = [PYDICOM / n for n in ["CT_small.dcm", "MR_small_RLE.dcm", "JPEG2000.dcm", "rtdose.dcm", "liver_1frame.dcm",
                               "SC_rgb_jpeg_dcmtk.dcm", "MR_small_bigendian.dcm"]] + \
        [NIBABEL / n for n in ["anatomical.nii", "example4d.nii.gz", "example_nifti2.nii.gz", "standard.nii.gz"]]


def limit_memory():
    gib = 2 * 1024 ** 3
    resource.setrlimit(resource.RLIMIT_AS, (gib, gib))


def variants(seed: Path, rng: random.Random, out: Path):
    data = seed.read_bytes()
    raw = gzip.decompress(data) if seed.suffix == ".gz" else data
    name = seed.name.replace(".nii.gz", ".nii")
    made = []

    def emit(tag, b):
        p = out / f"{tag}_{name}"
        p.write_bytes(b)
        made.append(p)

    for k in range(6):  # truncations
        emit(f"trunc{k}", raw[: rng.randrange(1, len(raw))])
    for k in range(12):  # byte flips in the first 2 KiB (headers, tags, lengths)
        b = bytearray(raw)
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(0, min(len(b), 2048))
            b[i] = rng.randrange(256)
        emit(f"flip{k}", bytes(b))
    if name.endswith(".nii"):
        b = bytearray(raw)
        v2 = b[4:8] == b"n+2\0" or b[4:8] == b"ni2\0"
        if v2:
            struct.pack_into("<8q", b, 16, 3, 65535, 65535, 65535, 1, 1, 1, 1)
        else:
            struct.pack_into("<8h", b, 40, 3, 32767, 32767, 32767, 1, 1, 1, 1)
        emit("huge", bytes(b))
        img = nibabel.load(seed)
        arr = np.asarray(img.dataobj).astype(np.float32)
        arr.reshape(-1)[:: max(1, arr.size // 50)] = np.nan
        p = out / f"nan_{name}"
        nibabel.save(nibabel.Nifti1Image(arr, img.affine), p)
        made.append(p)
    else:
        b = bytearray(raw)
        # Rows / Columns (0028,0010)/(0028,0011) set to 65535 wherever they appear as explicit-VR US elements
        for tag in (b"\x28\x00\x10\x00US\x02\x00", b"\x28\x00\x11\x00US\x02\x00"):
            i = b.find(tag)
            if i >= 0:
                b[i + 8:i + 10] = b"\xff\xff"
        emit("huge", bytes(b))
    return made


def test_probe_survives_mutated_inputs(medgrain_bin, tmp_path):
    rng = random.Random(20261124)
    files = []
    for s in SEEDS:
        assert s.is_file(), s
        files += variants(s, rng, tmp_path)
    assert len(files) >= 200
    errors = ok = 0
    for i in range(0, len(files), 40):
        batch = files[i:i + 40]
        r = subprocess.run([medgrain_bin, "-q", "probe", *map(str, batch), "--json"], capture_output=True, text=True,
                           preexec_fn=limit_memory, timeout=300)
        assert r.returncode in (0, 1), (r.returncode, r.stderr[-2000:])
        # a panic inside a dependency's codec is caught and becomes that file's error line (the panic hook may
        # still print it); anything else panicking would have ended the process above
        assert r.stderr.count("panicked") == sum("DICOM decoder failed" in l for l in r.stdout.splitlines()), \
            r.stderr[-2000:]
        lines = [json.loads(l) for l in r.stdout.splitlines()]
        assert len(lines) == len(batch)
        for line in lines:
            if "error" in line:
                errors += 1
            else:
                ok += 1
                assert line["shape"] and all(d > 0 for d in line["shape"])
    print(f"\n{len(files)} mutated files: {ok} probed, {errors} error lines, no panic, no crash")
    assert errors > 0 and ok > 0


def test_a_closed_stdout_ends_quietly(medgrain_bin, tmp_path):
    """`medgrain … | head`: a reader that goes away before medgrain prints its summary ends the process with exit 0
    and nothing on stderr — it was a panic (exit 101, "failed printing to stdout") before; the work itself is done."""
    import os
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before medgrain writes a byte
    try:
        r = subprocess.run([medgrain_bin, "-q", "synth", "--out", str(tmp_path / "syn"), "--images-per-kind", "1",
                            "--volumes", "1"], stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=300)
    finally:
        os.close(write_end)
    assert r.returncode == 0, r.stderr
    assert "panicked" not in r.stderr and r.stderr.strip() == "", r.stderr
    assert (tmp_path / "syn").is_dir() and any((tmp_path / "syn").rglob("*.nii.gz"))
