"""Side effects of functions: which library calls are pure, and what each user function reads
and writes (globals, and memory reached through its pointer parameters)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .model import Call, FunctionModel, MemoryAccess, ScalarAccess
from .pointers import PointsTo

PURE_MATH = {
    f + suffix
    for f in ("sin", "cos", "tan", "asin", "acos", "atan", "atan2", "sinh", "cosh", "tanh",
              "asinh", "acosh", "atanh", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p",
              "sqrt", "cbrt", "pow", "hypot", "fabs", "fmin", "fmax", "fmod", "floor", "ceil",
              "round", "trunc", "rint", "nearbyint", "lround", "llround", "erf", "erfc",
              "tgamma", "lgamma", "copysign", "fma", "fdim", "remainder", "ldexp", "logb",
              "ilogb", "nextafter")
    for suffix in ("", "f", "l")
} | {"abs", "labs", "llabs", "isnan", "isinf", "isfinite", "signbit", "__builtin_expect",
     "__isnan", "__isinf", "__isnanf", "__isinff", "__finite", "__finitef", "__fpclassify",
     "__signbit", "__signbitf", "__builtin_isnan", "__builtin_isinf", "__builtin_fabs"}


@dataclass
class Summary:
    """What calling a function does, as far as a caller's loop is concerned."""

    name: str
    impure: Optional[str] = None                       # why it cannot run on the GPU
    reads_params: set[int] = field(default_factory=set)
    reads_globals: set[str] = field(default_factory=set)

    @property
    def pure(self) -> bool:
        return self.impure is None


def library_summary(name: str) -> Summary:
    if name in PURE_MATH:
        return Summary(name)
    return Summary(name, impure=f"calls `{name}`, a library function with side effects or unknown effects")


class Summaries:
    """Summaries of every user function, computed on demand (recursion is impure)."""

    def __init__(self, models: dict[str, FunctionModel]):
        self.models = models
        self._done: dict[str, Summary] = {}
        self._active: set[str] = set()

    def of(self, name: Optional[str]) -> Summary:
        if name is None:
            return Summary("(pointer)", impure="calls a function through a pointer")
        if name in self._done:
            return self._done[name]
        if name not in self.models:
            return library_summary(name)
        if name in self._active:
            return Summary(name, impure=f"calls `{name}` recursively")
        self._active.add(name)
        summary = self._summarise(self.models[name])
        self._active.discard(name)
        self._done[name] = summary
        return summary

    def _summarise(self, model: FunctionModel) -> Summary:
        summary = Summary(model.name)
        points = PointsTo(model)

        def origins_of(base: Optional[str]) -> frozenset[str]:
            return points.origins(base) if base is not None else frozenset({"unknown"})

        for event in model.events:
            if isinstance(event, MemoryAccess):
                origins = origins_of(event.base)
                if event.write:
                    external = [o for o in origins if not o.startswith(("heap:", "obj:"))
                                or _is_global_obj(model, o)]
                    if external:
                        what = event.base or event.text
                        summary.impure = (f"calls `{model.name}`, which writes `{what}` "
                                          f"({event.location})")
                        return summary
                self._note_reads(model, summary, origins)
            elif isinstance(event, ScalarAccess):
                var = model.variables.get(event.name)
                if var and var.storage in ("global", "static") and event.write:
                    summary.impure = f"calls `{model.name}`, which writes global `{event.name}` ({event.location})"
                    return summary
                if var and var.storage == "global" and event.read:
                    summary.reads_globals.add(event.name)
            elif isinstance(event, Call):
                callee = self.of(event.name)
                if not callee.pure:
                    summary.impure = (callee.impure if event.name not in self.models
                                      else f"calls `{model.name}`, which {callee.impure}")
                    return summary
                summary.reads_globals |= callee.reads_globals
                for index in callee.reads_params:
                    if index < len(event.args):
                        self._note_arg_reads(model, summary, points, event.args[index])
        return summary

    @staticmethod
    def _note_reads(model: FunctionModel, summary: Summary, origins) -> None:
        for origin in origins:
            if origin.startswith("param:"):
                var = model.variables[origin[6:]]
                summary.reads_params.add(var.param_index)
            elif origin.startswith(("global:", "obj:")) and _is_global_obj(model, origin):
                summary.reads_globals.add(origin.split(":", 1)[1])

    def _note_arg_reads(self, model, summary, points, arg) -> None:
        self._note_reads(model, summary, points._expr(arg, frozenset()))


def _is_global_obj(model: FunctionModel, origin: str) -> bool:
    if origin.startswith("global:"):
        return True
    if origin.startswith("obj:"):
        var = model.variables.get(origin[4:])
        return bool(var and var.storage in ("global", "static"))
    return False
