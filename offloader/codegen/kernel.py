"""CUDA C++ kernels for offload regions.

Up to three perfectly nested parallel loops become grid-stride loops (grid y and z stop at
65535, so every axis strides); by default the innermost loop, which walks the contiguous
dimension, goes to threadIdx.x so that accesses coalesce. Bounds are recomputed per level, so
triangular nests stay exact. Reductions keep a private accumulator per thread; by default each
block combines them in shared memory and a second kernel folds the block results in a fixed
order, so the result does not depend on scheduling. Launch settings live in a Variant so a
tuner can vary them without touching the kernel's meaning.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Optional

from pycparser import c_ast

from ..frontend.walk import walk
from .cxx import safe_name, to_cuda, to_cuda_statement
from .regions import Param, Region, element_text

AXES = "xyz"
SHARED_SLOTS = 1024                  # the most threads a block may have
DEFAULT_BLOCK = {1: (256, 1, 1), 2: (32, 8, 1), 3: (32, 4, 2)}   # x along the contiguous loop
DEFAULT_WAVES = 4                    # grid: blocks that fill every multiprocessor this many times
FLOAT_TYPES = {"float", "double"}


@dataclass(frozen=True)
class Variant:
    """How a region's kernel is launched: block shape, grid size, loop-to-axis map, reduction
    scheme."""

    block: Optional[tuple[int, int, int]] = None   # None: DEFAULT_BLOCK for the nest's depth
    axes: Optional[tuple[int, ...]] = None         # axes[k]: grid axis of mapped loop k (0=x)
    reduction: str = "tree"                        # "tree" (deterministic) or "atomic" (+ only)
    waves: int = DEFAULT_WAVES                     # 0: one thread per iteration (runtime/launch.py)

    def axes_for(self, depth: int) -> tuple[int, ...]:
        return self.axes if self.axes is not None else tuple(range(depth - 1, -1, -1))

    def block_for(self, depth: int) -> tuple[int, int, int]:
        return self.block if self.block is not None else DEFAULT_BLOCK[depth]


@dataclass(frozen=True)
class KernelSource:
    region: Region
    variant: Variant
    name: str
    final_name: Optional[str]        # the block-combining kernel of tree reductions
    text: str                        # a complete CUDA source: preamble, helpers, kernels
    body: str                        # the kernels alone
    arguments: tuple[str, ...]       # kernel parameters in order, by role (see kernel_arguments)


class KernelError(Exception):
    """The variant cannot be used for this region; the message says why."""


def kernel_arguments(region: Region, variant: Variant) -> tuple[str, ...]:
    """Parameter roles in order: `param:<name>`, then per reduction `init:<v>` and
    `part:<v>` (tree) or `out:<v>` (atomic)."""
    roles = [f"param:{p.name}" for p in region.params]
    for param, _ in region.reductions:
        roles += [f"init:{param.name}", f"part:{param.name}"] if variant.reduction == "tree" else [f"out:{param.name}"]
    return tuple(roles)


def generate_kernel(region: Region, variant: Variant, preamble: str) -> KernelSource:
    depth = len(region.mapped)
    axes = variant.axes_for(depth)
    if sorted(axes) != list(range(depth)):
        raise KernelError(f"axes {axes} must map the {depth} mapped loops to distinct grid axes")
    if variant.reduction == "atomic" and any(op != "+" for _, op in region.reductions):
        raise KernelError("the atomic reduction variant handles `+` only")
    if variant.waves < 0:
        raise KernelError(f"a grid of {variant.waves} waves is not a grid")
    if variant.reduction not in ("tree", "atomic"):
        raise KernelError(f"unknown reduction variant {variant.reduction!r}")
    if len(region.reductions) > 4:
        raise KernelError("more than 4 reductions in one kernel would not fit in shared memory")
    block = variant.block_for(depth)
    threads = block[0] * block[1] * block[2]
    if not 0 < threads <= SHARED_SLOTS:
        raise KernelError(f"a block of {threads} threads is outside 1..{SHARED_SLOTS}")

    params, prologue = [], []
    for param in region.params:
        flat = _flat_view(param)
        params.append(flat[0] if flat else _declare(param))
        prologue += flat[1:] if flat else []
    for param, _ in region.reductions:
        value, pointer = _declare(param, "__init_"), _declare(param, "__part_" if variant.reduction == "tree" else "__out_", pointer=True)
        params += [value, pointer] if variant.reduction == "tree" else [pointer]
    lines = [f'extern "C" __global__ void {region.name}({", ".join(params)})', "{", *prologue]
    for param, op in region.reductions:
        init = "0" if op == "+" else "1" if op == "*" else f"__init_{param.name}"
        lines.append(f"  {param.element} __r_{param.name} = ({param.element})({init});")
    lines += _nest(region, axes)
    if region.reductions:
        lines += _tree_epilogue(region) if variant.reduction == "tree" else _atomic_epilogue(region)
    lines.append("}")
    final_name = None
    if region.reductions and variant.reduction == "tree":
        final_name = region.name + "_final"
        lines += _final_kernel(region, final_name)
    body = "\n".join(lines) + "\n"
    text = "\n".join([preamble, _helpers_text(region.helpers), body])
    return KernelSource(region, variant, region.name, final_name, text, body, kernel_arguments(region, variant))


def generate_module(kernels: list[KernelSource], preamble: str) -> str:
    """One CUDA source with the kernels of several regions (helpers emitted once)."""
    helpers = {id(f): f for k in kernels for f in k.region.helpers}
    return "\n".join([preamble, _helpers_text(tuple(helpers.values()))] + [k.body for k in kernels])


def _declare(param: Param, prefix: str = "", pointer: bool = False) -> str:
    decl = copy.deepcopy(param.decl)
    name = prefix + param.name if prefix else param.ident       # prefixed: reduction variables
    decl.name = name
    node = decl.type
    while not isinstance(node, c_ast.TypeDecl):
        node = node.type
    node.declname = name
    if pointer:
        decl.type = c_ast.PtrDecl([], decl.type)
    text = to_cuda(decl)
    return text.replace("restrict", "__restrict__") if "restrict" in text and "__restrict__" not in text else text


def _flat_view(param: Param) -> Optional[tuple[str, str]]:
    """A multi-dimensional array travels as a plain pointer (kernel signatures stay simple)
    and is viewed with its row shape again inside: (parameter, the view's declaration)."""
    if param.kind != "array" or not isinstance(param.decl.type, c_ast.PtrDecl) \
            or not isinstance(param.decl.type.type, c_ast.ArrayDecl):
        return None
    flat = f"__flat_{param.ident}"
    pointer = f"{param.element} *{flat}"
    view = _declare(param)
    cast_target = re.sub(r"\(\s*\*\s*" + re.escape(param.ident) + r"\s*\)", "(*)", view, count=1)
    return pointer, f"  {view} = ({cast_target}){flat};"


def _helpers_text(helpers) -> str:
    """Pure user functions as __device__ functions (prototypes first: any call order works)."""
    prototypes, bodies = [], []
    for func in helpers:
        func = copy.deepcopy(func)
        func.decl.storage = [s for s in func.decl.storage if s not in ("static", "extern")]
        func.decl.funcspec = [s for s in func.decl.funcspec if s != "inline"]
        prototypes.append("__device__ " + to_cuda(func.decl) + ";")
        bodies.append("__device__ " + to_cuda(func))
    return "\n".join(prototypes + bodies)


def _loop_type(region: Region, var: str) -> str:
    variable = region.function.variables.get(var)
    if variable is None or variable.ctype.kind != "scalar":
        return "long long"
    return element_text(variable)


def _nest(region: Region, axes: tuple[int, ...]) -> list[str]:
    lines, indent = [], "  "
    for k, (header, axis) in enumerate(zip(region.headers, axes)):
        a = AXES[axis]
        start, end = to_cuda(header.start), to_cuda(header.end)
        if header.inclusive:
            end = f"({end}) + {1 if header.step > 0 else -1}"
        var, ctype = safe_name(header.var), _loop_type(region, header.var)
        lines += [
            f"{indent}const long long __n{k} = __offload_trip((long long)({start}), (long long)({end}), {header.step}LL);",
            f"{indent}for (long long __k{k} = (long long)blockIdx.{a} * blockDim.{a} + threadIdx.{a}; __k{k} < __n{k};"
            f" __k{k} += (long long)gridDim.{a} * blockDim.{a}) {{",
            f"{indent}  {ctype} {var} = ({ctype})((long long)({start}) + __k{k} * {header.step}LL);",
        ]
        indent += "  "
    for param in region.private:
        lines.append(f"{indent}{to_cuda(param.decl)};")
    body = _renamed(region.nest[-1].stmt, {p.name: f"__r_{p.name}" for p, _ in region.reductions})
    lines += [indent + line for line in to_cuda_statement(body).rstrip().splitlines()]
    for k in range(len(region.mapped) - 1, -1, -1):
        indent = indent[:-2]
        lines.append(f"{indent}}}")
    return lines


def _renamed(node: c_ast.Node, names: dict[str, str]) -> c_ast.Node:
    node = copy.deepcopy(node)
    for current in walk(node):
        if isinstance(current, c_ast.ID) and current.name in names:
            current.name = names[current.name]
    return node


def _combine(op: str, element: str, a: str, b: str) -> str:
    if op in ("+", "*"):
        return f"({a}) {op} ({b})"
    if element in FLOAT_TYPES:
        suffix = "f" if element == "float" else ""
        return f"f{op}{suffix}({a}, {b})"
    return f"(({a}) {'>' if op == 'max' else '<'} ({b}) ? ({a}) : ({b}))"


def _tree_epilogue(region: Region) -> list[str]:
    lines = ["  {",
             "    const int __tid = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);",
             "    const int __nt = blockDim.x * blockDim.y * blockDim.z;",
             "    const long long __bid = blockIdx.x + (long long)gridDim.x * (blockIdx.y + (long long)gridDim.y * blockIdx.z);"]
    for param, op in region.reductions:
        v, t = param.name, param.element
        lines += [f"    __shared__ {t} __sh_{v}[{SHARED_SLOTS}];",
                  f"    __sh_{v}[__tid] = __r_{v};"]
    lines += ["    __syncthreads();",
              "    for (int __w = 1; __w < __nt; __w *= 2) {",
              "      if (__tid % (2 * __w) == 0 && __tid + __w < __nt) {"]
    for param, op in region.reductions:
        v = param.name
        lines.append(f"        __sh_{v}[__tid] = {_combine(op, param.element, f'__sh_{v}[__tid]', f'__sh_{v}[__tid + __w]')};")
    lines += ["      }", "      __syncthreads();", "    }", "    if (__tid == 0) {"]
    lines += [f"      __part_{p.name}[__bid] = __sh_{p.name}[0];" for p, _ in region.reductions]
    lines += ["    }", "  }"]
    return lines


def _atomic_epilogue(region: Region) -> list[str]:
    return [f"  atomicAdd(__out_{p.name}, __r_{p.name});" for p, _ in region.reductions]


def _final_kernel(region: Region, name: str) -> list[str]:
    params = ["long long __nparts"]
    for param, _ in region.reductions:
        params += [_declare(param, "__init_"), _declare(param, "__part_", pointer=True),
                   _declare(param, "__out_", pointer=True)]
    lines = [f'extern "C" __global__ void {name}({", ".join(params)})', "{",
             "  if (blockIdx.x != 0 || threadIdx.x != 0) return;"]
    for param, op in region.reductions:
        v, t = param.name, param.element
        lines += [f"  {t} __acc_{v} = __init_{v};",
                  f"  for (long long __b = 0; __b < __nparts; __b++) __acc_{v} = {_combine(op, t, f'__acc_{v}', f'__part_{v}[__b]')};",
                  f"  *__out_{v} = __acc_{v};"]
    return lines + ["}"]


def kernel_preamble(types: list[c_ast.Node]) -> str:
    """What every kernel file starts with: headers, the user's own types, the trip helper."""
    lines = ["#include <stdint.h>", "#include <stddef.h>", "#include <math.h>"]
    lines += [to_cuda(node) + ";" for node in types]
    return "\n".join(lines + [TRIP_HELPER])


TRIP_HELPER = """static __device__ __forceinline__ long long __offload_trip(long long start, long long end, long long step)
{
  if (step > 0) return end > start ? (end - start + step - 1) / step : 0;
  return start > end ? (start - end - step - 1) / -step : 0;
}"""
