"""Where a `for` statement begins and ends in the user's ORIGINAL text.

The host program keeps the user's source byte for byte and only wraps each region's loop in
a dispatch test, so it needs the loop's exact text span. pycparser gives start positions only,
and those of preprocessed text; this scanner re-reads the original: it tokenises (skipping
comments, string and character literals and preprocessor lines), matches the header's
parentheses and then walks the body statement by C's statement grammar.

A loop whose `for` keyword is not literally at the given position (one a macro generates),
or whose text is cut by conditional preprocessor directives, raises ExtentError: the region
cannot be wrapped textually and must stay on the CPU.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_IDENT = re.compile(r"[A-Za-z_]\w*")
_NUMBER = re.compile(r"\.?\d(?:[eEpP][+-]|[\w.])*")
_DIGRAPHS = {"<%": "{", "%>": "}", "<:": "[", ":>": "]"}
_CONDITIONALS_OPEN = {"if", "ifdef", "ifndef"}
_CONDITIONALS_MID = {"else", "elif", "elifdef", "elifndef"}
_LOOPS = {"for", "while", "switch"}
_CLOSERS = {")": "(", "]": "[", "}": "{"}


class ExtentError(Exception):
    """The statement's text span cannot be found; the message says why."""


@dataclass(frozen=True)
class Token:
    text: str           # the token, digraphs normalised; literals as their first character
    start: int
    end: int


@dataclass(frozen=True)
class Directive:
    name: str           # `if`, `endif`, `pragma`, ... ("" for a null directive)
    start: int
    end: int            # the newline that ends it (continuations included) is not part of it


def tokenize(text: str) -> tuple[list[Token], list[Directive]]:
    """The tokens that matter for statement structure, and the preprocessor directives."""
    tokens: list[Token] = []
    directives: list[Directive] = []
    k, n, line_start = 0, len(text), True
    while k < n:
        c = text[k]
        if c == "\n":
            k, line_start = k + 1, True
        elif c in " \t\r\f\v":
            k += 1
        elif c == "\\" and text.startswith(("\n", "\r\n"), k + 1):
            k += 2 if text[k + 1] == "\n" else 3
        elif text.startswith("/*", k):
            k = _comment_end(text, k)
        elif text.startswith("//", k):
            k = _line_end(text, k)
        elif c == "#" and line_start:
            end = _directive_end(text, k)
            name = _IDENT.match(text, _skip_blanks(text, k + 1))
            directives.append(Directive(name.group(0) if name else "", k, end))
            k = end
        else:
            line_start = False
            if c in "\"'":
                end = _literal_end(text, k, c)
                tokens.append(Token(c, k, end))
                k = end
                continue
            match = _IDENT.match(text, k) or _NUMBER.match(text, k)
            if match:
                tokens.append(Token(match.group(0), k, match.end()))
                k = match.end()
                continue
            pair = text[k:k + 2]
            if pair in _DIGRAPHS:
                tokens.append(Token(_DIGRAPHS[pair], k, k + 2))
                k += 2
            elif pair in ("::", "->"):
                tokens.append(Token(pair, k, k + 2))
                k += 2
            else:
                tokens.append(Token(c, k, k + 1))
                k += 1
    return tokens, directives


def _comment_end(text: str, k: int) -> int:
    end = text.find("*/", k + 2)
    return len(text) if end < 0 else end + 2


def _line_end(text: str, k: int) -> int:
    """End of a line that a backslash before the newline continues."""
    while True:
        end = text.find("\n", k)
        if end < 0:
            return len(text)
        if text[k:end].rstrip("\r").endswith("\\"):
            k = end + 1
            continue
        return end


def _directive_end(text: str, k: int) -> int:
    """End of a preprocessor line: continuations followed, a /* comment may span lines."""
    while True:
        newline = _line_end(text, k)
        comment = text.find("/*", k, newline)
        line_comment = text.find("//", k, newline)
        if comment < 0 or (0 <= line_comment < comment):
            return newline
        k = _comment_end(text, comment)


def _skip_blanks(text: str, k: int) -> int:
    while k < len(text) and text[k] in " \t":
        k += 1
    return k


def _literal_end(text: str, k: int, quote: str) -> int:
    """End of a string or character literal; an unterminated one (an apostrophe in an
    `#if 0` block, which compilers accept) ends with its line."""
    j = k + 1
    while j < len(text) and text[j] != "\n":
        if text[j] == "\\":
            j += 2
        elif text[j] == quote:
            return j + 1
        else:
            j += 1
    return min(j, len(text))


def offset_of(text: str, line: int, column: int) -> int:
    """Offset of a 1-based (line, column) position, columns counted in characters."""
    start = 0
    for _ in range(line - 1):
        start = text.find("\n", start) + 1
        if start == 0:
            raise ExtentError(f"line {line} is past the end of the file")
    end = text.find("\n", start)
    if column - 1 > (len(text) if end < 0 else end) - start:
        raise ExtentError(f"column {column} is past the end of line {line}")
    return start + column - 1


class LoopExtents:
    """One file, tokenised once, asked for the span of any of its `for` statements."""

    def __init__(self, text: str):
        self.text = text
        self.tokens, self.directives = tokenize(text)
        self._index = {token.start: k for k, token in enumerate(self.tokens)}

    def of_for(self, line: int, column: int) -> tuple[int, int]:
        """(start, end) offsets of the `for` statement whose keyword is at (line, column)."""
        start = offset_of(self.text, line, column)
        index = self._index.get(start)
        if index is None or self.tokens[index].text != "for":
            found = _IDENT.match(self.text, start)
            what = f"`{found.group(0)}`" if found else "no keyword"
            raise ExtentError(f"{line}:{column} holds {what}, not a `for` keyword: the loop comes "
                              "from a macro expansion, so its text cannot be wrapped")
        end = self.tokens[_Statements(self.tokens).statement(index) - 1].end
        _check_directives(self.directives, start, end)
        return start, end

    def pragmas_before(self, start: int) -> list[Directive]:
        """The `#pragma` lines right before the token at `start` (comments and blank lines
        may come between), in source order: they belong to that statement (`omp parallel
        for`, `GCC ivdep`), so whatever wraps it must carry them along."""
        index = self._index[start]
        floor = self.tokens[index - 1].end if index > 0 else 0
        attached: list[Directive] = []
        for directive in reversed(self.directives):
            if directive.start >= start:
                continue
            if directive.start < floor or directive.name != "pragma":
                break
            attached.insert(0, directive)
            start = directive.start
        return attached


def _check_directives(directives: list[Directive], start: int, end: int) -> None:
    """Conditional directives inside the loop must open and close there: otherwise the
    statement the scanner found may not be the one the compiler sees."""
    depth = 0
    for directive in directives:
        if not start <= directive.start < end:
            continue
        if directive.name in _CONDITIONALS_OPEN:
            depth += 1
        elif directive.name == "endif":
            depth -= 1
        elif directive.name in _CONDITIONALS_MID and depth == 0:
            depth = -1
        if depth < 0:
            break
    if depth != 0:
        raise ExtentError("a conditional preprocessor directive (#if/#else/#endif) crosses the "
                          "loop's text, so its extent depends on macros")


class _Statements:
    """Recursive descent over tokens by C's statement grammar; each method returns the index
    of the first token after what it matched."""

    def __init__(self, tokens: list[Token]):
        self.tokens = tokens

    def text(self, k: int) -> str:
        if k >= len(self.tokens):
            raise ExtentError("the file ends inside the loop")
        return self.tokens[k].text

    def expect(self, k: int, what: str) -> int:
        if self.text(k) != what:
            raise ExtentError(f"expected `{what}` at offset {self.tokens[k].start}, found `{self.text(k)}`")
        return k + 1

    def balanced(self, k: int) -> int:
        """Skip from an opening bracket at k past its partner."""
        stack = []
        while True:
            token = self.text(k)
            if token in "([{":
                stack.append(token)
            elif token in _CLOSERS:
                if not stack or stack.pop() != _CLOSERS[token]:
                    raise ExtentError(f"unbalanced `{token}` at offset {self.tokens[k].start}")
                if not stack:
                    return k + 1
            k += 1

    def statement(self, k: int) -> int:
        token = self.text(k)
        if token == "{":
            return self.balanced(k)
        if token in _LOOPS:
            self.expect(k + 1, "(")
            return self.statement(self.balanced(k + 1))
        if token == "if":
            self.expect(k + 1, "(")
            after = self.statement(self.balanced(k + 1))
            if after < len(self.tokens) and self.tokens[after].text == "else":
                return self.statement(after + 1)
            return after
        if token == "do":
            after = self.expect(self.statement(k + 1), "while")
            self.expect(after, "(")
            return self.expect(self.balanced(after), ";")
        if token in ("case", "default"):
            return self.statement(self.label_end(k + 1))
        if _IDENT.fullmatch(token) and k + 1 < len(self.tokens) and self.tokens[k + 1].text == ":":
            return self.statement(k + 2)                      # label: statement
        return self.until_semicolon(k)

    def label_end(self, k: int) -> int:
        """Index after the `:` of a case label; `?:` pairs inside the expression are skipped."""
        pending = 0
        while True:
            token = self.text(k)
            if token in "([{":
                k = self.balanced(k)
                continue
            if token == "?":
                pending += 1
            elif token == ":":
                if pending == 0:
                    return k + 1
                pending -= 1
            k += 1

    def until_semicolon(self, k: int) -> int:
        while True:
            token = self.text(k)
            if token in "([{":
                k = self.balanced(k)
                continue
            if token in _CLOSERS:
                raise ExtentError(f"unbalanced `{token}` at offset {self.tokens[k].start}")
            if token == ";":
                return k + 1
            k += 1
