"""Command line (``python -m mixedfx`` or ``mixedfx``):

* ``fit FORMULA --data D [--ml] [--family F] [--weights W] [--offset O] [--ddf DDF] [--json] [--save OUT.json]``
* ``predict --model SAVED.json --data NEW [--out PRED.csv] [--type link|response] [--re-form "~0"]
  [--allow-new-levels] [--interval confidence|prediction] [--level 0.95] [--se-fit]``
* ``anova FORMULA0 FORMULA1 [...] --data D [--family F] [--weights W] [--offset O]``
* ``datasets``
* ``explore --out FILE [--clusters J] [--size N] [--sigma-u SD] [--sigma-e SD] [--seed K] [--method M]``
* ``explore FORMULA --data D --out FILE [--group G] [--family F] [--method M]``: a fitted model's groups

``--data`` takes a bundled dataset name (``python -m mixedfx datasets`` lists them)
or a path to a CSV or Parquet file.  A reader that goes away (``| head``) ends the command
quietly, without a traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import re
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
    _model_options(fit)
    fit.add_argument("--ml", action="store_true", help="maximum likelihood instead of REML")
    fit.add_argument("--weights", help="column of prior weights")
    fit.add_argument("--nagq", type=int, default=1, help="quadrature nodes for a GLMM (default 1: Laplace)")
    fit.add_argument("--json", action="store_true", help="machine-readable output")
    fit.add_argument("--offset", help="column holding a known offset (added to the linear predictor)")
    fit.add_argument("--ddf", default="satterthwaite",
                     help="denominator df of the LMM t tests: satterthwaite (default), kenward-roger, residual, none")
    fit.add_argument("--save", metavar="PATH", help="also write the fit as JSON (read back by `predict --model`)")
    pred = sub.add_parser("predict", help="predict new data from a fit saved with `fit --save`")
    pred.add_argument("--model", required=True, help="JSON file written by `fit --save` (or result.save())")
    pred.add_argument("--data", required=True, help="CSV/Parquet file (or bundled dataset) with the new rows")
    pred.add_argument("--out", help="CSV file to write (default: standard output)")
    pred.add_argument("--type", default="response", choices=["link", "response"],
                      help="GLMM scale (default: response; LMMs ignore it)")
    pred.add_argument("--re-form", dest="re_form", default=None,
                      help="random effects to include: default all, '~0' for none")
    pred.add_argument("--allow-new-levels", action="store_true",
                      help="predict unseen groups with random effects of zero")
    pred.add_argument("--factor", action="append", default=[], metavar="COLUMN",
                      help="treat a numeric column as a factor (repeatable)")
    pred.add_argument("--interval", metavar="{confidence,prediction}",
                      help="add a confidence interval (for the mean) or a prediction interval (for a new "
                           "observation): columns fit, se_fit, lower, upper")
    pred.add_argument("--level", metavar="LEVEL", help="coverage of --interval, in (0, 1) (default 0.95)")
    pred.add_argument("--se-fit", dest="se_fit", action="store_true",
                      help="add standard errors: columns fit, se_fit")
    an = sub.add_parser("anova", help="likelihood-ratio test between nested models on the same data")
    an.add_argument("formulas", nargs="+", metavar="FORMULA", help="two or more lme4 formulas")
    _model_options(an)
    an.add_argument("--weights", help="column of prior weights")
    an.add_argument("--offset", help="column holding a known offset")
    an.add_argument("--json", action="store_true", help="machine-readable output")
    sub.add_parser("datasets", help="list the bundled datasets")
    from ..plots.explorer import add_explore_arguments
    ex = sub.add_parser("explore", help="write the interactive partial-pooling explorer (one self-contained "
                                        "HTML page): simulated data, or with a formula a model fitted to --data")
    ex.add_argument("formula", nargs="?", help="lme4 formula: show this model's groups, fitted to --data "
                                               "(without it the page simulates its own data)")
    add_explore_arguments(ex)
    _model_options(ex, required=False)
    ex.add_argument("--group", help="with a formula: the grouping factor to show (default the first term's)")
    return p


def _model_options(parser, required: bool = True) -> None:
    """The options that name a model's data and family: ``--data``, ``--family``, ``--link``, ``--factor``."""
    parser.add_argument("--data", required=required, help="bundled dataset name or CSV/Parquet path")
    parser.add_argument("--family", help="GLMM family: binomial, poisson, gamma, inverse_gaussian, gaussian, negbin "
                                         "(default: a linear mixed model)")
    parser.add_argument("--link", help="link function for --family (default: the family's canonical link)")
    parser.add_argument("--factor", action="append", default=[], metavar="COLUMN",
                        help="treat a numeric column as a factor (repeatable)")


def main(argv: list[str] | None = None) -> int:
    from ..core import fused
    previous = fused.ENABLED
    if "MIXEDFX_COMPILED_CRITERION" not in os.environ:
        # a command fits a model or two: loading numba for the compiled small-model criterion
        # (~0.2 s, ~100 MB) would cost more than it saves (~2 ms a fit)
        fused.ENABLED = False
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
    finally:
        fused.ENABLED = previous


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "datasets":
        from .. import datasets

        for name in datasets.list():
            print(f"{name:12s} {datasets.describe(name)['description']}")
        return 0
    if args.command == "predict":
        return _predict(args)
    if args.command == "anova":
        return _anova(args)
    if args.command == "explore":
        return _explore(args)
    df, name = _read_data(args.data, args.factor)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            m = _fit_one(args, args.formula, df, name, reml=not args.ml)
            text = None if args.json or args.family else str(m.summary(ddf=args.ddf))
        except (ValueError, FloatingPointError) as exc:
            # DesignError, FormulaSyntaxError and ResponseError are ValueErrors with a message for users
            print(f"error: {exc}", file=sys.stderr)
            return 2
    messages = [str(w.message) for w in caught]
    if args.save:
        try:
            m.save(args.save)
        except OSError as exc:
            print(f"error: cannot write --save {args.save!r}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    if args.json:
        out = m.to_dict()
        out["ranef"] = m.ranef().to_dict(orient="records")
        out["warnings"] = messages
        print(json.dumps(out, indent=1, default=float))
    else:
        print(text if text is not None else m.summary())
        for msg in messages:
            print(f"warning: {msg}", file=sys.stderr)
    return 0


def _explore(args) -> int:
    """``explore``: the simulated page, or with a formula the page of that model fitted to ``--data``."""
    from ..plots.explorer import cli_explore
    if args.formula is None:
        with_fit = [f"--{k}" for k in ("data", "group", "family", "link") if getattr(args, k) is not None]
        if with_fit or args.factor:
            raise SystemExit(f"error: {', '.join(with_fit or ['--factor'])}: options of a fitted model's page; give "
                             "the model's formula too (explore 'y ~ x + (1 | g)' --data D --out F)")
        return cli_explore(args)
    if args.data is None:
        raise SystemExit("error: explore with a formula needs --data (a bundled dataset name or a CSV/Parquet path)")
    sim = [flag for flag, k in (("--clusters", "J"), ("--size", "n"), ("--sigma-u", "sigma_u"),
                                ("--sigma-e", "sigma_e"), ("--seed", "seed")) if getattr(args, k) is not None]
    if sim:
        raise SystemExit(f"error: {', '.join(sim)} set up the simulated page; a fitted model's page shows its "
                         "own groups (drop them, or the formula)")
    df, name = _read_data(args.data, args.factor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # the page shows the fit; `fit` prints its warnings
        try:
            m = _fit_one(args, args.formula, df, name)
        except (ValueError, FloatingPointError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return cli_explore(args, fit=m, explain=_as_flags)


def _fit_one(args, formula: str, df, name: str, reml: bool = True):
    from ..api import glmer, lmer

    # commands without --weights, --offset or --nagq (explore) fit without them
    weights, offset = getattr(args, "weights", None), getattr(args, "offset", None)
    if args.family:
        return glmer(formula, df, family=args.family, link=args.link, nagq=getattr(args, "nagq", 1),
                     weights=weights, offset=offset, data_name=name)
    return lmer(formula, df, reml=reml, weights=weights, offset=offset, data_name=name)


# the library's messages name Python arguments; the command line's user knows the flags
_FLAG_WORDS = (("type='link'", "--type link"), ("type='response'", "--type response"),
               ("re_form='~0'", "--re-form '~0'"), ("allow_new_levels=True", "--allow-new-levels"),
               ("interval='prediction'", "--interval prediction"),
               ("interval='confidence'", "--interval confidence"), ("se_fit=True", "--se-fit"))


_FLAG_PATTERNS = ((re.compile(r"explore\(group='([^']*)'\)"), r"--group \1"),)


def _as_flags(message: str) -> str:
    for python, flag in _FLAG_WORDS:
        message = message.replace(python, flag)
    for pattern, flag in _FLAG_PATTERNS:
        message = pattern.sub(flag, message)
    return message


def _interval_args(args) -> tuple[str | None, float]:
    """``(interval, level)`` from ``--interval`` and ``--level``, or SystemExit with a one-line reason."""
    interval = args.interval
    if interval is not None:
        interval = interval.strip().lower()
        if interval not in ("confidence", "prediction"):
            raise SystemExit(f"error: --interval must be 'confidence' or 'prediction', got {args.interval!r}")
    if args.level is None:
        return interval, 0.95
    if interval is None:
        raise SystemExit("error: --level is the coverage of an interval: add --interval confidence "
                         "or --interval prediction")
    try:
        level = float(args.level)
    except ValueError:
        level = float("nan")
    if not 0 < level < 1:                   # NaN and infinities fail too
        hint = f" (for {level:g}% give {level / 100:g})" if 1 < level < 100 else ""
        raise SystemExit(f"error: --level must be a number between 0 and 1, e.g. 0.95; got {args.level!r}{hint}")
    return interval, level


def _predict(args) -> int:
    import inspect

    from ..results.io import load

    interval, level = _interval_args(args)
    wants_se = interval is not None or args.se_fit
    if not os.path.isfile(args.model):
        raise SystemExit(f"error: --model {args.model!r} is not a file (write one with `mixedfx fit ... --save PATH`)")
    try:
        m = load(args.model)
    except (ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"error: cannot read --model {args.model!r}: {exc}") from None
    flag = "--interval" if interval is not None else "--se-fit"
    if wants_se and "interval" not in inspect.signature(m.predict).parameters:
        raise SystemExit(f"error: {flag} is not available for this model ({type(m).__name__}); "
                         "predict without it")
    df, _ = _read_data(args.data, args.factor)
    kwargs = dict(re_form=args.re_form, allow_new_levels=args.allow_new_levels)
    if getattr(m, "family", None) is not None:
        kwargs["type"] = args.type
    if wants_se:
        kwargs.update(interval=interval, level=level, se_fit=True)
    try:
        pred = m.predict(df, **kwargs)
    except (ValueError, KeyError, NotImplementedError) as exc:
        message = str(exc)
        if wants_se and "a loaded result does not keep" in message:
            # a saved fit has no data, hence no conditional covariance of the groups it was fitted to
            message = (f"{flag} for rows of groups seen in fitting needs the fitted data, which a saved model "
                       f"(--model) does not keep: add --re-form '~0' for population-level intervals, give rows of "
                       f"new groups only (with --allow-new-levels), or refit the model in Python")
        print(f"error: {_as_flags(message)}", file=sys.stderr)
        return 2
    import pandas as pd

    out = pred if wants_se else pd.DataFrame({"prediction": pred}, index=df.index)
    if args.out:
        try:
            out.to_csv(args.out, index_label="row")
        except OSError as exc:
            raise SystemExit(f"error: cannot write --out {args.out!r}: {exc.strerror or exc}") from None
    else:
        out.to_csv(sys.stdout, index_label="row")
    return 0


def _anova(args) -> int:
    from ..inference import anova

    if len(args.formulas) < 2:
        raise SystemExit("error: anova needs two or more formulas")
    df, name = _read_data(args.data, args.factor)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            models = [_fit_one(args, f, df, name, reml=False) for f in args.formulas]
            table = anova(*models, progress=False)
        except (ValueError, FloatingPointError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    messages = [str(w.message) for w in caught]
    if args.json:
        out = {"table": json.loads(table.to_json(orient="index")), "warnings": messages}
        print(json.dumps(out, indent=1))
    else:
        import pandas as pd

        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(table.to_string())
        for msg in messages:
            print(f"warning: {msg}", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
