"""User entry point for generalized estimating equations: :func:`gee`."""
from __future__ import annotations

from .models.gee import fit_gee_model
from .results.gee_result import GEEResult, check_vcov_type

__all__ = ["gee"]


def gee(formula: str, data, groups: str, family="gaussian", corstr: str = "independence", time: str | None = None,
        weights=None, link: str | None = None, std_err: str = "robust", maxiter: int = 100, tol: float = 1e-8,
        data_name: str | None = None) -> GEEResult:
    r"""Fit a population-averaged model by generalized estimating equations (geepack's ``geeglm``).

    The marginal mean ``g(E[y_ij]) = x_ij' beta`` (no random effects) is estimated from the
    estimating equations

    .. math::

        \sum_i D_i' V_i^{-1} (y_i - \mu_i) = 0, \qquad
        D_i = \partial \mu_i / \partial \beta', \qquad
        V_i = \phi A_i^{1/2} R_i(\alpha) A_i^{1/2},

    with ``A_i = diag(V(mu_ij) / w_ij)`` and a *working* correlation ``R_i(alpha)`` within
    cluster ``i``.  beta is consistent even when ``R`` is wrong; the robust (sandwich)
    covariance ``B^{-1} (sum_i U_i U_i') B^{-1}`` (``B = sum D' V^{-1} D``, ``U_i`` the cluster
    scores) stays valid too.  As in geepack, each iteration takes one Fisher-scoring step for
    beta, then moment estimates from the Pearson residuals ``r = (y - mu) / sqrt(V(mu))``:
    ``phi = sum w r^2 / sum w`` and, with ``z_jk = r_j r_k / phi`` over the pairs of a cluster,
    exchangeable ``alpha`` = mean of ``z`` over all pairs, unstructured ``alpha_jk`` = mean over
    the pairs at times (j, k), and AR(1) ``alpha`` the root of
    ``sum d alpha^(d-1) (z - alpha^d) = 0`` over all pairs (``d`` their time distance); no
    degrees-of-freedom corrections (geepack's choices; see the GEE page).

    Parameters
    ----------
    formula : str
        ``"y ~ x1 + x2"`` with R's formula language (factors, interactions, ``offset(log(t))``,
        transformations); binomial responses may be 0/1, booleans, a two-level factor,
        ``cbind(successes, failures)`` or proportions with ``weights=`` trials.  Random-effect
        terms ``(1 | g)`` are an error: clusters come from ``groups``.
    data : data frame
        pandas, polars, pyarrow or a dict of columns; never modified.  Rows with missing values
        in the variables used are dropped (a :class:`~mixedfx.MissingDataWarning` gives the count).
    groups : str
        Column whose values define the clusters.  Rows of a cluster need not be contiguous
        (geepack's ``id`` forms clusters from runs of equal consecutive values instead).
    family : str or Family
        ``"gaussian"`` (default), ``"binomial"``, ``"poisson"`` or ``"Gamma"`` (``"gamma"``), or a
        :mod:`mixedfx.families` object of these; ``link=`` changes the link.
    corstr : str
        Working correlation: ``"independence"`` (default), ``"exchangeable"`` (every pair
        ``alpha``), ``"ar1"`` (``alpha^|d|``) or ``"unstructured"`` (one ``alpha_jk`` per pair of
        times).
    time : str, optional
        Column giving the order within a cluster.  Its distinct values, sorted, are the times
        1..T of the correlation matrix (so a missed visit leaves a gap: AR(1) distances are
        differences of these ranks; unstructured correlations are indexed by them).  Without it
        the time of a row is its position in its cluster, in data order (geepack's
        ``waves = NULL``).  Rows are sorted by cluster and time internally.  Text times are
        refused (``"week10"`` sorts before ``"week2"``): give numbers, dates, or a categorical
        whose categories are in time order.
    weights : str or array, optional
        Prior weights (``Var(y) = phi V(mu) / w``); for binomial proportions the trials.
    link : str, optional
        Link name (default: the family's canonical link).
    std_err : str
        Standard errors shown by ``se``, ``summary()`` and tests: ``"robust"`` (alias
        ``"san.se"``, the default sandwich), ``"naive"`` (model-based), ``"mancl-derouen"``
        (``"md"``) or ``"kauermann-carroll"`` (``"kc"``), small-sample corrected sandwiches
        for few clusters.  Every type is also available from ``vcov(type=...)``.
    maxiter, tol : int, float
        Iteration limit and convergence tolerance: stop when the beta step is below ``tol``
        model-based standard errors and phi and alpha change by less than ``tol`` (relative,
        absolute).  Not converging warns (:class:`~mixedfx.ConvergenceWarning`) and sets
        ``converged = False``.
    data_name : str, optional
        Name shown in the summary.

    Returns
    -------
    GEEResult
        ``coef``, ``se``, ``vcov(type=)``, ``coef_table()``, ``corr_params``, ``scale``,
        ``qic``, ``wald_test()``, ``anova()``, ``predict()``, ``summary()``.

    Raises
    ------
    DesignError
        The formula has random effects, a column is missing, the response is impossible for
        the family (binomial outside [0, 1], negative counts), a cluster repeats a time.
    ValueError
        Unknown ``family``, ``corstr`` or ``std_err`` (the message lists the valid ones).

    Examples
    --------
    >>> import mixedfx as mfx
    >>> g = mfx.gee("resp ~ age + smoke", mfx.datasets.load("ohio"), groups="id", family="binomial",
    ...             corstr="exchangeable")
    >>> round(float(g.corr_params["alpha"]), 4)
    0.3543
    """
    std_err = check_vcov_type(std_err)
    model = fit_gee_model(formula, data, groups, family=family, corstr=corstr, time=time, weights=weights,
                          link=link, maxiter=maxiter, tol=tol)
    return GEEResult(model, std_err=std_err, data_name=data_name, data=data)
