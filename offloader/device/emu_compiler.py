"""Kernel text to a shared library that runs it on the CPU (see cuda_emu.h for how).

The text is checked for CUDA features the emulator does not implement (warp-level
intrinsics, dynamic shared memory, cooperative groups), then compiled by g++ together with
one `__emu_launch_K(Config *, void **args)` wrapper per kernel K.  Each wrapper has the
compiler assert that K's parameter types are the ones Python parsed, so a launch can never
unpack arguments with the wrong types.  Libraries are cached by content hash, so the same
text is compiled once per machine (tuning compiles the same variants again and again).

What kernel text may use here (the kernel generator's side of the contract): the CUDA
qualifiers (__global__, __device__, __host__, __shared__ with a static size, __constant__,
__forceinline__, __noinline__, __restrict__, __launch_bounds__); threadIdx, blockIdx,
blockDim, gridDim, dim3, warpSize; __syncthreads, __threadfence(_block); atomicAdd (int,
unsigned, unsigned long long, float, double), atomicSub, atomicMin/Max (int, unsigned),
atomicCAS, atomicExch; min/max, rsqrt(f), the fast-math intrinsics __expf, __logf, __sinf,
__cosf, __powf, __fdividef, __saturatef, the bit casts __float_as_int etc., __ldg; all of
<cmath> and printf.  Refused with CompileError(UNSUPPORTED): what UNSUPPORTED lists.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from .errors import CompileError, CompileFailure
from .signature import KernelSignature, parse_kernels, strip_comments

HEADER = Path(__file__).with_name("cuda_emu.h")
FLAGS = ("-O1", "-fPIC", "-std=c++17", "-fvisibility=hidden", "-fsanitize=thread",
         "--param=tsan-instrument-func-entry-exit=0", "-pthread")
# Linked in a second step: with -fsanitize=thread the driver would link libtsan, which the
# hooks in cuda_emu.h replace.  -z defs turns any hook the header lacks into a build error.
LINK_FLAGS = ("-shared", "-pthread", "-Wl,-z,defs")
UNSUPPORTED = (
    (r"\b__shfl\w*", "warp shuffles (__shfl*)"),
    (r"\b__syncwarp\b", "__syncwarp"),
    (r"\b__(?:ballot|any|all|match_any|match_all|reduce_\w+)_sync\b|\b__activemask\b", "warp votes"),
    (r"\b__syncthreads_(?:count|and|or)\b", "__syncthreads_count/and/or"),
    (r"\bextern\s+__shared__", "dynamic shared memory (extern __shared__)"),
    (r"\bcooperative_groups\b", "cooperative groups"),
)


@dataclass(frozen=True)
class Library:
    path: Path
    kernels: dict[str, KernelSignature]
    barrier_kernels: frozenset[str]    # kernels that may reach __syncthreads: their blocks run as fibers
    log: str


def cache_dir() -> Path:
    """$OFFLOAD_EMU_CACHE, else ~/.cache/offload/emu, else (read-only home) a temp folder."""
    root = Path(os.environ.get("OFFLOAD_EMU_CACHE") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "offload" / "emu")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError:
        root = Path(tempfile.gettempdir()) / f"offload-emu-{os.getuid()}"
        root.mkdir(exist_ok=True)
    return root


@cache
def compiler() -> tuple[str, str]:
    """(path of g++, its version line); CompileError(NO_COMPILER) if it is missing."""
    path = shutil.which("g++")
    if path is None:
        raise CompileError(CompileFailure.NO_COMPILER,
                           "the emulated device needs g++ (Debian package g++)")
    version = subprocess.run([path, "--version"], capture_output=True, text=True).stdout
    return path, version.splitlines()[0]


def build(source: str, options: tuple[str, ...] = ()) -> Library:
    text = strip_comments(source)
    for pattern, feature in UNSUPPORTED:
        found = re.search(pattern, text)
        if found:
            line = text.count("\n", 0, found.start()) + 1
            raise CompileError(CompileFailure.UNSUPPORTED,
                               f"line {line}: the emulated device does not support {feature}")
    kernels = parse_kernels(source)
    full = source + "\n" + "".join(_wrapper(sig) for sig in kernels.values())
    gxx, version = compiler()
    header = HEADER.read_bytes()
    key = hashlib.sha256("\0".join((version, *FLAGS, *LINK_FLAGS, *options, full)).encode()
                         + header).hexdigest()
    path = cache_dir() / f"{key[:32]}.so"
    if not path.exists():
        _compile(gxx, full, options, path)
    log_path = path.with_suffix(".log")
    log = log_path.read_text() if log_path.exists() else ""
    return Library(path, kernels, barrier_kernels(text, kernels), log)


_BARRIER = re.compile(r"\b__syncthreads\b")
_DEFINITION = re.compile(r"\b([A-Za-z_]\w*)\s*\([^;{}()]*(?:\([^;{}()]*\)[^;{}()]*)*\)\s*(?:const\s*)?\{")


def barrier_kernels(text: str, kernels) -> frozenset[str]:
    """The kernels that may reach __syncthreads (text without comments): their own body calls
    it, or a function their body calls by name does, transitively. Kernels without one run
    their block's threads as plain calls, which costs far less than fibers. A barrier outside
    every function body found makes every kernel a barrier kernel (the text is not understood)."""
    bodies, outside, depth, at = {}, [], 0, 0
    for found in _DEFINITION.finditer(text):
        if found.start() < at:
            continue
        outside.append(text[at:found.start()])
        end, depth = found.end(), 1
        while depth and end < len(text):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            end += 1
        bodies[found.group(1)] = bodies.get(found.group(1), "") + text[found.end():end]
        at = end
    outside.append(text[at:])
    if any(_BARRIER.search(part) for part in outside):
        return frozenset(kernels)
    reach = {name for name, body in bodies.items() if _BARRIER.search(body)}
    grew = True
    while grew:
        grew = False
        for name, body in bodies.items():
            if name not in reach and any(re.search(rf"\b{re.escape(other)}\s*\(", body) for other in reach):
                reach.add(name)
                grew = True
    return frozenset(name for name in kernels if name in reach or name not in bodies)


def _wrapper(sig: KernelSignature) -> str:
    return (f'extern "C" __attribute__((visibility("default"))) int __emu_launch_{sig.name}'
            f"(__emu::Config *c, void **a) {{\n"
            f'  static_assert(__emu::signature_is({sig.name}, "{sig.letters}"), '
            f'"kernel {sig.name}: parameter types differ from its parsed signature");\n'
            f"  return __emu::run(c, [](void **x) {{ __emu::call({sig.name}, x); }}, a);\n}}\n")


def _compile(gxx: str, text: str, options: tuple[str, ...], target: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="offload-emu-") as tmp:
        src, obj, out = (Path(tmp) / name for name in ("kernel.cu", "kernel.o", "kernel.so"))
        src.write_text(text)
        log = ""
        for step in ([gxx, *FLAGS, *options, "-include", str(HEADER), "-x", "c++", "-c", str(src),
                      "-o", str(obj)], [gxx, *LINK_FLAGS, str(obj), "-o", str(out)]):
            done = subprocess.run(step, capture_output=True, text=True, cwd=tmp)
            log += done.stderr
            if done.returncode != 0:
                raise CompileError(CompileFailure.COMPILER_ERROR,
                                   "g++ rejected the kernel text (see log)", log)
        # Log first, library last: a library in the cache always has its log beside it.
        os.replace(_staged(target.with_suffix(".log"), log), target.with_suffix(".log"))
        os.replace(_staged(target, out.read_bytes()), target)


def _staged(final: Path, content) -> Path:
    """`content` written to a unique temporary file beside `final`, ready for os.replace."""
    fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=final.name + ".")
    with os.fdopen(fd, "wb") as f:
        f.write(content.encode() if isinstance(content, str) else content)
    return Path(tmp)
