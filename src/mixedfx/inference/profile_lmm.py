"""The LMM profiler behind :mod:`mixedfx.inference.profile` (lme4's ``profile`` / ``confint``).

As lme4, profiles use the ML deviance (a REML fit is refitted by ML first).  Parameters are
lme4's: per random term its SDs and correlations (``sd_(Intercept)|Subject``,
``cor_Days.(Intercept)|Subject``), ``sigma``, and the fixed effects.  For a parameter ``psi``
the profile is ``zeta(psi) = sign(psi - psi_hat) sqrt(d(psi) - d_hat)`` with ``d(psi)`` the
deviance minimized over all other parameters:

* variance parameters: the deviance ``d(theta, sigma)`` minimized by BOBYQA over coordinates
  in which the constraint ``psi = x`` holds by construction and the other directions are
  Cartesian entries of per-term factors (:class:`InnerCoordinates`), never lme4's SDs and
  correlations: where a profile drives another SD to 0 its correlations are unidentified, and
  an optimizer over them stalls on that face (the former implementation, and lme4, could stop
  short or overshoot there).  Per random term ``Cov(b) = sigma^2 P' A A' P`` with ``A`` lower
  triangular in a permuted order ``P``:

  - ``sigma = x``: the other coordinates are the factors ``A`` (``theta`` itself);
  - ``sd_i = x``: component ``i`` first, so the first row of ``A`` is ``(x / sigma, 0, ...)``;
    free are ``log sigma`` and the other rows of ``A`` (diagonals >= 0);
  - ``cor_ij = x``: components ``j, i`` first, rows ``(a, 0, ...)`` and
    ``c (x, sqrt(1 - x^2), 0, ...)`` with ``a, c >= 0`` free, the other rows free, and
    ``sigma`` profiled out (``sigma^2 = pwrss / n``).

  The remaining components are ordered as in a pivoted Cholesky factor: a component with a
  zero diagonal (an SD of 0, a correlation of +-1) goes after the others, because after a zero
  diagonal the later rows can rotate without changing the covariance but not its slope.  When
  BOBYQA stops with a zero diagonal before a nonzero one, it restarts from the same point in
  the re-pivoted order; when it stops on a face it restarts once from inside the box.  It starts
  from the best of the estimate (mapped onto the constraint), the optimum at the nearest value
  already profiled, and the optima with one SD at 0, the branch where a correlation is
  unidentified.  Coordinates are in units of the estimates (each row of ``A`` relative to its
  estimated SD, ``sigma`` on the log scale), so steps and tolerances do not depend on the units
  of the data.  Checked against a dense brute-force profile to 1e-4 on models whose profiles
  meet these boundaries (``tests/inference/test_profile_boundary.py``);
* fixed effect ``beta_j``: the ML fit with ``x_j beta_j`` as an offset and without column j.

GLMMs (Laplace or quadrature deviance over ``(theta, beta)``): see
:mod:`mixedfx.inference.profile_glmm`.

The interval at ``level`` solves ``zeta = -+ z``; where the profile does not reach ``z`` before
a bound (an SD of 0, a correlation of +-1, evaluated at the bound itself) the bound is the
limit, as lme4 reports.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy.optimize import brentq

from ..core.covariance import ThetaLayout
from ..core.optimize import bobyqa
from ..core.workspace import FAILED_OBJECTIVE
from ..models import fit_lmm
from .parameters import parameter_vector, variance_bounds

__all__ = ["InnerCoordinates", "correlation_factor", "lower_factor"]

#: BOBYQA's stopping rules for the inner minimizations (coordinates in units of the estimates):
#: the deviance to ~1e-9, so zeta to ~1e-9 and the limits to ~1e-9 of the parameter's scale.
_INNER_TOL = dict(ftol_rel=1e-12, ftol_abs=1e-9, xtol_abs=1e-7)


def lower_factor(A: np.ndarray) -> np.ndarray:
    """Lower-triangular ``L`` with a diagonal >= 0 and ``L L' = A A'`` (any square ``A``, singular too)."""
    if A.shape == (2, 2):         # rows a, b: |a|, a.b / |a| and |det A| / |a| (= |b| when a = 0)
        (a0, a1), (b0, b1) = A
        na = np.hypot(a0, a1)
        if na == 0:
            return np.array([[0.0, 0.0], [0.0, np.hypot(b0, b1)]])
        return np.array([[na, 0.0], [(a0 * b0 + a1 * b1) / na, abs(a0 * b1 - a1 * b0) / na]])
    R = np.linalg.qr(A.T, mode="r")
    sign = np.where(np.diag(R) < 0, -1.0, 1.0)
    return (R * sign[:, None]).T


def correlation_factor(R: np.ndarray) -> np.ndarray | None:
    """Lower-triangular ``C`` with ``C C' = R`` for a positive semi-definite ``R`` (None if not PSD)."""
    try:
        return np.linalg.cholesky(R)
    except np.linalg.LinAlgError:
        w, Q = np.linalg.eigh(R)
        if w.min() < -1e-10:
            return None
        return lower_factor(Q * np.sqrt(np.maximum(w, 0.0)))


def sd_cor_theta(p: int, seg, sigma: float) -> np.ndarray | None:
    """lme4's theta (lower triangle of ``lambda``, column by column) of one ``p``-column term from its
    SDs and correlations ``seg`` in lme4's order; None when the correlations are not a valid matrix."""
    rows, cols = ThetaLayout.tril_indices(p)
    sd, R = np.zeros(p), np.eye(p)
    for a, b, val in zip(rows, cols, seg):
        if a == b:
            sd[a] = val
        else:
            R[a, b] = R[b, a] = val
    C = correlation_factor(R)
    if C is None:
        return None
    return (np.diag(sd) @ C / sigma)[rows, cols]


class InnerCoordinates:
    """Box-constrained coordinates ``z`` of ``(theta, sigma)`` with one variance parameter fixed.

    Parameters
    ----------
    layout : the fit's :class:`~mixedfx.core.covariance.ThetaLayout`.
    unit : per term, the scale of each component's row of the relative factor.
    sigma_hat : the ML estimate of sigma (``log(sigma / sigma_hat)`` is a coordinate for SDs).
    kind : ``("sigma",)``, ``("sd", k, i)`` or ``("cor", k, i, j)`` (term ``k``, components ``i > j``).
    orders : per term, the order of its components in the factor ``A`` (``Cov = sigma^2 P' A A' P``);
        for the profiled term it starts with ``i`` (SD) or ``j, i`` (correlation).
    """

    def __init__(self, layout, unit, sigma_hat: float, kind: tuple, orders):
        self.layout, self.kind, self.sigma_hat = layout, kind, sigma_hat
        self.sizes = tuple(layout.sizes)
        self.term = None if kind[0] == "sigma" else kind[1]
        self.orders = tuple(tuple(int(c) for c in o) for o in orders)
        self.fixed_rows = {"sigma": 0, "sd": 1, "cor": 2}[kind[0]]
        self.entries, lower, scale = [], [], []
        for k, p in enumerate(self.sizes):
            for c in range(p):
                for r in range(c, p):
                    if k == self.term and (kind[0] == "sd" and r == 0 or kind[0] == "cor" and r == 1):
                        continue
                    self.entries.append((k, r, c))
                    lower.append(0.0 if r == c else -np.inf)
                    scale.append(unit[k][self.orders[k][r]])
        if kind[0] == "sd":            # log(sigma / sigma_hat)
            lower.append(-np.inf)
            scale.append(1.0)
        elif kind[0] == "cor":         # the length of component i's row of the factor
            lower.append(0.0)
            scale.append(unit[self.term][kind[2]])
        self.lower, self.scale = np.array(lower), np.array(scale)
        self.ne = len(self.entries)
        # per term: flat positions in A of the free entries and their places in z; lme4's order of theta
        self.fill = []
        for k, p in enumerate(self.sizes):
            t = [i for i, e in enumerate(self.entries) if e[0] == k]
            self.fill.append((np.array([self.entries[i][1] * p + self.entries[i][2] for i in t], dtype=int),
                              np.array(t, dtype=int)))
        self.tril = [r * p + c for p in self.sizes for r, c in [layout.tril_indices(p)]]
        self.plain = [o == tuple(sorted(o)) for o in self.orders]

    def factors(self, z, x: float):
        """Per term the factor ``A`` in its order, and ``sigma`` (None: profiled out)."""
        v = np.asarray(z, float) * self.scale
        Ms = []
        for p, (pos, src) in zip(self.sizes, self.fill):
            M = np.zeros(p * p)
            M[pos] = v[src]
            Ms.append(M.reshape(p, p))
        sigma = None
        if self.kind[0] == "sigma":
            sigma = x
        elif self.kind[0] == "sd":
            sigma = self.sigma_hat * np.exp(v[-1])
            Ms[self.term][0, 0] = x / sigma
        else:
            Ms[self.term][1, 0] = v[-1] * x
            Ms[self.term][1, 1] = v[-1] * np.sqrt(max(1.0 - x * x, 0.0))
        return Ms, sigma

    def theta_sigma(self, z, x: float):
        """``theta`` and ``sigma`` (None: profiled out) for coordinates ``z`` and the fixed value ``x``."""
        Ms, sigma = self.factors(z, x)
        parts = []
        for M, order, plain, tril in zip(Ms, self.orders, self.plain, self.tril):
            if not plain:
                A = np.empty_like(M)
                A[list(order)] = M
                M = lower_factor(A)
            parts.append(M.ravel()[tril])
        return np.concatenate(parts), sigma

    def coords(self, lams, sigma: float | None) -> np.ndarray:
        """The coordinates of the factors ``lams`` and ``sigma`` (the fixed parameter ignored)."""
        Ms = [lam if o == tuple(sorted(o)) else lower_factor(lam[list(o)]) for lam, o in zip(lams, self.orders)]
        v = [Ms[k][r, c] for k, r, c in self.entries]
        if self.kind[0] == "sd":
            v.append(np.log(sigma / self.sigma_hat))
        elif self.kind[0] == "cor":
            v.append(float(np.hypot(Ms[self.term][1, 0], Ms[self.term][1, 1])))
        return np.maximum(np.array(v, float) / self.scale, self.lower)

    def pivoted(self, z, x: float, unit, tol: float = 1e-6):
        """Orders that put the components with a zero diagonal in the factor (an SD of 0, or a
        component in the span of the earlier ones: a correlation of +-1) after the others, or None
        when no zero diagonal precedes a nonzero one.  After a zero diagonal ``A[r, r]`` the later
        rows' entries in column ``r`` and beyond can rotate without changing the covariance (the
        unidentified correlations) but not without changing its slope, so BOBYQA can stall there;
        with that component last, the same point has first-order coordinates for them."""
        Ms, _ = self.factors(z, x)
        new, changed = [], False
        for k, (M, order) in enumerate(zip(Ms, self.orders)):
            keep = self.fixed_rows if k == self.term else 0
            zero = [abs(M[r, r]) < tol * unit[k][order[r]] for r in range(len(order))]
            free = list(range(keep, len(order)))
            ordered = [r for r in free if not zero[r]] + [r for r in free if zero[r]]
            changed |= ordered != free
            new.append(order[:keep] + tuple(order[r] for r in ordered))
        return new if changed else None


class _Profiler:
    """Profiles of a fitted LMM (also the base of the GLMM profiler, which overrides the deviance)."""

    def __init__(self, result):
        fit = result.fit
        self.design = fit.design
        self.ml = fit if not fit.reml else fit_lmm(fit.design, reml=False, warn=False)
        self.ws = self.ml.fresh_workspace()       # the profiler's own: the fit is never changed
        self.sizes = tuple(self.ws.sizes)
        pv = parameter_vector(self.design.blocks, self.ws.layout, self.ml.theta, self.ml.sigma,
                              self.ml.beta, self.design.xnames)
        self.names = list(pv.index)
        self.nvar = sum(p * (p + 1) // 2 for p in self.sizes) + 1
        self.vhat = pv.to_numpy()[:self.nvar]
        lo, hi = variance_bounds(self.sizes)
        self.lower = np.array(lo + [0.0])
        self.upper = np.array(hi + [np.inf])
        self.open_lower = {self.nvar - 1}          # sigma > 0: approached, never evaluated at 0
        self.theta_hat = np.asarray(self.ml.theta, float)
        self.sigma_hat = float(self.ml.sigma)
        self.lam_hat = self.ws.layout.lambdas(self.theta_hat)
        self.rel_sd = [np.sqrt((lam ** 2).sum(axis=1)) for lam in self.lam_hat]
        self.unit = self.row_units()
        self.kinds = []
        for k, p in enumerate(self.sizes):
            for i, j in zip(*self.ws.layout.tril_indices(p)):
                self.kinds.append(("sd", k, int(i)) if i == j else ("cor", k, int(i), int(j)))
        self.kinds.append(("sigma",))
        self.inner = {}                              # (kind, orders) -> InnerCoordinates
        self.solved = {}                             # j -> [(x, factors, sigma)] optima found so far
        self.sub = {}                                # SD j -> (factors, sigma) of the fit with SD j at 0
        self.d_hat = self.theta_deviance(self.theta_hat, self.sigma_hat)

    def row_units(self) -> list[np.ndarray]:
        """Scale of each component's row of the relative factor: its estimated SD / sigma, but at
        least a tenth of the largest ``sd * rms(column) / sigma`` over the components divided by
        the component's column RMS (the scale of an SD estimated at 0, in its column's units)."""
        rel = self.rel_sd
        rms = [np.sqrt(np.mean(np.asarray(b.X, float) ** 2, axis=0)) for b in self.design.blocks]
        rms = [np.where(r > 0, r, 1.0) for r in rms]
        ratios = np.concatenate([s * r for s, r in zip(rel, rms)])
        q = ratios.max() if ratios.size and ratios.max() > 0 else 1.0
        return [np.maximum(s, 0.1 * q / r) for s, r in zip(rel, rms)]

    def theta_sigma(self, v):
        """``theta`` and ``sigma`` from lme4's SD / correlation parameters and sigma (last)."""
        th, i = [], 0
        sigma = v[-1]
        for p in self.sizes:
            m = p * (p + 1) // 2
            seg = sd_cor_theta(p, v[i:i + m], sigma)
            i += m
            if seg is None:
                return None, sigma
            th.extend(seg)
        return np.array(th), sigma

    def theta_deviance(self, theta, sigma=None) -> float:
        """ML deviance at ``(theta, sigma)``; ``sigma=None``: minimized over sigma."""
        if sigma is not None and not 0 < sigma < np.inf:
            return FAILED_OBJECTIVE
        return self.ws.update(theta).deviance(sigma, reml=False)

    def deviance(self, v) -> float:
        """ML deviance at lme4's SD / correlation parameters and sigma ``v``."""
        theta, sigma = self.theta_sigma(np.asarray(v, float))
        if theta is None or sigma <= 0:
            return FAILED_OBJECTIVE
        return self.theta_deviance(theta, sigma)

    def min_over_others(self, j: int, x: float, step, **tol) -> float:
        """The deviance with parameter ``j`` fixed at ``x``, minimized over the other ``nvar - 1``
        (lme4's SD / correlation coordinates; used by the GLMM profiler)."""
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

    def coordinates(self, kind: tuple, orders=None) -> InnerCoordinates:
        """The inner coordinates for ``kind``, by default with the profiled components first and
        components whose SD is estimated at 0 last."""
        if orders is None:
            orders = []
            for k, p in enumerate(self.sizes):
                head = [] if k != (None if kind[0] == "sigma" else kind[1]) else \
                    ([kind[2]] if kind[0] == "sd" else [kind[3], kind[2]])
                rest = [c for c in range(p) if c not in head]
                zero = [c for c in rest if not self.rel_sd[k][c] > 1e-6 * self.unit[k][c]]
                orders.append(tuple(head + [c for c in rest if c not in zero] + zero))
        key = (kind, tuple(orders))
        if key not in self.inner:
            self.inner[key] = InnerCoordinates(self.ws.layout, self.unit, self.sigma_hat, kind, orders)
        return self.inner[key]

    def min_variance(self, j: int, x: float, with_submodels: bool = True) -> float:
        """The deviance with variance parameter ``j`` fixed at ``x``, minimized over (theta, sigma).

        BOBYQA starts, in the coordinates of :meth:`coordinates`, from the best of the estimate
        (two ways onto the constraint), the optimum at the nearest value profiled so far and the
        optima with one SD at 0 (:meth:`submodel`: the branch where a correlation is unidentified,
        so a correlation's profile never rises above theirs).  When it stops with a zero diagonal
        of a factor before a nonzero one, it restarts from the same point with that component last
        (:meth:`InnerCoordinates.pivoted`); when it stops on a face, once from inside the box.
        ``theta_deviance`` reads only the workspace's public ``update``, ``logdet_Z``, ``pwrss``,
        ``n``, ``log_weights`` and ``objective_value`` (a failed factorization)."""
        kind = self.kinds[j]
        co = self.coordinates(kind)
        cands = [(self.lam_hat, self.sigma_hat)]
        if kind[0] == "sigma":            # the same absolute covariances
            cands.append(([lam * self.sigma_hat / x for lam in self.lam_hat], self.sigma_hat))
        elif kind[0] == "sd" and self.vhat[j] > 0 and x > 0:     # the same relative covariances
            cands.append((self.lam_hat, self.sigma_hat * x / self.vhat[j]))
        done = self.solved.setdefault(j, [])
        if done:
            cands.append(min(done, key=lambda t: abs(t[0] - x))[1:])
        if with_submodels:
            cands.extend(self.submodel(i) for i, kd in enumerate(self.kinds) if kd[0] == "sd")
        starts = [co.coords(lams, sig) for lams, sig in cands]

        def fun(z, co):
            theta, sigma = co.theta_sigma(z, x)
            return self.theta_deviance(theta, sigma)
        vals = [fun(z, co) for z in starts]
        best = min(vals)
        z = starts[int(np.argmin(vals))]
        kicked = False
        for it in range(2 * len(self.sizes) + 4):
            orders = co.pivoted(z, x, self.unit)
            if orders is not None:
                theta, sigma = co.theta_sigma(z, x)
                co = self.coordinates(kind, orders)
                z = co.coords(self.ws.layout.lambdas(theta), sigma)
            elif it > 0:
                # on a face (a diagonal or a row length at 0): restart once from inside the box, half
                # the estimate's SD on those coordinates, and keep whichever optimum is lower
                face = (co.lower == 0) & (z < 1e-6)
                if kicked or not face.any():
                    break
                kicked = True
                inside = np.where(face, 0.5, z)
                opt = bobyqa(lambda t: fun(t, co), inside, co.lower, step=0.1, **_INNER_TOL)
                if not opt.fun < best - 1e-9:
                    break
                z, best = opt.x, opt.fun
                continue
            opt = bobyqa(lambda t: fun(t, co), z, co.lower, step=0.05, **_INNER_TOL)
            z, best = opt.x, min(best, opt.fun)
        theta, sigma = co.theta_sigma(z, x)
        done.append((x, self.ws.layout.lambdas(theta), sigma))
        return best

    def submodel(self, j: int):
        """Factors and sigma of the ML fit with SD parameter ``j`` at 0 (computed once)."""
        if j not in self.sub:
            self.min_variance(j, 0.0, with_submodels=False)
            self.sub[j] = self.solved[j][-1][1:]
        return self.sub[j]

    def zeta(self, j: int, x: float) -> float:
        if j < self.nvar:
            d = self.min_variance(j, x)
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
            kind = self.kinds[j]
            if kind[0] == "cor":
                return c, 0.2 * abs(c) + 0.05
            if kind[0] == "sd":
                return c, 0.25 * self.sigma_hat * self.unit[kind[1]][kind[2]]
            return c, 0.25 * c
        k = j - self.nvar
        return self.ml.beta[k], float(np.sqrt(self.ml.vcov[k, k]))

    def limit(self, j: int, target: float) -> float:
        """Solve zeta = target (< 0: lower side) by outward bracketing, then Brent."""
        c, step = self.center_and_scale(j)
        direction = np.sign(target)
        lo_b = self.lower[j] if j < self.nvar else -np.inf
        hi_b = self.upper[j] if j < self.nvar else np.inf
        xtol = 1e-8 * step
        prev = c
        for k in range(60):
            x = c + direction * step * 2 ** (k / 2)
            if (x <= lo_b or x >= hi_b) and j in getattr(self, "open_lower", ()) and direction < 0:
                x = lo_b + (prev - lo_b) / 4            # sigma -> 0: the deviance -> infinity
            elif x <= lo_b or x >= hi_b:
                bound = lo_b if direction < 0 else hi_b
                if (self.zeta(j, bound) - target) * direction < 0:
                    return float(bound)
                return brentq(lambda t: self.zeta(j, t) - target, min(prev, bound), max(prev, bound), xtol=xtol)
            if (self.zeta(j, x) - target) * direction >= 0:
                return brentq(lambda t: self.zeta(j, t) - target, min(prev, x), max(prev, x), xtol=xtol)
            prev = x
        return np.nan
