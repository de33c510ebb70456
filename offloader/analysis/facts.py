"""Conditions known to hold around a loop (`if (w >= 3)`, `if (n <= 0) return;`) as ISL
constraints for the dependence test.

A guard joins the test only if it says something exact about integers: comparisons of affine
expressions in signed integer variables that nothing changes while the guarded code runs,
combined with `&&`, `||` and `!`. A part that cannot be expressed is dropped where dropping it
only weakens what is known (a conjunct), and makes the whole unknown otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from pycparser import c_ast

from ..frontend.walk import walk
from .poly import Poly, to_poly

Resolve = Callable[[str], Optional[Poly]]
_SIDE_EFFECTS = (c_ast.Assignment, c_ast.FuncCall)


@dataclass(frozen=True)
class Fact:
    """op: `>=` or `=` (poly op 0), `and`, `or`."""

    op: str
    poly: Optional[Poly] = None
    parts: tuple["Fact", ...] = ()

    def isl(self, rename: Callable[[str], str]) -> str:
        if self.op in (">=", "="):
            return f"{self.poly.isl(rename)} {self.op} 0"
        joined = f" {self.op} ".join(f"({part.isl(rename)})" for part in self.parts)
        return f"({joined})"


def has_side_effects(node: c_ast.Node) -> bool:
    return any(isinstance(n, _SIDE_EFFECTS) or (isinstance(n, c_ast.UnaryOp) and n.op in ("++", "--", "p++", "p--"))
               for n in walk(node))


def fact_of(cond: c_ast.Node, holds: bool, resolve: Resolve) -> Optional[Fact]:
    """What `cond` being true (holds) or false says, or None if nothing usable."""
    if has_side_effects(cond):
        return None
    return _fact(cond, holds, resolve)


def _fact(node: c_ast.Node, holds: bool, resolve: Resolve) -> Optional[Fact]:
    if isinstance(node, c_ast.UnaryOp) and node.op == "!":
        return _fact(node.expr, not holds, resolve)
    if isinstance(node, c_ast.BinaryOp) and node.op in ("&&", "||"):
        conjunction = (node.op == "&&") == holds
        parts = [_fact(node.left, holds, resolve), _fact(node.right, holds, resolve)]
        if conjunction:
            known = tuple(p for p in parts if p is not None)
            return None if not known else known[0] if len(known) == 1 else Fact("and", parts=known)
        return None if None in parts else Fact("or", parts=tuple(parts))
    if isinstance(node, c_ast.BinaryOp) and node.op in ("<", "<=", ">", ">=", "==", "!="):
        left, right = _affine(node.left, resolve), _affine(node.right, resolve)
        if left is None or right is None:
            return None
        return _compare(left - right, node.op, holds)
    value = _affine(node, resolve)
    if value is None:
        return None
    return _compare(value, "!=", holds)             # `if (n)`: n != 0


_NEGATE = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "==": "!=", "!=": "=="}


def _compare(difference: Poly, op: str, holds: bool) -> Fact:
    """The fact `difference op 0` (or its negation), over the integers."""
    if not holds:
        op = _NEGATE[op]
    one = Poly.const(1)
    if op == ">=":
        return Fact(">=", difference)
    if op == ">":
        return Fact(">=", difference - one)
    if op == "<=":
        return Fact(">=", difference.scale(-1))
    if op == "<":
        return Fact(">=", difference.scale(-1) - one)
    if op == "==":
        return Fact("=", difference)
    return Fact("or", parts=(Fact(">=", difference - one), Fact(">=", difference.scale(-1) - one)))


def _affine(node: c_ast.Node, resolve: Resolve) -> Optional[Poly]:
    poly = to_poly(node, resolve)
    return poly if poly is not None and poly.is_affine() else None
