"""``refit(new_y)`` and ``update(formula, ...)`` for fitted results (lme4's ``refit`` / ``update``)."""
from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pandas as pd

from ..design.columns import finite_vector
from ..models import fit_glmm, fit_lmm

__all__ = ["refit_result", "update_result", "update_formula"]


def _new_response(result, new_y) -> np.ndarray:
    d = result.fit.design
    index = getattr(d, "row_index", None)
    if isinstance(new_y, pd.Series) and index is not None and set(new_y.index) == set(index) \
            and len(new_y) == len(index):
        new_y = new_y.reindex(index)
    return finite_vector(new_y, "refit: new_y", d.n, "observations in the fit (nobs)")


def refit_result(result, new_y):
    """The result of refitting ``result``'s model (same design) to the response ``new_y``."""
    fit = result.fit
    fit.design.X            # a loaded result (no data) says so here, before the new response is read
    y = _new_response(result, new_y)
    design = replace(fit.design, y=y)
    family = getattr(result, "family", None)
    if hasattr(fit, "dist"):              # glmmTMB-style and ordinal models
        from ..models.extended import fit_extended, refit_start
        fit.dist.check_response(y, np.ones(len(y)) if design.weights is None else design.weights)
        new = fit_extended(design, fit.dist, fit.link, hurdle=fit.hurdle, nagq=fit.nagq, start=refit_start(fit))
    elif family is None:
        new = fit_lmm(design, reml=fit.reml, start=np.asarray(fit.theta, float))
    else:
        if getattr(family, "estimated", False):
            raise NotImplementedError("refit() is not available for family='negbin' (its shape is "
                                      "estimated); use update(data=...) with the new response in the data")
        family.check_response(y, np.ones(len(y)) if design.weights is None else design.weights)
        new = fit_glmm(design, family, nagq=fit.nagq, start={"theta": fit.theta, "beta": fit.beta})
    return type(result)(new, result.formula, result.data_name, result._origin)


_DOT = re.compile(r"(?<![\w.])\.(?![\w.])")


def update_formula(old: str, new: str) -> str:
    """``new`` with ``.`` standing for the old formula's sides (R's ``update.formula``, for
    whole-side substitution: ``". ~ . + x"``, ``"log(y) ~ ."``)."""
    if "~" not in old or "~" not in new:
        raise ValueError(f"update: formulas need a '~' (got {new!r})")
    olhs, orhs = (part.strip() for part in old.split("~", 1))
    nlhs, nrhs = (part.strip() for part in new.split("~", 1))
    lhs = _DOT.sub(lambda _: olhs, nlhs) if nlhs else olhs
    rhs = _DOT.sub(lambda _: orhs, nrhs)
    return f"{lhs} ~ {rhs}"


def update_result(result, formula=None, **kwargs):
    """Refit ``result`` with a new formula and/or arguments on its original data."""
    origin = result._origin
    if origin is None and "data" not in kwargs:
        raise ValueError("update(): this result has no reference to its data (it was loaded, unpickled or "
                         "made directly); pass data=...")
    if origin is None:
        from .. import api as _api     # pragma: no cover - results may not import api at module level
        fitter = _api.glmer if getattr(result, "family", None) is not None else _api.lmer
        call = {}
        data = None
    else:
        fitter, data, call = origin
    call = dict(call)
    if "data" in kwargs:
        data = kwargs.pop("data")
    call.update(kwargs)
    new_formula = result.formula if formula is None else update_formula(result.formula, str(formula))
    return fitter(new_formula, data, **call)
