"""Every node below a pycparser node, itself included (order unspecified)."""

from __future__ import annotations

from collections.abc import Iterator

from pycparser import c_ast


def walk(node: c_ast.Node) -> Iterator[c_ast.Node]:
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(child for _, child in current.children())
