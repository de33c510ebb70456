"""The readable `offload analyze` report: the source, annotated loop by loop."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from .analysis import AnalysisResult
from .frontend.sources import read_source

_STYLE = {"parallel": "bold green", "sequential": "bold yellow", "not-offloadable": "bold red"}
_CONDITION = {"no-alias": "if no overlap between ", "distinct-rows": "if no two rows overlap in ",
              "not-written": "if the loop writes none of the memory of "}


def render(result: AnalysisResult, console: Console) -> None:
    doc = result.to_json()
    loops = doc["loops"]
    sources = {}
    counts = {"parallel": 0, "sequential": 0, "not-offloadable": 0}
    for loop in loops:
        counts[loop["verdict"]] += 1
        source = sources.setdefault(loop["file"], read_source(loop["file"]))
        indent = "  " * loop["depth"]
        head = Text(f"{loop['file']}:{loop['line']}:{loop['column']}  ", style="dim")
        head.append(f"{indent}{source.line(loop['line']).strip()}")
        console.print(head)
        verdict = Text(f"    {indent}{loop['verdict']}", style=_STYLE[loop["verdict"]])
        extras = []
        if loop["reductions"]:
            extras.append("reductions " + ", ".join(f"{r['var']} ({r['op']})" for r in loop["reductions"]))
        if loop["private"]:
            extras.append("private " + ", ".join(loop["private"]))
        for condition in loop["conditions"]:
            extras.append(_CONDITION[condition["kind"]] + ", ".join(condition["vars"]))
        if not loop["offload"] and loop["verdict"] == "parallel":
            extras.append(loop.get("selection", "not selected"))
        if extras:
            verdict.append("  " + "; ".join(extras), style="cyan")
        console.print(verdict)
        for reason in loop["reasons"]:
            console.print(Text(f"    {indent}  - {reason}"))
        for hint in loop["hints"]:
            console.print(Text(f"    {indent}  hint: {hint}", style="italic"))
    summary = ", ".join(f"{n} {k}" for k, n in counts.items())
    console.print(Text(f"\n{len(loops)} loops: {summary}", style="bold"))
