#!/usr/bin/env bash
# Run HERE (with network) before a GPU check: downloads, into .gpu-vendor/, everything
# scripts/gpu-check.sh installs on the GPU host, which has no network. That host has
# Python 3.12 and CUDA 13 but no pycuda, which must be built there from its sdist.
# Carry the folder: run(command="bash scripts/gpu-check.sh", carry=[".gpu-vendor"]).
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=.gpu-vendor
PY=${PYTHON_VERSION:-3.12}
rm -rf "$DEST" && mkdir -p "$DEST"
echo '*' > "$DEST/.gitignore"
pip=(.venv/bin/python -m pip download -q -d "$DEST")
# pycuda builds from source: its sdist, plus what its build and runtime need, as wheels.
"${pip[@]}" --no-deps --no-binary pycuda "pycuda==2026.1"
"${pip[@]}" --only-binary=:all: --python-version "$PY" --platform manylinux2014_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 --implementation cp \
  pytools platformdirs mako markupsafe typing-extensions siphash24 setuptools wheel \
  "numpy>=1.24" pycparser islpy click rich "pandas>=2.0" pytest hypothesis
du -sh "$DEST"
