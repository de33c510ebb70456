"""Private scratch arrays: a local array that every iteration of a loop writes before it reads
(PolyBench's doitgen `sum`, a per-row coefficient buffer), and that nothing reads after the
loop, carries nothing from one iteration to the next; each iteration may have its own copy.
If it is read after the loop, it is `lastprivate` when every element any iteration writes is
written by every iteration (so the last one leaves what the loop would have left).

The test is exact, with ISL: every element any read of the array can touch in iteration x is
written earlier in the same iteration x by a write that certainly runs (no `if`, `continue`
or `break` on its way, loop bounds known exactly). Reads are over-approximated (that only
asks for more coverage), covering writes never are.
"""

from __future__ import annotations

from typing import Optional

import islpy as isl
from pycparser import c_ast

from ..frontend.walk import walk
from .dependence import DependenceTester, IslNames, loop_symbol
from .footprint import runs_every_iteration
from .model import FunctionModel, Loop, MemoryAccess, Transfer
from .poly import Poly, to_poly


def private_arrays(model: FunctionModel, loop: Loop, events, accesses: list[MemoryAccess],
                   tester: DependenceTester, address_taken: set[str]) -> tuple[set[str], set[str]]:
    """The local arrays `loop` may privatise (its accesses to them carry nothing), and those
    of them whose last iteration's values must be kept (lastprivate)."""
    loops = {lp.id: lp for lp in model.loops}
    skipped = {e.target for e in events if isinstance(e, Transfer) and e.kind in ("continue", "break")}
    found, last = set(), set()
    for name in sorted({a.base for a in accesses if a.write and a.base is not None}):
        variable = model.variables.get(name)
        if variable is None or variable.ctype.kind != "array" or variable.storage != "local" \
                or name in loop.declared_inside or name in model.escaped or name in address_taken:
            continue
        depth = _depth(variable.decl.type) if isinstance(variable.decl, c_ast.Decl) else 0
        group = [a for a in accesses if a.base == name]
        if any(len(a.components) != depth or any(c.index is None for c in a.components) for a in group):
            continue
        if not _only_indexed(model.node.body, name, depth):
            continue
        writes = [w for w in group if w.write and _certain(w, loop, loops, skipped)]
        if not writes or not all(_covered(tester, loop, read, writes) for read in group if read.read):
            continue
        if _read_outside(model, loop, name):
            if not _same_elements(tester, loop, [w for w in group if w.write], writes):
                continue
            last.add(name)
        found.add(name)
    return found, last


def _depth(node: c_ast.Node) -> int:
    depth = 0
    while isinstance(node, c_ast.ArrayDecl):
        depth += 1
        node = node.type
    return depth


def _only_indexed(body: c_ast.Node, name: str, depth: int) -> bool:
    """Every use of the array names one element (`a[i][j]` for a 2-D array), never its
    address (`&a[i]`, `a` passed to a function or stored in a pointer); sizeof is fine."""
    addressed = {id(n.expr) for n in walk(body) if isinstance(n, c_ast.UnaryOp) and n.op == "&"}
    measured = {id(m) for n in walk(body) if isinstance(n, c_ast.UnaryOp) and n.op == "sizeof"
                for m in walk(n.expr)}
    fine = set(measured)
    for node in walk(body):
        if isinstance(node, c_ast.ArrayRef) and id(node) not in addressed:
            root, levels = node, 0
            while isinstance(root, c_ast.ArrayRef):
                root, levels = root.name, levels + 1
            if isinstance(root, c_ast.ID) and root.name == name and levels == depth:
                fine.add(id(root))
    return all(id(node) in fine for node in walk(body) if isinstance(node, c_ast.ID) and node.name == name)


def _read_outside(model: FunctionModel, loop: Loop, name: str) -> bool:
    """Whether the array's contents may be read after the loop (or by a later iteration of a
    loop around it)."""
    last = max(e.seq for e in model.events_in(loop))
    around = set(loop.chain[:-1])
    return any(isinstance(e, MemoryAccess) and e.base == name and e.read and loop.id not in e.chain
               and (e.seq > last or around & set(e.chain)) for e in model.events)


def _certain(write: MemoryAccess, loop: Loop, loops: dict[int, Loop], skipped: set) -> bool:
    """Whether the write runs in every iteration of every loop from `loop` down to it."""
    inside = write.chain[len(loop.chain) - 1:]
    if any(i in skipped for i in inside):
        return False
    for parent, child in zip(inside, inside[1:]):
        if not runs_every_iteration(loops[child].path, True, loops[parent]):
            return False
    return runs_every_iteration(write.path, write.unconditional, loops[inside[-1]])


def _covered(tester: DependenceTester, loop: Loop, read: MemoryAccess, writes: list[MemoryAccess]) -> bool:
    """Whether every element `read` touches in an iteration is written before it in that
    iteration by one of `writes`."""
    names = IslNames()
    shared = {loop_symbol(i): f"o{k}" for k, i in enumerate(loop.chain[:-1])} | {loop_symbol(loop.id): "x"}
    read_dims = _inner_dims(read, loop, "r")
    read_of = shared | read_dims
    read_domain = tester.domain(read.chain, names, read_of)
    read_subs = _affine_subscripts(tester, read)
    if read_subs is None:
        return False
    covers = []
    for write in writes:
        write_dims = _inner_dims(write, loop, "w")
        write_of = shared | write_dims
        domain = tester.domain(write.chain, names, write_of, exact_from=len(loop.chain))
        write_subs = _affine_subscripts(tester, write) if domain is not None else None
        before = _before(tester, loop, write, read) if write_subs is not None else None
        if before is None:
            continue
        same = [f"{w.isl(lambda s: write_of.get(s) or names.rename(s))} = "
                f"{r.isl(lambda s: read_of.get(s) or names.rename(s))}" for w, r in zip(write_subs, read_subs)]
        body = " and ".join(domain + [before] + same)
        covers.append(f"(exists ({', '.join(write_dims.values())} : {body}))" if write_dims else f"({body})")
    if not covers:
        return False
    dims = ", ".join(list(shared.values()) + list(read_dims.values()))
    params = names.params_decl()
    reads = isl.Set(f"{params} {{ [{dims}] : {' and '.join(read_domain)} }}")
    covered = isl.Set(f"{params} {{ [{dims}] : {' or '.join(covers)} }}")
    return reads.subtract(covered).is_empty()


def _same_elements(tester: DependenceTester, loop: Loop, every: list[MemoryAccess],
                   certain: list[MemoryAccess]) -> bool:
    """Whether each element any write may touch in an iteration x1 is certainly written in
    every iteration x2 (then the last iteration alone leaves what the loop leaves)."""
    names = IslNames()
    outer = {loop_symbol(i): f"o{k}" for k, i in enumerate(loop.chain[:-1])}
    first, second = outer | {loop_symbol(loop.id): "x1"}, outer | {loop_symbol(loop.id): "x2"}
    domain = (tester.domain(loop.chain, names, first) or []) + (tester.domain(loop.chain, names, second) or [])
    dims = [f"e{k}" for k in range(len(every[0].components))]

    def elements(writes, of, exact):
        parts = []
        for write in writes:
            inner = _inner_dims(write, loop, "w")
            where = tester.domain(write.chain, names, of | inner, exact_from=len(loop.chain) if exact else None)
            subs = _affine_subscripts(tester, write)
            if where is None or subs is None:
                return None if exact else "1 = 1"          # a write the test cannot bound: anywhere
            same = [f"{d} = {p.isl(lambda s: (of | inner).get(s) or names.rename(s))}" for d, p in zip(dims, subs)]
            body = " and ".join(where + same)
            parts.append(f"(exists ({', '.join(inner.values())} : {body}))" if inner else f"({body})")
        return " or ".join(parts)

    touched, written = elements(every, first, False), elements(certain, second, True)
    if written is None:
        return False
    space = ", ".join(list(outer.values()) + ["x1", "x2"] + dims)
    params = names.params_decl()
    may = isl.Set(f"{params} {{ [{space}] : {' and '.join(domain)} and ({touched}) }}")
    sure = isl.Set(f"{params} {{ [{space}] : {written} }}")
    return may.subtract(sure).is_empty()


def _inner_dims(access: MemoryAccess, loop: Loop, prefix: str) -> dict[str, str]:
    return {loop_symbol(i): f"{prefix}{k}" for k, i in enumerate(access.chain[len(loop.chain):])}


def _affine_subscripts(tester: DependenceTester, access: MemoryAccess) -> Optional[list[Poly]]:
    polys = [to_poly(c.index, lambda n: tester.resolve(n, access.chain, access)) for c in access.components]
    return polys if all(p is not None and p.is_affine() for p in polys) else None


def _before(tester: DependenceTester, loop: Loop, write: MemoryAccess, read: MemoryAccess) -> Optional[str]:
    """ISL text of "this instance of `write` runs before this instance of `read`" within one
    iteration of `loop` (dimensions w<k> and r<k> of the loops inside it), or None if never."""
    depth = len(loop.chain)
    common = 0
    for a, b in zip(write.chain[depth:], read.chain[depth:]):
        if a != b:
            break
        common += 1
    clauses = []
    for k in range(common):
        step = tester.headers[write.chain[depth + k]].step
        earlier = f"w{k} < r{k}" if step > 0 else f"w{k} > r{k}"
        clauses.append(" and ".join([f"w{j} = r{j}" for j in range(k)] + [earlier]))
    if write.seq < read.seq:
        clauses.append(" and ".join([f"w{j} = r{j}" for j in range(common)]) or "1 = 1")
    return "(" + " or ".join(f"({c})" for c in clauses) + ")" if clauses else None
