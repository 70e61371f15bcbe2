"""No silent wrong answers in morphing: closure, least squares only when asked, positivity, scale-free thresholds."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from skminer.closure import (
    MorphingClosureError,
    check_morphing_closure,
    morphing_closure,
    negative_cross_sections,
)
from skminer.events import EventSet
from skminer.morphing import Morpher
from skminer.parameters import ParameterSpace

VBFH_POINTS = {"sm": (0.0, 0.0), "w": (15.2, 0.1), "neg_w": (-15.4, 0.2), "ww": (0.3, 15.1), "neg_ww": (0.2, -15.3),
               "w_ww": (15.0, 15.0), "val_1": (5.0, -5.0), "val_2": (-10.0, 10.0)}


def _quadratic_events(scale=(1.0, 1.0), extra=((-0.5, -0.5), (0.8, -0.3)), n_ev=200, seed=0, fit="exact",
                      basis_uv=((0, 0), (0.5, 0), (-0.5, 0), (0, 0.5), (0, -0.5), (0.5, 0.5))) -> EventSet:
    """Weights exactly quadratic in (u, v) = theta / scale, at a basis and extra benchmarks."""
    rng = np.random.default_rng(seed)
    coef = rng.uniform(0.1, 1.0, size=(n_ev, 6)) + np.array([3.0, 0, 0, 0, 0, 0])
    s = np.asarray(scale, float)
    points = {f"b{i}": np.asarray(p, float) for i, p in enumerate(basis_uv)}
    points.update({f"x{i}": np.asarray(p, float) for i, p in enumerate(extra)})
    space = ParameterSpace()
    space.add_parameter("c1", range=(-s[0], s[0])).add_parameter("c2", range=(-s[1], s[1]))
    for name, p in points.items():
        space.add_benchmark(name, p * s)

    def weights(u, v):
        return coef @ np.array([1.0, u, v, u * u, u * v, v * v]) / n_ev

    w = np.stack([weights(*p) for p in points.values()], axis=1)
    basis = [n for n in points if n.startswith("b")]
    return EventSet(rng.normal(size=(n_ev, 1)), w, observable_names=["x"], benchmark_names=list(points),
                    space=space, morpher=Morpher([2, 2], 2, fit=fit), morphing_basis=basis)


# -- thresholds relative to the parameters' own scale -------------------------------------------------------
@pytest.mark.parametrize("scale", [(1.0, 1.0), (1e3, 1e-3), (1e3, 1e-4), (1e-12, 1e-12), (1e12, 1e12), (1e12, 1e-12)])
def test_morphing_is_scale_free(scale):
    """case morphing-parameter-scales: bases on any units are accepted and morph to rounding precision."""
    events = _quadratic_events(scale)
    closure = morphing_closure(events)
    assert [r.benchmark for r in closure.rows] == ["x0", "x1"]
    assert all(closure.status(r) == "ok" for r in closure.rows), str(closure)
    assert max(r.max_deviation for r in closure.rows) < 1e-13
    s = np.asarray(scale)
    ranges = np.array([[-1.0, 1.0], [-1.0, 1.0]]) * s[:, None]
    m = Morpher([2, 2], 2)
    m.select_basis(events.benchmark_values, ranges)
    assert m.condition_number < 100  # scale-free: the same as for the (u, v) control
    m.optimize_basis(ranges, n_trials=20, random_state=0)
    assert m.condition_number < 100
    # a degenerate basis stays degenerate in any units
    with pytest.raises(ValueError, match="degenerate"):
        Morpher([2, 2], 2).set_basis(np.array([[0, 0], [1, 0], [-1, 0], [2, 0], [0, 1], [0, -1]]) * s)


def test_ft0_in_gev4_units():
    m = Morpher(max_powers=[2]).set_basis(np.array([[0.0], [1e-12], [-1e-12]]))
    c = np.array([4.0, 0.3, 0.7])
    wb = np.stack([c @ [1.0, x, x * x] for x in (0.0, 1.0, -1.0)])
    assert wb @ m.weights(np.array([1.7e-12])) == pytest.approx(c @ [1.0, 1.7, 1.7**2], rel=1e-12)


# -- closure -------------------------------------------------------------------------------------------------
def test_closure_flags_small_and_gross_deviations(caplog):
    events = _quadratic_events()
    w = events.weights.copy()
    w[:, events.benchmark_index("x0")] *= 1 + 1e-6  # far above float64 rounding, far below a gross error
    perturbed = events._replace(weights=w)
    with caplog.at_level(logging.WARNING, logger="skminer.closure"):
        closure = check_morphing_closure(perturbed)
    row = {r.benchmark: r for r in closure.rows}["x0"]
    assert closure.status(row) == "WARNING" and row.sigma_deviation == pytest.approx(-1e-6, rel=1e-3)
    assert "'x0'" in caplog.text and "1e-06" in caplog.text
    w[:, events.benchmark_index("x1")] *= 1.5
    with pytest.raises(MorphingClosureError, match="x1.*above the gross threshold 0.01"):
        check_morphing_closure(events._replace(weights=w))
    # the gross threshold is configurable
    assert check_morphing_closure(events._replace(weights=w), gross=0.6).rows


def test_overdetermined_basis_is_explicit_and_reports_its_residual():
    with pytest.raises(ValueError, match="exceed max_overall_power"):
        Morpher([2], max_overall_power=1)
    points = np.array([[-1.0], [0.0], [1.0]])
    with pytest.raises(ValueError, match="fit='least_squares'"):
        Morpher([1]).set_basis(points)
    m = Morpher([1]).set_basis(points, fit="least_squares")
    assert m.fit == "least_squares" and Morpher.from_dict(m.to_dict()).fit == "least_squares"
    # quadratic weights (a Breit-Wigner-like bump) fitted linearly: the residual is an error, not a silent -1.2 pb
    space = ParameterSpace().add_parameter("m", max_power=1, range=(-1, 1))
    for name, p in zip(("lo", "mid", "hi"), points[:, 0], strict=True):
        space.add_benchmark(name, [p])
    w = np.array([[0.4, 1.0, 0.4]]) * np.ones((10, 1)) / 10
    events = EventSet(np.zeros((10, 1)), w, observable_names=["x"], benchmark_names=["lo", "mid", "hi"],
                      space=space, morpher=Morpher([1], fit="least_squares"), morphing_basis=["lo", "mid", "hi"])
    closure = morphing_closure(events)
    assert {r.kind for r in closure.rows} == {"fit residual"} and len(closure.rows) == 3
    mid = {r.benchmark: r for r in closure.rows}["mid"]
    assert mid.sigma_morphed == pytest.approx(0.6) and closure.status(mid) == "ERROR"
    with pytest.raises(MorphingClosureError):
        check_morphing_closure(events)
    exact = _quadratic_events(fit="least_squares", extra=())  # polynomial weights: the residual is rounding
    assert all(r.kind == "fit residual" and r.max_deviation < 1e-13 for r in morphing_closure(exact).rows)


def test_select_basis_keeps_required_points():
    events = _quadratic_events(extra=((-0.5, -0.5), (0.8, -0.3), (0.05, 0.05)))
    m = Morpher([2, 2], 2)
    free = m.select_basis(events.benchmark_values, events.space.ranges)
    left_out = [i for i in range(events.n_benchmarks) if i not in free]
    assert len(left_out) == 3
    kept = m.select_basis(events.benchmark_values, events.space.ranges, required=left_out[:2])
    assert set(left_out[:2]) <= set(kept) and len(kept) == 6


def test_negative_cross_section_named(caplog):
    """A quadratic through three bump-shaped points turns negative at the range edge."""
    space = ParameterSpace().add_parameter("mass", max_power=2, range=(-3.0, 3.0))
    for name, p in (("lo", -1.0), ("mid", 0.0), ("hi", 1.0)):
        space.add_benchmark(name, [p])
    w = np.array([[0.2, 1.0, 0.3]]) * np.ones((5, 1)) / 5
    events = EventSet(np.zeros((5, 1)), w, observable_names=["x"], benchmark_names=["lo", "mid", "hi"],
                      space=space, morpher=Morpher([2]), morphing_basis=["lo", "mid", "hi"])
    with caplog.at_level(logging.WARNING, logger="skminer.closure"):
        out = negative_cross_sections(events)
    # sigma(m) = 1 + 0.05 m - 0.75 m^2 < 0 for |m| >~ 1.19
    assert out["negative_points"] and min(p[0] for p in out["negative_points"]) == -3.0
    assert out["min_cross_section"] == pytest.approx(1 - 0.15 - 0.75 * 9)
    assert "negative at" in caplog.text and "[-3.0]" in caplog.text
    assert out["worst_event_fraction"] == 1.0


def _vbfh_reader(max_power: int, shared_data):
    pytest.importorskip("pylhe")
    from skminer.simulation import LHEReader

    space = ParameterSpace()
    space.add_parameter("CWL2", lha_block="dim6", lha_id=2, max_power=max_power, range=(-20.0, 20.0))
    space.add_parameter("CPWL2", lha_block="dim6", lha_id=5, max_power=max_power, range=(-20.0, 20.0))
    for name, values in VBFH_POINTS.items():
        space.add_benchmark(name, values)
    morpher = Morpher.from_space(space, max_overall_power=max_power)
    index = morpher.select_basis(space.benchmark_values, space.ranges, required=[0])
    reader = LHEReader(space, morpher=morpher, morphing_basis=[space.benchmark_names[i] for i in index],
                       observables={"pt_j1": "j[0].pt"})
    reader.add_sample(shared_data / "mg5_vbfh_ewdim6" / "unweighted_events.lhe.gz", "sm")
    return reader.read()


def test_closure_on_madgraph_weights(shared_data):
    """The quadratic EWdim6 process closes to the 8 printed digits with max_power 2 and fails with max_power 1."""
    events = _vbfh_reader(2, shared_data)
    assert "sm" in events.morphing_basis  # the sampling benchmark is kept in the automatic basis
    closure = check_morphing_closure(events)
    assert closure.precision == pytest.approx(5e-8) and len(closure.rows) == 2
    assert all(closure.status(r) == "ok" and r.max_deviation < 1e-6 for r in closure.rows)
    linear = _vbfh_reader(1, shared_data)
    with pytest.raises(MorphingClosureError, match="morphing fails its closure test"):
        check_morphing_closure(linear)
    rows = morphing_closure(linear).rows
    assert len(rows) == 5 and max(abs(r.sigma_deviation) for r in rows) > 0.1
