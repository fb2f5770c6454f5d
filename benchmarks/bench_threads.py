"""Benchmark: the BLAS thread policy against fixed thread counts, quiet and beside busy processes.

Usage::

    python benchmarks/bench_threads.py                        # 5 repeats, both models, 3 conditions
    python benchmarks/bench_threads.py --repeats 3 --models crossed --conditions quiet python
    python benchmarks/bench_threads.py --json benchmarks/results/threads.json

Models: InstEval ``y ~ service + (1|s) + (1|d) + (1|dept)`` (73,421 rows; dense block
1,142 columns) and a simulated 3-factor crossed model ``y ~ x + (1|a) + (1|b) + (1|c)``
with 250,000 rows and 2,315 x 326 x 87 levels (seed 20240508; dense block 413 columns).

Conditions:

* ``quiet``: no helper process;
* ``numpy``: a helper process multiplies 600 x 600 matrices in a loop with its BLAS
  library's default threads;
* ``python``: a helper process runs a pure-Python busy loop (one core).

Before each repeat the script waits (up to ``--max-wait`` s) until other processes use less
than 0.3 of a core, since the machine may be shared; then it starts the helper, if any, and
fits the model with ``blas_threads="auto"`` (the default policy), 1 and the available
cores, in rotating order.  The table shows medians (and min-max) of the wall time of the
whole ``mfx.lmer`` call, the ratio of the default's median to the faster fixed setting's,
and the median over repeats of the same ratio within a repeat.  "others" is the CPU (in
cores) used by other processes during the fits, read from ``/proc/stat``: about 1 with a
helper process, 0 when quiet.
Do not set ``OPENBLAS_NUM_THREADS`` for this script: thread counts are the point.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np
import pandas as pd

import mixedfx as mfx
from mixedfx.models import threads

SEED = 20240508
FORMULAS = {"insteval": "y ~ service + (1|s) + (1|d) + (1|dept)",
            "crossed": "y ~ x + (1|a) + (1|b) + (1|c)"}
HELPERS = {
    "numpy": ("import numpy as np\n"
              "a = np.random.default_rng(0).normal(size=(600, 600))\n"
              "while True:\n"
              "    a = a @ a\n"
              "    a /= np.abs(a).max()\n"),
    "python": "x = 0\nwhile True:\n    x += 1\n",
}


def simulate_crossed(n: int = 250_000, levels=(2315, 326, 87), seed: int = SEED) -> pd.DataFrame:
    """Three crossed random intercepts (sd 1, 0.7, 0.5), residual sd 1, one covariate."""
    rng = np.random.default_rng(seed)
    a, b, c = (rng.integers(0, k, n) for k in levels)
    x = rng.normal(size=n)
    y = (1 + 0.5 * x + rng.normal(size=levels[0])[a] + 0.7 * rng.normal(size=levels[1])[b]
         + 0.5 * rng.normal(size=levels[2])[c] + rng.normal(size=n))
    return pd.DataFrame({"y": y, "x": x, "a": a, "b": b, "c": c})


class Recorder(threads.ThreadPolicy):
    """The library's policy, remembering each instance so the script can report its switches."""
    made: list = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        Recorder.made.append(self)


def start_helper(kind: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    proc = subprocess.Popen([sys.executable, "-c", HELPERS[kind]], env=env)
    time.sleep(1.0)
    return proc


class OtherLoad:
    """CPU (in cores) used by other processes between start() and stop()."""

    def __init__(self):
        self.idle = threads.CpuIdle()
        self.cores = len(os.sched_getaffinity(0))

    def start(self):
        self._t, self._i, self._c = time.perf_counter(), self.idle(), time.process_time()

    def stop(self) -> float:
        t, i, c = time.perf_counter(), self.idle(), time.process_time()
        if i is None or self._i is None:
            return float("nan")
        return self.cores - ((i - self._i) + (c - self._c)) / (t - self._t)


def wait_for_quiet(load: OtherLoad, limit: float = 0.3, max_wait: float = 60.0) -> float:
    """Sleep until other processes use less than ``limit`` cores over 1 s (gives up after max_wait)."""
    t0 = time.perf_counter()
    while True:
        load.start()
        time.sleep(1.0)
        other = load.stop()
        if not other > limit or time.perf_counter() - t0 > max_wait:
            return other


#: a repeat counts only if other processes (the helper included) used at most this many cores
#: during each of its fits (numpy: not checked, its helper alone may take every core)
CLEAN = {"quiet": 0.3, "python": 1.3, "numpy": None}


def run_repeat(model, formula, df, cond, rep, settings, load, background) -> list[dict]:
    """One fit per setting, back to back, in an order rotating with ``rep``."""
    rows = []
    helper = start_helper(cond) if cond in HELPERS else None
    try:
        for bt in settings[rep % 3:] + settings[:rep % 3]:
            time.sleep(0.3)             # let the BLAS threads of the previous fit go idle
            Recorder.made.clear()
            load.start()
            t0 = time.perf_counter()
            m = mfx.lmer(formula, df, blas_threads=bt)
            seconds = time.perf_counter() - t0
            other = load.stop()
            switches = [s for p in Recorder.made for s in p.switches]
            rows.append({"model": model, "condition": cond, "blas_threads": bt, "repeat": rep,
                         "seconds": seconds, "evaluations": m.fit.opt.nfev, "other_cores": other,
                         "background_before": background, "switches": switches, "objective": m.objective})
            print(f"{model:9s} {cond:7s} {str(bt):5s} rep {rep}: {seconds:7.2f} s  others {other:4.2f} "
                  f"(background before {background:4.2f})  switches {switches}", file=sys.stderr, flush=True)
    finally:
        if helper is not None:
            helper.kill()
            helper.wait()
    return rows


def run(models, conditions, repeats: int, max_wait: float = 60.0, retries: int = 3) -> list[dict]:
    threads.ThreadPolicy = Recorder             # blas_policy looks the class up at each fit
    settings = ["auto", 1, threads.available_cores()]
    data = {"insteval": mfx.datasets.load("insteval"), "crossed": simulate_crossed()}
    load = OtherLoad()
    rows = []
    warnings.simplefilter("ignore")
    mfx.lmer("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))    # warm-up
    for model in models:
        df, formula = data[model], FORMULAS[model]
        mfx.lmer(formula, df, blas_threads=1)                                          # warm caches
        for cond in conditions:
            for rep in range(repeats):
                for attempt in range(retries + 1):
                    background = wait_for_quiet(load, max_wait=max_wait)
                    got = run_repeat(model, formula, df, cond, rep, settings, load, background)
                    limit = CLEAN[cond]
                    clean = limit is None or all(r["other_cores"] <= limit for r in got)
                    for r in got:
                        r["discarded"] = not clean and attempt < retries
                    rows.extend(got)
                    if clean:
                        break
    return rows


def table(rows: list[dict]) -> str:
    cores = threads.available_cores()
    out = [f"| model | condition | others (cores) | background | default s | 1 thread s | {cores} threads s | "
           "default / best fixed | same, paired | default tried more threads |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    dropped = [r for r in rows if r.get("discarded")]
    rows = [r for r in rows if not r.get("discarded")]
    keys = sorted({(r["model"], r["condition"]) for r in rows}, key=lambda k: (
        list(FORMULAS).index(k[0]), ["quiet", "numpy", "python"].index(k[1])))
    for model, cond in keys:
        sel = [r for r in rows if r["model"] == model and r["condition"] == cond]
        med, cells = {}, []
        for bt in ["auto", 1, cores]:
            s = [r["seconds"] for r in sel if r["blas_threads"] == bt]
            med[bt] = statistics.median(s)
            cells.append(f"{med[bt]:.2f} ({min(s):.2f}-{max(s):.2f})")
        other = statistics.median(r["other_cores"] for r in sel)
        background = statistics.median(r["background_before"] for r in sel)
        ratio = med["auto"] / min(med[1], med[cores])
        # paired: each repeat's default fit against the faster fixed setting of the same repeat
        # (the three fits of a repeat run back to back, so slow drifts of the background cancel)
        by_rep = {}
        for r in sel:
            by_rep.setdefault(r["repeat"], {})[r["blas_threads"]] = r["seconds"]
        paired = statistics.median(v["auto"] / min(v[1], v[cores]) for v in by_rep.values() if len(v) == 3)
        auto = [r for r in sel if r["blas_threads"] == "auto"]
        tried = sum(any(sw[2] == "idle cores" for sw in r["switches"]) for r in auto)
        out.append(f"| {model} | {cond} | {other:.2f} | {background:.2f} | " + " | ".join(cells)
                   + f" | {ratio:.2f} | {paired:.2f} | {tried}/{len(auto)} fits |")
    if dropped:
        out.append(f"\n({len(dropped)} fits of repeats disturbed by other processes were run again and left out.)")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=list(FORMULAS), choices=list(FORMULAS))
    ap.add_argument("--conditions", nargs="*", default=["quiet", "numpy", "python"],
                    choices=["quiet", "numpy", "python"])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--max-wait", type=float, default=60.0,
                    help="seconds to wait for a quiet machine before each repeat (shared machines)")
    ap.add_argument("--retries", type=int, default=3,
                    help="times a repeat disturbed by other processes is run again (see CLEAN)")
    ap.add_argument("--json", help="also write every run to this file")
    args = ap.parse_args(argv)
    rows = run(args.models, args.conditions, args.repeats, args.max_wait, args.retries)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
