"""The catalog: which CPU sizes and vGPU slices a VM can have, at what price, shared how.

A catalog is a TOML file with `[[cpu]]` sizes, `[[gpu]]` slices of one GPU model and a
`[scheduler] policy` saying how slices share the board. The default (catalog_default.toml)
mirrors the seed paper's host: a T4 in 1/4, 1/2 and whole slices, and 1, 2 and 4 vCPUs.
Everything is validated here, so the rest of the sizer can trust these objects.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from offloader.errors import UserError

from .gpu_models import Board, known_names, lookup
from .validate import Fields

POLICIES = ("equal-share", "fixed-share", "best-effort", "mig")
DEFAULT_CATALOG = Path(__file__).with_name("catalog_default.toml")


@dataclass(frozen=True)
class CpuSize:
    name: str
    vcpus: int
    memory_gib: float
    price_per_hour: float


@dataclass(frozen=True)
class GpuSlice:
    name: str
    model: str
    fraction: float             # nominal share of the board: 0.25, 0.5, 1
    framebuffer_gib: float
    vgpu_type: str
    max_instances: int          # of this type on one board
    price_per_hour: float
    compute_fraction: float | None = None   # MIG only: sevenths of the SMs
    memory_fraction: float | None = None    # MIG only: eighths of memory bandwidth


@dataclass(frozen=True)
class Catalog:
    path: str
    cpus: tuple[CpuSize, ...]
    gpus: tuple[GpuSlice, ...]
    policy: str
    model: str                  # the one GPU model all slices are cut from
    board: Board | None         # its specs, when the model is in gpu_models' table


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Read and validate a catalog; None means the default that ships with offload."""
    path = Path(path) if path is not None else DEFAULT_CATALOG
    shown = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError("no such catalog file", file=shown) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read the catalog: {exc}", file=shown) from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"not valid TOML: {exc}", file=shown) from None

    top = Fields(data, "", shown)
    cpu_tables = top.list("cpu")
    gpu_tables = top.list("gpu")
    if not cpu_tables:
        top.fail("[[cpu]] needs at least one entry")
    if not gpu_tables:
        top.fail("[[gpu]] needs at least one entry")
    if "scheduler" not in top.table:
        top.fail("[scheduler] is missing (policy = one of " + ", ".join(POLICIES) + ")")
    policy = Fields(top.table["scheduler"], "[scheduler]", shown).string("policy", choices=POLICIES)

    cpus = tuple(_cpu(t, i, shown) for i, t in enumerate(cpu_tables, 1))
    gpus = tuple(_gpu(t, i, shown) for i, t in enumerate(gpu_tables, 1))
    _unique([c.name for c in cpus], "[[cpu]]", shown)
    _unique([g.name for g in gpus], "[[gpu]]", shown)

    model = gpus[0].model
    for i, gpu in enumerate(gpus, 1):
        if gpu.model != model:
            raise UserError(f"[[gpu]] #{i} {gpu.name!r}: model {gpu.model!r} differs from the first "
                            f"entry's {model!r}; a catalog describes slices of one GPU model", file=shown)
    board = lookup(model)
    if board is not None:
        for i, gpu in enumerate(gpus, 1):
            if gpu.framebuffer_gib > board.memory_gib:
                raise UserError(f"[[gpu]] #{i} {gpu.name!r}: framebuffer_gib {gpu.framebuffer_gib:g} is "
                                f"more than the {board.name}'s {board.memory_gib:g} GiB", file=shown)
    if policy == "mig":
        if board is None:
            raise UserError(f"[scheduler] policy 'mig' needs a GPU model known to support MIG; "
                            f"{model!r} is not in the table ({known_names()})", file=shown)
        if not board.mig:
            raise UserError(f"[scheduler] policy 'mig' is refused: the {board.name} has no MIG "
                            "(use equal-share, fixed-share or best-effort)", file=shown)
        for i, gpu in enumerate(gpus, 1):
            for key, parts in (("compute_fraction", 7), ("memory_fraction", 8)):
                if getattr(gpu, key) is None:
                    raise UserError(f"[[gpu]] #{i} {gpu.name!r}: {key} is missing (needed by the mig "
                                    f"scheduler policy; in 1/{parts} steps)", file=shown)
    return Catalog(shown, cpus, gpus, policy, model, board)


def _cpu(table: object, index: int, file: str) -> CpuSize:
    name = _entry_name(table, "[[cpu]]", index, file)
    f = Fields(table, f"[[cpu]] #{index} {name!r}", file)
    return CpuSize(name, f.integer("vcpus", minimum=1), f.number("memory_gib", positive=True),
                   f.number("price_per_hour", positive=True))


def _gpu(table: object, index: int, file: str) -> GpuSlice:
    name = _entry_name(table, "[[gpu]]", index, file)
    f = Fields(table, f"[[gpu]] #{index} {name!r}", file)
    return GpuSlice(name, f.string("model"), f.number("fraction", positive=True, at_most=1),
                    f.number("framebuffer_gib", positive=True), f.string("vgpu_type"),
                    f.integer("max_instances", minimum=1), f.number("price_per_hour", positive=True),
                    _sevenths_or_eighths(f, "compute_fraction", 7), _sevenths_or_eighths(f, "memory_fraction", 8))


def _sevenths_or_eighths(f: Fields, key: str, parts: int) -> float | None:
    """A MIG fraction, written as a number (0.2857) or a string ("2/7"), in 1/parts steps."""
    value = f.table.get(key)
    if value is None:
        return None
    try:
        fraction = Fraction(value) if isinstance(value, str) else Fraction(value).limit_denominator(64)
    except (ValueError, ZeroDivisionError, TypeError):
        fraction = None
    if isinstance(value, bool) or fraction is None or not 0 < fraction <= 1 \
            or abs(fraction * parts - round(fraction * parts)) > 1e-3:
        f.fail(f"{key} must be a multiple of 1/{parts} in (0, 1], such as \"1/{parts}\"; got {value!r}")
    return float(fraction)


def _entry_name(table: object, kind: str, index: int, file: str) -> str:
    return Fields(table, f"{kind} #{index}", file).string("name")


def _unique(names: list[str], kind: str, file: str) -> None:
    seen = set()
    for name in names:
        if name in seen:
            raise UserError(f"{kind}: two entries are named {name!r}", file=file)
        seen.add(name)
