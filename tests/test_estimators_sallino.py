"""SALLINO on the analytic ToySimulator: local log-likelihood ratios from 1-D histograms of t_hat . dtheta."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from skminer.estimators.sallino import SALLINO
from skminer.simulation.toy import ToySimulator

TOY = ToySimulator()
REF = np.zeros(2)
GRID = np.array([[0.0, 0.0], [0.2, 0.0], [-0.2, 0.0], [0.0, 0.2], [0.0, -0.2], [0.15, 0.15], [0.5, -0.5]])
FAST = dict(hidden_layer_sizes=(32, 32), max_epochs=20, batch_size=256, lr=2e-3, n_bins=20)

# Measured (10k training events at theta_ref = 0, FAST, seeds 0-2), MSE of log r(x|theta, 0) for x ~ p(x|0):
#   mean over the 5 points at |dtheta| ~ 0.2:  unweighted calibration (10k events per point) 0.0051-0.0064,
#                                               weighted calibration (40k reweighted events) 0.0021;
#   at theta = (0.5, -0.5):                     unweighted 0.018-0.020, weighted 0.014-0.015.
#   Mean true (log r)^2: 0.022 near, 0.209 far. Untrained network (1 epoch, lr 1e-6), weighted: near
#   0.006-0.016, far 0.063-0.156.
NEAR_UNWEIGHTED = 0.01
NEAR_WEIGHTED = 0.004
FAR = 0.03


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def train():
    x, z = TOY.sample(10_000, REF, random_state=0, return_latent=True)
    return x, TOY.joint_score(z, REF)


@pytest.fixture(scope="module")
def calibration():
    rng = np.random.default_rng(1)
    x_unw = np.concatenate([TOY.sample(10_000, g, random_state=rng) for g in GRID])
    th_unw = np.repeat(GRID, 10_000, axis=0)
    x_w = TOY.sample(40_000, REF, random_state=rng)
    weights = np.exp(TOY.log_ratio(x_w, GRID, REF))  # exact weights of the reference sample at every grid point
    return {"x_unw": x_unw, "th_unw": th_unw, "x_w": x_w, "w": weights}


@pytest.fixture(scope="module")
def x_eval():
    return TOY.sample(5000, REF, random_state=999)


def _mse(est, x_eval):
    pred = est.predict_log_ratio(x_eval, GRID[1:], REF).T  # protocol: (n_theta, n_events)
    truth = TOY.log_ratio(x_eval, GRID[1:], REF)
    assert pred.shape == truth.shape == (len(x_eval), len(GRID) - 1)
    mse = np.mean((pred - truth) ** 2, axis=0)
    return float(np.mean(mse[:5])), float(mse[5])


@pytest.fixture(scope="module")
def trained(train):
    return SALLINO(random_state=0, **FAST).fit(*train)


def test_local_log_ratio_converges(trained, calibration, x_eval):
    est = trained.calibrate(calibration["x_unw"], calibration["th_unw"])
    np.testing.assert_array_equal(est.calibration_theta_, np.unique(GRID, axis=0))
    near, far = _mse(est, x_eval)
    assert near < NEAR_UNWEIGHTED
    assert far < 1.5 * FAR
    est.calibrate(calibration["x_w"], GRID, sample_weight=calibration["w"])
    near_w, far_w = _mse(est, x_eval)
    assert near_w < NEAR_WEIGHTED
    assert far_w < FAR


def test_untrained_network_fails(train, calibration, x_eval):
    est = SALLINO(random_state=0, **{**FAST, "max_epochs": 1, "lr": 1e-6}).fit(*train)
    est.calibrate(calibration["x_w"], GRID, sample_weight=calibration["w"])
    near, far = _mse(est, x_eval)
    assert near > 2 * NEAR_WEIGHTED
    assert far > 1.5 * FAR


def test_ratio_properties(trained, calibration, x_eval):
    est = trained.calibrate(calibration["x_unw"], calibration["th_unw"])
    x = x_eval[:500]
    np.testing.assert_array_equal(est.predict_log_ratio(x, REF, REF), 0.0)
    a, b = GRID[1], GRID[5]
    # the histogram of h = t . (a - b) uses the same bins as that of -h: log r(a, b) = -log r(b, a)
    np.testing.assert_allclose(est.predict_log_ratio(x, a, b), -est.predict_log_ratio(x, b, a), atol=1e-12)
    single = est.predict_log_ratio(x, a, REF)
    assert single.shape == (500,)
    np.testing.assert_array_equal(single, est.predict_log_ratio(x, a[None], REF)[0])
    # the calibrated histograms are normalised: E_{x ~ p(x|0)}[r(x | a, 0)] = 1 on the calibration sample
    # (up to the min_probability floor of empty bins)
    x_ref = calibration["x_unw"][np.all(calibration["th_unw"] == 0.0, axis=1)]
    assert len(x_ref) == 10_000
    assert np.mean(np.exp(est.predict_log_ratio(x_ref, a, REF))) == pytest.approx(1.0, abs=1e-4)


def test_api_and_errors(trained, train, calibration):
    est = clone(trained)
    assert est.get_params()["n_bins"] == 20 and est.get_params()["min_probability"] == 1e-6
    x = train[0][:100]
    fresh = SALLINO(hidden_layer_sizes=(8,), max_epochs=1, random_state=0).fit(x, train[1][:100])
    with pytest.raises(NotFittedError, match="calibrate"):
        fresh.predict_log_ratio(x, GRID[1], REF)
    with pytest.raises(ValueError, match="one row per calibration event"):
        fresh.calibrate(x, GRID)
    with pytest.raises(ValueError, match="sample_weight must have shape"):
        fresh.calibrate(x, GRID, sample_weight=np.ones((100, 3)))
    with pytest.raises(ValueError, match="positive sum"):
        fresh.calibrate(x, GRID[:2], sample_weight=np.hstack([np.ones((100, 1)), -np.ones((100, 1))]))
    with pytest.raises(ValueError, match="duplicate"):
        fresh.calibrate(x, np.vstack([GRID[:2], GRID[:1]]), sample_weight=np.ones((100, 3)))
    fresh.calibrate(x, np.repeat(GRID[:2], 50, axis=0))
    with pytest.raises(ValueError, match="not a calibration point"):
        fresh.predict_log_ratio(x, GRID[3], REF)
    with pytest.raises(ValueError, match="theta1 must be one parameter point"):
        fresh.predict_log_ratio(x, GRID[1], GRID[:2])
    with pytest.raises(ValueError, match="pass theta1"):
        fresh.predict_log_ratio(x, GRID[1])
    # fitted with its reference point, theta1 defaults to it and score_at refuses other points
    ref = SALLINO(hidden_layer_sizes=(8,), max_epochs=1, random_state=0).fit(x, train[1][:100], theta=GRID[0])
    ref.calibrate(x, np.repeat(GRID[:2], 50, axis=0))
    np.testing.assert_array_equal(ref.predict_log_ratio(x, GRID[1]), ref.predict_log_ratio(x, GRID[1], GRID[0]))
    assert ref.score_at(x, GRID[0]).shape == (100, 2)
    with pytest.raises(ValueError, match="only at its reference point"):
        ref.score_at(x, GRID[1])
    with pytest.raises(ValueError, match="n_bins"):
        SALLINO(n_bins=0).fit(x, train[1][:100])
    # refitting discards the calibration
    fresh.fit(x, train[1][:100])
    assert not hasattr(fresh, "calibration_theta_")


def test_calibration_point_match_is_scale_free_for_a_parameter_zero_everywhere(train):
    # A parameter that is zero at every calibration point fell back to the absolute tolerance 1e-9: with
    # parameters in 1e-9 units, theta2 = 1e-11 (1 % of its natural scale) matched the point theta2 = 0.
    unit = 1e-9
    x, t = train[0][:200], train[1][:200] / unit
    est = SALLINO(hidden_layer_sizes=(8,), max_epochs=1, random_state=0).fit(x, t, theta=REF)
    grid = np.array([[0.0, 0.0], [0.2, 0.0]]) * unit
    est.calibrate(x, np.repeat(grid, 100, axis=0))
    est.predict_log_ratio(x[:3], grid[1] + np.array([0.0, (0.1 + 0.2 - 0.3) * unit]), grid[0])  # rounding only
    off = grid[1] + np.array([0.0, 0.01 / np.std(t[:, 1])])
    with pytest.raises(ValueError, match="not a calibration point"):
        est.predict_log_ratio(x[:3], off, grid[0])
