"""Estimated marginal means (least-squares means) of mixed models, as R's emmeans.

The *reference grid* is every combination of the model's predictor variables: each factor at its
levels (a factor named in ``at=`` at the levels given), each numeric covariate at its mean over
the rows used in the fit (or at the values given in ``at=``), except that a covariate with at most
two distinct values (a 0/1 indicator) is kept at those values, like a factor (emmeans' default
``cov.keep = "2"``).  Factors made in the formula
(``factor(temp)``, ``as.factor(x)``, ``ordered(x)``) are factors of the grid, with the levels of
the fit.  For grid row ``g`` the model's linear predictor is ``x_g' beta`` (``x_g`` the fixed-effects
row the formula gives for that row, plus any offset in the formula).  An estimated marginal mean
for a combination ``c`` of the ``specs`` (and ``by``) variables averages the grid rows with that
combination over the levels of every other variable:

    L_c = sum_g w_{c,g} x_g,     emmean_c = L_c' beta,     SE_c = sqrt(L_c' V L_c)

with ``w`` equal (``weights="equal"``), the data's frequencies of the combinations averaged over
(``"proportional"``, the same for every ``c``), the products of their marginal frequencies
(``"outer"``), the frequencies within ``c`` (``"cells"``) or equal over the non-empty cells
(``"flat"``), as emmeans.  ``V`` is ``vcov(beta)`` (Kenward-Roger: its adjusted ``Phi_A``) and the
df are Satterthwaite's or Kenward-Roger's for the row ``L_c`` (LMMs), ``inf`` (GLMMs: z) or the
residual df ``n - #parameters`` (glmmTMB-style fits, as glmmTMB's emmeans method).
For a GEE fit (``mfx.gee``, as emmeans' method for geepack's ``geeglm``) ``V`` is the chosen
covariance of the population-averaged coefficients (``vcov=``: the robust sandwich by default) and
the df are ``inf``.

Rows of a rank-deficient model that are not estimable (``L_c`` outside the row space of the
fit's full model matrix) give NaN.  The results and contrasts are :class:`EMMeans` objects
(:mod:`mixedfx.inference.emm_result`).
"""
from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import replace

import numpy as np
import pandas as pd

from ..design.columns import column_values, string_columns
from ..design.evaluate import factor_codes, level_labels
from ..design.frames import as_pandas
from ..formula.ast import Call, Name, names_in
from .emm_result import EMMeans, ModelInfo

__all__ = ["emmeans", "EMMeans"]

_FACTOR_FUNCS = ("factor", "as.factor", "ordered", "numFactor", "C")
_WEIGHTS = ("equal", "proportional", "outer", "cells", "flat")
_LMER_DF = {"satterthwaite": "satterthwaite", "kenward-roger": "kenward-roger", "kr": "kenward-roger",
            "asymptotic": "asymptotic", "none": "asymptotic", "z": "asymptotic"}


# ------------------------------------------------------------------ the model
class _ConstantDF:
    """The same df for every row ``L`` (a module-level class, so that results pickle)."""

    def __init__(self, value: float):
        self.value = value

    def __call__(self, L) -> float:
        return self.value


class _SatterthwaiteDF:
    """Satterthwaite's df of the row ``L`` of an LMM."""

    def __init__(self, result):
        self.result = result

    def __call__(self, L) -> float:
        from .fixed import _df
        return _df(self.result, L, "satterthwaite")


#: emmeans' ``vcov.method`` names for geeglm (and our aliases) -> our GEE covariance types
_GEE_VCOV = {"vbeta": "robust", "robust": "robust", "san.se": "robust", "sandwich": "robust",
             "vbeta.naiv": "naive", "naive": "naive", "model": "naive", "model-based": "naive",
             "mancl-derouen": "mancl-derouen", "md": "mancl-derouen",
             "kauermann-carroll": "kauermann-carroll", "kc": "kauermann-carroll"}
#: the message "Covariance estimate used: ..." (emmeans' names where it has the covariance)
_GEE_VCOV_LABEL = {"robust": "vbeta", "naive": "vbeta.naiv"}


def _is_gee(result) -> bool:
    """A :class:`~mixedfx.results.gee_result.GEEResult` (duck-typed: results import inference)."""
    m = getattr(result, "_m", None)
    return m is not None and hasattr(m, "solution") and hasattr(m, "spec") and callable(getattr(result, "vcov", None))


def _design(result):
    return result._m.design if _is_gee(result) else result.fit.design


def _gee_info(result, lmer_df, vcov) -> ModelInfo:
    """Coefficients, covariance (``vcov=``) and z df of a GEE fit (emmeans' ``emm_basis.geeglm``)."""
    if lmer_df is not None and _LMER_DF.get(str(lmer_df).lower().replace("_", "-")) != "asymptotic":
        raise ValueError(f"lmer_df={lmer_df!r} does not apply to a GEE fit: its means have asymptotic (z) df, as "
                         "emmeans' geeglm method; choose the covariance with vcov= instead")
    beta = np.asarray(result._m.solution.beta, float)
    p = len(beta)
    if vcov is None or isinstance(vcov, str):
        key = result.std_err if vcov is None else vcov.strip().lower()
        if key in ("vbeta.j1s", "vbeta.fij"):
            raise ValueError(f"vcov={vcov!r}: geepack's jackknife covariances are not available; for few clusters "
                             "use vcov='mancl-derouen' or 'kauermann-carroll' (bias-corrected sandwiches)")
        if key not in _GEE_VCOV:
            raise ValueError(f"vcov={vcov!r}: use 'robust' (the sandwich, emmeans' 'vbeta'; the default), 'naive' "
                             "('vbeta.naiv'), 'mancl-derouen' ('md'), 'kauermann-carroll' ('kc') or a "
                             f"{p} x {p} covariance matrix of the coefficients")
        kind = _GEE_VCOV[key]
        V = result.vcov(type=kind).to_numpy(float)
        label = _GEE_VCOV_LABEL.get(kind, kind)
    else:
        try:
            V = np.asarray(vcov.to_numpy() if hasattr(vcov, "to_numpy") else vcov, dtype=float)
        except (TypeError, ValueError):
            raise TypeError(f"vcov= must be a covariance type name or a {p} x {p} matrix, got "
                            f"{type(vcov).__name__}") from None
        if (V.shape != (p, p) or not np.all(np.isfinite(V))
                or not np.allclose(V, V.T, rtol=1e-8, atol=1e-14 * np.abs(V).max())):
            raise ValueError(f"vcov= as a matrix must be a finite symmetric {p} x {p} covariance of the "
                             f"coefficients ({', '.join(result._m.xnames)}), got shape {V.shape}")
        label = "user-supplied"
    family = result.family
    link = family.link
    mesg = (f"Covariance estimate used: {label}",)
    if link is None or link.name == "identity":
        return ModelInfo(beta, V, _ConstantDF(np.inf), None, None, "", "emmean", mesg)
    inv = "prob" if "binomial" in family.name else ("rate" if "poisson" in family.name else "response")
    return ModelInfo(beta, V, _ConstantDF(np.inf), None, link, link.name, inv, mesg)


def _model_info(result, lmer_df: str | None, vcov=None) -> ModelInfo:
    if _is_gee(result):
        return _gee_info(result, lmer_df, vcov)
    if vcov is not None:
        raise ValueError("vcov= chooses the covariance of a GEE fit (mfx.gee); an LMM's or GLMM's means use the "
                         "fit's own covariance (and, for LMMs, lmer_df=)")
    fit = getattr(result, "fit", None)
    design = getattr(fit, "design", None)
    if design is None or not hasattr(fit, "beta"):
        raise TypeError(f"emmeans() takes a fitted mixedfx model (lmer/glmer), got {type(result).__name__}")
    if hasattr(result, "thresholds") or type(result).__name__.startswith("Ordinal"):
        raise NotImplementedError("emmeans() for cumulative-link (clmm) models is not available")
    beta = np.asarray(fit.beta, float)
    key = str(lmer_df).lower().replace("_", "-")
    if key not in _LMER_DF:
        raise ValueError(f"lmer_df={lmer_df!r}: use 'satterthwaite', 'kenward-roger' or 'asymptotic'")
    key = _LMER_DF[key]
    family = getattr(result, "family", None)
    if family is None:                                   # an LMM
        from .fixed import _kr
        V = np.asarray(fit.vcov, float)
        if key == "kenward-roger":
            try:
                kr = _kr(result)
            except ValueError:
                raise ValueError("lmer_df='kenward-roger' is defined for REML fits (pbkrtest refits ML fits by "
                                 "REML); refit with reml=True or use lmer_df='satterthwaite'") from None
            V = np.asarray(kr.Phi_A, float)
            dff = kr.ddf
        elif key == "satterthwaite":
            dff = _SatterthwaiteDF(result)
        else:
            dff = _ConstantDF(np.inf)
        return ModelInfo(beta, V, dff, key, None, "", "emmean")
    if hasattr(result, "fixef_zi"):                      # glmmTMB-style: conditional model
        link = result.link
        fam_name = getattr(family, "name", "")
        n_par = len(getattr(fit, "names_all", beta)) + len(np.atleast_1d(getattr(fit, "theta", [])))
        dff = _ConstantDF(float(result.nobs - n_par))
        V = np.asarray(fit.vcov, float)[:len(beta), :len(beta)]
    else:
        link = family.link
        fam_name = family.name
        dff = _ConstantDF(np.inf)
        V = np.asarray(fit.vcov, float)
    if link is None or link.name == "identity":
        return ModelInfo(beta, V, dff, None, None, "", "emmean")
    inv = "prob" if "binomial" in fam_name else ("rate" if "poisson" in fam_name else "response")
    return ModelInfo(beta, V, dff, None, link, link.name, inv)


def _training_data(result, data) -> pd.DataFrame:
    gee = _is_gee(result)
    if data is None:
        origin = getattr(result, "_origin", None)
        data = origin[1] if origin is not None else getattr(result, "_data", None)
    if data is None:
        if gee:
            raise ValueError("emmeans() of a GEE fit needs the data it was fitted to (the GEE result keeps no "
                             "reference to them): pass data=..., e.g. mfx.emmeans(g, 'x', data=df)")
        raise ValueError("emmeans(): this model has no reference to its data (it was loaded, unpickled or made "
                         "directly); pass the data it was fitted to as data=...")
    data = string_columns(as_pandas(data, "data"))
    if gee:
        # the rows used: positions in the data gee() was given (labels row_labels); the same frame is
        # recognised by its labels at those positions, another one is matched by label below
        rows, pos = result._m.row_labels, np.asarray(result._m.design.row_index, dtype=np.int64)
        if len(pos) and pos.max() < len(data) and data.index[pos].equals(rows):
            return data.iloc[pos]
    else:
        rows = result.fit.design.row_index
    if not data.index.is_unique:
        raise ValueError("emmeans(): the data's index has duplicate labels, so the rows used in the fit cannot be "
                         "found; pass data=... with a unique index (e.g. data.reset_index(drop=True))")
    pos = data.index.get_indexer(rows)
    if (pos < 0).any() or len(pos) != len(rows):
        raise ValueError("emmeans(): the data do not contain the rows the model was fitted to; pass the data frame "
                         "the model was fitted to as data=...")
    return data.iloc[pos]


# ------------------------------------------------------------------ the grid
def _grid_variables(spec) -> tuple[list[str], set[str]]:
    """Variables of the fixed effects and formula offsets (formula order), and those used as factors."""
    atoms = [spec.formula.atoms[a] for t in spec.fixed.termlist.terms for a in t] + list(spec.formula.offsets)
    names: list[str] = []
    forced: set[str] = set()
    for node in atoms:
        for v in names_in(node):
            if v not in names:
                names.append(v)
        if isinstance(node, Call) and node.func in _FACTOR_FUNCS and node.args and isinstance(node.args[0].value, Name):
            forced.add(node.args[0].value.id)
    order = {v: i for i, v in enumerate(spec.formula.variables)}
    names.sort(key=lambda v: order.get(v, len(order)))
    return names, forced


def _known_levels(spec, var: str):
    if var in spec.state.levels:
        return spec.state.levels[var]
    for lab, node in spec.formula.atoms.items():
        if (isinstance(node, Call) and node.func in _FACTOR_FUNCS and node.args
                and isinstance(node.args[0].value, Name) and node.args[0].value.id == var):
            if lab in spec.state.levels:
                return spec.state.levels[lab]
    return None


class _Var:
    """One variable of the grid: its values (as the data hold them), display labels and training codes.

    A numeric covariate with at most two distinct values in the rows used (a 0/1 indicator) is kept
    at those values, as a factor of the grid (emmeans' default ``cov.keep = "2"``); ``at=`` makes
    it an ordinary covariate again.
    """

    def __init__(self, name: str, train: pd.Series, is_factor: bool, known):
        self.name = name
        self.is_factor = is_factor
        self.kept = False
        self.at = False
        if is_factor:
            vals = column_values(train, name, as_factor=True)
            codes, labels = factor_codes(vals, name)
            if known is not None and set(labels) <= set(known):
                order = [labels.index(lab) for lab in known if lab in labels]
                remap = np.empty(len(labels), int)
                remap[order] = np.arange(len(order))
                codes, labels = remap[codes], [labels[i] for i in order]
            first = np.array([np.flatnonzero(codes == j)[0] for j in range(len(labels))])
            self.values = train.iloc[first].reset_index(drop=True)   # keeps the column's dtype
            self.labels = list(labels)
            self.codes = codes
        else:
            x = np.asarray(column_values(train, name), dtype=float)
            u, codes = np.unique(x, return_inverse=True)
            if len(u) <= 2:
                self.is_factor = self.kept = True
                self.values = pd.Series(u)
                self.labels = [float(v) for v in u]
                self.codes = codes.reshape(-1)
            else:
                self.values = pd.Series([float(np.mean(x))])
                self.labels = [float(np.mean(x))]
                self.codes = np.zeros(len(train), int)

    def restrict(self, values) -> None:
        vals = list(np.atleast_1d(np.asarray(values, dtype=object)))
        if not vals:
            raise ValueError(f"at={{{self.name!r}: ...}} is empty")
        self.at = True
        if self.kept:                                    # a kept covariate at the given values
            self.is_factor = self.kept = False
            self.codes = np.zeros(len(self.codes), int)
        if not self.is_factor:
            try:
                x = np.array([float(v) for v in vals])
            except (TypeError, ValueError):
                raise ValueError(f"at={{{self.name!r}: {vals!r}}}: {self.name!r} is a numeric covariate; give "
                                 "numbers") from None
            if not np.all(np.isfinite(x)):
                raise ValueError(f"at={{{self.name!r}: {vals!r}}}: the values of a covariate must be finite numbers "
                                 "(no NaN or inf)")
            self.values = pd.Series(x)
            self.labels = list(x)
            return
        want = level_labels(vals)
        bad = [w for w in want if w not in self.labels]
        if bad:
            raise ValueError(f"at={{{self.name!r}: ...}}: {', '.join(map(repr, bad))} not among the levels of "
                             f"{self.name!r} ({', '.join(self.labels)})")
        idx = [self.labels.index(w) for w in dict.fromkeys(want)]
        keep = np.full(len(self.labels), -1)
        keep[idx] = np.arange(len(idx))
        self.codes = keep[self.codes]                    # -1: rows at levels left out
        self.values = self.values.iloc[idx].reset_index(drop=True)
        self.labels = [self.labels[i] for i in idx]


def _parse_specs(specs, by):
    """``specs`` as a list of variable names, and ``by`` (a formula's ``| b`` adds to ``by``)."""
    if not (by is None or isinstance(by, str)
            or (isinstance(by, (list, tuple)) and all(isinstance(b, str) for b in by))):
        raise TypeError(f"by= must be a variable name or a list of names, got {by!r}")
    if not (isinstance(specs, str) or (isinstance(specs, (list, tuple)) and all(isinstance(v, str) for v in specs))):
        raise TypeError(f"specs must be a variable name, a list of names or a formula such as '~ a * b', got {specs!r}")
    by = [] if by is None else ([by] if isinstance(by, str) else list(by))
    if isinstance(specs, str):
        text = specs.strip()
        if "~" in text:
            lhs, text = text.split("~", 1)
            if lhs.strip():
                raise ValueError(f"specs={specs!r}: a contrast on the left of '~' is not supported; call "
                                 ".pairs() or .contrast() on the result")
        if "|" in text:
            text, b = text.split("|", 1)
            by += [v.strip() for v in b.replace("*", "+").replace(":", "+").split("+") if v.strip()]
        names = [v.strip() for v in text.replace("*", "+").replace(":", "+").split("+") if v.strip()]
    else:
        names = [str(v) for v in specs]
    if not names:
        raise ValueError("specs names no variable: give a factor name, a list of names or a formula '~ a * b'")
    names = list(dict.fromkeys(names))
    by = [b for b in dict.fromkeys(by) if b not in names]
    return names, by


def _averaging_weights(dims, facs, counts, weights: str) -> np.ndarray:
    """``W`` (combos x grid rows, rows summing to 1); grid rows in Fortran (first fastest) order."""
    sizes = [len(d) for d in dims]
    n = int(np.prod(sizes))
    grid_idx = np.array(list(itertools.product(*[range(s) for s in reversed(sizes)])))[:, ::-1] if n else \
        np.zeros((0, len(sizes)), int)
    fpos = list(facs)
    other = [i for i in range(len(sizes)) if i not in fpos]
    fsizes = [sizes[i] for i in fpos]
    ncomb = int(np.prod(fsizes))
    combo = np.ravel_multi_index(tuple(grid_idx[:, i] for i in fpos), fsizes, order="F") if fpos else np.zeros(n, int)
    osizes = [sizes[i] for i in other]
    oidx = np.ravel_multi_index(tuple(grid_idx[:, i] for i in other), osizes, order="F") if other else np.zeros(n, int)
    nother = int(np.prod(osizes)) if other else 1
    cnt = counts.reshape(-1)                              # per grid row
    if weights == "equal":
        w = np.ones(n)
    elif weights in ("proportional", "outer"):
        tab = np.zeros(nother)
        np.add.at(tab, oidx, cnt)
        if weights == "outer":
            arr = tab.reshape(osizes, order="F") if other else tab
            N = arr.sum()
            marg = [arr.sum(axis=tuple(j for j in range(arr.ndim) if j != d)) / N for d in range(arr.ndim)]
            out = N
            for mv in marg:
                out = np.multiply.outer(out, mv) if np.ndim(out) else out * mv
            tab = np.asarray(out).reshape(-1, order="F")
        w = tab[oidx]
    elif weights == "cells":
        w = cnt.astype(float)
    else:
        w = (cnt > 0).astype(float)
    if weights != "equal" and not np.any(w > 0):
        w = np.ones(n)
    W = np.zeros((ncomb, n))
    W[combo, np.arange(n)] = w
    with np.errstate(invalid="ignore", divide="ignore"):
        W = W / W.sum(axis=1, keepdims=True)
    return W, grid_idx


def emmeans(model, specs, by=None, at: dict | None = None, weights: str = "equal", type: str = "link",
            lmer_df: str | None = None, level: float = 0.95, data=None, vcov=None) -> EMMeans:
    """Estimated marginal means over a reference grid (R's ``emmeans``).

    Parameters
    ----------
    model : a fitted LMM or GLMM (``mfx.lmer``, ``mfx.glmer``; glmmTMB-style fits: the
        conditional model), or a GEE fit (``mfx.gee``: population-averaged means, z tests).
    specs : a variable name, a list of names, or a formula ``"~ a * b"`` / ``"~ a | b"``.
    by : variable name(s) whose levels split the means into groups (contrasts and
        adjustments are done within each group).
    at : ``{variable: values}``: the grid values of a covariate (default: its mean, or both values
        of a covariate with only two, as emmeans' ``cov.keep = "2"``), or the levels of a factor
        to keep.
    weights : ``"equal"`` (default), ``"proportional"``, ``"outer"``, ``"cells"`` or ``"flat"``.
    type : ``"link"`` (default) or ``"response"`` (GLMMs, GEE: back-transformed means, delta-method
        SEs, back-transformed intervals; ratios for contrasts on the log / logit scale).
    lmer_df : LMMs: ``"kenward-roger"``, ``"satterthwaite"`` or ``"asymptotic"``.  None
        (default) chooses as R's emmeans does: Kenward-Roger for REML fits with at most 3,000
        observations, otherwise Satterthwaite (emmeans falls back to asymptotic df above
        its ``lmerTest.limit``; our Satterthwaite df cost little at any size, so we keep them).
        GEE fits: asymptotic (z) df always (None or ``"asymptotic"``).
    level : confidence level of the intervals.
    data : the data the model was fitted to, when the model has no reference to it (GEE
        fits keep none: give ``data=``).
    vcov : GEE fits only: the covariance of the coefficients, ``"robust"`` (the sandwich,
        emmeans' ``"vbeta"``), ``"naive"`` (``"vbeta.naiv"``), ``"mancl-derouen"`` (``"md"``),
        ``"kauermann-carroll"`` (``"kc"``), or a p x p matrix.  Default: the fit's ``std_err``
        (robust unless chosen otherwise in ``mfx.gee``), as emmeans' default ``"vbeta"``.

    Returns
    -------
    EMMeans
    """
    if lmer_df is None and not _is_gee(model):
        lmer_df = "kenward-roger" if getattr(model, "reml", False) and model.nobs <= 3000 else "satterthwaite"
    info = _model_info(model, lmer_df, vcov)
    if str(type).lower() not in ("link", "response"):
        raise ValueError(f"type={type!r}: use 'link' or 'response'")
    wkey = str(weights).lower()
    if wkey not in _WEIGHTS:
        raise ValueError(f"weights={weights!r}: use one of {', '.join(_WEIGHTS)}")
    if not 0 < level < 1:
        raise ValueError("level must be between 0 and 1")
    if at is not None and not isinstance(at, Mapping):
        raise TypeError(f"at= must be a dict {{variable: values}}, e.g. at={{'temp': [175, 225]}}; got "
                        f"{at.__class__.__name__}")
    spec = _design(model).spec
    names, by = _parse_specs(specs, by)
    train = _training_data(model, data)
    gvars, forced = _grid_variables(spec)
    variables = []
    for v in gvars:
        col = train[v]
        raw = column_values(col, v)
        is_fac = v in forced or isinstance(raw, pd.Categorical) or np.asarray(raw).dtype.kind in "OUSb"
        variables.append(_Var(v, col, is_fac, _known_levels(spec, v) if is_fac else None))
    byname = {v.name: v for v in variables}
    factors = [v.name for v in variables if v.is_factor]
    for v, vals in (at or {}).items():
        if v not in byname:
            raise ValueError(f"at= names {v!r}, which is not a predictor of the fixed effects; they are "
                             f"{', '.join(byname) or '(none)'}")
        byname[v].restrict(vals)
    for role, lst in (("specs", names), ("by", by)):
        for v in lst:
            if v not in byname:
                raise ValueError(f"{role} names {v!r}, which is not a variable of the fixed effects; the model's "
                                 f"factors are {', '.join(factors) or '(none)'}"
                                 + (f" and covariates {', '.join(x for x in byname if x not in factors)}"
                                    if len(factors) < len(byname) else ""))
            if not byname[v].is_factor and not byname[v].at:
                raise ValueError(f"{role} names {v!r}, a numeric covariate (held at its mean, "
                                 f"{byname[v].labels[0]:.6g}); give the values to use as at={{{v!r}: [...]}} or "
                                 f"use factor({v}) in the formula")
    facs = names + by
    pos = {v.name: i for i, v in enumerate(variables)}
    dims = [v.labels for v in variables]
    # frequencies of each grid combination of factors in the data (covariates replicate them)
    sizes = [len(d) for d in dims]
    counts = np.zeros(sizes if sizes else [1])
    fidx = [i for i, v in enumerate(variables) if v.is_factor]
    if fidx:
        codes = np.stack([variables[i].codes for i in fidx], axis=1)
        ok = (codes >= 0).all(axis=1)
        fc = np.zeros([sizes[i] for i in fidx])
        np.add.at(fc, tuple(codes[ok].T), 1.0)
        shape = [sizes[i] if i in fidx else 1 for i in range(len(sizes))]
        counts = np.broadcast_to(fc.reshape(shape), sizes).copy()
    counts_flat = counts.reshape(-1, order="F") if sizes else np.ones(1)
    W, grid_idx = _averaging_weights(dims, [pos[f] for f in facs], counts_flat, wkey)
    grid = pd.DataFrame({v.name: v.values.iloc[grid_idx[:, i]].reset_index(drop=True)
                         for i, v in enumerate(variables)})
    if len(variables) == 0:
        grid = pd.DataFrame(index=range(1))
    X = spec.fixed_matrix(grid) if len(variables) else np.ones((1, len(info.beta)))
    off = spec.offset(grid) if spec.formula.offsets else np.zeros(len(grid))
    K = W @ X
    koff = W @ off
    estimable = _estimable(model, spec, train, grid, W, len(info.beta))
    # the labels of each mean, first variable fastest (R's expand.grid)
    fsz = [sizes[pos[f]] for f in facs]
    combos = np.array(list(itertools.product(*[range(s) for s in reversed(fsz)])))[:, ::-1]
    labels = {}
    for j, f in enumerate(facs):
        var = byname[f]
        vals = [var.labels[k] for k in combos[:, j]]
        labels[f] = pd.Categorical(vals, categories=var.labels) if var.is_factor else np.asarray(vals, float)
    avgd = [v.name for i, v in enumerate(variables) if v.name not in facs and sizes[i] > 1]
    interaction = _in_interaction(spec, facs, byname)
    notes = ["NOTE: Results may be misleading due to involvement in interactions"] if interaction else []
    return EMMeans.from_linear(info, K, koff, pd.DataFrame(labels), names, by, avgd, estimable,
                               type=str(type).lower(), level=level, notes=notes, init_mesg=info.init_mesg,
                               enhance=[f for f in facs if _numeric_looking(byname[f].labels)])


def _numeric_looking(labels) -> bool:
    try:
        [float(x) for x in labels]
    except (TypeError, ValueError):
        return False
    return True


def _in_interaction(spec, facs, byname) -> bool:
    """emmeans' note: some fixed term has every variable of ``facs`` and another one."""
    want = set(facs)
    for t in spec.fixed.termlist.terms:
        vs = {v for a in t for v in names_in(spec.formula.atoms[a]) if v in byname}
        if want <= vs and len(vs) > len(want):
            return True
    return False


def _full_fixed(spec):
    """The fixed-effects matrix spec with no column dropped (for the estimability check)."""
    fx = spec.fixed
    k = fx.width
    if k == len(fx.keep):
        return None
    return replace(spec, fixed=replace(fx, keep=tuple(range(k))))


def _estimable(model, spec, train, grid, W, p) -> np.ndarray:
    """True for each mean whose full-matrix row lies in the row space of the fit's full X."""
    full = _full_fixed(spec)
    if full is None:
        return np.ones(W.shape[0], bool)
    Xf = full.fixed_matrix(train)
    _, s, vt = np.linalg.svd(Xf, full_matrices=True)
    rank = int(np.sum(s > s[0] * 1e-9)) if s.size else 0
    N = vt[rank:].T
    Kf = W @ full.fixed_matrix(grid)
    resid = np.abs(Kf @ N).max(axis=1) if N.size else np.zeros(len(Kf))
    return resid <= 1e-7 * np.maximum(1.0, np.abs(Kf).max(axis=1))
