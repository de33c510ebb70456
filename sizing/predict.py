"""Predicted time of one run on each catalog configuration (CPU size x vGPU slice).

time = CPU part (scaled to the VM's vCPUs by the measured cpu_scaling)
     + GPU kernels (whole-board time on the catalog's model, divided by the slice's share)
     + transfers (unchanged by the slice; rescaled only between GPU models by the PCIe link).

The three parts are added: the CPU waits while its offloaded regions run. Hard constraints
(device memory peak vs the slice's framebuffer, host memory peak vs the VM's RAM) are checked
here too. Each part carries the kind of its number: `measured` only if it was measured on the
thing it claims, so a slice's GPU time, which divides a whole-board time, is `modeled` unless
the slice gets the whole board.
"""

from __future__ import annotations

from dataclasses import dataclass

from offloader.errors import UserError

from .catalog import Catalog, CpuSize, GpuSlice
from .gpu_models import compute_bound, known_names, lookup, roofline_seconds
from .profile import CPU_FIELDS, GPU_FIELDS, Profile
from .scaling import SCALING_KINDS, complete

GIB = 1 << 30


@dataclass(frozen=True)
class BoardTimes:
    """The profile's GPU times on a whole board of the catalog's model."""

    kernel_seconds: float
    transfer_seconds: float
    kind: str                                   # measured or modeled
    regions: tuple[tuple[float, bool | None], ...]  # (kernel seconds, compute-bound? None if unknown)
    notes: tuple[str, ...]


@dataclass(frozen=True)
class Prediction:
    cpu: CpuSize
    gpu: GpuSlice
    cpu_seconds: float
    cpu_kind: str
    gpu_seconds: float              # busy end for best-effort
    gpu_seconds_idle: float         # what the slice gets on an otherwise idle board
    gpu_kind: str
    share: float                    # effective share of the board's kernel throughput (busy end)
    transfer_seconds: float
    transfer_kind: str
    violations: tuple[str, ...]     # hard constraints this configuration breaks

    def seconds(self, idle: bool = False) -> float:
        return self.cpu_seconds + (self.gpu_seconds_idle if idle else self.gpu_seconds) + self.transfer_seconds


def check_sizable(profile: Profile) -> None:
    missing = profile.missing(GPU_FIELDS + CPU_FIELDS)
    if missing:
        hint = (" (this profile holds only the CPU scaling from `offload profile`; the GPU times "
                "come from `offload tune`)" if "gpu_kernel_seconds" in missing else "")
        raise UserError(f"cannot size without {', '.join(missing)}{hint}", file=profile.path)
    if profile.gpu_kernel_seconds + profile.transfer_seconds == 0:
        raise UserError("gpu_kernel_seconds and transfer_seconds are both 0: nothing runs on the GPU, "
                        "so there is no vGPU slice to size", file=profile.path)
    if profile.kind == "emulated":
        raise UserError("kind is 'emulated': its kernel times are CPU times of the emulated device, "
                        "not GPU times; sizing needs measured or modeled GPU times", file=profile.path)


def board_times(profile: Profile, catalog: Catalog) -> BoardTimes:
    """Kernel and transfer times on a whole board of the catalog's model, translated if need be."""
    source, target = lookup(profile.device), catalog.board
    same = (source is not None and target is not None and source.name == target.name) \
        or profile.device.strip().upper() == catalog.model.strip().upper()
    if same:
        return BoardTimes(profile.gpu_kernel_seconds, profile.transfer_seconds, profile.kind,
                          _regions_on(profile, catalog, lambda region: region.kernel_seconds),
                          (f"GPU times {profile.kind} on {profile.device}, the catalog's model",))
    for board, what, name in ((source, "the profile's device", profile.device),
                              (target, "the catalog's model", catalog.model)):
        if board is None:
            raise UserError(f"{what} {name!r} is not in the GPU model table ({known_names()}), so "
                            f"times on {profile.device!r} cannot be translated to {catalog.model!r}",
                            file=profile.path)
    if not profile.regions:
        raise UserError(f"regions (with flops and bytes) are needed to translate GPU times from "
                        f"{profile.device} to {catalog.model}", file=profile.path)
    assumed = False
    for i, region in enumerate(profile.regions):
        if region.flops is None or region.bytes is None or region.flops + region.bytes == 0:
            raise UserError(f"regions[{i}]: flops and bytes are needed to translate its time from "
                            f"{profile.device} to {catalog.model}", file=profile.path)
        assumed |= region.precision is None and profile.precision is None

    def translate(region) -> float:
        precision = _precision(profile, region)
        return region.kernel_seconds * (roofline_seconds(target, region.flops, region.bytes, precision)
                                        / roofline_seconds(source, region.flops, region.bytes, precision))

    regions = _regions_on(profile, catalog, translate)
    link = source.link_bandwidth / target.link_bandwidth
    notes = (f"GPU times {profile.kind} on {source.name} and modeled for {target.name}: each region's "
             "kernel time x its roofline time ratio max(flops/peak, bytes/bandwidth), transfers x the "
             f"PCIe link ratio ({link:.2f}); inputs: {source.describe()}; {target.describe()}"
             + ("; fp64 assumed for regions whose precision the profile does not give" if assumed else ""),)
    return BoardTimes(sum(s for s, _ in regions), profile.transfer_seconds * link, "modeled", regions, notes)


def _precision(profile: Profile, region) -> str:
    return region.precision or profile.precision or "fp64"


def _regions_on(profile: Profile, catalog: Catalog, translate) -> tuple[tuple[float, bool | None], ...]:
    """Each region's kernel time on the catalog's board and whether it is compute-bound there.

    Kernel time the regions do not account for becomes one more region, translated with the
    regions' total flops and bytes.
    """
    board = catalog.board
    regions = list(profile.regions)
    attributed = sum(r.kernel_seconds for r in regions)
    rest = profile.gpu_kernel_seconds - attributed
    if rest < -1e-6 * max(1.0, profile.gpu_kernel_seconds):
        raise UserError(f"the regions' kernel_seconds add up to {attributed:g} s, more than "
                        f"gpu_kernel_seconds ({profile.gpu_kernel_seconds:g} s)", file=profile.path)
    if rest > 1e-9 * max(1.0, profile.gpu_kernel_seconds) or not regions:
        counted = [r for r in regions if r.flops is not None and r.bytes is not None]
        totals = None if not counted else (sum(r.flops for r in counted), sum(r.bytes for r in counted))
        precisions = {_precision(profile, r) for r in counted}
        regions.append(_Lump(max(rest, 0.0), *(totals or (None, None)),
                             "fp64" if "fp64" in precisions or not precisions else "fp32"))
    out = []
    for region in regions:
        seconds = translate(region)
        bound = None
        if board is not None and region.flops is not None and region.bytes is not None:
            bound = compute_bound(board, region.flops, region.bytes, _precision(profile, region))
        out.append((seconds, bound))
    return tuple(out)


@dataclass(frozen=True)
class _Lump:
    """Kernel time outside the listed regions, with the regions' summed counts (if any)."""

    kernel_seconds: float
    flops: float | None
    bytes: float | None
    precision: str


def cpu_seconds(profile: Profile, vcpus: list[int]) -> tuple[dict[int, tuple[float, str]], str, str]:
    """The CPU part's time for each vCPU count with its kind, a note saying where it came from,
    and how it scales: "measured" (cpu_scaling) or "assumed" (flat, without one)."""
    ref, base = profile.threads_used_by_cpu_part, profile.cpu_part_seconds
    stale = (bool(profile.cpu_scaling) and None not in (profile.baseline, profile.cpu_scaling_baseline)
             and profile.baseline != profile.cpu_scaling_baseline)
    if profile.cpu_scaling and not stale:
        points = complete(profile.cpu_scaling, sorted(set(vcpus) | {ref}))
        times = {v: (base * points[v].seconds / points[ref].seconds,
                     max(points[v].kind, points[ref].kind, key=SCALING_KINDS.index)) for v in vcpus}
        measured = [str(n) for n, p in profile.cpu_scaling.items() if p.kind == "measured"]
        return times, (f"CPU part: {base:g} s with {ref} thread(s), scaled by cpu_scaling measured on "
                       f"{', '.join(measured)} core(s); other vCPU counts from its Amdahl fit"), "measured"
    why = ("its cpu_scaling was measured for another build of the program than these times (run `offload "
           "profile` with tune's sources and options)" if stale else "there is no cpu_scaling")
    if ref == 1:
        return ({v: (base, "assumed") for v in vcpus},
                "CPU part: single-threaded (threads_used_by_cpu_part = 1), so assumed flat across "
                f"vCPUs, not measured ({why}); run `offload profile` to measure it", "assumed")
    if stale:
        raise UserError(f"the CPU part uses {ref} threads and {why}", file=profile.path)
    raise UserError("cpu_scaling is missing, and the CPU part uses "
                    f"{ref} threads: run `offload profile DIR --program app.c` to measure how it "
                    "scales with cores", file=profile.path)


def shares(gpu: GpuSlice, policy: str, occupancy: int | None) -> tuple[float, float]:
    """(busy, idle) share of the board's time a time-sliced vGPU gets under the scheduler policy."""
    running = min(occupancy or gpu.max_instances, gpu.max_instances)
    if policy == "fixed-share":
        share = 1.0 / gpu.max_instances
        return share, share
    if policy == "equal-share":
        return 1.0 / running, 1.0 / running
    if policy == "best-effort":
        return 1.0 / running, 1.0
    raise ValueError(policy)


@dataclass(frozen=True)
class Predictions:
    items: tuple[Prediction, ...]
    board: BoardTimes
    notes: tuple[str, ...]      # where each part's numbers come from, in words
    cpu_scaling: str            # "measured" or "assumed": how the CPU part's time follows the vCPUs


def predict_all(profile: Profile, catalog: Catalog, occupancy: int | None) -> Predictions:
    """One prediction per (CPU size, vGPU slice) pair, and the notes that say what is modeled."""
    check_sizable(profile)
    board = board_times(profile, catalog)
    cpu_times, cpu_note, cpu_scaling = cpu_seconds(profile, [c.vcpus for c in catalog.cpus])
    notes = [cpu_note, *board.notes]
    if catalog.policy == "mig":
        notes.append("MIG: each region's time is divided by the slice's compute fraction if it is "
                     "compute-bound on the board, by its memory fraction if memory-bound, and by the "
                     "smaller of the two where the profile has no flop and byte counts")
    else:
        notes.append(f"scheduler {catalog.policy}: a slice's kernel time is the whole board's divided "
                     "by its share" + (" (busy end: the board full of this type; idle end: the whole board)"
                                       if catalog.policy == "best-effort" else ""))
    out = []
    for gpu in catalog.gpus:
        if catalog.policy == "mig":
            slice_seconds = sum(s / _mig_fraction(gpu, bound) for s, bound in board.regions)
            idle_seconds = slice_seconds
            share = board.kernel_seconds / slice_seconds if slice_seconds else gpu.compute_fraction
        else:
            share, idle = shares(gpu, catalog.policy, occupancy)
            slice_seconds, idle_seconds = board.kernel_seconds / share, board.kernel_seconds / idle
        whole_board = catalog.policy != "mig" and gpu.max_instances == 1
        gpu_kind = board.kind if whole_board else "modeled"
        violations = []
        if profile.device_memory_bytes > gpu.framebuffer_gib * GIB:
            violations.append(f"device memory peak {profile.device_memory_bytes / GIB:.2f} GiB does not fit "
                              f"the {gpu.framebuffer_gib:g} GiB framebuffer of {gpu.vgpu_type}")
        for cpu in catalog.cpus:
            host = list(violations)
            if profile.host_memory_bytes > cpu.memory_gib * GIB:
                host.append(f"host memory peak {profile.host_memory_bytes / GIB:.2f} GiB does not fit "
                            f"the VM's {cpu.memory_gib:g} GiB")
            seconds, kind = cpu_times[cpu.vcpus]
            out.append(Prediction(cpu, gpu, seconds, kind, slice_seconds, idle_seconds, gpu_kind, share,
                                  board.transfer_seconds, board.kind, tuple(host)))
    return Predictions(tuple(out), board, tuple(notes), cpu_scaling)


def _mig_fraction(gpu: GpuSlice, compute: bool | None) -> float:
    if compute is None:
        return min(gpu.compute_fraction, gpu.memory_fraction)
    return gpu.compute_fraction if compute else gpu.memory_fraction
