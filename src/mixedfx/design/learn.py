"""The two halves of a design for partitioned data: learn a frozen :class:`DesignSpec`, evaluate arrays with it.

:func:`learn_spec` learns everything data-dependent in a design (factor levels in R's order,
contrasts, ``scale()``'s centre and scale, the fixed-effects columns, the levels of every
grouping factor and lme4's order of the random terms) from a small *template* frame that holds
every level of every factor, with ``scale()``'s statistics given from global moments
(:mod:`mixedfx.design.partitioned` builds both from per-partition surveys).
:func:`evaluate_partition` evaluates one partition with a frozen spec: the complete-row mask,
y, X, per random term the codes of each row among the spec's (global) levels and the term's
left-hand-side matrix, the weights and the offset.  Stacking the partitions in row order gives
:func:`~mixedfx.design.design.build_design`'s arrays.

``poly()``'s coefficients come from global power sums (``polymoments``) through ``bases=``.
Not supported here (clear errors from :func:`~mixedfx.design.partitioned.survey_plan`):
``bs()``, ``ns()`` (their knots are quantiles of the whole data), a stateful transform inside
another (``scale(scale(x))``, ``poly(scale(x), 2)``), ``weights=``/``offset=`` given as arrays.  Aliased
fixed-effects columns cannot be detected on a template: pass their names as ``aliased=``
(from the global cross-product).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ..formula.ast import Call, Node, children, deparse
from ..formula.terms import ModelFormula, parse_formula
from .bases import BASES
from .columns import check_numeric_column, string_columns
from .design import DesignSpec, lme4_order
from .evaluate import AtomState, DesignError, check_columns, evaluate_atom
from .matrices import build_term_matrix
from .modelframe import ModelFrame
from .random import grouping_factor

__all__ = ["learn_spec", "scale_from_moments", "evaluate_partition", "PartitionArrays"]


def _formula(formula) -> ModelFormula:
    f = parse_formula(formula) if isinstance(formula, str) else formula
    if not f.random:
        raise DesignError("the formula has no random-effects term such as (1 | group)")
    if f.response is None:
        raise DesignError("the formula has no response: write it as 'y ~ x + (1 | g)'")
    return f


def scale_from_moments(label: str, center, scale, n: int, mean: float, m2: float) -> tuple:
    """``scale()``'s (centre, scale) from the count, mean and M2 of its argument (complete rows).

    ``center``/``scale`` are the call's settings (True, False or a number), as in R:
    the scale is the root of ``sum((x - c)^2) / (n - 1)`` with ``c`` the centre (0 when not centred).
    """
    c = mean if center is True else (None if center is False else float(center))
    if scale is True:
        ss = m2 if center is True else m2 + n * (mean - (0.0 if c is None else c)) ** 2
        scl = math.sqrt(ss / max(n - 1, 1))
        if scl == 0:
            raise DesignError(f"{label!r}: its argument is constant (standard deviation 0), so it cannot be "
                              "scaled; remove the term, or centre only with scale = FALSE")
    elif scale is False:
        scl = None
    else:
        scl = float(scale)
        if scl == 0:
            raise DesignError(f"{label!r}: scale = 0 would divide by zero")
    return (None if c is None else float(c), scl)


def learn_spec(formula, template: pd.DataFrame, scale_moments: dict | None = None, aliased=(),
               weights: str | None = None, offset: str | None = None, bases: dict | None = None) -> DesignSpec:
    """Learn a frozen :class:`DesignSpec` from a template frame (no row-count checks).

    Parameters
    ----------
    formula : the model formula (text or parsed).
    template : a frame with every level of every factor and grouping variable (and every
        observed combination for interaction groupings); values of numeric columns only need to be valid.
    scale_moments : ``scale()`` call label -> ``(settings, n, mean, M2)`` of its argument over the
        complete rows of the whole data; every ``scale()`` in the formula must have an entry.
    aliased : names of fixed-effects columns to drop (aliased in the whole data).
    weights, offset : the names of the ``weights=``/``offset=`` columns, or None.
    bases : ``poly()`` call label -> its fitted basis from the whole data (``polymoments``); used
        instead of fitting the basis on the template.
    """
    f = _formula(formula)
    scale_moments = scale_moments or {}
    tmpl = ModelFrame(string_columns(template))
    n = len(tmpl)
    if n == 0:
        raise DesignError("the template frame is empty: every partition was empty or had no complete row")
    check_columns(f.variables, tmpl, "formula (template)")
    bases = bases or {}
    unfitted = [lab for lab, node in f.atoms.items()
                if isinstance(node, Call) and node.func in BASES and lab not in bases]
    if unfitted:
        raise DesignError(f"{unfitted[0]!r} needs its basis fitted on the whole data (bases=); a template "
                          "frame cannot give its coefficients or knots")
    state = AtomState()
    state.bases.update(bases)
    evaluate_atom(f.response, tmpl, state, training=True)
    atoms = {lab: evaluate_atom(node, tmpl, state, training=True, matrix=True) for lab, node in f.atoms.items()}
    for node in f.offsets:
        evaluate_atom(node, tmpl, state, training=True)
    _, fspec = build_term_matrix(f.fixed, atoms, n)
    aliased = tuple(aliased)
    if aliased:
        unknown = [a for a in aliased if a not in fspec.names]
        if unknown:
            raise DesignError(f"aliased= names {unknown} are not fixed-effects columns ({', '.join(fspec.names)})")
        kept = [j for j, name in enumerate(fspec.names) if name not in aliased]
        fspec = replace(fspec, names=tuple(fspec.names[j] for j in kept), keep=tuple(fspec.keep[j] for j in kept))
    blocks = []
    for term in f.random:
        _, levels = grouping_factor(term.group, tmpl)
        _, lspec = build_term_matrix(term.lhs, atoms, n)
        blocks.append((term, levels, lspec))
    blocks = lme4_order(blocks, lambda b: b[0], lambda b: len(b[1]), lambda b: len(b[2].names))
    missing = [lab for lab in state.scale if lab not in scale_moments]
    if missing:
        raise DesignError(f"no global statistics for {', '.join(map(repr, missing))}: give scale_moments for every "
                          "scale() in the formula (a partition survey computes them)")
    for lab in state.scale:
        (center, scl), k, mean, m2 = scale_moments[lab]
        state.scale[lab] = scale_from_moments(lab, center, scl, k, mean, m2)
    return DesignSpec(f, state, fspec, tuple((term.group, levels, lspec) for term, levels, lspec in blocks),
                      offset_column=offset, offset_array=False)


@dataclass(frozen=True)
class PartitionArrays:
    """One partition's arrays under a frozen spec (complete rows only, in the partition's order).

    ``blocks``: per random term in the spec's order, ``(codes, X)`` with codes into the spec's
    (global) levels.  ``mask``: the partition's complete rows.  ``row_index``: their labels.
    """
    y: np.ndarray
    X: np.ndarray
    blocks: tuple[tuple[np.ndarray, np.ndarray], ...]
    weights: np.ndarray | None
    offset: np.ndarray | None
    mask: np.ndarray
    row_index: pd.Index

    @property
    def n(self) -> int:
        return len(self.y)

    @property
    def n_dropped(self) -> int:
        return int(len(self.mask) - self.mask.sum())


def model_columns(f: ModelFormula, data, weights: str | None, offset: str | None) -> list[str]:
    """The columns whose missing values drop a row (as :func:`build_design` chooses them)."""
    return list(dict.fromkeys([v for v in f.variables if v in data.columns] + [c for c in (weights, offset) if c]))


def _unseen(group, data: pd.DataFrame, codes: np.ndarray, where: str) -> DesignError:
    col = data[group[0]] if len(group) == 1 else None
    bad = sorted({str(v) for v in np.asarray(col, dtype=object)[codes < 0]})[:5] if col is not None else []
    what = f"level(s) {', '.join(map(repr, bad))} " if bad else "level combination(s) "
    return DesignError(f"{where}: the grouping factor {':'.join(group)!r} has {what}that are not in the design "
                       "spec; learn the spec from every partition's levels (a partition survey) before evaluating")


def evaluate_partition(spec: DesignSpec, frame: pd.DataFrame, weights: str | None = None,
                       where: str = "partition") -> PartitionArrays | None:
    """The arrays of one partition under a frozen spec; None when it has no complete row.

    ``weights``: the name of the ``weights=`` column (the offset column is in the spec).
    A level of a grouping factor or factor that the spec does not hold raises a DesignError.
    """
    f = spec.formula
    data = string_columns(frame)
    check_columns(f.variables, data, f"formula ({where})")
    for col in (weights, spec.offset_column):
        if col is not None:
            check_columns([col], data, f"{where}")
            check_numeric_column(data[col], col, "weights" if col == weights else "offset")
    mask = ModelFrame(data).notna(model_columns(f, data, weights, spec.offset_column))
    if not mask.any():
        return None
    sub = data.iloc[np.flatnonzero(mask)]
    try:
        y = np.asarray(evaluate_atom(f.response, sub, spec.state, training=False), dtype=float)
        X = spec.fixed_matrix(sub)
    except DesignError as exc:
        raise DesignError(f"{where}: {exc}") from None
    blocks = []
    for (group, _, _), (codes, Xk) in zip(spec.random, spec.random_parts(sub)):
        if (codes < 0).any():
            raise _unseen(group, sub, codes, where)
        blocks.append((codes, Xk))
    w = None if weights is None else sub[weights].to_numpy(dtype=float)
    off = spec.offset(sub) if spec.has_offset else None
    return PartitionArrays(y, X, tuple(blocks), w, off, mask, sub.index)


def scale_calls(nodes) -> dict[str, Call]:
    """Every ``scale()`` call in the expressions ``nodes`` (label -> call); nested ones raise."""
    out: dict[str, Call] = {}

    def walk(node: Node, inside: str | None) -> None:
        if node is None:
            return
        if isinstance(node, Call) and node.func == "scale":
            label = deparse(node)
            if inside is not None:
                raise DesignError(f"{label!r} inside {inside!r} needs a pass per nesting level; on partitioned "
                                  "data compute the inner transform as a column first")
            out[label] = node
            inside = label
        for kid in children(node):
            walk(kid, inside)

    for node in nodes:
        walk(node, None)
    return out
