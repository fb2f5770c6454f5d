"""Coverage simulation for ``predict(..., interval=...)``: do the 95% plug-in intervals cover?

Datasets are drawn from a known model shaped like sleepstudy (18 subjects x 10 days,
``y = 251 + 10.5 day + b0 + b1 day + e``, ``sd(b0) = 24.7``, ``sd(b1) = 5.9``, ``cor = 0.07``,
``sigma = 25.6``; the ``intercept`` model has ``b1 = 0`` and is fitted with ``(1 | subject)``),
each fitted by REML.  Per dataset and per model, at a day drawn uniformly in [0, 9]:

* ``prediction_known``: a new observation of each of the 18 fitted subjects (its true ``b``);
* ``prediction_new``: one new observation of each of 18 new subjects (``allow_new_levels=True``);
* ``prediction_population``: the same new-subject observations with ``re_form="~0"``;
* ``confidence_known``: the true conditional mean ``x'beta + z'b`` of each fitted subject;
* ``confidence_population``: the true population mean ``x'beta``.

A rate is the share of covered targets over all datasets and targets; its Monte Carlo SE is the
SD of the per-dataset shares over ``sqrt(nsim)`` (targets within a dataset are correlated).

Usage: ``python benchmarks/coverage_prediction.py [--nsim 1000] [--out benchmarks/results/coverage_prediction.json]``
(the slow test ``tests/results/test_predict_coverage.py`` runs it with fewer replicates).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

BETA = (251.0, 10.5)
SD0, SD1, COR, SIGMA = 24.7, 5.9, 0.07, 25.6
N_SUBJ, N_DAYS = 18, 10
LEVEL = 0.95
MODELS = {"slope": "y ~ day + (day | subject)", "intercept": "y ~ day + (1 | subject)"}
TARGETS = ("prediction_known", "prediction_new", "prediction_population", "confidence_known",
           "confidence_population")


def _effects(rng, n: int, model: str) -> np.ndarray:
    if model == "intercept":
        return np.column_stack([rng.normal(0, SD0, n), np.zeros(n)])
    cov = np.array([[SD0 ** 2, COR * SD0 * SD1], [COR * SD0 * SD1, SD1 ** 2]])
    return rng.multivariate_normal(np.zeros(2), cov, size=n)


def one_replicate(seed: int, model: str) -> dict:
    """Per target, the share of the 18 targets of one dataset that the interval covers."""
    import mixedfx as mfx
    rng = np.random.default_rng(seed)
    b = _effects(rng, N_SUBJ, model)
    subj = np.repeat(np.arange(N_SUBJ), N_DAYS)
    day = np.tile(np.arange(N_DAYS, dtype=float), N_SUBJ)
    y = BETA[0] + BETA[1] * day + b[subj, 0] + b[subj, 1] * day + rng.normal(0, SIGMA, subj.size)
    df = pd.DataFrame({"y": y, "day": day, "subject": [f"s{i}" for i in subj]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mfx.lmer(MODELS[model], df)
    d_known = rng.uniform(0, N_DAYS - 1, N_SUBJ)
    mean_known = BETA[0] + BETA[1] * d_known + b[:, 0] + b[:, 1] * d_known
    y_known = mean_known + rng.normal(0, SIGMA, N_SUBJ)
    b_new = _effects(rng, N_SUBJ, model)
    d_new = rng.uniform(0, N_DAYS - 1, N_SUBJ)
    pop_new = BETA[0] + BETA[1] * d_new
    y_new = pop_new + b_new[:, 0] + b_new[:, 1] * d_new + rng.normal(0, SIGMA, N_SUBJ)
    known = pd.DataFrame({"day": d_known, "subject": [f"s{i}" for i in range(N_SUBJ)]})
    new = pd.DataFrame({"day": d_new, "subject": [f"new{i}" for i in range(N_SUBJ)]})

    def cover(frame, truth):
        return float(np.mean((frame["lower"].to_numpy() <= truth) & (truth <= frame["upper"].to_numpy())))

    return {
        "prediction_known": cover(m.predict(known, interval="prediction", level=LEVEL), y_known),
        "prediction_new": cover(m.predict(new, interval="prediction", level=LEVEL, allow_new_levels=True), y_new),
        "prediction_population": cover(m.predict(new, re_form="~0", interval="prediction", level=LEVEL), y_new),
        "confidence_known": cover(m.predict(known, interval="confidence", level=LEVEL), mean_known),
        "confidence_population": cover(m.predict(new, re_form="~0", interval="confidence", level=LEVEL), pop_new),
        "singular": bool(m.is_singular),
    }


def run(nsim: int = 1000, seed: int = 20261130, models=tuple(MODELS)) -> dict:
    """``{model: DataFrame}``: one row of per-dataset coverage shares per simulated dataset."""
    out = {}
    for j, model in enumerate(models):
        seeds = np.random.SeedSequence([seed, j]).generate_state(nsim)
        out[model] = pd.DataFrame([one_replicate(int(s), model) for s in seeds])
    return out


def summarize(res: dict) -> dict:
    """Per model and target: coverage rate and its Monte Carlo SE; share of singular fits."""
    summary = {}
    for model, frame in res.items():
        n = len(frame)
        summary[model] = {
            "rate": {t: round(float(frame[t].mean()), 4) for t in TARGETS},
            "mc_se": {t: round(float(frame[t].std(ddof=1) / np.sqrt(n)), 4) for t in TARGETS},
            "singular_share": round(float(frame["singular"].mean()), 4),
        }
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nsim", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=20261130)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "coverage_prediction.json"))
    args = ap.parse_args()
    import mixedfx
    t0 = time.perf_counter()
    res = run(args.nsim, args.seed)
    summary = summarize(res)
    doc = {
        "description": "Coverage of predict()'s 95% plug-in intervals; sleepstudy-shaped model, 18 subjects x 10 "
                       "days, REML fits (benchmarks/coverage_prediction.py)",
        "nsim": args.nsim, "seed": args.seed, "level": LEVEL, "targets_per_dataset": N_SUBJ,
        "truth": {"beta": BETA, "sd0": SD0, "sd1": SD1, "cor": COR, "sigma": SIGMA},
        "models": {k: MODELS[k] for k in res},
        "results": summary,
        "seconds": round(time.perf_counter() - t0, 1),
        "mixedfx": getattr(mixedfx, "__version__", "unknown"), "python": platform.python_version(),
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(doc, fh, indent=2)
        fh.write("\n")
    print(json.dumps(summary, indent=2))
    print(f"{doc['seconds']} s; written to {args.out}")


if __name__ == "__main__":
    main()
