"""Likelihood profiles for GLMMs (lme4's ``profile`` / ``confint(method = "profile")`` for glmer).

The deviance is the fit's own: ``-2 log L`` by Laplace (``nagq = 1``) or adaptive Gauss-Hermite
quadrature, a function of ``(theta, beta)`` with PIRLS solving for the conditional modes.
Parameters are lme4's: per random term the SDs and correlations (``Lambda_k = D_k chol(R_k)``;
families without a dispersion, so the SDs are on the ``theta`` scale) and the fixed effects.  For a
parameter ``psi``, ``zeta(psi) = sign(psi - psi_hat) sqrt(d(psi) - d_hat)`` with ``d(psi)`` the
deviance minimized by BOBYQA over all other parameters (SDs >= 0, correlations in [-1, 1]).
"""
from __future__ import annotations

import numpy as np

from .parameters import parameter_vector, variance_bounds
from .profile_lmm import _Profiler

__all__ = ["GlmmProfiler"]


class GlmmProfiler(_Profiler):
    """Profiles over ``v = (sd/cor parameters, beta)`` of a fitted GLMM (binomial, Poisson, ...)."""

    def __init__(self, result):
        fit = result.fit
        if fit.family.has_dispersion:
            raise NotImplementedError(f"profile intervals for GLMMs with a dispersion parameter ({fit.family.name}) "
                                      "are not available; use confint(method='wald')")
        if fit.nagq == 0:
            raise NotImplementedError("profile intervals need the Laplace or quadrature deviance; refit with nagq >= 1")
        self.fit = fit
        self.gw = fit.fresh_workspace()
        self.ws = None
        self.design = fit.design
        self.sizes = self.gw.ws.sizes
        self.layout = self.gw.layout
        pv = parameter_vector(self.design.blocks, self.layout, fit.theta, 1.0, fit.beta, self.design.xnames,
                              with_sigma=False)
        self.names = list(pv.index)
        self.nvar_re = self.layout.n_theta
        self.vhat = pv.to_numpy().astype(float)
        self.nvar = len(self.vhat)                 # every parameter is profiled by optimization
        lo, hi = self.variance_bounds()
        nb = len(fit.beta)
        self.lower = np.array(lo + [-np.inf] * nb)
        self.upper = np.array(hi + [np.inf] * nb)
        se = np.sqrt(np.maximum(np.diag(np.asarray(fit.vcov, float)), 1e-12))
        self.steps = np.concatenate([np.full(self.nvar_re, 0.05), np.maximum(se / 3, 1e-4)])
        self.se = se
        self.d_hat = self.deviance(self.vhat)

    def variance_bounds(self) -> tuple[list, list]:
        """Bounds of the random-effect parameters (lme4's SDs >= 0, correlations in [-1, 1])."""
        return variance_bounds(self.sizes)

    def deviance(self, v) -> float:
        v = np.asarray(v, float)
        theta, _ = self.theta_sigma(np.concatenate([v[:self.nvar_re], [1.0]]))
        if theta is None:
            return 1e15
        beta = v[self.nvar_re:]
        gw = self.gw
        r = gw.pirls(theta, beta=beta, u0=gw.u)
        dev = gw.laplace(r) if self.fit.nagq <= 1 else gw.agq(theta, r, self.fit.nagq, gw.phi)
        return float(dev) if np.isfinite(dev) else 1e15

    def zeta(self, j: int, x: float) -> float:
        d = self.min_over_others(j, x, self.steps, ftol_rel=1e-12, ftol_abs=1e-8)
        return float(np.sign(x - self.vhat[j]) * np.sqrt(max(d - self.d_hat, 0.0)))

    def center_and_scale(self, j: int):
        c = self.vhat[j]
        if j < self.nvar_re:
            return c, 0.2 * abs(c) + 0.05 if self.lower[j] < 0 else 0.25 * abs(c) + 1e-3
        return c, float(self.se[j - self.nvar_re])

