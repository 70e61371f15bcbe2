"""Standardisation folded into the first and last linear layers: same network, old files still load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from skminer.estimators._net import RatioNet, ScoreNet, init_module_
from skminer.estimators.persistence import load_estimator

DATA = Path(__file__).parent / "data" / "estimators_0x"


def _stats(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.normal(scale=50.0, size=n), rng.uniform(0.01, 30.0, size=n)


def _ratio_net() -> tuple[RatioNet, np.random.Generator]:
    rng = np.random.default_rng(1)
    x_mean, x_scale = _stats(rng, 3)
    th_mean, th_scale = _stats(rng, 2)
    net = RatioNet(3, 2, (16, 16), "tanh", x_mean=x_mean, x_scale=x_scale, theta_mean=th_mean, theta_scale=th_scale,
                   return_score=True)
    init_module_(net, torch.Generator().manual_seed(0))
    return net, rng


def _raw(rng: np.random.Generator, std) -> torch.Tensor:  # noqa: ANN001
    n = std.mean.shape[0]
    return torch.as_tensor(std.mean.numpy() + std.scale.numpy() * rng.normal(size=(40, n)), dtype=torch.float64)


def test_folded_ratio_network_equals_the_standardised_one_on_raw_inputs():
    net, rng = _ratio_net()
    x, theta = _raw(rng, net.x_std), _raw(rng, net.theta_std)
    ref = net.double()  # float64 reference: standardise, then the unfolded network
    theta_ref = theta.clone().requires_grad_(True)
    x_s = (x - ref.x_std.mean) / ref.x_std.scale
    log_r_ref = ref.log_r(x_s, (theta_ref - ref.theta_std.mean) / ref.theta_std.scale)
    (t_ref,) = torch.autograd.grad(log_r_ref.sum(), theta_ref)
    folded = ref.fold_standardisation_()
    log_r, t = folded.log_r_and_score(x, theta)
    torch.testing.assert_close(log_r, log_r_ref.detach(), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(t, t_ref, rtol=1e-10, atol=1e-12)
    assert torch.all(folded.x_std.mean == 0) and torch.all(folded.theta_std.scale == 1)


def test_training_space_score_is_in_standardised_theta_units():
    """Before folding the network sees standardised theta and returns d log r / d theta_std = s d log r / d theta
    (the units of the scaled joint-score targets); folded, d log r / d (raw theta)."""
    net, rng = _ratio_net()
    net = net.double()
    x, theta = _raw(rng, net.x_std), _raw(rng, net.theta_std)
    x_s = (x - net.x_std.mean) / net.x_std.scale
    th_s = (theta - net.theta_std.mean) / net.theta_std.scale
    scale = net.theta_std.scale.clone()
    _, t_train = net.log_r_and_score(x_s, th_s)
    _, t_folded = net.fold_standardisation_().log_r_and_score(x, theta)
    torch.testing.assert_close(t_train, t_folded * scale, rtol=1e-10, atol=1e-12)


def test_folded_score_network_maps_raw_inputs_to_raw_outputs_and_folding_is_idempotent():
    rng = np.random.default_rng(2)
    x_mean, x_scale = _stats(rng, 4)
    y_mean, y_scale = _stats(rng, 2)
    net = ScoreNet(4, 2, (16,), "tanh", x_mean=x_mean, x_scale=x_scale, y_mean=y_mean, y_scale=y_scale).double()
    init_module_(net, torch.Generator().manual_seed(0))
    net = net.double()
    x = _raw(rng, net.x_std)
    expected = net((x - net.x_std.mean) / net.x_std.scale) * net.y_std.scale + net.y_std.mean
    once = net.fold_standardisation_()(x)
    torch.testing.assert_close(once, expected.detach(), rtol=1e-10, atol=1e-9)
    torch.testing.assert_close(net.fold_standardisation_()(x), once, rtol=0, atol=0)


def test_standardise_arrays_transforms_inputs_and_standardised_targets_only():
    net, rng = _ratio_net()
    x, theta = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    inputs, targets = net.standardise_arrays({"x": x, "theta": theta}, {"y": np.ones(5), "t_xz": None})
    np.testing.assert_allclose(inputs["x"], (x - net.x_std.mean.numpy()) / net.x_std.scale.numpy(), rtol=1e-6)
    np.testing.assert_allclose(inputs["theta"], (theta - net.theta_std.mean.numpy()) / net.theta_std.scale.numpy(),
                               rtol=1e-6)
    assert targets["t_xz"] is None and np.all(targets["y"] == 1)


@pytest.mark.parametrize("name", ["sally", "alices"])
def test_files_saved_before_folding_load_with_the_same_predictions(name):
    """Fixtures written by skminer before the standardisation was folded (buffers hold real statistics)."""
    stored = np.load(DATA / "predictions.npz")
    est = load_estimator(DATA / f"{name}.pt")
    if name == "sally":
        np.testing.assert_allclose(est.predict(stored["x"]), stored["sally"], rtol=1e-5, atol=1e-5)
    else:
        np.testing.assert_allclose(est.predict_log_ratio(stored["x"], stored["grid"]), stored["alices"], rtol=1e-5,
                                   atol=1e-5)
        np.testing.assert_allclose(est.score_at(stored["x"], stored["grid"][0]), stored["alices_score"], rtol=1e-4,
                                   atol=1e-6)
