"""The whole chain on the built-in simulator against its exact likelihood.

ToySimulator (weighted events with morphing) -> EventSet.train_test_split -> RatioSampler (r_xz, t_xz from
morphing) -> ratio estimators -> predict_log_ratio compared with the exact ``log p(x|theta) / p(x|0)`` at x drawn
from 20 random parameter points. The joint score of this toy has heavy tails (std ~40 where the amplitude
nearly vanishes), so the score-based losses use a small ``alpha`` (twice the values the thresholds were measured
with before the score term became a mean over the two components: the same loss).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import config_context
from sklearn.model_selection import GridSearchCV

from skminer import estimators as est
from skminer.augmentation import RatioSampler, UniformPrior
from skminer.simulation import ToySimulator

THETA1 = np.zeros(2)
# measured MSE (seed 0): ALICE 0.018, ALICES 0.020, CARL 0.083; the variance of the true log r is 0.61
THRESHOLDS = {"ALICE": 0.03, "ALICES": 0.03, "CARL": 0.12}
# The thresholds were measured with a constant learning rate and the raw best epoch; with the default decaying
# schedule and 25 epochs ALICE reached only 0.079 here (undertrained: the decay to 1e-4 comes too early for 60k
# events at batch 256), so the measured configuration is pinned explicitly.
COMMON = {"hidden_layer_sizes": (64, 64), "batch_size": 256, "lr": 1e-3, "lr_schedule": "constant",
          "epoch_selection": "best", "max_epochs": 50, "patience": 10,
          "random_state": 0}


@pytest.fixture(scope="module")
def toy():
    return ToySimulator()


@pytest.fixture(scope="module")
def sample(toy):
    events = toy.simulate(100_000, random_state=0)
    train, _ = events.train_test_split(test_fraction=0.2, random_state=0)
    sampler = RatioSampler(theta0_prior=UniformPrior(toy.space.ranges), theta1=THETA1, n_thetas=200)
    return sampler.sample(train, 60_000, random_state=1)


@pytest.fixture(scope="module")
def evaluation(toy):
    rng = np.random.default_rng(5)
    thetas = rng.uniform(-1, 1, size=(20, 2))
    x = np.vstack([toy.sample(500, th, random_state=i) for i, th in enumerate(thetas)])
    theta = np.repeat(thetas, 500, axis=0)
    return x, theta, toy.log_ratio(x, theta, THETA1, paired=True)


@pytest.fixture(autouse=True, scope="module")
def _threads():
    n = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(n)


def _mse(model, evaluation) -> float:
    x, theta, truth = evaluation
    return float(np.mean((model.predict(x, theta) - truth) ** 2))  # per-event theta


def _fit(name, sample, **params):
    model = getattr(est, name)(**{**COMMON, **params})
    return model.fit(sample.x, sample.y, theta=sample.theta0, r_xz=sample.r_xz, t_xz=sample.t_xz)


def test_sample_has_no_label_leak(sample):
    """Both classes carry the same theta0 values, so theta alone cannot predict y."""
    th0 = sample.theta0[sample.y == 0]
    th1 = sample.theta0[sample.y == 1]
    np.testing.assert_allclose(np.sort(th0, axis=0), np.sort(th1, axis=0))


@pytest.mark.parametrize(("name", "params"), [("ALICE", {}), ("ALICES", {"alpha": 0.02}), ("CARL", {})])
def test_ratio_estimators_converge_to_exact_log_ratio(name, params, sample, evaluation):
    mse = _mse(_fit(name, sample, **params), evaluation)
    untrained = _mse(getattr(est, name)(**{**COMMON, **params, "max_epochs": 1}).fit(
        sample.x[:512], sample.y[:512], theta=sample.theta0[:512], r_xz=sample.r_xz[:512],
        t_xz=sample.t_xz[:512]), evaluation)
    assert mse < THRESHOLDS[name] < untrained


@pytest.mark.slow
@pytest.mark.parametrize(("name", "params", "threshold"), [
    ("ROLR", {}, 0.25), ("CASCAL", {"alpha": 0.02}, 0.09), ("RASCAL", {"alpha": 2.0}, 0.16),
])
def test_other_ratio_estimators_converge(name, params, threshold, sample, evaluation):
    # measured (seed 0): ROLR 0.200 and RASCAL 0.107 (regressing on r_xz, which has heavy tails here: log r_xz
    # spans -16..10), CASCAL 0.057 (0.18 with alpha=1, where the heavy-tailed score term dominates)
    assert _mse(_fit(name, sample, **params), evaluation) < threshold


@pytest.mark.slow
def test_grid_search_over_alpha_and_architecture(sample, evaluation):
    """GridSearchCV's alpha-independent score picks a model that converges as well as a hand-tuned one."""
    grid = {"alpha": [0.01, 1.0], "hidden_layer_sizes": [(32,), (64, 64)]}
    base = est.ALICES(**{k: v for k, v in COMMON.items() if k != "hidden_layer_sizes"})
    with config_context(enable_metadata_routing=True):
        search = GridSearchCV(base, grid, cv=2)
        search.fit(sample.x, sample.y, theta=sample.theta0, r_xz=sample.r_xz, t_xz=sample.t_xz)
    assert _mse(search.best_estimator_, evaluation) < THRESHOLDS["ALICES"]
