"""A small LMM's criterion in one compiled call (issue 15: less overhead per evaluation).

On models such as sleepstudy's ``(Days | Subject)`` an evaluation of
:meth:`~mixedfx.core.workspace.PLSWorkspace.objective` does a few microseconds of arithmetic
inside 30-70 us of Python and numpy call overhead (some 40 array operations on 18 levels), and
BOBYQA with the Newton polish evaluates it 40-60 times.  :func:`compiled_criterion` returns the
same criterion as one numba call (:mod:`mixedfx.core._small_kernels`) on the workspace's blocks
(the sparse later-term blocks copied densely, once per optimization): 1-3 us per evaluation.

It is used by the optimizers only (:func:`mixedfx.models.optimizers.optimize_theta`); the fit's
own workspace is then factored by the general path at the optimum, so everything read from it
(estimates, conditional variances, gradients) comes from one code path.  The compiled loops are
dense, ``O(q_r^2 q_0 + q_r^3)`` for ``q_r`` later-term columns, so they are used only where their
predicted time is below the general path's Python overhead alone (:func:`pays`); bigger models keep
BLAS and the sparse updates.  Without numba (the
optional ``fast`` extra) :func:`compiled_criterion` returns None and the workspace's own
``objective`` is used.  Both give the same criterion to rounding: ~1e-15 relative for theta of
moderate size, up to ~3e-9 at ``|theta| ~ 1e4``, where both are that far from the exact value.

Loading numba costs the process about 100 MB of memory and 0.15-0.3 s, once, at the first small
fit (the kernel itself is compiled at the first use after installation and cached on disk).  The
environment variable ``MIXEDFX_COMPILED_CRITERION=0`` keeps small fits on the general path.
"""
from __future__ import annotations

import importlib.util
import os

import numpy as np

from .structures import Unstructured
from .criterion import FAILED_OBJECTIVE, profiled_criterion

__all__ = ["compiled_criterion", "fused_seconds", "general_seconds_floor", "pays"]

#: on unless the environment sets ``MIXEDFX_COMPILED_CRITERION=0`` (loading numba adds ~100 MB to the
#: process and ~0.2 s to the first fit that uses it); tests and comparisons set it directly
ENABLED = os.environ.get("MIXEDFX_COMPILED_CRITERION", "1") != "0"

_KERNEL = []
_COMPILED_ONCE = []


def _kernel():
    """The compiled kernel, or None without numba (looked up once)."""
    if not _KERNEL:
        fn = None
        if importlib.util.find_spec("numba") is not None:
            try:
                from ._small_kernels import small_criterion as fn
            except Exception:       # numba present but unusable (a numpy it does not support, no cache location)
                fn = None
        _KERNEL.append(fn)
    return _KERNEL[0]


def fused_seconds(ws) -> float:
    """Predicted seconds of one compiled evaluation of the PLS workspace ``ws``.

    About 3 us per call, 2.5 ns per multiply-add of the per-level work of block 0 (short loops of
    ``p0``) and 0.7 ns per multiply-add of the loops over the later-term columns (measured on this
    project's 2-core machine: within 15% on 11 shapes from 650 to 2e6 multiply-adds).
    """
    p0, l0, q0, qr, p1 = ws.sizes[0], ws.nlevels[0], ws.q0, ws.qr, ws.p + 1
    per_level = l0 * (p0 ** 3 + p0 * p0 * p1) + p1 * p1 * q0
    dense = l0 * p0 * p0 * qr
    if ws.has_rest:
        pr = max(ws.sizes[1:])
        dense += qr * qr * (q0 / 2.0 + 2 * pr) + qr ** 3 / 6.0 + qr * p1 * (q0 + qr + pr)
    return 3e-6 + 2.5e-9 * per_level + 0.7e-9 * dense


def general_seconds_floor(ws) -> float:
    """A floor under the seconds of one evaluation by the workspace's own ``update`` (its Python and
    numpy overhead alone, measured): 20 us, +15 us for a two-column first term (closed form), +60 us
    and 0.25 us a level for a wider one (batched LAPACK), +25 us with later terms, +100 us when they
    are vector-valued."""
    p0 = ws.sizes[0]
    vector_rest = ws.has_rest and max(ws.sizes[1:]) > 1
    first = 15e-6 if p0 == 2 else (60e-6 + 0.25e-6 * ws.nlevels[0] if p0 > 2 else 0.0)
    return 20e-6 + first + 25e-6 * ws.has_rest + 100e-6 * vector_rest


def pays(ws) -> bool:
    """Whether the compiled criterion is predicted to be faster than the workspace's own evaluation
    (:func:`fused_seconds` at most :func:`general_seconds_floor`); from the dimensions only, so a
    model always takes the same route on a given installation."""
    return fused_seconds(ws) <= general_seconds_floor(ws)


def compiled_criterion(ws):
    """``theta -> criterion`` of the PLS workspace ``ws`` as one compiled call, or None.

    None when numba is not installed, when :data:`ENABLED` is off, when the later terms use the
    sparse path, or when the compiled loops would not be faster (:func:`pays`).  The function reads the
    workspace's blocks as they are now (the dense ones in place, the sparse ones copied densely):
    build it for one optimization, as the blocks of an LMM do not change during one (a reweighted
    workspace gets new arrays, never edits these).  It returns :data:`FAILED_OBJECTIVE` where the
    workspace's ``objective`` does (a block not positive definite).
    """
    if not ENABLED or getattr(ws, "rest_sparse", True) or not pays(ws):
        return None
    kernel = _kernel()
    if kernel is None:
        return None
    sizes = np.asarray(ws.sizes, np.int64)
    nlev = np.asarray(ws.nlevels, np.int64)
    lam_off = np.concatenate([[0], np.cumsum(sizes * sizes)[:-1]]).astype(np.int64)
    p1, q0, qr = ws.p + 1, ws.q0, ws.qr
    A00 = np.ascontiguousarray(ws.A00, float)
    AF0 = np.ascontiguousarray(ws.AF0, float)
    AFF = np.ascontiguousarray(ws.AFF, float)
    if ws.has_rest:
        Ar0 = np.ascontiguousarray(ws.Ar0.toarray(), float)
        Arr = np.ascontiguousarray(ws._Arr_sparse.toarray(), float)
        AFr = np.ascontiguousarray(np.asarray(ws.AFr), float)
    else:
        Ar0, Arr, AFr = np.zeros((0, q0)), np.zeros((0, 0)), np.zeros((p1, 0))
    bufs = (np.empty((p1, q0)), np.empty((qr, q0)), np.empty((qr, qr)), np.empty((qr, p1)), np.empty((p1, p1)))
    layout = ws.layout
    lam = np.zeros(int(np.sum(sizes * sizes)))
    if all(isinstance(st, Unstructured) for st in layout.structures):
        # theta -> packed factors by one scatter: term k's (rows, cols) at lam_off[k] + rows p_k + cols
        where = np.concatenate([off + st.rows * st.p + st.cols for off, st in zip(lam_off, layout.structures)])

        def pack(theta):
            lam[where] = theta
            return lam
    else:
        def pack(theta):
            return np.concatenate([f.ravel() for f in layout.lambdas(theta)])
    n, p, reml, log_weights = ws.n, ws.p, ws.reml, ws.log_weights

    def criterion(theta) -> float:
        ok, logdet_z, logdet_x, pwrss = kernel(pack(np.asarray(theta, float)), lam_off, sizes, nlev, A00, AF0, AFF,
                                               Ar0, Arr, AFr, *bufs)
        if not ok:
            return FAILED_OBJECTIVE
        return profiled_criterion(logdet_z, logdet_x, pwrss, n, p, reml, log_weights)
    if not _COMPILED_ONCE:
        try:                    # the first call compiles (or loads) the kernel: a failure there means no kernel
            criterion(layout.initial())
        except Exception:
            _KERNEL[0] = None
            return None
        _COMPILED_ONCE.append(True)
    return criterion
