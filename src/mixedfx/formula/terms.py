"""Wilkinson-Rogers term algebra and lme4's random-term expansion.

The fixed part expands as R's ``terms()`` does: ``a*b = a + b + a:b``,
``a/b = a + a:b``, ``(a+b)^2 = a + b + a:b``, ``a %in% b = a:b``, ``- x``
removes, ``0 +`` / ``- 1`` drop the intercept.  Terms are ordered by degree
(stable), and the factors inside a term by their first appearance in the
formula, which fixes R's column names (``recipeB:temp``).

Random terms follow lme4: ``(x || g)`` becomes ``(1 | g) + (0 + x | g)``;
the grouping expression ``a/b`` becomes the two groupings ``a`` and ``b:a``;
``a:b`` is the interaction of the two factors.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

from .ast import Bar, BinOp, Call, Name, Node, Number, Paren, String, UnaryOp, deparse, names_in, postorder
from .parser import FormulaSyntaxError, parse

__all__ = ["TermList", "RandomTerm", "ModelFormula", "parse_formula"]

Term = tuple[str, ...]


@dataclass(frozen=True)
class TermList:
    """An expanded right-hand side: intercept flag and ordered terms (tuples of atom labels)."""
    intercept: bool
    terms: tuple[Term, ...]

    def labels(self) -> list[str]:
        return (["(Intercept)"] if self.intercept else []) + [":".join(t) for t in self.terms]


@dataclass(frozen=True)
class RandomTerm:
    """One ``(lhs | group)`` term after lme4's expansion.

    ``group`` holds the grouping variables (more than one for an interaction
    ``a:b``); ``group_label`` is lme4's name for the grouping factor.  ``structure`` is the
    covariance structure written around the term (glmmTMB's ``ar1(0 + f | g)``; ``"us"``, lme4's
    unstructured covariance, for a plain ``(lhs | g)``).
    """
    lhs: TermList
    group: tuple[str, ...]
    text: str
    structure: str = "us"

    @property
    def group_label(self) -> str:
        return ":".join(self.group)


@dataclass(frozen=True)
class ModelFormula:
    """The parsed, expanded formula: text only, no data.

    Attributes
    ----------
    text : the formula as written.
    response : syntax tree of the left-hand side (``None`` for one-sided formulas).
    fixed : fixed-effects terms.
    random : random-effects terms, in the order written (lme4 reorders them later
        by decreasing number of levels, which needs data).
    offsets : syntax trees of ``offset(...)`` arguments.
    atoms : every atom label used in ``fixed`` or a random ``lhs``, mapped to its tree.
    variables : every data column the formula refers to.
    """
    text: str
    response: Node | None
    fixed: TermList
    random: tuple[RandomTerm, ...]
    offsets: tuple[Node, ...]
    atoms: dict = field(hash=False)
    variables: tuple[str, ...]

    @property
    def response_label(self) -> str | None:
        return None if self.response is None else deparse(self.response)


@dataclass
class _Exp:
    terms: list[frozenset]
    intercept: bool | None = None
    removed: list[frozenset] = field(default_factory=list)


def _unique(seq):
    return list(dict.fromkeys(seq))


def _cross(left: list[frozenset], right: list[frozenset]) -> list[frozenset]:
    return _unique([a | b for a in left for b in right])


# operators of the term algebra; any other operator (==, <, %o%...) makes its expression one atom
_TERM_OPS = ("+", "-", "*", "/", ":", "%in%", "^")


def _expand_children(node: Node) -> tuple[Node, ...]:
    """Sub-expressions the term algebra expands (atoms are leaves)."""
    if isinstance(node, Paren):
        return () if isinstance(node.inner, Bar) else (node.inner,)
    if isinstance(node, UnaryOp):
        return (node.operand,)
    if isinstance(node, BinOp) and node.op in _TERM_OPS:
        return (node.left,) if node.op == "^" else (node.left, node.right)
    return ()


class _Expander:
    """Expands a right-hand side into terms, collecting atoms and their first-appearance order."""

    def __init__(self, text: str):
        self.text = text
        self.atoms: dict[str, Node] = {}
        self.order: dict[str, int] = {}

    def atom(self, node: Node) -> _Exp:
        label = deparse(node)
        if label not in self.order:
            self.order[label] = len(self.order)
            self.atoms[label] = node
        return _Exp([frozenset([label])])

    def expand(self, node: Node) -> _Exp:
        """Expand an expression into terms (an iterative fold: any depth of nesting)."""
        return postorder(node, self._combine, _expand_children)

    def _combine(self, node: Node, parts: list[_Exp]) -> _Exp:
        if isinstance(node, Number):
            if node.value == 1:
                return _Exp([], True)
            if node.value == 0:
                return _Exp([], False)
            raise FormulaSyntaxError(f"a bare number {node.text} is not a term (only 0 or 1 may stand alone)",
                                     self.text, node.start)
        if isinstance(node, Paren):
            if isinstance(node.inner, Bar):
                raise FormulaSyntaxError("a random-effects term must be added to the formula with '+'",
                                         self.text, node.start)
            return parts[0]
        if isinstance(node, Bar):
            raise FormulaSyntaxError("random-effects terms need parentheses: write (lhs | group)",
                                     self.text, node.start)
        if isinstance(node, UnaryOp):
            inner = parts[0]
            if node.op == "+":
                return inner
            flipped = None if inner.intercept is None else not inner.intercept
            return _Exp([], flipped, inner.terms)
        if isinstance(node, BinOp) and node.op in _TERM_OPS:
            return self.binop(node, parts)
        if isinstance(node, Name) and node.id == "." and self.text[node.start] != "`":
            raise FormulaSyntaxError("'.' (all other columns) is not supported; list the predictors by name",
                                     self.text, node.start)
        if isinstance(node, String):
            raise FormulaSyntaxError(f"a string {deparse(node)} is not a term; write column names without "
                                     "quotes (or in backticks)", self.text, node.start)
        return self.atom(node)

    def binop(self, node: BinOp, parts: list[_Exp]) -> _Exp:
        op = node.op
        if op == "^":
            base = parts[0]
            if not isinstance(node.right, Number) or not float(node.right.value).is_integer() \
                    or node.right.value < 1:
                raise FormulaSyntaxError("the power of a term must be a positive whole number, as in (a + b)^2",
                                         self.text, node.right.start)
            out = list(base.terms)
            # powers beyond the number of terms add nothing (so a huge k costs nothing)
            for _ in range(min(int(node.right.value), max(len(base.terms), 1)) - 1):
                out = _unique(out + _cross(out, base.terms))
            return _Exp(out, base.intercept)
        left, right = parts
        if op == "+":
            removed = left.removed + right.removed
            gone = set(removed)
            terms = [t for t in _unique(left.terms + right.terms) if t not in gone]
            icpt = right.intercept if right.intercept is not None else left.intercept
            return _Exp(terms, icpt, removed)
        if op == "-":
            gone = set(right.terms)
            terms = [t for t in left.terms if t not in gone]
            icpt = left.intercept
            if right.intercept is not None:
                icpt = not right.intercept
            return _Exp(terms, icpt, left.removed + right.terms)
        if op == "*":
            return _Exp(_unique(left.terms + right.terms + _cross(left.terms, right.terms)),
                        right.intercept if right.intercept is not None else left.intercept)
        if op in (":", "%in%"):
            return _Exp(_cross(left.terms, right.terms))
        # op == "/"
        if not left.terms:
            return _Exp(right.terms)
        whole = frozenset().union(*left.terms)
        return _Exp(_unique(left.terms + _cross([whole], right.terms)), left.intercept)

    def finish(self, exp: _Exp, default_intercept: bool = True) -> TermList:
        icpt = default_intercept if exp.intercept is None else exp.intercept
        ordered = [tuple(sorted(t, key=self.order.__getitem__)) for t in exp.terms]
        ordered = sorted(ordered, key=len)  # stable: R orders terms by degree
        return TermList(icpt, tuple(ordered))


def _split_sum(node: Node) -> list[tuple[str, Node]]:
    """Flatten a top-level chain of ``+``/``-`` into signed pieces (iteratively)."""
    out: list[tuple[str, Node]] = []
    stack = [("+", node)]
    while stack:
        sign, n = stack.pop()
        if isinstance(n, BinOp) and n.op in ("+", "-"):
            rsign = sign if n.op == "+" else ("-" if sign == "+" else "+")
            stack.append((rsign, n.right))
            stack.append((sign, n.left))
        else:
            out.append((sign, n))
    return out


def _unwrap_bar(node: Node, text: str) -> Bar | None:
    if isinstance(node, Bar):
        raise FormulaSyntaxError("random-effects terms need parentheses: write (lhs | group)", text, node.start)
    while isinstance(node, Paren):
        node = node.inner
    return node if isinstance(node, Bar) else None


def _group_children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, Paren):
        return (node.inner,)
    if isinstance(node, BinOp) and node.op in (":", "/", "+"):
        return (node.left, node.right)
    return ()


def _group_terms(node: Node, text: str) -> list[tuple[str, ...]]:
    """Expand a grouping expression: ``a`` ; ``a:b`` ; ``a/b`` -> ``a``, ``b:a``."""
    def combine(n: Node, parts: list) -> list[tuple[str, ...]]:
        if isinstance(n, Paren):
            return parts[0]
        if isinstance(n, Name):
            return [(n.id,)]
        if isinstance(n, BinOp) and n.op == ":":
            return [a + b for a in parts[0] for b in parts[1]]
        if isinstance(n, BinOp) and n.op == "/":
            names = tuple(dict.fromkeys(v for t in parts[0] for v in t))
            return parts[0] + [r + names for r in parts[1]]
        if isinstance(n, BinOp) and n.op == "+":
            return parts[0] + parts[1]
        raise FormulaSyntaxError("a grouping factor must be a column name or an interaction/nesting of "
                                 "column names (g, a:b, a/b)", text, n.start)
    return postorder(node, combine, _group_children)


#: covariance structures written as ``name(lhs | group)`` (glmmTMB's names; see mixedfx.core.structures)
STRUCTURE_NAMES = ("us", "diag", "homdiag", "cs", "homcs", "ar1", "ou", "toep")


def _structured_bar(piece: Node, text: str) -> tuple[str, Bar] | None:
    """``(name, bar)`` for a piece ``name(lhs | group)`` with a known structure name, else None."""
    if not (isinstance(piece, Call) and piece.func in STRUCTURE_NAMES):
        return None
    inner = [a.value for a in piece.args]
    bars = [_unwrap_bar(v, text) if not isinstance(v, Bar) else v for v in inner]
    if len(inner) != 1 or bars[0] is None:
        raise FormulaSyntaxError(f"{piece.func}() takes one random-effects term, as in {piece.func}(0 + factor(time) "
                                 "| subject)", text, piece.start)
    bar = bars[0]
    if bar.double:
        raise FormulaSyntaxError(f"'||' inside {piece.func}() is not meaningful: the structure sets the "
                                 "covariance; use a single '|' (diag() gives uncorrelated effects)", text, bar.start)
    return piece.func, bar


def _random_terms(bar: Bar, expander: _Expander, text: str, structure: str | None = None) -> list[RandomTerm]:
    lhs = expander.finish(expander.expand(bar.lhs))
    groups = _group_terms(bar.group, text)
    if not lhs.intercept and not lhs.terms:
        raise FormulaSyntaxError("this random-effects term has nothing on the left of '|'", text, bar.start)
    pieces = [lhs]
    if bar.double:  # lme4's ||: one term per column group, no correlations
        pieces = ([TermList(True, ())] if lhs.intercept else []) + [TermList(False, (t,)) for t in lhs.terms]
    out = []
    for g in groups:
        for p in pieces:
            lhs_text = " + ".join(p.labels()).replace("(Intercept)", "1") if p.intercept \
                else "0 + " + " + ".join(p.labels())
            label = f"{lhs_text} | {':'.join(g)}"
            out.append(RandomTerm(p, g, label if structure is None else f"{structure}({label})",
                                  structure or "us"))
    return out


def parse_formula(text: str) -> ModelFormula:
    """Parse and expand an lme4 formula.

    The result depends on the text alone and is immutable, so the last few hundred formulas
    parsed are kept (refitting one model costs no parsing); a formula that does not parse
    raises afresh every time.

    Examples
    --------
    >>> f = parse_formula("Reaction ~ Days + (Days | Subject)")
    >>> f.fixed.labels(), [r.group_label for r in f.random]
    (['(Intercept)', 'Days'], ['Subject'])
    """
    if type(text) is str:
        return _parse_text(text)
    return _parse_formula(text)


@functools.lru_cache(maxsize=256)
def _parse_text(text: str) -> ModelFormula:
    return _parse_formula(text)


def _parse_formula(text: str) -> ModelFormula:
    response, rhs = parse(text)
    expander = _Expander(text)
    fixed_nodes: list[tuple[str, Node]] = []
    random: list[RandomTerm] = []
    offsets: list[Node] = []
    for sign, piece in _split_sum(rhs):
        structured = _structured_bar(piece, text)
        bar = structured[1] if structured else _unwrap_bar(piece, text)
        if bar is not None:
            if sign == "-":
                raise FormulaSyntaxError("a random-effects term cannot be subtracted", text, piece.start)
            random.extend(_random_terms(bar, expander, text, structured[0] if structured else None))
        elif isinstance(piece, Call) and piece.func == "offset":
            if len(piece.args) != 1:
                raise FormulaSyntaxError("offset() takes exactly one argument", text, piece.start)
            offsets.append(piece.args[0].value)
        else:
            fixed_nodes.append((sign, piece))
    # re-expand the fixed pieces with a fresh atom order so fixed atoms come first
    fexp = _Expander(text)
    terms: dict = {}            # an ordered set: thousands of pieces stay linear
    intercept = None
    for sign, node in fixed_nodes:
        part = fexp.expand(node)
        if sign == "+":
            terms.update(dict.fromkeys(part.terms))
            for t in part.removed:
                terms.pop(t, None)
            intercept = part.intercept if part.intercept is not None else intercept
        else:
            for t in part.terms:
                terms.pop(t, None)
            intercept = intercept if part.intercept is None else not part.intercept
    fixed = fexp.finish(_Exp(list(terms), intercept))
    atoms = dict(fexp.atoms)
    atoms.update({k: v for k, v in expander.atoms.items() if k not in atoms})
    variables: list[str] = []
    for node in ([response] if response is not None else []) + [rhs]:
        for name in names_in(node):
            if name not in variables:
                variables.append(name)
    return ModelFormula(text=text, response=response, fixed=fixed, random=tuple(random),
                        offsets=tuple(offsets), atoms=atoms, variables=tuple(variables))


#: residual correlation structures of ``correlation=`` (nlme's corAR1, corCAR1, corCompSymm)
CORRELATION_NAMES = ("ar1", "car1", "cs")


@dataclass(frozen=True)
class CorrelationSpec:
    """A parsed ``correlation=`` argument, e.g. ``"ar1(time | id)"``.

    ``name`` is ``"ar1"``, ``"car1"`` or ``"cs"``; ``time`` the variable ordering the rows of a
    group (None for ``name(1 | g)``: the rows' order in the data, as nlme's ``~ 1 | g``);
    ``group`` the grouping variables (an interaction for ``a:b``; for ``a/b``, as in nlme, the
    innermost group ``b:a``).
    """
    name: str
    time: str | None
    group: tuple[str, ...]
    text: str


def parse_correlation(text: str) -> CorrelationSpec:
    """Parse ``correlation="ar1(time | id)"`` / ``"car1(t | id)"`` / ``"cs(1 | id)"``."""
    if not isinstance(text, str):
        raise TypeError(f"correlation= must be a string such as 'ar1(time | id)', got {type(text).__name__}")
    _, rhs = parse("~ " + text)
    usage = (f"correlation={text!r}: write one of {', '.join(n + '(time | group)' for n in CORRELATION_NAMES)}, "
             "or name(1 | group) for the rows' order within each group")
    if not isinstance(rhs, Call) or rhs.func not in CORRELATION_NAMES or len(rhs.args) != 1:
        raise FormulaSyntaxError(usage, text, 0)
    bar = rhs.args[0].value
    while isinstance(bar, Paren):
        bar = bar.inner
    if not isinstance(bar, Bar) or bar.double:
        raise FormulaSyntaxError(usage, text, 0)
    lhs = bar.lhs
    if isinstance(lhs, Number) and lhs.value == 1:
        time = None
    elif isinstance(lhs, Name):
        time = lhs.id
    else:
        raise FormulaSyntaxError(usage + "; the time must be a column name", text, max(lhs.start - 2, 0))
    groups = _group_terms(bar.group, text)
    inner = bar.group.inner if isinstance(bar.group, Paren) else bar.group
    if isinstance(inner, BinOp) and inner.op == "/":
        groups = groups[-1:]          # nlme: a correlation within batch/cask is within the innermost group
    if len(groups) != 1:
        raise FormulaSyntaxError(usage + "; give one grouping factor (a:b for an interaction)", text, 0)
    return CorrelationSpec(rhs.func, time, groups[0], text)
