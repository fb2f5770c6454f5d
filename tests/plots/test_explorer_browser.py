"""The pooling explorer in a real headless browser (Debian chromium + chromedriver through selenium).

The page simulates data, fits y ~ 1 + (1 | g) by REML in JavaScript and draws the three kinds of
pooling.  Here the sliders are moved (keyboard and input events), the toggles pressed, and the
page's own numbers (``window.mfxExplorer.state()``) compared with ``mfx.lmer`` on the page's data.
Screenshots go to /tmp/explorer_*.png.  Skipped when selenium, chromium or chromedriver is missing.
"""
from __future__ import annotations

import shutil
import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from mixedfx.plots.explorer import write_explorer

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(CHROMIUM is None or DRIVER is None,
                                reason="needs chromium and chromedriver (apt-get install chromium chromium-driver)")
REL = 1e-6


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1100"):
        opts.add_argument(arg)
    opts.binary_location = CHROMIUM
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        drv = webdriver.Chrome(service=Service(DRIVER), options=opts)
    except Exception as exc:       # a broken browser install: say so rather than error every test
        pytest.skip(f"chromium could not be started: {exc}")
    yield drv
    drv.quit()


def _open(browser, path):
    browser.get(path.as_uri())
    browser.get_log("browser")              # drop anything from earlier pages
    assert browser.execute_script("return typeof window.mfxExplorer") == "object"


def _no_console_errors(browser):
    logs = browser.get_log("browser")
    bad = [e for e in logs if e["level"] in ("SEVERE", "WARNING")]
    assert not bad, bad


def _state(browser) -> dict:
    return browser.execute_script("return window.mfxExplorer.state()")


REFITS = []      # settings where lmer's default fit stopped short and the page's optimum was confirmed


def _errors(st: dict, m) -> dict:
    sigma = m.sigma
    tau = float(m.varcorr["sdcor"].iloc[0])
    re_ = m.ranef().set_index("grp").reindex(st["labels"])
    blup = np.asarray(st["blup"])
    err = {"sigma": abs(st["sigma"] - sigma) / sigma,
           "mu": abs(st["mu_hat"] - m.fixef["(Intercept)"]) / max(abs(m.fixef["(Intercept)"]), sigma),
           # tau and the BLUPs relative to their own size, or to sigma when they are 0 (singular fit)
           "tau": abs(st["tau"] - tau) / max(tau, sigma * 1e-3),
           "blup": float(np.max(np.abs(blup - re_["condval"].to_numpy()))) / max(np.max(np.abs(blup)), sigma * 1e-3),
           "condsd": float(np.max(np.abs(np.asarray(st["condsd"]) - re_["condsd"].to_numpy()))) / max(
               np.max(st["condsd"]), sigma * 1e-3)}
    return err


def _lmer_compare(st: dict) -> dict:
    """Fit mfx.lmer on the page's data; assert the page's REML fit equals it (1e-6); return the relative errors.

    In extreme settings (tau / sigma in the thousands: two clusters, sigma_e = 0.1) the REML criterion
    is so flat in theta that lmer's optimizer stops ~1e-5 short of the optimum the page finds.  Then
    lmer is restarted at the page's theta: it must stay there (agreeing to 1e-6) with a REML criterion
    no higher than its default fit's, i.e. the page's answer is the better optimum, not a different one.
    """
    data = pd.DataFrame({"y": st["data"]["y"], "g": st["data"]["g"]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # singular fits warn; the comparison is the point
        m = mfx.lmer("y ~ 1 + (1 | g)", data)
        err = _errors(st, m)
        if max(err.values()) >= REL:
            m2 = mfx.lmer("y ~ 1 + (1 | g)", data, start=[np.sqrt(st["gamma"])])
            assert m2.objective <= m.objective + 1e-9, (st["settings"], m2.objective, m.objective)
            REFITS.append(st["settings"])
            m, err = m2, _errors(st, m2)
    assert max(err.values()) < REL, (st["settings"], err)
    sigma = m.sigma
    tau = float(m.varcorr["sdcor"].iloc[0])
    blup = np.asarray(st["blup"])
    if st["singular"]:
        assert st["tau"] == 0 and tau < 1e-6 * sigma and np.all(blup == 0)
    # group sizes, raw means, complete pooling and the MSEs from the page's own data and truth
    y, g = np.asarray(st["data"]["y"]), np.asarray(st["data"]["g"])
    n = np.array([np.sum(g == lab) for lab in st["labels"]])
    raw = np.array([y[g == lab].mean() for lab in st["labels"]])
    assert list(n) == st["n"] and np.allclose(st["raw"], raw, rtol=1e-12, atol=0)
    assert st["complete"] == pytest.approx(y.mean(), rel=1e-12)
    truth = np.asarray(st["truth"])
    partial = st["mu_hat"] + blup
    assert np.allclose(st["partial"], partial, rtol=1e-12)
    lam = np.asarray(st["lambda"])
    assert np.allclose(blup, lam * (raw - st["mu_hat"]), rtol=1e-9, atol=1e-12 * sigma)
    for key, est in (("complete", np.full(len(truth), y.mean())), ("no", raw), ("partial", partial)):
        assert st["mse"][key] == pytest.approx(np.mean((est - truth) ** 2), rel=1e-10)
    return err


def _shown_mse(browser) -> dict:
    return {k: float(browser.find_element(By.CSS_SELECTOR, f"#mse-{k} .mse-value").text)
            for k in ("complete", "no", "partial")}


@pytest.fixture(scope="module")
def sim_page(tmp_path_factory):
    path = tmp_path_factory.mktemp("explorer") / "pooling.html"
    write_explorer(path, seed=1)
    return path


def test_page_loads_and_matches_lmer(browser, sim_page):
    _open(browser, sim_page)
    st = _state(browser)
    assert st["settings"] == {"J": 12, "n": 8, "sigma_u": 1.0, "sigma_e": 3.0, "seed": 1, "mu": 10.0}
    assert len(st["labels"]) == 12 and min(st["n"]) >= 1
    _lmer_compare(st)
    shown = _shown_mse(browser)
    for k in shown:                       # the table shows 4 significant digits
        assert shown[k] == pytest.approx(st["mse"][k], rel=1e-3)
    assert browser.find_element(By.ID, "btn-partial").get_attribute("aria-pressed") == "true"
    # the table of every group shows the same numbers (4 significant digits)
    rows = browser.execute_script(
        "return [...document.querySelectorAll('#group-table tbody tr')].map(r => [...r.cells].map(c => c.textContent))")
    assert [r[0] for r in rows] == st["labels"]
    for r, n, truth, raw, partial, lam in zip(rows, st["n"], st["truth"], st["raw"], st["partial"], st["lambda"]):
        assert int(r[1]) == n
        assert [float(v) for v in r[2:]] == pytest.approx([truth, st["complete"], raw, partial, lam], rel=1e-3)
    browser.save_screenshot("/tmp/explorer_simulation.png")
    _no_console_errors(browser)


def test_same_seed_same_data_and_csv_export(browser, sim_page):
    _open(browser, sim_page)
    first = _state(browser)
    csv = browser.execute_script("return window.mfxExplorer.csv()")
    lines = csv.strip().split("\n")
    assert lines[0] == "y,g" and len(lines) == len(first["data"]["y"]) + 1
    assert [float(r.split(",")[0]) for r in lines[1:]] == first["data"]["y"]      # full precision
    assert [r.split(",")[1] for r in lines[1:]] == first["data"]["g"]
    _open(browser, sim_page)
    assert _state(browser)["data"] == first["data"]
    browser.find_element(By.ID, "btn-newseed").click()
    st = _state(browser)
    assert st["settings"]["seed"] == 2 and st["data"]["y"] != first["data"]["y"]
    _lmer_compare(st)
    _no_console_errors(browser)


def test_every_slider_by_keyboard(browser, sim_page):
    """Each slider moved with the arrow keys (and Home/End), the page refitted each time."""
    _open(browser, sim_page)
    tried = 0
    moves = {"J": [Keys.ARROW_RIGHT] * 3 + [Keys.END], "n": [Keys.ARROW_LEFT] * 5 + [Keys.END],
             "sigma_u": [Keys.ARROW_RIGHT] * 4 + [Keys.HOME], "sigma_e": [Keys.ARROW_LEFT] * 4 + [Keys.END]}
    for name, keys in moves.items():
        slider = browser.find_element(By.ID, f"ctl-{name}")
        before = _state(browser)["settings"][name]
        for key in keys:
            slider.send_keys(key)
            st = _state(browser)
            assert float(slider.get_attribute("value")) == pytest.approx(st["settings"][name])
            assert browser.find_element(By.ID, f"out-{name}").text == slider.get_attribute("aria-valuetext")
            _lmer_compare(st)
            tried += 1
        assert st["settings"][name] != before
    st = _state(browser)
    assert st["settings"]["J"] == 60 and st["settings"]["sigma_u"] == 0 and st["settings"]["n"] == 100
    assert tried == 20
    browser.save_screenshot("/tmp/explorer_sliders.png")
    _no_console_errors(browser)


def test_toggles_and_hover(browser, sim_page):
    _open(browser, sim_page)
    st0 = _state(browser)
    for method in ("complete", "no", "partial"):
        browser.find_element(By.ID, f"btn-{method}").click()
        st = _state(browser)
        assert st["method"] == method
        pressed = {k: browser.find_element(By.ID, f"btn-{k}").get_attribute("aria-pressed")
                   for k in ("complete", "no", "partial")}
        assert pressed == {k: str(k == method).lower() for k in pressed}
        assert st["mse"] == st0["mse"]             # the toggle changes the view, not the estimates
        assert len(browser.find_elements(By.CSS_SELECTOR, "#chart .est")) == len(st["labels"])
        if method == "no":
            browser.save_screenshot("/tmp/explorer_no_pooling.png")
    # hover a group's column: the tooltip shows its size, raw mean, BLUP and lambda
    hit = browser.find_element(By.CSS_SELECTOR, "#chart rect[data-group='0']")
    ActionChains(browser).move_to_element(hit).perform()
    tip = browser.find_element(By.ID, "tooltip")
    assert tip.is_displayed()
    text = tip.text
    assert "c01" in text and "group size" in text and "shrinkage factor" in text and "BLUP" in text
    assert f"{st0['n'][0]}" in text
    # keyboard: focus the chart, step with the arrow keys
    chart = browser.find_element(By.ID, "chart")
    chart.send_keys(Keys.HOME)
    assert tip.is_displayed() and "group size" in browser.find_element(By.ID, "live").get_attribute("textContent")
    chart.send_keys(Keys.ARROW_RIGHT)
    assert tip.is_displayed()
    browser.save_screenshot("/tmp/explorer_hover.png")
    _no_console_errors(browser)


def test_random_settings_and_the_boundary(browser, sim_page):
    """Settings set through the sliders' input events, including sigma_u = 0 and tiny (tau-hat = 0)."""
    _open(browser, sim_page)
    rng = np.random.default_rng(14)
    settings = [{"J": 40, "n": 30, "sigma_u": 0.0, "sigma_e": 10.0}, {"J": 10, "n": 4, "sigma_u": 0.1, "sigma_e": 9.0},
                {"J": 2, "n": 2, "sigma_u": 5.0, "sigma_e": 0.1}, {"J": 60, "n": 2, "sigma_u": 0.3, "sigma_e": 3.0}]
    for _ in range(16):
        settings.append({"J": int(rng.integers(2, 61)), "n": int(rng.integers(2, 101)),
                         "sigma_u": round(float(rng.uniform(0, 5)), 1),
                         "sigma_e": round(float(rng.uniform(0.1, 10)), 1)})
    singular = 0
    worst = {}
    for s in settings:
        for name, value in s.items():
            browser.execute_script(
                "const e = document.getElementById(arguments[0]); e.value = arguments[1];"
                "e.dispatchEvent(new Event('input', {bubbles: true}));", f"ctl-{name}", str(value))
        st = _state(browser)
        assert {k: st["settings"][k] for k in s} == s
        err = _lmer_compare(st)
        worst = {k: max(v, worst.get(k, 0.0)) for k, v in err.items()}
        singular += st["singular"]
    assert singular >= 1, "no setting reached the boundary tau-hat = 0"
    print("max relative differences vs mfx.lmer over", len(settings), "settings:", worst, "singular:", singular,
          "restarted at the page's optimum:", REFITS)
    _no_console_errors(browser)


@pytest.mark.parametrize("formula", ["Reaction ~ Days + (1 | Subject)", "Reaction ~ Days + (Days | Subject)"])
def test_fitted_model_page(browser, tmp_path, formula):
    m = mfx.lmer(formula, mfx.datasets.load("sleepstudy"))
    path = tmp_path / "fit.html"
    write_explorer(path, m)
    _open(browser, path)
    st = _state(browser)
    assert st["mode"] == "fit" and st["group"] == "Subject" and len(st["labels"]) == 18
    assert browser.find_element(By.ID, "sim-controls").is_displayed() is False
    assert browser.find_element(By.ID, "mse-table").is_displayed() is False
    coef = m.coef()["Subject"]
    re_ = m.ranef()
    p = len(st["terms"])
    for j, lab in enumerate(st["labels"]):
        blup = st["partial"][j] if p == 2 else [st["partial"][j]]
        assert blup == pytest.approx(list(coef.loc[lab, st["terms"]]), rel=1e-12)
        sd = re_[re_["grp"] == lab].set_index("term")["condsd"]
        assert st["condsd"][j] == pytest.approx(list(sd[st["terms"]]), rel=1e-12)
    assert st["sigma"] == pytest.approx(m.sigma, rel=1e-12)
    dim = "1d" if p == 1 else "2d"
    if p == 2:
        assert browser.find_element(By.ID, "re-ellipse").is_displayed()
    hit = browser.find_element(By.CSS_SELECTOR, "#chart [data-group='3']")
    ActionChains(browser).move_to_element(hit).perform()
    text = browser.find_element(By.ID, "tooltip").text
    assert st["labels"][3] in text and "conditional SD" in text and "BLUP" in text
    browser.save_screenshot(f"/tmp/explorer_fit_{dim}.png")
    for method in ("complete", "no"):
        browser.find_element(By.ID, f"btn-{method}").click()
        assert _state(browser)["method"] == method
    browser.save_screenshot(f"/tmp/explorer_fit_{dim}_no_pooling.png")
    _no_console_errors(browser)


def test_notebook_iframe_runs_the_page(browser, tmp_path):
    """The notebook display (an iframe with the page as srcdoc) runs the same program."""
    from mixedfx.plots.explorer import explore

    page = explore(J=15, seed=4)
    host = tmp_path / "notebook.html"
    host.write_text("<!DOCTYPE html><html><head><title>notebook</title></head><body>" + page._repr_html_()
                    + "</body></html>", encoding="utf-8")
    browser.get(host.as_uri())
    browser.switch_to.frame(browser.find_element(By.TAG_NAME, "iframe"))
    try:
        st = _state(browser)
        assert st["settings"]["J"] == 15 and st["settings"]["seed"] == 4
        _lmer_compare(st)
    finally:
        browser.switch_to.default_content()
    _no_console_errors(browser)
