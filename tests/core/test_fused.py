"""The compiled small-model criterion (mixedfx.core.fused) against the dense oracle and the workspace."""
from __future__ import annotations

import zlib

import numpy as np
import pytest

import mixedfx as mfx
from mixedfx.core import PLSWorkspace
from mixedfx.core import fused
from mixedfx.core.structures import make_structure
from mixedfx.core.workspace import FAILED_OBJECTIVE

from test_workspace_oracle import CASES, dense_oracle, random_problem

pytest.importorskip("numba")


@pytest.fixture
def general_only(monkeypatch):
    """Fits through the workspace's own objective (the compiled criterion switched off)."""
    monkeypatch.setattr(fused, "ENABLED", False)


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("weights", [False, True])
@pytest.mark.parametrize("case", sorted(CASES))
def test_compiled_criterion_matches_the_dense_oracle(case, weights, reml):
    rng = np.random.default_rng(zlib.crc32(f"fused-{case}-{weights}-{reml}".encode()))
    X, y, blocks, w = random_problem(rng, 120, CASES[case], weights=weights)
    ws = PLSWorkspace(X, y, blocks, weights=w, reml=reml)
    crit = fused.compiled_criterion(ws)
    assert crit is not None
    for _ in range(4):
        theta = rng.normal(size=ws.layout.n_theta)        # signs of any kind: the criterion is even in columns
        dev = dense_oracle(X, y, blocks, w, theta, reml)["dev"]
        assert crit(theta) == pytest.approx(dev, rel=1e-12)
        assert crit(theta) == pytest.approx(ws.objective(theta), rel=1e-13)


def test_compiled_criterion_without_fixed_effects_and_with_structures():
    rng = np.random.default_rng(7)
    X, y, blocks, w = random_problem(rng, 150, [(10, 3), (6, 1)])
    ws = PLSWorkspace(X[:, :0], y, blocks)          # y ~ 0 + ...: F = [y] alone
    crit = fused.compiled_criterion(ws)
    theta = rng.normal(size=ws.layout.n_theta)
    assert crit(theta) == pytest.approx(dense_oracle(X[:, :0], y, blocks, None, theta, True)["dev"], rel=1e-12)
    X2, y2, blocks2, w2 = random_problem(rng, 150, [(12, 1), (5, 3)], weights=True)
    for name in ("cs", "ar1", "diag", "toep"):      # structured terms: factors packed from layout.lambdas
        st = make_structure(name, 3)
        ws = PLSWorkspace(X, y, blocks, structures=(st, make_structure("us", 1)))        # term 0 structured
        crit = fused.compiled_criterion(ws)
        theta = np.abs(rng.normal(size=ws.layout.n_theta)) * 0.5 + 0.1
        assert crit(theta) == pytest.approx(ws.objective(theta), rel=1e-12), name
        ws = PLSWorkspace(X2, y2, blocks2, weights=w2, structures=(make_structure("us", 1), st))   # a later term
        crit = fused.compiled_criterion(ws)
        theta = np.abs(rng.normal(size=ws.layout.n_theta)) * 0.5 + 0.1
        assert crit(theta) == pytest.approx(ws.objective(theta), rel=1e-12), name


def test_failed_factorization_gives_the_workspaces_failure_value():
    rng = np.random.default_rng(3)
    X, y, blocks, _ = random_problem(rng, 50, [(5, 1)])
    X = np.column_stack([X, X[:, 1]])               # singular X'X: R_X cannot be factored
    ws = PLSWorkspace(X, y, blocks)
    crit = fused.compiled_criterion(ws)
    assert ws.objective([0.5]) == FAILED_OBJECTIVE
    assert crit([0.5]) == FAILED_OBJECTIVE


def test_when_the_compiled_criterion_is_used(monkeypatch):
    rng = np.random.default_rng(5)
    X, y, blocks, w = random_problem(rng, 3000, [(400, 1), (300, 1)])
    big = PLSWorkspace(X, y, blocks)
    assert not fused.pays(big) and fused.compiled_criterion(big) is None
    X, y, blocks, w = random_problem(rng, 100, [(10, 2)])
    small = PLSWorkspace(X, y, blocks)
    assert fused.compiled_criterion(small) is not None
    monkeypatch.setattr(fused, "ENABLED", False)
    assert fused.compiled_criterion(small) is None
    monkeypatch.setattr(fused, "ENABLED", True)
    monkeypatch.setattr(fused, "_KERNEL", [None])     # numba not installed
    assert fused.compiled_criterion(small) is None


MODELS = [("sleepstudy", "Reaction ~ Days + (Days | Subject)"),
          ("sleepstudy", "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)"),
          ("dyestuff", "Yield ~ 1 + (1 | Batch)"),
          ("penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)"),
          ("pastes", "strength ~ 1 + (1 | batch/cask)")]


def _fit(ds, formula, reml):
    return mfx.lmer(formula, mfx.datasets.load(ds), reml=reml)


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("ds, formula", MODELS)
def test_fits_agree_with_and_without_the_compiled_criterion(ds, formula, reml, monkeypatch):
    fast = _fit(ds, formula, reml)
    monkeypatch.setattr(fused, "ENABLED", False)
    general = _fit(ds, formula, reml)
    assert fast.objective == pytest.approx(general.objective, rel=1e-12, abs=1e-10)
    np.testing.assert_allclose(fast.theta, general.theta, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(fast.fixef, general.fixef, rtol=1e-9)
    np.testing.assert_allclose(fast.vcov(), general.vcov(), rtol=1e-7)


def test_the_environment_can_switch_the_compiled_criterion_off():
    import subprocess
    import sys
    code = ("import sys, mixedfx as mfx; from mixedfx.core import fused; "
            "m = mfx.lmer('Reaction ~ Days + (Days | Subject)', mfx.datasets.load('sleepstudy')); "
            "print(fused.ENABLED, 'numba' in sys.modules, round(m.objective, 6))")
    env = {**__import__("os").environ, "MIXEDFX_COMPILED_CRITERION": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    enabled, loaded, objective = out.split()
    assert enabled == "False" and loaded == "False"        # a small fit never loads numba then
    from conftest import load_reference
    assert float(objective) == pytest.approx(load_reference("sleep_slopes_reml")["objective"], rel=1e-9)


def test_a_kernel_that_fails_at_its_first_call_leaves_the_general_path(monkeypatch):
    def broken(*args):
        raise RuntimeError("no cache location")            # e.g. numba cannot compile or cache here
    monkeypatch.setattr(fused, "_KERNEL", [broken])
    monkeypatch.setattr(fused, "_COMPILED_ONCE", [])
    rng = np.random.default_rng(8)
    X, y, blocks, w = random_problem(rng, 80, [(8, 2)])
    assert fused.compiled_criterion(PLSWorkspace(X, y, blocks)) is None
    assert fused._KERNEL == [None]
    m = mfx.lmer("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))   # fits as before
    from conftest import load_reference
    assert m.objective == pytest.approx(load_reference("sleep_slopes_reml")["objective"], rel=1e-9)
