"""Ensemble: bootstrap members, metadata slicing, reproducibility, parallel fits, mean/std outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from joblib import parallel_backend
from sklearn.base import BaseEstimator, clone
from toy_data import local_sample, ratio_sample, true_score

from skminer.estimators import CARL, SALLY
from skminer.estimators.ensemble import Ensemble
from skminer.estimators.flows import SCANDAL
from skminer.estimators.sallino import SALLINO

TINY = dict(hidden_layer_sizes=(16,), max_epochs=3, batch_size=64)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


class Recorder(BaseEstimator):
    """Records what ``fit`` received (module level so that joblib's process workers can pickle it)."""

    def __init__(self, random_state=None):
        self.random_state = random_state

    def fit(self, X, y=None, *, theta=None, scale=None, r_xz=None):
        self.X_ = np.asarray(X)
        self.y_ = None if y is None else np.asarray(y)
        self.theta_ = theta
        self.scale_ = scale
        return self

    def predict(self, X):
        return np.full(len(X), float(self.random_state))


def test_members_get_bootstrap_rows_with_matching_metadata():
    X = np.arange(50, dtype=float).reshape(25, 2)
    y = X[:, 0] * 10
    theta = X[:, :1] + 0.5
    ens = Ensemble(Recorder(), n_estimators=4, random_state=0).fit(X, y, theta=theta, scale=3.0)
    assert len(ens.members_) == 4
    seen = []
    for member, seed in zip(ens.members_, ens.member_seeds_, strict=True):
        assert member.random_state == seed
        np.testing.assert_array_equal(member.y_, member.X_[:, 0] * 10)  # y resampled with X
        np.testing.assert_array_equal(member.theta_[:, 0], member.X_[:, 0] + 0.5)  # so is per-event metadata
        assert member.scale_ == 3.0  # scalar metadata is passed through
        assert member.X_.shape == X.shape
        assert len(np.unique(member.X_[:, 0])) < len(X)  # drawn with replacement
        seen.append(tuple(member.X_[:, 0]))
    assert len(set(seen)) == 4
    assert len(set(ens.member_seeds_)) == 4
    no_boot = Ensemble(Recorder(), n_estimators=2, bootstrap=False, random_state=0).fit(X, y, theta=theta)
    for member in no_boot.members_:
        np.testing.assert_array_equal(member.X_, X)
    np.testing.assert_array_equal(ens.predict_all("predict", X[:3]), np.array(ens.member_seeds_, float)[:, None]
                                  * np.ones(3))


def test_random_state_reproducibility_and_clone():
    X, t = local_sample(2000, seed=0)
    ens = Ensemble(SALLY(**TINY), n_estimators=3, random_state=7)
    a = ens.fit(X, t).predict_all("predict", X[:100])
    b = clone(ens).fit(X, t).predict_all("predict", X[:100])
    c = Ensemble(SALLY(**TINY), n_estimators=3, random_state=8).fit(X, t).predict_all("predict", X[:100])
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert not np.allclose(a[0], a[1])  # members differ
    params = ens.get_params()
    assert params["estimator__max_epochs"] == 3 and params["n_estimators"] == 3
    ens.set_params(estimator__max_epochs=1)
    assert ens.estimator.max_epochs == 1


def test_sally_ensemble_shapes_and_convergence():
    X, t = local_sample(4000, seed=1)
    ens = Ensemble(SALLY(hidden_layer_sizes=(32,), max_epochs=10, batch_size=128, lr=3e-3), n_estimators=3,
                   random_state=0).fit(X, t)
    Xt = np.linspace(-2, 2, 50)[:, None]
    per_member = ens.predict_all("predict", Xt)
    assert per_member.shape == (3, 50)
    mean, std = ens.predict(Xt, return_std=True)
    np.testing.assert_allclose(mean, per_member.mean(axis=0))
    np.testing.assert_allclose(std, per_member.std(axis=0, ddof=1))
    assert np.all(std > 0)
    np.testing.assert_array_equal(ens.score_at(Xt), mean[:, None])
    # the ensemble mean estimates the score t(x | 0) = x / 2
    assert np.mean((mean - true_score(Xt, 0.0)) ** 2) < 0.01


def test_ratio_ensemble_parallel_matches_sequential():
    d = ratio_sample(1500, seed=2)
    kw = dict(theta=d["theta"], r_xz=d["r_xz"])
    seq = Ensemble(CARL(**TINY), n_estimators=2, random_state=3).fit(d["X"], d["y"], **kw)
    par = Ensemble(CARL(**TINY), n_estimators=2, n_jobs=2, random_state=3).fit(d["X"], d["y"], **kw)
    X = d["X"][:200]
    np.testing.assert_allclose(par.predict_all("predict", X, d["theta"][:200]),
                               seq.predict_all("predict", X, d["theta"][:200]), rtol=1e-5, atol=1e-6)
    with parallel_backend("threading", n_jobs=2):
        thr = Ensemble(CARL(**TINY), n_estimators=2, random_state=3).fit(d["X"], d["y"], **kw)
    np.testing.assert_allclose(thr.predict_log_ratio(X, [0.5]), seq.predict_log_ratio(X, [0.5]), rtol=1e-5,
                               atol=1e-6)
    mean, std = seq.predict_log_ratio(X, [0.5], return_std=True)
    assert mean.shape == std.shape == (200,)
    assert seq.score_at(X, [0.5]).shape == (200, 1)


def test_flow_ensemble_outputs():
    rng = np.random.default_rng(4)
    theta = rng.uniform(-1, 1, size=(600, 1))
    X = theta + rng.normal(size=(600, 1))
    ens = Ensemble(SCANDAL(**TINY), n_estimators=2, random_state=0).fit(X, theta=theta, t_xz=X - theta)
    ll, ll_std = ens.log_likelihood(X[:10], [0.0], return_std=True)
    assert ll.shape == ll_std.shape == (10,)
    assert ens.predict_all("score_at", X[:10], [0.0]).shape == (2, 10, 1)
    assert ens.predict_log_ratio(X[:10], [0.5], [0.0]).shape == (10,)
    single = Ensemble(SCANDAL(**TINY), n_estimators=1, random_state=0).fit(X, theta=theta, t_xz=X - theta)
    _, std = single.log_likelihood(X[:10], [0.0], return_std=True)
    np.testing.assert_array_equal(std, 0.0)


def test_sallino_ensemble_calibration():
    rng = np.random.default_rng(6)
    X, t = local_sample(1000, seed=6)
    ens = Ensemble(SALLINO(n_bins=5, **TINY), n_estimators=2, random_state=0).fit(X, t)
    theta_cal = np.repeat([[0.0], [0.5]], 500, axis=0)
    x_cal = theta_cal + rng.normal(size=(1000, 1)) * np.sqrt(2)
    ens.calibrate(x_cal, theta_cal)
    mean, std = ens.predict_log_ratio(X[:20], [0.5], [0.0], return_std=True)
    assert mean.shape == std.shape == (20,)
    for member in ens.members_:
        np.testing.assert_array_equal(member.calibration_theta_, [[0.0], [0.5]])
    # calibrate exists only when the members have it (so callers can ask hasattr)
    assert not hasattr(Ensemble(Recorder(), n_estimators=1).fit(X), "calibrate")


def test_errors():
    X = np.zeros((10, 2))
    with pytest.raises(ValueError, match="n_estimators"):
        Ensemble(Recorder(), n_estimators=0).fit(X)
    with pytest.raises(ValueError, match="n_jobs"):
        Ensemble(Recorder(), n_jobs=0).fit(X)
    with pytest.raises(ValueError, match="estimator"):
        Ensemble(None).fit(X)
    with pytest.raises(ValueError, match="'bootstrap' parameter of Ensemble"):
        Ensemble(Recorder(), bootstrap="yes").fit(X)
    with pytest.raises(TypeError):  # bootstrap, n_jobs and random_state are keyword-only
        Ensemble(Recorder(), 2, False)
    # per-event metadata is checked whole, before the bootstrap (a bad row no member draws would pass unseen)
    theta = np.zeros(10)
    theta[3] = np.nan
    with pytest.raises(ValueError, match="theta contains NaN or infinity in 1 events"):
        Ensemble(Recorder(), n_estimators=2).fit(X, theta=theta)
    r_xz = np.ones(10)
    r_xz[2] = np.inf  # a joint ratio may be infinite, never NaN
    Ensemble(Recorder(), n_estimators=2, random_state=0).fit(X, r_xz=r_xz)
    r_xz[5] = np.nan
    with pytest.raises(ValueError, match="r_xz contains NaN in 1 events"):
        Ensemble(Recorder(), n_estimators=2).fit(X, r_xz=r_xz)
    with pytest.raises(ValueError, match="one entry per event"):
        Ensemble(Recorder()).fit(X, np.zeros(3))
    ens = Ensemble(Recorder(), n_estimators=2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="no method 'log_likelihood'"):
        ens.predict_all("log_likelihood", X)
    for bad in ("fit", "_fit", "set_params"):
        with pytest.raises(ValueError, match="public prediction method"):
            ens.predict_all(bad, X)


def test_ensemble_fisher_information_mean_and_covariance():
    """FisherInformation uses an ensemble's predict_members: mean information and a non-zero member spread."""
    from skminer.estimators import SALLY, Ensemble
    from skminer.inference import FisherInformation
    from skminer.simulation import ToySimulator

    toy = ToySimulator()
    theta = np.zeros(2)
    x, z = toy.sample(4000, theta, random_state=3, return_latent=True)
    ens = Ensemble(SALLY(hidden_layer_sizes=(16,), max_epochs=3, random_state=0), n_estimators=3,
                   random_state=1).fit(x, toy.joint_score(z, theta))
    members = ens.predict_members(x[:10])
    assert members.shape == (3, 10, 2)
    fisher = FisherInformation(toy.simulate(5000, random_state=4))
    mean, cov = fisher.full_information(theta, ens, 100.0, return_covariance=True)
    per_member = fisher.full_information_members(theta, ens, 100.0)
    assert per_member.shape == (3, 2, 2)
    np.testing.assert_allclose(mean, per_member.mean(axis=0), rtol=1e-10)
    assert cov.shape == (2, 2, 2, 2) and np.all(np.isfinite(cov)) and np.abs(cov).max() > 0


def test_ensemble_runs_on_a_registered_external_backend():
    """A backend registered with joblib (as dask.distributed does for "dask") receives the member fits."""
    from joblib import register_parallel_backend
    from joblib._parallel_backends import ThreadingBackend

    calls = []

    class RecordingBackend(ThreadingBackend):  # stands in for a cluster backend
        def submit(self, func, callback=None):
            calls.append(func)
            return super().submit(func, callback)

    register_parallel_backend("recording", RecordingBackend)
    d = ratio_sample(800, seed=4)
    with parallel_backend("recording", n_jobs=2):
        ens = Ensemble(CARL(**TINY), n_estimators=3, random_state=0).fit(d["X"], d["y"], theta=d["theta"])
    assert len(ens.members_) == 3 and calls
