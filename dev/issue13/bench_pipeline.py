"""The benchmark's pipeline at 1/10 of its rows: Parquet partitions -> LocalCluster passes -> fit on the client.

  y ~ x + (1 | user) + (1 | item), N rows, U users x I items (uniform), written as N/1e6 Parquet files.

Run: PYTHONPATH=../../src:. OPENBLAS_NUM_THREADS=1 venv/bin/python bench_pipeline.py N U I [--inmem]
Peak memory is the sum of the RSS of this process and its children (nannies and workers), sampled every 0.1 s.
"""
from __future__ import annotations

import os
import sys
import threading
import time
import warnings

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import psutil
from dask.distributed import Client, LocalCluster

import cross_sum as cs
from _ratings import generate
from dask_demo import merge_moments, sum_pieces, tree
from mixedfx.design import build_design
from mixedfx.formula import parse_formula
from mixedfx.models.layout import block_structures

FORMULA = "y ~ x + (1 | user) + (1 | item)"


class PeakRSS(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.peak = 0
        self.stop = False
        self.me = psutil.Process()

    def run(self):
        while not self.stop:
            total = 0
            for p in [self.me] + self.me.children(recursive=True):
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            time.sleep(0.1)


def levels_of(part):
    return {g: np.unique(part[g].to_numpy()) for g in ("user", "item")}


def union(lst):
    return {g: np.unique(np.concatenate([d[g] for d in lst])) for g in lst[0]}


def template_spec(levels):
    """A spec with every level: build_design on a small frame holding each level twice (prototype stand-in
    for the plan's spec-only builder)."""
    nu, ni = len(levels["user"]), len(levels["item"])
    m = max(nu, ni)
    rng = np.random.default_rng(1)
    t = pd.DataFrame({"user": np.resize(levels["user"], m), "item": np.resize(levels["item"], m),
                      "x": rng.normal(size=m), "y": rng.normal(size=m)})
    t = pd.concat([t, t.assign(y=t.y + 1.0, x=t.x + 0.5)], ignore_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_design(parse_formula(FORMULA), t).spec


def main():
    N, U, I = (int(float(a)) for a in sys.argv[1:4])
    path = f"data_{N}_{U}_{I}"
    if not os.path.exists(path):
        t = time.perf_counter()
        generate(path, N, U, I)
        print(f"generated {N:,} rows in {time.perf_counter() - t:.1f}s", flush=True)
    mon = PeakRSS()
    mon.start()
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                           memory_limit="3GB")
    client = Client(cluster)
    base = mon.peak
    T = {}
    t0 = time.perf_counter()
    ddf = dd.read_parquet(path)
    parts = ddf.to_delayed()
    t = time.perf_counter()
    lev = tree([dask.delayed(levels_of)(p) for p in parts], union).compute()
    T["levels"] = time.perf_counter() - t
    spec = template_spec(lev)
    nlevels = [len(levels) for _, levels, _ in spec.random]
    t = time.perf_counter()
    mx, mt, my, _, _, _ = tree([dask.delayed(cs.partition_moments)(spec, p) for p in parts], merge_moments).compute()
    T["moments"] = time.perf_counter() - t
    class _B:                       # block shapes for the structures (unstructured scalar terms)
        def __init__(self, term):
            self.term, self.p = term, 1
    structures = block_structures([_B(parse_formula(FORMULA).random[0])] * 2)
    scaling = cs.standardization_from_moments(mx, mt, my, 0.0, 0, [st.scaling for st in structures])
    t = time.perf_counter()
    A = tree([dask.delayed(cs.partition_blocks)(spec, p, scaling, nlevels) for p in parts], sum_pieces).compute()
    A = cs.sum_blocks([A])
    T["cross-products"] = time.perf_counter() - t
    n, npos = A.pop("n"), A.pop("npos")
    t = time.perf_counter()
    ws = cs.scaled_from_blocks(A, scaling, n, 2, [1, 1], nlevels, npos, True, structures)
    T["workspace"] = time.perf_counter() - t
    AFF = A["AFF"]
    beta_ols = np.linalg.solve(AFF[:2, :2], AFF[:2, 2])
    t = time.perf_counter()
    st = tree([dask.delayed(cs.start_pass)(spec, q, scaling, nlevels, beta_ols) for q in parts],
              lambda lst: cs.merge_start(lst)).compute()
    T["start"] = time.perf_counter() - t
    x0 = cs.moment_start_from_stats(st, ws.layout, [1, 1], [True, True], nlevels)
    t = time.perf_counter()
    r = cs.fit_from_blocks(ws, x0)
    T["fit"] = time.perf_counter() - t
    total = time.perf_counter() - t0
    mon.stop = True
    mon.join()
    print(f"N={n:,} users={nlevels[0]:,} items={nlevels[1]:,} Ar0 nnz={A['Ar0'].nnz:,} partitions={len(parts)} "
          f"({type(ws.internal.schur).__name__}, sparse={ws.internal.rest_sparse})")
    print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in T.items()) + f"; total {total:.1f}; nfev {r['nfev']}")
    print(f"peak RSS client+workers {mon.peak / 2**20:.0f} MB (idle cluster {base / 2**20:.0f} MB)")
    print("objective", repr(r["objective"]), "theta", r["theta"], "beta", r["beta"], "sigma", r["sigma"])
    client.close()
    cluster.close()
    if "--inmem" in sys.argv:
        import mixedfx as mfx
        df = pd.read_parquet(path)
        t = time.perf_counter()
        m = mfx.lmer(FORMULA, df)
        tm = time.perf_counter() - t
        f = m.fit
        print(f"in memory: {tm:.1f}s objective rel {abs(f.objective - r['objective']) / abs(f.objective):.1e} "
              f"theta {np.max(np.abs(f.theta - r['theta']) / np.abs(f.theta)):.1e} "
              f"beta {np.max(np.abs(f.beta - r['beta']) / np.abs(f.beta)):.1e}")


if __name__ == "__main__":
    main()
