"""Benchmark at scale: simulated LMMs with 10^6 rows and 10^3-10^5 groups.

Usage::

    python benchmarks/bench_scale.py                  # mixedfx only
    python benchmarks/bench_scale.py --r              # also lme4 on the same data (slow: minutes)
    python benchmarks/bench_scale.py --rows 200000 --problems nested crossed

Each problem is simulated with a fixed seed, fitted once (after a small warm-up fit), and
reported with its wall time, BOBYQA evaluations, the path the engine chose for the
later-terms block, peak resident memory of a fresh process, and the recovered parameters.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

PROBLEMS = {
    "intercept": "y ~ x + (1 | g)",
    "slopes": "y ~ x + (x | g)",
    "crossed": "y ~ x + (1 | g) + (1 | h)",
    "nested": "y ~ x + (1 | school/cls)",
}


def simulate(kind: str, n: int, seed: int = 0) -> pd.DataFrame:
    """10^4 groups (g), 500 crossed levels (h), 50,000 classes in 2,000 schools."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    if kind == "intercept":
        g = rng.integers(0, 10_000, n)
        y = 1 + 0.5 * x + rng.normal(size=10_000)[g] + rng.normal(size=n)
        return pd.DataFrame({"y": y, "x": x, "g": g})
    if kind == "slopes":
        g = rng.integers(0, 10_000, n)
        b = rng.normal(size=(10_000, 2)) * [1.0, 0.3]
        y = 1 + 0.5 * x + b[g, 0] + b[g, 1] * x + rng.normal(size=n)
        return pd.DataFrame({"y": y, "x": x, "g": g})
    if kind == "crossed":
        g, h = rng.integers(0, 10_000, n), rng.integers(0, 500, n)
        y = 1 + 0.5 * x + rng.normal(size=10_000)[g] + 0.5 * rng.normal(size=500)[h] + rng.normal(size=n)
        return pd.DataFrame({"y": y, "x": x, "g": g, "h": h})
    if kind == "nested":
        cls = rng.integers(0, 50_000, n)
        school = cls // 25
        y = 1 + 0.5 * x + rng.normal(size=2000)[school] + 0.5 * rng.normal(size=50_000)[cls] + rng.normal(size=n)
        return pd.DataFrame({"y": y, "x": x, "school": school, "cls": cls})
    raise ValueError(kind)


def run_one(kind: str, n: int) -> dict:
    """Fit in this process (called in a fresh subprocess so peak memory is per problem)."""
    import warnings

    import mixedfx as mfx

    df = simulate(kind, n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mfx.lmer("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))   # warm-up
        t0 = time.perf_counter()
        m = mfx.lmer(PROBLEMS[kind], df)
        seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024     # before the workspace below
    ws = m.fit.fresh_workspace().internal     # the fit holds no workspace: ask for one
    path = "sparse LDL'" if ws.rest_sparse else ("dense" if ws.has_rest else "diagonal only")
    return {"problem": kind, "rows": n, "seconds": seconds, "evaluations": m.fit.opt.nfev, "path": path,
            "peak_rss_mb": peak,
            "objective": m.objective, "sd": m.varcorr["sdcor"].round(4).tolist(),
            "fixef": m.fixef.round(4).tolist()}


R_CODE = r"""
suppressPackageStartupMessages(library(lme4))
a <- commandArgs(trailingOnly = TRUE)
d <- read.csv(a[1])
for (v in c("g", "h", "school", "cls")) if (v %in% names(d)) d[[v]] <- factor(d[[v]])
t0 <- proc.time()[["elapsed"]]
fit <- lmer(as.formula(a[2]), d)
cat(sprintf("%.3f %.10f", proc.time()[["elapsed"]] - t0, REMLcrit(fit)), "\n")
"""


def run_lme4(kind: str, n: int) -> tuple[float, float]:
    tmp = tempfile.mkdtemp()
    csv, script = os.path.join(tmp, "d.csv"), os.path.join(tmp, "b.R")
    simulate(kind, n).to_csv(csv, index=False)
    with open(script, "w") as f:
        f.write(R_CODE)
    out = subprocess.run(["Rscript", script, csv, PROBLEMS[kind]], capture_output=True, text=True, check=True)
    secs, crit = out.stdout.split()[-2:]
    return float(secs), float(crit)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", nargs="*", default=list(PROBLEMS))
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--r", action="store_true", help="also time lme4 on the same data")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one, args.rows)))
        return 0
    print("| problem | formula | rows | mixedfx s | evals | block path | peak RSS MB | lme4 s | speed-up |")
    print("|---|---|---:|---:|---:|---|---:|---:|---:|")
    for kind in args.problems:
        out = subprocess.run([sys.executable, __file__, "--one", kind, "--rows", str(args.rows)],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        lme4_txt, ratio = "", ""
        if args.r:
            secs, crit = run_lme4(kind, args.rows)
            lme4_txt = f"{secs:.1f} (criterion: ours - lme4 = {r['objective'] - crit:+.1e})"
            ratio = f"{secs / r['seconds']:.0f}x"
        print(f"| {kind} | `{PROBLEMS[kind]}` | {args.rows:,} | {r['seconds']:.2f} | {r['evaluations']} | "
              f"{r['path']} | {r['peak_rss_mb']:.0f} | {lme4_txt} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
