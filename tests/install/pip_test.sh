#!/usr/bin/env bash
# `pip install` of the Python package as the README shows it: a venv made with
# --system-site-packages (numpy and setuptools from Debian), pip offline and without build
# isolation, the modules built by CMake in BUILD_DIR; then the installed package fuses a pair.
#   pip_test.sh BUILD_DIR SOURCE_DIR WORK_DIR
set -euo pipefail
build=$1 source=$2 work=$3
rm -rf "$work"
mkdir -p "$work"
unset PYTHONPATH
/usr/bin/python3 -m venv --system-site-packages "$work/venv"
EFCNET_BUILD_DIR=$build "$work/venv/bin/pip" install --no-index --no-build-isolation "$source/python" \
  >"$work/pip.log" 2>&1 || { cat "$work/pip.log" >&2; exit 1; }
cd "$work"
"$work/venv/bin/python" - "$work/venv" <<'PYTHON'
import pathlib
import sys

import efcnet

venv = pathlib.Path(sys.argv[1]).resolve()
assert venv in pathlib.Path(efcnet.__file__).resolve().parents, f"efcnet imported from {efcnet.__file__}"
anatomical, functional = efcnet.phantom(64, "spect")
fused = efcnet.Fuser(threads=1).fuse(anatomical, functional)
assert fused.shape == (64, 64, 3) and fused.dtype.name == "uint8" and fused.any()
assert [m["name"] for m in efcnet.models()], "no shipped models installed beside the package"
print(f"pip_test: efcnet {efcnet.__version__} installed in {venv} fuses with its shipped model")
PYTHON
