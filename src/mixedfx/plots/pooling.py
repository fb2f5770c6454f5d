"""The pooling spectrum, conditional vs population-averaged GLMM curves, and the design-effect curve."""
from __future__ import annotations

import numpy as np

from ._mpl import axes, plt

__all__ = ["pooling_spectrum", "conditional_vs_marginal", "design_effect_curve"]


def _column(result, x):
    names = list(result.fit.design.xnames)
    if x not in names:
        raise KeyError(f"{x!r} is not a fixed-effect column; columns: {names}")
    return names.index(x)


def pooling_spectrum(comparison, x: str, highlight=None, axs=None):
    """Three panels (complete, no, partial pooling) of the regression lines on ``x``, one per group,
    with the data in grey and one group (default: the smallest) highlighted; the legend on the
    last panel names the highlighted group and its size.

    ``comparison`` is the result of :func:`mixedfx.compare_pooling`.
    """
    m = comparison.model
    d = m.fit.design
    j = _column(m, x)
    xs = d.X[:, j]
    blk = d.blocks[0]
    sizes = np.bincount(blk.codes, minlength=blk.nlevels)
    smallest = highlight is None
    highlight = highlight if highlight is not None else blk.levels[int(np.argmin(sizes))]
    if highlight not in list(blk.levels) and str(highlight) in list(blk.levels):
        highlight = str(highlight)
    if highlight not in list(blk.levels):
        raise KeyError(f"highlight={highlight!r} is not a level of {blk.group_label!r}")
    n_hl = int(sizes[list(blk.levels).index(highlight)])
    if axs is None:
        fig, axs = plt().subplots(1, 3, figsize=(13, 4), sharey=True)
    grid = np.linspace(xs.min(), xs.max(), 50)
    c = comparison.coefficients
    g = comparison.groups
    icpt = "(Intercept)"
    titles = ("complete pooling", "no pooling", "partial pooling")
    for ax, title in zip(axs, titles):
        ax.scatter(xs, d.y, s=4, color="0.8")
        hl = blk.codes == list(blk.levels).index(highlight)
        ax.scatter(xs[hl], d.y[hl], s=12, color="C3")
        ax.set_title(title)
        ax.set_xlabel(x)
    axs[0].plot(grid, c.loc[icpt, "complete_estimate"] + c.loc[x, "complete_estimate"] * grid, color="C0", lw=2)
    for kind, ax in (("no_pooling", axs[1]), ("partial_pooling", axs[2])):
        for level in blk.levels:
            rows = g[g["group"] == level].set_index("coefficient")[kind]
            if not np.isfinite(rows.get(icpt, np.nan)) or not np.isfinite(rows.get(x, np.nan)):
                continue
            line = rows[icpt] + rows[x] * grid
            hl_line = level == highlight
            ax.plot(grid, line, color="C3" if hl_line else "C0", lw=2 if hl_line else 0.7,
                    alpha=1 if hl_line else 0.6, zorder=3 if hl_line else 2)
    axs[0].set_ylabel("response")
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], color="C3", lw=2, marker="o", ms=4,
                      label=f"{blk.group_label} {highlight} (n = {n_hl}{', smallest' if smallest else ''})"),
               Line2D([], [], color="C0", lw=0.7, label="other groups"),
               Line2D([], [], ls="none", marker="o", ms=3, color="0.8", label="data")]
    axs[-1].legend(handles=handles, frameon=False, fontsize="small", loc="best")
    return axs


def conditional_vs_marginal(result, x: str, ax=None, groups: int | None = 30):
    """GLMM: thin curves for groups (their conditional modes), the typical group (b = 0) and the
    population-averaged curve (random effects integrated out) against ``x``, other columns at their means."""
    if getattr(result, "family", None) is None:
        raise ValueError("conditional vs population-averaged curves are for GLMMs")
    ax = axes(ax)
    d = result.fit.design
    j = _column(result, x)
    grid = np.linspace(d.X[:, j].min(), d.X[:, j].max(), 60)
    base = d.X.mean(axis=0)
    eta0 = base @ result.fit.beta + (grid - base[j]) * result.fit.beta[j]
    link = result.family.link
    b = result.fit.b[0][:, 0]
    for bj in b[:groups] if groups else b:
        ax.plot(grid, link.inverse(eta0 + bj), color="0.75", lw=0.6)
    ax.plot(grid, link.inverse(eta0), color="C0", lw=2, label="typical group (b = 0)")
    from ..core.expectation import normal_expectation
    lam = result.fit.layout.lambdas(result.fit.theta)
    v = sum(float((result._scale ** 2 * l @ l.T)[0, 0]) for l in lam)
    ax.plot(grid, normal_expectation(link.inverse, eta0, np.full(len(grid), v)), color="C3", lw=2,
            label="population-averaged")
    ax.set_xlabel(x)
    ax.set_ylabel("mean response")
    ax.legend(frameon=False, fontsize="small")
    return ax


def design_effect_curve(result, group: str | None = None, ax=None, max_size: int | None = None):
    """Design effect ``1 + (m - 1) rho`` against group size ``m`` for the fitted ICC, the model's
    (Kish) average group size marked."""
    ax = axes(ax)
    t = result.icc(by_group=True)
    group = group or t.index[0]
    rho, m_obs = float(t.loc[group, "icc"]), float(t.loc[group, "mean_size"])
    top = max_size or max(2 * m_obs, 10)
    m = np.linspace(1, top, 200)
    ax.plot(m, 1 + (m - 1) * rho, color="C0", label=f"rho = {rho:.3f}")
    ax.plot([m_obs], [1 + (m_obs - 1) * rho], "o", color="C3", label=f"this model (m = {m_obs:.1f})")
    ax.set_xlabel("group size m")
    ax.set_ylabel("design effect")
    ax.set_title(group)
    ax.legend(frameon=False, fontsize="small")
    return ax
