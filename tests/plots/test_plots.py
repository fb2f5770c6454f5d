"""Every plot renders headless (Agg) and draws what it should."""
from __future__ import annotations

import io
import warnings

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import mixedfx as mfx  # noqa: E402


@pytest.fixture(scope="module")
def sleep():
    return mfx.lmer("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))


def png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    data = buf.getvalue()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    plt.close(fig)
    return data


def test_caterpillar(sleep):
    ax = mfx.plots.caterpillar(sleep, term="Days")
    assert len(ax.get_yticklabels()) == 18
    assert ax.get_xlabel().startswith("conditional mode of Days")
    ys = ax.lines[0].get_xdata() if ax.lines else ax.containers[0].lines[0].get_xdata()
    assert np.all(np.diff(np.sort(ys)) >= 0)
    png(ax.figure)


def test_shrinkage_plot_draws_raw_blup_and_arrows(sleep):
    ax = mfx.plots.shrinkage_plot(sleep)
    assert len(ax.collections) == 2                           # raw and BLUP scatters
    assert sum(len(c.get_offsets()) for c in ax.collections) == 36
    assert len([t for t in ax.texts]) == 18                   # one arrow per subject
    # sleepstudy's subjects all have 10 days: size says nothing, the subjects are laid out in order
    assert ax.get_xlabel().startswith("group, ordered by raw estimate") and "n = 10" in ax.get_xlabel()
    raw = ax.collections[0].get_offsets()
    assert sorted(raw[:, 0]) == list(range(18)) and np.all(np.diff(raw[np.argsort(raw[:, 0]), 1]) >= 0)
    png(ax.figure)


def test_shrinkage_plot_for_slopes_and_unequal_sizes(sleep):
    ax = mfx.plots.shrinkage_plot(sleep, term="Days")
    blups = np.sort(ax.collections[1].get_offsets()[:, 1])
    np.testing.assert_allclose(blups, np.sort(sleep.ranef(long=False)["Subject"]["Days"].to_numpy()))
    assert ax.get_ylabel().startswith("group effect: Days")
    png(ax.figure)
    with pytest.raises(KeyError, match="Dayz"):
        mfx.plots.shrinkage_plot(sleep, term="Dayz")
    from conftest import seed000_teams
    m = mfx.lmer("csat ~ wait + (1 | team)", seed000_teams())
    ax2 = mfx.plots.shrinkage_plot(m)
    assert ax2.get_xlabel() == "group size (n)" and ax2.get_xscale() == "log"
    sizes = m.shrinkage()["n"].to_numpy(dtype=float)
    x = ax2.collections[1].get_offsets()[:, 0]
    np.testing.assert_allclose(np.sort(x), np.sort(sizes), rtol=0.15)   # tied sizes spread a little
    png(ax2.figure)


def test_caterpillar_draws_every_term_by_default(sleep):
    axs = mfx.plots.caterpillar(sleep)
    assert len(axs) == 2 and [a.get_title() for a in axs] == ["(Intercept) | Subject", "Days | Subject"]
    # both panels list the subjects in the order of the intercepts
    re = sleep.ranef(long=False)["Subject"]
    order = list(re["(Intercept)"].sort_values(kind="stable").index)
    assert [t.get_text() for t in axs[0].get_yticklabels()] == order
    days = np.asarray(axs[1].containers[0].lines[0].get_xdata(), dtype=float)
    np.testing.assert_allclose(days, re.loc[order, "Days"].to_numpy())
    png(axs[0].figure)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pen = mfx.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", mfx.datasets.load("penicillin"))
    axs2 = mfx.plots.caterpillar(pen)
    assert [a.get_ylabel() for a in axs2] == ["plate", "sample"]
    assert [len(a.get_yticklabels()) for a in axs2] == [24, 6]
    png(axs2[0].figure)
    assert mfx.plots.caterpillar(pen, group="sample").get_ylabel() == "sample"
    with pytest.raises(KeyError, match="grouping factor 'batch'"):
        mfx.plots.caterpillar(pen, group="batch")


def test_qq_and_residual_plots(sleep):
    ax = mfx.plots.qq(sleep, "residuals")
    assert len(ax.lines) == 2 and len(ax.lines[0].get_xdata()) == 180
    ax2 = mfx.plots.qq(sleep, "ranef")
    assert len(ax2.lines[0].get_xdata()) == 18 and ax2.get_ylabel() == "conditional modes: (Intercept) | Subject"
    assert len(mfx.plots.qq(sleep, "ranef", term="Days").lines[0].get_xdata()) == 18
    ax3 = mfx.plots.residuals_vs_fitted(sleep)
    assert len(ax3.collections[0].get_offsets()) == 180 and ax3.get_ylabel() == "Pearson residuals"
    for a in (ax, ax2, ax3):
        png(a.figure)


def test_random_effect_ellipse(sleep):
    ax = mfx.plots.ranef_ellipse(sleep)
    from matplotlib.patches import Ellipse
    ellipses = [p for p in ax.patches if isinstance(p, Ellipse)]
    assert len(ellipses) == 2
    assert ellipses[1].width == pytest.approx(2 * ellipses[0].width)
    assert len(ax.collections[0].get_offsets()) == 18
    png(ax.figure)
    with pytest.raises(ValueError, match="two or more columns"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mfx.plots.ranef_ellipse(mfx.lmer("Yield ~ 1 + (1 | Batch)", mfx.datasets.load("dyestuff")))


def test_default_panel(sleep):
    fig = sleep.plot()
    assert len(fig.axes) == 4
    labels = [a.get_ylabel() for a in fig.axes]
    assert "Pearson residuals" in labels and "Subject" in labels
    assert any(lab.startswith("conditional modes") for lab in labels)
    png(fig)


def test_html_report_is_self_contained(sleep, tmp_path):
    from html.parser import HTMLParser
    path = tmp_path / "fit.html"
    assert sleep.report(path) is None            # written to the file, nothing echoed
    page = path.read_text()

    class Collect(HTMLParser):
        def __init__(self):
            super().__init__()
            self.imgs, self.ids, self.stack = [], set(), []

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "img":
                self.imgs.append(a.get("src", ""))
            if "id" in a:
                self.ids.add(a["id"])

    p = Collect()
    p.feed(page)
    assert len(p.imgs) == 3 and all(src.startswith("data:image/png;base64,") for src in p.imgs)
    import base64
    for src in p.imgs:
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert {"summary", "variance", "shrinkage", "checks"} <= p.ids
    assert "REML criterion at convergence: 1743.6" in page
    assert "http://" not in page and "https://" not in page          # nothing external


def test_pooling_spectrum_three_panels():
    from conftest import seed000_teams
    cmp = mfx.compare_pooling("csat ~ wait + (1 | team)", seed000_teams())
    axs = mfx.plots.pooling_spectrum(cmp, "wait")
    assert [a.get_title() for a in axs] == ["complete pooling", "no pooling", "partial pooling"]
    assert len(axs[0].lines) == 1 and len(axs[1].lines) == 18 and len(axs[2].lines) == 18
    # the highlighted (smallest) team is drawn thicker in the no- and partial-pooling panels
    assert sum(line.get_linewidth() == 2 for line in axs[2].lines) == 1
    sizes = cmp.model.shrinkage()[["group", "n"]]
    smallest = sizes.loc[sizes["n"].idxmin()]
    labels = [t.get_text() for t in axs[2].get_legend().get_texts()]
    assert labels[0] == f"team {smallest['group']} (n = {smallest['n']}, smallest)"
    assert labels[1:] == ["other groups", "data"]
    png(axs[0].figure)


def test_conditional_vs_marginal_and_design_effect_curves(sleep):
    rng = np.random.default_rng(2025)
    import pandas as pd
    g = np.repeat(np.arange(16), 250)
    x = rng.uniform(0, 10, size=g.size)
    y = (rng.uniform(size=g.size) < 1 / (1 + np.exp(-(-1 + 0.22 * x + rng.normal(0, 1.2, 16)[g])))).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        glmm = mfx.glmer("y ~ x + (1 | market)", pd.DataFrame({"y": y, "x": x, "market": g}))
    ax = mfx.plots.conditional_vs_marginal(glmm, "x")
    assert len(ax.lines) == 16 + 2
    typical, averaged = ax.lines[-2].get_ydata(), ax.lines[-1].get_ydata()
    # the population-averaged curve is flatter: its range is smaller than the typical group's
    assert np.ptp(averaged) < np.ptp(typical)
    png(ax.figure)
    ax2 = mfx.plots.design_effect_curve(sleep)
    assert ax2.get_xlabel() == "group size m" and len(ax2.lines) == 2
    png(ax2.figure)
    with pytest.raises(ValueError, match="GLMMs"):
        mfx.plots.conditional_vs_marginal(sleep, "Days")


def test_profile_plot_panels_lines_and_interval_marks(sleep):
    prof = sleep.profile(parm=["Days", "sd_Days|Subject"], points=4)
    axs = mfx.plots.profile_plot(prof)
    assert [a.get_xlabel() for a in axs if a.get_visible()] == ["Days", "sd_Days|Subject"]
    ci = sleep.confint(method="profile", parm=["Days"])
    a = axs[0]
    zeta_line = a.lines[0]
    assert len(zeta_line.get_xdata()) == len(prof[prof["param"] == "Days"])
    horiz = [ln for ln in a.lines[1:] if np.ptp(ln.get_ydata()) == 0]
    vert = [ln for ln in a.lines[1:] if np.ptp(ln.get_xdata()) == 0]
    assert sorted(round(ln.get_ydata()[0], 2) for ln in horiz) == [-1.96, 1.96]
    # the marked interval (interpolated on the plotted curve) is close to the profile interval
    np.testing.assert_allclose(sorted(ln.get_xdata()[0] for ln in vert), ci.loc["Days"].to_numpy(), rtol=0.02)
    png(a.figure)


def test_profile_plot_clips_exploding_zeta(sleep):
    import pandas as pd
    prof = sleep.profile(parm=["cor_Days.(Intercept)|Subject"], points=4)
    name = "cor_Days.(Intercept)|Subject"
    # a correlation profile that shoots up next to +1 (seen: zeta = 3e7)
    bad = pd.concat([prof, pd.DataFrame({"param": [name], "value": [0.99999], "zeta": [3e7]})])
    ax = mfx.plots.profile_plot(bad)[0]
    lo, hi = ax.get_ylim()
    assert -5 < lo < -3 and 3 < hi < 5
    marks = [ln for ln in ax.lines if ln.get_marker() == "^"]
    assert len(marks) == 1 and marks[0].get_xdata()[0] == pytest.approx(0.99999)
    assert "clipped" in ax.get_legend().get_texts()[0].get_text()
    png(ax.figure)
    # an ordinary profile keeps matplotlib's range and has no marks
    ax2 = mfx.plots.profile_plot(prof)[0]
    assert not [ln for ln in ax2.lines if ln.get_marker() in ("^", "v")] and ax2.get_legend() is None


@pytest.fixture(scope="module")
def binary_glmm():
    import pandas as pd
    rng = np.random.default_rng(7)
    g = np.repeat(np.arange(20), 40)
    x = rng.normal(size=g.size)
    y = (rng.uniform(size=g.size) < 1 / (1 + np.exp(-(0.3 + x + rng.normal(0, 1, 20)[g])))).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mfx.glmer("y ~ x + (1 | g)", pd.DataFrame({"y": y, "x": x, "g": g}), family="binomial")


def test_binned_residuals(binary_glmm):
    m = binary_glmm
    ax = mfx.plots.binned_residuals(m)
    mu, r = m.fitted(), m.fit.design.y - m.fitted()
    nb = int(np.floor(np.sqrt(len(mu))))                       # arm's default for n >= 100: 28
    bins = np.array_split(np.argsort(mu, kind="stable"), nb)
    xbar = np.array([mu[b].mean() for b in bins])
    ybar = np.array([r[b].mean() for b in bins])
    se2 = np.array([2 * r[b].std(ddof=1) / np.sqrt(len(b)) for b in bins])
    upper, lower = ax.lines[0], ax.lines[1]
    np.testing.assert_allclose(upper.get_ydata(), se2)
    np.testing.assert_allclose(lower.get_ydata(), -se2)
    pts = [ln for ln in ax.lines if ln.get_marker() == "o"]
    got = np.concatenate([np.column_stack([ln.get_xdata(), ln.get_ydata()]) for ln in pts])
    got = got[np.argsort(got[:, 0])]
    np.testing.assert_allclose(got, np.column_stack([xbar, ybar]))
    assert len(mfx.plots.binned_residuals(m, bins=5).lines[0].get_xdata()) == 5
    with pytest.raises(ValueError, match="bins"):
        mfx.plots.binned_residuals(m, bins=0)
    png(ax.figure)


def test_diagnostic_panel_uses_binned_residuals_for_binary_responses(binary_glmm, sleep):
    fig = binary_glmm.plot()
    assert fig.axes[0].get_title().startswith("binned residuals")
    png(fig)
    assert not sleep.plot().axes[0].get_title()
