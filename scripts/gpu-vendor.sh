#!/usr/bin/env bash
# Run HERE, on a CPU machine with network, before a GPU check: prepares .gpu-vendor/ (git
# ignores it), everything scripts/gpu-check.sh installs on the GPU host, which has no network,
# no package index and no pycuda (../shared/GPU-HOST.md says what it has). Then, in one call:
#
#   run(command="bash scripts/gpu-check.sh", carry=[".gpu-vendor"], timeout_s=480)
#
# What it does:
# 1. builds the pycuda wheel for CPython 3.12 (the host's) from the 2026.1 sdist against this
#    machine's CUDA headers and a stub libcuda.so.1 (there is no driver here; the extension
#    loads the host's real one), with numpy 2 in the build environment;
# 2. reads the extension's NEEDED entries (readelf -d) and its glibc/libstdc++ symbol versions,
#    and says where the host has to find each library (the check puts what is missing on
#    LD_LIBRARY_PATH, from the CUDA folders);
# 3. downloads the cp312 manylinux wheels of what the host lacks (HOST_LACKS below), at the
#    versions this checkout's .venv runs, and nothing the host has: whatever is on PYTHONPATH
#    there shadows the host's own packages (a second numpy or CuPy would break both);
# 4. checks that every carried wheel's requirements are carried or on the host, and that the
#    check's modules import in a Python 3.12 with only the host's packages and the carried
#    wheels (pycuda there stops at the stub: "undefined symbol: cuArrayCreate_v2", expected);
# 5. writes .gpu-vendor/manifest.json (wheels, pycuda's NEEDED, the commit and a digest of
#    the source, which the check records as the commit measured) and checks the size.
# Build files stay in $GPU_VENDOR_BUILD (default /tmp/offload-gpu-vendor-build): a second run
# reuses the pycuda wheel and takes seconds. Run it again after your last commit, so that the
# manifest names the commit the check measures.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=.gpu-vendor
BUILD=${GPU_VENDOR_BUILD:-/tmp/offload-gpu-vendor-build}
CUDA_ROOT=${CUDA_ROOT:-/usr/local/cuda}
PYCUDA_VERSION=2026.1
LIMIT_MIB=40            # the device tool carries 64 MiB with the working tree
# What the host lacks (GPU-HOST.md), and what it has (its virtualenv: GPU-HOST.md, plus the
# requirements of those that GPU-HOST.md does not list as lacking).
HOST_LACKS="pycparser islpy optuna alembic sqlalchemy greenlet colorlog mako pytools platformdirs siphash24"
HOST_HAS="numpy cupy pandas matplotlib rich click pytest hypothesis nvidia-ml-py typing-extensions markupsafe pyyaml tqdm packaging"
say() { echo "gpu-vendor: $*"; }
die() { echo "gpu-vendor: $*" >&2; exit 1; }

PY312=
for candidate in ${PYTHON312:-} python3.12 "$HOME"/.pyenv/versions/3.12*/bin/python3.12; do
  if "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' > /dev/null 2>&1; then
    PY312=$candidate
    break
  fi
done
[ -n "$PY312" ] || die "no Python 3.12 here (pyenv install 3.12, or set PYTHON312=/path/to/python3.12)"
[ -f "$CUDA_ROOT/include/cuda.h" ] || die "no CUDA headers in $CUDA_ROOT/include (set CUDA_ROOT)"
for tool in gcc readelf objdump; do command -v "$tool" > /dev/null || die "needs $tool (binutils, gcc)"; done
mkdir -p "$BUILD"
quiet() { "$@" 2>&1 | grep -v "^WARNING: Location" || true; }

# ---- 1. the pycuda wheel ---------------------------------------------------------------
BVENV=$BUILD/build-venv
[ -x "$BVENV/bin/python" ] || "$PY312" -m venv "$BVENV"
quiet "$BVENV/bin/python" -m pip install -q "numpy>=2" setuptools wheel packaging
# The stub the extension links against (and, in step 4, loads here in place of a driver).
mkdir -p "$BUILD/stub"
printf 'int cuInit(unsigned int flags) { (void)flags; return 100; }\n' > "$BUILD/stub/stub.c"
gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$BUILD/stub/libcuda.so" "$BUILD/stub/stub.c"
ln -sf libcuda.so "$BUILD/stub/libcuda.so.1"
WHEEL=$(ls "$BUILD"/wheels/pycuda-"$PYCUDA_VERSION"-cp312-*.whl 2>/dev/null | head -n 1 || true)
if [ -z "$WHEEL" ]; then
  say "building pycuda $PYCUDA_VERSION for $("$PY312" --version) (about 2 minutes)"
  rm -rf "$BUILD/sdist" "$BUILD/src" && mkdir -p "$BUILD/sdist" "$BUILD/src" "$BUILD/wheels"
  quiet "$BVENV/bin/python" -m pip download -q --no-deps --no-binary pycuda --no-build-isolation \
    -d "$BUILD/sdist" "pycuda==$PYCUDA_VERSION"
  tar -xzf "$BUILD"/sdist/pycuda-"$PYCUDA_VERSION".tar.gz -C "$BUILD/src"
  (cd "$BUILD/src/pycuda-$PYCUDA_VERSION" &&
    "$BVENV/bin/python" configure.py --cuda-root="$CUDA_ROOT" --cudadrv-lib-dir="$BUILD/stub" \
      --cudart-lib-dir="$CUDA_ROOT/lib64" --no-cuda-enable-curand > "$BUILD/configure.log" 2>&1 &&
    "$BVENV/bin/python" -m pip wheel -q --no-deps --no-build-isolation -w "$BUILD/wheels" . > "$BUILD/build.log" 2>&1) ||
    die "pycuda did not build; see $BUILD/configure.log and $BUILD/build.log"
  WHEEL=$(ls "$BUILD"/wheels/pycuda-"$PYCUDA_VERSION"-cp312-*.whl | head -n 1)
fi
say "pycuda wheel: $(basename "$WHEEL")"

# ---- 2. what its extension needs ---------------------------------------------------------
rm -rf "$BUILD/inspect" && mkdir -p "$BUILD/inspect"
"$BVENV/bin/python" -m zipfile -e "$WHEEL" "$BUILD/inspect"
: > "$BUILD/needed.txt"
for so in "$BUILD"/inspect/pycuda/*.so; do
  readelf -d "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sed "s|^|$(basename "$so") |" >> "$BUILD/needed.txt"
  readelf -d "$so" | grep -E "RPATH|RUNPATH" | sed "s|^|$(basename "$so") path |" >> "$BUILD/needed.txt" || true
  objdump -T "$so" | grep -o "GLIBC_[0-9.]*\|GLIBCXX_[0-9.]*" | sort -u | sed "s|^|$(basename "$so") version |" >> "$BUILD/needed.txt" || true
done
grep -q "libcurand" "$BUILD/needed.txt" && die "pycuda links libcurand, which the host has not: rebuild with --no-cuda-enable-curand"
say "pycuda's extension needs: $(awk '$2 !~ /^(path|version)$/ {print $2}' "$BUILD/needed.txt" | sort -u | tr '\n' ' ')"

# ---- 3. the wheels the host lacks, at this checkout's versions ----------------------------
rm -rf "$DEST" && mkdir -p "$DEST/wheels"
echo '*' > "$DEST/.gitignore"
cp "$WHEEL" "$DEST/wheels/"
pins=()
for name in $HOST_LACKS; do
  pin=$( (.venv/bin/python -m pip freeze 2>/dev/null || true) | grep -i "^${name}==" | head -n 1 || true)
  pins+=("${pin:-$name}")
done
quiet "$BVENV/bin/python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --abi cp312 --abi abi3 --abi none --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform any -d "$DEST/wheels" "${pins[@]}"

# ---- 4 and 5. requirements, imports, manifest ----------------------------------------------
HVENV=$BUILD/host-like-venv
if [ ! -x "$HVENV/bin/python" ]; then
  "$PY312" -m venv "$HVENV"
  # The host's packages that the check's code imports; the rest of HOST_HAS is not needed here.
  quiet "$HVENV/bin/python" -m pip install -q "numpy>=2" pytest hypothesis click rich typing-extensions markupsafe \
    pyyaml tqdm packaging
fi
rm -rf "$BUILD/site" && mkdir -p "$BUILD/site"
for wheel in "$DEST"/wheels/*.whl; do "$BVENV/bin/python" -m zipfile -e "$wheel" "$BUILD/site"; done
"$BVENV/bin/python" - "$DEST" "$BUILD/needed.txt" "$HOST_LACKS" "$HOST_HAS" "$PYCUDA_VERSION" <<'PY'
import email.parser, hashlib, json, pathlib, re, subprocess, sys, zipfile
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

dest, needed_file, lacks, has, pycuda_version = sys.argv[1:6]
dest = pathlib.Path(dest)
carried, wheels = {}, []
for wheel in sorted(dest.glob("wheels/*.whl")):
    with zipfile.ZipFile(wheel) as archive:
        meta = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        message = email.parser.Parser().parsestr(archive.read(meta).decode())
    name = canonicalize_name(message["Name"])
    carried[name] = message.get_all("Requires-Dist") or []
    wheels.append({"file": wheel.name, "name": name, "version": message["Version"], "bytes": wheel.stat().st_size,
                   "sha256": hashlib.sha256(wheel.read_bytes()).hexdigest()})
host = {canonicalize_name(n) for n in has.split()}
shadowing = sorted(set(carried) & host)
if shadowing:
    sys.exit(f"gpu-vendor: would shadow the host's own {shadowing}: leave them out")
missing = sorted(set(map(canonicalize_name, lacks.split())) - set(carried))
if missing:
    sys.exit(f"gpu-vendor: no cp312 manylinux wheel was found for {missing}")
environment = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
               "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
               "platform_python_implementation": "CPython", "os_name": "posix", "extra": ""}
unmet = []
for name, requirements in carried.items():
    for text in requirements:
        requirement = Requirement(text)
        if requirement.marker and not requirement.marker.evaluate(environment):
            continue
        wanted = canonicalize_name(requirement.name)
        if wanted not in carried and wanted not in host:
            unmet.append(f"{name} needs {text}")
if unmet:
    sys.exit("gpu-vendor: requirements neither carried nor on the host: " + "; ".join(unmet))
needed = {}
for line in pathlib.Path(needed_file).read_text().splitlines():
    library, kind, *rest = line.split(" ", 2) + [""]
    entry = needed.setdefault(library, {"needed": [], "paths": [], "versions": []})
    if kind == "path":
        entry["paths"].append(rest[0].strip())
    elif kind == "version":
        entry["versions"].append(rest[0].strip())
    else:
        entry["needed"].append(kind)
def newest(prefix):
    found = [v for e in needed.values() for v in e["versions"] if re.fullmatch(prefix + r"_[0-9.]+", v)]
    return max(found, key=lambda v: tuple(int(p) for p in v.split("_")[1].split(".")), default=None)
git = lambda *args: subprocess.run(["git", *args], capture_output=True, text=True).stdout.strip()
sys.path.insert(0, "benchmarks")
from gpucheck.record import source_digest
manifest = {"python": "cp312", "wheels": wheels,
            "pycuda": {"version": pycuda_version, "extensions": needed, "glibc": newest("GLIBC"),
                       "glibcxx": newest("GLIBCXX"),
                       "note": "built against a stub libcuda.so.1: the host's driver provides the real one"},
            "host_lacks": lacks.split(), "host_has": has.split(),
            "commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
            "source_sha256": source_digest(pathlib.Path(".").resolve()),
            "bytes": sum(w["bytes"] for w in wheels)}
(dest / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
print(f"gpu-vendor: {len(wheels)} wheels, {manifest['bytes'] / 2**20:.1f} MiB; pycuda needs glibc "
      f"{manifest['pycuda']['glibc']} and {manifest['pycuda']['glibcxx']}; commit {manifest['commit']}"
      + (" (with uncommitted changes)" if manifest["dirty"] else ""))
PY
# The check's modules in a Python like the host's: its packages, the carried wheels, the checkout.
PYTHONPATH="$BUILD/site:$PWD" LD_LIBRARY_PATH="$BUILD/stub" "$HVENV/bin/python" - <<'PY' || die "the check's modules do not import in a host-like Python 3.12 (above)"
import importlib, sys, warnings
warnings.simplefilter("ignore")  # pycuda warns about the stub it cannot use
sys.path.insert(0, "benchmarks")
modules = ("numpy", "pycparser", "islpy", "pytools", "platformdirs", "siphash24", "mako", "optuna", "sqlalchemy",
           "pytest", "hypothesis", "offloader.cli", "offloader.runtime.run", "offloader.tune.candidates",
           "offloader.tune.gpumodel", "offloader.tune.replay", "offloader.tune.study", "sizing.gpu_models",
           "gpucheck.preflight", "gpucheck.contract", "gpucheck.ceilings", "gpucheck.fault", "gpucheck.sample",
           "gpucheck.kernels", "gpucheck.launch", "gpucheck.compile", "gpucheck.figures")
failed = []
for name in modules:
    try:
        importlib.import_module(name)
    except Exception as error:
        failed.append(f"{name}: {error}")
try:
    import pycuda.driver  # noqa: F401
    failed.append("pycuda.driver imported against the stub: it is not the wheel that was built")
except ImportError as error:
    if "cuArrayCreate_v2" not in str(error):
        failed.append(f"pycuda.driver: {error} (expected only the stub's undefined cuArrayCreate_v2)")
if failed:
    sys.exit("\n".join(failed))
print("gpu-vendor: the check's modules import in a host-like Python 3.12 "
      "(pycuda stops at the stub's cuArrayCreate_v2, as expected)")
PY
size=$(du -sm "$DEST" | cut -f1)
tree=$(git ls-files -z | xargs -0 du -cm 2>/dev/null | tail -n 1 | cut -f1)
[ "$size" -le "$LIMIT_MIB" ] || die "$DEST is $size MiB, over $LIMIT_MIB MiB (the device tool carries 64 MiB in all)"
say "$DEST: $size MiB, with the working tree (about $tree MiB) well under the 64 MiB carried"
say 'now: run(command="bash scripts/gpu-check.sh", carry=[".gpu-vendor"], timeout_s=480)'
