"""report.html: what `offload tune` found, as one page that opens offline.

The page is read from the stage's own outputs (plan.json, profile.json, trials.csv), so it can
be rewritten without rerunning the search. It holds no external CSS, scripts or fonts: figures
are matplotlib SVG (text drawn as paths) inlined in the HTML, and matplotlib is imported only
here, when a report is written. Every time is followed by the word its file gives for how it
was obtained (measured, modeled, emulated); CPU times are measured on the host.
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
from pathlib import Path
from typing import Optional

from ..contracts.plan import load_plan
from ..userfiles import read_json_object

TOP_TRIALS = 20
_CPU_KIND = "measured"          # the CPU build always runs, and is timed, on the host itself
_STYLE = """body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}td{overflow-wrap:anywhere}
th{background:#eee}.gpu{background:#e8f4e8}.kind{font-weight:bold}.time{white-space:nowrap}.failed{color:#a00}
.note{background:#fff6d8;padding:.5em 1em;border-left:4px solid #e0b000}figure{margin:1em 0}"""


def write_report(results_dir: Path) -> Path:
    """Write results_dir/report.html from the files tune left there; returns its path."""
    results_dir = Path(results_dir)
    plan = load_plan(results_dir / "plan.json")
    profile_path = results_dir / "profile.json"
    profile = read_json_object(profile_path, "profile") if profile_path.exists() else {}
    trials = read_trials(results_dir / "trials.csv")
    page = _page(plan, profile, trials)
    target = results_dir / "report.html"
    partial = target.with_name(target.name + ".partial")
    partial.write_text(page, encoding="utf-8")
    os.replace(partial, target)
    return target


def read_trials(path: Path) -> list[dict]:
    """trials.csv as dicts, with `number` an int, `seconds` a float or None, `cached` a bool."""
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["number"] = int(row.get("number") or 0)
        row["seconds"] = float(row["seconds"]) if row.get("seconds") not in (None, "") else None
        row["cached"] = str(row.get("cached", "")).strip().lower() in ("1", "true", "yes")
    return rows


def _e(value) -> str:
    return html.escape("" if value is None else str(value))


def _time(seconds: Optional[float], kind: str) -> str:
    if seconds is None:
        return "—"
    return f'<span class="time">{seconds:.4g} s <span class="kind">{_e(kind)}</span></span>'


def _page(plan: dict, profile: dict, trials: list[dict]) -> str:
    timing = plan.get("timing") or profile.get("kind") or "of unstated kind"
    app = plan.get("app", "?")
    device = (plan.get("gpu_model") if timing == "modeled" else None) or plan.get("device", "?")
    title = f"offload tune: {app} on {device}, GPU times {timing}"
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{_e(title)}</title>"
             f"<style>{_STYLE}</style></head><body>",
             f"<h1>{_e(app)} on {_e(device)}: GPU times <span class=\"kind\">{_e(timing)}</span></h1>",
             f"<p class=\"note\">{_e(_honesty(plan, timing))}</p>",
             _summary(plan, timing), _pattern(plan),
             "<h2>Optimization history</h2>", _figure(_history, trials),
             "<h2>Time per region</h2>", _figure(_region_times, profile, profile.get("kind") or timing),
             _missing_cpu_times(profile),
             "<h2>Bytes moved per region</h2>", _figure(_region_bytes, profile),
             "<h2>Trials</h2>", _trials_table(trials), _provenance(plan), "</body></html>\n"]
    return "\n".join(parts)


def _honesty(plan: dict, timing: str) -> str:
    gpu = plan.get("gpu_model") or plan.get("device") or "the GPU"
    if timing == "modeled":
        return (f"GPU times on this page are modeled for {gpu} by offload's GPU performance model, not measured "
                "on a GPU. CPU times are measured on this host.")
    if timing == "emulated":
        return ("GPU times on this page are emulated: they are CPU times of the emulated device and say "
                "nothing about a GPU. CPU times are measured on this host.")
    return f"GPU times on this page are measured on {plan.get('device') or gpu}; CPU times are measured on this host."


def _verified_on(plan: dict) -> str:
    where = plan.get("verified_on") or "?"
    return "the emulated device" if where == "emu" else where


def _summary(plan: dict, timing: str) -> str:
    verified = (f"verified on {_e(_verified_on(plan))}" if plan.get("verified")
                else '<span class="failed">not verified</span>')
    lines = [f"<li>Plan {verified}.</li>"]
    if plan.get("reason_none"):
        lines.append(f"<li>No region runs on the GPU: {_e(plan['reason_none'])}</li>")
    if plan.get("speedup") is not None:
        lines.append(f"<li>Speedup {plan['speedup']:.3g}× over the single-core CPU build: "
                     f"{_time(plan.get('cpu_seconds'), _CPU_KIND)} on the CPU, "
                     f"{_time(plan.get('offloaded_seconds'), timing)} offloaded.</li>")
    lines.append(f"<li>Strategy {_e(plan.get('strategy', '?'))}, {_e(plan.get('measurements', '?'))} "
                 f"unique measurements.</li>")
    return "<h2>Summary</h2><ul>" + "".join(lines) + "</ul>"


def _pattern(plan: dict) -> str:
    gpu = set(plan.get("gpu_regions") or [])
    rows = []
    for region in plan.get("regions", []):
        settings = region.get("settings") or {}
        on_gpu = region.get("id") in gpu or region.get("device") == "gpu"
        rows.append(f"<tr class={'gpu' if on_gpu else 'cpu'}><td>{_e(region.get('id'))}</td>"
                    f"<td>{_e(region.get('location'))}</td><td>{'GPU' if on_gpu else 'CPU'}</td>"
                    + "".join(f"<td>{_e(settings.get(k, '') if on_gpu else '')}</td>"
                              for k in ("block", "axes", "reduction")) + "</tr>")
    return ("<h2>Pattern chosen</h2><table><tr><th>region</th><th>loop</th><th>runs on</th><th>block</th>"
            "<th>axes</th><th>reduction</th></tr>" + "".join(rows) + "</table>")


def _trials_table(trials: list[dict]) -> str:
    done = sorted((t for t in trials if t.get("status") == "ok" and t["seconds"] is not None),
                  key=lambda t: t["seconds"])[:TOP_TRIALS]
    failed = [t for t in trials if t.get("status") != "ok"]
    rows = [f"<tr class={'ok' if t.get('status') == 'ok' else 'failed'}><td>{t['number']}</td>"
            f"<td>{_e(t.get('config')).replace(';', ';<wbr>')}</td><td>{_e(t.get('gpu_regions'))}</td><td>{_e(t.get('status'))}</td>"
            f"<td>{_time(t['seconds'], t.get('kind') or '?')}</td><td>{'yes' if t['cached'] else ''}</td>"
            f"<td>{_e(t.get('reason'))}</td></tr>" for t in done + failed]
    return (f"<p>The {len(done)} fastest of {len(trials)} trials, then the {len(failed)} that failed, "
            "with their typed reason.</p><table><tr><th>#</th><th>configuration</th><th>GPU regions</th>"
            "<th>status</th><th>time</th><th>cached</th><th>reason</th></tr>" + "".join(rows) + "</table>")


def _missing_cpu_times(profile: dict) -> str:
    missing = [str(r.get("id")) for r in _regions(profile) if r.get("cpu_seconds") is None]
    return f"<p>profile.json gives no CPU time for region(s) {_e(', '.join(missing))}.</p>" if missing else ""


def _provenance(plan: dict) -> str:
    items = [("source hash", plan.get("source_hash")), ("build options", plan.get("build_options")),
             ("arguments", plan.get("args"))]
    return "<h2>Provenance</h2><ul>" + "".join(f"<li>{name}: <code>{_e(json.dumps(value))}</code></li>"
                                               for name, value in items) + "</ul>"


# ---- figures -------------------------------------------------------------------------------

def _figure(draw, *data) -> str:
    """One matplotlib figure as inline SVG. Each gets its own hash salt, so the ids of clip
    paths differ between the figures of one page, and the page is the same on every run."""
    from matplotlib import rc_context
    from matplotlib.figure import Figure

    with rc_context({"svg.fonttype": "path", "svg.hashsalt": draw.__name__}):
        figure = Figure(figsize=(8, 3.4), layout="constrained")
        draw(figure.subplots(), *data)
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None, "Format": None,
                                                       "Type": None})
    svg = buffer.getvalue()
    return f"<figure>{svg[svg.index('<svg'):]}</figure>"


def _kind_word(trials: list[dict]) -> str:
    kinds = sorted({t.get("kind") or "?" for t in trials if t.get("status") == "ok"})
    return "/".join(kinds) or "no trial succeeded"


def _history(ax, trials: list[dict]) -> None:
    from matplotlib.ticker import EngFormatter, MaxNLocator

    ordered = sorted(trials, key=lambda t: t["number"])
    done = [t for t in ordered if t.get("status") == "ok" and t["seconds"] is not None]
    ax.plot([t["number"] for t in done], [t["seconds"] for t in done], "o", color="tab:blue", label="trial")
    best, steps = float("inf"), []
    for t in done:
        best = min(best, t["seconds"])
        steps.append(best)
    ax.step([t["number"] for t in done], steps, where="post", color="tab:green", label="best so far")
    failed = [t["number"] for t in ordered if t.get("status") != "ok"]
    ax.plot(failed, [0.97] * len(failed), "x", color="tab:red", transform=ax.get_xaxis_transform(),
            label="failed (no time)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_formatter(EngFormatter("s"))
    ax.set_xlabel("trial number")
    ax.set_ylabel(f"time ({_kind_word(trials)})")
    ax.legend(loc="upper right", fontsize="small")


def _regions(profile: dict) -> list[dict]:
    return sorted(profile.get("regions") or [], key=lambda r: r.get("id", 0))


def _labels(regions: list[dict]) -> list[str]:
    return [f"{r.get('id')}" + (f"\nline {r['line']}" if r.get("line") else "") for r in regions]


def _region_times(ax, profile: dict, timing: str) -> None:
    from matplotlib.ticker import EngFormatter

    regions = _regions(profile)
    x = range(len(regions))
    kernel = [r.get("kernel_seconds") or 0.0 for r in regions]
    ax.bar([k - 0.2 for k in x], [r.get("cpu_seconds") or 0.0 for r in regions], 0.4, color="tab:gray",
           label=f"CPU ({_CPU_KIND})")
    ax.bar([k + 0.2 for k in x], kernel, 0.4, color="tab:green", label=f"GPU kernels ({timing})")
    ax.bar([k + 0.2 for k in x], [r.get("transfer_seconds") or 0.0 for r in regions], 0.4, bottom=kernel,
           color="tab:orange", label=f"GPU transfers ({timing})")
    ax.set_xticks(list(x), _labels(regions))
    ax.yaxis.set_major_formatter(EngFormatter("s"))
    ax.set_xlabel("region")
    ax.set_ylabel("time")
    ax.legend(fontsize="small")


def _region_bytes(ax, profile: dict) -> None:
    from matplotlib.ticker import EngFormatter

    regions = _regions(profile)
    x = range(len(regions))
    ax.bar([k - 0.2 for k in x], [r.get("h2d_bytes") or 0 for r in regions], 0.4, color="tab:blue",
           label="host to device")
    ax.bar([k + 0.2 for k in x], [r.get("d2h_bytes") or 0 for r in regions], 0.4, color="tab:purple",
           label="device to host")
    ax.set_xticks(list(x), _labels(regions))
    ax.set_xlabel("region")
    ax.yaxis.set_major_formatter(EngFormatter("B"))
    ax.set_ylabel("bytes")
    ax.legend(fontsize="small")
