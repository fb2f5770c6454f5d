"""``glmer`` on a dask DataFrame: persisted partitions, one map-reduce per PIRLS iteration.

The passes before the fit are those of :func:`mixedfx.cluster.lmm.lmer_dask` (survey -> frozen
spec, column moments -> aliasing, checks and the standardization, which for a GLMM keeps the
response and centres the offset).  Each partition is then evaluated once into internal units
(:mod:`mixedfx.cluster.glmm_state`) and persisted on the workers.  The client replays the
in-memory ``glmer(..., optimizer="bobyqa")`` fit (:mod:`mixedfx.models.glmm`): stage 1 BOBYQA
over theta with joint PIRLS, stage 2 BOBYQA over ``(theta, beta)`` with u-only PIRLS, the same
tolerances and step halving.  A PIRLS iteration is two map-reduces: the re-weighted blocks of
``A`` at the current modes (summed, a fresh :meth:`PLSWorkspace.from_blocks` factors them) and
the ``mu``-kernel at the steps 1, 1/2, 1/4, 1/8 of the proposed update (speculative halving).

Version 1: ``optimizer="bobyqa"`` only (the analytic Laplace gradient needs per-row terms), families
without a dispersion (binomial, incl. ``cbind`` and proportions with weights; Poisson), ``nagq``
0 or 1, unstructured terms.  ``vcov`` is the beta block of ``2 H^-1`` with ``H`` lme4's
second-difference Hessian of the deviance (``deriv12``; the in-memory fit differences the
analytic gradient instead, so standard errors agree to ~1e-5, not 1e-8), else the PIRLS factor's.
"""
from __future__ import annotations

import os
import re
import time
import warnings
from dataclasses import dataclass

import dask
import numpy as np
import pandas as pd

from ..core.blocksum import sum_blocks
from ..core.covariance import ThetaLayout
from ..core.finite_diff import deriv12_hessian
from ..core.optimize import bobyqa
from ..core.workspace import FAILED_OBJECTIVE, PLSWorkspace
from ..core.moments import standardize_from_moments
from ..design import MissingDataWarning
from ..families import get_family
from ..formula import parse_formula
from ..formula.ast import Call
from ..models import partitioned as P
from ..models.glmm import SeparationWarning
from ..models.lmm import ConvergenceWarning, SingularFitWarning, _singular
from ..results.glmm_result import GeneralizedLinearMixedModelResult
from ..results.io import LoadedBlock, LoadedDesign, LoadedFit
from . import glmm_state as G
from . import outputs
from .lmm import _NO_ROWS, _terms, read_frame
from .passes import broadcast, is_dask_frame, map_reduce, partitions

__all__ = ["glmer_dask", "DaskGeneralizedLinearMixedModelResult"]

YCOL, WCOL = "mfx_cbind_y_", "mfx_cbind_w_"


@dataclass
class _Res:
    u: np.ndarray
    beta: np.ndarray
    pdev: float
    kernel: float
    iterations: int
    converged: bool


class RemotePirls:
    """PIRLS of :class:`mixedfx.core.pirls.GlmmWorkspace` (bobyqa phases) with the rows on the workers.

    ``states``: the persisted partition states (dask Delayed / futures).  Counts ``passes``.
    """

    def __init__(self, states, p, sizes, nlevels, structures, layout, split_every=8):
        self.states, self.p, self.sizes, self.nlevels = states, p, list(sizes), list(nlevels)
        self.structures, self.layout, self.split_every = structures, layout, split_every
        self.passes = 0
        self.pass_seconds = 0.0
        dev_const, ll_const, n = self._run(G.state_constants, G.sum_arrays)
        self.dev_const, self.ll_const, self.n = float(dev_const), float(ll_const), int(n)
        self.u = np.zeros(sum(s * nl for s, nl in zip(self.sizes, self.nlevels)))
        self.beta = np.zeros(p)
        self.last = None
        self.ws = None
        self.tol = 1e-10
        self.phi = 1.0

    def _run(self, fn, merge, *args):
        t = time.perf_counter()
        out = map_reduce(self.states, fn, merge, *args, split_every=self.split_every)
        self.passes += 1
        self.pass_seconds += time.perf_counter() - t
        return out

    def b_levels(self, theta, u) -> list:
        """``b = Lambda u`` per term as (levels, p_k) matrices."""
        out, s = [], 0
        for lam, p, nl in zip(self.layout.lambdas(theta), self.sizes, self.nlevels):
            out.append(u[s:s + p * nl].reshape(nl, p) @ lam.T)
            s += p * nl
        return out

    def _blocks(self, theta, beta, u, joint):
        return self._run(G.state_blocks, sum_blocks, beta, self.b_levels(theta, u), joint)

    def _workspace(self, A):
        return PLSWorkspace.from_blocks(A, A.n, self.p, self.sizes, self.nlevels, reml=False,
                                        structures=self.structures)

    def _kernels(self, theta, cands, joint):
        """``(kernels, blocks at the first candidate or None)``: one pass."""
        return self._run(G.state_kernels, G.merge_kernels, [(b, self.b_levels(theta, u)) for b, u in cands], joint)

    def pirls(self, theta, beta=None, u0=None, joint=False, tol=None, maxit=100, maxhalf=20, refactor=True):
        """As :meth:`GlmmWorkspace.pirls` (deviance-change stopping rule): the same iterates, acceptance and
        stopping; a pass evaluates the steps 1, 1/2, 1/4, 1/8 at once and the blocks at the full step."""
        tol = self.tol if tol is None else tol
        theta = np.asarray(theta, float)
        u = np.zeros_like(self.u) if u0 is None else np.asarray(u0, float).copy()
        if joint:
            beta = self.beta.copy() if beta is None else np.asarray(beta, float).copy()
            if self.last is None and u0 is None:
                beta = None
        else:
            beta = np.asarray(beta, float)
        kern, pdev, A = np.nan, np.inf, None
        if beta is not None:
            kerns, A = self._kernels(theta, [(beta, u)], joint)
            kern = float(kerns[0])
            pdev = self.dev_const - 2.0 * kern + u @ u
        converged = False
        ws = None
        it = 0
        for it in range(1, maxit + 1):
            ws = self._workspace(A if A is not None else self._blocks(theta, beta, u, joint))
            if joint:
                ws.update(theta)
                if ws.objective_value >= FAILED_OBJECTIVE:
                    if beta is None:
                        raise FloatingPointError("the weighted least-squares system of the first PIRLS step could "
                                                 "not be factored: the working weights or response are not finite")
                    break
                beta_new, u_new = ws.beta(), ws.u()
            else:
                if not ws.factor_z(theta):
                    break
                v = np.concatenate([ws.AF0[-1], ws.AFr[-1]]) if ws.has_rest else ws.AF0[-1]
                beta_new, u_new = beta, ws.solve_u(v)
            if beta is None:            # first joint step from mustart: taken whole
                beta, u = beta_new, u_new
                kerns, A = self._kernels(theta, [(beta, u)], joint)
                kern = float(kerns[0])
                pdev = self.dev_const - 2.0 * kern + u @ u
                continue
            accepted, A = False, None
            j = 0
            while not accepted and j < maxhalf:
                steps = [0.5 ** i for i in range(j, min(j + 4, maxhalf))]
                cands = [(beta + s * (beta_new - beta) if joint else beta, u + s * (u_new - u)) for s in steps]
                kerns, A_full = self._kernels(theta, cands, joint)
                for i, ((b_t, u_t), k_t) in enumerate(zip(cands, kerns)):
                    pdev_t = self.dev_const - 2.0 * float(k_t) + u_t @ u_t
                    if np.isfinite(pdev_t) and pdev_t <= pdev + 1e-12 * abs(pdev):
                        accepted = True
                        A = A_full if (i == 0 and j == 0) else None
                        break
                j += len(steps)
            if not accepted:
                converged = True
                break
            change = pdev - pdev_t
            u, beta, pdev, kern = u_t, b_t, pdev_t, float(k_t)
            if change < tol * (abs(pdev) + 0.1):
                converged = True
                break
        if refactor:
            ws = self._workspace(A if A is not None else self._blocks(theta, beta, u, joint))
            if joint:
                ws.update(theta)
            else:
                ws.factor_z(theta)
        self.ws = ws
        self.u, self.beta = u, beta
        self.last = _Res(u, beta, pdev, kern, it, converged)
        return self.last

    def laplace(self, res: _Res) -> float:
        """-2 log L by the Laplace approximation (families without a dispersion)."""
        return float(-2.0 * (self.ll_const + res.kernel) + res.u @ res.u + self.ws.logdet_Z)

    def full_update(self, theta) -> None:
        """The complete factor at the current modes (``vcov_beta``)."""
        self.ws = self._workspace(self._blocks(theta, self.beta, self.u, True))
        self.ws.update(theta)


def _finite(v):
    return float(v) if np.isfinite(v) else FAILED_OBJECTIVE


def fit_remote(rp: RemotePirls, nagq: int, maxeval: int = 100_000, compute_vcov: bool = True):
    """The two BOBYQA stages of :func:`mixedfx.models.glmm._fit_glmm` on a :class:`RemotePirls` (internal units)."""
    layout = rp.layout
    k, p = layout.n_theta, rp.p
    lower_t = layout.lower_bounds()
    rp.tol = 1e-8
    errs = dict(over="ignore", divide="ignore", invalid="ignore")

    def stage1(theta):
        with np.errstate(**errs):
            r = rp.pirls(theta, joint=True, beta=None if rp.last is None else rp.beta,
                         u0=None if rp.last is None else rp.u)
            return _finite(rp.laplace(r))

    opt1 = bobyqa(stage1, layout.initial(), lower_t, maxeval=maxeval, step=0.75, ftol_rel=1e-8, ftol_abs=1e-6)
    rp.last = None
    stage1(opt1.x)
    phases = {"stage1": rp.passes}
    theta1, beta1 = opt1.x, rp.beta.copy()

    def stage2(x):
        with np.errstate(**errs):
            return _finite(rp.laplace(rp.pirls(x[:k], beta=x[k:], u0=rp.u)))

    if nagq == 0:
        opt, x_hat = opt1, np.concatenate([theta1, beta1])
    else:
        x0 = np.concatenate([theta1, beta1])
        if not np.all(np.isfinite(x0)) or stage2(x0) >= FAILED_OBJECTIVE:
            raise FloatingPointError("the model has no valid likelihood at its starting values")
        lower = np.concatenate([lower_t, np.full(p, -np.inf)])
        rp.full_update(theta1)
        se1 = np.sqrt(np.maximum(np.diag(rp.ws.vcov_beta(scale=rp.phi)), 1e-12))
        se1 = np.where(np.isfinite(se1), se1, 0.3 * np.maximum(np.abs(beta1), 1.0))
        steps = np.concatenate([np.full(k, 0.05), np.maximum(se1 / 3, 1e-4)])
        opt = bobyqa(stage2, x0, lower, maxeval=maxeval, step=steps, ftol_rel=1e-12, ftol_abs=1e-8)
        x_hat = opt.x
    theta, beta = x_hat[:k], x_hat[k:]
    rp.tol = 1e-10
    res = rp.pirls(theta, beta=beta, u0=rp.u)
    objective = rp.laplace(res)
    b = tuple(rp.ws.b_blocks(res.u))
    cond_var = tuple(rp.ws.cond_var_blocks(scale=1.0))
    deviance, extreme = rp._run(G.state_final, G.sum_arrays, beta, rp.b_levels(theta, res.u))
    phases["stage2"] = rp.passes - phases["stage1"]
    vcov, method = None, "pirls"
    if nagq >= 1 and compute_vcov:
        H = deriv12_hessian(stage2, x_hat)
        if np.all(np.isfinite(H)) and np.linalg.eigvalsh(H)[0] > 0:
            vcov, method = (2.0 * np.linalg.inv(H))[k:, k:], "hessian"
    if vcov is None:
        rp.pirls(theta, beta=beta, u0=res.u)
        rp.full_update(theta)
        vcov = rp.ws.vcov_beta(scale=1.0)
    phases["vcov"] = rp.passes - phases["stage1"] - phases["stage2"]
    return dict(opt1=opt1, opt=opt, theta=theta, beta=beta, objective=objective, b=b, cond_var=cond_var,
                deviance=float(deviance), extreme=int(extreme), vcov=vcov, vcov_method=method, res=res,
                singular=_singular(theta, lower_t), phases=phases)


def _glmm_frame(ddf, formula: str, family, weights):
    """``(ddf, formula, weights)`` with a ``cbind(s, f)`` response as a proportion column and trials (times
    ``weights``) as prior weights, as the in-memory design builds it."""
    f = parse_formula(formula)
    if not (isinstance(f.response, Call) and f.response.func == "cbind"):
        return ddf, formula, weights
    if getattr(family, "name", "") != "binomial":
        raise ValueError("cbind(successes, failures) is a binomial response; use family='binomial'")
    meta = ddf._meta.copy()
    meta[YCOL], meta[WCOL] = pd.Series(dtype=float), pd.Series(dtype=float)
    out = ddf.map_partitions(G.response_columns, formula, weights, YCOL, WCOL, meta=meta)
    return out, f"{YCOL} ~{formula.split('~', 1)[1]}", WCOL


def glmer_dask(formula: str, data, family="binomial", link=None, nagq: int = 1, weights: str | None = None,
               offset: str | None = None, start=None, data_name: str | None = None, split_every: int = 8,
               optimizer: str = "bobyqa", maxeval: int = 100_000, **control):
    """Fit a GLMM on a dask DataFrame (or a Parquet/CSV path or glob) as ``mfx.glmer(..., optimizer="bobyqa")``
    does on the concatenated data (see the module docstring for what version 1 covers)."""
    t0 = time.perf_counter()
    if optimizer not in ("bobyqa", "auto"):
        raise NotImplementedError(f"optimizer={optimizer!r}: on Dask data only 'bobyqa' is available yet (the "
                                  "analytic gradient needs the rows); fit in memory for L-BFGS")
    for bad, val in (("start", start), *control.items()):
        if val is not None and bad not in ("blas_threads",):
            raise NotImplementedError(f"{bad}= is not supported by glmer on Dask data yet; fit in memory")
    if nagq not in (0, 1):
        raise NotImplementedError("nagq > 1 (adaptive quadrature) on Dask data is not available yet; use nagq=1 "
                                  "or fit in memory")
    fam = get_family(family, link)
    if fam.has_dispersion:
        raise NotImplementedError(f"the {fam.name} family has a dispersion, which the Dask fit does not profile "
                                  "yet (binomial and Poisson are supported); fit in memory")
    ddf0 = read_frame(data)
    if data_name is None:
        data_name = os.fspath(data) if isinstance(data, (str, os.PathLike)) else None
    ddf, work_formula, wcol = _glmm_frame(ddf0, formula, fam, weights)
    parts = partitions(ddf)
    plan = P.survey_plan(work_formula, wcol, offset)
    survey = map_reduce(parts, P.partition_survey, P.merge_surveys, broadcast(plan), split_every=split_every)
    if survey is None:
        P.merge_surveys([])
    msg = P.missing_message(survey)
    if msg is not None:
        if work_formula != formula:     # name the cbind() response, not its helper columns
            msg = re.sub(rf",? ?'{WCOL}': \d+", "", msg.replace(f"'{YCOL}'", repr(formula.split("~", 1)[0].strip())))
        warnings.warn(msg, MissingDataWarning, stacklevel=3)
    spec = P.spec_from_survey(plan, survey)
    m = map_reduce(parts, P.partition_moments, P.merge_moments, broadcast(spec), wcol, split_every=split_every)
    if m is None:
        P.merge_moments([])
    spec, m = P.relearn_without_aliased(plan, survey, spec, m)
    P.check_partitioned_model(spec, m, wcol is not None)
    spec_b = broadcast(spec)
    g = P.needs_ones_check(m)
    if g is not None:
        r = map_reduce(parts, P.partition_ones_residual, max, spec_b, g, wcol, split_every=split_every)
        g = g if r < 1e-12 else None
    centre = None
    if spec.has_offset:
        centre = map_reduce(parts, G.offset_moments, G.merge_moments_list, spec_b, wcol, split_every=split_every)
    structures = P._structures(spec)
    scaling = standardize_from_moments(m.x, None, list(m.terms), None, scale_response=False, center=centre,
                                       term_kinds=[st.scaling for st in structures], ones=g)
    states = [dask.delayed(G.make_state, pure=True)(pt, spec_b, broadcast(scaling), wcol, fam, index=i,
                                                    total=len(parts)) for i, pt in enumerate(parts)]
    states = list(dask.persist(*states))
    sizes = [len(ls.names) for _, _, ls in spec.random]
    nlevels = [len(lv) for _, lv, _ in spec.random]
    layout = ThetaLayout(tuple(sizes), tuple(structures))
    t_fit = time.perf_counter()
    rp = RemotePirls(states, m.x.k, sizes, nlevels, structures, layout, split_every)
    out = fit_remote(rp, nagq, maxeval)
    fit_seconds = time.perf_counter() - t_fit
    for msg in out["opt1"].messages + out["opt"].messages:
        warnings.warn(msg, ConvergenceWarning, stacklevel=2)
    if not out["res"].converged:
        warnings.warn("PIRLS did not converge at the optimum", ConvergenceWarning, stacklevel=2)
    if out["singular"]:
        warnings.warn("boundary (singular) fit: a variance component is (nearly) zero; see is_singular",
                      SingularFitWarning, stacklevel=2)
    if out["extreme"] and fam.name == "binomial":
        warnings.warn(f"fitted probabilities numerically 0 or 1 in {out['extreme']} row(s): (quasi-)complete "
                      "separation", SeparationWarning, stacklevel=2)
    sc = scaling
    blocks = tuple(LoadedBlock(t, lv, tuple(ls.names), ls) for t, (_, lv, ls) in zip(_terms(spec), spec.random))
    design = LoadedDesign(m.x.n, survey.n_dropped, tuple(spec.fixed.names), blocks, spec)
    opt1, opt = out["opt1"], out["opt"]
    fit = DaskGlmmFit(design=design, reml=False, theta=sc.theta_to_user(out["theta"], layout),
                      beta=sc.beta_to_user(out["beta"]), sigma=1.0, vcov=sc.vcov_to_user(out["vcov"]),
                      b=tuple(sc.b_to_user(out["b"])), cond_var=tuple(sc.cond_var_to_user(out["cond_var"])),
                      objective=out["objective"], opt=opt, is_singular=out["singular"],
                      seconds=time.perf_counter() - t0, family=fam, nagq=int(nagq), phi=1.0,
                      deviance=out["deviance"], vcov_method=out["vcov_method"], opt_stage1=opt1,
                      extra={"weights": wcol, "passes": rp.passes, "pass_seconds": rp.pass_seconds,
                             "fit_seconds": fit_seconds, "partitions": len(parts),
                             "passes_by_phase": out["phases"],
                             "evaluations": (opt1.nfev, opt.nfev if opt is not opt1 else 0)})
    return DaskGeneralizedLinearMixedModelResult(fit, formula, data_name, ddf=ddf, ddf_user=ddf0)


@dataclass(frozen=True)
class DaskGlmmFit(LoadedFit):
    """The numbers of a GLMM fitted on Dask (user units; no rows).  ``extra['passes']``: map-reduces run."""

    def light(self) -> LoadedFit:
        return LoadedFit(**{f: getattr(self, f) for f in LoadedFit.__dataclass_fields__})


class DaskGeneralizedLinearMixedModelResult(GeneralizedLinearMixedModelResult):
    """A GLMM fitted on a dask DataFrame: the estimates, ``summary()`` (z tests), ``ranef``/``varcorr``;
    ``fitted()``, ``residuals()`` and ``predict()`` on the data are lazy dask Series."""

    def __init__(self, fit, formula, data_name=None, ddf=None, ddf_user=None):
        super().__init__(fit, formula, data_name)
        self._ddf, self._ddf_user = ddf, ddf_user

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_ddf"] = state["_ddf_user"] = None
        return state

    def _frame(self):
        if self._ddf is None:
            raise ValueError("this result has no dask frame (it was pickled); predict(newdata) works")
        return self._ddf

    def fitted(self):
        """Conditional means ``mu`` as a dask Series (complete rows, the data's index)."""
        return self.predict(type="response").rename("fitted")

    def residuals(self, type: str = "deviance", level: str = "conditional"):
        """Residuals as a dask Series (types and levels of the in-memory result: ``"deviance"``, ``"pearson"``,
        ``"response"``, ``"working"``; conditional or marginal)."""
        if level not in ("conditional", "marginal"):
            raise ValueError(f"level must be 'conditional' or 'marginal', got {level!r}")
        if type not in ("deviance", "pearson", "response", "working"):
            raise ValueError(f"type must be 'deviance', 'pearson', 'response' or 'working', got {type!r}")
        return self._frame().map_partitions(outputs.glmm_residual_partition, self.fit.light(),
                                            self.fit.extra["weights"], type, level,
                                            meta=pd.Series(dtype=float, name="residuals"))

    def _residual_array(self, type: str = "deviance", level: str = "conditional") -> np.ndarray:
        """One pass: the residuals on the client (summary's quantiles)."""
        return self.residuals(type, level).compute().to_numpy()

    def predict(self, newdata=None, type: str = "link", re_form=None, allow_new_levels: bool = False, **kwargs):
        """Predictions on the ``"link"`` or ``"response"`` scale: a dask Series for ``newdata=None`` (the fitted
        rows) or a dask frame; the in-memory result's array for a pandas frame."""
        if newdata is not None and not is_dask_frame(newdata):
            return super().predict(newdata, type=type, re_form=re_form, allow_new_levels=allow_new_levels, **kwargs)
        if kwargs.get("interval") is not None or kwargs.get("se_fit") or kwargs.get("marginal"):
            raise NotImplementedError("intervals, standard errors and marginal means on Dask data are not available "
                                      "yet; pass a pandas frame as newdata")
        if type not in ("link", "response"):
            raise ValueError(f"type must be 'link' or 'response', got {type!r}")
        meta = pd.Series(dtype=float, name="predict")
        if newdata is None and re_form is None:
            return self._frame().map_partitions(outputs.glmm_fitted_partition, self.fit.light(),
                                                self.fit.extra["weights"], type, meta=meta)
        frame = self._frame() if newdata is None else newdata
        return frame.map_partitions(outputs.glmm_predict_partition, self.fit.light(), re_form, allow_new_levels,
                                    type, meta=meta)

    def _no_rows(self, what):
        raise NotImplementedError(_NO_ROWS.format(what=what))

    def simulate(self, *a, **k):
        self._no_rows("simulate")

    def bootstrap(self, *a, **k):
        self._no_rows("bootstrap")

    def refit(self, *a, **k):
        self._no_rows("refit")
