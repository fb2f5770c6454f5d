"""Fit a generalized linear mixed model: Design + family -> PIRLS workspace -> two-stage optimization.

As lme4's ``glmer``:

1. stage 1 (``nAGQ = 0``): optimize the Laplace deviance over ``theta`` with ``beta`` and ``u``
   both updated by PIRLS;
2. stage 2 (``nagq >= 1``): optimize over ``(theta, beta)`` jointly, PIRLS updating ``u``
   only, with the Laplace (``nagq = 1``) or adaptive Gauss-Hermite (``nagq > 1``) deviance.

The reported ``-2 log L`` keeps all normalizing constants, so it is comparable across
``nagq`` (lme4 1.1-31 reports quadrature fits on a shifted scale, its issue #161).  For
families with a dispersion (Gamma, inverse Gaussian, gaussian with a link) the dispersion
``phi`` maximizes the Laplace likelihood at each step (as glmmTMB), and random effects are
``b = Lambda u`` with ``u ~ N(0, phi I)``, so the SDs are ``sqrt(phi)`` times the relative
factors, as lme4 reports them.  Standard errors come from the numerical Hessian ``H`` of
``-2 log L`` over ``(theta, beta)``: ``vcov(beta)`` is the ``beta`` block of ``2 H^{-1}``,
lme4's default.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field, replace

import numpy as np

from ..core.optimize import OptResult, bobyqa
from ..core.pirls import GlmmWorkspace
from ..core.scaling import Standardization, standardize
from ..core.covariance import ThetaLayout
from ..core.finite_diff import deriv12_hessian
from ..core.workspace import FAILED_OBJECTIVE
from ..design import Design
from .lmm import ConvergenceWarning, SingularFitWarning, _singular
from .threads import adaptive, blas_policy

__all__ = ["GlmmFit", "fit_glmm", "SeparationWarning"]


class SeparationWarning(UserWarning):
    """Fitted probabilities are numerically 0 or 1: (quasi-)complete separation."""


def _check_separation(family, mu, beta, names) -> str | None:
    if getattr(family, "name", "") != "binomial":
        return None
    extreme = int(np.sum((mu < 1e-8) | (mu > 1 - 1e-8)))
    if not extreme:
        return None
    big = [n for n, b in zip(names, beta) if abs(b) > 10]
    which = f"; estimates of {', '.join(big)} are diverging and not meaningful" if big else ""
    return (f"fitted probabilities numerically 0 or 1 in {extreme} row(s): (quasi-)complete separation{which}. "
            "Remove or coarsen the separating predictor, or use a penalized (bias-reduced) fit")


@dataclass(frozen=True)
class GlmmFit:
    """Numbers at the optimum of a GLMM (presentation lives in ``results``).

    ``objective`` is ``-2 log L`` (Laplace or quadrature, all constants); ``deviance`` is
    ``sum w d(y, mu)`` at the conditional modes (lme4's ``deviance()``); ``phi`` the
    dispersion (1 for binomial and Poisson).
    """
    design: Design
    family: object
    nagq: int
    theta: np.ndarray
    beta: np.ndarray
    phi: float
    vcov: np.ndarray
    vcov_method: str
    b: tuple
    cond_var: tuple
    u: np.ndarray
    eta: np.ndarray
    mu: np.ndarray
    objective: float
    deviance: float
    opt_stage1: OptResult
    opt: OptResult
    is_singular: bool
    seconds: float
    layout: ThetaLayout = field(repr=False, compare=False)
    scaling: Standardization | None = field(repr=False, compare=False, default=None)
    theta_internal: np.ndarray | None = field(repr=False, compare=False, default=None)

    @property
    def reml(self) -> bool:
        return False

    def fresh_workspace(self) -> GlmmWorkspace:
        """A new PIRLS workspace on the user's data, at the optimum.

        A fit holds no mutable state; code that evaluates at other parameters (profiles,
        leverages, shrinkage) asks for its own workspace.  (The fit itself ran on standardized
        covariates; its ``u`` are the spherical modes there, a starting point here.)
        """
        ws = make_glmm_workspace(self.design, self.family)
        ws.tol = 1e-10
        ws.pirls(self.theta, beta=self.beta)
        return ws


def make_glmm_workspace(design: Design, family) -> GlmmWorkspace:
    family.check_response(design.y, np.ones(design.n) if design.weights is None else design.weights)
    return GlmmWorkspace(design.X, design.y, [(b.codes, b.X, b.nlevels) for b in design.blocks], family,
                         prior_weights=design.weights, offset=design.offset)


def _invalid_means(family, where: str) -> FloatingPointError:
    return FloatingPointError(
        f"the {family.name} model with a {family.link.name} link has no valid likelihood {where}: the link allows "
        "invalid means for these data (e.g. a negative Poisson mean with the identity link). Use the family's "
        "default link or check the model.")


def _finite(value: float) -> float:
    """The optimizer gets a large finite value where the deviance is undefined (e.g. an identity
    link giving a negative Poisson mean): BOBYQA's quadratic model survives it, nlopt's argument
    checks do not survive NaN."""
    return float(value) if np.isfinite(value) else FAILED_OBJECTIVE


def fit_glmm(design: Design, family, nagq: int = 1, start=None, maxeval: int = 100_000,
             warn: bool = True, blas_threads="auto", compute_vcov: bool = True) -> GlmmFit:
    """Two-stage Laplace / quadrature fit (see module docstring), BLAS threads capped.

    ``compute_vcov=False`` skips the numerical Hessian (used by inner fits of the
    negative binomial shape search); ``vcov`` is then the PIRLS factor's.
    """
    dense = sum(b.q for b in design.blocks[1:])
    sc = standardize(design.X, None, [b.X for b in design.blocks], scale_response=False, center=design.offset)
    inner = replace(design, X=sc.fixed(design.X),
                    blocks=tuple(replace(b, X=sc.term(k, b.X)) for k, b in enumerate(design.blocks)),
                    offset=None if design.offset is None else design.offset + sc.y_center)
    if start is not None:
        st = {"theta": start.theta, "beta": start.beta} if hasattr(start, "theta") else dict(start)
        layout = ThetaLayout(tuple(b.p for b in design.blocks))
        start = {"theta": None if st.get("theta") is None else sc.theta_to_internal(st["theta"], layout),
                 "beta": None if st.get("beta") is None else sc.beta_to_internal(st["beta"])}
    with blas_policy(dense, blas_threads):
        fit = _fit_glmm(inner, family, nagq, start, maxeval, warn, compute_vcov)
    return _to_user(fit, design, sc)


def _to_user(fit: GlmmFit, design: Design, sc: Standardization) -> GlmmFit:
    """The fit on standardized covariates in the user's units (:mod:`mixedfx.core.scaling`:
    ``s_y = 1``, the offset centred instead of the response; eta, mu and the likelihood are
    unchanged)."""
    layout = fit.layout
    return replace(fit, design=design, theta=sc.theta_to_user(fit.theta, layout), beta=sc.beta_to_user(fit.beta),
                   vcov=sc.vcov_to_user(fit.vcov), b=tuple(sc.b_to_user(fit.b)),
                   cond_var=tuple(sc.cond_var_to_user(fit.cond_var)), scaling=sc, theta_internal=fit.theta)


def _fit_glmm(design: Design, family, nagq: int, start, maxeval: int, warn: bool,
              compute_vcov: bool = True) -> GlmmFit:
    """Two-stage Laplace / quadrature fit (see module docstring).

    Parameters
    ----------
    nagq : 0 (stage 1 only), 1 (Laplace) or the number of quadrature nodes (> 1: one scalar term).
    start : None, a dict with ``theta`` and/or ``beta``, or a previous fit (warm start).
    """
    t0 = time.perf_counter()
    if nagq < 0 or int(nagq) != nagq:
        raise ValueError("nagq must be a non-negative whole number")
    gw = make_glmm_workspace(design, family)
    layout = gw.layout
    k, p = layout.n_theta, design.X.shape[1]
    lower_t = layout.lower_bounds()
    if nagq > 1 and (len(design.blocks) != 1 or design.blocks[0].p != 1):
        raise ValueError("nagq > 1 (adaptive Gauss-Hermite quadrature) needs a single scalar random-effect "
                         "term such as (1 | group); use nagq=1 (Laplace) for this model")
    theta0, beta0 = layout.initial(), None
    if start is not None:
        st = {"theta": start.theta, "beta": start.beta} if hasattr(start, "theta") else dict(start)
        if st.get("theta") is not None:
            theta0 = np.asarray(st["theta"], float)
        if st.get("beta") is not None:
            beta0 = np.asarray(st["beta"], float)

    # PIRLS tolerance by phase: the optimizer tolerates 1e-8 (the optimum moves < 1e-7 in -2 log L),
    # the finite-difference Hessian needs 1e-10 (at 1e-8 cbpp's standard errors move by 6%)
    gw.tol = 1e-8

    def stage1(theta):
        r = gw.pirls(theta, joint=True, beta=None if gw.last is None else gw.beta,
                     u0=None if gw.last is None else gw.u)
        return _finite(gw.laplace(r))

    if beta0 is None:
        # stage 1 only seeds stage 2: a looser tolerance is enough (lme4 also refines in stage 2)
        opt1 = bobyqa(adaptive(stage1), theta0, lower_t, maxeval=maxeval, step=0.75 if start is None else 0.05,
                      ftol_rel=1e-8, ftol_abs=1e-6)
        gw.last = None                      # re-solve at the best theta from the GLM start, not from
        stage1(opt1.x)                      # the state of the last (possibly failed) evaluation
        theta1, beta1 = opt1.x, gw.beta.copy()
    else:
        opt1 = OptResult(theta0, float("nan"), 0, "skipped (start given)")
        theta1, beta1 = theta0, beta0
        gw.pirls(theta1, beta=beta1)

    def stage2(x):
        theta, beta = x[:k], x[k:]
        r = gw.pirls(theta, beta=beta, u0=gw.u)
        dev = gw.laplace(r)
        return _finite(dev if nagq <= 1 else gw.agq(theta, r, nagq, gw.phi))

    if nagq == 0:
        opt, x_hat = opt1, np.concatenate([theta1, beta1])
    else:
        gw.full_update(theta1)
        se1 = np.sqrt(np.maximum(np.diag(gw.ws.vcov_beta(scale=gw.phi)), 1e-12))
        se1 = np.where(np.isfinite(se1), se1, 0.3 * np.maximum(np.abs(beta1), 1.0))
        steps = np.concatenate([np.full(k, 0.05), np.maximum(se1 / 3, 1e-4)])
        x0 = np.concatenate([theta1, beta1])
        if not np.all(np.isfinite(x0)) or stage2(x0) >= FAILED_OBJECTIVE:
            raise _invalid_means(family, "at its starting values")
        # the Laplace deviance carries PIRLS noise of ~1e-10 relative; asking BOBYQA for changes
        # below 1e-8 only spends evaluations (verbagg: 173 instead of 227, -2 log L within 1e-6)
        opt = bobyqa(adaptive(stage2), x0, np.concatenate([lower_t, np.full(p, -np.inf)]), maxeval=maxeval, step=steps,
                     ftol_rel=1e-12, ftol_abs=1e-8)
        x_hat = opt.x
    theta, beta = x_hat[:k], x_hat[k:]
    gw.tol = 1e-10
    res = gw.pirls(theta, beta=beta, u0=gw.u)
    objective = gw.laplace(res)
    phi = gw.phi
    if nagq > 1:
        objective = gw.agq(theta, res, nagq, phi)
    if not np.isfinite(objective):
        raise _invalid_means(family, "at the optimum")
    b = tuple(gw.ws.b_blocks(res.u))
    cond_var = tuple(gw.ws.cond_var_blocks(scale=phi))
    deviance = float(np.sum(gw.w * family.unit_deviance(gw.y, res.mu)))
    vcov, method = _vcov(stage2 if (nagq >= 1 and compute_vcov) else None, x_hat, k, gw, phi)
    gw.pirls(theta, beta=beta, u0=res.u)          # leave the workspace at the optimum
    singular = _singular(theta, lower_t)
    if warn:
        for msg in (opt1.messages + opt.messages):
            warnings.warn(msg, ConvergenceWarning, stacklevel=3)
        if not res.converged:
            warnings.warn("PIRLS did not converge at the optimum", ConvergenceWarning, stacklevel=3)
        if singular:
            warnings.warn("boundary (singular) fit: a variance component is (nearly) zero; see is_singular",
                          SingularFitWarning, stacklevel=3)
        sep = _check_separation(family, res.mu, beta, design.xnames)
        if sep:
            warnings.warn(sep, SeparationWarning, stacklevel=3)
        if method != "hessian" and nagq >= 1 and compute_vcov:
            warnings.warn("the Hessian of the deviance is not positive definite at the optimum; standard errors "
                          "come from the PIRLS fixed-effects factor instead", ConvergenceWarning, stacklevel=3)
    return GlmmFit(design=design, family=family, nagq=int(nagq), theta=theta, beta=beta, phi=phi, vcov=vcov,
                   vcov_method=method, b=b, cond_var=cond_var, u=res.u, eta=res.eta, mu=res.mu,
                   objective=float(objective), deviance=deviance, opt_stage1=opt1, opt=opt,
                   is_singular=singular, seconds=time.perf_counter() - t0, layout=gw.layout)


def _vcov(objective, x_hat, k, gw, phi):
    """``2 H^{-1}`` restricted to beta (lme4's default), else the PIRLS factor's ``phi (R_X R_X')^{-1}``."""
    if objective is not None:
        H = deriv12_hessian(objective, x_hat)
        try:
            np.linalg.cholesky(H)
            V = 2.0 * np.linalg.inv(H)
            return V[k:, k:], "hessian"
        except np.linalg.LinAlgError:
            pass
    gw.pirls(x_hat[:k], beta=x_hat[k:], u0=gw.u)
    gw.full_update(x_hat[:k])
    return gw.ws.vcov_beta(scale=phi), "pirls"
