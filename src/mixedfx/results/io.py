"""Save a fitted result to JSON and load it back (``result.save(path)``, :func:`mixedfx.load`).

The file is plain JSON, readable without mixedfx: the estimates (``theta``, ``beta``, ``sigma``
or ``phi``, ``vcov``, the conditional modes and variances of the random effects), the names
(fixed-effect columns, random-effect terms and their group levels) and, explicitly, what
``predict(newdata)`` needs to rebuild X and Z for new rows: the formula text and the state
the design learned from the data (factor levels, ``scale()`` centres and scales, ``poly()``
coefficients, spline knots), plus, per term matrix, its column names and which columns were
kept.  formulaic's coding of factors is rebuilt from the stored levels and checked against
the stored column names.  The data are not stored: a loaded result has the summary-level
numbers (``fixef``, ``se``, ``vcov``, ``theta``, ``sigma``, ``varcorr``, ``ranef``, ``coef``,
``loglik``, ``aic``, ``bic``, ``to_dict()``) and ``predict(newdata)``, but no ``fitted()``,
``residuals()``, ``summary()`` or inference that needs the observations.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields, replace

import numpy as np
import pandas as pd

from ..core.covariance import ThetaLayout
from ..models.layout import layout_of
from ..core.optimize import OptResult
from ..design.evaluate import AtomState
from ..design.matrices import TermMatrixSpec
from ..design.random import BlockShape
from ..design.splines import PolyBasis, SplineBasis
from ..formula.terms import parse_formula

__all__ = ["save", "load", "LoadedFit"]

FORMAT = "mixedfx-result"
VERSION = 1


_TREATMENT = "TreatmentContrasts(base=UNSET)"


class _DataFree:
    """A loaded object: asking for one of ``_data_fields`` (arrays of the fitted rows, which a saved
    result does not keep) gives an AttributeError that says so."""
    _data_fields: tuple = ()

    def __getattr__(self, name):
        if name in type(self)._data_fields:
            raise AttributeError(f"a loaded result has no data ({name}): fitted values, residuals, predictions "
                                 "for the fitted rows and inference need the model refitted to its data; "
                                 "predict(newdata) works")
        raise AttributeError(name)


@dataclass(frozen=True)
class LoadedBlock(BlockShape, _DataFree):
    """A random-effects term of a loaded fit (names and levels; no data)."""
    _data_fields = ("codes", "X")
    term: object
    levels: tuple
    cnames: tuple
    lhs_spec: TermMatrixSpec
    times: tuple | None = None

    @property
    def structure(self) -> str:
        return self.term.structure


@dataclass(frozen=True)
class LoadedDesign(_DataFree):
    """The design of a loaded fit: names, sizes and the spec to rebuild X and Z (no data)."""
    _data_fields = ("y", "X", "residual", "weights", "offset")
    n: int
    n_dropped: int
    xnames: tuple
    blocks: tuple
    spec: object
    weights: None = None
    offset: None = None
    row_index: None = None
    parts: tuple = ()

    def part(self, name: str):
        return next((p for p in self.parts if p.name == name), None)

    @property
    def layout(self) -> ThetaLayout:
        return layout_of(self.blocks)


@dataclass(frozen=True)
class LoadedFit(_DataFree):
    """The numbers of a fit read from JSON (user units; no ``internal`` estimates or ``scaling``: the
    standardized problem they describe needs the data)."""
    _data_fields = ("mu", "eta", "u", "pwrss", "internal", "scaling", "fresh_workspace", "theta_internal")
    design: LoadedDesign
    reml: bool
    theta: np.ndarray
    beta: np.ndarray
    sigma: float
    vcov: np.ndarray
    b: tuple
    cond_var: tuple
    objective: float
    opt: OptResult
    is_singular: bool
    seconds: float
    deviance_ml: float | None = None
    family: object = None
    nagq: int = 1
    phi: float = 1.0
    deviance: float | None = None
    vcov_method: str | None = None
    opt_stage1: OptResult | None = None
    extra: dict = field(default_factory=dict)
    residual: object = None

    @property
    def layout(self) -> ThetaLayout:
        return layout_of(self.design.blocks)


# ----------------------------------------------------------------------------- encoding
def _num(x):
    """JSON-safe float (NaN and infinities as strings)."""
    x = float(x)
    return x if math.isfinite(x) else repr(x)


def _arr(a):
    a = np.asarray(a, dtype=float)
    if a.ndim == 0:
        return _num(a)
    return [_arr(r) for r in a]


def _unarr(v):
    if isinstance(v, list):
        return np.array([_unarr(x) for x in v], dtype=float) if v else np.zeros(0)
    return float(v)


def _tuples(v):
    return tuple(_tuples(x) for x in v) if isinstance(v, list) else v


def _basis(basis) -> dict:
    kind = type(basis).__name__
    if kind not in ("PolyBasis", "SplineBasis"):
        raise TypeError(f"cannot save a fitted basis of type {kind}")
    out = {"type": kind}
    for f in fields(basis):
        v = getattr(basis, f.name)
        out[f.name] = _arr(v) if isinstance(v, (tuple, list, np.ndarray)) else v
    return out


def _unbasis(d: dict):
    cls = {"PolyBasis": PolyBasis, "SplineBasis": SplineBasis}[d["type"]]
    kw = {}
    for f in fields(cls):
        if f.name in d:
            v = d[f.name]
            kw[f.name] = tuple(_unarr(v).tolist()) if isinstance(v, list) else v
    return cls(**kw)


def _state(state: AtomState) -> dict:
    return {"scale": {k: [None if c is None else _num(c) for c in v] for k, v in state.scale.items()},
            "levels": {k: [str(x) for x in v] for k, v in state.levels.items()},
            "bases": {k: _basis(v) for k, v in state.bases.items()}}


def _unstate(d: dict) -> AtomState:
    return AtomState(scale={k: tuple(None if c is None else float(c) for c in v) for k, v in d["scale"].items()},
                     levels={k: list(v) for k, v in d["levels"].items()},
                     bases={k: _unbasis(v) for k, v in d["bases"].items()})


def _matrix_spec(spec: TermMatrixSpec) -> dict:
    factors = {}
    if spec.formulaic_spec is not None:
        for factor, cs in spec.formulaic_spec.factor_contrasts.items():
            if repr(cs.contrasts) != _TREATMENT:
                raise TypeError(f"cannot save the factor coding {cs.contrasts!r}: only R's treatment "
                                "contrasts are stored")
            factors[str(factor)] = [str(x) for x in cs.levels]
    return {"synthetic": dict(spec.synthetic), "names": list(spec.names), "keep": list(spec.keep),
            "direct": spec.direct, "formulaic": spec.formulaic_spec is not None, "factors": factors,
            "expand": None if spec.expand is None else [[c, [list(p) for p in parts]] for c, parts in spec.expand],
            "coding": None if spec.coding is None else [list(c) for c in spec.coding],
            "levels": None if spec.levels is None else {k: list(v) for k, v in spec.levels.items()}}


def _unmatrix_spec(d: dict, termlist) -> TermMatrixSpec:
    expand = None if d["expand"] is None else tuple((c, tuple(tuple(p) for p in parts)) for c, parts in d["expand"])
    spec = TermMatrixSpec(termlist, dict(d["synthetic"]), None, tuple(d["names"]), tuple(d["keep"]),
                          d["direct"], expand)
    if d.get("coding") is not None:     # factors coded by mixedfx.design.coding (no formulaic spec)
        coding = tuple(tuple(c) for c in d["coding"])
        levels = {k: tuple(v) for k, v in d["levels"].items()}
        if len(coding) != len(termlist.terms) or any(len(c) != len(t) for c, t in zip(coding, termlist.terms)):
            raise ValueError("the saved model's factor coding does not match its formula (file from another version?)")
        return replace(spec, coding=coding, levels=levels)
    if not d["formulaic"]:
        return spec
    from formulaic import model_matrix

    synthetic, factors = d["synthetic"], d["factors"]
    n = max([2] + [len(v) for v in factors.values()])
    frame = {}
    for syn in synthetic.values():
        if syn in factors:
            levels = factors[syn]
            frame[syn] = pd.Categorical([levels[i % len(levels)] for i in range(n)], categories=levels)
        else:
            frame[syn] = np.arange(n, dtype=float)
    rhs = " + ".join(":".join(synthetic[a] for a in t) for t in termlist.terms)
    rhs = ("1 + " if termlist.intercept else "0 + ") + rhs
    mm = model_matrix(rhs, pd.DataFrame(frame), na_action="raise")
    rebuilt = {str(k): [str(x) for x in v.levels] for k, v in mm.model_spec.factor_contrasts.items()}
    coding = {repr(v.contrasts) for v in mm.model_spec.factor_contrasts.values()}
    if rebuilt != factors or coding - {_TREATMENT} or (expand is None and max(spec.keep, default=-1) >= mm.shape[1]):
        raise ValueError("the saved model's factor coding could not be rebuilt (file from another version?)")
    return replace(spec, formulaic_spec=mm.model_spec)


def _opt(o) -> dict:
    return {"x": _arr(o.x), "fun": _num(o.fun), "nfev": int(o.nfev), "status": str(o.status),
            "messages": list(o.messages), "restarts": int(o.restarts), "optimizer": str(o.optimizer)}


def _unopt(d) -> OptResult | None:
    if d is None:
        return None
    return OptResult(_unarr(d["x"]), float(d["fun"]), d["nfev"], d["status"], tuple(d["messages"]),
                     int(d.get("restarts", 0)), str(d.get("optimizer", "bobyqa")))


def to_document(result) -> dict:
    """The JSON document of a result (plain Python types)."""
    fit = result.fit
    d = fit.design
    spec = d.spec
    f = spec.formula
    randoms = list(f.random)
    blocks = []
    for b in d.blocks:
        idx = next((i for i, t in enumerate(randoms) if t is b.term), None)
        if idx is None:
            idx = randoms.index(b.term)
        blocks.append({"term": idx, "levels": [str(x) for x in b.levels], "cnames": list(b.cnames),
                       "lhs": _matrix_spec(b.lhs_spec),
                       "times": None if getattr(b, "times", None) is None else [float(t) for t in b.times]})
    family = getattr(result, "family", None)
    extended = hasattr(fit, "dist")
    doc = {"format": FORMAT, "version": VERSION, "kind": "lmm" if family is None else "glmm",
           "formula": result.formula, "data_name": result.data_name, "reml": bool(fit.reml),
           "nobs": int(d.n), "n_dropped": int(d.n_dropped), "xnames": list(d.xnames),
           "theta": _arr(fit.theta), "beta": _arr(fit.beta),
           "sigma": _num(result.sigma if result.sigma is not None else np.nan), "vcov": _arr(fit.vcov),
           "b": [_arr(x) for x in fit.b], "cond_var": [_arr(x) for x in fit.cond_var],
           "objective": _num(fit.objective), "is_singular": bool(fit.is_singular), "seconds": _num(fit.seconds),
           "opt": _opt(fit.opt), "blocks": blocks, "state": _state(spec.state), "fixed": _matrix_spec(spec.fixed),
           "offset_column": getattr(spec, "offset_column", None),
           "offset_array": bool(getattr(spec, "offset_array", False)),
           "summary": json.loads(result.to_json())}
    if extended:
        from .io_extended import extended_document
        doc.update(extended_document(result))
    elif family is None:
        doc["deviance_ml"] = _num(fit.deviance_ml)
        r = getattr(fit, "residual", None)
        if r is not None:
            doc["residual"] = {"names": list(r.names), "par": _arr(r.par),
                               "natural": {k: _arr(v) for k, v in r.natural.items()},
                               "correlation": None if r.correlation is None else r.correlation.text,
                               "disp_names": list(r.disp_names), "log_jacobian": _num(r.log_jacobian)}
    else:
        doc.update(family={"name": family.name, "link": family.link.name,
                           "theta": getattr(family, "theta", None), "estimated": getattr(family, "estimated", False)},
                   nagq=int(fit.nagq), phi=_num(fit.phi), deviance=_num(fit.deviance), vcov_method=fit.vcov_method,
                   opt_stage1=_opt(fit.opt_stage1))
    return doc


def save(result, path) -> None:
    """Write ``result`` as JSON to ``path`` (see the module docstring for what is kept)."""
    text = json.dumps(to_document(result), indent=1)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def _family(d: dict):
    from ..families import get_family
    from ..families.family import NegativeBinomial
    if d["name"] == "negative.binomial":
        return NegativeBinomial(theta=d["theta"], link=d["link"], estimated=bool(d["estimated"]))
    return get_family(d["name"], d["link"])


def from_document(doc: dict):
    """A result (of the saved class) from a JSON document."""
    from .glmm_result import GeneralizedLinearMixedModelResult
    from .lmm_result import LinearMixedModelResult
    from ..design.design import DesignSpec

    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError("not a mixedfx result file (no \"format\": \"mixedfx-result\" entry)")
    if doc.get("version", 0) > VERSION:
        raise ValueError(f"the result file has version {doc['version']}; this mixedfx reads up to {VERSION}")
    f = parse_formula(doc["formula"])
    state = _unstate(doc["state"])
    fixed = _unmatrix_spec(doc["fixed"], f.fixed)
    blocks = []
    for blk in doc["blocks"]:
        term = f.random[blk["term"]]
        times = blk.get("times")
        blocks.append(LoadedBlock(term, tuple(blk["levels"]), tuple(blk["cnames"]),
                                  _unmatrix_spec(blk["lhs"], term.lhs), None if times is None else tuple(times)))
    spec = DesignSpec(f, state, fixed, tuple((b.term.group, b.levels, b.lhs_spec) for b in blocks),
                      offset_column=doc.get("offset_column"), offset_array=bool(doc.get("offset_array", False)))
    design = LoadedDesign(doc["nobs"], doc["n_dropped"], tuple(doc["xnames"]), tuple(blocks), spec)
    p = len(doc["xnames"])
    common = dict(design=design, reml=doc["reml"], theta=_unarr(doc["theta"]), beta=_unarr(doc["beta"]),
                  sigma=float(doc["sigma"]), vcov=_unarr(doc["vcov"]).reshape(p, p),
                  b=tuple(_unarr(x).reshape(len(b.levels), b.p) for x, b in zip(doc["b"], blocks)),
                  cond_var=tuple(_unarr(x).reshape(len(b.levels), b.p, b.p) for x, b in zip(doc["cond_var"], blocks)),
                  objective=float(doc["objective"]), opt=_unopt(doc["opt"]), is_singular=doc["is_singular"],
                  seconds=float(doc["seconds"]))
    if doc["kind"] in ("extended", "ordinal"):
        from .extended_result import ExtendedMixedModelResult
        from .io_extended import extended_fit
        from .ordinal_result import OrdinalMixedModelResult
        fit = extended_fit(doc, common, design)
        cls = OrdinalMixedModelResult if doc["kind"] == "ordinal" else ExtendedMixedModelResult
        return cls(fit, doc["formula"], doc["data_name"])
    if doc["kind"] == "lmm":
        fit = LoadedFit(deviance_ml=float(doc["deviance_ml"]), residual=_unresidual(doc.get("residual")), **common)
        return LinearMixedModelResult(fit, doc["formula"], doc["data_name"])
    fit = LoadedFit(family=_family(doc["family"]), nagq=doc["nagq"], phi=float(doc["phi"]),
                    deviance=float(doc["deviance"]), vcov_method=doc["vcov_method"],
                    opt_stage1=_unopt(doc["opt_stage1"]), **common)
    return GeneralizedLinearMixedModelResult(fit, doc["formula"], doc["data_name"])


def _unresidual(d):
    """The :class:`~mixedfx.models.lmm.ResidualFit` of a saved ``correlation=`` / ``disp=`` model."""
    if d is None:
        return None
    from ..formula.terms import parse_correlation
    from ..models.lmm import ResidualFit
    natural = {k: (np.atleast_1d(_unarr(v)) if k == "delta" else float(v)) for k, v in d["natural"].items()}
    return ResidualFit(names=tuple(d["names"]), par=np.atleast_1d(_unarr(d["par"])), natural=natural,
                       correlation=None if d["correlation"] is None else parse_correlation(d["correlation"]),
                       disp_names=tuple(d["disp_names"]), log_jacobian=float(d["log_jacobian"]))


def load(path):
    """Read a result written by ``result.save(path)``: it has the estimates, names and
    ``predict(newdata)`` of the fit (not its data).

    Examples
    --------
    >>> m.save("fit.json")                       # doctest: +SKIP
    >>> mfx.load("fit.json").predict(newdata)    # doctest: +SKIP
    """
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path!r} is not a JSON file ({exc})") from None
    return from_document(doc)
