"""Benchmark: crossed subjects x items designs with vector-valued random effects (ML fits).

Usage::

    python benchmarks/bench_crossed.py                    # all models; lme4 and mixedlm too when available
    python benchmarks/bench_crossed.py --reps 5 --models kb07 sim_4x4
    python benchmarks/bench_crossed.py --no-r --no-mixedlm --optimizer lbfgs
    python benchmarks/bench_crossed.py --models sim_4x4 --r-optimizer bobyqa

Models (all ``REML = FALSE``):

* ``kb07``: Kronmueller and Barr (2007), 1,789 rows, 56 subjects x 32 items,
  ``rt_trunc ~ 1 + spkr1*prec1*load1 + (1+spkr1+prec1+load1|subj) + (1+spkr1+prec1+load1|item)``
  (20 theta).  ``spkr1``, ``prec1``, ``load1`` are numeric +-1 columns made here: +1 for the
  first level (spkr new, prec break, load no), as R's ``contr.sum`` codes the factors in
  ``tests/reference/kb07_ml.json``, whose column names they copy.  mixedfx has no
  contrasts argument and no ``C()``, so this is how effects coding is spelled there.
* ``sim_4x4``: simulated, 56 subjects x 32 items, every subject sees every item once (1,792
  rows); S, P, C are +-1 factors, within subject and within item, assigned by a Latin square
  (condition ``(subject + item) mod 8``), so each subject sees 4 items per condition and each
  item is seen by 7 subjects per condition.
  ``y ~ 1 + S*P*C + (1+S+P+C|subj) + (1+S+P+C|item)`` (20 theta).
* ``sim_8x8``: the same data, ``y ~ 1 + S*P*C + (1+S*P*C|subj) + (1+S*P*C|item)`` (72 theta).

The simulated data (seed ``SEED``; true parameters in ``TRUTH``, also written to the JSON):
``y = X beta + Z_subj b_subj + Z_item b_item + sigma e`` with 8 random effects per subject and
per item for the columns (1, S, P, C, S:P, S:C, P:C, S:P:C), ``b ~ N(0, diag(sd) R diag(sd))``
and ``R[j, k] = rho^|j - k|`` (rho 0.4 for subjects, -0.3 for items).  The 4 x 4 model's true
covariances are the leading 4 x 4 blocks.  Draw order: subject effects (56 x 8 standard
normals), item effects (32 x 8), residuals (1,792), from ``numpy.random.default_rng(SEED)``.

Timings are medians of ``--reps`` whole fit calls after one warm-up fit: ``mfx.lmer`` (design
+ fit + results), lme4's ``lmer`` (default optimizer, nloptwrap, unless ``--r-optimizer``) in
one R process, and ``mixedlm.lmer`` (Python with a Rust core; ``pip install mixedlm``).
lme4 needs minutes per ``sim_8x8`` fit, so it gets one timed fit without warm-up there unless
``--r-reps`` is given.  Evaluations are
mixedfx's ``fit.opt.nfev``, lme4's ``fit@optinfo$feval`` and mixedlm's ``function_evals``.
Peak memory is Python's traced allocations during one fit (numpy buffers included; mixedlm's
Rust-side memory is not traced).

Threads: ``--threads 1`` (default) runs everything on one thread: OPENBLAS/OMP/MKL and
RAYON thread counts are set to 1 before numpy, mixedfx and mixedlm load, and for the R
process.  R here uses its reference BLAS (one thread) and lme4's own numerics (Eigen) are
single-threaded, so one thread for all is the like-for-like comparison.
``--threads default`` leaves the environment alone (mixedfx's ``blas_threads="auto"`` policy,
mixedlm's rayon default of one thread per core; lme4 unchanged).
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

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _mixedlm import have_mixedlm, time_mixedlm  # noqa: E402
from _rtiming import timing_script  # noqa: E402

THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "RAYON_NUM_THREADS")

KB07_RE = "1 + spkr1 + prec1 + load1"
MODELS = {   # id: (data, formula); every fit is ML
    "kb07": ("kb07", f"rt_trunc ~ 1 + spkr1*prec1*load1 + ({KB07_RE} | subj) + ({KB07_RE} | item)"),
    "sim_4x4": ("sim", "y ~ 1 + S*P*C + (1 + S + P + C | subj) + (1 + S + P + C | item)"),
    "sim_8x8": ("sim", "y ~ 1 + S*P*C + (1 + S*P*C | subj) + (1 + S*P*C | item)"),
}
KB07_PLUS = {"spkr": "new", "prec": "break", "load": "no"}   # the level coded +1 (R's contr.sum)

SEED = 20240615
N_SUBJ, N_ITEM = 56, 32
COLS = ["(Intercept)", "S", "P", "C", "S:P", "S:C", "P:C", "S:P:C"]
TRUTH = {
    "beta": dict(zip(COLS, [5.0, 0.3, -0.5, 0.2, 0.1, 0.0, -0.1, 0.05])),
    "sigma": 1.0,
    "subj_sd": dict(zip(COLS, [0.8, 0.4, 0.45, 0.35, 0.3, 0.3, 0.3, 0.3])),
    "subj_rho": 0.4,
    "item_sd": dict(zip(COLS, [0.6, 0.3, 0.5, 0.35, 0.3, 0.3, 0.3, 0.3])),
    "item_rho": -0.3,
}

# lme4's optimizer: its default (nloptwrap) unless --r-optimizer names another (maxfun 1e5 then).
# Models with warmup = FALSE skip the R template's warm-up fit: the template times
# ``__FIT__`` after one untimed call, and that first call returns NULL for them.
R_SCRIPT = timing_script(
    "{calls <- calls + 1L; if (calls == 1L && isFALSE(m$warmup)) NULL else lmer(f, d, REML = FALSE, control = ctl)}",
    "objective = deviance(fit), evaluations = fit@optinfo$feval, optimizer = fit@optinfo$optimizer, "
    "singular = isSingular(fit), ntheta = length(getME(fit, 'theta')), "
    "messages = paste(unlist(fit@optinfo$conv$lme4$messages), collapse = '; ')",
    setup="calls <- 0L; ctl <- if (is.null(m$optimizer)) lmerControl() else "
          "lmerControl(optimizer = m$optimizer, optCtrl = list(maxfun = 1e5))")
HEAVY_R = {"sim_8x8": 1}   # lme4 takes minutes per fit here: one timed fit, no warm-up (unless --r-reps)


# --------------------------------------------------------------------------- data
def true_cov(sd: dict, rho: float, k: int = 8):
    import numpy as np
    s = np.array(list(sd.values())[:k])
    idx = np.arange(k)
    return np.outer(s, s) * rho ** np.abs(idx[:, None] - idx[None, :])


def simulate(seed: int = SEED):
    """The simulated crossed design (see the module docstring)."""
    import numpy as np
    import pandas as pd
    s, i = np.meshgrid(np.arange(N_SUBJ), np.arange(N_ITEM), indexing="ij")
    s, i = s.ravel(), i.ravel()
    cond = (s + i) % 8
    S, P, C = (np.where(cond & bit, 1.0, -1.0) for bit in (1, 2, 4))
    X = np.column_stack([np.ones_like(S), S, P, C, S * P, S * C, P * C, S * P * C])
    rng = np.random.default_rng(seed)
    b_subj = rng.standard_normal((N_SUBJ, 8)) @ np.linalg.cholesky(true_cov(TRUTH["subj_sd"], TRUTH["subj_rho"])).T
    b_item = rng.standard_normal((N_ITEM, 8)) @ np.linalg.cholesky(true_cov(TRUTH["item_sd"], TRUTH["item_rho"])).T
    e = rng.standard_normal(len(s))
    beta = np.array(list(TRUTH["beta"].values()))
    y = X @ beta + (X * b_subj[s]).sum(1) + (X * b_item[i]).sum(1) + TRUTH["sigma"] * e
    subj = pd.Categorical([f"s{k + 1:02d}" for k in s], categories=[f"s{k + 1:02d}" for k in range(N_SUBJ)])
    item = pd.Categorical([f"i{k + 1:02d}" for k in i], categories=[f"i{k + 1:02d}" for k in range(N_ITEM)])
    return pd.DataFrame({"subj": subj, "item": item, "S": S, "P": P, "C": C, "y": y})


def kb07():
    """Bundled kb07 plus numeric +-1 columns spkr1, prec1, load1 (+1 = R's first level)."""
    import numpy as np
    import mixedfx as mfx
    d = mfx.datasets.load("kb07")
    for col, plus in KB07_PLUS.items():
        d[col + "1"] = np.where(d[col] == plus, 1.0, -1.0)
    return d


def load(name: str):
    return kb07() if name == "kb07" else simulate()


# --------------------------------------------------------------------------- mixedfx
def fit_mixedfx(formula, df, optimizer):
    """One mfx.lmer call; passes optimizer= when given and mfx.lmer accepts it."""
    import mixedfx as mfx
    if optimizer is not None:
        try:
            return mfx.lmer(formula, df, reml=False, optimizer=optimizer), optimizer
        except TypeError as err:
            if "optimizer" not in str(err):
                raise
    return mfx.lmer(formula, df, reml=False), "default"


def time_mixedfx(model_id: str, reps: int, optimizer) -> dict:
    name, formula = MODELS[model_id]
    df = load(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m, used = fit_mixedfx(formula, df, optimizer)        # warm-up (imports, caches)
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            m, used = fit_mixedfx(formula, df, optimizer)
            times.append(time.perf_counter() - t0)
        tracemalloc.start()
        fit_mixedfx(formula, df, optimizer)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return {"median": statistics.median(times), "min": min(times), "max": max(times), "reps": reps,
            "objective": m.objective, "evaluations": m.fit.opt.nfev, "ntheta": len(m.theta),
            "singular": bool(m.is_singular), "converged": bool(m.converged), "optimizer_arg": used,
            "optimizer": getattr(m.fit.opt, "optimizer", None),
            "peak_mb": peak / 2**20}


# --------------------------------------------------------------------------- lme4
def have_r() -> bool:
    if shutil.which("Rscript") is None:
        return False
    r = subprocess.run(["Rscript", "-e", "suppressPackageStartupMessages({library(lme4); library(jsonlite)})"],
                       capture_output=True)
    return r.returncode == 0


def time_lme4(model_ids: list[str], reps: dict, env: dict, optimizer=None) -> dict:
    tmp = tempfile.mkdtemp()
    models = []
    for mid in model_ids:
        name, formula = MODELS[mid]
        csv = os.path.join(tmp, name + ".csv")
        df = load(name)
        if not os.path.exists(csv):
            df.to_csv(csv, index=False)
        factors = {c: list(df[c].cat.categories) for c in df.columns if hasattr(df[c], "cat")}
        models.append({"id": mid, "csv": csv, "formula": formula, "factors": factors, "reps": reps[mid],
                       "warmup": reps[mid] > 1 or mid not in HEAVY_R, "optimizer": optimizer})
    spec, script, out = (os.path.join(tmp, n) for n in ("spec.json", "bench.R", "out.json"))
    with open(spec, "w") as f:
        json.dump({"models": models}, f)
    with open(script, "w") as f:
        f.write(R_SCRIPT)
    subprocess.run(["Rscript", script, spec, out], check=True, env=env)
    with open(out) as f:
        return json.load(f)


# --------------------------------------------------------------------------- report
def _fmt(x, spec):
    return "n/a" if x is None else format(x, spec)


def table(rows: list[dict]) -> str:
    head = ("| model | theta | mixedfx s (min) | evals | deviance | peak MB | lme4 s | evals | deviance - mixedfx "
            "| lme4 / mixedfx | mixedlm s | evals | deviance - mixedfx | mixedlm / mixedfx |")
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        o, t, ml = row["mixedfx"], row.get("lme4"), row.get("mixedlm")
        cells = [row["model"], str(o["ntheta"]), f"{o['median']:.3f} ({o['min']:.3f})", str(o["evaluations"]),
                 f"{o['objective']:.4f}", f"{o['peak_mb']:.1f}"]
        if t:
            cells += [f"{t['median']:.3f}", str(t["evaluations"]), f"{t['objective'] - o['objective']:+.4f}",
                      f"{t['median'] / o['median']:.2f}x"]
        else:
            cells += ["not run"] + [""] * 3
        if ml and "error" not in ml:
            cells += [f"{ml['median']:.3f}", str(ml["evaluations"]), f"{ml['objective'] - o['objective']:+.4f}",
                      f"{ml['median'] / o['median']:.2f}x"]
        elif ml:
            cells += ["failed: " + ml["error"][:60].replace("|", "/")] + [""] * 3
        else:
            cells += ["not run"] + [""] * 3
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--reps", type=int, default=3,
                    help="timed fits per model and package, after one warm-up (default 3)")
    ap.add_argument("--no-r", action="store_true", help="do not run lme4 even if R is available")
    ap.add_argument("--r-reps", type=int, default=None,
                    help="timed lme4 fits per model (default: --reps; 1 without warm-up for sim_8x8, "
                         "where one lme4 fit takes minutes)")
    ap.add_argument("--r-optimizer", default=None, help="lme4 optimizer (default: lme4's default, nloptwrap)")
    ap.add_argument("--no-mixedlm", action="store_true", help="do not run mixedlm even if it is installed")
    ap.add_argument("--optimizer", default=None,
                    help="passed to mfx.lmer(optimizer=...) when mfx.lmer accepts it (else its default is used)")
    ap.add_argument("--threads", choices=["1", "default"], default="1",
                    help="1: every package on one thread (default); default: leave thread settings alone")
    ap.add_argument("--json", default=os.path.join(HERE, "results", "crossed.json"))
    args = ap.parse_args(argv)
    if args.threads == "1":           # before numpy, mixedfx or mixedlm load their thread pools
        for var in THREAD_VARS:
            os.environ[var] = "1"
    import numpy as np

    ours = {m: time_mixedfx(m, args.reps, args.optimizer) for m in args.models}
    run_ml = not args.no_mixedlm and have_mixedlm()
    theirs_ml = {m: time_mixedlm(MODELS[m][1], load(MODELS[m][0]), False, args.reps)
                 for m in args.models} if run_ml else {}
    run_r = not args.no_r and have_r()
    r_reps = {m: args.r_reps or HEAVY_R.get(m, args.reps) for m in args.models}
    theirs_r = time_lme4(args.models, r_reps, dict(os.environ), args.r_optimizer) if run_r else {}

    rows = [{"model": m, "data": MODELS[m][0], "formula": MODELS[m][1], "mixedfx": ours[m],
             "lme4": theirs_r.get(m), "mixedlm": theirs_ml.get(m)} for m in args.models]
    print(table(rows))
    notes = []
    if not run_r:
        why = "--no-r given" if args.no_r else "Rscript with lme4 and jsonlite not found"
        notes.append(f"lme4 not run ({why})")
    if not run_ml:
        notes.append("mixedlm not run (" + ("--no-mixedlm given" if args.no_mixedlm else "not installed") + ")")
    if args.optimizer and any(r["mixedfx"]["optimizer_arg"] == "default" for r in rows):
        notes.append(f"mfx.lmer does not accept optimizer= yet: --optimizer {args.optimizer} ignored")
    for n in notes:
        print("\n* " + n)
    truth = dict(TRUTH, seed=SEED, subj_cov=true_cov(TRUTH["subj_sd"], TRUTH["subj_rho"]).round(12).tolist(),
                 item_cov=true_cov(TRUTH["item_sd"], TRUTH["item_rho"]).round(12).tolist())
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "numpy": np.__version__},
                   "threads": args.threads, "optimizer": args.optimizer, "r_optimizer": args.r_optimizer,
                   "lme4_live": run_r,
                   "mixedlm_live": run_ml, "simulation": truth, "notes": notes, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
