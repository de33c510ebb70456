"""The instrumented copy of one user source file: each region's loop wrapped in place in a
dispatch test (abi.py), every other byte unchanged.

The wrapper goes on the loop's own lines, so every line number, and every column outside the
wrapped lines, stays what the user sees in the original: compiler diagnostics, __LINE__ and
debuggers need no `#line` mapping. Braces around the wrapper keep an `else` that follows the
loop bound to the statement it belonged to. `#pragma` lines right before the loop (OpenMP's
`parallel for`, `GCC ivdep`) must stay right before it, so they become `_Pragma("...")`
operators inside the wrapper, followed by the line breaks they had.

pycparser knows where a loop starts, not where it ends, so the scanner's end is checked
against the AST: every identifier and number of the loop must lie inside the span and no
other one of the function may. A loop whose body comes from a macro fails that check and
stays unwrapped, with the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pycparser import c_ast

from ..frontend.walk import walk
from ..codegen.regions import Region
from ..frontend.parse import TranslationUnit
from .abi import CPU_CLOCK, CPU_DONE, CPU_STARTED, DISPATCH, Slot
from .extent import ExtentError, LoopExtents

# literals (kept), comments and line continuations (each becomes a space)
_PRAGMA_NOISE = re.compile(r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'|/\*.*?\*/|//[^\n]*|\\\r?\n', re.S)
_PRAGMA_HEAD = re.compile(r"^\s*#\s*pragma\b")


@dataclass(frozen=True)
class Instrumented:
    text: str                                       # the instrumented copy of the file
    wrapped: dict[int, tuple[Slot, ...]]            # region id -> its dispatch slots
    skipped: dict[int, str]                         # region id -> why its loop stays unwrapped


def dispatch_call(region_id: int, slots: tuple[Slot, ...]) -> str:
    """The C expression that asks the runtime to run region `region_id`."""
    if not slots:
        return f"{DISPATCH}({region_id}, (void **)0, (const long long *)0)"
    addresses = ", ".join(f"(void *)&{s.name}" for s in slots)
    sizes = ", ".join([f"(long long)sizeof({s.name})" if s.sized else "-1" for s in slots]
                      + [f"(long long)sizeof({s.name}{'[0]' * s.depth})" for s in slots])
    return f"{DISPATCH}({region_id}, (void *[]){{{addresses}}}, (const long long []){{{sizes}}})"


def instrument(unit: TranslationUnit, regions: list[tuple[Region, tuple[Slot, ...]]]) -> Instrumented:
    """Wrap the given regions (all of this unit's file) in the file's text."""
    source = unit.source
    extents = LoopExtents(source.text)
    spans, wrapped, skipped = [], {}, {}
    for region, slots in regions:
        location = region.top.loop.location
        try:
            start, end = extents.of_for(location.line, location.column)
            _check_against_ast(unit, region, _position(source.text, start), _position(source.text, end))
        except ExtentError as exc:
            skipped[region.id] = str(exc)
            continue
        pragmas = extents.pragmas_before(start)
        if pragmas:
            start = pragmas[0].start
        if any(start < other_end and other_start < end for other_start, other_end, *_ in spans):
            raise ValueError(f"{location}: regions overlap")          # find_regions never does this
        spans.append((start, end, region.id, slots, pragmas))
    pieces, position = [], 0
    for start, end, region_id, slots, pragmas in sorted(spans):
        pieces += [source.text[position:start], "{ if (!", dispatch_call(region_id, slots), ") { ",
                   f"const double {CPU_STARTED} = {CPU_CLOCK}(); {{ "]
        cursor = start
        for pragma in pragmas:
            pieces += [source.text[cursor:pragma.start], _pragma_operator(source.text[pragma.start:pragma.end])]
            cursor = pragma.end
        pieces += [source.text[cursor:end], f" }} {CPU_DONE}({region_id}, {CPU_STARTED}); }} }}"]
        position = end
        wrapped[region_id] = slots
    pieces.append(source.text[position:])
    registration = _register_file_arrays(unit)
    if registration:          # after the last newline: the file keeps its number of lines
        pieces.append(registration if source.text.endswith("\n") else "\n" + registration)
    return Instrumented("".join(pieces), wrapped, skipped)


def _register_file_arrays(unit: TranslationUnit) -> str:
    """A constructor, appended after the last line (so no line moves), that enters the file's
    own file-scope arrays in the allocation table: a region in a helper function that gets a
    pointer to one can then find its extent."""
    names = [node.name for node in unit.ast.ext
             if isinstance(node, c_ast.Decl) and node.name and node.coord and node.coord.file == unit.source.path
             and isinstance(node.type, c_ast.ArrayDecl) and node.type.dim is not None
             and "extern" not in (node.storage or [])]
    if not names:
        return ""
    calls = " ".join(f"__offload_alloc_register((void *){n}, (long long)sizeof({n}));" for n in names)
    return f"__attribute__((constructor)) static void __offload_register_file_arrays(void) {{ {calls} }}"


def _pragma_operator(directive: str) -> str:
    """`#pragma omp parallel for` as `_Pragma("omp parallel for")`, followed by as many line
    breaks as the directive spanned (continuations, comments)."""
    body = _PRAGMA_NOISE.sub(lambda m: m.group(0) if m.group(0)[0] in "\"'" else " ", directive)
    body = _PRAGMA_HEAD.sub("", body).strip()
    escaped = body.replace("\\", "\\\\").replace('"', '\\"')
    return f'_Pragma("{escaped}")' + "\n" * directive.count("\n")


def _position(text: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of an offset."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _check_against_ast(unit: TranslationUnit, region: Region, start: tuple[int, int], end: tuple[int, int]) -> None:
    loop = region.top.loop.node
    inside = {id(node) for node in walk(loop)}
    for node in walk(region.function.node.body):
        token = _token(node)
        if token is None or node.coord is None or node.coord.file != unit.source.path:
            continue
        where = unit.location(node.coord, token)
        position = (where.line, where.column)
        if id(node) in inside and position >= end:
            raise ExtentError(f"`{token}` at {where} belongs to the loop but lies after the text the "
                              "scanner found: the loop's body comes from a macro")
        if id(node) not in inside and start <= position < end:
            raise ExtentError(f"`{token}` at {where} lies in the loop's text but not in the loop: "
                              "the loop's body comes from a macro")


def _token(node: c_ast.Node) -> str | None:
    """The source token a leaf node was parsed from (identifiers and numbers)."""
    if isinstance(node, c_ast.ID):
        return node.name
    if isinstance(node, c_ast.Constant) and node.type not in ("string", "char"):
        return node.value
    return None

