"""A PLS workspace in the user's units over an internal, standardized one.

:class:`ScaledWorkspace` forms the standardized copy of the data once
(:mod:`mixedfx.core.scaling`), keeps a :class:`~mixedfx.core.workspace.PLSWorkspace` on it, and
answers in the user's units: ``update(theta)`` takes the user's theta, ``beta()``, ``sigma2``,
``pwrss``, ``logdet_X``, ``log_weights``, ``vcov_beta``, ``b_blocks`` and ``cond_var_blocks``
are mapped back, and the criterion carries its exact Jacobian terms.  Optimizers work on the
internal theta (``internal.objective``): that is where the problem is well conditioned.
"""
from __future__ import annotations

import numpy as np

from .blocksum import BlockSums
from .scaling import Standardization, standardize
from .workspace import FAILED_OBJECTIVE, PLSWorkspace, deviance_from_parts

__all__ = ["ScaledWorkspace"]


class ScaledWorkspace:
    """PLS workspace with the user's units outside and standardized data inside.

    Parameters
    ----------
    X : (n, p) fixed-effects matrix.  y : (n,) response with the offset subtracted.
    blocks : list of ``(codes, Xk, n_levels)`` as for :class:`PLSWorkspace`.
    weights : (n,) prior weights or None.  reml : REML or ML criterion.
    scaling : a precomputed :class:`Standardization` (default: from these data).
    structures : per term, its :class:`~mixedfx.core.structures.CovStructure` (default: unstructured).
    """

    def __init__(self, X, y, blocks, weights=None, reml=True, scaling: Standardization | None = None,
                 structures=None, **kw):
        X = np.asarray(X, float)
        kinds = None if structures is None else [st.scaling for st in structures]
        self.scaling = scaling if scaling is not None else standardize(X, y, [b[1] for b in blocks], weights,
                                                                      term_kinds=kinds)
        s = self.scaling
        self.X = s.fixed(X)
        self.blocks = [(codes, s.term(k, Xk), nl) for k, (codes, Xk, nl) in enumerate(blocks)]
        self.weights = s.weights(weights)
        self._npos = 0 if weights is None else int(np.count_nonzero(np.asarray(weights) > 0))
        self.internal = PLSWorkspace(self.X, s.response(y), self.blocks, weights=self.weights, reml=reml,
                                     structures=structures, **kw)
        self._share(reml)

    @classmethod
    def from_blocks(cls, sums: BlockSums, scaling: Standardization, sizes, nlevels, reml=True, structures=None,
                    **kw) -> "ScaledWorkspace":
        """A workspace from summed cross-products (no rows: ``X``, ``blocks``, ``weights`` are None).

        Parameters
        ----------
        sums : the blocks of ``A`` over all rows (:func:`mixedfx.core.blocksum.sum_blocks`), formed in
            the internal units of ``scaling`` (standardized X, terms, response and weights).
        scaling : the data's :class:`Standardization` (e.g.
            :func:`mixedfx.core.moments.standardize_from_moments`).
        sizes, nlevels : per term, its number of columns ``p_k`` and of levels.
        reml, structures, kw : as for the constructor (``kw`` goes to :meth:`PLSWorkspace.from_blocks`).
        """
        self = cls.__new__(cls)
        self.scaling = scaling
        self.X = self.blocks = self.weights = None
        self._npos = int(sums.npos)
        self.internal = PLSWorkspace.from_blocks(sums, sums.n, sums.p, sizes, nlevels, sums.log_weights, reml=reml,
                                                 structures=structures, **kw)
        self._share(reml)
        return self

    def _share(self, reml) -> None:
        self.reml = reml
        self.layout = self.internal.layout
        self.sizes = self.internal.sizes
        self.nlevels = self.internal.nlevels
        self.p = self.internal.p
        self.qr = self.internal.qr

    # ------------------------------------------------------------ delegation
    @property
    def n(self) -> int:
        return self.internal.n

    @n.setter
    def n(self, value: int) -> None:      # case deletion: rows with weight 0 no longer count
        self.internal.n = value

    def theta_to_internal(self, theta) -> np.ndarray:
        return self.scaling.theta_to_internal(theta, self.layout)

    def theta_to_user(self, theta_int) -> np.ndarray:
        return self.scaling.theta_to_user(theta_int, self.layout)

    def update(self, theta) -> "ScaledWorkspace":
        """Factor for the user's ``theta``."""
        self.internal.update(self.theta_to_internal(theta))
        return self

    def update_internal(self, theta_int) -> "ScaledWorkspace":
        self.internal.update(theta_int)
        return self

    def objective(self, theta) -> float:
        return self.update(theta).objective_value

    def reweight(self, weights, y) -> "ScaledWorkspace":
        """New prior weights and response (offset subtracted), in the user's units."""
        s = self.scaling
        self._npos = 0 if weights is None else int(np.count_nonzero(np.asarray(weights) > 0))
        self.internal.reweight(s.weights(weights), s.response(y))
        return self

    # --------------------------------------------------------- user's units
    @property
    def theta(self) -> np.ndarray | None:
        t = self.internal.theta
        return None if t is None else self.theta_to_user(t)

    @property
    def shift(self) -> float:
        """User criterion minus internal criterion."""
        return self.scaling.objective_shift(self.n, self.p, self.reml)

    @property
    def objective_value(self) -> float:
        v = self.internal.objective_value
        return v if v is None or v >= FAILED_OBJECTIVE else v + self.shift

    def deviance(self, sigma: float | None = None, reml: bool | None = None) -> float:
        """The criterion in the user's units at the current theta (:func:`deviance_from_parts`)."""
        v = self.internal.objective_value
        if v is None or v >= FAILED_OBJECTIVE:
            return FAILED_OBJECTIVE
        return deviance_from_parts(self, sigma, reml)

    @property
    def logdet_Z(self) -> float:
        return self.internal.logdet_Z

    @property
    def logdet_X(self) -> float:
        """``log|R_X|^2`` of the user's X and weights."""
        return self.internal.logdet_X + self.p * np.log(self.scaling.w_scale) + 2.0 * self.scaling.log_det_d

    @property
    def log_weights(self) -> float:
        """``sum log w`` over the positive user weights."""
        return self.internal.log_weights + self._npos * np.log(self.scaling.w_scale)

    @property
    def pwrss(self) -> float:
        s = self.scaling
        return self.internal.pwrss * s.y_scale ** 2 * s.w_scale

    @property
    def sigma2(self) -> float:
        s = self.scaling
        return self.internal.sigma2 * s.y_scale ** 2 * s.w_scale

    def beta(self) -> np.ndarray:
        return self.scaling.beta_to_user(self.internal.beta())

    def vcov_beta(self, scale: float | None = None) -> np.ndarray:
        s = self.scaling
        inner = None if scale is None else scale / (s.y_scale ** 2 * s.w_scale)
        return s.vcov_to_user(self.internal.vcov_beta(scale=inner))

    def b_blocks(self) -> list[np.ndarray]:
        return self.scaling.b_to_user(self.internal.b_blocks())

    def cond_var_blocks(self, scale: float | None = None, last_use: bool = False) -> list[np.ndarray]:
        s = self.scaling
        inner = None if scale is None else scale / (s.y_scale ** 2 * s.w_scale)
        return s.cond_var_to_user(self.internal.cond_var_blocks(scale=inner, last_use=last_use))
