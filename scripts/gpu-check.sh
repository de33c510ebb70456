#!/usr/bin/env bash
# Run ON THE GPU HOST (no network), within 8 minutes: builds pycuda from the carried sdist,
# runs the tests marked `gpu` (the device contract suite through pycuda and through CuPy, and
# the CuPy device's own checks), then a short benchmark: every sample with all regions on the
# GPU, verified, against the CPU original.  If pycuda does not build, the GPU runs through
# CuPy, which that host already has (the venv sees the system's packages for it), so the time
# is not wasted.  Every step gets only what is left of the 8 minutes (GPU_CHECK_SECONDS, less
# a margin); samples that no longer fit are recorded as skipped.
# Writes $OUT/gpu-check.json (commit it under results/gpu/), whose `device_impl` names the
# library the GPU ran through (pycuda | cupy | null) and `device_choice` says why, with
# $OUT/gpu-check.log and $OUT/pycuda-build.log.  Prepare with scripts/gpu-vendor.sh here and
# carry .gpu-vendor.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-results/gpu}
mkdir -p "$OUT"
LOG="$OUT/gpu-check.log"
exec > >(tee "$LOG") 2>&1
PY=$(command -v python3.12 || command -v python3)
VENV=/tmp/offload-gpu-venv
started=$(date +%s)
deadline=$((started + ${GPU_CHECK_SECONDS:-480} - 20))   # 20 s for the JSON and the exit
left() { echo $(( deadline - $(date +%s) )); }
"$PY" -m venv --system-site-packages "$VENV"
pipi=("$VENV/bin/python" -m pip install -q --no-index --find-links .gpu-vendor)
# What pycuda builds and runs with, and what `offload run` and the gpu tests import, at
# setup.cfg's versions (an older copy among the system's packages must not do instead).
# offload goes in without its declared dependencies: the tuner's (optuna) are not carried.
"${pipi[@]}" "setuptools>=64" wheel "numpy>=1.24" pytools platformdirs mako typing-extensions \
  siphash24 "pycparser>=2.22" "islpy>=2023.1" "click>=8.1" "rich>=13" "pytest>=7.4"
"${pipi[@]}" --no-deps --no-build-isolation -e . || { echo "gpu-check: cannot install offload"; exit 1; }
echo "gpu-check: installed after $(( $(date +%s) - started )) s"
export CUDA_ROOT=${CUDA_ROOT:-/usr/local/cuda}
export PATH="$CUDA_ROOT/bin:$PATH"
build=$(( $(left) - 240 ))   # the tests and the samples keep 4 minutes
if [ "$build" -lt 30 ]; then
  pycuda="not built: no time left"
else
  timeout "$build" "${pipi[@]}" --no-build-isolation .gpu-vendor/pycuda-*.tar.gz > "$OUT/pycuda-build.log" 2>&1
  case $? in 0) pycuda=ok ;; 124) pycuda="not built within $build s" ;; *) pycuda="failed to build" ;; esac
  [ "$pycuda" = ok ] || grep -E "error|Error" "$OUT/pycuda-build.log" | tail -n 5
fi
echo "gpu-check: pycuda $pycuda after $(( $(date +%s) - started )) s"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
impl=$("$VENV/bin/python" -c 'from offloader.device import gpu_library; print(gpu_library()[0] or "")')
echo "gpu-check: the GPU runs through ${impl:-no library}"
tests=skipped
if [ -n "$impl" ]; then
  budget=$(( $(left) / 2 < 150 ? $(left) / 2 : 150 ))   # the other half is the samples'
  timeout "$budget" "$VENV/bin/python" -m pytest -q -rs -p no:cacheprovider -m gpu \
    tests/test_device_contract.py tests/test_device_cupy.py && tests=passed || tests=failed
fi
"$VENV/bin/python" - "$OUT/gpu-check.json" "$pycuda" "$tests" "$deadline" "$started" <<'PY'
import glob, json, subprocess, sys, time
from offloader.device import gpu_library

out, pycuda, tests = sys.argv[1:4]
deadline, started = float(sys.argv[4]), float(sys.argv[5])
library, why = gpu_library()
record = {"schema": 1, "kind": "measured", "pycuda": pycuda, "device_impl": library, "device_choice": why,
          "gpu_tests": tests, "samples": [], "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
try:
    import cupy
    record["cupy"] = cupy.__version__
except ImportError:
    record["cupy"] = None
try:
    record["gpu"] = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                                   capture_output=True, text=True, timeout=30).stdout.strip()
except (OSError, subprocess.TimeoutExpired):
    record["gpu"] = None
for src in sorted(glob.glob("samples/*.c")) if library else []:
    budget = min(90.0, deadline - time.time())
    if budget < 15:
        record["samples"].append({"file": src, "skipped": "no time left"})
        continue
    command = [sys.executable, "-m", "offloader", "run", src, "--device", "cuda", "--json",
               "--timeout", f"{budget / 4:.0f}"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=budget)
        report = json.loads(done.stdout)
    except subprocess.TimeoutExpired:
        record["samples"].append({"file": src, "error": f"not done within {budget:.0f} s"})
        continue
    except json.JSONDecodeError:
        record["samples"].append({"file": src, "error": done.stderr[-500:]})
        continue
    record["samples"].append({key: report.get(key) for key in (
        "file", "verified", "mismatch", "total_seconds", "cpu_seconds", "timing", "device")} |
        {"regions": [{k: r[k] for k in ("id", "line", "kernel_seconds", "h2d_bytes", "d2h_bytes",
                                        "transfer_seconds", "device_runs", "cpu_fallbacks")}
                     for r in report.get("regions", [])]})
record["seconds"] = round(time.time() - started)
with open(out, "w") as handle:
    json.dump(record, handle, indent=2)
print(f"gpu-check: wrote {out}")
PY
echo "gpu-check: done in $(( $(date +%s) - started )) s"
