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
* :func:`lfactorial`: ``log(k!)`` from a table for whole ``k < 1024`` (the table holds scipy's values);
* :func:`psi_diffs`: ``psi(x + d) - psi(x)`` and ``psi1(x + d) - psi1(x)`` (the negative binomial and
  beta-binomial ``mu``-derivatives) accurate relative to the difference also for huge ``x``, where
  subtracting the two values loses all digits (``x = mu / phi`` as ``phi -> 0``, the Poisson limit).

Functions of several arrays are usually called once on a :func:`stack` of them (fewer numpy calls).
"""
from __future__ import annotations

import numpy as np
from scipy import special

__all__ = ["betaln", "lgamma_ratio", "lfactorial", "trigamma", "stirling_corr", "lgamma_shift", "stack",
           "psi_diffs"]

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


def stack(*arrays):
    """The arrays broadcast together and stacked along a new first axis (one special-function call on the
    stack instead of one per array; cheaper than ``np.stack(np.broadcast_arrays(...))``)."""
    shape = np.shape(arrays[0])
    if all(np.shape(a) == shape for a in arrays[1:]):
        return np.array(arrays, dtype=float)
    return np.array(np.broadcast_arrays(*arrays), dtype=float)


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
    c = stirling_corr(np.array((L, t)))
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


_DIFF_X = 10.0  # psi_diffs: the differenced asymptotic series from here on


def _poly(u, coefs):
    """``sum_k coefs[k] u^(k+1)`` (Horner, in place)."""
    out = u * coefs[-1]
    for c in coefs[-2::-1]:
        out += c
        out *= u
    return out


def _psi_diffs_large(x, d):
    """:func:`psi_diffs` for ``x, x + d >= 10``: the asymptotic series of both, differenced analytically
    (``log1p(d/x)`` and ``d / (x (x + d))``), so each term is proportional to ``d``."""
    xd = x + d
    p = x * xd
    iz = 1.0 / np.array((xd, x))
    iz2 = iz * iz
    s = _poly(iz2, _BS)                     # psi(z) = log z - 1/(2z) - s(z)
    r = iz * _poly(iz2, _B)                 # psi1(z) = 1/z + 1/(2z^2) + r(z)
    t = d / p
    d1 = np.log1p(d / x) + 0.5 * t - (s[0] - s[1])
    d2 = (r[0] - r[1]) - t * (1.0 + 0.5 * (x + xd) / p)
    return d1, d2


_BS = tuple(b / (2 * k) for k, b in enumerate(_B, start=1))


def psi_diffs(x, d):
    """``(psi(x + d) - psi(x), psi1(x + d) - psi1(x))`` (digamma and trigamma differences) for ``x > 0``,
    ``x + d > 0``, exactly 0 for ``d = 0``.

    For ``x, x + d >= 10`` the differences of the asymptotic series with the leading terms differenced
    analytically: accurate relative to the difference however large ``x`` is (subtracting two digamma
    values of size ``log x`` loses ``log10(x / d)`` digits); below, the difference of the values
    (:func:`scipy.special.digamma`, :func:`trigamma`), whose relative error is at most about
    ``eps * 10 log(x + d) / d`` there.
    """
    x, d = np.broadcast_arrays(_f(x), _f(d))
    xd = x + d
    big = np.minimum(x, xd) >= _DIFF_X
    if big.all():
        return _psi_diffs_large(x, d)
    if not big.any():
        v = np.array((xd, x))
        dg, tg = special.digamma(v), trigamma(v)
        return dg[0] - dg[1], tg[0] - tg[1]
    d1, d2 = np.empty(x.shape), np.empty(x.shape)
    i, j = np.nonzero(big), np.nonzero(~big)
    d1[i], d2[i] = _psi_diffs_large(x[i], d[i])
    v = np.array((xd[j], x[j]))
    dg, tg = special.digamma(v), trigamma(v)
    d1[j], d2[j] = dg[0] - dg[1], tg[0] - tg[1]
    return d1, d2
