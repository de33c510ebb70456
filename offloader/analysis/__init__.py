"""The loop analyzer: which `for` loops of a C program may run in parallel, and why.

    result = analyze_program(BuildOptions(sources=("app.c",)))
    result.to_json()      # the `offload analyze --json` contract (schema 1)
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

from pycparser import c_ast

from ..buildopts import BuildOptions
from ..frontend.parse import TranslationUnit, parse
from ..frontend.preprocess import preprocess
from ..frontend.sources import read_source
from .ctypes_model import TypeTable, Variable
from .effects import Summaries
from .model import FunctionModel, FunctionWalker, Loop
from .verdicts import FunctionAnalysis, LoopVerdict

SCHEMA = 1


@dataclass(frozen=True)
class Program:
    """The parsed program, for stages that work in-process (kernel generation)."""

    units: tuple[TranslationUnit, ...]
    models: dict[str, FunctionModel]
    summaries: Summaries


@dataclass
class AnalysisResult:
    """Verdicts for every loop of a program, in source order, plus timings in seconds."""

    main_file: str
    verdicts: list[LoopVerdict]
    timings: dict[str, float] = field(default_factory=dict)
    selection: dict[int, tuple[bool, str]] = field(default_factory=dict)   # id -> (offload, why)
    functions: list[dict] = field(default_factory=list)
    program: Program | None = field(default=None, repr=False)

    def to_json(self) -> dict:
        return {"schema": SCHEMA, "file": self.main_file,
                "loops": [self._loop_json(k, v) for k, v in enumerate(self.verdicts)],
                "functions": self.functions}

    def _loop_json(self, index: int, v: LoopVerdict) -> dict:
        ids = {verdict.loop.id: k for k, verdict in enumerate(self.verdicts)}
        offload, why = self.selection.get(index, (v.verdict == "parallel", ""))
        entry = {
            "id": index, "file": v.loop.location.file, "line": v.loop.location.line,
            "column": v.loop.location.column, "function": v.loop.function,
            "var": v.header.var if v.header else None, "depth": v.loop.depth,
            "parent": ids.get(v.loop.parent) if v.loop.parent is not None else None,
            "verdict": v.verdict,
            "reductions": [{"var": n, "op": op} for n, op in sorted(v.reductions.items())],
            "conditions": ([{"kind": "no-alias", "vars": sorted(v.no_alias)}] if v.no_alias else [])
                          + [{"kind": "distinct-rows", "vars": [n]} for n in sorted(v.distinct_rows)]
                          + ([{"kind": "not-written", "vars": sorted(v.not_written)}] if v.not_written else []),
            "reasons": list(v.reasons),
            "private": sorted(v.private), "lastprivate": sorted(v.lastprivate),
            "dependences": v.dependences, "hints": list(v.hints),
            "reads": sorted(v.reads), "writes": sorted(v.writes),
            "trip": v.header.trip() if v.header else None,
            "offload": offload,
        }
        if why:
            entry["selection"] = why
        return entry


def _globals(ast: c_ast.FileAST, types: TypeTable) -> dict[str, Variable]:
    found = {}
    for node in ast.ext:
        if isinstance(node, c_ast.Decl) and node.name and not isinstance(node.type, c_ast.FuncDecl):
            found[node.name] = Variable(node.name, types.resolve(node.type), "global", None, node)
    return found


def _unfollowed_loops(func: c_ast.FuncDef, unit: TranslationUnit, loop_ids, exc: Exception) -> list[LoopVerdict]:
    """Loops of a function the model could not be built for: reported, never offloaded."""
    verdicts = []
    stack: list[tuple[c_ast.Node, int, Loop | None]] = [(func.body, 0, None)]
    while stack:
        node, depth, parent = stack.pop()
        if isinstance(node, c_ast.For):
            loop_id = next(loop_ids)
            loop = Loop(loop_id, node, func.decl.name, unit.location(node.coord, "for"), depth,
                        parent.id if parent else None, (parent.chain if parent else ()) + (loop_id,), (), -1)
            verdicts.append(LoopVerdict(loop, None, "not-offloadable",
                                        [f"the analyzer cannot follow this function ({type(exc).__name__}: {exc})"]))
            parent, depth = loop, depth + 1
        stack.extend((child, depth, parent) for _, child in reversed(list(node.children())))
    return verdicts


def analyze_program(options: BuildOptions) -> AnalysisResult:
    """Preprocess, parse and analyse every source file of the program."""
    timings = {"preprocess": 0.0, "parse": 0.0, "model": 0.0, "dependence": 0.0}
    units: list[TranslationUnit] = []
    for path in options.sources:
        source = read_source(path)
        started = time.perf_counter()
        text = preprocess(path, options.preprocessor_flags())
        timings["preprocess"] += time.perf_counter() - started
        started = time.perf_counter()
        units.append(parse(source, text))
        timings["parse"] += time.perf_counter() - started

    started = time.perf_counter()
    loop_ids = itertools.count()
    models: dict[str, FunctionModel] = {}
    order: list[tuple[FunctionModel, set[str]]] = []
    fallback: list[LoopVerdict] = []
    for unit in units:
        types = TypeTable().collect(unit.ast)
        globals_ = _globals(unit.ast, types)
        for node in unit.ast.ext:
            if isinstance(node, c_ast.FuncDef) and node.coord and node.coord.file == unit.source.path:
                try:
                    model = FunctionWalker(node, globals_, types, unit, loop_ids).run()
                except (RecursionError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
                    fallback += _unfollowed_loops(node, unit, loop_ids, exc)
                    continue
                models[model.name] = model
                order.append((model, types.enumerators))
    timings["model"] = time.perf_counter() - started

    started = time.perf_counter()
    summaries = Summaries(models)
    verdicts = list(fallback)
    for model, enumerators in order:
        verdicts += FunctionAnalysis(model, summaries, enumerators).run()
    verdicts.sort(key=lambda v: (options.sources.index(v.loop.location.file)
                                 if v.loop.location.file in options.sources else 0,
                                 v.loop.location.line, v.loop.location.column))
    timings["dependence"] = time.perf_counter() - started
    functions = [_function_json(models[name], summaries.of(name)) for name in models]
    return AnalysisResult(options.sources[0], verdicts, timings, functions=functions,
                          program=Program(tuple(units), models, summaries))


def _function_json(model: FunctionModel, summary) -> dict:
    """What a user function does, as callers' loops see it (pure ones can become __device__)."""
    params = {v.param_index: v.name for v in model.variables.values() if v.storage == "param"}
    location = model.node.decl.coord
    return {"name": model.name, "file": location.file, "line": location.line,
            "pure": summary.pure, "why_not": summary.impure,
            "reads_params": sorted(params[i] for i in summary.reads_params if i in params),
            "reads_globals": sorted(summary.reads_globals)}
