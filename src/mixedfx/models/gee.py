"""GEE models: a formula, a data frame, a cluster column (and optional time column) -> a fitted
:class:`GEEModel` (design layer for X, core solver for the estimating equations)."""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core.gee import CORSTRS, ClusterLayout, GEENumericalError, GEESolution, cluster_layout, fit_gee
from ..design import DesignError, DesignSpec, MissingDataWarning, build_design
from ..design.frames import as_pandas
from ..families import get_family
from ..formula import parse_formula
from .lmm import ConvergenceWarning

__all__ = ["GEEModel", "fit_gee_model", "GEE_FAMILIES", "CORSTRS", "check_corstr", "gee_family"]

GEE_FAMILIES = ("gaussian", "binomial", "poisson", "Gamma")
_CORSTR_ALIASES = {"ind": "independence", "indep": "independence", "exch": "exchangeable", "cs": "exchangeable",
                   "ar(1)": "ar1", "unstr": "unstructured", "un": "unstructured"}


@dataclass(frozen=True)
class GEEModel:
    """Everything a GEE result needs, on the rows sorted by cluster then wave.

    ``y``, ``X``, ``offset``, ``weights`` (prior weights times binomial trials; ones without);
    ``order`` maps the sorted rows to the used rows (``row_labels[order]`` are their labels in
    the caller's data); ``cluster_labels`` (K,) the cluster values in sorted order;
    ``wave_labels`` the time values (or positions 1..T) of the waves.
    """
    formula: str
    family: object
    corstr: str
    y: np.ndarray
    X: np.ndarray
    xnames: tuple
    offset: np.ndarray
    weights: np.ndarray
    layout: ClusterLayout
    order: np.ndarray
    row_labels: pd.Index
    cluster_labels: np.ndarray
    wave_labels: tuple
    groups: str
    time: str | None
    n_dropped: int
    spec: DesignSpec
    design: object
    solution: GEESolution
    maxiter: int
    tol: float
    has_offset: bool


def check_corstr(corstr) -> str:
    if isinstance(corstr, str):
        key = corstr.strip().lower()
        key = _CORSTR_ALIASES.get(key, key)
        if key in CORSTRS:
            return key
    raise ValueError(f"unknown corstr {corstr!r}; use one of {', '.join(map(repr, CORSTRS))}")


def gee_family(family, link=None):
    """A classic family (gaussian, binomial, poisson, Gamma) for GEE, with a clear error otherwise."""
    try:
        fam = get_family(family, link)
    except ValueError as exc:
        if str(exc).startswith("unknown family"):
            raise ValueError(f"unknown family {family!r} for gee; use one of {', '.join(GEE_FAMILIES)} "
                             "(GEE needs only a variance function and a link)") from None
        raise
    if fam.name not in GEE_FAMILIES:
        raise ValueError(f"the {fam.name} family is not available for gee; use one of {', '.join(GEE_FAMILIES)}")
    return fam


def _check_response(fam, y: np.ndarray, label: str) -> None:
    if fam.name == "binomial" and np.any((y < 0) | (y > 1)):
        bad = y[(y < 0) | (y > 1)][0]
        raise DesignError(f"the binomial response {label!r} has values outside [0, 1] (e.g. {bad:g}); give 0/1 "
                          "outcomes, proportions with weights= trials, or cbind(successes, failures)")
    if fam.name == "poisson" and np.any(y < 0):
        raise DesignError(f"the poisson response {label!r} has negative values; counts must be >= 0")
    if fam.name == "Gamma" and np.any(y <= 0):
        raise DesignError(f"the Gamma response {label!r} has values <= 0; a Gamma response must be positive")


def _column_name(value, what: str, frame: pd.DataFrame) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what}= must be the name of a column of data, got {type(value).__name__}")
    if value not in frame.columns:
        near = [c for c in frame.columns if str(c).lower() == value.lower()]
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise DesignError(f"{what}={value!r} is not a column of data{hint}")
    return value


def _waves(values: pd.Series) -> tuple[np.ndarray, tuple]:
    """0-based rank of each time value among the distinct values (sorted; categories in order)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        cat = values.cat.remove_unused_categories()
        return cat.cat.codes.to_numpy(np.int64), tuple(cat.cat.categories)
    if values.dtype.kind in "OSU" or pd.api.types.is_string_dtype(values.dtype):
        raise DesignError(f"the time= column {values.name!r} holds text: sorted as text, 'week10' would come before "
                          "'week2', so the working correlation would pair the wrong times; give numbers or dates, "
                          "or a categorical whose categories are in time order")
    try:
        codes, uniques = pd.factorize(values, sort=True)
    except TypeError:
        raise DesignError("the time= column mixes values that cannot be ordered; give numbers, dates or an "
                          "ordered categorical") from None
    return codes.astype(np.int64), tuple(uniques)


def _weights_vector(weights, frame_index: pd.Index):
    """A pandas Series of weights is matched to the caller's rows by index label."""
    if isinstance(weights, pd.Series):
        if weights.index.equals(frame_index):
            return weights.to_numpy()
        if (frame_index.has_duplicates or weights.index.has_duplicates
                or not frame_index.isin(weights.index).any()):
            raise DesignError("weights= is a Series whose index does not match the data's; give an array in row "
                              "order (e.g. weights.to_numpy()) or a column name")
        return weights.reindex(frame_index).to_numpy()
    return weights


def fit_gee_model(formula: str, data, groups: str, family="gaussian", corstr: str = "independence",
                  time: str | None = None, weights=None, link=None, maxiter: int = 100,
                  tol: float = 1e-8) -> GEEModel:
    """Build the design and solve the GEE (see :func:`mixedfx.gee` for the arguments)."""
    corstr = check_corstr(corstr)
    fam = gee_family(family, link)
    if not isinstance(formula, str):
        raise TypeError(f"formula must be a string such as 'y ~ x', got {type(formula).__name__}")
    if not (isinstance(maxiter, (int, np.integer)) and not isinstance(maxiter, bool) and maxiter >= 1):
        raise ValueError(f"maxiter must be a whole number >= 1, got {maxiter!r}")
    if not (isinstance(tol, (int, float, np.floating)) and np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a positive number, got {tol!r}")
    f = parse_formula(formula)
    if f.random:
        bars = ", ".join(f"({t.text})" for t in f.random)
        raise DesignError(f"GEE has no random effects: remove {bars} from the formula; the clusters are given by "
                          "groups= (use mfx.glmer for a random-effects model)")
    frame = data if isinstance(data, pd.DataFrame) else as_pandas(data, "data")
    groups = _column_name(groups, "groups", frame)
    if time is not None:
        time = _column_name(time, "time", frame)
        if time == groups:
            raise DesignError("time= and groups= name the same column; time gives the order within a cluster")
    caller_index = frame.index
    weights = _weights_vector(weights, caller_index)
    if isinstance(weights, pd.Series):
        weights = weights.to_numpy()
    frame = frame.reset_index(drop=True)              # positions as labels (a new frame; data untouched)
    n_rows, k_time = len(frame), 0
    if time is not None and frame[time].isna().any():
        keep = frame[time].notna().to_numpy()
        k_time = int((~keep).sum())
        if k_time == len(frame):
            raise DesignError(f"the time column {time!r} has no values: all {len(frame)} rows are missing")
        frame = frame[keep]
        if weights is not None and not isinstance(weights, str):
            weights = np.asarray(weights)[keep]
    gq = groups.replace("`", "")
    try:
        with warnings.catch_warnings(record=True) as caught:     # re-issued below, at the caller's line
            warnings.simplefilter("always")
            design = build_design(f"{formula} + (1 | `{gq}`)", frame, weights=weights, family=fam)
    except DesignError as exc:
        msg = str(exc)
        if msg.startswith("grouping factor"):
            raise DesignError(f"groups={groups!r} has fewer than 2 clusters in the rows used; GEE needs several "
                              "clusters (robust standard errors are built from between-cluster variation)") from None
        raise
    _reissue(caught, k_time, n_rows, time)
    _check_response(fam, design.y, f.response_label)
    pos = design.row_index.to_numpy()
    block = design.blocks[0]
    codes = np.asarray(block.codes, dtype=np.int64)
    if time is not None:
        wv, wave_labels = _waves(frame[time].loc[pos])
    else:
        wv, wave_labels = None, None
    try:
        order, layout = cluster_layout(codes, wv)
    except ValueError:
        sizes = pd.DataFrame({"g": codes, "t": wv}).duplicated().to_numpy()
        i = int(np.flatnonzero(sizes)[0])
        raise DesignError(f"cluster {block.levels[codes[i]]!r} of {groups!r} has time {wave_labels[wv[i]]!r} "
                          f"more than once; each row of a cluster needs its own time= value") from None
    if wave_labels is None:
        wave_labels = tuple(range(1, layout.n_waves + 1))
    n = len(design.y)
    w = np.ones(n) if design.weights is None else np.asarray(design.weights, float)
    off = np.zeros(n) if design.offset is None else np.asarray(design.offset, float)
    y, X, off_s, w_s = design.y[order], design.X[order], off[order], w[order]
    if corstr == "unstructured" and layout.n_waves > 100:
        raise DesignError(f"an unstructured working correlation over {layout.n_waves} times has "
                          f"{layout.n_waves * (layout.n_waves - 1) // 2} parameters; use corstr='ar1' or "
                          "'exchangeable' (unstructured suits a few common times)")
    if corstr == "unstructured" and time is not None:
        _check_pairs(layout, wave_labels)
    try:
        sol = fit_gee(y, X, off_s, w_s, fam, layout, corstr, maxiter=int(maxiter), tol=float(tol))
    except GEENumericalError as exc:
        raise GEENumericalError(f"gee({formula!r}, corstr={corstr!r}): {exc}") from None
    if not sol.converged:
        warnings.warn(f"the GEE iteration did not converge in {maxiter} iterations (last step {sol.max_step:.3g} "
                      f"> tol = {tol:g}); the estimates are not reliable. Try another corstr or a larger maxiter=",
                      ConvergenceWarning, stacklevel=3)
    if not sol.corr_pd:
        warnings.warn(f"the estimated {corstr} working correlation is not positive definite "
                      f"(alpha = {np.round(sol.alpha, 4).tolist()}); it is not a valid correlation matrix: "
                      "use a simpler corstr", ConvergenceWarning, stacklevel=3)
    cluster_labels = np.asarray(block.levels, dtype=object)[codes[order][layout.starts[:-1]]]
    return GEEModel(formula, fam, corstr, y, X, tuple(design.xnames), off_s, w_s, layout, order,
                    caller_index[pos], cluster_labels, tuple(wave_labels), groups, time, design.n_dropped + k_time,
                    design.spec, design, sol, int(maxiter), float(tol), design.offset is not None)


_MISSING = re.compile(r"^(\d+) row\(s\) with missing values dropped \(of (\d+); missing in (.*)\)$", re.S)


def _reissue(caught, k_time: int, n_rows: int, time) -> None:
    """Re-issue the design's warnings at the user's call; one MissingDataWarning counting the rows
    dropped for a missing time= value too."""
    merged = False
    for w in caught:
        msg = str(w.message)
        m = _MISSING.match(msg) if issubclass(w.category, MissingDataWarning) else None
        if m and k_time:
            msg = (f"{int(m.group(1)) + k_time} row(s) with missing values dropped (of {n_rows}; missing in "
                   f"{time!r} (time=): {k_time}, {m.group(3)})")
            merged = True
        warnings.warn(msg, w.category, stacklevel=4)
    if k_time and not merged:
        warnings.warn(f"{k_time} row(s) with a missing time ({time!r}) dropped (of {n_rows})", MissingDataWarning,
                      stacklevel=4)


def _check_pairs(layout: ClusterLayout, labels) -> None:
    T = layout.n_waves
    seen = np.zeros((T, T), bool)
    for pat in layout.patterns:
        seen[pat.waves[pat.pair_a], pat.waves[pat.pair_b]] = True
    missing = [(a, b) for a in range(T) for b in range(a + 1, T) if not seen[a, b]]
    if missing:
        a, b = missing[0]
        raise DesignError(f"unstructured working correlation: times {labels[a]!r} and {labels[b]!r} never occur "
                          f"in the same cluster, so their correlation cannot be estimated ({len(missing)} such "
                          "pair(s)); use corstr='ar1' or 'exchangeable'")
