"""Cost/performance reports: one self-contained HTML page (inline SVG, no scripts, no network)
and a CSV beside it, per app and per batch.

The page shows, for every configuration, the predicted time split into CPU, GPU and transfer
parts, the cost per run, and time vs cost with the Pareto front and the chosen point marked.
Every number keeps the word for where it came from (measured, modeled, extrapolated, assumed).
pandas builds the tables (HTML and CSV); it is imported here only, when a report is written.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

from .document import GENERATOR
from .outputs import write_all

CPU_COLOUR, GPU_COLOUR, TRANSFER_COLOUR = "#4e79a7", "#59a14f", "#f28e2b"
WIDTH = 760
LABEL_W = 190
ROW_H = 24

TABLE_COLUMNS = ("config", "cpu", "vcpus", "memory_gib", "gpu", "vgpu_type", "fraction", "framebuffer_gib",
                 "price_per_hour", "feasible", "reason", "predicted_seconds", "predicted_seconds_busy",
                 "predicted_seconds_idle", "cost_per_run", "cpu_seconds", "cpu_kind", "gpu_seconds",
                 "gpu_kind", "gpu_share", "transfer_seconds", "transfer_kind", "unit_ratio", "pareto")

BATCH_COLUMNS = ("app", "profile", "max_price", "deadline", "feasible", "config", "vcpus", "vgpu_type",
                 "fraction", "price_per_hour", "predicted_seconds", "cost_per_run", "compared_policy",
                 "compared_config", "compared_cost_per_run", "cost_difference", "note", "report")

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em}
.box{background:#f4f7fb;border:1px solid #c9d6e8;padding:.8em 1em;border-radius:6px}
table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}
th{background:#eee}td:first-child,th:first-child{text-align:left}
.muted{color:#777}.bad{color:#b00}svg{font-size:12px}.wide{overflow-x:auto}td{white-space:nowrap}
"""


def app_report(doc: dict) -> tuple[str, str]:
    """(HTML, CSV) for one sizing document from sizer.size()."""
    frame = _frame(doc["candidates"], TABLE_COLUMNS)
    rec = doc["recommendation"]
    comparison = doc["comparison"]
    constraints = doc["constraints"]
    limits = ", ".join(f"{k} {v}" for k, v in constraints.items() if v not in (None, False)) or "none"
    if rec:
        summary = (f"<p><b>Recommendation ({_e(doc['policy'])}): {_e(rec['config'])}</b>: "
                   f"{rec['vcpus']} vCPU, {rec['memory_gib']:g} GiB, vGPU {_e(rec['vgpu_type'])} "
                   f"({rec['fraction']:g} of a {_e(doc['gpu_model'])}) at {rec['price_per_hour']:.2f}/h; "
                   f"predicted {rec['predicted_seconds']:.3g} s per run, {rec['cost_per_run']:.4g} per run.</p>"
                   f"<p>{_e(comparison['explanation'])}</p>")
    else:
        summary = "<p class=bad><b>No configuration meets the constraints.</b> Each one's reason is in the table.</p>"
    chosen = rec["config"] if rec else None
    other = comparison["choice"]["config"] if comparison["choice"] else None
    body = f"""
<h1>Sizing: {_e(doc['app'])}</h1>
<p class=muted>profile {_e(doc['profile'])} · catalog {_e(doc['catalog'])} · GPU {_e(doc['gpu_model'])},
scheduler {_e(doc['scheduler'])} · constraints: {_e(limits)} · ρ = Tc/Tg = {doc['ratio']['rho']:.3g}</p>
<div class=box>{summary}</div>
<h2>Predicted time per configuration (CPU, GPU, transfer)</h2>
{_breakdown_svg(doc['candidates'], chosen, doc['scheduler'] == 'best-effort')}
<h2>Cost per run</h2>
{_cost_svg(doc['candidates'], chosen)}
<h2>Time vs cost: Pareto front</h2>
{_pareto_svg(doc['candidates'], chosen, other, doc['comparison']['policy'])}
<h2>Where the numbers come from</h2>
<ul>{''.join(f'<li>{_e(n)}</li>' for n in doc['notes'])}</ul>
<h2>All configurations</h2>
<div class=wide>{frame.to_html(index=False, na_rep='', float_format=_number)}</div>
"""
    return _page(f"Sizing: {doc['app']}", body), frame.to_csv(index=False)


def batch_report(rows: list[dict]) -> tuple[str, str]:
    """(HTML, CSV) for a batch: one row per app, as batch.size_batch() builds them."""
    frame = _frame(rows, BATCH_COLUMNS)
    linked = frame.copy()
    linked["report"] = [f'<a href="{_e(r)}">report</a>' for r in frame["report"]]
    chart_rows = [{"config": f"{r['app']}: {r['config']}", "value": r["cost_per_run"], "feasible": True}
                  for r in rows if r["feasible"]]
    body = f"""
<h1>Batch sizing: {len(rows)} app(s)</h1>
<h2>Cost per run of each app's recommendation</h2>
{_bars_svg(chart_rows, None, lambda v: f"{v:.4g}") if chart_rows else '<p class=bad>No app has a feasible configuration.</p>'}
<h2>Recommendations</h2>
<div class=wide>{linked.to_html(index=False, na_rep='', escape=False, float_format=_number)}</div>
"""
    return _page("Batch sizing", body), frame.to_csv(index=False)


def _frame(rows: list[dict], columns: tuple[str, ...]):
    """A table of the given columns that any row has, in that order."""
    import pandas as pd

    return pd.DataFrame(rows, columns=[c for c in columns if any(c in r for r in rows)])


def _number(value: float) -> str:
    return f"{value:.4g}"


def _e(value: object) -> str:
    return html.escape(str(value))


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang=en><head><meta charset="utf-8">\n'
            f'<meta name="generator" content="{GENERATOR}">\n<title>{_e(title)}</title>\n'
            f"<style>{STYLE}</style></head><body>{body}</body></html>\n")


def _scale(limit: float, span: float):
    """A map from [0, limit] to [0, span] pixels, and round tick values for its axis."""
    if limit <= 0:
        return (lambda v: 0.0), [0]
    base = 10 ** math.floor(math.log10(limit))
    step = next(s for s in (base * 0.2, base * 0.5, base, base * 2) if limit / s <= 6)
    top = step * math.ceil(limit / step)
    ticks = [step * i for i in range(int(round(top / step)) + 1)]
    return (lambda v: v / top * span), ticks


def _label(candidate: dict, chosen: str | None) -> str:
    mark = "★ " if candidate["config"] == chosen else ""
    style = ' font-weight="bold"' if candidate["config"] == chosen else ""
    fill = "#222" if candidate["feasible"] else "#999"
    return f'<text x="{LABEL_W - 8}" text-anchor="end" fill="{fill}"{style}>{_e(mark + candidate["config"])}</text>'


def _axis(scale, ticks, top: float, bottom: float, unit: str) -> str:
    parts = []
    for t in ticks:
        x = LABEL_W + scale(t)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{bottom}" stroke="#ddd"/>'
                     f'<text x="{x:.1f}" y="{bottom + 14}" text-anchor="middle">{t:.3g}</text>')
    parts.append(f'<text x="{WIDTH - 10}" y="{bottom + 28}" text-anchor="end">{_e(unit)}</text>')
    return "".join(parts)


def _breakdown_svg(candidates: list[dict], chosen: str | None, best_effort: bool) -> str:
    span = WIDTH - LABEL_W - 90
    limit = max(max(c["predicted_seconds"], c.get("predicted_seconds_busy") or 0) for c in candidates)
    scale, ticks = _scale(limit, span)
    height = ROW_H * len(candidates) + 70
    rows = []
    for i, c in enumerate(candidates):
        y = 10 + i * ROW_H
        x = LABEL_W
        opacity = "1" if c["feasible"] else "0.35"
        bars = []
        for part, colour in (("cpu", CPU_COLOUR), ("gpu", GPU_COLOUR), ("transfer", TRANSFER_COLOUR)):
            w = scale(c[f"{part}_seconds"])
            bars.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{ROW_H - 6}" fill="{colour}" '
                        f'opacity="{opacity}"><title>{part}: {c[f"{part}_seconds"]:.4g} s '
                        f'({c[f"{part}_kind"]})</title></rect>')
            x += w
        if best_effort and c.get("predicted_seconds_idle") is not None:
            xi = LABEL_W + scale(c["predicted_seconds_idle"])
            bars.append(f'<line x1="{xi:.1f}" x2="{xi:.1f}" y1="{y - 2}" y2="{y + ROW_H - 4}" stroke="#000" '
                        f'stroke-dasharray="2,2"><title>idle board: {c["predicted_seconds_idle"]:.4g} s</title></line>')
        note = f'{c["predicted_seconds"]:.3g} s' + ("" if c["feasible"] else " ✗")
        tip = f"<title>{_e(c['reason'])}</title>" if c["reason"] else ""
        rows.append(f'<g transform="translate(0,{y + ROW_H - 10})">{_label(c, chosen)}</g>{"".join(bars)}'
                    f'<text x="{x + 6:.1f}" y="{y + ROW_H - 10}" fill="{"#222" if c["feasible"] else "#b00"}">'
                    f"{tip}{_e(note)}</text>")
    x0 = 40
    legend = (f'<rect x="{x0}" y="{height - 16}" width="10" height="10" fill="{CPU_COLOUR}"/>'
              f'<text x="{x0 + 14}" y="{height - 7}">CPU part</text>'
              f'<rect x="{x0 + 90}" y="{height - 16}" width="10" height="10" fill="{GPU_COLOUR}"/>'
              f'<text x="{x0 + 104}" y="{height - 7}">GPU kernels</text>'
              f'<rect x="{x0 + 200}" y="{height - 16}" width="10" height="10" fill="{TRANSFER_COLOUR}"/>'
              f'<text x="{x0 + 214}" y="{height - 7}">transfers</text>'
              f'<text x="{x0 + 300}" y="{height - 7}">faded, ✗: infeasible</text>'
              + (f'<text x="{x0 + 450}" y="{height - 7}">┆ idle-board end (best effort)</text>'
                 if best_effort else ""))
    bottom = 10 + ROW_H * len(candidates)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height + 14}" role="img">'
            f'{_axis(scale, ticks, 6, bottom, "seconds per run")}{"".join(rows)}'
            f'<g transform="translate(0,14)">{legend}</g></svg>')


def _cost_svg(candidates: list[dict], chosen: str | None) -> str:
    rows = [{"config": c["config"], "value": c["cost_per_run"], "feasible": c["feasible"]} for c in candidates]
    return _bars_svg(rows, chosen, lambda v: f"{v:.4g}")


def _bars_svg(rows: list[dict], chosen: str | None, fmt) -> str:
    span = WIDTH - LABEL_W - 90
    scale, ticks = _scale(max(r["value"] for r in rows), span)
    bottom = 10 + ROW_H * len(rows)
    parts = []
    for i, r in enumerate(rows):
        y = 10 + i * ROW_H
        w = scale(r["value"])
        colour = "#e15759" if r["config"] == chosen else "#76b7b2"
        parts.append(f'<g transform="translate(0,{y + ROW_H - 10})">{_label(r, chosen)}</g>'
                     f'<rect x="{LABEL_W}" y="{y}" width="{w:.1f}" height="{ROW_H - 6}" fill="{colour}" '
                     f'opacity="{1 if r["feasible"] else 0.35}"/>'
                     f'<text x="{LABEL_W + w + 6:.1f}" y="{y + ROW_H - 10}">{_e(fmt(r["value"]))}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{bottom + 40}" role="img">'
            f'{_axis(scale, ticks, 6, bottom, "cost per run")}{"".join(parts)}</svg>')


def _pareto_svg(candidates: list[dict], chosen: str | None, other: str | None, other_policy: str) -> str:
    left, top, w, h = 70, 34, WIDTH - 110, 320
    sx, xticks = _scale(max(c["predicted_seconds"] for c in candidates), w)
    sy, yticks = _scale(max(c["cost_per_run"] for c in candidates), h)
    parts = [f'<line x1="{left}" y1="{top + h}" x2="{left + w}" y2="{top + h}" stroke="#444"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + h}" stroke="#444"/>']
    for t in xticks:
        parts.append(f'<text x="{left + sx(t):.1f}" y="{top + h + 16}" text-anchor="middle">{t:.3g}</text>')
    for t in yticks:
        parts.append(f'<text x="{left - 6}" y="{top + h - sy(t) + 4:.1f}" text-anchor="end">{t:.3g}</text>')
    parts.append(f'<text x="{left + w}" y="{top + h + 32}" text-anchor="end">seconds per run</text>'
                 f'<text x="{left - 60}" y="{top - 20}">cost per run</text>')

    def point(c):
        return left + sx(c["predicted_seconds"]), top + h - sy(c["cost_per_run"])

    front = sorted((c for c in candidates if c["pareto"]), key=lambda c: c["predicted_seconds"])
    if len(front) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in map(point, front))
        parts.append(f'<polyline points="{path}" fill="none" stroke="{GPU_COLOUR}" stroke-width="2"/>')
    for c in candidates:
        x, y = point(c)
        fill = GPU_COLOUR if c["pareto"] else ("#4e79a7" if c["feasible"] else "none")
        stroke = "#999" if not c["feasible"] else "#333"
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{fill}" stroke="{stroke}">'
                     f'<title>{_e(c["config"])}: {c["predicted_seconds"]:.4g} s, {c["cost_per_run"]:.4g} per run'
                     f'{" (" + _e(c["reason"]) + ")" if c["reason"] else ""}</title></circle>')
    marked = []
    for name, text, colour in ((chosen, "recommended", "#e15759"), (other, other_policy, "#b07aa1")):
        c = next((c for c in candidates if c["config"] == name), None)
        if c is None:
            continue
        x, y = point(c)
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="10" fill="none" stroke="{colour}" stroke-width="2.5">'
                     f'<title>{_e(text)}: {_e(name)}</title></circle>')
        marked.append(f'<tspan fill="{colour}" font-weight="bold">◯ {_e(text)}: {_e(name)}</tspan>')
    legend = (f'<text x="{left + 10}" y="{top + h + 48}">● green: Pareto front · ● blue: feasible · '
              f'○ grey: infeasible</text><text x="{left + 10}" y="{top + h + 66}">{"   ".join(marked)}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{top + h + 76}" role="img">'
            f'{"".join(parts)}{legend}</svg>')


def write_app(doc: dict, out_dir: Path) -> list[Path]:
    """sizing.json, sizing.html and sizing.csv for one app under out_dir."""
    page, table = app_report(doc)
    files = {out_dir / "sizing.json": json.dumps(doc, indent=2) + "\n",
             out_dir / "sizing.html": page, out_dir / "sizing.csv": table}
    write_all(files)
    return list(files)


def write_batch(rows: list[dict], out_dir: Path) -> list[Path]:
    """batch-sizing.html and batch-sizing.csv under out_dir."""
    page, table = batch_report(rows)
    files = {out_dir / "batch-sizing.html": page, out_dir / "batch-sizing.csv": table}
    write_all(files)
    return list(files)
