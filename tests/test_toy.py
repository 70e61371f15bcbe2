"""Tests of the analytic toy simulator: exact density, score, Fisher information, event generation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats
from scipy.special import ndtr

from skminer.morphing import Morpher
from skminer.simulation.toy import DEFAULT_BASIS, ToySimulator

THETAS = np.array([[0.0, 0.0], [0.5, -0.3], [1.0, 1.0], [-1.0, 0.7], [2.5, -2.0]])


@pytest.fixture(scope="module")
def toy() -> ToySimulator:
    return ToySimulator()


def _grid_2d(lo: float, hi: float, h: float) -> tuple[np.ndarray, float]:
    axis = np.arange(lo, hi + h / 2, h)
    gx, gy = np.meshgrid(axis, axis, indexing="ij")
    return np.stack([gx.ravel(), gy.ravel()], axis=1), h * h


# -- exact density ---------------------------------------------------------------------------------------
def test_density_integrates_to_one_2d(toy):
    pts, cell = _grid_2d(-5.0, 6.0, 0.04)
    p = np.exp(toy.log_likelihood(pts, THETAS))
    np.testing.assert_allclose(p.sum(axis=0) * cell, 1.0, rtol=1e-7)
    # the mean of the density equals the closed form
    mean = np.einsum("ntk,nk->tk", p[:, :, None] * np.ones((1, 1, 2)), pts) * cell
    np.testing.assert_allclose(mean, toy.observable_mean(THETAS), atol=1e-7)


def test_density_integrates_to_one_1d_with_noise():
    toy = ToySimulator(n_dim=1, n_noise=1)
    pts, cell = _grid_2d(-9.0, 10.0, 0.05)
    p = np.exp(toy.log_likelihood(pts, THETAS))
    np.testing.assert_allclose(p.sum(axis=0) * cell, 1.0, rtol=1e-8)
    # one-dimensional adaptive quadrature of the x1 marginal (noise integrates to one)
    for theta in THETAS[:2]:
        val, _ = integrate.quad(lambda v, th=theta: np.exp(toy.log_likelihood(np.array([[v, 0.0]]), th)[0])
                                * np.sqrt(2 * np.pi), -10, 10, epsabs=1e-11, limit=200)
        assert val == pytest.approx(1.0, abs=1e-8)


def test_cross_section_and_gradient(toy):
    assert toy.cross_section([0.0, 0.0]) == pytest.approx(1.0)
    sig = toy.cross_section(THETAS)
    assert sig.shape == (len(THETAS),) and np.all(sig > 0)
    # direct numerical integral of the parton-level differential cross section
    pts, cell = _grid_2d(-4.0, 5.0, 0.03)
    np.testing.assert_allclose(toy.differential_cross_section(pts, THETAS).sum(axis=0) * cell, sig, rtol=1e-8)
    eps = 1e-6
    grad = toy.cross_section_gradient(THETAS)
    for i in range(2):
        d = np.zeros(2)
        d[i] = eps
        fd = (toy.cross_section(THETAS + d) - toy.cross_section(THETAS - d)) / (2 * eps)
        np.testing.assert_allclose(grad[:, i], fd, rtol=1e-7, atol=1e-9)
    # quadratic in theta: morphing with any basis reproduces sigma exactly
    m = Morpher([2, 2], max_overall_power=2).set_basis(np.array(list(DEFAULT_BASIS.values())))
    basis_sigma = toy.cross_section(m.basis)
    np.testing.assert_allclose(m.weights(THETAS) @ basis_sigma, sig, rtol=1e-12)


def test_score_is_gradient_of_log_likelihood(toy):
    rng = np.random.default_rng(0)
    x = rng.normal(0.3, 1.2, size=(300, 2))
    t = toy.score(x, THETAS)
    assert t.shape == (300, len(THETAS), 2)
    eps = 1e-6
    for i in range(2):
        d = np.zeros(2)
        d[i] = eps
        fd = (toy.log_likelihood(x, THETAS + d) - toy.log_likelihood(x, THETAS - d)) / (2 * eps)
        np.testing.assert_allclose(t[:, :, i], fd, rtol=1e-6, atol=1e-6)


def test_broadcasting_rules(toy):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 2))
    idx = rng.integers(0, len(THETAS), size=50)
    grid = toy.log_likelihood(x, THETAS)
    assert grid.shape == (50, len(THETAS))
    assert toy.log_likelihood(x, THETAS[1]).shape == (50,)
    np.testing.assert_allclose(toy.log_likelihood(x, THETAS[1]), grid[:, 1])
    np.testing.assert_allclose(toy.log_likelihood(x, THETAS[idx], paired=True), grid[np.arange(50), idx])
    np.testing.assert_allclose(toy.score(x, THETAS[idx], paired=True), toy.score(x, THETAS)[np.arange(50), idx])
    lr = toy.log_ratio(x, THETAS, THETAS[::-1])
    np.testing.assert_allclose(lr, grid - grid[:, ::-1], atol=1e-12)
    np.testing.assert_allclose(toy.log_ratio(x, THETAS[2], THETAS), grid[:, [2]] - grid, atol=1e-12)
    assert toy.log_ratio(x, THETAS[0], THETAS[1]).shape == (50,)
    np.testing.assert_allclose(toy.log_ratio(x, THETAS[idx], THETAS[0], paired=True),
                               grid[np.arange(50), idx] - grid[:, 0], atol=1e-12)
    assert toy.log_likelihood(x, "mixed").shape == (50,)
    np.testing.assert_allclose(toy.log_likelihood(x, "mixed"), toy.log_likelihood(x, [1.0, 1.0]))
    with pytest.raises(ValueError, match="theta0 and theta1 batches"):
        toy.log_ratio(x, THETAS, THETAS[:2])
    with pytest.raises(ValueError, match="x must have shape"):
        toy.log_likelihood(np.zeros((3, 5)), THETAS[0])
    with pytest.raises(ValueError, match="theta must have shape"):
        toy.score(x, np.zeros(3))
    with pytest.raises(ValueError, match="one row per event"):
        toy.log_likelihood(x, THETAS, paired=True)


def test_expected_score_vanishes_and_matches_fisher(toy):
    pts, cell = _grid_2d(-6.0, 7.0, 0.05)
    p = np.exp(toy.log_likelihood(pts, THETAS))
    t = toy.score(pts, THETAS)
    np.testing.assert_allclose(np.einsum("gt,gti->ti", p, t) * cell, 0.0, atol=1e-8)
    # independent grid for E[t t^T] agrees with the built-in quadrature
    ett = np.einsum("gt,gti,gtj->tij", p, t, t) * cell
    np.testing.assert_allclose(toy.expected_score_products(THETAS), ett, rtol=1e-6, atol=1e-9)


# -- Fisher information ----------------------------------------------------------------------------------
def test_fisher_rate_term_formula(toy):
    lumi = 300.0
    rate = toy.fisher_information(THETAS, lumi, kind="rate")
    eps = 1e-6
    grad = np.stack([(toy.cross_section(THETAS + eps * e) - toy.cross_section(THETAS - eps * e)) / (2 * eps)
                     for e in np.eye(2)], axis=1)
    expected = lumi * grad[:, :, None] * grad[:, None, :] / toy.cross_section(THETAS)[:, None, None]
    np.testing.assert_allclose(rate, expected, rtol=1e-7, atol=1e-8)
    full = toy.fisher_information(THETAS, lumi)
    kin = toy.fisher_information(THETAS, lumi, kind="kinematic")
    np.testing.assert_allclose(full, rate + kin, rtol=1e-12)
    assert full.shape == (len(THETAS), 2, 2) and toy.fisher_information(THETAS[0], lumi).shape == (2, 2)
    np.testing.assert_allclose(kin, np.swapaxes(kin, 1, 2))
    assert np.all(np.linalg.eigvalsh(kin) > 0)
    with pytest.raises(ValueError, match="kind"):
        toy.fisher_information(THETAS[0], lumi, kind="histogram")


def test_fisher_quadrature_converges():
    for resolution in (0.3, 0.08):
        toy = ToySimulator(detector_resolution=resolution)
        default = toy.fisher_information(THETAS, 100.0, kind="kinematic")
        fine = toy.fisher_information(THETAS, 100.0, kind="kinematic", grid_spacing=0.25, margin=16.0)
        scale = np.abs(fine).max(axis=(1, 2))[:, None, None]
        assert np.max(np.abs(default - fine) / scale) < 1e-6


def test_fisher_kinematic_against_monte_carlo(toy):
    theta = THETAS[1]
    x = toy.sample(200_000, theta, random_state=5)
    t = toy.score(x, theta)
    prods = (t[:, :, None] * t[:, None, :]).reshape(len(t), 4)
    mc, se = prods.mean(axis=0), prods.std(axis=0) / np.sqrt(len(t))
    exact = toy.expected_score_products(theta).ravel()
    assert np.all(np.abs(mc - exact) < 4 * se), (mc, exact, se)
    # information identity E[t t^T] = -E[d t / d theta] (independent of the quadrature)
    eps = 1e-5
    hess = np.stack([(toy.score(x, theta + eps * e) - toy.score(x, theta - eps * e)) / (2 * eps)
                     for e in np.eye(2)], axis=2).reshape(len(t), 4)
    se_h = hess.std(axis=0) / np.sqrt(len(t))
    assert np.all(np.abs(-hess.mean(axis=0) - exact) < 4 * se_h)


def test_extra_dimensions_and_noise_do_not_change_information(toy):
    big = ToySimulator(n_dim=3, n_noise=2)
    np.testing.assert_allclose(big.fisher_information(THETAS, 10.0), toy.fisher_information(THETAS, 10.0),
                               rtol=1e-10)
    x = big.sample(1000, THETAS[2], random_state=0)
    assert x.shape == (1000, 5) and big.observable_names == ["x1", "x2", "x3", "noise1", "noise2"]
    np.testing.assert_allclose(big.score(x, THETAS[2]), toy.score(x[:, :2], THETAS[2]), atol=1e-12)


# -- unweighted sampling ---------------------------------------------------------------------------------
def _marginal_cdf(toy: ToySimulator, theta: np.ndarray, axis: int):
    mix, _ = toy._mixture_weights(theta)
    mu = toy._mu[:, axis]
    tau = np.sqrt(toy._tau2)
    return lambda v: np.sum(mix[0][None, :] * ndtr((np.asarray(v)[:, None] - mu[None, :]) / tau), axis=1)


@pytest.mark.parametrize("theta", [THETAS[0], THETAS[2], THETAS[4]])
def test_sample_follows_exact_density(toy, theta):
    x = toy.sample(20_000, theta, random_state=3)
    assert x.shape == (20_000, 2)
    for axis in range(2):
        assert stats.kstest(x[:, axis], _marginal_cdf(toy, theta, axis)).pvalue > 1e-3
    n = len(x)
    cov = toy.observable_covariance(theta)
    se = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(x.mean(axis=0) - toy.observable_mean(theta)) < 4.5 * se)
    # the unweighted sample prefers its own theta: mean log ratio against another point is positive
    other = np.array([0.2, 0.2]) if np.any(theta != 0.2) else np.zeros(2)
    assert toy.log_ratio(x, theta, other).mean() > 0


def test_sample_reproducible_and_latent(toy):
    a, za = toy.sample(100, [0.5, 0.5], random_state=7, return_latent=True)
    b = toy.sample(100, [0.5, 0.5], random_state=7)
    np.testing.assert_array_equal(a, b)
    assert za.shape == (100, 2)
    assert (a - za).std() == pytest.approx(toy.detector_resolution, rel=0.2)
    with pytest.raises(ValueError, match="one parameter point"):
        toy.sample(10, THETAS)


# -- weighted events -------------------------------------------------------------------------------------
def test_simulated_cross_sections_converge(toy):
    for n in (2_000, 100_000):
        events = toy.simulate(n, random_state=2)
        w = events.weights
        est = w.sum(axis=0)
        se = np.sqrt(n * w.var(axis=0))  # standard error of the sum of n iid weights
        exact = toy.cross_section(events.space.benchmark_values)
        assert np.all(np.abs(est - exact) < 4 * se), (est, exact, se)
        assert np.all(se / exact < 5.0 / np.sqrt(n))  # bounded importance weights: O(1/sqrt(n)) precision
    assert events.benchmark_names == list(DEFAULT_BASIS)
    assert events.observable_names == ["x1", "x2"]


def test_event_weights_morph_exactly(toy):
    events, z = toy.simulate(5_000, random_state=4, return_latent=True)
    w = np.asarray(events.weights_at(THETAS))
    assert w.shape == (5_000, len(THETAS))
    dsig = toy.differential_cross_section(z, THETAS)
    # weights are dsigma(z|theta) / (n q(z)); the proposal cancels in ratios between points
    # (the absolute tolerance covers morphing round-off where the amplitude nearly vanishes)
    scale = np.abs(w).max(axis=0)
    np.testing.assert_allclose(w / scale, dsig / dsig[:, [0]] * w[:, [0]] / scale, rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(w * len(z), dsig / np.exp(toy._log_proposal(z))[:, None], rtol=1e-9,
                               atol=1e-13 * len(z) * scale.max())
    # the morphed weights of all events estimate sigma at any theta
    np.testing.assert_allclose(np.asarray(events.cross_section(THETAS)), w.sum(axis=0), rtol=1e-10)
    # weighted observable means at theta match the exact mean
    mean = (w[:, :, None] * np.asarray(events.x)[:, None, :]).sum(axis=0) / w.sum(axis=0)[:, None]
    np.testing.assert_allclose(mean, toy.observable_mean(THETAS), atol=0.05)


def test_joint_quantities(toy):
    z = np.random.default_rng(2).normal(0.3, 0.8, size=(200, 2))
    js = toy.joint_score(z, THETAS)
    eps = 1e-6
    for i in range(2):
        d = np.zeros(2)
        d[i] = eps
        fd = (toy.latent_log_likelihood(z, THETAS + d) - toy.latent_log_likelihood(z, THETAS - d)) / (2 * eps)
        np.testing.assert_allclose(js[:, :, i], fd, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(toy.joint_score(z, THETAS[3]), js[:, 3])
    ll = toy.latent_log_likelihood(z, THETAS)
    np.testing.assert_allclose(toy.joint_log_ratio(z, THETAS[1], THETAS[3]), ll[:, 1] - ll[:, 3])
    idx = np.arange(200) % len(THETAS)
    np.testing.assert_allclose(toy.joint_score(z, THETAS[idx], paired=True), js[np.arange(200), idx])
    # averaging the joint score over z given x gives the score: check E[t(x,z)] = 0 under p(z|theta)
    _, zs = toy.sample(100_000, THETAS[2], random_state=9, return_latent=True)
    t = toy.joint_score(zs, THETAS[2])
    assert np.all(np.abs(t.mean(axis=0)) < 4 * t.std(axis=0) / np.sqrt(len(t)))


def test_simulate_with_custom_benchmarks(toy):
    events = toy.simulate(1_000, benchmarks={"a": [0.3, 0.3], **DEFAULT_BASIS}, random_state=0)
    assert events.benchmark_names[0] == "a" and len(events.benchmark_names) == 7
    assert list(events.morphing_basis) == list(DEFAULT_BASIS)
    np.testing.assert_allclose(np.asarray(events.weights_at([0.3, 0.3])).ravel(), events.weights[:, 0],
                               rtol=1e-9)
    with pytest.raises(ValueError, match="morphing"):
        toy.simulate(100, benchmarks=["sm", "mixed"])
    with pytest.raises(KeyError, match="nope"):
        toy.simulate(100, benchmarks=["nope"])


def test_space_and_params(toy):
    space = toy.space
    assert space.parameter_names == ["theta1", "theta2"] and space.benchmark_names == list(DEFAULT_BASIS)
    np.testing.assert_array_equal(space.ranges, [[-1, 1], [-1, 1]])
    assert toy.get_params()["detector_resolution"] == 0.3
    other = ToySimulator(**toy.get_params()).set_params(width=0.4)
    assert other.width == 0.4 and other.cross_section([0.0, 0.0]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="couplings"):
        ToySimulator(couplings=(0.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="centers"):
        ToySimulator(centers=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="invalid parameter"):
        toy.set_params(foo=1)
