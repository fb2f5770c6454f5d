"""Checks of covariance structures written around random-effects terms (``ar1(0 + factor(t) | g)``).

The structures themselves live in :mod:`mixedfx.core.structures`; here the data decide whether a
term can carry one, and the coordinates of ``ou`` terms are read off the factor's levels.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..formula.terms import RandomTerm
from .evaluate import DesignError

__all__ = ["structure_times"]

#: structures over the levels of one factor (time points, positions)
_ON_FACTOR = ("ar1", "ou", "toep")
#: structures with a correlation between columns (need at least two)
_CORRELATED = ("cs", "homcs", "ar1", "ou", "toep")


def _numeric_levels(labels) -> np.ndarray | None:
    try:
        vals = np.array([float(v[1:-1] if v.startswith("(") and v.endswith(")") else v) for v in labels])
    except (TypeError, ValueError):
        return None
    return vals if np.all(np.isfinite(vals)) else None


def structure_times(term: RandomTerm, atoms: dict, p: int) -> tuple[float, ...] | None:
    """Validate a structured term; for ``ou`` return the coordinate of each column.

    Raises
    ------
    DesignError
        When the structure needs a factor (``ar1``, ``ou``, ``toep``) and the term is not
        ``0 + factor``; when a correlation structure has one column; when ``ar1`` is given
        unequally spaced numeric levels (``ou`` handles those) or ``ou`` non-numeric ones.
    """
    name = term.structure
    if name == "us":
        return None
    where = f"in {term.text}"
    if name in _CORRELATED and p < 2:
        raise DesignError(f"{where}: {name}() correlates the term's columns, and this term has {p}; write the "
                          f"columns as a factor, as in {name}(0 + factor(time) | {term.group_label})")
    if name not in _ON_FACTOR:
        return None
    lhs = term.lhs
    atom = lhs.terms[0][0] if len(lhs.terms) == 1 and len(lhs.terms[0]) == 1 else None
    values = atoms.get(atom) if atom is not None else None
    if lhs.intercept or atom is None or not isinstance(values, pd.Categorical):
        what = "numeric covariate" if isinstance(values, np.ndarray) else "left-hand side"
        fn = "numFactor" if name == "ou" else "factor"
        raise DesignError(f"{where}: {name}() needs the time points as a factor with no intercept, as in "
                          f"{name}(0 + {fn}(time) | {term.group_label}); this term's {what} "
                          f"'{' + '.join(lhs.labels())}' is not")
    labels = [str(v) for v in values.categories]
    times = _numeric_levels(labels)
    if name == "ou":
        if times is None:
            raise DesignError(f"{where}: ou() needs numeric time points (numFactor(t) on a numeric column t); "
                              f"the levels of {atom} are not numbers (e.g. {labels[0]!r})")
        return tuple(float(t) for t in times)
    if name == "ar1" and times is not None and len(times) > 2:
        gaps = np.diff(np.sort(times))
        if not np.allclose(gaps, gaps[0], rtol=1e-9, atol=0.0) and not math.isclose(np.ptp(gaps), 0.0):
            raise DesignError(f"{where}: ar1() assumes equally spaced time points, but the levels of {atom} are "
                              f"spaced unequally ({', '.join(labels[:6])}{', ...' if len(labels) > 6 else ''}); "
                              f"use ou(0 + numFactor(...) | {term.group_label}) for a continuous-time AR(1)")
    return None
