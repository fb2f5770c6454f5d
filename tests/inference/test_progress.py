"""Progress bars: shown with progress=True, silent with False, counting finished replicates with n_jobs."""
import numpy as np
import pytest

import mixedfx as mfx
from mixedfx.inference import progress as prog


@pytest.fixture(scope="module")
def m():
    return mfx.lmer("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_bootstrap_bar_counts_replicates(m, capsys, n_jobs):
    reps = m.bootstrap(nsim=24, seed=1, progress=True, n_jobs=n_jobs)
    err = capsys.readouterr().err
    assert "bootstrap" in err and "24/24" in err
    quiet = m.bootstrap(nsim=24, seed=1, progress=False, n_jobs=n_jobs)
    assert capsys.readouterr().err == ""
    np.testing.assert_allclose(reps.to_numpy(), quiet.to_numpy())


def test_bootstrap_same_replicates_for_any_n_jobs(m):
    a = m.bootstrap(nsim=30, seed=7, progress=False, n_jobs=1)
    b = m.bootstrap(nsim=30, seed=7, progress=False, n_jobs=2)
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-12)


def test_default_is_quiet_when_not_interactive(m, capsys, monkeypatch):
    monkeypatch.setattr(prog, "interactive", lambda: False)
    m.bootstrap(nsim=5, seed=1)
    assert capsys.readouterr().err == ""


def test_auto_bar_waits(monkeypatch):
    monkeypatch.setattr(prog, "interactive", lambda: True)
    bar = prog.progress_bar(3, "x", None)
    assert bar.delay == prog.AUTO_DELAY
    bar.close()
    with pytest.raises(TypeError, match="progress"):
        prog.progress_bar(3, "x", "yes")


def test_influence_profile_and_anova_bars(capsys):
    sleep = mfx.datasets.load("sleepstudy")
    small = mfx.lmer("Reaction ~ Days + (1 | Subject)", sleep.iloc[:60])
    small.influence(level="Subject", progress=True)
    assert "influence" in capsys.readouterr().err
    ci = small.confint(method="profile", progress=True)
    err = capsys.readouterr().err
    assert "profile" in err and f"{2 * len(ci)}/{2 * len(ci)}" in err
    small.profile(parm=["sigma"], progress=True)
    assert "2/2" in capsys.readouterr().err
    small.confint(method="profile", progress=False)
    assert capsys.readouterr().err == ""
    m0 = mfx.lmer("Reaction ~ 1 + (1 | Subject)", sleep.iloc[:60], reml=False)
    m1 = mfx.lmer("Reaction ~ Days + (1 | Subject)", sleep.iloc[:60], reml=False)
    mfx.anova(m0, m1, method="bootstrap", nsim=6, seed=1, progress=True)
    assert "6/6" in capsys.readouterr().err
