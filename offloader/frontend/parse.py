"""Parse preprocessed C with pycparser and map positions back to the user's original text."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pycparser import c_ast, c_parser

from ..errors import SourceLocation, UserError
from .sources import SourceFile

_LINE_MARKER = re.compile(r'^#\s*(?:line\s+)?(\d+)\s+"((?:[^"\\]|\\.)*)"')
_COMMENT = re.compile(r"/\*.*?(\*/|$)|//.*$")
_COORD_IN_MESSAGE = re.compile(r"^(?P<file>.*?):(?P<line>\d+)(?::(?P<col>\d+))?:\s*(?P<what>.*)$", re.S)


@dataclass
class TranslationUnit:
    """A parsed file plus what is needed to report positions in the original source."""

    source: SourceFile
    ast: c_ast.FileAST
    preprocessed_lines: dict[tuple[str, int], str] = field(default_factory=dict)

    def location(self, coord, token: str | None = None) -> SourceLocation:
        """Original file:line:col of a pycparser coord.

        Columns in preprocessed text shift after macro expansion, so when `token` is
        given the column is found again by re-scanning the original line for the same
        occurrence of that token (the k-th on the line in both texts).
        """
        file, line, column = coord.file, coord.line, coord.column or 1
        if token and file == self.source.path:
            column = _rescan_column(self.preprocessed_lines.get((file, line), ""),
                                    self.source.line(line), token, column)
        return SourceLocation(file, line, column)


def _token_columns(text: str, token: str) -> list[int]:
    pattern = re.compile(r"(?<![A-Za-z0-9_])" + re.escape(token) + r"(?![A-Za-z0-9_])")
    return [m.start() + 1 for m in pattern.finditer(text)]


def _rescan_column(preprocessed: str, original: str, token: str, column: int) -> int:
    """Column of the same `token` occurrence in the original line.

    When macros add or remove occurrences, occurrences after the change still line up
    counted from the end; a token that only exists inside a macro expansion is placed on
    the macro's name (the first identifier of the original line the expansion lacks).
    """
    original = _COMMENT.sub(lambda m: " " * len(m.group(0)), original)
    seen = _token_columns(preprocessed, token)
    found = _token_columns(original, token)
    before = sum(1 for c in seen if c < column)
    after = len(seen) - before - 1
    if len(seen) == len(found):
        return found[before] if before < len(found) else column
    if 0 <= after < len(found):
        return found[len(found) - 1 - after]
    if before < len(found):
        return found[before]
    expanded = set(re.findall(r"[A-Za-z_]\w*", preprocessed))
    for match in re.finditer(r"[A-Za-z_]\w*", original):
        if match.group(0) not in expanded:
            return match.start() + 1
    return column


def _map_lines(text: str) -> dict[tuple[str, int], str]:
    """(file, original line) -> preprocessed line text, following `# N "file"` markers."""
    mapping: dict[tuple[str, int], str] = {}
    file, line = "", 0
    for raw in text.split("\n"):
        marker = _LINE_MARKER.match(raw)
        if marker:
            line, file = int(marker.group(1)), marker.group(2)
            continue
        if raw.strip():
            mapping.setdefault((file, line), raw)
        line += 1
    return mapping


def parse(source: SourceFile, preprocessed: str) -> TranslationUnit:
    """Parse one preprocessed file; syntax errors become UserError with file:line:col."""
    parser = c_parser.CParser()
    try:
        ast = parser.parse(preprocessed, source.path)
    except c_parser.ParseError as exc:
        raise _syntax_error(str(exc), parser, source) from None
    except (RecursionError, AssertionError, IndexError, TypeError) as exc:
        raise UserError(f"the C parser could not follow this file ({type(exc).__name__})",
                        file=source.path) from None
    return TranslationUnit(source=source, ast=ast, preprocessed_lines=_map_lines(preprocessed))


def _syntax_error(message: str, parser: c_parser.CParser, source: SourceFile) -> UserError:
    match = _COORD_IN_MESSAGE.match(message)
    what = (match["what"] if match else message).strip()
    if what.startswith("before:"):
        what = "syntax error " + what
    if match and match["line"]:
        return UserError(what, SourceLocation(match["file"], int(match["line"]), int(match["col"] or 1)))
    try:  # some pycparser errors carry no position: take the token the parser stopped at
        tok = parser._peek()
    except Exception:  # noqa: BLE001 - best effort only
        tok = None
    if tok is not None:
        return UserError(f"{what} near '{tok.value}'",
                         SourceLocation(tok.filename or source.path, tok.lineno, tok.column or 1))
    return UserError(what or "syntax error", file=source.path)
