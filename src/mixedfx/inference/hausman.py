"""Random or fixed group effects? The Hausman test and Mundlak's test for a random-intercept LMM.

For ``y_ij = x_ij' beta + u_j + e_ij`` the random-effects (GLS) estimator -- the mixed model's
fixed effects -- is efficient when the group effects ``u_j`` are uncorrelated with the covariates,
and inconsistent otherwise; the fixed-effects (*within*) estimator, OLS on the group-demeaned data

.. math:: \\tilde y_{ij} = y_{ij} - \\bar y_j, \\quad \\tilde x_{ij} = x_{ij} - \\bar x_j, \\quad
   b_{FE} = (\\tilde X'\\tilde X)^{-1} \\tilde X'\\tilde y, \\quad
   V_{FE} = s^2 (\\tilde X'\\tilde X)^{-1}, \\quad
   s^2 = \\frac{\\lVert \\tilde y - \\tilde X b_{FE}\\rVert^2}{N - G - k},

is consistent either way (it is plm's ``"within"`` model, equivalently OLS with one dummy per
group).  Both estimate the coefficients of the ``k`` columns of ``X`` that vary within groups.
Hausman's statistic contrasts them, ``d = b_FE - b_RE``,

.. math:: H = d' (V_{FE} - V_{RE})^{+} d \\;\\sim\\; \\chi^2_{r}
   \\text{ under } H_0: \\operatorname{cov}(u_j, x_{ij}) = 0,

with the pseudo-inverse on the eigenvalues of ``V_FE - V_RE`` above ``tol`` times the largest and
``r`` their number.  (R's ``plm::phtest`` inverts the whole difference and its RE estimator is
plm's Swamy-Arora FGLS; ours is the fitted mixed model's REML/ML ``beta`` and ``vcov``.)  The two
variances use different estimates of ``sigma^2``, so ``V_FE - V_RE`` can have (small) negative
eigenvalues; their directions are dropped with a warning.

``method="mundlak"`` is the regression form (Mundlak 1978): refit the model with the group means
of the within-varying columns added, ``y = X beta + Xbar gamma + u + e``, and Wald-test
``gamma = 0`` (``gamma`` is the between minus the within effect, the *contextual* effect).  It needs
no variance difference and is always well defined.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import stats

from ..models import fit_lmm

__all__ = ["HausmanResult", "hausman"]

#: a column is "between-only" when its within-group sum of squares is below this fraction of its total
WITHIN_TOL = 1e-10


@dataclass(frozen=True, eq=False)
class HausmanResult:
    """Result of :func:`hausman`.

    Attributes
    ----------
    statistic, df, pvalue : the chi-square test.  method : ``"hausman"`` or ``"mundlak"``.
    group : the grouping factor.  coef_fe, coef_re : the within and the mixed-model coefficients of
    the within-varying columns (for ``"mundlak"``: ``coef_fe`` holds the between-minus-within
    contrasts ``gamma`` and ``coef_re`` the within coefficients of the augmented model).
    vcov_fe, vcov_re : their covariance matrices.  between_only : columns of ``X`` constant within
    groups (not contrasted).  sigma2_fe, df_resid : the within residual variance and its df.
    eigenvalues : of ``V_FE - V_RE`` (``"hausman"``).
    """
    statistic: float
    df: int
    pvalue: float
    method: str
    group: str
    coef_fe: pd.Series
    coef_re: pd.Series
    vcov_fe: pd.DataFrame = field(repr=False)
    vcov_re: pd.DataFrame = field(repr=False)
    between_only: tuple = ()
    sigma2_fe: float = float("nan")
    df_resid: int = 0
    eigenvalues: np.ndarray = field(default=None, repr=False)

    def table(self) -> pd.DataFrame:
        """Per covariate: the two estimates, their difference and its standard error."""
        if self.method == "mundlak":
            se = np.sqrt(np.diag(self.vcov_fe.to_numpy()))
            return pd.DataFrame({"within": self.coef_re.to_numpy(), "contextual": self.coef_fe.to_numpy(),
                                 "se": se, "z": self.coef_fe.to_numpy() / se}, index=self.coef_fe.index)
        vd = np.diag(self.vcov_fe.to_numpy() - self.vcov_re.to_numpy())
        se = np.where(vd > 0, np.sqrt(np.where(vd > 0, vd, 1.0)), np.nan)
        diff = self.coef_fe.to_numpy() - self.coef_re.to_numpy()
        return pd.DataFrame({"FE (within)": self.coef_fe.to_numpy(), "RE (mixed)": self.coef_re.to_numpy(),
                             "difference": diff, "se(diff)": se}, index=self.coef_fe.index)

    def summary(self) -> str:
        """A readable report: the test and the coefficient table."""
        if self.method == "mundlak":
            head = [f"Mundlak test (group means of the within-varying covariates added; H0: contextual "
                    f"effects = 0), group: {self.group}"]
        else:
            head = [f"Hausman test, fixed (within) vs random effects, group: {self.group}",
                    f"within residual variance {self.sigma2_fe:.6g} on {self.df_resid} df"]
        if self.between_only:
            head.append("not contrasted (constant within groups): " + ", ".join(self.between_only))
        head.append(f"chisq = {self.statistic:.4f}, df = {self.df}, p-value = {self.pvalue:.4g}")
        head.append("H0: the group effects are uncorrelated with the covariates (random effects consistent)")
        return "\n".join(head) + "\n\n" + self.table().to_string(float_format=lambda v: f"{v:.6g}")

    def __repr__(self) -> str:
        return self.summary()


def _check_model(m):
    fit = getattr(m, "fit", None)
    if fit is None or not hasattr(fit, "design"):
        raise TypeError(f"hausman(): m must be a fitted model from mixedfx.lmer(), got {type(m).__name__}")
    if getattr(m, "family", None) is not None or not hasattr(fit, "reml"):
        raise NotImplementedError("hausman(): m is a generalized (or non-Gaussian) mixed model; the Hausman test here "
                                  "is for linear mixed models (the fixed-effects counterpart of a GLMM is a "
                                  "conditional-likelihood model, not provided). Mundlak's approach works by hand: add "
                                  "the group means of the covariates (mfx.within_between) and test their coefficients")
    d = fit.design
    if getattr(d, "X", None) is None:
        raise ValueError("hausman(): m carries no data (a loaded fit?); refit it with mixedfx.lmer()")
    if getattr(fit, "residual", None) is not None or getattr(d, "residual", None) is not None:
        raise NotImplementedError("hausman(): m has a residual correlation/variance model (correlation= or disp=); "
                                  "the classic within estimator assumes i.i.d. errors")
    if getattr(d, "weights", None) is not None and not np.allclose(d.weights, 1.0):
        raise NotImplementedError("hausman(): m has prior weights (weights=); the classic within estimator is "
                                  "unweighted. Refit without weights= for this test, or keep the weights and compare "
                                  "the x_within and x_between terms of mfx.within_between() in the weighted model")
    return d


def _grouping(d, group):
    labels = list(dict.fromkeys(b.group_label for b in d.blocks))
    if group is None:
        if len(labels) != 1:
            raise ValueError(f"hausman(): the model has {len(labels)} grouping factors ({', '.join(labels)}); say "
                             f"which one the fixed effects are for: hausman(m, group={labels[0]!r})")
        group = labels[0]
    if group not in labels:
        raise ValueError(f"hausman(): group={group!r} is not a grouping factor of the model ({', '.join(labels)})")
    blocks = [b for b in d.blocks if b.group_label == group]
    slopes = [c for b in blocks for c in b.cnames if c != "(Intercept)"]
    if slopes or not any("(Intercept)" in b.cnames for b in blocks):
        raise ValueError(f"hausman(): the model has random slopes for {group} ({', '.join(slopes) or 'no intercept'}); "
                         "the within estimator only removes group intercepts, so the classic Hausman contrast does not "
                         f"apply. Test the random-intercept model (... + (1 | {group})), or compare within and between "
                         "effects with mfx.within_between() (Mundlak)")
    if len(labels) > 1:
        warnings.warn(f"hausman(): the model has other grouping factors besides {group!r}; the within estimator's "
                      "classic variance treats their effects as i.i.d. noise, so the test is approximate",
                      UserWarning, stacklevel=3)
    return group, np.asarray(blocks[0].codes)


def _group_means(A: np.ndarray, codes: np.ndarray, G: int) -> np.ndarray:
    counts = np.bincount(codes, minlength=G).astype(float)
    A2 = A.reshape(len(codes), -1)
    sums = np.stack([np.bincount(codes, weights=A2[:, j], minlength=G) for j in range(A2.shape[1])], axis=1)
    return (sums / counts[:, None])[codes].reshape(A.shape)


def _within_columns(X, names, codes, G):
    Xw = X - _group_means(X, codes, G)
    total = ((X - X.mean(axis=0)) ** 2).sum(axis=0)
    within = (Xw ** 2).sum(axis=0)
    varying = (total > 0) & (within > WITHIN_TOL * np.where(total > 0, total, 1.0))
    if not varying.any():
        raise ValueError(f"hausman(): no fixed-effects column varies within the groups ({', '.join(names)} are all "
                         "constant within each group): the fixed-effects (within) estimator has nothing to estimate")
    return Xw, varying


def hausman(m, group: str | None = None, method: str = "hausman", tol: float = 1e-6) -> HausmanResult:
    """Hausman test of random against fixed group effects for a random-intercept LMM.

    Parameters
    ----------
    m : a linear mixed model from :func:`mixedfx.lmer` whose random effects for ``group`` are an
        intercept only (``(1 | g)``; REML or ML).
    group : the grouping factor; needed when the model has several (the other terms stay in the
        random-effects fit, but the within estimator's variance ignores them: approximate).
    method : ``"hausman"`` (the contrast of the within estimator and the mixed model's estimates)
        or ``"mundlak"`` (refit with the group means of the within-varying columns added and
        Wald-test their coefficients, the contextual effects, jointly against 0).
    tol : eigenvalues of ``V_FE - V_RE`` at or below ``tol`` times the largest are treated as 0
        (the test is refused when the largest is at or below ``tol`` times the largest variance in
        ``V_FE``, or when the estimates differ by at most 1e-8 standard errors: the two estimators
        then coincide, e.g. in a balanced design).

    Returns
    -------
    :class:`HausmanResult` (``statistic``, ``df``, ``pvalue``, ``coef_fe``, ``coef_re``,
    ``table()``, ``summary()``).  A small p-value says the group effects are correlated with the
    covariates: the mixed model's (between-contaminated) estimates are biased, prefer the within
    effects (e.g. the ``x_within`` terms of :func:`mixedfx.within_between`).
    """
    if method not in ("hausman", "mundlak"):
        raise ValueError(f"method must be 'hausman' or 'mundlak', got {method!r}")
    d = _check_model(m)
    group, codes = _grouping(d, group)
    G = int(codes.max()) + 1
    X = np.asarray(d.X, dtype=float)
    names = list(d.xnames)
    Xw, varying = _within_columns(X, names, codes, G)
    wnames = [c for c, v in zip(names, varying) if v]
    between_only = tuple(c for c, v in zip(names, varying) if not v)
    if method == "mundlak":
        return _mundlak(m, d, X, varying, codes, G, group, wnames, between_only)
    y = np.asarray(d.y, dtype=float) - (0.0 if d.offset is None else d.offset)
    yw = y - _group_means(y, codes, G)
    A = Xw[:, varying]
    N, k = A.shape
    df_resid = N - G - k
    if np.linalg.matrix_rank(A) < k:
        raise ValueError(f"hausman(): the within-group parts of {', '.join(wnames)} are collinear; the within "
                         "estimator is not identified (drop a redundant covariate)")
    if df_resid <= 0:
        raise ValueError(f"hausman(): N - groups - k = {N} - {G} - {k} <= 0 residual degrees of freedom for the "
                         "within estimator")
    b_fe, *_ = np.linalg.lstsq(A, yw, rcond=None)
    rss = float(((yw - A @ b_fe) ** 2).sum())
    s2 = rss / df_resid
    V_fe = s2 * np.linalg.inv(A.T @ A)
    idx = np.flatnonzero(varying)
    b_re = np.asarray(m.fit.beta)[idx]
    V_re = np.asarray(m.fit.vcov)[np.ix_(idx, idx)]
    diff = b_fe - b_re
    Vd = V_fe - V_re
    w, v = np.linalg.eigh(0.5 * (Vd + Vd.T))
    top = w.max()
    if top <= 0:
        raise ValueError("hausman(): V_FE - V_RE has no positive eigenvalue (the mixed model's estimates are not more "
                         "precise than the within ones); use method='mundlak'")
    scale = float(np.max(np.diag(V_fe)))
    if top <= tol * scale or np.all(np.abs(diff) <= 1e-8 * np.sqrt(np.diag(V_fe))):
        raise ValueError(f"hausman(): the estimates differ by {np.max(np.abs(diff)):.3g} and V_FE - V_RE by at most "
                         f"{top:.3g} (within variances up to {scale:.3g}): the within and mixed-model estimates of "
                         f"{', '.join(wnames)} coincide (e.g. every group has the same covariate values, as in a "
                         "balanced design), so the contrast carries no information and there is nothing to test")
    keep = w > tol * top
    neg = w[w < -tol * top]
    if neg.size:
        warnings.warn(f"hausman(): V_FE - V_RE is not positive semi-definite (eigenvalue(s) {neg} against largest "
                      f"{top:.3g}); those directions are left out of the test (df {keep.sum()} instead of {k}). "
                      "method='mundlak' avoids the variance difference", UserWarning, stacklevel=2)
    proj = v[:, keep].T @ diff
    H = float(np.sum(proj ** 2 / w[keep]))
    df = int(keep.sum())
    return HausmanResult(statistic=H, df=df, pvalue=float(stats.chi2.sf(H, df)), method="hausman", group=group,
                         coef_fe=pd.Series(b_fe, index=wnames, name="FE"),
                         coef_re=pd.Series(b_re, index=wnames, name="RE"),
                         vcov_fe=pd.DataFrame(V_fe, index=wnames, columns=wnames),
                         vcov_re=pd.DataFrame(V_re, index=wnames, columns=wnames),
                         between_only=between_only, sigma2_fe=s2, df_resid=df_resid, eigenvalues=w[::-1])


def _mundlak(m, d, X, varying, codes, G, group, wnames, between_only) -> HausmanResult:
    means = _group_means(X[:, varying], codes, G)
    Xa = np.hstack([X, means])
    if np.linalg.matrix_rank(Xa) < Xa.shape[1]:
        raise ValueError(f"hausman(method='mundlak'): the group means of {', '.join(wnames)} are collinear with the "
                         "other fixed effects (e.g. a balanced covariate whose group means are all equal); use "
                         "method='hausman' or drop that covariate from the contrast")
    mnames = [f"{c}_between" for c in wnames]
    design = replace(d, X=Xa, xnames=tuple(d.xnames) + tuple(mnames))
    fit = fit_lmm(design, reml=m.fit.reml, start=m.fit.theta, warn=False)
    k = len(wnames)
    p = X.shape[1]
    gamma = fit.beta[p:]
    Vg = fit.vcov[p:, p:]
    W = float(gamma @ np.linalg.solve(Vg, gamma))
    idx = np.flatnonzero(varying)
    return HausmanResult(statistic=W, df=k, pvalue=float(stats.chi2.sf(W, k)), method="mundlak", group=group,
                         coef_fe=pd.Series(gamma, index=wnames, name="contextual"),
                         coef_re=pd.Series(fit.beta[idx], index=wnames, name="within"),
                         vcov_fe=pd.DataFrame(Vg, index=wnames, columns=wnames),
                         vcov_re=pd.DataFrame(fit.vcov[np.ix_(idx, idx)], index=wnames, columns=wnames),
                         between_only=between_only)
