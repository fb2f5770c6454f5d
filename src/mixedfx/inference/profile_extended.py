"""Profile-likelihood intervals for glmmTMB-style and ordinal models (``confint(method="profile")``).

For a parameter ``psi = c'x + b`` that is linear in the internal parameter vector ``x`` (every
coefficient of the conditional, zero-inflation and dispersion parts in the user's units; a
family parameter on its internal scale, e.g. ``log df``; the SD of a scalar random-effect term),
the profile deviance is ``D_p(v) = min { D(x) : c'x + b = v }``, minimized over the other
coordinates ``x = x_v + N z`` (``N`` an orthonormal basis of the complement of ``c`` within its
block, so the bounds of theta stay coordinate bounds) by L-BFGS with the analytic gradient
``N' dD/dx``.  The interval ends are the roots of ``D_p(v) - D_min = chi2_1(level)`` on either side,
found by bracketing from the Wald interval and Brent's method, each profile point warm-started
from its neighbour.  Family parameters are transformed to their natural scale at the end.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import optimize, stats
from scipy.linalg import null_space

from ..core.workspace import FAILED_OBJECTIVE

__all__ = ["profile_confint"]


class _Profiler:
    def __init__(self, fit):
        self.fit = fit
        self.ew = fit.fresh_workspace()
        self.lw = self.ew.lw
        self.k = self.lw.k
        self.x_hat = np.asarray(fit.x_internal, float)
        self.m = len(self.x_hat)
        self.lower = np.concatenate([self.lw.layout.lower_bounds(), np.full(self.m - self.k, -np.inf)])
        m0 = self.lw.modes(self.x_hat, utol=1e-12)
        self.d_hat = m0.deviance
        self.u_hat = m0.u.copy()

    def _value_gradient(self, x):
        m = self.lw.modes(x, utol=1e-10)
        if m is None or not np.isfinite(m.deviance):
            return FAILED_OBJECTIVE, np.zeros(len(x))
        g = self.lw.gradient(x, m)
        return (m.deviance, g) if g is not None else (FAILED_OBJECTIVE, np.zeros(len(x)))

    def constrained(self, c, v, start):
        """``D_p(v)`` for the constraint ``c'x = v`` and the minimizing ``x`` (from ``start``)."""
        block = np.flatnonzero(c != 0)
        lo_blk = block.min()
        hi_blk = self.k if lo_blk < self.k else self.m
        lo_blk = 0 if lo_blk < self.k else self.k
        idx = np.arange(lo_blk, hi_blk)
        cb = c[idx]
        N = np.zeros((self.m, self.m - 1))
        others = np.setdiff1d(np.arange(self.m), idx)
        N[others, np.arange(len(others))] = 1.0
        if len(idx) > 1:
            N[np.ix_(idx, np.arange(len(others), self.m - 1))] = null_space(cb[None, :])
        base = np.zeros(self.m)
        base[idx] = cb * v / (cb @ cb)
        z0 = N.T @ (start - base)
        bounds = [(self.lower[j], None) if j < self.k and np.isfinite(self.lower[j]) else (None, None)
                  for j in others] + [(None, None)] * (self.m - 1 - len(others))

        def f(z):
            val, g = self._value_gradient(base + N @ z)
            return val, N.T @ g
        res = optimize.minimize(f, z0, jac=True, method="L-BFGS-B", bounds=bounds,
                                options=dict(maxiter=2000, ftol=1e-13, gtol=1e-7 * max(1.0, abs(self.d_hat))))
        return float(res.fun), base + N @ res.x

    def end(self, c, b, se, side, crit, floor=None):
        """The interval end on ``side`` (+1 / -1): the root of ``D_p - D_min = crit`` (not below
        ``floor``, the bound of an SD: the end is the bound when the profile stays below there)."""
        v_hat = float(c @ self.x_hat)
        # every constrained fit starts from the optimum of the inner end of the bracket (continuation
        # from the MLE): a start from beyond the crossing can sit in another basin (zero-inflation
        # coefficients at -inf) and give a wrong profile
        inner_x = {"x": self.x_hat.copy()}

        def excess(v):
            """``D_p(v) - D_min - crit``, or NaN where the constrained fit fails."""
            val, x = self.constrained(c, v, inner_x["x"])
            if not val < FAILED_OBJECTIVE:
                return np.nan
            if val - self.d_hat - crit <= 0:
                inner_x["x"] = x
            return val - self.d_hat - crit
        step = max(se, 1e-8) * np.sqrt(crit)
        inner, e_in = v_hat, -crit
        outer = v_hat + side * step
        for _ in range(40):
            if floor is not None and side * (outer - floor) >= 0 and side < 0 and outer <= floor:
                outer = floor
                e_out = excess(floor)
                if e_out <= 0:
                    return floor + b
                break
            e_out = excess(outer)
            if np.isnan(e_out):
                return np.nan                    # the likelihood fails before the profile gets there
            if e_out > 0:
                break
            if abs(outer - v_hat) > 5 * max(se, 1e-8) and e_out - e_in < 1e-4:
                return side * np.inf             # a plateau below the critical value: unbounded
            inner, e_in = outer, e_out
            outer = outer + side * step
            step *= 1.6
        else:
            return np.nan                        # the profile never reaches the critical value
        # Illinois (regula falsi with halving) on the bracket, with the values already known: a
        # re-evaluation of an end could differ in the last digits (warm-started inner searches)
        tol = 1e-6 * max(se, 1e-8)
        side_kept = 0
        for _ in range(60):
            v = outer - e_out * (outer - inner) / (e_out - e_in)
            if abs(outer - inner) <= tol:
                break
            e = excess(v)
            if np.isnan(e):                      # a failed point inside the bracket: bisect instead
                v = 0.5 * (inner + outer)
                e = excess(v)
                if np.isnan(e):
                    return np.nan
            if e > 0:
                outer, e_out = v, e
                if side_kept == 1:
                    e_in *= 0.5
                side_kept = 1
            else:
                inner, e_in = v, e
                if side_kept == -1:
                    e_out *= 0.5
                side_kept = -1
            if abs(e) < 1e-9:
                break
        return v + b


def profile_confint(result, level: float = 0.95, parm=None) -> pd.DataFrame:
    """Profile-likelihood intervals (``lower``, ``upper``) of the coefficients of every part, the
    family parameters (natural scale) and the SDs of scalar random-effect terms; see the module
    docstring."""
    fit = result.fit
    if getattr(fit, "x_internal", None) is None or getattr(fit, "u", None) is None:
        raise AttributeError("a loaded result has no data: profile intervals need the model refitted to its data")
    prof = _Profiler(fit)
    A = prof.ew.user_map()
    k = prof.k
    names = list(fit.names_all)
    crit = stats.chi2.ppf(level, 1)
    targets = []
    x_rest = prof.x_hat[k:]
    offset_all = np.concatenate([fit.beta, fit.beta_zi, fit.beta_disp, fit.psi_internal[:A.shape[0] - len(fit.beta)
                                 - len(fit.beta_zi) - len(fit.beta_disp)]]) - A @ x_rest
    for j, name in enumerate(names):
        c = np.zeros(prof.m)
        c[k:] = A[j]
        label = name[4:] if name.startswith("psi~") else name
        se = float(np.sqrt(fit.vcov_all[j, j])) if np.isfinite(fit.vcov_all[j, j]) else 1.0
        targets.append((label, c, float(offset_all[j]), se, name.startswith("psi~")))
    lams = fit.layout.lambdas(fit.theta)
    for t, b in enumerate(fit.design.blocks):
        if b.p == 1 and not fit.layout.structured:
            ratio = float(lams[t][0, 0]) / prof.x_hat[t] if prof.x_hat[t] != 0 else 1.0
            c = np.zeros(prof.m)
            c[t] = ratio
            sd = abs(float(lams[t][0, 0]))
            targets.append((f"sd_{b.cnames[0]}|{b.group_label}", c, 0.0, max(0.25 * sd, 0.05 * abs(ratio)), False))
    if parm is not None:
        want = [parm] if isinstance(parm, str) else list(parm)
        known = [t[0] for t in targets]
        missing = [p for p in want if p not in known]
        if missing:
            raise ValueError(f"unknown parameter(s) {missing}; choose from {known}")
        targets = [t for t in targets if t[0] in want]
    rows = {}
    for label, c, off, se, is_psi in targets:
        floor = 0.0 if label.startswith("sd_") else None
        lo, hi = prof.end(c, off, se, -1, crit, floor), prof.end(c, off, se, +1, crit)
        if is_psi:
            lo, hi = sorted(fit.dist.psi_to_natural(np.array([lo, hi])))
        rows[label] = (lo, hi)
    return pd.DataFrame.from_dict(rows, orient="index", columns=["lower", "upper"])
