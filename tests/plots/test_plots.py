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
    assert ax.get_xlabel() == "group size (n)"
    png(ax.figure)


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
    page = sleep.report(path)
    assert path.read_text() == page

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
