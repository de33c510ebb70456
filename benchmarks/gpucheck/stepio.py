"""What a step process gets (the check's context) and gives back (its output file)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from .record import read_json, write_json

STOP = 3                    # a step's exit status when the check cannot go on (preflight)


@dataclass
class Context:
    """Written by the check before each step, read by the step."""

    root: str
    work: str
    dry: bool
    smoke: bool
    device: str                         # "cuda" | "emu"
    library: Optional[str] = None       # "pycuda" | "cupy" | None (the emulator)
    gpu_model: str = "h200"             # gpumodel's name for the GPU (the dry run models an H200)
    ceilings: dict = field(default_factory=dict)     # what the ceilings step measured, for rates

    def save(self, path: Path) -> None:
        write_json(path, asdict(self))

    @classmethod
    def load(cls, path: Path) -> "Context":
        return cls(**json.loads(path.read_text()))

    @property
    def timing(self) -> str:
        return "emulated" if self.device == "emu" else "measured"


class StepOutput:
    """What a step found so far, rewritten atomically after every part: a step killed at its
    time box leaves everything before the part it was in."""

    def __init__(self, path: Path):
        self.path = path
        self.data = read_json(path) or {}

    def set(self, **fields) -> None:
        self.data.update(fields)
        write_json(self.path, self.data)

    def finish(self, status: str, reason: Optional[str] = None) -> int:
        """The step's exit status for its status."""
        self.set(status=status, reason=reason)
        return 0 if status == "ok" else 1
