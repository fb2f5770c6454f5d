"""The conditional log-density with zero inflation, hurdles and dispersion models: its value from
first principles and its derivatives against differences."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

from mixedfx.families.conditional import ConditionalLikelihood
from mixedfx.families.distributions import BetaBinomial, NBinom1, NBinom2, Poisson, Tweedie
from mixedfx.families.links import get_link

rng = np.random.default_rng(3)
N = 40
X2 = np.column_stack([np.ones(N), rng.standard_normal(N)])
Y = rng.poisson(2.0, N).astype(float)
Y[:10] = 0.0
ETA = rng.normal(0.5, 0.6, N)


def _cases():
    log = get_link("log")
    return [
        ("zip", ConditionalLikelihood(Poisson(), log, Y, zi_X=X2), np.array([-0.5, 0.4])),
        ("zinb2 disp", ConditionalLikelihood(NBinom2(), log, Y, zi_X=X2[:, :1], disp_X=X2), np.array([-1.0, 0.3, 0.2])),
        ("hurdle nb1", ConditionalLikelihood(NBinom1(), log, Y, zi_X=X2, hurdle=True), np.array([0.2, -0.3, 0.1])),
        ("truncated poisson", ConditionalLikelihood(Poisson(), log, Y[Y > 0], hurdle=True), np.zeros(0)),
        ("tweedie", ConditionalLikelihood(Tweedie(), log, rng.gamma(2.0, 1.0, N) * (rng.random(N) > 0.2)),
         np.array([0.1, 0.3])),
        ("zi betabinomial", ConditionalLikelihood(BetaBinomial(), get_link("logit"), np.where(Y > 3, 0.5, Y / 6),
                                                  w=np.full(N, 6.0), zi_X=X2[:, :1]), np.array([-1.0, 1.5])),
    ]


CASES = _cases()


def _eta(lik):
    return ETA[:len(lik.y)]


def test_zero_inflated_poisson_from_first_principles():
    name, lik, extra = CASES[0]
    p = special.expit(X2 @ extra)
    mu = np.exp(ETA)
    f = stats.poisson.pmf(Y, mu)
    expected = np.log(np.where(Y == 0, p + (1 - p) * f, (1 - p) * f))
    np.testing.assert_allclose(lik.loglik(ETA, lik.state(extra)), expected, rtol=1e-12)


def test_hurdle_from_first_principles():
    name, lik, extra = CASES[2]
    p = special.expit(X2 @ extra[:2])
    mu, phi = np.exp(ETA), np.exp(extra[-1])
    size = mu / phi
    f = stats.nbinom.pmf(Y, size, 1 / (1 + phi))
    f0 = stats.nbinom.pmf(0, size, 1 / (1 + phi))
    expected = np.where(Y == 0, np.log(p), np.log1p(-p) + np.log(f) - np.log1p(-f0))
    np.testing.assert_allclose(lik.loglik(ETA, lik.state(extra)), expected, rtol=1e-11)


@pytest.mark.parametrize("name,lik,extra", CASES, ids=[c[0] for c in CASES])
def test_eta_derivatives(name, lik, extra):
    st = lik.state(extra)
    eta = _eta(lik)
    l, l1, l2 = lik.derivs(eta, st)
    h = 1e-5
    lp, l1p, l2p = lik.derivs(eta + h, st)
    lm, l1m, l2m = lik.derivs(eta - h, st)
    np.testing.assert_allclose(l1, (lp - lm) / (2 * h), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(l2, (l1p - l1m) / (2 * h), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(lik.third(eta, st), (l2p - l2m) / (2 * h), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name,lik,extra", [c for c in CASES if len(c[2])], ids=[c[0] for c in CASES if len(c[2])])
def test_parameter_derivatives(name, lik, extra):
    eta = _eta(lik)
    Lx, L1x, L2x = lik.extra_partials(eta, extra)
    h = 1e-6
    for j in range(len(extra)):
        e = np.zeros(len(extra))
        e[j] = h
        plus, minus = lik.derivs(eta, lik.state(extra + e)), lik.derivs(eta, lik.state(extra - e))
        for got, a, b in zip((Lx, L1x, L2x), plus, minus):
            np.testing.assert_allclose(got[:, j], (a - b) / (2 * h), rtol=1e-5, atol=1e-7)


def test_prior_weights_multiply_the_log_density():
    lik1 = ConditionalLikelihood(NBinom2(), get_link("log"), Y, zi_X=X2)
    w = rng.uniform(0.5, 2.0, N)
    lik2 = ConditionalLikelihood(NBinom2(), get_link("log"), Y, w=w, zi_X=X2)
    extra = np.array([-0.5, 0.2, 0.3])
    for a, b in zip(lik1.derivs(ETA, lik1.state(extra)), lik2.derivs(ETA, lik2.state(extra))):
        np.testing.assert_allclose(b, w * a, rtol=1e-13)


def test_states_do_not_alias_the_parameter_vector():
    """A state is cached for its parameter vector; changing that vector in place (as a finite-difference
    Hessian does) must neither change the cached state nor be missed by the next call."""
    from mixedfx.families.distributions import StudentT
    lik = ConditionalLikelihood(StudentT(), get_link("identity"), rng.standard_normal(N))
    extra = np.array([0.1, np.log(4.0)])
    first = lik.state(extra)
    extra[1] = np.log(9.0)
    assert first.psi[0] == pytest.approx(np.log(4.0))
    assert lik.state(extra).psi[0] == pytest.approx(np.log(9.0))
    assert lik.state(np.array([0.1, np.log(4.0)])).psi[0] == pytest.approx(np.log(4.0))
