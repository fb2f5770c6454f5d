"""Benchmark: where the time of one small fit goes (issue 15: per-fit overhead).

Usage::

    python benchmarks/bench_overhead.py                    # sleepstudy, dyestuff, penicillin
    python benchmarks/bench_overhead.py --calls 50 --models dyestuff
    python benchmarks/bench_overhead.py --package mixedfx_before --json /tmp/before.json

Each model is split into the stages of ``mfx.lmer`` and every stage is timed on its own:

* ``parse``: ``parse_formula(text)`` as ``lmer`` calls it (parsed formulas are kept, so this is
  a lookup after the first fit of a formula); ``parse_uncached``: the parsing itself;
* ``design``: ``build_design(formula, data, lmm=True)`` (data frame -> arrays and checks);
* ``workspace``: ``models.lmm.make_workspace(design)`` (standardized copy, PLS workspace);
* ``optimize``: ``fit_lmm(design)`` minus ``workspace`` (start, optimizer, the frozen fit);
* ``results``: ``LinearMixedModelResult(fit, ...)`` (what ``lmer`` does after ``fit_lmm``);
* ``lmer``: the whole call ``mfx.lmer(formula, data)``, timed directly (not a sum).

Figures are medians of ``--calls`` calls (default 200) after a warm-up call.  The stages are
timed in rounds of 10 calls, taking turns, so that a change in the machine's load (other
processes) affects every stage alike.  BLAS runs on one thread: ``OPENBLAS_NUM_THREADS`` and
friends are set to 1 before numpy loads, and threadpoolctl caps any library already loaded.
Results go to ``benchmarks/results/overhead.json`` (milliseconds).
"""
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

MODELS = {   # id: (dataset, formula)
    "sleepstudy": ("sleepstudy", "Reaction ~ Days + (Days | Subject)"),
    "dyestuff": ("dyestuff", "Yield ~ 1 + (1 | Batch)"),
    "penicillin": ("penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)"),
}
STAGES = ("parse", "parse_uncached", "design", "workspace", "fit_lmm", "results", "lmer")
ROUND = 10


def stage_functions(pkg: str, dataset: str, formula: str) -> dict:
    """One zero-argument function per stage, on data and inputs prepared once."""
    mfx = importlib.import_module(pkg)
    terms = importlib.import_module(pkg + ".formula.terms")
    parse_formula = terms.parse_formula
    parse_uncached = getattr(terms, "_parse_formula", parse_formula)
    build_design = importlib.import_module(pkg + ".design").build_design
    lmm = importlib.import_module(pkg + ".models.lmm")
    result_cls = importlib.import_module(pkg + ".results").LinearMixedModelResult
    data = mfx.datasets.load(dataset)
    f = parse_formula(formula)
    design = build_design(f, data, lmm=True)
    fit = lmm.fit_lmm(design)
    origin = (mfx.lmer, data, {"reml": True, "weights": None, "offset": None, "data_name": None})
    return {
        "parse": lambda: parse_formula(formula),
        "parse_uncached": lambda: parse_uncached(formula),
        "design": lambda: build_design(f, data, lmm=True),
        "workspace": lambda: lmm.make_workspace(design, True),
        "fit_lmm": lambda: lmm.fit_lmm(design),
        "results": lambda: result_cls(fit, formula, None, origin),
        "lmer": lambda: mfx.lmer(formula, data),
    }


def time_model(pkg: str, model: str, calls: int) -> dict:
    """Median milliseconds per stage (``optimize`` = ``fit_lmm`` - ``workspace``)."""
    fns = stage_functions(pkg, *MODELS[model])
    times: dict = {s: [] for s in STAGES}
    for fn in fns.values():
        fn()                                    # warm-up: imports, first-call caches
    rounds = max(1, -(-calls // ROUND))
    for _ in range(rounds):
        for stage in STAGES:
            fn, out = fns[stage], times[stage]
            for _ in range(ROUND):
                t0 = time.perf_counter()
                fn()
                out.append(time.perf_counter() - t0)
    med = {s: 1e3 * statistics.median(v[:calls]) for s, v in times.items()}
    q = {s: [1e3 * x for x in statistics.quantiles(v[:calls], n=4)[::2]] for s, v in times.items()}
    return {
        "parse": med["parse"], "parse_uncached": med["parse_uncached"], "design": med["design"],
        "workspace": med["workspace"],
        "optimize": med["fit_lmm"] - med["workspace"], "results": med["results"],
        "sum_of_stages": med["parse"] + med["design"] + med["fit_lmm"] + med["results"],
        "lmer": med["lmer"], "fit_lmm": med["fit_lmm"], "quartiles_ms": q, "calls": calls,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--calls", type=int, default=200, help="calls per stage (default 200)")
    ap.add_argument("--package", default="mixedfx",
                    help="package to time (default mixedfx; e.g. an older copy on PYTHONPATH under another name)")
    ap.add_argument("--json", default=os.path.join(HERE, "results", "overhead.json"))
    args = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits

    rows = {}
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for m in args.models:
            rows[m] = time_model(args.package, m, args.calls)
    print(f"median ms per call ({args.calls} calls, BLAS 1 thread)")
    print("| model | parse (uncached) | design | workspace | optimize | results | sum | lmer (whole call) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for m, r in rows.items():
        print(f"| {m} | {r['parse']:.3f} ({r['parse_uncached']:.3f}) | {r['design']:.3f} | {r['workspace']:.3f} "
              f"| {r['optimize']:.3f} "
              f"| {r['results']:.4f} | {r['sum_of_stages']:.3f} | {r['lmer']:.3f} |")
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    with open(args.json, "w") as f:
        json.dump({"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "loadavg": load},
                   "package": args.package, "unit": "ms", "models": {m: MODELS[m][1] for m in rows},
                   "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
