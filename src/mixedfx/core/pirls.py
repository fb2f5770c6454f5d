"""Penalized iteratively re-weighted least squares and the Laplace / quadrature deviance.

For a GLMM with ``eta = X beta + Z Lambda_theta u + offset``, ``u ~ N(0, phi I)`` and a
family with variance ``V`` and link ``g``, the conditional modes ``u_hat`` minimize the
penalized deviance ``sum_i w_i d(y_i, mu_i) + ||u||^2``.  PIRLS iterates the weighted PLS
problem of the LMM workspace with working weights ``W = w mu_eta^2 / V(mu)`` and working
response ``z = eta - offset + (y - mu) / mu_eta``, halving steps that do not decrease the
penalized deviance (as lme4's ``pwrssUpdate``).  ``beta`` is either held fixed (u-only,
lme4's second stage) or updated jointly (lme4's ``nAGQ = 0`` first stage).

At the modes the Laplace approximation of the marginal log-likelihood is

    -2 log L = -2 sum_i log f(y_i | mu_i, phi) + ||u||^2 / phi + log |L_theta|^2 ,

with ``L_theta L_theta' = Lambda' Z' W Z Lambda + I`` at the final weights; all
normalizing constants are included, so the value is on the scale of the true
log-likelihood.  For one scalar random-effect term, adaptive Gauss-Hermite quadrature
replaces each group's Gaussian approximation by a k-point rule centred at the mode with
the conditional standard deviation ``sqrt(phi) / L_g``; one node reproduces Laplace.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .workspace import FAILED_OBJECTIVE, PLSWorkspace

__all__ = ["GlmmWorkspace", "PirlsResult"]


@dataclass
class PirlsResult:
    u: np.ndarray
    beta: np.ndarray
    eta: np.ndarray
    mu: np.ndarray
    pdev: float
    iterations: int
    converged: bool


class GlmmWorkspace:
    """An LMM-style PLS workspace plus a family (composition), with PIRLS on top.

    Parameters
    ----------
    X : (n, p).  y : (n,) response (proportions for binomial).  blocks : as PLSWorkspace.
    family : a :class:`mixedfx.families.Family` (duck-typed: link, variance, loglik_terms, ...).
    prior_weights : (n,) or None.  offset : (n,) or None.
    """

    def __init__(self, X, y, blocks, family, prior_weights=None, offset=None, rest="auto"):
        self.X = np.asarray(X, float)
        self.y = np.asarray(y, float)
        self.n, self.p = self.X.shape
        self.family = family
        self.w = np.ones(self.n) if prior_weights is None else np.asarray(prior_weights, float)
        self.offset = np.zeros(self.n) if offset is None else np.asarray(offset, float)
        self.blocks = [(np.asarray(c), np.asarray(Xk, float), int(nl)) for c, Xk, nl in blocks]
        mu0 = family.initial_mu(self.y, self.w)
        self.eta_start = family.link.link(mu0)
        # deviance = const - 2 * kernel(mu): fix the constant once
        self._dev_const = float(np.sum(self.w * family.unit_deviance(self.y, mu0))
                                + 2.0 * family.mu_kernel(self.y, mu0, self.w))
        # log-likelihood = kernel + constant for families without a dispersion
        self._ll_const = None if family.has_dispersion else float(
            family.loglik(self.y, mu0, self.w) - family.mu_kernel(self.y, mu0, self.w))
        # Z as one sparse matrix (rows: observations), for Z Lambda u
        import scipy.sparse as sp
        from .workspace import random_effects_matrix
        self._Z = sp.hstack([random_effects_matrix(c, Xk, nl) for c, Xk, nl in self.blocks], format="csr")
        self._Zt = self._Z.T.tocsr()
        W0, me0 = family.irls_weights(self.eta_start, mu0, self.w)
        z0 = self.eta_start - self.offset + (self.y - mu0) / me0
        self.ws = PLSWorkspace(self.X, z0, self.blocks, weights=W0, reml=False, rest=rest)
        self.layout = self.ws.layout
        self.u = np.zeros(sum(nl * Xk.shape[1] for _, Xk, nl in self.blocks))
        self.beta = np.zeros(self.p)
        self.phi = 1.0
        self.last: PirlsResult | None = None
        #: relative change of the penalized deviance at which PIRLS stops (see fit_glmm)
        self.tol = 1e-10

    # ------------------------------------------------------------ linear predictor
    def zb(self, theta: np.ndarray, u: np.ndarray) -> np.ndarray:
        """``Z Lambda_theta u`` (n,), one sparse mat-vec."""
        parts, start = [], 0
        for lam, (codes, Xk, nl) in zip(self.layout.lambdas(theta), self.blocks):
            p = Xk.shape[1]
            parts.append((u[start:start + nl * p].reshape(nl, p) @ lam.T).ravel())
            start += nl * p
        return self._Z @ np.concatenate(parts)

    def loglik(self, mu, phi: float = 1.0) -> float:
        """Conditional log-likelihood ``sum log f(y | mu, phi)`` (kernel + constant when phi = 1)."""
        if self._ll_const is not None:
            return self._ll_const + self.family.mu_kernel(self.y, mu, self.w)
        return self.family.loglik(self.y, mu, self.w, phi)

    def penalized_deviance(self, y_mu_w, u) -> float:
        """``sum w d(y, mu) + ||u||^2``, from the family's mu-kernel plus a constant fixed at start."""
        y, mu, w = y_mu_w
        return float(self._dev_const - 2.0 * self.family.mu_kernel(y, mu, w) + u @ u)

    # ------------------------------------------------------------------ PIRLS
    def pirls(self, theta, beta=None, u0=None, joint=False, tol=None, maxit=100, maxhalf=20) -> PirlsResult:
        """Conditional modes for ``theta`` (and ``beta`` unless ``joint``)."""
        tol = self.tol if tol is None else tol
        theta = np.asarray(theta, float)
        fam, link = self.family, self.family.link
        u = np.zeros_like(self.u) if u0 is None else np.asarray(u0, float).copy()
        if joint:
            beta = self.beta.copy() if beta is None else np.asarray(beta, float).copy()
            if self.last is None and u0 is None:
                eta = self.eta_start.copy()          # first call: start from mustart, as glm does
                beta = None
            else:
                eta = self.X @ beta + self.zb(theta, u) + self.offset
        else:
            beta = np.asarray(beta, float)
            fixed = self.X @ beta + self.offset          # constant during a u-only solve
            eta = fixed + self.zb(theta, u)
        mu = link.inverse(eta)
        pdev = self.penalized_deviance((self.y, mu, self.w), u) if beta is not None else np.inf
        converged = False
        for it in range(1, maxit + 1):
            W, me = fam.irls_weights(eta, mu, self.w)
            if joint:
                z = eta - self.offset + (self.y - mu) / me
                self.ws.reweight(W, z)
                self.ws.update(theta)
                if self.ws.objective_value >= FAILED_OBJECTIVE:     # the weighted system did not factor
                    if beta is None:
                        raise FloatingPointError(
                            "the weighted least-squares system of the first PIRLS step could not be factored: the "
                            "working weights or response are not finite (check the offset and the response)")
                    break
                beta_new = self.ws.beta()
                u_new = self.ws.u()
            else:   # u-only: only L_Z and Lambda' Z' W (z - X beta) are needed
                r = eta - fixed + (self.y - mu) / me
                self.ws.reweight_zz(W)
                if not self.ws.factor_z(theta):
                    break
                beta_new = beta
                u_new = self.ws.solve_u(self._Zt @ (W * r))
            if beta is None:          # first joint step from mustart: take it whole
                beta, u = beta_new, u_new
                eta = self.X @ beta + self.zb(theta, u) + self.offset
                mu = link.inverse(eta)
                pdev = self.penalized_deviance((self.y, mu, self.w), u)
                continue
            step, accepted = 1.0, False
            for _ in range(maxhalf):
                u_t = u + step * (u_new - u)
                if joint:
                    b_t = beta + step * (beta_new - beta)
                    eta_t = self.X @ b_t + self.zb(theta, u_t) + self.offset
                else:
                    b_t = beta
                    eta_t = fixed + self.zb(theta, u_t)
                mu_t = link.inverse(eta_t)
                pdev_t = self.penalized_deviance((self.y, mu_t, self.w), u_t)
                if np.isfinite(pdev_t) and pdev_t <= pdev + 1e-12 * abs(pdev):
                    accepted = True
                    break
                step *= 0.5
            if not accepted:
                converged = True        # no step lowers the penalized deviance: at the mode within noise
                break
            change = pdev - pdev_t
            u, beta, eta, mu, pdev = u_t, b_t, eta_t, mu_t, pdev_t
            if change < tol * (abs(pdev) + 0.1):
                converged = True
                break
        # the factor at the final weights (for log|L|^2 and conditional variances)
        W, me = fam.irls_weights(eta, mu, self.w)
        if joint:
            self.ws.reweight(W, eta - self.offset + (self.y - mu) / me)
            self.ws.update(theta)
        else:
            self.ws.reweight_zz(W)
            self.ws.factor_z(theta)
        self.u, self.beta = u, beta
        self.last = PirlsResult(u, beta, eta, mu, pdev, it, converged)
        return self.last

    def full_update(self, theta) -> None:
        """Form the complete factor (fixed-effects block included) at the current modes, e.g.
        for ``phi (R_X R_X')^{-1}``; u-only PIRLS leaves that block stale."""
        res = self.last
        W, me = self.family.irls_weights(res.eta, res.mu, self.w)
        self.ws.reweight(W, res.eta - self.offset + (self.y - res.mu) / me)
        self.ws.update(theta)

    # ---------------------------------------------------------------- criteria
    def profile_phi(self, mu, u) -> float:
        """Dispersion maximizing the Laplace log-likelihood at fixed modes (1 if none)."""
        if not self.family.has_dispersion:
            return 1.0
        from scipy.optimize import minimize_scalar
        fam, y, w, uu = self.family, self.y, self.w, float(u @ u)

        def crit(logphi):
            phi = np.exp(logphi)
            return -2 * fam.loglik(y, mu, w, phi) + uu / phi
        start = np.log(max(float(np.sum(w * fam.unit_deviance(y, mu)) + uu) / self.n, 1e-12))
        res = minimize_scalar(crit, bracket=(start - 1.0, start + 1.0), tol=1e-12)
        return float(np.exp(res.x))

    def laplace(self, res: PirlsResult, phi: float | None = None) -> float:
        """-2 log L by the Laplace approximation at the PIRLS solution (uses the current factor)."""
        phi = self.profile_phi(res.mu, res.u) if phi is None else phi
        self.phi = phi
        return float(-2 * self.loglik(res.mu, phi) + res.u @ res.u / phi + self.ws.logdet_Z)

    def agq(self, theta, res: PirlsResult, nagq: int, phi: float = 1.0) -> float:
        """-2 log L by adaptive Gauss-Hermite quadrature (one scalar random-effect term)."""
        if len(self.blocks) != 1 or self.blocks[0][1].shape[1] != 1:
            raise ValueError("adaptive quadrature (nagq > 1) needs a single scalar random-effect term, "
                             "such as (1 | group)")
        codes, Xk, nl = self.blocks[0]
        lam = float(self.layout.lambdas(theta)[0][0, 0])
        x, wq = np.polynomial.hermite.hermgauss(nagq)
        s = np.sqrt(phi) / self.ws.L00                     # conditional SD of u_g
        uhat = res.u
        eta_fixed = res.eta - lam * Xk[:, 0] * uhat[codes]
        logs = np.empty((nagq, nl))
        for k in range(nagq):
            ug = uhat + np.sqrt(2.0) * s * x[k]
            mu = self.family.link.inverse(eta_fixed + lam * Xk[:, 0] * ug[codes])
            ll = np.bincount(codes, self.family.loglik_terms(self.y, mu, self.w, phi), minlength=nl)
            logs[k] = (np.log(wq[k]) + x[k] ** 2 + ll - 0.5 * ug * ug / phi
                       - 0.5 * np.log(2 * np.pi * phi))
        top = logs.max(axis=0)
        log_int = top + np.log(np.exp(logs - top).sum(axis=0)) + np.log(np.sqrt(2.0) * s)
        return float(-2 * log_int.sum())
