"""lme4-style summary of a fitted model: text (``print(summary(fit))``) and HTML for notebooks."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .html import summary_html

__all__ = ["Summary", "format_table"]


def _decimals(values: np.ndarray, digits: int = 5) -> int:
    """Decimals so that every value shows ``digits`` significant digits (R's ``format`` rule)."""
    finite = np.abs(values[np.isfinite(values) & (values != 0)])
    if finite.size == 0:
        return 3
    return int(np.clip(np.max(digits - 1 - np.floor(np.log10(finite))), 0, 7))


def format_table(df: pd.DataFrame, digits: int = 5) -> str:
    """Right-aligned text table, each numeric column with a common number of decimals."""
    cols = {}
    for c in df.columns:
        v = df[c]
        if str(c).startswith("Pr("):
            cols[c] = ["<2e-16" if x < 2e-16 else f"{x:.3g}" for x in v.to_numpy(dtype=float)]
        elif pd.api.types.is_numeric_dtype(v):
            arr = v.to_numpy(dtype=float)
            dec = _decimals(arr, digits)
            cols[c] = ["" if not np.isfinite(x) else f"{x:.{dec}f}" for x in arr]
        else:
            cols[c] = [str(x) for x in v]
    index = [str(i) for i in df.index]
    iw = max([len(s) for s in index] + [0])
    widths = {c: max(len(str(c)), *(len(s) for s in cols[c])) for c in df.columns}
    lines = [" " * iw + " " + " ".join(str(c).rjust(widths[c]) for c in df.columns)]
    for r, name in enumerate(index):
        lines.append(name.ljust(iw) + " " + " ".join(cols[c][r].rjust(widths[c]) for c in df.columns))
    return "\n".join(lines)


def _signif(x: float, digits: int = 5) -> str:
    if not np.isfinite(x):
        return "NA"
    return f"{x:.{digits}g}"


@dataclass(frozen=True)
class Summary:
    """What ``summary(fit)`` shows; ``str()`` gives lme4's text layout, notebooks the HTML."""
    title: str
    formula: str
    data_name: str | None
    criterion_line: str
    info: pd.DataFrame | None           # ML: AIC BIC logLik deviance df.resid
    scaled_residuals: pd.Series
    varcorr: pd.DataFrame
    nobs: int
    ngroups: dict
    coefficients: pd.DataFrame
    corr_fixef: pd.DataFrame | None
    notes: tuple[str, ...]
    #: the heading of the coefficient table ("Conditional model:" for glmmTMB-style models)
    fixed_title: str = "Fixed effects:"
    #: further coefficient tables after it: ``(heading, table)`` (zero-inflation, dispersion)
    extra_tables: tuple = ()

    def _random_effects_lines(self) -> list[str]:
        rows = []
        vc = self.varcorr
        last_grp = None
        for _, r in vc.iterrows():
            if r["var2"]:
                continue
            grp = r["grp"]
            corrs = vc[(vc["grp"] == grp) & (vc["var2"] != "") & (vc["var2"] == r["var1"])]
            corr_txt = " ".join(f"{c:5.2f}" for c in corrs["sdcor"])
            rows.append(("" if grp == last_grp else grp, r["var1"], _signif(r["vcov"], 5),
                         _signif(r["sdcor"], 5), corr_txt))
            last_grp = grp
        header = ("Groups", "Name", "Variance", "Std.Dev.", "Corr")
        has_corr = any(r[4] for r in rows)
        ncol = 5 if has_corr else 4
        widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(ncol)]
        fmt = lambda r: " " + " ".join(r[i].ljust(widths[i]) if i < 2 else r[i].rjust(widths[i])
                                       for i in range(ncol))
        return [fmt(header).rstrip()] + [fmt(r).rstrip() for r in rows]

    def __str__(self) -> str:
        out = [self.title, f"Formula: {self.formula}"]
        if self.data_name:
            out.append(f"   Data: {self.data_name}")
        out.append("")
        if self.info is not None:
            out.append(format_table(self.info, digits=5))
            out.append("")
        else:
            out.append(self.criterion_line)
            out.append("")
        if len(self.scaled_residuals):
            out.append("Scaled residuals: ")
            sr = pd.DataFrame([self.scaled_residuals.to_numpy()], columns=self.scaled_residuals.index, index=[""])
            out.append(" ".join(f"{c:>8s}" for c in sr.columns))
            out.append(" ".join(f"{v:8.4f}" for v in sr.iloc[0]))
            out.append("")
        out.append("Random effects:")
        out.extend(self._random_effects_lines())
        groups = "; ".join(f"{g}, {n}" for g, n in self.ngroups.items())
        out.append(f"Number of obs: {self.nobs}, groups:  {groups}")
        out.append("")
        out.append(self.fixed_title)
        out.append(format_table(self.coefficients, digits=5))
        for heading, table in self.extra_tables:
            out.append("")
            out.append(heading)
            out.append(format_table(table, digits=5))
        if self.corr_fixef is not None:
            out.append("")
            out.append("Correlation of Fixed Effects:")
            C = self.corr_fixef.to_numpy()
            names = list(self.corr_fixef.index)
            cells = [[f"{C[i, j]:.3f}" if j < i else "" for j in range(len(names) - 1)]
                     for i in range(1, len(names))]
            txt = pd.DataFrame(cells, index=names[1:], columns=list(self.corr_fixef.columns)[:-1])
            out.append(format_table(txt))
        if self.notes:
            out.append("")
            out.extend(self.notes)
        return "\n".join(out)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        """Compact styled HTML (see :mod:`mixedfx.results.html`)."""
        return summary_html(self)
