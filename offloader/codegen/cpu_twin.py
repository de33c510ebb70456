"""The CPU twin of a region: the original loop, unchanged, as a C function whose parameters
match the kernel's, so region verification can run both on the same inputs and compare."""

from __future__ import annotations

import copy

from pycparser import c_ast, c_generator

from .regions import Region

_GEN = c_generator.CGenerator()


def twin_name(region: Region) -> str:
    return region.name + "_cpu"


def generate_twin(region: Region, types: list[c_ast.Node]) -> str:
    """C source of `void <region>_cpu(params..., T __init_v, T *__out_v per reduction)`."""
    params = [_GEN.visit(p.decl) for p in region.params]
    for param, _ in region.reductions:
        params += [f"{param.element} __init_{param.name}", f"{param.element} *__out_{param.name}"]
    lines = ["#include <stdint.h>", "#include <stddef.h>", "#include <math.h>"]
    lines += [_GEN.visit(node) + ";" for node in types]
    for func in region.helpers:
        func = copy.deepcopy(func)
        func.decl.storage = [s for s in func.decl.storage if s != "extern"]
        if "static" not in func.decl.storage:
            func.decl.storage = ["static"] + func.decl.storage
        lines.append(_GEN.visit(func))
    lines += [f"void {twin_name(region)}({', '.join(params) or 'void'})", "{"]
    for param, _ in region.reductions:
        lines.append(f"  {param.element} {param.name} = __init_{param.name};")
    for param in region.private + region.loop_vars:
        lines.append(f"  {_GEN.visit(param.decl)};")
    lines += ["  " + line for line in _GEN._generate_stmt(region.nest[0]).rstrip().splitlines()]
    lines += [f"  *__out_{p.name} = {p.name};" for p, _ in region.reductions]
    lines.append("}")
    return "\n".join(lines) + "\n"
