"""The figures a GPU check result holds, one line each, in the form the README's "Measured"
table cites: what, the figure, its label (`measured` on the named GPU, or `emulated` in a dry
run), and where in the result file it comes from. Nothing here measures: it reads the steps."""

from __future__ import annotations

import statistics


def collect(result: dict) -> list[dict]:
    label = result.get("kind", "measured")
    steps = result.get("steps", {})
    found: list[dict] = []

    def add(what: str, value, unit: str, where: str) -> None:
        if isinstance(value, (int, float)) and value == value:
            found.append({"what": what, "value": value, "unit": unit, "label": label, "from": where})

    ceilings = steps.get("ceilings", {})
    if ceilings.get("status") == "ok":
        add("device-to-device copy (read + write)", _get(ceilings, "device_to_device", "gbps"), "GB/s",
            "steps.ceilings.device_to_device.gbps")
        for side in ("host_to_device", "device_to_host"):
            add(f"{side.replace('_', '-')} copy, pinned", _get(ceilings, "pinned", side, "gbps"), "GB/s",
                f"steps.ceilings.pinned.{side}.gbps")
            largest = (ceilings.get("pageable") or [{}])[-1]
            add(f"{side.replace('_', '-')} copy, pageable, {largest.get(side, {}).get('bytes', 0) >> 20} MiB",
                _get(largest, side, "gbps"), "GB/s", f"steps.ceilings.pageable[-1].{side}.gbps")
            add(f"2-D {side.replace('_', '-')} copy, pinned", _get(ceilings, "copy_2d", side, "gbps"), "GB/s",
                f"steps.ceilings.copy_2d.{side}.gbps")
        add("one empty kernel launch and synchronisation (host clock)",
            _micro(_get(ceilings, "launch", "wall_seconds_median")), "µs", "steps.ceilings.launch.wall_seconds_median")
    for k, row in enumerate(steps.get("fault", {}).get("sizes") or []):
        if row.get("round_trip_seconds") is not None:
            add(f"host fault round trip copying {_size(row['bytes'])} back ({row['pages']} pages)",
                _micro(row["round_trip_seconds"]), "µs", f"steps.fault.sizes[{k}].round_trip_seconds")
    launch = steps.get("launch", {})
    if launch.get("status") == "ok":
        add("region call, host side (runtime bookkeeping)", _micro(launch.get("bookkeeping_seconds_per_call")), "µs",
            "steps.launch.bookkeeping_seconds_per_call")
        add("region call in all", _micro(launch.get("per_call_seconds_median")), "µs",
            "steps.launch.per_call_seconds_median")
    errors = []
    for name, step in sorted(steps.items()):
        if not name.startswith("sample:") or not step.get("full_run"):
            continue
        sample, full = name.split(":", 1)[1], step["full_run"]
        cpu = min(_get(step, "cpu", "original_seconds") or [None], key=lambda v: v or 0)
        if full.get("verified") and cpu and full.get("total_seconds"):
            add(f"{sample}: CPU original over the offloaded run (all regions, verified)", cpu / full["total_seconds"],
                "x", f"steps.{name}.full_run.total_seconds")
        for region in _get(step, "kernels", "regions") or []:
            runtime, wide = region["grids"].get("runtime", {}), region["grids"].get("thread_per_iteration", {})
            if runtime.get("gbps") is not None:
                add(f"{sample} region {region['region']}: sustained bandwidth at the runtime's grid "
                    f"{'x'.join(map(str, runtime['grid']))}", runtime["gbps"], "GB/s",
                    f"steps.{name}.kernels.regions[region={region['region']}].grids.runtime.gbps")
            if runtime.get("seconds_median") and wide.get("seconds_median") and not wide.get("same_as"):
                add(f"{sample} region {region['region']}: runtime's grid over a thread per iteration",
                    runtime["seconds_median"] / wide["seconds_median"], "x",
                    f"steps.{name}.kernels.regions[region={region['region']}].grids")
        errors += [abs(row["kernel_error"]) for row in (_get(step, "model", "compared") or [])
                   if row.get("kernel_error") is not None]
    if errors:
        add(f"GPU model: median |kernel time error| over {len(errors)} regions", statistics.median(errors), "",
            "steps.sample:*.model.compared[].kernel_error")
    return found


def table(result: dict, path: str) -> str:
    """README "Measured" rows (| what | figure | reproduce |) for a result's figures."""
    gpu, commit = result.get("gpu") or {}, result.get("commit") or {}
    where = (f"`{result.get('kind')}` on {gpu.get('name') or 'the emulated device'}"
             + (f", driver {gpu['driver']}" if gpu.get("driver") else "")
             + f", commit {(commit.get('sha') or '?')[:10]}" + (" with changes" if commit.get("dirty") else ""))
    rows = []
    for figure in result.get("figures") or collect(result):
        value = figure["value"]
        shown = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
        rows.append(f"| {figure['what']} | **{shown} {figure['unit']}**".rstrip() + f" — {where} | "
                    f"`bash scripts/gpu-check.sh` → `{path}` ({figure['from']}) |")
    return "\n".join(rows) if rows else f"(no figures in {path})"


def _get(data, *keys):
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _micro(seconds):
    return None if seconds is None else seconds * 1e6


def _size(nbytes: int) -> str:
    return f"{nbytes >> 20} MiB" if nbytes >= 1 << 20 else f"{nbytes >> 10} KiB"
