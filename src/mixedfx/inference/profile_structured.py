"""Profiles of LMMs with structured covariance terms (``ar1()``, ``cs()``, ``ou()``, ``toep()``...).

The profiled parameters are each structure's own (:func:`~mixedfx.inference.parameters.parameter_vector`):
its SDs in the data's units, then ``rho`` (ar1, cs, homcs), ``kappa`` (ou) or the partial
autocorrelations (toep); the SD of a scalar unstructured term such as ``(1 | g)``; ``sigma``;
and the fixed effects.  With one parameter fixed, the ML deviance is minimized over the others
by BOBYQA in those natural coordinates (bounded: SDs >= 0, correlations inside their range), and
``zeta = sign(x - x_hat) sqrt(d(x) - d_hat)`` as lme4's profiles; intervals solve ``zeta = +-z``.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..core.workspace import FAILED_OBJECTIVE
from ..models import fit_lmm
from ..models.names import group_names
from .parameters import parameter_vector
from .profile_glmm import GlmmProfiler
from .profile_lmm import _INNER_TOL, _Profiler, sd_cor_theta

__all__ = ["StructuredProfiler", "ResidualProfiler", "StructuredGlmmProfiler"]


def _bounds(layout) -> tuple[list, list]:
    """Bounds of the natural variance parameters: structures' own, lme4's SDs and correlations."""
    lo, hi = [], []
    for st in layout.structures:
        if st.name == "us":
            lo.extend(np.where(st.rows == st.cols, 0.0, -1.0))
            hi.extend(np.where(st.rows == st.cols, np.inf, 1.0))
        else:
            a, b = st.natural_bounds()
            lo.extend(a)
            hi.extend(b)
    return [float(x) for x in lo], [float(x) for x in hi]


def _kinds(layout) -> list[tuple]:
    out = []
    for st in layout.structures:
        if st.name == "us":
            out.extend(("sd",) if a == b else ("cor",) for a, b in zip(st.rows, st.cols))
        else:
            n_sd = st.n_params if st.name in ("diag", "homdiag") else st.n_sd
            out.extend([("sd",)] * n_sd + [("cor",)] * (st.n_params - n_sd))
    return out


class StructuredProfiler(_Profiler):
    """:class:`~mixedfx.inference.profile_lmm._Profiler` for layouts with structured terms."""

    def __init__(self, result):
        fit = result.fit
        self.design = fit.design
        self.ml = fit if not fit.reml else fit_lmm(fit.design, reml=False, warn=False)
        self.ws = self.ml.fresh_workspace()
        layout = self.ws.layout
        self.layout = layout
        self.sigma_hat = float(self.ml.sigma)
        pv = parameter_vector(self.design.blocks, layout, self.ml.theta, self.sigma_hat, self.ml.beta,
                              self.design.xnames)
        self.names = list(pv.index)
        self.nvar = layout.n_theta + 1
        self.vhat = pv.to_numpy()[:self.nvar]
        lo, hi = _bounds(layout)
        self.lower = np.array(lo + [0.0])
        self.upper = np.array(hi + [np.inf])
        self.open_lower = {self.nvar - 1}
        self.kinds = _kinds(layout) + [("sigma",)]
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
            if st.name != "us":
                parts.append(st.from_natural_vector(seg, sigma))
                continue
            th = sd_cor_theta(st.p, seg, sigma)         # lme4's SDs and correlations
            if th is None:
                return None, sigma
            parts.append(th)
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


class ResidualProfiler(StructuredProfiler):
    """Profiles of an LMM with ``correlation=`` / ``disp=``: the variance parameters are those of
    :class:`StructuredProfiler` followed by the residual model's (``rho`` or ``phi``, then
    ``delta_<column>`` per ``disp=`` column), then ``sigma``."""

    def __init__(self, result):
        from ..models.residual_fit import whitened_criterion
        fit = result.fit
        self.design = fit.design
        self.ml = fit if not fit.reml else fit_lmm(fit.design, reml=False, warn=False)
        self.crit = whitened_criterion(self.ml)
        self.rm = self.crit.rm
        self.scaling = self.ml.scaling
        self.layout = layout = self.ml.layout
        self.sigma_hat = float(self.ml.sigma)
        res = self.ml.residual
        pv = parameter_vector(self.design.blocks, layout, self.ml.theta, self.sigma_hat, self.ml.beta,
                              self.design.xnames)
        k = layout.n_theta
        nat = {key: v for key, v in res.natural.items() if key != "delta"}
        self.res_names = list(nat) + [f"delta_{n}" for n in res.disp_names]
        self.names = list(pv.index[:k]) + self.res_names + list(pv.index[k:])
        self.nres = len(self.res_names)
        self.nvar = k + self.nres + 1
        self.vhat = np.concatenate([pv.to_numpy()[:k], list(nat.values()),
                                    np.atleast_1d(res.natural.get("delta", np.zeros(0))), [self.sigma_hat]])
        lo, hi = _bounds(layout)
        for key in nat:
            corr = self.rm.corr
            bound = corr._parts(0.0)[3] if hasattr(corr, "_parts") else (0.0 if key == "phi" else -1.0)
            lo.append(bound)
            hi.append(1.0)
        lo.extend([-np.inf] * len(res.disp_names))
        hi.extend([np.inf] * len(res.disp_names))
        self.lower = np.array(lo + [0.0])
        self.upper = np.array(hi + [np.inf])
        self.open_lower = {self.nvar - 1}
        self.kinds = _kinds(layout)
        self.kinds.extend([("cor",)] * len(nat) + [("delta",)] * len(res.disp_names) + [("sigma",)])
        self.theta_hat = np.asarray(self.ml.theta, float)
        self._n, self._p = self.design.n, self.design.X.shape[1]
        self.d_hat = self.deviance(self.vhat)

    def deviance(self, v) -> float:
        """ML deviance at the natural parameters ``v`` (structures, residual model, sigma)."""
        v = np.asarray(v, float)
        k = self.layout.n_theta
        theta, sigma = self.theta_sigma(np.concatenate([v[:k], v[-1:]]))
        if theta is None or not sigma > 0:
            return FAILED_OBJECTIVE
        nat = dict(zip(self.res_names, v[k:k + self.nres]))
        try:
            phi = self.rm.from_natural({**{n: nat[n] for n in nat if not n.startswith("delta_")},
                                        "delta": [nat[n] for n in nat if n.startswith("delta_")]})
        except ValueError:
            return FAILED_OBJECTIVE
        s = self.scaling
        ws = self.crit.workspace(phi)
        ws.update(s.theta_to_internal(theta, self.layout))
        if ws.objective_value is None or ws.objective_value >= FAILED_OBJECTIVE:
            return FAILED_OBJECTIVE
        from ..core.workspace import deviance_from_parts
        val = deviance_from_parts(ws, s.sigma_to_internal(sigma), reml=False)
        return val + self.crit.log_jacobian(phi) + s.objective_shift(self._n, self._p, False)

    def center_and_scale(self, j: int):
        if j < self.nvar and self.kinds[j][0] == "delta":
            return float(self.vhat[j]), 0.1
        return super().center_and_scale(j)

    def zeta(self, j: int, x: float) -> float:
        if j < self.nvar:
            return super().zeta(j, x)
        k = j - self.nvar                      # a fixed effect: refit with it as an offset
        d0 = self.design
        off = (0.0 if d0.offset is None else d0.offset) + d0.X[:, k] * x
        red = replace(d0, X=np.delete(d0.X, k, axis=1), offset=off,
                      xnames=tuple(n for i, n in enumerate(d0.xnames) if i != k))
        d = fit_lmm(red, reml=False, warn=False).objective
        return float(np.sign(x - self.ml.beta[k]) * np.sqrt(max(d - self.d_hat, 0.0)))


class StructuredGlmmProfiler(GlmmProfiler):
    """:class:`~mixedfx.inference.profile_glmm.GlmmProfiler` for GLMMs with structured terms: the
    variance parameters are each structure's own (SDs on the ``theta`` scale, ``rho``, ``kappa``...)."""

    theta_sigma = StructuredProfiler.theta_sigma

    def variance_bounds(self) -> tuple[list, list]:
        """The structures' ranges, with BOBYQA kept strictly inside open correlation ranges."""
        lo, hi = _bounds(self.layout)
        for i, kd in enumerate(_kinds(self.layout)):
            if kd[0] == "cor" and np.isfinite(hi[i]):
                width = hi[i] - lo[i]
                lo[i] += 1e-9 * width
                hi[i] -= 1e-9 * width
        return lo, hi
