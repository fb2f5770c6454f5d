"""User-set parameters for simulation (``simulate(params=...)``, :func:`mixedfx.power`).

``params`` is a dict with any of these keys (everything not given keeps the fitted value):

* ``"beta"``: fixed effects, a dict ``{R coefficient name: value}`` (partial) or a full
  vector in the order of ``fixef``.
* ``"sigma"``: the residual SD (LMM), or ``sqrt(phi)`` for GLMM families with a dispersion.
* variance components, in one of three ways:

  - ``"sd"`` / ``"corr"``: ``sd={"Subject": {"(Intercept)": 24, "Days": 6}}`` (a number for a
    term with one column: ``{"Subject": 24}``) and ``corr={"Subject": 0.1}`` (terms with two
    columns), ``{"Subject": {("(Intercept)", "Days"): 0.1}}`` or a full correlation matrix;
    groups are named as in ``varcorr`` (``Subject.1`` for a second term on ``Subject``, or the
    factor's name when the column names tell the terms apart);
  - ``"varcorr"``: a table like ``result.varcorr`` (``grp, var1, var2`` and ``sdcor`` and/or
    ``vcov``), e.g. an edited copy; a ``Residual`` row sets sigma;
  - ``"theta"``: lme4's relative covariance parameters, a full vector in lme4's order or a dict
    by theta name (``Subject.(Intercept)``...); the covariances are then ``sigma^2 Lambda Lambda'``
    with the (new) sigma.

As in simr, the variance components are absolute: changing only ``sigma`` keeps the random-effect
standard deviations (not theta).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..models.names import group_names

__all__ = ["SimParams", "resolve_params", "PARAM_KEYS"]

PARAM_KEYS = ("beta", "sigma", "sd", "corr", "varcorr", "theta")


@dataclass(frozen=True)
class SimParams:
    """Resolved parameters: ``beta`` (p,), absolute covariances per random-effects term (fitted term
    order), the residual SD (LMM) or ``sqrt(phi)`` (1 without a dispersion), and whether any variance
    component differs from the fit."""
    beta: np.ndarray
    covs: tuple
    sigma: float
    variance_changed: bool

    @property
    def factors(self) -> list[np.ndarray]:
        """``F_k`` with ``F_k F_k' = covs[k]`` (eigen-factors where a covariance is singular)."""
        out = []
        for G in self.covs:
            try:
                out.append(np.linalg.cholesky(G))
            except np.linalg.LinAlgError:
                w, V = np.linalg.eigh(G)
                out.append(V * np.sqrt(np.clip(w, 0.0, None)))
        return out


def _number(value, what: str, positive: bool = False, nonneg: bool = False) -> float:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if not ok or not np.isfinite(value) or (positive and value <= 0) or (nonneg and value < 0):
        need = "a positive" if positive else ("a non-negative" if nonneg else "a finite")
        raise ValueError(f"params: {what} must be {need} number, got {value!r}")
    return float(value)


def _listing(names) -> str:
    return ", ".join(repr(n) for n in names)


def _resolve_beta(value, names: list[str], beta: np.ndarray) -> np.ndarray:
    beta = np.array(beta, float)
    if isinstance(value, (dict, pd.Series)):
        for k, v in value.items():
            if k not in names:
                raise ValueError(f"params['beta']: {k!r} is not a fixed effect of the model; valid names: "
                                 f"{_listing(names)}")
            beta[names.index(k)] = _number(v, f"beta[{k!r}]")
        return beta
    if isinstance(value, str) or np.ndim(value) != 1:
        raise TypeError("params['beta'] must be a dict {coefficient name: value} or a vector of "
                        f"{len(names)} values ({_listing(names)})")
    arr = np.asarray(value)
    if len(arr) != len(names):
        raise ValueError(f"params['beta'] has {len(arr)} values; the model has {len(names)} fixed effects "
                         f"({_listing(names)})")
    return np.array([_number(v, f"beta[{n!r}]") for n, v in zip(names, arr)])


class _Terms:
    """Random-effects terms under their varcorr names, with lookups by name or factor."""

    def __init__(self, labels: list[str], cnames: list[tuple[str, ...]]):
        self.labels, self.cnames, self.names = labels, cnames, group_names(labels)

    def find(self, group, column, what: str) -> tuple[int, int]:
        """(term, column) for a group name and a column name."""
        exact = [k for k, n in enumerate(self.names) if n == group]
        cands = exact if any(column in self.cnames[k] for k in exact) else \
            (exact + [k for k, lab in enumerate(self.labels) if lab == group and k not in exact])
        if not cands:
            raise ValueError(f"params[{what!r}]: {group!r} is not a grouping factor of the model; valid groups: "
                             f"{_listing(dict.fromkeys(self.names))}")
        hits = [(k, self.cnames[k].index(column)) for k in cands if column in self.cnames[k]]
        if not hits:
            valid = [c for k in cands for c in self.cnames[k]]
            raise ValueError(f"params[{what!r}]: {column!r} is not a random effect of {group!r}; valid: "
                             f"{_listing(valid)}")
        if len(hits) > 1:
            raise ValueError(f"params[{what!r}]: {column!r} of {group!r} is in several terms; name the term "
                             f"as in varcorr ({_listing(self.names[k] for k, _ in hits)})")
        return hits[0]

    def single(self, group, what: str, p: int | None = None) -> int:
        """The one term of ``group`` (optionally with ``p`` columns) for a bare number."""
        cands = [k for k, n in enumerate(self.names) if n == group] or \
                [k for k, lab in enumerate(self.labels) if lab == group]
        if not cands:
            raise ValueError(f"params[{what!r}]: {group!r} is not a grouping factor of the model; valid groups: "
                             f"{_listing(dict.fromkeys(self.names))}")
        if len(cands) > 1:
            raise ValueError(f"params[{what!r}]: {group!r} has several terms; name one as in varcorr "
                             f"({_listing(self.names[k] for k in cands)})")
        return cands[0]


def _sd_corr(G: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sd = np.sqrt(np.clip(np.diag(G), 0.0, None))
    R = np.eye(len(sd))
    ok = sd > 0
    R[np.ix_(ok, ok)] = G[np.ix_(ok, ok)] / np.outer(sd[ok], sd[ok])
    np.fill_diagonal(R, 1.0)
    return sd, R


def _apply_sd(terms: _Terms, sds: list, value) -> None:
    if not isinstance(value, dict):
        raise TypeError("params['sd'] must be a dict {group: {column: sd}} (or {group: sd} for a term with "
                        "one column)")
    for group, entry in value.items():
        if isinstance(entry, dict):
            for col, v in entry.items():
                k, j = terms.find(group, col, "sd")
                sds[k][j] = _number(v, f"sd[{group!r}][{col!r}]", nonneg=True)
        else:
            k = terms.single(group, "sd")
            if len(terms.cnames[k]) != 1:
                raise ValueError(f"params['sd']: {group!r} has {len(terms.cnames[k])} random effects "
                                 f"({_listing(terms.cnames[k])}); give {{column: sd}} for it")
            sds[k][0] = _number(entry, f"sd[{group!r}]", nonneg=True)


def _apply_corr(terms: _Terms, corrs: list, value) -> None:
    if not isinstance(value, dict):
        raise TypeError("params['corr'] must be a dict {group: correlation} (terms with two columns), "
                        "{group: {(column1, column2): correlation}} or {group: correlation matrix}")
    for group, entry in value.items():
        if isinstance(entry, dict):
            for pair, v in entry.items():
                if not (isinstance(pair, tuple) and len(pair) == 2):
                    raise ValueError(f"params['corr'][{group!r}]: keys are pairs of column names such as "
                                     f"('(Intercept)', 'Days'), got {pair!r}")
                k, i = terms.find(group, pair[0], "corr")
                k2, j = terms.find(group, pair[1], "corr")
                if k2 != k or i == j:
                    raise ValueError(f"params['corr']: {pair!r} are not two columns of one term of {group!r}")
                r = _number(v, f"corr[{group!r}][{pair!r}]")
                if abs(r) > 1:
                    raise ValueError(f"params['corr']: correlations lie in [-1, 1], got {r!r} for {pair!r}")
                corrs[k][i, j] = corrs[k][j, i] = r
            continue
        k = terms.single(group, "corr")
        p = len(terms.cnames[k])
        if np.ndim(entry) == 0:
            if p != 2:
                raise ValueError(f"params['corr']: {group!r} has {p} random effects ({_listing(terms.cnames[k])}); "
                                 "a single number is a correlation of two; give {(column1, column2): r} or a matrix")
            r = _number(entry, f"corr[{group!r}]")
            if abs(r) > 1:
                raise ValueError(f"params['corr']: correlations lie in [-1, 1], got {r!r} for {group!r}")
            corrs[k][0, 1] = corrs[k][1, 0] = r
            continue
        R = np.asarray(entry.reindex(index=list(terms.cnames[k]), columns=list(terms.cnames[k])).to_numpy()
                       if isinstance(entry, pd.DataFrame) else entry, dtype=float)
        if R.shape != (p, p) or not np.all(np.isfinite(R)) or not np.allclose(R, R.T) \
                or not np.allclose(np.diag(R), 1.0) or np.any(np.abs(R) > 1):
            raise ValueError(f"params['corr'][{group!r}] must be a symmetric {p} x {p} correlation matrix "
                             f"(unit diagonal, entries in [-1, 1]) for {_listing(terms.cnames[k])}")
        corrs[k] = R.copy()


def _from_varcorr(frame, terms: _Terms, sds: list, corrs: list) -> float | None:
    """Apply a varcorr-style table; returns the residual SD of a ``Residual`` row (or None)."""
    if not isinstance(frame, pd.DataFrame) or not {"grp", "var1"} <= set(frame.columns) \
            or not ({"sdcor", "vcov"} & set(frame.columns)):
        raise TypeError("params['varcorr'] must be a DataFrame like result.varcorr (columns grp, var1, var2 and "
                        "sdcor and/or vcov)")
    has_sd, has_v = "sdcor" in frame.columns, "vcov" in frame.columns
    var2 = frame["var2"] if "var2" in frame.columns else pd.Series("", index=frame.index)
    sigma = None
    rows = []
    for i, (grp, v1, v2) in enumerate(zip(frame["grp"], frame["var1"], var2)):
        v2 = "" if v2 is None or (isinstance(v2, float) and np.isnan(v2)) else v2
        sdc = float(frame["sdcor"].iloc[i]) if has_sd else None
        vc = float(frame["vcov"].iloc[i]) if has_v else None
        rows.append((i, grp, v1, v2, sdc, vc))
    for i, grp, v1, v2, sdc, vc in rows:       # standard deviations first (covariances need them)
        if v2 != "":
            continue
        if vc is not None and (not np.isfinite(vc) or vc < 0):
            raise ValueError(f"params['varcorr'] row {i} ({grp} {v1}): a variance must be finite and >= 0")
        sd = sdc if sdc is not None else np.sqrt(vc)
        sd = _number(sd, f"varcorr row {i} ({grp} {v1}) sdcor", nonneg=True)
        if sdc is not None and vc is not None and not np.isclose(sdc ** 2, vc, rtol=1e-6, atol=1e-12):
            raise ValueError(f"params['varcorr'] row {i} ({grp} {v1}): vcov {vc:g} and sdcor {sdc:g} disagree "
                             "(vcov = sdcor^2); change one of them and drop the other column")
        if grp == "Residual":
            sigma = sd
            continue
        k, j = terms.find(grp, v1, "varcorr")
        sds[k][j] = sd
    for i, grp, v1, v2, sdc, vc in rows:
        if v2 == "":
            continue
        k, a = terms.find(grp, v1, "varcorr")
        k2, b = terms.find(grp, v2, "varcorr")
        if k2 != k:
            raise ValueError(f"params['varcorr'] row {i}: {v1!r} and {v2!r} are not in one term of {grp!r}")
        s = sds[k][a] * sds[k][b]
        r_from_v = vc / s if (vc is not None and s > 0) else None
        if sdc is not None and np.isfinite(sdc):
            r = sdc
            if r_from_v is not None and not np.isclose(r, r_from_v, rtol=1e-6, atol=1e-9):
                raise ValueError(f"params['varcorr'] row {i} ({grp} {v1} {v2}): vcov and sdcor disagree "
                                 "(sdcor is the correlation vcov / (sd1 sd2)); change one and drop the other column")
        elif r_from_v is not None:
            r = r_from_v
        else:
            continue                  # a zero standard deviation: the correlation does not matter
        r = _number(r, f"varcorr row {i} ({grp} {v1} {v2}) correlation")
        if abs(r) > 1 + 1e-12:
            raise ValueError(f"params['varcorr'] row {i} ({grp} {v1} {v2}): a correlation must lie in [-1, 1], "
                             f"got {r:g}")
        corrs[k][a, b] = corrs[k][b, a] = float(np.clip(r, -1, 1))
    return sigma


def _resolve_theta(value, result, layout) -> np.ndarray:
    names = list(result.theta.index)
    theta = np.array(result.fit.theta, float)
    if isinstance(value, (dict, pd.Series)):
        for k, v in value.items():
            if k not in names:
                raise ValueError(f"params['theta']: {k!r} is not a theta parameter; valid names: {_listing(names)}")
            theta[names.index(k)] = _number(v, f"theta[{k!r}]")
        return theta
    if isinstance(value, str) or np.ndim(value) != 1 or len(value) != layout.n_theta:
        raise ValueError(f"params['theta'] must be {layout.n_theta} values in lme4's order ({_listing(names)}) "
                         "or a dict by those names")
    return np.array([_number(v, f"theta[{n!r}]") for n, v in zip(names, value)])


def resolve_params(result, params) -> SimParams:
    """Check ``params`` (see the module docstring) against ``result`` and resolve every value."""
    fit = result.fit
    if hasattr(fit, "dist"):
        raise NotImplementedError("simulate(params=...) and power() are available for lmer and glmer models with "
                                  "lme4's families; for glmmTMB-style families refit with the parameters you want "
                                  "or simulate without params")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict with keys among {_listing(PARAM_KEYS)}, got {type(params).__name__}")
    bad = [k for k in params if k not in PARAM_KEYS]
    if bad:
        raise ValueError(f"params: unknown key(s) {_listing(bad)}; valid keys: {_listing(PARAM_KEYS)}")
    if "theta" in params and ({"sd", "corr", "varcorr"} & set(params)):
        raise ValueError("params: give the variance components either as theta or as sd/corr/varcorr, not both")
    if "varcorr" in params and ({"sd", "corr"} & set(params)):
        raise ValueError("params: give the variance components either as varcorr or as sd/corr, not both")
    family = getattr(result, "family", None)
    has_disp = family is None or bool(getattr(family, "has_dispersion", False))
    names = list(fit.design.xnames)
    beta = _resolve_beta(params["beta"], names, fit.beta) if "beta" in params else np.array(fit.beta, float)
    sigma0 = float(result.sigma) if has_disp else 1.0
    sigma = sigma0
    if "sigma" in params:
        if not has_disp:
            raise ValueError(f"params: the {family.name} family has no dispersion parameter, so sigma cannot be set")
        sigma = _number(params["sigma"], "sigma", positive=True)
    blocks = fit.design.blocks
    terms = _Terms([b.group_label for b in blocks], [tuple(b.cnames) for b in blocks])
    covs = [np.array(G, float) for G in result._term_covariances()]
    changed = False
    if "theta" in params:
        theta = _resolve_theta(params["theta"], result, fit.layout)
        scale = sigma if has_disp else 1.0
        covs = [scale ** 2 * lam @ lam.T for lam in fit.layout.lambdas(theta)]
        changed = True
    elif {"sd", "corr", "varcorr"} & set(params):
        parts = [_sd_corr(G) for G in covs]
        sds, corrs = [sd.copy() for sd, _ in parts], [R.copy() for _, R in parts]
        if "varcorr" in params:
            s = _from_varcorr(params["varcorr"], terms, sds, corrs)
            if s is not None and has_disp:
                if "sigma" in params and not np.isclose(s, sigma):
                    raise ValueError("params: sigma is given both as sigma= and in the Residual row of varcorr, "
                                     "with different values; give it once")
                sigma = s
        if "sd" in params:
            _apply_sd(terms, sds, params["sd"])
        if "corr" in params:
            _apply_corr(terms, corrs, params["corr"])
        covs = []
        for name, sd, R in zip(terms.names, sds, corrs):
            if np.linalg.eigvalsh(R).min() < -1e-10:
                raise ValueError(f"params: the correlations of {name!r} do not form a valid (positive "
                                 "semidefinite) correlation matrix")
            covs.append(R * np.outer(sd, sd))
        changed = True
    return SimParams(beta=beta, covs=tuple(covs), sigma=sigma, variance_changed=changed)
