"""Why a loop is sequential, one reason per blocking name, each with a witness: two
iterations and the two accesses that tie them (from ISL where the dependence is proven,
else the loop's first two iterations, as what may happen)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from pycparser import c_generator

from ..errors import SourceLocation
from .header import Header
from .poly import to_poly

Iteration = Union[int, str]


@dataclass(frozen=True)
class Blocker:
    text: str                               # the reason, naming the accesses and iterations
    var: Optional[str]                      # what is carried
    kind: str                               # flow, anti, output, or assumed (not proven)
    source: SourceLocation                  # the access of the earlier iteration
    sink: SourceLocation                    # the access of the later one
    iterations: tuple[Iteration, Iteration]
    why: str = ""                           # for an assumed dependence: what the analysis cannot tell
    hint: str = ""                          # a change to the program that would unblock the loop

    def to_json(self) -> dict:
        entry = {"var": self.var, "kind": self.kind, "source": str(self.source), "sink": str(self.sink),
                 "iterations": list(self.iterations)}
        first, second = self.iterations
        if isinstance(first, int) and isinstance(second, int):
            entry["distance"] = second - first
        if self.why:
            entry["why"] = self.why
        return entry


def first_two(header: Header) -> tuple[Iteration, Iteration]:
    """The loop variable's values in the first two iterations (as text when symbolic)."""
    start = to_poly(header.start, lambda name: None)
    value = start.constant_value() if start is not None else None
    if value is not None:
        return value, value + header.step
    text = c_generator.CGenerator().visit(header.start)
    return text, f"{text} {'+' if header.step > 0 else '-'} {abs(header.step)}"


def iterations_text(var: str, pair: tuple[Iteration, Iteration]) -> tuple[str, str]:
    return f"{var}={pair[0]}", f"{var}={pair[1]}"
