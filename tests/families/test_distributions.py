"""glmmTMB-style response distributions: log densities against scipy.stats, analytic mu-derivatives
against central differences, zero probabilities, Tweedie series by quadrature, sums over the
support, moments of simulated draws, response checks."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats

from mixedfx.families import ResponseError
from mixedfx.families import distributions as D
from mixedfx.families.specfun import betaln as _betaln

E = np.empty(0)
EPS = np.finfo(float).eps
MU = [1e-6, 0.3, 5.0, 1e4]
PHI = [1e-3, 0.7, 1e3]


def grid(*axes):
    return [a.ravel() for a in np.meshgrid(*[np.asarray(x, float) for x in axes], indexing="ij")]


def tpsi(df):
    return np.array([np.log(df)])


def twpsi(power):
    return D.Tweedie().psi_from_natural([power])


# --------------------------------------------------------------------------- log densities vs scipy
# Each case returns (ours, scipy's, cond): cond is the sum of the magnitudes of the terms scipy adds up
# (its own rounding error is about eps * cond), so the check is |ours - scipy| <= 1e-12 |scipy| + 4 eps cond.

def _counts():
    return grid([0, 1, 3, 17, 250, 1e4], MU, PHI)


def case_poisson():
    y, mu, _ = _counts()
    ref = stats.poisson.logpmf(y, mu)
    cond = np.abs(special.xlogy(y, mu)) + mu + special.gammaln(y + 1)
    return D.Poisson().logpdf(y, mu, 1.0, E, np.ones_like(y)), ref, cond


def _nb_cond(y, n, p):
    return (np.abs(special.gammaln(y + n)) + np.abs(special.gammaln(n)) + special.gammaln(y + 1)
            + n + np.abs(n * np.log(p)) + y * p / (1 - p) + np.abs(y * np.log1p(-p)))


def case_nbinom2():
    y, mu, phi = _counts()
    n, p = phi, phi / (phi + mu)
    return D.NBinom2().logpdf(y, mu, phi, E, np.ones_like(y)), stats.nbinom.logpmf(y, n, p), _nb_cond(y, n, p)


def case_nbinom1():
    y, mu, phi = _counts()
    n, p = mu / phi, 1 / (1 + phi)
    return D.NBinom1().logpdf(y, mu, phi, E, np.ones_like(y)), stats.nbinom.logpmf(y, n, p), _nb_cond(y, n, p)


def _beta_cond(a, b):
    return np.abs(special.gammaln(a)) + np.abs(special.gammaln(b)) + np.abs(special.gammaln(a + b))


def case_beta():
    y, mu, phi = grid([1e-9, 0.01, 0.5, 0.97, 1 - 1e-9], [1e-6, 0.3, 0.999], PHI)
    a, b = mu * phi, (1 - mu) * phi
    cond = _beta_cond(a, b) + np.abs((a - 1) * np.log(y)) + np.abs((b - 1) * np.log1p(-y))
    return D.Beta().logpdf(y, mu, phi, E, np.ones_like(y)), stats.beta.logpdf(y, a, b), cond


def case_betabinomial():
    k, n, mu, phi = grid([0, 1, 3, 7], [7, 20], [1e-6, 0.3, 0.999], PHI)
    a, b = mu * phi, (1 - mu) * phi
    cond = _beta_cond(a, b) + _beta_cond(k + a, n - k + b) + 3 * special.gammaln(n + 1)
    return D.BetaBinomial().logpdf(k / n, mu, phi, E, n), stats.betabinom.logpmf(k, n, a, b), cond


def case_binomial():
    k, n, mu = grid([0, 1, 3, 7], [7, 20], [1e-6, 0.3, 0.999])
    cond = 3 * special.gammaln(n + 1) + np.abs(k * np.log(mu)) + np.abs((n - k) * np.log1p(-mu))
    return D.Binomial().logpdf(k / n, mu, 1.0, E, n), stats.binom.logpmf(k, n, mu), cond


def case_t():
    out, ref, cond = [], [], []
    for df in (1.5, 4.0, 200.0):
        y, mu, phi = grid([-1e4, -3, 0, 0.5, 40], [-2, 1e-6, 5, 1e4], PHI)
        out.append(D.StudentT().logpdf(y, mu, phi, tpsi(df), 1.0))
        ref.append(stats.t.logpdf(y, df, mu, phi))
        z = (y - mu) / phi
        cond.append(2 * special.gammaln(df / 2 + 0.5) + np.abs(np.log(phi)) + 3
                    + (df + 1) / 2 * np.log1p(z * z / df))
    return np.concatenate(out), np.concatenate(ref), np.concatenate(cond)


def case_gaussian():
    y, mu, phi = grid([-1e4, -3, 0, 0.5, 40], [-2, 1e-6, 5, 1e4], PHI)
    cond = 1 + np.abs(np.log(phi)) + ((y - mu) / phi) ** 2
    return D.Gaussian().logpdf(y, mu, phi, E, 1.0), stats.norm.logpdf(y, mu, phi), cond


def case_lognormal():
    y, mu, phi = grid([1e-8, 0.2, 3, 1e4], MU, PHI)
    s2 = np.log1p((phi / mu) ** 2)
    m = np.log(mu) - s2 / 2
    cond = 2 + 2 * np.abs(np.log(y)) + np.abs(np.log(s2)) + (np.log(y) - m) ** 2 / s2 + np.abs(m) * 10
    return D.Lognormal().logpdf(y, mu, phi, E, 1.0), stats.lognorm.logpdf(y, np.sqrt(s2), scale=np.exp(m)), cond


def case_gamma():
    y, mu, phi = grid([1e-8, 0.2, 3, 1e4], MU, PHI)
    cond = (np.abs(special.gammaln(phi)) + np.abs(phi * np.log(phi / mu)) + np.abs((phi - 1) * np.log(y))
            + phi * y / mu)
    return D.Gamma().logpdf(y, mu, phi, E, 1.0), stats.gamma.logpdf(y, phi, scale=mu / phi), cond


SCIPY_CASES = [case_poisson, case_nbinom2, case_nbinom1, case_beta, case_betabinomial, case_binomial, case_t,
               case_gaussian, case_lognormal, case_gamma]


@pytest.mark.parametrize("case", SCIPY_CASES, ids=lambda c: c.__name__[5:])
def test_logpdf_matches_scipy(case):
    ours, ref, cond = case()
    assert np.all(np.isfinite(ref))
    np.testing.assert_array_less(np.abs(ours - ref), 1e-12 * np.abs(ref) + 4 * EPS * cond + 1e-300)


def test_log_beta_function_accurate_for_large_arguments():
    # exact: log B(y, r) = lgamma(y) - sum_{k < y} log(r + k) for whole y (scipy's betaln loses ~1e-10 here)
    for y in (1, 3, 21, 300, 4000):
        for r in (1e-9, 0.5, 19.9, 20.1, 57.3, 1e3, 1e5, 1e7, 1e10):
            exact = math.lgamma(y) - math.fsum(math.log(r + k) for k in range(y))
            scale = abs(math.lgamma(y)) + 1
            assert abs(float(_betaln(y, r)) - exact) <= 1e-14 * max(abs(exact), 1) + 4 * EPS * scale, (y, r)
            assert float(_betaln(r, y)) == float(_betaln(y, r))


def test_prior_weights_multiply_and_zero_weight_rows_vanish():
    y, mu = np.array([0.0, 2.0, 5.0, -1.0]), np.array([1.5, 2.0, 3.0, 1.0])
    w = np.array([2.0, 0.5, 3.0, 0.0])
    nb = D.NBinom2()
    one = nb.logpdf(y[:3], mu[:3], 2.0, E, np.ones(3))
    np.testing.assert_allclose(nb.logpdf(y, mu, 2.0, E, w)[:3], w[:3] * one, rtol=1e-15)
    assert D.Gamma().logpdf(y, mu, 2.0, E, w)[3] == 0.0       # y = -1 impossible but weight 0
    d1, d2 = nb.dlogpdf_dmu(y[:3], mu[:3], 2.0, E, w[:3])
    e1, e2 = nb.dlogpdf_dmu(y[:3], mu[:3], 2.0, E, np.ones(3))
    np.testing.assert_allclose((d1, d2), (w[:3] * e1, w[:3] * e2), rtol=1e-15)


# glmmTMB 1.1.5 (TMB 1.9.2) itself: -obj$fn() of a one-row model y ~ 1 + offset(linkfun(mu)) at beta = 0,
# betad = log(phi) (log(sd^2) for gaussian: 1.1.5 models the log variance), psi as given, built with
# s <- glmmTMB(..., doFit = FALSE); TMB::MakeADFun(s$data.tmb, p, map = s$mapArg, random = s$randomArg,
# DLL = "glmmTMB"); binomial types as cbind(k, n - k). Columns: family, y, mu, phi (ours), psi, trials, log f.
GLMMTMB_1_1_5 = [
    ("poisson", 4, 1.3, 1, None, None, -3.4285967724779818),
    ("nbinom2", 30, 20, 0.2, None, None, -5.4692312318292666),
    ("nbinom1", 4, 1.3, 3, None, None, -3.2829613007558502),
    ("genpois", 4, 1.3, 4, None, None, -3.3351578264460073),
    ("genpois", 0, 20, 1.2, None, None, -18.257418583505537),
    ("binomial", 0.4, 0.1, 1, None, 5, -2.6186666399675249),
    ("betabinomial", 0.4, 0.6, 0.5, None, 5, -2.6631314668342907),
    ("beta", 0.93, 0.1, 0.5, None, None, -1.5420661850983735),
    ("Gamma", 3, 1.5, 0.3, None, None, -2.9476579706159822),
    ("gaussian", 3, 1.5, 2, None, None, -1.8933357137646181),
    ("t", 40, 12, 2, 0.40546510810816438, None, -7.8701393106831006),
    ("t", 0.7, 1.5, 0.3, 1.791759469228055, None, -2.492397474080529),
    ("tweedie", 0, 1.5, 0.3, -2.9444389791664394, None, -5.1575308700660933),
    ("tweedie", 0, 1.5, 0.3, 0, None, -8.1649658092772608),
    ("tweedie", 0, 1.5, 0.3, 2.9444389791664394, None, -68.032010243296497),
    ("tweedie", 0.01, 1.5, 0.3, -2.9444389791664394, None, -44.049664090994341),
    ("tweedie", 0.01, 1.5, 0.3, 0, None, -4.2106069623167466),
    ("tweedie", 0.01, 1.5, 0.3, 2.9444389791664394, None, -8.1728337988379316),
    ("tweedie", 3, 1.5, 2, -2.9444389791664394, None, -2.7997959674784632),
    ("tweedie", 3, 1.5, 2, 0, None, -2.4304692548165954),
    ("tweedie", 3, 1.5, 2, 2.9444389791664394, None, -2.6503196098591104),
    ("tweedie", 40, 1.5, 2, -2.9444389791664394, None, -45.82001063521119),
    ("tweedie", 40, 1.5, 2, 0, None, -25.298578129070826),
    ("tweedie", 40, 1.5, 2, 2.9444389791664394, None, -16.868999172029447),
]


@pytest.mark.parametrize("row", GLMMTMB_1_1_5, ids=[f"{r[0]}-{i}" for i, r in enumerate(GLMMTMB_1_1_5)])
def test_logpdf_matches_glmmtmb(row):
    name, y, mu, phi, psi, trials, expected = row
    dist = D.get_distribution(name)
    psi = E if psi is None else np.array([psi])
    w = np.array([trials or 1.0])
    got = dist.logpdf(np.array([y], float), np.array([mu], float), phi, psi, w)[0]
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-13)


# --------------------------------------------------------------------------- mu-derivatives
def _deriv_cases():
    """(distribution, y, mu, phi, psi, w, scale of mu) with w prior weights (trials for binomial types)."""
    rng = np.random.default_rng(5)
    c = []
    y, mu, phi = grid([0, 1, 4, 30], [0.05, 1.3, 20.0], [0.2, 3.0])
    w = rng.uniform(0.5, 2, y.size)
    for dist in (D.Poisson(), D.NBinom2(), D.NBinom1(), D.GenPois()):
        c.append((dist, y, mu, phi + (dist.name == "genpois"), E, w, mu))
    yg, mug, phig = grid([0, 1, 4, 20], [9.0, 20.0], [0.5, 0.8])     # underdispersed genpois, inside the support
    c.append((D.GenPois(), yg, mug, phig, E, np.ones_like(yg), mug))
    k, n, mu, phi = grid([0, 2, 5], [5, 9], [0.03, 0.4, 0.9], [0.3, 8.0])
    s = np.minimum(mu, 1 - mu)
    c.append((D.Binomial(), k / n, mu, 1.0, E, n, s))
    c.append((D.BetaBinomial(), k / n, mu, phi, E, n, s))
    y, mu, phi = grid([0.02, 0.5, 0.93], [0.03, 0.4, 0.9], [0.3, 8.0])
    c.append((D.Beta(), y, mu, phi, E, rng.uniform(0.5, 2, y.size), np.minimum(mu, 1 - mu)))
    y, mu, phi = grid([-4.0, 0.3, 2.0, 15.0], [-1.0, 0.5, 3.0], [0.4, 2.5])
    for df in (1.5, 6.0, 200.0):
        c.append((D.StudentT(), y, mu, phi, tpsi(df), rng.uniform(0.5, 2, y.size), phi))
    c.append((D.Gaussian(), y, mu, phi, E, rng.uniform(0.5, 2, y.size), phi))
    y, mu, phi = grid([0.01, 0.7, 3.0, 40.0], [0.2, 1.5, 12.0], [0.1, 1.0, 6.0])
    w = rng.uniform(0.5, 2, y.size)
    c.append((D.Lognormal(), y, mu, phi, E, w, mu))
    c.append((D.Gamma(), y, mu, phi, E, w, mu))
    for p in (1.05, 1.5, 1.95):
        c.append((D.Tweedie(), np.r_[0.0, y], np.r_[2.0, mu], np.r_[0.7, phi], twpsi(p), np.r_[1.0, w], np.r_[2.0, mu]))
    return c


DERIV = _deriv_cases()


@pytest.mark.parametrize("case", DERIV, ids=[f"{c[0].name}-{i}" for i, c in enumerate(DERIV)])
def test_dlogpdf_dmu_matches_central_differences(case):
    dist, y, mu, phi, psi, w, scale = case
    d1, d2 = dist.dlogpdf_dmu(y, mu, phi, psi, w)
    h = 1e-4 * scale
    f = lambda m: dist.logpdf(y, m, phi, psi, w)
    g = lambda m: dist.dlogpdf_dmu(y, m, phi, psi, w)[0]
    num1 = (f(mu + h) - f(mu - h)) / (2 * h)
    num2 = (g(mu + h) - g(mu - h)) / (2 * h)
    assert np.all(np.isfinite(d1)) and np.all(np.isfinite(d2))
    np.testing.assert_array_less(np.abs(num1 - d1), 1e-6 * (np.abs(d1) + np.abs(d2) * scale) + 1e-12)
    np.testing.assert_array_less(np.abs(num2 - d2), 1e-6 * (np.abs(d2) + np.abs(d1) / scale) + 1e-12)


ZERO_CASES = [(D.Poisson(), E, 1.0), (D.NBinom2(), E, 1.0), (D.NBinom1(), E, 1.0), (D.GenPois(), E, 1.0),
              (D.Binomial(), E, 7.0), (D.BetaBinomial(), E, 7.0), (D.Tweedie(), twpsi(1.3), 1.0),
              (D.Tweedie(), twpsi(1.9), 1.0)]


@pytest.mark.parametrize("dist,psi,w", ZERO_CASES, ids=[f"{c[0].name}-{i}" for i, c in enumerate(ZERO_CASES)])
def test_logp0_is_logpdf_at_zero_with_derivatives(dist, psi, w):
    mu, phi = grid([0.02, 0.3, 0.8] if dist.binomial_type else [1e-3, 0.4, 3.0, 50.0], [0.3, 1.5, 40.0])
    w = np.full(mu.shape, w)
    l0, d1, d2 = dist.logp0(mu, phi, psi, w)
    np.testing.assert_allclose(l0, dist.logpdf(np.zeros_like(mu), mu, phi, psi, w), rtol=1e-13, atol=1e-300)
    h = 1e-5 * np.minimum(mu, 1 - mu) if dist.binomial_type else 1e-5 * mu
    num1 = (dist.logp0(mu + h, phi, psi, w)[0] - dist.logp0(mu - h, phi, psi, w)[0]) / (2 * h)
    num2 = (dist.logp0(mu + h, phi, psi, w)[1] - dist.logp0(mu - h, phi, psi, w)[1]) / (2 * h)
    np.testing.assert_allclose(d1, num1, rtol=1e-7, atol=1e-9 * np.abs(d2 * h).max())
    np.testing.assert_allclose(d2, num2, rtol=1e-6, atol=1e-7 * np.abs(d1 / (mu + 1)).max())
    # the derivatives of logp0 agree with dlogpdf_dmu at y = 0
    np.testing.assert_allclose((d1, d2), dist.dlogpdf_dmu(np.zeros_like(mu), mu, phi, psi, w), rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize("dist", [D.Beta(), D.StudentT(), D.Gaussian(), D.Lognormal(), D.Gamma()],
                         ids=lambda d: d.name)
def test_logp0_not_available_for_continuous(dist):
    with pytest.raises(NotImplementedError, match=dist.name):
        dist.logp0(np.array([0.5]), 1.0, dist.psi_start(), np.ones(1))


# --------------------------------------------------------------------------- Tweedie series
# y = t^m removes the y^((2-p)/(p-1) - 1) behaviour of the density at 0 for Gauss-Legendre in t
TW_SUBST = {1.05: 1, 1.3: 3, 1.6: 3, 1.95: 19}


@pytest.mark.parametrize("power", sorted(TW_SUBST))
def test_tweedie_integrates_to_one_with_mean_and_variance(power):
    tw, psi = D.Tweedie(), twpsi(power)
    nodes, weights = np.polynomial.legendre.leggauss(20)
    for mu, phi in [(0.5, 0.5), (3.0, 2.0), (10.0, 0.3)]:
        m = TW_SUBST[power]
        top = (mu + 60 * np.sqrt(phi * mu ** power) + 20) ** (1 / m)
        edges = np.linspace(0, top, 401)
        a, b = edges[:-1, None], edges[1:, None]
        t = ((b - a) / 2 * nodes + (a + b) / 2).ravel()
        wt = ((b - a) / 2 * weights).ravel() * m * t ** (m - 1)
        y = t ** m
        f = np.exp(tw.logpdf(y, np.full_like(y, mu), phi, psi, np.ones_like(y)))
        p0 = np.exp(tw.logp0(np.array([mu]), phi, psi, np.ones(1))[0][0])
        assert p0 == pytest.approx(np.exp(-mu ** (2 - power) / (phi * (2 - power))), rel=1e-14)
        total, mean = p0 + np.sum(f * wt), np.sum(y * f * wt)
        var = np.sum(y * y * f * wt) - mean ** 2
        assert total == pytest.approx(1.0, abs=1e-11), (mu, phi)
        assert mean == pytest.approx(mu, rel=1e-11), (mu, phi)
        assert var == pytest.approx(phi * mu ** power, rel=1e-10), (mu, phi)
        assert tw.variance(mu, phi, psi) == pytest.approx(phi * mu ** power, rel=1e-15)


def test_tweedie_matches_poisson_gamma_mixture():
    # f(y) = sum_n Pois(n; lambda) Gamma(y; n shape, scale), computed with scipy.stats
    tw = D.Tweedie()
    for power in (1.1, 1.5, 1.8):
        y, mu, phi = grid([0.01, 0.4, 2.0, 9.0], [0.3, 2.0, 6.0], [0.5, 2.0])
        lam = mu ** (2 - power) / (phi * (2 - power))
        shape, scale = (2 - power) / (power - 1), phi * (power - 1) * mu ** (power - 1)
        n = np.arange(1, 400)[:, None]
        ref = special.logsumexp(stats.poisson.logpmf(n, lam) + stats.gamma.logpdf(y, n * shape, scale=scale), axis=0)
        np.testing.assert_allclose(tw.logpdf(y, mu, phi, twpsi(power), np.ones_like(y)), ref, rtol=1e-11, atol=1e-12)


def test_tweedie_extreme_arguments_finite_and_tail_omission_negligible():
    tw = D.Tweedie()
    y, mu, phi = grid([1e-10, 0.3, 50.0, 1e3, 1e4], [0.01, 1.0, 1e3], [1e-4, 1e-3, 1.0, 1e3])
    for power in (1.02, 1.3, 1.6, 1.98):
        lf = tw.logpdf(y, mu, phi, twpsi(power), np.ones_like(y))
        assert np.all(np.isfinite(lf)), power
        # a much stricter tail tolerance changes nothing
        a = D.tweedie_log_series(y, phi, power)
        b = D.tweedie_log_series(y, phi, power, tol=1e-40)
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-14 * np.abs(a).max())
    # small chunks give the same answer as one padded grid
    a = D.tweedie_log_series(y, phi, 1.3)
    np.testing.assert_array_equal(a, D.tweedie_log_series(y, phi, 1.3, chunk=64))


# --------------------------------------------------------------------------- discrete sums and moments
SUM_CASES = [(D.NBinom2(), [0.5, 7.0], [0.3, 5.0], None), (D.NBinom1(), [0.5, 7.0], [0.3, 5.0], None),
             (D.GenPois(), [0.5, 7.0], [1.0, 1.5, 9.0], None), (D.BetaBinomial(), [0.2, 0.7], [0.5, 20.0], 12)]


@pytest.mark.parametrize("dist,mus,phis,trials", SUM_CASES, ids=[c[0].name for c in SUM_CASES])
def test_discrete_probabilities_sum_to_one_with_moments(dist, mus, phis, trials):
    for mu in mus:
        for phi in phis:
            k = np.arange(trials + 1.0) if trials else np.arange(6000.0)
            w = np.full(k.shape, float(trials or 1))
            y = k / trials if trials else k
            pr = np.exp(dist.logpdf(y, np.full(k.shape, mu), phi, E, w))
            assert pr.sum() == pytest.approx(1.0, abs=1e-12), (mu, phi)
            mean = np.sum(y * pr)
            assert mean == pytest.approx(mu, rel=1e-11)
            assert np.sum((y - mean) ** 2 * pr) == pytest.approx(dist.variance(mu, phi, E, w[0]), rel=1e-10)


# --------------------------------------------------------------------------- simulation
SAMPLE_CASES = [(D.Poisson(), 3.0, 1.0, E, 1.0), (D.NBinom2(), 4.0, 1.5, E, 1.0), (D.NBinom1(), 4.0, 2.0, E, 1.0),
                (D.GenPois(), 4.0, 2.5, E, 1.0), (D.GenPois(), 6.0, 0.6, E, 1.0), (D.Binomial(), 0.3, 1.0, E, 9.0),
                (D.BetaBinomial(), 0.3, 2.0, E, 9.0), (D.Beta(), 0.35, 4.0, E, 1.0),
                (D.StudentT(), 1.5, 2.0, tpsi(10.0), 1.0), (D.StudentT(df=12), -2.0, 0.5, E, 1.0),
                (D.Tweedie(), 2.0, 1.2, twpsi(1.4), 1.0), (D.Lognormal(), 3.0, 1.5, E, 1.0),
                (D.Gaussian(), -1.0, 2.0, E, 1.0), (D.Gamma(), 2.5, 3.0, E, 1.0)]


@pytest.mark.parametrize("dist,mu,phi,psi,w", SAMPLE_CASES,
                         ids=[f"{c[0].name}-{i}" for i, c in enumerate(SAMPLE_CASES)])
def test_sample_moments(dist, mu, phi, psi, w):
    n = 200_000
    rng = np.random.default_rng(20240611)
    x = dist.sample(np.full(n, mu), phi, psi, np.full(n, w), rng)
    assert x.shape == (n,)
    mean, var = dist.mean(mu, phi, psi), dist.variance(mu, phi, psi, w)
    if dist.name != "genpois" or phi >= 1:       # underdispersed genpois: truncated, moments approximate
        assert mean == pytest.approx(mu)
    else:
        k = np.arange(80.0)
        pr = np.exp(dist.logpdf(k, np.full(k.shape, mu), phi, psi, np.ones_like(k)))
        pr /= pr.sum()
        mean, var = np.sum(k * pr), np.sum((k - np.sum(k * pr)) ** 2 * pr)
    c = x - x.mean()
    m4 = np.mean(c ** 4)
    assert abs(x.mean() - mean) < 4 * np.sqrt(var / n)
    assert abs(x.var() - var) < 4 * np.sqrt((m4 - x.var() ** 2) / n)


@pytest.mark.parametrize("phi", [3.0, 0.7])
def test_genpois_sample_frequencies(phi):
    gp, n = D.GenPois(), 200_000
    x = gp.sample(np.full(n, 2.5), phi, E, np.ones(n), np.random.default_rng(8))
    k = np.arange(8.0)
    pr = np.exp(gp.logpdf(np.arange(200.0), np.full(200, 2.5), phi, E, np.ones(200)))
    pr = pr[:8] / pr.sum()
    freq = np.array([(x == v).mean() for v in k])
    assert np.all(np.abs(freq - pr) < 4.5 * np.sqrt(pr * (1 - pr) / n))


# --------------------------------------------------------------------------- parameters, registry, starts
def test_psi_transforms_and_fixing():
    t = D.StudentT()
    assert t.psi_names == ("df",) and t.fixed_psi() is None
    np.testing.assert_allclose(t.psi_to_natural(t.psi_from_natural([3.5])), [3.5], rtol=1e-15)
    np.testing.assert_allclose(D.StudentT(df=4).fixed_psi(), [np.log(4)], rtol=1e-15)
    assert D.StudentT(df=4).psi_names == ("df",)
    tw = D.Tweedie()
    np.testing.assert_allclose(tw.psi_to_natural(tw.psi_start()), [1.5])
    np.testing.assert_allclose(tw.psi_to_natural(tw.psi_from_natural([1.07, 1.93])), [1.07, 1.93], rtol=1e-14)
    np.testing.assert_allclose(tw.psi_to_natural(D.Tweedie(power=1.7).fixed_psi()), [1.7], rtol=1e-14)
    assert D.Poisson().psi_start().size == 0 and D.Poisson().fixed_psi() is None
    # a fixed df is used when psi is not passed, and equals passing it
    y = np.array([0.3, 2.0])
    np.testing.assert_allclose(D.StudentT(df=4).logpdf(y, 0.0, 1.0, E, 1.0), stats.t.logpdf(y, 4), rtol=1e-13)
    with pytest.raises(ValueError, match="df"):
        D.StudentT(df=-1)
    with pytest.raises(ValueError, match="between 1 and 2"):
        D.Tweedie(power=2.5)


def test_registry():
    assert set(D.DISTRIBUTIONS) == {"poisson", "nbinom2", "nbinom1", "genpois", "binomial", "betabinomial", "beta",
                                    "t", "tweedie", "lognormal", "gaussian", "Gamma"}
    for name, cls in D.DISTRIBUTIONS.items():
        d = D.get_distribution(name)
        assert isinstance(d, cls) and d.name == name and d.default_link in d.links
        assert d.count == (name in ("poisson", "nbinom2", "nbinom1", "genpois"))
        assert d.binomial_type == (name in ("binomial", "betabinomial"))
    assert D.get_distribution("gamma").name == "Gamma"
    assert D.get_distribution("t", df=3).fixed_psi() == pytest.approx([np.log(3)])
    with pytest.raises(ValueError, match="nbinom2.*tweedie"):
        D.get_distribution("nbinom3")
    with pytest.raises(ValueError, match="poisson.*df"):
        D.get_distribution("poisson", df=3)


def test_initial_values_inside_support_and_moment_dispersion():
    rng = np.random.default_rng(3)
    n = 4000
    mu = np.exp(rng.normal(1, 0.5, n))
    for dist, phi, psi in [(D.NBinom2(), 2.0, E), (D.NBinom1(), 1.5, E), (D.GenPois(), 3.0, E),
                           (D.Gamma(), 4.0, E), (D.Lognormal(), 1.2, E), (D.Gaussian(), 0.8, E),
                           (D.StudentT(df=30), 0.8, E), (D.Tweedie(power=1.5), 0.9, E)]:
        y = dist.sample(mu, phi, psi, np.ones(n), rng)
        start = dist.initial_mu(y, np.ones(n))
        assert np.all(start > 0) if dist.name not in ("gaussian", "t") else np.all(np.isfinite(start))
        assert np.exp(dist.initial_log_phi(y, mu, np.ones(n))) == pytest.approx(phi, rel=0.15), dist.name
    k, trials = rng.binomial(10, 0.3, n), np.full(n, 10.0)
    start = D.BetaBinomial().initial_mu(k / trials, trials)
    assert np.all((start > 0) & (start < 1))
    mu = np.full(n, 0.3)
    y = D.BetaBinomial().sample(mu, 5.0, E, trials, rng)
    assert np.exp(D.BetaBinomial().initial_log_phi(y, mu, trials)) == pytest.approx(5.0, rel=0.2)
    y = D.Beta().sample(mu, 6.0, E, np.ones(n), rng)
    assert np.exp(D.Beta().initial_log_phi(y, mu, np.ones(n))) == pytest.approx(6.0, rel=0.15)
    assert D.Poisson().initial_log_phi(y, mu, np.ones(n)) == 0.0
    assert np.isfinite(D.Gaussian().initial_log_phi(y, y, np.ones(n)))     # mu = y: falls back to the spread


# --------------------------------------------------------------------------- response checks
BAD = [(D.Poisson(), [1, -2, 3, -1], None, r"poisson family: responses must be counts >= 0; 2 of 4 rows .*-2 at row 1"),
       (D.NBinom2(), [1, 2.5, 3], None, r"nbinom2 family: responses must be whole-number counts; 1 of 3 row .*2\.5"),
       (D.GenPois(), [1, np.nan, 3], None, r"genpois family: responses must be finite; 1 of 3 row"),
       (D.Beta(), [0.2, 0.0, 1.0, 0.5], None,
        r"beta responses must lie strictly inside \(0, 1\); 2 of 4 rows are exactly 0 or 1 .*Smithson & Verkuilen"),
       (D.Beta(), [0.2, 1.5], None, r"beta family: responses must be proportions strictly inside"),
       (D.BetaBinomial(), [0.2, 1.5], [5, 5], r"betabinomial family: responses must be proportions in \[0, 1\]"),
       (D.BetaBinomial(), [0.3, 0.5], [5, 4], r"successes \(proportion x trials\) must be whole numbers; 1 of 2"),
       (D.Binomial(), [0.5, 0.5], [2, 2.5], r"binomial family: the weights are the numbers of trials"),
       (D.Tweedie(), [0, 1.2, -0.5], None, r"tweedie family: responses must be >= 0; 1 of 3 row .*-0\.5 at row 2"),
       (D.Gamma(), [1.0, 0.0, 2.0], None, r"Gamma family: responses must be positive; 1 of 3 row .*hurdle"),
       (D.Lognormal(), [1.0, -3.0], None, r"lognormal family: responses must be positive"),
       (D.Gaussian(), [1.0, np.inf], None, r"gaussian family: responses must be finite"),
       (D.StudentT(), [1.0, 2.0], [1, -1], r"t family: weights must be finite and non-negative")]


@pytest.mark.parametrize("dist,y,w,msg", BAD, ids=[f"{c[0].name}-{i}" for i, c in enumerate(BAD)])
def test_check_response_errors(dist, y, w, msg):
    y = np.asarray(y, float)
    w = np.ones_like(y) if w is None else np.asarray(w, float)
    with pytest.raises(ResponseError, match=msg):
        dist.check_response(y, w)


@pytest.mark.parametrize("name", sorted(D.DISTRIBUTIONS))
def test_check_response_accepts_valid_draws(name):
    dist = D.get_distribution(name)
    rng = np.random.default_rng(1)
    mu = np.full(50, 0.4 if dist.binomial_type or name == "beta" else 2.0)
    w = np.full(50, 6.0)
    y = dist.sample(mu, 3.0, dist.psi_start(), w, rng)
    dist.check_response(y, w)
