"""Null distribution of the restricted likelihood ratio test for one variance component (arrays only).

For ``y = X beta + Z b + e`` with ``b ~ N(0, sigma^2 lambda Sigma)``, ``e ~ N(0, sigma^2 I)``, the
RLRT of ``H0: lambda = 0`` has (Crainiceanu & Ruppert 2004, JRSS-B 66:165-185, Theorem 2 with
REML, ``xi_s = mu_s``) the exact null representation

.. math::

    \\mathrm{RLRT} \\overset{d}{=} \\sup_{\\lambda \\ge 0}
      \\Big\\{ (n - p) \\log\\Big(1 + \\frac{N(\\lambda)}{D(\\lambda)}\\Big)
              - \\sum_{s=1}^{K} \\log(1 + \\lambda \\mu_s) \\Big\\},
    \\quad N(\\lambda) = \\sum_s \\frac{\\lambda \\mu_s}{1 + \\lambda \\mu_s} w_s,
    \\quad D(\\lambda) = \\sum_s \\frac{w_s}{1 + \\lambda \\mu_s} + w_0,

with ``w_s ~ chi2(1)`` and ``w_0 ~ chi2(n - p - K)`` independent, and ``mu_s`` the non-zero
eigenvalues of ``Sigma^{1/2}' Z' P0 Z Sigma^{1/2}``, ``P0 = I - X (X'X)^{-1} X'``.

The supremum is taken as RLRsim's ``RLRTSim`` does (Scheipl, Greven & Kuechenhoff 2008): the
eigenvalues are divided by the largest one (the statistic does not depend on the scale of
``lambda``), the grid is ``lambda = 0`` followed by ``gridlength - 1`` values log-equidistant
between ``exp(log_grid_lo)`` and ``exp(log_grid_hi)``, and the search walks up the grid and
stops at the first decrease (the first local maximum; no further refinement).  Differences from
RLRsim, none of which changes the distribution: eigenvalues numerically zero (below
``ZERO_TOL * max``) are folded into ``w_0`` (RLRsim draws one ``chi2(1)`` for each of them), and
with ``K`` eigenvalues the remaining degrees of freedom are ``n - p - K`` with ``K`` the number of
non-zero eigenvalues.  The random numbers come from numpy's generator, so draws differ from R's;
the distributions agree.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["ZERO_TOL", "grid_max", "lambda_grid", "rlrt_eigenvalues", "simulate_rlrt"]

#: eigenvalues below ``ZERO_TOL * max(mu)`` are treated as exactly zero
ZERO_TOL = 1e-10


def rlrt_eigenvalues(X: np.ndarray, Z, sqrt_sigma: np.ndarray | None = None) -> np.ndarray:
    """Eigenvalues ``mu`` of ``S' Z' P0 Z S`` (``S = sqrt_sigma``, identity by default), decreasing.

    Parameters
    ----------
    X : (n, p) fixed-effects matrix of full column rank.
    Z : (n, q) random-effects matrix of the tested component (dense or scipy sparse).
    sqrt_sigma : (q, q) factor of the correlation of the tested effects, or None for identity.

    Returns
    -------
    (min(n, q),) eigenvalues, not normalized, negative rounding errors set to 0.
    """
    X = np.asarray(X, dtype=float)
    Q, _ = np.linalg.qr(X)
    if sp.issparse(Z):
        Z = sp.csc_matrix(Z, dtype=float)
        if sqrt_sigma is not None:
            Z = Z @ sp.csc_matrix(sqrt_sigma)
        ZtZ = (Z.T @ Z).toarray()
        QtZ = np.asarray((Z.T @ Q).T)
    else:
        Z = np.asarray(Z, dtype=float)
        if sqrt_sigma is not None:
            Z = Z @ np.asarray(sqrt_sigma, dtype=float)
        ZtZ = Z.T @ Z
        QtZ = Q.T @ Z
    M = ZtZ - QtZ.T @ QtZ
    mu = np.linalg.eigvalsh(0.5 * (M + M.T))[::-1]
    mu = mu[: min(X.shape[0], mu.size)]
    return np.clip(mu, 0.0, None)


def lambda_grid(log_grid_lo: float = -10.0, log_grid_hi: float = 8.0, gridlength: int = 200) -> np.ndarray:
    """RLRsim's grid for ``lambda0 = 0``: 0, then ``gridlength - 1`` log-equidistant values."""
    if gridlength < 2:
        raise ValueError(f"gridlength must be at least 2, got {gridlength}")
    if not log_grid_lo < log_grid_hi:
        raise ValueError(f"log_grid_lo ({log_grid_lo}) must be below log_grid_hi ({log_grid_hi})")
    return np.concatenate([[0.0], np.exp(np.linspace(log_grid_lo, log_grid_hi, gridlength - 1))])


def _first_local_max(LR: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the value (and index) where the walk up the grid first decreases (else the last)."""
    down = np.diff(LR, axis=1) < 0
    stop = np.where(down.any(axis=1), down.argmax(axis=1), LR.shape[1] - 1)
    return LR[np.arange(LR.shape[0]), stop], stop


def grid_max(w: np.ndarray, w0: np.ndarray, mu: np.ndarray, n: int, p: int,
             grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The likelihood ratio of given draws maximized over the grid (RLRsim's walk; module docstring).

    Parameters
    ----------
    w : (b, k) the ``chi2(1)`` draws, one column per eigenvalue in ``mu`` (k,).
    w0 : (b,) the ``chi2(n - p - k)`` draws.  grid : lambda values starting at 0, increasing.

    Returns
    -------
    value : (b,) the maximum found (>= 0).  index : (b,) its position in ``grid``.
    """
    lm = np.outer(grid, mu)                                  # (g, k)
    N = w @ (lm / (1.0 + lm)).T
    D = w @ (1.0 / (1.0 + lm)).T + np.asarray(w0, dtype=float)[:, None]
    LR = (n - p) * np.log1p(N / D) - np.log1p(lm).sum(axis=1)
    LR[:, 0] = 0.0                                           # lambda = 0: exactly 0
    val, idx = _first_local_max(LR)
    return np.maximum(val, 0.0), idx


def simulate_rlrt(mu: np.ndarray, n: int, p: int, nsim: int = 10000, rng=None, grid: np.ndarray | None = None,
                  chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``nsim`` values from the null distribution of the RLRT (module docstring).

    Parameters
    ----------
    mu : eigenvalues from :func:`rlrt_eigenvalues` (any scale; zeros allowed).
    n, p : number of observations and of fixed effects.
    nsim : number of draws.  rng : numpy Generator or seed.
    grid : lambda grid (default :func:`lambda_grid`); must start at 0 and increase.
    chunk : draws per vectorized block (memory ``~ 3 * chunk * len(grid)`` doubles).

    Returns
    -------
    sample : (nsim,) simulated statistics (>= 0).  lam : (nsim,) the maximizing grid value of
    ``lambda`` on the normalized scale (``mu / max(mu)``).
    """
    mu = np.asarray(mu, dtype=float)
    if mu.size == 0 or not np.all(np.isfinite(mu)) or mu.max() <= 0:
        raise ValueError("the tested random effect has no variation left after removing the fixed effects "
                         "(all eigenvalues of Z' P0 Z are zero): its variance is not identifiable")
    mu = mu / mu.max()
    mu = mu[mu > ZERO_TOL]
    k = mu.size
    df0 = n - p - k
    if df0 < 0:
        raise ValueError(f"n - p - K = {n} - {p} - {k} < 0: more random-effect directions than residual "
                         "degrees of freedom")
    grid = lambda_grid() if grid is None else np.asarray(grid, dtype=float)
    if grid[0] != 0 or np.any(np.diff(grid) <= 0):
        raise ValueError("the lambda grid must start at 0 and increase")
    rng = np.random.default_rng(rng)
    nsim = int(nsim)
    sample = np.empty(nsim)
    lam = np.empty(nsim)
    for start in range(0, nsim, chunk):
        b = min(chunk, nsim - start)
        w = rng.standard_normal((b, k)) ** 2
        w0 = rng.chisquare(df0, b) if df0 > 0 else np.zeros(b)
        val, idx = grid_max(w, w0, mu, n, p, grid)
        sample[start:start + b] = val
        lam[start:start + b] = grid[idx]
    return sample, lam
