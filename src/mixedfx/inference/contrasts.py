"""Contrast matrices and multiplicity adjustments for estimated marginal means (as R's emmeans).

Contrast methods (coefficients per level of the means in one ``by`` group, one column per
contrast, emmeans' names and default adjustments):

* ``"pairwise"``: ``a_i - a_j`` for ``i < j`` ("A - B"); Tukey.
* ``"revpairwise"``: ``a_j - a_i`` for ``i < j`` ("B - A"); Tukey.
* ``"trt.vs.ctrl"``: every level minus the reference (``ref``, first by default); emmeans'
  ``"dunnettx"`` (Hsu's approximation to Dunnett's test, below).
* ``"poly"``: orthogonal polynomials over equally spaced levels, scaled to integers as emmeans'
  ``poly.emmc``; no adjustment.
* a dict ``{"name": [coefficients]}``: the user's contrasts; no adjustment.

Adjustments of the two-sided p value of ``t`` on ``df`` (``df = inf``: z), with ``m`` the number
of tests in a ``by`` group and ``k`` the family size (the number of means compared):

* ``"tukey"``: ``P(Q_{k,df} > sqrt(2) |t|)``, the studentized range (R's ``ptukey``; SciPy's
  ``studentized_range``).  Only for one set of pairwise comparisons: any other family gets
  ``"sidak"`` with emmeans' note.
* ``"sidak"``: ``1 - (1 - p)^m``; ``"bonferroni"``: ``min(1, m p)``; ``"holm"``, ``"hochberg"``,
  ``"BH"`` (``"fdr"``), ``"BY"``: R's ``p.adjust`` within each ``by`` group.
* ``"scheffe"``: ``P(F_{r,df} > t^2 / r)``, ``r`` the rank of the contrasts in the group.
* ``"dunnettx"``: ``1 - [w P(Q_{k',df} < sqrt(2)|t|) + (1 - w) P(F_{1,df} < t^2)^m]`` with
  ``k' = (1 + sqrt(1 + 8m))/2`` and ``w = (m - 1)/m`` (emmeans' ``.pdunnx``).
* ``"none"``.

Confidence intervals use the matching critical values (``qtukey(level, k, df)/sqrt(2)``,
``t_{df}`` at ``1 - (1 - level^{1/m})/2`` for Sidak, at ``1 - (1 - level)/(2m)`` for Bonferroni; the
step-wise methods (Holm, BH, ...) have no interval of their own and use Bonferroni's, as
emmeans).  A family of one estimate is never adjusted.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import optimize, stats

__all__ = ["contrast_matrix", "adjust_pvalues", "critical_values", "ADJUSTMENTS", "p_adjust"]

#: adjustments accepted by ``adjust=`` (p values); intervals map the step-wise ones to Bonferroni
ADJUSTMENTS = ("none", "tukey", "sidak", "bonferroni", "holm", "hochberg", "BH", "BY", "fdr", "scheffe",
               "dunnettx")
_P_ADJUST = ("holm", "hochberg", "BH", "BY", "fdr", "bonferroni", "none")


def check_adjust(adjust) -> str:
    """The canonical name of ``adjust`` (case-insensitive), or a ValueError listing the choices."""
    if adjust is None:
        return "none"
    key = str(adjust).strip()
    low = key.lower()
    for name in ADJUSTMENTS:
        if low == name.lower():
            return "BH" if name == "fdr" else name
    if low == "mvt":
        raise ValueError("adjust='mvt' (multivariate t) is not available; use 'tukey' for pairwise comparisons, "
                         "'dunnettx' for comparisons with a control, or 'sidak'/'bonferroni'/'holm'")
    raise ValueError(f"adjust={adjust!r} is not a known adjustment; use one of {', '.join(ADJUSTMENTS)}")


# ------------------------------------------------------------------ contrast methods
def _pairwise(levels: list[str], reverse: bool) -> tuple[np.ndarray, list[str]]:
    k = len(levels)
    cols, names = [], []
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    if reverse:
        pairs = [(j, i) for j in range(1, k) for i in range(j)]
    for a, b in pairs:
        c = np.zeros(k)
        c[a], c[b] = 1.0, -1.0
        cols.append(c)
        names.append(f"{levels[a]} - {levels[b]}")
    return np.array(cols).reshape(len(cols), k), names


def _trt_vs_ctrl(levels: list[str], ref) -> tuple[np.ndarray, list[str]]:
    k = len(levels)
    refs = [ref] if isinstance(ref, (int, np.integer, str)) else list(ref)
    idx = []
    for r in refs:
        if isinstance(r, str):
            if r not in levels:
                raise ValueError(f"trt.vs.ctrl: ref={r!r} is not a level; the levels are {levels}")
            idx.append(levels.index(r))
        else:
            if not 1 <= int(r) <= k:
                raise ValueError(f"trt.vs.ctrl: ref={r} is out of range: give a level or a position 1..{k} "
                                 "(1-based, as emmeans)")
            idx.append(int(r) - 1)
    cname = levels[idx[0]] if len(idx) == 1 else "avg(" + ",".join(levels[i] for i in idx) + ")"
    cols, names = [], []
    for i in range(k):
        if i in idx:
            continue
        c = np.zeros(k)
        c[idx] = -1.0 / len(idx)
        c[i] = 1.0
        cols.append(c)
        names.append(f"{levels[i]} - {cname}")
    return np.array(cols).reshape(len(cols), k), names


def _poly(k: int) -> tuple[np.ndarray, list[str]]:
    """emmeans' ``poly.emmc``: orthogonal polynomials of degree 1..min(6, k-1), rescaled to integers."""
    if k < 2:
        raise ValueError("poly contrasts need at least two levels")
    deg = min(6, k - 1)
    x = np.arange(1, k + 1, dtype=float)
    V = np.vander(x - x.mean(), deg + 1, increasing=True)
    Q, _ = np.linalg.qr(V)
    out = []
    for j in range(1, deg + 1):
        con = Q[:, j] * np.sign(Q[-1, j])           # R's poly(): the highest level positive
        pos = con > 0.01
        con = con / np.min(con[pos])
        z = np.max(np.abs(con - np.round(con)))
        while z > 0.05:
            con = con / z
            z = np.max(np.abs(con - np.round(con)))
        out.append(np.round(con))
    names = ["linear", "quadratic", "cubic", "quartic"] + [f"degree {d}" for d in range(5, 21)]
    return np.array(out), names[:deg]


def contrast_matrix(method, levels: list[str], ref=1) -> tuple[np.ndarray, list[str], dict]:
    """``(C, names, info)``: contrast coefficients (one row per contrast) over ``levels``.

    ``info`` holds emmeans' attributes: ``adjust`` (default adjustment), ``type`` ("pairs" for the
    pairwise families), ``fam_size`` (family size for Tukey) and ``desc``.
    """
    k = len(levels)
    if isinstance(method, dict):
        if not method:
            raise ValueError("contrast(): the dict of contrasts is empty")
        rows, names = [], []
        for name, coefs in method.items():
            c = np.asarray(coefs, dtype=float).ravel()
            if c.size != k:
                raise ValueError(f"contrast {name!r} has {c.size} coefficients but there are {k} means in each "
                                 f"group ({', '.join(levels)})")
            if not np.all(np.isfinite(c)):
                raise ValueError(f"contrast {name!r} has non-finite coefficients")
            rows.append(c)
            names.append(str(name))
        return np.array(rows), names, {"adjust": "none", "type": None, "fam_size": None, "desc": "custom"}
    if not isinstance(method, str):
        raise TypeError("contrast method must be 'pairwise', 'revpairwise', 'trt.vs.ctrl', 'poly' or a dict "
                        f"{{name: coefficients}}, got {type(method).__name__}")
    key = method.lower().replace("_", ".")
    if key in ("pairwise", "revpairwise"):
        C, names = _pairwise(levels, key == "revpairwise")
        return C, names, {"adjust": "tukey", "type": "pairs", "fam_size": k, "desc": "pairwise differences"}
    if key in ("trt.vs.ctrl", "trt.vs.ctrl1", "dunnett"):
        C, names = _trt_vs_ctrl(levels, ref)
        return C, names, {"adjust": "dunnettx", "type": None, "fam_size": None,
                          "desc": "differences from control"}
    if key == "poly":
        C, names = _poly(k)
        return C, names, {"adjust": "none", "type": None, "fam_size": None, "desc": "polynomial contrasts"}
    raise ValueError(f"unknown contrast method {method!r}; use 'pairwise', 'revpairwise', 'trt.vs.ctrl', 'poly' "
                     "or a dict {name: coefficients}")


# ------------------------------------------------------------------ p values
def p_adjust(p: np.ndarray, method: str) -> np.ndarray:
    """R's ``p.adjust`` for one family (NaN entries are left out of the count)."""
    p = np.asarray(p, float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    q = p[ok]
    n = q.size
    if n == 0 or method == "none":
        return p.copy()
    if method == "bonferroni":
        r = np.minimum(1.0, n * q)
    elif method == "holm":
        o = np.argsort(q, kind="stable")
        r = np.empty(n)
        r[o] = np.minimum(1.0, np.maximum.accumulate((n - np.arange(n)) * q[o]))
    elif method in ("hochberg", "BH", "BY"):
        o = np.argsort(q, kind="stable")[::-1]
        i = np.arange(n, 0, -1)
        if method == "hochberg":
            vals = (n - i + 1) * q[o]
        else:
            cq = np.sum(1.0 / np.arange(1, n + 1)) if method == "BY" else 1.0
            vals = cq * n / i * q[o]
        r = np.empty(n)
        r[o] = np.minimum(1.0, np.minimum.accumulate(vals))
    else:
        raise ValueError(f"unknown p-value adjustment {method!r}")
    out[ok] = r
    return out


@lru_cache(maxsize=256)
def _qtukey_cached(level: float, k: float, df: float) -> float:
    return float(stats.studentized_range.ppf(level, k, df))


def qtukey(level: float, k: float, df: float) -> float:
    """R's ``qtukey(level, k, df)`` (SciPy's numerical integration, ~0.2 s a call), memoized on ``df`` to
    7 significant digits: the rows of a family share their df up to the last digits of the
    Satterthwaite derivatives, and a change of 1e-7 in df moves the quantile by ~1e-10."""
    return _qtukey_cached(float(level), float(k), float(f"{df:.7g}") if np.isfinite(df) else float(df))


def _ptukey_upper(q, k, df) -> np.ndarray:
    q = np.asarray(q, float)
    df = np.broadcast_to(np.asarray(df, float), q.shape)
    out = np.full(q.shape, np.nan)
    for i in np.ndindex(q.shape):
        if np.isfinite(q[i]) and df[i] > 0:
            out[i] = float(stats.studentized_range.sf(q[i], k, df[i]))
    return out


def _f_sf(x, d1: float, d2) -> np.ndarray:
    """Upper tail of F(d1, d2); ``d2 = inf`` is chi-square(d1) / d1 (scipy's F gives NaN there)."""
    x, d2 = np.broadcast_arrays(np.asarray(x, float), np.asarray(d2, float))
    inf = np.isinf(d2)
    out = np.empty(x.shape)
    out[inf] = stats.chi2.sf(x[inf] * d1, d1)
    out[~inf] = stats.f.sf(x[~inf], d1, d2[~inf])
    return out


def _f_ppf(q: float, d1: float, d2) -> np.ndarray:
    """Quantile of F(d1, d2), with ``d2 = inf`` as chi-square(d1) / d1."""
    d2 = np.asarray(d2, float)
    return np.where(np.isinf(d2), stats.chi2.ppf(q, d1) / d1, stats.f.ppf(q, d1, np.where(np.isinf(d2), 1.0, d2)))


def _pdunnx(x, m: int, df) -> np.ndarray:
    """emmeans' ``.pdunnx``: the approximate Dunnett distribution function of ``|t|``."""
    x = np.asarray(x, float)
    w = (m - 1) / m
    tuk = 1.0 - _ptukey_upper(math.sqrt(2) * x, (1 + math.sqrt(1 + 8 * m)) / 2, df)
    sid = (1.0 - _f_sf(x ** 2, 1, df)) ** m
    return w * tuk + (1 - w) * sid


def _resolve(adjust: str, n_contr: int, est_type: str, notes: list, what: str = "p") -> str:
    """emmeans' switches: one estimate -> none; Tukey outside one set of pairwise comparisons -> Sidak."""
    if n_contr == 1 and adjust != "scheffe":
        return "none"
    if adjust == "tukey" and est_type != "pairs":
        notes.append('Note: adjust = "tukey" was changed to "sidak"\n'
                     'because "tukey" is only appropriate for one set of pairwise comparisons')
        return "sidak"
    return adjust


def adjust_pvalues(t: np.ndarray, df: np.ndarray, adjust: str, groups: list[np.ndarray], fam_size: int,
                   est_type: str, ranks=None) -> tuple[np.ndarray, str | None, str, list[str]]:
    """Two-sided adjusted p values of the ratios ``t`` on ``df`` (emmeans' ``.adj.p.value``).

    ``groups``: row indices of each ``by`` group (equal sizes); ``fam_size``: the number of means
    compared (Tukey); ``est_type``: ``"pairs"`` for one set of pairwise comparisons.
    Returns ``(p, message or None, adjustment used, notes)``.
    """
    adjust = check_adjust(adjust)
    notes: list[str] = []
    t = np.asarray(t, float)
    df = np.where(np.isnan(np.asarray(df, float)), np.inf, np.asarray(df, float))
    n_contr = len(groups[0]) if groups else len(t)
    adjust = _resolve(adjust, n_contr, est_type, notes)
    p_un = 2 * stats.t.sf(np.abs(t), df)
    p = np.full(t.shape, np.nan)
    for jj, rows in enumerate(groups):
        rows = np.asarray(rows, int)
        if adjust in _P_ADJUST:
            p[rows] = p_adjust(p_un[rows], adjust)
        elif adjust == "sidak":
            p[rows] = 1 - (1 - p_un[rows]) ** len(rows)
        elif adjust == "tukey":
            p[rows] = _ptukey_upper(math.sqrt(2) * np.abs(t[rows]), fam_size, df[rows])
        elif adjust == "scheffe":
            r = ranks[jj]
            p[rows] = _f_sf(t[rows] ** 2 / r, r, df[rows])
        elif adjust == "dunnettx":
            p[rows] = 1 - _pdunnx(np.abs(t[rows]), len(rows), df[rows])
    if adjust == "none" or (adjust == "tukey" and fam_size < 3):
        mesg = None
    elif adjust == "tukey":
        mesg = f"P value adjustment: tukey method for comparing a family of {fam_size} estimates"
    elif adjust == "scheffe":
        mesg = f"P value adjustment: scheffe method with rank {ranks[0] if len(set(ranks)) == 1 else '(varies)'}"
    else:
        mesg = f"P value adjustment: {adjust} method for {n_contr} tests"
    return p, mesg, adjust, notes


# ------------------------------------------------------------------ critical values
def _qdunnx(level: float, m: int, df: float) -> float:
    """Quantile of emmeans' approximate Dunnett distribution (solved to 1e-10; emmeans stops at 5e-4)."""
    if m < 1.005:
        return float(stats.t.ppf(1 - 0.5 * (1 - level), df))
    lo = qtukey(level, (1 + math.sqrt(1 + 8 * m)) / 2, df) / math.sqrt(2)
    hi = float(np.sqrt(_f_ppf(level ** (1 / m), 1, df)))
    if abs(hi - lo) < 1e-12:
        return lo
    a, b = min(lo, hi), max(lo, hi)
    f = lambda x: float(_pdunnx(np.array([x]), m, df)[0]) - level    # noqa: E731
    while f(a) > 0:
        a *= 0.9
    while f(b) < 0:
        b *= 1.1
    return float(optimize.brentq(f, a, b, xtol=1e-12))


def critical_values(level: float, df: np.ndarray, adjust: str, groups: list[np.ndarray], fam_size: int,
                    est_type: str, ranks=None) -> tuple[np.ndarray, str | None, str, list[str]]:
    """Two-sided critical values for intervals at ``level`` (emmeans' ``.adj.critval``).

    Returns ``(cv per row, message or None, adjustment used, notes)``.
    """
    adjust = check_adjust(adjust)
    notes: list[str] = []
    df = np.where(np.isnan(np.asarray(df, float)), np.inf, np.asarray(df, float))
    n_contr = len(groups[0]) if groups else len(df)
    if n_contr == 1 and adjust != "scheffe":
        adjust = "none"
    if adjust in ("holm", "hochberg", "BH", "BY"):
        adjust = "bonferroni"
    adjust = _resolve(adjust, n_contr, est_type, notes, "ci")
    cv = np.full(df.shape, np.nan)
    alpha = 1 - level
    for jj, rows in enumerate(groups):
        rows = np.asarray(rows, int)
        d = df[rows]
        if adjust == "none":
            cv[rows] = stats.t.ppf(1 - alpha / 2, d)
        elif adjust == "sidak":
            cv[rows] = stats.t.ppf(1 - (1 - level ** (1 / n_contr)) / 2, d)
        elif adjust == "bonferroni":
            cv[rows] = stats.t.ppf(1 - alpha / n_contr / 2, d)
        elif adjust == "tukey":
            cv[rows] = [qtukey(level, fam_size, x) / math.sqrt(2) for x in d]
        elif adjust == "scheffe":
            r = ranks[jj]
            cv[rows] = np.sqrt(r * _f_ppf(level, r, d))
        elif adjust == "dunnettx":
            cv[rows] = [_qdunnx(level, len(rows), x) for x in d]
    if adjust == "none" or (adjust == "tukey" and fam_size < 3):
        mesg = None
    elif adjust == "tukey":
        mesg = f"Conf-level adjustment: tukey method for comparing a family of {fam_size} estimates"
    elif adjust == "scheffe":
        mesg = f"Conf-level adjustment: scheffe method with rank {ranks[0] if len(set(ranks)) == 1 else '(varies)'}"
    else:
        mesg = f"Conf-level adjustment: {adjust} method for {n_contr} estimates"
    return cv, mesg, adjust, notes
