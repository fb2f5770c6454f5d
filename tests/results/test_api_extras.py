"""refit/update, JSON save/load, pickling, report(path), aic/bic types, indexed fitted/residuals."""
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx


@pytest.fixture(scope="module")
def sleep():
    return mfx.datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def m_sleep(sleep):
    return mfx.lmer("Reaction ~ Days + (Days | Subject)", sleep)


CASES = [("lmer", "Reaction ~ Days + (Days | Subject)", "sleepstudy", {}),
         ("lmer", "angle ~ recipe * temp + (1 | recipe:replicate)", "cake", {}),
         ("lmer", "Reaction ~ scale(Days) + (1 | Subject)", "sleepstudy", {}),
         ("glmer", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "cbpp", {"family": "binomial"})]


@pytest.mark.parametrize("fn, formula, data, kw", CASES)
def test_save_load_predicts_the_same(tmp_path, fn, formula, data, kw):
    df = mfx.datasets.load(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = getattr(mfx, fn)(formula, df, **kw)
    path = tmp_path / "fit.json"
    m.save(path)
    loaded = mfx.load(path)
    assert type(loaded) is type(m)
    new = df.sample(25, random_state=3)
    args = {"type": "response"} if fn == "glmer" else {}
    np.testing.assert_allclose(loaded.predict(new, **args), m.predict(new, **args), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(loaded.predict(new, re_form="~0"), m.predict(new, re_form="~0"), rtol=1e-10)
    pd.testing.assert_series_equal(loaded.fixef, m.fixef)
    pd.testing.assert_frame_equal(loaded.varcorr, m.varcorr)
    assert loaded.aic == m.aic and loaded.loglik == m.loglik and loaded.nobs == m.nobs
    assert loaded.to_dict()["fixef"] == m.to_dict()["fixef"]
    with pytest.raises(AttributeError, match="no data"):
        loaded.fitted()


@pytest.mark.parametrize("call", [
    lambda r: r.coef_table(), lambda r: r.anova(), lambda r: r.confint(method="profile"),
    lambda r: r.confint(method="boot", nsim=3), lambda r: r.bootstrap(nsim=3), lambda r: r.check(),
    lambda r: r.influence(), lambda r: r.refit(np.zeros(r.nobs)), lambda r: r.summary(), lambda r: r.icc()])
def test_loaded_result_says_inference_needs_the_data(tmp_path, m_sleep, call):
    """Inference on a loaded result (no rows, no internal estimates) names the cause, not an internal attribute."""
    m_sleep.save(tmp_path / "fit.json")
    loaded = mfx.load(tmp_path / "fit.json")
    with pytest.raises(AttributeError, match="a loaded result has no data"):
        call(loaded)
    assert loaded.confint().shape == m_sleep.confint().shape      # Wald intervals need no data


def test_load_rejects_other_json(tmp_path):
    p = tmp_path / "x.json"
    p.write_text('{"a": 1}')
    with pytest.raises(ValueError, match="not a mixedfx result"):
        mfx.load(p)


def test_scale_model_prediction_uses_training_centre(tmp_path, sleep):
    m = mfx.lmer("Reaction ~ scale(Days) + (1 | Subject)", sleep)
    m.save(tmp_path / "s.json")
    one = sleep.iloc[[5]]          # a single row: scale() must use the stored centre, not its own
    assert mfx.load(tmp_path / "s.json").predict(one)[0] == pytest.approx(m.predict(one)[0], rel=1e-12)


def test_aic_bic_are_python_floats(m_sleep):
    g = mfx.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", mfx.datasets.load("cbpp"))
    for m in (m_sleep, g):
        assert type(m.aic) is float and type(m.bic) is float


def test_fitted_residuals_keep_the_index():
    df = mfx.datasets.load("sleepstudy").copy()
    df.index = [f"r{i}" for i in range(len(df))]
    df.loc["r3", "Reaction"] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mfx.lmer("Reaction ~ Days + (1 | Subject)", df)
    fv, rv = m.fitted(), m.residuals()
    assert isinstance(fv, pd.Series) and list(fv.index) == [i for i in df.index if i != "r3"]
    np.testing.assert_allclose((df["Reaction"].dropna() - fv).to_numpy(), rv.to_numpy(), atol=1e-9)
    g = mfx.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                  mfx.datasets.load("cbpp").set_index(pd.Index(range(100, 156))))
    assert list(g.fitted().index) == list(range(100, 156))
    assert list(g.residuals("pearson").index) == list(range(100, 156))
    assert isinstance(m.summary(), object) and str(g.summary())


def test_refit_matches_a_fresh_fit(sleep, m_sleep):
    y2 = sleep["Reaction"] * 1.5 + np.sin(np.arange(len(sleep)))
    r = m_sleep.refit(y2)
    fresh = mfx.lmer("Reaction ~ Days + (Days | Subject)", sleep.assign(Reaction=y2))
    np.testing.assert_allclose(r.fixef, fresh.fixef, rtol=1e-5)
    assert r.objective == pytest.approx(fresh.objective, rel=1e-7)
    with pytest.raises(ValueError, match="180"):
        m_sleep.refit(np.ones(5))


def test_refit_glmm():
    cbpp = mfx.datasets.load("cbpp")
    g = mfx.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp)
    prop = (cbpp["incidence"] / cbpp["size"]).to_numpy()
    r = g.refit(prop)
    assert r.objective == pytest.approx(g.objective, rel=1e-6)
    inc2 = np.minimum(cbpp["incidence"] + 1, cbpp["size"])
    fresh = mfx.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp.assign(incidence=inc2))
    r2 = g.refit((inc2 / cbpp["size"]).to_numpy())
    np.testing.assert_allclose(r2.fixef, fresh.fixef, rtol=1e-4)
    # nAGQ = 0 has only the theta search: refit must not keep the old estimates (regression)
    g0 = mfx.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, nagq=0)
    fresh0 = mfx.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp.assign(incidence=inc2),
                       nagq=0)
    r0 = g0.refit((inc2 / cbpp["size"]).to_numpy())
    np.testing.assert_allclose(r0.fixef, fresh0.fixef, rtol=1e-5)
    np.testing.assert_allclose(r0.theta, fresh0.theta, rtol=1e-4)


def test_update(sleep, m_sleep):
    small = m_sleep.update("Reaction ~ Days + (1 | Subject)")
    assert small.formula == "Reaction ~ Days + (1 | Subject)"
    ml = m_sleep.update(reml=False)
    assert not ml.reml and ml.objective == pytest.approx(mfx.lmer(m_sleep.formula, sleep, reml=False).objective)
    more = small.update(". ~ . + (0 + Days | Subject)")
    assert more.formula == "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)"
    unp = pickle.loads(pickle.dumps(m_sleep))
    with pytest.raises(ValueError, match="data="):
        unp.update("Reaction ~ Days + (1 | Subject)")
    assert unp.update("Reaction ~ Days + (1 | Subject)", data=sleep).objective == pytest.approx(small.objective)


def test_pickle_drops_data_reference(sleep, m_sleep):
    assert m_sleep._origin is not None and m_sleep._origin[1] is sleep     # a reference, not a copy
    blob = pickle.dumps(m_sleep)
    back = pickle.loads(blob)
    assert back._origin is None
    np.testing.assert_allclose(back.predict(sleep), m_sleep.predict(sleep))


def test_report_with_path_returns_none(tmp_path, m_sleep):
    pytest.importorskip("matplotlib")
    out = tmp_path / "r.html"
    assert m_sleep.report(out) is None
    assert out.read_text().lstrip().lower().startswith("<!doctype html")


def test_anova_labels(sleep):
    m0 = mfx.lmer("Reaction ~ Days + (1 | Subject)", sleep, reml=False)
    m1 = mfx.lmer("Reaction ~ Days + (Days | Subject)", sleep, reml=False)
    assert list(mfx.anova(small=m0, big=m1).index) == ["small", "big"]
    assert list(mfx.anova(m0, m1).index) == [m0.formula, m1.formula]
    assert list(mfx.anova(m1, m0, names=["a", "b"]).index) == ["b", "a"]
    with pytest.raises(TypeError, match="nsims"):
        mfx.anova(m0, m1, nsims=3)
