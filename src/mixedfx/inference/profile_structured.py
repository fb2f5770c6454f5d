"""Profiles of LMMs with structured covariance terms (``ar1()``, ``cs()``, ``ou()``, ``toep()``...).

The profiled parameters are each structure's own (:func:`~mixedfx.inference.parameters.parameter_vector`):
its SDs in the data's units, then ``rho`` (ar1, cs, homcs), ``kappa`` (ou) or the partial
autocorrelations (toep); the SD of a scalar unstructured term such as ``(1 | g)``; ``sigma``;
and the fixed effects.  With one parameter fixed, the ML deviance is minimized over the others
by BOBYQA in those natural coordinates (bounded: SDs >= 0, correlations inside their range), and
``zeta = sign(x - x_hat) sqrt(d(x) - d_hat)`` as lme4's profiles; intervals solve ``zeta = +-z``.
"""
from __future__ import annotations

import numpy as np

from ..core.workspace import FAILED_OBJECTIVE
from ..models import fit_lmm
from ..models.names import group_names
from .parameters import parameter_vector
from .profile_lmm import _INNER_TOL, _Profiler

__all__ = ["StructuredProfiler"]


class StructuredProfiler(_Profiler):
    """:class:`~mixedfx.inference.profile_lmm._Profiler` for layouts with structured terms."""

    def __init__(self, result):
        fit = result.fit
        self.design = fit.design
        self.ml = fit if not fit.reml else fit_lmm(fit.design, reml=False, warn=False)
        self.ws = self.ml.fresh_workspace()
        layout = self.ws.layout
        for st in layout.structures:
            if st.name == "us" and st.p > 1:
                raise NotImplementedError("profiles of a model with both a structured term and a vector-valued "
                                          "unstructured term are not available; use confint(method='boot')")
        self.layout = layout
        self.sigma_hat = float(self.ml.sigma)
        pv = parameter_vector(self.design.blocks, layout, self.ml.theta, self.sigma_hat, self.ml.beta,
                              self.design.xnames)
        self.names = list(pv.index)
        self.nvar = layout.n_theta + 1
        self.vhat = pv.to_numpy()[:self.nvar]
        lo, hi = [], []
        for st in layout.structures:
            a, b = st.natural_bounds() if st.name != "us" else ([0.0], [np.inf])
            lo.extend(a)
            hi.extend(b)
        self.lower = np.array(lo + [0.0])
        self.upper = np.array(hi + [np.inf])
        self.open_lower = {self.nvar - 1}
        self.kinds = []
        for st in layout.structures:
            n_sd = st.n_params if st.name in ("us", "diag", "homdiag") else st.n_sd
            self.kinds.extend([("sd",)] * n_sd + [("cor",)] * (st.n_params - n_sd))
        self.kinds.append(("sigma",))
        self.theta_hat = np.asarray(self.ml.theta, float)
        self.d_hat = self.theta_deviance(self.theta_hat, self.sigma_hat)
        self.groups = group_names([b.group_label for b in self.design.blocks])

    def theta_sigma(self, v):
        """theta and sigma from the natural parameters ``v`` (sigma last)."""
        v = np.asarray(v, float)
        sigma = v[-1]
        if not sigma > 0:
            return None, sigma
        parts, i = [], 0
        for st in self.layout.structures:
            seg = v[i:i + st.n_params]
            i += st.n_params
            parts.append(seg / sigma if st.name == "us" else st.from_natural_vector(seg, sigma))
        theta = np.concatenate(parts)
        return (theta, sigma) if np.all(np.isfinite(theta)) else (None, sigma)

    def _step(self, j):
        c, s = self.center_and_scale(j)
        return s

    def min_variance(self, j: int, x: float, with_submodels: bool = True) -> float:
        steps = np.array([self._step(i) for i in range(self.nvar)])
        inner_lo = self.lower.copy()
        inner_hi = self.upper.copy()
        for i in range(self.nvar):          # keep BOBYQA strictly inside open correlation ranges
            if self.kinds[i][0] == "cor":
                width = np.where(np.isfinite(inner_hi[i]), inner_hi[i] - inner_lo[i], 1.0)
                inner_lo[i] += 1e-9 * width
                inner_hi[i] -= 1e-9 * width if np.isfinite(inner_hi[i]) else 0.0
        inner_lo[-1] = 1e-8 * self.sigma_hat
        saved = self.lower, self.upper
        self.lower, self.upper = inner_lo, inner_hi
        try:
            val = self.min_over_others(j, x, steps, **_INNER_TOL)
        finally:
            self.lower, self.upper = saved
        return val if np.isfinite(val) else FAILED_OBJECTIVE

    def center_and_scale(self, j: int):
        if j >= self.nvar:
            return super().center_and_scale(j)
        c = float(self.vhat[j])
        kind = self.kinds[j][0]
        if kind == "cor":
            lo, hi = self.lower[j], self.upper[j]
            room = min(c - lo, hi - c) if np.isfinite(hi) else max(abs(c), 1e-3)
            return c, max(0.2 * room, 1e-4) if np.isfinite(hi) else 0.25 * max(abs(c), 1e-3)
        if kind == "sd":
            return c, 0.25 * max(c, 0.1 * self.sigma_hat)
        return c, 0.25 * c
