"""Exact dependence tests with ISL for the accesses of one loop.

Two accesses to the same name conflict across iterations of loop L when some pair of
iterations, with all enclosing loop variables equal and L's variable different, reaches
the same element. Subscripts are affine in loop variables and in names that L does not
change (parameters, left symbolic). Linearised subscripts such as `a[i*n + j]` are split
into digits when the loop bounds prove each lower digit stays within its radix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Optional

import islpy as isl
from pycparser import c_ast

from .facts import fact_of
from .header import Header, bound_polys, exact_bound_polys
from .model import Guard, Loop, MemoryAccess
from .poly import Poly, to_poly

Resolver = Callable[[str, tuple[int, ...], Optional[MemoryAccess]], Optional[Poly]]
# A symbol in a resolved polynomial: "L<id>" for a loop variable, "P_<name>" for a parameter.


def loop_symbol(loop_id: int) -> str:
    return f"L{loop_id}"


@dataclass(frozen=True)
class Subscripts:
    """An access with its index components as affine digit lists (None where unknown)."""

    access: MemoryAccess
    shape: tuple                        # per component: "field:<name>" or "index"
    digits: tuple[Optional[tuple[Poly, ...]], ...]
    polys: tuple[Optional[Poly], ...]   # per component: the subscript as resolved


@dataclass(frozen=True)
class Conflict:
    first: MemoryAccess                 # the access in the earlier iteration
    second: MemoryAccess                # the access in the later iteration
    witness: Optional[tuple[int, int]]  # values of the loop variable in the two iterations
    why: str = ""                       # set when the conflict is assumed, not proven


class DependenceTester:
    """Builds and tests ISL sets for the accesses of one loop L."""

    def __init__(self, loop: Loop, headers: dict[int, Header], resolve: Resolver,
                 guards: Optional[dict[int, tuple[Guard, ...]]] = None):
        self.loop = loop
        self.headers = headers
        self.resolve = resolve
        self.guards = guards or {}          # per loop id: the conditions known around its statement

    # ---- subscripts --------------------------------------------------------------------
    def subscripts(self, accesses: list[MemoryAccess]) -> list[Subscripts]:
        """Resolve and, where needed, delinearise the subscripts of accesses to one name."""
        raw = []
        for access in accesses:
            shape, polys = [], []
            for comp in access.components:
                if comp.field is not None:
                    shape.append(f"field:{comp.field}")
                    polys.append(None)
                else:
                    shape.append("index")
                    polys.append(to_poly(comp.index, lambda n, a=access: self.resolve(n, a.chain, a)))
            raw.append((access, tuple(shape), polys))
        width = max((len(s) for _, s, _ in raw), default=0)
        digit_lists: list[list] = [[None] * len(s) for _, s, _ in raw]
        for position in range(width):
            column = [(k, polys[position]) for k, (_, shape, polys) in enumerate(raw)
                      if position < len(shape) and shape[position] == "index"]
            accesses = [raw[k][0] for k, _ in column]
            split = self._delinearise([p for _, p in column], accesses)
            if any(d is None for d in split):
                split = self._delinearise_syntax(accesses, position) or split
            for (k, _), digits in zip(column, split):
                digit_lists[k][position] = digits
        return [Subscripts(access, shape, tuple(d), tuple(polys))
                for (access, shape, polys), d in zip(raw, digit_lists)]

    def _delinearise(self, polys: list[Optional[Poly]], accesses: list[MemoryAccess]):
        """Per access: a tuple of affine digits for this index position, or None."""
        if all(p is not None and p.is_affine() for p in polys):
            return [(p,) for p in polys]
        groups = [_group_by_stride(p) if p is not None else None for p in polys]
        strides = {s for g in groups if g for s in g} | {()}
        chain = sorted(strides, key=len, reverse=True)
        radices = []
        for bigger, smaller in zip(chain, chain[1:]):
            rest = list(bigger)
            for symbol in smaller:
                if symbol not in rest:
                    return [(p,) if p is not None and p.is_affine() else None for p in polys]
                rest.remove(symbol)
            if len(rest) != 1:
                return [(p,) if p is not None and p.is_affine() else None for p in polys]
            radices.append(Poly.symbol(rest[0]))
        out = []
        for group, access in zip(groups, accesses):
            if group is None:
                out.append(None)
                continue
            digits = tuple(group.get(s, Poly.const(0)) for s in chain)
            ok = all(self._within(access, d, r) for d, r in zip(digits[1:], radices))
            out.append(digits if ok else None)
        return out

    def _delinearise_syntax(self, accesses: list[MemoryAccess], position: int):
        """Digits read off the source form `(x*R1 + y)*R2 + z` when the polynomial split fails,
        e.g. for a radix that is itself a sum (`a[i*(n+2) + j]`). Every access must use the
        same radices, and ISL must prove each lower digit within [0, radix); an affine
        subscript without a radix term (`a[x]` next to `a[(h-1)*w + x]`) has high digits 0."""
        splits = []
        for access in accesses:
            resolve = lambda n, a=access: self.resolve(n, a.chain, a)  # noqa: E731
            split = _split_by_radix(access.components[position].index, resolve)
            if split is None:
                plain = to_poly(access.components[position].index, resolve)
                if plain is None or not plain.is_affine():
                    return None
                split = ([plain], [])
            splits.append(split)
        radices = max((r for _, r in splits), key=len)
        if not radices:
            return None
        for k, (digits, own) in enumerate(splits):
            if not own:
                splits[k] = ([Poly.const(0)] * len(radices) + digits, radices)
        if any(r != radices for _, r in splits):
            return None
        out = []
        for access, (digits, _) in zip(accesses, splits):
            ok = all(self._within(access, d, r) for d, r in zip(digits[1:], radices))
            out.append(tuple(digits) if ok else None)
        return out

    def _within(self, access: MemoryAccess, digit: Poly, radix: Poly) -> bool:
        """Whether 0 <= digit < radix holds at every iteration that executes `access`."""
        names = IslNames()
        dims = [loop_symbol(i) for i in access.chain]
        dim_of = {loop_symbol(i): loop_symbol(i) for i in access.chain}
        constraints = self.domain(access.chain, names, dim_of)
        rename = lambda s: dim_of.get(s) or names.rename(s)  # noqa: E731
        d, r = digit.isl(rename), radix.isl(rename)
        text = f"{names.params_decl()} {{ [{', '.join(dims)}] : {' and '.join(constraints + [f'({d} < 0 or {d} >= {r})'])} }}"
        return isl.Set(text).is_empty()

    # ---- domains -----------------------------------------------------------------------
    def domain(self, chain: tuple[int, ...], names: "IslNames", dim_of: dict[str, str],
                exact_from: Optional[int] = None) -> Optional[list[str]]:
        """ISL constraints for the iterations of the loops in `chain`, with the guards known
        around each loop. Bounds it cannot express are left out, which only adds iterations
        and so stays safe; from position `exact_from` on, every bound must be expressed (the
        constraints then describe exactly the iterations that run), else None."""
        constraints = ["1 = 1"]
        for position, loop_id in enumerate(chain):
            header = self.headers.get(loop_id)
            exact = exact_from is not None and position >= exact_from
            if header is None:
                if exact:
                    return None
                continue
            outer = chain[:position]
            resolve = lambda n, c=outer: self.resolve(n, c, None)  # noqa: E731
            var = dim_of[loop_symbol(loop_id)]
            start = to_poly(header.start, resolve)
            if exact:
                bounds = exact_bound_polys(header, resolve)
                if bounds is None:
                    return None
                lowers, uppers = bounds
            else:
                lowers, uppers = bound_polys(header, resolve)
            rename = lambda s: dim_of.get(s) or names.rename(s)  # noqa: E731
            constraints += [f"{var} >= {p.isl(rename)}" for p in lowers if p.is_affine()]
            constraints += [f"{var} <= {p.isl(rename)}" for p in uppers if p.is_affine()]
            if abs(header.step) > 1 and start is not None and start.is_affine():
                constraints.append(f"exists (e{loop_id}_{var} : {var} = {start.isl(rename)} + "
                                   f"{abs(header.step) if header.step > 0 else header.step}*e{loop_id}_{var}"
                                   f" and e{loop_id}_{var} >= 0)")
            elif abs(header.step) > 1 and exact:
                return None
            for guard in self.guards.get(loop_id, ()):
                fact = fact_of(guard.cond, guard.holds, resolve)
                if fact is not None and all(dim_of.get(s) or s.startswith("P_") for s in _fact_symbols(fact)):
                    constraints.append(fact.isl(rename))
        return constraints

    # ---- the test ----------------------------------------------------------------------
    def conflict(self, one: Subscripts, two: Subscripts) -> Optional[Conflict]:
        """A proven or assumed cross-iteration conflict between two accesses, or None."""
        for whole, other in ((one, two), (two, one)):
            if not whole.access.components and other.access.write:
                return Conflict(one.access, two.access, None,
                                f"{whole.access.text} ({whole.access.location}) may read any element "
                                f"while `{other.access.text}` ({other.access.location}) writes one")
        equalities, differences = [], []
        inner_one = one.access.chain[len(self.loop.chain):]
        inner_two = two.access.chain[len(self.loop.chain):]
        instance_one = {loop_symbol(self.loop.id): "I1_x"} | {loop_symbol(i): f"I1_{k}" for k, i in enumerate(inner_one)}
        instance_two = {loop_symbol(self.loop.id): "I2_x"} | {loop_symbol(i): f"I2_{k}" for k, i in enumerate(inner_two)}
        for position in range(min(len(one.shape), len(two.shape))):
            kind_one, kind_two = one.shape[position], two.shape[position]
            if kind_one.startswith("field:") and kind_two.startswith("field:") and kind_one != kind_two:
                return None           # two different members of a struct never overlap
            if kind_one != kind_two:
                return Conflict(one.access, two.access, None,
                                f"`{one.access.text}` and `{two.access.text}` reach the same memory in different shapes")
            if kind_one != "index":
                continue
            p1, p2 = one.polys[position], two.polys[position]
            if p1 is not None and p2 is not None:
                difference = p1.rename(instance_one) - p2.rename(instance_two)
                if difference.is_affine():
                    # Equal linear offsets; exact even for `i*m + j` when the products cancel.
                    differences.append(difference)
                    continue
            d1, d2 = one.digits[position], two.digits[position]
            if d1 is None or d2 is None or len(d1) != len(d2):
                bad = one.access if d1 is None else two.access
                return Conflict(one.access, two.access, None,
                                f"the subscript of `{bad.text}` ({bad.location}) is not affine in the loop variables, nor splittable into digits the loop bounds keep in range")
            equalities.append((d1, d2))
        outer = self.loop.chain[:-1]
        names = IslNames()
        shared = {loop_symbol(i): names.dim(f"o{k}") for k, i in enumerate(outer)}
        first = dict(shared, **{loop_symbol(self.loop.id): names.dim("x1")})
        second = dict(shared, **{loop_symbol(self.loop.id): names.dim("x2")})
        first.update({loop_symbol(i): names.dim(f"a{k}") for k, i in enumerate(inner_one)})
        second.update({loop_symbol(i): names.dim(f"b{k}") for k, i in enumerate(inner_two)})
        constraints = self.domain(one.access.chain, names, first) + self.domain(two.access.chain, names, second)
        for d1, d2 in equalities:
            for p1, p2 in zip(d1, d2):
                constraints.append(f"{p1.isl(lambda s: first.get(s) or names.rename(s))} = "
                                   f"{p2.isl(lambda s: second.get(s) or names.rename(s))}")
        by_instance = {instance_one[k]: v for k, v in first.items() if k in instance_one}
        by_instance |= {instance_two[k]: v for k, v in second.items() if k in instance_two}
        for difference in differences:
            constraints.append(f"{difference.isl(lambda s: by_instance.get(s) or shared.get(s) or names.rename(s))} = 0")
        dims = list(dict.fromkeys(list(shared.values()) + ["x1", "x2"] + list(first.values()) + list(second.values())))
        body = " and ".join(constraints)
        for order in ("x1 < x2", "x1 > x2"):
            if order == "x1 > x2" and one.access is two.access:
                break
            text = f"{names.params_decl()} {{ [{', '.join(dims)}] : {body} and {order} }}"
            found = isl.Set(text)
            if not found.is_empty():
                witness = _witness(found, dims.index("x1"), dims.index("x2"))
                if order == "x1 < x2":
                    return Conflict(one.access, two.access, witness)
                return Conflict(two.access, one.access, witness[::-1] if witness else None)
        return None


def _witness(found: isl.Set, i1: int, i2: int) -> Optional[tuple[int, int]]:
    try:
        point = found.sample_point()
        return (point.get_coordinate_val(isl.dim_type.set, i1).to_python(),
                point.get_coordinate_val(isl.dim_type.set, i2).to_python())
    except Exception:  # noqa: BLE001 - a witness only decorates the message
        return None


def _signed_terms(node, sign: int = 1) -> list[tuple[int, object]]:
    if isinstance(node, c_ast.BinaryOp) and node.op in ("+", "-"):
        return _signed_terms(node.left, sign) + _signed_terms(node.right, sign if node.op == "+" else -sign)
    return [(sign, node)]


def _split_by_radix(node, resolve) -> Optional[tuple[list[Poly], list[Poly]]]:
    """([high, ..., low] digits, [radices]) of `X*R + Y` (recursively in X), or None."""
    terms = _signed_terms(node)
    radix, high, low = None, Poly.const(0), Poly.const(0)
    high_nodes = []
    for sign, term in terms:
        found = None
        if isinstance(term, c_ast.BinaryOp) and term.op == "*":
            for factor, other in ((term.right, term.left), (term.left, term.right)):
                candidate = to_poly(factor, resolve)
                if candidate is not None and candidate.constant_value() is None and candidate.is_affine() \
                        and not any(sym.startswith("L") for sym in candidate.symbols()) \
                        and (radix is None or candidate == radix):
                    found = (candidate, other)
                    break
        if found is not None:
            radix = found[0]
            high_nodes.append((sign, found[1]))
            continue
        poly = to_poly(term, resolve)
        if poly is None or not poly.is_affine():
            return None
        low = low + poly.scale(sign)
    if radix is None:
        return None
    digits, radices = [], []
    if len(high_nodes) == 1 and high_nodes[0][0] == 1:
        inner = _split_by_radix(high_nodes[0][1], resolve)
        if inner is not None:
            digits, radices = inner
    if not digits:
        for sign, node_ in high_nodes:
            poly = to_poly(node_, resolve)
            if poly is None or not poly.is_affine():
                return None
            high = high + poly.scale(sign)
        digits = [high]
    return digits + [low], radices + [radix]


def _group_by_stride(poly: Poly) -> Optional[dict[tuple[str, ...], Poly]]:
    """Split `i*n + j` into {("P_n",): i, (): j}; None if a term multiplies loop variables."""
    groups: dict[tuple[str, ...], Poly] = {}
    for monomial, coeff in poly.terms:
        loops = [s for s in monomial if s.startswith("L")]
        params = tuple(s for s in monomial if not s.startswith("L"))
        if len(loops) > 1:
            return None
        term = Poly.const(coeff) if not loops else Poly.symbol(loops[0]).scale(coeff)
        groups[params] = groups.get(params, Poly.const(0)) + term
    return groups


class IslNames:
    """ISL-safe names: set dimensions as given, parameters prefixed."""

    def __init__(self):
        self.params: dict[str, str] = {}
        self.dims: list[str] = []

    def dim(self, name: str) -> str:
        self.dims.append(name)
        return name

    def rename(self, symbol: str) -> str:
        if symbol.startswith("P_"):
            # `P_p->n` (a loaded field) is not an ISL name: other characters are spelled out.
            return self.params.setdefault(symbol, "p_" + re.sub(r"\W", lambda m: f"_{ord(m.group()):x}_", symbol[2:]))
        raise KeyError(symbol)

    def params_decl(self) -> str:
        return f"[{', '.join(self.params.values())}] ->"


def _fact_symbols(fact) -> set[str]:
    if fact.poly is not None:
        return fact.poly.symbols()
    return set().union(*(_fact_symbols(p) for p in fact.parts))
