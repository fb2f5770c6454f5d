"""Cost of glmer on Dask (step 8): passes, seconds per pass, total vs in-memory glmer(optimizer="bobyqa").

2-process LocalCluster (1 thread each), K = 4 partitions (from_pandas).  Models: cbpp (binomial cbind),
grouseticks (Poisson, crossed (1 | BROOD) + (1 | LOCATION)), a simulated binomial (1 | g) with 2e5 rows and 500
groups.  Run: OPENBLAS_NUM_THREADS=1 python dev/issue13/glmm_dask_cost.py | tee dev/issue13/glmm_dask_cost.log
"""
import os
import time
import warnings

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import pandas as pd
import dask.dataframe as dd
from dask.distributed import Client, LocalCluster

import mixedfx as mfx


def simulated(n=200_000, groups=500, seed=1):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, n)
    x = rng.normal(size=n)
    eta = -0.5 + 0.8 * x + rng.normal(0, 0.7, groups)[g]
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    return pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g)})


def main():
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)
    cases = [("cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", mfx.datasets.load("cbpp"),
              "binomial"),
             ("grouseticks crossed", "TICKS ~ YEAR + HEIGHT + (1 | BROOD) + (1 | LOCATION)",
              mfx.datasets.load("grouseticks"), "poisson"),
             ("simulated 2e5 rows", "y ~ x + (1 | g)", simulated(), "binomial")]
    for name, formula, df, fam in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            ref = mfx.glmer(formula, df, family=fam, optimizer="bobyqa")
            t_mem = time.perf_counter() - t
            t = time.perf_counter()
            got = mfx.glmer(formula, dd.from_pandas(df, npartitions=4), family=fam)
            t_dask = time.perf_counter() - t
        e = got.fit.extra
        rel = lambda a, b: float(np.max(np.abs(np.asarray(a) - b)) / np.max(np.abs(b)))  # noqa: E731
        print(f"{name}: n={got.nobs}; evaluations stage1/stage2 {e['evaluations']} (in memory "
              f"{ref.fit.opt_stage1.nfev}/{ref.fit.opt.nfev}); passes {e['passes']} {e['passes_by_phase']}; "
              f"{1e3 * e['pass_seconds'] / e['passes']:.1f} ms/pass; fit {e['fit_seconds']:.2f} s, total "
              f"{t_dask:.2f} s vs in memory {t_mem:.2f} s; -2logL rel "
              f"{abs(got.fit.objective - ref.fit.objective) / abs(ref.fit.objective):.1e}, theta "
              f"{rel(got.fit.theta, ref.fit.theta):.1e}, beta {rel(got.fit.beta, ref.fit.beta):.1e}, vcov "
              f"{rel(got.fit.vcov, ref.fit.vcov):.1e}", flush=True)
    client.close()
    cluster.close()


if __name__ == "__main__":
    main()
