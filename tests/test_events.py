"""Tests of :class:`skminer.events.EventSet`: validation, morphing, nuisance factors, HDF5 I/O, MadMiner files,
subsets, combination and splits."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

import skminer.io.events_h5 as events_h5
from skminer.events import FORMAT_VERSION, EventSet
from skminer.morphing import Morpher
from skminer.parameters import ParameterSpace

MADMINER_FILE = "madminer_repo_h5/madminer_example_with_data_1.h5"
MADMINER_BENCHMARKS = ["sm", "w", "morphing_basis_vector_2", "morphing_basis_vector_3", "morphing_basis_vector_4",
                       "morphing_basis_vector_5"]

# six basis points for components 1, g1, g2, g1^2, g1 g2, g2^2, plus two validation points outside the basis
BASIS = {"b0": (0.0, 0.0), "b1": (1.5, 0.0), "b2": (-1.2, 0.0), "b3": (0.0, 1.3), "b4": (0.0, -0.9),
         "b5": (1.1, 0.8)}
EXTRA = {"v1": (0.7, -1.4), "v2": (-1.9, 1.6)}


# -- synthetic sample with a known quadratic per-event weight ----------------------------------------------
class Truth:
    """Per-event weight ``c (A^2 + B^2 + 0.1)`` with amplitudes linear in theta: quadratic and strictly positive."""

    def __init__(self, n: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.f = rng.normal(size=(n, 3))  # A = f0 + g1 f1 + g2 f2
        self.h = rng.normal(size=(n, 3))  # B = h0 + g1 h1 + g2 h2
        self.c = rng.uniform(0.5, 2.0, size=n) * 1e-3  # pb
        self.x = np.column_stack([rng.normal(size=n), rng.exponential(size=n), rng.uniform(-3, 3, size=n)])

    def _amps(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        th = np.atleast_2d(np.asarray(theta, dtype=np.float64))
        design = np.column_stack([np.ones(th.shape[0]), th])  # (n_theta, 3)
        return self.f @ design.T, self.h @ design.T  # (n_events, n_theta)

    def weights(self, theta: np.ndarray) -> np.ndarray:
        a, b = self._amps(theta)
        return self.c[:, None] * (a**2 + b**2 + 0.1)

    def gradients(self, theta: np.ndarray) -> np.ndarray:
        """Shape (n_events, n_theta, 2)."""
        a, b = self._amps(theta)
        return np.stack([2 * self.c[:, None] * (a * self.f[:, [i + 1]] + b * self.h[:, [i + 1]]) for i in range(2)],
                        axis=2)


def make_space(with_nuisance: bool = False) -> ParameterSpace:
    space = ParameterSpace()
    space.add_parameter("g1", lha_block="dim6", lha_id=2, max_power=2, range=(-2.0, 2.0))
    space.add_parameter("g2", lha_block="dim6", lha_id=5, max_power=2, range=(-2.0, 2.0))
    for name, value in {**BASIS, **EXTRA}.items():
        space.add_benchmark(name, value)
    if with_nuisance:
        space.add_nuisance("mu_scale", kind="scale", up="mu_up", down="mu_down")
        space.add_nuisance("pdf_1", kind="pdf", up="pdf_1_up")
    return space


def make_events(n: int = 200, seed: int = 0, *, nuisance: bool = False, sampling: bool = False,
                morphing: bool = True, truth: Truth | None = None) -> EventSet:
    truth = truth or Truth(n, seed)
    space = make_space(with_nuisance=nuisance)
    names = list(BASIS) + list(EXTRA)
    weights = truth.weights(np.array([space.benchmark(b) for b in names]))
    rng = np.random.default_rng(seed + 100)
    kwargs: dict[str, Any] = {}
    if morphing:
        kwargs.update(morpher=Morpher.from_space(space, max_overall_power=2), morphing_basis=list(BASIS))
    if nuisance:
        kwargs.update(nuisance_names=["mu_scale", "pdf_1"], nuisance_a=rng.normal(0, 0.2, size=(n, 2)),
                      nuisance_b=np.column_stack([rng.normal(0, 0.05, size=n), np.zeros(n)]))
    if sampling:
        kwargs["sampling_benchmark"] = rng.choice([-1, 0, 1, 6], size=n, p=[0.2, 0.4, 0.3, 0.1])
    return EventSet(truth.x, weights, observable_names=["a", "b", "c"], benchmark_names=names, space=space,
                    observable_definitions=["j[0].pt", None, "met.pt / 2"],
                    metadata={"generator": "synthetic", "seed": seed, "tags": ["x", 1.5]}, **kwargs)


@pytest.fixture(scope="module")
def truth() -> Truth:
    return Truth(300, seed=3)


@pytest.fixture(scope="module")
def events(truth: Truth) -> EventSet:
    return make_events(300, seed=3, truth=truth)


@pytest.fixture(scope="module")
def nu_events() -> EventSet:
    return make_events(150, seed=5, nuisance=True, sampling=True)


def assert_same_events(a: EventSet, b: EventSet, *, rtol: float = 0.0) -> None:
    np.testing.assert_allclose(a.x, b.x, rtol=rtol, atol=0)
    np.testing.assert_allclose(a.weights, b.weights, rtol=rtol, atol=0)
    assert a.observable_names == b.observable_names
    assert a.benchmark_names == b.benchmark_names
    assert a.space == b.space
    np.testing.assert_array_equal(a.sampling_benchmark, b.sampling_benchmark)
    assert a.nuisance_names == b.nuisance_names
    assert (a.nuisance_a is None) == (b.nuisance_a is None)
    if a.nuisance_a is not None:
        np.testing.assert_allclose(a.nuisance_a, b.nuisance_a, rtol=rtol, atol=1e-12 if rtol else 0)
        np.testing.assert_allclose(a.nuisance_b, b.nuisance_b, rtol=rtol, atol=1e-12 if rtol else 0)
    assert a.morphing_basis == b.morphing_basis
    assert (a.morpher is None) == (b.morpher is None)
    if a.morpher is not None:
        np.testing.assert_array_equal(a.morpher.components, b.morpher.components)
        np.testing.assert_allclose(a.morpher.basis, b.morpher.basis, rtol=1e-14)
        np.testing.assert_allclose(a.morpher.matrix, b.morpher.matrix, rtol=1e-12, atol=1e-14)


def rows_of(sub: EventSet, full: EventSet) -> np.ndarray:
    """Index in ``full`` of every event of ``sub`` (events are identified by their unique x rows)."""
    lookup = {row.tobytes(): i for i, row in enumerate(full.x)}
    assert len(lookup) == full.n_events
    return np.array([lookup[row.tobytes()] for row in sub.x], dtype=np.int64)


# -- construction and validation ---------------------------------------------------------------------------
def test_construction_basic_properties(events: EventSet) -> None:
    assert len(events) == events.n_events == 300
    assert events.n_observables == 3 and events.n_benchmarks == 8 and events.n_parameters == 2
    assert events.x.dtype == np.float64 and events.weights.dtype == np.float64
    assert events.n_nuisance == 0 and events.nuisance_a is None
    np.testing.assert_array_equal(events.sampling_benchmark, -1)
    np.testing.assert_array_equal(events.benchmark_values[6], EXTRA["v1"])
    assert events.benchmark_index("v2") == 7
    with pytest.raises(KeyError, match="nope"):
        events.benchmark_index("nope")
    assert events.observable_definitions == ["j[0].pt", None, "met.pt / 2"]
    with pytest.raises(ValueError):
        events.weights[0, 0] = 1.0  # read-only
    with pytest.raises(ValueError):
        events.x[0, 0] = 1.0
    assert "n_events=300" in repr(events)


def test_integer_and_list_inputs_become_float64() -> None:
    space = make_space()
    ev = EventSet([[1, 2], [3, 4]], [[1, 2], [3, -4]], observable_names=["p", "q"], benchmark_names=["b0", "v1"],
                  space=space)
    assert ev.x.dtype == np.float64 and ev.weights.dtype == np.float64
    np.testing.assert_array_equal(ev.cross_section(["b0", "v1"][0]), 4.0)
    np.testing.assert_array_equal(ev.weights.sum(axis=0), [4.0, -2.0])  # negative (NLO) weights are allowed


@pytest.mark.parametrize(
    ("changes", "exc", "pattern"),
    [
        ({"x": np.zeros(4)}, ValueError, r"x must be 2-D"),
        ({"weights": np.ones((4, 2, 1))}, ValueError, r"weights must be 2-D"),
        ({"weights": np.ones((5, 2))}, ValueError, r"x has 4 events but weights has 5 rows"),
        ({"weights": [["a", "b"]] * 4}, ValueError, r"weights must be a numeric array"),
        ({"weights": np.where(np.eye(4, 2) > 0, np.nan, 1.0)}, ValueError, r"weights contains 2 non-finite.*2 NaN"),
        ({"weights": np.array([[1.0, 1.0]] * 3 + [[np.inf, 1.0]])}, ValueError,
         r"weights contains 1 non-finite values \(0 NaN\), first at event 3, benchmark 'b0'"),
        ({"x": np.array([[0.0, np.nan]] * 4)}, ValueError, r"x contains 4 non-finite.*observable 'q'"),
        ({"benchmark_names": ["b0", "unknown"]}, ValueError, r"benchmark_names \['unknown'\] are not benchmarks"),
        ({"benchmark_names": ["b0", "b0"]}, ValueError, r"benchmark_names must be unique; duplicated: \['b0'\]"),
        ({"benchmark_names": ["b0"]}, ValueError, r"benchmark_names has 1 names for 2 columns of weights"),
        ({"observable_names": ["p", "p"]}, ValueError, r"observable_names must be unique"),
        ({"observable_names": ["p", "q", "r"]}, ValueError, r"observable_names has 3 names for 2 columns of x"),
        ({"observable_names": "pq"}, TypeError, r"observable_names must be a sequence"),
        ({"space": {"parameters": []}}, TypeError, r"space must be a ParameterSpace"),
        ({"observable_definitions": ["p"]}, ValueError, r"observable_definitions has 1 entries for 2"),
        ({"sampling_benchmark": [0, 1, 2]}, ValueError, r"sampling_benchmark must have shape \(4,\)"),
        ({"sampling_benchmark": [0, 1, 2, -1]}, ValueError, r"sampling_benchmark values .* got \[2\]"),
        ({"sampling_benchmark": [0, 0.5, 1, -1]}, ValueError, r"sampling_benchmark must hold integer"),
        ({"nuisance_names": ["n1"]}, ValueError, r"nuisance_names / nuisance_b given without nuisance_a"),
        ({"nuisance_names": ["n1"], "nuisance_a": np.zeros((4, 2))}, ValueError,
         r"nuisance_a must have shape \(n_events, n_nuisance\) = \(4, 1\)"),
        ({"nuisance_names": ["n1"], "nuisance_a": np.zeros((4, 1)), "nuisance_b": np.zeros((3, 1))}, ValueError,
         r"nuisance_b must have shape"),
        ({"nuisance_names": ["n1"], "nuisance_a": np.full((4, 1), np.nan)}, ValueError,
         r"nuisance_a contains 4 non-finite.*nuisance parameter 'n1'"),
        ({"nuisance_names": ["n1", "n1"], "nuisance_a": np.zeros((4, 2))}, ValueError,
         r"nuisance_names must be unique"),
        ({"metadata": {"f": object()}}, ValueError, r"metadata must be JSON-serialisable"),
        ({"metadata": {"f": float("nan")}}, ValueError, r"metadata must be JSON-serialisable"),
        ({"morphing_basis": ["b0"]}, ValueError, r"morphing_basis given without a morpher"),
        ({"morpher": "quadratic"}, TypeError, r"morpher must be a Morpher"),
        ({"morpher": Morpher([2])}, ValueError, r"morpher has 1 parameters, the space 2"),
    ],
)
def test_construction_errors_name_the_argument(changes: dict[str, Any], exc: type[Exception], pattern: str) -> None:
    args: dict[str, Any] = {"x": np.arange(8.0).reshape(4, 2), "weights": np.ones((4, 2)),
                            "observable_names": ["p", "q"], "benchmark_names": ["b0", "b1"], "space": make_space()}
    args.update(changes)
    x, w = args.pop("x"), args.pop("weights")
    with pytest.raises(exc, match=pattern):
        EventSet(x, w, **args)


def test_morphing_setup_validation(truth: Truth) -> None:
    space = make_space()
    names = list(BASIS) + list(EXTRA)
    w = truth.weights(np.array([space.benchmark(b) for b in names]))
    common: dict[str, Any] = {"observable_names": ["a", "b", "c"], "benchmark_names": names, "space": space}
    morpher = Morpher.from_space(space, max_overall_power=2)
    with pytest.raises(ValueError, match=r"morphing_basis \['zz'\] are not among benchmark_names"):
        EventSet(truth.x, w, morpher=morpher, morphing_basis=[*list(BASIS)[:5], "zz"], **common)
    with pytest.raises(ValueError, match="morphing_basis has duplicates"):
        EventSet(truth.x, w, morpher=morpher, morphing_basis=[*list(BASIS)[:5], "b0"], **common)
    with pytest.raises(ValueError, match="morpher has no basis"):
        EventSet(truth.x, w, morpher=morpher, **common)
    # four points on the g1 axis and two on the g2 axis: nothing fixes the g1 g2 component
    line_space = make_space().add_benchmark("d", (2.0, 0.0))
    line_names = ["b0", "b1", "b2", "b3", "b4", "d"]
    w_line = truth.weights(np.array([line_space.benchmark(b) for b in line_names]))
    with pytest.raises(ValueError, match="degenerate"):
        EventSet(truth.x, w_line, observable_names=["a", "b", "c"], benchmark_names=line_names, space=line_space,
                 morpher=morpher, morphing_basis=line_names)
    built = EventSet(truth.x, w, morpher=morpher, morphing_basis=list(BASIS), **common)
    assert built.morpher is not morpher and built.morpher.basis is not None
    assert morpher.basis is None, "the caller's morpher must not be modified"

    # a morpher with a basis: benchmarks are matched by value, in the order of the basis
    order = ["b3", "b0", "b5", "b1", "b4", "b2"]
    with_basis = Morpher.from_space(space, 2).set_basis(np.array([BASIS[b] for b in order]))
    ev = EventSet(truth.x, w, morpher=with_basis, **common)
    assert ev.morphing_basis == order
    ev2 = EventSet(truth.x, w, morpher=with_basis, morphing_basis=order, **common)
    thetas = np.random.default_rng(0).uniform(-2, 2, size=(5, 2))
    np.testing.assert_allclose(ev.weights_at(thetas), ev2.weights_at(thetas), rtol=1e-13)
    with pytest.raises(ValueError, match="does not match morpher.basis"):
        EventSet(truth.x, w, morpher=with_basis, morphing_basis=list(BASIS), **common)
    off = Morpher.from_space(space, 2).set_basis(np.array([*[BASIS[b] for b in order[:5]], (0.3, 0.3)]))
    with pytest.raises(ValueError, match=r"morpher basis point \[0.3, 0.3\] is not one of the benchmarks"):
        EventSet(truth.x, w, morpher=off, **common)


# -- morphing: weights, cross sections, gradients ---------------------------------------------------------
def test_weights_at_equal_quadratic_truth(events: EventSet, truth: Truth) -> None:
    thetas = np.random.default_rng(11).uniform(-2.5, 2.5, size=(40, 2))
    w = events.weights_at(thetas)
    assert w.shape == (300, 40) and w.dtype == np.float64
    np.testing.assert_allclose(w, truth.weights(thetas), rtol=1e-10, atol=0)
    xs = events.cross_section(thetas)
    assert xs.shape == (40,)
    np.testing.assert_allclose(xs, truth.weights(thetas).sum(axis=0), rtol=1e-10, atol=0)
    # the validation benchmarks outside the basis are reproduced by morphing the basis columns
    for name in EXTRA:
        np.testing.assert_allclose(events.weights_at(np.array(EXTRA[name])), events.weights[:, events.benchmark_index(
            name)], rtol=1e-10)


def test_single_versus_batched_theta_shapes(events: EventSet, truth: Truth) -> None:
    theta = np.array([0.4, -1.1])
    single = events.weights_at(theta)
    assert single.shape == (300,)
    batched = events.weights_at(theta[None, :])
    assert batched.shape == (300, 1)
    np.testing.assert_array_equal(single, batched[:, 0])
    assert events.weights_at([theta, theta]).shape == (300, 2)
    np.testing.assert_allclose(events.weights_at({"g1": 0.4, "g2": -1.1}), single, rtol=1e-14)
    np.testing.assert_allclose(events.weights_at("v1"), truth.weights(np.array(EXTRA["v1"]))[:, 0], rtol=1e-10)
    listed = events.weights_at(["v1", {"g1": 0.4, "g2": -1.1}, "b0"])
    assert listed.shape == (300, 3)
    np.testing.assert_allclose(listed, truth.weights(np.array([EXTRA["v1"], theta, BASIS["b0"]])), rtol=1e-10)
    np.testing.assert_allclose(events.cross_section(["b2", "b5"]), events.weights[:, [2, 5]].sum(axis=0), rtol=1e-12)
    with pytest.raises(ValueError, match="theta must be numeric"):
        events.weights_at(["v1", 0.3])
    with pytest.raises(KeyError, match="unknown benchmark 'nope'"):
        events.weights_at(["nope"])
    xs = events.cross_section(theta)
    assert isinstance(xs, float)
    assert np.isclose(xs, single.sum(), rtol=1e-14)
    assert events.cross_section(theta[None, :]).shape == (1,)
    assert events.weight_gradients_at(theta).shape == (300, 2)
    assert events.weight_gradients_at(theta[None, :]).shape == (300, 1, 2)
    assert events.weight_gradients_at(np.zeros((4, 2))).shape == (300, 4, 2)
    assert events.cross_section_gradient(theta).shape == (2,)
    assert events.cross_section_gradient(np.zeros((4, 2))).shape == (4, 2)
    for bad in ([1.0, 2.0, 3.0], np.zeros((2, 3)), np.zeros((2, 2, 2))):
        with pytest.raises(ValueError, match=r"theta must have shape \(2,\) or \(n_theta, 2\)"):
            events.weights_at(bad)
    with pytest.raises(ValueError, match="theta must be finite"):
        events.cross_section([np.nan, 0.0])
    with pytest.raises(ValueError, match="unknown parameters"):
        events.weights_at({"g3": 1.0})


def test_weight_gradients_match_truth_and_finite_differences(events: EventSet, truth: Truth) -> None:
    thetas = np.random.default_rng(12).uniform(-2, 2, size=(7, 2))
    g = events.weight_gradients_at(thetas)
    assert g.shape == (300, 7, 2)
    np.testing.assert_allclose(g, truth.gradients(thetas), rtol=1e-8, atol=1e-12)
    h = 1e-5
    for i in range(2):
        step = np.zeros(2)
        step[i] = h
        fd = (events.weights_at(thetas + step) - events.weights_at(thetas - step)) / (2 * h)
        np.testing.assert_allclose(g[:, :, i], fd, rtol=1e-6, atol=1e-10)
        fd_xs = (events.cross_section(thetas + step) - events.cross_section(thetas - step)) / (2 * h)
        np.testing.assert_allclose(events.cross_section_gradient(thetas)[:, i], fd_xs, rtol=1e-7)


def test_without_morpher_only_benchmarks_are_known(truth: Truth) -> None:
    ev = make_events(300, seed=3, truth=truth, morphing=False)
    assert ev.morpher is None and ev.morphing_basis is None
    np.testing.assert_array_equal(ev.weights_at("v2"), ev.weights[:, 7])
    np.testing.assert_array_equal(ev.weights_at(np.array([EXTRA["v1"], BASIS["b0"]])), ev.weights[:, [6, 0]])
    with pytest.raises(ValueError, match=r"no morpher.*theta=\[0.1, 0.2\] is none of them"):
        ev.weights_at([0.1, 0.2])
    with pytest.raises(ValueError, match="weight gradients need morphing"):
        ev.weight_gradients_at([0.0, 0.0])


def test_nuisance_factors_follow_eq19(nu_events: EventSet) -> None:
    ev = nu_events
    a, b = ev.nuisance_a, ev.nuisance_b
    nu = np.array([0.8, -1.3])
    f = ev.nuisance_factors(nu)
    assert f.shape == (ev.n_events, 2)
    np.testing.assert_allclose(f, np.exp(a * nu + b * nu**2), rtol=1e-14)
    nus = np.random.default_rng(4).normal(size=(5, 2))
    fb = ev.nuisance_factors(nus)
    assert fb.shape == (ev.n_events, 5, 2)
    np.testing.assert_allclose(fb, np.exp(a[:, None, :] * nus[None] + b[:, None, :] * nus[None] ** 2), rtol=1e-14)
    total = ev.total_nuisance_factor(nus)
    assert total.shape == (ev.n_events, 5)
    np.testing.assert_allclose(total, fb.prod(axis=2), rtol=1e-13)
    np.testing.assert_allclose(ev.nuisance_factors(np.zeros(2)), 1.0, rtol=0)
    # d log(factor) / d nu against finite differences
    h = 1e-6
    grad = ev.log_nuisance_factor_gradients(nu)
    for k in range(2):
        step = np.zeros(2)
        step[k] = h
        fd = (np.log(ev.total_nuisance_factor(nu + step)) - np.log(ev.total_nuisance_factor(nu - step))) / (2 * h)
        np.testing.assert_allclose(grad[:, k], fd, rtol=1e-6, atol=1e-8)

    # weights and cross sections with nuisance parameters
    theta = np.array([0.3, -0.6])
    w0 = ev.weights_at(theta)
    np.testing.assert_allclose(ev.weights_at(theta, nu), w0 * np.exp((a * nu + b * nu**2).sum(axis=1)), rtol=1e-13)
    thetas = np.array([[0.3, -0.6], [1.0, 1.0], [-0.5, 0.2], [0.0, 0.0], [1.2, -1.5]])
    paired = ev.weights_at(thetas, nus)  # row k of nu goes with row k of theta
    assert paired.shape == (ev.n_events, 5)
    np.testing.assert_allclose(paired, ev.weights_at(thetas) * total, rtol=1e-13)
    np.testing.assert_allclose(ev.cross_section(thetas, nu), (ev.weights_at(thetas) * ev.total_nuisance_factor(
        nu)[:, None]).sum(axis=0), rtol=1e-13)
    np.testing.assert_allclose(ev.weight_gradients_at(thetas, nus),
                               ev.weight_gradients_at(thetas) * total[:, :, None], rtol=1e-13)
    with pytest.raises(ValueError, match="nu has 5 rows but theta 2"):
        ev.weights_at(thetas[:2], nus)
    with pytest.raises(ValueError, match=r"nu must have shape \(2,\) or \(n_nu, 2\)"):
        ev.nuisance_factors([0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="nu must be finite"):
        ev.nuisance_factors([np.inf, 0.0])


def test_nuisance_methods_need_coefficients(events: EventSet) -> None:
    for method in (events.nuisance_factors, events.total_nuisance_factor, events.log_nuisance_factor_gradients):
        with pytest.raises(ValueError, match="no nuisance parameters"):
            method(np.zeros(1))


def test_effective_sample_size() -> None:
    space = make_space()
    w = np.array([[1.0, 1.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    ev = EventSet(np.zeros((4, 1)), w, observable_names=["p"], benchmark_names=["b0", "b1"], space=space)
    np.testing.assert_allclose(ev.effective_sample_size(), [4.0, 1.0])
    assert ev.effective_sample_size("b0") == pytest.approx(4.0)
    zero = EventSet(np.zeros((2, 1)), np.zeros((2, 1)), observable_names=["p"], benchmark_names=["b0"], space=space)
    np.testing.assert_array_equal(zero.effective_sample_size(), [0.0])


# -- skminer HDF5 files ------------------------------------------------------------------------------------
@pytest.mark.parametrize("compression", ["gzip", "lzf", None])
def test_save_load_round_trip(nu_events: EventSet, tmp_path: Path, compression: str | None) -> None:
    path = tmp_path / "events.h5"
    out = nu_events.save(path, compression=compression)
    assert out == path and path.is_file()
    loaded = EventSet.load(path)
    assert_same_events(loaded, nu_events)
    assert loaded.metadata == nu_events.metadata == {"generator": "synthetic", "seed": 5, "tags": ["x", 1.5]}
    assert loaded.observable_definitions == ["j[0].pt", None, "met.pt / 2"]
    assert loaded.space.nuisance_parameters == nu_events.space.nuisance_parameters
    thetas = np.random.default_rng(0).uniform(-2, 2, size=(4, 2))
    np.testing.assert_array_equal(loaded.weights_at(thetas, [0.5, -0.5]), nu_events.weights_at(thetas, [0.5, -0.5]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.h5"]
    with h5py.File(path, "r") as f:
        assert int(f.attrs["skminer_format"]) == FORMAT_VERSION
        assert f["weights"].dtype == np.float64


def test_save_load_without_morpher_and_empty(tmp_path: Path, truth: Truth) -> None:
    ev = make_events(300, seed=3, truth=truth, morphing=False)
    path = ev.save(tmp_path / "plain.h5")
    assert_same_events(EventSet.load(path), ev)
    empty = ev[np.zeros(300, dtype=bool)]
    assert len(empty) == 0
    loaded = EventSet.load(empty.save(tmp_path / "empty.h5"))
    assert loaded.n_events == 0 and loaded.weights.shape == (0, 8)
    with pytest.raises(ValueError, match="compression must be"):
        ev.save(tmp_path / "x.h5", compression="zstd")


def test_failing_save_keeps_existing_file_and_leaves_no_temp_file(events: EventSet, nu_events: EventSet,
                                                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                  ) -> None:
    path = tmp_path / "events.h5"
    events.save(path)
    before = path.read_bytes()
    calls = []
    real_write = events_h5.write_array

    def failing_write(f: h5py.File, name: str, data: np.ndarray, compression: str | None) -> None:
        calls.append(name)
        if name == "weights":  # fail midway, after x was written to the temporary file
            raise OSError("disk full (simulated)")
        real_write(f, name, data, compression)

    monkeypatch.setattr(events_h5, "write_array", failing_write)
    with pytest.raises(OSError, match="disk full"):
        nu_events.save(path)
    assert calls == ["x", "weights"]
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.h5"]
    assert_same_events(EventSet.load(path), events)
    # a new file is not created either
    with pytest.raises(OSError, match="disk full"):
        nu_events.save(tmp_path / "new.h5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.h5"]
    # a KeyboardInterrupt while writing also cleans up
    monkeypatch.setattr(events_h5, "write_array", lambda *args: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        nu_events.save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.h5"]


def test_failing_madminer_write_is_atomic(events: EventSet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = events.to_madminer(tmp_path / "mm.h5")
    before = path.read_bytes()
    real_create = h5py.Group.create_dataset

    def failing_create(self: h5py.Group, name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "samples/weights":
            raise OSError("quota exceeded (simulated)")
        return real_create(self, name, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", failing_create)
    with pytest.raises(OSError, match="quota exceeded"):
        make_events(10, seed=4).to_madminer(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mm.h5"]
    assert EventSet.from_madminer(path).n_events == events.n_events


def test_saved_file_permissions_follow_umask(events: EventSet, tmp_path: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    mode = events.save(tmp_path / "perm.h5").stat().st_mode & 0o777
    assert mode == 0o666 & ~umask  # like open(); not the 0o600 of a plain temporary file


def test_save_to_bad_targets(events: EventSet, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing_dir"):
        events.save(tmp_path / "missing_dir" / "e.h5")
    with pytest.raises(IsADirectoryError, match=str(tmp_path)):
        events.save(tmp_path)


def test_load_errors_name_the_path(events: EventSet, tmp_path: Path, shared_data: Path) -> None:
    missing = tmp_path / "missing.h5"
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        EventSet.load(missing)

    text = tmp_path / "notes.h5"
    text.write_text("this is not HDF5\n" * 100)
    with pytest.raises(ValueError, match=r"notes\.h5: not a readable HDF5 file"):
        EventSet.load(text)

    good = events.save(tmp_path / "good.h5", compression=None)
    data = good.read_bytes()
    # corrupt the compressed weights (the file opens, but the data cannot be decompressed)
    packed = events.save(tmp_path / "packed.h5")
    with h5py.File(packed, "r") as f:
        chunk = f["weights"].id.get_chunk_info(0)
    raw = bytearray(packed.read_bytes())
    raw[chunk.byte_offset + 50: chunk.byte_offset + 250] = bytes(200)
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"corrupt\.h5: cannot read the event file, it may be corrupt"):
        EventSet.load(corrupt)
    for frac, label in ((0.5, "half"), (0.9, "most"), (0.02, "head")):
        cut = tmp_path / f"truncated_{label}.h5"
        cut.write_bytes(data[: int(len(data) * frac)])
        with pytest.raises(ValueError, match=rf"truncated_{label}\.h5"):
            EventSet.load(cut)

    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("x", data=np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"other\.h5: not a skminer event file \(missing attribute 'skminer_format'\)"):
        EventSet.load(other)

    with pytest.raises(ValueError, match=r"madminer_example_with_data_1\.h5.*use EventSet\.from_madminer"):
        EventSet.load(shared_data / MADMINER_FILE)

    def edited(name: str, edit: Any) -> Path:
        p = tmp_path / name
        shutil.copy(good, p)
        with h5py.File(p, "r+") as f:
            edit(f)
        return p

    newer = edited("newer.h5", lambda f: f.attrs.__setitem__("skminer_format", FORMAT_VERSION + 1))
    with pytest.raises(ValueError, match=r"newer\.h5: skminer_format 2 is newer"):
        EventSet.load(newer)
    no_weights = edited("no_weights.h5", lambda f: f.__delitem__("weights"))
    with pytest.raises(ValueError, match=r"no_weights\.h5: missing field 'weights'"):
        EventSet.load(no_weights)

    def set_setup(text: str) -> Any:
        def edit(f: h5py.File) -> None:
            del f["setup"]
            f.create_dataset("setup", data=text, dtype=h5py.string_dtype())
        return edit

    with pytest.raises(ValueError, match=r"bad_json\.h5: field 'setup' is not valid JSON"):
        EventSet.load(edited("bad_json.h5", set_setup("{not json")))
    setup = json.loads(good_setup(good))
    del setup["benchmark_names"]
    with pytest.raises(ValueError, match=r"no_names\.h5: field 'setup' lacks entry 'benchmark_names'"):
        EventSet.load(edited("no_names.h5", set_setup(json.dumps(setup))))
    with pytest.raises(ValueError, match=r"setup_list\.h5: .*setup"):
        EventSet.load(edited("setup_list.h5", set_setup("[1, 2]")))
    bad_shape = edited("bad_shape.h5", lambda f: (f.__delitem__("weights"), f.create_dataset("weights",
                                                                                             data=np.ones((3, 8)))))
    with pytest.raises(ValueError, match=r"bad_shape\.h5: the datasets disagree on the number of events: "
                                         r"\{'x': 300, 'weights': 3, 'sampling_benchmark': 300\}"):
        EventSet.load(bad_shape)


def good_setup(path: Path) -> str:
    with h5py.File(path, "r") as f:
        raw = f["setup"][()]
    return raw.decode() if isinstance(raw, bytes) else str(raw)


# -- MadMiner files ----------------------------------------------------------------------------------------
def test_from_madminer_reads_the_example_file(shared_data: Path) -> None:
    path = shared_data / MADMINER_FILE
    ev = EventSet.from_madminer(path)
    with h5py.File(path, "r") as f:
        stored_w = f["samples/weights"][()]
        stored_x = f["samples/observations"][()]
        stored_matrix = f["morphing/morphing_matrix"][()]
        values = f["benchmarks/values"][()]
    assert ev.n_events == 926 == stored_w.shape[0]
    assert ev.space.parameter_names == ["CWL2", "CPWL2"]
    assert [p.lha_block for p in ev.space.parameters] == ["dim6", "dim6"]
    assert [p.lha_id for p in ev.space.parameters] == [2, 5]
    assert [p.max_power for p in ev.space.parameters] == [2, 2]
    np.testing.assert_array_equal(ev.space.ranges, [[-10.0, 10.0], [-10.0, 10.0]])
    assert ev.benchmark_names == MADMINER_BENCHMARKS
    np.testing.assert_array_equal(ev.benchmark_values, values)
    assert ev.observable_names == ["pt_j1", "delta_phi_jj"]
    assert ev.observable_definitions[0] == "j[0].pt"
    np.testing.assert_array_equal(ev.x, stored_x)
    np.testing.assert_array_equal(ev.weights, stored_w)
    assert ev.metadata["madminer_parameter_transforms"] == ["16.52*theta", "16.52*theta"]
    assert ev.metadata["madminer_reference_benchmark"] == "sm"
    assert ev.morphing_basis == MADMINER_BENCHMARKS
    np.testing.assert_allclose(ev.morpher.matrix, stored_matrix, rtol=1e-10, atol=1e-14)
    assert ev.nuisance_a is None

    # morphing reproduces every stored benchmark column, and cross sections are the column sums
    morphed = ev.weights_at(values)
    np.testing.assert_allclose(morphed, stored_w, rtol=1e-9, atol=1e-12 * np.abs(stored_w).max())
    np.testing.assert_allclose(ev.cross_section(values), stored_w.sum(axis=0), rtol=1e-10)
    np.testing.assert_allclose(ev.cross_section("w"), stored_w[:, 1].sum(), rtol=1e-12)
    # the cross section is a quadratic in theta: its values along a line obey third finite differences = 0
    line = np.array([[-6.0, 3.0]]) + np.arange(5)[:, None] * np.array([[2.5, -1.0]])
    xs = ev.cross_section(line)
    assert np.all(xs > 0)
    assert abs(np.diff(xs, n=3)).max() < 1e-9 * xs.max()
    # the cross-section gradient matches finite differences of the cross section
    h = 1e-4
    theta = np.array([3.0, -2.0])
    fd = [(ev.cross_section(theta + h * e) - ev.cross_section(theta - h * e)) / (2 * h) for e in np.eye(2)]
    np.testing.assert_allclose(ev.cross_section_gradient(theta), fd, rtol=1e-6)


def test_madminer_round_trip_of_the_example_file(shared_data: Path, tmp_path: Path) -> None:
    ev = EventSet.from_madminer(shared_data / MADMINER_FILE)
    out = ev.to_madminer(tmp_path / "mm.h5")
    back = EventSet.from_madminer(out)
    assert_same_events(back, ev)
    assert back.observable_definitions == ev.observable_definitions
    assert back.metadata["madminer_parameter_transforms"] == ["16.52*theta", "16.52*theta"]
    with h5py.File(out, "r") as f:
        assert [s.decode() for s in f["benchmarks/names"][()]] == MADMINER_BENCHMARKS
        np.testing.assert_allclose(f["morphing/morphing_matrix"][()], ev.morpher.matrix, rtol=1e-14)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mm.h5"]


def test_madminer_round_trip_with_nuisance_and_sampling(nu_events: EventSet, tmp_path: Path) -> None:
    path = nu_events.to_madminer(tmp_path / "synthetic_mm.h5")
    with h5py.File(path, "r") as f:
        names = [s.decode() for s in f["benchmarks/names"][()]]
        assert names == nu_events.benchmark_names + ["mu_up", "mu_down", "pdf_1_up"]
        np.testing.assert_array_equal(f["benchmarks/is_nuisance"][()], [0] * 8 + [1] * 3)
        matrix = f["morphing/morphing_matrix"][()]
        assert matrix.shape == (6, 8)
        np.testing.assert_array_equal(matrix[:, 6:], 0.0)  # validation benchmarks are not in the basis
        np.testing.assert_array_equal(f["sample_summary/signal_events"][()],
                                      np.bincount(nu_events.sampling_benchmark[nu_events.sampling_benchmark >= 0],
                                                  minlength=8))
    back = EventSet.from_madminer(path)
    assert_same_events(back, nu_events, rtol=1e-12)
    thetas = np.random.default_rng(2).uniform(-2, 2, size=(3, 2))
    np.testing.assert_allclose(back.cross_section(thetas, [0.7, -0.4]), nu_events.cross_section(thetas, [0.7, -0.4]),
                               rtol=1e-12)
    without = EventSet.from_madminer(path, include_nuisance=False)
    assert without.nuisance_a is None and without.benchmark_names == nu_events.benchmark_names
    assert back.metadata["madminer_parameter_transforms"] == [None, None]
    assert back.metadata["madminer_reference_benchmark"] == "b0"


def test_madminer_round_trip_keeps_nuisance_kinds(truth: Truth, tmp_path: Path) -> None:
    base = make_events(300, seed=3, truth=truth)
    space = make_space().add_nuisance("lumi", kind="norm", size=0.05).add_nuisance("pdf_7", kind="pdf", up="p7")
    a = np.column_stack([np.full(300, np.log(1.05)), np.random.default_rng(1).normal(0, 0.1, size=300)])
    ev = base._replace(space=space, nuisance_names=["lumi", "pdf_7"], nuisance_a=a, nuisance_b=None)
    back = EventSet.from_madminer(ev.to_madminer(tmp_path / "kinds.h5"))
    assert [(n.name, n.kind, n.size, n.down) for n in back.space.nuisance_parameters] == [
        ("lumi", "norm", 0.05, None), ("pdf_7", "pdf", None, None)]
    assert [n.up for n in back.space.nuisance_parameters] == ["lumi_up", "p7"]  # MadMiner needs a benchmark name
    np.testing.assert_allclose(back.nuisance_a, a, rtol=1e-12)
    np.testing.assert_array_equal(back.nuisance_b, 0.0)
    np.testing.assert_allclose(back.total_nuisance_factor([1.0, 0.0]), 1.05, rtol=1e-12)


def test_madminer_sampling_factors_follow_madminer(tmp_path: Path, truth: Truth) -> None:
    """Events generated at benchmark b are weighted by n_b / sum n_b when read (background: factor 1)."""
    ev = make_events(300, seed=3, truth=truth)
    sampling = np.repeat([0, 1, -1], [150, 100, 50])
    path = ev.to_madminer(tmp_path / "mixed.h5")
    with h5py.File(path, "r+") as f:
        f["samples/sampling_benchmarks"][...] = sampling
        del f["sample_summary/signal_events"]
        f.create_dataset("sample_summary/signal_events", data=np.array([150, 100, 0, 0, 0, 0, 0, 0]))
    read = EventSet.from_madminer(path)
    factor = np.repeat([150 / 250, 100 / 250, 1.0], [150, 100, 50])
    np.testing.assert_allclose(read.weights, ev.weights * factor[:, None], rtol=1e-14)
    np.testing.assert_array_equal(read.sampling_benchmark, sampling)


def test_one_parameter_without_lha_information(tmp_path: Path) -> None:
    """A scalar theta for one parameter, and a MadMiner round trip of a space without LHA block / id."""
    space = ParameterSpace().add_parameter("k", max_power=2, range=(-3.0, 3.0))
    for name, value in {"m1": -1.0, "zero": 0.0, "p2": 2.0, "p1": 1.0}.items():
        space.add_benchmark(name, [value])
    rng = np.random.default_rng(8)
    coeff = rng.normal(size=(50, 3))
    points = space.benchmark_values  # (4, 1)
    weights = coeff @ np.column_stack([np.ones(4), points[:, 0], points[:, 0] ** 2]).T
    ev = EventSet(rng.normal(size=(50, 1)), weights, observable_names=["o"], benchmark_names=space.benchmark_names,
                  space=space, morpher=Morpher.from_space(space), morphing_basis=["m1", "zero", "p2"])
    w = ev.weights_at(1.7)
    assert w.shape == (50,)
    np.testing.assert_allclose(w, coeff @ [1.0, 1.7, 1.7**2], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ev.weights_at("p1"), weights[:, 3], rtol=1e-10, atol=1e-12)  # negative weights too
    assert ev.weights_at([[1.7], [0.2]]).shape == (50, 2)
    assert ev.weight_gradients_at(1.7).shape == (50, 1)
    np.testing.assert_allclose(ev.weight_gradients_at(1.7)[:, 0], coeff @ [0.0, 1.0, 3.4], rtol=1e-9, atol=1e-12)
    back = EventSet.from_madminer(ev.to_madminer(tmp_path / "one.h5"))
    assert back.space.parameters[0].lha_block is None and back.space.parameters[0].lha_id is None
    assert_same_events(back, ev)


def test_from_madminer_errors_name_the_path(events: EventSet, tmp_path: Path) -> None:
    skm = events.save(tmp_path / "skminer_file.h5")
    with pytest.raises(ValueError, match=r"skminer_file\.h5: missing field 'parameters/names'"):
        EventSet.from_madminer(skm)
    with pytest.raises(FileNotFoundError, match="nothing.h5"):
        EventSet.from_madminer(tmp_path / "nothing.h5")
    path = events.to_madminer(tmp_path / "broken.h5")
    with h5py.File(path, "r+") as f:
        del f["samples/weights"]
        f.create_dataset("samples/weights", data=np.ones((300, 3)))
    with pytest.raises(ValueError, match=r"broken\.h5: samples/weights has shape \(300, 3\)"):
        EventSet.from_madminer(path)
    with h5py.File(path, "r+") as f:
        del f["samples/weights"]
        f.create_dataset("samples/weights", data=events.weights)
        f["samples/observations"][3, 1] = np.nan
    with pytest.raises(ValueError, match=r"broken\.h5: invalid MadMiner file: x contains 1 non-finite values"):
        EventSet.from_madminer(path)
    data = path.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut\.h5: not a readable HDF5 file"):
        EventSet.from_madminer(cut)


# -- subsets, shuffle, combine, split ----------------------------------------------------------------------
def test_getitem_apply_cuts_select_observables(nu_events: EventSet) -> None:
    ev = nu_events
    one = ev[3]
    assert len(one) == 1
    np.testing.assert_array_equal(one.x, ev.x[3:4])
    np.testing.assert_array_equal(ev[-1].weights, ev.weights[-1:])
    np.testing.assert_array_equal(ev[-2].x, ev.x[-2:-1])
    np.testing.assert_array_equal(ev[np.int64(5)].x, ev.x[5:6])
    sl = ev[10:20:2]
    np.testing.assert_array_equal(sl.weights, ev.weights[10:20:2])
    np.testing.assert_array_equal(sl.nuisance_a, ev.nuisance_a[10:20:2])
    np.testing.assert_array_equal(sl.sampling_benchmark, ev.sampling_benchmark[10:20:2])
    idx = np.array([7, 2, 2, 40])
    fancy = ev[idx]
    np.testing.assert_array_equal(fancy.x, ev.x[idx])
    np.testing.assert_array_equal(fancy.nuisance_b, ev.nuisance_b[idx])
    np.testing.assert_array_equal(ev[[1, 0]].x, ev.x[[1, 0]])
    assert len(ev[[]]) == 0
    mask = ev.x[:, 0] > 0
    cut = ev.apply_cuts(mask)
    np.testing.assert_array_equal(cut.x, ev.x[mask])
    np.testing.assert_array_equal(cut.sampling_benchmark, ev.sampling_benchmark[mask])
    np.testing.assert_array_equal(ev[mask].weights, cut.weights)
    # weights are not rescaled, so the cross sections shrink to the sum over the kept events
    theta = np.array([0.5, 0.5])
    assert cut.cross_section(theta) == pytest.approx(ev.weights_at(theta)[mask].sum(), rel=1e-13)
    assert cut.space is ev.space and cut.morphing_basis == ev.morphing_basis
    assert cut.metadata == ev.metadata
    for bad_index, exc in (((0, 1), TypeError), (ev.n_events, IndexError), (-ev.n_events - 1, IndexError),
                           (np.ones(3, dtype=bool), IndexError), (np.array([0.5]), IndexError)):
        with pytest.raises(exc):
            ev[bad_index]
    with pytest.raises(ValueError, match=r"mask must be a boolean array of shape \(150,\)"):
        ev.apply_cuts(np.arange(150))
    with pytest.raises(ValueError, match="mask must be a boolean"):
        ev.apply_cuts(mask[:-1])

    sel = ev.select_observables(["c", "a"])
    assert sel.observable_names == ["c", "a"]
    assert sel.observable_definitions == ["met.pt / 2", "j[0].pt"]
    np.testing.assert_array_equal(sel.x, ev.x[:, [2, 0]])
    np.testing.assert_array_equal(sel.weights, ev.weights)
    np.testing.assert_array_equal(ev.select_observables("b").x, ev.x[:, [1]])
    np.testing.assert_array_equal(ev.select_observables([-1, 0]).x, ev.x[:, [2, 0]])
    with pytest.raises(KeyError, match="unknown observable 'zz'"):
        ev.select_observables(["zz"])
    with pytest.raises(KeyError, match="neither a name nor a column index"):
        ev.select_observables([3])
    with pytest.raises(ValueError, match="observables selected twice"):
        ev.select_observables(["a", 0])


def test_shuffle_is_a_reproducible_permutation(nu_events: EventSet) -> None:
    ev = nu_events
    s1 = ev.shuffle(random_state=42)
    s2 = ev.shuffle(random_state=42)
    s3 = ev.shuffle(random_state=43)
    assert_same_events(s1, s2)
    perm = rows_of(s1, ev)
    np.testing.assert_array_equal(np.sort(perm), np.arange(ev.n_events))
    assert not np.array_equal(perm, np.arange(ev.n_events))
    assert not np.array_equal(rows_of(s3, ev), perm)
    np.testing.assert_array_equal(s1.weights, ev.weights[perm])
    np.testing.assert_array_equal(s1.nuisance_a, ev.nuisance_a[perm])
    np.testing.assert_array_equal(s1.sampling_benchmark, ev.sampling_benchmark[perm])
    np.testing.assert_allclose(s1.cross_section(np.zeros((2, 2))), ev.cross_section(np.zeros((2, 2))), rtol=1e-13)
    gen = ev.shuffle(random_state=np.random.default_rng(42))
    assert_same_events(gen, s1)  # an int seed and a Generator with the same seed agree
    legacy = ev.shuffle(random_state=np.random.RandomState(0))
    np.testing.assert_array_equal(np.sort(rows_of(legacy, ev)), np.arange(ev.n_events))


def test_combine_sum_and_average(nu_events: EventSet) -> None:
    first, second = nu_events[:100], nu_events[100:]
    summed = EventSet.combine([first, second])
    assert_same_events(summed, nu_events)
    thetas = np.array([[0.2, -0.3], [1.0, 1.0]])
    doubled = EventSet.combine([nu_events, nu_events], mode="sum")
    np.testing.assert_allclose(doubled.cross_section(thetas), 2 * nu_events.cross_section(thetas), rtol=1e-13)
    # "average": two independent samples of the same process; cross section = event-weighted average
    other = make_events(60, seed=9, nuisance=True, sampling=True)
    avg = EventSet.combine([nu_events, other], mode="average")
    assert len(avg) == 210
    expected = (150 * nu_events.cross_section(thetas) + 60 * other.cross_section(thetas)) / 210
    np.testing.assert_allclose(avg.cross_section(thetas), expected, rtol=1e-13)
    np.testing.assert_array_equal(avg.nuisance_a, np.concatenate([nu_events.nuisance_a, other.nuisance_a]))
    same = EventSet.combine([nu_events, nu_events], mode="average")
    np.testing.assert_allclose(same.cross_section(thetas), nu_events.cross_section(thetas), rtol=1e-13)
    assert EventSet.combine([nu_events]).n_events == 150
    # no nuisance parameters, given as an empty (n, 0) array in one set and as None in the other
    empty_nu = first._replace(nuisance_names=[], nuisance_a=np.zeros((100, 0)), nuisance_b=None)
    no_nu = second._replace(nuisance_names=[], nuisance_a=None, nuisance_b=None)
    joined = EventSet.combine([empty_nu, no_nu])
    assert joined.n_events == 150 and joined.n_nuisance == 0
    np.testing.assert_array_equal(joined.weights, nu_events.weights)

    with pytest.raises(ValueError, match="mode must be 'sum' or 'average'"):
        EventSet.combine([first, second], mode="mean")
    with pytest.raises(ValueError, match="at least one EventSet"):
        EventSet.combine([])
    with pytest.raises(TypeError, match=r"event_sets\[1\] is a ndarray"):
        EventSet.combine([first, np.zeros(3)])
    with pytest.raises(ValueError, match=r"event_sets\[1\]\.observable_names"):
        EventSet.combine([first, second.select_observables(["b", "a", "c"])])
    plain = make_events(20, seed=1)
    with pytest.raises(ValueError, match=r"event_sets\[1\]\.nuisance_names"):
        EventSet.combine([first, plain])
    with pytest.raises(ValueError, match=r"event_sets\[1\]\.morphing_basis = None differs"):
        EventSet.combine([plain, make_events(20, seed=2, morphing=False)])


def test_train_test_split_sizes_disjoint_and_rescaled(nu_events: EventSet) -> None:
    ev = nu_events
    train, test = ev.train_test_split(test_fraction=0.25, random_state=7)
    assert len(train) + len(test) == len(ev)
    i_train, i_test = rows_of(train, ev), rows_of(test, ev)
    assert np.intersect1d(i_train, i_test).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([i_train, i_test])), np.arange(len(ev)))
    # stratified: every sampling benchmark group is split with the same fraction and rescaled by n_g / n_part
    for g in np.unique(ev.sampling_benchmark):
        n_g = int(np.sum(ev.sampling_benchmark == g))
        n_test = int(np.sum(test.sampling_benchmark == g))
        assert n_test == min(max(round(0.25 * n_g), 1), n_g - 1)
        for part, idx, n_part in ((train, i_train, n_g - n_test), (test, i_test, n_test)):
            sel = part.sampling_benchmark == g
            np.testing.assert_allclose(part.weights[sel], ev.weights[idx[sel]] * (n_g / n_part), rtol=1e-14)
            np.testing.assert_array_equal(part.nuisance_a[sel], ev.nuisance_a[idx[sel]])
    # the morphing relation between the benchmark columns is untouched by the rescaling
    np.testing.assert_allclose(test.weights_at("v1"), test.weights[:, 6], rtol=1e-9)
    # reproducible; another seed gives another split
    train2, test2 = ev.train_test_split(test_fraction=0.25, random_state=7)
    assert_same_events(train2, train)
    assert_same_events(test2, test)
    _, test3 = ev.train_test_split(test_fraction=0.25, random_state=8)
    assert not np.array_equal(np.sort(rows_of(test3, ev)), np.sort(i_test))

    plain_train, plain_test = ev.train_test_split(test_fraction=0.3, random_state=1, stratify=False)
    assert len(plain_test) == 45 and len(plain_train) == 105
    np.testing.assert_allclose(plain_test.weights, ev.weights[rows_of(plain_test, ev)] * (150 / 45), rtol=1e-14)
    for bad in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="test_fraction must be in"):
            ev.train_test_split(test_fraction=bad)
    tiny = ev[np.flatnonzero(ev.sampling_benchmark == 6)[:1].tolist() + np.flatnonzero(ev.sampling_benchmark == 0)
              [:5].tolist()]
    with pytest.raises(ValueError, match=r"sampling benchmark 'v1': 1 event\(s\).*stratify=False"):
        tiny.train_test_split(0.5, random_state=0)
    tr, te = tiny.train_test_split(0.5, random_state=0, stratify=False)
    assert len(tr) == len(te) == 3
    for few in (ev[:1], ev[:0]):
        with pytest.raises(ValueError, match=r"cannot split [01] event\(s\)"):
            few.train_test_split(0.5, stratify=False)


@pytest.mark.parametrize("stratify", [False, True])
def test_train_test_split_preserves_cross_sections_in_expectation(stratify: bool) -> None:
    ev = make_events(40, seed=21, sampling=True)
    assert np.unique(ev.sampling_benchmark, return_counts=True)[1].min() >= 2
    thetas = np.array([[0.0, 0.0], [1.3, -0.7], [-1.8, 1.9]])
    total = ev.cross_section(thetas)
    n_rep = 300
    test_xs = np.empty((n_rep, 3))
    train_xs = np.empty((n_rep, 3))
    for seed in range(n_rep):
        train, test = ev.train_test_split(test_fraction=0.3, random_state=seed, stratify=stratify)
        train_xs[seed] = train.cross_section(thetas)
        test_xs[seed] = test.cross_section(thetas)
    if not stratify:  # the fractions-weighted combination of both parts is exactly the total
        np.testing.assert_allclose((28 * train_xs + 12 * test_xs) / 40, np.broadcast_to(total, (n_rep, 3)),
                                   rtol=1e-12)
    for xs in (train_xs, test_xs):
        assert np.all(xs.std(axis=0) > 1e-3 * total)  # the parts really fluctuate ...
        err = xs.std(axis=0) / np.sqrt(n_rep)
        assert np.all(np.abs(xs.mean(axis=0) - total) < 5 * err)  # ... around the full cross section


def test_copy_is_independent(nu_events: EventSet) -> None:
    c = nu_events.copy()
    assert_same_events(c, nu_events)
    assert c.space is not nu_events.space and c.morpher is not nu_events.morpher
    assert not np.shares_memory(c.weights, nu_events.weights)
