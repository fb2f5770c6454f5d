"""DHARMa's residual panels for simulation-based scaled residuals (matplotlib, imported lazily).

Left: the scaled residuals against uniform quantiles with the Kolmogorov-Smirnov, dispersion and
outlier test p-values.  Right: the residuals against the rank-transformed fitted response
(``rank / max rank``, DHARMa's default) with reference lines at 0.25, 0.5 and 0.75 and, for
each, the empirical quantile of the residuals in bins of the predictor (a binned quantile
smoother standing in for DHARMa's quantile regression); a line is drawn red when the binned
quantile test (:meth:`SimulatedResiduals.test_quantiles`) rejects at 5%.  Outliers (residual 0
or 1) are marked with red triangles.
"""
from __future__ import annotations

import numpy as np
from scipy import stats

from ..diagnostics.simulated_residuals import _bin_index, _numeric_predictor
from ._mpl import plt

__all__ = ["simulated_residuals_plot", "uniform_qq", "residuals_vs_predicted"]


def _rank(x: np.ndarray) -> np.ndarray:
    r = stats.rankdata(x, method="average")
    return r / r.max()


def uniform_qq(sim, ax=None, tests: bool = True):
    """Scaled residuals against uniform quantiles, with the test p-values (DHARMa's ``plotQQunif``)."""
    ax = plt().subplots()[1] if ax is None else ax
    r = np.sort(sim.residuals)
    expected = (np.arange(1, r.size + 1) - 0.5) / r.size
    ax.plot(expected, r, "o", ms=3, color="C0", alpha=0.7)
    ax.plot([0, 1], [0, 1], color="C3", lw=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("expected (uniform quantiles)")
    ax.set_ylabel("observed (scaled residuals)")
    ax.set_title("Q-Q plot of scaled residuals")
    if tests:
        lines = [("KS test", sim.test_uniformity().pvalue), ("Dispersion test", sim.test_dispersion().pvalue),
                 ("Outlier test", sim.test_outliers().pvalue)]
        for k, (label, p) in enumerate(lines):
            bad = p < 0.05
            ax.text(0.04, 0.95 - 0.07 * k, f"{label}: p = {p:.3g}" + (" (deviation significant)" if bad else " n.s."),
                    transform=ax.transAxes, va="top", fontsize=8, color="C3" if bad else "black")
    return ax


def residuals_vs_predicted(sim, ax=None, predictor=None, quantiles=(0.25, 0.5, 0.75), rank: bool = True,
                           bins: int | None = None):
    """Scaled residuals against the (rank-transformed) fitted response or ``predictor``, with
    reference lines at ``quantiles`` and their binned empirical quantiles (DHARMa's ``plotResiduals``)."""
    ax = plt().subplots()[1] if ax is None else ax
    x = sim.fitted if predictor is None else _numeric_predictor(predictor)
    if x.shape[0] != sim.n_obs:
        raise ValueError(f"predictor has {x.shape[0]} values but there are {sim.n_obs} residuals")
    xs = _rank(x) if rank else x
    r = sim.residuals
    edge = (r == 0) | (r == 1)
    ax.scatter(xs[~edge], r[~edge], s=8, color="C0", alpha=0.6)
    if edge.any():
        ax.scatter(xs[edge], r[edge], s=30, marker="^", color="C3", label="simulation outliers")
    test = sim.test_quantiles(predictor=x, quantiles=quantiles, bins=bins)
    groups = _bin_index(x, bins)
    centres = np.array([np.median(xs[groups == g]) for g in range(groups.max() + 1)])
    adjusted = test.details["adjusted"]
    for q, p in zip(quantiles, adjusted):
        ax.axhline(q, color="grey", lw=0.8, ls="--")
        level = np.array([np.quantile(r[groups == g], q) for g in range(groups.max() + 1)])
        ax.plot(centres, level, color="C3" if p < 0.05 else "black", lw=1.5)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("model predictions (rank transformed)" if rank else "model predictions")
    ax.set_ylabel("scaled residuals")
    verdict = "quantile deviations detected" if test.pvalue < 0.05 else "no significant problems detected"
    ax.set_title(f"Residuals vs predicted: {verdict}", color="C3" if test.pvalue < 0.05 else "black", fontsize=10)
    return ax


def simulated_residuals_plot(sim, ax=None, quantiles=(0.25, 0.5, 0.75), rank: bool = True):
    """The two DHARMa panels side by side; ``ax``: a pair of Axes, or None for a new figure.
    Returns the two Axes."""
    if ax is None:
        _, ax = plt().subplots(1, 2, figsize=(10, 4.5))
    ax = list(np.ravel(ax))
    if len(ax) != 2:
        raise ValueError(f"ax must hold two Axes (Q-Q plot, residuals vs predicted), got {len(ax)}")
    uniform_qq(sim, ax=ax[0])
    residuals_vs_predicted(sim, ax=ax[1], quantiles=quantiles, rank=rank)
    return ax
