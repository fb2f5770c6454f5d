"""Pictures of the random effects: caterpillar, shrinkage and ellipse plots."""
from __future__ import annotations

import numpy as np
from scipy import stats

from ._mpl import axes

__all__ = ["caterpillar", "shrinkage_plot", "ranef_ellipse"]


def _pick(result, group, term):
    re = result.ranef()
    group = group or re["grpvar"].iloc[0]
    sub = re[re["grpvar"] == group]
    term = term or sub["term"].iloc[0]
    sub = sub[sub["term"] == term]
    if sub.empty:
        raise KeyError(f"no random effect {term!r} for grouping factor {group!r}")
    return group, term, sub


def caterpillar(result, group: str | None = None, term: str | None = None, level: float = 0.95, ax=None):
    """Conditional modes (BLUPs) with conditional intervals, sorted, one row per level."""
    ax = axes(ax)
    group, term, sub = _pick(result, group, term)
    sub = sub.sort_values("condval")
    z = stats.norm.ppf(0.5 + level / 2)
    y = np.arange(len(sub))
    ax.errorbar(sub["condval"], y, xerr=z * sub["condsd"], fmt="o", color="C0", ecolor="0.6", capsize=0)
    ax.axvline(0.0, color="0.3", lw=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels(sub["grp"].astype(str))
    ax.set_xlabel(f"conditional mode of {term} ({int(level * 100)}% interval)")
    ax.set_ylabel(group)
    return ax


def shrinkage_plot(result, group: str | None = None, ax=None):
    """Raw group estimates (open) and BLUPs (filled) against group size, arrows from raw to BLUP:
    small groups travel further toward the population value (0)."""
    ax = axes(ax)
    s = result.shrinkage(group)
    s = s[s["term"] == s["term"].iloc[0]]
    ax.scatter(s["n"], s["raw"], facecolors="none", edgecolors="C1", label="no pooling (raw)")
    ax.scatter(s["n"], s["blup"], color="C0", label="partial pooling (BLUP)")
    for n, r, b in zip(s["n"], s["raw"], s["blup"]):
        if np.isfinite(r):
            ax.annotate("", xy=(n, b), xytext=(n, r), arrowprops=dict(arrowstyle="->", color="0.5", lw=0.8))
    ax.axhline(0.0, color="0.3", lw=0.8, label="population (complete pooling)")
    ax.set_xscale("log")
    ax.set_xlabel("group size (n)")
    ax.set_ylabel(f"group effect: {s['term'].iloc[0]}")
    ax.legend(frameon=False, fontsize="small")
    return ax


def ranef_ellipse(result, group: str | None = None, ax=None):
    """Intercept-slope pairs of a vector-valued term with the fitted G's 1- and 2-SD ellipses."""
    from matplotlib.patches import Ellipse

    ax = axes(ax)
    d = result.fit.design
    k = next((i for i, b in enumerate(d.blocks) if b.p >= 2 and (group is None or b.group_label == group)), None)
    if k is None:
        raise ValueError("the model has no random-effects term with two or more columns (e.g. (x | g))")
    blk = d.blocks[k]
    lam = result.fit.layout.lambdas(result.fit.theta)[k]
    G = (result._scale ** 2 * lam @ lam.T)[:2, :2]
    b = result.fit.b[k][:, :2]
    ax.scatter(b[:, 0], b[:, 1], color="C0", s=18)
    vals, vecs = np.linalg.eigh(G)
    angle = np.degrees(np.arctan2(vecs[1, 1], vecs[0, 1]))
    for r, style in ((1, "-"), (2, "--")):
        ax.add_patch(Ellipse((0, 0), 2 * r * np.sqrt(vals[1]), 2 * r * np.sqrt(vals[0]), angle=angle,
                             fill=False, ls=style, color="C3", label=f"{r} SD of G"))
    ax.set_xlabel(f"{blk.cnames[0]} effect")
    ax.set_ylabel(f"{blk.cnames[1]} effect")
    ax.set_title(blk.group_label)
    ax.legend(frameon=False, fontsize="small")
    ax.autoscale_view()
    return ax
