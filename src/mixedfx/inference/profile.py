"""Likelihood profiles and profile confidence intervals for LMMs (lme4's ``profile`` / ``confint``).

As lme4, profiles use the ML deviance (a REML fit is refitted by ML first).  Parameters are
lme4's: per random term its SDs and correlations (``sd_(Intercept)|Subject``,
``cor_Days.(Intercept)|Subject``), ``sigma``, and the fixed effects.  For a parameter ``psi``
the profile is ``zeta(psi) = sign(psi - psi_hat) sqrt(d(psi) - d_hat)`` with ``d(psi)`` the
deviance minimized over all other parameters:

* variance parameters: the deviance in ``(theta, sigma)`` (not profiled over sigma), with
  ``Lambda_k = D_k chol(R_k) / sigma`` from the SDs ``D_k`` and correlations ``R_k``, minimized
  by BOBYQA over the other SDs (>= 0), correlations ([-1, 1]) and sigma;
* fixed effect ``beta_j``: the ML fit with ``x_j beta_j`` as an offset and without column j.

GLMMs (Laplace or quadrature deviance over ``(theta, beta)``): see
:mod:`mixedfx.inference.profile_glmm`.

The interval at ``level`` solves ``zeta = -+ z``; where the profile does not reach ``z`` before
a bound (an SD of 0, a correlation of +-1) the bound is the limit, as lme4 reports.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
from scipy import stats
from scipy.optimize import brentq

from ..core.optimize import bobyqa
from ..models import fit_lmm
from ..results.extensions import register
from .bootstrap import parameter_vector

__all__ = ["profile", "profile_confint"]


def variance_bounds(sizes) -> tuple[list[float], list[float]]:
    """Bounds of the SD (>= 0) and correlation ([-1, 1]) parameters, in lme4's order per term."""
    lo, hi = [], []
    for p in sizes:
        for b in range(p):
            for a in range(b, p):
                lo.append(0.0 if a == b else -1.0)
                hi.append(np.inf if a == b else 1.0)
    return lo, hi


class _Profiler:
    def __init__(self, result):
        fit = result.fit
        self.design = fit.design
        self.ml = fit if not fit.reml else fit_lmm(fit.design, reml=False, warn=False)
        self.ws = self.ml.workspace
        self.sizes = self.ws.sizes
        self.names = list(parameter_vector(self.design.blocks, self.ws.layout, self.ml.theta, self.ml.sigma,
                                           self.ml.beta, self.design.xnames).index)
        self.nvar = sum(p * (p + 1) // 2 for p in self.sizes) + 1
        self.vhat = parameter_vector(self.design.blocks, self.ws.layout, self.ml.theta, self.ml.sigma,
                                     self.ml.beta, self.design.xnames).to_numpy()[:self.nvar]
        lo, hi = variance_bounds(self.sizes)
        self.lower = np.array(lo + [1e-10])
        self.upper = np.array(hi + [np.inf])
        self.d_hat = self.deviance(self.vhat)

    def theta_sigma(self, v):
        th, i = [], 0
        sigma = v[-1]
        for p in self.sizes:
            idx = [(a, b) for b in range(p) for a in range(b, p)]
            seg = v[i:i + len(idx)]
            i += len(idx)
            sd, R = np.zeros(p), np.eye(p)
            for (a, b), val in zip(idx, seg):
                if a == b:
                    sd[a] = val
                else:
                    R[a, b] = R[b, a] = val
            try:
                C = np.linalg.cholesky(R)
            except np.linalg.LinAlgError:
                return None, sigma
            L = np.diag(sd) @ C / sigma
            th.extend(L[a, b] for a, b in idx)
        return np.array(th), sigma

    def deviance(self, v) -> float:
        theta, sigma = self.theta_sigma(np.asarray(v, float))
        if theta is None or sigma <= 0:
            return 1e15
        ws = self.ws.update(theta)
        return float(ws.logdet_Z + ws.n * np.log(2 * np.pi * sigma ** 2) + ws.pwrss / sigma ** 2 - ws.log_weights)

    def min_over_others(self, j: int, x: float, step, **tol) -> float:
        """The deviance with parameter ``j`` fixed at ``x``, minimized over the other ``nvar - 1``."""
        others = [i for i in range(self.nvar) if i != j]

        def inner(z):
            v = self.vhat.copy()
            v[j] = x
            v[others] = z
            return self.deviance(v)
        if not others:
            return inner(np.zeros(0))
        step = step if np.isscalar(step) else np.asarray(step)[others]
        start = np.clip(self.vhat[others], self.lower[others], self.upper[others])
        return bobyqa(inner, start, self.lower[others], self.upper[others], step=step, **tol).fun

    def zeta(self, j: int, x: float) -> float:
        if j < self.nvar:
            d = self.min_over_others(j, x, 0.05)
            center = self.vhat[j]
        else:
            k = j - self.nvar
            d0 = self.design
            off = (0.0 if d0.offset is None else d0.offset) + d0.X[:, k] * x
            red = replace(d0, X=np.delete(d0.X, k, axis=1), offset=off,
                          xnames=tuple(n for i, n in enumerate(d0.xnames) if i != k))
            d = fit_lmm(red, reml=False, start=self.ml.theta, warn=False).objective
            center = self.ml.beta[k]
        return float(np.sign(x - center) * np.sqrt(max(d - self.d_hat, 0.0)))

    def center_and_scale(self, j: int):
        if j < self.nvar:
            c = self.vhat[j]
            return c, 0.2 * abs(c) + 0.05 if self.lower[j] < 0 else 0.25 * abs(c) + 1e-3
        k = j - self.nvar
        return self.ml.beta[k], float(np.sqrt(self.ml.vcov[k, k]))

    def limit(self, j: int, target: float) -> float:
        """Solve zeta = target (< 0: lower side) by outward bracketing, then Brent."""
        c, step = self.center_and_scale(j)
        direction = np.sign(target)
        lo_b = self.lower[j] if j < self.nvar else -np.inf
        hi_b = self.upper[j] if j < self.nvar else np.inf
        prev = c
        for k in range(40):
            x = c + direction * step * 2 ** (k / 2)
            if x <= lo_b or x >= hi_b:
                bound = lo_b if direction < 0 else hi_b
                edge = bound + (1e-9 if direction < 0 else -1e-9)
                if (self.zeta(j, edge) - target) * direction < 0:
                    return float(bound)
                return brentq(lambda t: self.zeta(j, t) - target, min(prev, edge), max(prev, edge), xtol=1e-10)
            if (self.zeta(j, x) - target) * direction >= 0:
                return brentq(lambda t: self.zeta(j, t) - target, min(prev, x), max(prev, x), xtol=1e-10)
            prev = x
        return np.nan

    def restore(self, result):
        if self.ws is result.fit.workspace:
            result.fit.workspace.update(result.fit.theta)


def _profiler(result):
    if getattr(result, "family", None) is None:
        return _Profiler(result)
    from .profile_glmm import GlmmProfiler
    return GlmmProfiler(result)


def profile_confint(result, level: float = 0.95, parm=None) -> pd.DataFrame:
    """Profile-likelihood intervals indexed by lme4's names."""
    pr = _profiler(result)
    z = stats.norm.ppf(0.5 + level / 2)
    names = pr.names if parm is None else list(np.atleast_1d(parm))
    rows = {}
    for name in names:
        if name not in pr.names:
            raise KeyError(f"unknown parameter {name!r}; available: {pr.names}")
        j = pr.names.index(name)
        rows[name] = {"lower": pr.limit(j, -z), "upper": pr.limit(j, z)}
    pr.restore(result)
    return pd.DataFrame.from_dict(rows, orient="index", columns=["lower", "upper"])


@register("profile")
def profile(result, parm=None, width: float = 3.0, points: int = 9) -> pd.DataFrame:
    """Zeta curves: for each parameter, ``points`` values on each side of the estimate out to
    ``|zeta| = width`` (or a bound), with their signed root deviances.  Columns
    ``param, value, zeta``."""
    pr = _profiler(result)
    names = pr.names if parm is None else list(np.atleast_1d(parm))
    rows = []
    for name in names:
        j = pr.names.index(name)
        c, _ = pr.center_and_scale(j)
        rows.append((name, c, 0.0))
        for side in (-1, 1):
            end = pr.limit(j, side * width)
            if not np.isfinite(end):
                continue
            for x in np.linspace(c, end, points + 1)[1:]:
                rows.append((name, float(x), pr.zeta(j, float(x))))
    pr.restore(result)
    return pd.DataFrame(rows, columns=["param", "value", "zeta"]).sort_values(["param", "value"],
                                                                               kind="stable").reset_index(drop=True)
