"""Standard errors, confidence and prediction intervals for ``predict`` (LMMs, GLMMs, glmmTMB-style models).

For a row with fixed-effects vector ``x`` and random-effects rows ``z_k`` the prediction is
``eta = x'beta_hat + sum_{k in re_form} z_k'b_hat_k`` (unseen levels: ``b_hat = 0``).  Conditional
on the covariance parameters, three independent sources of error are added:

* terms kept by ``re_form`` at levels seen in fitting: the joint error of ``(beta_hat, b_hat - b)``,
  Henderson's ``C^{-1}`` (lme4's condVar), ``s v'A^{-1}v + r'V_beta r`` with ``v = Lambda'z``
  (:mod:`mixedfx.core.condvar`); with none of them this is ``x'V_beta x``;
* terms kept by ``re_form`` at unseen levels (``allow_new_levels=True``): ``z_k'G_k z_k``, the
  variance of a random effect the data say nothing about;
* ``interval="prediction"`` only: ``z_k'G_k z_k`` for the terms ``re_form`` leaves out (a new
  observation belongs to *some* group: its random effect is part of the error) and, for an LMM,
  the residual variance ``sigma^2``.

``se_fit`` is the square root of the sum that the interval uses (the confidence SE for
``interval="confidence"`` or ``se_fit=True`` alone, the prediction SE for
``interval="prediction"``); limits are ``fit -/+ z_{(1+level)/2} se_fit`` (normal plug-in
intervals: the uncertainty of theta and sigma is not included).  GLMMs are computed on the
link scale; on the response scale the limits are the inverse link of the link-scale limits and
``se_fit`` is the delta-method SE ``|dmu/deta| se_link``.  GLMM ``W`` are the working weights of
the converged PIRLS fit, the dispersion ``phi`` plays the role of ``sigma^2`` and ``V_beta`` is
the reported ``vcov()`` (so population-level SEs equal ``sqrt(x'vcov x)``).
"""
from __future__ import annotations

import weakref

import numpy as np
import pandas as pd
from scipy import stats

from ..core.condvar import ConditionalCovariance, new_level_variance
from ..design.frames import as_pandas
from ..formula.ast import names_in
from .predict import _complete_rows, predict_eta, select_terms

__all__ = ["INTERVALS", "check_interval_args", "interval_frame"]

INTERVALS = (None, "confidence", "prediction")

_CACHE: dict = {}


def check_interval_args(interval, level) -> None:
    """Clear errors for ``interval`` and ``level``."""
    if interval not in INTERVALS:
        raise ValueError(f"interval must be None, 'confidence' or 'prediction', got {interval!r}")
    if isinstance(level, bool) or not isinstance(level, (int, float, np.floating)) or not 0 < level < 1:
        raise ValueError(f"level must be a number in (0, 1), e.g. 0.95; got {level!r}")


class _Units:
    """The numbers one fit's variances are computed from (internal units for an LMM, user units otherwise).

    ``fixed(X)`` and ``term(k, Xk)`` map model matrices to those units, ``lambdas`` and ``scale``
    give ``G_k = scale lam_k lam_k'``, ``vbeta`` the fixed effects' covariance and ``factor`` the
    variance multiplier back to the user's units; ``weights()`` the Henderson weights of the fitted rows.
    """

    def __init__(self, result, kind: str):
        fit = self.fit = result.fit
        self.kind = kind
        internal = getattr(fit, "internal", None) if kind == "lmm" else None
        if internal is not None:
            sc = self._sc = fit.scaling
            self.lambdas = fit.layout.lambdas(internal.theta)
            self.scale = float(internal.sigma) ** 2
            self.vbeta = np.asarray(internal.vcov, float)
            self.factor = float(sc.y_scale) ** 2
        else:
            self._sc = None
            self.lambdas = fit.layout.lambdas(fit.theta)
            self.scale = float(result._scale) ** 2
            self.vbeta = np.asarray(fit.vcov, float)
            self.factor = 1.0

    def fixed(self, X):
        return X if self._sc is None else self._sc.fixed(X)

    def term(self, k, Xk):
        return Xk if self._sc is None else self._sc.term(k, Xk)

    def weights(self):
        fit = self.fit
        w = fit.design.weights
        if self.kind == "lmm":
            return w if self._sc is None else self._sc.weights(w)
        fam, eta, mu = fit.family, np.asarray(fit.eta, float), np.asarray(fit.mu, float)
        prior = np.ones(len(eta)) if w is None else np.asarray(w, float)
        return prior * fam.link.mu_eta(eta) ** 2 / fam.variance(mu)


def _conditional_covariance(units: _Units) -> ConditionalCovariance:
    """Henderson's factorization for the fitted rows, built once per fit."""
    fit = units.fit
    key = id(fit)
    hit = _CACHE.get(key)
    if hit is not None and hit[0]() is fit:
        return hit[1]
    d = fit.design
    try:
        X, blocks, weights = d.X, [(b.codes, b.X, b.nlevels) for b in d.blocks], units.weights()
    except AttributeError:
        raise ValueError("se_fit and intervals at groups seen in fitting need the fitted data (the conditional "
                         "covariance of their random effects), which a loaded result does not keep: refit the "
                         "model, or predict at the population level (re_form='~0') or at new levels") from None
    cc = ConditionalCovariance(units.fixed(X), [(c, units.term(k, Xk), nl) for k, (c, Xk, nl) in enumerate(blocks)],
                               weights, units.lambdas, units.scale, units.vbeta)
    _CACHE[key] = (weakref.ref(fit), cc)
    weakref.finalize(fit, _CACHE.pop, key, None)
    return cc


def _rows(fit, newdata, terms, others, need_others: bool):
    """``(index, ok, X, parts, excluded)`` for the rows to predict: ``parts`` per kept term
    ``(k, codes, Xk)``, ``excluded`` per left-out term ``(k, Xk)`` (only when ``need_others``)."""
    d = fit.design
    if newdata is None:
        try:
            X = d.X
            parts = [(k, d.blocks[k].codes, d.blocks[k].X) for k in terms]
            excluded = [(k, d.blocks[k].X) for k in others] if need_others else []
        except AttributeError:
            raise ValueError("a loaded result has no fitted rows: give newdata") from None
        index = getattr(d, "row_index", None)
        if index is None or len(index) != len(X):
            index = pd.RangeIndex(len(X))
        return index, np.ones(len(X), bool), X, parts, excluded
    data = as_pandas(newdata, "newdata")
    ok = _complete_rows(fit, data, terms)
    sub = data.loc[ok]
    spec = d.spec
    X = spec.fixed_matrix(sub)
    parts = [(k, c, Xk) for k, (c, Xk) in zip(terms, spec.random_parts(sub, which=set(terms)))] if terms else []
    excluded = []
    if need_others and others:
        # a left-out term needs its columns (z), not its levels: any placeholder will do; rows missing
        # a z variable get NaN (no prediction interval) instead of failing the whole call
        have = _lhs_complete(spec, sub, others)
        filled = sub.loc[have].copy()
        for k in others:
            for g in d.blocks[k].term.group:
                if g not in filled.columns:
                    filled[g] = "<new level>"
        for k, (_, Xk) in zip(others, spec.random_parts(filled, which=set(others))):
            full = np.full((len(sub), Xk.shape[1]), np.nan)
            full[have] = Xk
            excluded.append((k, full))
    return data.index, ok, X, parts, excluded


def _lhs_complete(spec, data: pd.DataFrame, terms) -> np.ndarray:
    """Rows of ``data`` with every variable of the random terms' left-hand sides present (a missing
    column is left to the design's error)."""
    names = {n for k in terms for t in spec.random[k][2].termlist.terms for a in t
             for n in names_in(spec.formula.atoms[a])}
    cols = [c for c in names if c in data.columns]
    return data[cols].notna().all(axis=1).to_numpy() if cols else np.ones(len(data), bool)


def interval_frame(result, newdata=None, re_form=None, allow_new_levels: bool = False, interval=None,
                   level: float = 0.95, kind: str = "lmm", type: str = "link") -> pd.DataFrame:
    """``fit, se_fit`` (and ``lower, upper`` with ``interval``) on newdata's index; see the module.

    ``kind``: ``"lmm"``, ``"glmm"`` or ``"extended"`` (glmmTMB-style: population level and new
    levels only, link scale).  ``type``: ``"link"`` or ``"response"`` (GLMMs).
    """
    check_interval_args(interval, level)
    fit = result.fit
    prediction = interval == "prediction"
    _refuse(result, kind, type, prediction)
    eta = predict_eta(fit, newdata, re_form, allow_new_levels)      # errors for unseen levels
    terms = select_terms(fit, re_form)
    others = [k for k in range(len(fit.design.blocks)) if k not in terms]
    index, ok, X, parts, excluded = _rows(fit, newdata, terms, others, prediction)
    units = _Units(result, kind)
    Xu = units.fixed(np.asarray(X, float))
    known = [(k, c, units.term(k, Xk)) for k, c, Xk in parts]
    if any(np.any(np.asarray(c) >= 0) for _, c, _ in known):
        if kind == "extended":
            raise NotImplementedError(
                "se_fit and intervals at groups seen in fitting are not available for glmmTMB-style models (they need "
                "the joint covariance of the fixed and random effects, which these fits do not compute); available: "
                "re_form='~0' (population level, from the conditional block of vcov_all) and new levels "
                "(allow_new_levels=True: adds z'Gz), on the link scale")
        var = units.factor * _conditional_covariance(units).variance(Xu, known)
    else:
        var = units.factor * np.einsum("ij,jk,ik->i", Xu, units.vbeta, Xu)
    for k, codes, Zk in known:
        new = np.asarray(codes) < 0
        if new.any():
            var[new] += units.factor * new_level_variance(Zk[new], units.lambdas[k], units.scale)
    if prediction:
        for k, Xk in excluded:
            var += units.factor * new_level_variance(units.term(k, np.asarray(Xk, float)), units.lambdas[k],
                                                     units.scale)
        var += _residual_variance(result, kind)
    se = np.full(len(eta), np.nan)
    se[ok] = np.sqrt(np.maximum(var, 0.0))
    out = {"fit": eta, "se_fit": se}
    if interval is not None:
        z = stats.norm.ppf(0.5 + level / 2)
        out["lower"], out["upper"] = eta - z * se, eta + z * se
    if type == "response":
        link = result.family.link if kind == "glmm" else result.link
        out["fit"] = link.inverse(eta)
        out["se_fit"] = np.abs(link.mu_eta(eta)) * se
        if interval is not None:
            a, b = link.inverse(out["lower"]), link.inverse(out["upper"])
            out["lower"], out["upper"] = np.fmin(a, b), np.fmax(a, b)
    return pd.DataFrame(out, index=index)


def _refuse(result, kind: str, type: str, prediction: bool) -> None:
    """Clear errors for the combinations that have no sound interval here."""
    fit = result.fit
    if kind == "lmm" and getattr(fit, "residual", None) is not None:
        raise NotImplementedError(
            "se_fit and intervals are not available for LMMs with correlation= or disp= (the conditional covariance "
            "of the random effects and the residual variance of a new row depend on the residual model); the point "
            "predictions, vcov() and ranef(cond_var=True) are available")
    if kind == "lmm" and prediction:
        w = getattr(fit.design, "weights", None)
        if w is not None and not np.allclose(np.asarray(w, float), 1.0):
            raise ValueError(
                "interval='prediction' for an LMM fitted with prior weights: a new row's residual variance is "
                "sigma^2 / w and newdata carries no weights. Use interval='confidence' (or se_fit=True) and add "
                "result.sigma**2 / w to se_fit**2 yourself")
    if kind == "extended" and type != "link":
        raise NotImplementedError(
            f"se_fit and intervals for glmmTMB-style models are available on the link scale only (type='link'), "
            f"not type={type!r}: the response-scale means involve the zero-inflation and dispersion parts")
    if kind in ("glmm", "extended") and prediction and type == "response":
        fam = result.family
        name = getattr(fam, "name", "")
        link = getattr(getattr(fam, "link", None), "name", "")
        if not (name == "gaussian" and link == "identity"):
            raise ValueError(
                f"interval='prediction' with type='response' is not defined for the {name} family: a new "
                "observation's response is not normal and a normal interval would not cover it as stated. "
                "Use type='link' (the interval for the linear predictor of a new observation's group, random "
                "effects included; its limits through the inverse link bound that group's mean) or simulate()")


def _residual_variance(result, kind: str) -> float:
    """Residual variance added to a prediction interval: sigma^2 (LMM), phi (gaussian GLMM on the identity
    link, where the link scale is the response scale), else 0 (the link scale has no residual)."""
    if kind == "lmm":
        return float(result.sigma) ** 2
    fam = result.family
    if kind == "glmm" and getattr(fam, "name", "") == "gaussian" and fam.link.name == "identity":
        return float(result.sigma) ** 2
    return 0.0
