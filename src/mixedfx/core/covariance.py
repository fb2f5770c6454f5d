"""Relative covariance factors: theta <-> Lambda.

Each random-effects term ``k`` with ``p_k`` columns has a lower-triangular
``p_k x p_k`` factor ``lambda_k`` with ``Cov(b_k[level]) = sigma^2 lambda_k lambda_k'``.
A term's covariance structure (:mod:`mixedfx.core.structures`) maps its slice of theta to
``lambda_k``; for lme4's unstructured terms theta stacks the lower triangles column by column
(lme4's order: ``(1,1), (2,1), ..., (p,1), (2,2), ...``), diagonal entries bounded below by 0.
The full ``Lambda`` is block diagonal with ``lambda_k`` repeated once per level.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .structures import CovStructure, Unstructured, _tril_indices

__all__ = ["ThetaLayout"]


@dataclass(frozen=True)
class ThetaLayout:
    """Where each term's parameters live in theta, and what they mean.

    Parameters
    ----------
    sizes : p_k for each term, in fitted term order.
    structures : one :class:`~mixedfx.core.structures.CovStructure` per term (default: lme4's
        unstructured covariance for every term).
    """
    sizes: tuple[int, ...]
    structures: tuple = None

    def __post_init__(self):
        if self.structures is None:
            object.__setattr__(self, "structures", tuple(Unstructured(p) for p in self.sizes))
        elif len(self.structures) != len(self.sizes) or any(s.p != p for s, p in zip(self.structures, self.sizes)):
            raise ValueError("one covariance structure per term, each with the term's number of columns")

    @property
    def structured(self) -> bool:
        """Whether any term has a structure other than lme4's unstructured one."""
        return any(not isinstance(s, Unstructured) for s in self.structures)

    @property
    def n_theta(self) -> int:
        return sum(s.n_params for s in self.structures)

    def slices(self) -> list[slice]:
        out, start = [], 0
        for s in self.structures:
            out.append(slice(start, start + s.n_params))
            start += s.n_params
        return out

    @staticmethod
    def tril_indices(p: int) -> tuple[np.ndarray, np.ndarray]:
        """Row and column indices of the lower triangle in column-major order."""
        return _tril_indices(p)

    def lower_bounds(self) -> np.ndarray:
        parts = [s.lower_bounds() for s in self.structures]
        return np.concatenate(parts) if parts else np.zeros(0)

    def initial(self) -> np.ndarray:
        """lme4's start: identity factors (unit standard deviations, no correlation)."""
        parts = [s.initial() for s in self.structures]
        return np.concatenate(parts) if parts else np.zeros(0)

    @cached_property
    def _pairs(self) -> list[tuple[slice, CovStructure]]:
        return list(zip(self.slices(), self.structures))

    def lambdas(self, theta: np.ndarray) -> list[np.ndarray]:
        """The ``p_k x p_k`` lower-triangular factors for ``theta``."""
        theta = np.asarray(theta, float)
        return [s.lam(theta[sl]) for sl, s in self._pairs]

    def chain(self, theta: np.ndarray, G: list[np.ndarray]) -> np.ndarray:
        """Gradient wrt theta from per-term gradients ``G_k = d f / d lambda_k`` (lower triangles)."""
        theta = np.asarray(theta, float)
        parts = [s.chain(theta[sl], g) for (sl, s), g in zip(self._pairs, G)]
        return np.concatenate(parts) if parts else np.zeros(0)

    def tril_jacobian(self, theta: np.ndarray) -> np.ndarray:
        """``d (lower triangles of every lambda_k, lme4's order) / d theta``: (sum p_k(p_k+1)/2, n_theta),
        block diagonal over terms (the identity for unstructured terms)."""
        theta = np.asarray(theta, float)
        rows = sum(p * (p + 1) // 2 for p in self.sizes)
        J = np.zeros((rows, self.n_theta))
        r0 = 0
        for sl, st in self._pairs:
            r, c = _tril_indices(st.p)
            if isinstance(st, Unstructured):
                J[r0:r0 + len(r), sl] = np.eye(len(r))
            else:
                J[r0:r0 + len(r), sl] = st.lam_jacobian(theta[sl])[r, c, :]
            r0 += len(r)
        return J

    def rectify(self, theta: np.ndarray) -> np.ndarray:
        """The equivalent theta with non-negative bounded entries.

        ``lambda lambda'`` is unchanged when a column of an unstructured ``lambda`` changes sign
        (or a structure's standard deviation does), so an optimizer may search over unbounded
        theta (as MixedModels.jl 5 does) and the answer is reported with the bounded entries
        made non-negative.
        """
        theta = np.array(theta, float)
        for sl, s in self._pairs:
            theta[sl] = s.rectify(theta[sl])
        return theta

    def flip_column(self, theta: np.ndarray, j: int) -> np.ndarray:
        """theta with the bounded entry ``j`` (an index into theta) negated together with whatever
        keeps ``lambda lambda'`` unchanged (the rest of its column for an unstructured term).  At a
        face where that entry is zero, a step into the interior of the flipped point is a step to
        the other side of the face."""
        theta = np.array(theta, float)
        for sl, s in self._pairs:
            if sl.start <= j < sl.stop:
                theta[sl] = s.flip(theta[sl], j - sl.start)
                return theta
        raise IndexError(j)

    def theta_from_lambdas(self, lambdas: list[np.ndarray]) -> np.ndarray:
        """theta whose factors reproduce ``lambda_k lambda_k'`` (exactly when each has the structure)."""
        parts = [s.from_cov(lam @ lam.T) if not isinstance(s, Unstructured) else lam[s.rows, s.cols]
                 for s, lam in zip(self.structures, lambdas)]
        return np.concatenate(parts) if parts else np.zeros(0)

    def names(self, groups: list[str], cnames: list[tuple[str, ...]]) -> list[str]:
        """lme4's theta names: ``Subject.(Intercept)``, ``Subject.Days.(Intercept)``, ``Subject.Days``
        (structured terms: one name per standard deviation and correlation parameter)."""
        out = []
        for s, g, cn in zip(self.structures, groups, cnames):
            out.extend(s.names(g, cn))
        return out
