"""Worker side of ``glmer`` on Dask: one partition's rows, evaluated once and persisted.

A :class:`PartitionState` holds a partition's complete rows in the fit's internal units (the
standardized ``X`` and term columns with the global level codes, the response, prior weights and
the centred offset).  Every PIRLS iteration maps one of the functions below over the persisted
states and sums their results on the client: the re-weighted blocks of ``A = [Z X r]' W [Z X r]``
(:func:`state_blocks`), the family's ``mu``-kernel at candidate steps (:func:`state_kernels`), the
constants of the deviance and log-likelihood (:func:`state_constants`) and the final deviance
(:func:`state_final`).  No dask here: plain numpy functions of one state.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core.blocksum import partition_blocks, sum_blocks
from ..core.moments import ColumnMoments
from ..design import DesignError
from ..design.evaluate import AtomState
from ..design.learn import evaluate_partition
from ..design.response import glmm_response
from ..formula import parse_formula

__all__ = ["PartitionState", "make_state", "state_constants", "state_blocks", "state_kernels", "merge_kernels",
           "state_final",
           "response_columns", "offset_moments", "merge_moments_list", "sum_arrays"]


@dataclass
class PartitionState:
    """One partition's complete rows in internal units (persisted on a worker)."""
    X: np.ndarray
    y: np.ndarray
    w: np.ndarray
    off: np.ndarray
    blocks: list            # per term: (codes, Xk internal, n_levels)
    family: object

    def zb(self, b_levels) -> np.ndarray:
        """``sum_k Z_k b_k`` for per-level effects ``b_k`` (n_levels, p_k)."""
        out = np.zeros(len(self.y))
        for (codes, Xk, _), bk in zip(self.blocks, b_levels):
            out += np.einsum("ij,ij->i", Xk, bk[codes])
        return out

    def eta(self, beta, b_levels, joint: bool):
        """``(eta, fixed)``: the linear predictor, summed in the order the in-memory PIRLS uses; ``beta``
        None: the family's start (``link(initial_mu)``)."""
        if beta is None:
            return self.family.link.link(self.family.initial_mu(self.y, self.w)), None
        if joint:
            return self.X @ beta + self.zb(b_levels) + self.off, None
        fixed = self.X @ beta + self.off
        return fixed + self.zb(b_levels), fixed


def response_columns(part: pd.DataFrame, formula: str, weights: str | None, ycol: str, wcol: str) -> pd.DataFrame:
    """``cbind(successes, failures)`` as two columns: the proportion ``ycol`` and the prior weights
    ``wcol`` (trials times the ``weights=`` column), as the in-memory design builds them."""
    f = parse_formula(formula)
    out = part.copy()
    if len(part) == 0:
        out[ycol], out[wcol] = np.zeros(0), np.zeros(0)
        return out
    used = [c for c in parse_formula(formula.split("~", 1)[0] + "~ 1").variables if c in part.columns]
    keep = part[used].notna().all(axis=1).to_numpy()         # rows with a missing count: dropped later
    y, w = np.full(len(part), np.nan), np.full(len(part), np.nan)
    if keep.any():
        y_k, trials = glmm_response(f.response, part[keep], AtomState(), binomial=True)
        y[keep] = y_k
        w[keep] = trials if weights is None else trials * part[weights].to_numpy(dtype=float)[keep]
    out[ycol], out[wcol] = y, w
    return out


def offset_moments(part: pd.DataFrame, spec, weights, index=None, total=None) -> ColumnMoments | None:
    """The moments of the offset over the complete rows (the centre of the GLMM standardization)."""
    a = evaluate_partition(spec, part, weights=weights, where=f"partition {index}")
    return None if a is None or a.offset is None else ColumnMoments.of(np.asarray(a.offset, float))


def merge_moments_list(items) -> ColumnMoments:
    out = items[0]
    for m in items[1:]:
        out = out.merge(m)
    return out


def make_state(part: pd.DataFrame, spec, scaling, weights, family, index=None, total=None) -> PartitionState | None:
    """Evaluate one partition under the frozen spec into internal units (None without complete rows)."""
    where = "the partition" if index is None else f"partition {index} of {total}"
    a = evaluate_partition(spec, part, weights=weights, where=where)
    if a is None:
        return None
    n = len(a.y)
    w = np.ones(n) if a.weights is None else np.asarray(a.weights, float)
    try:
        family.check_response(a.y, w)
    except (ValueError, DesignError) as exc:
        raise DesignError(f"{where}: {exc}") from None
    off = np.zeros(n) if a.offset is None else np.asarray(a.offset, float) + scaling.y_center
    nlevels = [len(lv) for _, lv, _ in spec.random]
    blocks = [(np.asarray(c), scaling.term(k, Xk), nl) for k, ((c, Xk), nl) in enumerate(zip(a.blocks, nlevels))]
    return PartitionState(scaling.fixed(a.X), np.asarray(a.y, float), w, off, blocks, family)


def state_constants(s: PartitionState, index=None, total=None) -> np.ndarray:
    """``[sum w d(y, mu0) + 2 kernel(mu0), loglik(mu0) - kernel(mu0), rows]`` at the family's starting means
    (the constants of the penalized deviance and of the log-likelihood, as ``GlmmWorkspace`` fixes them)."""
    if s is None:
        return None
    fam = s.family
    mu0 = fam.initial_mu(s.y, s.w)
    kern = fam.mu_kernel(s.y, mu0, s.w)
    return np.array([float(np.sum(s.w * fam.unit_deviance(s.y, mu0)) + 2.0 * kern),
                     float(fam.loglik(s.y, mu0, s.w) - kern), float(len(s.y))])


def state_blocks(s: PartitionState, beta, b_levels, joint: bool, index=None, total=None):
    """The partition's blocks of ``A`` at the IRLS weights of ``(beta, b)``: joint (stage 1) with the working
    response ``z = eta - offset + (y - mu) / mu_eta``; u-only with ``r = eta - X beta - offset + (y - mu) /
    mu_eta`` (its last row ``r' W Z`` is the ``Z' W r`` of the u-step)."""
    if s is None:
        return None
    fam = s.family
    eta, fixed = s.eta(beta, b_levels, joint)
    mu = fam.link.inverse(eta)
    W, me = fam.irls_weights(eta, mu, s.w)
    if fixed is None:
        resp = eta - s.off + (s.y - mu) / me
    else:
        resp = eta - fixed + (s.y - mu) / me
    return partition_blocks(s.X, resp, s.blocks, W)


def state_kernels(s: PartitionState, candidates, joint: bool, with_blocks: bool = True, index=None,
                  total=None):
    """``(kernels, blocks)``: the family's ``mu``-kernel summed over the rows at each candidate ``(beta, b)``
    (non-finite where the candidate leaves the family's range) and, with ``with_blocks``, the blocks of
    :func:`state_blocks` at the first candidate (a full PIRLS step is usually accepted: the next
    iteration then needs no pass of its own)."""
    if s is None:
        return None
    fam = s.family
    out = np.empty(len(candidates))
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        for i, (beta, b_levels) in enumerate(candidates):
            eta, _ = s.eta(beta, b_levels, joint)
            out[i] = fam.mu_kernel(s.y, fam.link.inverse(eta), s.w)
        blocks = None
        if with_blocks and np.isfinite(out[0]):
            blocks = state_blocks(s, candidates[0][0], candidates[0][1], joint)
    return out, blocks


def merge_kernels(items):
    """Sum :func:`state_kernels` results (blocks None when any partition's first candidate was invalid)."""
    kern = sum_arrays([k for k, _ in items])
    blocks = [b for _, b in items]
    return kern, (None if any(b is None for b in blocks) else sum_blocks(blocks))


def state_final(s: PartitionState, beta, b_levels, index=None, total=None) -> np.ndarray:
    """``[sum w d(y, mu), rows with mu within 1e-8 of 0 or 1]`` at the optimum (deviance, separation)."""
    if s is None:
        return None
    fam = s.family
    eta, _ = s.eta(beta, b_levels, False)
    mu = fam.link.inverse(eta)
    return np.array([float(np.sum(s.w * fam.unit_deviance(s.y, mu))), float(np.sum((mu < 1e-8) | (mu > 1 - 1e-8)))])


def sum_arrays(items) -> np.ndarray:
    """Element-wise sum of the partitions' arrays."""
    out = np.array(items[0], float)
    for x in items[1:]:
        out = out + x
    return out
