"""Tests of skminer.inference.fisher and skminer.inference.nuisance against the exact toy simulator."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from skminer.events import EventSet
from skminer.inference import (
    FisherInformation,
    InformationDistribution,
    distance_for_cl,
    fisher_contour,
    fisher_distance,
    information_mean_and_covariance,
    nuisance_constraint_information,
    profile_information,
    project_information,
)
from skminer.simulation.toy import ToySimulator

THETA = np.array([0.2, -0.1])
LUMI = 100.0


def _psd_violation(matrix: np.ndarray) -> float:
    """Most negative eigenvalue of a symmetric matrix relative to its largest absolute eigenvalue (0 if PSD)."""
    eig = np.linalg.eigvalsh(0.5 * (matrix + matrix.T))
    return float(max(0.0, -eig.min()) / max(np.abs(eig).max(), 1e-300))


class ExactScore:
    """Oracle score estimator (inference protocol): ``score_at`` returns the toy's exact score."""

    capabilities = frozenset({"score"})

    def __init__(self, toy: ToySimulator, theta: np.ndarray) -> None:
        self.toy, self.theta = toy, theta

    def score_at(self, X: np.ndarray, theta: np.ndarray | None = None) -> np.ndarray:
        return self.toy.score(X, self.theta if theta is None else theta)


class ScaledEnsemble:
    """Ensemble protocol: members are the exact score times member-specific factors."""

    capabilities = frozenset({"score"})

    def __init__(self, toy: ToySimulator, theta: np.ndarray, factors: list[float]) -> None:
        self.exact = ExactScore(toy, theta)
        self.factors = np.asarray(factors)

    def predict_all(self, method: str, X: np.ndarray, *args) -> np.ndarray:
        return self.factors[:, None, None] * getattr(self.exact, method)(X, *args)[None]


@pytest.fixture(scope="module")
def toy() -> ToySimulator:
    return ToySimulator()


@pytest.fixture(scope="module")
def sample(toy: ToySimulator) -> tuple[EventSet, np.ndarray]:
    events, z = toy.simulate(200_000, random_state=11, return_latent=True)
    return events, z


@pytest.fixture(scope="module")
def fisher(sample: tuple[EventSet, np.ndarray]) -> FisherInformation:
    return FisherInformation(sample[0])


# -- truth and rate ----------------------------------------------------------------------------------------
def test_truth_information_equals_joint_score_sum(toy, sample, fisher):
    events, z = sample
    truth = fisher.truth_information(THETA, LUMI)
    w = events.weights_at(THETA[None, :])[:, 0]
    # grad w / w = joint score + grad log sigma (exact parton-level identity of the toy)
    u = toy.joint_score(z, THETA) + toy.cross_section_gradient(THETA) / toy.cross_section(THETA)
    expected = LUMI * np.einsum("n,ni,nj->ij", w, u, u)
    np.testing.assert_allclose(truth, expected, rtol=1e-9)
    assert truth.dtype == np.float64 and np.allclose(truth, truth.T)


def test_truth_information_finite_differences(fisher, sample):
    events, _ = sample
    h = 1e-3
    grads = []
    for i in range(2):
        e = np.zeros(2)
        e[i] = h
        grads.append((events.weights_at((THETA + e)[None, :])[:, 0]
                      - events.weights_at((THETA - e)[None, :])[:, 0]) / (2 * h))
    g = np.stack(grads, axis=1)
    w = events.weights_at(THETA[None, :])[:, 0]
    ok = w > 0
    expected = LUMI * (g[ok] / w[ok, None]).T @ g[ok]
    np.testing.assert_allclose(fisher.truth_information(THETA, LUMI), expected, rtol=1e-6)


def test_truth_information_bounds_full_information(toy, fisher):
    # data processing: the parton-level information exceeds the detector-level one
    truth = fisher.truth_information(THETA, LUMI)
    exact_full = toy.fisher_information(THETA, LUMI, kind="full")
    assert _psd_violation(truth - exact_full) == 0.0
    assert np.linalg.eigvalsh(truth - exact_full).min() > 0.05 * np.abs(exact_full).max()


def test_rate_information_matches_exact_toy(toy, fisher, sample):
    events, _ = sample
    rate = fisher.rate_information(THETA, LUMI)
    sigma = events.cross_section(THETA[None, :])[0]
    grad = events.cross_section_gradient(THETA[None, :])[0]
    np.testing.assert_allclose(rate, LUMI / sigma * np.outer(grad, grad), rtol=1e-10)
    exact = toy.fisher_information(THETA, LUMI, kind="rate")
    # Monte-Carlo estimate from 2e5 weighted events: per-mille level
    np.testing.assert_allclose(rate, exact, rtol=0.02)
    assert np.linalg.matrix_rank(rate, tol=1e-8 * np.abs(rate).max()) == 1


def test_truth_information_skips_non_positive_weights(toy, caplog):
    events = toy.simulate(2000, random_state=3)
    weights = events.weights.copy()
    weights[:5] *= -1.0
    flipped = EventSet(events.x, weights, observable_names=events.observable_names,
                       benchmark_names=events.benchmark_names, space=events.space, morpher=events.morpher,
                       morphing_basis=events.morphing_basis)
    fi = FisherInformation(flipped)
    with caplog.at_level(logging.WARNING):
        truth = fi.truth_information(THETA, LUMI)
    assert "skipping 5 events" in caplog.text
    full_truth = FisherInformation(events[5:]).truth_information(THETA, LUMI)
    np.testing.assert_allclose(truth, full_truth, rtol=1e-10)
    assert np.all(np.isfinite(truth))


# -- full information ----------------------------------------------------------------------------------------
def test_full_information_with_exact_score_matches_toy(toy, fisher):
    full = fisher.full_information(THETA, ExactScore(toy, THETA), LUMI)
    exact = toy.fisher_information(THETA, LUMI, kind="full")
    assert np.abs(full - exact).max() < 0.02 * np.abs(exact).max()
    np.testing.assert_allclose(np.diag(full), np.diag(exact), rtol=0.02)
    kin = fisher.full_information(THETA, ExactScore(toy, THETA), LUMI, include_rate=False)
    exact_kin = toy.fisher_information(THETA, LUMI, kind="kinematic")
    np.testing.assert_allclose(np.diag(kin), np.diag(exact_kin), rtol=0.02)
    np.testing.assert_allclose(full - kin, fisher.rate_information(THETA, LUMI), rtol=1e-10)


def test_full_information_ensemble_mean_and_covariance(toy, fisher):
    single = fisher.full_information(THETA, ExactScore(toy, THETA), LUMI, include_rate=False)
    factors = [0.9, 1.0, 1.1, 1.2]
    mean, cov = fisher.full_information(THETA, ScaledEnsemble(toy, THETA, factors), LUMI, include_rate=False,
                                        return_covariance=True)
    f2 = np.square(factors)
    np.testing.assert_allclose(mean, f2.mean() * single, rtol=1e-10)
    expected_cov = np.var(f2, ddof=1) * single[:, :, None, None] * single[None, None, :, :]
    np.testing.assert_allclose(cov, expected_cov, rtol=1e-8)
    members = fisher.full_information_members(THETA, ScaledEnsemble(toy, THETA, factors), LUMI, include_rate=False)
    assert members.shape == (4, 2, 2)
    _, cov_single = fisher.full_information(THETA, ExactScore(toy, THETA), LUMI, return_covariance=True)
    assert cov_single.shape == (2, 2, 2, 2) and not cov_single.any()


def test_full_information_rejects_bad_estimators(fisher):
    class WrongShape:
        capabilities = frozenset({"score"})

        def score_at(self, X, theta=None):
            return np.zeros((len(X), 3))

    with pytest.raises(ValueError, match="returned 3 score components, expected 2"):
        fisher.full_information(THETA, WrongShape(), LUMI)
    with pytest.raises(TypeError, match="'score' capability"):
        fisher.full_information(THETA, object(), LUMI)
    with pytest.raises(ValueError, match="luminosity"):
        fisher.rate_information(THETA, -1.0)
    with pytest.raises(ValueError, match="theta"):
        fisher.truth_information([0.0, 0.0, 0.0], LUMI)
    with pytest.raises(ValueError, match="include_nuisance"):
        fisher.truth_information(THETA, LUMI, include_nuisance=True)


# -- histograms ----------------------------------------------------------------------------------------------
def test_histogram_information_ordering(toy, fisher):
    truth = fisher.truth_information(THETA, LUMI)
    rate = fisher.rate_information(THETA, LUMI)
    full = fisher.full_information(THETA, ExactScore(toy, THETA), LUMI)
    h1 = fisher.histogram_information(THETA, LUMI, "x1", bins=20)
    h2 = fisher.histogram_information_2d(THETA, LUMI, "x1", "x2", bins1=20, bins2=10)
    # exact on the sample (Cauchy-Schwarz per bin; 2-D binning refines the x1 binning, same quantile edges)
    assert _psd_violation(truth - h2) == 0.0
    assert _psd_violation(h2 - h1) < 1e-12
    assert _psd_violation(h1 - rate) < 1e-12
    # full - hist is PSD in expectation; the sample estimate of full has per-mille Monte-Carlo noise
    assert _psd_violation(full - h1) == 0.0
    assert _psd_violation(full - h2) == 0.0
    # a single bin carries only the rate information
    np.testing.assert_allclose(fisher.histogram_information(THETA, LUMI, 0, bins=1), rate, rtol=1e-10)
    # more bins never lose information (nested quantile edges: 10 -> 20 bins)
    h10 = fisher.histogram_information(THETA, LUMI, "x1", bins=10)
    assert _psd_violation(h1 - h10) < 1e-12


def test_histogram_information_explicit_edges_and_arrays(fisher, sample):
    events, _ = sample
    edges = np.array([-0.5, 0.0, 0.5, 1.0])
    info = fisher.histogram_information(THETA, LUMI, "x2", bins=edges)
    w = events.weights_at(THETA[None, :])[:, 0]
    g = events.weight_gradients_at(THETA[None, :])[:, 0, :]
    x2 = events.x[:, 1]
    full_edges = np.concatenate([[-np.inf], edges, [np.inf]])
    expected = np.zeros((2, 2))
    for lo, hi in zip(full_edges[:-1], full_edges[1:], strict=True):
        m = (x2 >= lo) & (x2 < hi)
        s, gb = w[m].sum(), g[m].sum(axis=0)
        expected += LUMI * np.outer(gb, gb) / s
    np.testing.assert_allclose(info, expected, rtol=1e-10)
    np.testing.assert_allclose(fisher.histogram_information(THETA, LUMI, x2, bins=edges), info, rtol=1e-12)
    with pytest.raises(ValueError, match="strictly increasing"):
        fisher.histogram_information(THETA, LUMI, "x2", bins=[1.0, 0.0])
    with pytest.raises(ValueError, match="not in the event set"):
        fisher.histogram_information(THETA, LUMI, "pt_j1")
    with pytest.raises(ValueError, match="observable"):
        fisher.histogram_information(THETA, LUMI, np.zeros(3))


def test_information_distribution_sums(toy, fisher, sample):
    events, _ = sample
    x1 = events.x[:, 0]
    dist = fisher.information_distribution(THETA, LUMI, "x1", bins=15)
    assert isinstance(dist, InformationDistribution) and dist.kind == "truth"
    assert dist.edges.shape == (16,) and dist.rate.shape == (15, 2, 2) and dist.full.shape == (15, 2, 2)
    np.testing.assert_allclose(dist.cross_sections.sum(), events.cross_section(THETA[None, :])[0], rtol=1e-10)
    np.testing.assert_allclose(dist.full.sum(axis=0), fisher.truth_information(THETA, LUMI), rtol=1e-9)
    # the per-bin rate informations add up to the histogram information with the same (inner) edges
    hist = fisher.histogram_information(THETA, LUMI, "x1", bins=dist.edges[1:-1])
    np.testing.assert_allclose(dist.rate.sum(axis=0), hist, rtol=1e-9)
    with_est = fisher.information_distribution(THETA, LUMI, x1, bins=15, estimator=ExactScore(toy, THETA))
    assert with_est.kind == "full"
    full = fisher.full_information(THETA, ExactScore(toy, THETA), LUMI)
    assert np.abs(with_est.full.sum(axis=0) - full).max() < 0.01 * np.abs(full).max()
    # in total the differential information exceeds the information in the bin rates
    assert _psd_violation(with_est.full.sum(axis=0) - with_est.rate.sum(axis=0)) == 0.0
    with pytest.raises(ValueError, match="bins"):
        fisher.information_distribution(THETA, LUMI, "x1", bins=[0.0])


# -- nuisance parameters -------------------------------------------------------------------------------------
def _with_nuisance(events: EventSet, a: np.ndarray, b: np.ndarray) -> EventSet:
    return EventSet(events.x, events.weights, observable_names=events.observable_names,
                    benchmark_names=events.benchmark_names, space=events.space, morpher=events.morpher,
                    morphing_basis=events.morphing_basis, nuisance_names=[f"nu{i}" for i in range(a.shape[1])],
                    nuisance_a=a, nuisance_b=b)


def test_information_with_nuisance_parameters(toy):
    events = toy.simulate(20_000, random_state=5)
    a = np.stack([0.1 + 0.2 * events.x[:, 0], -0.05 * np.ones(len(events))], axis=1)
    b = 0.03 * np.ones_like(a)
    ev = _with_nuisance(events, a, b)
    fi = FisherInformation(ev)
    assert fi.n_nuisance == 2
    truth = fi.truth_information(THETA, LUMI, include_nuisance=True)
    assert truth.shape == (4, 4)
    np.testing.assert_allclose(truth[:2, :2], fi.truth_information(THETA, LUMI), rtol=1e-12)
    # gradient w.r.t. nu at nu = 0 by finite differences of the EventSet's nuisance factors (eq. 19)
    h = 1e-5
    w = ev.weights_at(THETA[None, :])[:, 0]
    g_theta = ev.weight_gradients_at(THETA[None, :])[:, 0, :]
    g_nu = np.stack([w * (ev.nuisance_factors(h * e)[:, k] - ev.nuisance_factors(-h * e)[:, k]) / (2 * h)
                     for k, e in enumerate(np.eye(2))], axis=1)
    g = np.concatenate([g_theta, g_nu], axis=1)
    np.testing.assert_allclose(truth, LUMI * (g / w[:, None]).T @ g, rtol=1e-6)
    rate = fi.rate_information(THETA, LUMI, include_nuisance=True)
    grad = g.sum(axis=0)
    np.testing.assert_allclose(rate, LUMI / w.sum() * np.outer(grad, grad), rtol=1e-6)
    hist = fi.histogram_information(THETA, LUMI, "x1", bins=10, include_nuisance=True)
    assert hist.shape == (4, 4) and _psd_violation(truth - hist) == 0.0
    # constraints and profiling
    constraint = fi.nuisance_constraint_information()
    np.testing.assert_array_equal(constraint, np.diag([0.0, 0.0, 1.0, 1.0]))
    profiled = fi.profile_nuisance(truth)
    projected = project_information(truth + constraint, [0, 1])
    assert profiled.shape == (2, 2)
    assert _psd_violation(projected - profiled) == 0.0
    np.testing.assert_allclose(profiled, profile_information(truth + constraint, [0, 1]), rtol=1e-12)


def test_normalisation_nuisance_removes_rate_information(toy):
    # a large, unconstrained-in-practice normalisation uncertainty: profiling removes exactly the rate information
    events = toy.simulate(20_000, random_state=6)
    a = np.full((len(events), 1), 1e4)
    fi = FisherInformation(_with_nuisance(events, a, np.zeros_like(a)))
    truth = fi.truth_information(THETA, LUMI, include_nuisance=True)
    profiled = fi.profile_nuisance(truth)
    expected = fi.truth_information(THETA, LUMI) - fi.rate_information(THETA, LUMI)
    np.testing.assert_allclose(profiled, expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())
    # a negligible normalisation uncertainty changes nothing
    fi_small = FisherInformation(_with_nuisance(events, np.full((len(events), 1), 1e-6), np.zeros((len(events), 1))))
    np.testing.assert_allclose(fi_small.profile_nuisance(fi_small.truth_information(THETA, LUMI, True)),
                               fi_small.truth_information(THETA, LUMI), rtol=1e-8)


def test_full_information_with_nuisance_needs_nuisance_scores(toy):
    events = toy.simulate(5000, random_state=7)
    a = np.full((len(events), 1), 0.1)
    fi = FisherInformation(_with_nuisance(events, a, np.zeros_like(a)))
    with pytest.raises(ValueError, match="nuisance parameter"):
        fi.full_information(THETA, ExactScore(toy, THETA), LUMI, include_nuisance=True)

    class ScoreWithNuisance:
        capabilities = frozenset({"score"})

        def score_at(self, X, theta=None):
            # the normalisation nuisance does not change the shape: x-level score component 0
            return np.concatenate([toy.score(X, THETA), np.zeros((len(X), 1))], axis=1)

    info = fi.full_information(THETA, ScoreWithNuisance(), LUMI, include_nuisance=True)
    rate = fi.rate_information(THETA, LUMI, include_nuisance=True)
    np.testing.assert_allclose(info[2, :], rate[2, :], rtol=1e-10)
    np.testing.assert_allclose(info[:2, :2], fi.full_information(THETA, ExactScore(toy, THETA), LUMI), rtol=1e-10)
    # without include_nuisance, a (theta, nu) score estimator contributes its theta part
    np.testing.assert_allclose(fi.full_information(THETA, ScoreWithNuisance(), LUMI),
                               fi.full_information(THETA, ExactScore(toy, THETA), LUMI), rtol=1e-12)


# -- profile / project / distances ----------------------------------------------------------------------------
KNOWN = np.array([[4.0, 2.0, 1.0], [2.0, 3.0, 0.5], [1.0, 0.5, 2.0]])


def test_profile_and_project_known_matrix():
    np.testing.assert_array_equal(project_information(KNOWN, [0, 1]), KNOWN[:2, :2])
    np.testing.assert_array_equal(project_information(KNOWN, [2, 0]), [[2.0, 1.0], [1.0, 4.0]])
    profiled = profile_information(KNOWN, [0, 1])
    np.testing.assert_allclose(profiled, [[3.5, 1.75], [1.75, 2.875]], rtol=1e-14)
    # the profiled information is the inverse of the marginal covariance
    np.testing.assert_allclose(profiled, np.linalg.inv(np.linalg.inv(KNOWN)[:2, :2]), rtol=1e-12)
    np.testing.assert_allclose(profile_information(KNOWN, [1]), [[1.0 / np.linalg.inv(KNOWN)[1, 1]]], rtol=1e-12)
    np.testing.assert_array_equal(profile_information(KNOWN, [0, 1, 2]), KNOWN)
    # stacks (ensemble members) are handled element-wise
    stack = np.stack([KNOWN, 2 * KNOWN])
    np.testing.assert_allclose(profile_information(stack, [0, 1]), np.stack([profiled, 2 * profiled]), rtol=1e-12)
    # a nuisance without information and without correlation: pseudo-inverse, no change
    singular = np.zeros((3, 3))
    singular[:2, :2] = KNOWN[:2, :2]
    np.testing.assert_allclose(profile_information(singular, [0, 1]), KNOWN[:2, :2], rtol=1e-12)
    with pytest.raises(ValueError, match="out of range"):
        profile_information(KNOWN, [0, 3])
    with pytest.raises(ValueError, match="duplicates"):
        project_information(KNOWN, [1, 1])
    with pytest.raises(ValueError, match="square"):
        profile_information(np.zeros((2, 3)), [0])


def test_constraint_information():
    c = nuisance_constraint_information(2, 2, sigma=[1.0, 0.5])
    np.testing.assert_array_equal(c, np.diag([0.0, 0.0, 1.0, 4.0]))
    with pytest.raises(ValueError, match="sigma"):
        nuisance_constraint_information(1, 1, sigma=0.0)


def test_fisher_distance_and_contour():
    info = np.array([[4.0, 1.0], [1.0, 2.0]])
    ref = np.array([0.5, -0.5])
    assert fisher_distance(info, ref + [1.0, 0.0], ref) == pytest.approx(2.0)
    d = fisher_distance(info, np.array([[0.5, -0.5], [0.5, 0.5]]), ref)
    np.testing.assert_allclose(d, [0.0, np.sqrt(2.0)])
    assert distance_for_cl(0.68, 2) == pytest.approx(1.509, abs=1e-3)  # quoted in the MadMiner paper
    assert distance_for_cl(0.95, 2) == pytest.approx(2.448, abs=1e-3)
    pts = fisher_contour(info, ref, distance=1.5, n_points=50)
    assert pts.shape == (51, 2)
    np.testing.assert_allclose(fisher_distance(info, pts, ref), 1.5, rtol=1e-12)
    np.testing.assert_allclose(pts[0], pts[-1])
    with pytest.raises(ValueError, match="positive definite"):
        fisher_contour(np.array([[1.0, 1.0], [1.0, 1.0]]), ref)
    with pytest.raises(ValueError, match="2x2"):
        fisher_contour(KNOWN, [0, 0, 0])
    with pytest.raises(ValueError, match="cl"):
        distance_for_cl(1.5, 2)


def test_information_mean_and_covariance_shapes():
    members = np.stack([KNOWN, 2 * KNOWN, 3 * KNOWN])
    mean, cov = information_mean_and_covariance(members)
    np.testing.assert_allclose(mean, 2 * KNOWN)
    np.testing.assert_allclose(cov[0, 0, 0, 0], np.var([4.0, 8.0, 12.0], ddof=1))
    with pytest.raises(ValueError, match="n_members"):
        information_mean_and_covariance(KNOWN)


# -- a real, small SALLY --------------------------------------------------------------------------------------
def test_full_information_with_trained_sally(toy):
    """Issue 2's acceptance test: SALLY's detector-level information within 5% of the exact one."""
    torch = pytest.importorskip("torch")
    from skminer.estimators.score import SALLY

    theta = np.zeros(2)
    x, z = toy.sample(50_000, theta, random_state=41, return_latent=True)
    n_threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        model = SALLY(hidden_layer_sizes=(64, 64), max_epochs=60, batch_size=512, lr=1e-3, patience=15,
                      random_state=0)
        model.fit(x, toy.joint_score(z, theta))
    finally:
        torch.set_num_threads(n_threads)
    fi = FisherInformation(toy.simulate(100_000, random_state=42))
    full = fi.full_information(theta, model, LUMI)
    exact = toy.fisher_information(theta, LUMI, kind="full")
    # measured: diagonal ratios 0.990 and 0.965, largest deviation 2.6% of the largest element
    np.testing.assert_allclose(np.diag(full), np.diag(exact), rtol=0.05)
    assert np.abs(full - exact).max() < 0.05 * np.abs(exact).max()
    assert _psd_violation(fi.truth_information(theta, LUMI) - full) == 0.0
    assert _psd_violation(full - fi.rate_information(theta, LUMI)) == 0.0
