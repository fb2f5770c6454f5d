"""The results of :func:`mixedfx.inference.emmeans.emmeans` and of their contrasts (emmeans' summaries).

An :class:`EMMeans` holds linear functions ``L`` of the fixed effects (one row per mean or
contrast), their estimates ``L beta``, covariance ``L V L'`` and df.  On the response scale
(``type="response"``, a GLMM's non-identity link ``g``) a mean is shown as ``g^{-1}(eta)`` with
the delta-method SE ``|d g^{-1}/d eta| SE(eta)`` and the interval ``g^{-1}`` of the link-scale
interval; a contrast on the log or logit scale is shown as a ratio (``exp``: ``"ratio"`` or
``"odds.ratio"``, labels ``"A / B"``) with tests on the link scale, as emmeans.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import pandas as pd

from .contrasts import adjust_pvalues, check_adjust, contrast_matrix, critical_values

__all__ = ["EMMeans", "EMMSummary", "ModelInfo"]

_PARENS = re.compile(r"-|\+|/|\*")


@dataclass(frozen=True, eq=False)
class ModelInfo:
    """What the means need from the model: beta, its covariance, a df function of a row ``L``."""
    beta: np.ndarray
    V: np.ndarray
    df: Callable
    df_method: str | None          # "satterthwaite", "kenward-roger", "asymptotic" (LMMs), else None
    link: object | None            # the GLMM's Link (None: identity)
    tran: str                      # the link's name
    inv_label: str                 # "prob", "rate", "response" or "emmean"
    init_mesg: tuple = ()          # the means' first messages (GEE: "Covariance estimate used: vbeta")


@dataclass(frozen=True, eq=False)
class _Tran:
    label: str                     # as in "Results are given on the <label> (not the response) scale."
    inv_label: str
    inverse: Callable
    mu_eta: Callable
    ratio: bool = False


def _exp_tran(label: str, inv_label: str) -> _Tran:
    return _Tran(label, inv_label, np.exp, np.exp, True)


@dataclass(frozen=True, eq=False)
class EMMSummary:
    """A summary table (emmeans' column names) with the messages emmeans prints under it."""
    table: pd.DataFrame
    messages: tuple[str, ...]
    notes: tuple[str, ...] = ()
    by: tuple[str, ...] = ()
    n_labels: int = 1              # the first columns label the rows (printed as labels)

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def __str__(self) -> str:
        return _format(self)

    def __repr__(self) -> str:
        return _format(self)

    def _repr_html_(self) -> str:
        return "<pre>" + _format(self).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") + "</pre>"


@dataclass(frozen=True, eq=False)
class EMMeans:
    """Estimated marginal means, or contrasts of them (frozen).

    Attributes
    ----------
    table : the default summary (means: estimates with confidence intervals; contrasts:
        estimates with tests), with emmeans' column names.
    linfct : the linear functions of the fixed effects (one row per mean or contrast).
    """
    info: ModelInfo = field(repr=False)
    linfct: np.ndarray = field(repr=False)
    offset: np.ndarray = field(repr=False)
    labels: pd.DataFrame = field(repr=False)
    pri: tuple[str, ...] = ()
    by: tuple[str, ...] = ()
    avgd_over: tuple[str, ...] = ()
    estimable: np.ndarray = field(default=None, repr=False)
    kind: str = "emmeans"
    est_type: str = "prediction"
    fam_size: int = 0
    adjust: str = "none"
    type: str = "link"
    level: float = 0.95
    tran: _Tran | None = field(default=None, repr=False)
    init_mesg: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    enhance: tuple[str, ...] = ()
    estimate: np.ndarray = field(default=None, repr=False)
    se: np.ndarray = field(default=None, repr=False)
    df: np.ndarray = field(default=None, repr=False)

    # ------------------------------------------------------------- construction
    @classmethod
    def from_linear(cls, info: ModelInfo, K, koff, labels, pri, by, avgd, estimable, type="link", level=0.95,
                    notes=(), enhance=(), **kw) -> "EMMeans":
        K = np.asarray(K, float)
        est = K @ info.beta + np.asarray(koff, float)
        var = np.einsum("ij,jk,ik->i", K, info.V, K)
        se = np.sqrt(np.maximum(var, 0.0))
        df = np.array([float(info.df(K[i])) if estimable[i] else np.nan for i in range(len(K))])
        est = np.where(estimable, est, np.nan)
        se = np.where(estimable, se, np.nan)
        tran = None
        if info.link is not None:
            tran = _Tran(info.tran, info.inv_label, info.link.inverse, info.link.mu_eta)
        kw.setdefault("fam_size", len(K))
        return cls(info, K, np.asarray(koff, float), labels.reset_index(drop=True), tuple(pri), tuple(by),
                   tuple(avgd), np.asarray(estimable, bool), type=type, level=level, tran=tran, notes=tuple(notes),
                   enhance=tuple(enhance), estimate=est, se=se, df=df, **kw)

    # ------------------------------------------------------------- groups
    def _groups(self, by=None) -> list[np.ndarray]:
        by = list(self.by if by is None else ([by] if isinstance(by, str) else by))
        if not by:
            return [np.arange(len(self.linfct))]
        missing = [b for b in by if b not in self.labels.columns]
        if missing:
            raise ValueError(f"by={missing[0]!r} is not a variable of these results; they have "
                             f"{', '.join(self.labels.columns)}")
        keys = self.labels[by].astype(str).agg("\x00".join, axis=1)
        order = list(dict.fromkeys(keys))
        return [np.flatnonzero((keys == k).to_numpy()) for k in order]

    # ------------------------------------------------------------- contrasts
    def contrast(self, method="pairwise", by=None, adjust=None, ref=1, name: str = "contrast") -> "EMMeans":
        """Contrasts of the means within each ``by`` group (R's ``contrast``).

        ``method``: ``"pairwise"``, ``"revpairwise"``, ``"trt.vs.ctrl"`` (``ref``: the control level,
        or its 1-based position), ``"poly"``, or a dict ``{name: coefficients}`` over the means of a
        group.  ``adjust``: the default adjustment of the tests (emmeans': Tukey for pairwise,
        ``"dunnettx"`` for trt.vs.ctrl, none otherwise).
        """
        by = list(self.by if by is None else ([by] if isinstance(by, str) else by))
        groups = self._groups(by)
        sizes = {len(g) for g in groups}
        if len(sizes) > 1:
            raise ValueError("the by groups have different numbers of means; contrasts need groups of equal size")
        keep = [c for c in self.labels.columns if c not in by]
        lab = self.labels[keep].copy()
        for c in keep:
            lab[c] = [f"{c}{_label(v)}" if c in self.enhance else _label(v) for v in lab[c]]
        levs = lab.astype(str).agg(" ".join, axis=1).tolist() if keep else [str(i + 1) for i in range(len(lab))]
        raw = [levs[i] for i in groups[0]]
        # emmeans' option parens: a level with - + / * (e.g. a negative covariate value) in parentheses
        first = [f"({x})" if _PARENS.search(x) else x for x in raw]
        if isinstance(ref, str) and ref not in first and ref in raw:
            ref = first[raw.index(ref)]
        C, names, meta = contrast_matrix(method, first, ref)
        blocks, offs, est_ok, rows_lab = [], [], [], []
        for g in groups:
            blocks.append(C @ self.linfct[g])
            offs.append(C @ self.offset[g])
            touched = np.abs(C[:, ~self.estimable[g]]).sum(axis=1) > 0
            est_ok.append(~touched)
            for nm in names:
                rows_lab.append((nm, *[self.labels[b].iloc[g[0]] for b in by]))
        K = np.vstack(blocks) if blocks else np.zeros((0, self.linfct.shape[1]))
        newlab = pd.DataFrame(rows_lab, columns=[name, *by])
        newlab[name] = pd.Categorical(newlab[name], categories=list(dict.fromkeys(names)))
        for b in by:
            src = self.labels[b]
            if isinstance(src.dtype, pd.CategoricalDtype):
                newlab[b] = pd.Categorical(newlab[b], categories=src.cat.categories)
        sums = C.sum(axis=1)
        if meta["type"] == "pairs":
            est_type = "pairs"
        else:
            est_type = "contrast" if np.all(np.abs(sums) < 1e-3) else "prediction"
        true_con = bool(np.all(np.abs(sums / (1e-6 + np.abs(C).max(axis=1))) < 1e-6))
        init, tran = [], None
        if self.tran is not None:
            if true_con and self.tran.label in ("logit", "log", "log odds ratio"):
                tran = (_exp_tran("log odds ratio", "odds.ratio") if self.tran.label in ("logit", "log odds ratio")
                        else _exp_tran("log", "ratio"))
            else:
                init.append(f"Note: contrasts are still on the {self.tran.label} scale")
        adj = check_adjust(adjust) if adjust is not None else meta["adjust"]
        fam = meta["fam_size"] if meta["fam_size"] is not None else len(groups[0])
        new = EMMeans.from_linear(self.info, K, np.concatenate(offs) if offs else np.zeros(0), newlab, [name], by,
                                  self.avgd_over, np.concatenate(est_ok) if est_ok else np.zeros(0, bool),
                                  type=self.type, level=self.level, notes=self.notes, kind="contrast",
                                  est_type=est_type, fam_size=fam, adjust=adj, init_mesg=tuple(init))
        return replace(new, tran=tran)

    def pairs(self, adjust=None, reverse: bool = False, by=None) -> "EMMeans":
        """Pairwise differences ``"A - B"`` within each ``by`` group (Tukey-adjusted by default)."""
        return self.contrast("revpairwise" if reverse else "pairwise", by=by, adjust=adjust)

    # ------------------------------------------------------------- summaries
    def summary(self, infer=None, level: float | None = None, adjust=None, type: str | None = None,
                by=None) -> EMMSummary:
        """emmeans' summary: ``infer=(intervals, tests)``; defaults (True, False) for means,
        (False, True) for contrasts."""
        if infer is None:
            infer = (True, False) if self.kind == "emmeans" else (False, True)
        elif isinstance(infer, bool):
            infer = (infer, infer)
        level = self.level if level is None else float(level)
        if not 0 < level < 1:
            raise ValueError("level must be between 0 and 1")
        adjust = self.adjust if adjust is None else check_adjust(adjust)
        type = self.type if type is None else str(type).lower()
        if type not in ("link", "response"):
            raise ValueError(f"type={type!r}: use 'link' or 'response'")
        by = list(self.by if by is None else ([by] if isinstance(by, str) else by))
        groups = self._groups(by)
        est, se, df = self.estimate.copy(), self.se.copy(), self.df.copy()
        inv = type == "response" and self.tran is not None
        zflag = bool(np.all(np.isnan(df) | np.isinf(df)))
        mesg = list(self.init_mesg)
        notes = list(self.notes)
        if self.info.df_method is not None:
            mesg.append(f"Degrees-of-freedom method: {self.info.df_method}")
        if not inv and self.tran is not None:
            mesg.append(f"Results are given on the {self.tran.label} (not the response) scale.")
        out = self.labels.copy()
        if inv and self.tran.ratio:
            c = self.pri[0]
            cats = [str(x).replace(" - ", " / ") for x in out[c].cat.categories]
            out[c] = out[c].cat.rename_categories(cats)
        est_name = (self.tran.inv_label if inv else ("emmean" if self.kind == "emmeans" else "estimate"))
        out[est_name] = est
        out["SE"] = se
        out["df"] = df
        et = self.est_type
        if infer[0]:
            cv, cmsg, _, cn = critical_values(level, df, adjust, groups, self.fam_size, et)
            notes += cn
            lo, hi = est - cv * se, est + cv * se
            cnm = ("asymp.LCL", "asymp.UCL") if zflag else ("lower.CL", "upper.CL")
            mesg.append(f"Confidence level used: {level:g}")
            if cmsg:
                mesg.append(cmsg)
            if inv:
                lo, hi = self.tran.inverse(lo), self.tran.inverse(hi)
                lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
                mesg.append(f"Intervals are back-transformed from the {self.tran.label} scale")
            out[cnm[0]], out[cnm[1]] = lo, hi
        if infer[1]:
            null = 0.0
            if inv:
                out["null"] = float(self.tran.inverse(np.array([0.0]))[0])
            t = (est - null) / se
            out["z.ratio" if zflag else "t.ratio"] = t
            ranks = [int(np.linalg.matrix_rank(self.linfct[g])) for g in groups] if adjust == "scheffe" else None
            p, pmsg, _, pn = adjust_pvalues(t, df, adjust, groups, self.fam_size, et, ranks)
            notes += [n for n in pn if n not in notes]
            out["p.value"] = p
            if pmsg:
                mesg.append(pmsg)
            if inv:
                mesg.append(f"Tests are performed on the {self.tran.label} scale")
        if inv:
            out["SE"] = np.abs(self.tran.mu_eta(est)) * se
            out[est_name] = self.tran.inverse(est)
        if self.avgd_over:
            mesg.insert(0, f"Results are averaged over the levels of: {', '.join(self.avgd_over)}")
        if not self.estimable.all():
            mesg.append("Non-estimable: " + str(int((~self.estimable).sum())) + " row(s) are not estimable from "
                        "the data (rank-deficient model) and are NaN")
        return EMMSummary(out, tuple(mesg), tuple(dict.fromkeys(notes)), tuple(by), self.labels.shape[1])

    def confint(self, level: float | None = None, adjust=None, type: str | None = None, by=None) -> EMMSummary:
        """Confidence intervals (``adjust``: emmeans' default for this object; contrasts: its tests')."""
        return self.summary(infer=(True, False), level=level, adjust=adjust, type=type, by=by)

    def test(self, adjust=None, type: str | None = None, by=None) -> EMMSummary:
        """Tests of each estimate against 0 (the link scale's 0 on the response scale)."""
        return self.summary(infer=(False, True), adjust=adjust, type=type, by=by)

    @property
    def table(self) -> pd.DataFrame:
        return self.summary().table

    def to_frame(self) -> pd.DataFrame:
        return self.summary().table.copy()

    def vcov(self) -> np.ndarray:
        """``L V L'`` of the estimates on the link scale."""
        return self.linfct @ self.info.V @ self.linfct.T

    def __repr__(self) -> str:
        return _format(self.summary())

    def _repr_html_(self) -> str:
        return self.summary()._repr_html_()

    def __len__(self) -> int:
        return len(self.linfct)


# ------------------------------------------------------------------ printing
def _label(v) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{v:g}"
    return str(v)


def _fmt_col(name: str, x: pd.Series, is_label: bool = False) -> list[str]:
    if is_label or not pd.api.types.is_numeric_dtype(x) or isinstance(x.dtype, pd.CategoricalDtype):
        return [_label(v) for v in x]
    vals = x.to_numpy(float)
    if name == "p.value":
        return ["NaN" if np.isnan(v) else ("<.0001" if v < 1e-4 else f"{v:.4f}") for v in vals]
    if name == "df":
        return ["NaN" if np.isnan(v) else ("Inf" if np.isinf(v) else (f"{v:.0f}" if float(v).is_integer()
                                                                        else f"{v:.2f}")) for v in vals]
    if name in ("t.ratio", "z.ratio"):
        return ["NaN" if np.isnan(v) else f"{v:.3f}" for v in vals]
    fin = vals[np.isfinite(vals)]
    scale = np.max(np.abs(fin)) if fin.size else 1.0
    digits = max(0, 4 - int(math.floor(math.log10(scale))) - 1) if scale > 0 else 4
    return ["nonEst" if np.isnan(v) else f"{v:.{min(digits, 6)}f}" for v in vals]


def _block(df: pd.DataFrame, n_labels: int) -> list[str]:
    cols = list(df.columns)
    left = set(cols[:n_labels])
    cells = {c: _fmt_col(c, df[c], c in left) for c in cols}
    lines = []
    widths = {c: max([len(c)] + [len(s) for s in cells[c]]) for c in cols}
    lines.append(" " + " ".join(c.ljust(widths[c]) if c in left else c.rjust(widths[c]) for c in cols))
    for i in range(len(df)):
        lines.append(" " + " ".join(cells[c][i].ljust(widths[c]) if c in left else cells[c][i].rjust(widths[c])
                                    for c in cols))
    return lines


def _format(s: EMMSummary) -> str:
    lines = list(s.notes)
    tab = s.table
    if s.by:
        keys = tab[list(s.by)].astype(str).agg(", ".join, axis=1)
        for k in dict.fromkeys(keys):
            sub = tab.loc[(keys == k).to_numpy()].drop(columns=list(s.by))
            head = ", ".join(f"{b} = {_label(v)}" for b, v in zip(s.by, tab.loc[(keys == k).to_numpy(), list(s.by)]
                                                                        .iloc[0]))
            lines.append(f"{head}:")
            lines += _block(sub, s.n_labels - len(s.by))
            lines.append("")
    else:
        lines += _block(tab, s.n_labels)
        lines.append("")
    lines += list(s.messages)
    return "\n".join(lines).rstrip() + "\n"
