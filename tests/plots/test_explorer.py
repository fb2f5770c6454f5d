"""The pooling explorer page (issue 14): self-contained HTML, the payload of a fitted model, the CLI.

The page's JavaScript is exercised in a real browser by test_explorer_browser.py."""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys

import numpy as np
import pytest

import mixedfx as mfx
from mixedfx.plots import explorer
from mixedfx.plots.explorer import ExplorerPage, explore, explore_html, write_explorer
from mixedfx.plots.explorer_fit import fit_payload


@pytest.fixture(scope="module")
def sleep():
    return mfx.datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def m_int(sleep):
    return mfx.lmer("Reaction ~ Days + (1 | Subject)", sleep)


@pytest.fixture(scope="module")
def m_slope(sleep):
    return mfx.lmer("Reaction ~ Days + (Days | Subject)", sleep)


def _payload(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="mfx-payload">(.*?)</script>', page, re.S)
    assert m, "no payload in the page"
    return json.loads(m.group(1))


def _assert_self_contained(page: str):
    assert page.startswith("<!DOCTYPE html>") and "<title>" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I), "external src/href"
    assert not re.search(r"<script[^>]*\ssrc\s*=", page, re.I), "external script"
    assert not re.search(r"<link\b", page, re.I) and "@import" not in page
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", page, re.I), "external url() in CSS"
    assert "__MFX_" not in page, "an unfilled template slot"
    # the only script tags: the JSON payload and the inline program
    assert len(re.findall(r"<script\b", page)) == 2


def test_simulation_page_is_self_contained_and_carries_the_settings():
    page = explore_html(J=20, n=5, sigma_u=0.5, sigma_e=4, seed=7, method="no")
    _assert_self_contained(page)
    p = _payload(page)
    assert p["mode"] == "simulate"
    assert p["settings"] == {"J": 20, "n": 5, "sigma_u": 0.5, "sigma_e": 4.0, "seed": 7, "mu": 10.0, "method": "no"}
    assert "window.mfxExplorer" in page and "fitOneWay" in page
    # accessibility: labelled sliders, pressed-state toggles, labelled chart
    for name in ("J", "n", "sigma_u", "sigma_e"):
        assert f'<label for="ctl-{name}">' in page and f'id="ctl-{name}"' in page
    assert page.count("aria-pressed") >= 3 and 'aria-labelledby="chart-label"' in page


def test_defaults_and_bad_settings():
    assert _payload(explore_html())["settings"] == explorer.DEFAULTS
    with pytest.raises(ValueError, match="J=.*2..60"):
        explore_html(J=1)
    with pytest.raises(ValueError, match="n=.*2..100"):
        explore_html(n=101)
    with pytest.raises(ValueError, match="sigma_e"):
        explore_html(sigma_e=0)
    with pytest.raises(TypeError, match="whole number"):
        explore_html(J=3.5)
    with pytest.raises(ValueError, match="complete', 'no' or 'partial"):
        explore_html(method="some")
    assert _payload(explore_html(method="No pooling"))["settings"]["method"] == "no"


def test_intercept_payload_matches_the_fit(m_int):
    p = fit_payload(m_int)
    assert p["mode"] == "fit" and p["dim"] == 1 and p["group"] == "Subject" and p["terms"] == ["(Intercept)"]
    beta0 = m_int.fixef["(Intercept)"]
    assert p["center"] == [pytest.approx(beta0, rel=1e-14)]
    re_ = m_int.ranef().set_index("grp")
    tau2 = m_int.varcorr["vcov"].iloc[0]
    assert p["tau"][0] == pytest.approx(np.sqrt(tau2), rel=1e-12)
    assert p["sigma"] == pytest.approx(m_int.sigma, rel=1e-14)
    sleep = mfx.datasets.load("sleepstudy")
    for g in p["groups"]:
        rows = sleep[sleep["Subject"].astype(str) == g["label"]]
        assert g["n"] == len(rows) == 10
        # raw: the group's mean of Reaction - beta_Days * Days (the fixed slope held), on the intercept's scale
        raw = np.mean(rows["Reaction"] - m_int.fixef["Days"] * rows["Days"])
        assert g["raw"][0] == pytest.approx(raw, rel=1e-12)
        assert g["blup"][0] == pytest.approx(beta0 + re_.loc[g["label"], "condval"], rel=1e-12)
        assert g["condsd"][0] == pytest.approx(re_.loc[g["label"], "condsd"], rel=1e-12)
        lam = tau2 / (tau2 + m_int.sigma ** 2 / g["n"])
        assert g["lambda"][0] == pytest.approx(lam, rel=1e-9)
        # the BLUP is the raw estimate shrunk toward the fixed effect by lambda
        assert g["blup"][0] - beta0 == pytest.approx(lam * (g["raw"][0] - beta0), rel=1e-8)
        assert len(g["y"]) == 10 and np.mean(g["y"]) == pytest.approx(g["raw"][0], rel=1e-12)


def test_slope_payload_matches_the_fit(m_slope, sleep):
    p = fit_payload(m_slope)
    assert p["dim"] == 2 and p["terms"] == ["(Intercept)", "Days"]
    vc = m_slope.varcorr
    G = np.array(p["G"])
    assert G[0, 0] == pytest.approx(vc["vcov"].iloc[0], rel=1e-12)
    assert G[1, 1] == pytest.approx(vc["vcov"].iloc[1], rel=1e-12)
    assert G[0, 1] == pytest.approx(vc["vcov"].iloc[2], rel=1e-12) and G[1, 0] == G[0, 1]
    coef = m_slope.coef()["Subject"]
    re_ = m_slope.ranef()
    cv = m_slope.fit.cond_var[0]
    levels = list(m_slope.fit.design.blocks[0].levels)
    for g in p["groups"]:
        rows = sleep[sleep["Subject"].astype(str) == g["label"]]
        slope, icpt = np.polyfit(rows["Days"], rows["Reaction"], 1)     # the group's own least squares
        assert g["raw"] == [pytest.approx(icpt, rel=1e-10), pytest.approx(slope, rel=1e-9)]
        assert g["blup"] == [pytest.approx(coef.loc[g["label"], "(Intercept)"], rel=1e-12),
                             pytest.approx(coef.loc[g["label"], "Days"], rel=1e-12)]
        sd = re_[re_["grp"] == g["label"]].set_index("term")["condsd"]
        assert g["condsd"] == [pytest.approx(sd["(Intercept)"], rel=1e-12), pytest.approx(sd["Days"], rel=1e-12)]
        j = levels.index(g["label"])
        assert g["lambda"] == [pytest.approx(1 - cv[j, 0, 0] / G[0, 0], rel=1e-10),
                               pytest.approx(1 - cv[j, 1, 1] / G[1, 1], rel=1e-10)]
        assert "y" not in g


def test_fit_page_is_self_contained_and_escapes_labels(sleep):
    df = sleep.copy()
    df["Subject"] = "</script><b>" + df["Subject"].astype(str)
    m = mfx.lmer("Reaction ~ 1 + (1 | Subject)", df)
    page = explore_html(m, method="complete")
    _assert_self_contained(page)
    p = _payload(page)
    assert p["settings"] == {"method": "complete"}
    assert all(g["label"].startswith("</script><b>") for g in p["groups"])
    with pytest.raises(ValueError, match="own groups"):
        explore_html(m, J=5)
    with pytest.raises(KeyError, match="grouping factor"):
        explore_html(m, group="Days")
    with pytest.raises(TypeError, match="fitted mixed model"):
        fit_payload(df)


def test_more_than_two_columns_shows_the_first_two(sleep):
    df = sleep.assign(D2=sleep["Days"] ** 2 / 10)
    m = mfx.lmer("Reaction ~ Days + (Days + D2 | Subject)", df)
    p = fit_payload(m)
    assert p["dim"] == 2 and p["terms"] == ["(Intercept)", "Days"] and "first two" in p["note"]


def test_page_object_displays_in_notebooks_and_saves(tmp_path, m_int):
    page = explore(seed=3)
    assert isinstance(page, ExplorerPage)
    frame = page._repr_html_()
    assert frame.startswith("<iframe srcdoc=\"") and "<script" not in frame and "&lt;script" in frame
    out = page.save(tmp_path / "p.html")
    assert open(out, encoding="utf-8").read() == page.html == str(page)
    path = write_explorer(tmp_path / "f.html", m_int)
    assert _payload(open(path, encoding="utf-8").read())["mode"] == "fit"


def _cli_args(argv):
    parser = argparse.ArgumentParser()
    explorer.add_explore_arguments(parser)
    return parser.parse_args(argv)


def test_cli_writes_the_page(tmp_path, capsys):
    out = tmp_path / "pooling.html"
    assert explorer.cli_explore(_cli_args(["--out", str(out), "--seed", "11", "-J", "30", "--sigma-u", "2"])) == 0
    p = _payload(out.read_text(encoding="utf-8"))
    assert p["settings"]["seed"] == 11 and p["settings"]["J"] == 30 and p["settings"]["sigma_u"] == 2.0
    assert "wrote" in capsys.readouterr().out
    assert explorer.cli_explore(_cli_args(["--out", str(tmp_path / "x.html"), "--clusters", "99"])) == 2
    assert "--clusters = 99 is outside" in capsys.readouterr().err
    assert explorer.cli_explore(_cli_args(["--out", str(tmp_path / "no" / "dir.html")])) == 2
    assert "cannot write --out" in capsys.readouterr().err


def test_python_m_mixedfx_explore(tmp_path):
    from mixedfx.cli import main as cli_main

    if "explore" not in cli_main._parser().format_help():
        pytest.skip("the explore subcommand is not wired into mixedfx.cli.main yet")
    out = tmp_path / "pooling.html"
    r = subprocess.run([sys.executable, "-m", "mixedfx", "explore", "--out", str(out), "--seed", "5"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert _payload(out.read_text(encoding="utf-8"))["settings"]["seed"] == 5


def _assert_close(a, b, path="payload"):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _assert_close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9, err_msg=path)
    else:
        assert a == b, path


def test_cli_page_of_a_model_fitted_to_data(tmp_path, capsys, m_slope):
    """``explore FORMULA --data D``: the page of that fit, the same payload as ``m.explore()``."""
    from mixedfx.cli.main import main

    out = tmp_path / "fit.html"
    assert main(["explore", "Reaction ~ Days + (Days | Subject)", "--data", "sleepstudy", "--out", str(out),
                 "--method", "no"]) == 0
    page = _payload(out.read_text(encoding="utf-8"))
    ref = json.loads(json.dumps(fit_payload(m_slope, group="Subject")))
    assert page.pop("settings") == {"method": "no"}
    assert page["mode"] == "fit" and page["group"] == "Subject"
    _assert_close(page, ref)        # the shell's fit leaves numba out: equal to the optimizer's tolerance
    glmm = tmp_path / "cbpp.html"
    assert main(["explore", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "--data", "cbpp",
                 "--family", "binomial", "--out", str(glmm)]) == 0
    assert _payload(glmm.read_text(encoding="utf-8"))["group"] == "herd"
    capsys.readouterr()
    assert main(["explore", "Reaction ~ Days + (1 | Subject)", "--data", "sleepstudy", "--group", "Days",
                 "--out", str(tmp_path / "g.html")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --group Days: the model has no random-effects term") and "explore(" not in err


@pytest.mark.parametrize("argv, message", [
    (["explore", "y ~ 1 + (1 | g)", "--out", "x.html"], "needs --data"),
    (["explore", "--data", "sleepstudy", "--out", "x.html"], "give the model's formula too"),
    (["explore", "Reaction ~ Days + (1 | Subject)", "--data", "sleepstudy", "--seed", "3", "--out", "x.html"],
     "--seed set up the simulated page"),
])
def test_cli_explore_refuses_mixed_options(argv, message):
    from mixedfx.cli.main import main

    with pytest.raises(SystemExit, match=message):
        main(argv)


def test_a_result_without_rows_is_refused_clearly(m_int, tmp_path):
    path = tmp_path / "m.mfx"
    m_int.save(path)
    with pytest.raises(ValueError, match="needs the fitted rows"):
        mfx.load(path).explore()
