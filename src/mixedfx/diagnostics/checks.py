"""``m.check()``: is the fit trustworthy?  Singular terms, convergence, scaling, identifiability, outliers.

* singular fit: per random term, variances estimated as zero (bounded theta below 1e-4, lme4's
  ``isSingular``) and correlations at +-1, named, with what to do;
* convergence (LMMs): the gradient of the criterion at the optimum by central differences,
  scaled by the inverse Hessian (lme4's ``max|H^{-1} g| < 0.002``).  Components sitting on their
  bound (a variance of 0) get a one-sided derivative and count only if moving inward would
  lower the criterion, which avoids lme4's false positives on boundary fits (lme4 #783);
* scaling: fixed-effect columns whose standard deviations differ by more than 1e3 (lme4's
  ``check.scaleX``);
* identifiability: the smallest eigenvalue of that Hessian below 1e-8 of the largest;
* outlying groups: standardized conditional modes ``b_j / sqrt(G_cc - Var(b_j | y))`` (the BLUP
  over the SD of its own distribution) beyond 3.  Dividing by the conditional SD instead would
  flag every well-measured group that differs from the mean (6 of 18 subjects in sleepstudy).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core.finite_diff import central_derivatives, gradient_hessian
from ..core.gradient import gradient_supported, profiled_gradient
from ..core.optimize import edge_probe

from ..models.lmm import SINGULAR_TOL

__all__ = ["CheckReport", "check"]


@dataclass(frozen=True)
class CheckReport:
    findings: pd.DataFrame     # columns: check, status ("ok" / "warning"), detail, advice

    @property
    def ok(self) -> bool:
        return bool((self.findings["status"] == "ok").all())

    def __str__(self) -> str:
        lines = []
        for _, r in self.findings.iterrows():
            mark = "ok " if r["status"] == "ok" else "!! "
            lines.append(f"{mark}{r['check']}: {r['detail']}" + (f"\n     -> {r['advice']}" if r["advice"] else ""))
        return "\n".join(lines)

    __repr__ = __str__


def _singular(result, rows):
    d, fit = result.fit.design, result.fit
    found = False
    # judged on the standardized problem, as is_singular: the verdict does not depend on units
    for blk, lam in zip(d.blocks, fit.layout.lambdas(fit.theta_internal)):
        cov = lam @ lam.T
        sd = np.sqrt(np.diag(cov))
        for c, cn in enumerate(blk.cnames):
            if lam[c, c] < SINGULAR_TOL:
                found = True
                if sd[c] < SINGULAR_TOL:
                    advice = (f"the groups of {blk.group_label} do not vary beyond the residual noise: drop the "
                              "term, or keep it knowing its variance is on the boundary" if blk.p == 1 else
                              f"the data do not support this variance: remove {cn} from the term, or keep it "
                              "knowing its estimate is on the boundary")
                    detail = f"the variance of {cn} in ({blk.term.text}) is estimated as zero"
                else:   # a zero Cholesky pivot with a nonzero variance: a rank-deficient covariance
                    detail = (f"the covariance of ({blk.term.text}) is singular: {cn} is (nearly) a linear "
                              "combination of the effects before it")
                    advice = (f"fewer effects in the term (drop {cn} or another), or uncorrelated effects "
                              f"(||), or keep it knowing the estimate is on the boundary")
                rows.append(("singular fit", "warning", detail, advice))
        for i in range(blk.p):
            for j in range(i):
                if sd[i] > 0 and sd[j] > 0 and abs(cov[i, j] / (sd[i] * sd[j])) > 0.999:
                    found = True
                    rows.append(("singular fit", "warning",
                                 f"the correlation of {blk.cnames[j]} and {blk.cnames[i]} in ({blk.term.text}) is "
                                 f"{cov[i, j] / (sd[i] * sd[j]):+.3f}",
                                 f"use uncorrelated effects ({' + '.join(blk.cnames)} || {blk.group_label}) or "
                                 "drop the slope"))
    if not found:
        rows.append(("singular fit", "ok", "no variance at zero, no correlation at +-1", ""))


def _convergence(result, rows):
    fit = result.fit
    if getattr(result, "family", None) is not None:
        rows.append(("convergence", "ok" if fit.opt.converged else "warning",
                     f"optimizer status: {fit.opt.status}", "" if fit.opt.converged else "refit with start=the result"))
        return
    layout = fit.layout
    k = layout.n_theta
    if getattr(fit, "residual", None) is not None:     # theta and the residual parameters, jointly optimized
        from ..models.residual_fit import whitened_criterion
        objective, ws = whitened_criterion(fit), None
        theta = np.concatenate([fit.internal.theta, fit.residual.par])
        lower = np.concatenate([layout.lower_bounds(), np.full(len(fit.residual.par), -np.inf)])
    else:
        ws = fit.fresh_workspace().internal      # the standardized problem the optimizer solved
        objective = ws.objective
        theta = fit.internal.theta.copy()
        lower = ws.layout.lower_bounds()
    h = 1e-5 * np.maximum(np.abs(theta), 1.0)
    on_bound = np.isfinite(lower) & (theta - lower < SINGULAR_TOL)
    free = np.flatnonzero(~on_bound)
    f0 = objective(theta)
    issues = []
    # the boundary faces: finite steps inward from each bounded component on its bound, on both sides of
    # the fold (the column of lambda negated): a zero gradient there does not make it an optimum
    x_try, f_try, _ = edge_probe(objective, np.where(on_bound, lower, theta), f0, lower,
                                 flip=lambda x, j: np.concatenate([layout.flip_column(x[:k], j), x[k:]]))
    if f_try < f0 - 1e-6 * max(1.0, abs(f0)):
        j = int(np.flatnonzero(x_try != np.where(on_bound, lower, theta))[0]) if np.any(on_bound) else 0
        issues.append(f"a lower criterion (by {f0 - f_try:.3g}) lies off the boundary face at theta[{j}]")
    msg_extra = ""
    if len(free):
        def on_free(z):
            t = theta.copy()
            t[free] = z
            return objective(t)
        if ws is not None and gradient_supported(ws):      # analytic gradient; Hessian from its differences
            g, H = _gradient_and_hessian(ws, theta, free, h)
        else:
            g, H = central_derivatives(on_free, theta[free], h[free], f0)
        eig = np.linalg.eigvalsh(H)
        if eig[0] <= 1e-8 * max(eig[-1], 1e-300):
            rows.append(("identifiability", "warning",
                         f"the criterion is flat in some direction of theta (Hessian eigenvalues {eig[0]:.2g} .. "
                         f"{eig[-1]:.2g})", "simplify the random effects; some variance parameters are not identified"))
        else:
            rows.append(("identifiability", "ok", f"Hessian of the criterion positive definite "
                                                  f"(condition {eig[-1] / eig[0]:.3g})", ""))
            scaled = float(np.max(np.abs(np.linalg.solve(H, g))))
            msg_extra = f"; scaled gradient {scaled:.2g}"
            if scaled > 2e-3:
                issues.append(f"scaled gradient {scaled:.2g} exceeds 0.002")
    if not fit.opt.converged:
        issues.append(f"optimizer status: {fit.opt.status}")
    rows.append(("convergence", "warning" if issues else "ok",
                 "; ".join(issues) if issues else f"optimum reached ({fit.opt.nfev} evaluations{msg_extra})",
                 "refit with start=result.fit.theta, or rescale predictors" if issues else ""))


def _gradient_and_hessian(ws, theta, free, h):
    def grad(z):
        t = theta.copy()
        t[free] = z
        ws.update(t)
        return profiled_gradient(ws)[free]
    g = grad(theta[free])
    H = gradient_hessian(grad, theta[free], h[free])[0]
    ws.update(theta)
    return g, H


def _scaling(result, rows):
    d = result.fit.design
    cols = [j for j, n in enumerate(d.xnames) if n != "(Intercept)" and np.ptp(d.X[:, j]) > 0]
    if len(cols) < 2:
        rows.append(("predictor scaling", "ok", "fewer than two non-constant fixed-effect columns", ""))
        return
    sd = d.X[:, cols].std(axis=0)
    ratio = float(sd.max() / sd.min())
    if ratio > 1e3:
        big, small = d.xnames[cols[int(np.argmax(sd))]], d.xnames[cols[int(np.argmin(sd))]]
        rows.append(("predictor scaling", "warning",
                     f"fixed-effect columns differ in scale by {ratio:.3g}x ({big} vs {small})",
                     "the fit does not depend on it (it is computed on standardized copies), but coefficients "
                     "on comparable scales are easier to read: consider scale(x) in the formula"))
    else:
        rows.append(("predictor scaling", "ok", f"column scales within {ratio:.3g}x", ""))


def _outliers(result, rows):
    fit = result.fit
    frames = []
    for k, (blk, lam) in enumerate(zip(fit.design.blocks, fit.layout.lambdas(fit.theta))):
        G = result._scale ** 2 * lam @ lam.T
        for c, cn in enumerate(blk.cnames):
            spread = np.sqrt(np.maximum(G[c, c] - fit.cond_var[k][:, c, c], 0.0))
            z = np.divide(fit.b[k][:, c], spread, out=np.zeros(blk.nlevels), where=spread > 0)
            frames.append(pd.DataFrame({"grpvar": blk.group_label, "term": cn, "grp": list(blk.levels), "z": z}))
    re = pd.concat(frames, ignore_index=True)
    out = re[np.abs(re["z"]) > 3]
    if len(out):
        listing = ", ".join(f"{r.grpvar}={r.grp} ({r.term}, z={r.z:+.1f})" for r in out.head(5).itertuples())
        rows.append(("outlying groups", "warning", f"{len(out)} standardized conditional mode(s) beyond 3: "
                                                   f"{listing}", "look at these groups' data"))
    else:
        rows.append(("outlying groups", "ok", "all standardized conditional modes within 3", ""))


def check(result) -> CheckReport:
    rows: list = []
    _singular(result, rows)
    _convergence(result, rows)
    _scaling(result, rows)
    _outliers(result, rows)
    return CheckReport(pd.DataFrame(rows, columns=["check", "status", "detail", "advice"]))
