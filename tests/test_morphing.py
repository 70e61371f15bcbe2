"""Tests of the parameter space and morphing."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from skminer.morphing import Morpher, find_components
from skminer.parameters import ParameterSpace

VBFH_BENCHMARKS = {  # MANIFEST.md, section 1: (CWL2, CPWL2)
    "sm": (0.0, 0.0), "w": (15.2, 0.1), "neg_w": (-15.4, 0.2), "ww": (0.3, 15.1), "neg_ww": (0.2, -15.3),
    "w_ww": (15.0, 15.0), "val_1": (5.0, -5.0), "val_2": (-10.0, 10.0),
}


def test_find_components_counts():
    assert find_components([2, 2], 2).shape == (6, 2)
    assert find_components([2, 2]).shape == (9, 2)
    assert find_components([2, 2, 2], 2).shape == (10, 3)
    assert find_components([4], None).shape == (5, 1)
    with pytest.raises(ValueError, match="max_powers"):
        find_components([])


def test_morphing_reproduces_quadratic_exactly():
    rng = np.random.default_rng(1)
    m = Morpher([2, 2], max_overall_power=2)
    coeffs = rng.normal(size=(500, m.n_components))  # per-event polynomial coefficients

    def truth(theta):
        return coeffs @ m.component_values(theta).T  # (n_events, n_theta)

    basis = rng.uniform(-3, 3, size=(6, 2))
    m.set_basis(basis)
    thetas = rng.uniform(-5, 5, size=(50, 2))
    morphed = truth(basis) @ m.weights(thetas).T
    np.testing.assert_allclose(morphed, truth(thetas), rtol=1e-9, atol=1e-9)
    # weights reproduce the basis itself
    np.testing.assert_allclose(m.weights(basis), np.eye(6), atol=1e-10)
    # gradients against finite differences
    eps = 1e-6
    g = m.weight_gradients(thetas)
    for i in range(2):
        d = np.zeros(2)
        d[i] = eps
        fd = (m.weights(thetas + d) - m.weights(thetas - d)) / (2 * eps)
        np.testing.assert_allclose(g[:, i, :], fd, rtol=1e-5, atol=1e-6)
    assert m.weights(thetas[0]).shape == (6,)


def test_degenerate_basis_rejected():
    m = Morpher([2, 2], 2)
    with pytest.raises(ValueError, match="degenerate"):
        m.set_basis(np.zeros((6, 2)))
    with pytest.raises(ValueError, match="at least 6"):
        m.set_basis(np.zeros((3, 2)))
    with pytest.raises(RuntimeError, match="no basis"):
        Morpher([2], None).weights([0.3])


def test_optimize_basis_beats_random_and_keeps_fixed():
    m = Morpher([2, 2], 2)
    ranges = np.array([[-1.0, 1.0], [-1.0, 1.0]])
    fixed = np.array([[0.0, 0.0]])
    basis = m.optimize_basis(ranges, fixed=fixed, n_trials=50, random_state=3)
    np.testing.assert_array_equal(basis[0], fixed[0])
    assert np.all((basis >= ranges[:, 0]) & (basis <= ranges[:, 1]))  # the refinement respects the ranges
    optimised = m.expected_squared_weights(ranges)
    rng = np.random.default_rng(0)
    random_costs = [m.expected_squared_weights(ranges, basis=np.vstack([fixed, rng.uniform(-1, 1, (5, 2))]))
                    for _ in range(20)]
    assert optimised < np.median(random_costs)
    assert optimised < min(random_costs) * 1.0001


def test_morphing_matrix_matches_madminer_file(shared_data):
    path = shared_data / "madminer_repo_h5" / "madminer_example_with_data_1.h5"
    with h5py.File(path, "r") as f:
        components = f["morphing/components"][()]
        values = f["benchmarks/values"][()]
        stored = f["morphing/morphing_matrix"][()]
    m = Morpher(components=components).set_basis(values)
    np.testing.assert_allclose(m.matrix, stored, rtol=1e-10, atol=1e-12)


def test_morphing_on_madgraph_weights(shared_data):
    pylhe = pytest.importorskip("pylhe")
    path = shared_data / "mg5_vbfh_ewdim6" / "unweighted_events.lhe.gz"
    ids = list(VBFH_BENCHMARKS)
    events = pylhe.LHEFile.fromfile(str(path)).events
    weights = np.array([[ev.weights[i] for i in ids] for ev in events])
    assert weights.shape == (5000, 8)
    points = np.array([VBFH_BENCHMARKS[i] for i in ids])
    m = Morpher([2, 2], max_overall_power=2).set_basis(points[:6])
    predicted = weights[:, :6] @ m.weights(points[6:]).T
    rel = np.abs(predicted - weights[:, 6:]) / np.abs(weights[:, 6:])
    assert rel.max() < 1e-4
    # cross sections (mean weight of unweighted events) against MG5's printed values (MANIFEST.md)
    np.testing.assert_allclose(predicted.mean(axis=0), [6.136e-4, 9.695e-4], rtol=2e-3)


def test_parameter_space_roundtrip_and_errors():
    space = ParameterSpace()
    space.add_parameter("a", "dim6", 2, range=(-2, 2)).add_parameter("b", "dim6", 5, max_power=1)
    space.add_benchmark("sm", {"a": 0.0}).add_benchmark("x", [1.0, -1.0])
    space.add_nuisance("mur", "scale", up="mur_up", down="mur_down")
    assert space.benchmark_values.shape == (2, 2)
    np.testing.assert_array_equal(space.max_powers, [2, 1])
    assert ParameterSpace.from_dict(space.to_dict()) == space
    assert space.as_theta("x").shape == (1, 2)
    with pytest.raises(ValueError, match="unknown parameters"):
        space.add_benchmark("bad", {"c": 1.0})
    with pytest.raises(ValueError, match="expected 2 values"):
        space.add_benchmark("bad", [1.0])
    with pytest.raises(ValueError, match="already exists"):
        space.add_benchmark("sm", [0, 0])
    with pytest.raises(KeyError, match="unknown benchmark"):
        space.benchmark("nope")
    with pytest.raises(ValueError, match="range"):
        ParameterSpace().add_parameter("c", range=(1, 0))
    with pytest.raises(ValueError, match="kind"):
        space.add_nuisance("n", kind="weird")
    with pytest.raises(ValueError, match="lacks field"):
        ParameterSpace.from_dict({})


def test_select_basis_among_existing_benchmarks():
    """The chosen subset is the exhaustive optimum and reproduces a quadratic exactly."""
    import itertools

    rng = np.random.default_rng(5)
    morpher = Morpher(max_powers=[2, 2], max_overall_power=2)
    candidates = np.vstack([rng.uniform(-1, 1, size=(8, 2)), [[0.1, 0.1], [0.1, 0.11]]])
    ranges = np.array([[-1.0, 1.0], [-1.0, 1.0]])
    best = morpher.select_basis(candidates, ranges)
    assert len(set(best.tolist())) == morpher.n_components
    chosen = morpher.expected_squared_weights(ranges)
    for subset in itertools.combinations(range(len(candidates)), morpher.n_components):
        try:
            other = morpher.expected_squared_weights(ranges, basis=candidates[list(subset)])
        except ValueError:
            continue
        assert chosen <= other * (1 + 1e-9)
    # weights reproduce a quadratic function of theta from its values at the basis points
    coef = rng.normal(size=morpher.n_components)
    f_basis = morpher.component_values(candidates[best]) @ coef
    thetas = rng.uniform(-1, 1, size=(20, 2))
    np.testing.assert_allclose(morpher.weights(thetas) @ f_basis, morpher.component_values(thetas) @ coef,
                               rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="cannot span"):
        Morpher(max_powers=[2, 2], max_overall_power=2).select_basis(candidates[:3], ranges)
