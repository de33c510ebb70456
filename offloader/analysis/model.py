"""The loop-nest model of one function: loops, and every memory access, scalar access, call
and control transfer in evaluation order, each tagged with the loops around it.

Events carry a statement path and a sequence number so later passes can ask "does this
write always happen before that read in the same iteration?" without re-walking the AST.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Optional

from pycparser import c_ast, c_generator

from ..errors import SourceLocation
from .ctypes_model import CType, TypeTable, Variable, UNKNOWN
from .reductions import match_reduction

_GENERATOR = c_generator.CGenerator()
StmtPath = tuple[tuple[int, int], ...]      # ((block id, index in block), ...)


@dataclass(frozen=True)
class Component:
    """One step of an access path: an index (`[expr]`) or a struct field (`.name`)."""

    index: Optional[c_ast.Node] = None
    field: Optional[str] = None


@dataclass(frozen=True)
class Event:
    seq: int
    chain: tuple[int, ...]          # ids of the for-loops around the event, outermost first
    path: StmtPath
    location: SourceLocation
    unconditional: bool             # executes whenever its statement does


@dataclass(frozen=True)
class MemoryAccess(Event):
    base: Optional[str]             # None: the model cannot name what is accessed
    components: tuple[Component, ...]
    write: bool
    read: bool
    text: str                       # the access as written, for messages
    through_loaded_pointer: bool = False
    through_rows: bool = False      # `a[i][j]` on `T **a`: row pointers loaded from `a` itself
    node: Optional[c_ast.Node] = None       # the access expression
    load: Optional[c_ast.Node] = None       # the first pointer on the path that is loaded from memory
    load_at: int = 0                        # how many of `components` lead to that pointer


@dataclass(frozen=True)
class ScalarAccess(Event):
    name: str
    write: bool
    read: bool
    reduction: Optional[str] = None          # operator when part of a reduction statement
    definition: Optional[c_ast.Node] = None  # right-hand side of `name = expr`
    address_taken: bool = False


@dataclass(frozen=True)
class Call(Event):
    name: Optional[str]             # None for calls through pointers
    args: tuple[c_ast.Node, ...]


@dataclass(frozen=True)
class Transfer(Event):
    kind: str                       # break, continue, return, goto, label (a goto target)
    target: Optional[int]           # for break/continue: the for-loop id it leaves, if any


@dataclass
class Guard:
    """A condition known to hold (`holds`) or to fail while the events numbered first..last
    run: the loop statement is inside `if (cond)` (or its `else`), or after an
    `if (cond) return;` (continue, break, exit()) in the same block."""

    cond: c_ast.Node
    holds: bool
    first: int
    last: int = -1


@dataclass
class Loop:
    id: int
    node: c_ast.For
    function: str
    location: SourceLocation
    depth: int
    parent: Optional[int]
    chain: tuple[int, ...]          # enclosing loops and itself
    path: StmtPath                  # statement path of the `for` statement itself
    body_block: int                 # block id of the body
    declared_inside: set[str] = field(default_factory=set)
    children: list[int] = field(default_factory=list)
    guards: tuple[Guard, ...] = ()  # conditions around the loop statement, outermost first


@dataclass
class FunctionModel:
    name: str
    node: c_ast.FuncDef
    variables: dict[str, Variable]
    loops: list[Loop] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    escaped: set[str] = field(default_factory=set)  # objects a pointer is made into (`&s.f`, `&a[k]`)
    types: Optional[TypeTable] = None
    _inside: dict[int, list[Event]] = field(default_factory=dict, repr=False)

    def events_in(self, loop: Loop) -> list[Event]:
        """Events inside the loop (its header's condition and step included), in order."""
        if loop.id not in self._inside:
            self._inside[loop.id] = [e for e in self.events if loop.id in e.chain]
        return self._inside[loop.id]


class FunctionWalker:
    """Walks one function body once and records the model."""

    def __init__(self, func: c_ast.FuncDef, globals_: dict[str, Variable], types: TypeTable,
                 unit, loop_ids: itertools.count):
        self.types = types
        self.locate = unit.location
        self.spelled = unit.text_at
        self.loop_ids = loop_ids
        self.blocks = itertools.count()
        self.seq = itertools.count()
        variables = dict(globals_)
        params = func.decl.type.args.params if func.decl.type.args else []
        for index, param in enumerate(params):
            if isinstance(param, c_ast.Decl) and param.name:
                variables[param.name] = Variable(param.name, types.resolve(param.type), "param", index, param)
        self.model = FunctionModel(func.decl.name, func, variables, types=types)
        self.loop_stack: list[Loop] = []
        self.breakables: list[Optional[int]] = []     # for-loop id, or None for while/switch
        self.continuables: list[Optional[int]] = []
        self.guards: list[Guard] = []

    # ---- entry -------------------------------------------------------------------------
    def run(self) -> FunctionModel:
        self._block(self.model.node.body, ())
        return self.model

    # ---- statements --------------------------------------------------------------------
    def _block(self, node: c_ast.Node, path: StmtPath) -> int:
        block = next(self.blocks)
        items = (node.block_items or []) if isinstance(node, c_ast.Compound) else [node]
        opened = []
        for index, item in enumerate(items):
            if isinstance(item, (c_ast.Case, c_ast.Default, c_ast.Label)):
                self._close(opened)         # a jump may enter here without passing the exits above
                opened = []
            self._stmt(item, path + ((block, index),))
            if isinstance(item, c_ast.If) and item.iffalse is None and _always_leaves(item.iftrue):
                opened.append(self._open(item.cond, False))
        self._close(opened)
        return block

    def _open(self, cond: c_ast.Node, holds: bool) -> Guard:
        guard = Guard(cond, holds, self._peek_seq())
        self.guards.append(guard)
        return guard

    def _close(self, guards: list[Guard]) -> None:
        for guard in reversed(guards):
            guard.last = self._peek_seq() - 1
            self.guards.remove(guard)

    def _guarded_block(self, node: c_ast.Node, path: StmtPath, cond: c_ast.Node, holds: bool) -> None:
        guard = self._open(cond, holds)
        self._block(node, path)
        self._close([guard])

    def _stmt(self, node: c_ast.Node, path: StmtPath, unconditional: bool = True) -> None:
        if node is None:
            return
        if isinstance(node, c_ast.Compound):
            self._block(node, path)
        elif isinstance(node, c_ast.For):
            self._for(node, path)
        elif isinstance(node, (c_ast.While, c_ast.DoWhile)):
            if isinstance(node, c_ast.While):
                self._expr(node.cond, path, unconditional)
            self.breakables.append(None)
            self.continuables.append(None)
            self._block(node.stmt, path)
            self.breakables.pop()
            self.continuables.pop()
            if isinstance(node, c_ast.DoWhile):
                self._expr(node.cond, path, False)
        elif isinstance(node, c_ast.If):
            reduction = match_reduction(node)
            self._expr(node.cond, path, unconditional, reduction=reduction)
            if reduction is None:
                self._guarded_block(node.iftrue, path, node.cond, True)
            else:
                self._reduction_if(node, path, reduction)
            if node.iffalse is not None:
                self._guarded_block(node.iffalse, path, node.cond, False)
        elif isinstance(node, c_ast.Switch):
            self._expr(node.cond, path, unconditional)
            self.breakables.append(None)
            self._block(node.stmt, path)
            self.breakables.pop()
        elif isinstance(node, (c_ast.Case, c_ast.Default)):
            if isinstance(node, c_ast.Case):
                self._expr(node.expr, path, False)
            for item in node.stmts or []:
                self._stmt(item, path, False)
        elif isinstance(node, c_ast.Label):
            self._transfer("label", node, path, None)
            self._stmt(node.stmt, path, unconditional)
        elif isinstance(node, c_ast.Break):
            self._transfer("break", node, path, self.breakables[-1] if self.breakables else None)
        elif isinstance(node, c_ast.Continue):
            self._transfer("continue", node, path, self.continuables[-1] if self.continuables else None)
        elif isinstance(node, c_ast.Return):
            if node.expr is not None:
                self._expr(node.expr, path, unconditional)
            self._transfer("return", node, path, None)
        elif isinstance(node, c_ast.Goto):
            self._transfer("goto", node, path, None)
        elif isinstance(node, c_ast.DeclList):
            for decl in node.decls:
                self._decl(decl, path, unconditional)
        elif isinstance(node, c_ast.Decl):
            self._decl(node, path, unconditional)
        elif isinstance(node, (c_ast.EmptyStatement, c_ast.Pragma, c_ast.Typedef, c_ast.StaticAssert)):
            return
        else:
            self._expr(node, path, unconditional, reduction=match_reduction(node))

    def _reduction_if(self, node: c_ast.If, path: StmtPath, reduction: tuple[str, str]) -> None:
        body = node.iftrue
        if isinstance(body, c_ast.Compound):
            body = body.block_items[0]
        self._expr(body, path, False, reduction=reduction)

    def _decl(self, decl: c_ast.Decl, path: StmtPath, unconditional: bool) -> None:
        if not decl.name or isinstance(decl.type, c_ast.FuncDecl):
            return
        storage = "static" if "static" in (decl.storage or []) else "local"
        if "extern" in (decl.storage or []):
            storage = "global"
        # Names are tracked by spelling: a declaration that shadows an earlier one is not
        # taken as loop-local, so accesses to the outer variable are never hidden.
        shadows = decl.name in self.model.variables
        self.model.variables[decl.name] = Variable(decl.name, self.types.resolve(decl.type), storage, None, decl)
        if storage == "local" and not shadows:
            for loop in self.loop_stack:
                loop.declared_inside.add(decl.name)
        if isinstance(decl.type, c_ast.ArrayDecl) and decl.type.dim is not None:
            self._expr(decl.type.dim, path, unconditional)
        if decl.init is not None:
            self._expr(decl.init, path, unconditional)
            definition = decl.init if not isinstance(decl.init, c_ast.InitList) else None
            self._scalar(decl.name, decl, path, unconditional, write=True, read=False, definition=definition)

    def _for(self, node: c_ast.For, path: StmtPath) -> None:
        parent = self.loop_stack[-1] if self.loop_stack else None
        loop_id = next(self.loop_ids)
        loop = Loop(id=loop_id, node=node, function=self.model.name,
                    location=self.locate(node.coord, "for"), depth=len(self.loop_stack),
                    parent=parent.id if parent else None,
                    chain=(parent.chain if parent else ()) + (loop_id,), path=path, body_block=-1,
                    guards=tuple(self.guards))
        if parent:
            parent.children.append(loop_id)
        self.model.loops.append(loop)
        # The init runs once, outside the loop's iterations; cond and next belong to them.
        if node.init is not None:
            self._stmt(node.init, path)
        self.loop_stack.append(loop)
        if node.cond is not None:
            self._expr(node.cond, path, True)
        self.breakables.append(loop_id)
        self.continuables.append(loop_id)
        loop.body_block = self._peek_block()
        self._block(node.stmt, path)
        self.breakables.pop()
        self.continuables.pop()
        if node.next is not None:
            self._expr(node.next, path, False)
        self.loop_stack.pop()

    def _peek_block(self) -> int:
        """The id the next _block call will use (itertools.count cannot peek)."""
        value = next(self.blocks)
        self.blocks = itertools.count(value)
        return value

    def _peek_seq(self) -> int:
        value = next(self.seq)
        self.seq = itertools.count(value)
        return value

    def _transfer(self, kind: str, node: c_ast.Node, path: StmtPath, target: Optional[int]) -> None:
        self.model.events.append(Transfer(next(self.seq), self._chain(), path,
                                          self.locate(node.coord, node.name if kind == "label" else kind),
                                          False, kind, target))

    # ---- expressions -------------------------------------------------------------------
    def _chain(self) -> tuple[int, ...]:
        return self.loop_stack[-1].chain if self.loop_stack else ()

    def _expr(self, node: Optional[c_ast.Node], path: StmtPath, unconditional: bool,
              reduction: Optional[tuple[str, str]] = None) -> None:
        if node is not None:
            _ExprVisitor(self, path, unconditional, reduction).visit(node, "read")

    def _scalar(self, name: str, node: c_ast.Node, path: StmtPath, unconditional: bool, *,
                write: bool, read: bool, reduction: Optional[str] = None,
                definition: Optional[c_ast.Node] = None, address_taken: bool = False) -> None:
        self.model.events.append(ScalarAccess(
            next(self.seq), self._chain(), path, self.locate(node.coord, name), unconditional,
            name, write, read, reduction, definition, address_taken))

    def variable_type(self, name: str) -> CType:
        var = self.model.variables.get(name)
        return var.ctype if var else UNKNOWN


class _ExprVisitor:
    """Visits one expression in C evaluation order (operands before the store)."""

    def __init__(self, walker: FunctionWalker, path: StmtPath, unconditional: bool,
                 reduction: Optional[tuple[str, str]]):
        self.w = walker
        self.path = path
        self.unconditional = unconditional
        self.reduction = reduction

    def visit(self, node: c_ast.Node, mode: str) -> None:
        """mode: read, write (plain store) or update (read then store)."""
        method = getattr(self, "_" + type(node).__name__, None)
        if method is not None:
            method(node, mode)
        else:
            for _, child in node.children():
                self.visit(child, "read")

    def _conditionally(self, node: c_ast.Node) -> None:
        saved, self.unconditional = self.unconditional, False
        self.visit(node, "read")
        self.unconditional = saved

    def _ID(self, node: c_ast.ID, mode: str) -> None:
        ctype = self.w.variable_type(node.name)
        if ctype.kind in ("array", "function") or node.name in self.w.types.enumerators:
            return
        if node.name not in self.w.model.variables and mode == "read":
            return       # an undeclared name: a function or an enumerator from a header
        op = self.reduction[1] if self.reduction and self.reduction[0] == node.name else None
        definition = getattr(self, "_definition", None) if mode == "write" else None
        self.w._scalar(node.name, node, self.path, self.unconditional,
                       write=mode != "read", read=mode != "write", reduction=op, definition=definition)

    def _Assignment(self, node: c_ast.Assignment, mode: str) -> None:
        self.visit(node.rvalue, "read")
        self._definition = node.rvalue if node.op == "=" else None
        self.visit(node.lvalue, "write" if node.op == "=" else "update")
        self._definition = None

    def _UnaryOp(self, node: c_ast.UnaryOp, mode: str) -> None:
        if node.op in ("++", "--", "p++", "p--"):
            self.visit(node.expr, "update")
        elif node.op == "&":
            self._address_of(node.expr)
        elif node.op == "sizeof":
            return
        elif node.op == "*":
            self._memory(node, mode)
        else:
            self.visit(node.expr, "read")

    def _address_of(self, target: c_ast.Node) -> None:
        if isinstance(target, c_ast.ID):
            if self.w.variable_type(target.name).kind not in ("array", "function") \
                    and target.name in self.w.model.variables:
                self.w._scalar(target.name, target, self.path, self.unconditional,
                               write=False, read=True, address_taken=True)
            return
        base, _, _, _ = self._path_operands(target)
        if base is not None:
            self.w.model.escaped.add(base)          # `&s.f`, `&a[k]`: a pointer into the object

    def _ArrayRef(self, node: c_ast.ArrayRef, mode: str) -> None:
        self._memory(node, mode)

    def _StructRef(self, node: c_ast.StructRef, mode: str) -> None:
        self._memory(node, mode)

    def _BinaryOp(self, node: c_ast.BinaryOp, mode: str) -> None:
        self.visit(node.left, "read")
        if node.op in ("&&", "||"):
            self._conditionally(node.right)
        else:
            self.visit(node.right, "read")

    def _TernaryOp(self, node: c_ast.TernaryOp, mode: str) -> None:
        self.visit(node.cond, "read")
        self._conditionally(node.iftrue)
        self._conditionally(node.iffalse)

    def _FuncCall(self, node: c_ast.FuncCall, mode: str) -> None:
        args = tuple(node.args.exprs) if node.args else ()
        for arg in args:
            self.visit(arg, "read")
        name = node.name.name if isinstance(node.name, c_ast.ID) else None
        if name is None:
            self.visit(node.name, "read")
        self.w.model.events.append(Call(next(self.w.seq), self.w._chain(), self.path,
                                        self.w.locate(node.coord, name), self.unconditional, name, args))

    def _Cast(self, node: c_ast.Cast, mode: str) -> None:
        self.visit(node.expr, mode)

    def _Typename(self, node, mode):
        return

    # ---- memory ------------------------------------------------------------------------
    def _path_operands(self, node: c_ast.Node):
        """Evaluate what reaching `node` reads first: its subscripts and its base pointer."""
        self._load = None
        base, components, loaded = self._path_of(node)
        load = self._load
        for comp in components:
            if comp.index is not None:
                self.visit(comp.index, "read")
        if base is not None and self.w.variable_type(base).kind == "pointer":
            self.w._scalar(base, node, self.path, self.unconditional, write=False, read=True)
        return base, components, loaded, load

    def _memory(self, node: c_ast.Node, mode: str) -> None:
        base, components, loaded, load = self._path_operands(node)
        location = self.w.locate(node.coord, base) if base else self.w.locate(node.coord)
        text = self.w.spelled(location, base) or _GENERATOR.visit(node)
        rows = loaded and self._is_row_access(base, components)
        self.w.model.events.append(MemoryAccess(
            next(self.w.seq), self.w._chain(), self.path, location,
            self.unconditional, base, tuple(components),
            write=mode != "read", read=mode != "write", text=text,
            through_loaded_pointer=loaded and not rows, through_rows=rows,
            node=node, load=load[0] if load else None, load_at=load[1] if load else 0))

    def _loaded(self, pointer: c_ast.Node, components: list[Component]) -> None:
        """Note the first pointer value on the current path that is read from memory."""
        if self._load is None:
            self._load = (pointer, len(components))

    def _is_row_access(self, base: Optional[str], components: list[Component]) -> bool:
        """`a[i][j]` where `a` is a pointer to (or array of) row pointers to plain elements."""
        if base is None or len(components) != 2 or any(c.index is None for c in components):
            return False
        outer = self.w.variable_type(base)
        row = outer.inner if outer.kind in ("pointer", "array") else None
        element = row.inner if row is not None and row.kind == "pointer" else None
        return element is not None and element.kind in ("scalar", "float")

    def _path_of(self, node: c_ast.Node) -> tuple[Optional[str], list[Component], bool]:
        """(base variable, components, whether a pointer stored in memory is followed)."""
        if isinstance(node, c_ast.ID):
            return node.name, [], False
        if isinstance(node, c_ast.ArrayRef):
            base, comps, loaded = self._path_of(node.name)
            if not isinstance(node.name, c_ast.ID) and self._is_pointer_value(base, comps):
                loaded = True
                self._loaded(node.name, comps)
            return base, comps + [Component(index=node.subscript)], loaded
        if isinstance(node, c_ast.StructRef):
            base, comps, loaded = self._path_of(node.name)
            if node.type == "->":
                if not isinstance(node.name, c_ast.ID) and self._is_pointer_value(base, comps):
                    loaded = True
                    self._loaded(node.name, comps)
                comps = comps + [Component(index=c_ast.Constant("int", "0"))]
            # Members of a struct never overlap; members of a union (or of a type the
            # model cannot resolve) may, so they all get one shared name.
            owner = self._type_of(base, comps)
            field_name = node.field.name if owner.kind == "struct" else "*"
            return base, comps + [Component(field=field_name)], loaded
        if isinstance(node, c_ast.UnaryOp) and node.op == "*":
            inner = node.expr
            offset: c_ast.Node = c_ast.Constant("int", "0")
            if isinstance(inner, c_ast.BinaryOp) and inner.op in ("+", "-"):
                offset = inner.right if inner.op == "+" else c_ast.UnaryOp("-", inner.right)
                inner = inner.left
            base, comps, loaded = self._path_of(inner)
            if not isinstance(inner, c_ast.ID) and self._is_pointer_value(base, comps):
                loaded = True
                self._loaded(inner, comps)
            return base, comps + [Component(index=offset)], loaded
        if isinstance(node, c_ast.Cast):
            base, comps, loaded = self._path_of(node.expr)
            return None, comps, loaded
        self.visit(node, "read")     # a computed address: its calls and reads still count
        return None, [], True

    def _type_of(self, base: Optional[str], comps: list[Component]) -> CType:
        """The C type reached by base+comps (unknown where the model loses track)."""
        if base is None:
            return UNKNOWN
        ctype = self.w.variable_type(base)
        for comp in comps:
            if ctype.kind == "unknown":
                return UNKNOWN
            if comp.index is not None:
                ctype = ctype.inner if ctype.inner is not None else UNKNOWN
            elif comp.field == "*":
                return UNKNOWN
            else:
                ctype = self.w.types.field_type(ctype.struct, comp.field)
        return ctype

    def _is_pointer_value(self, base: Optional[str], comps: list[Component]) -> bool:
        """Whether base+comps names a pointer stored in memory (so indexing it loads it)."""
        return self._type_of(base, comps).kind in ("pointer", "unknown")


_NORETURN = {"exit", "abort", "_Exit", "quick_exit", "__builtin_trap", "__builtin_unreachable"}


def _always_leaves(node: c_ast.Node) -> bool:
    """Whether a statement never completes normally (so code after `if (c) node` runs only
    when `c` is false): return, break, continue, a call of exit(), or a block ending in one."""
    if isinstance(node, (c_ast.Return, c_ast.Break, c_ast.Continue)):
        return True
    if isinstance(node, c_ast.FuncCall):
        return isinstance(node.name, c_ast.ID) and node.name.name in _NORETURN
    if isinstance(node, c_ast.Compound) and node.block_items:
        return _always_leaves(node.block_items[-1])
    return False
