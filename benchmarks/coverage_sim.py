"""Coverage simulation: do the 95% intervals cover, and do the Satterthwaite tests hold their size?

Datasets are drawn from a known random-slope model shaped like sleepstudy (18 subjects x 10 days,
``y = 251 + 10.5 day + b0 + b1 day + e``, ``sd(b0) = 24.7``, ``sd(b1) = 5.9``, ``cor = 0.07``,
``sigma = 25.6``), each fitted by REML with ``(day | subject)``.  For the fixed slope we check:
the Wald z interval, t intervals with Satterthwaite and Kenward-Roger df, the likelihood profile and
the parametric bootstrap (percentile).  For ``tau = sd(b1)``: profile and bootstrap (lme4 gives no
Wald interval for variance parameters).  The test of ``H0: slope = 10.5`` (true) at alpha 0.05
with Satterthwaite df must reject 3.5-6.5% of the time.

Usage: ``python benchmarks/coverage_sim.py [--nsim 1000] [--nboot 200] [--jobs 2]``
(also run by the slow test ``tests/inference/test_coverage.py``).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from multiprocessing import get_context

import numpy as np
import pandas as pd

BETA = (251.0, 10.5)
SD0, SD1, COR, SIGMA = 24.7, 5.9, 0.07, 25.6
N_SUBJ, N_DAYS = 18, 10
LEVEL = 0.95


def simulate_dataset(rng: np.random.Generator) -> pd.DataFrame:
    cov = np.array([[SD0 ** 2, COR * SD0 * SD1], [COR * SD0 * SD1, SD1 ** 2]])
    b = rng.multivariate_normal(np.zeros(2), cov, size=N_SUBJ)
    subj = np.repeat(np.arange(N_SUBJ), N_DAYS)
    day = np.tile(np.arange(N_DAYS, dtype=float), N_SUBJ)
    y = BETA[0] + BETA[1] * day + b[subj, 0] + b[subj, 1] * day + rng.normal(0, SIGMA, subj.size)
    return pd.DataFrame({"y": y, "day": day, "subject": subj.astype(str)})


def one_replicate(args) -> dict:
    seed, nboot = args
    import mixedfx as mfx
    rng = np.random.default_rng(seed)
    df = simulate_dataset(rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mfx.lmer("y ~ day + (day | subject)", df)
        out = {"singular": bool(m.is_singular)}
        sat = m.coef_table().loc["day"]
        kr = m.coef_table(ddf="kenward-roger").loc["day"]
        from scipy import stats
        z = stats.norm.ppf(0.5 + LEVEL / 2)
        est = sat["estimate"]
        out["wald_z"] = abs(est - BETA[1]) <= z * sat["se"]
        out["satterthwaite_t"] = abs(est - BETA[1]) <= stats.t.ppf(0.5 + LEVEL / 2, sat["df"]) * sat["se"]
        out["kenward_roger_t"] = abs(est - BETA[1]) <= stats.t.ppf(0.5 + LEVEL / 2, kr["df"]) * kr["se"]
        out["satterthwaite_p"] = 2 * stats.t.sf(abs(est - BETA[1]) / sat["se"], sat["df"])
        names = ["day", "sd_day|subject"]
        prof = m.confint(method="profile", parm=names)
        boot = m.confint(method="boot", nsim=nboot, seed=int(rng.integers(2 ** 31)))
        for key, truth in zip(names, (BETA[1], SD1)):
            tag = "slope" if key == "day" else "tau"
            out[f"profile_{tag}"] = prof.loc[key, "lower"] <= truth <= prof.loc[key, "upper"]
            out[f"boot_{tag}"] = boot.loc[key, "lower"] <= truth <= boot.loc[key, "upper"]
    return out


def run(nsim: int = 1000, nboot: int = 200, jobs: int = 2, seed: int = 20261121) -> pd.DataFrame:
    """One row per simulated dataset: coverage indicators, the Satterthwaite p-value, singularity."""
    seeds = np.random.SeedSequence(seed).generate_state(nsim)
    tasks = [(int(s), nboot) for s in seeds]
    if jobs > 1:
        with get_context("fork").Pool(jobs) as pool:
            rows = pool.map(one_replicate, tasks, chunksize=max(1, nsim // (20 * jobs)))
    else:
        rows = [one_replicate(t) for t in tasks]
    return pd.DataFrame(rows)


def summarize(res: pd.DataFrame) -> pd.DataFrame:
    """Coverage (or rejection rate) with its binomial standard error, per interval."""
    cols = ["wald_z", "satterthwaite_t", "kenward_roger_t", "profile_slope", "boot_slope",
            "profile_tau", "boot_tau"]
    n = len(res)
    rows = {c: res[c].mean() for c in cols}
    rows["satterthwaite size (p < 0.05)"] = float((res["satterthwaite_p"] < 0.05).mean())
    out = pd.DataFrame({"rate": pd.Series(rows)})
    out["se"] = np.sqrt(out["rate"] * (1 - out["rate"]) / n)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nsim", type=int, default=1000)
    ap.add_argument("--nboot", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    a = ap.parse_args()
    t0 = time.perf_counter()
    res = run(a.nsim, a.nboot, a.jobs)
    s = summarize(res)
    print(f"{a.nsim} datasets, {a.nboot} bootstrap refits each, {time.perf_counter() - t0:.0f} s; "
          f"{res['singular'].mean():.1%} singular fits\n")
    print("| interval (95%) | coverage | SE |")
    print("|---|---:|---:|")
    for name, row in s.iterrows():
        print(f"| {name} | {row['rate']:.3f} | {row['se']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
