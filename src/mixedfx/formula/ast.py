"""Syntax tree of an R model formula, and R-style deparsing.

Every node remembers the span ``[start, end)`` of the source text it came
from, so later stages can point at the offending part of a formula.  Nodes are
frozen and hashable; two atoms are "the same variable" when their deparsed
text is equal, as in R's ``terms()``.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

__all__ = ["Node", "Name", "Number", "String", "Call", "Arg", "BinOp", "UnaryOp",
           "Paren", "Bar", "deparse", "names_in", "children", "postorder"]


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
    if not math.isfinite(value):     # 1e400: keep the text (R would print Inf, which is not a number here)
        return text
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.15g}"


_SYNTACTIC = re.compile(r"(?:[^\W\d_]|\.(?!\d))[\w.]*|\.")


def children(node: Node) -> tuple[Node, ...]:
    """The direct sub-expressions of a node, left to right."""
    if isinstance(node, Call):
        return tuple(a.value for a in node.args)
    if isinstance(node, BinOp):
        return (node.left, node.right)
    if isinstance(node, Bar):
        return (node.lhs, node.group)
    if isinstance(node, UnaryOp):
        return (node.operand,)
    if isinstance(node, Paren):
        return (node.inner,)
    return ()


def postorder(root: Node, combine, kids=children):
    """Fold a tree bottom-up without recursion (trees may be thousands of levels deep).

    ``combine(node, values)`` receives the folded values of ``kids(node)`` in order;
    nodes are combined in the order a recursive left-to-right fold would finish them.
    """
    if not kids(root):      # a leaf (most atoms are a plain column name)
        return combine(root, [])
    stack: list[tuple[Node, bool]] = [(root, False)]
    values: list = []
    while stack:
        node, ready = stack.pop()
        if ready:
            k = len(kids(node))
            args = values[len(values) - k:] if k else []
            if k:
                del values[len(values) - k:]
            values.append(combine(node, args))
        else:
            stack.append((node, True))
            stack.extend((c, False) for c in reversed(kids(node)))
    return values[0]


def _deparse_one(node: Node, parts: list[str]) -> str:
    if isinstance(node, Name):
        return node.id if _SYNTACTIC.fullmatch(node.id) else "`" + node.id + "`"
    if isinstance(node, Number):
        return _fmt_number(node.value, node.text)
    if isinstance(node, String):
        return '"' + node.value + '"'
    if isinstance(node, Call):
        return node.func + "(" + ", ".join((f"{a.name} = " if a.name else "") + p
                                           for a, p in zip(node.args, parts)) + ")"
    if isinstance(node, BinOp):
        sep = f" {node.op} " if node.op in _SPACED else node.op
        return parts[0] + sep + parts[1]
    if isinstance(node, UnaryOp):
        return node.op + parts[0]
    if isinstance(node, Paren):
        return "(" + parts[0] + ")"
    if isinstance(node, Bar):
        return parts[0] + (" || " if node.double else " | ") + parts[1]
    raise TypeError(f"cannot deparse {node!r}")


def deparse(node: Node) -> str:
    """Render a node as R's ``deparse`` would (``I(x^2)``, ``log(x + 1)``, ``a/b``)."""
    return postorder(node, _deparse_one)


def names_in(node: Node) -> list[str]:
    """Variable names referenced by an expression, in order of appearance (no function names)."""
    out: list[str] = []
    seen: set[str] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if n is None:
            continue
        if isinstance(n, Name):
            if n.id not in seen:
                seen.add(n.id)
                out.append(n.id)
        else:
            stack.extend(reversed(children(n)))
    return out
