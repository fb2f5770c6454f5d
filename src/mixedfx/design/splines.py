"""R's polynomial and spline bases: ``poly()`` (stats) and ``bs()``/``ns()`` (splines), arrays only.

Each basis is fitted once on the training values (``fit_poly``, ``fit_bspline``), which returns a
frozen state holding what R keeps in the basis' attributes (``coefs = list(alpha, norm2)`` for
``poly``; ``knots``, ``Boundary.knots``, ``degree``, ``intercept`` for ``bs``/``ns``).  The state's
``basis(x)`` evaluates the same basis at new values, as R's ``predict`` (through
``makepredictcall``) does:

* ``poly``: training values get R's QR construction; new values the three-term recurrence
  with the stored ``alpha`` and ``norm2``.  ``raw = TRUE`` gives ``x, x^2, ...``.
* ``bs``: the B-spline basis of order ``degree + 1`` on the knots ``Boundary.knots`` (repeated
  ``degree + 1`` times) and the interior knots (by default at quantiles of ``x``, R's type 7).
  Beyond the boundary knots each basis function continues its end polynomial piece (R
  expands it about a pivot inside the end interval, which is the same polynomial).
* ``ns``: the cubic B-spline basis projected (with R's Householder QR) onto the functions
  whose second derivative vanishes at both boundary knots; beyond them it is extended
  linearly (value and slope at the boundary knot).

Errors are :class:`ValueError` with a message the caller prefixes with the term.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

__all__ = ["PolyBasis", "SplineBasis", "fit_poly", "fit_bspline", "spline_design", "r_quantile7", "r_seq"]


# ---------------------------------------------------------------------------------------------- R helpers

def r_seq(start: float, stop: float, length_out: int) -> np.ndarray:
    """R's ``seq.int(from, to, length.out =)``: the first half from ``from``, the second from ``to``."""
    out = np.empty(length_out)
    if length_out > 0:
        out[0] = start
    if length_out > 1:
        out[-1] = stop
    if length_out > 2:
        by = (stop - start) / (length_out - 1)
        for i in range(1, length_out - 1):
            out[i] = start + i * by if i < length_out // 2 else stop - (length_out - 1 - i) * by
    return out


def r_quantile7(x: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """R's default ``quantile(x, probs)`` (type 7), computed as R computes it."""
    xs = np.sort(np.asarray(x, dtype=float))
    n = len(xs)
    index = 1 + max(n - 1, 0) * np.asarray(probs, dtype=float)
    lo = np.floor(index).astype(np.int64)
    hi = np.ceil(index).astype(np.int64)
    qs = xs[lo - 1]
    xhi = xs[hi - 1]
    out = qs.copy()
    i = (index > lo) & (xhi != qs)
    h = (index - lo)[i]
    out[i] = (1 - h) * qs[i] + h * xhi[i]
    return out


# ------------------------------------------------------------------------------------- B-spline design

def _intervals(t: np.ndarray, ord_: int, x: np.ndarray) -> np.ndarray:
    """Index j of the knot interval [t_j, t_j+1) whose polynomial piece is used at each x.

    Values at the right boundary knot use the last interval (the limit from the left), and
    values outside the boundary knots the first or last interval (its piece continued).
    """
    b0, b1 = t[ord_ - 1], t[len(t) - ord_]
    lo = int(np.searchsorted(t, b0, side="right")) - 1
    hi = int(np.searchsorted(t, b1, side="left")) - 1
    return np.clip(np.searchsorted(t, x, side="right") - 1, lo, hi)


def _nonzero_values(t: np.ndarray, ord_: int, x: np.ndarray, j: np.ndarray) -> np.ndarray:
    """The ``ord_`` B-splines of order ``ord_`` that are non-zero on interval ``j``, at x (de Boor).

    Column r holds B_{j - ord_ + 1 + r}.  For x outside the interval this evaluates the
    interval's polynomial piece.
    """
    n = len(x)
    vals = np.ones((n, 1))
    left = np.zeros((n, ord_))
    right = np.zeros((n, ord_))
    for k in range(1, ord_):
        left[:, k] = x - t[j + 1 - k]
        right[:, k] = t[j + k] - x
        new = np.zeros((n, k + 1))
        saved = np.zeros(n)
        for r in range(k):
            temp = vals[:, r] / (right[:, r + 1] + left[:, k - r])
            new[:, r] = saved + right[:, r + 1] * temp
            saved = left[:, k - r] * temp
        new[:, k] = saved
        vals = new
    return vals


def _derivative_matrix(t: np.ndarray, k: int) -> np.ndarray:
    """M with ``B_k'(x) = B_{k-1}(x) @ M`` (rows: order k-1 functions, columns: order k functions)."""
    m = len(t)
    out = np.zeros((m - k + 1, m - k))
    for i in range(m - k + 1):
        den = t[i + k - 1] - t[i]
        if den > 0:
            if i < m - k:
                out[i, i] += (k - 1) / den
            if i >= 1:
                out[i, i - 1] -= (k - 1) / den
    return out


def spline_design(knots, x, ord_: int, deriv: int = 0) -> np.ndarray:
    """The B-spline basis (or its ``deriv``-th derivative) of order ``ord_`` at x, as R's
    ``splines::splineDesign(knots, x, ord, derivs)``; x beyond the boundary knots
    ``knots[ord - 1]``, ``knots[-ord]`` get the end polynomial pieces continued."""
    t = np.asarray(knots, dtype=float)
    x = np.atleast_1d(np.asarray(x, dtype=float))
    m = len(t)
    j = _intervals(t, ord_, x)
    k = ord_ - deriv
    if k < 1:
        return np.zeros((len(x), m - ord_))
    vals = _nonzero_values(t, k, x, j)
    out = np.zeros((len(x), m - k))
    rows = np.arange(len(x))[:, None]
    out[rows, j[:, None] - k + 1 + np.arange(k)[None, :]] = vals
    for order in range(k + 1, ord_ + 1):
        out = out @ _derivative_matrix(t, order)
    return out


def _householder_complement(A: np.ndarray) -> np.ndarray:
    """``Q[:, p:]`` of the Householder QR ``A = QR`` (A is m x p of full column rank), computed
    with LINPACK's reflectors (R's ``qr()``), so the columns and their signs are R's."""
    A = np.array(A, dtype=float)
    m, p = A.shape
    us = []
    for col in range(p):
        x = A[col:, col]
        norm = float(np.sqrt(np.sum(x * x)))
        if norm == 0:
            raise ValueError("the natural-spline constraints are degenerate (knots too close together)")
        if x[0] != 0:
            norm = np.copysign(norm, x[0])
        u = x / norm
        u[0] += 1.0
        us.append(u)
        # apply the reflector H = I - u u' / u[0] to the remaining columns
        rest = A[col:, col + 1:]
        A[col:, col + 1:] = rest - np.outer(u, (u @ rest) / u[0])
    Q = np.eye(m)[:, p:]
    for col in reversed(range(p)):
        u = us[col]
        block = Q[col:, :]
        Q[col:, :] = block - np.outer(u, (u @ block) / u[0])
    return Q


# ------------------------------------------------------------------------------------------ poly()

@dataclass(frozen=True)
class PolyBasis:
    """``poly(x, degree)``: orthogonal (R's ``alpha``, ``norm2``) or raw powers."""
    degree: int
    raw: bool
    alpha: tuple = ()
    norm2: tuple = ()

    @property
    def ncol(self) -> int:
        return self.degree

    def basis(self, x: np.ndarray) -> np.ndarray:
        """The basis at new values (R's ``predict.poly``: the three-term recurrence)."""
        x = np.asarray(x, dtype=float)
        if self.raw:
            return np.power.outer(x, np.arange(1, self.degree + 1, dtype=float))
        alpha, norm2 = self.alpha, self.norm2
        Z = np.ones((len(x), self.degree + 1))
        Z[:, 1] = x - alpha[0]
        for i in range(1, self.degree):
            Z[:, i + 1] = (x - alpha[i]) * Z[:, i] - (norm2[i + 1] / norm2[i]) * Z[:, i - 1]
        return (Z / np.sqrt(np.asarray(norm2[1:]))[None, :])[:, 1:]


def fit_poly(x: np.ndarray, degree: int, raw: bool = False) -> tuple[PolyBasis, np.ndarray]:
    """Fit R's ``poly(x, degree, raw)`` to training values: (state, basis at x)."""
    x = np.asarray(x, dtype=float)
    if raw:
        state = PolyBasis(degree, True)
        return state, state.basis(x)
    n_unique = len(np.unique(x))
    if degree >= n_unique:
        raise ValueError(f"the degree ({degree}) must be less than the number of distinct values ({n_unique})")
    xbar = float(np.mean(x))
    xc = x - xbar
    X = np.power.outer(xc, np.arange(degree + 1, dtype=float))
    Q, R = np.linalg.qr(X)
    d = np.diag(R)
    if np.any(np.abs(d) <= 1e-7 * np.sqrt(np.sum(X * X, axis=0))):
        raise ValueError(f"the powers of x up to {degree} are linearly dependent at the data's values; "
                         "lower the degree")
    Z = Q * d[None, :]
    norm2 = np.sum(Z * Z, axis=0)
    alpha = (np.sum(xc[:, None] * Z * Z, axis=0) / norm2 + xbar)[:degree]
    norm2 = np.concatenate([[1.0], norm2])
    Z = Z / np.sqrt(norm2[1:])[None, :]
    return PolyBasis(degree, False, tuple(float(a) for a in alpha), tuple(float(v) for v in norm2)), Z[:, 1:]


# ------------------------------------------------------------------------------------- bs() and ns()

@dataclass(frozen=True)
class SplineBasis:
    """``bs()`` (``natural=False``) or ``ns()`` (``natural=True``) with its knots fixed."""
    natural: bool
    degree: int
    knots: tuple
    boundary: tuple
    intercept: bool

    @property
    def all_knots(self) -> np.ndarray:
        ord_ = self.degree + 1
        return np.sort(np.concatenate([np.repeat(self.boundary, ord_), self.knots]))

    @property
    def ncol(self) -> int:
        ncol = len(self.knots) + self.degree + 1 - (not self.intercept)
        return ncol - 2 if self.natural else ncol

    def basis(self, x: np.ndarray) -> np.ndarray:
        """The basis at x; values beyond the boundary knots are extrapolated as R does."""
        x = np.asarray(x, dtype=float)
        t = self.all_knots
        ord_ = self.degree + 1
        b0, b1 = self.boundary
        below, above = x < b0, x > b1
        if self.natural:
            B = spline_design(t, x, ord_)
            for side, b in ((below, b0), (above, b1)):
                if side.any():      # linear beyond the boundary: value and slope at the boundary knot
                    at = np.array([b])
                    B[side] = spline_design(t, at, ord_) + (x[side] - b)[:, None] * spline_design(t, at, ord_, 1)
            const = spline_design(t, np.array([b0, b1]), ord_, 2)
            if not self.intercept:
                B, const = B[:, 1:], const[:, 1:]
            return B @ _householder_complement(const.T)
        B = spline_design(t, x, ord_)
        return B if self.intercept else B[:, 1:]


def _as_knots(values, what: str) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(values, dtype=float)).ravel()
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} must be finite numbers")
    return arr


def fit_bspline(x: np.ndarray, natural: bool, df=None, knots=None, degree: int = 3, intercept: bool = False,
                boundary=None) -> tuple[SplineBasis, np.ndarray]:
    """Fit R's ``bs()`` / ``ns()`` to training values: (state, basis at x).

    ``df`` places ``df - degree - 1 + !intercept`` (``bs``) or ``df - 1 - intercept`` (``ns``)
    interior knots at quantiles of the x inside the boundary knots; ``knots``, when given,
    are used instead.  ``boundary`` defaults to the range of x.
    """
    x = np.asarray(x, dtype=float)
    if natural:
        degree = 3
    ord_ = degree + 1
    if boundary is None:
        bk = np.array([np.min(x), np.max(x)])
        inside = np.ones(len(x), bool)
    else:
        bk = np.sort(_as_knots(boundary, "Boundary.knots"))
        if len(bk) != 2:
            raise ValueError(f"Boundary.knots must be two numbers, not {len(bk)}")
        inside = (x >= bk[0]) & (x <= bk[1])
    if not bk[0] < bk[1]:
        raise ValueError("x takes a single value, so no spline can be fitted (the boundary knots coincide)"
                         if boundary is None else "the two Boundary.knots must differ")
    if knots is None and df is not None:
        n_inner = df - (1 + intercept if natural else ord_ - (not intercept))
        if n_inner < 0:
            used = 1 + intercept if natural else ord_ - (not intercept)
            warnings.warn(f"'df' was too small; have used {used}", UserWarning, stacklevel=3)
            n_inner = 0
        if n_inner > 0:
            if not inside.any():
                raise ValueError("no value of x lies inside the Boundary.knots, so the knots cannot be placed")
            knots = r_quantile7(x[inside], r_seq(0.0, 1.0, n_inner + 2)[1:-1])
    inner = np.sort(_as_knots(knots, "knots")) if knots is not None else np.zeros(0)
    if len(inner) and (inner[0] < bk[0] or inner[-1] > bk[1]):
        raise ValueError(f"the knots must lie between the boundary knots {bk[0]:.15g} and {bk[1]:.15g}")
    state = SplineBasis(natural, int(degree), tuple(float(k) for k in inner), (float(bk[0]), float(bk[1])),
                        bool(intercept))
    if state.ncol < 1:
        raise ValueError("the basis has no columns; give a larger df or intercept = TRUE")
    return state, state.basis(x)
