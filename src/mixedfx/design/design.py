"""Design stage: (ModelFormula, DataFrame) -> :class:`Design` with a frozen :class:`DesignSpec`."""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..formula.terms import ModelFormula, parse_formula
from ..formula.ast import deparse
from .evaluate import AtomState, DesignError, check_columns, evaluate_atom
from .matrices import TermMatrixSpec, build_term_matrix, drop_aliased_columns
from .response import glmm_response
from .random import ReBlock, check_identifiability, check_levels, grouping_factor, map_levels

__all__ = ["Design", "DesignSpec", "build_design", "MissingDataWarning"]


class MissingDataWarning(UserWarning):
    """Rows with missing values were dropped (R's na.omit)."""


@dataclass(frozen=True)
class DesignSpec:
    """Everything needed to rebuild X, Z and the offset for new data, frozen after fitting."""
    formula: ModelFormula
    state: AtomState
    fixed: TermMatrixSpec
    random: tuple[tuple[tuple[str, ...], tuple[str, ...], TermMatrixSpec], ...]  # (group, levels, lhs)

    def _atoms(self, data: pd.DataFrame, labels) -> dict:
        return {lab: evaluate_atom(self.formula.atoms[lab], data, self.state, training=False) for lab in labels}

    def fixed_matrix(self, data: pd.DataFrame) -> np.ndarray:
        """X for new data (same columns, contrasts, levels and scaling as the fit)."""
        labels = {a for t in self.fixed.termlist.terms for a in t}
        check_columns(sorted({v for lab in labels for v in _names(self.formula.atoms[lab])}), data, "newdata")
        return self.fixed.matrix(self._atoms(data, labels), len(data))

    def offset(self, data: pd.DataFrame) -> np.ndarray:
        out = np.zeros(len(data))
        for node in self.formula.offsets:
            out += evaluate_atom(node, data, self.state, training=False)
        return out

    def random_parts(self, data: pd.DataFrame, which=None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per random term (in fitted order): (codes with -1 for unseen levels, lhs matrix)."""
        out = []
        for k, (group, levels, lhs) in enumerate(self.random):
            if which is not None and k not in which:
                continue
            check_columns(list(group), data, "newdata")
            labels = {a for t in lhs.termlist.terms for a in t}
            out.append((map_levels(group, data, levels), lhs.matrix(self._atoms(data, labels), len(data))))
        return out


def _names(node) -> list[str]:
    from ..formula.ast import names_in
    return names_in(node)


@dataclass(frozen=True)
class Design:
    """Arrays for one model: response, fixed-effects matrix, random-effect blocks.

    Attributes
    ----------
    y : (n,) response.  X : (n, p) fixed-effects matrix with ``xnames``.
    blocks : random-effect terms ordered as lme4 orders them (decreasing number of levels).
    weights : (n,) prior weights or None.  offset : (n,) or None.
    n_dropped : rows removed for missing values.  row_index : index labels of the rows used.
    """
    y: np.ndarray
    X: np.ndarray
    xnames: tuple[str, ...]
    blocks: tuple[ReBlock, ...]
    weights: np.ndarray | None
    offset: np.ndarray | None
    n_dropped: int
    row_index: pd.Index
    spec: DesignSpec

    @property
    def n(self) -> int:
        return len(self.y)


def _vector_arg(value, data: pd.DataFrame, what: str) -> tuple[np.ndarray | None, str | None]:
    if value is None:
        return None, None
    if isinstance(value, str):
        check_columns([value], data, f"{what}= argument")
        return None, value
    arr = np.asarray(value, dtype=float).ravel()
    if len(arr) != len(data):
        raise DesignError(f"{what}= has length {len(arr)} but the data have {len(data)} rows")
    return arr, None


def _check_weights(w: np.ndarray) -> None:
    if not np.all(np.isfinite(w)):
        raise DesignError("weights contain NaN or infinite values; remove those rows or fix the weights")
    if np.any(w < 0):
        raise DesignError(f"weights must be non-negative ({int((w < 0).sum())} negative values)")
    if not np.any(w > 0):
        raise DesignError("all weights are zero; at least some observations need positive weight")


def build_design(formula: str | ModelFormula, data: pd.DataFrame, weights=None, offset=None,
                 lmm: bool = True, family=None) -> Design:
    """Evaluate a formula on a DataFrame.

    Rows with a missing value in any variable the model uses (or in the weights or
    offset) are dropped, and a :class:`MissingDataWarning` gives the count.  With a
    ``family`` (GLMMs) the response may be ``cbind(s, f)``, a proportion with trials as
    weights, or a two-level factor; binomial trials multiply the prior weights.
    """
    if family is not None:
        lmm = False
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    f = parse_formula(formula) if isinstance(formula, str) else formula
    if not f.random:
        raise DesignError("the formula has no random-effects term such as (1 | group); without one this is an "
                          "ordinary linear model: fit it with OLS (numpy.linalg.lstsq or statsmodels.OLS)")
    if f.response is None:
        raise DesignError("the formula has no response: write it as 'y ~ x + (1 | g)'")
    if len(data) == 0:
        raise DesignError("the data frame is empty")
    check_columns(f.variables, data)
    w_arr, w_col = _vector_arg(weights, data, "weights")
    o_arr, o_col = _vector_arg(offset, data, "offset")
    cols = [v for v in f.variables if v in data.columns] + [c for c in (w_col, o_col) if c]
    ok = data[cols].notna().all(axis=1).to_numpy().copy()
    for arr in (w_arr, o_arr):
        if arr is not None:
            ok &= ~np.isnan(arr)
    n_dropped = int((~ok).sum())
    if n_dropped:
        warnings.warn(f"{n_dropped} row(s) with missing values dropped (of {len(data)})",
                      MissingDataWarning, stacklevel=3)
        data = data.loc[ok]
        w_arr = None if w_arr is None else w_arr[ok]
        o_arr = None if o_arr is None else o_arr[ok]
    n = len(data)
    if n < 2:
        raise DesignError(f"only {n} complete observation(s); a mixed model needs several observations per group")
    state = AtomState()
    trials = None
    if family is not None:
        resp, trials = glmm_response(f.response, data, state, binomial=getattr(family, "name", "") == "binomial")
    else:
        resp = evaluate_atom(f.response, data, state, training=True)
    if not isinstance(resp, np.ndarray):
        raise DesignError(f"the response {f.response_label!r} is not numeric (it is categorical); "
                          "a linear mixed model needs a numeric response (use glmer for binary outcomes)")
    if lmm and np.ptp(resp) == 0:
        raise DesignError(f"the response {f.response_label!r} is constant ({resp[0]:g} in every row); "
                          "there is no variation to model")
    atoms = {lab: evaluate_atom(node, data, state, training=True) for lab, node in f.atoms.items()}
    X, fspec = build_term_matrix(f.fixed, atoms, n)
    X, fspec = drop_aliased_columns(X, fspec)
    blocks = []
    for term in f.random:
        codes, levels = grouping_factor(term.group, data)
        Xk, lspec = build_term_matrix(term.lhs, atoms, n)
        blocks.append(ReBlock(term, levels, codes, Xk, lspec.names, lspec))
    blocks.sort(key=lambda b: -b.nlevels)   # lme4's order: decreasing number of levels, stable
    check_levels(blocks, n, lmm)
    check_identifiability(blocks)
    weights_v = w_arr if w_col is None else data[w_col].to_numpy(dtype=float)
    if weights_v is not None:
        _check_weights(weights_v)
    if trials is not None:
        weights_v = trials if weights_v is None else weights_v * trials
    off = o_arr if o_col is None else data[o_col].to_numpy(dtype=float)
    for node in f.offsets:
        val = evaluate_atom(node, data, state, training=True)
        if not isinstance(val, np.ndarray):
            raise DesignError(f"offset({deparse(node)}) must be numeric")
        off = val if off is None else off + val
    spec = DesignSpec(f, state, fspec, tuple((b.term.group, b.levels, b.lhs_spec) for b in blocks))
    return Design(np.asarray(resp, float), X, fspec.names, tuple(blocks), weights_v, off,
                  n_dropped, data.index, spec)
