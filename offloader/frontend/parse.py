"""Parse preprocessed C with pycparser and map positions back to the user's original text."""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass, field
from typing import Optional

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

    def text_at(self, location: SourceLocation, name: Optional[str]) -> Optional[str]:
        """The user's own spelling of the access to `name` at `location`, if it is there."""
        if location.file != self.source.path or not name:
            return None
        text = access_text(self.source.line(location.line), location.column)
        return text if text and re.match(re.escape(name) + r"\b", text) else None


def access_text(line: str, column: int) -> Optional[str]:
    """The access expression that starts at `column` of an original line, as the user wrote
    it: a name followed by any `[...]`, `.field` and `->field` parts. None if there is none."""
    match = re.compile(r"[A-Za-z_]\w*").match(line, column - 1)
    if not match:
        return None
    end = match.end()
    while end < len(line):
        rest = line[end:]
        stripped = rest.lstrip()
        skip = len(rest) - len(stripped)
        if stripped.startswith("["):
            depth, k = 0, end + skip
            while k < len(line):
                depth += {"[": 1, "]": -1}.get(line[k], 0)
                k += 1
                if depth == 0:
                    break
            if depth != 0:
                return None
            end = k
        elif stripped.startswith(("->", ".")) and not stripped.startswith("..."):
            field = re.compile(r"(->|\.)\s*[A-Za-z_]\w*").match(line, end + skip)
            if not field:
                break
            end = field.end()
        else:
            break
    return line[column - 1:end]


_TOKEN = re.compile(r"[A-Za-z_]\w*|\d[\w.]*|\S")


def _tokens(text: str) -> list[tuple[str, int]]:
    return [(m.group(0), m.start() + 1) for m in _TOKEN.finditer(text)]


@functools.lru_cache(maxsize=4096)
def _column_map(preprocessed: str, original: str) -> dict[tuple[str, int], int]:
    """(token, preprocessed column) -> original column, for every token of one line.

    The two lines are aligned token by token (difflib); a token inside a macro expansion
    has no counterpart and is placed on the macro's name in the original.
    """
    original = _COMMENT.sub(lambda m: " " * len(m.group(0)), original)
    pp, orig = _tokens(preprocessed), _tokens(original)
    mapping: dict[tuple[str, int], int] = {}
    if not orig:
        return mapping
    matcher = difflib.SequenceMatcher(None, [t for t, _ in pp], [t for t, _ in orig], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        for index in range(i1, i2):
            if tag == "equal":
                mapping[pp[index]] = orig[j1 + index - i1][1]
            elif j1 < len(orig):
                mapping[pp[index]] = orig[j1][1]
    return mapping


def _rescan_column(preprocessed: str, original: str, token: str, column: int) -> int:
    """Column in the original line of `token` found at `column` of the preprocessed line."""
    if preprocessed == original:
        return column
    return _column_map(preprocessed, original).get((token, column), column)


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
