"""Residual correlation (``correlation=``) and variance (``disp=``) models on data.

``correlation="ar1(time | id)"`` correlates the residuals of rows of one ``id`` (nlme's
``corAR1(form = ~ time | id)``; ``car1``: continuous times, ``corCAR1``; ``cs``:
``corCompSymm``); ``disp="~ group"`` makes the residual log-SD linear in the columns of a
one-sided formula (nlme's ``varIdent(form = ~ 1 | group)`` for a factor; glmmTMB's Gaussian
``dispformula``).  This stage turns them into arrays for :mod:`mixedfx.core.residual`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..formula.terms import CorrelationSpec, parse_formula
from .errors import DesignError
from .evaluate import evaluate_atom
from .matrices import build_term_matrix
from .random import grouping_factor

__all__ = ["ResidualDesign", "residual_variables", "build_residual"]


@dataclass(frozen=True)
class ResidualDesign:
    """Arrays of a residual model.

    Attributes
    ----------
    correlation : the parsed ``correlation=`` (None without one).
    codes : (n,) residual group of each row (None without a correlation).
    times : (n,) time of each row, or None (the rows' order within a group).
    disp_text : the ``disp=`` formula (None without one).  D : (n, m) its model matrix without
        the intercept (None without ``disp=``), with column names ``D_names``.
    """
    correlation: CorrelationSpec | None
    codes: np.ndarray | None
    times: np.ndarray | None
    disp_text: str | None
    D: np.ndarray | None
    D_names: tuple[str, ...]


def _disp_formula(disp: str):
    if not isinstance(disp, str):
        raise TypeError(f"disp= must be a one-sided formula string such as '~ group', got {type(disp).__name__}")
    f = parse_formula(disp if "~" in disp else "~ " + disp)
    if f.response is not None or f.random:
        raise DesignError(f"disp={disp!r} must be a one-sided formula of fixed terms, such as '~ group'")
    return f


def residual_variables(correlation: CorrelationSpec | None, disp: str | None) -> list[str]:
    """Data columns the residual model uses (rows missing any of them are dropped with the rest)."""
    out = []
    if correlation is not None:
        out += ([correlation.time] if correlation.time else []) + list(correlation.group)
    if disp is not None:
        out += list(_disp_formula(disp).variables)
    return list(dict.fromkeys(out))


def build_residual(correlation: CorrelationSpec | None, disp: str | None, data, state, blocks) -> ResidualDesign:
    """The residual model's arrays on the model's rows (``data``: the filtered model frame)."""
    n = len(data)
    codes = times = None
    if correlation is not None:
        codes, _ = grouping_factor(correlation.group, data)
        if correlation.time is not None:
            col = data[correlation.time]
            vals = np.asarray(col, dtype=float) if getattr(col, "dtype", None) is not None \
                and np.asarray(col).dtype.kind in "iufb" else None
            if vals is None:
                raise DesignError(f"correlation={correlation.text!r}: the time column {correlation.time!r} must be "
                                  "numeric")
            times = vals
        label = ":".join(correlation.group)
        for b in blocks:          # whitening keeps Z's level codes only if each group sits in one level
            first = np.full(int(codes.max()) + 1, -1, dtype=np.int64)
            first[codes] = b.codes
            if np.any(first[codes] != b.codes):
                raise DesignError(f"correlation={correlation.text!r}: the rows of one {label!r} group belong to "
                                  f"several levels of the random-effects factor {b.group_label!r}; the residual "
                                  "groups must be nested in every grouping factor (as in nlme)")
    D, names = None, ()
    if disp is not None:
        f = _disp_formula(disp)
        atoms = {lab: evaluate_atom(node, data, state, training=True, matrix=True) for lab, node in f.atoms.items()}
        M, spec = build_term_matrix(f.fixed, atoms, n)
        keep = [j for j, nm in enumerate(spec.names) if nm != "(Intercept)"]
        if not keep:
            raise DesignError(f"disp={disp!r} has no column besides the intercept (the intercept is sigma)")
        D, names = np.asarray(M[:, keep], float), tuple(spec.names[j] for j in keep)
    return ResidualDesign(correlation, codes, times, disp, D, names)
