"""``poly(x, d)``'s coefficients from centred power sums, merged over partitions.

R's orthogonal polynomials (``alpha``, ``norm2``) are the Stieltjes recurrence
``P[k+1] = (x - alpha[k]) P[k] - (norm2[k+1] / norm2[k]) P[k-1]`` with ``norm2[k+1] = sum P[k]^2``
and ``alpha[k] = sum x P[k]^2 / norm2[k+1]``: every sum is a combination of the power sums
``S[j] = sum (x - mean)^j``, ``j <= 2d``.  A partition returns its count, mean, centred power sums
and a few distinct values (the ``degree < distinct values`` check); :func:`merge_power_sums`
shifts them to a common mean (binomial expansion) as Chan's formulas do for ``M2``.
"""
from __future__ import annotations

from math import comb

import numpy as np
import pandas as pd

from ..formula.ast import Call
from .bases import _flag, _whole, match_basis_args
from .errors import DesignError
from .evaluate import AtomState, _Evaluator
from .splines import PolyBasis

__all__ = ["poly_settings", "power_sums", "merge_power_sums", "poly_from_power_sums"]


def poly_settings(node: Call, label: str) -> tuple:
    """(argument node, degree, raw) of a ``poly()`` call."""
    args = match_basis_args(node, label)
    return args["x"], _whole(args, "degree", label, 1, 1), _flag(args, "raw", label)


def power_sums(data: pd.DataFrame, arg, label: str, degree: int) -> tuple:
    """(n, mean, S[0..2d], distinct values) of the argument over the rows where it is known."""
    ev = _Evaluator(data, AtomState(), True)
    ev.evaluate(arg)
    x = np.asarray(ev.numeric(arg, label), dtype=float)
    x = np.broadcast_to(x, (len(data),)) if x.ndim == 0 else x
    x = x[~np.isnan(x)]
    if not np.isfinite(x).all():
        raise DesignError(f"{label!r}: its argument has infinite values; check the transform or remove those rows")
    if len(x) == 0:
        return 0, 0.0, tuple([0.0] * (2 * degree + 1)), np.zeros(0)
    mean = float(np.mean(x))
    u = x - mean
    sums = tuple(float(np.sum(u ** j)) for j in range(2 * degree + 1))
    return len(x), mean, sums, np.unique(x)[: degree + 1]


def merge_power_sums(a: tuple, b: tuple) -> tuple:
    """Two partitions' (n, mean, S, distinct) as one."""
    na, ma, sa, da = a
    nb, mb, sb, db = b
    if nb == 0:
        return a
    if na == 0:
        return b
    n = na + nb
    m = ma + (mb - ma) * nb / n
    ea, eb = ma - m, mb - m
    sums = tuple(sum(comb(j, k) * (sa[k] * ea ** (j - k) + sb[k] * eb ** (j - k)) for k in range(j + 1))
                 for j in range(len(sa)))
    distinct = np.unique(np.concatenate([da, db]))[: max(len(da), len(db))]
    return n, m, sums, distinct


def poly_from_power_sums(stats: tuple, degree: int, raw: bool, label: str) -> PolyBasis:
    """R's ``poly(x, degree)`` coefficients (as ``fit_poly`` computes them) from merged power sums."""
    if raw:
        return PolyBasis(degree, True)
    n, mean, sums, distinct = stats
    if degree >= len(distinct):
        raise DesignError(f"{label!r}: the degree ({degree}) must be less than the number of distinct values "
                          f"({len(distinct)})")
    S = np.asarray(sums, dtype=float)

    def total(c: np.ndarray) -> float:          # sum over rows of the polynomial with coefficients c in u
        return float(c @ S[: len(c)])

    prev, cur = np.zeros(1), np.ones(1)
    norm2 = [1.0]
    alpha = []
    for k in range(degree + 1):
        sq = np.convolve(cur, cur)
        nk = total(sq)
        if k > 0 and not nk > 1e-14 * total(np.convolve(np.eye(k + 1)[k], np.eye(k + 1)[k])):
            raise DesignError(f"{label!r}: the powers of x up to {degree} are linearly dependent at the data's "
                              "values; lower the degree")
        norm2.append(nk)
        if k == degree:
            break
        a = total(np.concatenate([[0.0], sq])) / nk      # sum u P^2 / sum P^2 (alpha - mean)
        alpha.append(a + mean)
        nxt = np.concatenate([[0.0], cur]) - a * np.concatenate([cur, [0.0]])
        if k > 0:
            nxt[: len(prev)] -= (norm2[k + 1] / norm2[k]) * prev
        prev, cur = cur, nxt
    return PolyBasis(degree, False, tuple(float(v) for v in alpha), tuple(float(v) for v in norm2))
