"""Integer polynomials over C variable names, for subscripts and loop bounds.

A subscript is affine when no term multiplies two symbols; `i*n + j` is a polynomial
that delinearisation can still split into affine digits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from pycparser import c_ast

Monomial = tuple[str, ...]          # sorted symbol names, repeated for powers; () is 1


@dataclass(frozen=True)
class Poly:
    terms: tuple[tuple[Monomial, int], ...]   # sorted, no zero coefficients

    @staticmethod
    def of(mapping: dict[Monomial, int]) -> "Poly":
        return Poly(tuple(sorted((m, c) for m, c in mapping.items() if c != 0)))

    @staticmethod
    def const(value: int) -> "Poly":
        return Poly.of({(): value})

    @staticmethod
    def symbol(name: str) -> "Poly":
        return Poly.of({(name,): 1})

    def as_dict(self) -> dict[Monomial, int]:
        return dict(self.terms)

    def __add__(self, other: "Poly") -> "Poly":
        out = self.as_dict()
        for m, c in other.terms:
            out[m] = out.get(m, 0) + c
        return Poly.of(out)

    def scale(self, k: int) -> "Poly":
        return Poly.of({m: c * k for m, c in self.terms})

    def __sub__(self, other: "Poly") -> "Poly":
        return self + other.scale(-1)

    def __mul__(self, other: "Poly") -> "Poly":
        out: dict[Monomial, int] = {}
        for m1, c1 in self.terms:
            for m2, c2 in other.terms:
                m = tuple(sorted(m1 + m2))
                out[m] = out.get(m, 0) + c1 * c2
        return Poly.of(out)

    def symbols(self) -> set[str]:
        return {s for m, _ in self.terms for s in m}

    def constant_value(self) -> Optional[int]:
        if not self.terms:
            return 0
        if len(self.terms) == 1 and self.terms[0][0] == ():
            return self.terms[0][1]
        return None

    def is_affine(self) -> bool:
        return all(len(m) <= 1 for m, _ in self.terms)

    def substitute(self, name: str, value: "Poly") -> "Poly":
        out = Poly.const(0)
        for m, c in self.terms:
            term = Poly.const(c)
            for s in m:
                term = term * (value if s == name else Poly.symbol(s))
            out = out + term
        return out

    def rename(self, mapping: dict[str, str]) -> "Poly":
        return Poly.of({tuple(sorted(mapping.get(s, s) for s in m)): c for m, c in self.terms})

    def isl(self, rename: Callable[[str], str]) -> str:
        """ISL text of an affine polynomial, with symbols renamed."""
        parts = []
        for m, c in self.terms:
            parts.append(str(c) if not m else f"{c}*{rename(m[0])}")
        return " + ".join(parts) if parts else "0"


def parse_int_literal(text: str) -> Optional[int]:
    """Value of a C integer or character literal, or None."""
    t = text.strip().rstrip("uUlL")
    try:
        if t.startswith("'") and t.endswith("'") and len(t) == 3:
            return ord(t[1])
        if t.lower().startswith("0x"):
            return int(t, 16)
        if t.lower().startswith("0b"):
            return int(t, 2)
        if len(t) > 1 and t.startswith("0") and t.isdigit():
            return int(t, 8)
        return int(t)
    except ValueError:
        return None


_INT_TYPES = {"int", "long", "short", "char", "unsigned", "signed", "size_t", "ptrdiff_t",
              "int64_t", "int32_t", "uint64_t", "uint32_t", "intptr_t", "uintptr_t", "ssize_t"}


def to_poly(node: c_ast.Node, resolve: Callable[[str], Optional[Poly]]) -> Optional[Poly]:
    """Polynomial of an integer C expression, or None if it is not one.

    `resolve` maps an identifier to its polynomial (usually itself as a symbol), or None
    when the identifier cannot stand in a polynomial (a float, a changing variable).
    """
    if isinstance(node, c_ast.Constant):
        if node.type in ("int", "char", "long int", "unsigned int", "long long int",
                         "unsigned long int", "unsigned long long int"):
            value = parse_int_literal(node.value)
            return None if value is None else Poly.const(value)
        return None
    if isinstance(node, c_ast.ID):
        return resolve(node.name)
    if isinstance(node, c_ast.UnaryOp):
        if node.op in ("-", "+"):
            inner = to_poly(node.expr, resolve)
            if inner is None:
                return None
            return inner.scale(-1) if node.op == "-" else inner
        return None
    if isinstance(node, c_ast.Cast):
        names = getattr(getattr(node.to_type.type, "type", None), "names", None)
        if names and set(names) <= _INT_TYPES:
            return to_poly(node.expr, resolve)
        return None
    if isinstance(node, c_ast.BinaryOp) and node.op in ("+", "-", "*", "/", "%"):
        left = to_poly(node.left, resolve)
        right = to_poly(node.right, resolve) if left is not None else None
        if left is None or right is None:
            return None
        if node.op == "+":
            return left + right
        if node.op == "-":
            return left - right
        if node.op == "*":
            return left * right
        a, b = left.constant_value(), right.constant_value()
        if a is None or b is None or b == 0:
            return None
        quotient = abs(a) // abs(b) * (1 if (a >= 0) == (b > 0) else -1)   # C truncates
        return Poly.const(quotient if node.op == "/" else a - quotient * b)
    return None
