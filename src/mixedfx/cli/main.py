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


def _read_file(path: str):
    """A CSV or Parquet file as a DataFrame, or SystemExit with a one-line reason."""
    import pandas as pd

    if os.path.isdir(path):
        raise SystemExit(f"error: --data {path!r} is a directory; give a CSV or Parquet file")
    parquet = path.lower().endswith((".parquet", ".pq"))
    try:
        if os.path.getsize(path) == 0:
            raise SystemExit(f"error: --data {path!r} is an empty file")
        if not parquet:
            with open(path, "rb") as fh:
                head = fh.read(4096)
            if head.startswith(b"PAR1"):
                parquet = True
            elif b"\0" in head:
                raise SystemExit(f"error: --data {path!r} looks like a binary file, not a CSV file "
                                 "(Parquet files are read when their name ends in .parquet)")
        df = pd.read_parquet(path) if parquet else pd.read_csv(path)
    except SystemExit:
        raise
    except UnicodeDecodeError as exc:
        raise SystemExit(f"error: --data {path!r} is not a text CSV file ({exc.reason} at byte {exc.start})") from None
    except pd.errors.EmptyDataError:
        raise SystemExit(f"error: --data {path!r} has no columns to read") from None
    except Exception as exc:     # parser, permission and Parquet errors: one line, not a traceback
        kind = "Parquet" if parquet else "CSV"
        raise SystemExit(f"error: could not read --data {path!r} as {kind}: {exc}") from None
    if df.shape[1] == 0 or len(df) == 0:
        raise SystemExit(f"error: --data {path!r} has {len(df)} row(s) and {df.shape[1]} column(s); nothing to fit")
    return df


def _read_data(source: str, factors: list[str]):
    import pandas as pd

    from .. import datasets

    if os.path.exists(source):
        df = _read_file(source)
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
    try:
        return _main(argv)
    except BrokenPipeError:
        # the reader (e.g. `| head`) went away: stop quietly, as Unix tools do
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return 141


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "datasets":
        from .. import datasets

        for name in datasets.list():
            print(f"{name:12s} {datasets.describe(name)['description']}")
        return 0
    from ..api import glmer, lmer

    df, name = _read_data(args.data, args.factor)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if args.family:
                m = glmer(args.formula, df, family=args.family, link=args.link, nagq=args.nagq,
                          weights=args.weights, data_name=name)
            else:
                m = lmer(args.formula, df, reml=not args.ml, weights=args.weights, data_name=name)
        except (ValueError, FloatingPointError) as exc:
            # DesignError, FormulaSyntaxError and ResponseError are ValueErrors with a message for users
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
