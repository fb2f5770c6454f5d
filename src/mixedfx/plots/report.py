"""A self-contained HTML report of a fit: summary, variance decomposition, shrinkage, checks, plots."""
from __future__ import annotations

import base64
import html
import io

import numpy as np

from ._mpl import plt

__all__ = ["report"]


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt().close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def report(result, path=None, title: str | None = None) -> str:
    """Write (if ``path``) and return one HTML page with everything embedded (no external files)."""
    from . import caterpillar, diagnostic_panel, shrinkage_plot
    esc = html.escape
    title = title or f"mixedfx fit: {result.formula}"
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto} pre{background:#f6f6f6;"
             "padding:1em;overflow:auto} table{border-collapse:collapse} td,th{padding:2px 8px}</style>",
             f"</head><body><h1>{esc(title)}</h1>"]
    parts.append(f"<h2>Summary</h2><pre id='summary'>{esc(str(result.summary()))}</pre>")
    try:
        icc, r2 = result.icc(), result.r2()
        parts.append("<h2>Variance decomposition</h2><table id='variance'>"
                     f"<tr><th>ICC (adjusted)</th><td>{icc['adjusted']:.4f}</td></tr>"
                     f"<tr><th>ICC (conditional)</th><td>{icc['conditional']:.4f}</td></tr>"
                     f"<tr><th>R2 (marginal)</th><td>{r2['marginal']:.4f}</td></tr>"
                     f"<tr><th>R2 (conditional)</th><td>{r2['conditional']:.4f}</td></tr>"
                     f"<tr><th>method</th><td>{esc(icc['method'])}</td></tr></table>")
    except NotImplementedError as exc:
        parts.append(f"<h2>Variance decomposition</h2><p>{esc(str(exc))}</p>")
    try:
        parts.append("<h2>Shrinkage</h2>" + result.shrinkage().to_html(index=False, float_format=lambda v: f"{v:.4g}",
                                                                       table_id="shrinkage"))
        shrink_fig = True
    except NotImplementedError as exc:
        parts.append(f"<h2>Shrinkage</h2><p>{esc(str(exc))}</p>")
        shrink_fig = False
    if hasattr(result, "check"):
        parts.append(f"<h2>Checks</h2><pre id='checks'>{esc(str(result.check()))}</pre>")
    figures = [("Diagnostic panel", diagnostic_panel(result)),
               ("Conditional modes", np.ravel(caterpillar(result))[0].figure)]
    if shrink_fig:
        figures.append(("Shrinkage", shrinkage_plot(result).figure))
    parts.append("<h2>Figures</h2>")
    for name, fig in figures:
        parts.append(f"<figure><img alt='{esc(name)}' src='data:image/png;base64,{_png(fig)}'>"
                     f"<figcaption>{esc(name)}</figcaption></figure>")
    parts.append("</body></html>")
    page = "\n".join(parts)
    if path is not None:
        with open(path, "w", encoding="utf-8") as f:
            f.write(page)
    return page
