"""Benchmark: Satterthwaite and Kenward-Roger df on InstEval (73,421 rows) and bootstrap throughput on sleepstudy.

Usage: ``python benchmarks/bench_inference.py``
"""
from __future__ import annotations

import time
import warnings

import mixedfx as mfx


def main() -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inst = mfx.lmer("y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept)", mfx.datasets.load("insteval"))
        t0 = time.perf_counter()
        table = inst.coef_table(ddf="satterthwaite")
        satt = time.perf_counter() - t0
        t0 = time.perf_counter()
        inst.anova()
        aov = time.perf_counter() - t0
        t0 = time.perf_counter()
        kr_table = inst.coef_table(ddf="kenward-roger")
        kr = time.perf_counter() - t0
        sleep = mfx.lmer("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))
        reps = sleep.bootstrap(nsim=500, seed=1)
    print("| task | seconds / rate |")
    print("|---|---:|")
    print(f"| Satterthwaite df, InstEval (all fixed effects) | {satt:.2f} s |")
    print(f"| type III anova, InstEval (cached derivatives) | {aov:.3f} s |")
    print(f"| Kenward-Roger SEs and df, InstEval (q = 4,114 random effects) | {kr:.2f} s |")
    print(f"| parametric bootstrap, sleepstudy (Days \\| Subject) | {reps.attrs['refits_per_second']:.0f} refits/s |")
    print(f"\nSatterthwaite df: {table['df'].round(3).to_dict()}")
    print(f"Kenward-Roger df: {kr_table['df'].round(3).to_dict()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
