"""Profile zeta plot: one panel per parameter, as lme4's ``xyplot(profile(fit))``."""
from __future__ import annotations

import numpy as np
from scipy import stats

from ._mpl import plt

__all__ = ["profile_plot"]


def profile_plot(result_or_profile, parm=None, level: float = 0.95, ax=None, zeta_max: float = 4.0):
    """Plot ``zeta`` against each parameter's value.

    A straight line means the profile is quadratic, so Wald intervals are adequate for that
    parameter; curvature means they are not.  Dashed horizontal lines mark ``zeta = +-z``, where
    ``z`` is the normal quantile for ``level``, and dotted vertical lines mark the profile interval.

    Parameters
    ----------
    result_or_profile : fitted model, or the DataFrame returned by ``m.profile()``
    parm : parameter names to show (default: all)
    ax : array of Axes, one per parameter (created when None)
    zeta_max : the y-range is clipped to ``|zeta| <= zeta_max`` (at least ``z + 0.5``).  Profiles
        of correlations can shoot up near +-1 (zeta of 1e7 is possible); such points are drawn
        as triangles on the clipped edge, so the useful part of the panel keeps its scale.

    Returns
    -------
    numpy array of Axes
    """
    prof = result_or_profile if hasattr(result_or_profile, "columns") else result_or_profile.profile(parm=parm)
    names = list(dict.fromkeys(prof["param"])) if parm is None else list(np.atleast_1d(parm))
    if ax is None:
        ncol = min(3, len(names))
        nrow = int(np.ceil(len(names) / ncol))
        fig, ax = plt().subplots(nrow, ncol, figsize=(4 * ncol, 3.2 * nrow), squeeze=False)
    axs = np.atleast_1d(ax).ravel()
    if len(axs) < len(names):
        raise ValueError(f"profile_plot needs {len(names)} axes, got {len(axs)}")
    z = stats.norm.ppf(0.5 + level / 2)
    for a, name in zip(axs, names):
        d = prof[prof["param"] == name].sort_values("value")
        if d.empty:
            raise KeyError(f"parameter {name!r} is not in the profile; available: {sorted(set(prof['param']))}")
        a.plot(d["value"], d["zeta"], "-o", ms=3, color="C0")
        _clip(a, d["value"].to_numpy(dtype=float), d["zeta"].to_numpy(dtype=float), max(zeta_max, z + 0.5))
        for s in (-z, z):
            a.axhline(s, ls="--", lw=0.8, color="grey")
            x = np.interp(s, d["zeta"], d["value"]) if d["zeta"].min() <= s <= d["zeta"].max() else None
            if x is not None:
                a.axvline(x, ls=":", lw=0.8, color="C3")
        a.set_xlabel(name)
        a.set_ylabel("zeta")
    for a in axs[len(names):]:
        a.set_visible(False)
    return axs


def _clip(a, value: np.ndarray, zeta: np.ndarray, limit: float) -> None:
    """Limit the y-range to ``+-limit`` (with a margin) when some zeta lies beyond it, and mark
    the points beyond with triangles on the edge ("zeta clipped" in the legend)."""
    finite = np.isfinite(zeta)
    out = ~finite | (np.abs(zeta) > limit)
    inside = zeta[finite & ~out]
    lo = min(-limit, inside.min()) if inside.size else -limit
    hi = max(limit, inside.max()) if inside.size else limit
    if not out.any():
        return
    pad = 0.06 * (hi - lo)
    a.set_ylim(lo - pad, hi + pad)
    up = out & ~(zeta < 0)
    down = out & (zeta < 0)
    kw = dict(ls="none", ms=7, color="C3", clip_on=False)
    if up.any():
        a.plot(value[up], np.full(up.sum(), hi + pad), "^", label=f"zeta > {limit:g} (clipped)", **kw)
    if down.any():
        a.plot(value[down], np.full(down.sum(), lo - pad), "v", label=f"zeta < -{limit:g} (clipped)", **kw)
    a.legend(frameon=False, fontsize="x-small", loc="upper left")
