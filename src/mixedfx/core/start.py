"""Starting values for theta from cheap moment estimates.

lme4 starts every fit at ``theta = 1`` on the diagonal.  A start nearer the optimum
saves BOBYQA evaluations on large problems: for every term whose first column is an
intercept, the one-way ANOVA estimator on the OLS residuals ``e`` gives

    tau^2 = max((MSB - MSW) / n0, 0),   n0 = (n - sum_g n_g^2 / n) / (l - 1),

and the start is ``theta = sqrt(tau^2 / sigma^2)`` clipped to ``[0.1, 5]`` (so the
start is never on the boundary), with ``sigma^2 = MSW`` of the term with most levels.  With two
or more scalar intercept terms (crossed or nested factors) their moments come from backfitting
all their group means together (:func:`_crossed_moments`): for balanced crossed designs such as
Penicillin that is the REML estimate itself.  A single vector-valued term (random slopes) starts
from per-group least-squares moments (:func:`_random_coefficient_start`).
Other entries keep lme4's start (1 on the diagonal, 0 off it).  The optimum does not
depend on the start for the unimodal profiled deviances of usual LMMs; only the
number of evaluations does.

The estimators read the residuals only through sums over rows (:class:`StartStats`: per-level
counts, sums and centred sums of squares, the count tables between scalar terms, per-level
Gram matrices of a single vector term), so row partitions can each compute theirs and merge them
(:meth:`StartStats.merge`, in any order); :func:`moment_start_from_stats` is the one formula both
the in-memory fit and a fit from partition sums use.  Given the same residuals, the two give the
same start to rounding.  (BOBYQA's path, i.e. its number of evaluations, reacts to perturbations of
the start as small as ``5e-16``: sleepstudy's random slopes take 54 or 72 evaluations to the same
optimum depending on whether the least-squares coefficients come from the rows or from ``X' W X``.)
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import reduce

import numpy as np
import scipy.sparse as sp

from .blocksum import split_summary
from .covariance import ThetaLayout

__all__ = ["moment_start", "moment_start_from_stats", "StartStats", "TermStats", "ols_coefficients", "ols_rows",
           "start_residuals", "tables_in_blocks"]


def _is_intercept(col: np.ndarray) -> bool:
    return col.size > 0 and np.all(col == col[0]) and col[0] != 0


@dataclass(frozen=True)
class TermStats:
    """One term's share of :class:`StartStats` (``l`` levels, ``p`` columns).

    Attributes
    ----------
    p : the term's number of columns.
    count : (l,) rows per level (float).  total : (l,) per-level sums of the residuals ``e``.
    m2 : (l,) per-level centred sums of squares ``sum (e - mean_g)^2`` (merged as Chan et al.'s
        pairwise update: no cancellation).
    first : the first column's value on the rows seen when it is constant and nonzero (an
        intercept), else NaN.
    XtX : (l, p, p) per-level ``Xk' Xk``, ``Xte`` (l, p) per-level ``Xk' e`` and ``ete`` (l,)
        per-level ``e' e``: only for a model with one vector-valued term (else None).
    """

    p: int
    count: np.ndarray
    total: np.ndarray
    m2: np.ndarray
    first: float
    XtX: np.ndarray | None = field(default=None, repr=False)
    Xte: np.ndarray | None = field(default=None, repr=False)
    ete: np.ndarray | None = field(default=None, repr=False)

    @property
    def nlevels(self) -> int:
        return len(self.count)

    @property
    def intercept(self) -> bool:
        """Whether the first column is an intercept (constant and nonzero) on all rows seen."""
        return not np.isnan(self.first)

    @classmethod
    def of(cls, e, codes, Xk, nlev: int, vector: bool) -> "TermStats":
        codes = np.asarray(codes)
        count = np.bincount(codes, minlength=nlev).astype(float)
        total = np.bincount(codes, e, minlength=nlev)
        means = np.divide(total, count, out=np.zeros(nlev), where=count > 0)
        m2 = np.bincount(codes, (e - means[codes]) ** 2, minlength=nlev)
        p = Xk.shape[1]
        first = float(Xk[0, 0]) if p and _is_intercept(Xk[:, 0]) else np.nan
        if not vector:
            return cls(p, count, total, m2, first)
        XtX = np.empty((nlev, p, p))
        for a in range(p):
            for b in range(a, p):
                XtX[:, a, b] = XtX[:, b, a] = np.bincount(codes, Xk[:, a] * Xk[:, b], minlength=nlev)
        Xte = np.stack([np.bincount(codes, Xk[:, a] * e, minlength=nlev) for a in range(p)], axis=1)
        return cls(p, count, total, m2, first, XtX, Xte, np.bincount(codes, e * e, minlength=nlev))

    def merge(self, other: "TermStats") -> "TermStats":
        na, nb = self.count, other.count
        count = na + nb
        both = (na > 0) & (nb > 0)
        extra = np.zeros(len(count))
        d = other.total[both] / nb[both] - self.total[both] / na[both]
        extra[both] = d * d * (na[both] * nb[both] / count[both])
        first = self.first if self.first == other.first else np.nan     # NaN never equals: stays NaN
        vec = {} if self.XtX is None or other.XtX is None else {
            "XtX": self.XtX + other.XtX, "Xte": self.Xte + other.Xte, "ete": self.ete + other.ete}
        return TermStats(self.p, count, self.total + other.total, self.m2 + other.m2 + extra, first, **vec)


@dataclass(frozen=True)
class StartStats:
    """The sums over rows that the moment start reads, mergeable across row partitions.

    Attributes
    ----------
    n : rows (zero weights included: the start is unweighted).  total : ``sum e``.
    sumsq : ``sum e^2``.  terms : per term, its :class:`TermStats`.
    tables : ``{(i, j): (l_i, l_j)}`` sparse for ``i < j`` scalar intercept terms: the number of rows
        at each pair of levels (the backfitting of :func:`_crossed_moments`; CSR from :meth:`of`; from
        :meth:`with_tables_from_blocks`, the transpose of the summed ``Ar0``, a view without a copy).
        Partitions may skip the tables that the summed blocks hold exactly (:func:`tables_in_blocks`),
        and the big ``(0, j)`` tables can be summed in buckets of term-0 levels (:meth:`buckets`,
        :meth:`finish_buckets`).
    """

    n: int
    total: float
    sumsq: float
    terms: tuple
    tables: dict = field(repr=False)

    @classmethod
    def of(cls, e, blocks, skip=()) -> "StartStats | None":
        """Sums over the rows of one partition; None without rows (skipped by :meth:`merge_all`).

        Parameters
        ----------
        e : (m,) residuals from :func:`start_residuals` (the same coefficients in every partition).
        blocks : per term ``(codes (m,), Xk (m, p_k), n_levels)`` with global level codes, in the
            units of the fit (the standardized terms of a :class:`ScaledWorkspace`).
        skip : pairs ``(i, j)`` whose count table is not built (read from the summed blocks instead:
            :func:`tables_in_blocks`, :meth:`with_tables_from_blocks`).
        """
        e = np.asarray(e, float)
        if e.size == 0:
            return None
        vector = len(blocks) == 1 and blocks[0][1].shape[1] >= 2
        terms = tuple(TermStats.of(e, codes, Xk, nl, vector) for codes, Xk, nl in blocks)
        scalar = [k for k, t in enumerate(terms) if t.p == 1 and t.intercept]
        tables = {}
        for a, i in enumerate(scalar):
            for j in scalar[a + 1:]:
                if (i, j) in skip:
                    continue
                ci, cj = blocks[i][0], blocks[j][0]
                tables[(i, j)] = sp.coo_matrix((np.ones(len(ci)), (ci, cj)),
                                               shape=(blocks[i][2], blocks[j][2])).tocsr()
        return cls(len(e), float(np.sum(e)), float(e @ e), terms, tables)

    def merge(self, other: "StartStats") -> "StartStats":
        """The statistics of the union of two disjoint sets of rows."""
        if [(t.p, t.nlevels) for t in self.terms] != [(t.p, t.nlevels) for t in other.terms]:
            raise ValueError("start statistics of different models (terms, columns or levels differ): "
                             "are the level codes global?")
        terms = tuple(a.merge(b) for a, b in zip(self.terms, other.terms))
        keys = self.tables.keys() & other.tables.keys()
        tables = {(i, j): self.tables[(i, j)] + other.tables[(i, j)] for i, j in keys
                  if terms[i].intercept and terms[j].intercept}
        return StartStats(self.n + other.n, self.total + other.total, self.sumsq + other.sumsq, terms, tables)

    @staticmethod
    def merge_all(parts) -> "StartStats":
        """Merge the statistics of partitions (None entries skipped)."""
        parts = [s for s in parts if s is not None]
        if not parts:
            raise ValueError("no rows in any partition: no start statistics")
        return reduce(StartStats.merge, parts)

    def buckets(self: "StartStats | None", edges) -> list:
        """These statistics cut into buckets of term-0 levels (``edges``: level edges, :func:`bucket_edges`)
        for a bucketed sum: the ``(0, j)`` tables go by rows (as CSC pieces of their transposes), the
        rest travels with bucket 0 (:func:`~mixedfx.core.blocksum.split_summary`).  Merge each bucket
        with ``merge_buckets(items, StartStats.merge_all)`` and finish with :meth:`finish_buckets`."""
        if self is None:
            return [None] * (len(edges) - 1)
        big = {key: t.T for key, t in self.tables.items() if key[0] == 0}
        head = replace(self, tables={key: t for key, t in self.tables.items() if key[0] != 0})
        return split_summary(head, big, edges)

    @staticmethod
    def finish_buckets(head: "StartStats", sparse: dict) -> "StartStats":
        """The merged statistics from the merged bucket-0 head and the assembled ``(0, j)`` tables (transposed);
        a table is kept when both terms are intercepts over all rows (the rule of :meth:`merge`)."""
        tables = dict(head.tables)
        for (i, j), tT in sparse.items():
            if head.terms[i].intercept and head.terms[j].intercept:
                tables[(i, j)] = tT.T
        return replace(head, tables=tables)

    def with_tables_from_blocks(self, Ar0, Arr, sizes, pairs) -> "StartStats":
        """These statistics with the count tables of ``pairs`` read from the summed blocks (see
        :func:`tables_in_blocks` for when they are exact): ``(0, j)`` from ``Ar0`` (a transposed view, no copy,
        when ``j`` is the only later term), ``(i, j)`` with ``i >= 1`` from ``Arr``.  Pairs whose terms are not
        intercepts over all rows are left out, as :meth:`merge` does.  ``sizes``: per term, ``p_k``."""
        starts = np.concatenate([[0, 0], np.cumsum([t.nlevels * int(p) for t, p in zip(self.terms[1:], sizes[1:])])])
        tables = dict(self.tables)
        for i, j in pairs:
            if not (self.terms[i].intercept and self.terms[j].intercept):
                continue
            if self.terms[i].first != 1.0 or self.terms[j].first != 1.0:
                raise ValueError(f"terms {i} and {j}: the blocks of A hold the count table only for columns equal to "
                                 "1 (internal units) without weights; build the table from the rows")
            rj = slice(int(starts[j]), int(starts[j]) + self.terms[j].nlevels)
            if i == 0:
                whole = rj.start == 0 and rj.stop == Ar0.shape[0]
                tables[(i, j)] = (Ar0 if whole else Ar0[rj, :]).T
            else:
                ri = slice(int(starts[i]), int(starts[i]) + self.terms[i].nlevels)
                tables[(i, j)] = sp.csr_matrix(Arr.tocsr()[ri, :][:, rj])
        return replace(self, tables=tables)


def tables_in_blocks(unit_terms, weighted: bool) -> list:
    """The pairs ``(i, j)``, ``i < j``, whose start count table the summed blocks of ``A`` hold exactly.

    Without prior weights ``W = I``, so ``Zr' W Z0`` (``Ar0``) and ``Zr' W Zr`` (``Arr``) at the levels of two
    scalar terms whose internal column is exactly 1 on every row are the numbers of rows at each pair of
    levels: the tables of :meth:`StartStats.of`.

    Parameters
    ----------
    unit_terms : per term, whether it has one column equal to 1.0 in the fit's internal units on every row
        (e.g. ``(1 | g)`` whose standardization leaves the constant 1 unchanged).
    weighted : whether the fit has prior weights (then no table is read from the blocks).
    """
    if weighted:
        return []
    unit = [k for k, u in enumerate(unit_terms) if u]
    return [(i, j) for a, i in enumerate(unit) for j in unit[a + 1:]]


def ols_rows(X, y, weights=None) -> np.ndarray | None:
    """Weighted least-squares coefficients of ``y`` on the rows of ``X`` (None without columns)."""
    X = np.asarray(X, float)
    if not X.shape[1]:
        return None
    sw = np.ones(len(y)) if weights is None else np.sqrt(np.asarray(weights, float))
    return np.linalg.lstsq(X * sw[:, None], y * sw, rcond=None)[0]


def ols_coefficients(AFF) -> np.ndarray:
    """Weighted least-squares coefficients of ``y`` on ``X`` from ``F' W F`` (``F = [X y]``), e.g. a
    workspace's or :class:`~mixedfx.core.blocksum.BlockSums`' ``AFF`` (standardized: well conditioned)."""
    AFF = np.asarray(AFF, float)
    p = AFF.shape[0] - 1
    try:
        return np.linalg.solve(AFF[:p, :p], AFF[:p, p])
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(AFF[:p, :p], AFF[:p, p], rcond=None)[0]


def start_residuals(X, y, beta, centre: float | None = None) -> np.ndarray:
    """The residuals the start reads: ``y - X beta``; without fixed effects ``y - centre``, where
    ``centre`` is the (unweighted) mean of ``y`` over all rows (default: over these rows)."""
    X = np.asarray(X, float)
    if X.shape[1]:
        return y - X @ beta
    return y - (np.mean(y) if centre is None else centre)


def _random_coefficient_start(t: TermStats) -> np.ndarray | None:
    """Relative factor ``lambda`` for one vector-valued term from per-group least squares (Swamy's
    random-coefficient moments): with ``b_g`` the OLS fit of the residuals on ``Xk`` within group
    ``g`` and ``s^2`` the pooled within-group residual variance,
    ``Sigma = cov_g(b_g) - s^2 mean_g (Xk_g' Xk_g)^{-1}`` and ``lambda = chol(Sigma / s^2)``.
    None when too few groups can be fitted or ``Sigma`` is not positive definite."""
    p = t.p
    ng = t.count
    ok = ng > p
    if ok.sum() < p + 2:
        return None
    try:
        inv = np.linalg.inv(t.XtX[ok])
    except np.linalg.LinAlgError:
        return None
    Xte = t.Xte[ok]
    b = (inv @ Xte[..., None])[..., 0]
    rss = t.ete[ok] - np.einsum("gi,gi->g", b, Xte)
    s2 = float(rss.sum() / (ng[ok] - p).sum())
    if not s2 > 0:
        return None
    sigma = np.cov(b, rowvar=False) - s2 * inv.mean(axis=0)
    try:
        lam = np.linalg.cholesky(sigma / s2)
    except np.linalg.LinAlgError:
        return None
    if not np.all(np.isfinite(lam)) or np.min(np.diag(lam)) < 0.1 or np.max(np.abs(lam)) > 10:
        return None
    return lam


def _crossed_moments(st: StartStats, which, estimates, sigma2, sweeps: int = 4):
    """Moments for several scalar intercept terms together (``which``: their positions).

    One-way ANOVA per term counts the other terms' variances as noise (crossed Penicillin: the
    plate start is 5x too small).  Backfitting the group means of all the terms (fewest levels
    first, a few sweeps) separates them: ``sigma^2`` is the residual mean square with
    ``n - sum (l_k - 1) - 1`` degrees of freedom and ``tau_k^2`` the spread of term ``k``'s means
    less their sampling variance ``sigma^2 mean(1 / n_g)``.  The row sums of the backfitting come
    from the per-level sums and the count tables ``N_ij`` (rows at each pair of levels).
    """
    n, m = st.n, len(which)
    terms = [st.terms[k] for k in which]
    counts = [t.count for t in terms]
    sums = [t.total for t in terms]

    cache = {}      # each table once per orientation: small ones dense (a sparse product or transpose
                    # costs ~10-25 us in scipy's checks, more than the arithmetic), large ones CSR

    def table(i, j):
        a, b = which[i], which[j]
        if (a, b) not in cache:
            t = st.tables[(a, b)] if a < b else st.tables[(b, a)].T
            cache[(a, b)] = t.toarray() if t.shape[0] * t.shape[1] <= 40_000 else t.tocsr()
        return cache[(a, b)]
    order = sorted(range(m), key=lambda i: terms[i].nlevels)
    means = [np.zeros(t.nlevels) for t in terms]
    for _ in range(sweeps):
        for i in order:
            s = sums[i] - sum(table(i, j) @ means[j] for j in range(m) if j != i)
            means[i] = np.divide(s, counts[i], out=np.zeros(len(s)), where=counts[i] > 0)
    dof = n - sum(t.nlevels - 1 for t in terms) - 1
    if dof <= 0:
        return estimates, sigma2
    fit2 = sum(counts[i] @ means[i] ** 2 for i in range(m))        # sum over rows of fit^2
    fit2 += 2 * sum(means[i] @ (table(i, j) @ means[j]) for i in range(m) for j in range(i + 1, m))
    s2 = float((st.sumsq - 2 * sum(means[i] @ sums[i] for i in range(m)) + fit2) / dof)
    if not s2 > 0:
        return estimates, sigma2
    out = list(estimates)
    for i, k in enumerate(which):
        ok = counts[i] > 0
        mk = means[i][ok]
        spread = float(np.sum((mk - mk.mean()) ** 2) / max(ok.sum() - 1, 1))
        out[k] = (max(spread - s2 * float(np.mean(1.0 / counts[i][ok])), 0.0), s2)
    return out, s2


def moment_start_from_stats(st: StartStats, layout: ThetaLayout) -> np.ndarray:
    """Moment-based theta start (see module docstring) from merged :class:`StartStats`; falls back to
    lme4's start per entry."""
    theta = layout.initial()
    n = st.n
    ebar = st.total / n
    estimates = []
    for t in st.terms:
        nlev = t.nlevels
        if not t.intercept or nlev < 2 or nlev >= n:
            estimates.append(None)
            continue
        ng = t.count
        means = np.divide(t.total, ng, out=np.zeros(nlev), where=ng > 0)
        msw = np.sum(t.m2) / (n - nlev)
        msb = np.sum(ng * (means - ebar) ** 2) / (nlev - 1)
        n0 = (n - np.sum(ng ** 2) / n) / (nlev - 1)
        estimates.append((max((msb - msw) / n0, 0.0), msw))
    if len(st.terms) == 1 and st.terms[0].p >= 2:
        start = _random_coefficient_start(st.terms[0])
        if start is not None:
            sl, s = layout.slices()[0], layout.structures[0]
            theta[sl] = start[s.rows, s.cols] if s.name == "us" else s.from_cov(start @ start.T)
            return theta
    known = [est for est in estimates if est is not None]
    if not known:
        return theta
    sigma2 = min(msw for _, msw in known)
    scalar = [k for k, est in enumerate(estimates) if est is not None and st.terms[k].p == 1]
    if len(scalar) >= 2:
        estimates, sigma2 = _crossed_moments(st, scalar, estimates, sigma2)
    for sl, est in zip(layout.slices(), estimates):
        if est is not None and sigma2 > 0:
            theta[sl.start] = float(np.clip(np.sqrt(est[0] / sigma2), 0.1, 5.0))
    return theta


def moment_start(X: np.ndarray, y: np.ndarray, blocks, layout: ThetaLayout, weights=None) -> np.ndarray:
    """Moment-based theta start from rows: weighted least squares of ``y`` on ``X``, then
    :func:`moment_start_from_stats` on the statistics of the (unweighted) residuals."""
    return moment_start_from_stats(StartStats.of(start_residuals(X, y, ols_rows(X, y, weights)), blocks), layout)
