"""Power curve: estimated power against sample size with binomial confidence intervals."""
from __future__ import annotations

import numpy as np

from ._mpl import axes

__all__ = ["power_plot"]


def power_plot(curve, ax=None, target: float | None = 0.8):
    """Plot a :class:`mixedfx.results.power_result.PowerCurve`: power (points and line) against size
    with the Clopper-Pearson intervals as error bars, and a dashed line at ``target`` (None: none).

    Returns the Axes.
    """
    ax = axes(ax)
    t = curve.table
    x = t["size"].to_numpy(float)
    p = t["power"].to_numpy(float)
    err = np.vstack([p - t["lower"].to_numpy(float), t["upper"].to_numpy(float) - p])
    ax.errorbar(x, p, yerr=err, marker="o", capsize=3, color="C0")
    if target is not None:
        ax.axhline(target, color="grey", ls="--", lw=1)
    ax.axhline(curve.alpha, color="grey", ls=":", lw=1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(f"number of levels of {curve.along}" + (f" per {', '.join(curve.within)}" if curve.within else "")
                  if curve.along is not None else "observations")
    ax.set_ylabel("power")
    ax.set_title(f"power for {curve.test} (alpha = {curve.alpha:g}, {curve.nsim} simulations per size)")
    return ax
