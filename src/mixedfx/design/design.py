"""Design stage: (ModelFormula, DataFrame) -> :class:`Design` with a frozen :class:`DesignSpec`."""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..formula.terms import CorrelationSpec, ModelFormula, parse_correlation, parse_formula
from ..formula.ast import Call, Name, deparse
from .columns import check_numeric_column, require_finite_rows, row_label, string_columns, vector_argument
from .evaluate import AtomState, DesignError, check_columns, evaluate_atom, learn_bases
from .frames import as_pandas, as_vector
from .modelframe import ModelFrame
from .matrices import TermMatrixSpec, build_term_matrix, drop_aliased_columns
from .response import glmm_response
from .structured import structure_times
from .residual import ResidualDesign, build_residual, residual_variables
from .parts import ModelPart, build_part, part_variables
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
    offset_column: str | None = None     # offset="col": read from new data too
    offset_array: bool = False           # offset=<array>: new data cannot supply it

    @property
    def has_offset(self) -> bool:
        """Whether new data carry an offset (formula ``offset()`` terms or an ``offset=`` column)."""
        return bool(self.formula.offsets) or self.offset_column is not None

    def _atoms(self, data: pd.DataFrame, labels) -> dict:
        return {lab: evaluate_atom(self.formula.atoms[lab], data, self.state, training=False, matrix=True)
                for lab in labels}

    def fixed_matrix(self, data: pd.DataFrame) -> np.ndarray:
        """X for new data (same columns, contrasts, levels and scaling as the fit)."""
        data = string_columns(data)
        labels = {a for t in self.fixed.termlist.terms for a in t}
        check_columns(sorted({v for lab in labels for v in _names(self.formula.atoms[lab])}), data, "newdata")
        return self.fixed.matrix(self._atoms(data, labels), len(data))

    def offset(self, data: pd.DataFrame) -> np.ndarray:
        """The offset of new data: its formula ``offset()`` terms plus the ``offset=`` column."""
        data = string_columns(data)
        out = np.zeros(len(data))
        for node in self.formula.offsets:
            out += evaluate_atom(node, data, self.state, training=False)
        if self.offset_column is not None:
            if self.offset_column not in data.columns:
                raise DesignError(f"newdata has no column {self.offset_column!r}, the model's offset= column; add it "
                                  "(a column of zeros predicts at offset 0)")
            check_numeric_column(data[self.offset_column], self.offset_column, "offset")
            out += data[self.offset_column].to_numpy(dtype=float)
        return out

    def random_parts(self, data: pd.DataFrame, which=None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per random term (in fitted order): (codes with -1 for unseen levels, lhs matrix)."""
        data = string_columns(data)
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
    residual : the residual correlation / variance model (``correlation=``, ``disp=``) or None.
    parts : further linear predictors (zero inflation, dispersion) of glmmTMB-style models.
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
    residual: ResidualDesign | None = None
    parts: tuple[ModelPart, ...] = ()

    def part(self, name: str) -> ModelPart | None:
        """The further linear predictor ``name`` (``"zi"``, ``"disp"``), or None."""
        return next((pt for pt in self.parts if pt.name == name), None)

    @property
    def n(self) -> int:
        return len(self.y)


def _vector_arg(value, data: pd.DataFrame, what: str) -> tuple[np.ndarray | None, str | None]:
    if value is None:
        return None, None
    if isinstance(value, str):
        check_columns([value], data, f"{what}= argument")
        check_numeric_column(data[value], value, what)
        return None, value
    return vector_argument(value, data, what), None


def _missing_report(data: pd.DataFrame, cols: list[str], arrays: dict) -> list[tuple[str, int]]:
    """(what, number of missing rows) for every column or argument with missing values, most first."""
    counts = [(repr(c), int(data[c].isna().sum())) for c in cols]
    counts += [(what, int(np.isnan(arr).sum())) for what, arr in arrays.items() if arr is not None]
    return sorted([c for c in counts if c[1]], key=lambda c: -c[1])


def lme4_order(items: list, term, nlevels, width) -> list:
    """Random terms in lme4's order: decreasing number of levels, stable.

    With a covariance structure in the model (not lme4's), ties go to the wider term: the first
    block is factored level by level, the rest densely, so a 10-column ar1 term on the same factor
    as (1 | g) must come first.  ``term``, ``nlevels``, ``width``: an item's term, levels and columns.
    """
    structured = any(term(b).structure != "us" for b in items)
    return sorted(items, key=(lambda b: (-nlevels(b), -width(b))) if structured else (lambda b: -nlevels(b)))


def missing_text(n_dropped: int, n: int, report: list[tuple[str, int]]) -> str:
    """The :class:`MissingDataWarning` text; ``report``: (what, missing rows), most first."""
    where = ", ".join(f"{what}: {k}" for what, k in report[:5])
    return f"{n_dropped} row(s) with missing values dropped (of {n}; missing in {where})"


def _check_response_not_on_rhs(f: ModelFormula) -> None:
    """The response used again as a predictor or in a random term makes a degenerate model."""
    resp = f.response_label
    labels = {resp: f"the response {resp!r}"}
    if isinstance(f.response, Call) and f.response.func == "cbind":
        labels.update({deparse(a.value): f"{deparse(a.value)!r} (part of the response {resp})"
                       for a in f.response.args})
    for t in f.fixed.terms:
        for a in t:
            if a in labels:
                raise DesignError(f"{labels[a]} also appears as a predictor (term {':'.join(t)!r}); "
                                  "remove it from the right-hand side")
    for term in f.random:
        for a in (a for t in term.lhs.terms for a in t):
            if a in labels:
                raise DesignError(f"{labels[a]} appears in the random-effects term ({term.text}); a random "
                                  "slope on the response makes a degenerate model: remove it")
        for g in term.group:
            key = deparse(Name(0, 0, id=g))
            if key in labels:
                raise DesignError(f"{labels[key]} is used as a grouping factor in ({term.text}); "
                                  "group by another column")


#: numbers beyond this overflow double precision when squared and summed (X'X, y'y)
HUGE = 1e150


def _check_magnitude(v, what: str, index: pd.Index) -> None:
    if not isinstance(v, np.ndarray) or v.dtype.kind != "f" or v.size == 0:
        return
    if not np.max(np.abs(v)) > HUGE:    # all in range (or a NaN, where the search below stops too)
        return
    if v.ndim > 1:      # a basis (poly, bs, ns): the largest value of each row
        v = np.max(np.abs(v), axis=1)
    with np.errstate(all="ignore"):
        i = int(np.argmax(np.abs(v)))
    if abs(v[i]) > HUGE:
        raise DesignError(f"{what} reaches {v[i]:.3g} (row {row_label(index, i)!r}); numbers this large overflow "
                          "when squared: rescale it (change its units)")


def _check_columns_magnitude(X: np.ndarray, names, what, index: pd.Index) -> None:
    """:func:`_check_magnitude` for each column of a model matrix (``what(name)``: its description)."""
    if X.size == 0:
        return
    for j in np.flatnonzero(np.max(np.abs(X), axis=0) > HUGE):   # a column with a NaN is not flagged
        _check_magnitude(X[:, j], what(names[j]), index)


def _offset_part(value: np.ndarray, what: str, index: pd.Index) -> np.ndarray:
    require_finite_rows(value, index, f"the offset {what}", "an offset must be a finite number in every row")
    return value


def _check_offset(off: np.ndarray, y: np.ndarray, family) -> None:
    """Reject offsets that overflow or swamp the response (they would wreck the fit downstream)."""
    big = float(np.max(np.abs(off)))
    link = getattr(getattr(family, "link", None), "name", "identity") if family is not None else "identity"
    if not np.isfinite(big):
        raise DesignError("the offsets add up to infinity; check their sizes")
    if link != "identity":
        # a constant shift is absorbed by the intercept (the fit centres the offset); the model is
        # fitted to the offset's values as given, rounding included.  Variation beyond 1e4 on the
        # link scale is no offset (exp(1e4) overflows): most likely exposure instead of log(exposure)
        with np.errstate(over="ignore"):            # +-1e308 offsets: the spread overflows to inf
            spread = float(np.ptp(off))
        if not np.isfinite(spread) or spread > 1e4:
            raise DesignError(f"the offset varies by {spread:.3g} on the scale of the linear predictor ({link} link), "
                              "so the means over- or underflow. An offset is on the link scale (e.g. log(exposure), "
                              "not exposure)")
        return
    with np.errstate(all="ignore"):
        r = y - off
    size = float(np.max(np.abs(r)))
    tol = 1e4 * np.finfo(float).eps
    if not np.isfinite(size) or (size > 1e150 and big > 1e150):
        raise DesignError(f"the offset (largest |value| {big:.3g}) is too large: the response minus the offset "
                          f"reaches {size:.3g}, whose squares overflow; rescale the offset and the response")
    if np.ptp(r) <= tol * size and np.ptp(y) > tol * float(np.max(np.abs(y))):
        if big * tol > np.ptp(y):
            raise DesignError(f"the offset (largest |value| {big:.3g}) swamps the response: the response's variation "
                              f"({np.ptp(y):.3g}) is lost to rounding in response - offset; rescale the offset")
        raise DesignError("the response minus the offset is constant: the offset explains the response exactly, "
                          "leaving nothing to model")


def _check_weights(w: np.ndarray) -> None:
    if not np.all(np.isfinite(w)):
        raise DesignError("weights contain NaN or infinite values; remove those rows or fix the weights")
    if np.any(w < 0):
        raise DesignError(f"weights must be non-negative ({int((w < 0).sum())} negative values)")
    if not np.any(w > 0):
        raise DesignError("all weights are zero; at least some observations need positive weight")


def build_design(formula: str | ModelFormula, data: pd.DataFrame, weights=None, offset=None,
                 lmm: bool = True, family=None, correlation=None, disp=None, parts=None) -> Design:
    """Evaluate a formula on a data frame (pandas, polars, pyarrow Table or dict of columns;
    see :mod:`mixedfx.design.frames`).

    Rows with a missing value in any variable the model uses (or in the weights, the
    offset, or the residual model's ``correlation=`` / ``disp=``) are dropped, and a
    :class:`MissingDataWarning` gives the count.  With a
    ``family`` (GLMMs) the response may be ``cbind(s, f)``, a proportion with trials as
    weights, or a two-level factor; binomial trials multiply the prior weights.
    """
    if family is not None:
        lmm = False
    caller_frame = isinstance(data, pd.DataFrame)    # Arrow dictionaries are read per column below
    data = data if caller_frame else as_pandas(data, "data")
    weights, offset = as_vector(weights, "weights"), as_vector(offset, "offset")
    f = parse_formula(formula) if isinstance(formula, str) else formula
    if not f.random:
        raise DesignError("the formula has no random-effects term such as (1 | group); without one this is an "
                          "ordinary linear model: fit it with OLS (numpy.linalg.lstsq or statsmodels.OLS)")
    if f.response is None:
        raise DesignError("the formula has no response: write it as 'y ~ x + (1 | g)'")
    if len(data) == 0:
        raise DesignError("the data frame is empty")
    data = ModelFrame(string_columns(data), dictionaries=caller_frame)   # each column read once
    check_columns(f.variables, data)
    _check_response_not_on_rhs(f)
    w_arr, w_col = _vector_arg(weights, data, "weights")
    o_arr, o_col = _vector_arg(offset, data, "offset")
    if correlation is not None and not isinstance(correlation, CorrelationSpec):
        correlation = parse_correlation(correlation)
    extra = residual_variables(correlation, disp)
    check_columns(extra, data, "correlation=/disp=")
    parts = {k: v for k, v in (parts or {}).items() if v is not None}
    for name, text in parts.items():
        pv = part_variables(name, text)
        check_columns(pv, data, f"{name}=")
        extra = list(dict.fromkeys(extra + pv))
    cols = list(dict.fromkeys([v for v in f.variables if v in data.columns] + [c for c in (w_col, o_col) if c]
                              + extra))
    dup = [] if data.columns.is_unique else [c for c in cols if int((data.columns == c).sum()) > 1]
    if dup:
        raise DesignError(f"the data have several columns named {dup[0]!r}; column names must be unique")
    ok = data.notna(cols)
    for arr in (w_arr, o_arr):
        if arr is not None:
            ok &= ~np.isnan(arr)
    n_dropped = int((~ok).sum())
    state = AtomState()
    if n_dropped:
        report = _missing_report(data, cols, {"weights=": w_arr, "offset=": o_arr})
        empty = [what for what, k in report if k == len(data)]
        if empty:
            raise DesignError(f"{'column ' if empty[0].startswith(chr(39)) else ''}{empty[0]} has no values: all "
                              f"{len(data)} rows are missing (NaN/None); fix or drop it")
        warnings.warn(missing_text(n_dropped, len(data), report), MissingDataWarning, stacklevel=3)
        learn_bases(f.atoms, data, state)   # as R's model frame: poly/bs/ns see every row where x is known
        data = data.rows(ok)
        w_arr = None if w_arr is None else w_arr[ok]
        o_arr = None if o_arr is None else o_arr[ok]
    n = len(data)
    if n < 2:
        where = ", ".join(f"{what} in {k} row(s)" for what, k in report[:5]) if n_dropped else ""
        raise DesignError(f"only {n} complete observation(s) of {n + n_dropped}"
                          + (f" (missing values: {where})" if where else "")
                          + "; a mixed model needs several observations per group")
    trials = None
    if family is not None:
        resp, trials = glmm_response(f.response, data, state, binomial=getattr(family, "name", "") == "binomial")
    else:
        resp = evaluate_atom(f.response, data, state, training=True)
    if not isinstance(resp, np.ndarray):
        raise DesignError(f"the response {f.response_label!r} is not numeric (it is categorical); "
                          "a linear mixed model needs a numeric response (use glmer for binary outcomes)")
    _check_magnitude(resp, f"the response {f.response_label!r}", data.index)
    if lmm and np.ptp(resp) == 0:
        raise DesignError(f"the response {f.response_label!r} is constant ({resp[0]:g} in every row); "
                          "there is no variation to model")
    fam_name = getattr(family, "name", "")
    if fam_name in ("poisson", "negative.binomial") and not np.any(resp):
        raise DesignError(f"the response {f.response_label!r} is 0 in every row: a {fam_name} model of counts "
                          "that are all zero has no finite estimates (the log mean goes to minus infinity); "
                          "check the response column")
    atoms = {lab: evaluate_atom(node, data, state, training=True, matrix=True) for lab, node in f.atoms.items()}
    for lab, v in atoms.items():
        _check_magnitude(v, repr(lab), data.index)
    X, fspec = build_term_matrix(f.fixed, atoms, n)
    _check_columns_magnitude(X, fspec.names, lambda name: f"the fixed-effects column {name!r}", data.index)
    X, fspec = drop_aliased_columns(X, fspec)
    if lmm and X.shape[1] >= n:
        raise DesignError(f"the fixed effects have {X.shape[1]} columns for {n} observations, so they fit the data "
                          "exactly and leave nothing to estimate the variance components from; remove fixed effects "
                          "or collect more data")
    blocks = []
    for term in f.random:
        codes, levels = grouping_factor(term.group, data)
        Xk, lspec = build_term_matrix(term.lhs, atoms, n)
        _check_columns_magnitude(Xk, lspec.names, lambda name: f"the column {name!r} of ({term.text})", data.index)
        times = structure_times(term, atoms, Xk.shape[1])
        blocks.append(ReBlock(term, levels, codes, Xk, lspec.names, lspec, times))
    blocks = lme4_order(blocks, lambda b: b.term, lambda b: b.nlevels, lambda b: b.p)
    check_levels(blocks, n, lmm)
    check_identifiability(blocks)
    weights_v = w_arr if w_col is None else data[w_col].to_numpy(dtype=float)
    if weights_v is not None:
        _check_weights(weights_v)
    if trials is not None:
        weights_v = trials if weights_v is None else weights_v * trials
    off = None
    if o_arr is not None:
        off = _offset_part(o_arr, "given as offset=", data.index)
    elif o_col is not None:
        off = _offset_part(data[o_col].to_numpy(dtype=float), f"column {o_col!r}", data.index)
    for node in f.offsets:
        try:
            val = evaluate_atom(node, data, state, training=True)
        except DesignError as exc:
            raise DesignError(f"in offset({deparse(node)}): {exc}") from None
        if not isinstance(val, np.ndarray):
            raise DesignError(f"offset({deparse(node)}) must be numeric")
        val = _offset_part(val, f"offset({deparse(node)})", data.index)
        with np.errstate(all="ignore"):
            off = val if off is None else off + val
    if off is not None:
        _check_offset(off, np.asarray(resp, float), family)
    spec = DesignSpec(f, state, fspec, tuple((b.term.group, b.levels, b.lhs_spec) for b in blocks),
                      offset_column=o_col, offset_array=o_arr is not None)
    residual = None
    if correlation is not None or disp is not None:
        residual = build_residual(correlation, disp, data, state, blocks)
    built = tuple(build_part(name, text, data) for name, text in parts.items())
    return Design(np.asarray(resp, float), X, fspec.names, tuple(blocks), weights_v, off,
                  n_dropped, data.index, spec, residual, built)
