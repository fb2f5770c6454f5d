"""Equality of the from-cross-products fit with mfx.lmer on reference models split into K partitions.

Run: OPENBLAS_NUM_THREADS=1 python run_equality.py
"""
from __future__ import annotations

import copy
import dataclasses
import json
import os
import sys
import time
import warnings

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mixedfx as mfx  # noqa: E402
from mixedfx.models.layout import block_structures  # noqa: E402
from mixedfx.models.lmm import make_workspace  # noqa: E402
from mixedfx.core.start import moment_start  # noqa: E402

import cross_sum as cs  # noqa: E402


def split(df: pd.DataFrame, K: int, how: str, seed: int = 0, empty: bool = False) -> list:
    if how == "random":
        idx = np.random.default_rng(seed).permutation(len(df))
        parts = [df.iloc[np.sort(c)] for c in np.array_split(idx, K)]
    else:   # contiguous rows in the data's order: levels confined to one partition
        parts = [df.iloc[c] for c in np.array_split(np.arange(len(df)), K)]
    if empty:
        parts.insert(1, df.iloc[:0])
    return parts


def rel(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)) if a.size else 0.0


def run_case(name, formula, df, K, how, weights=None, empty=False, reml=True, state_override=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        m = mfx.lmer(formula, df, weights=weights, reml=reml)
        t_mem = time.perf_counter() - t0
    fit = m.fit
    design = fit.design
    spec = design.spec
    # the rows the in-memory fit used (missing values dropped), split into partitions
    data = df.loc[design.row_index]
    parts = split(data, K, how, empty=empty)
    scale_check = None
    if spec.state.scale:
        # scale(x): centre and SD from the merged per-partition moments of x, replacing the in-memory ones
        new = {}
        for label, (c_mem, s_mem) in spec.state.scale.items():
            var = label[len("scale("):-1]
            mm = None
            for q in parts:
                if len(q):
                    x = cs.Moments(q[var].to_numpy(float)[:, None])
                    mm = x if mm is None else mm.merge(x)
            c = float(mm.mean[0])
            sd = float(np.sqrt(mm.M2[0] / (mm.n - 1)))
            new[label] = (c, sd)
            scale_check = max(abs(c - c_mem) / abs(c_mem), abs(sd - s_mem) / s_mem)
        state = dataclasses.replace(spec.state, scale=new)
        spec = dataclasses.replace(spec, state=state)
    # 1. levels pass: union of levels per grouping factor == the fit's levels
    groups = [g for g, _, _ in spec.random]
    for (g, levels, _), b in zip(spec.random, design.blocks):
        if len(g) == 1:
            union = cs.global_levels(parts, list(g))[g[0]]
            assert union == tuple(levels), (g, union[:5], levels[:5])
    nlevels = [len(levels) for _, levels, _ in spec.random]
    t1 = time.perf_counter()
    # 2. moments pass
    mom = [cs.partition_moments(spec, p, weights) for p in parts]
    mom = [x for x in mom if x is not None]
    mx, mterms, my = mom[0][0], list(mom[0][1]), mom[0][2]
    wsum, wn, npos = mom[0][3], mom[0][4], mom[0][5]
    for x in mom[1:]:
        mx = mx.merge(x[0])
        mterms = [a.merge(b) for a, b in zip(mterms, x[1])]
        my = my.merge(x[2])
        wsum, wn, npos = wsum + x[3], wn + x[4], npos + x[5]
    structures = block_structures(design.blocks)
    scaling = cs.standardization_from_moments(mx, mterms, my, wsum if weights else 0.0, wn if weights else 0,
                                              [st.scaling for st in structures])
    ref = fit.scaling
    def adiff(a, b):    # relative to the entries' size, at least 1 (centres that are ~0)
        a, b = np.atleast_1d(np.asarray(a, float)), np.atleast_1d(np.asarray(b, float))
        return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1.0))) if a.size else 0.0
    scal_diff = max(adiff(getattr(scaling, f), getattr(ref, f)) for f in
                    ("y_center", "y_scale", "w_scale", "g", "x_center", "x_scale", "A"))
    scal_diff = max([scal_diff] + [adiff(a, b) for a, b in zip(scaling.T, ref.T)])
    # 3. cross-product pass and the sum
    pieces = [cs.partition_blocks(spec, p, scaling, nlevels, weights) for p in parts]
    A = cs.sum_blocks(pieces)
    n = A.pop("n")
    npos_sum = A.pop("npos")
    t_pass = time.perf_counter() - t1
    # the in-memory workspace's blocks on the same scaling, for a direct comparison of A
    wmem = make_workspace(design, reml, scaling=scaling).internal
    a_diff = {}
    for key, attr in (("A00", "A00"), ("AF0", "AF0"), ("AFF", "AFF"), ("AFr", "AFr")):
        if key in A:
            a_diff[key] = rel(A[key], getattr(wmem, attr))
    for key, attr in (("Ar0", "Ar0"), ("Arr", "_Arr_sparse")):
        if key in A:
            M = getattr(wmem, attr)
            same = np.array_equal(A[key].indptr, M.indptr) and np.array_equal(A[key].indices, M.indices)
            a_diff[key] = rel(A[key].data, M.data) if same else f"pattern differs ({A[key].nnz} vs {M.nnz})"
    # 4. fit from the sums
    t2 = time.perf_counter()
    ws = cs.scaled_from_blocks(A, scaling, n, design.X.shape[1], [b.p for b in design.blocks], nlevels,
                               npos_sum, reml, structures)
    assert ws.internal.rest_sparse == wmem.rest_sparse
    # start (a) the in-memory moment start (same x0: isolates the sums), (b) from the start pass
    wsm = make_workspace(design, reml)
    y = design.y if design.offset is None else design.y - design.offset
    x0_mem = moment_start(wsm.X, wsm.scaling.response(y), wsm.blocks, wsm.layout, wsm.weights)
    AFF = A["AFF"]
    p = design.X.shape[1]
    beta_ols = np.linalg.solve(AFF[:p, :p], AFF[:p, p])
    st = cs.merge_start([cs.start_pass(spec, q, scaling, nlevels, beta_ols, weights) for q in parts])
    intercepts = [bool(np.all(b.X[:, 0] == b.X[0, 0]) and b.X[0, 0] != 0) if b.p else False for b in design.blocks]
    x0_dist = cs.moment_start_from_stats(st, ws.layout, [b.p for b in design.blocks], intercepts, nlevels)
    out = {"case": name, "n": int(n), "K": len(parts), "split": how, "levels": nlevels,
           "rest_sparse": bool(ws.internal.rest_sparse), "scaling_rel": scal_diff, "A_rel": a_diff,
           "start_rel": rel(x0_dist, x0_mem), "scale_params_rel": scale_check, "t_mem": round(t_mem, 3), "t_passes": round(t_pass, 3)}
    for tag, x0 in (("same_start", x0_mem), ("dist_start", x0_dist)):
        t3 = time.perf_counter()
        r = cs.fit_from_blocks(ws, x0)
        tf = time.perf_counter() - t3
        out[tag] = {
            "objective_rel": abs(r["objective"] - fit.objective) / abs(fit.objective),
            "theta_rel": rel(r["theta"], fit.theta), "beta_rel": rel(r["beta"], fit.beta),
            "sigma_rel": abs(r["sigma"] - fit.sigma) / fit.sigma, "vcov_rel": rel(r["vcov"], fit.vcov),
            "b_rel": max(rel(a, b) for a, b in zip(r["b"], fit.b)),
            "condvar_rel": max(rel(a, b) for a, b in zip(r["cond_var"], fit.cond_var)),
            "nfev": int(r["nfev"]), "nfev_mem": int(fit.opt.nfev), "optimizer": r["optimizer"],
            "t_fit": round(tf, 3)}
    return out


def main():
    sleep = mfx.datasets.load("sleepstudy")
    pen = mfx.datasets.load("penicillin")
    inst = mfx.datasets.load("insteval")
    rng = np.random.default_rng(1)
    sleepw = sleep.assign(w=rng.uniform(0.2, 3.0, len(sleep)))
    sleepw.loc[[3, 40], "w"] = 0.0          # zero weights count in n, not in sum log w
    sleepna = sleep.copy()
    sleepna.loc[[5, 17, 100], "Reaction"] = np.nan
    sleepna.loc[[60], "Days"] = np.nan
    # nested (sparse later-terms path): 800 schools x 5 classes x 10 pupils
    ns, nc, npup = 800, 5, 10
    school = np.repeat(np.arange(ns), nc * npup)
    klass = np.repeat(np.arange(ns * nc), npup)
    x = rng.normal(size=len(school))
    yv = 1 + 0.5 * x + rng.normal(0, 0.7, ns)[school] + rng.normal(0, 0.5, ns * nc)[klass] + rng.normal(size=len(x))
    nested = pd.DataFrame({"y": yv, "x": x + 1e4, "school": [f"s{i}" for i in school], "klass": [f"c{i}" for i in klass]})
    # MovieLens-like crossed: heavy-tailed activity and popularity (hybrid Gram path)
    nu, ni, nr = 3000, 700, 90_000
    u = np.minimum((rng.pareto(1.2, nr) * 50).astype(int), nu - 1)
    it = np.minimum((rng.pareto(1.0, nr) * 20).astype(int), ni - 1)
    rat = 3 + rng.normal(0, 0.5, nu)[u] + rng.normal(0, 0.8, ni)[it] + rng.normal(size=nr)
    ml = pd.DataFrame({"rating": rat, "genre": rng.choice(["a", "b", "c"], nr), "user": u, "item": it})
    penw = pen.assign(w=rng.uniform(0.5, 2.0, len(pen)))
    penw.loc[[0, 7], "w"] = 0.0
    cases = [
        ("nested 800 schools / 4000 classes, K=10", "y ~ x + (1 | klass) + (1 | school)", nested, 10, "random", {}),
        ("MovieLens-like crossed 90k, K=10", "rating ~ genre + (1 | user) + (1 | item)", ml, 10, "random", {}),
        ("penicillin weighted (2 zero weights), K=5", "diameter ~ 1 + (1 | plate) + (1 | sample)", penw, 5, "random",
         {"weights": "w"}),
        ("sleepstudy (Days|Subject), K=4 random", "Reaction ~ Days + (Days | Subject)", sleep, 4, "random", {}),
        ("sleepstudy, K=6 contiguous (each level in ~1 partition) + empty", "Reaction ~ Days + (Days | Subject)",
         sleep, 6, "contiguous", {"empty": True}),
        ("sleepstudy ML, K=3", "Reaction ~ Days + (Days | Subject)", sleep, 3, "random", {"reml": False}),
        ("sleepstudy weighted (2 zero weights), K=4", "Reaction ~ Days + (Days | Subject)", sleepw, 4, "random",
         {"weights": "w"}),
        ("sleepstudy 4 NaN rows dropped, K=4", "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", sleepna, 4,
         "random", {}),
        ("sleepstudy scale(Days)", "Reaction ~ scale(Days) + (1 | Subject)", sleep, 4, "random", {}),
        ("penicillin crossed, K=5", "diameter ~ 1 + (1 | plate) + (1 | sample)", pen, 5, "random", {}),
        ("insteval crossed 3 terms, K=8", "y ~ service + (1 | s) + (1 | d) + (1 | dept)", inst, 8, "random", {}),
        ("insteval factor fixed effects, K=8 contiguous", "y ~ service + lectage + (1 | s) + (1 | d)", inst, 8,
         "contiguous", {}),
    ]
    results = []
    for name, f, df, K, how, kw in cases:
        r = run_case(name, f, df, K, how, **kw)
        results.append(r)
        s, d = r["same_start"], r["dist_start"]
        print(f"{name}: n={r['n']} K={r['K']} scaling {r['scaling_rel']:.1e} A {max(v for v in r['A_rel'].values() if isinstance(v, float)):.1e}"
              f" start {r['start_rel']:.1e} sparse={r['rest_sparse']} scale()={r['scale_params_rel']} | same start: obj {s['objective_rel']:.1e} theta {s['theta_rel']:.1e}"
              f" beta {s['beta_rel']:.1e} b {s['b_rel']:.1e} | dist start: obj {d['objective_rel']:.1e}"
              f" theta {d['theta_rel']:.1e} beta {d['beta_rel']:.1e} b {d['b_rel']:.1e} nfev {d['nfev']}/{d['nfev_mem']}"
              f" | t_mem {r['t_mem']}s fit {d['t_fit']}s", flush=True)
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "equality_results.json"), "w") as fh:
        json.dump(results, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
