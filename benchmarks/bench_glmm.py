"""Benchmark: glmer fits of the reference GLMMs, mixedfx against lme4 timed in the same run.

Usage::

    python benchmarks/bench_glmm.py            # lme4 too when Rscript with lme4 is installed
    python benchmarks/bench_glmm.py --no-r --reps 3
    python benchmarks/bench_glmm.py --optimizer bobyqa   # lme4's derivative-free search for ours

Times are medians of whole ``mfx.glmer(...)`` calls (design, both optimization stages, the
Hessian for standard errors, results); lme4's ``glmer`` is timed the same way (its Hessian
is computed inside the fit too).  The last column is -2 log L ours minus lme4's (Laplace
fits only: lme4 reports quadrature fits on another scale).  "evals" counts the criterion
evaluations of both stages (each one a PIRLS solve: stage 1 over theta with beta profiled as
lme4's ``nAGQ = 0``, stage 2 over theta and beta); "peak MB" is the traced allocation peak of one
fit.  Results go to ``benchmarks/results/glmm.json`` (``--json``).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings

import mixedfx as mfx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _rtiming import timing_script  # noqa: E402

MODELS = {  # id: (dataset, formula, family, nagq, R family expression)
    "cbpp_binomial": ("cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial", 1, "binomial"),
    "cbpp_binomial_agq": ("cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial", 25,
                          "binomial"),
    "grouseticks_poisson": ("grouseticks", "TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)",
                            "poisson", 1, "poisson"),
    "verbagg_binomial": ("verbagg", "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)", "binomial", 1,
                         "binomial"),
    "sleep_gamma_log": ("sleepstudy", "Reaction ~ Days + (1 | Subject)", "Gamma log", 1, "Gamma(link = 'log')"),
}

R_SCRIPT = timing_script("suppressWarnings(glmer(f, d, family = fam, nAGQ = m$nagq))",
                         "m2ll = -2 * as.numeric(logLik(fit))", setup="fam <- eval(parse(text = m$family))")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--no-r", action="store_true")
    ap.add_argument("--optimizer", default="auto", choices=("auto", "lbfgs", "bobyqa"),
                    help="mixedfx's optimizer (lbfgs applies to the Laplace fits only)")
    ap.add_argument("--json", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                   "glmm.json"))
    args = ap.parse_args(argv)
    ours = {}
    for mid in args.models:
        name, formula, family, nagq, _ = MODELS[mid]
        df = mfx.datasets.load(name)
        control = {"optimizer": "auto" if args.optimizer == "lbfgs" and nagq > 1 else args.optimizer}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = mfx.glmer(formula, df, family=family, nagq=nagq, **control)
            times = []
            for _ in range(args.reps):
                t0 = time.perf_counter()
                m = mfx.glmer(formula, df, family=family, nagq=nagq, **control)
                times.append(time.perf_counter() - t0)
            tracemalloc.start()
            mfx.glmer(formula, df, family=family, nagq=nagq, **control)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        stage1 = getattr(m.fit, "opt_stage1", None)
        evals = m.fit.opt.nfev + (stage1.nfev if stage1 is not None else 0)
        ours[mid] = {"median": statistics.median(times), "min": min(times), "max": max(times), "reps": args.reps,
                     "m2ll": m.objective, "evaluations": int(evals), "peak_mb": peak / 2**20}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            warm = []
            for _ in range(args.reps):
                t0 = time.perf_counter()
                mfx.glmer(formula, df, family=family, nagq=nagq, start=m, **control)
                warm.append(time.perf_counter() - t0)
        ours[mid]["warm"] = statistics.median(warm)
    theirs = {}
    if not args.no_r:
        try:
            tmp = tempfile.mkdtemp()
            models = []
            for mid in args.models:
                name, formula, family, nagq, rfam = MODELS[mid]
                df = mfx.datasets.load(name)
                csv = os.path.join(tmp, name + ".csv")
                df.to_csv(csv, index=False)
                factors = {c: list(df[c].cat.categories) for c in df.columns if hasattr(df[c], "cat")}
                models.append({"id": mid, "csv": csv, "formula": formula, "family": rfam, "nagq": nagq,
                               "factors": factors, "reps": args.reps})
            spec, script, out = (os.path.join(tmp, f) for f in ("spec.json", "b.R", "out.json"))
            json.dump({"models": models}, open(spec, "w"))
            open(script, "w").write(R_SCRIPT)
            subprocess.run(["Rscript", script, spec, out], check=True, capture_output=True)
            theirs = json.load(open(out))
        except (OSError, subprocess.CalledProcessError) as exc:
            print(f"(lme4 not run: {exc})")
    print("| model | mixedfx median (min) s | evals | peak MB | refit with start= s | lme4 median s | speed-up "
          "| -2logLik ours - lme4 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for mid in args.models:
        o, t = ours[mid], theirs.get(mid)
        lme4 = f"{t['median']:.3f}" if t else "n/a"
        ratio = f"{t['median'] / o['median']:.1f}x" if t else "n/a"
        diff = f"{o['m2ll'] - t['m2ll']:+.1e}" if t and MODELS[mid][3] == 1 else ""
        print(f"| {mid} | {o['median']:.3f} ({o['min']:.3f}) | {o['evaluations']} | {o['peak_mb']:.1f} "
              f"| {o['warm']:.3f} | {lme4} | {ratio} | {diff} |")
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "loadavg": os.getloadavg()},
                   "lme4_live": bool(theirs), "optimizer": args.optimizer,
                   "rows": [{"model": mid, "mixedfx": ours[mid], "lme4": theirs.get(mid)} for mid in args.models]},
                  f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
