"""Likelihood-ratio comparison of nested models (R's ``anova(m0, m1, ...)`` for merMod fits).

As lme4: REML fits are refitted by maximum likelihood before comparison (REML likelihoods of
models with different fixed effects are not comparable; lme4 refits even when the fixed
effects agree, and so do we, saying so), models are ordered by number of parameters, and
each row is tested against the previous one: ``Chisq = 2 (logLik_i - logLik_{i-1})`` on
``Df = npar_i - npar_{i-1}``.  ``boundary=True`` uses the 50:50 mixture of chi-square(Df - 1)
and chi-square(Df) for a test that puts one variance component on its boundary (Self and
Liang 1987): adding one random term, the p-value halves.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from ..models import fit_lmm
from .progress import progress_bar

__all__ = ["anova"]


class RefitNotice(UserWarning):
    """REML fits were refitted by ML for a likelihood-ratio test."""


def _is_lmm(m) -> bool:
    return getattr(m, "family", None) is None


def _ml(m):
    """The ML refit of a REML fit, as a result of the same class."""
    if _is_lmm(m) and m.reml:
        return type(m)(fit_lmm(m.fit.design, reml=False, warn=False), m.formula, m.data_name)
    return m


def _lrt_worker(s: int):
    """Bootstrap replicate ``s`` of the LRT: both models refitted by ML to the response simulated
    from the smaller one; ``(statistic or None, failure reason or None)``."""
    from dataclasses import replace

    from .bootstrap_glmm import failure_reason, refit_glmm
    from .parallel import STATE
    small, large, ys = STATE["small"], STATE["large"], STATE["Y"][:, s]
    if STATE["glmm"]:
        try:
            f0 = refit_glmm(small, replace(small.design, y=ys))
            f1 = refit_glmm(large, replace(large.design, y=ys))
        except (ArithmeticError, ValueError, np.linalg.LinAlgError, RuntimeError) as exc:
            return None, f"{type(exc).__name__}: {exc}"[:160]
        reason = failure_reason(f0) or failure_reason(f1)
        if reason:
            return None, reason
    else:
        f0 = fit_lmm(replace(small.design, y=ys), reml=False, start=small.theta, warn=False)
        f1 = fit_lmm(replace(large.design, y=ys), reml=False, start=large.theta, warn=False)
    return f0.objective - f1.objective, None


def _bootstrap_p(small, large, observed: float, nsim: int, seed, bar=None, n_jobs: int = 1) -> float:
    """Parametric-bootstrap p-value of the LRT (pbkrtest's PBmodcomp): simulate from the smaller
    (ML) model, refit both by ML, ``p = (1 + #{LRT* >= LRT}) / (nsim + 1)``.  For GLMMs refits
    that fail or do not converge are left out (``nsim`` is then the number kept; a warning
    gives the count)."""
    from .bootstrap_glmm import warn_failures
    from .parallel import replicate_map
    from .progress import _NoBar
    from .simulate import simulate_array
    Y = simulate_array(small, nsim, seed)
    state = {"small": small.fit, "large": large.fit, "Y": Y, "glmm": not _is_lmm(small)}
    out = replicate_map(_lrt_worker, state, nsim, n_jobs, bar if bar is not None else _NoBar())
    failed = {s: reason for s, (_, reason) in enumerate(out) if reason is not None}
    stats_ = np.array([lrt for lrt, _ in out if lrt is not None])
    warn_failures(failed, nsim, "bootstrap LRT refits", fate="were left out of the p-value")
    if not len(stats_):
        return np.nan
    exceed = int(np.sum(stats_ >= observed - 1e-10))
    return (1 + exceed) / (len(stats_) + 1)


def _check_bootstrap_models(models) -> None:
    """The bootstrap LRT refits lmer fits, or glmer fits of one family and link with the same weights."""
    if any(hasattr(m.fit, "dist") for m in models):
        raise NotImplementedError("the bootstrap LRT is available for lmer() and glmer() fits (lme4's families), "
                                  "not glmmTMB-style or ordinal models")
    kinds = {_is_lmm(m) for m in models}
    if len(kinds) > 1:
        raise ValueError("method='bootstrap' compares models of one kind: all lmer() or all glmer() fits")
    if kinds == {False}:
        fams = {(m.family.name, m.family.link.name) for m in models}
        if len(fams) > 1:
            raise ValueError(f"method='bootstrap' needs GLMMs of one family and link, got {sorted(fams)}")
        w = [m.fit.design.weights for m in models]
        if any((a is None) != (w[0] is None) or (a is not None and not np.allclose(a, w[0])) for a in w[1:]):
            raise ValueError("the GLMMs have different prior weights (binomial trials); method='bootstrap' needs "
                             "the same weights in every model")


def _labels(models, names, named: dict) -> tuple[list, list[str]]:
    """Models and their row labels: ``names=``, else keyword names, else each model's formula
    (repeated formulas get `` [2]``, `` [3]``... so that labels stay distinct)."""
    for key, m in named.items():
        if not hasattr(m, "fit"):
            raise TypeError(f"anova() got an unexpected keyword argument {key!r} (keyword arguments "
                            "other than the options name models: anova(small=m0, big=m1))")
    models = list(models) + list(named.values())
    if names is not None:
        names = [str(n) for n in names]
        if len(names) != len(models):
            raise ValueError(f"names= has {len(names)} label(s) for {len(models)} model(s)")
        return models, names
    labels = [str(getattr(m, "formula", f"m{i}")) for i, m in enumerate(models[:len(models) - len(named)])]
    labels += list(named)
    seen: dict = {}
    out = []
    for lab in labels:
        seen[lab] = seen.get(lab, 0) + 1
        out.append(lab if seen[lab] == 1 else f"{lab} [{seen[lab]}]")
    return models, out


def anova(*models, names=None, refit: bool = True, boundary: bool = False, method: str = "lrt",
          nsim: int = 1000, seed=None, progress=None, n_jobs: int = 1, **named) -> pd.DataFrame:
    """Likelihood-ratio tests between nested models.

    Returns a DataFrame indexed by model label with columns
    ``npar, AIC, BIC, logLik, deviance, Chisq, Df, p``.  Models passed as keywords are labelled
    by their keyword (``anova(small=m0, big=m1)``), positional ones by their formula (or by
    ``names=``).  ``method="bootstrap"`` replaces the chi-square p-values by
    parametric-bootstrap ones (``nsim`` simulations from the smaller model of each pair, both
    models refitted by ML; LMMs and GLMMs, ``n_jobs`` worker processes, the same p-values for any
    ``n_jobs``); ``progress`` shows a bar over those refits (``None``: after ~2 s in a terminal
    or notebook; see :mod:`mixedfx.inference.progress`).  GLMM refits that fail or do not
    converge are left out of the p-value with a ``RefitFailureWarning``; a pair of models with the
    same number of parameters (not nested) gets no p-value, with a warning.
    """
    if method not in ("lrt", "bootstrap"):
        raise ValueError(f"method must be 'lrt' or 'bootstrap', got {method!r}")
    if method == "bootstrap":
        from .parallel import check_count
        nsim = check_count(nsim)
    models, names = _labels(models, names, named)
    if len(models) < 2:
        raise ValueError("give at least two fitted models to compare")
    ys = [m.fit.design.y for m in models]
    if any(len(y) != len(ys[0]) or not np.allclose(y, ys[0]) for y in ys[1:]):
        raise ValueError("the models were not fitted to the same observations (check missing values and the response)")
    if refit and any(getattr(m, "reml", False) for m in models):
        warnings.warn("refitting model(s) with ML (instead of REML)", RefitNotice, stacklevel=2)
        models = [_ml(m) for m in models]
    elif any(getattr(m, "reml", False) for m in models):
        fixed = {tuple(m.fixef.index) for m in models}
        if len(fixed) > 1:
            raise ValueError("REML criteria of models with different fixed effects are not comparable; use refit=True")
    order = sorted(range(len(models)), key=lambda i: models[i].df)
    rows, prev = [], None
    for i in order:
        m = models[i]
        row = {"npar": m.df, "AIC": m.aic, "BIC": m.bic, "logLik": m.loglik, "deviance": -2 * m.loglik,
               "Chisq": np.nan, "Df": np.nan, "p": np.nan}
        if prev is not None:
            chisq = max(2 * (m.loglik - prev.loglik), 0.0)
            df = m.df - prev.df
            row["Chisq"], row["Df"] = chisq, df
            if df > 0:
                p = stats.chi2.sf(chisq, df)
                if boundary:
                    p = 0.5 * p + 0.5 * (stats.chi2.sf(chisq, df - 1) if df > 1 else float(chisq <= 0))
                row["p"] = p
        rows.append(row)
        prev = m
    table = pd.DataFrame(rows, index=[names[i] for i in order],
                         columns=["npar", "AIC", "BIC", "logLik", "deviance", "Chisq", "Df", "p"])
    if method == "bootstrap":
        _check_bootstrap_models(models)
        with progress_bar(nsim * (len(order) - 1), "bootstrap LRT", progress) as bar:
            for r in range(1, len(order)):
                if not table["Df"].iloc[r] > 0:     # equal parameter counts: not nested, no test (as lme4's NA)
                    warnings.warn(f"anova(method='bootstrap'): {table.index[r - 1]!r} and {table.index[r]!r} have the "
                                  "same number of parameters, so neither is nested in the other; no bootstrap p-value "
                                  "(compare non-nested models by AIC/BIC)", UserWarning, stacklevel=2)
                    bar.update(nsim)
                    continue
                small, large = _ml(models[order[r - 1]]), _ml(models[order[r]])
                table.iloc[r, table.columns.get_loc("p")] = _bootstrap_p(small, large, table["Chisq"].iloc[r],
                                                                         nsim, seed, bar, n_jobs)
    return table
