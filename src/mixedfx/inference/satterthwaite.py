"""Satterthwaite denominator degrees of freedom for LMM fixed effects (as lmerTest).

The variance parameters are ``varpar = (theta, sigma)``.  With the (REML or ML) deviance
*not* profiled over sigma,

    d(theta, sigma) = log|L_theta|^2 [+ log|R_X|^2] + nu log(2 pi sigma^2) + r^2(theta) / sigma^2 - sum log w,

(``nu = n - p`` for REML, ``n`` for ML) the asymptotic covariance of ``varpar`` is
``A = 2 H^{-1}``, ``H`` the Hessian of ``d`` at the optimum.  For a contrast ``L`` (1 x p),
``V(varpar) = sigma^2 (R_X R_X')^{-1}`` and ``g = d(L V L') / d varpar``:

    df = 2 (L V L')^2 / (g' A g).

For a q-row ``L`` (F tests) the Fai-Cornelius approach: with ``L V L' = P D P'``, each
eigen-direction ``m`` has ``nu_m`` as above; ``E = sum nu_m / (nu_m - 2)`` over ``nu_m > 2`` and
``df = 2 E / (E - q)``.  Derivatives are central differences (Richardson-extrapolated),
evaluated with the fitted model's own factorization: no n x n matrix is ever formed.

Everything is computed on the standardized problem (:mod:`mixedfx.core.scaling`), where the
steps are well scaled whatever the data's units.  The df are invariant to that change of
parameters: a user contrast ``L`` becomes ``L B`` with ``beta = B beta_int + c g``, and
``V`` is the standardized ``Var(beta_int)`` (:meth:`VarparFunctions.contrast`).
"""
from __future__ import annotations

import numpy as np

from ..core.finite_diff import richardson_derivative, richardson_hessian

__all__ = ["VarparFunctions", "satterthwaite_df", "satterthwaite_df_multi"]


class VarparFunctions:
    """Deviance and vcov(beta) as functions of the standardized ``varpar = (theta, sigma)``.

    With a residual model (``correlation=``, ``disp=``) ``varpar = (theta, phi, sigma)``: the
    deviance is that of the whitened data at ``phi`` plus ``log det(S R S)``
    (:mod:`mixedfx.models.residual_fit`).
    """

    def __init__(self, fit):
        self.fit = fit
        self.reml = fit.reml
        self.k = len(fit.internal.theta)
        self._crit = None
        if getattr(fit, "residual", None) is not None:
            from ..models.residual_fit import whitened_criterion
            self._crit = whitened_criterion(fit)            # its own workspaces: the fit is never changed
            self.x0 = np.concatenate([fit.internal.theta, fit.residual.par, [fit.internal.sigma]])
        else:
            self.ws = fit.fresh_workspace().internal      # its own: the fit is never changed
            self.x0 = np.concatenate([fit.internal.theta, [fit.internal.sigma]])
        self.V = fit.internal.vcov
        self.B = fit.scaling.beta_map

    def contrast(self, L) -> np.ndarray:
        """A user contrast of beta as a contrast of the standardized beta (up to a scale)."""
        return np.atleast_2d(np.asarray(L, float)) @ self.B

    def _at(self, x):
        """The workspace at ``x = (theta[, phi])`` and the residual model's log-determinant."""
        x = np.asarray(x, float)
        if self._crit is None:
            self.ws.update(x)
            return self.ws, 0.0
        ws = self._crit.workspace(x[self.k:])
        ws.update(x[:self.k])
        return ws, self._crit.log_jacobian(x[self.k:])

    def deviance(self, varpar) -> float:
        ws, jac = self._at(varpar[:-1])
        return ws.deviance(varpar[-1]) + jac

    def vcov(self, varpar) -> np.ndarray:
        return self._at(varpar[:-1])[0].vcov_beta(scale=varpar[-1] ** 2)




def _step(x):
    return 1e-3 * np.maximum(np.abs(x), 0.1)


def varpar_covariance(vf: VarparFunctions) -> np.ndarray:
    """``A = 2 H^{-1}`` with ``H`` the Hessian of the varpar deviance at the optimum."""
    H = richardson_hessian(vf.deviance, vf.x0, _step(vf.x0))
    return 2.0 * np.linalg.pinv(0.5 * (H + H.T))


def vcov_jacobian(vf: VarparFunctions) -> np.ndarray:
    """``dV / d varpar_k`` stacked as (k, p, p)."""
    x = vf.x0
    h = _step(x)
    return np.stack([richardson_derivative(vf.vcov, x, k, h[k], r=2) for k in range(len(x))])


def satterthwaite_df(L: np.ndarray, V: np.ndarray, jac: np.ndarray, A: np.ndarray) -> float:
    """df for one contrast row ``L``."""
    L = np.asarray(L, float).ravel()
    var = float(L @ V @ L)
    g = np.array([L @ J @ L for J in jac])
    denom = float(g @ A @ g)
    return float(2 * var ** 2 / denom) if denom > 0 else np.inf


def satterthwaite_df_multi(L: np.ndarray, V: np.ndarray, jac: np.ndarray, A: np.ndarray) -> float:
    """Fai-Cornelius df for a q-row contrast matrix."""
    L = np.atleast_2d(np.asarray(L, float))
    q = L.shape[0]
    if q == 1:
        return satterthwaite_df(L[0], V, jac, A)
    d, P = np.linalg.eigh(L @ V @ L.T)
    nus = np.array([satterthwaite_df(P[:, m] @ L, V, jac, A) for m in range(q)])
    big = nus > 2
    E = float(np.sum(nus[big] / (nus[big] - 2)))
    return float(2 * E / (E - q)) if E > q else np.inf
