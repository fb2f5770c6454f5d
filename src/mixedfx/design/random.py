"""Random-effect blocks: grouping factors and the left-hand-side model matrices.

Term ``k`` with grouping factor ``g`` (``l_k`` levels) and left-hand side
``X_k`` (``n x p_k``) contributes ``q_k = l_k p_k`` columns to ``Z``; column
``j p_k + c`` of ``Z_k`` holds ``X_k[i, c]`` in the rows of level ``j``, so the
random effects of one level are contiguous, as in lme4.  Z itself is never
formed here: a block is stored as its level codes and ``X_k``.
"""
from __future__ import annotations

import math

from dataclasses import dataclass

import warnings

import numpy as np
import pandas as pd

from ..formula.terms import RandomTerm
from .evaluate import DesignError, factor_codes, to_factor
from .matrices import TermMatrixSpec

__all__ = ["ReBlock", "BlockShape", "grouping_factor", "map_levels", "IdentifiabilityWarning", "check_identifiability"]


class IdentifiabilityWarning(UserWarning):
    """A random-effects term's variance components are weakly or not identified."""


class BlockShape:
    """Sizes of a random-effects term from its ``term``, ``levels`` and ``cnames`` (shared by
    :class:`ReBlock` and the data-free block of a loaded fit)."""

    @property
    def group_label(self) -> str:
        return self.term.group_label

    @property
    def nlevels(self) -> int:
        return len(self.levels)

    @property
    def p(self) -> int:
        return len(self.cnames)

    @property
    def q(self) -> int:
        return self.nlevels * self.p


@dataclass(frozen=True)
class ReBlock(BlockShape):
    """One random-effects term on data.

    Attributes
    ----------
    term : the expanded formula term.
    levels : labels of the grouping factor's levels (lme4's order), length ``l``.
    codes : int array (n,), level of each row (``-1`` for a level unseen in fitting,
        only for new data).
    X : float array (n, p), the term's left-hand-side model matrix.
    cnames : column names of ``X`` (``(Intercept)``, ``Days``).
    lhs_spec : how to rebuild ``X`` on new data.
    times : for an ``ou(0 + numFactor(t) | g)`` term, the coordinate of each column, else None.
    """
    term: RandomTerm
    levels: tuple[str, ...]
    codes: np.ndarray
    X: np.ndarray
    cnames: tuple[str, ...]
    lhs_spec: TermMatrixSpec
    times: tuple | None = None

    @property
    def structure(self) -> str:
        """The term's covariance structure (``"us"``, ``"ar1"``...)."""
        return self.term.structure


def grouping_factor(group: tuple[str, ...], data: pd.DataFrame) -> tuple[np.ndarray, tuple[str, ...]]:
    """Codes and level labels of a grouping factor (an interaction for several variables).

    Interaction levels are the observed combinations, ordered with the first
    variable varying slowest, labelled ``"a:A"`` as R's ``a:b`` on factors.
    """
    factors = [factor_codes(data[g], g) for g in group]     # (codes, labels) per variable
    if len(factors) == 1:
        codes, labels = factors[0]
        return codes, tuple(labels)
    combined = np.zeros(len(data), dtype=np.int64)
    for codes, labels in factors:
        combined = combined * len(labels) + codes
    uniq, codes = np.unique(combined, return_inverse=True)
    parts = []
    rest = uniq.copy()
    for _, labels in reversed(factors):
        k = len(labels)
        parts.append(np.asarray(labels, dtype=object)[rest % k])
        rest //= k
    labels = [":".join(t) for t in zip(*reversed(parts))]
    return codes.astype(np.int64), tuple(labels)


def map_levels(group: tuple[str, ...], data: pd.DataFrame, levels: tuple[str, ...]) -> np.ndarray:
    """Codes of new data's grouping values among fitted levels; ``-1`` where unseen."""
    pieces = []
    for g in group:
        col = data[g]
        if isinstance(col.dtype, pd.CategoricalDtype):
            col = col.astype(object)
        pieces.append(to_factor(col.to_numpy(), g).astype(str) if col.dtype.kind in "iufb"
                      else np.asarray([str(v) for v in col], dtype=object))
    labels = pieces[0].astype(object) if len(pieces) == 1 else \
        np.asarray([":".join(t) for t in zip(*pieces)], dtype=object)
    index = {lab: i for i, lab in enumerate(levels)}
    return np.fromiter((index.get(lab, -1) for lab in labels), dtype=np.int64, count=len(labels))


def check_levels(blocks: list[ReBlock], n: int, lmm: bool) -> None:
    """lme4's sanity checks on grouping factors (errors say what to do)."""
    for b in blocks:
        if b.nlevels < 2:
            raise DesignError(f"grouping factor {b.group_label!r} has only {b.nlevels} level in the data; "
                              "a random effect needs at least 2 groups (remove the term or check the column)")
        if lmm and b.nlevels >= n:
            raise DesignError(f"grouping factor {b.group_label!r} has {b.nlevels} levels for {n} observations: "
                              "each group is a single row, so its random effect cannot be told apart from the "
                              "residual. Remove the term or use a coarser grouping.")
        if lmm and b.q >= n and b.structure == "us":     # a structure's few parameters may be identified
            raise DesignError(f"the term ({b.term.text}) has {b.q} random effects for {n} observations; "
                              "the model is unidentifiable. Simplify the term (e.g. (1 | group)).")


def _standardized(X: np.ndarray) -> np.ndarray:
    """Columns centred (when the first is an intercept) and scaled to unit RMS: the same
    dependence structure in units where a shift of 1e6 or a scale of 1e-8 does not matter."""
    Xs = np.array(X, dtype=float)
    if Xs.shape[1] > 1 and len(Xs) and Xs[0, 0] != 0 and np.all(Xs[:, 0] == Xs[0, 0]):
        Xs[:, 1:] -= np.array([math.fsum(c) / len(c) for c in Xs[:, 1:].T.tolist()])[None, :]
    rms = np.sqrt(np.mean(Xs * Xs, axis=0)) if len(Xs) else np.ones(Xs.shape[1])
    return Xs / np.where(rms > 0, rms, 1.0)[None, :]


def check_identifiability(blocks: list[ReBlock], tol: float = 1e-10) -> None:
    """Warn when a term's left-hand-side columns are linearly dependent within every level.

    Then (as for ``(x | g)`` with ``x`` constant within each group) the random slope is
    confounded with the random intercept inside each group; its variance is identified
    only through differences between groups, or not at all when the columns are
    dependent over the whole data.
    """
    for b in blocks:
        if b.p < 2:
            continue
        X = _standardized(b.X)
        gram = np.zeros((b.nlevels, b.p, b.p))
        for i in range(b.p):
            for j in range(i, b.p):
                gram[:, i, j] = gram[:, j, i] = np.bincount(b.codes, X[:, i] * X[:, j], minlength=b.nlevels)
        eig = np.linalg.eigvalsh(gram)
        deficient = eig[:, 0] <= tol * np.maximum(eig[:, -1], 1e-300)
        if not deficient.all():
            continue
        whole = np.linalg.eigvalsh(X.T @ X)
        if whole[0] <= tol * whole[-1]:
            how = ("its columns are linearly dependent over the whole data, so its variance components "
                   "are not identifiable")
        else:
            how = ("its columns are linearly dependent within every level of the grouping factor (a covariate "
                   "constant within groups), so the variance components are identified only through "
                   "differences between groups")
        warnings.warn(f"in the term ({b.term.text}), {how}; consider (1 | {b.group_label}) with the covariate "
                      "as a fixed effect", IdentifiabilityWarning, stacklevel=4)
