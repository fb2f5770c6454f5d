"""Benchmark: glmmTMB-style families (``mfx.glmer(..., family=, zi=, disp=, df=)``) and ``mfx.clmm``
against glmmTMB 1.1.5 and ordinal, timed in the same run (issue 11).

Usage::

    python benchmarks/bench_families.py                    # every model, R too (about 10 minutes)
    python benchmarks/bench_families.py --quick            # smoke run: fewer repetitions, smaller simulations
    python benchmarks/bench_families.py --out /tmp/families.json --no-r
    python benchmarks/bench_families.py --only sal_genpois wine_two_re sim_t

The mixedfx timed is whatever ``import mixedfx`` finds (the JSON's ``mixedfx_source`` records its
file, the repository HEAD and any uncommitted changes under ``src/``); to time one commit while
the working tree changes, export it (``git archive HEAD | tar -x -C /tmp/mfx_head``) and run
with ``PYTHONPATH=/tmp/mfx_head/src``.

Models
------
*Reference models*: every record of ``tests/reference/glmmtmb_families.json`` except
``sal_zip_zire`` (a random effect in the zero-inflation part, which mixedfx does not fit) and
every record of ``tests/reference/clmm.json`` except ``wine_cloglog_laplace_ordinal_default``
(ordinal's scalar fitter swaps cloglog and loglog there; the reference for cloglog is
``wine_cloglog_laplace``, fitted with ``clmm.control(useMatrix = TRUE)``).  The R side runs the
record's own ``call`` text (the reference script's control ``glmmTMBControl(optCtrl =
list(iter.max = 1e4, eval.max = 1e4))``; ordinal's defaults, or ``useMatrix = TRUE`` for cloglog)
WITHOUT the Newton polish of the reference script; the data are the bundled CSVs read as
``make_glmmtmb_families.R`` / ``make_clmm.R`` read them.  The mixedfx call is built from the
record (``formula``, ``ziformula`` unless ``~0``, ``dispformula`` unless ``~1``, the family
name, ``df=`` when the record maps ``psi``, ``family=Gamma(), link="log"`` for the Gamma record;
``mfx.clmm(formula, link=, nagq=)`` for ordinal) and printed in the JSON (``mixedfx_call``).

*Larger data* (``simulate_*``; seed ``SEED``, numpy ``default_rng``; the groups ``g`` are
``g0000``, ``g0001``, ... with equally many consecutive rows each; written to a CSV in a temporary
directory that R reads, and Python fits the very same DataFrame):

* ``sim_zinb2`` (20,000 rows, 500 groups): draws x, z (n each), b (G), gamma, Poisson, uniform
  (n each); ``mu = exp(0.5 + 0.6 x + b)``, ``b ~ N(0, 0.5^2)``, ``y | b ~ NB2(mu, size 1.5)``
  (gamma-Poisson) set to 0 with probability ``plogis(-1 + 0.7 z)``; model
  ``y ~ x + (1 | g)``, ``zi = ~ z``, ``nbinom2``.
* ``sim_beta`` (20,000 rows, 500 groups): draws x (n), b (G), beta (n);
  ``logit mu = -0.5 + 0.8 x + b``, ``b ~ N(0, 0.5^2)``, ``y ~ Beta(15 mu, 15 (1 - mu))``;
  model ``y ~ x + (1 | g)``, ``beta``.
* ``sim_t`` (10,000 rows, 200 groups): draws x (n), b0, b1 (G each), t (n);
  ``y = 1 + 0.5 x + b0 + b1 x + 0.8 e``, ``b0 ~ N(0, 1)``, ``b1 ~ N(0, 0.3^2)`` independent,
  ``e ~ Student-t(4)``; model ``y ~ x + (1 + x | g)``, ``t`` (df estimated).

``--quick`` shrinks the simulations tenfold in rows and fivefold in groups.

Timing
------
Both sides time the whole user call (mixedfx: formula -> design -> fit -> result with standard
errors; glmmTMB: model frame, TMB object, nlminb, ``sdreport``; ordinal: ``clmm`` with its
Hessian) warm: one untimed call, then repeated timed calls until at least ``--min-reps`` (5)
were made and ``--budget`` seconds (8) were spent, at most ``--max-reps`` (40); the larger data
use ``--large-reps`` (3) after the warm-up.  mixedfx runs in this process (threadpoolctl: one
BLAS thread); R runs afterwards in ONE ``Rscript`` process (package loading and R startup are
outside the timings), ``proc.time()`` elapsed per call.  OPENBLAS/OMP/MKL/BLIS thread counts are
1 for both (set before numpy loads; R uses its reference BLAS).  The table reports medians; the
JSON also keeps min, max, all times and the load average (the machine is shared).

-2 log L: mixedfx ``result.objective``; glmmTMB ``2 * fit$fit$objective`` (its Laplace negative
log-likelihood); ordinal ``-2 * logLik(fit)``.  ``d(-2logL)`` = mixedfx - R (the timed R fit);
``d_ref`` = mixedfx - the reference record (polished glmmTMB).  A difference above 1e-3 is
flagged in the notes.  Evaluations: mixedfx ``fit.opt.nfev`` (objective evaluations of its
optimizer, with the analytic gradient where it has one); R nlminb's ``evaluations`` (function,
gradient; ordinal's gradient count includes its finite differences).
"""
from __future__ import annotations

import os

THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS")
for _var in THREAD_VARS:            # before numpy (or anything importing it) loads a BLAS
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

from _timing import provenance, repeat, timing_stats  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
REF = os.path.join(ROOT, "tests", "reference")
DATADIR = os.path.join(ROOT, "src", "mixedfx", "datasets", "data")
SEED = 20250611
SKIP = {"sal_zip_zire": "random effect in the zi part: not supported by mixedfx",
        "wine_cloglog_laplace_ordinal_default": "ordinal's scalar fitter fits loglog for link = 'cloglog' "
                                                 "(see make_clmm.R); wine_cloglog_laplace is the cloglog model"}
TOL = 1e-3
LARGE = {   # id: (rows, groups, formula, mixedfx kwargs, R call with data d)
    "sim_zinb2": (20000, 500, "y ~ x + (1 | g)", {"family": "nbinom2", "zi": "~ z"},
                  "glmmTMB(y ~ x + (1 | g), ziformula = ~ z, family = nbinom2, data = d, control = ctl)"),
    "sim_beta": (20000, 500, "y ~ x + (1 | g)", {"family": "beta"},
                 "glmmTMB(y ~ x + (1 | g), family = beta_family(), data = d, control = ctl)"),
    "sim_t": (10000, 200, "y ~ x + (1 + x | g)", {"family": "t"},
              "glmmTMB(y ~ x + (1 + x | g), family = t_family, data = d, control = ctl)"),
}


# --------------------------------------------------------------------------- cases
def _strip(f: str) -> str:
    return re.sub(r"\s+", " ", f.strip())


def glmmtmb_case(rec: dict) -> dict:
    """The mixedfx call of one glmmTMB reference record."""
    fam = rec["family"]
    kw: dict = {}
    if fam == "Gamma":
        kw["family"] = "Gamma()"          # resolved to mixedfx.families.distributions.Gamma() when run
        kw["link"] = rec["link"]
    else:
        kw["family"] = fam
        default = {"beta": "logit", "betabinomial": "logit", "binomial": "logit", "t": "identity",
                   "gaussian": "identity"}.get(fam, "log")
        if rec["link"] != default:
            kw["link"] = rec["link"]
    if _strip(rec["ziformula"]) not in ("~0", "~ 0"):
        kw["zi"] = _strip(rec["ziformula"])
    if _strip(rec["dispformula"]) not in ("~1", "~ 1"):
        kw["disp"] = _strip(rec["dispformula"])
    m = re.search(r"start = list\(psi = log\(([0-9.]+)\)\), map = list\(psi = factor\(NA\)\)", rec["call"])
    if m:
        kw["df"] = float(m.group(1))
    return {"id": rec["id"], "kind": "glmmTMB", "data": rec["data"], "formula": _strip(rec["formula"]),
            "func": "glmer", "kwargs": kw, "r_call": rec["call"], "reference_m2ll": rec["objective"]}


def clmm_case(rec: dict) -> dict:
    m = re.match(r"clmm\((.+?), data = (\w+)", rec["call"])
    return {"id": rec["id"], "kind": "ordinal", "data": m.group(2), "formula": _strip(m.group(1)), "func": "clmm",
            "kwargs": {"link": rec["link"], "nagq": int(rec["nAGQ"])}, "r_call": rec["call"],
            "reference_m2ll": rec["objective"]}


def reference_cases() -> tuple[list[dict], list[dict]]:
    cases, skipped = [], []
    with open(os.path.join(REF, "glmmtmb_families.json")) as f:
        tmb = json.load(f)["fits"]
    with open(os.path.join(REF, "clmm.json")) as f:
        clm = json.load(f)["fits"]
    for recs, make in ((tmb, glmmtmb_case), (clm, clmm_case)):
        for rec in recs:
            if rec["id"] in SKIP:
                skipped.append({"id": rec["id"], "reason": SKIP[rec["id"]]})
            else:
                cases.append(make(rec))
    return cases, skipped


def call_text(case: dict) -> str:
    kw = ", ".join(f"{k}={v!r}" if not (k == "family" and v == "Gamma()") else f"{k}={v}"
                   for k, v in case["kwargs"].items())
    data = case["data"] if case.get("section") != "larger" else "df"
    return f"mfx.{case['func']}({case['formula']!r}, {data}{', ' + kw if kw else ''})"


# --------------------------------------------------------------------------- larger data
def _groups(n: int, G: int):
    import numpy as np
    import pandas as pd
    if n % G:
        raise ValueError(f"rows {n} must be a multiple of groups {G}")
    labels = [f"g{k:04d}" for k in range(G)]
    return np.repeat(np.arange(G), n // G), pd.Categorical(np.repeat(labels, n // G), categories=labels)


def simulate(model: str, n: int, G: int, seed: int = SEED):
    """One larger data set (see the module docstring for the model and draw order)."""
    import numpy as np
    import pandas as pd
    rng = np.random.default_rng(seed)
    gi, g = _groups(n, G)
    if model == "sim_zinb2":
        x, z = rng.standard_normal(n), rng.standard_normal(n)
        b = 0.5 * rng.standard_normal(G)
        mu = np.exp(0.5 + 0.6 * x + b[gi])
        lam = rng.gamma(shape=1.5, scale=mu / 1.5, size=n)
        y = rng.poisson(lam).astype(float)
        y[rng.random(n) < 1.0 / (1.0 + np.exp(-(-1.0 + 0.7 * z)))] = 0.0
        return pd.DataFrame({"g": g, "x": x, "z": z, "y": y})
    if model == "sim_beta":
        x = rng.standard_normal(n)
        b = 0.5 * rng.standard_normal(G)
        mu = 1.0 / (1.0 + np.exp(-(-0.5 + 0.8 * x + b[gi])))
        y = rng.beta(15 * mu, 15 * (1 - mu))
        if np.any((y <= 0) | (y >= 1)):
            raise RuntimeError("simulated beta response on the boundary; change the seed")
        return pd.DataFrame({"g": g, "x": x, "y": y})
    if model == "sim_t":
        x = rng.standard_normal(n)
        b0, b1 = rng.standard_normal(G), 0.3 * rng.standard_normal(G)
        y = 1.0 + 0.5 * x + b0[gi] + b1[gi] * x + 0.8 * rng.standard_t(4, size=n)
        return pd.DataFrame({"g": g, "x": x, "y": y})
    raise ValueError(model)


# --------------------------------------------------------------------------- mixedfx
def time_mixedfx(case: dict, data, reps: tuple[int, int, float]) -> dict:
    import mixedfx as mfx
    from mixedfx.families.distributions import Gamma
    kw = dict(case["kwargs"])
    if kw.get("family") == "Gamma()":
        kw["family"] = Gamma()
    func = getattr(mfx, case["func"])
    fn = lambda: func(case["formula"], data, **kw)  # noqa: E731
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        try:
            m = fn()
        except Exception as err:           # recorded and reported, not hidden
            return {"error": f"{type(err).__name__}: {err}"[:500]}
        warm = time.perf_counter() - t0
        msgs = sorted({str(w.message)[:200] for w in caught})
        times = repeat(fn, *reps)
    opt = m.fit.opt
    out = timing_stats(times, warm)
    out.update({"m2ll": float(m.objective), "evaluations": int(opt.nfev), "optimizer": getattr(opt, "optimizer", None),
                "status": str(getattr(opt, "status", "")), "converged": bool(m.converged), "warnings": msgs})
    return out


# --------------------------------------------------------------------------- R
R_SCRIPT = r"""
suppressPackageStartupMessages({library(glmmTMB); library(ordinal); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
spec <- fromJSON(args[1], simplifyVector = FALSE)
manifest <- fromJSON(file.path(spec$datadir, "datasets.json"), simplifyVector = TRUE)
load_bundled <- function(name) {        # as tests/reference/make_glmmtmb_families.R
  facs <- manifest[[name]]$factors
  cc <- setNames(rep("character", length(facs)), names(facs))
  d <- read.csv(gzfile(file.path(spec$datadir, paste0(name, ".csv.gz"))), colClasses = cc, na.strings = "NA")
  for (col in names(facs)) d[[col]] <- factor(d[[col]], levels = facs[[col]])
  d
}
for (nm in c("salamanders", "owls", "cbpp", "sleepstudy", "betasim", "tweediesim", "wine"))
  assign(nm, load_bundled(nm))
wine$rating <- factor(wine$rating, levels = levels(wine$rating), ordered = TRUE)   # as make_clmm.R
ctl <- glmmTMBControl(optCtrl = list(iter.max = 1e4, eval.max = 1e4))
out <- list()
for (m in spec$models) {
  out[[m$id]] <- tryCatch({
    if (!is.null(m$csv)) {
      d <- read.csv(m$csv, colClasses = c(g = "character"))
      d$g <- factor(d$g, levels = unlist(m$levels))
    }
    ex <- parse(text = m$call)[[1]]
    warn <- character(0)
    t0 <- proc.time()[["elapsed"]]
    fit <- withCallingHandlers(eval(ex),
      warning = function(w) { warn <<- c(warn, conditionMessage(w)); invokeRestart("muffleWarning") })
    warm <- proc.time()[["elapsed"]] - t0
    times <- numeric(0)
    while (length(times) < m$max_reps && (length(times) < m$min_reps || sum(times) < m$budget)) {
      t0 <- proc.time()[["elapsed"]]
      fit <- suppressWarnings(eval(ex))
      times <- c(times, proc.time()[["elapsed"]] - t0)
    }
    opt <- if (inherits(fit, "glmmTMB")) fit$fit else fit$optRes
    list(median = median(times), min = min(times), max = max(times), reps = length(times), warmup = warm,
         times = I(times), m2ll = if (inherits(fit, "glmmTMB")) 2 * fit$fit$objective else -2 * as.numeric(logLik(fit)),
         evaluations = as.list(opt$evaluations), iterations = opt$iterations, message = opt$message,
         pdHess = if (inherits(fit, "glmmTMB")) fit$sdr$pdHess else NA, warnings = I(unique(warn)))
  }, error = function(e) list(error = conditionMessage(e)))
  cat(sprintf("R %-36s %s\n", m$id, if (is.null(out[[m$id]]$error)) sprintf("%.3f s", out[[m$id]]$median)
              else paste("ERROR", out[[m$id]]$error)), file = stderr())
}
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, na = "null"), args[2])
"""


def have_r() -> bool:
    if shutil.which("Rscript") is None:
        return False
    r = subprocess.run(["Rscript", "-e", "suppressPackageStartupMessages({library(glmmTMB); library(ordinal); "
                        "library(jsonlite)})"], capture_output=True)
    return r.returncode == 0


def r_versions() -> dict:
    expr = ("cat(jsonlite::toJSON(list(R = R.version.string, glmmTMB = as.character(packageVersion('glmmTMB')), "
            "TMB = as.character(packageVersion('TMB')), ordinal = as.character(packageVersion('ordinal')), "
            "blas = sessionInfo()$BLAS), auto_unbox = TRUE))")
    r = subprocess.run(["Rscript", "-e", expr], capture_output=True, text=True)
    return json.loads(r.stdout) if r.returncode == 0 else {"error": r.stderr[-300:]}


def time_r(cases: list[dict], tmp: str) -> dict:
    entries = []
    for c in cases:
        e = {"id": c["id"], "call": c["r_call"], "min_reps": c["reps"][0], "max_reps": c["reps"][1],
             "budget": c["reps"][2]}
        if c.get("csv"):
            e.update(csv=c["csv"], levels=c["levels"])
        entries.append(e)
    spec_p, script, out = (os.path.join(tmp, n) for n in ("spec.json", "bench.R", "out.json"))
    with open(spec_p, "w") as f:
        json.dump({"datadir": DATADIR, "models": entries}, f)
    with open(script, "w") as f:
        f.write(R_SCRIPT)
    r = subprocess.run(["Rscript", script, spec_p, out], env=dict(os.environ))
    if r.returncode != 0 or not os.path.exists(out):
        return {c["id"]: {"error": f"Rscript failed (exit {r.returncode})"} for c in cases}
    with open(out) as f:
        return json.load(f)


# --------------------------------------------------------------------------- report
def _fmt_s(x: float) -> str:
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"


def row_cells(row: dict) -> list[str]:
    o, r = row["mixedfx"], row.get("r") or {}
    ours = f"error: {o['error'][:60]}" if "error" in o else f"{_fmt_s(o['median'])} ({o['evaluations']})"
    if not r:
        theirs = "not run"
    elif "error" in r:
        theirs = f"error: {r['error'][:60]}"
    else:
        ev = r.get("evaluations") or {}
        theirs = f"{_fmt_s(r['median'])} ({ev.get('function', '?')}/{ev.get('gradient', '?')})"
    ratio = f"{r['median'] / o['median']:.2f}" if "median" in o and "median" in r else "n/a"
    diff = f"{row['d_m2ll']:+.1e}" if row.get("d_m2ll") is not None else "n/a"
    dref = f"{row['d_ref']:+.1e}" if row.get("d_ref") is not None else "-"
    return [row["id"], row["rows_desc"], ours, theirs, ratio, diff, dref]


def table(rows: list[dict]) -> str:
    head = ["model", "data (rows)", "mixedfx s (evals)", "R s (fn/grad evals)", "ratio R/mixedfx",
            "d(-2logL) mixedfx-R", "d vs reference"]
    lines = ["| " + " | ".join(head) + " |", "|---|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append("| " + " | ".join(row_cells(row)) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 reps / 1 s budget, small simulations")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "families.json"))
    ap.add_argument("--no-r", action="store_true", help="do not run R even if available")
    ap.add_argument("--min-reps", type=int, default=5)
    ap.add_argument("--max-reps", type=int, default=40)
    ap.add_argument("--budget", type=float, default=8.0, help="seconds of timed calls per model and side (default 8)")
    ap.add_argument("--large-reps", type=int, default=3)
    ap.add_argument("--only", nargs="*", help="model ids to run (default all)")
    args = ap.parse_args(argv)
    if args.quick:
        args.min_reps, args.max_reps, args.budget, args.large_reps = 2, 5, 1.0, 1
    import numpy as np
    from threadpoolctl import threadpool_limits
    import mixedfx as mfx
    cases, skipped = reference_cases()
    for c in cases:
        c["section"] = "reference"
        c["reps"] = (args.min_reps, args.max_reps, args.budget)
    tmp = tempfile.mkdtemp(prefix="bench_families_")
    frames = {}
    for mid, (n, G, formula, kw, rcall) in LARGE.items():
        if args.quick:
            n, G = n // 10, G // 5
        df = simulate(mid, n, G)
        csv = os.path.join(tmp, f"{mid}.csv")
        df.to_csv(csv, index=False)
        frames[mid] = df
        cases.append({"id": mid, "kind": "glmmTMB", "section": "larger", "data": f"simulated ({n} rows, {G} groups)",
                      "rows": n, "groups": G, "formula": formula, "func": "glmer", "kwargs": kw, "r_call": rcall,
                      "csv": csv, "levels": list(df["g"].cat.categories), "reference_m2ll": None,
                      "reps": (args.large_reps, args.large_reps, 0.0)})
    if args.only:
        cases = [c for c in cases if c["id"] in args.only]
    datasets = {name: mfx.datasets.load(name) for name in {c["data"] for c in cases if c["section"] == "reference"}}
    load = {"start": os.getloadavg()}
    ours = {}
    with threadpool_limits(1):
        for c in cases:
            data = frames[c["id"]] if c["section"] == "larger" else datasets[c["data"]]
            ours[c["id"]] = time_mixedfx(c, data, c["reps"])
            o = ours[c["id"]]
            print(f"mixedfx {c['id']:<36} " + (f"{o['median']:.3f} s" if "median" in o else o["error"]),
                  file=sys.stderr, flush=True)
    load["after_mixedfx"] = os.getloadavg()
    run_r = not args.no_r and have_r()
    theirs = time_r(cases, tmp) if run_r else {}
    shutil.rmtree(tmp, ignore_errors=True)
    load["end"] = os.getloadavg()
    rows, notes = [], []
    for c in cases:
        o, r = ours[c["id"]], theirs.get(c["id"])
        d = o["m2ll"] - r["m2ll"] if "m2ll" in o and r and r.get("m2ll") is not None else None
        dref = o["m2ll"] - c["reference_m2ll"] if "m2ll" in o and c["reference_m2ll"] is not None else None
        n = c.get("rows") or len(datasets[c["data"]])
        row = {"id": c["id"], "section": c["section"], "kind": c["kind"],
               "rows_desc": (f"{c['data']} ({n})" if c["section"] == "reference"
                             else f"sim ({n} / {c['groups']} groups)"),
               "rows": n, "mixedfx_call": call_text(c), "r_call": c["r_call"], "mixedfx": o, "r": r,
               "ratio": r["median"] / o["median"] if r and "median" in r and "median" in o else None,
               "d_m2ll": d, "d_ref": dref, "reference_m2ll": c["reference_m2ll"]}
        rows.append(row)
        if "error" in o:
            notes.append(f"{c['id']}: mixedfx ERROR {o['error']}")
        if r and "error" in r:
            notes.append(f"{c['id']}: R ERROR {r['error']}")
        if d is not None and abs(d) > TOL:
            notes.append(f"{c['id']}: -2logL differs from the timed R fit by {d:+.2e} (> {TOL:g}); "
                         f"vs the polished reference {dref:+.2e}" if dref is not None else
                         f"{c['id']}: -2logL differs from the timed R fit by {d:+.2e} (> {TOL:g})")
        elif dref is not None and abs(dref) > TOL:
            notes.append(f"{c['id']}: -2logL differs from the reference record by {dref:+.2e} (> {TOL:g})")
        if "converged" in o and not o["converged"]:
            notes.append(f"{c['id']}: mixedfx reports converged = False")
        if o.get("warnings"):
            notes.append(f"{c['id']}: mixedfx warnings: " + "; ".join(o["warnings"])[:300])
        if r and r.get("warnings"):
            notes.append(f"{c['id']}: R warnings: " + "; ".join(r["warnings"])[:300])
    for s in skipped:
        notes.append(f"{s['id']}: not benchmarked ({s['reason']})")
    if not run_r:
        notes.append("R not run (" + ("--no-r given" if args.no_r else "Rscript with glmmTMB, ordinal, jsonlite not "
                                      "found") + ")")
    print(table(rows))
    for n in notes:
        print("* " + n)
    print(f"\nload average (1, 5, 15 min): start {load['start']}, after mixedfx {load['after_mixedfx']}, "
          f"end {load['end']}")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "numpy": np.__version__,
                               "mixedfx": getattr(mfx, "__version__", None), "loadavg": load},
                   "mixedfx_source": provenance(mfx),
                   "r_versions": r_versions() if run_r else None, "threads": 1, "quick": args.quick,
                   "reps": {"min": args.min_reps, "max": args.max_reps, "budget_s": args.budget,
                            "large": args.large_reps},
                   "seed": SEED, "tolerance_m2ll": TOL, "r_live": run_r, "skipped": skipped, "notes": notes,
                   "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
