"""Relative covariance factors: theta <-> Lambda.

Each random-effects term ``k`` with ``p_k`` columns has a lower-triangular
``p_k x p_k`` factor ``lambda_k`` with ``Cov(b_k[level]) = sigma^2 lambda_k lambda_k'``.
``theta`` stacks the lower triangles column by column (lme4's order:
``(1,1), (2,1), ..., (p,1), (2,2), ...``); diagonal entries are bounded below by 0.
The full ``Lambda`` is block diagonal with ``lambda_k`` repeated once per level.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = ["ThetaLayout"]


@dataclass(frozen=True)
class ThetaLayout:
    """Where each term's entries live in theta.

    Parameters
    ----------
    sizes : p_k for each term, in fitted term order.
    """
    sizes: tuple[int, ...]

    @property
    def n_theta(self) -> int:
        return sum(p * (p + 1) // 2 for p in self.sizes)

    def slices(self) -> list[slice]:
        out, start = [], 0
        for p in self.sizes:
            m = p * (p + 1) // 2
            out.append(slice(start, start + m))
            start += m
        return out

    @staticmethod
    def tril_indices(p: int) -> tuple[np.ndarray, np.ndarray]:
        """Row and column indices of the lower triangle in column-major order."""
        rows, cols = [], []
        for j in range(p):
            for i in range(j, p):
                rows.append(i)
                cols.append(j)
        return np.array(rows, dtype=int), np.array(cols, dtype=int)

    def lower_bounds(self) -> np.ndarray:
        lb = []
        for p in self.sizes:
            r, c = self.tril_indices(p)
            lb.extend(np.where(r == c, 0.0, -np.inf))
        return np.array(lb)

    def initial(self) -> np.ndarray:
        """lme4's start: identity factors (1 on the diagonal, 0 off it)."""
        lb = self.lower_bounds()
        return np.where(lb == 0.0, 1.0, 0.0)

    @cached_property
    def _scatter(self) -> list[tuple[slice, np.ndarray, np.ndarray, int]]:
        return [(sl, *self.tril_indices(p), p) for p, sl in zip(self.sizes, self.slices())]

    def lambdas(self, theta: np.ndarray) -> list[np.ndarray]:
        """The ``p_k x p_k`` lower-triangular factors for ``theta``."""
        out = []
        for sl, r, c, p in self._scatter:
            lam = np.zeros((p, p))
            lam[r, c] = theta[sl]
            out.append(lam)
        return out

    def rectify(self, theta: np.ndarray) -> np.ndarray:
        """The equivalent theta with non-negative diagonal entries.

        ``lambda lambda'`` is unchanged when a column of ``lambda`` changes sign, so an
        optimizer may search over unbounded theta (as MixedModels.jl 5 does) and the answer is
        reported with each column's diagonal entry made non-negative.
        """
        theta = np.array(theta, float)
        for sl, r, c, p in self._scatter:
            block = theta[sl]
            for j in range(p):
                col = c == j
                if block[col & (r == j)][0] < 0:
                    block[col] = -block[col]
            theta[sl] = block
        return theta

    def flip_column(self, theta: np.ndarray, j: int) -> np.ndarray:
        """theta with the column of ``lambda`` holding diagonal entry ``j`` (an index into theta)
        negated: the same ``lambda lambda'``.  At a face where that diagonal is zero, a step into
        the interior of the flipped point is a step to the other side of the face."""
        theta = np.array(theta, float)
        for sl, r, c, p in self._scatter:
            if sl.start <= j < sl.stop:
                col = c == c[j - sl.start]
                theta[sl.start + np.flatnonzero(col)] *= -1.0
                return theta
        raise IndexError(j)

    def theta_from_lambdas(self, lambdas: list[np.ndarray]) -> np.ndarray:
        parts = []
        for p, lam in zip(self.sizes, lambdas):
            r, c = self.tril_indices(p)
            parts.append(lam[r, c])
        return np.concatenate(parts) if parts else np.zeros(0)

    def names(self, groups: list[str], cnames: list[tuple[str, ...]]) -> list[str]:
        """lme4's theta names: ``Subject.(Intercept)``, ``Subject.Days.(Intercept)``, ``Subject.Days``."""
        out = []
        for p, g, cn in zip(self.sizes, groups, cnames):
            r, c = self.tril_indices(p)
            for i, j in zip(r, c):
                out.append(f"{g}.{cn[i]}" if i == j else f"{g}.{cn[i]}.{cn[j]}")
        return out
