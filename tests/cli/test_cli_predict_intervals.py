"""``mixedfx predict --interval / --level / --se-fit``: the library's intervals as CSV, one-line errors."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from mixedfx.cli.main import main

FORMULA = "Reaction ~ Days + (Days | Subject)"
BINOMIAL = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A sleepstudy LMM saved by ``fit --save``, the same model in memory, and CSVs of new rows."""
    root = tmp_path_factory.mktemp("cli_intervals")
    model = root / "m.json"
    assert main(["fit", FORMULA, "--data", "sleepstudy", "--save", str(model)]) == 0
    seen = pd.DataFrame({"Days": [0, 5, 9], "Subject": ["308", "335", "372"]})
    new = pd.DataFrame({"Days": [2, 7], "Subject": ["n1", "n2"]})
    seen.to_csv(root / "seen.csv", index=False)
    new.to_csv(root / "new.csv", index=False)
    m = mfx.lmer(FORMULA, mfx.datasets.load("sleepstudy"))
    return {"model": str(model), "seen": str(root / "seen.csv"), "new": str(root / "new.csv"), "m": m,
            "root": root}


def _csv(text: str) -> pd.DataFrame:
    from io import StringIO
    return pd.read_csv(StringIO(text), index_col="row")


@pytest.mark.parametrize("interval,level", [("prediction", "0.9"), ("confidence", None)])
def test_population_level_interval_matches_the_fit(saved, capsys, interval, level):
    argv = ["predict", "--model", saved["model"], "--data", saved["seen"], "--re-form", "~0", "--interval", interval]
    if level is not None:
        argv += ["--level", level]
    capsys.readouterr()
    assert main(argv) == 0
    got = _csv(capsys.readouterr().out)
    assert list(got.columns) == ["fit", "se_fit", "lower", "upper"]
    expect = saved["m"].predict(pd.read_csv(saved["seen"]), re_form="~0", interval=interval,
                                level=float(level or 0.95))
    np.testing.assert_allclose(got.to_numpy(), expect.to_numpy(), rtol=1e-9)
    # the level is used: a 90% interval is narrower than the 95% one of the same rows
    width = (got["upper"] - got["lower"]).to_numpy()
    z = 1.6448536269514722 if level == "0.9" else 1.959963984540054
    np.testing.assert_allclose(width, 2 * z * got["se_fit"].to_numpy(), rtol=1e-9)


def test_new_levels_with_prediction_interval_to_file(saved, tmp_path):
    out = tmp_path / "pred.csv"
    assert main(["predict", "--model", saved["model"], "--data", saved["new"], "--allow-new-levels",
                 "--interval", "prediction", "--out", str(out)]) == 0
    got = pd.read_csv(out, index_col="row")
    expect = saved["m"].predict(pd.read_csv(saved["new"]), interval="prediction", allow_new_levels=True)
    np.testing.assert_allclose(got.to_numpy(), expect.to_numpy(), rtol=1e-9)
    # a new subject's random effect is all error: the same interval as at the population level, and wider
    # than the population-level confidence interval by z'Gz + sigma^2
    new = pd.read_csv(saved["new"])
    pop = saved["m"].predict(new, interval="prediction", re_form="~0")
    np.testing.assert_allclose(got["se_fit"].to_numpy(), pop["se_fit"].to_numpy(), rtol=1e-9)
    conf = saved["m"].predict(new, interval="confidence", re_form="~0")
    assert (got["se_fit"].to_numpy() > conf["se_fit"].to_numpy() + 20).all()


def test_se_fit_alone_gives_fit_and_se_fit(saved, capsys):
    capsys.readouterr()
    assert main(["predict", "--model", saved["model"], "--data", saved["seen"], "--re-form", "~0", "--se-fit"]) == 0
    got = _csv(capsys.readouterr().out)
    assert list(got.columns) == ["fit", "se_fit"]
    m = saved["m"]
    X = np.column_stack([np.ones(3), pd.read_csv(saved["seen"])["Days"].to_numpy(float)])
    np.testing.assert_allclose(got["se_fit"].to_numpy(), np.sqrt(np.einsum("ij,jk,ik->i", X, m.vcov(), X)),
                               rtol=1e-8)


def test_glmm_response_scale_confidence_interval(tmp_path, capsys):
    model = tmp_path / "g.json"
    assert main(["fit", BINOMIAL, "--data", "cbpp", "--family", "binomial", "--save", str(model)]) == 0
    capsys.readouterr()
    assert main(["predict", "--model", str(model), "--data", "cbpp", "--re-form", "~0",
                 "--interval", "confidence"]) == 0
    got = _csv(capsys.readouterr().out)
    cbpp = mfx.datasets.load("cbpp")
    expect = mfx.glmer(BINOMIAL, cbpp, family="binomial").predict(cbpp, type="response", re_form="~0",
                                                                   interval="confidence")
    np.testing.assert_allclose(got.to_numpy(), expect.to_numpy(), rtol=1e-7)
    assert ((got["lower"] > 0) & (got["upper"] < 1)).all()
    # a prediction interval on the response scale is refused, and the message names the flag to use
    assert main(["predict", "--model", str(model), "--data", "cbpp", "--re-form", "~0",
                 "--interval", "prediction"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--type link" in err and "type='link'" not in err


# ----------------------------------------------------------------------------- errors
def _exits(argv, message):
    with pytest.raises(SystemExit) as info:
        main(argv)
    text = str(info.value.code)
    assert text.startswith("error: ") and message in text and "\n" not in text, text


@pytest.mark.parametrize("value", ["conf", "both", ""])
def test_bad_interval(saved, value):
    _exits(["predict", "--model", saved["model"], "--data", saved["seen"], "--interval", value],
           "--interval must be 'confidence' or 'prediction'")


@pytest.mark.parametrize("value,extra", [("95", " (for 95% give 0.95)"), ("0", ""), ("1", ""), ("-0.5", ""),
                                         ("abc", ""), ("nan", ""), ("inf", "")])
def test_bad_level(saved, value, extra):
    _exits(["predict", "--model", saved["model"], "--data", saved["seen"], "--interval", "confidence",
            "--level", value], f"--level must be a number between 0 and 1, e.g. 0.95; got {value!r}{extra}")


def test_level_without_interval(saved):
    _exits(["predict", "--model", saved["model"], "--data", saved["seen"], "--se-fit", "--level", "0.9"],
           "--level is the coverage of an interval")


@pytest.mark.parametrize("flags,name", [(["--interval", "confidence"], "--interval"), (["--se-fit"], "--se-fit")])
def test_saved_model_at_seen_groups_says_what_works(saved, capsys, flags, name):
    """A saved fit has no data: intervals at fitted groups are refused with the flags that do work."""
    capsys.readouterr()
    assert main(["predict", "--model", saved["model"], "--data", saved["seen"], *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {name} for rows of groups seen in fitting needs the fitted data")
    assert "--re-form '~0'" in err and "--allow-new-levels" in err and err.count("\n") == 1


def test_real_command_has_no_traceback(saved):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    p = subprocess.run([sys.executable, "-m", "mixedfx", "predict", "--model", saved["model"], "--data",
                        saved["seen"], "--interval", "prediction"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 2 and p.stderr.startswith("error: ") and "Traceback" not in p.stderr, p.stderr
    assert p.stdout == ""
