"""Tests of skminer.augmentation against the exact toy simulator."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from scipy import stats
from scipy.special import ndtr
from sklearn.base import clone

from skminer.augmentation import (
    BenchmarkPrior,
    DensitySampler,
    DoubleRatioSampler,
    FixedPrior,
    GaussianPrior,
    GridPrior,
    LocalScoreSampler,
    RatioSampler,
    TestSampler,
    TrainingSample,
    UniformPrior,
    as_prior,
    event_weights,
    joint_log_likelihoods,
    unweight,
)
from skminer.events import EventSet
from skminer.simulation.toy import ToySimulator

THETA1 = np.array([0.0, 0.0])
THETAS = np.array([[0.0, 0.0], [0.5, -0.3], [1.0, 1.0], [-1.0, 0.7]])


@pytest.fixture(scope="module")
def toy() -> ToySimulator:
    return ToySimulator()


@pytest.fixture(scope="module")
def simulated(toy) -> tuple[EventSet, np.ndarray]:
    return toy.simulate(100_000, random_state=21, return_latent=True)


def _rows_of(sample_x: np.ndarray, events: EventSet) -> np.ndarray:
    """Recover the event index of every sampled row from its (continuous, unique) observables."""
    x = np.asarray(events.x)
    order = np.argsort(x[:, 0])
    pos = order[np.searchsorted(x[order, 0], sample_x[:, 0])]
    np.testing.assert_array_equal(x[pos], sample_x)
    return pos


def _log_sigma_correction(toy, events, theta):
    """``log sigma_exact - log sigma_events`` per row of ``theta``: the joint quantities from morphing normalise
    with the events' own cross-section estimate."""
    uniq, inv = np.unique(np.atleast_2d(theta), axis=0, return_inverse=True)
    corr = np.log(toy.cross_section(uniq)) - np.log(np.asarray(events.cross_section(uniq)))
    return corr[inv.ravel()]


def _grad_log_sigma_correction(toy, events, theta):
    uniq, inv = np.unique(np.atleast_2d(theta), axis=0, return_inverse=True)
    corr = (toy.cross_section_gradient(uniq) / toy.cross_section(uniq)[:, None]
            - np.asarray(events.cross_section_gradient(uniq)) / np.asarray(events.cross_section(uniq))[:, None])
    return corr[inv.ravel()]


# -- priors ----------------------------------------------------------------------------------------------
def test_priors(toy):
    space = toy.space
    u = UniformPrior(space.ranges).sample(5000, random_state=0)
    assert u.shape == (5000, 2) and u.min() >= -1 and u.max() <= 1
    assert stats.kstest(u[:, 0], stats.uniform(-1, 2).cdf).pvalue > 1e-3
    g = GaussianPrior([0.5, -0.5], [0.1, 0.2]).sample(20000, random_state=1)
    np.testing.assert_allclose(g.mean(axis=0), [0.5, -0.5], atol=0.01)
    np.testing.assert_allclose(g.std(axis=0), [0.1, 0.2], rtol=0.03)
    b = BenchmarkPrior(space, ["sm", "mixed"]).sample(7, random_state=2)
    assert sorted(map(tuple, b)).count((0.0, 0.0)) in (3, 4) and set(map(tuple, b)) == {(0.0, 0.0), (1.0, 1.0)}
    assert BenchmarkPrior(space).all_points().shape == (6, 2)
    grid = GridPrior(space.ranges, n_points=[3, 5]).all_points()
    assert grid.shape == (15, 2) and set(grid[:, 1]) == {-1.0, -0.5, 0.0, 0.5, 1.0}
    # balanced: n = k * n_points uses every point k times
    f = FixedPrior(THETAS).sample(8, random_state=3)
    np.testing.assert_array_equal(np.unique(f, axis=0, return_counts=True)[1], [2, 2, 2, 2])
    assert isinstance(as_prior("sm", space), BenchmarkPrior)
    assert isinstance(as_prior([0.1, 0.2], space), FixedPrior)
    assert isinstance(as_prior({"theta1": 0.4}, space), FixedPrior)
    np.testing.assert_array_equal(as_prior({"theta1": 0.4}, space).all_points(), [[0.4, 0.0]])
    assert clone(GridPrior(space.ranges, 4)).get_params()["n_points"] == 4
    np.testing.assert_array_equal(UniformPrior(space.ranges).sample(3, random_state=5),
                                  UniformPrior(space.ranges).sample(3, random_state=5))
    with pytest.raises(ValueError, match="3 parameters"):
        as_prior(np.zeros(3), space, "theta0_prior")
    with pytest.raises(ValueError, match="ranges"):
        UniformPrior([[1.0, 0.0]]).sample(2)
    with pytest.raises(ValueError, match="std"):
        GaussianPrior([0.0, 0.0], [-1.0, 1.0]).sample(2)
    with pytest.raises(KeyError, match="nope"):
        BenchmarkPrior(space, ["nope"]).sample(2)


# -- unweighting -----------------------------------------------------------------------------------------
def test_unweighting_probabilities_are_proportional_to_weights(toy):
    events = toy.simulate(6, random_state=0)
    thetas = np.array([[0.3, -0.2], [1.0, 0.5]])
    rows, owner = unweight(events, thetas, [60_000, 40_000], random_state=1)
    assert rows.shape == (100_000,) and np.all(owner[:60_000] == 0) and np.all(owner[60_000:] == 1)
    w = np.asarray(events.weights_at(thetas))
    for j, sel in enumerate((slice(0, 60_000), slice(60_000, None))):
        counts = np.bincount(rows[sel], minlength=6)
        expected = w[:, j] / w[:, j].sum() * counts.sum()
        assert stats.chisquare(counts, expected).pvalue > 1e-3
    again, _ = unweight(events, thetas, [60_000, 40_000], random_state=1)
    np.testing.assert_array_equal(rows, again)


def test_negative_weights_clip_or_raise(simulated, caplog):
    events, _ = simulated
    sub = events[np.arange(2000)]
    weights = np.array(sub.weights, dtype=np.float64)
    weights[:10] *= -1.0  # ten events with negative weights at every theta
    neg = EventSet(sub.x, weights, observable_names=sub.observable_names, benchmark_names=sub.benchmark_names,
                   space=sub.space, morpher=sub.morpher, morphing_basis=sub.morphing_basis)
    with caplog.at_level(logging.WARNING, logger="skminer.augmentation.unweighting"):
        rows, _ = unweight(neg, THETAS, 2000, random_state=0)
    assert not np.any(rows < 10)
    assert "clipped negative weights" in caplog.text and "up to 10 events" in caplog.text
    with pytest.raises(ValueError, match="negative weights"):
        unweight(neg, THETAS, 10, random_state=0, negative_weights="raise")
    with pytest.raises(ValueError, match="negative_weights"):
        unweight(neg, THETAS, 10, negative_weights="ignore")


def test_event_weights_paired(simulated):
    events, _ = simulated
    rng = np.random.default_rng(0)
    rows = rng.integers(0, len(events), size=3000)
    owner = rng.integers(0, len(THETAS), size=3000)
    w, g = event_weights(events, rows, THETAS, owner, gradients=True, max_elements=5000)  # many small blocks
    full_w = np.asarray(events.weights_at(THETAS))
    full_g = np.asarray(events.weight_gradients_at(THETAS))
    np.testing.assert_allclose(w, full_w[rows, owner], rtol=1e-12)
    np.testing.assert_allclose(g, full_g[rows, owner], rtol=1e-12)


def test_joint_quantities_from_morphing_equal_analytic(toy, simulated):
    events, z = simulated
    rows = np.arange(0, len(events), 7)
    log_p, t = joint_log_likelihoods(events, rows, THETAS, np.zeros(rows.size, int) + 2, score=True)
    log_p1, _ = joint_log_likelihoods(events, rows, THETA1)
    exact = toy.joint_log_ratio(z[rows], THETAS[2], THETA1)
    corr = _log_sigma_correction(toy, events, np.stack([THETAS[2], THETA1]))
    np.testing.assert_allclose(log_p - log_p1, exact + corr[0] - corr[1], rtol=1e-8, atol=1e-8)
    t_exact = toy.joint_score(z[rows], THETAS[2]) + _grad_log_sigma_correction(toy, events, THETAS[2:3])
    np.testing.assert_allclose(t, t_exact, rtol=1e-7, atol=1e-8)


def test_joint_ratio_identity_on_weighted_events(simulated):
    """sum_i p(z_i|theta1) r(z_i|theta0, theta1) = 1 exactly for the weighted events (E_theta1[r] = 1)."""
    events, _ = simulated
    rows = np.arange(len(events))
    w1 = np.asarray(events.weights_at(THETA1))
    for theta0 in THETAS[1:]:
        log_p0, t = joint_log_likelihoods(events, rows, theta0, score=True)
        log_p1, _ = joint_log_likelihoods(events, rows, THETA1)
        r = np.exp(log_p0 - log_p1)
        assert np.sum(w1 * r) / w1.sum() == pytest.approx(1.0, rel=1e-10)
        w0 = np.asarray(events.weights_at(theta0))
        np.testing.assert_allclose(np.sum(w0[:, None] * t, axis=0) / w0.sum(), 0.0, atol=1e-10)


# -- samplers --------------------------------------------------------------------------------------------
def test_ratio_sampler_no_label_leak_and_identities(toy, simulated):
    events, z = simulated
    sampler = RatioSampler(theta0_prior=UniformPrior(events.space.ranges), theta1=THETA1, n_thetas=50)
    s = sampler.sample(events, 40_000, random_state=3)
    assert len(s) == 40_000 and s.x.shape == (40_000, 2) and s.t_xz1 is None
    assert s.y.sum() == 20_000 and s.theta1.shape == (40_000, 2) and np.all(s.theta1 == THETA1)
    assert not np.all(s.y[:20_000] == 0)  # shuffled
    # identical theta0 multisets in both classes, with equal counts per value
    t0_y0 = s.theta0[s.y == 0]
    t0_y1 = s.theta0[s.y == 1]
    np.testing.assert_array_equal(np.unique(t0_y0, axis=0, return_counts=True)[1],
                                  np.unique(t0_y1, axis=0, return_counts=True)[1])
    np.testing.assert_array_equal(np.unique(t0_y0, axis=0), np.unique(t0_y1, axis=0))
    assert len(np.unique(s.theta0, axis=0)) == 50
    # E_theta1[r_xz] = 1 and E_theta0[t_xz] = 0
    r1 = s.r_xz[s.y == 1]
    assert abs(r1.mean() - 1.0) < 4 * r1.std() / np.sqrt(r1.size)
    t0 = s.t_xz[s.y == 0]
    assert np.all(np.abs(t0.mean(axis=0)) < 4 * t0.std(axis=0) / np.sqrt(len(t0)))
    inv0 = 1.0 / s.r_xz[s.y == 0]
    assert abs(inv0.mean() - 1.0) < 4 * inv0.std() / np.sqrt(inv0.size)
    # joint quantities equal the analytic ones at the latent point of each sampled event
    rows = _rows_of(s.x, events)
    corr0 = _log_sigma_correction(toy, events, s.theta0)
    corr1 = _log_sigma_correction(toy, events, THETA1[None, :])
    exact = toy.joint_log_ratio(z[rows], s.theta0, THETA1, paired=True) + corr0 - corr1
    np.testing.assert_allclose(np.log(s.r_xz), exact, rtol=1e-7, atol=1e-7)
    t_exact = toy.joint_score(z[rows], s.theta0, paired=True) + _grad_log_sigma_correction(toy, events, s.theta0)
    np.testing.assert_allclose(s.t_xz, t_exact, rtol=1e-6, atol=1e-7)
    # the y = 0 events follow theta0: their exact log likelihood ratio is positive on average
    assert toy.log_ratio(s.x[s.y == 0], s.theta0[s.y == 0], THETA1, paired=True).mean() > 0
    again = sampler.sample(events, 40_000, random_state=3)
    np.testing.assert_array_equal(again.x, s.x)


def test_ratio_sampler_binned_r_xz_converges_to_exact_ratio(toy, simulated):
    """The regression of r_xz on x (binned mean over y = 1 events) approaches the exact r(x)."""
    events, _ = simulated
    theta0 = np.array([1.0, -0.5])
    s = RatioSampler(theta0_prior=theta0, theta1=THETA1, n_thetas=None, compute_score=False).sample(
        events, 200_000, random_state=4)
    sel = s.y == 1
    edges = np.array([-1.0, -0.4, 0.0, 0.3, 0.6, 1.0, 1.5])
    idx = np.digitize(s.x[sel, 0], edges) - 1
    ok = (idx >= 0) & (idx < len(edges) - 1)
    mean_r = np.bincount(idx[ok], weights=s.r_xz[sel][ok], minlength=6)
    counts = np.bincount(idx[ok], minlength=6)
    mean_sq = np.bincount(idx[ok], weights=s.r_xz[sel][ok] ** 2, minlength=6)
    mean_r, mean_sq = mean_r / counts, mean_sq / counts
    se = np.sqrt((mean_sq - mean_r**2) / counts)

    def bin_prob(theta):
        mix, _ = toy._mixture_weights(theta)
        cdf = np.sum(mix[0] * ndtr((edges[:, None] - toy._mu[None, :, 0]) / np.sqrt(toy._tau2)), axis=1)
        return np.diff(cdf)

    exact = bin_prob(theta0) / bin_prob(THETA1)
    assert np.ptp(exact) > 3.0  # the test is sensitive: r varies strongly across the bins
    # the draws sample the weighted events: their binned mean converges to the weighted-event ratio ...
    x_all = np.asarray(events.x)[:, 0]
    b_all = np.digitize(x_all, edges) - 1
    w0 = np.asarray(events.weights_at(theta0)) / np.asarray(events.cross_section(theta0))
    w1 = np.asarray(events.weights_at(THETA1)) / np.asarray(events.cross_section(THETA1))
    weighted = np.array([w0[b_all == b].sum() / w1[b_all == b].sum() for b in range(6)])
    assert np.all(np.abs(mean_r - weighted) < 4.5 * se), (mean_r, weighted, se)
    # ... which converges to the exact ratio (delta-method error of a ratio of sums of iid weights)
    se_w = np.array([np.sqrt(np.sum((w0[b_all == b] - weighted[b] * w1[b_all == b]) ** 2)) / w1[b_all == b].sum()
                     for b in range(6)])
    assert np.all(np.abs(weighted - exact) < 4.5 * se_w), (weighted, exact, se_w)
    assert np.all(se_w < 0.02 * exact)


def test_unweighted_samples_follow_exact_density(toy, simulated):
    events, _ = simulated
    for theta in THETAS[[1, 2]]:
        s = TestSampler(theta=theta).sample(events, 30_000, random_state=6)
        assert s.x.shape == (30_000, 2) and np.all(s.theta0 == theta)
        cov = toy.observable_covariance(theta)
        w = np.asarray(events.weights_at(theta))
        n_eff = w.sum() ** 2 / np.sum(w**2)
        var_factor = 1.0 / 30_000 + 1.0 / n_eff  # draws plus the weighted sample's own fluctuation
        se_mean = np.sqrt(np.diag(cov) * var_factor)
        assert np.all(np.abs(s.x.mean(axis=0) - toy.observable_mean(theta)) < 4.5 * se_mean)
        emp_cov = np.cov(s.x.T)
        se_cov = np.sqrt((cov**2 + np.outer(np.diag(cov), np.diag(cov))) * var_factor)
        assert np.all(np.abs(emp_cov - cov) < 4.5 * se_cov)
    multi = TestSampler(theta=THETAS).sample(events, 100, random_state=0)
    assert len(multi) == 400 and np.all(multi.theta0[:100] == THETAS[0])


def test_local_score_sampler(toy, simulated):
    events, z = simulated
    sampler = LocalScoreSampler(theta_ref="sm")
    s = sampler.sample(events, 20_000, random_state=7)
    assert s.t_xz.shape == (20_000, 2) and s.y is None and s.r_xz is None and np.all(s.theta0 == 0)
    assert np.all(np.abs(s.t_xz.mean(axis=0)) < 4 * s.t_xz.std(axis=0) / np.sqrt(len(s)))
    rows = _rows_of(s.x, events)
    t_exact = toy.joint_score(z[rows], THETA1) + _grad_log_sigma_correction(toy, events, THETA1[None, :])
    np.testing.assert_allclose(s.t_xz, t_exact, rtol=1e-7, atol=1e-8)
    # the joint score carries at least the information of the observed score (Fisher bound), in expectation
    joint_info = np.cov(s.t_xz.T)
    kin = toy.expected_score_products(THETA1)
    assert np.all(np.linalg.eigvalsh(joint_info - kin) > -0.05 * np.trace(kin))
    assert clone(sampler).get_params() == {"theta_ref": "sm", "negative_weights": "clip", "include_nuisance": False}


def test_double_ratio_sampler(toy, simulated):
    events, z = simulated
    s = DoubleRatioSampler(theta0_prior=UniformPrior(events.space.ranges),
                           theta1_prior=GaussianPrior([0.0, 0.0], 0.3), n_thetas=40).sample(events, 20_000,
                                                                                           random_state=8)
    pairs = np.concatenate([s.theta0, s.theta1], axis=1)
    np.testing.assert_array_equal(np.unique(pairs[s.y == 0], axis=0, return_counts=True)[1],
                                  np.unique(pairs[s.y == 1], axis=0, return_counts=True)[1])
    np.testing.assert_array_equal(np.unique(pairs[s.y == 0], axis=0), np.unique(pairs[s.y == 1], axis=0))
    rows = _rows_of(s.x, events)
    exact = (toy.joint_log_ratio(z[rows], s.theta0, s.theta1, paired=True)
             + _log_sigma_correction(toy, events, s.theta0) - _log_sigma_correction(toy, events, s.theta1))
    np.testing.assert_allclose(np.log(s.r_xz), exact, rtol=1e-7, atol=1e-7)
    t1_exact = toy.joint_score(z[rows], s.theta1, paired=True) + _grad_log_sigma_correction(toy, events, s.theta1)
    np.testing.assert_allclose(s.t_xz1, t1_exact, rtol=1e-6, atol=1e-7)
    r1 = s.r_xz[s.y == 1]
    assert abs(r1.mean() - 1.0) < 4 * r1.std() / np.sqrt(r1.size)
    assert np.all(np.abs(s.t_xz1[s.y == 1].mean(axis=0)) < 4 * s.t_xz1[s.y == 1].std(axis=0) / np.sqrt(r1.size))


def test_density_sampler(toy, simulated):
    events, _ = simulated
    s = DensitySampler(theta_prior=GridPrior(events.space.ranges, 3), n_thetas=None).sample(events, 9_000,
                                                                                            random_state=9)
    assert s.theta0.shape == (9_000, 2) and s.t_xz.shape == (9_000, 2)
    np.testing.assert_array_equal(np.unique(s.theta0, axis=0, return_counts=True)[1], np.full(9, 1000))
    assert np.all(np.abs(s.t_xz.mean(axis=0)) < 4 * s.t_xz.std(axis=0) / np.sqrt(len(s)))
    # events follow their own theta: E[x | theta] matches the exact mean per grid point
    for theta in np.unique(s.theta0, axis=0)[::4]:
        sel = np.all(s.theta0 == theta, axis=1)
        se = np.sqrt(np.diag(toy.observable_covariance(theta)) / sel.sum())
        assert np.all(np.abs(s.x[sel].mean(axis=0) - toy.observable_mean(theta)) < 5 * se)


def test_sampler_argument_errors(simulated):
    events, _ = simulated
    with pytest.raises(ValueError, match="even"):
        RatioSampler().sample(events, 101)
    with pytest.raises(ValueError, match="finite prior"):
        RatioSampler(n_thetas=None).sample(events, 100)
    with pytest.raises(ValueError, match="theta1"):
        RatioSampler(theta1=[0.0, 0.0, 0.0]).sample(events, 100)
    with pytest.raises(ValueError, match="n_samples"):
        LocalScoreSampler().sample(events, 0)
    with pytest.raises(TypeError, match="EventSet"):
        LocalScoreSampler().sample(np.zeros((10, 2)), 10)
    with pytest.raises(ValueError, match="negative_weights"):
        DensitySampler(negative_weights="nope").sample(events, 10)
    with pytest.raises(ValueError, match="pairs the points"):
        DoubleRatioSampler(theta0_prior=THETAS, theta1_prior=THETAS[:2], n_thetas=None).sample(events, 10)


def test_training_sample_io(tmp_path, simulated):
    events, _ = simulated
    s = RatioSampler(n_thetas=10).sample(events, 200, random_state=0)
    path = tmp_path / "sample.npz"
    s.save(path)
    loaded = TrainingSample.load(path)
    for key, value in s.as_dict().items():
        np.testing.assert_array_equal(getattr(loaded, key), value)
    assert loaded.t_xz1 is None and len(loaded[:5]) == 5
    assert not list(tmp_path.glob(".*.npz"))  # no temporary file left behind
    with pytest.raises(ValueError, match="rows"):
        TrainingSample(x=np.zeros((3, 2)), y=np.zeros(4))


def test_local_score_sampler_nuisance_scores(simulated):
    """The nuisance components of t_xz are d/dnu log p(z|theta, nu) at nu = 0 (eq. 19), by finite differences."""
    events, _ = simulated
    events = events[:20_000]
    a = np.stack([0.1 + 0.2 * events.x[:, 0], np.full(len(events), -0.05)], axis=1)
    b = np.full_like(a, 0.03)
    ev = EventSet(events.x, events.weights, observable_names=events.observable_names,
                  benchmark_names=events.benchmark_names, space=events.space, morpher=events.morpher,
                  morphing_basis=events.morphing_basis, nuisance_names=["nu0", "nu1"], nuisance_a=a, nuisance_b=b)
    theta = np.array([0.2, -0.1])
    s = LocalScoreSampler(theta_ref=theta, include_nuisance=True).sample(ev, 3000, random_state=2)
    assert s.t_xz.shape == (3000, 4)
    plain = LocalScoreSampler(theta_ref=theta).sample(ev, 3000, random_state=2)
    np.testing.assert_allclose(s.t_xz[:, :2], plain.t_xz, rtol=1e-12)
    # finite differences of log(w(z|theta, nu) / sigma(theta, nu)) for the drawn events, matched through x
    rows = np.array([np.flatnonzero(np.all(ev.x == xi, axis=1))[0] for xi in s.x[:200]])
    h = 1e-5
    for k in range(2):
        nu = np.zeros(2)
        nu[k] = h
        up = np.log(ev.weights_at(theta, nu)[rows] / ev.cross_section(theta, nu))
        down = np.log(ev.weights_at(theta, -nu)[rows] / ev.cross_section(theta, -nu))
        np.testing.assert_allclose(s.t_xz[:200, 2 + k], (up - down) / (2 * h), rtol=1e-5, atol=1e-8)
    with pytest.raises(ValueError, match="nuisance"):
        LocalScoreSampler(include_nuisance=True).sample(events, 10, random_state=0)


def test_training_sample_shuffle_permutes_rows_together():
    """``TrainingSample.shuffle`` keeps each row's fields together and is reproducible from its seed."""
    from skminer.augmentation import TrainingSample

    x = np.arange(10, dtype=np.float64)[:, None]
    sample = TrainingSample(x=x, y=np.arange(10) % 2, r_xz=np.arange(10, dtype=np.float64) + 1.0)
    a, b = sample.shuffle(random_state=3), sample.shuffle(random_state=3)
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.array_equal(a.x[:, 0], x[:, 0])
    np.testing.assert_array_equal(a.r_xz, a.x[:, 0] + 1.0)
    np.testing.assert_array_equal(a.y, a.x[:, 0].astype(int) % 2)
