#!/usr/bin/env bash
# Bounded fuzzing of the DICOM and NIfTI entry points (cargo-fuzz on the nightly toolchain; see fuzz/README.md).
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 60). Seeds come from the pydicom and nibabel test files in
# the venv scripts/test.sh sets up.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-60}"
CACHE="${MEDGRAIN_CACHE:-$HOME/.cache/medgrain}"
SITE="$(ls -d "$CACHE"/venv/lib/python3*/site-packages | head -n1)"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
# DICOM seeds without their preamble + DICM (the target adds them back).
mkdir -p fuzz/corpus/probe_dicom
for f in "$SITE"/pydicom/data/test_files/{CT_small,MR_small_RLE,SC_rgb_rle_32bit,rtdose_rle,JPEG2000,MR_small_jpeg_ls_lossless,SC_ybr_full_422_uncompressed,JPEG-lossy}.dcm; do
  [ -f "$f" ] && tail -c +133 "$f" > "fuzz/corpus/probe_dicom/$(basename "$f")"
done
mkdir -p fuzz/corpus/probe_nifti
for f in "$SITE"/nibabel/tests/data/{example4d,example_nifti2,anatomical,standard}.nii; do
  [ -f "$f" ] && cp "$f" fuzz/corpus/probe_nifti/
done
for t in probe_dicom probe_nifti; do
  echo "== fuzzing $t for ${SECS}s"
  # -O: optimised without debug assertions. With debug assertions, std's precondition checks abort inside openjp2
  # 0.6.1 (a null NonNull in tcd.rs when freeing code blocks) on pydicom's own JPEG2000.dcm before any mutation;
  # overflow checks stay on for every crate.
  RUSTFLAGS="${RUSTFLAGS:-} -Coverflow-checks=on" cargo +nightly fuzz run -O "$t" "fuzz/corpus/$t" -- -max_total_time="$SECS" -rss_limit_mb=4096 -timeout=20 -max_len=1048576
done
