"""Compact, styled HTML for a model summary (what notebooks show for a fit or ``fit.summary()``).

Self-contained: one ``<div class="mfx-summary">`` with its own ``<style>`` scoped to that class, no
scripts and no external assets; every piece of text from the model (formula, names, levels,
notes) is HTML-escaped.  Layout, top to bottom: the model line (title, formula, data), the fit
statistics, the random-effects table in lme4's layout (``Groups, Name, Variance, Std.Dev., Corr``,
the correlations of a term in separate columns under one ``Corr`` heading), the numbers of
observations and groups, the fixed-effects table (estimate, SE, df where defined, t or z
statistic, p) and the notes (singular fit, dropped rows, convergence).  The scaled residuals and
the correlation of the fixed effects sit in a closed ``<details>`` element.
"""
from __future__ import annotations

import html

import numpy as np
import pandas as pd

__all__ = ["summary_html", "CSS"]

CSS = """
.mfx-summary{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;font-size:12px;line-height:1.35;
  color:#222;max-width:820px}
.mfx-summary p{margin:2px 0 6px 0}
.mfx-summary .mfx-title{font-weight:600;margin:0 0 2px 0}
.mfx-summary .mfx-model{margin:0 0 6px 0;color:#444}
.mfx-summary code{font-family:Menlo,Consolas,monospace;font-size:11.5px;background:#f4f4f4;padding:0 3px;
  border-radius:2px}
.mfx-summary table{font-size:12px;border-collapse:collapse;margin:2px 0 8px 0;font-variant-numeric:tabular-nums}
.mfx-summary caption{text-align:left;font-weight:600;padding:4px 0 2px 0;color:#333;caption-side:top}
.mfx-summary th,.mfx-summary td{padding:1px 9px;border:none;text-align:right;white-space:nowrap}
.mfx-summary thead th{border-bottom:1px solid #888;font-weight:600}
.mfx-summary thead tr:first-child th{border-top:1px solid #888}
.mfx-summary tbody tr:last-child td,.mfx-summary tbody tr:last-child th{border-bottom:1px solid #888}
.mfx-summary th.mfx-l,.mfx-summary td.mfx-l{text-align:left}
.mfx-summary tr.mfx-grp td{border-top:1px solid #ddd}
.mfx-summary table.mfx-stats tr td{padding:1px 10px 1px 0;border:none}
.mfx-summary table.mfx-stats tr th{padding:1px 4px 1px 0;border:none;font-weight:normal;color:#555;text-align:left}
.mfx-summary .mfx-muted{color:#666}
.mfx-summary ul.mfx-notes{margin:2px 0;padding-left:18px;color:#444}
.mfx-summary ul.mfx-notes li.mfx-warn{color:#9a4d00}
.mfx-summary details{margin:2px 0;color:#444}
.mfx-summary summary{cursor:pointer}
""".strip()

_esc = html.escape


def _decimals(values: np.ndarray, digits: int = 4) -> int:
    """Common decimals showing ``digits`` significant digits of the smallest nonzero |value| (max 6)."""
    finite = np.abs(values[np.isfinite(values) & (values != 0)])
    if finite.size == 0:
        return 2
    return int(np.clip(np.max(digits - 1 - np.floor(np.log10(finite))), 0, 6))


def _column(values, digits: int = 4) -> list[str]:
    arr = np.asarray(values, dtype=float)
    dec = _decimals(arr, digits)
    return ["" if not np.isfinite(x) else f"{x:.{dec}f}" for x in arr]


def _pvalue(p: float) -> str:
    if not np.isfinite(p):
        return ""
    if p < 2e-16:
        return "&lt;2e-16"
    return f"{p:.3g}"


def _signif(x: float, digits: int = 4) -> str:
    return "" if not np.isfinite(x) else f"{x:.{digits}g}"


def _table(header: list[str], rows: list[list[str]], caption: str | None = None, left: int = 1,
           row_classes: list[str] | None = None, header_html: str | None = None) -> str:
    """``rows`` are already-escaped cell strings; the first ``left`` columns are left-aligned."""
    cls = lambda i: " class='mfx-l'" if i < left else ""
    out = ["<table>"]
    if caption:
        out.append(f"<caption>{_esc(caption)}</caption>")
    out.append("<thead>" + (header_html or "<tr>" + "".join(f"<th{cls(i)}>{_esc(h)}</th>"
                                                           for i, h in enumerate(header)) + "</tr>") + "</thead>")
    out.append("<tbody>")
    for k, r in enumerate(rows):
        rc = f" class='{row_classes[k]}'" if row_classes and row_classes[k] else ""
        out.append(f"<tr{rc}>" + "".join(f"<td{cls(i)}>{c}</td>" for i, c in enumerate(r)) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _stats(summary) -> str:
    """Fit statistics as one compact key/value row (AIC, BIC, ... or the REML criterion)."""
    cells = []
    if summary.info is not None:
        row = summary.info.iloc[0]
        for name, v in row.items():
            txt = f"{int(v)}" if name == "df.resid" else f"{float(v):.1f}"
            cells.append((str(name), txt))
    elif summary.criterion_line:
        name, _, value = summary.criterion_line.partition(":")
        cells.append((name.strip(), value.strip()))
    if not cells:
        return ""
    return ("<table class='mfx-stats'><tr>" + "".join(f"<th>{_esc(k)}</th><td>{_esc(v)}</td>" for k, v in cells)
            + "</tr></table>")


def _random_effects(vc: pd.DataFrame) -> str:
    """lme4's VarCorr layout; correlations of a term with the earlier terms of its group in
    separate columns under a common ``Corr`` heading."""
    main = vc[vc["var2"] == ""]
    corr_rows = vc[vc["var2"] != ""]
    entries = []                                   # (grp, name, variance, sd, [corr...])
    for _, r in main.iterrows():
        same = corr_rows[corr_rows["grp"] == r["grp"]]
        names = list(main.loc[main["grp"] == r["grp"], "var1"])
        pos = names.index(r["var1"]) if r["var1"] in names else 0
        corrs = []
        for earlier in names[:pos]:
            hit = same[(same["var1"] == earlier) & (same["var2"] == r["var1"])]
            corrs.append(float(hit["sdcor"].iloc[0]) if len(hit) else np.nan)
        entries.append((r["grp"], r["var1"], float(r["vcov"]), float(r["sdcor"]), corrs))
    ncorr = max((len(e[4]) for e in entries), default=0)
    var_txt = _column([e[2] for e in entries])
    sd_txt = _column([e[3] for e in entries])
    rows, classes, last = [], [], None
    for e, v, s in zip(entries, var_txt, sd_txt):
        first = e[0] != last
        corr = [("" if not np.isfinite(c) else f"{c:.2f}") for c in e[4]] + [""] * (ncorr - len(e[4]))
        rows.append([_esc(str(e[0])) if first else "", _esc(str(e[1])), v, s] + corr)
        classes.append("mfx-grp" if first and last is not None else "")
        last = e[0]
    head = "<tr><th class='mfx-l'>Groups</th><th class='mfx-l'>Name</th><th>Variance</th><th>Std.Dev.</th>"
    if ncorr:
        head += f"<th colspan='{ncorr}' style='text-align:center'>Corr</th>"
    head += "</tr>"
    return _table([], rows, caption="Random effects", left=2, row_classes=classes, header_html=head)


def _fixed_effects(coefficients: pd.DataFrame, caption: str = "Fixed effects") -> str:
    """Estimate, SE, df (when present and finite), t or z, p; the summary's R layout relabelled."""
    cols = list(coefficients.columns)
    stat_col = next((c for c in cols if c.endswith("value")), None)
    p_col = next((c for c in cols if c.startswith("Pr(")), None)
    stat_name = stat_col.split()[0] if stat_col else "statistic"
    spec = [("Estimate", "Estimate"), ("SE", "Std. Error")]
    if "df" in cols and np.isfinite(coefficients["df"].to_numpy(dtype=float)).any():
        spec.append(("df", "df"))
    if stat_col:
        spec.append((stat_name, stat_col))
    if p_col:
        spec.append(("p", p_col))
    formatted = {}
    for label, c in spec:
        v = coefficients[c].to_numpy(dtype=float)
        if c == p_col:
            formatted[label] = [_pvalue(x) for x in v]
        elif label == "df":
            formatted[label] = ["" if not np.isfinite(x) else f"{x:.1f}" for x in v]
        elif label == stat_name:
            formatted[label] = ["" if not np.isfinite(x) else f"{x:.2f}" for x in v]
        else:
            formatted[label] = _column(v)
    rows = [[_esc(str(name))] + [formatted[label][i] for label, _ in spec]
            for i, name in enumerate(coefficients.index)]
    header = [""] + [label for label, _ in spec]
    return _table(header, rows, caption=caption, left=1)


def _details(summary) -> str:
    sr = summary.scaled_residuals
    parts = ["<details><summary>Scaled residuals"
             + (" and correlation of fixed effects" if summary.corr_fixef is not None else "") + "</summary>"]
    if len(sr):
        parts.append(_table([str(k) for k in sr.index], [[f"{float(v):.3f}" for v in sr.to_numpy()]], left=0))
    if summary.corr_fixef is not None:
        C = summary.corr_fixef.to_numpy()
        names = [str(n) for n in summary.corr_fixef.index]
        short = [str(c) for c in summary.corr_fixef.columns]
        rows = [[_esc(names[i])] + [f"{C[i, j]:.3f}" if j < i else "" for j in range(len(names) - 1)]
                for i in range(1, len(names))]
        parts.append(_table([""] + short[:-1], rows, left=1))
    parts.append("</details>")
    return "".join(parts)


def _note_class(note: str) -> str:
    low = note.lower()
    return "mfx-warn" if ("singular" in low or "convergence" in low or "deleted" in low) else ""


def summary_html(summary) -> str:
    """HTML for a :class:`mixedfx.results.summary.Summary` (see the module docstring)."""
    title, _, family = summary.title.partition("\n")
    parts = [f"<div class='mfx-summary'><style>{CSS}</style>",
             f"<p class='mfx-title'>{_esc(title.strip())}</p>"]
    model = [f"Formula: <code>{_esc(summary.formula)}</code>"]
    if family.strip():
        model.append(_esc(" ".join(family.split())))
    if summary.data_name:
        model.append(f"Data: {_esc(summary.data_name)}")
    parts.append("<p class='mfx-model'>" + " &middot; ".join(model) + "</p>")
    parts.append(_stats(summary))
    parts.append(_random_effects(summary.varcorr))
    groups = "; ".join(f"{_esc(str(g))} {int(n)}" for g, n in summary.ngroups.items())
    parts.append(f"<p class='mfx-muted'>Number of obs: {int(summary.nobs)}; groups: {groups}</p>")
    parts.append(_fixed_effects(summary.coefficients, summary.fixed_title.rstrip(":")))
    for caption, table in summary.extra_tables:
        parts.append(_fixed_effects(table, caption.rstrip(":")))
    if summary.notes:
        items = "".join(f"<li class='{_note_class(n)}'>{_esc(n)}</li>" if _note_class(n) else f"<li>{_esc(n)}</li>"
                        for n in summary.notes)
        parts.append(f"<ul class='mfx-notes'>{items}</ul>")
    parts.append(_details(summary))
    parts.append("</div>")
    return "\n".join(p for p in parts if p)
