"""Pictures of the random effects: caterpillar, shrinkage and ellipse plots."""
from __future__ import annotations

import numpy as np
from scipy import stats

from ._mpl import axes, plt

__all__ = ["caterpillar", "shrinkage_plot", "ranef_ellipse"]


def caterpillar(result, group: str | None = None, term: str | None = None, level: float = 0.95, ax=None):
    """Conditional modes (BLUPs) with conditional intervals, sorted, one row per level.

    With ``ax=None`` every term of every grouping factor gets its own panel (one row of panels per
    grouping factor; the levels ordered by the factor's first term and shared by its panels, as
    lme4's ``dotplot(ranef(fit))``); ``group`` and ``term`` restrict the panels.  With a single
    Axes given, one panel is drawn (default: the first grouping factor's first term).

    Returns
    -------
    The Axes when one panel is drawn, else a numpy array of Axes (one per term).
    """
    re = result.ranef()
    if group is not None and group not in set(re["grpvar"]):
        raise KeyError(f"no grouping factor {group!r}; the model has {list(dict.fromkeys(re['grpvar']))}")
    if term is not None and term not in set(re.loc[re["grpvar"] == group, "term"] if group else re["term"]):
        raise KeyError(f"no random effect {term!r}" + (f" for grouping factor {group!r}" if group else "")
                       + f"; terms: {list(dict.fromkeys(re['term']))}")
    panels = [(g, t) for g, t in dict.fromkeys(zip(re["grpvar"], re["term"]))
              if (group is None or g == group) and (term is None or t == term)]
    single = ax is not None and not isinstance(ax, np.ndarray) and not isinstance(ax, (list, tuple))
    if single or len(panels) == 1:
        g, t = panels[0]
        return _caterpillar_panel(re, g, t, level, axes(ax if single or ax is None else np.ravel(ax)[0]))
    order = list(dict.fromkeys(g for g, _ in panels))
    if ax is None:
        ncol = max(sum(1 for g2, _ in panels if g2 == g) for g in order)
        nlev = [int((re["grpvar"] == g).sum() / max(1, len({t for g2, t in panels if g2 == g}))) for g in order]
        heights = [min(max(2.0, 0.18 * n + 1.0), 9.0) for n in nlev]
        fig, grid = plt().subplots(len(order), ncol, figsize=(3.6 * ncol, sum(heights)), squeeze=False,
                                   gridspec_kw={"height_ratios": heights})
        slots = []
        for r, g in enumerate(order):
            ts = [t for g2, t in panels if g2 == g]
            slots.extend(grid[r, :len(ts)])
            for a in grid[r, len(ts):]:
                a.set_visible(False)
    else:
        slots = list(np.ravel(ax))
        if len(slots) < len(panels):
            raise ValueError(f"caterpillar needs {len(panels)} axes (one per term), got {len(slots)}")
    drawn = []
    for a, (g, t) in zip(slots, panels):
        first_panel = next(t2 for g2, t2 in panels if g2 == g)
        _caterpillar_panel(re, g, t, level, a, order_by=re.loc[re["grpvar"] == g, "term"].iloc[0],
                           labels=t == first_panel)
        drawn.append(a)
    if ax is None:
        drawn[0].figure.tight_layout()
    return np.array(drawn, dtype=object)


def _caterpillar_panel(re, group, term, level, ax, order_by=None, labels=True):
    sub = re[(re["grpvar"] == group) & (re["term"] == term)]
    if order_by is None or order_by == term:
        sub = sub.sort_values("condval", kind="stable")
    else:
        key = re[(re["grpvar"] == group) & (re["term"] == order_by)].set_index("grp")["condval"]
        sub = sub.assign(_k=sub["grp"].map(key).to_numpy()).sort_values("_k", kind="stable")
    z = stats.norm.ppf(0.5 + level / 2)
    y = np.arange(len(sub))
    xerr = z * sub["condsd"] if "condsd" in sub else None
    ax.errorbar(sub["condval"], y, xerr=xerr, fmt="o", ms=3.5, color="C0", ecolor="0.6", capsize=0)
    ax.axvline(0.0, color="0.3", lw=0.8)
    if len(sub) <= 60:
        ax.set_yticks(y)
        ax.set_yticklabels(sub["grp"].astype(str) if labels else [], fontsize="small" if len(sub) > 25 else None)
    else:
        ax.set_yticks([])
    ax.set_ylim(-0.7, len(sub) - 0.3)
    ax.set_xlabel(f"conditional mode of {term} ({int(level * 100)}% interval)")
    ax.set_ylabel(group if labels else "")
    ax.set_title(f"{term} | {group}", fontsize="medium")
    return ax


def shrinkage_plot(result, group: str | None = None, term: str | None = None, ax=None):
    """Raw group estimates (open) and BLUPs (filled), arrows from raw to BLUP: partial pooling
    pulls each group toward the population value (0), small groups further.

    With groups of different sizes the x axis is the group size (log scale when the sizes span a
    factor of 4 or more; tied sizes are spread slightly so the arrows stay apart).  When every group
    has the same size, size says nothing: the groups are laid out side by side, ordered by their
    raw estimate.  ``term`` picks the random-effect column (default: the first, usually the
    intercept), e.g. ``term="Days"`` for the random slopes of ``(Days | Subject)``.
    """
    ax = axes(ax)
    s = result.shrinkage(group)
    terms = list(dict.fromkeys(s["term"]))
    term = terms[0] if term is None else term
    if term not in terms:
        raise KeyError(f"no random effect {term!r} for this grouping factor; its terms are {terms}")
    s = s[s["term"] == term].reset_index(drop=True)
    n = s["n"].to_numpy(dtype=float)
    raw, blup = s["raw"].to_numpy(dtype=float), s["blup"].to_numpy(dtype=float)
    equal = np.ptp(n) == 0
    if equal:
        key = np.where(np.isfinite(raw), raw, blup)
        x = np.empty(len(s))
        x[np.argsort(key, kind="stable")] = np.arange(len(s))
    else:
        logscale = n.max() / n.min() >= 4
        x = n.copy()
        for v in np.unique(n):                       # spread tied sizes a little, in display units
            idx = np.flatnonzero(n == v)
            if len(idx) > 1:
                off = np.linspace(-1, 1, len(idx)) * min(0.12, 0.02 * len(idx))
                x[idx] = v * np.exp(off) if logscale else v + off * max(np.ptp(n), 1) * 0.25
    ax.scatter(x, raw, facecolors="none", edgecolors="C1", label="no pooling (raw)", zorder=3)
    ax.scatter(x, blup, color="C0", s=22, label="partial pooling (BLUP)", zorder=3)
    for xi, r, b in zip(x, raw, blup):
        if np.isfinite(r):
            ax.annotate("", xy=(xi, b), xytext=(xi, r), arrowprops=dict(arrowstyle="->", color="0.5", lw=0.8))
    ax.axhline(0.0, color="0.3", lw=0.8, label="population (complete pooling)")
    if equal:
        ax.set_xlabel(f"group, ordered by raw estimate (all groups have n = {int(n[0])})")
        ax.set_xticks(x)
        ax.set_xticklabels(s["group"].astype(str), rotation=90,
                           fontsize="small" if len(s) > 20 else None)
        if len(s) > 60:
            ax.set_xticks([])
    else:
        if logscale:
            ax.set_xscale("log")
        ax.set_xlabel("group size (n)")
    ax.set_ylabel(f"group effect: {term}" + ("" if term == "(Intercept)" else " (deviation from the fixed effect)"))
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
