"""Simulating responses from a fitted model (lme4's ``simulate.merMod``).

By default (``use_u=False``) every replicate draws new random effects ``b = Lambda u``,
``u ~ N(0, sigma^2 I)`` (LMM) or ``N(0, phi I)`` (GLMM), then the response given ``b``:
``y = X beta + Z b + offset + e`` with ``e ~ N(0, sigma^2 / w)`` for LMMs, or a draw from the
family at ``mu = g^{-1}(eta)`` for GLMMs (binomial with the prior weights as trials; for
``newdata`` the trials come from its ``cbind(successes, failures)`` or ``weights=`` column).
``use_u=True`` conditions on the fitted conditional modes instead.  With ``newdata``, rows at
levels unseen in fitting get new random effects even when ``use_u=True``.  ``params`` replaces
fixed effects, variance components or sigma (:mod:`mixedfx.inference.simulate_params`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..design.frames import as_pandas
from ..design.response import glmm_response
from ..formula.ast import Call, deparse, names_in
from .simulate_params import SimParams, resolve_params

__all__ = ["simulate", "simulate_array", "simulate_internal", "Simulator"]


def _random_parts(fit, newdata):
    d = fit.design
    if newdata is None:
        return [(b.codes, b.X) for b in d.blocks], d.X, (np.zeros(d.n) if d.offset is None else d.offset)
    spec = d.spec
    X = spec.fixed_matrix(newdata)
    off = spec.offset(newdata) if spec.has_offset else np.zeros(len(newdata))
    return spec.random_parts(newdata), X, off


class Simulator:
    """Draws responses for the fitted rows or ``newdata``, with the fitted or user-set parameters.

    The model matrices, level codes and weights are prepared once; :meth:`draw` makes one
    replicate from a numpy Generator (:func:`simulate_array` and :func:`mixedfx.power` use it).
    ``params``: None (the fit's parameters) or a dict / :class:`SimParams` (see
    :mod:`mixedfx.inference.simulate_params`).  ``weights``: prior weights (binomial trials) of
    the ``newdata`` rows (without it new rows have unit weights); ``offset``: their offset (without
    it, the formula's ``offset(...)`` terms).
    """

    def __init__(self, result, newdata: pd.DataFrame | None = None, use_u: bool = False, params=None,
                 weights=None, offset=None):
        fit = result.fit
        sp = None
        if params is not None:
            sp = params if isinstance(params, SimParams) else resolve_params(result, params)
            if use_u and sp.variance_changed:
                raise ValueError("use_u=True conditions on the fitted random effects; it cannot be combined with "
                                 "new variance components (theta, sd, corr or varcorr in params)")
        self.result, self.use_u, self.newdata = result, use_u, newdata
        self.color = None
        if getattr(fit, "residual", None) is not None:
            if newdata is not None:
                raise NotImplementedError("simulate(newdata=...) is not available with correlation= or disp= (the "
                                          "residual correlation of new rows is not defined); simulate the fitted rows")
            from ..models.residual_fit import residual_model
            rm, par = residual_model(fit.design), fit.residual.par
            w = fit.design.weights

            def color(z):                 # residuals with covariance sigma^2 W^-1/2 S R S W^-1/2
                e = rm.color(par, z)
                return e if w is None else e / np.sqrt(w)
            self.color = color
        if newdata is not None and offset is None and getattr(fit.design.spec, "offset_array", False):
            raise ValueError("simulate(newdata=...): this model's offset was given as an array (offset=<array>), "
                             "which newdata cannot supply; refit with offset='column' or the offset in the "
                             "formula, e.g. 'y ~ x + offset(log_exposure) + (1 | g)', and put that column in newdata")
        parts, X, off = _random_parts(fit, newdata)
        if offset is not None:
            off = np.asarray(offset, float)
        self.n = X.shape[0]
        # b = scale * lambda u: sigma (LMM), sqrt(phi) (GLMM), 1 (glmmTMB-style); user-set: absolute factors
        self.scale = result._scale if sp is None else 1.0
        self.lams = fit.layout.lambdas(fit.theta) if sp is None else sp.factors
        self.eta_fixed = X @ (fit.beta if sp is None else sp.beta) + off
        self.sigma = result.sigma if sp is None else sp.sigma
        family = getattr(result, "family", None)
        self.phi = None if family is None or sp is None or not getattr(family, "has_dispersion", False) \
            else sp.sigma ** 2
        if weights is not None:
            self.weights = np.asarray(weights, float)
        else:
            self.weights = fit.design.weights if newdata is None else _new_trials(result, newdata)
        # codes per term with every unseen level of newdata numbered after the fitted ones
        self.coded = []
        for k, (codes, Zk) in enumerate(parts):
            nl = fit.b[k].shape[0]
            codes = codes.copy()
            if newdata is not None and np.any(codes < 0):
                cols = list(fit.design.blocks[k].term.group)
                labels = newdata.loc[codes < 0, cols].astype(str).agg(":".join, axis=1).to_numpy()
                _, new = np.unique(labels, return_inverse=True)
                codes[codes < 0] = nl + new
            self.coded.append((codes, Zk, int(codes.max()) + 1 if len(codes) else nl))

    def draw(self, rng) -> np.ndarray:
        """One simulated response vector."""
        fit = self.result.fit
        eta = self.eta_fixed.copy()
        for k, ((codes, Zk, total), lam) in enumerate(zip(self.coded, self.lams)):
            nl, p = fit.b[k].shape
            table = self.scale * rng.standard_normal((max(total, nl), p)) @ lam.T
            if self.use_u:
                table[:nl] = fit.b[k]          # fitted modes for seen levels, new draws for the rest
            eta += np.einsum("ij,ij->i", Zk, table[codes])
        if self.color is not None:
            return eta + self.sigma * self.color(rng.standard_normal(self.n))
        return _draw_response(self.result, eta, rng, self.newdata, self.sigma, self.phi, self.weights)


def _new_trials(result, newdata: pd.DataFrame):
    """Binomial numbers of trials of the ``newdata`` rows: from ``cbind(successes, failures)`` or the
    ``weights=`` column when newdata has them; None (one trial) when the fit had one trial per row;
    otherwise a clear error (simulating one trial per row would be silently wrong)."""
    family = getattr(result, "family", None)
    if getattr(family, "name", None) != "binomial" or getattr(result, "draw_response", None) is not None:
        return None
    design = result.fit.design
    fitted = design.weights
    response = design.spec.formula.response
    if isinstance(response, Call) and response.func == "cbind":
        cols = sorted({n for a in response.args for n in names_in(a.value)})
        missing = [c for c in cols if c not in newdata.columns]
        if missing:
            raise ValueError(f"simulate(newdata=...): the binomial numbers of trials come from the response "
                             f"{deparse(response)}; newdata lacks column(s) {', '.join(map(repr, missing))}")
        try:
            return glmm_response(response, newdata, design.spec.state, True)[1]
        except ValueError as exc:            # DesignError: missing or impossible counts
            raise ValueError(f"simulate(newdata=...): the binomial numbers of trials come from the response "
                             f"{deparse(response)}, evaluated on newdata: {str(exc).splitlines()[0]}") from None
    origin = getattr(result, "_origin", None)
    wcol = (origin[2] or {}).get("weights") if origin is not None else None
    if isinstance(wcol, str) and wcol in newdata.columns:
        return newdata[wcol].to_numpy(dtype=float)
    if fitted is None or np.all(np.asarray(fitted) == 1):
        return None
    raise ValueError("simulate(newdata=...): this binomial model has numbers of trials (weights=) that newdata does "
                     "not carry; give them as a column of newdata named as in weights='...', or fit with "
                     "cbind(successes, failures)")


def simulate_array(result, nsim: int = 1, seed=None, newdata: pd.DataFrame | None = None,
                   use_u: bool = False, params=None) -> np.ndarray:
    """Simulated responses as an (n, nsim) array (see module docstring); ``params``: user-set
    parameters (:mod:`mixedfx.inference.simulate_params`)."""
    if newdata is not None:
        newdata = as_pandas(newdata, "newdata")
    sim = Simulator(result, newdata, use_u, params)
    rng = np.random.default_rng(seed)
    out = np.empty((sim.n, nsim))
    for s in range(nsim):
        out[:, s] = sim.draw(rng)
    return out


def simulate_internal(result, nsim: int = 1, seed=None, use_u: bool = False) -> np.ndarray:
    """LMM responses for the fitted rows on the standardized scale (:mod:`mixedfx.core.scaling`).

    The same draws as :func:`simulate_array` (for a term whose columns are only rescaled, the
    same numbers up to the change of units), made where a response of 1e9 +- 1e-5 keeps its
    digits: ``y_int = X_int beta_int + Z_int b_int + e_int`` with the offset and centre removed.
    This is what a parametric bootstrap refits.
    """
    fit = result.fit
    ws = fit.fresh_workspace()      # its standardized X, Z and weights
    rng = np.random.default_rng(seed)
    inner = fit.internal
    lams = ws.layout.lambdas(inner.theta)
    eta_fixed = ws.X @ inner.beta
    w = ws.weights
    out = np.empty((ws.n, nsim))
    for s in range(nsim):
        eta = eta_fixed.copy()
        for k, ((codes, Zk, nl), lam) in enumerate(zip(ws.blocks, lams)):
            table = inner.sigma * rng.standard_normal((nl, lam.shape[0])) @ lam.T
            if use_u:
                table = inner.b[k]
            eta += np.einsum("ij,ij->i", Zk, table[codes])
        sd = inner.sigma / (np.sqrt(w) if w is not None else 1.0)
        out[:, s] = eta + sd * rng.standard_normal(len(eta))
    return out


def _draw_response(result, eta, rng, newdata, sigma, phi, w):
    draw = getattr(result, "draw_response", None)
    if draw is not None:             # models whose response distribution draws itself
        return draw(eta, rng, newdata)
    family = getattr(result, "family", None)
    if family is None:
        sd = sigma / (np.sqrt(w) if w is not None else 1.0)
        return eta + sd * rng.standard_normal(len(eta))
    return family.sample(family.link.inverse(eta), w, result.fit.phi if phi is None else phi, rng)


def simulate(result, nsim: int = 1, seed=None, newdata: pd.DataFrame | None = None,
             use_u: bool = False, params=None) -> pd.DataFrame:
    """Simulated responses, one column per replicate (``sim_1``, ...), as R's ``simulate``.

    ``params``: a dict replacing some parameters (lme4's ``newparams``, simr's ``fixef<-``,
    ``VarCorr<-``, ``sigma<-``): ``beta`` (dict by coefficient name, or a full vector),
    ``sigma``, and variance components as ``sd``/``corr``, ``varcorr`` or ``theta``; see
    :mod:`mixedfx.inference.simulate_params`.
    """
    if int(nsim) < 1:
        raise ValueError("nsim must be a positive whole number")
    if newdata is not None:
        newdata = as_pandas(newdata, "newdata")   # once: its index labels the rows
    arr = simulate_array(result, int(nsim), seed, newdata, use_u, params)
    index = result.fit.design.row_index if newdata is None else newdata.index
    return pd.DataFrame(arr, index=index, columns=[f"sim_{i + 1}" for i in range(arr.shape[1])])
