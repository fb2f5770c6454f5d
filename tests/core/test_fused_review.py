"""Review of the compiled small-model criterion, the polish rule and the early-stopping pattern density.

* ``fused.compiled_criterion`` against ``PLSWorkspace.objective`` on random layouts (p0 = 1..4, several
  scalar and vector later terms, every covariance structure on any term, p = 0..3, weights with zeros,
  zero and negative theta), on workspaces from summed blocks, in threads and in forked bootstrap workers;
* ``mfx.lmer`` with and without it on the lme4 reference models;
* ``pattern_density``'s early stop: the sparse/dense decision against a brute-force pattern;
* a large dense crossing (evaluations of ~6e7 flops): ``check()`` and the partitioned fit, which equals the
  in-memory fit only because both end with the Newton polish.
"""
from __future__ import annotations

import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import mixedfx as mfx
from conftest import is_reml, load_reference, reference_data, reference_ids, rel_max
from mixedfx.core import PLSWorkspace, fused
from mixedfx.core.blocksum import partition_blocks, sum_blocks
from mixedfx.core.gram import choose_update
from mixedfx.core.schur import pair_count, pattern_density
from mixedfx.core.scatter_gram import use_scatter
from mixedfx.core.structures import make_structure
from mixedfx.core.workspace import FAILED_OBJECTIVE
from mixedfx.models import optimizers

from test_workspace_oracle import random_problem

pytest.importorskip("numba")

STRUCTURES = ("us", "diag", "homdiag", "cs", "homcs", "ar1", "toep", "ou")


def _structure(rng, name, p):
    if name == "ou" and p == 1:
        name = "us"
    if name == "ou":
        return make_structure("ou", p, times=np.sort(rng.uniform(0.0, 5.0, p)))
    return make_structure(name, p)


def _random_model(seed):
    """A random small model: 1-3 terms of 1-4 columns, any structure per term, p = 0..3, maybe weights
    (some zero), ML or REML."""
    rng = np.random.default_rng(seed)
    nterms = int(rng.integers(1, 4))
    terms = [(int(rng.integers(5, 15)), int(rng.integers(1, 5)))]
    terms += [(int(rng.integers(2, 7)), int(rng.integers(1, 4))) for _ in range(nterms - 1)]
    p = int(rng.integers(0, 4))
    X, y, blocks, w = random_problem(rng, 90, terms, p=max(p, 1), weights=bool(rng.integers(0, 2)))
    if p == 0:
        X = X[:, :0]
    if w is not None and rng.integers(0, 2):
        w[rng.choice(90, 10, replace=False)] = 0.0
    structures = [_structure(rng, STRUCTURES[rng.integers(0, len(STRUCTURES))], pk) for _, pk in terms]
    ws = PLSWorkspace(X, y, blocks, weights=w, reml=bool(rng.integers(0, 2)), structures=structures)
    return rng, ws


def test_compiled_criterion_equals_the_workspace_on_random_layouts():
    worst, checked = 0.0, 0
    for seed in range(120):
        rng, ws = _random_model(seed)
        crit = fused.compiled_criterion(ws)
        assert crit is not None, seed
        k, lb = ws.layout.n_theta, ws.layout.lower_bounds()
        for kind in range(5):
            theta = rng.normal(size=k) * (3.0 if kind < 2 else 1.0)       # negative entries included
            if kind == 2:
                theta[lb == 0] = 0.0                                        # every bounded entry at 0
            elif kind == 3:
                theta = np.abs(theta)
            elif kind == 4:
                theta[rng.integers(0, k)] = 0.0
            got, ref = crit(theta), ws.objective(theta)
            assert (got >= FAILED_OBJECTIVE) == (ref >= FAILED_OBJECTIVE), (seed, theta)
            if ref < FAILED_OBJECTIVE:
                worst = max(worst, abs(got - ref) / abs(ref))
                checked += 1
    assert checked > 500
    assert worst < 1e-13


def test_compiled_criterion_on_workspaces_from_summed_blocks():
    rng = np.random.default_rng(4)
    n = 200
    for terms in ([(40, 2), (7, 1)], [(12, 1), (5, 2), (3, 3)], [(10, 4), (3, 2)]):
        X, y, blocks, w = random_problem(rng, n, terms, p=2, weights=True)
        w[:7] = 0.0
        mem = PLSWorkspace(X, y, blocks, weights=w)
        parts = np.array_split(rng.permutation(n), 4)
        sums = sum_blocks([partition_blocks(X[i], y[i], [(c[i], v[i], nl) for c, v, nl in blocks], w[i])
                           for i in parts])
        ws = PLSWorkspace.from_blocks(sums, n, 2, [t[1] for t in terms], [t[0] for t in terms],
                                      log_weights=sums.log_weights)
        from_sums, in_memory = fused.compiled_criterion(ws), fused.compiled_criterion(mem)
        for _ in range(4):
            theta = rng.normal(size=ws.layout.n_theta)
            ref = mem.objective(theta)
            for val in (from_sums(theta), in_memory(theta), ws.objective(theta)):
                assert val == pytest.approx(ref, rel=1e-13, abs=0)


@pytest.mark.parametrize("ref_id", reference_ids("lmer"))
def test_lme4_reference_fits_agree_with_and_without_the_compiled_criterion(ref_id, monkeypatch):
    ref = load_reference(ref_id)
    df = reference_data(ref)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = mfx.lmer(ref["formula"], df, reml=is_reml(ref))
        if fused.compiled_criterion(fast.fit.fresh_workspace().internal) is None:
            pytest.skip("the compiled criterion would not be faster here (fused.pays): not used")
        monkeypatch.setattr(fused, "ENABLED", False)
        general = mfx.lmer(ref["formula"], df, reml=is_reml(ref))
    assert fast.objective == pytest.approx(general.objective, rel=1e-12)
    assert fast.objective == pytest.approx(ref["objective"], rel=1e-9)
    np.testing.assert_allclose(fast.theta, general.theta, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(fast.fixef, general.fixef, rtol=1e-8, atol=1e-10)
    assert rel_max(np.asarray(fast.vcov()), np.asarray(general.vcov())) < 1e-7
    for a, b in zip(fast.fit.b, general.fit.b):         # (all zero in a singular fit)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-7 * max(np.max(np.abs(b)), 1e-8))


def test_fits_in_threads_equal_sequential_fits():
    sleep, pen = mfx.datasets.load("sleepstudy"), mfx.datasets.load("penicillin")
    jobs = [("Reaction ~ Days + (Days | Subject)", sleep), ("diameter ~ 1 + (1 | plate) + (1 | sample)", pen),
            ("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", sleep)] * 4

    def fit(job):
        m = mfx.lmer(*job)
        return m.objective, tuple(m.theta), tuple(m.fixef)
    with ThreadPoolExecutor(4) as ex:
        threaded = list(ex.map(fit, jobs))
    assert threaded == [fit(job) for job in jobs]


def test_forked_bootstrap_equals_serial_with_the_compiled_criterion():
    from mixedfx.inference.bootstrap import bootstrap
    m = mfx.lmer("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))
    assert fused.compiled_criterion(m.fit.fresh_workspace().internal) is not None
    forked = bootstrap(m, nsim=40, seed=3, n_jobs=2, progress=False)
    serial = bootstrap(m, nsim=40, seed=3, n_jobs=1, progress=False)
    pd.testing.assert_frame_equal(forked, serial)


def _brute_density(Ar0, p0, Arr) -> float:
    """Share of the lower triangle touched by the Schur update (levels' row unions), Arr and the diagonal."""
    B = sp.csc_matrix(Ar0, copy=True)
    B.data[:] = 1.0
    q_r, q0 = B.shape
    if p0 > 1:
        B = sp.csc_matrix(B @ sp.kron(sp.identity(q0 // p0), np.ones((p0, 1))))
        B.data[:] = 1.0
    touched = ((B @ B.T) + abs(sp.csr_matrix(Arr)) + sp.identity(q_r)).toarray() != 0
    return np.count_nonzero(np.tril(touched)) / (q_r * (q_r + 1) / 2.0)


@pytest.mark.parametrize("p0, later, k", [(1, [600], 2), (1, [600], 3), (1, [600], 4), (1, [300, 320], 3),
                                          (2, [560], 3), (2, [560], 4), (1, [700], 1),
                                          (2, [600], 2), (1, [400, 420], 1)])
def test_sparse_or_dense_decision_matches_the_brute_force_density(p0, later, k):
    """Each term-0 level meets ``k`` later levels: densities on both sides of SPARSE_MAX_DENSITY (0.02)."""
    rng = np.random.default_rng(zlib.crc32(f"{p0}-{later}-{k}".encode()))
    l0, n = 1500, 6000
    codes0 = rng.integers(0, l0, n)
    codes0[:l0] = np.arange(l0)
    blocks = [(codes0, np.column_stack([np.ones(n), rng.normal(size=n)])[:, :p0], l0)]
    for nl in later:
        table = rng.integers(0, nl, (l0, k))
        codes = table[codes0, rng.integers(0, k, n)]
        codes[:nl] = np.arange(nl)
        blocks.append((codes, np.ones((n, 1)), nl))
    ws = PLSWorkspace(np.ones((n, 1)), rng.normal(size=n), blocks)
    Ar0, Arr, limit = ws.Ar0, ws._Arr_sparse, PLSWorkspace.SPARSE_MAX_DENSITY
    exact = _brute_density(Ar0, p0, Arr)
    q_r, q0 = Ar0.shape
    dense_gram = pair_count(Ar0, p0) * 80 > q_r ** 2 * q0 and q_r * q0 * 8 <= 512 * 2 ** 20
    expect = not use_scatter(Ar0, p0, True, "auto", warn=False) and not dense_gram and exact <= limit
    assert ws.rest_sparse == expect
    assert choose_update(Ar0, p0, Arr, "auto", True, PLSWorkspace.SPARSE_MIN_Q, limit)[1] == expect
    assert pattern_density(Ar0, p0, Arr) == pytest.approx(exact, rel=1e-12)
    early = pattern_density(Ar0, p0, Arr, max_density=limit)
    assert (early <= limit) == (exact <= limit)
    assert early == pytest.approx(exact, rel=1e-12) if exact <= limit else limit < early <= exact


def _large_crossing(seed=1):
    """6,000 rows crossing 620 x 580 levels: a dense 580-column later-terms block (~6e7 flops an evaluation)."""
    rng = np.random.default_rng(seed)
    n, la, lb = 6000, 620, 580
    a, b, x = rng.integers(0, la, n), rng.integers(0, lb, n), rng.normal(size=n)
    y = x + rng.normal(size=la)[a] * 0.7 + rng.normal(size=lb)[b] * 0.5 + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "a": pd.Categorical(a), "b": pd.Categorical(b)})


def test_check_reports_convergence_on_a_large_dense_crossing():
    m = mfx.lmer("y ~ x + (1 | b) + (1 | a)", _large_crossing())
    iws = m.fit.fresh_workspace().internal
    assert not iws.rest_sparse and optimizers.polishes(iws)
    conv = m.check().findings.set_index("check").loc["convergence"]
    assert conv["status"] == "ok" and "scaled gradient" in conv["detail"]
    scaled = float(conv["detail"].split("scaled gradient ")[1].rstrip(")"))
    assert scaled < 2e-3


def test_partitioned_fit_equals_lmer_on_a_large_dense_crossing():
    """Without the Newton polish BOBYQA stops ~1e-6 from the optimum along a path that rounding in the
    summed blocks changes (review finding on a rule that skipped it for costly evaluations: 1.4e-6)."""
    from mixedfx.models.partitioned import fit_lmm_partitions
    df = _large_crossing()
    formula = "y ~ x + (1 | b) + (1 | a)"
    ref = mfx.lmer(formula, df)
    got = fit_lmm_partitions(formula, [df.iloc[:2500], df.iloc[2500:]]).optimum
    assert abs(got.objective - ref.fit.objective) <= 1e-10 * abs(ref.fit.objective)
    for key in ("theta", "beta", "sigma", "vcov"):          # as tests/models/test_partitioned_fit.py
        assert rel_max(getattr(got, key), getattr(ref.fit, key)) < 1e-8, key
