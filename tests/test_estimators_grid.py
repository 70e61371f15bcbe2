"""Grid evaluation: the split first layer equals the dense forward pass; evaluation blocks sized by device."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skminer.estimators import CARL, DoubleCARL
from skminer.estimators import base as est_base
from skminer.estimators._net import RatioNet, init_module_

SMALL = dict(hidden_layer_sizes=(16, 16), max_epochs=1, random_state=0, n_threads=1)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    n = 400
    return {"X": rng.normal(size=(n, 3)) * [1, 10, 100], "theta": rng.uniform(-1, 1, size=(n, 2)),
            "y": rng.integers(0, 2, n).astype(float), "grid": rng.uniform(-1, 1, size=(7, 2))}


def test_split_first_layer_equals_the_dense_forward_on_tiled_pairs():
    net = RatioNet(3, 2, (16, 8), "tanh").double()
    init_module_(net, torch.Generator().manual_seed(0))
    net = net.double()
    rng = np.random.default_rng(1)
    x = torch.as_tensor(rng.normal(size=(11, 3)))
    rows = torch.as_tensor(rng.normal(size=(5, 2)))
    dense = net.log_r(x.repeat(5, 1), rows.repeat_interleave(11, dim=0)).reshape(5, 11)
    torch.testing.assert_close(net.log_r_grid(x, rows), dense, rtol=1e-12, atol=1e-12)


def test_split_first_layer_of_a_linear_network():
    net = RatioNet(3, 2, (), "tanh").double()
    x, rows = torch.randn(4, 3, dtype=torch.float64), torch.randn(2, 2, dtype=torch.float64)
    dense = net.log_r(x.repeat(2, 1), rows.repeat_interleave(4, dim=0)).reshape(2, 4)
    torch.testing.assert_close(net.log_r_grid(x, rows), dense, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("batch", [1, 7, 400, 4096])
def test_grid_prediction_equals_per_event_prediction_for_any_block_size(data, batch, monkeypatch):
    est = CARL(**SMALL).fit(data["X"], data["y"], theta=data["theta"])
    X, grid = data["X"], data["grid"]
    dense = est.predict(np.tile(X, (len(grid), 1)), np.repeat(grid, len(X), axis=0)).reshape(len(grid), len(X))
    monkeypatch.setitem(est_base.EVAL_BATCH_SIZES, "cpu", batch)
    assert est._eval_batch_size == batch
    np.testing.assert_allclose(est.predict_log_ratio(X, grid), dense, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(est.predict_log_ratio(X, grid[2]), dense[2], rtol=1e-5, atol=1e-6)


def test_doubly_parameterised_grid_equals_per_event_prediction(data):
    theta2 = np.hstack([data["theta"], data["theta"][::-1]])
    est = DoubleCARL(**SMALL).fit(data["X"], data["y"], theta=theta2)
    X, grid, point1 = data["X"], data["grid"], np.array([0.1, -0.3])
    rows = np.hstack([np.repeat(grid, len(X), axis=0), np.broadcast_to(point1, (len(X) * len(grid), 2))])
    dense = est.predict(np.tile(X, (len(grid), 1)), rows).reshape(len(grid), len(X))
    np.testing.assert_allclose(est.predict_log_ratio(X, grid, point1), dense, rtol=1e-5, atol=1e-6)


def test_evaluation_block_size_depends_on_the_device():
    assert est_base.eval_batch_size("cpu") == est_base.EVAL_BATCH_SIZES["cpu"] < est_base.EVAL_BATCH_SIZE
    assert est_base.eval_batch_size("cuda:0") == est_base.EVAL_BATCH_SIZE
