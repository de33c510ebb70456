"""Recognise canonical `for` headers: one integer variable, an affine-able start and end,
a constant step. Only such loops can be offloaded; others are reported and left alone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from pycparser import c_ast, c_generator

from .poly import to_poly, Poly

_GEN = c_generator.CGenerator()
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "!=": "!="}


@dataclass(frozen=True)
class Header:
    var: str
    start: c_ast.Node
    end: c_ast.Node
    step: int
    inclusive: bool
    declares_var: bool

    def trip(self) -> dict:
        """The JSON `trip` object: var runs from start by step while var < end (or <=, >, >=)."""
        return {"start": _GEN.visit(self.start), "end": _GEN.visit(self.end),
                "end_inclusive": self.inclusive, "step": self.step}


def _init(node: c_ast.Node) -> Optional[tuple[str, c_ast.Node, bool]]:
    if isinstance(node, c_ast.Assignment) and node.op == "=" and isinstance(node.lvalue, c_ast.ID):
        return node.lvalue.name, node.rvalue, False
    if isinstance(node, c_ast.DeclList) and len(node.decls) == 1 and node.decls[0].init is not None:
        decl = node.decls[0]
        if isinstance(decl.type, c_ast.TypeDecl):
            return decl.name, decl.init, True
    return None


def _bound(cond: c_ast.Node, var: str) -> Optional[tuple[str, c_ast.Node]]:
    """(op, end) of `var op end` or `end op' var`."""
    if not (isinstance(cond, c_ast.BinaryOp) and cond.op in _FLIP):
        return None
    if isinstance(cond.left, c_ast.ID) and cond.left.name == var:
        return cond.op, cond.right
    if isinstance(cond.right, c_ast.ID) and cond.right.name == var:
        return _FLIP[cond.op], cond.left
    return None


def _conjunction_as_min(cond: c_ast.Node, var: str) -> c_ast.Node:
    """`i < a && i < b` as `i < (a < b ? a : b)` (and `i > a && i > b` with a max)."""
    if not (isinstance(cond, c_ast.BinaryOp) and cond.op == "&&"):
        return cond
    left = _bound(_conjunction_as_min(cond.left, var), var)
    right = _bound(_conjunction_as_min(cond.right, var), var)
    if left is None or right is None or left[0] != right[0] or left[0] == "!=":
        return cond
    op, (a, b) = left[0], (left[1], right[1])
    pick = "<" if op in ("<", "<=") else ">"
    end = c_ast.TernaryOp(c_ast.BinaryOp(pick, a, b), a, b)
    return c_ast.BinaryOp(op, c_ast.ID(var), end)


def _constant(node: c_ast.Node) -> Optional[int]:
    poly = to_poly(node, lambda name: None)
    return poly.constant_value() if poly is not None else None


def _step(node: c_ast.Node, var: str) -> Optional[int]:
    if isinstance(node, c_ast.UnaryOp) and isinstance(node.expr, c_ast.ID) and node.expr.name == var:
        return {"++": 1, "p++": 1, "--": -1, "p--": -1}.get(node.op)
    if isinstance(node, c_ast.Assignment) and isinstance(node.lvalue, c_ast.ID) and node.lvalue.name == var:
        if node.op in ("+=", "-="):
            value = _constant(node.rvalue)
            return None if value is None else (value if node.op == "+=" else -value)
        rhs = node.rvalue
        if node.op == "=" and isinstance(rhs, c_ast.BinaryOp) and rhs.op in ("+", "-"):
            if isinstance(rhs.left, c_ast.ID) and rhs.left.name == var:
                value = _constant(rhs.right)
                return None if value is None else (value if rhs.op == "+" else -value)
            if rhs.op == "+" and isinstance(rhs.right, c_ast.ID) and rhs.right.name == var:
                return _constant(rhs.left)
    return None


def parse_header(loop: c_ast.For) -> tuple[Optional[Header], Optional[str]]:
    """(header, None) for a canonical loop, else (None, why not)."""
    init = _init(loop.init) if loop.init is not None else None
    if init is None:
        return None, "the loop header does not start by setting one loop variable"
    var, start, declares = init
    cond = _conjunction_as_min(loop.cond, var) if loop.cond is not None else None
    if not (isinstance(cond, c_ast.BinaryOp) and cond.op in _FLIP):
        return None, "the loop condition is not a simple bound on the loop variable"
    if isinstance(cond.left, c_ast.ID) and cond.left.name == var:
        op, end = cond.op, cond.right
    elif isinstance(cond.right, c_ast.ID) and cond.right.name == var:
        op, end = _FLIP[cond.op], cond.left
    else:
        return None, f"the loop condition does not bound `{var}` directly"
    step = _step(loop.next, var) if loop.next is not None else None
    if not step:
        return None, f"`{var}` does not advance by a constant step"
    if op == "!=" and abs(step) == 1:
        op = "<" if step > 0 else ">"
    if (op in ("<", "<=") and step < 0) or (op in (">", ">=") and step > 0) or op == "!=":
        return None, f"the bound on `{var}` does not match its step direction"
    return Header(var, start, end, step, op in ("<=", ">="), declares), None


def _parts(node: c_ast.Node, want: str) -> list[c_ast.Node]:
    """The operands of a `min`/`max` written as `a < b ? a : b` (nested too), else [node]."""
    if isinstance(node, c_ast.TernaryOp) and isinstance(node.cond, c_ast.BinaryOp) \
            and node.cond.op in ("<", "<=", ">", ">="):
        a, b = node.cond.left, node.cond.right
        picks_smaller = (node.cond.op in ("<", "<=")) == (_GEN.visit(node.iftrue) == _GEN.visit(a))
        if {_GEN.visit(node.iftrue), _GEN.visit(node.iffalse)} == {_GEN.visit(a), _GEN.visit(b)} \
                and (want == "min") == picks_smaller:
            return _parts(a, want) + _parts(b, want)
    return [node]


def bound_polys(header: Header, resolve) -> tuple[list[Poly], list[Poly]]:
    """Inclusive lower and upper bounds as polynomials. A `min` in an upper bound (a `max`
    in a lower one) gives one bound per operand; parts that are not polynomials are left
    out, which only widens the range."""
    start_side, end_side = ("max", "min") if header.step > 0 else ("min", "max")
    starts = [p for p in (to_poly(n, resolve) for n in _parts(header.start, start_side)) if p is not None]
    ends = []
    for node in _parts(header.end, end_side):
        end = to_poly(node, resolve)
        if end is not None and not header.inclusive:
            end = end - Poly.const(1) if header.step > 0 else end + Poly.const(1)
        if end is not None:
            ends.append(end)
    return (starts, ends) if header.step > 0 else (ends, starts)


def exact_bound_polys(header: Header, resolve) -> Optional[tuple[list[Poly], list[Poly]]]:
    """bound_polys when every part of both bounds is an affine polynomial (the bounds then
    describe exactly the values the loop runs through), else None."""
    start_side, end_side = ("max", "min") if header.step > 0 else ("min", "max")
    parts = _parts(header.start, start_side) + _parts(header.end, end_side)
    if any((p := to_poly(n, resolve)) is None or not p.is_affine() for n in parts):
        return None
    return bound_polys(header, resolve)
