"""Where a vGPU of a given profile can go, and why not when it cannot.

Time-sliced NVIDIA boards (a T4, and every board in the default time-sliced mode) run one
vGPU type at a time: once the first instance exists, the driver reports zero free instances
of every other type on that board until the last one is removed. The rule is applied here
from the vGPUs that exist, not only read from `available_instances`, so a refusal can say
which type blocks which board, and a dry run from a listing gets it right too.

Among boards that can take the vGPU, one already running that type comes first: packing
keeps whole boards free for other types.
"""

from __future__ import annotations

from dataclasses import dataclass

from .host import Board, Host, VgpuType
from .profiles import Profile, profile_for_slice, same_model


@dataclass(frozen=True)
class Placement:
    board: Board
    type: VgpuType


class PlacementError(ValueError):
    """No board can take the vGPU; the message says why for each board."""


def blocking_type(board: Board, vgpu_type: VgpuType) -> str | None:
    """The name of the other type that already runs on this board, if any."""
    other = next((v for v in board.vgpus if v.type_id != vgpu_type.id), None)
    return other.type_name if other else None


def find_type(host: Host, wanted: str) -> list[tuple[Board, VgpuType]]:
    """Every (board, type) whose type ID, full name or short profile name is `wanted`."""
    key = wanted.strip().upper()
    return [(b, t) for b in host.boards for t in b.types
            if key in (t.id.upper(), t.name.upper()) or (t.profile and t.profile.short.upper() == key)]


def profile_of_slice(host: Host, model: str, fraction: float, series: str) -> Profile:
    """The profile that is `fraction` of a `model` board, from the profiles this host offers."""
    profiles = [t.profile for b in host.boards for t in b.types if t.profile]
    if not any(same_model(p.model, model) for p in profiles):
        models = sorted({p.model for p in profiles})
        raise PlacementError(f"this host has no {model} vGPU types (it has: {', '.join(models) or 'none'})")
    return profile_for_slice(profiles, model, fraction, series)


def place(host: Host, wanted: str) -> Placement:
    """The board and type for one new vGPU of the type or profile `wanted` (e.g. "T4-4C")."""
    matches = find_type(host, wanted)
    if not matches:
        full = [f"{b.address} ({len(b.vgpus)} vGPUs running)" for b in host.boards
                if b.layout == "sriov" and b.vgpus and not any(t.available for t in b.types)]
        raise PlacementError(f"no board on {host.source} offers vGPU type {wanted!r}"
                             + (f"; SR-IOV boards that can create nothing more: {', '.join(full)}"
                                if full else ""))
    free, reasons = [], []
    for board, vgpu_type in matches:
        blocker = blocking_type(board, vgpu_type)
        used = sum(1 for v in board.vgpus if v.type_id == vgpu_type.id)
        if blocker is not None:
            reasons.append(f"{board.address} runs {blocker} (a time-sliced board runs one type at a time)")
        elif vgpu_type.available <= 0:
            limit = vgpu_type.profile.max_instances if vgpu_type.profile else None
            reasons.append(f"{board.address} has no free {vgpu_type.name} instance"
                           + (f" ({used} of {limit} in use)" if limit else ""))
        else:
            free.append((used == 0, board.address, board, vgpu_type))
    if not free:
        raise PlacementError(f"no free {wanted} instance: " + "; ".join(reasons))
    _, _, board, vgpu_type = min(free, key=lambda f: (f[0], f[1]))
    return Placement(board, vgpu_type)
