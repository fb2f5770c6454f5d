"""Calibration and power of the simulation-based (DHARMa) residual tests.

Data sets are drawn from known models, fitted with mixedfx, and checked with
``simulated_residuals(n=250)``, both unconditionally (new random effects in every simulation,
the default) and conditionally (``use_u=True``):

* null, Poisson GLMM: ``y ~ Poisson(exp(0.6 + 0.4 x + b_g))``, ``b_g ~ N(0, 0.4^2)``, 30 groups of
  10, fitted ``y ~ x + (1 | g)``.  Reported: the rejection rate at 5% of each test, quantiles of the
  p-values, the mean dispersion ratio, and a KS test of all data sets' residuals pooled;
* null, Gaussian LMM: ``y = 2 + x + b_g + e``, ``sd(b) = sd(e) = 1``, 30 groups of 10;
* power: the same Poisson fit to negative-binomial data (size 1: ``Var = mu + mu^2``) and to
  zero-inflated Poisson data (30% structural zeros).

Usage: ``python benchmarks/calibration_dharma.py [--nsim 200] [--npower 50] [--out PATH]``
(default output ``benchmarks/results/calibration_dharma.json``).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import time
import warnings

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

import mixedfx as mfx  # noqa: E402

TESTS = ("uniformity", "dispersion", "zero_inflation", "outliers", "quantiles")


def counts(rng, kind, n_groups=30, per=10, sd_b=0.4):
    g = np.repeat(np.arange(n_groups), per)
    x = rng.normal(size=g.size)
    mu = np.exp(0.6 + 0.4 * x + rng.normal(0, sd_b, n_groups)[g])
    if kind == "poisson":
        y = rng.poisson(mu)
    elif kind == "negbin":
        y = rng.negative_binomial(1.0, 1.0 / (1.0 + mu))
    else:
        y = np.where(rng.random(g.size) < 0.3, 0, rng.poisson(mu))
    return pd.DataFrame({"y": y, "x": x, "g": g})


def gaussian(rng, n_groups=30, per=10):
    g = np.repeat(np.arange(n_groups), per)
    x = rng.normal(size=g.size)
    y = 2 + x + rng.normal(0, 1, n_groups)[g] + rng.normal(0, 1, g.size)
    return pd.DataFrame({"y": y, "x": x, "g": g})


def pvalues(r) -> dict:
    return {"uniformity": r.test_uniformity().pvalue, "dispersion": r.test_dispersion().pvalue,
            "zero_inflation": r.test_zero_inflation().pvalue, "outliers": r.test_outliers().pvalue,
            "quantiles": r.test_quantiles().pvalue, "ratio": r.test_dispersion().statistic}


def scenario(kind: str, nsim: int, seed0: int) -> dict:
    out = {}
    for use_u in (False, True):
        rows, pooled = [], []
        t0 = time.perf_counter()
        for k in range(nsim):
            rng = np.random.default_rng(seed0 + k)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if kind == "lmm":
                    fit = mfx.lmer("y ~ x + (1 | g)", gaussian(rng))
                else:
                    fit = mfx.glmer("y ~ x + (1 | g)", counts(rng, kind), family="poisson")
            r = fit.simulated_residuals(n=250, seed=seed0 + k, use_u=use_u)
            rows.append(pvalues(r))
            pooled.append(r.residuals)
        tab = pd.DataFrame(rows)
        pooled = np.concatenate(pooled)
        out["conditional" if use_u else "unconditional"] = {
            "datasets": nsim,
            "rejection_rate_5pct": {t: float(np.mean(tab[t] < 0.05)) for t in TESTS},
            "share_p_below_half": {t: float(np.mean(tab[t] < 0.5)) for t in TESTS},
            "p_quantiles_10_50_90": {t: [float(v) for v in np.quantile(tab[t], [0.1, 0.5, 0.9])] for t in TESTS},
            "mean_dispersion_ratio": float(tab["ratio"].mean()),
            "pooled_residuals_ks_p": float(stats.kstest(pooled, "uniform").pvalue),
            "pooled_residuals_deciles": np.histogram(pooled, bins=10, range=(0, 1))[0].tolist(),
            "seconds": round(time.perf_counter() - t0, 2),
        }
        print(kind, "use_u" if use_u else "unconditional", out["conditional" if use_u else "unconditional"]
              ["rejection_rate_5pct"], flush=True)
    return out


def timing() -> dict:
    res = {}
    for n_groups, per in ((30, 10), (100, 50)):
        df = counts(np.random.default_rng(1), "poisson", n_groups, per)
        fit = mfx.glmer("y ~ x + (1 | g)", df, family="poisson")
        t0 = time.perf_counter()
        r = fit.simulated_residuals(n=250, seed=1)
        t1 = time.perf_counter()
        r.test_uniformity(), r.test_dispersion(), r.test_zero_inflation(), r.test_outliers(), r.test_quantiles()
        t2 = time.perf_counter()
        res[f"nobs_{n_groups * per}"] = {"simulate_and_pit_s": round(t1 - t0, 3), "five_tests_s": round(t2 - t1, 3)}
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nsim", type=int, default=200, help="data sets per null scenario")
    ap.add_argument("--npower", type=int, default=50, help="data sets per power scenario")
    ap.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "calibration_dharma.json"))
    a = ap.parse_args()
    t0 = time.perf_counter()
    result = {
        "description": __doc__.split("\n\n")[0],
        "n_simulations_per_residual": 250,
        "null_poisson_glmm": scenario("poisson", a.nsim, 10_000),
        "null_gaussian_lmm": scenario("lmm", a.nsim // 2, 20_000),
        "power_poisson_fit_negbin_data": scenario("negbin", a.npower, 30_000),
        "power_poisson_fit_zero_inflated_data": scenario("zip", a.npower, 40_000),
        "timing": timing(),
        "mixedfx_version": mfx.__version__,
    }
    result["total_seconds"] = round(time.perf_counter() - t0, 1)
    pathlib.Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    print("wrote", a.out, f"({result['total_seconds']} s)")


if __name__ == "__main__":
    main()
