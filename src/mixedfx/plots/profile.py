"""Profile zeta plot: one panel per parameter, as lme4's ``xyplot(profile(fit))``."""
from __future__ import annotations

import numpy as np
from scipy import stats

from ._mpl import plt

__all__ = ["profile_plot"]


def profile_plot(result_or_profile, parm=None, level: float = 0.95, ax=None):
    """Plot ``zeta`` against each parameter's value.

    A straight line means the profile is quadratic, so Wald intervals are adequate for that
    parameter; curvature means they are not.  Dashed horizontal lines mark ``zeta = +-z``, where
    ``z`` is the normal quantile for ``level``, and dotted vertical lines mark the profile interval.

    Parameters
    ----------
    result_or_profile : fitted model, or the DataFrame returned by ``m.profile()``
    parm : parameter names to show (default: all)
    ax : array of Axes, one per parameter (created when None)

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
