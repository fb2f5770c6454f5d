"""Benchmark: large crossed LMMs, time and peak memory of ``mfx.lmer`` (issue 15, item 6).

Usage::

    python benchmarks/bench_movielens.py                   # MovieLens-1M shaped model
    python benchmarks/bench_movielens.py --model reading   # the reading-time model
    python benchmarks/bench_movielens.py --model all --r   # both, and lme4 on the same data (minutes)

Models (simulated; the seeds are fixed, so every run fits the same data):

* ``movielens``: ``y ~ 1 + x + (1 | user) + (1 | item)`` on 1,000,209 ratings of 3,706 items by
  6,040 users, each user rating an item at most once, as in MovieLens-1M.  Ratings per user: 20
  plus a rounded log-normal excess (median 76, log-sd 1.14, capped at 2,294), adjusted at random
  to the exact total: ML-1M's minimum 20, median ~96, mean 165.6, maximum 2,314.  Items per user:
  drawn without replacement with Zipf-Mandelbrot popularity ``(rank + 150)^-1.3`` times a
  log-normal factor (sd 0.7) (Gumbel top-k), giving a heavy-tailed item count (maximum ~3,600,
  median ~135).  ``x`` is standard normal; ``y = 3.6 + 0.2 x + u_user + v_item + e`` with user
  SD 0.45, item SD 0.6, residual SD 0.9 (a continuous, rating-like score).  Seed 20240601.
* ``reading``: ``y ~ x + (1 + x | subject) + (1 | word) + (1 | poem)``, 276,000 rows, 326
  subjects, 2,315 words, 87 poems.  2,200 words belong to one poem each (25-26 per poem) and 115
  common words recur across poems (3 per poem, each used); each subject reads 20-40 poems, every token of
  each; rows are then dropped at random (skipped words) to 276,000.  ``x`` is a word property
  (standardized log word frequency); ``y = 5.5 + 0.1 x + a_s + b_s x + c_word + d_poem + e`` with
  SDs 0.3 and 0.05 (correlation 0.3) for subjects, 0.15 words, 0.1 poems, 0.5 residual.  Seed
  20240602.

Each fit runs in a fresh subprocess (so the peak RSS, ``resource.getrusage``, is the fit's own:
data, design, workspace and results) after a small warm-up fit; a second subprocess repeats it
under ``tracemalloc`` (which sees numpy's buffers) for the traced peak of the fit alone.  The report
gives the whole-call time, the split design / workspace build / optimization / results (the rest
of the call), the evaluations and the time per evaluation, the later-terms path, the BLAS threads
the library's policy chose (OPENBLAS_NUM_THREADS is left unset), and the cores other processes
used meanwhile (``/proc/stat``; this machine is shared).  Results go to
``benchmarks/results/movielens.json``.

``--r`` also times ``lme4::lmer`` on the same data (CSV in a temporary directory; R with lme4
must be installed).  It takes minutes: 675 s for the MovieLens model on this 2-core machine
(another process busy meanwhile).  Without ``--r`` the last lme4 figure stays in the JSON as
``lme4_stored``.
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

FORMULAS = {
    "movielens": "y ~ 1 + x + (1 | user) + (1 | item)",
    "reading": "y ~ x + (1 + x | subject) + (1 | word) + (1 | poem)",
}
SEEDS = {"movielens": 20240601, "reading": 20240602}
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "movielens.json")


def simulate_movielens(seed: int = SEEDS["movielens"]) -> pd.DataFrame:
    """MovieLens-1M shaped ratings (see the module docstring)."""
    rng = np.random.default_rng(seed)
    n_users, n_items, n_ratings, low, high = 6040, 3706, 1_000_209, 20, 2314
    k = low + np.minimum(np.round(np.exp(rng.normal(np.log(76), 1.14, n_users))), high - low).astype(int)
    while k.sum() != n_ratings:                      # adjust at random to the exact total
        diff = n_ratings - k.sum()
        np.add.at(k, rng.integers(0, n_users, abs(diff)), np.sign(diff))
        k = np.clip(k, low, high)
    log_pop = -1.3 * np.log(np.arange(1, n_items + 1) + 150.0) + 0.7 * rng.normal(size=n_items)
    log_pop = log_pop[rng.permutation(n_items)]
    users = np.repeat(np.arange(n_users), k)
    items = np.empty(n_ratings, np.int64)
    pos = 0
    for u in range(n_users):                         # weighted sampling without replacement
        g = log_pop + rng.gumbel(size=n_items)
        items[pos:pos + k[u]] = np.argpartition(-g, k[u] - 1)[:k[u]]
        pos += k[u]
    x = rng.normal(size=n_ratings)
    y = (3.6 + 0.2 * x + 0.45 * rng.normal(size=n_users)[users] + 0.6 * rng.normal(size=n_items)[items]
         + 0.9 * rng.normal(size=n_ratings))
    return pd.DataFrame({"y": y, "x": x, "user": users, "item": items})


def simulate_reading(seed: int = SEEDS["reading"], n: int = 276_000) -> pd.DataFrame:
    """Reading times: subjects x words within poems (see the module docstring)."""
    rng = np.random.default_rng(seed)
    n_subj, n_poem, n_word, n_common = 326, 87, 2315, 115
    own = np.array_split(rng.permutation(n_word - n_common), n_poem)          # words of each poem
    common = np.arange(n_word - n_common, n_word)
    shared = np.resize(rng.permutation(common), (n_poem, 3))               # every common word is used
    tokens = [np.concatenate([o, c]) for o, c in zip(own, shared)]
    subj, word, poem = [], [], []
    for s in range(n_subj):
        for p in rng.choice(n_poem, rng.integers(20, 41), replace=False):
            subj.append(np.full(len(tokens[p]), s))
            word.append(tokens[p])
            poem.append(np.full(len(tokens[p]), p))
    subj, word, poem = (np.concatenate(v) for v in (subj, word, poem))
    if len(subj) < n:
        raise RuntimeError("simulation drew too few tokens")
    keep = np.sort(rng.choice(len(subj), n, replace=False))
    subj, word, poem = subj[keep], word[keep], poem[keep]
    freq = rng.normal(size=n_word)
    x = freq[word]
    b = rng.multivariate_normal([0, 0], [[0.3 ** 2, 0.3 * 0.3 * 0.05], [0.3 * 0.3 * 0.05, 0.05 ** 2]], n_subj)
    y = (5.5 + 0.1 * x + b[subj, 0] + b[subj, 1] * x + 0.15 * rng.normal(size=n_word)[word]
         + 0.1 * rng.normal(size=n_poem)[poem] + 0.5 * rng.normal(size=n))
    return pd.DataFrame({"y": y, "x": x, "subject": subj, "word": word, "poem": poem})


SIMULATE = {"movielens": simulate_movielens, "reading": simulate_reading}


class _Timer:
    """Wraps a function and adds its wall time to ``seconds``."""

    def __init__(self, fun):
        self.fun, self.seconds, self.calls = fun, 0.0, 0

    def __call__(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return self.fun(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t0
            self.calls += 1


def run_one(model: str, traced: bool) -> dict:
    """Fit in this process (a fresh subprocess per fit)."""
    import tracemalloc
    import warnings

    import mixedfx as mfx
    from mixedfx.core.workspace import PLSWorkspace
    from mixedfx.design import design as design_mod
    from mixedfx.models import lmm, threads

    df = SIMULATE[model]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mfx.lmer("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))   # warm-up
    made = []

    class Recorder(threads.ThreadPolicy):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)
    threads.ThreadPolicy = Recorder
    build = _Timer(design_mod.build_design)
    api_mod = sys.modules["mixedfx.api"]
    api_mod.build_design = build
    make_ws, optimize = _Timer(lmm.make_workspace), _Timer(lmm.optimize_theta)
    lmm.make_workspace, lmm.optimize_theta = make_ws, optimize
    updates = _Timer(PLSWorkspace.update)
    PLSWorkspace.update = lambda self, theta: updates(self, theta)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if traced:
        tracemalloc.start()
    idle = threads.CpuIdle()
    cores = len(os.sched_getaffinity(0))
    i0, c0, t0 = idle(), time.process_time(), time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mfx.lmer(FORMULAS[model], df)
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - c0
    i1 = idle()
    others = cores - ((i1 - i0) + cpu) / seconds if i0 is not None and i1 is not None else float("nan")
    traced_peak = tracemalloc.get_traced_memory()[1] / 2**20 if traced else None
    ws = m.fit.fresh_workspace().internal if traced else None
    ws_info = {}
    if ws is not None and ws.has_rest:
        schur = ws.schur
        ws_info = {"schur": type(schur).__name__,
                   "dense_levels": int(len(getattr(schur, "dense_levels", []))),
                   "plan_entries": int(getattr(schur, "plan_entries", getattr(schur, "nnz", 0)))}
    nfev = m.fit.opt.nfev
    out = {"model": model, "formula": FORMULAS[model], "rows": len(df), "seconds": seconds, "cpu_seconds": cpu,
           "design_s": build.seconds, "workspace_s": make_ws.seconds, "optimize_s": optimize.seconds,
           "results_s": seconds - build.seconds - make_ws.seconds - optimize.seconds,
           "evaluations": nfev, "updates": updates.calls, "update_s": updates.seconds,
           "s_per_evaluation": optimize.seconds / max(nfev, 1),
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "rss_before_fit_mb": rss_before, "others_cores": others,
           "thread_switches": [s for p in made for s in p.switches],
           "objective": m.objective, "theta": [float(t) for t in m.fit.theta],
           "sigma": float(m.fit.sigma), "fixef": [float(b) for b in m.fit.beta]}
    if traced:        # after the measurement: a fresh workspace to report the path taken
        out = {"traced_peak_mb": traced_peak, "path": "sparse LDL'" if ws.rest_sparse else "dense", **ws_info}
    return out


R_CODE = r"""
suppressPackageStartupMessages(library(lme4))
a <- commandArgs(trailingOnly = TRUE)
d <- read.csv(a[1])
for (v in c("user", "item", "subject", "word", "poem")) if (v %in% names(d)) d[[v]] <- factor(d[[v]])
t0 <- proc.time()[["elapsed"]]
fit <- lmer(as.formula(a[2]), d)
cat(sprintf("%.3f %.10f", proc.time()[["elapsed"]] - t0, REMLcrit(fit)), "\n")
"""


def run_lme4(model: str) -> dict:
    tmp = tempfile.mkdtemp()
    csv, script = os.path.join(tmp, "d.csv"), os.path.join(tmp, "b.R")
    SIMULATE[model]().to_csv(csv, index=False)
    with open(script, "w") as f:
        f.write(R_CODE)
    out = subprocess.run(["Rscript", script, csv, FORMULAS[model]], capture_output=True, text=True, check=True)
    secs, crit = out.stdout.split()[-2:]
    return {"seconds": float(secs), "objective": float(crit)}


def _child(model: str, traced: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    cmd = [sys.executable, os.path.abspath(__file__), "--one", model] + (["--traced"] if traced else [])
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode:
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=[*FORMULAS, "all"], default="movielens")
    ap.add_argument("--r", action="store_true", help="also time lme4 on the same data (slow)")
    ap.add_argument("--no-trace", action="store_true", help="skip the tracemalloc run")
    ap.add_argument("--out", default=RESULTS)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one, args.traced)))
        return 0
    models = list(FORMULAS) if args.model == "all" else [args.model]
    stored = {}
    if os.path.exists(args.out):
        with open(args.out) as f:
            stored = json.load(f)
    for model in models:
        r = _child(model, traced=False)
        if not args.no_trace:
            r.update(_child(model, traced=True))
        if args.r:
            r["lme4"] = run_lme4(model)
            r["lme4"]["objective_diff"] = r["objective"] - r["lme4"]["objective"]
        else:                    # keep the last lme4 figure (minutes to redo) beside the new run
            prev = stored.get(model, {})
            if "lme4" in prev or "lme4_stored" in prev:
                r["lme4_stored"] = prev.get("lme4", prev.get("lme4_stored"))
        r["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                        "date": time.strftime("%Y-%m-%d %H:%M")}
        stored[model] = r
        print(f"{model}: {r['seconds']:.1f} s (design {r['design_s']:.1f}, workspace {r['workspace_s']:.1f}, "
              f"optimize {r['optimize_s']:.1f}, results {r['results_s']:.1f}); {r['evaluations']} evaluations, "
              f"{1000 * r['s_per_evaluation']:.0f} ms each; peak RSS {r['peak_rss_mb']:.0f} MB"
              + (f", traced peak {r['traced_peak_mb']:.0f} MB" if "traced_peak_mb" in r else "")
              + f"; others used {r['others_cores']:.2f} cores; BLAS threads {r['thread_switches'] or 'one'}"
              + (f"; lme4 {r['lme4']['seconds']:.1f} s (criterion diff {r['lme4']['objective_diff']:+.2e})"
                 if "lme4" in r else ""))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(stored, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
