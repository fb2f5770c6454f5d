"""Families against scipy's distributions; links against numerical derivatives."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from mixedfx.families import LINKS, Binomial, Gamma, Gaussian, InverseGaussian, NegativeBinomial, Poisson, \
    ResponseError, get_family, get_link

RNG = np.random.default_rng(2)


@pytest.mark.parametrize("name", sorted(set(LINKS) - {"inverse_squared"}))
def test_link_inverse_and_derivative(name):
    link = get_link(name)
    eta = {"sqrt": np.array([0.3, 1.0, 2.0]), "inverse": np.array([0.5, 1.0, 2.0]),
           "1/mu^2": np.array([0.5, 1.0, 2.0])}.get(name, np.array([-1.5, -0.2, 0.4, 1.3]))
    mu = link.inverse(eta)
    np.testing.assert_allclose(link.link(mu), eta, rtol=1e-10)
    h = 1e-6
    numeric = (link.inverse(eta + h) - link.inverse(eta - h)) / (2 * h)
    np.testing.assert_allclose(link.mu_eta(eta), numeric, rtol=1e-6)


def test_loglik_matches_scipy():
    y, w, mu = np.array([0, 0.25, 0.5, 1.0]), np.array([3, 4, 2, 5.0]), np.array([0.2, 0.3, 0.6, 0.7])
    expected = stats.binom.logpmf(np.round(w * y), w, mu).sum()
    assert Binomial().loglik(y, mu, w) == pytest.approx(expected, rel=1e-12)
    c, m = np.array([0, 3, 7.0]), np.array([0.5, 2.5, 6.0])
    assert Poisson().loglik(c, m, np.ones(3)) == pytest.approx(stats.poisson.logpmf(c, m).sum(), rel=1e-12)
    g, phi = np.array([0.5, 1.5, 3.0]), 0.3
    assert Gamma().loglik(g, m, np.ones(3), phi) == pytest.approx(
        stats.gamma.logpdf(g, a=1 / phi, scale=m * phi).sum(), rel=1e-12)
    assert InverseGaussian().loglik(g, m, np.ones(3), phi) == pytest.approx(
        stats.invgauss.logpdf(g, mu=m * phi, scale=1 / phi).sum(), rel=1e-12)
    assert Gaussian().loglik(g, m, np.ones(3), phi) == pytest.approx(
        stats.norm.logpdf(g, m, np.sqrt(phi)).sum(), rel=1e-12)
    nb = NegativeBinomial(theta=2.5)
    assert nb.loglik(c, m, np.ones(3)) == pytest.approx(
        stats.nbinom.logpmf(c, 2.5, 2.5 / (2.5 + m)).sum(), rel=1e-12)


@pytest.mark.parametrize("family, y, mu", [
    (Binomial(), np.array([0.0, 1.0, 1.0]), np.array([0.2, 0.6, 0.9])),
    (Poisson(), np.array([1.0, 2.0, 5.0]), np.array([0.5, 2.5, 4.0])),
    (Gamma(), np.array([0.4, 1.0, 3.0]), np.array([0.5, 1.5, 2.0])),
    (InverseGaussian(), np.array([0.4, 1.0, 3.0]), np.array([0.5, 1.5, 2.0])),
    (Gaussian(), np.array([-1.0, 0.5, 2.0]), np.array([0.0, 0.4, 2.5])),
    (NegativeBinomial(3.0), np.array([1.0, 2.0, 5.0]), np.array([0.5, 2.5, 4.0]))])
def test_unit_deviance_is_twice_the_loglik_gap_to_the_saturated_model(family, y, mu):
    """``d(y, mu) = 2 [log f(y; mu = y) - log f(y; mu)]`` at phi = 1, and ``d(y, y) = 0``."""
    w = np.ones(1)
    for i in range(len(y)):
        yi, mi = y[i:i + 1], mu[i:i + 1]
        sat = np.clip(yi, 1e-15, 1 - 1e-15) if isinstance(family, Binomial) else yi
        gap = 2 * (family.loglik(yi, sat, w) - family.loglik(yi, mi, w))
        assert family.unit_deviance(yi, mi)[0] == pytest.approx(gap, rel=1e-8, abs=1e-10)
        assert family.unit_deviance(yi, sat)[0] == pytest.approx(0.0, abs=1e-10)


def test_names_links_and_errors():
    assert isinstance(get_family("Gamma log"), Gamma) and get_family("Gamma log").link.name == "log"
    assert get_family("binomial", "probit").link.name == "probit"
    assert get_family("inverse_gaussian").link.name == "1/mu^2"
    with pytest.raises(ValueError, match="not available for the poisson"):
        get_family("poisson", "logit")
    with pytest.raises(ValueError, match="unknown family"):
        get_family("weibull")
    with pytest.raises(ResponseError, match="non-negative"):
        Poisson().check_response(np.array([1.0, -2.0]), np.ones(2))
    with pytest.raises(ResponseError, match="whole numbers"):
        Binomial().check_response(np.array([0.5, 0.3]), np.array([3.0, 3.0]))
    with pytest.raises(ResponseError, match="positive"):
        Gamma().check_response(np.array([1.0, 0.0]), np.ones(2))


@pytest.mark.parametrize("family, y", [
    (Binomial(), np.array([0.0, 1.0, 0.25, 1.0])), (Poisson(), np.array([0.0, 2.0, 5.0, 1.0])),
    (Gamma(), np.array([0.4, 1.0, 3.0, 2.0])), (InverseGaussian(), np.array([0.4, 1.0, 3.0, 2.0])),
    (Gaussian(), np.array([-1.0, 0.5, 2.0, 0.0])), (NegativeBinomial(3.0), np.array([0.0, 2.0, 5.0, 1.0]))])
def test_mu_kernel_is_minus_half_the_deviance_up_to_a_constant(family, y):
    w = np.array([1.0, 2.0, 4.0, 1.0])
    mus = [np.array([0.3, 0.6, 0.2, 0.8]), np.array([0.5, 0.4, 0.35, 0.9])]
    if not isinstance(family, Binomial):
        mus = [np.array([0.5, 1.5, 2.5, 1.2]), np.array([0.8, 2.2, 4.0, 0.7])]
    const = [family.deviance(y, mu, w) + 2 * family.mu_kernel(y, mu, w) for mu in mus]
    assert const[0] == pytest.approx(const[1], rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("name, var", [("Gamma", lambda mu, phi, w: mu ** 2 * phi / w),
                                       ("inverse.gaussian", lambda mu, phi, w: mu ** 3 * phi / w),
                                       ("gaussian", lambda mu, phi, w: phi / w)])
def test_sample_uses_prior_weights(name, var):
    """lme4's simulate: prior weights divide the dispersion (multiply the Gamma/IG shape)."""
    fam = get_family(name)
    rng = np.random.default_rng(3)
    n, mu, phi = 200_000, 2.0, 0.5
    for w in (1.0, 4.0):
        y = fam.sample(np.full(n, mu), np.full(n, w), phi, rng)
        assert abs(y.mean() - mu) < 5 * np.sqrt(var(mu, phi, w) / n)
        assert abs(y.var() / var(mu, phi, w) - 1) < 0.03
