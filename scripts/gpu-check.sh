#!/usr/bin/env bash
# The GPU check: a few minutes of GPU time spent on measuring, not on building. Run it ON THE
# GPU HOST (one H200, no network: ../shared/GPU-HOST.md), from the device tool, in one call,
# after scripts/gpu-vendor.sh has prepared .gpu-vendor/ here:
#
#   run(command="bash scripts/gpu-check.sh", carry=[".gpu-vendor"], timeout_s=480)
#
# and a short rerun, if one is needed, in the same machine's warm minutes:
#
#   run(command="GPU_CHECK_SMOKE=1 bash scripts/gpu-check.sh", carry=[".gpu-vendor"], timeout_s=150)
#   run(command="GPU_CHECK_STEPS=sample:matmul,launch bash scripts/gpu-check.sh", carry=[".gpu-vendor"], timeout_s=150)
#
# If pycuda does not import there (the check stops in seconds and says why), the same command
# with GPU_CHECK_WITHOUT_PYCUDA=1 in front goes on through CuPy alone.
# Without a git history there, the commit measured is the one .gpu-vendor/manifest.json names
# (gpu-vendor.sh writes it; the check says whether the source still matches it), or the one
# given as GPU_CHECK_COMMIT=<sha> in front of the command.
#
# Here it installs nothing into a venv: the host's Python (a virtualenv with CuPy and numpy)
# gets the carried wheels through PYTHONPATH (pip --no-index --no-deps --target, or unpacked
# where it has no pip), then benchmarks/gpu_check.py runs the steps, each in a time box that
# kills its whole process group: preflight (numpy, CuPy and pycuda import and see the GPU, or
# the check stops in seconds with one clear line), the device contract through pycuda and
# CuPy, copy and launch ceilings, the host-fault round trip, every sample at GPU sizes
# (kernels launched directly, full verified runs, the GPU model against them) and the
# host-side cost of a region call. GPU_CHECK_SECONDS (default 420, at most 480) bounds it all.
#
# The result goes to $OUT (the device tool brings back what lands there), else results/gpu/:
# STAMP.json (every field; rewritten atomically after every step), STAMP.log (the console) and
# STAMP.logs.tar.gz (each step's log): copy them into results/gpu/ here and commit them;
# `python benchmarks/gpu_check.py --table results/gpu/STAMP.json` gives README table rows.
#
# GPU_CHECK_DRY=1 runs the same steps here, without a GPU: the emulated device at the samples'
# default sizes, every sample built at its GPU sizes, the GPU fields null with the reason
# (results/gpu-dry/). `make test` runs it in the smoke mode (tests/test_gpu_check.py).
# The other settings are in benchmarks/gpu_check.py's docstring.
set -uo pipefail
cd "$(dirname "$0")/.."
say() { echo "gpu-check: $*"; }

if [ "${GPU_CHECK_DRY:-}" = 1 ]; then
  PY=${GPU_CHECK_PYTHON:-.venv/bin/python}
  [ -x "$PY" ] || { say "dry run: no $PY here; run 'make .venv/.installed' first"; exit 2; }
  exec "$PY" benchmarks/gpu_check.py
fi

# ---- the host's Python, which must be the CPython 3.12 the wheels were made for ----------
PY=
for candidate in ${GPU_CHECK_PYTHON:-} /opt/torch/.venv/bin/python3 python3.12 python3; do
  if "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' > /dev/null 2>&1; then
    PY=$candidate
    break
  fi
done
[ -n "$PY" ] || { say "stopped: no Python 3.12 here (the carried wheels are cp312); set GPU_CHECK_PYTHON"; exit 2; }
VENDOR=.gpu-vendor
if [ ! -f "$VENDOR/manifest.json" ] || ! ls "$VENDOR"/wheels/pycuda-*.whl > /dev/null 2>&1; then
  say "stopped: no $VENDOR/manifest.json or pycuda wheel: run scripts/gpu-vendor.sh on a CPU machine and carry .gpu-vendor"
  exit 2
fi

# ---- the carried wheels, on PYTHONPATH only ---------------------------------------------
export GPU_CHECK_WORK=${GPU_CHECK_WORK:-$(mktemp -d /tmp/offload-gpu-check-XXXXXX)}
mkdir -p "$GPU_CHECK_WORK/logs"
SITE=${GPU_CHECK_SITE:-$GPU_CHECK_WORK/site}
rm -rf "$SITE" && mkdir -p "$SITE"
started=$(date +%s)
if "$PY" -m pip --version > /dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "$VENDOR"/wheels/*.whl \
    > "$GPU_CHECK_WORK/logs/install.log" 2>&1 ||
    { say "stopped: pip could not install the carried wheels:"; tail -n 5 "$GPU_CHECK_WORK/logs/install.log"; exit 2; }
else
  for wheel in "$VENDOR"/wheels/*.whl; do
    "$PY" -m zipfile -e "$wheel" "$SITE" >> "$GPU_CHECK_WORK/logs/install.log" 2>&1 ||
      { say "stopped: cannot unpack $wheel"; exit 2; }
  done
fi
say "$(ls "$VENDOR"/wheels/*.whl | wc -l) carried wheels on PYTHONPATH in $(( $(date +%s) - started )) s ($PY, $("$PY" --version 2>&1))"
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
export XDG_CACHE_HOME=${XDG_CACHE_HOME:-$GPU_CHECK_WORK/cache}     # pycuda's, offload's and the locks
export CUDA_ROOT=${CUDA_ROOT:-/usr/local/cuda}
export PATH="$CUDA_ROOT/bin:$PATH"

# ---- every library pycuda's extension needs, where the loader finds it --------------------
needed=$("$PY" -c 'import json; m = json.load(open(".gpu-vendor/manifest.json"))
print(" ".join(sorted({n for e in m["pycuda"]["extensions"].values() for n in e["needed"]})))')
known=$( (ldconfig -p || /sbin/ldconfig -p) 2>/dev/null)
for library in $needed; do
  case $library in libc.so.*|libm.so.*|libstdc++.so.*|libgcc_s.so.*|libpthread.so.*|libdl.so.*|librt.so.*) continue ;; esac
  if grep -qF " $library " <<< "$known"; then
    continue
  fi
  found=
  for folder in ${LD_LIBRARY_PATH:+${LD_LIBRARY_PATH//:/ }} "$CUDA_ROOT/lib64" "$CUDA_ROOT/targets/x86_64-linux/lib" /usr/lib/x86_64-linux-gnu; do
    if [ -e "$folder/$library" ]; then
      found=$folder
      break
    fi
  done
  if [ -z "$found" ]; then
    say "warning: pycuda needs $library, which the loader does not know and no CUDA folder has"
  elif [[ ":${LD_LIBRARY_PATH:-}:" != *":$found:"* ]]; then
    export LD_LIBRARY_PATH="$found${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    say "pycuda needs $library: found in $found, put on LD_LIBRARY_PATH"
  fi
done

exec "$PY" benchmarks/gpu_check.py
