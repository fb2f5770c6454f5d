"""Second link derivatives, variance derivatives, the working derivatives of the Laplace
gradient and the profiled dispersion, against numerical derivatives and a numerical search."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from mixedfx.families import (LINKS, Binomial, Family, Gamma, Gaussian, InverseGaussian, NegativeBinomial,
                              Poisson, get_link)

ETAS = {"sqrt": np.array([0.3, 1.0, 2.0]), "inverse": np.array([0.5, 1.0, 2.0]),
        "1/mu^2": np.array([0.5, 1.0, 2.0]), "inverse_squared": np.array([0.5, 1.0, 2.0])}


@pytest.mark.parametrize("name", sorted(LINKS))
def test_second_derivative_of_the_inverse_link(name):
    link = get_link(name)
    eta = ETAS.get(name, np.array([-1.5, -0.2, 0.4, 1.3]))
    h = 1e-5
    numeric = (link.mu_eta(eta + h) - link.mu_eta(eta - h)) / (2 * h)
    np.testing.assert_allclose(link.mu_eta_deriv(eta), numeric, rtol=1e-6, atol=1e-10)


def test_logit_inverse_is_expit_to_rounding():
    from scipy.special import expit
    eta = np.linspace(-40, 40, 801)
    link = get_link("logit")
    eps = np.finfo(float).eps
    np.testing.assert_allclose(link.inverse(eta), np.clip(expit(eta), eps, 1 - eps), rtol=1e-15)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                 # no overflow warning far in the tails
        assert link.inverse(np.array([-1000.0, 1000.0])).tolist() == [np.finfo(float).eps, 1 - np.finfo(float).eps]


FAMILIES = [(Binomial(), np.array([0.0, 0.25, 1.0, 0.6]), np.array([-1.2, 0.1, 0.8, 2.0])),
            (Binomial(link="probit"), np.array([0.0, 0.25, 1.0, 0.6]), np.array([-1.2, 0.1, 0.8, 1.5])),
            (Binomial(link="cloglog"), np.array([0.0, 0.25, 1.0, 0.6]), np.array([-1.2, 0.1, 0.8, 1.5])),
            (Poisson(), np.array([0.0, 2.0, 5.0, 1.0]), np.array([-0.5, 0.3, 1.4, 0.9])),
            (Poisson(link="sqrt"), np.array([0.0, 2.0, 5.0, 1.0]), np.array([0.5, 1.3, 2.4, 0.9])),
            (Gamma(), np.array([0.4, 1.0, 3.0, 2.0]), np.array([1.5, 0.9, 0.4, 0.6])),
            (Gamma(link="log"), np.array([0.4, 1.0, 3.0, 2.0]), np.array([-0.5, 0.3, 1.4, 0.9])),
            (InverseGaussian(), np.array([0.4, 1.0, 3.0, 2.0]), np.array([1.5, 0.9, 0.4, 0.6])),
            (Gaussian(link="log"), np.array([0.4, 1.0, 3.0, 2.0]), np.array([-0.5, 0.3, 1.4, 0.9])),
            (NegativeBinomial(2.5), np.array([0.0, 2.0, 5.0, 1.0]), np.array([-0.5, 0.3, 1.4, 0.9]))]


@pytest.mark.parametrize("family, y, eta", FAMILIES, ids=lambda v: repr(v) if isinstance(v, Family) else "")
def test_working_derivatives(family, y, eta):
    """``W`` is the IRLS weight, ``dW`` its eta-derivative, ``s`` the score ``phi dlog f / deta``
    and ``W_obs = -ds/deta``."""
    w = np.array([3.0, 4.0, 2.0, 5.0]) if family.name == "binomial" else np.array([1.0, 2.0, 0.5, 1.5])
    link = family.link

    def parts(e):
        return family.working_derivatives(y, e, link.inverse(e), w)
    W, dW, s, Wo = parts(eta)
    np.testing.assert_allclose(W, family.irls_weights(eta, link.inverse(eta), w)[0], rtol=1e-14)
    h = 1e-6
    up, down = parts(eta + h), parts(eta - h)
    np.testing.assert_allclose(dW, (up[0] - down[0]) / (2 * h), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(Wo, -(up[2] - down[2]) / (2 * h), rtol=1e-6, atol=1e-9)
    # the score is the derivative of the log-likelihood (phi = 1)
    terms = [family.loglik_terms(y, link.inverse(eta + d), w) for d in (h, -h)]
    np.testing.assert_allclose(s, (terms[0] - terms[1]) / (2 * h), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("family", [Gamma(link="log"), Gaussian(), InverseGaussian(link="log")], ids=repr)
@pytest.mark.parametrize("phi", [0.003, 0.2, 4.0])
def test_profiled_dispersion_minimizes_the_criterion(family, phi):
    rng = np.random.default_rng(int(phi * 1000))
    n = 60
    mu = np.exp(rng.normal(0.5, 0.5, n))
    if family.name == "Gamma":
        y = rng.gamma(1 / phi, mu * phi)
    elif family.name == "gaussian":
        y = mu + rng.normal(0, np.sqrt(phi), n)
    else:
        y = rng.wald(mu, mu ** 0 / phi)
    w, uu = rng.uniform(0.5, 2.0, n), 1.7

    def crit(logphi):
        return -2 * family.loglik(y, mu, w, np.exp(logphi)) + uu / np.exp(logphi)
    ours = np.log(family.profile_dispersion(y, mu, w, uu))
    best = minimize_scalar(crit, bounds=(ours - 1, ours + 1), method="bounded", options={"xatol": 1e-10}).x
    assert ours == pytest.approx(best, abs=1e-6)
    # the first-order condition holds to rounding: the central slope vanishes
    d = 1e-4
    assert abs(crit(ours + d) - crit(ours - d)) / (2 * d) < 1e-7 * max(1.0, abs(crit(ours)))
    # and the generic search of the base class agrees
    assert np.log(Family.profile_dispersion(family, y, mu, w, uu)) == pytest.approx(ours, abs=1e-6)


def test_no_dispersion_families_profile_to_one():
    assert Poisson().profile_dispersion(np.ones(3), np.ones(3), np.ones(3), 2.0) == 1.0
    assert Binomial().profile_dispersion(np.ones(3) / 2, np.ones(3) / 2, np.ones(3), 2.0) == 1.0
