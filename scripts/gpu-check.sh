#!/usr/bin/env bash
# Run ON THE GPU HOST (no network), within 8 minutes: builds pycuda from the carried sdist,
# runs the tests marked `gpu` (the device contract suite on the real GPU), then a short
# benchmark: every sample with all regions on the GPU, verified, against the CPU original.
# Writes $OUT/gpu-check.json (commit it under results/gpu/) and $OUT/gpu-check.log.
# Prepare with scripts/gpu-vendor.sh here and carry .gpu-vendor.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-results/gpu}
mkdir -p "$OUT"
LOG="$OUT/gpu-check.log"
exec > >(tee "$LOG") 2>&1
PY=$(command -v python3.12 || command -v python3)
VENV=/tmp/offload-gpu-venv
started=$(date +%s)
"$PY" -m venv "$VENV"
pipi=("$VENV/bin/python" -m pip install -q --no-index --find-links .gpu-vendor)
"${pipi[@]}" setuptools wheel numpy pytools platformdirs mako typing-extensions siphash24
export CUDA_ROOT=${CUDA_ROOT:-/usr/local/cuda}
export PATH="$CUDA_ROOT/bin:$PATH"
pycuda=ok
timeout 300 "${pipi[@]}" --no-build-isolation .gpu-vendor/pycuda-*.tar.gz || pycuda="failed to build"
"${pipi[@]}" -e '.[test]' || { echo "gpu-check: cannot install offload"; exit 1; }
echo "gpu-check: pycuda $pycuda after $(( $(date +%s) - started )) s"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
tests=skipped
if [ "$pycuda" = ok ]; then
  timeout 120 "$VENV/bin/python" -m pytest -q -p no:cacheprovider -m gpu tests/test_device_contract.py && tests=passed || tests=failed
fi
"$VENV/bin/python" - "$OUT/gpu-check.json" "$pycuda" "$tests" <<'PY'
import glob, json, subprocess, sys, time
out, pycuda, tests = sys.argv[1:4]
record = {"kind": "measured", "pycuda": pycuda, "gpu_tests": tests, "samples": [],
          "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
try:
    record["gpu"] = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                                   capture_output=True, text=True, timeout=30).stdout.strip()
except (OSError, subprocess.TimeoutExpired):
    record["gpu"] = None
if pycuda == "ok":
    for src in sorted(glob.glob("samples/*.c")):
        done = subprocess.run([sys.executable, "-m", "offloader", "run", src, "--device", "cuda", "--json"],
                              capture_output=True, text=True, timeout=120)
        try:
            report = json.loads(done.stdout)
        except json.JSONDecodeError:
            record["samples"].append({"file": src, "error": done.stderr[-500:]})
            continue
        record["samples"].append({key: report.get(key) for key in (
            "file", "verified", "mismatch", "total_seconds", "cpu_seconds", "timing", "device")} |
            {"regions": [{k: r[k] for k in ("id", "line", "kernel_seconds", "h2d_bytes", "d2h_bytes",
                                            "transfer_seconds", "device_runs", "cpu_fallbacks")}
                         for r in report.get("regions", [])]})
with open(out, "w") as handle:
    json.dump(record, handle, indent=2)
print(f"gpu-check: wrote {out}")
PY
echo "gpu-check: done in $(( $(date +%s) - started )) s"
