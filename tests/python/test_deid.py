"""De-identification (`medgrain deid`, `deid` in builds, `[reports] deid`), checked against things we did not write:
DICOM files with planted identifying values made with pydicom (in nested sequences and private tags), the PHI test
files of PyPI `deid-data`, pydicom's own test files, PyPI `dicognito` on the same files, and `dciodvfy` (Debian
dicom3tools). The profile's actions come from PS3.15 Table E.1-1 (crates/medgrain-deid/data/table_e1_1.tsv, generated
from the standard's table by scripts/gen_deid_table.py; test_table_is_the_generated_one regenerates it)."""
import copy
import io
import json
import sqlite3
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

REPO = Path(__file__).resolve().parents[2]
TABLE = REPO / "crates/medgrain-deid/data/table_e1_1.tsv"
SECRET = "test-secret-for-medgrain-deid-0123"
ENV = {**os.environ, "MEDGRAIN_DEID_SECRET": SECRET}
SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
US_STORAGE = "1.2.840.10008.5.1.4.1.1.6.1"

# Identifying values planted in many attributes; each is distinctive enough that a hit anywhere is a leak.
PLANTED = {
    "PatientName": "QUIXOTE^ZEBULON^ALBERTO",
    "PatientID": "MRN77441902",
    "PatientBirthDate": "19470612",
    "PatientAddress": "4417 Wisteria Lane Springfield",
    "PatientTelephoneNumbers": "555-867-5309",
    "InstitutionName": "Saint Hildegard Memorial Hospital",
    "InstitutionAddress": "99 Cathedral Road Glasgow",
    "ReferringPhysicianName": "HOUSEMAN^GREGORIO",
    "PerformingPhysicianName": "CUDDYWORTH^LISABETH",
    "OperatorsName": "TECHNOLOGIST^WILHELMINA",
    "AccessionNumber": "ACC99887766",
    "StudyID": "STUDY4471",
    "StationName": "CTROOM7WEST",
    "DeviceSerialNumber": "SNAX009912",
    "PatientComments": "prefers to be called Zebulon",
    "ImageComments": "annotated by Wilhelmina",
    "StudyDate": "20230714",
    "AcquisitionDate": "20230715",
    "StudyTime": "101530",
    "StudyDescription": "CT CHEST for Quixote cohort",
    "SeriesDescription": "AXIAL Hildegard protocol",
    "RequestingPhysician": "MORIARTY^JAMESON",
}
NESTED = {"other_id": "OTHERID-ZEB-001", "issuer": "Hildegard Registry", "req_proc": "REQPROC8812",
          "sps": "SPS7713ZX", "private": "PRIVATE-ZEBULON-TAG", "private_nested": "PRIVNEST-QUIXOTE"}


def needles():
    """Every planted value, and the parts of person names (a name's family or given part alone is a leak too)."""
    out = set()
    for v in list(PLANTED.values()) + list(NESTED.values()):
        out.add(v)
        out.update(p for p in v.split("^") if len(p) >= 6)
    for word in ("Zebulon", "ZEBULON", "Quixote", "QUIXOTE", "Hildegard", "Wilhelmina", "WILHELMINA", "Wisteria"):
        out.add(word)
    return sorted(out)


def ct_dataset(k, series_uid, study_uid, frame_uid, n=4):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.SeriesInstanceUID, ds.StudyInstanceUID = "CT", series_uid, study_uid
    ds.FrameOfReferenceUID = frame_uid
    ds.SeriesNumber, ds.InstanceNumber = 1, k + 1
    for kw, v in PLANTED.items():
        setattr(ds, kw, v)
    ds.ContentDate, ds.ContentTime = "20230715", "101700"
    ds.PatientAge, ds.PatientSex, ds.PatientWeight, ds.PatientSize = "047Y", "F", 71.5, 1.68
    ds.BodyPartExamined = "CHEST"
    ds.Manufacturer = "ACME"
    ds.PositionReferenceIndicator = ""
    ds.OtherPatientIDsSequence = Sequence([Dataset()])
    ds.OtherPatientIDsSequence[0].PatientID = NESTED["other_id"]
    ds.OtherPatientIDsSequence[0].IssuerOfPatientID = NESTED["issuer"]
    ds.OtherPatientIDsSequence[0].TypeOfPatientID = "TEXT"
    ds.RequestAttributesSequence = Sequence([Dataset()])
    ds.RequestAttributesSequence[0].RequestedProcedureID = NESTED["req_proc"]
    ds.RequestAttributesSequence[0].ScheduledProcedureStepID = NESTED["sps"]
    ds.RequestAttributesSequence[0].RequestingPhysician = "MORIARTY^JAMESON"
    block = ds.private_block(0x0009, "ACME PHI", create=True)
    block.add_new(0x01, "LO", NESTED["private"])
    inner = Dataset()
    inner.add_new(0x00100010, "PN", NESTED["private_nested"])
    block.add_new(0x02, "SQ", Sequence([inner]))
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.ImagePositionPatient = [-8.0, -8.0, float(k * 2)]
    ds.PixelSpacing, ds.SliceThickness = [1.0, 1.0], 2.0
    ds.Rows, ds.Columns = 16, 16
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.KVP, ds.AcquisitionNumber = 120, 1
    ds.PixelData = (np.arange(256, dtype=np.uint16).reshape(16, 16) * (k + 1)).tobytes()
    return ds


def seg_dataset(cts, series_uid, study_uid, frame_uid):
    """A SEG on the CT series: its references to the source images (ReferencedSeriesSequence and per-frame
    DerivationImageSequence / SourceImageSequence) and the shared frame of reference."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SEG_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = SEG_STORAGE, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.StudyInstanceUID, ds.SeriesInstanceUID = "SEG", study_uid, generate_uid()
    ds.FrameOfReferenceUID = frame_uid
    for kw in ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "StudyDate", "StudyID",
               "InstitutionName", "ReferringPhysicianName"):
        setattr(ds, kw, PLANTED[kw])
    ref = Dataset()
    ref.SeriesInstanceUID = series_uid
    ref.ReferencedInstanceSequence = Sequence()
    frames = Sequence()
    for c in cts:
        r = Dataset()
        r.ReferencedSOPClassUID, r.ReferencedSOPInstanceUID = c.SOPClassUID, c.SOPInstanceUID
        ref.ReferencedInstanceSequence.append(r)
        src = Dataset()
        src.ReferencedSOPClassUID, src.ReferencedSOPInstanceUID = c.SOPClassUID, c.SOPInstanceUID
        der = Dataset()
        der.SourceImageSequence = Sequence([src])
        fg = Dataset()
        fg.DerivationImageSequence = Sequence([der])
        frames.append(fg)
    ds.ReferencedSeriesSequence = Sequence([ref])
    ds.PerFrameFunctionalGroupsSequence = frames
    ds.NumberOfFrames = len(cts)
    ds.Rows, ds.Columns = 16, 16
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 1, 1, 0, 0
    ds.PixelData = bytes(16 * 16 * len(cts) // 8)
    return ds


def make_study(root: Path, n=4):
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    cts = [ct_dataset(k, series, study, frame, n) for k in range(n)]
    root.mkdir(parents=True, exist_ok=True)
    # file names that carry the patient's name, as real exports do: the output names must not
    for k, ds in enumerate(cts):
        ds.save_as(root / f"QUIXOTE_ZEBULON_{k:03d}.dcm", enforce_file_format=True)
    seg_dataset(cts, series, study, frame).save_as(root / "QUIXOTE_seg.dcm", enforce_file_format=True)
    return cts


def run_deid(bin_, inputs, out, *flags, env=ENV):
    return subprocess.run([bin_, "deid", *map(str, inputs), "--out", str(out), *flags],
                          capture_output=True, text=True, env=env)


def outcomes(out: Path):
    return [json.loads(l) for l in (out / "deid.jsonl").read_text().splitlines()]


def all_bytes(folder: Path):
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            yield p, p.read_bytes()


def leaks(folder: Path, extra_text=(), skip=()):
    """(where, needle) for every planted value found in any byte of any file under `folder` (Parquet files also
    decoded, since their pages are compressed) or in `extra_text`."""
    found = []
    for p, b in all_bytes(folder):
        if p.name in skip:
            continue
        texts = [b]
        if p.suffix == ".parquet":
            texts.append(json.dumps(pq.read_table(p).to_pylist(), default=str).encode())
        for n in needles():
            if any(n.encode() in t for t in texts):
                found.append((str(p.relative_to(folder)), n))
    for where, t in extra_text:
        found.extend((where, n) for n in needles() if n in t)
    return found


def test_table_is_the_generated_one(tmp_path):
    """The committed Table E.1-1 is what scripts/gen_deid_table.py makes from the standard's machine-readable
    mirrors (PyPI dicom-anonymizer 2.1.0's 2026c table and dicom-standard 0.1.0's option columns)."""
    out = tmp_path / "t.tsv"
    r = subprocess.run([sys.executable, str(REPO / "scripts/gen_deid_table.py"), str(out)], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert out.read_text() == TABLE.read_text()


def test_planted_values_are_gone_and_references_still_agree(medgrain_bin, tmp_path):
    cts = make_study(tmp_path / "in")
    out, logs = tmp_path / "out", tmp_path / "logs"
    r = run_deid(medgrain_bin, [tmp_path / "in"], out, "--log-dir", logs)
    assert r.returncode == 0, r.stderr
    res = outcomes(logs)
    assert [x["status"] for x in res] == ["written"] * 5
    # nothing identifying in any byte of the output folder, its file names included
    assert leaks(out) == []
    assert not [p for p in out.rglob("*") if any(n in str(p) for n in needles())]
    # deid.jsonl (the linkage record, kept apart with --log-dir) names the inputs and nothing else planted
    assert {n for _, n in leaks(logs)} <= {"QUIXOTE", "ZEBULON"}
    assert SECRET not in r.stdout + r.stderr and all(SECRET.encode() not in b for _, b in all_bytes(out))
    # original UIDs are gone too (they link back to the hospital's archive)
    originals = {cts[0].StudyInstanceUID, cts[0].SeriesInstanceUID, cts[0].FrameOfReferenceUID}
    originals |= {c.SOPInstanceUID for c in cts}
    for p, b in all_bytes(out):
        assert not any(u.encode() in b for u in originals), p
    by_input = {Path(x["input"]).name: pydicom.dcmread(out / x["output"]) for x in res}
    seg = by_input.pop("QUIXOTE_seg.dcm")
    new_cts = [by_input[f"QUIXOTE_ZEBULON_{k:03d}.dcm"] for k in range(len(cts))]
    for old, new in zip(cts, new_cts):
        assert new.PatientIdentityRemoved == "YES"
        assert [c.CodeValue for c in new.DeidentificationMethodCodeSequence] == ["113100"]
        assert all(c.CodingSchemeDesignator == "DCM" for c in new.DeidentificationMethodCodeSequence)
        assert "Basic Application Confidentiality Profile" in str(new.DeidentificationMethod)
        assert new.PixelData == old.PixelData
        for uid in (new.SOPInstanceUID, new.StudyInstanceUID, new.SeriesInstanceUID, new.FrameOfReferenceUID):
            assert re.fullmatch(r"2\.25\.[1-9][0-9]*", uid) and len(uid) <= 64
        assert new.file_meta.MediaStorageSOPInstanceUID == new.SOPInstanceUID
        assert new.PatientID.startswith("MG") and new.PatientID != old.PatientID
        assert "OtherPatientIDsSequence" not in new  # X
        assert not any(e.tag.is_private for e in new.iterall())
        # kept: not in Table E.1-1
        assert (new.Modality, new.Rows, new.KVP, new.BodyPartExamined) == ("CT", 16, 120, "CHEST")
        # Z, X and D as the table says, without options
        assert new.PatientName == "" and new.StudyDate == "" and new.AccessionNumber == ""
        assert "PatientAge" not in new and "PatientWeight" not in new and "StudyDescription" not in new
        assert new.LongitudinalTemporalInformationModified == "REMOVED"
    # one study, one series, one frame of reference, one patient after de-identification
    assert len({c.StudyInstanceUID for c in new_cts} | {seg.StudyInstanceUID}) == 1
    assert len({c.SeriesInstanceUID for c in new_cts}) == 1
    assert len({c.FrameOfReferenceUID for c in new_cts} | {seg.FrameOfReferenceUID}) == 1
    assert len({c.PatientID for c in new_cts} | {seg.PatientID}) == 1
    # the SEG still points at the de-identified CT images
    ref = seg.ReferencedSeriesSequence[0]
    assert ref.SeriesInstanceUID == new_cts[0].SeriesInstanceUID
    assert [r.ReferencedSOPInstanceUID for r in ref.ReferencedInstanceSequence] == [c.SOPInstanceUID for c in new_cts]
    per_frame = [f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
                 for f in seg.PerFrameFunctionalGroupsSequence]
    assert per_frame == [c.SOPInstanceUID for c in new_cts]
    # the same secret gives the same pseudonyms on another run; another secret other ones
    again = tmp_path / "again"
    assert run_deid(medgrain_bin, [tmp_path / "in"], again).returncode == 0
    assert (again / "deid.jsonl").is_file()  # by default beside the files
    assert sorted(x["output"] for x in outcomes(again)) == sorted(x["output"] for x in res)
    other = tmp_path / "other"
    assert run_deid(medgrain_bin, [tmp_path / "in"], other,
                    env={**os.environ, "MEDGRAIN_DEID_SECRET": "another-secret-0123456789"}).returncode == 0
    assert not set(x["output"] for x in outcomes(other)) & set(x["output"] for x in res)


def test_options_shift_dates_and_keep_patient_characteristics(medgrain_bin, tmp_path):
    cts = make_study(tmp_path / "in", n=2)
    out = tmp_path / "out"
    r = run_deid(medgrain_bin, [tmp_path / "in"], out, "--modified-dates", "--patient-characteristics")
    assert r.returncode == 0, r.stderr
    news = [pydicom.dcmread(out / x["output"]) for x in outcomes(out) if "seg" not in x["input"]]
    from datetime import date
    d = lambda s: date(int(s[:4]), int(s[4:6]), int(s[6:8]))
    shifts = set()
    for n in news:
        assert [c.CodeValue for c in n.DeidentificationMethodCodeSequence] == ["113100", "113107", "113108"]
        # the meanings as DICOM's CID 7050 gives them (pydicom's code dictionary)
        from pydicom.sr.codedict import codes
        want = [codes.DCM.BasicApplicationConfidentialityProfile,
                codes.DCM.RetainLongitudinalTemporalInformationModifiedDatesOption,
                codes.DCM.RetainPatientCharacteristicsOption]
        assert [(c.CodeValue, c.CodeMeaning) for c in n.DeidentificationMethodCodeSequence] == \
            [(w.value, w.meaning) for w in want]
        assert n.LongitudinalTemporalInformationModified == "MODIFIED"
        # one shift for the patient: intervals kept, times kept (whole days)
        shift = (d(n.StudyDate) - d(PLANTED["StudyDate"])).days
        assert -3650 <= shift <= -365
        assert (d(n.AcquisitionDate) - d(n.StudyDate)).days == 1
        assert (d(n.ContentDate) - d(PLANTED["AcquisitionDate"])).days == shift
        assert n.StudyTime == PLANTED["StudyTime"]
        shifts.add(shift)
        # Retain Patient Characteristics: K
        assert (n.PatientAge, n.PatientSex, float(n.PatientWeight), float(n.PatientSize)) == ("047Y", "F", 71.5, 1.68)
    assert len(shifts) == 1
    # times of day are kept by the option (only dates move); nothing else planted survives
    assert {n for _, n in leaks(out, skip=("deid.jsonl",))} <= {PLANTED["StudyTime"]}


def test_clean_descriptors_keep_only_imaging_words(medgrain_bin, tmp_path):
    make_study(tmp_path / "in", n=1)
    out = tmp_path / "out"
    r = run_deid(medgrain_bin, [tmp_path / "in"], out, "--clean-descriptors", "--log-dir", tmp_path / "logs")
    assert r.returncode == 0, r.stderr
    from pydicom.sr.codedict import codes
    for x in outcomes(tmp_path / "logs"):
        n = pydicom.dcmread(out / x["output"])
        assert [c.CodeValue for c in n.DeidentificationMethodCodeSequence] == \
            ["113100", codes.DCM.CleanDescriptorsOption.value]
        if "seg" not in x["input"]:
            # "CT CHEST for Quixote cohort" / "AXIAL Hildegard protocol": the names go, the imaging words stay
            assert (n.StudyDescription, n.SeriesDescription) == ("CT CHEST", "AXIAL protocol")
    assert leaks(out) == []


def test_burned_in_text_is_excluded_unless_allowed(medgrain_bin, tmp_path):
    cts = make_study(tmp_path / "in", n=1)
    burned = copy.deepcopy(cts[0])
    burned.SOPInstanceUID = burned.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    burned.BurnedInAnnotation = "YES"
    burned.save_as(tmp_path / "in/burned.dcm", enforce_file_format=True)
    us = copy.deepcopy(cts[0])
    us.SOPClassUID = us.file_meta.MediaStorageSOPClassUID = US_STORAGE
    us.SOPInstanceUID = us.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    us.Modality = "US"
    us.save_as(tmp_path / "in/us.dcm", enforce_file_format=True)
    out = tmp_path / "out"
    r = run_deid(medgrain_bin, [tmp_path / "in"], out)
    assert r.returncode == 0, r.stderr
    res = {Path(x["input"]).name: x for x in outcomes(out)}
    assert res["burned.dcm"]["status"] == "excluded" and "BurnedInAnnotation" in res["burned.dcm"]["burned_in_risk"]
    assert res["us.dcm"]["status"] == "excluded" and "ultrasound" in res["us.dcm"]["burned_in_risk"]
    assert len(list(out.rglob("*.dcm"))) == 2  # the CT slice and the SEG only
    allowed = tmp_path / "allowed"
    r = run_deid(medgrain_bin, [tmp_path / "in"], allowed, "--allow-burned-in")
    assert r.returncode == 0, r.stderr
    res = {Path(x["input"]).name: x for x in outcomes(allowed)}
    assert res["us.dcm"]["status"] == "written" and res["us.dcm"]["burned_in_risk"]
    assert "burned-in" in r.stderr
    assert pydicom.dcmread(allowed / res["us.dcm"]["output"]).PixelData == us.PixelData


def test_bad_input_is_listed_and_nothing_is_half_written(medgrain_bin, tmp_path):
    make_study(tmp_path / "in", n=2)
    (tmp_path / "in/notes.txt").write_text("not DICOM")
    good = (tmp_path / "in/QUIXOTE_ZEBULON_000.dcm").read_bytes()
    (tmp_path / "in/truncated.dcm").write_bytes(good[: len(good) - 700])  # cut inside the pixel data
    out = tmp_path / "out"
    r = run_deid(medgrain_bin, [tmp_path / "in"], out)
    assert r.returncode == 1, r.stderr
    res = {Path(x["input"]).name: x for x in outcomes(out)}
    assert res["notes.txt"]["status"] == "failed" and res["truncated.dcm"]["status"] == "failed"
    assert sum(x["status"] == "written" for x in res.values()) == 3
    errors = [json.loads(l) for l in (out / "errors.jsonl").read_text().splitlines()]
    assert sorted(Path(e["path"]).name for e in errors) == ["notes.txt", "truncated.dcm"]
    assert len(list(out.rglob("*.dcm"))) == 3 and not list(out.rglob("*.tmp*"))
    # --out inside an input, an input inside --out, no secret: exit 2, nothing written
    r = run_deid(medgrain_bin, [tmp_path / "in"], tmp_path / "in/out")
    assert r.returncode == 2 and "inside" in r.stderr and not (tmp_path / "in/out").exists()
    r = run_deid(medgrain_bin, [out], tmp_path)
    assert r.returncode == 2 and "inside" in r.stderr
    env = {k: v for k, v in os.environ.items() if k != "MEDGRAIN_DEID_SECRET"}
    r = run_deid(medgrain_bin, [tmp_path / "in"], tmp_path / "nosecret", env=env)
    assert r.returncode == 2 and "MEDGRAIN_DEID_SECRET" in r.stderr and not (tmp_path / "nosecret").exists()


# --- real files nobody here wrote: deid-data's PHI files and pydicom's test files, beside dicognito ---

def table_rows():
    rows = {}
    for line in TABLE.read_text().splitlines():
        if line.startswith("#") or line.startswith("tag\t"):
            continue
        f = line.split("\t")
        rows[f[0]] = f[2]
    return rows


def in_table(tag, rows):
    key = f"{tag:08X}"
    if key in rows:
        return True
    return any(all(k == "x" or k == c for k, c in zip(pat, key)) for pat in rows if "x" in pat)


def identifying_pairs(ds, rows, path=()):
    """(attribute path, value) of every non-empty, non-sequence Table E.1-1 attribute, recursively."""
    out = []
    for e in ds:
        p = path + (f"{int(e.tag):08X}",)
        if e.VR == "SQ":
            for i, item in enumerate(e.value):
                out.extend(identifying_pairs(item, rows, p + (str(i),)))
        elif not e.tag.is_private and in_table(int(e.tag), rows) and e.value not in (None, "", b"") \
                and int(e.tag) >> 16 != 0x0002:
            out.append((p, str(e.value)))
    return out


def value_at(ds, path):
    cur = ds
    for k in range(0, len(path) - 1, 2):
        tag = int(path[k], 16)
        if tag not in cur:
            return None
        seq = cur[tag].value
        i = int(path[k + 1])
        if cur[tag].VR != "SQ" or i >= len(seq):
            return None
        cur = seq[i]
    tag = int(path[-1], 16)
    return None if tag not in cur else str(cur[tag].value)


def real_files():
    import deid_data
    files = sorted(Path(deid_data.__file__).parent.rglob("*.dcm"))
    files += sorted(Path(pydicom.data.get_testdata_file("CT_small.dcm")).parent.glob("*.dcm"))
    return files


def test_real_phi_files_against_dicognito_and_dciodvfy(medgrain_bin, tmp_path):
    import dicognito.anonymizer
    files = real_files()
    out = tmp_path / "out"
    r = run_deid(medgrain_bin, files, out, "--allow-burned-in")
    res = outcomes(out)
    assert r.returncode in (0, 1), r.stderr
    rows = table_rows()
    written = [x for x in res if x["status"] == "written"]
    assert len(res) == len(files)
    # what we cannot read: files pydicom refuses too (no file meta, truncated), and the few dicom-rs cannot parse
    # (listed in README, "De-identification"); each is an error line, never a half-written file
    failed = {Path(x["input"]).name for x in res if x["status"] == "failed"}
    pydicom_reads = set()
    for f in files:
        try:
            pydicom.dcmread(f)
            pydicom_reads.add(f.name)
        except Exception:
            pass
    print("failed:", sorted(failed), "of which pydicom reads", sorted(failed & pydicom_reads))
    assert failed & pydicom_reads <= PARSER_LIMITS | NOT_INSTANCES, sorted(failed & pydicom_reads)
    assert len(written) == len(files) - len(failed)
    ours_kept, theirs_kept, checked = set(), set(), 0
    for x in written:
        src = pydicom.dcmread(x["input"])
        ours = pydicom.dcmread(out / x["output"])  # pydicom reads every output
        if "PixelData" in src:
            assert ours.PixelData == src.PixelData, x["input"]
        theirs = copy.deepcopy(src)
        dicognito.anonymizer.Anonymizer(seed="medgrain-test").anonymize(theirs)
        for path, value in identifying_pairs(src, rows):
            checked += 1
            if value_at(ours, path) == value:
                ours_kept.add((path[-1], value))
            if value_at(theirs, path) == value:
                theirs_kept.add(path[-1])
    # free text inside sequences the table marks D (an SR's Content Sequence): not in the table itself, replaced
    sr_texts = 0
    for x in written:
        src = pydicom.dcmread(x["input"])
        texts = {e.value for e in src.iterall() if e.tag == 0x0040A160 and len(str(e.value)) >= 4}
        body = (out / x["output"]).read_bytes()
        for t in texts:
            sr_texts += 1
            assert str(t).encode() not in body, (x["input"], t)
    assert sr_texts >= 5, sr_texts
    print(f"{checked} identifying attribute values in {len(written)} files; dicognito kept "
          f"{len(theirs_kept)} attributes unchanged: {sorted(theirs_kept)}")
    assert checked > 1000
    # every Table E.1-1 attribute present in the input is removed or replaced by medgrain ...
    assert ours_kept == set(), sorted(ours_kept)
    # ... and dicognito, which follows its own list, keeps these (README, "De-identification")
    assert theirs_kept <= DICOGNITO_KEEPS, sorted(theirs_kept - DICOGNITO_KEEPS)
    # dciodvfy: no error on an output that it did not report on its input
    def errors(p):
        r = subprocess.run(["dciodvfy", str(p)], capture_output=True, text=True, encoding="latin-1")
        return {re.sub(r"<[^>]*>|\"[^\"]*\"|[0-9.]+", "", l) for l in (r.stdout + r.stderr).splitlines()
                if l.startswith("Error")}
    new_errors = {}
    for x in written:
        extra = errors(out / x["output"]) - errors(x["input"])
        if extra:
            new_errors[x["input"]] = sorted(extra)
    assert new_errors == {}, json.dumps(new_errors, indent=1)


# Table E.1-1 attributes (tags) dicognito 0.19 leaves unchanged on these files (README, "De-identification").
DICOGNITO_KEEPS = {
    "00080031",  # SeriesTime
    "00080033",  # ContentTime
    "00080201",  # TimezoneOffsetFromUTC
    "00081000",  # NetworkID
    "00081030",  # StudyDescription
    "0008103E",  # SeriesDescription
    "00082111",  # DerivationDescription
    "00100040",  # PatientSex
    "00101010",  # PatientAge
    "00101020",  # PatientSize
    "00101030",  # PatientWeight
    "001021A0",  # SmokingStatus
    "001021B0",  # AdditionalPatientHistory
    "001021C0",  # PregnancyStatus
    "00102203",  # PatientSexNeutered
    "00120060",  # ClinicalTrialCoordinatingCenterName
    "00180010",  # ContrastBolusAgent
    "00181000",  # DeviceSerialNumber
    "00181008",  # GantryID
    "00181030",  # ProtocolName
    "00204000",  # ImageComments
    "00321030",  # ReasonForStudy
    "00321060",  # RequestedProcedureDescription
    "00324000",  # StudyComments
    "00380010",  # AdmissionID
    "003A0020",  # MultiplexGroupLabel
    "00400007",  # ScheduledProcedureStepDescription
    "00400254",  # PerformedProcedureStepDescription
    "00400280",  # CommentsOnThePerformedProcedureStep
    "0040A027",  # VerifyingOrganization
    "0040A122",  # Time
    "00700006",  # UnformattedTextValue
    "300A0002",  # RTPlanLabel
    "300A0003",  # RTPlanName
    "300A0016",  # DoseReferenceDescription
    "300A00B2",  # TreatmentMachineName
    "60003000",  # OverlayData
    "FFFCFFFC",  # DataSetTrailingPadding
}
# pydicom test files pydicom reads but dicom-rs 0.10's parser refuses (README, "De-identification").
# MR_truncated and rtplan_truncated end mid-element (pydicom reads lazily and does not notice): refused on purpose.
# No SOPInstanceUID (nor SOPClassUID) anywhere: not an instance that can be named; refused with that reason.
NOT_INSTANCES = {"empty_charset_LEI.dcm", "priv_SQ.dcm", "nested_priv_SQ.dcm"}
# UN_sequence holds an undefined-length sequence stored as UN, which the length pre-check refuses; the two meta
# files have a file meta group dicom-rs 0.10 cannot parse.
PARSER_LIMITS = {"MR_truncated.dcm", "rtplan_truncated.dcm", "UN_sequence.dcm", "meta_missing_tsyntax.dcm",
                 "no_meta_group_length.dcm"}


# --- in builds ---

def deid_data_needles(files):
    """The values of every Table E.1-1 attribute in deid-data's files that could identify: at least 5 characters,
    and not made only of the Clean Descriptors vocabulary (which the option keeps by design)."""
    words = {w.lower() for l in (REPO / "crates/medgrain-deid/data/descriptor_words.txt").read_text().splitlines()
             if not l.startswith("#") for w in l.split()}
    rows = table_rows()
    out = set()
    for f in files:
        for _, v in identifying_pairs(pydicom.dcmread(f), rows):
            v = v.strip()
            tokens = [t for t in re.split(r"[^A-Za-z0-9+/-]+", v) if t]
            if len(v) >= 5 and not all(t.lower() in words or (t.isdigit() and len(t) <= 3) for t in tokens):
                out.add(v)
    return sorted(out)


class Recorder:
    """An HTTP proxy in front of `medgrain mock-server` that keeps every request body."""

    def __init__(self, upstream):
        bodies = self.bodies = []

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                bodies.append(body.decode("utf-8", "replace"))
                req = urllib.request.Request(upstream + self.path[len("/v1"):], data=body,
                                             headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(req) as r:
                    data = r.read()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"


@pytest.fixture()
def recorder(medgrain_bin):
    proc = subprocess.Popen([medgrain_bin, "mock-server", "--port", "0"], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    upstream = next(w for w in line.split() if w.startswith("http://"))
    rec = Recorder(upstream)
    yield rec
    rec.server.shutdown()
    proc.kill()
    proc.wait()


def test_build_with_openai_leaks_nothing(medgrain_bin, tmp_path, recorder):
    make_study(tmp_path / "in/ct", n=3)
    us = pydicom.dcmread(tmp_path / "in/ct/QUIXOTE_ZEBULON_000.dcm")
    us.SOPClassUID = us.file_meta.MediaStorageSOPClassUID = US_STORAGE
    us.SOPInstanceUID = us.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    us.Modality = "US"
    us.save_as(tmp_path / "in/ct/us.dcm", enforce_file_format=True)
    (tmp_path / "in/ct/QUIXOTE_seg.dcm").unlink()
    # neutral file names here (rows record source paths as given; `medgrain deid` names files by UID)
    for k in range(3):
        (tmp_path / f"in/ct/QUIXOTE_ZEBULON_{k:03d}.dcm").rename(tmp_path / f"in/ct/img_{k:03d}.dcm")
    # deid-data's PHI files, under neutral names, as a second source
    import deid_data
    phi_files = sorted(Path(deid_data.__file__).parent.rglob("*.dcm"))
    (tmp_path / "in/phi").mkdir()
    for k, f in enumerate(phi_files):
        ds = pydicom.dcmread(f)
        if ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7":
            # secondary captures are excluded as burned-in risks; relabelled as CT (every identifying attribute kept)
            # so that their headers go through the profile and into the prompts
            ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
            ds.Modality = "CT"
        ds.save_as(tmp_path / f"in/phi/f{k:02d}.dcm")
    phi_values = deid_data_needles(phi_files)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"""
[output]
shard_size = 8
[[source]]
name = "hospital"
kind = "image-folder"
root = "{tmp_path / 'in'}"
images = "ct/*.dcm"
deid = true
[[source]]
name = "deid-data"
kind = "image-folder"
root = "{tmp_path / 'in'}"
images = "phi/*.dcm"
deid = true
[generator]
kind = "openai"
base_url = "{recorder.url}"
model = "mock-model"
[splits]
by = "patient"
""")
    out = tmp_path / "out"
    r = subprocess.run([medgrain_bin, "build", str(cfg), "--out", str(out)], capture_output=True, text=True,
                       env={**ENV, "MEDGRAIN_LOG": "debug"})
    assert r.returncode == 1, r.stderr  # the ultrasound files are error lines
    assert (out / "cache/requests.sqlite").is_file()  # the request cache is searched with the rest of OUT
    errors = [json.loads(l) for l in (out / "errors.jsonl").read_text().splitlines()]
    us_phi = [f"f{k:02d}.dcm" for k, f in enumerate(phi_files) if "ultrasound" in str(f)]
    assert sorted((e["stage"], Path(e["source_path"]).name) for e in errors) == \
        sorted([("deid", "us.dcm")] + [("deid", n) for n in us_phi])
    found = leaks(out, [("stdout", r.stdout), ("log", r.stderr)]
                  + [(f"request {i}", b) for i, b in enumerate(recorder.bodies)])
    assert found == []
    # deid-data's own identifying values (every Table E.1-1 value of its files), nowhere either
    texts = [("stdout", r.stdout), ("log", r.stderr)] + [(f"request {i}", b) for i, b in enumerate(recorder.bodies)]
    for p, b in all_bytes(out):
        texts.append((str(p), b.decode("latin-1")))
        if p.suffix == ".parquet":
            texts.append((str(p) + " (decoded)", json.dumps(pq.read_table(p).to_pylist(), default=str)))
    hits = sorted({(v, where) for where, t in texts for v in phi_values if v in t})
    assert hits == [], hits[:20]
    rows = [x for p in sorted((out / "triplets").rglob("*.parquet")) for x in pq.read_table(p).to_pylist()]
    assert len(rows) == 3 + len(phi_files) - len(us_phi)
    # samples whose prompts are the same (deid-data's ctbrain1.dcm and ctbrain2.dcm are one file twice; the headerless
    # dicom-cookies images give the same facts) are answered by the request cache, unless both are in flight at once
    # (workers run concurrently): at most one request per row, one cached answer per distinct request
    assert len(recorder.bodies) <= len(rows)
    with sqlite3.connect(out / "cache/requests.sqlite") as db:
        assert db.execute("SELECT count(*) FROM answers").fetchone()[0] == len(set(recorder.bodies))
    for row in [x for x in rows if x["source"] == "hospital"]:
        # the caption gains what the header says, cleaned: study description without the name, age and sex
        assert 'DICOM header: study "CT CHEST"; series "AXIAL protocol"; body part CHEST; patient 47-year-old ' \
               'female.' in row["coarse_caption"], row["coarse_caption"]
    assert sum('study \\"CT CHEST\\"' in b for b in recorder.bodies) == 3
    print([x["coarse_caption"] for x in rows if x["source"] == "deid-data"])
    # one patient, one split (the pseudonymous PatientID is the key)
    assert len({row["split"] for row in rows}) == 1


def test_a_remote_generator_turns_deid_on_and_needs_the_secret(medgrain_bin, tmp_path):
    make_study(tmp_path / "in", n=1)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"""
[[source]]
name = "hospital"
kind = "image-folder"
root = "{tmp_path / 'in'}"
images = "*.dcm"
[generator]
kind = "openai"
base_url = "https://api.example.invalid/v1"
model = "m"
""")
    env = {k: v for k, v in os.environ.items() if k != "MEDGRAIN_DEID_SECRET"}
    r = subprocess.run([medgrain_bin, "build", str(cfg), "--out", str(tmp_path / "out")], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 2 and "MEDGRAIN_DEID_SECRET" in r.stderr and "off this machine" in r.stderr, r.stderr


# --- report text ---

FIRST = ["Gregory", "Lisa", "James", "Allison", "Robert", "Eric", "Remy", "Chris", "Martha", "Lawrence"]
LAST = ["House", "Cuddy", "Wilson", "Cameron", "Chase", "Foreman", "Hadley", "Taub", "Masters", "Kutner"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]


def synthetic_spans(n, seed=7):
    """(sentence, [identifying spans]) made here, with spans of every kind the issue names, in several formats."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        y, m, d = rnd.randint(1990, 2025), rnd.randint(1, 12), rnd.randint(1, 28)
        date = rnd.choice([f"{m:02d}/{d:02d}/{y}", f"{y}-{m:02d}-{d:02d}", f"{d} {MONTHS[m - 1]} {y}",
                           f"{MONTHS[m - 1]} {d}, {y}", f"{d:02d}.{m:02d}.{y}", f"{m}/{d}/{y % 100:02d}",
                           f"{MONTHS[m - 1][:3]} {d}, {y}", f"{y}{m:02d}{d:02d}"])
        a, b, c = rnd.randint(200, 989), rnd.randint(200, 999), rnd.randint(1000, 9999)
        phone = rnd.choice([f"({a}) {b}-{c}", f"{a}-{b}-{c}", f"{a}.{b}.{c}", f"+1 {a} {b} {c}",
                            f"+44 20 {b}{c % 10} {c}"])
        first, last = rnd.choice(FIRST), rnd.choice(LAST)
        title = rnd.choice(["Dr.", "Dr", "Mr.", "Mrs.", "Ms.", "Prof.", "Mr", "Mrs"])
        name = rnd.choice([f"{last}", f"{first} {last}", f"{first[0]}. {last}"])
        email = f"{first.lower()}.{last.lower()}{rnd.randint(1, 99)}@{rnd.choice(['example.org', 'hosp.example.com', 'mail.test'])}"
        mrn = rnd.choice([f"MRN {rnd.randint(100000, 99999999)}", f"MRN: {rnd.randint(1000000, 9999999)}",
                          f"medical record number {rnd.randint(100000, 9999999)}",
                          f"accession {rnd.randint(10000000, 99999999)}", f"{rnd.randint(100, 899)}-{rnd.randint(10, 99)}-{rnd.randint(1000, 9999)}"])
        templates = [
            (f"Compared with the prior CT of {date}, the 8 mm nodule is stable.", [date]),
            (f"Findings discussed with {title} {name} by telephone at {phone}.", [name, phone]),
            (f"Report copied to {email} for the tumour board.", [email]),
            (f"Patient {mrn} has a 2.3 x 1.9 cm hypodense lesion in segment 7.", [mrn.split()[-1]]),
            (f"{title} {name} reviewed the images on {date}; no pleural effusion.", [name, date]),
        ]
        out.append(templates[i % len(templates)])
    return out


def test_report_text_spans_recall(medgrain_bin, tmp_path, demo_dir):
    cases = synthetic_spans(600)
    f = tmp_path / "s.jsonl"
    f.write_text("".join(json.dumps({"text": t}) + "\n" for t, _ in cases))
    r = subprocess.run([medgrain_bin, "report", "scrub", str(f), "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    got = [json.loads(l) for l in r.stdout.splitlines()]
    assert len(got) == len(cases)
    total = hit = 0
    missed = []
    for (text, spans), g in zip(cases, got):
        assert g["text"] == text
        for s in spans:
            total += 1
            if s not in g["scrubbed"]:
                hit += 1
            else:
                missed.append((s, g["scrubbed"]))
        # what is not identifying stays: the measurements and the finding
        for keep in re.findall(r"\d+(?:\.\d+)? x \d+(?:\.\d+)? cm|\d+ mm|segment \d|pleural effusion", text):
            assert keep in g["scrubbed"], (keep, g["scrubbed"])
    recall = hit / total
    print(f"span recall {recall:.4f} ({hit}/{total}); missed: {missed[:10]}")
    assert recall >= 0.99
    # the demo's reports come out unchanged
    import csv
    with open(demo_dir / "synth/3d/reports.csv", newline="") as fh:
        reports = [x for row in csv.DictReader(fh) for x in (row["Findings_EN"], row["Impressions_EN"])]
    f2 = tmp_path / "demo.jsonl"
    f2.write_text("".join(json.dumps({"text": t}) + "\n" for t in reports))
    r = subprocess.run([medgrain_bin, "report", "scrub", str(f2), "--json"], capture_output=True, text=True)
    got = [json.loads(l) for l in r.stdout.splitlines()]
    assert [g["scrubbed"] for g in got] == reports


def test_grounded_reports_build_scrubs_and_counts(medgrain_bin, tmp_path, demo_dir):
    d3 = demo_dir / "synth/3d"
    import csv
    with open(d3 / "reports.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    planted = rows[0]["Findings_EN"] + " Discussed with Dr. Gregory Houseman on 03/14/2024, call 555-201-7788."
    rows_phi = [dict(r) for r in rows]
    rows_phi[0]["Findings_EN"] = planted
    def write(path, rs):
        with open(path, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rs[0]))
            w.writeheader()
            w.writerows(rs)
    write(tmp_path / "phi.csv", rows_phi)
    def build(name, csv_path, deid):
        cfg = tmp_path / f"{name}.toml"
        cfg.write_text(f"""
recipe = "grounded-reports"
[reports]
csv = "{csv_path}"
root = "{d3}"
lesions = "lesions"
volumes = "volumes"
deid = {str(deid).lower()}
""")
        out = tmp_path / name
        r = subprocess.run([medgrain_bin, "-q", "build", str(cfg), "--out", str(out)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        return out
    plain = build("plain", d3 / "reports.csv", False)
    scrubbed_demo = build("demo_deid", d3 / "reports.csv", True)
    phi = build("phi", tmp_path / "phi.csv", True)
    # the demo's reports have nothing to scrub: the same rows with deid on
    assert (plain / "grounded_reports/grounded_reports.csv").read_text() == \
        (scrubbed_demo / "grounded_reports/grounded_reports.csv").read_text()
    assert json.loads((scrubbed_demo / "stats.json").read_text()).get("deid_spans", {}) == {}
    stats = json.loads((phi / "stats.json").read_text())
    assert stats["deid_spans"] == {"date": 1, "name": 1, "phone": 1}
    for p, b in all_bytes(phi):
        for n in ("Houseman", "03/14/2024", "555-201-7788"):
            assert n.encode() not in b, (p, n)


def test_dicom_series_build_with_deid(medgrain_bin, demo_dir, tmp_path):
    """The dicom-series source: the series' header goes through the profile too (keys, caption facts)."""
    from test_dicom_build import write_series
    d3 = demo_dir / "synth/3d"
    truth = [json.loads(l) for l in (d3 / "ground_truth.jsonl").read_text().splitlines()]
    t = next(t for t in truth if any(f["present"] and f["mask"] for f in t["findings"]))
    stem = t["volume"].replace(".nii.gz", "")
    series = tmp_path / "root/series" / stem
    write_series(d3 / "volumes" / t["volume"], series)
    for f in series.glob("*.dcm"):
        ds = pydicom.dcmread(f)
        for kw in ("PatientName", "PatientID", "PatientBirthDate", "InstitutionName", "ReferringPhysicianName",
                   "AccessionNumber", "StudyDescription", "SeriesDescription", "StudyDate"):
            setattr(ds, kw, PLANTED[kw])
        ds.PatientAge, ds.PatientSex = "061Y", "M"
        ds.save_as(f, enforce_file_format=True)
    shutil.copytree(d3 / "lesions" / stem, tmp_path / "root/lesions" / stem)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"""
recipe = "triplets"
[[source]]
name = "ct-dicom"
kind = "dicom-series"
root = "{tmp_path / 'root'}"
images = "series/*"
masks = "lesions/{{stem}}/*.nii.gz"
deid = true
[generator]
kind = "template"
[splits]
by = "patient"
""")
    out = tmp_path / "out"
    r = subprocess.run([medgrain_bin, "build", str(cfg), "--out", str(out)], capture_output=True, text=True,
                       env={**ENV, "MEDGRAIN_LOG": "debug"})
    assert r.returncode == 0, r.stderr
    assert leaks(out, [("log", r.stderr), ("stdout", r.stdout)]) == []
    rows = pq.read_table(out / "triplets").to_pylist()
    assert rows and all('DICOM header: study "CT CHEST"; series "AXIAL protocol"; patient 61-year-old male.'
                        in row["coarse_caption"] for row in rows), rows[0]["coarse_caption"]
