"""Predictions on the linear-predictor scale for fitted or new data.

``eta = X beta + offset + sum_{k in re_form} Z_k b_k``: ``re_form=None`` uses every
random term, ``"~0"`` (or ``"NA"``) none (the population-level, marginal prediction),
and a formula such as ``"~ (1 | Subject)"`` the terms it names.  Rows of new data at
levels not seen in fitting get zero random effects when ``allow_new_levels=True`` and
raise an error otherwise.  Rows with missing predictor values predict NaN.  An ``offset="column"``
is read from newdata's column, as formula ``offset()`` terms are; an offset given as an array
cannot be rebuilt for new data: predicting newdata then raises.
``newdata`` may be any data frame the fit accepts (pandas, polars, pyarrow Table, dict of columns).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..design.evaluate import DesignError
from ..design.frames import as_pandas
from ..formula.ast import names_in
from ..formula.terms import parse_formula
from ..models.lmm import LmmFit

__all__ = ["select_terms", "predict_eta"]


def select_terms(fit: LmmFit, re_form) -> list[int]:
    """Indices of the fitted random terms that ``re_form`` keeps."""
    K = len(fit.design.blocks)
    if re_form is None:
        return list(range(K))
    if re_form is False or (isinstance(re_form, float) and np.isnan(re_form)):
        return []
    text = str(re_form).strip()
    if text.replace(" ", "") in ("~0", "NA", "~NA", "0", "~-1"):
        return []
    if not text.startswith("~"):
        text = "~" + text
    wanted = parse_formula("y " + text).random if "|" in text else ()
    if not wanted:
        raise ValueError(f"re_form={re_form!r}: give None (all random effects), '~0' (none), "
                         "or random terms of the model such as '~ (1 | Subject)'")
    chosen = []
    for term in wanted:
        hits = [k for k, b in enumerate(fit.design.blocks)
                if b.term.group == term.group and b.term.lhs == term.lhs]
        if not hits:
            have = ", ".join(f"({b.term.text})" for b in fit.design.blocks)
            raise ValueError(f"re_form term ({term.text}) is not a random term of the model; the model has {have}")
        chosen.extend(h for h in hits if h not in chosen)
    return sorted(chosen)


def _complete_rows(fit: LmmFit, data: pd.DataFrame, terms: list[int]) -> np.ndarray:
    """Rows with every variable needed for the prediction present."""
    spec = fit.design.spec
    nodes = [spec.formula.atoms[a] for t in spec.fixed.termlist.terms for a in t] + list(spec.formula.offsets)
    names = {n for node in nodes for n in names_in(node)}
    if getattr(spec, "offset_column", None) is not None:
        names.add(spec.offset_column)
    for k in terms:
        group, _, lhs = spec.random[k]
        names.update(group)
        names.update(n for t in lhs.termlist.terms for a in t for n in names_in(spec.formula.atoms[a]))
    cols = [c for c in names if c in data.columns]
    return data[cols].notna().all(axis=1).to_numpy() if cols else np.ones(len(data), bool)


def predict_eta(fit: LmmFit, newdata: pd.DataFrame | None = None, re_form=None,
                allow_new_levels: bool = False) -> np.ndarray:
    """Linear predictor for the fitted rows (``newdata=None``) or for ``newdata``."""
    terms = select_terms(fit, re_form)
    d = fit.design
    if newdata is None:
        parts = [(k, (d.blocks[k].codes, d.blocks[k].X)) for k in terms]
        return _combine(fit, d.X, parts, d.offset)
    _check_offset_argument(fit)
    newdata = as_pandas(newdata, "newdata")
    out = np.full(len(newdata), np.nan)
    ok = _complete_rows(fit, newdata, terms)
    data = newdata.loc[ok]
    if len(data) == 0:
        return out
    spec = d.spec
    offset = spec.offset(data) if spec.has_offset else None
    parts = list(zip(terms, spec.random_parts(data, which=set(terms))))
    unknown = []
    for k, (codes, _) in parts:
        if (codes < 0).any():
            cols = list(d.blocks[k].term.group)
            vals = data.loc[codes < 0, cols].astype(str).agg(":".join, axis=1)
            unknown.append(f"{d.blocks[k].group_label!r}: {', '.join(map(repr, sorted(set(vals))[:5]))}")
    if unknown and not allow_new_levels:
        raise DesignError(f"newdata has levels not in the fitted data ({'; '.join(unknown)}). Pass "
                          "allow_new_levels=True to predict them at the population level (random effects of zero)")
    out[ok] = _combine(fit, spec.fixed_matrix(data), parts, offset)
    return out


def _check_offset_argument(fit) -> None:
    """Refuse new data for a fit whose offset was given as an array (``offset=<array>``): newdata
    cannot supply it, and predicting without it would be silently wrong (lme4 drops it without a
    word).  An ``offset="column"`` is read from newdata's column of that name."""
    if getattr(fit.design.spec, "offset_array", False):
        raise DesignError("this model's offset was given as an array (offset=<array>), which newdata cannot supply, "
                          "so predictions for newdata would leave it out. Refit with offset='column' or with the "
                          "offset in the formula, e.g. 'y ~ x + offset(log_exposure) + (1 | g)', and put that column "
                          "in newdata (a column of zeros predicts at offset 0)")


def _combine(fit, X: np.ndarray, parts, offset) -> np.ndarray:
    """``offset + X beta + sum_k Z_k b_k`` (unseen levels, code -1, get b = 0).

    An LMM fitted on standardized data is evaluated there, ``c + s_y (X_int beta_int +
    Z_int b_int)``: the user's ``X beta`` can be a small difference of huge numbers (a covariate
    near 1e6 with a slope of 1e5), the standardized one is not.
    """
    internal = getattr(fit, "internal", None)
    if internal is not None:
        sc = fit.scaling
        eta = sc.fixed(X) @ internal.beta
        for k, (codes, Xk) in parts:
            eta = eta + _re_part(codes, sc.term(k, Xk), internal.b[k])
        eta = sc.y_center + sc.y_scale * eta
    else:
        eta = X @ fit.beta
        for k, (codes, Xk) in parts:
            eta = eta + _re_part(codes, Xk, fit.b[k])
    return eta if offset is None else eta + offset


def _re_part(codes, Xk, bk_levels) -> np.ndarray:
    unseen = codes < 0
    bk = np.zeros((len(codes), bk_levels.shape[1]))
    bk[~unseen] = bk_levels[codes[~unseen]]
    return np.einsum("ij,ij->i", Xk, bk)
