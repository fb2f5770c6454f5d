"""``allfit``: refit one model with every optimizer and compare (lme4's ``allFit``).

A model that converges to the same criterion, estimates and variance components from
every optimizer is well determined; disagreement points at a flat or multimodal criterion
(an over-rich random-effects structure, a boundary fit).  ``allfit`` times each fit too, so it
is also the way to see which optimizer is fastest on a given problem.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .api import lmer
from .models.optimizers import OPTIMIZERS

__all__ = ["allfit", "AllFit"]


@dataclass(frozen=True)
class AllFit:
    """Fits of one model by several optimizers.

    Attributes
    ----------
    table : one row per optimizer: ``criterion`` (REML criterion or ML deviance), ``excess``
        (criterion minus the lowest), ``nfev`` (criterion evaluations), ``restarts`` (boundary
        restarts), ``seconds``, ``singular``, ``converged`` and ``message`` (warnings or the
        error that stopped the fit; failed fits have NaN numbers).
    fixef, theta, sdcor : one row per successful optimizer (columns as the fits name them).
    fits : the fitted results by optimizer name.
    """
    table: pd.DataFrame
    fixef: pd.DataFrame
    theta: pd.DataFrame
    sdcor: pd.DataFrame
    fits: dict

    @property
    def best(self):
        """The fit with the lowest criterion."""
        ok = self.table["criterion"].dropna()
        return self.fits[ok.idxmin()]

    def disagreements(self, tol_criterion: float = 1e-6, tol_estimates: float = 1e-4) -> list[str]:
        """Optimizers whose answers differ from the best fit's: criterion by more than
        ``tol_criterion (1 + |best|)``, or a fixed effect or SD/correlation by more than
        ``tol_estimates`` relative (to ``max(|best value|, 1e-3)``)."""
        ok = self.table["criterion"].dropna()
        if ok.empty:
            return ["no optimizer succeeded"]
        best = ok.idxmin()
        out = []
        for name in self.table.index:
            if name == best:
                continue
            crit = self.table.loc[name, "criterion"]
            if not np.isfinite(crit):
                out.append(f"{name}: failed ({self.table.loc[name, 'message']})")
                continue
            if crit - ok[best] > tol_criterion * (1.0 + abs(ok[best])):
                out.append(f"{name}: criterion {crit - ok[best]:.3g} above {best}'s")
                continue
            for label, frame in (("fixed effect", self.fixef), ("SD/correlation", self.sdcor)):
                ref = frame.loc[best].to_numpy(float)
                rel = np.abs(frame.loc[name].to_numpy(float) - ref) / np.maximum(np.abs(ref), 1e-3)
                if rel.size and np.nanmax(rel) > tol_estimates:
                    col = frame.columns[int(np.nanargmax(rel))]
                    out.append(f"{name}: {label} {col} differs by {np.nanmax(rel):.2g} relative")
        return out

    def __repr__(self) -> str:
        lines = ["allfit: one model, every optimizer", self.table.to_string(float_format=lambda v: f"{v:.6g}")]
        problems = self.disagreements()
        lines.append("all optimizers agree" if not problems else "disagreements:\n  " + "\n  ".join(problems))
        return "\n".join(lines)


def allfit(model, data=None, optimizers=None, **kwargs) -> AllFit:
    """Fit a linear mixed model with every optimizer (lme4's ``allFit``).

    Parameters
    ----------
    model : str or LinearMixedModelResult
        A formula (then ``data`` is required) or a fitted LMM, refitted on its own data with
        its own arguments.
    data : data frame, optional
        The data for a formula.
    optimizers : list of str, optional
        Default: every optimizer of :data:`mixedfx.models.optimizers.OPTIMIZERS` but ``"auto"``.
    **kwargs
        Passed to :func:`mixedfx.lmer` (``reml``, ``weights``, ...).

    Returns
    -------
    AllFit

    Examples
    --------
    >>> import mixedfx as mfx
    >>> af = mfx.allfit("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))
    >>> af.disagreements()
    []
    """
    names = [o for o in OPTIMIZERS if o != "auto"] if optimizers is None else list(optimizers)
    bad = [o for o in names if o not in OPTIMIZERS]
    if bad:
        raise ValueError(f"unknown optimizer(s) {bad}; choose from {', '.join(OPTIMIZERS)}")
    if isinstance(model, str):
        if data is None:
            raise ValueError("allfit(formula, data): data is required with a formula")

        def fit(name):
            return lmer(model, data, optimizer=name, **kwargs)
    elif hasattr(model, "update") and getattr(model, "family", None) is None and hasattr(model, "fit"):
        def fit(name):
            return model.update(optimizer=name, **kwargs)
    else:
        raise TypeError("allfit() takes a formula and data, or a fitted linear mixed model (lmer result)")
    rows, fits = {}, {}
    for name in names:
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                res = fit(name)
        except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
            rows[name] = dict(criterion=np.nan, nfev=np.nan, restarts=np.nan, seconds=time.perf_counter() - t0,
                              singular=None, converged=False, message=str(exc))
            continue
        opt = res.fit.opt
        msgs = [str(w.message).split(":")[0].split(";")[0] for w in caught]
        rows[name] = dict(criterion=float(res.objective), nfev=int(opt.nfev), restarts=int(opt.restarts),
                          seconds=time.perf_counter() - t0, singular=bool(res.fit.is_singular),
                          converged=not opt.messages, message="; ".join(msgs))
        fits[name] = res
    table = pd.DataFrame.from_dict(rows, orient="index")
    best = table["criterion"].min()
    table.insert(1, "excess", table["criterion"] - best)
    table.index.name = "optimizer"
    fixef = pd.DataFrame({k: v.fixef for k, v in fits.items()}).T
    theta = pd.DataFrame({k: pd.Series(v.theta) for k, v in fits.items()}).T
    sdcor = pd.DataFrame({k: _sdcor(v) for k, v in fits.items()}).T
    return AllFit(table=table, fixef=fixef, theta=theta, sdcor=sdcor, fits=fits)


def _sdcor(res) -> pd.Series:
    vc = res.varcorr
    labels = [" ".join(str(x) for x in row if isinstance(x, str) and x) for row in
              vc[[c for c in vc.columns if c in ("grp", "var1", "var2")]].itertuples(index=False)]
    return pd.Series(vc["sdcor"].to_numpy(float), index=labels)
