"""The command line, run as users run it."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mixedfx.cli.main import main


def test_fit_bundled_dataset_prints_summary(capsys):
    assert main(["fit", "Reaction ~ Days + (Days | Subject)", "--data", "sleepstudy"]) == 0
    out = capsys.readouterr().out
    assert "REML criterion at convergence: 1743.6" in out and "Subject" in out


def test_fit_json_ml(capsys):
    assert main(["fit", "Reaction ~ Days + (1 | Subject)", "--data", "sleepstudy", "--ml", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["reml"] is False and d["fixef"]["Days"] == pytest.approx(10.4673, rel=1e-4)
    assert len(d["ranef"]) == 18


def test_fit_csv_path_with_factor(tmp_path, capsys):
    import mixedfx as mfx
    path = tmp_path / "pen.csv"
    mfx.datasets.load("penicillin").to_csv(path, index=False)
    assert main(["fit", "diameter ~ 1 + (1 | plate) + (1 | sample)", "--data", str(path), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["objective"] == pytest.approx(330.8605889996, rel=1e-8)


def test_bad_formula_exits_with_message(capsys):
    assert main(["fit", "Reaction ~ Dayz + (1 | Subject)", "--data", "sleepstudy"]) == 2
    assert "did you mean 'Days'" in capsys.readouterr().err


def test_python_dash_m_entry_point():
    r = subprocess.run([sys.executable, "-m", "mixedfx", "datasets"], capture_output=True, text=True, check=True)
    assert "sleepstudy" in r.stdout


def test_fit_parquet_path(tmp_path, capsys):
    import mixedfx as mfx
    path = tmp_path / "sleep.parquet"
    mfx.datasets.load("sleepstudy").to_parquet(path)
    assert main(["fit", "Reaction ~ Days + (Days | Subject)", "--data", str(path), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["objective"] == pytest.approx(1743.62827196, rel=1e-8)
    assert d["ngroups"] == {"Subject": 18}


def test_fit_glmm_from_the_shell(capsys):
    assert main(["fit", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "--data", "cbpp",
                 "--family", "binomial", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["family"] == "binomial" and d["link"] == "logit" and d["nagq"] == 1
    assert d["minus2loglik"] == pytest.approx(184.0525637, abs=1e-5)
    assert main(["fit", "TICKS ~ YEAR + (1 | BROOD)", "--data", "grouseticks", "--family", "poisson"]) == 0
    assert "Family: poisson  ( log )" in capsys.readouterr().out
    assert main(["fit", "TICKS ~ YEAR + (1 | BROOD)", "--data", "grouseticks", "--family", "poisson",
                 "--link", "logit"]) == 2
    assert "not available for the poisson" in capsys.readouterr().err


def test_the_shell_keeps_one_off_fits_off_numba(monkeypatch, capsys):
    """A command fits a model or two: the compiled small-model criterion (and numba's load) is left
    out unless the environment asks for it, and the switch is restored after the command."""
    from mixedfx.cli.main import main
    from mixedfx.core import fused
    seen = []
    monkeypatch.delenv("MIXEDFX_COMPILED_CRITERION", raising=False)
    real = fused.compiled_criterion
    monkeypatch.setattr(fused, "compiled_criterion", lambda ws: seen.append(fused.ENABLED) or real(ws))
    import mixedfx.models.optimizers as opt
    monkeypatch.setattr(opt, "compiled_criterion", fused.compiled_criterion)
    before = fused.ENABLED
    assert main(["fit", "Reaction ~ Days + (Days | Subject)", "--data", "sleepstudy"]) == 0
    assert "REML criterion at convergence" in capsys.readouterr().out
    assert seen == [False] and fused.ENABLED == before
    monkeypatch.setenv("MIXEDFX_COMPILED_CRITERION", "1")
    seen.clear()
    assert main(["fit", "Reaction ~ Days + (Days | Subject)", "--data", "sleepstudy"]) == 0
    assert seen == [before]
