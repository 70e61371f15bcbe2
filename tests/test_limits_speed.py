"""AsymptoticLimits speed options: an Asimov subset (n_asimov) and scans refined around the contours."""

from __future__ import annotations

import numpy as np
import pytest
import test_limits
from test_limits import LUMI, THETA_REF, OracleDensity, OracleRatio

from skminer.inference import AsymptoticLimits, theta_grid
from skminer.inference._adaptive import refine_scan, regular_grid_index

CLS = (0.68, 0.95)
toy, events = test_limits.toy, test_limits.events  # the fixtures of test_limits (toy simulator, 5000 events)


def test_n_asimov_evaluates_a_reweighted_subset(toy, events):
    grid = theta_grid([[-1.0, 1.0], [-1.0, 1.0]], 9)
    full = AsymptoticLimits(events, LUMI).expected_limits([0.0, 0.0], grid, mode="ratio",
                                                          estimator=OracleRatio(toy, THETA_REF))
    oracle = OracleRatio(toy, THETA_REF)
    sub = AsymptoticLimits(events, LUMI, n_asimov=1000, random_state=3).expected_limits(
        [0.0, 0.0], grid, mode="ratio", estimator=oracle)
    assert sub.info["n_asimov"] == 1000 and sum(oracle.rows) == 1000 * grid.shape[0]
    # the total Asimov weight (hence the rate term) is unchanged; q is a Monte-Carlo estimate of the full one
    np.testing.assert_allclose(sub.log_likelihood_rate, full.log_likelihood_rate, rtol=1e-12)
    assert np.corrcoef(sub.q, full.q)[0, 1] > 0.98
    again = AsymptoticLimits(events, LUMI, n_asimov=1000, random_state=3).expected_limits(
        [0.0, 0.0], grid, mode="ratio", estimator=OracleRatio(toy, THETA_REF))
    np.testing.assert_array_equal(again.q, sub.q)
    # at least as many as there are events: every event, the default result
    everything = AsymptoticLimits(events, LUMI, n_asimov=10**6).expected_limits(
        [0.0, 0.0], grid, mode="ratio", estimator=OracleRatio(toy, THETA_REF))
    np.testing.assert_array_equal(everything.q, full.q)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_n_asimov_must_be_a_positive_integer(events, bad):
    with pytest.raises(ValueError, match="n_asimov"):
        AsymptoticLimits(events, LUMI, n_asimov=bad)


@pytest.mark.parametrize(("lumi", "theta_true"), [(10.0, [0.0, 0.0]), (30.0, [0.5, -0.3]), (300.0, [-0.8, 0.9])])
def test_refined_scan_gives_the_dense_contours(toy, events, lumi, theta_true):
    grid = theta_grid([[-1.0, 1.0], [-1.0, 1.0]], 21)
    limits = AsymptoticLimits(events, lumi)
    dense = limits.expected_limits(theta_true, grid, mode="ratio", estimator=OracleRatio(toy, THETA_REF))
    oracle = OracleRatio(toy, THETA_REF)
    refined = limits.expected_limits(theta_true, grid, mode="ratio", estimator=oracle, refine=CLS)
    evaluated = refined.info["evaluated"]
    assert sum(oracle.rows) == evaluated.sum() * refined.info["n_asimov"] < grid.shape[0] * refined.info["n_asimov"]
    for cl in CLS:
        np.testing.assert_array_equal(refined.confidence_region(cl), dense.confidence_region(cl))
    assert refined.best_fit_index == dense.best_fit_index
    np.testing.assert_allclose(refined.q[evaluated], dense.q[evaluated], rtol=1e-9, atol=1e-8)


def test_refined_scan_in_any_row_order_and_likelihood_mode(toy, events):
    grid = theta_grid([[-1.0, 1.0], [-1.0, 1.0]], 17)[np.random.default_rng(0).permutation(17 * 17)]
    limits = AsymptoticLimits(events, LUMI)
    dense = limits.expected_limits([0.2, 0.1], grid, mode="likelihood", estimator=OracleDensity(toy))
    refined = limits.expected_limits([0.2, 0.1], grid, mode="likelihood", estimator=OracleDensity(toy), refine=CLS)
    for cl in CLS:
        np.testing.assert_array_equal(refined.confidence_region(cl), dense.confidence_region(cl))


def test_refine_needs_a_regular_grid_and_a_network_mode(toy, events):
    limits = AsymptoticLimits(events, LUMI)
    irregular = np.random.default_rng(0).uniform(-1, 1, size=(30, 2))
    with pytest.raises(ValueError, match="regular grid"):
        limits.expected_limits([0.0, 0.0], irregular, mode="ratio", estimator=OracleRatio(toy, THETA_REF),
                               refine=CLS)
    with pytest.raises(ValueError, match="refine applies"):
        limits.expected_limits([0.0, 0.0], theta_grid([[-1, 1], [-1, 1]], 5), mode="histogram", observables=[0],
                               refine=CLS)
    with pytest.raises(ValueError, match="confidence levels"):
        limits.expected_limits([0.0, 0.0], theta_grid([[-1, 1], [-1, 1]], 5), mode="ratio",
                               estimator=OracleRatio(toy, THETA_REF), refine=(1.5,))


@pytest.mark.parametrize("shape", [(17, 13, 9), (41,)])
def test_refine_scan_on_analytic_surfaces(shape):
    mesh = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"), axis=-1)
    if len(shape) == 3:
        ll_true = -0.5 * (12 * (mesh[..., 0] - 0.2) ** 2 + 30 * mesh[..., 1] ** 2 + 8 * (mesh[..., 2] + 0.3) ** 2
                          + 10 * mesh[..., 0] * mesh[..., 1])
    else:  # not quadratic: two minima
        ll_true = -0.5 * (40 * (mesh[..., 0] ** 2 - 0.25) ** 2 + mesh[..., 0])
    levels = np.array([3.5, 7.8])
    calls = []

    def evaluate(flat):
        calls.append(flat.size)
        return ll_true.reshape(-1)[flat]

    ll, evaluated = refine_scan(evaluate, shape, levels)
    assert sum(calls) == evaluated.sum() < ll.size
    q_true, q = -2 * (ll_true - ll_true.max()), -2 * (ll - ll.max())
    for level in levels:
        np.testing.assert_array_equal(q <= level, q_true <= level)
    np.testing.assert_array_equal(ll[evaluated], ll_true[evaluated])


def test_regular_grid_index_maps_mesh_points_to_rows():
    grid = theta_grid([[0, 1], [0, 2]], [3, 4])[::-1]
    shape, rows = regular_grid_index(grid)
    assert shape == (3, 4)
    np.testing.assert_array_equal(grid[rows], theta_grid([[0, 1], [0, 2]], [3, 4]))
    assert regular_grid_index(grid[:-1]) is None
    assert regular_grid_index(np.vstack([grid[:-1], grid[:1]])) is None
