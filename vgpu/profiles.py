"""NVIDIA vGPU profiles: what a type's name and description say, and which type is a slice.

The driver names its types `GRID T4-4Q` (older boards) or `NVIDIA L4-4C`: board model,
framebuffer in GB, series letter, and for B profiles an optional head count (`T4-2B4`);
MIG-backed types put the compute slices first (`A100-3-20C`). The mdev description adds
the exact framebuffer and the per-board instance limit:
`num_heads=1, frl_config=60, framebuffer=4096M, max_resolution=4096x2160, max_instance=4`.
libvirt's node-device XML and the SR-IOV sysfs files carry only the name, so the name alone
must be enough; the description refines it where present.

A slice of a board is the profile whose framebuffer is that share of the board's memory:
1/4 of a 16 GB T4 is the 4 GB profile. The board's memory is taken from the profiles
themselves (the one-instance profile is the whole board), so no table of boards is needed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

# Series letters and what NVIDIA calls them. C (compute) is the default: offload runs CUDA.
SERIES = {"C": "compute (vCS)", "Q": "virtual workstation (vWS)", "B": "virtual PC (vPC)",
          "A": "virtual applications (vApps)"}
DEFAULT_SERIES = "C"

_NAME = re.compile(r"^(?:GRID |NVIDIA )?(?P<model>[A-Za-z0-9]+?)-(?:(?P<gpcs>\d+)-)?(?P<gb>\d+)"
                   r"(?P<series>[QCAB])(?P<heads>\d*)$")
_FRAMEBUFFER = re.compile(r"\bframebuffer=(\d+)M\b")
_MAX_INSTANCE = re.compile(r"\bmax_instance=(\d+)\b")


@dataclass(frozen=True)
class Profile:
    """One vGPU profile, e.g. T4-4C: 4096 MiB of a T4's framebuffer, compute series."""

    model: str                  # board model as the driver spells it: "T4", "RTX6000", "L4"
    framebuffer_mib: int
    series: str                 # Q, C, B or A
    max_instances: int | None   # per board, when the description says
    short: str                  # "T4-4C": the name without the GRID/NVIDIA prefix
    mig_slices: int | None = None   # compute slices of a MIG-backed type ("A100-3-20C")

    def to_json(self) -> dict:
        return {"model": self.model, "short": self.short, "framebuffer_mib": self.framebuffer_mib,
                "series": self.series, "max_instances": self.max_instances,
                "mig_slices": self.mig_slices}


def parse_profile(name: str, description: str = "") -> Profile | None:
    """The profile a type's name (and description, if any) describe; None if not an NVIDIA vGPU."""
    match = _NAME.match(name.strip())
    if match is None:
        return None
    framebuffer = _FRAMEBUFFER.search(description)
    max_instance = _MAX_INSTANCE.search(description)
    short = name.strip().split(" ", 1)[-1]
    return Profile(model=match["model"].upper(),
                   framebuffer_mib=int(framebuffer[1]) if framebuffer else int(match["gb"]) * 1024,
                   series=match["series"],
                   max_instances=int(max_instance[1]) if max_instance else None,
                   short=short,
                   mig_slices=int(match["gpcs"]) if match["gpcs"] else None)


def same_model(a: str, b: str) -> bool:
    """Board models compare without case, spaces or a vendor prefix ("Tesla T4" is "T4")."""
    def norm(s: str) -> str:
        s = s.upper()
        for prefix in ("NVIDIA ", "TESLA ", "GRID "):
            s = s.removeprefix(prefix)
        return s.replace(" ", "").replace("_", "-")
    return norm(a) == norm(b)


def board_framebuffer_mib(profiles: list[Profile], model: str) -> int | None:
    """The whole board's framebuffer, read off its profiles: the one-instance profile's
    framebuffer, or the largest framebuffer when no description gives the limits."""
    own = [p for p in profiles if same_model(p.model, model) and p.mig_slices is None]
    if not own:
        return None
    whole = [p.framebuffer_mib for p in own if p.max_instances == 1]
    return max(whole or [p.framebuffer_mib for p in own])


class SliceError(ValueError):
    """No profile is that slice of the board; the message lists what there is."""


def profile_for_slice(profiles: list[Profile], model: str, fraction: float,
                      series: str = DEFAULT_SERIES) -> Profile:
    """The profile of `series` whose framebuffer is `fraction` of a `model` board."""
    if series not in SERIES:
        raise SliceError(f"unknown vGPU series {series!r}; choose one of {', '.join(SERIES)}")
    if not 0 < fraction <= 1:
        raise SliceError(f"a GPU slice is a fraction in (0, 1], got {fraction:g}")
    board = board_framebuffer_mib(profiles, model)
    if board is None:
        raise SliceError(f"no vGPU profiles of a {model} board on this host")
    want = Fraction(fraction).limit_denominator(64) * board
    candidates = sorted({p for p in profiles if same_model(p.model, model) and p.series == series
                         and p.mig_slices is None}, key=lambda p: (p.framebuffer_mib, p.short))
    for profile in candidates:
        # Driver framebuffers are rounded (a T4-16Q has 16384M of a 15360 MiB-usable board).
        if abs(profile.framebuffer_mib - want) <= 0.02 * board:
            return profile
    have = ", ".join(f"{p.short} ({Fraction(p.framebuffer_mib, board).limit_denominator(64)})"
                     for p in candidates) or "none"
    raise SliceError(f"no {series}-series profile is {Fraction(fraction).limit_denominator(64)} "
                     f"of a {model} ({board} MiB); {series}-series profiles: {have}")
