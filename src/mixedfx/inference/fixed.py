"""Tests and intervals for LMM fixed effects: coefficient table, type III F tests, Wald intervals.

``ddf``: ``"satterthwaite"`` (lmerTest's default), ``"kenward-roger"`` (pbkrtest's adjusted
covariance and df, :mod:`mixedfx.inference.kenward_roger`; REML fits), ``"residual"`` (``n - p``),
``"none"`` (z / chi-square tests).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .satterthwaite import VarparFunctions, satterthwaite_df_multi, varpar_covariance, vcov_jacobian
from .terms import type3_contrasts

__all__ = ["coef_table", "anova_type3", "confint"]

_DDF = ("satterthwaite", "residual", "none", "kenward-roger")


def _check_ddf(ddf: str) -> str:
    key = str(ddf).lower().replace("_", "-")
    if key in ("kr", "kenward-roger"):
        return "kenward-roger"
    if key not in _DDF:
        raise ValueError(f"ddf must be one of {', '.join(_DDF)}, got {ddf!r}")
    return key


def _ingredients(result):
    """Satterthwaite pieces, computed once per result on the Varpar functions' own workspace."""
    cache = result.__dict__.setdefault("_ddf_cache", {})
    if "A" not in cache:
        vf = VarparFunctions(result.fit)
        cache["A"] = varpar_covariance(vf)
        cache["jac"] = vcov_jacobian(vf)
        cache["B"], cache["V"] = vf.B, vf.V      # not vf itself: it holds an n-sized workspace
    return cache["A"], cache["jac"], cache["B"], cache["V"]


def _kr(result):
    """The Kenward-Roger pieces, computed once per result."""
    cache = result.__dict__.setdefault("_ddf_cache", {})
    if "kr" not in cache:
        if not result.reml:
            raise ValueError("Kenward-Roger is defined for REML fits (pbkrtest refits ML fits by REML); "
                             "refit with reml=True or use ddf='satterthwaite'")
        from .kenward_roger import KenwardRoger
        cache["kr"] = KenwardRoger(result.fit)
    return cache["kr"]


def _df(result, L, ddf):
    if ddf == "none":
        return np.inf
    if ddf == "residual":
        return float(result.nobs - len(result.fixef))
    A, jac, B, V = _ingredients(result)
    Lint = np.asarray(L, float) @ B         # the same contrast of the standardized beta (up to a scale)
    return satterthwaite_df_multi(Lint, V, jac, A)


def coef_table(result, ddf: str = "satterthwaite") -> pd.DataFrame:
    """Estimate, SE, df, t and two-sided p per fixed effect (``p`` from the t distribution)."""
    ddf = _check_ddf(ddf)
    beta, V = result.fit.beta, result.fit.vcov
    p = len(beta)
    if ddf == "kenward-roger":                     # adjusted SE and KR df, as lmerTest's summary
        kr = _kr(result)
        se = np.sqrt(np.diag(kr.Phi_A))
        df = np.array([kr.ddf(np.eye(p)[j]) for j in range(p)])
    else:
        se = np.sqrt(np.diag(V))
        df = np.array([_df(result, np.eye(p)[j], ddf) for j in range(p)])
    t = beta / se
    pval = 2 * stats.t.sf(np.abs(t), df)
    out = pd.DataFrame({"estimate": beta, "se": se, "df": df, "statistic": t, "p": pval},
                       index=list(result.fixef.index))
    out.attrs["statistic"] = "z" if ddf == "none" else "t"
    return out


def anova_type3(result, ddf: str = "satterthwaite") -> pd.DataFrame:
    """Type III F tests, one row per fixed-effect term (lmerTest's ``anova``).

    ``L`` is lmerTest's type III contrast (:func:`mixedfx.inference.terms.type3_contrasts`):
    ``F = (L beta)' (L V L')^{-1} (L beta) / q`` on ``q`` and the Satterthwaite
    (Fai-Cornelius) denominator df.  With ``ddf="kenward-roger"``, ``F`` is pbkrtest's scaled
    statistic ``lambda (L beta)' (L Phi_A L')^{-1} (L beta) / q`` on the KR df.
    """
    ddf = _check_ddf(ddf)
    beta, V = result.fit.beta, result.fit.vcov
    rows = {}
    for term, L in type3_contrasts(result.fit.design).items():
        q = L.shape[0]
        if ddf == "kenward-roger":
            F, q, den, _ = _kr(result).ftest(L)
        else:
            Lb = L @ beta
            F = float(Lb @ np.linalg.solve(L @ V @ L.T, Lb) / q)
            den = _df(result, L, ddf)
        pval = stats.f.sf(F, q, den) if np.isfinite(den) else stats.chi2.sf(F * q, q)
        rows[term] = {"F": F, "numdf": q, "dendf": den, "p": pval}
    return pd.DataFrame.from_dict(rows, orient="index", columns=["F", "numdf", "dendf", "p"])


def confint(result, method: str = "wald", level: float = 0.95, parm=None, nsim: int = 500,
            seed=None, n_jobs: int = 1) -> pd.DataFrame:
    """Confidence intervals indexed by lme4's parameter names.

    ``method="wald"``: ``estimate +- z se`` for the fixed effects (as lme4's ``confint(method =
    "Wald")``, which gives no Wald interval for variance parameters).  ``method="profile"``:
    likelihood-profile intervals for every parameter (:mod:`mixedfx.inference.profile`).
    ``method="boot"``: parametric-bootstrap percentile intervals (``nsim`` replicates, LMMs and
    GLMMs, as lme4's ``bootMer``; ``n_jobs`` worker processes).
    """
    method = str(method).lower()
    if not 0 < level < 1:
        raise ValueError("level must be between 0 and 1")
    if method == "boot":
        from .bootstrap import boot_confint
        out = boot_confint(result, level=level, nsim=nsim, seed=seed, n_jobs=n_jobs)
    elif method == "profile":
        from .profile import profile_confint
        return profile_confint(result, level=level, parm=parm)
    elif method == "wald":
        z = stats.norm.ppf(0.5 + level / 2)
        est, se = result.fixef, result.se
        out = pd.DataFrame({"lower": est - z * se, "upper": est + z * se})
    else:
        raise ValueError(f"confint(method={method!r}): use 'wald', 'profile' or 'boot'")
    if parm is not None:
        missing = [q for q in np.atleast_1d(parm) if q not in out.index]
        if missing:
            raise KeyError(f"unknown parameter(s) {missing}; available: {list(out.index)}")
        out = out.loc[list(np.atleast_1d(parm))]
    return out
