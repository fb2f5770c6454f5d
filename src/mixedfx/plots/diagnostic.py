"""Residual pictures: Q-Q plots, residuals against fitted values, and the default panel."""
from __future__ import annotations

import numpy as np
from scipy import stats

from ._mpl import axes, plt

__all__ = ["qq", "residuals_vs_fitted", "diagnostic_panel"]


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


def diagnostic_panel(result, figsize=(10, 8)):
    """Residuals vs fitted, Q-Q of residuals, Q-Q of conditional modes, and a caterpillar plot."""
    from .effects import caterpillar
    fig, axs = plt().subplots(2, 2, figsize=figsize)
    residuals_vs_fitted(result, ax=axs[0, 0])
    qq(result, "residuals", ax=axs[0, 1])
    qq(result, "ranef", ax=axs[1, 0])
    caterpillar(result, ax=axs[1, 1])
    fig.tight_layout()
    return fig
