"""Recognise reduction statements: `s += e`, `s = s * e`, `s = fmax(s, e)`, `s = s > e ? s : e`,
`if (e > s) s = e;` and their mirror forms. A reduction is safe to run in parallel when every
access to `s` in the loop is such a statement with one operator."""

from __future__ import annotations

from typing import Optional

from pycparser import c_ast, c_generator

_GEN = c_generator.CGenerator()
_MAX_FUNCS = {"fmax", "fmaxf", "fmaxl", "max", "MAX"}
_MIN_FUNCS = {"fmin", "fminf", "fminl", "min", "MIN"}
_GREATER = {">", ">="}
_LESS = {"<", "<="}


def same_expr(a: c_ast.Node, b: c_ast.Node) -> bool:
    return _GEN.visit(a) == _GEN.visit(b)


def _is_var(node: c_ast.Node, name: str) -> bool:
    return isinstance(node, c_ast.ID) and node.name == name


def mentions(node: c_ast.Node, name: str) -> bool:
    if _is_var(node, name):
        return True
    return any(mentions(child, name) for _, child in node.children())


def _binary_update(lhs: str, rhs: c_ast.Node) -> Optional[str]:
    """Operator of `s = s op e` / `s = e op s` (op commutative), `s = s - e`."""
    if not isinstance(rhs, c_ast.BinaryOp):
        return None
    if rhs.op in ("+", "*") and _is_var(rhs.left, lhs) and not mentions(rhs.right, lhs):
        return rhs.op
    if rhs.op in ("+", "*") and _is_var(rhs.right, lhs) and not mentions(rhs.left, lhs):
        return rhs.op
    if rhs.op == "-" and _is_var(rhs.left, lhs) and not mentions(rhs.right, lhs):
        return "+"
    return None


def _minmax_call(lhs: str, rhs: c_ast.Node) -> Optional[str]:
    if not (isinstance(rhs, c_ast.FuncCall) and isinstance(rhs.name, c_ast.ID) and rhs.args
            and len(rhs.args.exprs) == 2):
        return None
    a, b = rhs.args.exprs
    if not ((_is_var(a, lhs) and not mentions(b, lhs)) or (_is_var(b, lhs) and not mentions(a, lhs))):
        return None
    if rhs.name.name in _MAX_FUNCS:
        return "max"
    if rhs.name.name in _MIN_FUNCS:
        return "min"
    return None


def _compare_pick(lhs: str, cond: c_ast.Node, picked: c_ast.Node, other: Optional[c_ast.Node]) -> Optional[str]:
    """`cond ? picked : other` (or `if (cond) s = picked`, other=s) as max or min of s and e."""
    if not (isinstance(cond, c_ast.BinaryOp) and cond.op in _GREATER | _LESS):
        return None
    left, right = cond.left, cond.right
    if _is_var(left, lhs) and not mentions(right, lhs):
        s_on_left, e = True, right
    elif _is_var(right, lhs) and not mentions(left, lhs):
        s_on_left, e = False, left
    else:
        return None
    s_bigger = (cond.op in _GREATER) == s_on_left     # cond true means s > e
    if other is not None and not (_is_var(other, lhs) or same_expr(other, e)):
        return None
    if _is_var(picked, lhs) and (other is None or same_expr(other, e)):
        return "max" if s_bigger else "min"
    if same_expr(picked, e) and (other is None or _is_var(other, lhs)):
        return "min" if s_bigger else "max"
    return None


def match_reduction(stmt: c_ast.Node) -> Optional[tuple[str, str]]:
    """(scalar, op) when `stmt` is a reduction update of a plain scalar, else None."""
    if isinstance(stmt, c_ast.UnaryOp) and stmt.op in ("++", "--", "p++", "p--") \
            and isinstance(stmt.expr, c_ast.ID):
        return stmt.expr.name, "+"
    if isinstance(stmt, c_ast.Assignment) and isinstance(stmt.lvalue, c_ast.ID):
        name, rhs = stmt.lvalue.name, stmt.rvalue
        if stmt.op in ("+=", "-="):
            return (name, "+") if not mentions(rhs, name) else None
        if stmt.op == "*=":
            return (name, "*") if not mentions(rhs, name) else None
        if stmt.op != "=":
            return None
        op = _binary_update(name, rhs) or _minmax_call(name, rhs)
        if op is None and isinstance(rhs, c_ast.TernaryOp):
            op = _compare_pick(name, rhs.cond, rhs.iftrue, rhs.iffalse)
        return (name, op) if op else None
    if isinstance(stmt, c_ast.If) and stmt.iffalse is None:
        body = stmt.iftrue
        if isinstance(body, c_ast.Compound) and body.block_items and len(body.block_items) == 1:
            body = body.block_items[0]
        if isinstance(body, c_ast.Assignment) and body.op == "=" and isinstance(body.lvalue, c_ast.ID):
            name = body.lvalue.name
            if mentions(body.rvalue, name):
                return None
            op = _compare_pick(name, stmt.cond, body.rvalue, None)
            return (name, op) if op else None
    return None
