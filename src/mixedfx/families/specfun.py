"""Fast, accurate special functions for the response distributions' per-observation log densities.

The Laplace engine evaluates the log density and its ``mu``-derivatives on every row hundreds of
times per fit, so these avoid the slow paths of :mod:`scipy.special` (``polygamma(1, x)`` goes through
the Hurwitz zeta function and costs ~250 ns a value) and evaluate careful branches only on the rows
that need them:

* :func:`trigamma`: the recurrence ``psi1(x) = psi1(x + 1) + 1/x^2`` up to ``x >= 8``, then the
  asymptotic series ``1/x + 1/(2x^2) + sum_k B_2k / x^(2k+1)`` through ``B_20`` (relative truncation error
  below ``1e-16`` there);
* :func:`betaln`: scipy's ``betaln`` (log of a ratio of gamma functions, accurate) while both arguments
  are below 20, Stirling's series with the large terms combined analytically beyond (where a difference
  of log-gamma values of size ``a log a`` would lose digits), each formula on its own rows only;
* :func:`lfactorial`: ``log(k!)`` from a table for whole ``k < 1024`` (the table holds scipy's values).
"""
from __future__ import annotations

import numpy as np
from scipy import special

__all__ = ["betaln", "lgamma_ratio", "lfactorial", "trigamma", "stirling_corr", "lgamma_shift"]

_LOG_SQRT_2PI = 0.5 * float(np.log(2 * np.pi))
_BIG = 20.0     # from here on the Stirling series below is accurate to 1e-17
_S = (1 / 12, -1 / 360, 1 / 1260, -1 / 1680, 1 / 1188, -691 / 360360)

_TRI_X = 8.0    # the trigamma series is used from here on
# B_2k, k = 1..10: the terms of psi1(x) - 1/x - 1/(2x^2) are B_2k / x^(2k+1)
_B = (1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6, -3617 / 510, 43867 / 798, -174611 / 330)

_NFACT = 1024
_LFACT = special.gammaln(np.arange(_NFACT, dtype=float) + 1.0)


def _f(x):
    return np.asarray(x, dtype=float)


def stirling_corr(x):
    """``lgamma(x) - [(x - 1/2) log x - x + log(2 pi)/2]`` for ``x >= 20`` (smaller ``x`` are treated as 20)."""
    z = 1.0 / np.maximum(x, _BIG)
    z2 = z * z
    return z * (_S[0] + z2 * (_S[1] + z2 * (_S[2] + z2 * (_S[3] + z2 * (_S[4] + z2 * _S[5])))))


def lgamma_shift(big, s):
    """``lgamma(big + s) - lgamma(big)`` for ``big >= 20``, ``s >= 0``, without the cancellation of two
    large log-gamma values."""
    big = np.maximum(big, _BIG)
    t = big + s
    return (big - 0.5) * np.log1p(s / big) + s * np.log(t) - s + stirling_corr(t) - stirling_corr(big)


def _betaln_large(s, L):
    """``log B(s, L)`` for ``L >= 20``, ``s <= L`` (1-D arrays): ``lgamma(s) - [lgamma(L + s) - lgamma(L)]``
    with the shift in Stirling's series and, when ``s >= 20`` too, ``lgamma(s)`` in it as well (the terms
    of size ``s log s`` then cancel analytically)."""
    t = s + L
    c = stirling_corr(np.stack((L, t)))
    out = c[0] - c[1] - (L - 0.5) * np.log1p(s / L)
    lt = np.log(t)
    both = s >= _BIG
    if not both.any():
        out += special.gammaln(s) - s * lt + s
    elif both.all():
        out += _LOG_SQRT_2PI - 0.5 * lt + (s - 0.5) * np.log(s / t) + stirling_corr(s)
    else:
        out += np.where(both, _LOG_SQRT_2PI - 0.5 * lt + (s - 0.5) * np.log(s / t) + stirling_corr(s),
                        special.gammaln(s) - s * lt + s)
    return out


def betaln(a, b):
    """``log B(a, b)`` for ``a, b > 0``, accurate also when an argument is large (scipy's ``betaln`` subtracts
    log-gamma values of size ``a log a`` there, losing digits): Stirling's series with the large terms
    combined, on the rows with an argument of at least 20 only."""
    a, b = np.broadcast_arrays(_f(a), _f(b))
    shape = a.shape
    a, b = a.ravel(), b.ravel()
    L = np.maximum(a, b)
    small = L < _BIG            # NaN goes to the large branch, which propagates it
    if small.all():
        return special.betaln(a, b).reshape(shape)
    s = np.minimum(a, b)
    if not small.any():
        return _betaln_large(s, L).reshape(shape)
    out = np.empty(a.shape)
    i = np.flatnonzero(small)
    out[i] = special.betaln(a[i], b[i])
    j = np.flatnonzero(~small)
    out[j] = _betaln_large(s[j], L[j])
    return out.reshape(shape)


def lgamma_ratio(y, r):
    """``lgamma(y + r) - lgamma(r) - lgamma(y + 1)`` for ``y >= 0``, ``r > 0``: ``-log y - log B(y, r)``
    (exactly 0 for ``y = 0``)."""
    y, r = np.broadcast_arrays(_f(y), _f(r))
    pos = y > 0
    ys = np.where(pos, y, 1.0)
    return np.where(pos, -np.log(ys) - betaln(ys, r), 0.0)


def lfactorial(k):
    """``log(k!) = lgamma(k + 1)``; a table look-up when every ``k`` is a whole number below 1024."""
    k = _f(k)
    if k.size and k.min() >= 0 and k.max() < _NFACT:
        i = k.astype(np.intp)
        if np.array_equal(i, k):
            return _LFACT[i]
    return special.gammaln(k + 1.0)


def trigamma(x):
    """``psi1(x) = d^2/dx^2 log Gamma(x)`` for ``x > 0`` (``scipy.special.polygamma(1, x)`` otherwise):
    the recurrence up to ``x >= 8`` on all rows at once, then the asymptotic series; relative error a
    few units of the last place."""
    x = _f(x)
    if x.size == 0:
        return x.copy()
    lo = float(x.min())
    if not lo > 0:              # zero, negative or NaN arguments: scipy's general routine
        return special.polygamma(1, x)
    shifts = int(np.ceil(_TRI_X - lo)) if lo < _TRI_X else 0
    if shifts:
        z = x + 0.0
        acc = np.zeros(x.shape)
        t = np.empty(x.shape)
        with np.errstate(over="ignore"):
            for _ in range(shifts):
                np.divide(1.0, z, out=t)
                t *= t
                acc += t
                z += 1.0
    else:
        z, acc = x, 0.0
    iz = 1.0 / z
    iz2 = iz * iz
    ser = iz2 * _B[9]           # Horner in 1/x^2, in place
    for c in _B[8:0:-1]:
        ser += c
        ser *= iz2
    ser += _B[0]
    for c in (0.5, 1.0):
        ser *= iz
        ser += c
    ser *= iz
    ser += acc
    return ser
