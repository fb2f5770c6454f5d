"""The notebook HTML of a fit: compact, self-contained, escaped, with lme4's tables."""
from __future__ import annotations

import warnings
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx


class _Tables(HTMLParser):
    """Collect every table as rows of cell texts (with colspans), the captions and all tags."""

    def __init__(self):
        super().__init__()
        self.tables, self.captions, self.tags, self._cell, self._in_caption = [], [], [], None, False
        self.spans = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = ""
            self.spans.append(int(dict(attrs).get("colspan", 1)))
        elif tag == "caption":
            self._in_caption = True
            self.captions.append("")

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append(self._cell.strip())
            self._cell = None
        elif tag == "caption":
            self._in_caption = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        elif self._in_caption:
            self.captions[-1] += data


def parse(page: str) -> _Tables:
    p = _Tables()
    p.feed(page)
    return p


def table(p: _Tables, caption: str) -> list[list[str]]:
    return _captioned(p)[p.captions.index(caption)]


def _captioned(p: _Tables) -> list:
    """Tables that have a caption, in document order."""
    out, t_index = [], -1
    for tag, _ in p.tags:
        if tag == "table":
            t_index += 1
        elif tag == "caption":
            out.append(p.tables[t_index])
    return out


def test_lmm_html_has_model_line_statistics_and_lme4_tables(lmm_fit):
    m, _ = lmm_fit("sleep_slopes_reml")
    page = m._repr_html_()
    assert page == m.summary()._repr_html_()
    assert page.startswith("<div class='mfx-summary'><style>") and page.endswith("</div>")
    assert "<script" not in page and "http" not in page and "@import" not in page and "url(" not in page
    p = parse(page)
    assert p.captions == ["Random effects", "Fixed effects"]
    assert "Reaction ~ Days + (Days | Subject)" in page and "REML criterion at convergence" in page
    re_rows = table(p, "Random effects")
    assert re_rows[0] == ["Groups", "Name", "Variance", "Std.Dev.", "Corr"]
    vc = m.varcorr
    assert re_rows[1][:2] == ["Subject", "(Intercept)"] and re_rows[2][:2] == ["", "Days"]
    assert float(re_rows[1][2]) == pytest.approx(vc["vcov"].iloc[0], rel=1e-4)
    assert float(re_rows[1][3]) == pytest.approx(vc["sdcor"].iloc[0], rel=1e-4)
    # Std.Dev. and Corr in separate columns: the correlation sits under Corr on the slope's row
    assert re_rows[1][4] == "" and float(re_rows[2][4]) == pytest.approx(vc["sdcor"].iloc[2], abs=0.005)
    assert re_rows[3][0] == "Residual" and float(re_rows[3][3]) == pytest.approx(m.sigma, rel=1e-4)
    fe = table(p, "Fixed effects")
    assert fe[0] == ["", "Estimate", "SE", "df", "t", "p"]
    ct = m.coef_table()
    days = next(r for r in fe if r[0] == "Days")
    np.testing.assert_allclose([float(v) for v in days[1:5]],
                               ct.loc["Days", ["estimate", "se", "df", "statistic"]].to_numpy(dtype=float),
                               rtol=2e-3)
    assert float(days[5]) == pytest.approx(ct.loc["Days", "p"], rel=1e-2)
    assert next(r for r in fe if r[0] == "(Intercept)")[5] == "<2e-16"


def test_ml_and_glmm_html_show_information_criteria_and_z_tests():
    cbpp = mfx.datasets.load("cbpp")
    g = mfx.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial")
    p = parse(g._repr_html_())
    stats = next(t for t in p.tables if t and "AIC" in t[0])[0]
    cells = dict(zip(stats[::2], stats[1::2]))
    assert float(cells["AIC"]) == pytest.approx(g.aic, abs=0.06) and int(cells["df.resid"]) == g.nobs - g.df
    fe = table(p, "Fixed effects")
    assert fe[0] == ["", "Estimate", "SE", "z", "p"]                  # no df column for z tests
    assert [r[0] for r in fe[1:]] == list(g.fixef.index)
    re_rows = table(p, "Random effects")
    assert re_rows[0] == ["Groups", "Name", "Variance", "Std.Dev."]     # no Corr column without correlations
    assert len(re_rows) == 2                                            # binomial: no residual row
    assert "Family: binomial ( logit )" in g._repr_html_()


def test_html_escapes_names_and_shows_notes():
    rng = np.random.default_rng(3)
    n = 60
    df = pd.DataFrame({"<b>g</b>": np.repeat([f"<i>{k}</i>" for k in range(6)], 10), "x": rng.normal(size=n)})
    df["y"] = df["x"] + rng.normal(size=n)
    df.loc[0, "y"] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mfx.lmer("y ~ x + (1 | `<b>g</b>`)", df)
    page = m._repr_html_()
    assert "<b>g</b>" not in page and "&lt;b&gt;g&lt;/b&gt;" in page
    assert "(1 observation(s) deleted due to missingness)</li>" in page


def test_singular_fit_note_and_correlation_columns():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"g": np.repeat(np.arange(6), 5), "x": np.tile(np.arange(5.0), 6), "z": rng.normal(size=30)})
    df["y"] = df["x"] + rng.normal(size=30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mfx.lmer("y ~ x + z + (1 + x + z | g)", df)
    assert m.is_singular
    page = m._repr_html_()
    p = parse(page)
    re_rows = table(p, "Random effects")
    # three terms: two correlation columns under one Corr heading (colspan 2)
    assert "<th colspan='2' style='text-align:center'>Corr</th>" in page
    assert [len(r) for r in re_rows[1:4]] == [6, 6, 6] and re_rows[1][4:] == ["", ""]
    vc = m.varcorr
    c_xz = vc[(vc["var1"] == "x") & (vc["var2"] == "z")]["sdcor"].iloc[0]
    assert float(re_rows[3][5]) == pytest.approx(c_xz, abs=0.005)
    assert "boundary (singular) fit" in page and "class='mfx-warn'" in page
