"""Benchmark: fit time of every reference LMM, mixedfx against lme4 measured in the same run.

Usage::

    python benchmarks/bench_lmm.py                 # all models, lme4 too when Rscript + lme4 exist
    python benchmarks/bench_lmm.py --no-r --reps 5
    python benchmarks/bench_lmm.py --models sleep_slopes_reml insteval_crossed

Times are medians of whole ``mfx.lmer(formula, data)`` calls (design + fit + results),
against lme4's ``lmer(formula, data)`` timed the same way inside one R process.
Peak memory is Python's traced allocations during one fit (numpy buffers included).
mixedlm (``pip install mixedlm``, Python with a Rust core) is timed the same way when installed.
Without R, the lme4 column shows the figure stored in ``benchmarks/lme4_seconds.json``
from an earlier run on this kind of machine (marked ``*``).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings

import mixedfx as mfx
from mixedfx.core import fused

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _mixedlm import have_mixedlm, time_mixedlm  # noqa: E402
from _rtiming import timing_script  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

MODELS = {   # id: (dataset, formula, reml)
    "sleep_intercept": ("sleepstudy", "Reaction ~ Days + (1 | Subject)", True),
    "sleep_slopes_reml": ("sleepstudy", "Reaction ~ Days + (Days | Subject)", True),
    "sleep_slopes_ml": ("sleepstudy", "Reaction ~ Days + (Days | Subject)", False),
    "sleep_uncorrelated": ("sleepstudy", "Reaction ~ Days + (Days || Subject)", True),
    "dyestuff": ("dyestuff", "Yield ~ 1 + (1 | Batch)", True),
    "dyestuff2_singular": ("dyestuff2", "Yield ~ 1 + (1 | Batch)", True),
    "penicillin_crossed": ("penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", True),
    "pastes_nested": ("pastes", "strength ~ 1 + (1 | batch/cask)", True),
    "cake_factorial": ("cake", "angle ~ recipe * temp + (1 | recipe:replicate)", True),
    "insteval_crossed": ("insteval", "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept)", True),
}

R_SCRIPT = timing_script("lmer(f, d, REML = m$reml)",
                         "objective = if (m$reml) REMLcrit(fit) else deviance(fit)")


def have_r() -> bool:
    if shutil.which("Rscript") is None:
        return False
    r = subprocess.run(["Rscript", "-e", "suppressPackageStartupMessages({library(lme4); library(jsonlite)})"],
                       capture_output=True)
    return r.returncode == 0


def _times(formula, df, reml, reps):
    m = mfx.lmer(formula, df, reml=reml)        # warm-up (imports, caches)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        m = mfx.lmer(formula, df, reml=reml)
        times.append(time.perf_counter() - t0)
    return m, times


def time_mixedfx(model_id: str, reps: int) -> dict:
    """Whole ``lmer`` calls; with numba installed also with the compiled small-model criterion
    switched off (``median_general``: what a user without the ``fast`` extra gets)."""
    name, formula, reml = MODELS[model_id]
    df = mfx.datasets.load(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m, times = _times(formula, df, reml, reps)
        general = None
        if fused._kernel() is not None and fused.compiled_criterion(_internal(m)) is not None:
            fused.ENABLED = False
            try:
                general = statistics.median(_times(formula, df, reml, reps)[1])
            finally:
                fused.ENABLED = True
        tracemalloc.start()
        mfx.lmer(formula, df, reml=reml)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return {"median": statistics.median(times), "min": min(times), "max": max(times), "reps": reps,
            "objective": m.objective, "evaluations": m.fit.opt.nfev, "peak_mb": peak / 2**20,
            "compiled_criterion": general is not None, "median_general": general}


def _internal(m):
    """The internal PLS workspace of a fitted LMM (for asking whether the compiled criterion applies)."""
    return m.fit.fresh_workspace().internal


def time_lme4(model_ids: list[str], reps: dict) -> dict:
    tmp = tempfile.mkdtemp()
    models = []
    for mid in model_ids:
        name, formula, reml = MODELS[mid]
        df = mfx.datasets.load(name)
        csv = os.path.join(tmp, name + ".csv")
        if not os.path.exists(csv):
            df.to_csv(csv, index=False)
        factors = {c: list(df[c].cat.categories) for c in df.columns if hasattr(df[c], "cat")}
        models.append({"id": mid, "csv": csv, "formula": formula, "reml": reml, "factors": factors,
                       "reps": reps[mid]})
    spec, script, out = (os.path.join(tmp, n) for n in ("spec.json", "bench.R", "out.json"))
    with open(spec, "w") as f:
        json.dump({"models": models}, f)
    with open(script, "w") as f:
        f.write(R_SCRIPT)
    subprocess.run(["Rscript", script, spec, out], check=True)
    with open(out) as f:
        return json.load(f)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    ap.add_argument("--reps", type=int, default=None, help="repetitions per model (default: 20; 3 for insteval)")
    ap.add_argument("--no-r", action="store_true", help="do not run lme4 even if R is available")
    ap.add_argument("--no-mixedlm", action="store_true", help="do not time mixedlm even if it is installed")
    ap.add_argument("--json", default=os.path.join(HERE, "results", "lmm.json"))
    args = ap.parse_args(argv)
    reps = {m: args.reps or (3 if m.startswith("insteval") else 20) for m in args.models}
    ours = {m: time_mixedfx(m, reps[m]) for m in args.models}
    run_ml = not args.no_mixedlm and have_mixedlm()
    mlm = {m: time_mixedlm(MODELS[m][1], mfx.datasets.load(MODELS[m][0]), MODELS[m][2], reps[m])
           for m in args.models} if run_ml else {}
    stored_path = os.path.join(HERE, "lme4_seconds.json")
    stored = json.load(open(stored_path)) if os.path.exists(stored_path) else {}
    live = not args.no_r and have_r()
    theirs = time_lme4(args.models, reps) if live else {}
    rows = []
    print("| model | mixedfx median (min) s | without numba s | evals | peak MB | lme4 median s | speed-up (median) "
          "| objective diff | mixedlm s | mixedlm / mixedfx |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for m in args.models:
        o = ours[m]
        t = theirs.get(m)
        if t is not None:
            lme4_s, mark = t["median"], ""
            diff = f"{o['objective'] - t['objective']:+.1e}"
        elif m in stored:
            lme4_s, mark, diff = stored[m]["median"], "*", ""
        else:
            lme4_s, mark, diff = None, "", ""
        ratio = f"{lme4_s / o['median']:.1f}x" if lme4_s else "n/a"
        lme4_txt = f"{lme4_s:.4f}{mark}" if lme4_s else "n/a"
        ml = mlm.get(m) or {}
        ml_txt = f"{ml['median']:.4f} | {ml['median'] / o['median']:.1f}x" if "median" in ml else \
            (f"error | {ml['error'][:40]}" if ml else "n/a | n/a")
        gen = f"{o['median_general']:.4f}" if o.get("median_general") else ""
        print(f"| {m} | {o['median']:.4f} ({o['min']:.4f}) | {gen} | {o['evaluations']} | {o['peak_mb']:.1f} "
              f"| {lme4_txt} | {ratio} | {diff} | {ml_txt} |")
        rows.append({"model": m, "mixedfx": o, "lme4": t, "lme4_stored": stored.get(m), "mixedlm": mlm.get(m)})
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                               "numba": fused._kernel() is not None, "loadavg": os.getloadavg()},
                   "lme4_live": live, "mixedlm_live": run_ml, "rows": rows}, f, indent=1)
    if live:
        with open(stored_path, "w") as f:
            json.dump({m: theirs[m] for m in args.models} | {k: v for k, v in stored.items() if k not in theirs},
                      f, indent=1, sort_keys=True)
    if not live:
        why = "--no-r given" if args.no_r else "Rscript with lme4 not found"
        print(f"\n* lme4 figure stored from an earlier run on this kind of machine ({why})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
