"""Command line: ``python -m mixedfx fit FORMULA --data NAME_OR_PATH [--ml] [--json]``.

``--data`` takes a bundled dataset name (``python -m mixedfx datasets`` lists them)
or a path to a CSV or Parquet file.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

__all__ = ["main"]


def _read_data(source: str, factors: list[str]):
    import pandas as pd

    from .. import datasets

    if os.path.exists(source):
        lower = source.lower()
        if lower.endswith((".parquet", ".pq")):
            df = pd.read_parquet(source)
        else:
            df = pd.read_csv(source)
        name = os.path.basename(source)
    else:
        try:
            df = datasets.load(source)
        except KeyError as exc:
            raise SystemExit(f"error: {source!r} is neither a file nor a bundled dataset "
                             f"({', '.join(datasets.list())})") from exc
        name = source
    for col in factors:
        if col not in df.columns:
            raise SystemExit(f"error: --factor column {col!r} is not in the data")
        df[col] = df[col].astype(str).astype("category")
    return df, name


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mixedfx", description="Fit mixed-effects models with lme4 formulas.")
    sub = p.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="fit a linear (or, with --family, generalized) mixed model")
    fit.add_argument("formula", help="lme4 formula, e.g. 'Reaction ~ Days + (Days | Subject)'")
    fit.add_argument("--data", required=True, help="bundled dataset name or CSV/Parquet path")
    fit.add_argument("--ml", action="store_true", help="maximum likelihood instead of REML")
    fit.add_argument("--weights", help="column of prior weights")
    fit.add_argument("--factor", action="append", default=[], metavar="COLUMN",
                     help="treat a numeric column as a factor (repeatable)")
    fit.add_argument("--family", help="GLMM family: binomial, poisson, gamma, inverse_gaussian, gaussian, negbin")
    fit.add_argument("--link", help="link function for --family (default: the family's canonical link)")
    fit.add_argument("--nagq", type=int, default=1, help="quadrature nodes for a GLMM (default 1: Laplace)")
    fit.add_argument("--json", action="store_true", help="machine-readable output")
    sub.add_parser("datasets", help="list the bundled datasets")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "datasets":
        from .. import datasets

        for name in datasets.list():
            print(f"{name:12s} {datasets.describe(name)['description']}")
        return 0
    from ..api import glmer, lmer
    from ..design import DesignError
    from ..formula import FormulaSyntaxError

    df, name = _read_data(args.data, args.factor)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if args.family:
                m = glmer(args.formula, df, family=args.family, link=args.link, nagq=args.nagq,
                          weights=args.weights, data_name=name)
            else:
                m = lmer(args.formula, df, reml=not args.ml, weights=args.weights, data_name=name)
        except (DesignError, FormulaSyntaxError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    messages = [str(w.message) for w in caught]
    if args.json:
        out = m.to_dict()
        out["ranef"] = m.ranef().to_dict(orient="records")
        out["warnings"] = messages
        print(json.dumps(out, indent=1, default=float))
    else:
        print(m.summary())
        for msg in messages:
            print(f"warning: {msg}", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
