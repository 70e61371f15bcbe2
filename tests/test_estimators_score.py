"""SALLY: convergence to the true score on the toy (scikit-learn conformance: test_sklearn_checks.py)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from toy_data import local_sample, true_score

from skminer.estimators import SALLY

# Measured with 20k events, (64, 64) tanh, batch 256, up to 20 epochs (early stopping, patience 10), lr 2e-3,
# seeds 0-2: score MSE 0.0040, 0.0012, 0.0010. One epoch at lr 1e-6: 0.37-0.65 (Var t(x) = 0.5).
THRESHOLD = 0.008
UNTRAINED_FLOOR = 0.2
FAST = dict(hidden_layer_sizes=(64, 64), batch_size=256, max_epochs=20, lr=2e-3, random_state=0)


@pytest.fixture(scope="module")
def toy():
    X, t = local_sample(20_000, seed=0)
    X_test, _ = local_sample(5_000, seed=100)
    return X, t, X_test, true_score(X_test, 0.0)


@pytest.fixture(scope="module")
def fitted(toy):
    X, t, _, _ = toy
    return SALLY(**FAST).fit(X, t)


def test_sally_converges_to_true_score(fitted, toy):
    _, _, X_test, truth = toy
    pred = fitted.predict(X_test)
    assert pred.shape == (X_test.shape[0],)
    mse = np.mean((pred - truth) ** 2)
    print(f"SALLY score MSE {mse:.5f}")
    assert mse < THRESHOLD
    np.testing.assert_array_equal(fitted.score_at(X_test), pred[:, None])  # protocol: always (n, n_params)


def test_untrained_sally_fails_the_threshold(toy):
    X, t, X_test, truth = toy
    est = SALLY(**{**FAST, "max_epochs": 1, "lr": 1e-6}).fit(X, t)
    assert np.mean((est.predict(X_test) - truth) ** 2) > UNTRAINED_FLOOR > THRESHOLD


def test_output_shapes_follow_y(toy):
    X, t, X_test, _ = toy
    kw = {**FAST, "max_epochs": 2}
    assert SALLY(**kw).fit(X[:2000], t[:2000, None]).predict(X_test[:7]).shape == (7, 1)
    two = np.column_stack([t, -2 * t])[:2000]
    est = SALLY(**kw).fit(X[:2000], two)
    assert est.n_outputs_ == 2 and est.predict(X_test[:7]).shape == (7, 2)


def test_pipeline_gridsearch_and_clone(toy):
    X, t, X_test, truth = toy
    X_shifted = 100.0 + 50.0 * X[:4000]  # the scaler makes the scale irrelevant
    pipe = make_pipeline(StandardScaler(), SALLY(max_epochs=10, batch_size=128, lr=3e-3, random_state=0))
    search = GridSearchCV(pipe, {"sally__hidden_layer_sizes": [(), (32, 32)]}, cv=3)
    search.fit(X_shifted, t[:4000])
    # the score is linear in x here, so both fit; R^2 must be that of a good regressor of t_xz
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    best = search.best_estimator_
    mse = np.mean((best.predict(100.0 + 50.0 * X_test) - truth) ** 2)
    assert mse < 0.02
    c = clone(pipe)
    assert c.get_params()["sally__random_state"] == 0 and not hasattr(c[-1], "net_")


def test_sally_state_roundtrip(fitted, toy):
    _, _, X_test, _ = toy
    buf = io.BytesIO()
    torch.save(fitted._get_fitted_state(), buf)
    buf.seek(0)
    restored = SALLY._from_fitted_state(torch.load(buf, weights_only=True))
    np.testing.assert_array_equal(restored.predict(X_test), fitted.predict(X_test))
    assert restored.n_outputs_ == 1 and restored.predict(X_test).ndim == 1


def test_sally_verbose_logs_training(toy, caplog):
    X, t, _, _ = toy
    with caplog.at_level("INFO", logger="skminer.estimators"):
        SALLY(hidden_layer_sizes=(4,), max_epochs=2, verbose=1, random_state=0).fit(X[:500], t[:500])
    assert "valid_loss" in caplog.text
    caplog.clear()
    with caplog.at_level("INFO", logger="skminer.estimators"):
        SALLY(hidden_layer_sizes=(4,), max_epochs=2, verbose=0, random_state=0).fit(X[:500], t[:500])
    assert "valid_loss" not in caplog.text


@pytest.mark.slow
def test_sally_converges_large():
    """Measured score MSE 0.00065."""
    X, t = local_sample(200_000, seed=1)
    X_test, _ = local_sample(10_000, seed=2)
    est = SALLY(hidden_layer_sizes=(100, 100), max_epochs=30, batch_size=256, random_state=0).fit(X, t)
    assert np.mean((est.predict(X_test) - true_score(X_test, 0.0)) ** 2) < 1.5e-3


@pytest.mark.parametrize("unit", [1e-9, 1e6])
def test_reference_point_check_is_relative_to_the_parameters_units(toy, unit):
    # The check used |theta - ref| <= 1e-9 * max(1, |ref|): in 1e-9 units every point passed, in 1e-6 units a
    # 0.05 % offset did. Parameters expressed in `unit`: the score (d log p / d theta) scales as 1 / unit.
    X, t, X_test, _ = toy
    ref = np.array([0.3, 0.0]) * unit
    targets = np.column_stack([t[:500], 2.0 * t[:500]]) / unit
    est = SALLY(hidden_layer_sizes=(8,), max_epochs=1, random_state=0).fit(
        X[:500], targets, theta=np.tile(ref, (500, 1)))
    rounded = np.array([(0.1 + 0.2) * unit, (0.1 + 0.2 - 0.3) * unit])  # float rounding only
    assert np.all(est.score_at(X_test[:3], rounded) == est.predict(X_test[:3]))
    with pytest.raises(ValueError, match="only at its reference point"):
        est.score_at(X_test[:3], ref * np.array([1.01, 1.0]))  # 1 % off in the non-zero component
    # the zero component: 1 % of the parameter shift that moves log p by one score spread
    off = ref + np.array([0.0, 0.01 / np.std(targets[:, 1])])
    with pytest.raises(ValueError, match="only at its reference point"):
        est.score_at(X_test[:3], off)
