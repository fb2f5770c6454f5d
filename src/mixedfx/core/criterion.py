"""The profiled LMM criterion from the parts of a factorization (one formula for every path).

:class:`~mixedfx.core.workspace.PLSWorkspace` and the compiled small-model criterion
(:mod:`mixedfx.core.fused`) both end here, so REML and ML are written once.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["profiled_criterion", "FAILED_OBJECTIVE"]

#: Value returned when a factorization fails inside the optimizer: large but finite,
#: so that BOBYQA's quadratic model is not destroyed by an infinity.
FAILED_OBJECTIVE = 1e15


def profiled_criterion(logdet_Z: float, logdet_X: float, pwrss: float, n: int, p: int, reml: bool,
                       log_weights: float, sigma: float | None = None) -> float:
    """The deviance from the factor's parts ``log|L_Z|^2``, ``log|R_X|^2`` and ``r^2``.

    With ``nu = n - p`` (REML) or ``n`` (ML)::

        sigma given:   log|L_Z|^2 [+ log|R_X|^2] + nu log(2 pi sigma^2) + r^2 / sigma^2 - sum log w
        sigma = None:  log|L_Z|^2 [+ log|R_X|^2] + nu (1 + log(2 pi r^2 / nu)) - sum log w

    (the second is the first at its optimum ``sigma^2 = r^2 / nu``: the profiled criterion).
    Returns :data:`FAILED_OBJECTIVE` where it is undefined.
    """
    nu = n - p if reml else n
    r2 = pwrss
    if not r2 > 0 or (sigma is not None and not 0 < sigma < np.inf):
        return FAILED_OBJECTIVE
    if sigma is None:
        val = logdet_Z + nu * (1.0 + math.log(2.0 * math.pi * r2 / nu)) - log_weights
    else:
        val = logdet_Z + nu * np.log(2.0 * np.pi * sigma ** 2) + r2 / sigma ** 2 - log_weights
    if reml:
        val += logdet_X
    val = float(val)
    return val if math.isfinite(val) else FAILED_OBJECTIVE
