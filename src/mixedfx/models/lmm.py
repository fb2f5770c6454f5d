"""Fit a linear mixed model: Design -> PLS workspace -> optimizer -> frozen :class:`LmmFit`.

The stages mirror lme4's ``lFormula -> mkLmerDevfun -> optimizeLmer -> mkMerMod``:
:func:`make_workspace` builds the deviance function's workspace, :func:`fit_lmm`
optimizes it and freezes the numbers at the optimum.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..core.optimize import OptResult, bobyqa
from ..core.start import moment_start
from ..core.workspace import FAILED_OBJECTIVE, PLSWorkspace
from .threads import auto_threads, blas_limit
from ..design import Design

__all__ = ["LmmFit", "ConvergenceWarning", "SingularFitWarning", "make_workspace", "fit_lmm",
           "SINGULAR_TOL"]

#: lme4's ``isSingular`` tolerance on the bounded components of theta.
SINGULAR_TOL = 1e-4


class ConvergenceWarning(UserWarning):
    """The optimizer did not converge cleanly."""


class SingularFitWarning(UserWarning):
    """A variance component or correlation is estimated on the boundary."""


@dataclass(frozen=True)
class LmmFit:
    """Numbers at the optimum of an LMM (arrays only; presentation lives in ``results``).

    Attributes
    ----------
    design : the Design the model was fitted to.
    reml : whether the REML criterion was optimized.
    theta : (n_theta,) relative covariance parameters.  beta : (p,) fixed effects.
    sigma : residual standard deviation.  vcov : (p, p) covariance of beta.
    b : per term, (n_levels, p_k) conditional modes of the random effects.
    cond_var : per term, (n_levels, p_k, p_k) conditional covariances of b.
    objective : the optimized criterion (REML criterion or ML deviance).
    deviance_ml : ML deviance at the optimum (lme4's ``deviance()`` of a REML fit).
    opt : optimizer report.  seconds : wall time of the fit.
    """
    design: Design
    reml: bool
    theta: np.ndarray
    beta: np.ndarray
    sigma: float
    vcov: np.ndarray
    b: tuple
    cond_var: tuple
    objective: float
    deviance_ml: float
    pwrss: float
    opt: OptResult
    is_singular: bool
    seconds: float
    workspace: PLSWorkspace = field(repr=False, compare=False)


def make_workspace(design: Design, reml: bool = True) -> PLSWorkspace:
    y = design.y if design.offset is None else design.y - design.offset
    return PLSWorkspace(design.X, y, [(b.codes, b.X, b.nlevels) for b in design.blocks],
                        weights=design.weights, reml=reml)


def _singular(theta: np.ndarray, lower: np.ndarray) -> bool:
    bounded = np.isfinite(lower)
    return bool(np.any(theta[bounded] < SINGULAR_TOL))


def fit_lmm(design: Design, reml: bool = True, start="moments", maxeval: int = 100_000,
            blas_threads="auto", warn: bool = True) -> LmmFit:
    """Optimize the profiled REML/ML criterion over theta and freeze the solution.

    Parameters
    ----------
    design : output of :func:`mixedfx.design.build_design`.
    reml : optimize the REML criterion (default) or the ML deviance.
    start : initial theta; ``"moments"`` (default) for ANOVA-type moment estimates
        (:func:`mixedfx.core.start.moment_start`), ``"lme4"`` for lme4's start.
    blas_threads : cap on BLAS threads while fitting (``"auto"``: 1 for small dense
        blocks, the available cores for large ones; an int: that cap; None: no cap).
    """
    t0 = time.perf_counter()
    ws = make_workspace(design, reml)
    layout = ws.layout
    lower = layout.lower_bounds()
    step = 0.75
    if isinstance(start, str) and start == "moments":
        y = design.y if design.offset is None else design.y - design.offset
        x0 = moment_start(design.X, y, [(b.codes, b.X, b.nlevels) for b in design.blocks], layout,
                          design.weights)
        # trust region on the scale of the start (insteval: 40 instead of 81 evaluations)
        step = np.where(lower == 0, np.clip(0.25 * np.abs(x0), 0.1, 0.75), 0.25)
    elif start is None or (isinstance(start, str) and start == "lme4"):
        x0 = layout.initial()
    else:
        x0 = np.asarray(start, float)
        step = 0.05     # a warm start needs a small trust region (31 vs 80 evaluations from the optimum)
    if len(x0) != layout.n_theta:
        raise ValueError(f"start has {len(x0)} values; this model has {layout.n_theta} theta parameters")
    with blas_limit(auto_threads(ws.qr, blas_threads)):
        opt = bobyqa(ws.objective, x0, lower, maxeval=maxeval, step=step)
        theta = opt.x
        ws.update(theta)
        if ws.objective_value >= FAILED_OBJECTIVE:
            raise FloatingPointError(
                "the penalized least-squares system could not be factored at any theta tried; the fixed-effects "
                "matrix may be numerically singular or the response degenerate (check for huge or constant columns)")
        beta = ws.beta()
        b = tuple(ws.b_blocks())
        cond_var = tuple(ws.cond_var_blocks())
        vcov = ws.vcov_beta()
    nu_ml = ws.n
    dev_ml = ws.logdet_Z + nu_ml * (1 + np.log(2 * np.pi * ws.pwrss / nu_ml)) - ws.log_weights
    singular = _singular(theta, lower)
    if warn:
        for msg in opt.messages:
            warnings.warn(msg, ConvergenceWarning, stacklevel=3)
        if singular:
            warnings.warn("boundary (singular) fit: a variance component is (nearly) zero or a correlation is "
                          "+/-1; see result.is_singular and consider simplifying the random effects",
                          SingularFitWarning, stacklevel=3)
    return LmmFit(design=design, reml=reml, theta=theta, beta=beta, sigma=float(np.sqrt(ws.sigma2)),
                  vcov=vcov, b=b, cond_var=cond_var, objective=float(opt.fun), deviance_ml=float(dev_ml),
                  pwrss=ws.pwrss, opt=opt, is_singular=singular, seconds=time.perf_counter() - t0,
                  workspace=ws)
