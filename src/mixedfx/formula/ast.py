"""Syntax tree of an R model formula, and R-style deparsing.

Every node remembers the span ``[start, end)`` of the source text it came
from, so later stages can point at the offending part of a formula.  Nodes are
frozen and hashable; two atoms are "the same variable" when their deparsed
text is equal, as in R's ``terms()``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Node", "Name", "Number", "String", "Call", "Arg", "BinOp", "UnaryOp",
           "Paren", "Bar", "deparse"]


@dataclass(frozen=True)
class Node:
    start: int = field(compare=False)
    end: int = field(compare=False)


@dataclass(frozen=True)
class Name(Node):
    id: str = ""


@dataclass(frozen=True)
class Number(Node):
    value: float = 0.0
    text: str = ""


@dataclass(frozen=True)
class String(Node):
    value: str = ""


@dataclass(frozen=True)
class Arg:
    """A call argument, optionally named (``center = FALSE``)."""
    name: str | None
    value: Node


@dataclass(frozen=True)
class Call(Node):
    func: str = ""
    args: tuple[Arg, ...] = ()


@dataclass(frozen=True)
class BinOp(Node):
    op: str = ""
    left: Node | None = None
    right: Node | None = None


@dataclass(frozen=True)
class UnaryOp(Node):
    op: str = ""
    operand: Node | None = None


@dataclass(frozen=True)
class Paren(Node):
    inner: Node | None = None


@dataclass(frozen=True)
class Bar(Node):
    """A random-effects term ``lhs | group`` (``double`` for ``||``)."""
    lhs: Node | None = None
    group: Node | None = None
    double: bool = False


# R's deparser puts spaces around these binary operators and none around the rest.
_SPACED = {"+", "-", "*", "~", "|", "||", "==", "!=", "<", ">", "<=", ">=", "&", "%in%"}


def _fmt_number(value: float, text: str) -> str:
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.15g}"


def deparse(node: Node) -> str:
    """Render a node as R's ``deparse`` would (``I(x^2)``, ``log(x + 1)``, ``a/b``)."""
    if isinstance(node, Name):
        return node.id if node.id.replace(".", "").replace("_", "").isalnum() and not node.id[0].isdigit() \
            else f"`{node.id}`"
    if isinstance(node, Number):
        return _fmt_number(node.value, node.text)
    if isinstance(node, String):
        return '"' + node.value + '"'
    if isinstance(node, Call):
        parts = [(f"{a.name} = " if a.name else "") + deparse(a.value) for a in node.args]
        return f"{node.func}({', '.join(parts)})"
    if isinstance(node, BinOp):
        sep = f" {node.op} " if node.op in _SPACED else node.op
        return deparse(node.left) + sep + deparse(node.right)
    if isinstance(node, UnaryOp):
        return node.op + deparse(node.operand)
    if isinstance(node, Paren):
        return "(" + deparse(node.inner) + ")"
    if isinstance(node, Bar):
        return deparse(node.lhs) + (" || " if node.double else " | ") + deparse(node.group)
    raise TypeError(f"cannot deparse {node!r}")


def names_in(node: Node) -> list[str]:
    """Variable names referenced by an expression, in order of appearance (no function names)."""
    out: list[str] = []

    def visit(n: Node | None) -> None:
        if n is None:
            return
        if isinstance(n, Name):
            if n.id not in out:
                out.append(n.id)
        elif isinstance(n, Call):
            for a in n.args:
                visit(a.value)
        elif isinstance(n, BinOp):
            visit(n.left)
            visit(n.right)
        elif isinstance(n, UnaryOp):
            visit(n.operand)
        elif isinstance(n, Paren):
            visit(n.inner)
        elif isinstance(n, Bar):
            visit(n.lhs)
            visit(n.group)

    visit(node)
    return out
