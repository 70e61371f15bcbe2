"""Parameterised estimators remember the range of theta they were trained on and warn when asked far outside it."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from skminer.estimators import ALICES, NDE, DoubleCARL, ExtrapolationWarning
from skminer.estimators.persistence import load_estimator, save_estimator

TINY = dict(hidden_layer_sizes=(8,), max_epochs=1, batch_size=64, random_state=0)


def _sample(n: int = 400, p: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    theta = rng.uniform(-1.0, 1.0, size=(n, p))
    y = np.repeat([0.0, 1.0], n // 2)
    x = theta * (1 - y)[:, None] + rng.normal(size=(n, p))
    return {"X": x, "y": y, "theta": theta, "r_xz": np.exp(rng.normal(scale=0.1, size=n)),
            "t_xz": rng.normal(size=(n, p))}


@pytest.fixture(scope="module")
def alices():
    d = _sample()
    return ALICES(**TINY).fit(d["X"], d["y"], theta=d["theta"], r_xz=d["r_xz"], t_xz=d["t_xz"]), d


def _no_warning(call):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExtrapolationWarning)
        return call()


def test_training_range_is_a_fitted_attribute(alices):
    model, d = alices
    expected = np.stack([d["theta"].min(axis=0), d["theta"].max(axis=0)], axis=1)
    np.testing.assert_array_equal(model.theta_range_, expected)


@pytest.mark.parametrize("call", ["predict_log_ratio", "score_at", "predict"])
def test_far_outside_warns_naming_theta_and_range(alices, call):
    model, d = alices
    x = d["X"][:5]
    with pytest.warns(ExtrapolationWarning, match=r"theta \[50\.0, 50\.0\].*outside the range of theta it was "
                                                   r"trained on, \[-0\.9\d*, 0\.9\d*\] x \[-0\.9\d*, 0\.9\d*\]"):
        out = getattr(model, call)(x, [50.0, 50.0])
    assert np.all(np.isfinite(out))  # the numbers are still returned


def test_inside_and_at_the_nominal_edge_is_quiet(alices):
    model, d = alices
    x = d["X"][:5]
    grid = np.array(np.meshgrid(np.linspace(-1, 1, 5), np.linspace(-1, 1, 5))).reshape(2, -1).T
    _no_warning(lambda: model.predict_log_ratio(x, grid))
    _no_warning(lambda: model.score_at(x, [1.05, -1.05]))  # within 10% of the width (2) beyond the drawn values
    with pytest.warns(ExtrapolationWarning, match=r"1 of 2 points"):
        model.predict_log_ratio(x, [[0.0, 0.0], [0.0, 1.5]])
    with pytest.warns(ExtrapolationWarning):  # the denominator is a network input too
        model.predict_log_ratio(x, [0.0, 0.0], theta1=[0.0, -3.0])


def test_saved_and_loaded_with_the_model(alices, tmp_path):
    model, d = alices
    loaded = load_estimator(save_estimator(model, tmp_path / "m.skm"))
    np.testing.assert_array_equal(loaded.theta_range_, model.theta_range_)
    with pytest.warns(ExtrapolationWarning):
        loaded.predict_log_ratio(d["X"][:3], [50.0, 50.0])


def test_doubly_parameterised_and_flow_estimators():
    d = _sample(p=1)
    theta = np.hstack([d["theta"], -d["theta"]])  # [theta0, theta1]
    double = DoubleCARL(**TINY).fit(d["X"], d["y"], theta=theta)
    assert np.shape(double.theta_range_) == (2, 2)
    _no_warning(lambda: double.predict_log_ratio(d["X"][:3], [0.5], theta1=[-0.5]))
    with pytest.warns(ExtrapolationWarning, match=r"\[0\.5, 20\.0\]"):
        double.predict_log_ratio(d["X"][:3], [0.5], theta1=[20.0])
    nde = NDE(hidden_layer_sizes=(8,), transforms=1, max_epochs=1, random_state=0).fit(d["X"], theta=d["theta"])
    _no_warning(lambda: nde.log_likelihood(d["X"][:3], [0.2]))
    with pytest.warns(ExtrapolationWarning, match=r"theta \[-7\.0\]"):
        nde.log_likelihood(d["X"][:3], [-7.0])
    with pytest.warns(ExtrapolationWarning):
        nde.predict(d["X"][:3], theta=[9.0])


def test_ensemble_warns_once_per_call():
    # an Ensemble of N members emitted N ExtrapolationWarnings per call (messages differing only by the members'
    # bootstrap ranges)
    from skminer.estimators.ensemble import Ensemble

    d = _sample()
    ens = Ensemble(ALICES(**TINY), n_estimators=3, random_state=0).fit(
        d["X"], d["y"], theta=d["theta"], r_xz=d["r_xz"], t_xz=d["t_xz"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mean, std = ens.predict_log_ratio(d["X"][:4], [50.0, 50.0], return_std=True)
        ens.score_at(d["X"][:4], [50.0, 50.0])
    extrapolation = [w for w in caught if issubclass(w.category, ExtrapolationWarning)]
    assert len(extrapolation) == 2, [str(w.message) for w in caught]
    assert all(str(w.message).startswith("Ensemble of 3 members") for w in extrapolation)
    assert all(w.filename == __file__ for w in extrapolation)  # attributed to the caller's line
    assert np.all(np.isfinite(mean)) and np.all(std > 0)
    _no_warning(lambda: ens.predict_log_ratio(d["X"][:4], [0.0, 0.0]))
