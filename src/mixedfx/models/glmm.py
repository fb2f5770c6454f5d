"""Fit a generalized linear mixed model: Design + family -> PIRLS workspace -> two-stage optimization.

As lme4's ``glmer``:

1. stage 1 (``nAGQ = 0``): optimize the Laplace deviance over ``theta`` with ``beta`` and ``u``
   both updated by PIRLS;
2. stage 2 (``nagq >= 1``): optimize over ``(theta, beta)`` jointly, PIRLS updating ``u``
   only, with the Laplace (``nagq = 1``) or adaptive Gauss-Hermite (``nagq > 1``) deviance.

Both Laplace stages are searched by bounded L-BFGS with the analytic gradient of the Laplace
deviance (implicit differentiation of the modes, :mod:`mixedfx.core.laplace_gradient`):
about 10-20 evaluations a stage instead of BOBYQA's 20-90, reaching the same or a lower
``-2 log L``.  ``optimizer="bobyqa"`` gives lme4's derivative-free search, which quadrature's
stage 2 and models without the gradient use anyway (and any L-BFGS search that fails).

The reported ``-2 log L`` keeps all normalizing constants, so it is comparable across
``nagq`` (lme4 1.1-31 reports quadrature fits on a shifted scale, its issue #161).  For
families with a dispersion (Gamma, inverse Gaussian, gaussian with a link) the dispersion
``phi`` maximizes the Laplace likelihood at each step (as glmmTMB), and random effects are
``b = Lambda u`` with ``u ~ N(0, phi I)``, so the SDs are ``sqrt(phi)`` times the relative
factors, as lme4 reports them.  Standard errors come from the Hessian ``H`` of ``-2 log L``
over ``(theta, beta)``: ``vcov(beta)`` is the ``beta`` block of ``2 H^{-1}``, lme4's default
(see :func:`_vcov` for how ``H`` is computed).
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field, replace

import numpy as np

from ..core.optimize import OptResult, bobyqa, finish
from ..core.pirls import GlmmWorkspace
from ..core.scaling import Standardization, standardize
from ..core.covariance import ThetaLayout
from .layout import block_structures, layout_of
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
        ws.laplace(ws.pirls(self.theta, beta=self.beta))      # also sets the dispersion phi there
        return ws


def make_glmm_workspace(design: Design, family) -> GlmmWorkspace:
    family.check_response(design.y, np.ones(design.n) if design.weights is None else design.weights)
    return GlmmWorkspace(design.X, design.y, [(b.codes, b.X, b.nlevels) for b in design.blocks], family,
                         prior_weights=design.weights, offset=design.offset,
                         structures=block_structures(design.blocks))


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
             warn: bool = True, blas_threads="auto", compute_vcov: bool = True,
             optimizer: str = "auto") -> GlmmFit:
    """Two-stage Laplace / quadrature fit (see module docstring), BLAS threads capped.

    ``compute_vcov=False`` skips the Hessian (used by inner fits of the negative binomial
    shape search); ``vcov`` is then the PIRLS factor's.  ``optimizer``: ``"auto"`` (L-BFGS
    with the analytic gradient for the Laplace stages when available, else BOBYQA),
    ``"lbfgs"`` (an error when the gradient is not available) or ``"bobyqa"`` (lme4's
    derivative-free search throughout).
    """
    if optimizer not in GLMM_OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r} for a GLMM; choose one of {', '.join(GLMM_OPTIMIZERS)}")
    dense = sum(b.q for b in design.blocks[1:])
    sc = standardize(design.X, None, [b.X for b in design.blocks], scale_response=False, center=design.offset,
                     term_kinds=[st.scaling for st in block_structures(design.blocks)])
    inner = replace(design, X=sc.fixed(design.X),
                    blocks=tuple(replace(b, X=sc.term(k, b.X)) for k, b in enumerate(design.blocks)),
                    offset=None if design.offset is None else design.offset + sc.y_center)
    if start is not None:
        st = {"theta": start.theta, "beta": start.beta} if hasattr(start, "theta") else dict(start)
        layout = layout_of(design.blocks)
        start = {"theta": None if st.get("theta") is None else sc.theta_to_internal(st["theta"], layout),
                 "beta": None if st.get("beta") is None else sc.beta_to_internal(st["beta"])}
    with blas_policy(dense, blas_threads):
        fit = _fit_glmm(inner, family, nagq, start, maxeval, warn, compute_vcov, optimizer)
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
              compute_vcov: bool = True, optimizer: str = "auto") -> GlmmFit:
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

    # PIRLS tolerance by phase: BOBYQA tolerates 1e-8 (the optimum moves < 1e-7 in -2 log L), the
    # second-difference Hessian (the fallback) needs 1e-10 (at 1e-8 cbpp's standard errors move by
    # 6%); the gradient-based stages and Hessian stop PIRLS on its step size instead (STAGE2_UTOL)
    gw.tol = 1e-8

    def stage1(theta):
        with _trial_values():
            r = gw.pirls(theta, joint=True, beta=None if gw.last is None else gw.beta,
                         u0=None if gw.last is None else gw.u)
            return _finite(gw.laplace(r))

    grad1, grad2 = _use_gradient(optimizer, nagq, gw)
    if beta0 is None or nagq == 0:          # nAGQ = 0 has only stage 1: a beta start only seeds PIRLS
        role = 0 if nagq == 0 else (1 if grad2 else 2)
        opt1 = _stage1_lbfgs(gw, theta0, lower_t, maxeval, role) if grad1 else None
        if opt1 is None:
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
        with _trial_values():
            r = gw.pirls(theta, beta=beta, u0=gw.u)
            dev = gw.laplace(r)
            return _finite(dev if nagq <= 1 else gw.agq(theta, r, nagq, gw.phi))

    if nagq == 0:
        opt, x_hat = opt1, np.concatenate([theta1, beta1])
    else:
        x0 = np.concatenate([theta1, beta1])
        if not np.all(np.isfinite(x0)) or stage2(x0) >= FAILED_OBJECTIVE:
            raise _invalid_means(family, "at its starting values")
        lower = np.concatenate([lower_t, np.full(p, -np.inf)])
        opt = _stage2_lbfgs(gw, x0, lower, maxeval, nagq) if grad2 else None
        if opt is None:
            # BOBYQA's initial steps: 0.05 in theta, a third of the PIRLS standard errors in beta
            gw.full_update(theta1)
            se1 = np.sqrt(np.maximum(np.diag(gw.ws.vcov_beta(scale=gw.phi)), 1e-12))
            se1 = np.where(np.isfinite(se1), se1, 0.3 * np.maximum(np.abs(beta1), 1.0))
            steps = np.concatenate([np.full(k, 0.05), np.maximum(se1 / 3, 1e-4)])
            # the Laplace deviance carries PIRLS noise of ~1e-10 relative; asking BOBYQA for changes
            # below 1e-8 only spends evaluations (verbagg: 173 instead of 227, -2 log L within 1e-6)
            opt = bobyqa(adaptive(stage2), x0, lower, maxeval=maxeval, step=steps, ftol_rel=1e-12, ftol_abs=1e-8)
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
    vcov, method = _vcov(stage2 if (nagq >= 1 and compute_vcov) else None, x_hat, k, gw, phi, nagq)
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


#: optimizers by name (``optimizer=``)
GLMM_OPTIMIZERS = ("auto", "lbfgs", "bobyqa")
#: PIRLS stops for the gradient-based stage 2 when no mode moves by more than this (relative):
#: the gradient is then accurate to ~1e-10, what a quasi-Newton line search needs
STAGE2_UTOL = 1e-10
#: stage 1 only seeds stage 2: its gradient needs less
STAGE1_UTOL = 1e-8
#: fresh-memory restarts of an L-BFGS search that stopped with its projected gradient still large
QN_RESTARTS = 4


def _use_gradient(optimizer: str, nagq: int, gw) -> tuple[bool, bool]:
    """Whether stage 1 and stage 2 run L-BFGS with the analytic gradient: ``optimizer`` "auto" or
    "lbfgs" and the gradient available (for quadrature: families without a dispersion)."""
    stage1 = gw.laplace_gradient_available()
    stage2 = stage1 and (nagq <= 1 or not gw.family.has_dispersion)
    if optimizer == "lbfgs" and not (stage1 and stage2):
        raise ValueError("optimizer='lbfgs' needs the analytic gradient of the deviance, which families without "
                         "working_derivatives(), quadrature (nagq > 1) with a dispersion and later random-effect "
                         "terms with more than 2000 columns do not have; use optimizer='bobyqa' or 'auto'")
    return optimizer != "bobyqa" and stage1, optimizer != "bobyqa" and stage2


def _stage1_lbfgs(gw, theta0, lower, maxeval: int, role: int) -> OptResult | None:
    """Stage 1 (``beta`` and ``u`` by joint PIRLS) by L-BFGS with the profiled gradient
    (:meth:`mixedfx.core.laplace_gradient.LaplaceGradient.profiled_gradient`).  None when it fails.

    ``role`` 0: stage 1 is the fit (``nagq = 0``), stage 2's tolerances.  Otherwise it only
    seeds stage 2.  Before a gradient-based stage 2 (``role`` 1) a rough seed (relative decrease
    1e-6 or projected gradient below 1e-2 ``|f|``) is enough: on the benchmark models and 250
    simulated ones stage 2 then ends at or below BOBYQA's ``-2 log L``, after 1-10 stage-1
    evaluations (a tight seed, 1e-10 and 1e-6, takes 8-17).  (Until the gradient test moved out
    of scipy, see :func:`_quasi_newton`, this stage stopped at its start whenever theta started
    within ``1e-2 |f|`` of zero, and stage 2 then started at theta = 1: a small Gamma model
    ended 0.22 above its optimum.)  Before a
    derivative-free stage 2 (``role`` 2) the tighter seed saves BOBYQA evaluations.
    """
    ftol, gtol = {0: (1e-13, 1e-8), 1: (1e-6, 1e-2)}.get(role, (1e-10, 1e-6))
    def evaluate(theta, with_gradient):
        r = gw.pirls(theta, joint=True, beta=None if gw.last is None else gw.beta,
                     u0=None if gw.last is None else gw.u, utol=STAGE1_UTOL)
        val = _finite(gw.laplace(r))
        if not with_gradient:
            return val, None
        return val, gw.laplace_gradient(theta, r, profile_beta=True) if val < FAILED_OBJECTIVE else None

    def restore():
        gw.last = None
    return _quasi_newton(evaluate, theta0, lower, gw.layout, len(theta0), maxeval, ftol, gtol, restore)


def _stage2_lbfgs(gw, x0, lower, maxeval: int, nagq: int) -> OptResult | None:
    """Stage 2: the Laplace or quadrature deviance over ``(theta, beta)`` by L-BFGS with its
    analytic gradient.  None when the search fails (then BOBYQA, as with ``optimizer="bobyqa"``)."""
    k = gw.layout.n_theta
    u0 = gw.u.copy()
    last = {}          # the last gradient point: x, its modes and their derivatives du/dx

    def evaluate(x, with_gradient):
        # a first-order prediction of the modes saves PIRLS steps after small moves; after a long
        # line-search step it can be far off, so PIRLS starts from the better of it and the last modes
        pred = last["u"] + last["du"] @ (x - last["x"]) if with_gradient and last else None
        r = gw.pirls(x[:k], beta=x[k:], u0=gw.u, utol=STAGE2_UTOL, u0_alt=pred)
        val = gw.laplace(r)
        if nagq > 1:
            val = gw.agq(x[:k], r, nagq, gw.phi)
        val = _finite(val)
        if not with_gradient or val >= FAILED_OBJECTIVE:
            return val, None
        out = gw.laplace_gradient(x[:k], r, mode_derivatives=True)
        if out is None:
            return val, None
        last.update(x=np.array(x, float), u=r.u.copy(), du=out[1])
        return val, out[0] if nagq <= 1 else gw.agq_gradient(x[:k], r, nagq)

    def restore():
        gw.pirls(x0[:k], beta=x0[k:], u0=u0)       # BOBYQA starts where this search did
    return _quasi_newton(evaluate, x0, lower, gw.layout, k, maxeval, 1e-13, 1e-8, restore)


def _quasi_newton(evaluate, x0, lower, layout, k: int, maxeval: int, ftol_rel: float, gtol_rel: float,
                  restore) -> OptResult | None:
    """Bounded L-BFGS (scipy's L-BFGS-B: its first step moves ``x`` by at most 1) on
    ``evaluate(x, with_gradient) -> (value, gradient or None)``, the first ``k`` coordinates
    theta, then :func:`mixedfx.core.optimize.finish` (components within 1e-6 of a bound go onto
    it; a boundary face from which a step on either side of the fold lowers the criterion
    restarts the search).

    The search stops when the projected gradient (zero only for components on their bound with
    the gradient pointing outwards) is below ``gtol_rel max(1, |f|)`` (``1e-8``: ``-2 log L``
    within ~1e-10 of its minimum).  scipy's own gradient test is not used: its projected
    gradient is capped by the distance to the bound, so a loose tolerance stopped the search at
    its start wherever theta was within that tolerance of zero.  A relative decrease below
    ``ftol_rel`` or a line search ending at the limit of precision count as converged only
    when that gradient is below ``max(gtol_rel, 1e-6) max(1, |f|)``.  Otherwise (e.g. the
    line search backtracked from a point with no valid likelihood to an almost-zero step, so
    the decrease looked converged) the search restarts there with a fresh quasi-Newton memory,
    at most :data:`QN_RESTARTS` times, while it makes progress.

    Returns None, after calling ``restore()``, when the search does not converge.
    """
    from scipy.optimize import minimize

    lower = np.asarray(lower, float)
    bounds = [(lb if np.isfinite(lb) else None, None) for lb in lower]
    count = [0]
    last = {}          # the last point evaluated with its gradient (L-BFGS-B's current iterate)

    def value(x):
        with _trial_values():
            return evaluate(x, False)[0]

    def value_and_gradient(x):
        if last and np.array_equal(x, last["x"]):
            return last["f"], last["g"].copy()
        count[0] += 1
        with _trial_values():
            val, g = evaluate(x, True)
        if g is None or not np.all(np.isfinite(g)):
            val, g = FAILED_OBJECTIVE, np.zeros(len(x))
        last.update(x=np.array(x, float), f=float(val), g=np.array(g, float))
        return val, g

    def projected_norm(x, g):
        return float(np.max(np.abs(np.where((x - lower <= 1e-10) & (g > 0), 0.0, g)), initial=0.0))

    def search(x_start, gtol, budget):
        """One L-BFGS-B run from ``x_start`` with a fresh memory, stopped by our projected gradient."""
        def stationary(intermediate_result):
            x = intermediate_result.x
            if last and np.array_equal(x, last["x"]) and projected_norm(x, last["g"]) <= gtol:
                raise StopIteration
        res = minimize(adaptive(value_and_gradient), np.asarray(x_start, float), jac=True, method="L-BFGS-B",
                       bounds=bounds, callback=stationary,
                       options=dict(maxfun=budget, maxiter=budget, ftol=ftol_rel, gtol=0.0, maxcor=20))
        return np.asarray(res.x, float), float(res.fun), np.asarray(res.jac, float), res

    def run(x_start):
        x, first = np.asarray(x_start, float), count[0]
        for _ in range(QN_RESTARTS + 1):
            f0, g0 = value_and_gradient(x)
            if not f0 < FAILED_OBJECTIVE:
                x_new, fun, status = x, f0, "failure (no valid deviance at the starting point)"
                break
            gtol = gtol_rel * max(1.0, abs(f0))
            if projected_norm(x, g0) <= gtol:
                x_new, fun, status = x, f0, "success"
                break
            x_new, fun, g, res = search(x, gtol, max(maxeval - (count[0] - first), 1))
            pg = projected_norm(x_new, g)
            if pg <= gtol and fun < FAILED_OBJECTIVE:
                status = "success"
            elif count[0] - first >= maxeval:
                status = "maxeval reached"
            elif pg <= max(gtol_rel, 1e-6) * max(1.0, abs(fun)) and fun < FAILED_OBJECTIVE:
                status = "success" if res.success else "roundoff limited"
            else:
                status = f"failure ({res.message}; projected gradient {pg:.3g})"
                if fun < f0:                # progress: restart there with a fresh memory
                    x = x_new
                    continue
            break
        return OptResult(x_new, float(fun), count[0] - first, status, optimizer="lbfgs")

    opt = finish(adaptive(value), run(x0), lower, run,
                 flip=lambda x, j: np.concatenate([layout.flip_column(x[:k], j), x[k:]]))
    if opt.messages or not opt.fun < FAILED_OBJECTIVE:
        restore()
        return None
    return opt


def _trial_values():
    """Trial points of a search may have no valid likelihood (e.g. ``exp(eta)`` beyond the
    floating-point range after a long line-search step): the deviance is then non-finite and
    rejected (``FAILED_OBJECTIVE``), so numpy's overflow / invalid-value warnings are noise."""
    return np.errstate(over="ignore", divide="ignore", invalid="ignore")


def _vcov(objective, x_hat, k, gw, phi, nagq: int = 1):
    """``vcov(beta)``: the ``beta`` block of ``2 H^{-1}``, ``H`` the Hessian of ``-2 log L`` over
    ``(theta, beta)`` at the optimum (lme4's default for ``glmer``), else the PIRLS factor's
    ``phi (R_X R_X')^{-1}``.

    ``H`` is the Hessian of the same function lme4 differences twice numerically (``deriv12``:
    the Laplace or quadrature deviance, ``u`` at its PIRLS modes for each ``(theta, beta)`` and
    the dispersion, if any, profiled).  It is computed from the analytic gradient (implicit
    differentiation of the modes, :mod:`mixedfx.core.laplace_gradient`) by one layer of central
    differences (:meth:`mixedfx.core.pirls.GlmmWorkspace.deviance_hessian`): ``2 m`` PIRLS
    solutions instead of ``1 + 2m + m(m-1)/2`` deviances, and a truncation error ``O(h^2)``
    with the gradient's rounding noise divided by ``h`` rather than the deviance's by ``h^2``
    (SEs within 2e-7 of a Richardson-extrapolated reference on the benchmark models, where the
    second differences were up to 3e-5 off).  Where the gradient is unavailable (quadrature
    with a dispersion, a family without ``working_derivatives``, a later-terms block above
    :data:`mixedfx.core.laplace_gradient.MAX_REST` columns) ``H`` is the second-difference
    Hessian with lme4's step.  ``H`` is used when its smallest eigenvalue is positive and above
    the differencing error (``m`` times the largest asymmetry of the differenced gradient).
    """
    if objective is not None:
        out = gw.deviance_hessian(x_hat, nagq)
        H, err = out if out is not None else (deriv12_hessian(objective, x_hat), 0.0)
        # usable when positive definite beyond its differencing error (a separated fit has all
        # curvature ~1e-9, below the error of the differenced gradient)
        if np.all(np.isfinite(H)) and np.linalg.eigvalsh(H)[0] > len(x_hat) * err:
            return (2.0 * np.linalg.inv(H))[k:, k:], "hessian"
    gw.pirls(x_hat[:k], beta=x_hat[k:], u0=gw.u)
    gw.full_update(x_hat[:k])
    return gw.ws.vcov_beta(scale=phi), "pirls"
