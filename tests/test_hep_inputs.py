"""hist / boost-histogram axes as bins= and awkward arrays as estimator and EventSet input."""

from __future__ import annotations

import numpy as np
import pytest

from skminer.estimators import SALLY
from skminer.events import EventSet
from skminer.inference import AsymptoticLimits, FisherInformation, theta_grid
from skminer.simulation.toy import ToySimulator

hist = pytest.importorskip("hist")
bh = pytest.importorskip("boost_histogram")
ak = pytest.importorskip("awkward")


@pytest.fixture(scope="module")
def events() -> EventSet:
    return ToySimulator().simulate(3000, random_state=4)


def test_hist_axes_as_bins(events):
    theta = np.zeros(2)
    fisher = FisherInformation(events)
    edges = np.linspace(-3, 3, 21)
    expected = fisher.histogram_information(theta, 100.0, "x1", bins=edges)
    for axis in (hist.axis.Regular(20, -3, 3), bh.axis.Regular(20, -3, 3), hist.axis.Variable(edges)):
        np.testing.assert_allclose(fisher.histogram_information(theta, 100.0, "x1", bins=axis), expected,
                                   rtol=1e-12)
    grid = theta_grid([[-1, 1], [-1, 1]], 5)
    limits = AsymptoticLimits(events, 100.0)
    by_edges = limits.expected_limits(theta, grid, observables=["x1"], bins=edges)
    by_axis = limits.expected_limits(theta, grid, observables=["x1"], bins=hist.axis.Regular(20, -3, 3))
    np.testing.assert_allclose(by_axis.q, by_edges.q, rtol=1e-12)
    np.testing.assert_allclose(by_axis.info["edges"][0], edges, rtol=0, atol=1e-12)
    two_d = limits.expected_limits(theta, grid, observables=["x1", "x2"],
                                   bins=[hist.axis.Regular(4, -2, 2), bh.axis.Variable([-1.0, 0.0, 1.0])])
    assert [len(e) for e in two_d.info["edges"]] == [5, 3]
    with pytest.raises(ValueError, match="categorical axis"):
        fisher.histogram_information(theta, 100.0, "x1", bins=hist.axis.StrCategory(["a", "b"]))


def test_awkward_input_to_estimators_and_eventsets(events):
    x = events.x[:400]
    t = np.tanh(x[:, :2])
    numpy_fit = SALLY(hidden_layer_sizes=(8,), max_epochs=2, random_state=0).fit(x, t)
    awk_fit = SALLY(hidden_layer_sizes=(8,), max_epochs=2, random_state=0).fit(ak.Array(x), t)
    np.testing.assert_allclose(awk_fit.predict(ak.Array(x)), numpy_fit.predict(x), rtol=1e-6)
    record = ak.zip({name: x[:, i] for i, name in enumerate(events.observable_names)})
    with pytest.raises(ValueError, match=r"record array with fields \['x1'"):
        numpy_fit.predict(record)
    jagged = ak.Array([[1.0, 2.0], [3.0]])
    with pytest.raises(ValueError, match="jagged"):
        numpy_fit.predict(jagged)
    ev = EventSet(ak.Array(x), ak.Array(events.weights[:400]), observable_names=events.observable_names,
                  benchmark_names=events.benchmark_names, space=events.space, morpher=events.morpher,
                  morphing_basis=events.morphing_basis)
    np.testing.assert_array_equal(ev.x, x)
    with pytest.raises(ValueError, match="x is an awkward record array"):
        EventSet(record, events.weights[:400], observable_names=events.observable_names,
                 benchmark_names=events.benchmark_names, space=events.space)
