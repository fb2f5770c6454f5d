"""The passes of an LMM fit over row partitions (issue 13): per-partition workers and their merges.

Every ``partition_*`` function takes one pandas partition plus small broadcast objects and returns
a small summary (None for an empty partition or one without complete rows); every ``merge_*`` /
client function combines summaries.  They are pure, picklable module-level functions with no
scheduler in them, so a scheduler (``mixedfx.cluster``) can run them on workers, retry or move
them; :func:`fit_lmm_partitions` runs the same passes in this process on a list of frames::

    plan = survey_plan(formula, weights, offset)
    1. surveys  -> merge_surveys -> spec_from_survey                       (levels, scale(), poly())
    2. partition_moments -> merge_moments -> scaling_from_moments          (standardization, aliasing)
       [partition_ones_residual: only when X has no explicit constant column, e.g. ``0 + f``]
    3. partition_block_sums -> sum_blocks -> start_beta                    (A = [Z F]' W [Z F])
       [large Ar0: block_buckets -> merge_buckets per bucket -> assembled CSC, see ar0_level_edges]
    4. partition_start_stats -> StartStats.merge_all -> fit_partitioned    (moment start, optimizer)
       [count tables that A holds exactly (start_table_pairs) are read from it, not built per partition]

Aliased fixed-effects columns are found from the merged Gram of X (the sequential Cholesky of
:func:`~mixedfx.design.matrices.drop_aliased_columns` on the same standardized Gram, built from
the co-moments without cancellation); the spec is then learned again without them.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..core.blocksum import (BlockSums, block_buckets, bucket_edges, merge_buckets, partition_blocks, sum_blocks,
                              sum_blocks_bucketed, sum_buckets)
from ..core.moments import ColumnMoments, _explicit_ones, ones_candidate, ones_residual, standardize_from_moments
from ..core.scaling import Standardization
from ..core.start import StartStats, ols_coefficients, start_residuals, tables_in_blocks
from ..core.structures import make_structure
from ..design import DesignError, MissingDataWarning, RankDeficiencyWarning
from ..design.design import DesignSpec
from ..design.learn import evaluate_partition
from ..design.matrices import independent_columns
from ..design.partitioned import (SurveyPlan, Survey, merge_surveys, missing_message, partition_survey,
                                  spec_from_survey, survey_plan)
from .lmm import LmmOptimum, fit_lmm_from_blocks

__all__ = ["MomentsPart", "PartitionedFit", "partition_moments", "merge_moments", "aliased_columns",
           "scaling_from_moments", "partition_ones_residual", "partition_block_sums", "start_beta",
           "partition_start_stats", "fit_partitioned", "fit_lmm_partitions", "partition_survey", "merge_surveys",
           "survey_plan", "spec_from_survey", "ar0_level_edges", "start_table_pairs", "start_with_tables",
           "block_buckets", "merge_buckets"]

ALIAS_TOL = 1e-7        # drop_aliased_columns' tolerance
BUCKET_BYTES = 32 * 2**20   # target size of one merged bucket of Ar0 (12 bytes per entry: int32 + float64)


def _where(index, total) -> str:
    return "the partition" if index is None else f"partition {index}" + (f" of {total}" if total else "")


def _arrays(part: pd.DataFrame, spec: DesignSpec, weights, index=None, total=None):
    return evaluate_partition(spec, part, weights=weights, where=_where(index, total))


def _y_work(a) -> np.ndarray:
    return a.y if a.offset is None else a.y - a.offset


@dataclass(frozen=True)
class MomentsPart:
    """Pass 2 of one partition (or merged): column moments of X (with co-moments), y - offset, each
    term's left-hand side and the weights; per-term level counts; weights' sign counts."""
    x: ColumnMoments
    y: ColumnMoments
    terms: tuple
    w: ColumnMoments | None
    counts: tuple                      # per term: rows per level (global levels)
    negative_w: int = 0
    positive_w: int = 0
    nonfinite: int = 0                 # rows with a non-finite y - offset, X or weight

    def merge(self, other: "MomentsPart") -> "MomentsPart":
        return MomentsPart(self.x.merge(other.x), self.y.merge(other.y),
                           tuple(a.merge(b) for a, b in zip(self.terms, other.terms)),
                           None if self.w is None else self.w.merge(other.w),
                           tuple(a + b for a, b in zip(self.counts, other.counts)),
                           self.negative_w + other.negative_w, self.positive_w + other.positive_w,
                           self.nonfinite + other.nonfinite)


def partition_moments(part: pd.DataFrame, spec: DesignSpec, weights: str | None = None, index=None,
                      total=None) -> MomentsPart | None:
    """Pass 2 on one partition (None without complete rows)."""
    a = _arrays(part, spec, weights, index, total)
    if a is None:
        return None
    y = _y_work(a)
    bad = ~np.isfinite(y) | ~np.all(np.isfinite(a.X), axis=1)
    if a.weights is not None:
        bad |= ~np.isfinite(a.weights)
    counts = tuple(np.bincount(codes, minlength=len(levels)) for (codes, _), (_, levels, _)
                   in zip(a.blocks, spec.random))
    w = None if a.weights is None else ColumnMoments.of(a.weights)
    return MomentsPart(ColumnMoments.of(a.X, True), ColumnMoments.of(y), tuple(ColumnMoments.of(Xk) for _, Xk in
                                                                             a.blocks), w, counts,
                       0 if a.weights is None else int((a.weights < 0).sum()),
                       0 if a.weights is None else int((a.weights > 0).sum()), int(bad.sum()))


def merge_moments(parts) -> MomentsPart:
    """Merge pass-2 summaries (None entries skipped); a DesignError when no partition has a complete row."""
    parts = [p for p in parts if p is not None]
    if not parts:
        raise DesignError("no complete rows: every partition is empty or has a missing value in every row")
    out = parts[0]
    for p in parts[1:]:
        out = out.merge(p)
    return out


def _standardized_gram(x: ColumnMoments) -> np.ndarray:
    """``_standardized_gram(X)`` of :mod:`mixedfx.design.matrices` from the merged moments: the columns centred
    when a constant non-zero column is in X (the constant columns themselves are not), then scaled to unit norm."""
    const = ~np.isnan(x.const) & (np.nan_to_num(x.const) != 0.0)
    if const.any():
        G = x.comoment.copy()
        c = np.where(const, x.const, 0.0)
        G[const, :] = 0.0
        G[:, const] = 0.0
        G += x.n * np.outer(c, c)
    else:
        G = x.gram()
    norms = np.sqrt(np.maximum(np.diag(G), 0.0))
    norms = np.where(norms > 0, norms, 1.0)
    return G / np.outer(norms, norms)


def aliased_columns(x: ColumnMoments, names, tol: float = ALIAS_TOL) -> list[int]:
    """Indices of the columns of X that are linear combinations of earlier ones (lme4's rule, as
    :func:`~mixedfx.design.matrices.drop_aliased_columns`), from the merged moments of X."""
    p = x.k
    if p == 0 or x.n == 0:
        return []
    kept = independent_columns(_standardized_gram(x), tol)
    return [j for j in range(p) if j not in kept]


def _subset(m: ColumnMoments, keep) -> ColumnMoments:
    keep = np.asarray(keep, dtype=int)
    com = None if m.comoment is None else m.comoment[np.ix_(keep, keep)]
    return ColumnMoments(m.n, m.mean[keep], m.mean_lo[keep], m.m2[keep], m.maxabs[keep], m.const[keep], com)


def _structures(spec: DesignSpec) -> tuple:
    return tuple(make_structure("us", len(lspec.names), None) for _, _, lspec in spec.random)


def check_partitioned_model(spec: DesignSpec, m: MomentsPart, weighted: bool) -> None:
    """The in-memory design's checks on the whole data, from the merged moments (same messages)."""
    f = spec.formula
    odd = [t.text for t in f.random if getattr(t, "structure", "us") != "us"]
    if odd:
        raise DesignError(f"the term ({odd[0]}) has a covariance structure; on partitioned data only unstructured "
                          "terms such as (x | g) are supported yet: fit it in memory")
    n = m.x.n
    if m.nonfinite:
        raise DesignError(f"{m.nonfinite} complete row(s) have an infinite response, offset, fixed-effects value or "
                          "weight; remove those rows or fix the values")
    if n < 2:
        raise DesignError(f"only {n} complete row(s): a mixed model needs more observations")
    for (group, levels, lspec), counts in zip(spec.random, m.counts):
        label = ":".join(group)
        used = int(np.count_nonzero(counts))
        if used < 2:
            raise DesignError(f"grouping factor {label!r} has only {used} level in the data; a random effect needs "
                              "at least 2 groups (remove the term or check the column)")
        if len(levels) >= n:
            raise DesignError(f"grouping factor {label!r} has {len(levels)} levels for {n} observations: each group "
                              "is a single row, so its random effect cannot be told apart from the residual. Remove "
                              "the term or use a coarser grouping.")
        if len(levels) * len(lspec.names) >= n:
            raise DesignError(f"a term on {label!r} has {len(levels) * len(lspec.names)} random effects for {n} "
                              "observations; the model is unidentifiable. Simplify the term (e.g. (1 | group)).")
    if weighted:
        if m.negative_w:
            raise DesignError(f"weights must be non-negative ({m.negative_w} negative values)")
        if not m.positive_w:
            raise DesignError("all weights are zero; at least some observations need positive weight")


def scaling_from_moments(spec: DesignSpec, m: MomentsPart, ones=None) -> Standardization:
    """The data's standardization from the merged pass-2 moments (``ones``: the verified ``g`` when X has no
    explicit constant column, see :func:`partition_ones_residual`)."""
    kinds = [st.scaling for st in _structures(spec)]
    return standardize_from_moments(m.x, m.y, list(m.terms), m.w, term_kinds=kinds, ones=ones)


def needs_ones_check(m: MomentsPart) -> np.ndarray | None:
    """The candidate ``g`` (``X g = 1``) to verify over the rows, or None when X has an explicit constant
    column (or no column)."""
    if m.x.k == 0 or _explicit_ones(m.x) is not None:
        return None
    return ones_candidate(m.x)


def partition_ones_residual(part: pd.DataFrame, spec: DesignSpec, g: np.ndarray, weights: str | None = None,
                            index=None, total=None) -> float:
    """``max |X g - 1|`` over one partition's complete rows (0 without rows); merge with ``max``."""
    a = _arrays(part, spec, weights, index, total)
    return 0.0 if a is None else ones_residual(a.X, g)


def _internal(a, scaling: Standardization, nlevels):
    blocks = [(codes, scaling.term(k, Xk), nl) for k, ((codes, Xk), nl) in enumerate(zip(a.blocks, nlevels))]
    return scaling.fixed(a.X), scaling.response(_y_work(a)), blocks, scaling.weights(a.weights)


def partition_block_sums(part: pd.DataFrame, spec: DesignSpec, scaling: Standardization, weights: str | None = None,
                         index=None, total=None) -> BlockSums | None:
    """Pass 3 on one partition: its share of ``A`` in the internal units, with the global level codes."""
    a = _arrays(part, spec, weights, index, total)
    if a is None:
        return None
    return partition_blocks(*_internal(a, scaling, [len(lv) for _, lv, _ in spec.random]))


def start_beta(sums: BlockSums, m: MomentsPart, scaling: Standardization) -> tuple[np.ndarray, float]:
    """``(beta_ols, centre)`` broadcast to pass 4: the unweighted-start OLS coefficients from the summed
    ``AFF`` and (used only without fixed effects) the mean of the internal response."""
    centre = float(((m.y.mean[0] - scaling.y_center) + m.y.mean_lo[0]) / scaling.y_scale)
    return ols_coefficients(sums.AFF), centre


def partition_start_stats(part: pd.DataFrame, spec: DesignSpec, scaling: Standardization, beta, centre: float,
                          weights: str | None = None, index=None, total=None, skip=()) -> StartStats | None:
    """Pass 4 on one partition: the moment start's statistics of its OLS residuals (``skip``: the count tables
    read from the summed blocks instead, :func:`start_table_pairs`)."""
    a = _arrays(part, spec, weights, index, total)
    if a is None:
        return None
    X, y, blocks, _ = _internal(a, scaling, [len(lv) for _, lv, _ in spec.random])
    return StartStats.of(start_residuals(X, y, beta, centre), blocks, skip=skip)


def ar0_level_edges(spec: DesignSpec, m: MomentsPart, bucket_bytes: float | None = None) -> np.ndarray | None:
    """Term-0 level edges of the buckets of pass 3's ``Ar0`` (and of pass 4's ``(0, j)`` count tables).

    The entries of ``Ar0`` at a term-0 level ``g`` are at most ``p0 sum_j p_j min(n_g, l_j)`` (``n_g`` its rows,
    ``l_j`` the levels of later term ``j``); buckets of levels are balanced on that bound and their number
    chosen so that a merged bucket holds about ``bucket_bytes`` (default :data:`BUCKET_BYTES`) at 12 bytes
    per entry: one bucket for small models.  None without later terms (no ``Ar0``).
    """
    if len(spec.random) < 2:
        return None
    sizes = [len(ls.names) for _, _, ls in spec.random]
    nlevels = [len(lv) for _, lv, _ in spec.random]
    n0 = np.asarray(m.counts[0], float)
    bound = sizes[0] * sum(p * np.minimum(n0, nl) for p, nl in zip(sizes[1:], nlevels[1:]))
    target = float(BUCKET_BYTES if bucket_bytes is None else bucket_bytes)
    nb = int(np.ceil(12.0 * float(bound.sum()) / max(target, 1.0)))
    return bucket_edges(bound, max(nb, 1))


def start_table_pairs(spec: DesignSpec, m: MomentsPart, scaling: Standardization, weighted: bool) -> list:
    """The pairs of terms whose start count table equals the summed ``Ar0``/``Arr`` (no prior weights, both terms
    one column that is exactly 1.0 in internal units on every row: the term's raw column is constant, and the
    scaling maps that constant to 1.0).  Pass 4 skips them; :func:`start_with_tables` reads them from A."""
    unit = []
    for k, (tm, (_, _, ls)) in enumerate(zip(m.terms, spec.random)):
        c = tm.const[0] if len(ls.names) == 1 and tm.k == 1 else np.nan
        unit.append(bool(np.isfinite(c) and scaling.term(k, np.array([[c]]))[0, 0] == 1.0))
    return tables_in_blocks(unit, weighted)


def start_with_tables(stats: StartStats, sums: BlockSums, spec: DesignSpec, pairs) -> StartStats:
    """The merged pass-4 statistics with the tables of ``pairs`` read from the summed blocks."""
    if not pairs:
        return stats
    sizes = [len(ls.names) for _, _, ls in spec.random]
    return stats.with_tables_from_blocks(sums.Ar0, sums.Arr, sizes, pairs)


@dataclass
class PartitionedFit:
    """An LMM fitted over partitions: the optimum and what a result without rows needs."""
    optimum: LmmOptimum
    spec: DesignSpec
    xnames: tuple
    n: int
    n_dropped: int
    n_total: int
    levels: tuple                   # per term (spec order): level labels
    cnames: tuple                   # per term: column names
    groups: tuple                   # per term: grouping variables
    counts: tuple                   # per term: rows per level
    structures: tuple
    weights: str | None
    offset: str | None
    sums: BlockSums = field(repr=False)
    scaling: Standardization = field(repr=False)
    missing_message: str | None = None
    passes: dict = field(default_factory=dict)


def relearn_without_aliased(plan: SurveyPlan, survey: Survey, spec: DesignSpec, m: MomentsPart) -> tuple:
    """``(spec, moments)`` with aliased columns dropped (RankDeficiencyWarning as in memory)."""
    drop = aliased_columns(m.x, spec.fixed.names)
    if not drop:
        return spec, m
    names = [spec.fixed.names[j] for j in drop]
    warnings.warn(f"fixed-effect model matrix is rank deficient so dropping {len(names)} column(s): "
                  f"{', '.join(names)}", RankDeficiencyWarning, stacklevel=3)
    keep = [j for j in range(m.x.k) if j not in drop]
    new = spec_from_survey(plan, survey, aliased=names)
    return new, MomentsPart(_subset(m.x, keep), m.y, m.terms, m.w, m.counts, m.negative_w, m.positive_w,
                            m.nonfinite)


def fit_partitioned(spec: DesignSpec, m: MomentsPart, sums: BlockSums, scaling: Standardization,
                    stats: StartStats, survey: Survey, plan: SurveyPlan, reml: bool = True,
                    **control) -> PartitionedFit:
    """The client's fit from the merged passes."""
    structures = _structures(spec)
    sizes = [len(lspec.names) for _, _, lspec in spec.random]
    nlevels = [len(lv) for _, lv, _ in spec.random]
    opt = fit_lmm_from_blocks(sums, scaling, sizes, nlevels, structures, stats, reml=reml, **control)
    return PartitionedFit(opt, spec, tuple(spec.fixed.names), m.x.n, survey.n_dropped, survey.n,
                          tuple(lv for _, lv, _ in spec.random), tuple(tuple(ls.names) for _, _, ls in spec.random),
                          tuple(g for g, _, _ in spec.random), m.counts, structures, plan.weights, plan.offset, sums,
                          scaling, missing_message(survey))


def fit_lmm_partitions(formula, frames, reml: bool = True, weights: str | None = None, offset: str | None = None,
                       bucket_bytes: float | None = None, **control) -> PartitionedFit:
    """Fit an LMM on a list of pandas frames (the partitions of one data set) with the passes of a
    distributed fit, in this process.  Equal to ``mfx.lmer(formula, pd.concat(frames))`` up to rounding.

    ``weights``/``offset``: column names.  ``control``: ``optimizer``, ``maxeval``, ``blas_threads``, ``start``.
    ``bucket_bytes``: the size of a bucket of ``Ar0`` (:func:`ar0_level_edges`; small values force several).
    """
    frames = list(frames)
    total = len(frames)
    plan = survey_plan(formula, weights, offset)
    survey = merge_surveys([partition_survey(p, plan, i, total) for i, p in enumerate(frames)])
    msg = missing_message(survey)
    if msg is not None:
        warnings.warn(msg, MissingDataWarning, stacklevel=2)
    spec = spec_from_survey(plan, survey)
    m = merge_moments([partition_moments(p, spec, weights, i, total) for i, p in enumerate(frames)])
    spec, m = relearn_without_aliased(plan, survey, spec, m)
    check_partitioned_model(spec, m, weights is not None)
    g = needs_ones_check(m)
    if g is not None:
        r = max(partition_ones_residual(p, spec, g, weights, i, total) for i, p in enumerate(frames))
        g = g if r < 1e-12 else None
    scaling = scaling_from_moments(spec, m, ones=g)
    blocks = [partition_block_sums(p, spec, scaling, weights, i, total) for i, p in enumerate(frames)]
    levels = ar0_level_edges(spec, m, bucket_bytes)
    if levels is None:
        sums = sum_blocks(blocks)
    else:
        sums = sum_blocks_bucketed(blocks, levels * len(spec.random[0][2].names))
    del blocks
    beta, centre = start_beta(sums, m, scaling)
    stats = None
    start = control.get("start", "moments")
    if isinstance(start, str) and start == "moments":
        pairs = start_table_pairs(spec, m, scaling, weights is not None)
        parts = [partition_start_stats(p, spec, scaling, beta, centre, weights, i, total, pairs)
                 for i, p in enumerate(frames)]
        if levels is None or len(levels) == 2:
            stats = StartStats.merge_all(parts)
        else:           # the (0, j) tables built per partition are summed in buckets, as on a cluster
            stats = StartStats.finish_buckets(*sum_buckets(parts, StartStats.buckets, StartStats.merge_all, levels))
        stats = start_with_tables(stats, sums, spec, pairs)
    return fit_partitioned(spec, m, sums, scaling, stats, survey, plan, reml=reml, **control)
