"""Saving and loading glmmTMB-style and ordinal results (the parts :mod:`mixedfx.results.io` adds
for them): the response distribution, the zero-inflation and dispersion formulas with the state
and column coding they learned, their coefficients and the covariance of every parameter."""
from __future__ import annotations

import numpy as np

from ..design.parts import ModelPart
from ..formula.terms import parse_formula
from . import io      # imported by io only inside its functions, so no import cycle

__all__ = ["extended_document", "extended_fit"]


def _dist_document(fit) -> dict:
    d = fit.dist
    if hasattr(d, "cdf_link"):
        return {"kind": "ordinal", "K": int(d.K), "link": d.cdf_link, "levels": list(d.levels)}
    out = {"kind": "distribution", "name": d.name, "fixed_psi": d.fixed_psi() is not None}
    return out


def extended_document(result) -> dict:
    """The JSON entries of an :class:`~mixedfx.results.extended_result.ExtendedMixedModelResult`."""
    fit = result.fit
    parts = [{"name": p.name, "text": p.text, "state": io._state(p.state), "spec": io._matrix_spec(p.spec),
              "names": list(p.names)} for p in fit.design.parts]
    return {"kind": "ordinal" if hasattr(fit.dist, "cdf_link") else "extended",
            "distribution": _dist_document(fit), "link": fit.link.name, "hurdle": bool(fit.hurdle),
            "nagq": int(fit.nagq), "parts": parts, "beta_zi": io._arr(fit.beta_zi),
            "beta_disp": io._arr(fit.beta_disp), "psi": io._arr(fit.psi), "psi_internal": io._arr(fit.psi_internal),
            "vcov_all": io._arr(fit.vcov_all), "names_all": list(fit.names_all), "vcov_method": fit.vcov_method,
            "phi0": io._num(fit.phi[0]) if len(fit.phi) else 1.0}


def _distribution(d: dict, psi):
    if d["kind"] == "ordinal":
        from ..families.ordinal import CumulativeLink
        return CumulativeLink(d["K"], d["link"], d["levels"])
    from ..families.distributions import get_distribution
    if d["fixed_psi"]:
        key = {"t": "df", "tweedie": "power"}[d["name"]]
        return get_distribution(d["name"], **{key: float(psi[0])})
    return get_distribution(d["name"])


def extended_fit(doc: dict, common: dict, design):
    """``(fit, design)`` of a saved glmmTMB-style or ordinal result."""
    from dataclasses import replace

    from ..families import get_link
    from ..models.extended import ExtendedFit

    parts = []
    for p in doc["parts"]:
        f = parse_formula(p["text"] if "~" in p["text"] else "~ " + p["text"])
        spec = io._unmatrix_spec(p["spec"], f.fixed)
        parts.append(ModelPart(p["name"], p["text"], f, io._unstate(p["state"]), spec,
                               np.zeros((0, len(p["names"]))), tuple(p["names"]), None))
    design = replace(design, parts=tuple(parts))
    psi = np.atleast_1d(io._unarr(doc["psi"])) if doc["psi"] else np.zeros(0)
    m = len(doc["names_all"])
    fit = ExtendedFit(
        design=design, dist=_distribution(doc["distribution"], psi), link=get_link(doc["link"]),
        hurdle=doc["hurdle"], nagq=doc["nagq"], theta=common["theta"], beta=common["beta"],
        beta_zi=np.atleast_1d(io._unarr(doc["beta_zi"])) if doc["beta_zi"] else np.zeros(0),
        beta_disp=np.atleast_1d(io._unarr(doc["beta_disp"])) if doc["beta_disp"] else np.zeros(0),
        psi=psi, psi_internal=np.atleast_1d(io._unarr(doc["psi_internal"])) if doc["psi_internal"] else np.zeros(0),
        vcov_all=io._unarr(doc["vcov_all"]).reshape(m, m), names_all=tuple(doc["names_all"]),
        vcov_method=doc["vcov_method"], b=common["b"], cond_var=common["cond_var"], u=None, eta=None, mu=None,
        zprob=None, phi=np.array([float(doc["phi0"])]), objective=common["objective"], opt=common["opt"],
        is_singular=common["is_singular"], seconds=common["seconds"], layout=design.layout
        if hasattr(design, "layout") else None)
    return fit
