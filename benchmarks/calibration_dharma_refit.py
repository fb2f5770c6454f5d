"""Calibrated (parametric-bootstrap) p-values of the simulation-based (DHARMa) residual tests.

``simulated_residuals(n=250, calibrate=B)`` refits the model to ``B`` responses simulated from
it and reports each test's p-value ``(1 + #{T_b >= T}) / (B' + 1)``.  Checked here, on the same
data sets, against the plug-in p-values (``calibrate=0``):

* null, Poisson GLMM: ``y ~ Poisson(exp(0.6 + 0.4 x + b_g))``, ``b_g ~ N(0, 0.4^2)``, 20 groups of
  10, fitted ``y ~ x + (1 | g)``;
* null, Gaussian LMM: ``y = 2 + x + b_g + e``, ``sd(b) = sd(e) = 1``, 20 groups of 10 (REML);
* power: the same Poisson fit to negative-binomial data (size 1: ``Var = mu + mu^2``) and to
  zero-inflated Poisson data (30% structural zeros).

For each test: the rejection rates at 5% and 10% (with the binomial 99% band of a level-alpha
test), deciles of the p-values, and a chi-square test of the calibrated p-values against their
discrete uniform null (``k / (B + 1)``, ``k = 1..B+1``, in 10 equally likely bins; B + 1 must be a
multiple of 10).

Usage: ``python benchmarks/calibration_dharma_refit.py [--datasets 200] [--npower 40] [--B 49]
[--out PATH]`` (default output ``benchmarks/results/calibration_dharma_refit.json``).
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

from calibration_dharma import TESTS, counts, gaussian  # noqa: E402  (the same data generators, 20 groups)


def fit_model(kind, seed):
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "lmm":
            return mfx.lmer("y ~ x + (1 | g)", gaussian(rng, n_groups=20))
        return mfx.glmer("y ~ x + (1 | g)", counts(rng, kind, n_groups=20), family="poisson")


def pvalues(r) -> dict:
    tests = {"uniformity": r.test_uniformity(), "dispersion": r.test_dispersion(),
             "zero_inflation": r.test_zero_inflation(), "outliers": r.test_outliers(), "quantiles": r.test_quantiles()}
    out = {f"{t}_cal": v.pvalue for t, v in tests.items()}
    out.update({f"{t}_plugin": v.details["pvalue_plugin"] for t, v in tests.items()})
    out["n_failed"] = r.calibration.n_failed
    return out


def band99(alpha: float, m: int) -> list:
    """Central 99% binomial band of the rejection rate of a level-alpha test over m data sets."""
    return [float(stats.binom.ppf(0.005, m, alpha) / m), float(stats.binom.isf(0.005, m, alpha) / m)]


def discrete_uniform_chi2(p: np.ndarray, B: int, bins: int = 10) -> dict:
    """Chi-square of calibrated p-values k/(B+1) against the discrete uniform, in equally likely bins."""
    k = np.rint(np.asarray(p) * (B + 1)).astype(int)          # 1..B+1
    counts_ = np.bincount((k - 1) * bins // (B + 1), minlength=bins)
    res = stats.chisquare(counts_)
    return {"bin_counts": counts_.tolist(), "chi2": float(res.statistic), "df": bins - 1, "p": float(res.pvalue)}


def scenario(kind: str, m: int, B: int, seed0: int) -> dict:
    rows = []
    t0 = time.perf_counter()
    for k in range(m):
        fit = fit_model(kind, seed0 + k)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = fit.simulated_residuals(n=250, seed=seed0 + k, calibrate=B, progress=False)
        rows.append(pvalues(r))
    tab = pd.DataFrame(rows)
    out = {"datasets": m, "B": B, "failed_refits": int(tab["n_failed"].sum()),
           "band99_rate_5pct": band99(0.05, m), "band99_rate_10pct": band99(0.10, m)}
    for which in ("cal", "plugin"):
        cols = {t: tab[f"{t}_{which}"].to_numpy() for t in TESTS}
        out["calibrated" if which == "cal" else "plugin"] = {
            "rejection_rate_5pct": {t: float(np.mean(v <= 0.05)) for t, v in cols.items()},
            "rejection_rate_10pct": {t: float(np.mean(v <= 0.10)) for t, v in cols.items()},
            "p_deciles_10_50_90": {t: [round(float(q), 4) for q in np.quantile(v, [0.1, 0.5, 0.9])]
                                   for t, v in cols.items()},
        }
    if (B + 1) % 10 == 0:
        out["calibrated"]["discrete_uniform_chi2"] = {t: discrete_uniform_chi2(tab[f"{t}_cal"], B) for t in TESTS}
    out["seconds"] = round(time.perf_counter() - t0, 1)
    print(kind, "calibrated", out["calibrated"]["rejection_rate_10pct"], "plug-in",
          out["plugin"]["rejection_rate_10pct"], f"{out['seconds']} s", flush=True)
    return out


def timing(B: int) -> dict:
    fit = fit_model("poisson", 1)
    t0 = time.perf_counter()
    fit.simulated_residuals(n=250, seed=1, progress=False)
    t1 = time.perf_counter()
    fit.simulated_residuals(n=250, seed=1, calibrate=B, progress=False)
    t2 = time.perf_counter()
    return {"nobs": 200, "plugin_s": round(t1 - t0, 3), f"calibrate_{B}_s": round(t2 - t1, 3),
            "seconds_per_refit": round((t2 - t1) / B, 4)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=int, default=200, help="data sets per null scenario")
    ap.add_argument("--npower", type=int, default=40, help="data sets per power scenario")
    ap.add_argument("--B", type=int, default=49, help="calibration refits per data set")
    ap.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "calibration_dharma_refit.json"))
    a = ap.parse_args()
    t0 = time.perf_counter()
    result = {
        "description": __doc__.split("\n\n")[0],
        "n_simulations_per_residual": 250,
        "null_poisson_glmm": scenario("poisson", a.datasets, a.B, 50_000),
        "null_gaussian_lmm": scenario("lmm", a.datasets, a.B, 60_000),
        "power_poisson_fit_negbin_data": scenario("negbin", a.npower, a.B, 70_000),
        "power_poisson_fit_zero_inflated_data": scenario("zip", a.npower, a.B, 80_000),
        "timing": timing(a.B),
        "mixedfx_version": mfx.__version__,
    }
    result["total_seconds"] = round(time.perf_counter() - t0, 1)
    pathlib.Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    print("wrote", a.out, f"({result['total_seconds']} s)")


if __name__ == "__main__":
    main()
