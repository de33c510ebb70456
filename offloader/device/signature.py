"""Kernel signatures read from CUDA text: the contract between kernel text and devices.

Every kernel is declared `extern "C" __global__ void NAME(PARAMS)` (optionally with
`__launch_bounds__(...)`), the parameter list on one or several lines, each parameter a
simple C declarator: a pointer (`const float *__restrict__ x`) or a scalar of one of the
types in SCALAR_DTYPES, spelled literally (no typedefs or macros).  Both devices check a
launch's arguments against this; the emulator also has the compiler confirm it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .errors import CompileError, CompileFailure

SCALAR_DTYPES = {
    "int": np.int32, "signed": np.int32, "signed int": np.int32,
    "unsigned": np.uint32, "unsigned int": np.uint32,
    "long": np.int64, "long int": np.int64, "long long": np.int64, "long long int": np.int64,
    "unsigned long": np.uint64, "unsigned long int": np.uint64, "size_t": np.uint64,
    "unsigned long long": np.uint64, "unsigned long long int": np.uint64,
    "float": np.float32, "double": np.float64,
}
_LETTER = {np.int32: "i", np.uint32: "I", np.int64: "l", np.uint64: "L", np.float32: "f", np.float64: "d"}
_QUALIFIERS = {"const", "volatile", "__restrict__", "__restrict", "restrict"}
_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
_GLOBAL = re.compile(r"\b__global__\b")
_BOUNDS = r"(?:__launch_bounds__\s*\([^)]*\)\s*)?"
_KERNEL = re.compile(r'extern\s+"C"\s+__global__\s+' + _BOUNDS + r"void\s+" + _BOUNDS
                     + r"([A-Za-z_]\w*)\s*\(")


@dataclass(frozen=True)
class Param:
    name: str
    ctype: str                  # as written, qualifiers dropped: "float *", "int"
    dtype: type | None          # numpy scalar type; None for a pointer

    @property
    def is_pointer(self) -> bool:
        return self.dtype is None


@dataclass(frozen=True)
class KernelSignature:
    name: str
    params: tuple[Param, ...]
    line: int                   # 1-based line of the declaration in the kernel text

    @property
    def letters(self) -> str:
        """One letter per parameter (p pointer, i/I 32-bit, l/L 64-bit, f float, d double)."""
        return "".join("p" if p.is_pointer else _LETTER[p.dtype] for p in self.params)


def strip_comments(source: str) -> str:
    """The text with comments blanked out, newlines kept, so offsets and lines still match."""
    return _COMMENT.sub(lambda m: re.sub(r"[^\n]", " ", m.group()), source)


def parse_kernels(source: str) -> dict[str, KernelSignature]:
    """Every kernel in `source`, by name; CompileError(BAD_SIGNATURE) if one breaks the contract."""
    text = strip_comments(source)
    kernels: dict[str, KernelSignature] = {}
    covered = set()
    for match in _KERNEL.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        params = text[match.end():_closing_paren(text, match.end(), line)]
        sig = KernelSignature(match.group(1), _parse_params(match.group(1), params, line), line)
        if kernels.setdefault(sig.name, sig).params != sig.params:
            _bad(line, f"kernel {sig.name} is declared twice with different parameters")
        covered.add(text.index("__global__", match.start()))
    for match in _GLOBAL.finditer(text):
        if match.start() not in covered:
            _bad(text.count("\n", 0, match.start()) + 1,
                 'a kernel must be declared `extern "C" __global__ void NAME(PARAMS)`')
    if not kernels:
        _bad(1, 'no `extern "C" __global__` kernel in the text')
    return kernels


def _closing_paren(text: str, start: int, line: int) -> int:
    depth = 1
    for i in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i
    _bad(line, "unbalanced parentheses in a kernel's parameter list")


def _parse_params(kernel: str, text: str, line: int) -> tuple[Param, ...]:
    parts = [p.strip() for p in text.split(",")]
    if parts in ([""], ["void"]):
        return ()
    params = []
    for part in parts:
        words = [w for w in re.findall(r"[A-Za-z_]\w*|\*", part) if w not in _QUALIFIERS]
        if len(words) < 2 or words[-1] == "*" or not re.fullmatch(r"[A-Za-z_][\w\s*]*", part):
            _bad(line, f"kernel {kernel}: cannot read parameter `{part}`")
        name, type_words = words[-1], words[:-1]
        if "*" in type_words:
            params.append(Param(name, " ".join(type_words), None))
            continue
        ctype = " ".join(type_words)
        if ctype not in SCALAR_DTYPES:
            _bad(line, f"kernel {kernel}: parameter {name} has type `{ctype}`; a parameter is a "
                       f"pointer or one of: {', '.join(sorted(SCALAR_DTYPES))}")
        params.append(Param(name, ctype, SCALAR_DTYPES[ctype]))
    return tuple(params)


def _bad(line: int, message: str):
    raise CompileError(CompileFailure.BAD_SIGNATURE, f"line {line}: {message}")
