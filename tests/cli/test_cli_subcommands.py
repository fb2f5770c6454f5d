"""CLI subcommands: fit --save / predict, anova, offset and ddf flags, quiet broken pipes."""
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from mixedfx.cli.main import main


def test_fit_save_then_predict(tmp_path, capsys):
    model = tmp_path / "m.json"
    assert main(["fit", "Reaction ~ Days + (Days | Subject)", "--data", "sleepstudy", "--save", str(model)]) == 0
    new = mfx.datasets.load("sleepstudy").sample(15, random_state=2)
    new_csv = tmp_path / "new.csv"
    new.to_csv(new_csv, index=False)
    out = tmp_path / "pred.csv"
    capsys.readouterr()
    assert main(["predict", "--model", str(model), "--data", str(new_csv), "--out", str(out)]) == 0
    pred = pd.read_csv(out)
    m = mfx.lmer("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))
    expect = m.predict(pd.read_csv(new_csv))
    np.testing.assert_allclose(pred["prediction"].to_numpy(), expect, rtol=1e-10)


def test_predict_glmm_response_scale(tmp_path, capsys):
    model = tmp_path / "g.json"
    f = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    assert main(["fit", f, "--data", "cbpp", "--family", "binomial", "--save", str(model)]) == 0
    capsys.readouterr()
    assert main(["predict", "--model", str(model), "--data", "cbpp"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "row,prediction" and len(lines) == 57
    g = mfx.glmer(f, mfx.datasets.load("cbpp"))
    got = np.array([float(x.split(",")[1]) for x in lines[1:]])
    np.testing.assert_allclose(got, g.predict(mfx.datasets.load("cbpp"), type="response"), rtol=1e-10)


def test_predict_missing_model_is_one_line(tmp_path):
    with pytest.raises(SystemExit, match="not a file"):
        main(["predict", "--model", str(tmp_path / "nope.json"), "--data", "sleepstudy"])


def test_anova_two_formulas(capsys):
    rc = main(["anova", "Reaction ~ Days + (1 | Subject)", "Reaction ~ Days + (Days | Subject)",
               "--data", "sleepstudy"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "Reaction ~ Days + (Days | Subject)" in out and "Chisq" in out
    sleep = mfx.datasets.load("sleepstudy")
    tab = mfx.anova(mfx.lmer("Reaction ~ Days + (1 | Subject)", sleep, reml=False),
                    mfx.lmer("Reaction ~ Days + (Days | Subject)", sleep, reml=False))
    assert f"{tab['Chisq'].iloc[1]:.4f}"[:6] in out


def test_fit_offset_and_ddf(capsys):
    assert main(["fit", "Reaction ~ Days + (1 | Subject)", "--data", "sleepstudy", "--ddf", "kenward-roger"]) == 0
    assert "Kenward-Roger" in capsys.readouterr().out
    assert main(["fit", "incidence ~ period + (1 | herd)", "--data", "cbpp", "--family", "poisson",
                 "--offset", "size", "--json"]) == 0
    import json
    out = json.loads(capsys.readouterr().out)
    cbpp = mfx.datasets.load("cbpp")
    g = mfx.glmer("incidence ~ period + (1 | herd)", cbpp, family="poisson", offset="size")
    assert out["fixef"]["(Intercept)"] == pytest.approx(g.fixef["(Intercept)"])


def test_broken_pipe_has_no_traceback(tmp_path):
    model = tmp_path / "m.json"
    assert main(["fit", "Reaction ~ Days + (1 | Subject)", "--data", "sleepstudy", "--save", str(model)]) == 0
    big = pd.concat([mfx.datasets.load("sleepstudy")] * 200)      # 36000 rows: more than a pipe buffer
    big.to_csv(tmp_path / "big.csv", index=False)
    cmd = f"{sys.executable} -m mixedfx predict --model {model} --data {tmp_path / 'big.csv'} | head -n 1"
    p = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert p.stdout.strip() == "row,prediction"
    assert "Traceback" not in p.stderr and "Error" not in p.stderr
