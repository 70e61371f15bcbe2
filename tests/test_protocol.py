"""The one inference protocol, over every method of the table, a Pipeline and an Ensemble of each.

Every row of :data:`skminer.methods.METHODS` is trained (tiny network, one epoch) on the sample its table row
says, with the fit arguments the table says; then the estimator, ``skminer.make_pipeline(StandardScaler(), est)``
and ``Ensemble(est)`` answer the same protocol calls, and FisherInformation and AsymptoticLimits accept each of
them (and a plain scikit-learn Pipeline) exactly when the declared capability is there. Shapes, capability
declarations and the consistency between the protocol methods are checked; the physics accuracy of each method
is tested in its own module.
"""

from __future__ import annotations

import numpy as np
import pytest
import sklearn
from sklearn.pipeline import Pipeline as SkPipeline
from sklearn.preprocessing import StandardScaler

from skminer import augmentation
from skminer.estimators import Ensemble
from skminer.inference import AsymptoticLimits, FisherInformation, theta_grid
from skminer.methods import CAPABILITIES, METHODS, capabilities_of, fit_arguments, sampler_arguments
from skminer.pipeline import Pipeline, make_pipeline
from skminer.simulation import ToySimulator

REF = np.zeros(2)
POINT = np.array([0.4, -0.3])
LUMI = 50.0
TINY = {"hidden_layer_sizes": (8,), "max_epochs": 1, "early_stopping": False, "batch_size": 256,
        "random_state": 0, "transforms": 1, "n_bins": 4, "alpha": 0.1}


@pytest.fixture(scope="module")
def events():
    return ToySimulator().simulate(3000, random_state=0)


@pytest.fixture(scope="module")
def grid():
    return theta_grid([[-0.5, 0.5], [-0.5, 0.5]], 3)


def _tiny(cls):
    names = cls().get_params()
    return cls(**{k: v for k, v in TINY.items() if k in names})


def _fitted(name, events, grid):
    """The estimator of table row ``name``, its Pipeline and its Ensemble, trained as the table says."""
    row = METHODS[name]
    sampler_name, kwargs = sampler_arguments(row, {"theta_ref": REF, "prior": augmentation.UniformPrior(
        events.space.ranges), "n_thetas": 10, "nuisance": False})
    sample = getattr(augmentation, sampler_name)(**kwargs).sample(events, 600, random_state=1)
    args, fit_kwargs = fit_arguments(row, sample)
    cls = row.load()
    est = _tiny(cls).fit(*args, **fit_kwargs)
    with sklearn.config_context(enable_metadata_routing=True):  # theta & co reach the final step's fit
        pipe = make_pipeline(StandardScaler(), _tiny(cls)).fit(*args, **fit_kwargs)
    ens = Ensemble(_tiny(cls), n_estimators=2, bootstrap=True, random_state=0).fit(*args, **fit_kwargs)
    models = {"estimator": est, "pipeline": pipe, "ensemble": ens}
    if row.needs_calibration:  # SALLINO: densities of the projected score on the grid and the reference
        points = np.unique(np.vstack([grid, REF, POINT]), axis=0)
        weights = np.clip(events.weights_at(points), 0.0, None)
        for model in models.values():
            model.calibrate(events.x, points, sample_weight=weights)
    return row, models


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_answers_the_protocol(name, events, grid):
    row, models = _fitted(name, events, grid)
    x = events.x[:50]
    n_p = events.space.n_parameters
    fisher = FisherInformation(events)
    limits = AsymptoticLimits(events, LUMI)
    plain = SkPipeline(models["pipeline"].steps)  # a plain scikit-learn Pipeline of the same fitted steps
    for kind, model in {**models, "sklearn pipeline": plain}.items():
        what = f"{name} ({kind})"
        caps = capabilities_of(model)
        assert caps == row.capabilities and caps <= CAPABILITIES, what
        assert type(model) is SkPipeline or hasattr(model, "predict_log_ratio") == ("ratio" in caps), what
        if kind == "sklearn pipeline":
            model = Pipeline(model.steps)
        if "ratio" in caps:
            one = model.predict_log_ratio(x, POINT, REF)
            many = model.predict_log_ratio(x, grid, REF)
            assert one.shape == (50,) and many.shape == (len(grid), 50), what
            assert np.all(np.isfinite(many)), what
            if row.family != "double_ratio":  # a doubly parameterised network learns r(x|theta, theta) = 1 only
                np.testing.assert_allclose(model.predict_log_ratio(x, REF, REF), 0.0, atol=1e-5, err_msg=what)
            try:  # the reference default: either the estimator has one, or it says theta1 is needed
                np.testing.assert_allclose(model.predict_log_ratio(x, POINT) - model.predict_log_ratio(x, REF),
                                           one, rtol=1e-4, atol=1e-4, err_msg=what)
            except ValueError as err:
                assert "theta1" in str(err), what
        if "score" in caps:
            t = model.score_at(x, REF)
            assert t.shape == (50, n_p) and np.all(np.isfinite(t)), what
        if "density" in caps:
            ll = model.log_likelihood(x, grid)
            assert ll.shape == (len(grid), 50), what
            np.testing.assert_allclose(model.predict_log_ratio(x, grid, REF), ll - model.log_likelihood(x, REF),
                                       rtol=1e-4, atol=1e-4, err_msg=what)
    for kind, model in {**models, "sklearn pipeline": plain}.items():
        what = f"{name} ({kind})"
        if "score" in row.capabilities:
            info = fisher.full_information(REF, model, LUMI)
            assert info.shape == (n_p, n_p) and np.all(np.isfinite(info)), what
            dist = fisher.information_distribution(REF, LUMI, "x1", bins=3, estimator=model)
            assert dist.full.shape == (3, n_p, n_p) and np.all(np.isfinite(dist.full)), what
            res = limits.expected_limits(REF, grid, mode="score", estimator=model, theta_ref=REF, bins=3)
            assert np.all(np.isfinite(res.q)), what
        else:
            with pytest.raises(TypeError, match="'score' capability"):
                fisher.full_information(REF, model, LUMI)
        if "ratio" in row.capabilities:
            expected = limits.expected_limits(REF, grid, mode="ratio", estimator=model, theta_ref=REF)
            observed = limits.observed_limits(events.x[:30], grid, mode="ratio", estimator=model, theta_ref=REF)
            assert np.all(np.isfinite(expected.q)) and np.all(np.isfinite(observed.q)), what
        else:
            with pytest.raises(TypeError, match="'ratio' capability"):
                limits.expected_limits(REF, grid, mode="ratio", estimator=model)
        if "density" in row.capabilities:
            res = limits.expected_limits(REF, grid, mode="likelihood", estimator=model)
            # the likelihood and the ratio against any theta1 give the same q
            ratio = limits.expected_limits(REF, grid, mode="ratio", estimator=model)
            np.testing.assert_allclose(res.q, ratio.q, rtol=1e-6, atol=1e-6 * max(1.0, res.q.max()))
        else:
            with pytest.raises(TypeError, match="'density' capability"):
                limits.expected_limits(REF, grid, mode="likelihood", estimator=model)


def test_ensemble_of_scores_gives_member_spread(events, grid):
    _, models = _fitted("carl", events, grid)
    fisher = FisherInformation(events)
    members = fisher.full_information_members(REF, models["ensemble"], LUMI)
    assert members.shape == (2, 2, 2)
    mean, cov = fisher.full_information(REF, models["ensemble"], LUMI, return_covariance=True)
    np.testing.assert_allclose(mean, members.mean(axis=0))
    assert np.any(cov != 0)
    t, t_std = models["ensemble"].score_at(events.x[:20], REF, return_std=True)
    assert t.shape == t_std.shape == (20, 2) and np.all(t_std > 0)
