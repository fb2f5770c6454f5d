"""Changes of units between the user's model and the internal, standardized one.

A linear mixed model ``y = offset + X beta + Z b + e`` is fitted on an internal copy whose
columns are centred and scaled; the fit is then mapped back exactly.  Every map below is an
exact reparameterisation of the same model, so the user's estimates do not depend on the
units (or the origin) of the data:

* response: ``y_int = (y - offset - c) / s_y``.  ``c`` is the compensated mean of
  ``y - offset`` when the constant vector lies in the column space of ``X`` (``X g = 1``),
  else ``c = 0``; ``s_y`` is the root mean square of ``y - offset - c``.
* fixed effects: ``X_int = X A`` with ``A = (I - g m') D^{-1}``: columns outside the support
  of ``g`` are centred by their means ``m`` (only when ``X g = 1``) and every column is divided
  by its root mean square ``d``.  Then ``beta = s_y A beta_int + c g``,
  ``Var(beta) = s_y^2 A Var(beta_int) A'``.
* random-effect columns of term ``k`` (``p_k`` columns): ``Z_k,int = Z_k T_k`` per level with
  ``T_k = (I - e_0 m_k') D_k^{-1}``.  Non-intercept columns are centred only when the term has
  an intercept column and an unstructured covariance (``p_k > 1``): only then is a shift an
  equivalent model.  ``b = s_y T_k b_int``, ``Var(b) = s_y^2 T_k Var(b_int) T_k'``.
* prior weights: ``w_int = w / k`` with ``k`` the mean weight, so ``sigma^2 = s_y^2 k sigma_int^2``.
* relative covariance factors: ``Lambda_k Lambda_k' = T_k Lambda_k,int Lambda_k,int' T_k' / k``;
  ``Lambda_k`` is the lower Cholesky factor of that product (from a QR factorization, so a
  singular factor maps exactly too).
* criteria: ``ML = ML_int + 2 n log s_y`` and
  ``REML = REML_int + 2 (n - p) log s_y + 2 sum_j log d_j`` (the Jacobians of
  ``y -> y_int`` and ``beta -> beta_int``); weights need no term.

GLMMs use the same maps with ``s_y = 1`` and ``c = -(mean offset)``: the offset is centred
instead of the response.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Standardization", "standardize", "lower_factor"]


def _fmean(v: np.ndarray) -> float:
    """Correctly rounded mean (compensated sum: shifts of 1e12 keep every digit)."""
    return math.fsum(v.tolist()) / len(v) if len(v) else 0.0


def _rms(v: np.ndarray) -> float:
    if v.size == 0:
        return 1.0
    big = float(np.max(np.abs(v)))
    if not np.isfinite(big) or big == 0.0:
        return 1.0
    return big * float(np.sqrt(np.mean((v / big) ** 2)))


def lower_factor(M: np.ndarray) -> np.ndarray:
    """Lower-triangular ``F`` with non-negative diagonal and ``F F' = M M'`` (exact for singular M)."""
    p = M.shape[0]
    if p == 0 or not np.any(np.triu(M, 1)):      # already lower triangular
        F = np.tril(M).copy()
    else:
        R = np.linalg.qr(M.T, mode="r")
        F = R.T.copy()
    signs = np.where(np.diag(F) < 0, -1.0, 1.0)
    return F * signs[None, :]


def _ones_coefficients(X: np.ndarray) -> np.ndarray | None:
    """``g`` with ``X g = 1`` exactly enough to centre by, or None.

    An explicit constant column gives ``g = e_j / c``; otherwise a least-squares solution is
    accepted when it reproduces the constant to 1e-12 (e.g. ``0 + f``: the dummies sum to 1).
    """
    n, p = X.shape
    if n == 0 or p == 0:
        return None
    first = X[0]
    const = np.flatnonzero(np.all(X == first[None, :], axis=0) & (first != 0))
    if const.size:
        g = np.zeros(p)
        g[const[0]] = 1.0 / first[const[0]]
        return g
    scale = np.array([_rms(X[:, j]) for j in range(p)])
    g = np.linalg.lstsq(X / scale, np.ones(n), rcond=None)[0] / scale
    if np.max(np.abs(X @ g - 1.0)) < 1e-12:
        return g
    return None


def _term_transform(Xk: np.ndarray, kind: str = "center") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(T_k, m_k, d_k)``: ``Xk T_k`` has columns ``(Xk_j - m_j Xk_0) / d_j`` (centred when allowed).

    ``kind`` is the term's covariance structure's ``scaling``: ``"center"`` (unstructured: centre
    on an intercept column and scale each column), ``"column"`` (scale each column; a diagonal
    ``T`` keeps diagonal, compound-symmetric and Toeplitz correlation structures) or
    ``"common"`` (one scale for all columns: keeps structures with a shared variance)."""
    p = Xk.shape[1]
    if p == 0:
        return np.eye(0), np.zeros(0), np.ones(0)
    if kind != "center":
        d = np.array([_rms(Xk[:, j]) for j in range(p)])
        if kind == "common":
            d = np.full(p, float(np.sqrt(np.mean(d ** 2))))
        return np.diag(1.0 / d), np.zeros(p), d
    c0 = Xk[0, 0] if Xk.shape[0] else 0.0
    intercept = p > 1 and c0 != 0 and bool(np.all(Xk[:, 0] == c0))
    m = np.zeros(p)
    if intercept:
        for j in range(1, p):
            m[j] = _fmean(Xk[:, j]) / c0
    d = np.empty(p)
    for j in range(p):
        col = Xk[:, j] - m[j] * Xk[:, 0] if m[j] != 0 else Xk[:, j]
        d[j] = _rms(col)
    T = np.eye(p)
    T[0, :] -= m          # T = (I - e0 m') D^{-1}
    return T / d[None, :], m, d


@dataclass(frozen=True)
class Standardization:
    """The affine maps between user and internal units (see the module docstring).

    Attributes
    ----------
    y_center, y_scale : ``c`` and ``s_y``.  w_scale : ``k``, the mean prior weight (1 without weights).
    g : (p,) coefficients with ``X g = 1`` (zeros when the constant is not in the model).
    x_center, x_scale : (p,) ``m`` and ``d``.  A : (p, p) column map, ``X_int = X A``.
    T : per random term, the (p_k, p_k) column map ``Z_k,int = Z_k T_k``; term_center and
    term_scale hold its ``m_k`` and ``d_k``.
    """
    y_center: float
    y_scale: float
    w_scale: float
    g: np.ndarray
    x_center: np.ndarray
    x_scale: np.ndarray
    A: np.ndarray
    T: tuple
    term_center: tuple
    term_scale: tuple

    @property
    def log_det_d(self) -> float:
        """``sum_j log d_j = -log|det A|``."""
        return float(np.sum(np.log(self.x_scale)))

    # --------------------------------------------------------------- data
    def response(self, y_work: np.ndarray) -> np.ndarray:
        """``(y - offset - c) / s_y``."""
        return (np.asarray(y_work, float) - self.y_center) / self.y_scale

    def weights(self, w):
        return None if w is None else np.asarray(w, float) / self.w_scale

    def fixed(self, X: np.ndarray) -> np.ndarray:
        """``X A``, computed column by column as ``(X_j - m_j) / d_j`` (no cancellation)."""
        X = np.asarray(X, float)
        return (X - self.x_center[None, :]) / self.x_scale[None, :]

    def term(self, k: int, Xk: np.ndarray) -> np.ndarray:
        """``Xk T_k`` computed as ``(Xk_j - m_j Xk_0) / d_j``."""
        Xk = np.asarray(Xk, float)
        m, d = self.term_center[k], self.term_scale[k]
        if Xk.shape[1] == 0:
            return Xk.copy()
        return (Xk - Xk[:, :1] * m[None, :]) / d[None, :]

    # -------------------------------------------------------- parameters
    @property
    def beta_map(self) -> np.ndarray:
        """``B = s_y A``: ``beta = B beta_int + c g``."""
        return self.y_scale * self.A

    def beta_to_user(self, beta_int: np.ndarray) -> np.ndarray:
        return self.beta_map @ beta_int + self.y_center * self.g

    def beta_to_internal(self, beta: np.ndarray) -> np.ndarray:
        return np.linalg.solve(self.beta_map, np.asarray(beta, float) - self.y_center * self.g)

    def vcov_to_user(self, V_int: np.ndarray) -> np.ndarray:
        B = self.beta_map
        return B @ V_int @ B.T

    def sigma_to_user(self, sigma_int: float) -> float:
        return float(sigma_int * self.y_scale * np.sqrt(self.w_scale))

    def sigma_to_internal(self, sigma: float) -> float:
        return float(sigma / (self.y_scale * np.sqrt(self.w_scale)))

    def lambdas_to_user(self, lams_int) -> list[np.ndarray]:
        r = 1.0 / np.sqrt(self.w_scale)
        return [lower_factor(T @ lam) * r for T, lam in zip(self.T, lams_int)]

    def lambdas_to_internal(self, lams) -> list[np.ndarray]:
        r = np.sqrt(self.w_scale)
        return [lower_factor(np.linalg.solve(T, lam)) * r for T, lam in zip(self.T, lams)]

    def theta_to_user(self, theta_int: np.ndarray, layout) -> np.ndarray:
        return self._map_theta(theta_int, layout, to_user=True)

    def theta_to_internal(self, theta: np.ndarray, layout) -> np.ndarray:
        return self._map_theta(theta, layout, to_user=False)

    def _map_theta(self, theta, layout, to_user: bool) -> np.ndarray:
        """Unstructured terms through their factors; structured terms (diagonal ``T_k``, see
        :func:`_term_transform`) by scaling their standard deviations, exactly."""
        theta = np.asarray(theta, float)
        lams = layout.lambdas(theta)
        mapped = self.lambdas_to_user(lams) if to_user else self.lambdas_to_internal(lams)
        r = 1.0 / np.sqrt(self.w_scale)
        out = np.empty_like(theta)
        for k, (sl, st) in enumerate(zip(layout.slices(), layout.structures)):
            if st.scaling == "center":
                out[sl] = mapped[k][st.rows, st.cols]
            else:
                t = np.diag(self.T[k]) * r
                out[sl] = st.scale(theta[sl], t if to_user else 1.0 / t)
        return out

    def b_to_user(self, b_int) -> list[np.ndarray]:
        """Per term, (n_levels, p_k) conditional modes on the user's scale."""
        return [self.y_scale * (bk @ T.T) for bk, T in zip(b_int, self.T)]

    def cond_var_to_user(self, cv_int) -> list[np.ndarray]:
        return [self.y_scale ** 2 * (T @ ck @ T.T) for ck, T in zip(cv_int, self.T)]

    def objective_shift(self, n: int, p: int, reml: bool) -> float:
        """User criterion minus internal criterion (the Jacobian terms)."""
        ls = 2.0 * np.log(self.y_scale)
        return (n - p) * ls + 2.0 * self.log_det_d if reml else n * ls


def standardize(X: np.ndarray, y_work: np.ndarray | None, term_columns, weights=None,
                scale_response: bool = True, center: np.ndarray | None = None,
                term_kinds=None) -> Standardization:
    """Compute the maps for a model.

    Parameters
    ----------
    X : (n, p) fixed-effects matrix.  y_work : (n,) response minus offset (LMMs), or None.
    term_columns : per random term, its (n, p_k) left-hand-side matrix.
    weights : prior weights (LMMs: normalized to mean 1 internally) or None.
    scale_response : LMMs; GLMMs keep ``s_y = 1`` and pass ``center``.
    center : GLMMs: the vector to centre instead of the response (the offset), or None.
    term_kinds : per random term, its structure's ``scaling`` (default ``"center"``: lme4's
        unstructured covariance).
    """
    X = np.asarray(X, float)
    n, p = X.shape
    g = _ones_coefficients(X)
    m = np.zeros(p)
    if g is not None:
        for j in np.flatnonzero(g == 0):
            m[j] = _fmean(X[:, j])
    d = np.empty(p)
    for j in range(p):
        d[j] = _rms(X[:, j] - m[j] if m[j] != 0 else X[:, j])
    A = (np.eye(p) - np.outer(g if g is not None else np.zeros(p), m)) / d[None, :]
    c, s = 0.0, 1.0
    if scale_response and y_work is not None:
        yw = np.asarray(y_work, float)
        c = _fmean(yw) if g is not None else 0.0
        s = _rms(yw - c)
    elif center is not None and g is not None:
        c = -_fmean(np.asarray(center, float))
    k = 1.0
    if weights is not None and scale_response:
        w = np.asarray(weights, float)
        k = float(np.mean(w)) if np.mean(w) > 0 else 1.0
    kinds = list(term_kinds) if term_kinds is not None else ["center"] * len(term_columns)
    terms = [_term_transform(np.asarray(Xk, float), kind) for Xk, kind in zip(term_columns, kinds)]
    return Standardization(y_center=float(c), y_scale=float(s), w_scale=k,
                           g=np.zeros(p) if g is None else g, x_center=m, x_scale=d, A=A,
                           T=tuple(t[0] for t in terms), term_center=tuple(t[1] for t in terms),
                           term_scale=tuple(t[2] for t in terms))
