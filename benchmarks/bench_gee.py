"""Benchmark: ``mfx.gee`` (population-averaged GEE) against geepack::geeglm and statsmodels' ``GEE``,
timed in the same run (issue 12).

Usage::

    python benchmarks/bench_gee.py                      # every case, R too (about 10 minutes)
    python benchmarks/bench_gee.py --quick              # smoke run: fewer repetitions, smaller simulations
    python benchmarks/bench_gee.py --out /tmp/gee.json --no-r --no-statsmodels
    python benchmarks/bench_gee.py --only ohio_ar1 sim_bin_exch

The mixedfx timed is whatever ``import mixedfx`` finds (the JSON's ``mixedfx_source`` records its
file, the repository HEAD and any uncommitted changes under ``src/``).

Cases
-----
*Reference fits*: every record of ``tests/reference/geepack.json`` that geepack converged on (14:
ohio, dietox, respiratory, seizure x independence / exchangeable / AR(1) / unstructured, without
dietox unstructured, which does not converge, and seizure unstructured, which never returns in R).
R runs the record's own ``call`` (``control = geese.control(epsilon = 1e-12, maxit = 200)``) on the
bundled CSVs read as ``make_geepack.R`` reads them; mixedfx runs the call of
``tests/models/test_gee_reference.py``: ``mfx.gee(formula, data, groups=, family=, corstr=,
tol=1e-10)``; statsmodels runs ``GEE.from_formula(formula without the offset, groups=, data=,
family=, cov_struct=, offset=log(t) for seizure, time=position in the cluster).fit(ddof_scale=0,
ctol=1e-10, maxiter=200)``.  statsmodels' estimator is geepack's only for independence and
exchangeable (with ``ddof_scale=0``); its AR(1) is the lag-1 moment estimator searched on a grid
(``Autoregressive(grid=True)``) and its unstructured working correlation is estimated differently,
so those rows are timed (marked ``*``) but their coefficients are not expected to agree.

*Larger data* (numpy ``default_rng``, seeds ``SEED`` and ``SEED + 1``; rows in cluster and time
order, written to a CSV in a temporary directory that R reads; Python fits the very same frame):

* ``sim_bin`` (5,000 clusters x 10 visits = 50,000 rows): per cluster ``trt`` ~ Bernoulli(0.5),
  ``b`` ~ N(0, 0.5^2); per row ``x`` ~ N(0, 1), a latent stationary AR(1) ``u`` (rho 0.6, sd 1);
  ``logit P(y = 1) = -0.5 + 0.5 x + 0.4 trt - 0.05 time + b + u``; model
  ``y ~ x + trt + time``, binomial, exchangeable (``sim_bin_exch``) and AR(1) (``sim_bin_ar1``).
* ``sim_pois`` (500 clusters x 100 times = 50,000 rows): ``x`` ~ N(0, 1), latent AR(1) ``u``
  (rho 0.7, sd 0.5), ``log mu = 0.3 + 0.4 x - 0.3 time / 100 + u``, ``y`` ~ Poisson(mu);
  model ``y ~ x + time``, Poisson, AR(1) (``sim_pois_ar1``).

Each larger case also runs with every package's default convergence settings (``@defaults``:
geepack ``geese.control()`` = epsilon 1e-4, maxit 25; mixedfx ``tol=1e-8, maxiter=100``;
statsmodels ``ctol=1e-6, maxiter=60``, still ``ddof_scale=0``).  ``--quick`` divides the numbers
of clusters by 10.

Timing
------
Every side times the whole user call (formula -> design -> fit -> robust and naive covariances)
warm: one untimed call, then repeated timed calls until at least ``--min-reps`` (5) were made and
``--budget`` seconds (8) were spent, at most ``--max-reps`` (40); the larger data use
``--large-reps`` (3) after the warm-up.  mixedfx and statsmodels run in this process
(threadpoolctl: one BLAS thread), R afterwards in ONE ``Rscript`` process (package loading outside
the timings), ``proc.time()`` elapsed per call.  OPENBLAS/OMP/MKL/BLIS thread counts are 1 for all
(set before numpy loads).  Medians are reported; the JSON keeps min, max, all times and the load
average (the machine is shared).  mixedfx's Python-side peak memory (tracemalloc) is measured in
one extra, untimed call.

Agreement: the largest absolute coefficient difference mixedfx - geepack (the timed R fit),
mixedfx - statsmodels, geepack - statsmodels and, for the reference fits, mixedfx - the reference
record; also the largest relative difference of the robust standard errors and the largest
absolute difference of the working-correlation parameters, mixedfx - geepack.  Iterations:
mixedfx ``result.iterations``; geepack the last ``iter =`` of geese's trace in the warm-up call
(as make_geepack.R counts them); statsmodels ``len(fit_history["params"]) - 1``.
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
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
import warnings  # noqa: E402

from _timing import provenance, repeat, timing_stats  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
REF = os.path.join(ROOT, "tests", "reference")
DATADIR = os.path.join(ROOT, "src", "mixedfx", "datasets", "data")
SEED = 20261130
MODELS = {   # dataset: (formula, family, groups), as tests/models/test_gee_reference.py
    "ohio": ("resp ~ age + smoke", "binomial", "id"),
    "dietox": ("Weight ~ Time + Cu", "gaussian", "Pig"),
    "respiratory": ("outcome ~ treat + sex + age + baseline", "binomial", "subject"),
    "seizure": ("y ~ x * trt + offset(log(t))", "poisson", "id"),
}
SAME_ESTIMATOR = ("independence", "exchangeable")     # statsmodels = geepack (with ddof_scale=0)
REF_CONTROL = "control = geese.control(epsilon = 1e-12, maxit = 200)"
TIGHT = {"mixedfx": {"tol": 1e-10}, "statsmodels": {"ctol": 1e-10, "maxiter": 200}, "r_control": REF_CONTROL}
DEFAULTS = {"mixedfx": {}, "statsmodels": {}, "r_control": None}
LARGE = {   # id: (simulation, corstr)
    "sim_bin_exch": ("sim_bin", "exchangeable"),
    "sim_bin_ar1": ("sim_bin", "ar1"),
    "sim_pois_ar1": ("sim_pois", "ar1"),
}
SIMS = {    # simulation: (clusters, visits, formula, family)
    "sim_bin": (5000, 10, "y ~ x + trt + time", "binomial"),
    "sim_pois": (500, 100, "y ~ x + time", "poisson"),
}


# --------------------------------------------------------------------------- data
def simulate(name: str, G: int, T: int, seed: int):
    """One larger data set (see the module docstring); rows in cluster and time order."""
    import numpy as np
    import pandas as pd
    rng = np.random.default_rng(seed)

    def latent_ar1(rho, sd):
        u = np.empty((G, T))
        u[:, 0] = rng.standard_normal(G)
        for t in range(1, T):
            u[:, t] = rho * u[:, t - 1] + np.sqrt(1 - rho ** 2) * rng.standard_normal(G)
        return sd * u

    tm = np.tile(np.arange(1, T + 1), (G, 1))
    ids = np.repeat(np.arange(1, G + 1), T)
    if name == "sim_bin":
        trt = rng.integers(0, 2, G)
        b = 0.5 * rng.standard_normal(G)
        x = rng.standard_normal((G, T))
        eta = -0.5 + 0.5 * x + 0.4 * trt[:, None] - 0.05 * tm + b[:, None] + latent_ar1(0.6, 1.0)
        y = (rng.random((G, T)) < 1.0 / (1.0 + np.exp(-eta))).astype(np.int64)
        return pd.DataFrame({"id": ids, "time": tm.ravel(), "x": x.ravel(), "trt": np.repeat(trt, T),
                             "y": y.ravel()})
    if name == "sim_pois":
        x = rng.standard_normal((G, T))
        y = rng.poisson(np.exp(0.3 + 0.4 * x - 0.3 * tm / T + latent_ar1(0.7, 0.5)))
        return pd.DataFrame({"id": ids, "time": tm.ravel(), "x": x.ravel(), "y": y.ravel()})
    raise ValueError(name)


def reference_cases() -> tuple[list[dict], list[dict]]:
    with open(os.path.join(REF, "geepack.json")) as f:
        ref = json.load(f)
    cases, skipped = [], [{"id": s["id"], "reason": s["reason"]} for s in ref["skipped"]]
    for rec in ref["fits"]:
        if not rec["converged"]:
            skipped.append({"id": rec["id"], "reason": f"geepack did not converge (error {rec['error']} after "
                                                      f"{rec['iterations']} iterations)"})
            continue
        formula, family, groups = MODELS[rec["dataset"]]
        cases.append({"id": rec["id"], "section": "reference", "setting": "reference", "data": rec["dataset"],
                      "formula": formula, "family": family, "groups": groups, "corstr": rec["corstr"],
                      "r_call": rec["call"], "reference_coef": dict(zip(rec["coef_names"], rec["coefficients"])),
                      "offset": "t" if "offset(log(t))" in formula else None})
    return cases, skipped


def large_cases(quick: bool, tmp: str) -> tuple[list[dict], dict]:
    frames, cases = {}, []
    for k, (sim, (G, T, formula, family)) in enumerate(SIMS.items()):
        if quick:
            G //= 10
        df = simulate(sim, G, T, SEED + k)
        csv = os.path.join(tmp, f"{sim}.csv")
        df.to_csv(csv, index=False)
        frames[sim] = (df, csv, G, T)
    for cid, (sim, corstr) in LARGE.items():
        df, csv, G, T = frames[sim]
        formula, family = SIMS[sim][2], SIMS[sim][3]
        for setting in ("reference", "defaults"):
            ctl = REF_CONTROL if setting == "reference" else None
            r_call = (f'geeglm({formula}, family = {family}, data = d, id = id, corstr = "{corstr}"'
                      + (f", {ctl})" if ctl else ")"))
            cases.append({"id": cid if setting == "reference" else f"{cid}@defaults", "section": "larger",
                          "setting": setting, "data": sim, "frame": df, "csv": csv, "clusters": G, "visits": T,
                          "formula": formula, "family": family, "groups": "id", "corstr": corstr, "r_call": r_call,
                          "reference_coef": None, "offset": None})
    return cases, frames


def settings(case: dict) -> dict:
    return TIGHT if case["setting"] == "reference" else DEFAULTS


def mixedfx_call_text(case: dict) -> str:
    kw = "".join(f", {k}={v!r}" for k, v in settings(case)["mixedfx"].items())
    data = case["data"] if case["section"] == "reference" else "df"
    return (f"mfx.gee({case['formula']!r}, {data}, groups={case['groups']!r}, family={case['family']!r}, "
            f"corstr={case['corstr']!r}{kw})")


def statsmodels_call_text(case: dict) -> str:
    cov = {"independence": "Independence()", "exchangeable": "Exchangeable()",
           "ar1": "Autoregressive(grid=True)", "unstructured": "Unstructured()"}[case["corstr"]]
    fam = {"binomial": "Binomial()", "gaussian": "Gaussian()", "poisson": "Poisson()"}[case["family"]]
    off = ", offset=np.log(data['t'])" if case["offset"] else ""
    kw = "".join(f", {k}={v!r}" for k, v in settings(case)["statsmodels"].items())
    return (f"sm.GEE.from_formula({case['formula'].replace(' + offset(log(t))', '')!r}, groups={case['groups']!r}, "
            f"data=data, family=sm.families.{fam}, cov_struct=sm.cov_struct.{cov}{off}, "
            f"time=position in cluster).fit(ddof_scale=0{kw})")


# --------------------------------------------------------------------------- Python timing
def _timed(fn, reps):
    """Warm-up call (warnings recorded), then the timed repetitions; (result, stats) or (None, error)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        try:
            res = fn()
        except Exception as err:           # recorded and reported, not hidden
            return None, {"error": f"{type(err).__name__}: {err}"[:500]}
        warm = time.perf_counter() - t0
        msgs = sorted({f"{w.category.__name__}: {str(w.message)[:200]}" for w in caught})
        times = repeat(fn, *reps)
    out = timing_stats(times, warm)
    out["warnings"] = msgs
    return res, out


def time_mixedfx(case: dict, data, reps) -> dict:
    import mixedfx as mfx
    kw = settings(case)["mixedfx"]

    def fn():
        g = mfx.gee(case["formula"], data, groups=case["groups"], family=case["family"], corstr=case["corstr"], **kw)
        g.se                                 # computed by the fit already; read as a user would
        return g

    g, out = _timed(fn, reps)
    if g is None:
        return out
    tracemalloc.start()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    out.update({"iterations": g.iterations, "converged": bool(g.converged), "peak_mb_python": peak / 2 ** 20,
                "coefficients": dict(zip(g.coef.index, map(float, g.coef))),
                "se_robust": dict(zip(g.se.index, map(float, g.se))),
                "alpha": [float(a) for a in g.corr_params], "phi": float(g.scale)})
    return out


def _sm_name(name: str) -> str:
    return name.replace("Intercept", "(Intercept)").replace("[T.", "").replace("]", "")


def time_statsmodels(case: dict, data, reps) -> dict:
    import numpy as np
    import statsmodels.api as sm
    fam = {"binomial": sm.families.Binomial, "gaussian": sm.families.Gaussian, "poisson": sm.families.Poisson}
    cov = {"independence": sm.cov_struct.Independence, "exchangeable": sm.cov_struct.Exchangeable,
           "ar1": lambda: sm.cov_struct.Autoregressive(grid=True), "unstructured": sm.cov_struct.Unstructured}
    formula = case["formula"].replace(" + offset(log(t))", "")
    offset = np.log(data[case["offset"]].to_numpy(float)) if case["offset"] else None
    position = data.groupby(case["groups"], observed=True, sort=False).cumcount().to_numpy()
    kw = settings(case)["statsmodels"]

    def fn():
        s = sm.GEE.from_formula(formula, groups=case["groups"], data=data, family=fam[case["family"]](),
                                cov_struct=cov[case["corstr"]](), offset=offset, time=position)
        r = s.fit(ddof_scale=0, **kw)
        r.bse                               # robust covariance, as the other two return it
        return r

    r, out = _timed(fn, reps)
    if r is None:
        return out
    dep = np.atleast_1d(np.asarray(r.model.cov_struct.dep_params, dtype=float)) if case["corstr"] != "independence" \
        else np.zeros(0)
    out.update({"iterations": len(r.fit_history["params"]) - 1, "same_estimator": case["corstr"] in SAME_ESTIMATOR,
                "coefficients": {_sm_name(k): float(v) for k, v in r.params.items()},
                "se_robust": {_sm_name(k): float(v) for k, v in r.bse.items()},
                "alpha": [float(a) for a in dep.ravel()][:50], "phi": float(r.scale)})
    return out


# --------------------------------------------------------------------------- R
R_SCRIPT = r"""
suppressPackageStartupMessages({library(geepack); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
spec <- fromJSON(args[1], simplifyVector = FALSE)
manifest <- fromJSON(file.path(spec$datadir, "datasets.json"), simplifyVector = TRUE)
load_bundled <- function(name) {        # as tests/reference/bundled.R
  facs <- manifest[[name]]$factors
  cc <- setNames(rep("character", length(facs)), names(facs))
  d <- read.csv(gzfile(file.path(spec$datadir, paste0(name, ".csv.gz"))), colClasses = cc, na.strings = "NA")
  for (col in names(facs)) d[[col]] <- factor(d[[col]], levels = facs[[col]])
  d
}
for (nm in c("ohio", "dietox", "respiratory", "seizure")) assign(nm, load_bundled(nm))
out <- list()
for (m in spec$models) {
  out[[m$id]] <- tryCatch({
    if (!is.null(m$csv)) d <- read.csv(m$csv)
    ex <- parse(text = m$call)[[1]]
    # warm-up with geese's trace on (to count iterations, as make_geepack.R does); not timed
    tcall <- if (grepl("geese.control(", m$call, fixed = TRUE))
      sub("geese.control(", "geese.control(trace = TRUE, ", m$call, fixed = TRUE)
    else paste0(substr(m$call, 1, nchar(m$call) - 1), ", control = geese.control(trace = TRUE))")
    warn <- character(0)
    t0 <- proc.time()[["elapsed"]]
    tr <- capture.output(fit <- withCallingHandlers(eval(parse(text = tcall)[[1]]),
      warning = function(w) { warn <<- c(warn, conditionMessage(w)); invokeRestart("muffleWarning") }))
    warm <- proc.time()[["elapsed"]] - t0
    its <- as.integer(sub("^iter = ", "", grep("^iter = ", tr, value = TRUE)))
    times <- numeric(0)
    while (length(times) < m$max_reps && (length(times) < m$min_reps || sum(times) < m$budget)) {
      t0 <- proc.time()[["elapsed"]]
      fit <- suppressWarnings(eval(ex))
      times <- c(times, proc.time()[["elapsed"]] - t0)
    }
    g <- fit$geese
    list(median = median(times), min = min(times), max = max(times), reps = length(times), warmup = warm,
         times = I(times), iterations = if (length(its)) max(its) else NA, geese_error = g$error,
         coef_names = I(names(coef(fit))), coefficients = I(unname(as.numeric(g$beta))),
         se_robust = I(unname(sqrt(diag(g$vbeta)))), alpha = I(unname(as.numeric(g$alpha))),
         phi = g$gamma[[1]], warnings = I(unique(warn)))
  }, error = function(e) list(error = conditionMessage(e)))
  res <- out[[m$id]]
  cat(sprintf("R %-28s %s\n", m$id, if (is.null(res[["error"]])) sprintf("%.3f s", res[["median"]])
              else paste("ERROR", res[["error"]])), file = stderr())
}
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, na = "null"), args[2])
"""


def have_r() -> bool:
    if shutil.which("Rscript") is None:
        return False
    r = subprocess.run(["Rscript", "-e", "suppressPackageStartupMessages({library(geepack); library(jsonlite)})"],
                       capture_output=True)
    return r.returncode == 0


def r_versions() -> dict:
    expr = ("cat(jsonlite::toJSON(list(R = R.version.string, geepack = as.character(packageVersion('geepack')), "
            "blas = sessionInfo()$BLAS), auto_unbox = TRUE))")
    r = subprocess.run(["Rscript", "-e", expr], capture_output=True, text=True)
    return json.loads(r.stdout) if r.returncode == 0 else {"error": r.stderr[-300:]}


def time_r(cases: list[dict], tmp: str) -> dict:
    entries = []
    for c in cases:
        e = {"id": c["id"], "call": c["r_call"], "min_reps": c["reps"][0], "max_reps": c["reps"][1],
             "budget": c["reps"][2]}
        if c.get("csv"):
            e["csv"] = c["csv"]
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
        res = json.load(f)
    for v in res.values():          # name the R coefficients and SEs as the Python sides do
        if "coef_names" in v:
            v["coefficients"] = dict(zip(v["coef_names"], v["coefficients"]))
            v["se_robust"] = dict(zip(v["coef_names"], v["se_robust"]))
    return res


# --------------------------------------------------------------------------- agreement
def _maxabs(a: dict | None, b: dict | None):
    if not a or not b:
        return None
    if set(a) != set(b):
        return f"names differ: {sorted(a)} vs {sorted(b)}"
    return max(abs(a[k] - b[k]) for k in a)


def _maxrel(a: dict | None, b: dict | None):
    if not a or not b or set(a) != set(b):
        return None
    return max(abs(a[k] - b[k]) / abs(b[k]) for k in a)


def agreement(case: dict, o: dict, r: dict | None, s: dict | None) -> dict:
    oc, rc, sc = o.get("coefficients"), (r or {}).get("coefficients"), (s or {}).get("coefficients")
    out = {"coef_mixedfx_geepack": _maxabs(oc, rc), "coef_mixedfx_statsmodels": _maxabs(oc, sc),
           "coef_geepack_statsmodels": _maxabs(rc, sc), "coef_mixedfx_reference": _maxabs(oc, case["reference_coef"]),
           "se_robust_rel_mixedfx_geepack": _maxrel(o.get("se_robust"), (r or {}).get("se_robust")),
           "se_robust_rel_mixedfx_statsmodels": _maxrel(o.get("se_robust"), (s or {}).get("se_robust")),
           "statsmodels_same_estimator": case["corstr"] in SAME_ESTIMATOR}
    ra = (r or {}).get("alpha")
    if "alpha" in o and ra is not None and len(ra) == len(o["alpha"]):
        out["alpha_mixedfx_geepack"] = max((abs(x - y) for x, y in zip(o["alpha"], ra)), default=0.0)
    return out


# --------------------------------------------------------------------------- report
def _fmt_s(x: float) -> str:
    return f"{x:.4f}" if x < 0.1 else f"{x:.3f}" if x < 10 else f"{x:.1f}"


def _cell(side: dict | None, mark: str = "") -> str:
    if not side:
        return "not run"
    if "error" in side:
        return f"error: {side['error'][:50]}"
    return f"{_fmt_s(side['median'])}{mark} ({side.get('iterations', '?')})"


def _ratio(num: dict | None, den: dict) -> str:
    return f"{num['median'] / den['median']:.1f}x" if num and "median" in num and "median" in den else "n/a"


def _e(x) -> str:
    return f"{x:.1e}" if isinstance(x, float) else ("-" if x is None else str(x)[:30])


def table(rows: list[dict]) -> str:
    head = ["case", "rows", "mixedfx s (iter)", "geepack s (iter)", "statsmodels s (iter)", "geepack / mixedfx",
            "statsmodels / mixedfx", "max abs d coef vs geepack", "vs statsmodels"]
    lines = ["| " + " | ".join(head) + " |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        o, r, s, a = row["mixedfx"], row.get("geepack"), row.get("statsmodels"), row["agreement"]
        same = a["statsmodels_same_estimator"]
        lines.append("| " + " | ".join([
            row["id"], f"{row['rows']:,}", _cell(o), _cell(r), _cell(s, "" if same else "*"), _ratio(r, o),
            _ratio(s, o), _e(a["coef_mixedfx_geepack"]),
            _e(a["coef_mixedfx_statsmodels"]) + ("" if same or a["coef_mixedfx_statsmodels"] is None else "*")]) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 reps / 1 s budget, simulations / 10")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "gee.json"))
    ap.add_argument("--no-r", action="store_true", help="do not run R even if available")
    ap.add_argument("--no-statsmodels", action="store_true", help="do not time statsmodels")
    ap.add_argument("--min-reps", type=int, default=5)
    ap.add_argument("--max-reps", type=int, default=40)
    ap.add_argument("--budget", type=float, default=8.0, help="seconds of timed calls per case and side (default 8)")
    ap.add_argument("--large-reps", type=int, default=3)
    ap.add_argument("--only", nargs="*", help="case ids to run (default all)")
    args = ap.parse_args(argv)
    if args.quick:
        args.min_reps, args.max_reps, args.budget, args.large_reps = 2, 5, 1.0, 1
    import numpy as np
    from threadpoolctl import threadpool_limits
    import mixedfx as mfx
    cases, skipped = reference_cases()
    for c in cases:
        c["reps"] = (args.min_reps, args.max_reps, args.budget)
    tmp = tempfile.mkdtemp(prefix="bench_gee_")
    large, _ = large_cases(args.quick, tmp)
    for c in large:
        c["reps"] = (args.large_reps, args.large_reps, 0.0)
    cases += large
    if args.only:
        cases = [c for c in cases if c["id"] in args.only]
    datasets = {name: mfx.datasets.load(name) for name in {c["data"] for c in cases if c["section"] == "reference"}}
    sm_version = None
    if not args.no_statsmodels:
        try:
            import statsmodels
            sm_version = statsmodels.__version__
        except ImportError:
            args.no_statsmodels = True
    load = {"start": os.getloadavg()}
    ours, sms = {}, {}
    with threadpool_limits(1):
        for c in cases:
            data = c["frame"] if c["section"] == "larger" else datasets[c["data"]]
            ours[c["id"]] = o = time_mixedfx(c, data, c["reps"])
            msg = f"mixedfx {c['id']:<28} " + (f"{o['median']:.4f} s" if "median" in o else o["error"])
            if not args.no_statsmodels:
                sms[c["id"]] = s = time_statsmodels(c, data, c["reps"])
                msg += "  statsmodels " + (f"{s['median']:.4f} s" if "median" in s else s["error"])
            print(msg, file=sys.stderr, flush=True)
    load["after_python"] = os.getloadavg()
    run_r = not args.no_r and have_r()
    theirs = time_r(cases, tmp) if run_r else {}
    shutil.rmtree(tmp, ignore_errors=True)
    load["end"] = os.getloadavg()
    rows, notes = [], []
    for c in cases:
        o, r, s = ours[c["id"]], theirs.get(c["id"]), sms.get(c["id"])
        n = len(c["frame"]) if c["section"] == "larger" else len(datasets[c["data"]])
        a = agreement(c, o, r, s)
        row = {"id": c["id"], "section": c["section"], "setting": c["setting"], "data": c["data"], "rows": n,
               "corstr": c["corstr"], "family": c["family"],
               "clusters": c.get("clusters") or (len(datasets[c["data"]][c["groups"]].unique())),
               "mixedfx_call": mixedfx_call_text(c), "r_call": c["r_call"],
               "statsmodels_call": None if args.no_statsmodels else statsmodels_call_text(c),
               "mixedfx": o, "geepack": r, "statsmodels": s or None, "agreement": a,
               "speedup_vs_geepack": r["median"] / o["median"] if r and "median" in r and "median" in o else None,
               "speedup_vs_statsmodels": s["median"] / o["median"] if s and "median" in s and "median" in o else None}
        rows.append(row)
        for side, res in (("mixedfx", o), ("geepack", r), ("statsmodels", s)):
            if res and "error" in res:
                notes.append(f"{c['id']}: {side} ERROR {res['error']}")
            if res and res.get("warnings"):
                notes.append(f"{c['id']}: {side} warnings: " + "; ".join(res["warnings"])[:300])
        if "converged" in o and not o["converged"]:
            notes.append(f"{c['id']}: mixedfx reports converged = False")
        if r and r.get("geese_error") not in (None, 0):
            notes.append(f"{c['id']}: geese error code {r['geese_error']} (not converged)")
        tol = 1e-6 if c["setting"] == "reference" else 1e-3
        for key in ("coef_mixedfx_geepack", "coef_mixedfx_reference"):
            if isinstance(a[key], float) and a[key] > tol:
                notes.append(f"{c['id']}: {key} = {a[key]:.2e} (> {tol:g})")
        if a["statsmodels_same_estimator"] and isinstance(a["coef_mixedfx_statsmodels"], float) \
                and a["coef_mixedfx_statsmodels"] > tol:
            notes.append(f"{c['id']}: coef_mixedfx_statsmodels = {a['coef_mixedfx_statsmodels']:.2e} (> {tol:g})")
    for sk in skipped:
        notes.append(f"{sk['id']}: not benchmarked ({sk['reason']})")
    if not run_r:
        why = "--no-r given" if args.no_r else "Rscript with geepack, jsonlite not found"
        notes.append(f"R not run ({why})")
    print(table(rows))
    print("\n* statsmodels' estimator differs from geepack's for this working correlation (timed, not compared)")
    for n in notes:
        print("* " + n)
    print(f"\nload average (1, 5, 15 min): start {load['start']}, after Python {load['after_python']}, "
          f"end {load['end']}")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "numpy": np.__version__,
                               "mixedfx": getattr(mfx, "__version__", None), "statsmodels": sm_version,
                               "loadavg": load},
                   "mixedfx_source": provenance(mfx), "r_versions": r_versions() if run_r else None, "threads": 1,
                   "quick": args.quick, "reps": {"min": args.min_reps, "max": args.max_reps, "budget_s": args.budget,
                                                 "large": args.large_reps},
                   "seed": SEED, "settings": {"reference": {k: v for k, v in TIGHT.items()},
                                              "defaults": {k: v for k, v in DEFAULTS.items()}},
                   "r_live": run_r, "skipped": skipped, "notes": notes, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
