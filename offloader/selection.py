"""`--only FILE:LINE` and `--never FILE:LINE`: the user's say over which loops later stages
may offload. Neither can make a loop that is not proven parallel offloadable."""

from __future__ import annotations

import os

from .analysis import AnalysisResult
from .errors import UserError


def _parse_spec(spec: str) -> tuple[str, int]:
    file, sep, line = spec.rpartition(":")
    if not sep or not file or not line.isdigit():
        raise UserError(f"`{spec}` is not FILE:LINE (for example app.c:12)")
    return file, int(line)


def _matches(spec: tuple[str, int], file: str, line: int) -> bool:
    want_file, want_line = spec
    same_file = (os.path.abspath(want_file) == os.path.abspath(file)
                 or os.path.basename(want_file) == os.path.basename(file) and os.sep not in want_file)
    return same_file and want_line == line


def apply_selection(result: AnalysisResult, only: tuple[str, ...], never: tuple[str, ...]) -> list[str]:
    """Set each loop's `offload` flag; returns warnings for the user."""
    only_specs = [_parse_spec(s) for s in only]
    never_specs = [_parse_spec(s) for s in never]
    warnings = []
    for spec, text in zip(only_specs + never_specs, only + never):
        if not any(_matches(spec, v.loop.location.file, v.loop.location.line) for v in result.verdicts):
            raise UserError(f"`{text}`: there is no for loop on that line")
    for index, verdict in enumerate(result.verdicts):
        where = (verdict.loop.location.file, verdict.loop.location.line)
        named_only = any(_matches(s, *where) for s in only_specs)
        named_never = any(_matches(s, *where) for s in never_specs)
        parallel = verdict.verdict == "parallel"
        if named_never:
            result.selection[index] = (False, "excluded by --never")
        elif only_specs and not named_only:
            result.selection[index] = (False, "not named by --only")
        elif named_only and not parallel:
            result.selection[index] = (False, f"--only names a {verdict.verdict} loop: refused")
            warnings.append(f"{verdict.loop.location}: --only names a {verdict.verdict} loop; "
                            "it will not be offloaded")
        elif named_only:
            result.selection[index] = (True, "named by --only")
    return warnings
