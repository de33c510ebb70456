"""The contract between an instrumented program and the runtime that dispatches its regions.

The host build wraps each region's loop, in place, as

    { if (!__offload_dispatch(ID, (void *[]){ADDRS}, (const long long []){SIZES})) {
        const double __offload_t0 = __offload_clock(); { <the loop> } __offload_cpu_done(ID, __offload_t0); } }

(all on the loop's own lines); the C runtime adds up each region's time on the CPU.

ADDRS holds the address of every variable the region touches, one slot each, in this order:
  1. `param`     each of Region.params, in kernel parameter order;
  2. `reduction` each reduction variable, in Region.reductions order;
  3. `loopvar`   each mapped loop's variable that is declared before the loop, outermost first
                 (the runtime writes its final value back);
  4. `place`     each field the region loads only to reach another one (`m->g` of `m->g->u`),
                 named by its expression: nothing the region writes may overlap its bytes.
SIZES[k] is sizeof the variable of slot k where C knows it (arrays, scalars), else -1
(pointer variables, arrays of incomplete type); SIZES[n + k], for n slots, is the size of one
element of slot k (of its value, for a scalar). A slot's kind says how to read it:
  pointer  ADDRS[k] is the address of a pointer variable: the data is at *(void **)ADDRS[k];
  array    ADDRS[k] is the array itself (its first element);
  scalar   ADDRS[k] is the value; `value` says how its SIZES[k] bytes read (int, uint, float);
  place    ADDRS[k] is where the field lies, SIZES[k] bytes.
A slot's name is the variable's, or for a field loaded once at the region's entry the C
expression that reads it (`p->x`, `A.rowptr`): `&NAME` is what ADDRS holds.
When dispatch returns 0 the original loop runs on the CPU; non-zero means the runtime ran the
region and wrote back everything the loop would have left behind.

This module is plain data so the runner child process loads it without the C front end.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

DISPATCH = "__offload_dispatch"
CPU_CLOCK = "__offload_clock"
CPU_DONE = "__offload_cpu_done"
CPU_STARTED = "__offload_t0"
USER_MAIN = "__offload_user_main"
MANIFEST_SCHEMA = 1


@dataclass(frozen=True)
class Slot:
    index: int
    name: str
    role: str              # param | reduction | loopvar | place
    kind: str              # pointer | array | scalar | place
    element: str           # C type of one element (pointer, array) or of the value (scalar)
    value: str = ""        # scalars: int, uint or float
    sized: bool = True     # SIZES[k] is sizeof(name); False: it is -1
    op: str = ""           # reductions: +, *, min, max
    level: int = -1        # loop variables: depth in the mapped nest, outermost 0
    depth: int = 0         # pointers, arrays: subscripts from the variable to one element


@dataclass(frozen=True)
class HostRegion:
    """One wrapped region as the runtime sees it."""

    id: int
    name: str
    location: str          # file:line:col of the `for` keyword in the user's original source
    function: str
    slots: tuple[Slot, ...]
    twin: str = ""         # symbol of the CPU twin in the library; "" when it did not build
    twin_error: str = ""   # why there is no twin

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "HostRegion":
        return cls(**{**data, "slots": tuple(Slot(**slot) for slot in data["slots"])})


def read_manifest(path: str) -> dict:
    """The manifest a host build wrote: {"regions": {id: HostRegion}, ...the rest as stored}."""
    with open(path) as handle:
        data = json.load(handle)
    if data.get("schema") != MANIFEST_SCHEMA:
        raise ValueError(f"{path}: manifest schema {data.get('schema')!r}, expected {MANIFEST_SCHEMA}")
    data["regions"] = {region["id"]: HostRegion.from_json(region) for region in data["regions"]}
    return data
