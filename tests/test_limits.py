"""Tests of skminer.inference.limits against the exact likelihood of the toy simulator."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
from scipy import stats

from skminer.inference import (
    AsymptoticLimits,
    LimitResult,
    fisher_limits,
    p_values_from_q,
    theta_grid,
)
from skminer.simulation.toy import ToySimulator

LUMI = 30.0
THETA_TRUE = np.array([0.0, 0.0])
THETA_REF = np.array([0.3, -0.2])  # denominator of the ratio estimator; must not matter


class OracleRatio:
    """Exact ``log p(x|theta0) - log p(x|theta1)`` through the inference protocol; records its batch sizes.

    ``theta_ref=None``: no reference point (like NDE or a doubly parameterised estimator), theta1 is required.
    """

    capabilities = frozenset({"ratio"})

    def __init__(self, toy: ToySimulator, theta_ref: np.ndarray | None) -> None:
        self.toy, self.theta_ref = toy, theta_ref
        self.rows: list[int] = []

    def predict_log_ratio(self, X: np.ndarray, theta0: np.ndarray, theta1: np.ndarray | None = None) -> np.ndarray:
        if theta1 is None:
            assert self.theta_ref is not None, "theta1 is required"
            theta1 = self.theta_ref
        th0 = np.asarray(theta0, dtype=np.float64)
        single = th0.ndim == 1
        th0 = np.atleast_2d(th0)
        assert th0.shape[1] == 2 and np.shape(theta1) == (2,)
        self.rows.append(X.shape[0] * th0.shape[0])
        out = self.toy.log_ratio(X, th0, theta1).reshape(X.shape[0], -1).T  # protocol: (n_theta, n_events)
        return out[0] if single else out


class OracleDensity:
    """Exact ``log p(x|theta)`` through the inference protocol (the ``"density"`` capability)."""

    capabilities = frozenset({"density"})

    def __init__(self, toy: ToySimulator) -> None:
        self.toy = toy

    def log_likelihood(self, X: np.ndarray, theta: np.ndarray) -> np.ndarray:
        th = np.atleast_2d(np.asarray(theta, dtype=np.float64))
        out = self.toy.log_likelihood(X, th).reshape(X.shape[0], -1).T
        return out[0] if np.ndim(theta) == 1 else out


class ExactScore:
    capabilities = frozenset({"score"})

    def __init__(self, toy: ToySimulator, theta: np.ndarray) -> None:
        self.toy, self.theta = toy, theta

    def score_at(self, X: np.ndarray, theta: np.ndarray | None = None) -> np.ndarray:
        return self.toy.score(X, self.theta)


@pytest.fixture(scope="module")
def toy() -> ToySimulator:
    return ToySimulator()


@pytest.fixture(scope="module")
def events(toy):
    return toy.simulate(5000, random_state=21)


@pytest.fixture(scope="module")
def grid() -> np.ndarray:
    return theta_grid([[-1.0, 1.0], [-1.0, 1.0]], 15)


@pytest.fixture(scope="module")
def exact_asimov(toy, events, grid) -> LimitResult:
    """Exact expected limits: the toy's log p(x|theta) summed over the Asimov events (weights L w(theta_true))."""
    c = LUMI * events.weights_at(THETA_TRUE[None, :])[:, 0]
    kin = toy.log_likelihood(events.x, grid).T @ c
    total = LUMI * events.cross_section(grid)
    rate = c.sum() * np.log(total) - total
    return LimitResult.from_log_likelihood(grid, kin + rate, mode="exact")


def test_ratio_limits_with_oracle_match_exact(toy, events, grid, exact_asimov):
    limits = AsymptoticLimits(events, LUMI, max_batch_size=200_000)
    oracle = OracleRatio(toy, THETA_REF)
    res = limits.expected_limits(THETA_TRUE, grid, mode="ratio", estimator=oracle)
    np.testing.assert_allclose(res.q, exact_asimov.q, rtol=1e-9, atol=1e-8)
    np.testing.assert_allclose(res.p_values, exact_asimov.p_values, rtol=1e-8, atol=1e-12)
    np.testing.assert_array_equal(res.confidence_region(0.68), exact_asimov.confidence_region(0.68))
    np.testing.assert_array_equal(res.best_fit, THETA_TRUE)
    assert res.p_values[res.best_fit_index] == 1.0
    assert 0 < res.confidence_region(0.68).sum() < grid.shape[0] // 2  # a non-trivial region
    # batched: one estimator call per grid chunk, never more rows than max_batch_size
    n_nonzero = int(np.sum(events.weights_at(THETA_TRUE[None, :])[:, 0] != 0))
    per_call = 200_000 // n_nonzero
    assert len(oracle.rows) == int(np.ceil(grid.shape[0] / per_call))
    assert max(oracle.rows) <= 200_000 and sum(oracle.rows) == n_nonzero * grid.shape[0]
    # the split into kinematic and rate parts
    total = LUMI * events.cross_section(grid)
    n = LUMI * events.cross_section(THETA_TRUE[None, :])[0]
    np.testing.assert_allclose(res.log_likelihood_rate, n * np.log(total) - total, rtol=1e-12)


def test_ratio_limits_check_the_ratio_closure(toy, events, grid, caplog):
    """Expected ratio limits check E_theta1[r_hat] = 1 on the evaluations they made: quiet for the exact ratio,
    a WARNING naming the size for a miscalibrated one (twice the true log ratio)."""
    limits = AsymptoticLimits(events, LUMI)
    with caplog.at_level(logging.WARNING, logger="skminer.inference"):
        res = limits.expected_limits(THETA_TRUE, grid, mode="ratio", estimator=OracleRatio(toy, THETA_REF),
                                     theta_ref=THETA_REF)
    diag = res.info["diagnostics"]
    assert limits.diagnostics_ is diag and diag["violations"] == [] and "E_theta1" not in caplog.text
    assert len(diag["points"]) == 5 and diag["theta1"] == THETA_REF.tolist()
    for point in diag["points"]:
        assert point["mean_r_hat"] == pytest.approx(1.0, abs=3 * point["mean_r_hat_error"] + 1e-2)

    class Doubled(OracleRatio):
        def predict_log_ratio(self, X, theta0, theta1=None):
            return 2.0 * super().predict_log_ratio(X, theta0, theta1)

    with caplog.at_level(logging.WARNING, logger="skminer.inference"):
        bad = limits.expected_limits(THETA_TRUE, grid, mode="ratio", estimator=Doubled(toy, THETA_REF),
                                     theta_ref=THETA_REF)
    assert bad.info["diagnostics"]["violations"] and "where the true ratio averages to 1" in caplog.text
    # a later call that checks nothing does not leave the old verdict behind
    limits.expected_limits(THETA_TRUE, grid, mode="histogram", observables=[0], bins=5)
    assert limits.diagnostics_ == {}
    # on a random n_asimov subset of the events the check still runs (with larger errors)
    sub = AsymptoticLimits(events, LUMI, n_asimov=2000, random_state=0).expected_limits(
        THETA_TRUE, grid, mode="ratio", estimator=OracleRatio(toy, THETA_REF), theta_ref=THETA_REF)
    assert len(sub.info["diagnostics"]["points"]) == 5 and sub.info["diagnostics"]["violations"] == []


def test_ratio_limits_without_reference_point(toy, events, grid, exact_asimov):
    """An estimator without a reference (NDE, Double*): theta_ref or, by default, the first grid point is theta1;
    q does not depend on the choice."""
    limits = AsymptoticLimits(events, LUMI)
    for theta_ref in (THETA_REF, None):
        res = limits.expected_limits(THETA_TRUE, grid, mode="ratio", estimator=OracleRatio(toy, None),
                                     theta_ref=theta_ref)
        np.testing.assert_allclose(res.q, exact_asimov.q, rtol=1e-9, atol=1e-8)


def test_likelihood_mode_with_a_density_matches_exact(toy, events, grid, exact_asimov):
    limits = AsymptoticLimits(events, LUMI)
    res = limits.expected_limits(THETA_TRUE, grid, mode="likelihood", estimator=OracleDensity(toy))
    np.testing.assert_allclose(res.q, exact_asimov.q, rtol=1e-9, atol=1e-8)
    assert res.mode == "likelihood"


def test_modes_name_the_missing_capability(toy, events, grid):
    limits = AsymptoticLimits(events, LUMI)
    with pytest.raises(TypeError, match="'ratio' capability.*ExactScore has \\['score'\\]"):
        limits.expected_limits(THETA_TRUE, grid, mode="ratio", estimator=ExactScore(toy, THETA_TRUE))
    with pytest.raises(TypeError, match="'density' capability"):
        limits.expected_limits(THETA_TRUE, grid, mode="likelihood", estimator=OracleRatio(toy, THETA_REF))
    with pytest.raises(TypeError, match="'score' capability"):
        limits.expected_limits(THETA_TRUE, grid, mode="score", estimator=OracleDensity(toy))


def test_histogram_and_sally_limits_weaker_than_exact(toy, events, grid, exact_asimov):
    limits = AsymptoticLimits(events, LUMI)
    results = {
        "x1": limits.expected_limits(THETA_TRUE, grid, mode="histogram", observables=["x1"], bins=20),
        "x1 x2": limits.expected_limits(THETA_TRUE, grid, mode="histogram", observables=["x1", "x2"], bins=8),
        "sally": limits.expected_limits(THETA_TRUE, grid, mode="sally", estimator=ExactScore(toy, THETA_TRUE),
                                        bins=8),
    }
    q_exact = exact_asimov.q
    for name, res in results.items():
        np.testing.assert_array_equal(res.best_fit, THETA_TRUE, err_msg=name)
        # coarse-graining loses information (data-processing inequality), up to Monte-Carlo noise
        assert np.all(res.q <= 1.01 * q_exact + 1e-9), name
        region, exact_region = res.confidence_region(0.68), exact_asimov.confidence_region(0.68)
        assert np.all(region[exact_region]), name
        assert res.q.max() > 0.3 * q_exact.max(), name
        assert res.info["edges"] and res.mode in ("histogram", "score")
    # the 2-D histogram and the score histogram know more than x1 alone
    assert results["x1 x2"].q.sum() > results["x1"].q.sum()
    assert results["sally"].q.sum() > results["x1"].q.sum()


def test_fisher_approximation_agrees_for_small_offsets(toy):
    # symmetric second differences cancel the linear Monte-Carlo noise and the cubic terms of -2 log L
    events = toy.simulate(20_000, random_state=22)
    limits = AsymptoticLimits(events, LUMI)
    info = toy.fisher_information(THETA_TRUE, LUMI, kind="full")
    angles = np.linspace(0.0, np.pi, 6, endpoint=False)
    for eps in (0.1, 0.03):
        delta = eps * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        pts = np.concatenate([THETA_TRUE[None, :], THETA_TRUE + delta, THETA_TRUE - delta])
        res = limits.expected_limits(THETA_TRUE, pts, mode="ratio", estimator=OracleRatio(toy, THETA_REF))
        ll = res.log_likelihood
        q_sym = -(ll[1:7] + ll[7:] - 2 * ll[0])
        approx = fisher_limits(info, THETA_TRUE, pts)
        np.testing.assert_allclose(q_sym, approx.q[1:7], rtol=0.04)  # ~1-2% Monte-Carlo error at 2e4 events
        np.testing.assert_allclose(approx.q[1:7], approx.q[7:], rtol=1e-12)
    # fisher_limits itself
    grid = theta_grid([[-0.5, 0.5], [-0.5, 0.5]], 11)
    fl = fisher_limits(info, THETA_TRUE, grid)
    d = grid - THETA_TRUE
    np.testing.assert_allclose(fl.q, np.einsum("gi,ij,gj->g", d, info, d), rtol=1e-12)
    np.testing.assert_allclose(fl.p_values, stats.chi2.sf(fl.q, 2), rtol=1e-12)


def test_histogram_limits_explicit_computation(events):
    limits = AsymptoticLimits(events, LUMI)
    pts = np.array([[0.0, 0.0], [0.5, -0.5], [-0.3, 0.8]])
    edges = np.array([-1.0, -0.2, 0.4, 1.1])
    res = limits.expected_limits([0.2, 0.1], pts, mode="histogram", observables="x2", bins=edges)
    x2 = events.x[:, 1]
    full_edges = np.concatenate([[-np.inf], edges, [np.inf]])

    def counts(theta):
        w = LUMI * events.weights_at(np.asarray(theta, float)[None, :])[:, 0]
        return np.histogram(x2, bins=full_edges, weights=w)[0]

    data = counts([0.2, 0.1])
    ll = np.array([np.sum(data * np.log(counts(t)) - counts(t)) for t in pts])
    np.testing.assert_allclose(res.log_likelihood - res.log_likelihood[0], ll - ll[0], rtol=1e-10)
    np.testing.assert_allclose(res.q, -2 * (ll - ll.max()), rtol=1e-9, atol=1e-9)
    # one bin: only the rate is measured
    one = limits.expected_limits([0.2, 0.1], pts, mode="histogram", observables=[0], bins=1)
    assert np.all(one.log_likelihood_kinematic == 0.0)
    n = LUMI * events.cross_section(np.array([[0.2, 0.1]]))[0]
    total = LUMI * events.cross_section(pts)
    np.testing.assert_allclose(one.log_likelihood, n * np.log(total) - total, rtol=1e-12)
    shape_only = limits.expected_limits([0.2, 0.1], pts, mode="histogram", observables="x2", bins=edges,
                                        include_rate=False)
    assert np.all(shape_only.log_likelihood_rate == 0.0)
    np.testing.assert_allclose(shape_only.log_likelihood, res.log_likelihood_kinematic, rtol=1e-12)


def test_observed_limits(toy, events, grid):
    rng = np.random.default_rng(5)
    theta_obs = np.array([0.3, -0.4])
    n_obs = rng.poisson(LUMI * toy.cross_section(theta_obs))
    x_obs = toy.sample(n_obs, theta_obs, random_state=rng)
    limits = AsymptoticLimits(events, LUMI)
    res = limits.observed_limits(x_obs, grid, mode="ratio", estimator=OracleRatio(toy, THETA_REF))
    total = LUMI * events.cross_section(grid)
    ll = toy.log_likelihood(x_obs, grid).sum(axis=0) + n_obs * np.log(total) - total
    np.testing.assert_allclose(res.q, -2 * (ll - ll.max()), rtol=1e-9, atol=1e-8)
    assert res.info["n_observed"] == n_obs
    # the true point lies inside the 95% region of every method (fixed seed)
    i_true = int(np.argmin(np.sum((grid - [2 / 7, -3 / 7]) ** 2, axis=1)))
    assert res.p_values[i_true] > 0.05
    hist = limits.observed_limits(x_obs, grid, mode="histogram", observables=["x1", "x2"], bins=5)
    assert hist.p_values[i_true] > 0.05
    counts = np.bincount(np.searchsorted(hist.info["edges"][0], x_obs[:, 0], side="right"), minlength=5)
    assert np.all(counts >= n_obs // 5 - 1) and counts.sum() == n_obs  # edges at quantiles of the data
    sally = limits.observed_limits(x_obs, grid, mode="sally", estimator=ExactScore(toy, THETA_TRUE), bins=4,
                                   binning_theta=THETA_TRUE)
    assert sally.p_values[i_true] > 0.05 and sally.q.min() == 0.0


def test_errors(toy, events, grid):
    limits = AsymptoticLimits(events, LUMI)
    with pytest.raises(ValueError, match="mode must be one of"):
        limits.expected_limits(THETA_TRUE, grid, mode="nde")
    with pytest.raises(ValueError, match="'ratio' capability"):
        limits.expected_limits(THETA_TRUE, grid, mode="ratio")
    with pytest.raises(ValueError, match="observables"):
        limits.expected_limits(THETA_TRUE, grid, mode="histogram")
    with pytest.raises(ValueError, match="not in the event set"):
        limits.expected_limits(THETA_TRUE, grid, mode="histogram", observables=["mjj"])
    with pytest.raises(ValueError, match="'score' capability"):
        limits.expected_limits(THETA_TRUE, grid, mode="sally")
    with pytest.raises(ValueError, match="grid"):
        limits.expected_limits(THETA_TRUE, grid[:, :1], mode="histogram", observables=["x1"])
    with pytest.raises(ValueError, match="theta_true"):
        limits.expected_limits([0.0], grid, mode="histogram", observables=["x1"])
    with pytest.raises(ValueError, match="one entry per histogram dimension"):
        limits.expected_limits(THETA_TRUE, grid, mode="histogram", observables=["x1", "x2"], bins=[3, 4, 5])
    with pytest.raises(ValueError, match="x_observed"):
        limits.observed_limits(np.zeros((4, 3)), grid, mode="histogram", observables=["x1"])
    with pytest.raises(ValueError, match="luminosity"):
        AsymptoticLimits(events, 0.0)
    with pytest.raises(TypeError, match="EventSet"):
        AsymptoticLimits(np.zeros((3, 2)), 1.0)


def test_limit_result_and_helpers():
    g = theta_grid([[0.0, 1.0], [-1.0, 1.0]], [2, 3])
    np.testing.assert_array_equal(g, [[0, -1], [0, 0], [0, 1], [1, -1], [1, 0], [1, 1]])
    ll = np.array([-1.0, 0.0, -np.inf, -2.0, -0.5, -3.0])
    res = LimitResult.from_log_likelihood(g, ll)
    assert res.best_fit_index == 1 and np.array_equal(res.best_fit, [0.0, 0.0])
    assert res.q[2] == np.inf and res.p_values[2] == 0.0
    np.testing.assert_allclose(res.p_values, stats.chi2.sf(-2 * (ll - 0.0), 2))
    np.testing.assert_array_equal(res.confidence_region(0.68), res.p_values > 0.32)
    assert p_values_from_q(np.array([2.2977]), 2)[0] == pytest.approx(0.317, abs=1e-3)
    with pytest.raises(ValueError, match="-inf at every grid point"):
        LimitResult.from_log_likelihood(g, np.full(6, -np.inf))
    with pytest.raises(ValueError, match="NaN"):
        LimitResult.from_log_likelihood(g, np.full(6, np.nan))
    with pytest.raises(ValueError, match="n_points"):
        theta_grid([[0.0, 1.0]], 1)


def test_sally_limits_with_trained_estimator(toy, events, grid, exact_asimov):
    torch = pytest.importorskip("torch")
    from skminer.estimators.score import SALLY

    x, z = toy.sample(10_000, THETA_TRUE, random_state=51, return_latent=True)
    n_threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        model = SALLY(hidden_layer_sizes=(32, 32), max_epochs=20, batch_size=256, lr=3e-3, random_state=0)
        model.fit(x, toy.joint_score(z, THETA_TRUE))
    finally:
        torch.set_num_threads(n_threads)
    limits = AsymptoticLimits(events, LUMI)
    res = limits.expected_limits(THETA_TRUE, grid, mode="sally", estimator=model, bins=8)
    oracle = limits.expected_limits(THETA_TRUE, grid, mode="sally", estimator=ExactScore(toy, THETA_TRUE), bins=8)
    rate_only = limits.expected_limits(THETA_TRUE, grid, mode="histogram", observables=[0], bins=1)
    np.testing.assert_array_equal(res.best_fit, THETA_TRUE)
    assert np.all(res.q <= 1.01 * exact_asimov.q + 1e-9)
    # the learned score histogram is nearly as powerful as the exact-score histogram, far above the rate alone
    assert res.q.sum() > 0.95 * oracle.q.sum()
    assert res.confidence_region(0.68).sum() < 0.5 * rate_only.confidence_region(0.68).sum()


def test_best_fit_on_the_grid_edge_warns():
    """Data from outside the scanned range give a grid corner as "best fit": a warning naming the parameter."""
    from skminer.inference.intervals import describe_limits

    g = theta_grid([[-1.0, 1.0], [-1.0, 1.0]], [5, 5])
    ll = -((g[:, 0] - 5.0) ** 2 + (g[:, 1] - 0.1) ** 2)  # peak at [5, 0.1], outside in theta0 only
    with pytest.warns(UserWarning, match=r"best fit \[1\.0, 0\.0\] lies on the edge of the scanned grid: "
                                         r"parameter 0 = 1 \(grid \[-1, 1\]\)"):
        res = LimitResult.from_log_likelihood(g, ll)
    assert res.info["best_fit_on_edge"] == [0]
    assert describe_limits(res, [0.68], ["a", "b"])["best_fit_on_grid_edge"] == ["a"]
    inner = -((g[:, 0] - 0.4) ** 2 + g[:, 1] ** 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = LimitResult.from_log_likelihood(g, inner)
    assert res.info["best_fit_on_edge"] == [] and describe_limits(res, [0.68])["best_fit_on_grid_edge"] == []


def test_merge_message_without_an_expected_minimum(caplog):
    from skminer.inference._histograms import merge_sparse_cells

    index = np.array([0, 0, 0, 1, 2, 2])  # (two dense cells: one alone would be a single bin, with a WARNING)
    with caplog.at_level(logging.INFO, logger="skminer.inference._histograms"):
        merge_sparse_cells(index, [3], np.full(6, 5.0), 0.0, 2)
    assert "cells have fewer than 2 simulated events and were merged" in caplog.text
    assert "fewer than 0 expected" not in caplog.text


def test_a_fine_binning_of_a_small_yield_is_joined_in_blocks_not_collapsed_to_one_bin():
    """20 x 20 cells for 100 expected events: no cell reaches 1 expected, so the observed score histogram of the
    demo became a single bin (the rate alone). Blocks of cells are joined first; every merged bin has the minima."""
    from skminer.inference._histograms import merge_sparse_cells

    rng = np.random.default_rng(0)
    dims = [21, 21]
    cells = np.ravel_multi_index((rng.integers(0, 21, 60_000), rng.integers(0, 21, 60_000)), dims)
    expected = np.full(cells.size, 100.0 / cells.size)
    remap = merge_sparse_cells(cells, dims, expected, 1.0, 10)
    merged = remap[cells]
    n_bins = int(remap.max()) + 1
    assert n_bins > 20 and set(np.unique(remap)) == set(range(n_bins))
    assert np.bincount(merged, weights=expected).min() >= 1.0 and np.bincount(merged).min() >= 10
    # joined in blocks of 4 x 4 cells (the finest blocking in which a block reaches 1 expected event)
    assert remap.reshape(dims)[0, 0] == remap.reshape(dims)[3, 3] != remap.reshape(dims)[4, 4]
    # a binning that is fine enough as it is keeps its cells
    assert int(merge_sparse_cells(cells, dims, 100 * expected, 1.0, 10).max()) + 1 == 21 * 21


def test_blocking_keeps_the_most_bins_not_the_first_with_one_dense_block(caplog):
    """16 x 16 cells, 50 expected events: blocks of 2 x 2 cells hold 0.8 expected, except one heavier block. The
    finest blocking with *some* dense block (2 x 2) had that one, so every cell joined it: one bin, the rate alone,
    with an INFO line only (15 observed events with quantile edges in the toy: 68% area 1.99 vs 0.52 exact).
    Blocks of 4 x 4 keep 16 bins."""
    import logging

    from skminer.inference._histograms import merge_sparse_cells

    rng = np.random.default_rng(1)
    dims = [16, 16]
    cells = np.ravel_multi_index((rng.integers(0, 16, 40_000), rng.integers(0, 16, 40_000)), dims)
    cells = np.concatenate([cells, np.zeros(200, dtype=np.int64)])  # a heavier corner cell
    expected = np.full(cells.size, 50.0 / 40_000)
    expected[-200:] = 0.3 / 200
    remap = merge_sparse_cells(cells, dims, expected, 1.0, 10)
    merged = remap[cells]
    assert int(remap.max()) + 1 == 16
    assert np.bincount(merged, weights=expected).min() >= 1.0 and np.bincount(merged).min() >= 10
    # no two dense blocks in any blocking: one bin, and a WARNING saying that only the rate is left
    with caplog.at_level(logging.WARNING, logger="skminer.inference._histograms"):
        remap = merge_sparse_cells(cells, dims, expected / 40, 1.0, 10)
    assert int(remap.max()) == 0
    assert "using a single bin (the rate alone)" in caplog.text
