"""Exact restricted likelihood ratio test against RLRsim's exactRLRT (tests/reference/rlrsim.json).

The observed statistic is deterministic (1e-6 relative).  The null sample is Monte Carlo (R's RNG
is not reproduced): its summaries are compared with tolerances from their sampling errors -- for a
proportion ``pi`` (P(RLRT = 0), the p-value, the CDF at a reference quantile) the difference of two
independent estimates has SD ``sqrt(pi (1 - pi) (1/n_ours + 1/n_R))``; a quantile ``q_R`` of R's
sample is checked through our empirical CDF at ``q_R`` (distribution-free); the mean through the
sample SD.  All at 4.5 SD (fixed seeds: deterministic).
"""
from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest

import mixedfx as mfx
from mixedfx.core.rlrt import grid_max, lambda_grid, rlrt_eigenvalues, simulate_rlrt
from mixedfx.inference.rlrt import exact_rlrt

with open(os.path.join(os.path.dirname(__file__), "..", "reference", "rlrsim.json")) as _f:
    REF = {t["id"]: t for t in json.load(_f)["tests"]}
Z_SD = 4.5


@pytest.fixture(scope="module")
def fits():
    ss = mfx.datasets.load("sleepstudy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = {"int": mfx.lmer("Reaction ~ Days + (1 | Subject)", ss),
               "slope": mfx.lmer("Reaction ~ Days + (0 + Days | Subject)", ss),
               "both": mfx.lmer("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", ss),
               "c_both": mfx.lmer("Reaction ~ I(Days - 4.5) + (1 | Subject) + (0 + I(Days - 4.5) | Subject)", ss),
               "c_int": mfx.lmer("Reaction ~ I(Days - 4.5) + (1 | Subject)", ss),
               "c_slope": mfx.lmer("Reaction ~ I(Days - 4.5) + (0 + I(Days - 4.5) | Subject)", ss)}
        ls = mfx.datasets.load("longsim")
        out.update(ls_both=mfx.lmer("y ~ t + (1 | id) + (0 + x | id)", ls), ls_int=mfx.lmer("y ~ t + (1 | id)", ls),
                   ls_x=mfx.lmer("y ~ t + (0 + x | id)", ls))
        for name in ("dyestuff", "dyestuff2"):
            out[name] = mfx.lmer("Yield ~ 1 + (1 | Batch)", mfx.datasets.load(name))
    return out


CASES = {"intercept_only": ("int",), "slope_given_int": ("slope", "both", "int"),
         "int_given_slope": ("int", "both", "slope"), "slope_given_int_centred": ("c_slope", "c_both", "c_int"),
         "dyestuff": ("dyestuff",), "dyestuff2": ("dyestuff2",), "longsim_x_slope": ("ls_x", "ls_both", "ls_int")}


def _fit_quiet(formula, data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mfx.lmer(formula, data)


def _run(fits, case, nsim, seed):
    return exact_rlrt(*[fits[k] for k in CASES[case]], nsim=nsim, seed=seed)


def _prop_tol(pi, n1, n2):
    return Z_SD * np.sqrt(max(pi * (1 - pi), 1e-12) * (1 / n1 + 1 / n2))


def check_null_sample(res, ref):
    s, n, nr = res.sample, res.nsim, ref["nsim"]
    summ = ref["null_sample"]
    pz = summ["frac_zero"]
    assert abs(np.mean(s == 0) - pz) <= _prop_tol(pz, n, nr)
    sd = s.std()
    assert abs(s.mean() - summ["mean"]) <= Z_SD * sd * np.sqrt(1 / n + 1 / nr)
    for prob, q in zip(summ["quantile_probs"], summ["quantiles"]):
        if q == 0:                                      # inside the atom at 0
            assert np.quantile(s, prob) == 0
            continue
        assert abs(np.mean(s <= q) - prob) <= _prop_tol(prob, n, nr), (prob, q)
    p = ref["p_value"]
    if p == 0:
        assert res.pvalue == 0
    else:
        assert abs(res.pvalue - p) <= _prop_tol(p, n, nr)


@pytest.mark.parametrize("case", list(CASES))
def test_statistic_matches_rlrsim(fits, case):
    ref = REF[case]
    res = _run(fits, case, nsim=200, seed=1)
    if ref["rlrt_check"] == 0:
        assert res.statistic <= 1e-6
    else:
        np.testing.assert_allclose(res.statistic, ref["statistic"], rtol=1e-6)
        np.testing.assert_allclose(-2 * res.reml_null, ref["reml_crit_null"], rtol=1e-8)


@pytest.mark.parametrize("case", list(CASES))
def test_eigenvalues_match_rlrsim(fits, case):
    res = _run(fits, case, nsim=10, seed=1)
    mu = np.asarray(REF[case]["mu"])
    nonzero = mu[mu > 1e-10]
    assert res.eigenvalues.shape == nonzero.shape
    np.testing.assert_allclose(res.eigenvalues, nonzero, rtol=1e-8)


@pytest.mark.parametrize("case, seed, nsim", [("intercept_only", 11, 10000), ("dyestuff", 12, 10000),
                                              ("dyestuff2", 13, 10000), ("longsim_x_slope", 14, 5000)])
def test_null_sample_matches_rlrsim(fits, case, seed, nsim):
    res = _run(fits, case, nsim=nsim, seed=seed)
    assert res.sample.shape == (nsim,) and np.all(res.sample >= 0)
    check_null_sample(res, REF[case])


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_null_sample_matches_rlrsim_full(fits, case):
    res = _run(fits, case, nsim=100_000, seed=2024)
    check_null_sample(res, REF[case])


def test_result_and_seed(fits):
    a = exact_rlrt(fits["dyestuff"], nsim=500, seed=7)
    b = exact_rlrt(fits["dyestuff"], nsim=500, seed=7)
    np.testing.assert_array_equal(a.sample, b.sample)
    assert a.pvalue == np.mean(a.sample > a.statistic)
    assert a.term == "(1 | Batch)" and a.n == 30 and a.p == 1
    np.testing.assert_allclose(a.eigenvalues, np.ones(5))
    text = repr(a)
    assert "RLRT = 6.3690" in text and "500 simulated values" in text
    with pytest.raises(AttributeError):
        a.pvalue = 0.5


def test_eigenvalues_brute_force(fits):
    # mu = eigenvalues of Z' P0 Z with the dense projection, against the sparse Gram computation
    m = fits["slope"]
    d = m.fit.design
    X = d.X
    b = d.blocks[0]
    Z = np.zeros((d.n, b.nlevels))
    Z[np.arange(d.n), b.codes] = b.X[:, 0]
    P0 = np.eye(d.n) - X @ np.linalg.solve(X.T @ X, X.T)
    dense = np.sort(np.linalg.eigvalsh(Z.T @ P0 @ Z))[::-1]
    from mixedfx.core.workspace import random_effects_matrix
    ours = rlrt_eigenvalues(X, random_effects_matrix(b.codes, b.X, b.nlevels))
    np.testing.assert_allclose(ours, np.clip(dense, 0, None), atol=1e-8 * dense.max())
    # sleepstudy is balanced: 17 equal eigenvalues (sum Days^2 = 285) and one zero
    np.testing.assert_allclose(ours[:17], 285.0, rtol=1e-10)


def test_grid_max_against_closed_form():
    # balanced one-way ANOVA (K - 1 equal eigenvalues): the supremum has a closed form (Crainiceanu &
    # Ruppert 2004); the grid walk stays below it and within the grid's resolution
    rng = np.random.default_rng(5)
    K, n, p, b = 6, 30, 1, 5000
    wK, wn = rng.chisquare(K - 1, b), rng.chisquare(n - p - K + 1, b)
    lam = np.maximum(0, ((n - p - K + 1) / (K - 1) * wK / wn - 1))
    exact = np.where(lam > 0, (n - p) * np.log((wK + wn) / (n - p)) - (n - p - K + 1) * np.log(wn / (n - p - K + 1))
                     - (K - 1) * np.log(wK / (K - 1)), 0.0)
    w = wK[:, None] * rng.dirichlet(np.ones(K - 1), b)      # K - 1 chi2(1)-like parts summing to wK
    val, idx = grid_max(w, wn, np.ones(K - 1), n, p, lambda_grid())
    assert np.all(val <= exact + 1e-10)
    assert np.all(exact - val <= 0.01)
    np.testing.assert_array_equal(val > 0, exact > 0)


def test_grid_walk_stops_at_first_decrease():
    grid = lambda_grid(gridlength=5)
    assert grid[0] == 0 and np.allclose(np.log(grid[1:]), np.linspace(-10, 8, 4))
    # one eigenvalue, draws that make the ratio decrease immediately: value 0 at lambda = 0
    val, idx = grid_max(np.array([[0.0]]), np.array([50.0]), np.array([1.0]), 60, 1, lambda_grid())
    assert val[0] == 0 and idx[0] == 0


def test_simulation_invariant_to_scale_and_zero_eigenvalues():
    a, _ = simulate_rlrt(np.array([3.0, 2.0, 1.0]), 40, 2, 300, rng=1)
    b, _ = simulate_rlrt(np.array([300.0, 200.0, 100.0, 0.0, 1e-14]), 40, 2, 300, rng=1)
    np.testing.assert_allclose(a, b, rtol=1e-12)


def test_errors(fits):
    with pytest.raises(ValueError, match="3 random-effects terms|2 random-effects terms"):
        exact_rlrt(fits["both"])
    with pytest.raises(ValueError, match="give both m_alt"):
        exact_rlrt(fits["int"], fits["both"])
    with pytest.raises(ValueError, match="must be the one term in m_alt"):
        exact_rlrt(fits["int"], fits["both"], fits["int"])
    with pytest.raises(ValueError, match="fixed effects of"):
        exact_rlrt(fits["c_slope"], fits["c_both"], fits["int"])
    with pytest.raises(ValueError, match="look swapped"):
        exact_rlrt(fits["slope"], fits["int"], fits["both"])
    corr = _fit_quiet("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))
    with pytest.raises(ValueError, match="differ by exactly one"):
        exact_rlrt(fits["slope"], corr, fits["int"])
    ss = mfx.datasets.load("sleepstudy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        corr = mfx.lmer("Reaction ~ Days + (Days | Subject)", ss)
        ml = mfx.lmer("Reaction ~ Days + (1 | Subject)", ss, reml=False)
        cb = mfx.datasets.load("cbpp")
        glmm = mfx.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cb, family="binomial")
    with pytest.raises(ValueError, match="several variance"):
        exact_rlrt(corr)
    with pytest.raises(ValueError, match="reml=True"):
        exact_rlrt(ml)
    with pytest.raises(NotImplementedError, match="linear mixed models"):
        exact_rlrt(glmm)
    with pytest.raises(TypeError, match="fitted model"):
        exact_rlrt("m")


def test_loaded_fit_has_no_data(fits, tmp_path):
    fits["dyestuff"].save(tmp_path / "m.json")
    with pytest.raises(ValueError, match="carries no data"):
        exact_rlrt(mfx.load(tmp_path / "m.json"))


@pytest.mark.parametrize("bad", [0, 2.5, "a", None])
def test_nsim_is_checked(fits, bad):
    """nsim="a" raised "'>=' not supported between str and int" and 2.5 was truncated to 2."""
    with pytest.raises(ValueError, match="nsim must be a positive whole number.*" + repr(bad)[:2]):
        exact_rlrt(fits["dyestuff"], nsim=bad)


def test_swapped_alternative_and_null_are_named(fits):
    """exact_rlrt(m, m0, mA) said only "m_alt has 4 parameters and m_null 5"."""
    with pytest.raises(ValueError, match="m_alt and m_null look swapped.*exact_rlrt\\(m, m_alt, m_null\\)"):
        exact_rlrt(fits["slope"], fits["int"], fits["both"], nsim=10)
