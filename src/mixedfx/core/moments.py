"""Column moments that merge across row partitions, and the standardization built from them.

An LMM's standardization (:mod:`mixedfx.core.scaling`) depends on the data only through
per-column summaries: counts, means, root mean squares about a centre, "constant column"
flags and (to find ``g`` with ``X g = 1`` when there is no explicit constant column) the Gram
of ``X``.  :class:`ColumnMoments` holds them for one set of rows; :meth:`ColumnMoments.merge`
combines two disjoint sets exactly in the algebra (Chan, Golub and LeVeque 1979 for the
centred second moments), so partitions can be summarized independently and merged in any order
(tree reductions).  :func:`standardize_from_moments` then builds the :class:`Standardization`
that :func:`~mixedfx.core.scaling.standardize` computes on all rows at once, equal to rounding.

The root mean square about a centre ``c`` is ``sqrt(M2 / n + (mean - c)^2)`` with
``M2 = sum (v - mean)^2``: no cancellation, whatever ``c``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import reduce

import numpy as np

from .scaling import Standardization

__all__ = ["ColumnMoments", "standardize_from_moments", "ones_candidate", "ones_residual"]


def _two_sum(a, b):
    """``(s, e)`` with ``s = fl(a + b)`` and ``s + e = a + b`` exactly (Knuth), elementwise."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


@dataclass(frozen=True)
class ColumnMoments:
    """Mergeable summaries of the ``k`` columns of an (n, k) matrix.

    Attributes
    ----------
    n : number of rows.
    mean : (k,) column means, rounded (exact for constant columns).
    mean_lo : (k,) what the rounding of ``mean`` left out (``mean + mean_lo`` is the mean to about
        twice the working precision): merges of partitions whose means share a large offset
        (``x + 1e6``) then keep every digit of their differences.
    m2 : (k,) centred sums of squares ``sum_i (v_ij - mean_j)^2``.
    maxabs : (k,) ``max_i |v_ij|`` (0 without rows).
    const : (k,) the common value of a constant column, NaN otherwise (and without rows).
    comoment : (k, k) centred cross-products ``sum_i (v_i - mean)(v_i - mean)'``, or None when
        not requested (only the fixed-effects matrix needs it).
    """

    n: int
    mean: np.ndarray
    mean_lo: np.ndarray
    m2: np.ndarray
    maxabs: np.ndarray
    const: np.ndarray
    comoment: np.ndarray | None = None

    @property
    def k(self) -> int:
        """Number of columns."""
        return len(self.mean)

    @classmethod
    def empty(cls, k: int, comoment: bool = False) -> "ColumnMoments":
        """The moments of zero rows of ``k`` columns (the neutral element of :meth:`merge`)."""
        return cls(0, np.zeros(k), np.zeros(k), np.zeros(k), np.zeros(k), np.full(k, np.nan),
                   np.zeros((k, k)) if comoment else None)

    @classmethod
    def of(cls, V, comoment: bool = False) -> "ColumnMoments":
        """Moments of the rows of ``V``: (n, k) matrix, or (n,) for one column.

        The mean is the pairwise mean refined by one correction step (``mean(v - mean)``, kept as
        ``mean_lo``); constant columns get their value exactly and ``m2 = 0``.
        """
        V = np.asarray(V, float)
        if V.ndim == 1:
            V = V[:, None]
        n, k = V.shape
        if n == 0:
            return cls.empty(k, comoment)
        mu = V.mean(axis=0)
        D = V - mu[None, :]
        lo = D.mean(axis=0)
        same = np.all(V == V[:1], axis=0)
        const = np.where(same, V[0], np.nan)
        mu = np.where(same, V[0], mu)
        lo = np.where(same, 0.0, lo)
        R = D - lo[None, :]
        R[:, same] = 0.0
        m2 = np.einsum("ij,ij->j", R, R)
        hi, lo = _two_sum(mu, lo)
        return cls(n, hi, lo, m2, np.max(np.abs(V), axis=0), const, R.T @ R if comoment else None)

    def merge(self, other: "ColumnMoments") -> "ColumnMoments":
        """The moments of the union of two disjoint sets of rows (same columns)."""
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        if other.k != self.k:
            raise ValueError(f"cannot merge moments of {self.k} and {other.k} columns")
        n = self.n + other.n
        delta = (other.mean - self.mean) + (other.mean_lo - self.mean_lo)
        frac = other.n / n
        mean, lo = _two_sum(self.mean, self.mean_lo + delta * frac)
        m2 = self.m2 + other.m2 + delta ** 2 * (self.n * frac)
        const = np.where(self.const == other.const, self.const, np.nan)
        same = ~np.isnan(const)
        mean = np.where(same, const, mean)
        lo = np.where(same, 0.0, lo)
        m2 = np.where(same, 0.0, m2)
        com = None
        if self.comoment is not None and other.comoment is not None:
            com = self.comoment + other.comoment + np.outer(delta, delta) * (self.n * frac)
        return ColumnMoments(n, mean, lo, m2, np.maximum(self.maxabs, other.maxabs), const, com)

    @staticmethod
    def merge_all(parts) -> "ColumnMoments":
        """Merge an iterable of moments (None entries, e.g. empty partitions, are skipped)."""
        parts = [p for p in parts if p is not None]
        if not parts:
            raise ValueError("no moments to merge")
        return reduce(ColumnMoments.merge, parts)

    def rms(self, j: int, center: float = 0.0) -> float:
        """Root mean square of column ``j`` minus ``center``; 1 when it is 0, undefined or has no rows
        (as :func:`mixedfx.core.scaling.standardize` does)."""
        if self.n == 0 or not np.isfinite(self.maxabs[j]):
            return 1.0
        r = float(np.sqrt(self.m2[j] / self.n + ((self.mean[j] - center) + self.mean_lo[j]) ** 2))
        return r if r > 0.0 and np.isfinite(r) else 1.0

    def gram(self) -> np.ndarray:
        """(k, k) uncentred ``V'V`` from the co-moments."""
        if self.comoment is None:
            raise ValueError("these moments were computed without comoment=True")
        return self.comoment + self.n * np.outer(self.mean, self.mean)


def ones_candidate(x: ColumnMoments) -> np.ndarray | None:
    """Candidate ``g`` with ``X g = 1`` when ``X`` has no explicit constant column (e.g. ``0 + f``).

    The least-squares solution from the normal equations of the RMS-scaled columns (needs
    ``comoment``).  It must be verified over the rows (the maximum of :func:`ones_residual` over
    the partitions below 1e-12) before it is passed to :func:`standardize_from_moments` as ``ones``.
    Returns None without rows or columns.
    """
    if x.n == 0 or x.k == 0:
        return None
    s = np.array([x.rms(j) for j in range(x.k)])
    G = x.gram() / np.outer(s, s)
    h = np.linalg.lstsq(G, x.n * x.mean / s, rcond=None)[0]
    return h / s


def ones_residual(X, g: np.ndarray) -> float:
    """``max_i |(X g)_i - 1|`` over one partition's rows of ``X`` (0 without rows): the check of
    :func:`ones_candidate`'s ``g`` (merge partitions with ``max``)."""
    X = np.asarray(X, float)
    return float(np.max(np.abs(X @ g - 1.0))) if X.shape[0] else 0.0


def _explicit_ones(x: ColumnMoments) -> np.ndarray | None:
    """``g = e_j / c`` for the first constant non-zero column ``j``, as ``standardize`` finds it."""
    found = np.flatnonzero(~np.isnan(x.const) & (np.nan_to_num(x.const) != 0.0))
    if x.n == 0 or not found.size:
        return None
    g = np.zeros(x.k)
    g[found[0]] = 1.0 / x.const[found[0]]
    return g


def _term_from_moments(mt: ColumnMoments, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(T_k, m_k, d_k)`` of one random term, as ``mixedfx.core.scaling._term_transform``."""
    p = mt.k
    if p == 0:
        return np.eye(0), np.zeros(0), np.ones(0)
    if kind != "center":
        d = np.array([mt.rms(j) for j in range(p)])
        if kind == "common":
            d = np.full(p, float(np.sqrt(np.mean(d ** 2))))
        return np.diag(1.0 / d), np.zeros(p), d
    c0 = mt.const[0]
    intercept = p > 1 and mt.n > 0 and not np.isnan(c0) and c0 != 0.0
    m = np.zeros(p)
    if intercept:
        m[1:] = mt.mean[1:] / c0
    # column j minus m_j * (constant column 0 = c0): its centre is m_j c0
    d = np.array([mt.rms(j, m[j] * c0 if m[j] != 0.0 else 0.0) for j in range(p)])
    T = np.eye(p)
    T[0, :] -= m
    return T / d[None, :], m, d


_DETECT = "detect"


def standardize_from_moments(x: ColumnMoments, y: ColumnMoments | None, terms, weights: ColumnMoments | None = None,
                             scale_response: bool = True, center: ColumnMoments | None = None, term_kinds=None,
                             ones=_DETECT) -> Standardization:
    """The :class:`Standardization` of :func:`~mixedfx.core.scaling.standardize`, from merged moments.

    Parameters
    ----------
    x : moments of the (n, p) fixed-effects matrix.
    y : moments of the (n,) response minus offset (LMMs), or None.
    terms : per random term, the moments of its (n, p_k) left-hand-side matrix.
    weights : moments of the (n,) prior weights (zeros included), or None.
    scale_response : LMMs; GLMMs keep ``s_y = 1`` and pass ``center``.
    center : GLMMs: moments of the (n,) vector centred instead of the response (the offset), or None.
    term_kinds : per random term, its structure's ``scaling`` (default ``"center"``).
    ones : how ``g`` (``X g = 1``) is found when ``X`` has no explicit constant non-zero column
        (an explicit one is always used, as in ``standardize``): ``"detect"`` (default) refuses
        such an ``X`` because the candidate needs a check over the rows; pass the verified (p,)
        ``g`` from :func:`ones_candidate` / :func:`ones_residual`, or None when the constant is not
        in the column space of ``X``.

    Returns
    -------
    Standardization
        Equal to ``standardize(X, y_work, term_columns, weights, ...)`` on all rows, up to the
        rounding of the merged means and sums of squares.
    """
    p = x.k
    g = _explicit_ones(x)
    if g is None and x.n > 0 and p > 0:
        if isinstance(ones, str):
            if ones != _DETECT:
                raise ValueError(f"ones must be 'detect', None or a (p,) array, not {ones!r}")
            raise ValueError("the fixed-effects matrix has no explicit constant column: compute g with "
                             "ones_candidate(x), check max ones_residual(X, g) < 1e-12 over the partitions and "
                             "pass ones=g (or ones=None when the check fails)")
        g = None if ones is None else np.asarray(ones, float)
        if g is not None and g.shape != (p,):
            raise ValueError(f"ones has shape {g.shape}; the fixed-effects matrix has {p} columns")
    m = np.zeros(p)
    if g is not None:
        free = np.flatnonzero(g == 0)
        m[free] = x.mean[free]
    d = np.array([x.rms(j, m[j]) for j in range(p)])
    A = (np.eye(p) - np.outer(g if g is not None else np.zeros(p), m)) / d[None, :]
    c, s = 0.0, 1.0
    if scale_response and y is not None:
        c = float(y.mean[0]) if g is not None and y.n else 0.0
        s = y.rms(0, c)
    elif center is not None and g is not None:
        c = -float(center.mean[0]) if center.n else 0.0
    k = 1.0
    if weights is not None and scale_response and weights.n:
        mw = float(weights.mean[0])
        k = mw if mw > 0 else 1.0
    kinds = list(term_kinds) if term_kinds is not None else ["center"] * len(terms)
    if len(kinds) != len(terms):
        raise ValueError(f"term_kinds has {len(kinds)} entries for {len(terms)} random terms")
    out = [_term_from_moments(mt, kind) for mt, kind in zip(terms, kinds)]
    return Standardization(y_center=float(c), y_scale=float(s), w_scale=float(k),
                           g=np.zeros(p) if g is None else g, x_center=m, x_scale=d, A=A,
                           T=tuple(t[0] for t in out), term_center=tuple(t[1] for t in out),
                           term_scale=tuple(t[2] for t in out))
