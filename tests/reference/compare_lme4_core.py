"""Compare a fresh run of make_lme4_core.R with the committed lme4 reference JSON, field by field.

Usage (from the repository root)::

    Rscript tests/reference/make_lme4_core.R /tmp/lme4_core
    python tests/reference/compare_lme4_core.py /tmp/lme4_core [--committed tests/reference/lme4] [--rtol 1e-6]

For every top-level field (and sub-field of tables such as ``satterthwaite.df``) it prints the largest
relative difference over all models, where it occurs, and any non-numeric mismatch (a missing field, a
changed name or flag). The exit status is 1 when a difference exceeds ``--rtol``. Standard library only.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def _leaves(x, path=()):
    """Yield (path, value) for every scalar in a JSON value."""
    if isinstance(x, dict):
        for k, v in x.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from _leaves(v, path + (i,))
    else:
        yield path, x


def _field(path) -> str:
    """The field a leaf belongs to: top-level key plus named sub-keys (list positions dropped)."""
    return ".".join(str(p) for p in path if isinstance(p, str)) or "<root>"


def _rel(a: float, b: float) -> float:
    if a == b:
        return 0.0
    return abs(a - b) / max(abs(a), abs(b))


def compare(fresh_dir: str, committed_dir: str):
    """Return ({field: (max_rel, max_abs, where)}, [mismatch messages])."""
    worst: dict = {}
    problems: list[str] = []
    names = sorted(f for f in os.listdir(committed_dir) if f.endswith(".json"))
    for name in names:
        path = os.path.join(fresh_dir, name)
        if not os.path.exists(path):
            problems.append(f"{name}: not in {fresh_dir}")
            continue
        with open(os.path.join(committed_dir, name)) as f:
            old = dict(_leaves(json.load(f)))
        with open(path) as f:
            new = dict(_leaves(json.load(f)))
        for key in sorted(set(old) | set(new), key=str):
            where = f"{name[:-5]}:{'/'.join(map(str, key))}"
            if key not in new or key not in old:
                problems.append(f"{where}: only in {'committed' if key in old else 'fresh'}")
                continue
            a, b = old[key], new[key]
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
            if not numeric:
                if a != b:
                    problems.append(f"{where}: {a!r} (committed) vs {b!r} (fresh)")
                continue
            rel, ab = _rel(float(a), float(b)), abs(float(a) - float(b))
            field = _field(key)
            if field not in worst or rel > worst[field][0] or (rel == worst[field][0] and ab > worst[field][1]):
                worst[field] = (rel, ab, where)
    return worst, problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fresh", help="folder written by make_lme4_core.R")
    ap.add_argument("--committed", default=os.path.join(HERE, "lme4"))
    ap.add_argument("--rtol", type=float, default=1e-6)
    args = ap.parse_args(argv)
    worst, problems = compare(args.fresh, args.committed)
    print(f"{'field':34s} {'max rel diff':>13s} {'max abs diff':>13s}  where (largest relative)")
    for field, (rel, ab, where) in sorted(worst.items(), key=lambda kv: -kv[1][0]):
        print(f"{field:34s} {rel:13.3e} {ab:13.3e}  {where}")
    for p in problems:
        print("MISMATCH", p)
    over = [f for f, (rel, _, _) in worst.items() if rel > args.rtol and not math.isnan(rel)]
    print(f"{len(worst)} numeric fields; {len(over)} above rtol {args.rtol:g}; {len(problems)} non-numeric mismatches")
    return 1 if over or problems else 0


if __name__ == "__main__":
    sys.exit(main())
