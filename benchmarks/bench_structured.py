"""Benchmark: structured random-effect covariances and residual AR(1) (issue 10), ML fits.

Usage::

    python benchmarks/bench_structured.py                      # 5,000 and 500 subjects, R too when available
    python benchmarks/bench_structured.py --subjects 500 --reps 3 --no-r
    python benchmarks/bench_structured.py --models ar1 residual_ar1 --r-reps 1

Data (``simulate``): ``S`` subjects (``--subjects``, default 5,000 and 500) x 10 equally spaced
times, one row per subject and time, columns ``id`` (categorical, levels ``s0000``, ``s0001``,
... in order), ``time`` (integers 0..9), ``x`` (standard normal) and

    y = 1 + 0.3 time + 0.5 x + u_id + a_{id,time} + e,   u ~ N(0, 1),  e ~ N(0, 0.5^2),

with ``a`` a stationary AR(1) process within each subject (rho 0.6, marginal SD 1):
``a_0 ~ N(0, 1)``, ``a_t = 0.6 a_{t-1} + sqrt(1 - 0.36) z_t``.  Draw order from
``numpy.random.default_rng(SEED)``: u (S), a_0 (S), z_1..z_9 (S each, in time order),
x (S x 10, row = subject), e (S x 10).  Each size uses the same seed (so the 500-subject data
are not a subset of the 5,000-subject data).

Models (every fit ML):

* ``ar1``: ``y ~ time + x + ar1(0 + factor(time) | id)``, mixedfx ``mfx.lmer(..., reml=False)``
  and ``glmmTMB(..., REML = FALSE)`` with the same formula (AR(1) random effect + residual).
* ``ar1_intercept``: ``y ~ time + x + (1 | id) + ar1(0 + factor(time) | id)``, both packages, the
  formula exactly as written.
* ``ar1_intercept_ar1first``: the same model with the terms in the other order,
  ``y ~ time + x + ar1(0 + factor(time) | id) + (1 | id)`` (mixedfx only; glmmTMB's fit of
  ``ar1_intercept`` is its reference).  Both grouping factors have S levels; mixedfx keeps formula
  order between terms with equal numbers of levels, and the order decides which term lands in
  its dense "later terms" block (see the notes in ``/work/notes/bench_structured.md``).
* ``residual_ar1``: random intercept with AR(1) *residuals* (no separate nugget):
  mixedfx ``mfx.lmer("y ~ time + x + (1 | id)", df, reml=False, correlation="ar1(time | id)")``;
  nlme ``lme(y ~ time + x, random = ~ 1 | id, correlation = corAR1(form = ~ time | id),
  method = "ML")``; and glmmTMB's spelling of the same model,
  ``glmmTMB(y ~ time + x + (1 | id) + ar1(0 + factor(time) | id), dispformula = ~0, REML = FALSE)``:
  ``dispformula = ~0`` fixes the residual variance at 1.49e-8 (glmmTMB 1.1.5's zerodisp_val), so
  the ar1 term is the whole within-subject covariance.  With the default dispformula the glmmTMB
  model is ``ar1_intercept`` (AR(1) + nugget), a different model.  When ``mfx.lmer`` does not
  accept ``correlation=`` yet, the mixedfx fit is skipped with a message (R fits still run).

Timing: each mixedfx measurement runs in its own Python process (this script with ``--worker``):
one warm-up ``mfx.lmer`` call, then the median of ``--reps`` whole calls (design + fit +
results), then one call under ``tracemalloc`` (peak MB of Python allocations, numpy buffers
included); a warm-up call slower than ``--slow`` seconds (default 60) is reported alone (marked
``^1``: one call, cold caches, no memory figure).  The worker's address space is capped
(``--mem-limit-gb``, default 4) and it is killed after ``--timeout`` seconds, so a fit that would
need a huge dense matrix fails fast instead of exhausting the shared machine.  R: one ``Rscript``
process for every R fit, one warm-up, then the median of ``--r-reps`` (default 3)
``proc.time()``-timed calls; glmmTMB's whole call includes its ``sdreport`` (standard errors of
all parameters), as a default call does.
Threads: OPENBLAS/OMP/MKL/BLIS thread counts are 1 (set before numpy loads, for the workers and
R), and threadpoolctl caps BLAS at 1 thread inside each worker; R uses its reference BLAS.
Log-likelihoods: ``-2 logLik`` of each package (mixedfx's ML objective is ``-2 logLik`` with the
full Gaussian constant, as glmmTMB's and nlme's ML logLik); the table shows mixedfx minus the
reference.  Evaluations: mixedfx ``fit.opt.nfev``; glmmTMB ``fit$fit$evaluations`` (function,
gradient); nlme does not record them.  Results go to ``benchmarks/results/structured.json``
together with the load average (the machine is shared: timings are noisy).
"""
from __future__ import annotations

import os

THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS")
for _var in THREAD_VARS:            # before numpy (or anything importing it) loads a BLAS
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _rtiming import timing_script  # noqa: E402

SEED = 20250610
N_TIMES = 10
TRUTH = {"beta": {"(Intercept)": 1.0, "time": 0.3, "x": 0.5}, "intercept_sd": 1.0, "ar1_rho": 0.6,
         "ar1_sd": 1.0, "residual_sd": 0.5}

FORMULA_AR1 = "y ~ time + x + ar1(0 + factor(time) | id)"
FORMULA_AR1_INT = "y ~ time + x + (1 | id) + ar1(0 + factor(time) | id)"
FORMULA_AR1_INT_REV = "y ~ time + x + ar1(0 + factor(time) | id) + (1 | id)"
MODELS = {
    # id: mixedfx (formula, extra keyword arguments of mfx.lmer) and the R fits compared with it
    "ar1": {"mixedfx": (FORMULA_AR1, {}),
            "r": {"glmmTMB": {"formula": FORMULA_AR1}}},
    "ar1_intercept": {"mixedfx": (FORMULA_AR1_INT, {}),
                      "r": {"glmmTMB": {"formula": FORMULA_AR1_INT}}},
    "ar1_intercept_ar1first": {"mixedfx": (FORMULA_AR1_INT_REV, {}),
                               "r": {}, "r_from": "ar1_intercept"},
    "residual_ar1": {"mixedfx": ("y ~ time + x + (1 | id)", {"correlation": "ar1(time | id)"}),
                     "r": {"nlme": {"formula": "y ~ time + x", "random": "~ 1 | id", "corr": "~ time | id"},
                           "glmmTMB": {"formula": FORMULA_AR1_INT, "disp": "~0"}}},
}

# One R function per package; ``m`` is the spec entry, ``d`` the data, ``f`` the formula.
R_SETUP = r"""
suppressPackageStartupMessages({library(glmmTMB); library(nlme)})
fitfun <- if (m$pkg == "nlme") {
  rnd <- as.formula(m$random); crf <- as.formula(m$corr)
  function() lme(f, random = rnd, correlation = corAR1(form = crf), data = d, method = "ML")
} else if (!is.null(m$disp)) {
  dsp <- as.formula(m$disp)
  function() glmmTMB(f, data = d, dispformula = dsp, REML = FALSE)
} else function() glmmTMB(f, data = d, REML = FALSE)
"""
R_EXTRA = (
    "m2ll = -2 * as.numeric(logLik(fit)), pkg = m$pkg, size = m$size, "
    "evaluations = if (m$pkg == 'glmmTMB') as.list(fit$fit$evaluations) else NA, "
    "message = if (m$pkg == 'glmmTMB') fit$fit$message else 'nlme: converged (lme stops with an error otherwise)', "
    "pdHess = if (m$pkg == 'glmmTMB') fit$sdr$pdHess else NA, "
    "estimates = if (m$pkg == 'glmmTMB') as.list(c(fixef(fit)$cond, sigma = sigma(fit), "
    "theta = unname(fit$fit$par[names(fit$fit$par) == 'theta']))) else "
    "as.list(c(fixef(fit), sigma = fit$sigma, id_sd = as.numeric(VarCorr(fit)[1, 'StdDev']), "
    "phi = unname(coef(fit$modelStruct$corStruct, unconstrained = FALSE))))")
R_SCRIPT = timing_script("fitfun()", R_EXTRA, setup=R_SETUP)


# --------------------------------------------------------------------------- data
def simulate(subjects: int, seed: int = SEED):
    """The simulated longitudinal data (see the module docstring)."""
    import numpy as np
    import pandas as pd
    rng = np.random.default_rng(seed)
    S, T = subjects, N_TIMES
    rho, sd = TRUTH["ar1_rho"], TRUTH["ar1_sd"]
    u = TRUTH["intercept_sd"] * rng.standard_normal(S)
    a = np.empty((S, T))
    a[:, 0] = sd * rng.standard_normal(S)
    for t in range(1, T):
        a[:, t] = rho * a[:, t - 1] + sd * np.sqrt(1.0 - rho ** 2) * rng.standard_normal(S)
    x = rng.standard_normal((S, T))
    e = TRUTH["residual_sd"] * rng.standard_normal((S, T))
    tt = np.tile(np.arange(T), (S, 1))
    b = TRUTH["beta"]
    y = b["(Intercept)"] + b["time"] * tt + b["x"] * x + u[:, None] + a + e
    labels = [f"s{k:04d}" for k in range(S)]
    ids = pd.Categorical(np.repeat(labels, T), categories=labels)
    return pd.DataFrame({"id": ids, "time": tt.ravel(), "x": x.ravel(), "y": y.ravel()})


# --------------------------------------------------------------------------- mixedfx (worker process)
def worker(spec: dict) -> dict:
    """Time one mixedfx model at one size (runs in its own process; see ``--worker``)."""
    import resource
    import tracemalloc
    import warnings
    if spec["mem_limit_gb"] > 0:
        lim = int(spec["mem_limit_gb"] * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
    from threadpoolctl import threadpool_limits
    import mixedfx as mfx
    formula, kw = MODELS[spec["model"]]["mixedfx"]
    df = simulate(spec["subjects"], spec["seed"])
    with threadpool_limits(1), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        try:
            m = mfx.lmer(formula, df, reml=False, **kw)           # warm-up (imports, caches)
        except TypeError as err:
            if kw and any(k in str(err) for k in kw):
                return {"skipped": f"mfx.lmer does not accept {', '.join(kw)}= yet ({err})"}
            raise
        except MemoryError as err:
            return {"skipped": f"MemoryError, address space capped at {spec['mem_limit_gb']:g} GB: {err}",
                    "seconds_before_error": time.perf_counter() - t0}
        warm = time.perf_counter() - t0
        slow = warm > spec["slow"]          # too slow to repeat: report the warm-up call alone
        times = [warm] if slow else []
        for _ in range(0 if slow else spec["reps"]):
            t0 = time.perf_counter()
            m = mfx.lmer(formula, df, reml=False, **kw)
            times.append(time.perf_counter() - t0)
        peak = None
        if not slow:
            tracemalloc.start()
            mfx.lmer(formula, df, reml=False, **kw)
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
    msgs = sorted({str(w.message)[:200] for w in caught})
    return {"median": statistics.median(times), "min": min(times), "max": max(times),
            "reps": 0 if slow else spec["reps"], "warmup": warm,
            "note": f"warm-up call only (slower than --slow {spec['slow']:g} s)" if slow else "",
            "m2ll": float(m.objective), "loglik": float(m.loglik),
            "evaluations": int(m.fit.opt.nfev), "converged": bool(m.converged),
            "singular": bool(m.is_singular), "optimizer": getattr(m.fit.opt, "optimizer", None),
            "theta": {str(k): float(v) for k, v in m.theta.items()}, "sigma": float(m.sigma),
            "fixef": {str(k): float(v) for k, v in m.fixef.items()}, "peak_mb": peak,
            "warnings": msgs}


def time_mixedfx(model: str, subjects: int, reps: int, timeout: float, mem_gb: float, slow: float) -> dict:
    spec = {"model": model, "subjects": subjects, "reps": reps, "seed": SEED, "mem_limit_gb": mem_gb, "slow": slow}
    try:
        r = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)],
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"skipped": f"timed out after {timeout:.0f} s (warm-up + {reps} fits + memory fit)"}
    if r.returncode != 0:
        return {"skipped": "worker failed: " + (r.stderr.strip().splitlines() or ["?"])[-1][:300]}
    return json.loads(r.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- R
def have_r() -> bool:
    if shutil.which("Rscript") is None:
        return False
    r = subprocess.run(["Rscript", "-e", "suppressPackageStartupMessages({library(glmmTMB); library(nlme); "
                        "library(jsonlite)})"], capture_output=True)
    return r.returncode == 0


def r_versions() -> dict:
    expr = ("cat(jsonlite::toJSON(list(R = R.version.string, glmmTMB = as.character(packageVersion('glmmTMB')), "
            "TMB = as.character(packageVersion('TMB')), nlme = as.character(packageVersion('nlme')), "
            "blas = sessionInfo()$BLAS), auto_unbox = TRUE))")
    r = subprocess.run(["Rscript", "-e", expr], capture_output=True, text=True)
    return json.loads(r.stdout) if r.returncode == 0 else {"error": r.stderr[-300:]}


def time_r(models: list[str], sizes: list[int], reps: int, tmp: str) -> dict:
    """Every R fit in one Rscript process; keys ``"<model>|<pkg>|<subjects>"``."""
    entries = []
    for S in sizes:
        csv = os.path.join(tmp, f"long_{S}.csv")
        if not os.path.exists(csv):
            simulate(S).to_csv(csv, index=False)
        levels = [f"s{k:04d}" for k in range(S)]
        for mid in models:
            for pkg, spec in MODELS[mid]["r"].items():
                entries.append({"id": f"{mid}|{pkg}|{S}", "pkg": pkg, "size": S, "csv": csv,
                                "factors": {"id": levels}, "reps": reps, **spec})
    if not entries:
        return {}
    spec_p, script, out = (os.path.join(tmp, n) for n in ("spec.json", "bench.R", "out.json"))
    with open(spec_p, "w") as f:
        json.dump({"models": entries}, f)
    with open(script, "w") as f:
        f.write(R_SCRIPT)
    subprocess.run(["Rscript", script, spec_p, out], check=True, env=dict(os.environ))
    with open(out) as f:
        return json.load(f)


# --------------------------------------------------------------------------- report
def _ratio(ref, ours):
    return f"{ref['median'] / ours['median']:.2f}x" if ref and ours and "median" in ours else "n/a"


def _diff(ref, ours):
    return f"{ours['m2ll'] - ref['m2ll']:+.2e}" if ref and ours and "m2ll" in ours else "n/a"


def table(rows: list[dict]) -> str:
    lines = ["| model | rows | mixedfx s (evals) | glmmTMB s (evals) | nlme s | ratio (ref s / mixedfx s) "
             "| -2logLik diff (mixedfx - ref) | mixedfx peak MB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        o, g, n = row["mixedfx"], row.get("glmmTMB"), row.get("nlme")
        if "median" in o:
            ours = f"{o['median']:.3f} ({o['evaluations']})" + ("^1" if o.get("note") else "")
        else:
            ours = "skipped: " + o["skipped"][:70].replace("|", "/")
        gl = f"{g['median']:.3f} ({g['evaluations']['function']})" if g else "-"
        nl = f"{n['median']:.3f}" if n else "-"
        refs = [(k, r) for k, r in (("nlme", n), ("glmmTMB", g)) if r]
        if len(refs) == 1:
            ratio, diff = _ratio(refs[0][1], o), _diff(refs[0][1], o)
        else:
            ratio = "; ".join(f"{k} {_ratio(r, o)}" for k, r in refs) or "n/a"
            diff = "; ".join(f"{k} {_diff(r, o)}" for k, r in refs) or "n/a"
        mem = f"{o['peak_mb']:.0f}" if o.get("peak_mb") is not None else "-"
        lines.append(f"| {row['model']} | {row['rows']:,} | {ours} | {gl} | {nl} | {ratio} | {diff} | {mem} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--subjects", nargs="*", type=int, default=[5000, 500],
                    help="numbers of subjects (10 rows each); default 5000 500")
    ap.add_argument("--reps", type=int, default=5, help="timed mixedfx fits after one warm-up (default 5)")
    ap.add_argument("--r-reps", type=int, default=3, help="timed R fits after one warm-up (default 3)")
    ap.add_argument("--no-r", action="store_true", help="do not run glmmTMB / nlme even if R is available")
    ap.add_argument("--timeout", type=float, default=900,
                    help="seconds allowed per mixedfx model and size (warm-up, reps, memory fit); default 900")
    ap.add_argument("--slow", type=float, default=60,
                    help="a mixedfx warm-up call slower than this many seconds is reported alone, "
                         "without repetitions or memory fit (default 60)")
    ap.add_argument("--mem-limit-gb", type=float, default=4,
                    help="address-space cap of each mixedfx worker process in GB (0: none); default 4")
    ap.add_argument("--json", default=os.path.join(HERE, "results", "structured.json"))
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    import numpy as np
    load = {"start": os.getloadavg()}
    ours = {}
    for S in args.subjects:
        for mid in args.models:
            ours[mid, S] = time_mixedfx(mid, S, args.reps, args.timeout, args.mem_limit_gb, args.slow)
            print(f"mixedfx {mid} S={S}: " + (f"{ours[mid, S]['median']:.3f} s" if "median" in ours[mid, S]
                                                else ours[mid, S]["skipped"]), file=sys.stderr, flush=True)
    load["after_mixedfx"] = os.getloadavg()
    run_r = not args.no_r and have_r()
    tmp = tempfile.mkdtemp(prefix="bench_structured_")
    r_models = sorted({MODELS[m].get("r_from", m) for m in args.models}, key=list(MODELS).index)
    theirs = time_r(r_models, args.subjects, args.r_reps, tmp) if run_r else {}
    shutil.rmtree(tmp, ignore_errors=True)
    load["end"] = os.getloadavg()
    rows = []
    for S in args.subjects:
        for mid in args.models:
            src = MODELS[mid].get("r_from", mid)
            row = {"model": mid, "subjects": S, "rows": S * N_TIMES, "mixedfx_formula": MODELS[mid]["mixedfx"][0],
                   "mixedfx_kwargs": MODELS[mid]["mixedfx"][1], "mixedfx": ours[mid, S], "r_specs": MODELS[src]["r"]}
            for pkg in MODELS[src]["r"]:
                row[pkg] = theirs.get(f"{src}|{pkg}|{S}")
            rows.append(row)
    print(table(rows))
    notes = [f"{r['model']} S={r['subjects']}: mixedfx skipped ({r['mixedfx']['skipped']})"
             for r in rows if "skipped" in r["mixedfx"]]
    notes += [f"^1 {r['model']} S={r['subjects']}: mixedfx {r['mixedfx']['note']}"
              for r in rows if r["mixedfx"].get("note")]
    if not run_r:
        notes.append("R not run (" + ("--no-r given" if args.no_r else "Rscript with glmmTMB, nlme, jsonlite not found")
                     + ")")
    for n in notes:
        print("\n* " + n)
    print(f"\nload average (1, 5, 15 min): start {load['start']}, end {load['end']}")
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "numpy": np.__version__,
                               "loadavg": load},
                   "r_versions": r_versions() if run_r else None, "threads": 1,
                   "reps": {"mixedfx": args.reps, "r": args.r_reps},
                   "simulation": dict(TRUTH, seed=SEED, times=N_TIMES), "r_live": run_r, "notes": notes,
                   "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
