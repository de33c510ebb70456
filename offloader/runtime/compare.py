"""Program-level verification: the offloaded program's output against the CPU original's.

Outputs are split into words and numbers; words must match exactly and numbers within a
relative tolerance. Tokens that differ between two runs of the CPU original itself (timers,
seeds, addresses) are unstable: they are reported and left out. `--ignore PATTERN` removes
matching text from every output before comparing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|nan|inf)|\S+", re.I)
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|nan|inf)$", re.I)


@dataclass(frozen=True)
class Comparison:
    same: bool
    mismatch: str          # an excerpt around the first difference, "" when same
    unstable: int          # tokens left out because the CPU original itself varies


def tokens(text: str, ignore: tuple[str, ...] = ()) -> list[str]:
    for pattern in ignore:
        text = re.sub(pattern, " ", text)
    return _TOKEN.findall(text)


def unstable_positions(first: list[str], second: list[str]) -> set[int]:
    """Token positions where two runs of the CPU original differ."""
    if len(first) != len(second):
        return set(range(max(len(first), len(second))))
    return {k for k, (a, b) in enumerate(zip(first, second)) if a != b}


def compare_outputs(name: str, reference: str, again: str, offloaded: str, rtol: float,
                    ignore: tuple[str, ...] = ()) -> Comparison:
    ref, ref2, got = tokens(reference, ignore), tokens(again, ignore), tokens(offloaded, ignore)
    unstable = unstable_positions(ref, ref2)
    if len(ref) != len(got) and not unstable:
        return Comparison(False, f"{name}: {len(got)} tokens instead of {len(ref)}; "
                                 f"first difference {_excerpt(ref, got)}", 0)
    for k, (a, b) in enumerate(zip(ref, got)):
        if k in unstable or a == b:
            continue
        if _NUMBER.match(a) and _NUMBER.match(b) and _close(float(a), float(b), rtol):
            continue
        return Comparison(False, f"{name}: token {k + 1}: expected {a!r}, got {b!r} "
                                 f"(… {' '.join(ref[max(0, k - 3):k + 4])} …)", len(unstable))
    return Comparison(True, "", len(unstable))


def _close(a: float, b: float, rtol: float) -> bool:
    if a != a and b != b:                      # NaN equals NaN
        return True
    return abs(a - b) <= 1e-300 + rtol * abs(a)


def _excerpt(ref: list[str], got: list[str]) -> str:
    k = next((i for i, (a, b) in enumerate(zip(ref, got)) if a != b), min(len(ref), len(got)))
    return f"at token {k + 1}: expected {' '.join(ref[k:k + 3])!r}, got {' '.join(got[k:k + 3])!r}"
