"""The interactive pooling explorer: one self-contained HTML page (inline JavaScript and CSS, no
network, no server) that shows complete, no and partial pooling side by side.

Without a fit the page simulates clustered data from sliders (number of clusters ``J``, mean
cluster size ``n``, between- and within-cluster SDs, seed) and fits ``y ~ 1 + (1 | g)`` by REML in
the browser; the mean squared errors of the three kinds of estimate against the true cluster means
are tabulated.  With a fit (:meth:`explore` of a result) it shows the model's own groups: raw
estimates, BLUPs, conditional SDs and shrinkage factors (a random-slope term as the 2-D view with
the covariance ellipse).

>>> from mixedfx.plots.explorer import explore_html
>>> page = explore_html(J=20, n=5, sigma_u=1.0, sigma_e=4.0, seed=3)
>>> page.startswith("<!DOCTYPE html>")
True
"""
from __future__ import annotations

import html
import json
import math
import numbers
import os
import re
from importlib import resources

__all__ = ["explore", "explore_html", "write_explorer", "ExplorerPage", "add_explore_arguments", "cli_explore",
           "DEFAULTS", "LIMITS"]

#: the page's starting settings when none are given
DEFAULTS = {"J": 12, "n": 8, "sigma_u": 1.0, "sigma_e": 3.0, "seed": 1, "mu": 10.0, "method": "partial"}
#: slider ranges (inclusive)
LIMITS = {"J": (2, 60), "n": (2, 100), "sigma_u": (0.0, 5.0), "sigma_e": (0.1, 10.0), "seed": (0, 2 ** 31 - 1)}
_METHODS = {"complete": "complete", "complete_pooling": "complete", "no": "no", "none": "no", "no_pooling": "no",
            "partial": "partial", "partial_pooling": "partial"}
_SLOTS = re.compile(r"__MFX_(TITLE|PAYLOAD|SCRIPT)__")


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


_FLAGS = {"J": "--clusters", "n": "--size", "sigma_u": "--sigma-u", "sigma_e": "--sigma-e", "seed": "--seed",
          "method": "--method", "mu": "mu"}


def _integer(name: str, value, arg: str) -> int:
    lo, hi = LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise TypeError(f"{arg} must be a whole number between {lo} and {hi}, got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{arg} = {value} is outside the slider's range {lo}..{hi}")
    return int(value)


def _real(name: str, value, arg: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise TypeError(f"{arg} must be a finite number, got {value!r}")
    value = float(value)
    if name in LIMITS:
        lo, hi = LIMITS[name]
        if not lo <= value <= hi:
            raise ValueError(f"{arg} = {value:g} is outside the slider's range {lo:g}..{hi:g}")
    return value


def _settings(J, n, sigma_u, sigma_e, seed, mu, method, cli: bool = False) -> dict:
    s = dict(DEFAULTS)
    given = {"J": J, "n": n, "sigma_u": sigma_u, "sigma_e": sigma_e, "seed": seed, "mu": mu}
    for k, v in given.items():
        if v is None:
            continue
        arg = _FLAGS[k] if cli else f"explore({k}=...)"
        s[k] = _integer(k, v, arg) if k in ("J", "n", "seed") else _real(k, v, arg)
    if method is not None:
        key = str(method).strip().lower().replace(" ", "_").replace("-", "_")
        if key not in _METHODS:
            raise ValueError(f"method={method!r}: choose 'complete', 'no' or 'partial' (pooling)")
        s["method"] = _METHODS[key]
    return s


def _json_for_script(obj) -> str:
    """JSON safe inside ``<script type="application/json">`` (no ``</`` and no ``<!--``)."""
    text = json.dumps(obj, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def explore_html(fit=None, *, J: int | None = None, n: int | None = None, sigma_u: float | None = None,
                 sigma_e: float | None = None, seed: int | None = None, mu: float | None = None,
                 method: str | None = None, group: str | None = None, title: str | None = None,
                 _cli: bool = False) -> str:
    """The explorer page as one self-contained HTML string.

    Parameters
    ----------
    fit : fitted mixed model, optional
        Show this model's groups (raw estimates, BLUPs, conditional SDs, shrinkage factors)
        instead of simulated data; see :func:`mixedfx.plots.explorer_fit.fit_payload`.
    J, n, sigma_u, sigma_e, seed : optional
        Starting slider values of the simulation: number of clusters (2-60), mean cluster size
        (2-100; sizes are ``1 + Poisson`` around it), between-cluster SD (0-5), within-cluster SD
        (0.1-10) and the seed of the page's random numbers (the same seed gives the same data).
    mu : float, optional
        True grand mean of the simulation (default 10).
    method : {"partial", "complete", "no"}, optional
        The pooling shown first (default partial).
    group : str, optional
        With ``fit``: the grouping factor to show (default the first term's).
    title : str, optional
        Page title.
    """
    settings = _settings(J, n, sigma_u, sigma_e, seed, mu, method, cli=_cli)
    if fit is None:
        payload = {"mode": "simulate", "settings": settings}
        title = title or "Partial pooling explorer"
    else:
        sim_args = {"J": J, "n": n, "sigma_u": sigma_u, "sigma_e": sigma_e, "seed": seed, "mu": mu}
        used = [k for k, v in sim_args.items() if v is not None]
        if used:
            raise ValueError(f"explore() of a fitted model shows its own groups; {', '.join(used)} only set up "
                             "the simulation (mfx.explore() without a fit)")
        from .explorer_fit import fit_payload

        payload = fit_payload(fit, group=group)
        payload["settings"] = {"method": settings["method"]}
        title = title or f"Partial pooling in {payload['formula'] or 'the fitted model'}: {payload['group']}"
    script = _asset("explorer.js")
    if "</script" in script.lower():
        raise RuntimeError("explorer.js must not contain '</script'")
    fills = {"TITLE": html.escape(title), "PAYLOAD": _json_for_script(payload), "SCRIPT": script}
    return _SLOTS.sub(lambda m: fills[m.group(1)], _asset("explorer_page.html"))


class ExplorerPage:
    """The explorer page: shown inline by notebooks (an ``<iframe srcdoc>``), ``.save(path)`` writes it.

    Attributes
    ----------
    html : str
        The self-contained page.
    """

    def __init__(self, page: str, height: int = 900):
        self.html = page
        self.height = int(height)

    def save(self, path) -> str:
        """Write the page to ``path`` (UTF-8) and return the path."""
        path = os.fspath(path)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(self.html)
        return path

    def _repr_html_(self) -> str:
        return (f'<iframe srcdoc="{html.escape(self.html, quote=True)}" style="width:100%;height:{self.height}px;'
                f'border:1px solid #ddd" title="mixedfx pooling explorer" sandbox="allow-scripts allow-downloads">'
                "</iframe>")

    def __str__(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return f"<ExplorerPage: {len(self.html):,} characters; save(path) writes it, a notebook displays it>"


def explore(fit=None, **settings) -> ExplorerPage:
    """The explorer as an :class:`ExplorerPage` (displayed by notebooks); arguments as :func:`explore_html`."""
    return ExplorerPage(explore_html(fit, **settings))


def write_explorer(path, fit=None, **settings) -> str:
    """Write the explorer page to ``path`` and return the path; arguments as :func:`explore_html`."""
    return ExplorerPage(explore_html(fit, **settings)).save(path)


# ---------------------------------------------------------------------------------------- command line
def add_explore_arguments(parser) -> None:
    """Add the ``explore`` subcommand's options to an argparse (sub)parser."""
    parser.add_argument("--out", required=True, metavar="FILE", help="HTML file to write (open it in any browser)")
    parser.add_argument("--clusters", "-J", dest="J", type=int, help="number of clusters J, 2-60 (default 12)")
    parser.add_argument("--size", "-n", dest="n", type=int, help="mean cluster size n, 2-100 (default 8)")
    parser.add_argument("--sigma-u", dest="sigma_u", type=float, metavar="SD",
                        help="between-cluster SD, 0-5 (default 1)")
    parser.add_argument("--sigma-e", dest="sigma_e", type=float, metavar="SD",
                        help="within-cluster SD, 0.1-10 (default 3)")
    parser.add_argument("--seed", type=int, help="seed of the page's simulated data (default 1)")
    parser.add_argument("--method", choices=["complete", "no", "partial"], help="pooling shown first (default partial)")
    parser.add_argument("--title", help="page title")


def cli_explore(args, fit=None, explain=None) -> int:
    """Run ``mixedfx explore``: write the page named by ``args.out``; 0 on success, 2 on bad settings.
    ``explain``: rewrites an error message for the caller (the shell names its flags)."""
    import sys

    settings = {k: getattr(args, k, None) for k in ("J", "n", "sigma_u", "sigma_e", "seed", "method", "title")}
    if fit is not None:
        settings = {k: settings[k] for k in ("method", "title")} | {"group": getattr(args, "group", None)}
    try:
        page = explore_html(fit, **settings, _cli=True)
    except (ValueError, TypeError, KeyError) as exc:
        msg = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"error: {msg if explain is None else explain(msg)}", file=sys.stderr)
        return 2
    try:
        ExplorerPage(page).save(args.out)
    except OSError as exc:
        print(f"error: cannot write --out {args.out!r}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: open it in a browser (no server or network needed)")
    return 0
