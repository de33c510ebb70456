"""Print C statements as CUDA C++ that behaves as the C did.

CUDA is C++: a C math call converts its arguments to the prototype's types (`sqrt` of a float
computes in double; `abs` takes an int), while C++ overloads would pick float or double
versions. Every math call therefore gets explicit casts to the C prototype. Identifiers that
are C++ keywords are renamed.
"""

from __future__ import annotations

import copy

from pycparser import c_ast, c_generator

from ..frontend.walk import walk
CXX_KEYWORDS = {
    "alignas", "alignof", "and", "and_eq", "asm", "bitand", "bitor", "bool", "catch", "char16_t",
    "char32_t", "class", "compl", "concept", "const_cast", "consteval", "constexpr", "constinit",
    "co_await", "co_return", "co_yield", "decltype", "delete", "dynamic_cast", "explicit",
    "export", "false", "friend", "mutable", "namespace", "new", "noexcept", "not", "not_eq",
    "nullptr", "operator", "or", "or_eq", "private", "protected", "public", "reinterpret_cast",
    "requires", "static_assert", "static_cast", "template", "this", "thread_local", "throw",
    "true", "try", "typeid", "typename", "using", "virtual", "wchar_t", "xor", "xor_eq",
}

_D, _F, _I, _L = "double", "float", "int", "long"
_ONE = ("sin cos tan asin acos atan sinh cosh tanh asinh acosh atanh exp exp2 expm1 log log2 "
        "log10 log1p sqrt cbrt fabs floor ceil round trunc rint nearbyint erf erfc tgamma "
        "lgamma logb").split()
_TWO = "pow atan2 hypot fmin fmax fmod copysign fdim remainder nextafter".split()
MATH_SIGNATURES: dict[str, tuple[str, ...]] = {}
for _name in _ONE:
    MATH_SIGNATURES[_name] = (_D,)
    MATH_SIGNATURES[_name + "f"] = (_F,)
for _name in _TWO:
    MATH_SIGNATURES[_name] = (_D, _D)
    MATH_SIGNATURES[_name + "f"] = (_F, _F)
MATH_SIGNATURES.update({"fma": (_D, _D, _D), "fmaf": (_F, _F, _F), "ldexp": (_D, _I), "ldexpf": (_F, _I),
                        "abs": (_I,), "labs": (_L,), "llabs": ("long long",),
                        "lround": (_D,), "llround": (_D,), "ilogb": (_D,)})


def rename_cxx_keywords(node: c_ast.Node) -> c_ast.Node:
    """A copy of `node` with identifiers that C++ reserves renamed to `name_`."""
    node = copy.deepcopy(node)
    for child in walk(node):
        if isinstance(child, c_ast.ID) and child.name in CXX_KEYWORDS:
            child.name += "_"
        elif isinstance(child, c_ast.TypeDecl) and child.declname in CXX_KEYWORDS:
            child.declname += "_"
        elif isinstance(child, c_ast.Decl) and child.name in CXX_KEYWORDS:
            child.name += "_"
    return node


def safe_name(name: str) -> str:
    return name + "_" if name in CXX_KEYWORDS else name



class CudaGenerator(c_generator.CGenerator):
    """CGenerator that writes math calls with C's argument conversions made explicit."""

    def visit_FuncCall(self, node: c_ast.FuncCall) -> str:
        name = node.name.name if isinstance(node.name, c_ast.ID) else None
        signature = MATH_SIGNATURES.get(name or "")
        if signature is None or node.args is None or len(node.args.exprs) != len(signature):
            return super().visit_FuncCall(node)
        args = ", ".join(f"({ctype})({self.visit(arg)})" for ctype, arg in zip(signature, node.args.exprs))
        return f"{name}({args})"

    def visit_IdentifierType(self, node: c_ast.IdentifierType) -> str:
        return " ".join("bool" if n == "_Bool" else n for n in node.names)


def to_cuda(node: c_ast.Node) -> str:
    """CUDA C++ text of a C statement, expression or definition."""
    return CudaGenerator().visit(rename_cxx_keywords(node))


def to_cuda_statement(node: c_ast.Node) -> str:
    """CUDA C++ text of one C statement, terminated as a statement."""
    return CudaGenerator()._generate_stmt(rename_cxx_keywords(node))
