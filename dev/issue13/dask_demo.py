"""The three passes on a LocalCluster (2 process workers), then the fit on the client.

Run: PYTHONPATH=../../src:. OPENBLAS_NUM_THREADS=1 python dask_demo.py
(the venv has dask/distributed; mixedfx from the repository src on PYTHONPATH)
"""
from __future__ import annotations

import os
import time
import warnings

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import dask
import dask.dataframe as dd
import numpy as np
from dask.distributed import Client, LocalCluster

import mixedfx as mfx
from mixedfx.models.layout import block_structures
import cross_sum as cs


def tree(items, combine, width=4):
    """Tree reduction of delayed objects (width-ary), as dask's own reductions do."""
    while len(items) > 1:
        items = [dask.delayed(combine)(items[i:i + width]) for i in range(0, len(items), width)]
    return items[0]


def merge_moments(lst):
    lst = [x for x in lst if x is not None]
    if not lst:
        return None
    mx, mt, my, ws, wn, npos = lst[0]
    for x in lst[1:]:
        mx, my = mx.merge(x[0]), my.merge(x[2])
        mt = [a.merge(b) for a, b in zip(mt, x[1])]
        ws, wn, npos = ws + x[3], wn + x[4], npos + x[5]
    return mx, mt, my, ws, wn, npos


def sum_pieces(lst):
    lst = [x for x in lst if x is not None]
    if not lst:
        return None
    out = cs.sum_blocks(lst)
    return {k: (v.tocoo() if hasattr(v, "tocoo") else v) for k, v in out.items()}


def levels_of(part, cols):
    from mixedfx.design.evaluate import factor_codes
    return {g: set(factor_codes(part[g], g)[1]) if len(part) else set() for g in cols}


def union_levels(lst):
    out = {}
    for d in lst:
        for k, v in d.items():
            out.setdefault(k, set()).update(v)
    return out


def main(name, formula, df, npart):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        m = mfx.lmer(formula, df)
        t_mem = time.perf_counter() - t0
    fit = m.fit
    spec = fit.design.spec
    ddf = dd.from_pandas(df, npartitions=npart)
    parts = ddf.to_delayed()
    groups = sorted({g for grp, _, _ in spec.random for g in grp})
    t1 = time.perf_counter()
    lev = tree([dask.delayed(levels_of)(p, groups) for p in parts], union_levels).compute()
    for grp, levels, _ in spec.random:
        assert lev[grp[0]] == set(levels)
    t_lev = time.perf_counter() - t1
    structures = block_structures(fit.design.blocks)
    nlevels = [len(levels) for _, levels, _ in spec.random]
    t2 = time.perf_counter()
    mx, mt, my, _, wn, _ = tree([dask.delayed(cs.partition_moments)(spec, p) for p in parts], merge_moments).compute()
    scaling = cs.standardization_from_moments(mx, mt, my, 0.0, 0, [st.scaling for st in structures])
    t_mom = time.perf_counter() - t2
    t3 = time.perf_counter()
    A = tree([dask.delayed(cs.partition_blocks)(spec, p, scaling, nlevels) for p in parts], sum_pieces).compute()
    A = cs.sum_blocks([A])          # COO -> CSR with sorted indices on the client
    t_cp = time.perf_counter() - t3
    n, npos = A.pop("n"), A.pop("npos")
    ws = cs.scaled_from_blocks(A, scaling, n, fit.design.X.shape[1], [b.p for b in fit.design.blocks], nlevels,
                               npos, True, structures)
    AFF = A["AFF"]
    p = fit.design.X.shape[1]
    beta_ols = np.linalg.solve(AFF[:p, :p], AFF[:p, p])
    t4 = time.perf_counter()
    st = tree([dask.delayed(cs.start_pass)(spec, q, scaling, nlevels, beta_ols) for q in parts],
              lambda lst: cs.merge_start(lst)).compute()
    t_start = time.perf_counter() - t4
    intercepts = [bool(np.all(b.X[:, 0] == b.X[0, 0]) and b.X[0, 0] != 0) for b in fit.design.blocks]
    x0 = cs.moment_start_from_stats(st, ws.layout, [b.p for b in fit.design.blocks], intercepts, nlevels)
    t5 = time.perf_counter()
    r = cs.fit_from_blocks(ws, x0)
    t_fit = time.perf_counter() - t5
    print(f"{name}: n={n} partitions={npart} | levels {t_lev:.2f}s moments {t_mom:.2f}s cross-products {t_cp:.2f}s "
          f"start {t_start:.2f}s fit {t_fit:.2f}s | in-memory lmer {t_mem:.2f}s | "
          f"objective rel {abs(r['objective'] - fit.objective) / abs(fit.objective):.1e} "
          f"theta {np.max(np.abs(r['theta'] - fit.theta) / np.abs(fit.theta)):.1e} "
          f"beta {np.max(np.abs(r['beta'] - fit.beta)) / np.max(np.abs(fit.beta)):.1e}", flush=True)


if __name__ == "__main__":
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)
    main("sleepstudy", "Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"), 4)
    main("penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", mfx.datasets.load("penicillin"), 5)
    main("insteval", "y ~ service + (1 | s) + (1 | d) + (1 | dept)", mfx.datasets.load("insteval"), 8)
    client.close()
    cluster.close()
