"""Exact restricted likelihood ratio test for one variance component (RLRsim's ``exactRLRT``).

``exact_rlrt(m)`` tests ``H0: var(b) = 0`` in a linear mixed model with a single scalar
random-effects term (``(1 | g)``, ``(0 + x | g)``): the statistic is
``RLRT = 2 (logLik_REML(m) - logLik_REML(lm))`` (truncated at 0), the null model being the linear
model with the same fixed effects, and the p-value the fraction of draws from its exact
finite-sample null distribution (Crainiceanu & Ruppert 2004) strictly above the observed value.

``exact_rlrt(m, m_alt, m_null)`` tests one variance component in a model with several, the
convention of RLRsim (Scheipl, Greven & Kuechenhoff 2008): ``m`` holds *only* the tested term,
``m_alt`` the full model and ``m_null`` the full model without the tested term; the statistic is
``2 (logLik_REML(m_alt) - logLik_REML(m_null))`` and its null distribution is simulated from ``m``'s
design as if the tested component were the only one (an approximation that simulation studies
found accurate when the nuisance components are not negligible).  The numerics are in
:mod:`mixedfx.core.rlrt`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.rlrt import lambda_grid, rlrt_eigenvalues, simulate_rlrt
from ..core.workspace import random_effects_matrix
from .parallel import check_count

__all__ = ["ExactRLRTResult", "exact_rlrt", "lm_reml_loglik"]


@dataclass(frozen=True, eq=False)
class ExactRLRTResult:
    """Result of :func:`exact_rlrt`.

    Attributes
    ----------
    statistic : observed RLRT.  pvalue : fraction of the null sample strictly above it.
    nsim : number of null draws.  sample : (nsim,) the simulated null sample.
    term : the tested random-effects term.  eigenvalues : normalized non-zero eigenvalues ``mu``
    of ``Z' P0 Z`` (largest 1).  n, p : observations and fixed effects.
    reml_alt, reml_null : restricted log-likelihoods of the alternative and the null model.
    """
    statistic: float
    pvalue: float
    nsim: int
    sample: np.ndarray = field(repr=False)
    term: str
    eigenvalues: np.ndarray = field(repr=False)
    n: int
    p: int
    reml_alt: float
    reml_null: float

    @property
    def mc_se(self) -> float:
        """Monte Carlo standard error of the p-value, ``sqrt(p (1 - p) / nsim)``."""
        return float(np.sqrt(self.pvalue * (1 - self.pvalue) / self.nsim))

    def summary(self) -> str:
        """A readable report (R's ``htest`` print)."""
        p = f"< {1 / self.nsim:.3g}" if self.pvalue == 0 else f"{self.pvalue:.4g}"
        return "\n".join([
            "Exact restricted likelihood ratio test (simulated finite-sample null distribution;",
            "Crainiceanu & Ruppert 2004, as RLRsim's exactRLRT)",
            f"H0: the variance of {self.term} is 0",
            f"RLRT = {self.statistic:.4f}, p-value = {p} (based on {self.nsim} simulated values)",
            f"null sample: P(RLRT = 0) = {np.mean(self.sample == 0):.3f}, "
            f"95% quantile = {np.quantile(self.sample, 0.95):.3f}"])

    def __repr__(self) -> str:
        return self.summary()


def _check_lmm(m, what: str) -> None:
    fit = getattr(m, "fit", None)
    if fit is None or not hasattr(fit, "design"):
        raise TypeError(f"exact_rlrt(): {what} must be a fitted model from mixedfx.lmer(), got {type(m).__name__}")
    if getattr(m, "family", None) is not None or not hasattr(fit, "reml"):
        raise NotImplementedError(f"exact_rlrt(): {what} is a generalized (or non-Gaussian) model; the exact RLRT "
                                  "is for linear mixed models (use mfx.anova(..., method='bootstrap') or "
                                  "boundary=True for others)")
    if not fit.reml:
        raise ValueError(f"exact_rlrt(): {what} was fitted by maximum likelihood; the test uses restricted "
                         "likelihoods: refit with reml=True (m.update(reml=True))")
    d = fit.design
    if getattr(d, "X", None) is None or getattr(d, "y", None) is None:
        raise ValueError(f"exact_rlrt(): {what} carries no data (a loaded fit?); refit it with mixedfx.lmer()")
    if getattr(fit, "residual", None) is not None or getattr(d, "residual", None) is not None:
        raise NotImplementedError(f"exact_rlrt(): {what} has a residual correlation/variance model "
                                  "(correlation= or disp=); the exact RLRT assumes i.i.d. errors")
    if getattr(d, "weights", None) is not None and not np.allclose(d.weights, 1.0):
        raise NotImplementedError(f"exact_rlrt(): {what} has prior weights; the exact RLRT assumes i.i.d. errors "
                                  "with equal variances")


def _key(block) -> tuple:
    return block.group_label, tuple(block.cnames)


def _label(block) -> str:
    text = getattr(block.term, "text", None)
    if text:
        return f"({text})"
    lhs = " + ".join("1" if c == "(Intercept)" else c for c in block.cnames)
    return f"({lhs if block.cnames[0] == '(Intercept)' else '0 + ' + lhs} | {block.group_label})"


def lm_reml_loglik(X: np.ndarray, y: np.ndarray) -> float:
    """Restricted log-likelihood of the linear model ``y = X beta + e`` at its REML estimate
    (R's ``logLik(lm, REML = TRUE)``): ``-((n-p) log(2 pi RSS/(n-p)) + log det(X'X) + n - p) / 2``."""
    n, p = X.shape
    Q, R = np.linalg.qr(X)
    res = y - Q @ (Q.T @ y)
    rss = float(res @ res)
    logdet = 2.0 * float(np.sum(np.log(np.abs(np.diag(R)))))
    return -0.5 * ((n - p) * np.log(2 * np.pi * rss / (n - p)) + logdet + (n - p))


def _same_fixed(a, b, what: str) -> None:
    da, db = a.fit.design, b.fit.design
    if da.y.shape != db.y.shape or not np.allclose(da.y, db.y):
        raise ValueError(f"exact_rlrt(): {what} were not fitted to the same observations (response and rows must "
                         "agree; check missing values)")
    if tuple(da.xnames) != tuple(db.xnames) or da.X.shape != db.X.shape or not np.allclose(da.X, db.X):
        raise ValueError(f"exact_rlrt(): the fixed effects of {what} differ ({list(da.xnames)} vs "
                         f"{list(db.xnames)}); restricted likelihoods are only comparable with identical fixed "
                         "effects")


def exact_rlrt(m, m_alt=None, m_null=None, nsim: int = 10000, seed=None, log_grid_hi: float = 8.0,
               log_grid_lo: float = -10.0, gridlength: int = 200) -> ExactRLRTResult:
    """Exact restricted likelihood ratio test that one random-effect variance is zero.

    Parameters
    ----------
    m : REML-fitted linear mixed model with exactly one scalar random-effects term (``(1 | g)``,
        ``(0 + x | g)``): alone, the model under the alternative; with ``m_alt`` and ``m_null``,
        the model containing only the tested term (RLRsim's convention).
    m_alt, m_null : for a model with several variance components, the full model and the model
        without the tested term (same fixed effects and data, REML fits); give both or neither.
    nsim : number of draws from the null distribution (RLRsim's default 10,000).
    seed : seed or numpy Generator for the simulation.
    log_grid_hi, log_grid_lo, gridlength : the grid of ``lambda = var(b) / sigma^2`` (on the scale
        of the largest eigenvalue) over which each simulated likelihood ratio is maximized
        (RLRsim's defaults).

    Returns
    -------
    :class:`ExactRLRTResult` with ``statistic``, ``pvalue`` (fraction of the null ``sample``
    strictly greater than the statistic, as RLRsim: 0 when no draw exceeds it; its Monte Carlo
    error is ``mc_se``), ``nsim`` and ``sample``.

    Notes
    -----
    The null distribution is exact (up to Monte Carlo error) for a single variance component and
    i.i.d. errors.  The tested term's effects are taken as independent with equal variances
    (correlated vector-valued terms such as ``(1 + x | g)`` are several variance parameters and are
    refused).  Unlike RLRsim, an observed statistic of exactly 0 still yields the simulated
    ``P(null > 0)`` (RLRsim skips the simulation and reports 1).
    """
    _check_lmm(m, "m")
    nsim = check_count(nsim)
    d = m.fit.design
    if (m_alt is None) != (m_null is None):
        raise ValueError("exact_rlrt(): give both m_alt (the full model) and m_null (the full model without the "
                         "tested term), or neither")
    if len(d.blocks) != 1:
        terms = ", ".join(_label(b) for b in d.blocks)
        raise ValueError(f"exact_rlrt(): m has {len(d.blocks)} random-effects terms ({terms}); the test is for one "
                         "variance component. For a model with several, pass m with ONLY the tested term, the full "
                         "model and the model without the tested term: exact_rlrt(m, m_alt, m_null) (RLRsim's "
                         "exactRLRT(m, mA, m0))")
    block = d.blocks[0]
    if block.p == 1 and block.structure != "us":
        raise ValueError(f"exact_rlrt(): the tested term {_label(block)} has a {block.structure}() structure; the "
                         "exact RLRT is for a plain scalar term such as (1 | g)")
    if block.p != 1:
        raise ValueError(f"exact_rlrt(): the tested term {_label(block)} has {block.p} columns (several variance and "
                         "covariance parameters); the exact RLRT tests a single variance: split it into scalar terms, "
                         f"e.g. (1 | {block.group_label}) + (0 + x | {block.group_label})")
    X = np.asarray(d.X, dtype=float)
    n, p = X.shape
    if m_alt is None:
        y = np.asarray(d.y, dtype=float)
        if d.offset is not None:
            y = y - d.offset
        reml_alt = m.loglik
        reml_null = lm_reml_loglik(X, y)
    else:
        _check_lmm(m_alt, "m_alt")
        _check_lmm(m_null, "m_null")
        _same_fixed(m_alt, m_null, "m_alt and m_null")
        _same_fixed(m, m_alt, "m and m_alt")
        extra = m_alt.df - m_null.df
        if extra == -1:
            raise ValueError(f"exact_rlrt(): m_alt has {m_alt.df} parameters and m_null {m_null.df}: m_alt and m_null "
                             "look swapped; the order is exact_rlrt(m, m_alt, m_null) with m_alt the full model "
                             "and m_null the full model without the tested term (RLRsim's exactRLRT(m, mA, m0))")
        if extra != 1:
            raise ValueError(f"exact_rlrt(): m_alt has {m_alt.df} parameters and m_null {m_null.df}; they must differ "
                             "by exactly one variance parameter (m_alt = m_null + the tested scalar term; a term with "
                             "a covariance, or several terms, is not a single-variance test)")
        alt = [_key(b) for b in m_alt.fit.design.blocks]
        null = [_key(b) for b in m_null.fit.design.blocks]
        for k in null:
            if k in alt:
                alt.remove(k)
        if alt != [_key(block)]:
            raise ValueError(f"exact_rlrt(): m's term {_label(block)} must be the one term in m_alt and not in m_null "
                             f"(m_alt minus m_null: {alt})")
        reml_alt, reml_null = m_alt.loglik, m_null.loglik
    statistic = max(0.0, 2.0 * (reml_alt - reml_null))
    Z = random_effects_matrix(np.asarray(block.codes), np.asarray(block.X, dtype=float), block.nlevels)
    mu = rlrt_eigenvalues(X, Z)
    grid = lambda_grid(log_grid_lo, log_grid_hi, gridlength)
    sample, _ = simulate_rlrt(mu, n, p, int(nsim), rng=seed, grid=grid)
    mu = mu / mu.max()
    return ExactRLRTResult(statistic=float(statistic), pvalue=float(np.mean(sample > statistic)), nsim=int(nsim),
                           sample=sample, term=_label(block), eigenvalues=mu[mu > 1e-10], n=n, p=p,
                           reml_alt=float(reml_alt), reml_null=float(reml_null))
