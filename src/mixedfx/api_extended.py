"""``glmer`` for glmmTMB-style models: families beyond lme4's, zero inflation, hurdles, dispersion models.

:func:`mixedfx.glmer` sends a model here when its family is one of :data:`EXTENDED_FAMILIES`
(or a :class:`mixedfx.families.distributions.Distribution` object) or when ``zi=`` or
``disp=`` is given; the stages are the same (formula -> design -> Laplace workspace ->
optimizer -> frozen result), with :func:`mixedfx.models.extended.fit_extended` as the fitter.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from .design import build_design
from .families import get_link
from .families.distributions import DISTRIBUTIONS, Distribution, get_distribution
from .formula import parse_formula
from .models.extended import fit_extended
from .results.extended_result import ExtendedMixedModelResult

__all__ = ["EXTENDED_FAMILIES", "is_extended", "glmer_extended"]

#: family names that only the glmmTMB-style fitter handles
EXTENDED_FAMILIES = ("nbinom1", "nbinom2", "beta", "betabinomial", "t", "tweedie", "lognormal", "genpois",
                     "truncated_poisson", "truncated_nbinom1", "truncated_nbinom2", "truncated_genpois")
#: lme4 families the glmmTMB-style fitter takes when zi= or disp= is given
_CLASSIC = {"poisson": "poisson", "binomial": "binomial", "gaussian": "gaussian", "gamma": "Gamma",
            "Gamma": "Gamma"}


def is_extended(family, zi, disp) -> bool:
    if zi is not None or disp is not None or isinstance(family, Distribution):
        return True
    return isinstance(family, str) and family.strip() in EXTENDED_FAMILIES


def _distribution(family, df):
    """``(distribution, hurdle)`` from a family name or object."""
    if isinstance(family, Distribution):
        if df is not None:
            raise ValueError("give df= inside the family object (e.g. StudentT(df=4)) or with family='t', not both")
        return family, bool(getattr(family, "truncated", False))
    if not isinstance(family, str):
        raise ValueError(f"family must be a name or a distribution object, got {type(family).__name__}")
    name = family.strip()
    hurdle = name.startswith("truncated_")
    base = name[len("truncated_"):] if hurdle else name
    base = _CLASSIC.get(base, base)
    if base not in DISTRIBUTIONS:
        valid = ", ".join(sorted(set(EXTENDED_FAMILIES) | set(_CLASSIC)))
        raise ValueError(f"unknown family {family!r} for a model with zi=/disp= or a glmmTMB family; choose one of "
                         f"{valid}")
    if hurdle and not getattr(DISTRIBUTIONS[base], "count", False):
        raise ValueError(f"family {family!r}: only count families can be truncated (poisson, nbinom1, nbinom2, "
                         "genpois)")
    if df is not None:
        if base != "t":
            raise ValueError(f"df= fixes the Student-t degrees of freedom; the {family!r} family has none")
        if not (isinstance(df, (int, float)) and np.isfinite(df) and df > 0):
            raise ValueError(f"df= must be a positive number, got {df!r}")
        return get_distribution("t", df=float(df)), False
    return get_distribution(base), hurdle


def glmer_extended(formula, data, family, link=None, nagq: int = 1, weights=None, offset=None, start=None,
                   data_name=None, zi=None, disp=None, df=None, origin=None, **control) -> ExtendedMixedModelResult:
    """Fit a glmmTMB-style GLMM (see :func:`mixedfx.glmer` for the arguments)."""
    dist, hurdle = _distribution(family, df)
    link_obj = get_link(link if link is not None else dist.default_link)
    if dist.links and link_obj.name not in dist.links:
        raise ValueError(f"link {link_obj.name!r} is not available for the {dist.name} family; use one of "
                         f"{', '.join(dist.links)}")
    if disp is not None and not dist.has_dispersion:
        raise ValueError(f"disp= models the dispersion, but the {dist.name} family has none (its variance is fixed "
                         "by the mean); use a family with a dispersion such as nbinom2 or remove disp=")
    if zi is not None and not getattr(dist, "zero_mass", False):
        raise ValueError(f"zi= (zero inflation) needs a response with a probability mass at zero (counts or binomial "
                         f"proportions); the {dist.name} family is continuous")
    proxy = SimpleNamespace(name="binomial" if dist.binomial_type else dist.name,
                            link=link_obj)
    parts = {"zi": zi, "disp": disp}
    design = build_design(parse_formula(formula), data, weights=weights, offset=offset, family=proxy, parts=parts)
    if zi is not None and design.part("zi") is not None and design.part("zi").p == 0:
        design = _drop_part(design, "zi")
        zi = None
    if hurdle and design.part("zi") is None and np.any(design.y == 0):
        raise ValueError(f"the {dist.name} family truncated at zero (family {family!r}) without zi= is a "
                         f"zero-truncated model, but the response has {int(np.sum(design.y == 0))} zero(s); add zi= "
                         "for a hurdle model (zi='~ 1' for a constant zero probability)")
    if zi is not None and not np.any(design.y == 0):
        raise ValueError("zi= models extra zeros, but the response has no zero: the zero-inflation probability would "
                         "go to 0 (its coefficients to minus infinity); drop zi=")
    fit = fit_extended(design, dist, link_obj, hurdle=hurdle, nagq=nagq, start=_start(start), **control)
    return ExtendedMixedModelResult(fit, formula, data_name, origin)


def _start(start):
    """``start=``: None, a previous glmmTMB-style result, or a dict of ``theta``, ``beta``, ``beta_zi``,
    ``beta_disp``, ``psi`` (natural scale)."""
    if start is None:
        return None
    prev = getattr(start, "fit", start)
    if hasattr(prev, "dist"):
        from .models.extended import refit_start
        return refit_start(prev)
    if not isinstance(start, dict):
        raise ValueError(f"start= must be a previous result or a dict, got {type(start).__name__}")
    extra = set(start) - {"theta", "beta", "beta_zi", "beta_disp", "psi"}
    if extra:
        raise ValueError(f"start= takes theta, beta, beta_zi, beta_disp and psi (got {', '.join(sorted(extra))})")
    return start


def _drop_part(design, name):
    from dataclasses import replace
    return replace(design, parts=tuple(p for p in design.parts if p.name != name))
