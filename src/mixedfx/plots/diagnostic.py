"""Residual pictures: Q-Q plots, residuals against fitted values, and the default panel."""
from __future__ import annotations

import numpy as np
from scipy import stats

from ._mpl import axes, plt

__all__ = ["qq", "residuals_vs_fitted", "binned_residuals", "diagnostic_panel"]


def qq(result, which: str = "residuals", group: str | None = None, term: str | None = None, ax=None):
    """Normal Q-Q plot of the (Pearson) residuals, or of one term's conditional modes (default: the
    first grouping factor's first term; modes of different terms live on different scales)."""
    ax = axes(ax)
    if which == "residuals":
        v = np.asarray(result.residuals("pearson"))
        label = "Pearson residuals"
    elif which == "ranef":
        re = result.ranef()
        group = group or re["grpvar"].iloc[0]
        term = term or re.loc[re["grpvar"] == group, "term"].iloc[0]
        v = re.loc[(re["grpvar"] == group) & (re["term"] == term), "condval"].to_numpy()
        label = f"conditional modes: {term} | {group}"
    else:
        raise ValueError("which must be 'residuals' or 'ranef'")
    v = np.sort(v)
    q = stats.norm.ppf((np.arange(1, len(v) + 1) - 0.5) / len(v))
    ax.plot(q, v, "o", ms=3, color="C0")
    slope, intercept = np.std(v, ddof=1), np.mean(v)
    ax.plot(q[[0, -1]], intercept + slope * q[[0, -1]], color="C3", lw=1)
    ax.set_xlabel("normal quantiles")
    ax.set_ylabel(label)
    return ax


def residuals_vs_fitted(result, ax=None):
    """Pearson residuals against fitted values, with the zero line."""
    ax = axes(ax)
    ax.scatter(result.fitted(), result.residuals("pearson"), s=10, color="C0")
    ax.axhline(0.0, color="C3", lw=1)
    ax.set_xlabel("fitted values")
    ax.set_ylabel("Pearson residuals")
    return ax


def _is_bernoulli(result) -> bool:
    """Binomial GLMM with 0/1 responses and unit weights (raw residuals then form two bands)."""
    family = getattr(result, "family", None)
    if family is None or family.name != "binomial":
        return False
    d = result.fit.design
    y = np.asarray(d.y, dtype=float)
    return bool(np.all((y == 0) | (y == 1)) and (d.weights is None or np.all(np.asarray(d.weights) == 1)))


def binned_residuals(result, bins: int | None = None, ax=None):
    """Binned residual plot (Gelman & Hill 2007, section 5.6; arm's ``binnedplot``).

    The rows are split into ``bins`` groups of about equal size by their fitted value (the
    conditional mean); each bin is drawn at its mean fitted value and mean response residual
    ``y - mu``, with grey lines at ``+-2 SE``, ``SE = sd(residuals in the bin) / sqrt(n_bin)``.
    About 95% of the points should lie inside the band when the model fits.  Default ``bins``
    as arm: ``n // 2`` for ``n <= 10``, 10 for ``n < 100``, else ``floor(sqrt(n))``.
    Points outside the band are drawn in red.
    """
    ax = axes(ax)
    fitted = np.asarray(result.fitted(), dtype=float)
    resid = np.asarray(result.residuals("response"), dtype=float)
    n = len(fitted)
    if bins is None:
        bins = max(1, n // 2) if n <= 10 else (10 if n < 100 else int(np.floor(np.sqrt(n))))
    if not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    bins = int(min(bins, n))
    order = np.argsort(fitted, kind="stable")
    groups = [g for g in np.array_split(order, bins) if len(g)]
    xbar = np.array([fitted[g].mean() for g in groups])
    ybar = np.array([resid[g].mean() for g in groups])
    se = np.array([resid[g].std(ddof=1) / np.sqrt(len(g)) if len(g) > 1 else np.nan for g in groups])
    outside = np.abs(ybar) > 2 * se
    ax.plot(xbar, 2 * se, color="0.6", lw=1, label="+-2 SE")
    ax.plot(xbar, -2 * se, color="0.6", lw=1)
    ax.axhline(0.0, color="0.3", lw=0.8)
    ax.plot(xbar[~outside], ybar[~outside], "o", ms=4, color="C0", label="bin mean")
    if outside.any():
        ax.plot(xbar[outside], ybar[outside], "o", ms=4, color="C3", label="outside +-2 SE")
    ax.set_xlabel("mean fitted value (bin)")
    ax.set_ylabel("mean residual (bin)")
    judged = outside[np.isfinite(se)]
    pct = 100.0 * judged.mean() if judged.size else 0.0
    ax.set_title(f"binned residuals ({len(groups)} bins, {pct:.0f}% outside +-2 SE)", fontsize="medium")
    ax.legend(frameon=False, fontsize="small")
    return ax


def diagnostic_panel(result, figsize=(10, 8)):
    """Residuals vs fitted, Q-Q of residuals, Q-Q of conditional modes, and a caterpillar plot.

    For a binary (Bernoulli) GLMM the residuals-vs-fitted panel is the binned residual plot
    (:func:`binned_residuals`): the raw residuals there only form two bands.
    """
    from .effects import caterpillar
    fig, axs = plt().subplots(2, 2, figsize=figsize)
    if _is_bernoulli(result):
        binned_residuals(result, ax=axs[0, 0])
    else:
        residuals_vs_fitted(result, ax=axs[0, 0])
    qq(result, "residuals", ax=axs[0, 1])
    qq(result, "ranef", ax=axs[1, 0])
    caterpillar(result, ax=axs[1, 1])
    fig.tight_layout()
    return fig
