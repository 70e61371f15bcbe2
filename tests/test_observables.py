"""Tests of the safe observable language, cuts and smearing (skminer.simulation.observables/cuts/smearing)."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

pytest.importorskip("awkward")
pytest.importorskip("vector")

import awkward as ak  # noqa: E402

from skminer.simulation.cuts import AnyOf, Cut, CutFlow, apply_cuts  # noqa: E402
from skminer.simulation.observables import (  # noqa: E402
    EventObjects,
    Expression,
    ExpressionError,
    Observable,
    evaluate_observables,
    make_vectors,
)
from skminer.simulation.smearing import ParticleSmearing, Smearer  # noqa: E402


def _objects() -> EventObjects:
    # event 0: two jets, two photons; event 1: one jet, one photon; event 2: nothing
    j = make_vectors([[50.0, 40.0], [30.0], []], [[0.5, -1.5], [2.0], []], [[0.1, 3.0], [-1.0], []],
                     [[5.0, 4.0], [3.0], []], btag=[[1, 0], [0], []])
    a = make_vectors([[60.0, 20.0], [25.0], []], [[0.0, 1.0], [0.3], []], [[1.0, -2.0], [0.5], []],
                     [[0.0, 0.0], [0.0], []])
    met = make_vectors([10.0, 0.0, 5.0], [0.0, 0.0, 0.0], [0.5, 0.0, -3.0], [0.0, 0.0, 0.0])
    return EventObjects(3, {"j": j, "a": a}, {"met": met}, {"w": np.array([1.0, 2.0, 3.0])}).with_multiplicities(
        {"njets": "j"})


def _p4(pt, eta, phi, m):
    px, py = pt * math.cos(phi), pt * math.sin(phi)
    pz = pt * math.sinh(eta)
    e = math.sqrt(px * px + py * py + pz * pz + m * m)
    return np.array([e, px, py, pz])


def test_kinematics_match_hand_computation():
    objs = _objects()
    p1, p2 = _p4(60.0, 0.0, 1.0, 0.0), _p4(20.0, 1.0, -2.0, 0.0)
    s = p1 + p2
    m_aa = math.sqrt(s[0] ** 2 - s[1] ** 2 - s[2] ** 2 - s[3] ** 2)
    out = Observable("m_aa", "(a[0] + a[1]).m").evaluate(objs)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out[0], m_aa, rtol=1e-12)
    assert np.isnan(out[1]) and np.isnan(out[2])

    dphi = Observable("dphi", "j[0].deltaphi(j[1])").evaluate(objs)
    expected = (0.1 - 3.0 + np.pi) % (2 * np.pi) - np.pi
    np.testing.assert_allclose(dphi[0], expected, rtol=1e-12)

    deta = Observable("deta", "abs(j[0].eta - j[1].eta)", default=-1.0).evaluate(objs)
    np.testing.assert_allclose(deta, [2.0, -1.0, -1.0])
    np.testing.assert_allclose(Observable("met", "met.pt").evaluate(objs), [10.0, 0.0, 5.0])
    np.testing.assert_allclose(Observable("ptl", "j[-1].pt", default=0).evaluate(objs), [40.0, 30.0, 0.0])
    np.testing.assert_allclose(Observable("b", "j[0].btag", default=-1).evaluate(objs), [1.0, 0.0, -1.0])


def test_reductions_filters_functions_and_logic():
    objs = _objects()
    ev = lambda s, d=math.nan: Observable("x", s, default=d).evaluate(objs)  # noqa: E731
    np.testing.assert_allclose(ev("sum(j.pt)"), [90.0, 30.0, 0.0])
    np.testing.assert_allclose(ev("len(j)"), [2, 1, 0])
    np.testing.assert_allclose(ev("njets + n_a"), [4, 2, 0])
    np.testing.assert_allclose(ev("max(abs(j.eta))", -1), [1.5, 2.0, -1.0])
    np.testing.assert_allclose(ev("len(j[j.pt > 35])"), [2, 0, 0])
    np.testing.assert_allclose(ev("j[j.eta < 0][0].pt", 0), [40.0, 0.0, 0.0])
    np.testing.assert_allclose(ev("max(met.pt, 4) * 2 - 1"), [19.0, 7.0, 9.0])
    np.testing.assert_allclose(ev("sqrt(w) ** 2 + log(exp(1.0)) + cos(pi)"), [1.0, 2.0, 3.0])
    np.testing.assert_allclose(ev("1 if met.pt > 6 else 0"), [1, 0, 0])
    np.testing.assert_allclose(ev("(met.pt > 1) and not (w > 2)"), [1, 0, 0])
    np.testing.assert_allclose(ev("1 < w <= 3"), [0, 1, 1])
    np.testing.assert_allclose(ev("where(w > 1.5, w, -w)"), [-1, 2, 3])
    np.testing.assert_allclose(ev("arctan2(1, 1)"), [np.pi / 4] * 3)
    assert np.isnan(ev("a[0].deltaR(j[1])")[1])
    np.testing.assert_allclose(ev("3"), [3, 3, 3])


def test_callable_and_matrix():
    objs = _objects()
    obs = [Observable("pt_j1", "j[0].pt", default=0.0),
           Observable("n", lambda o: ak.num(o["j"], axis=1)),
           Observable("met2", lambda o: ak.to_numpy(o["met"].pt) * 2)]
    x = evaluate_observables(obs, objs)
    np.testing.assert_allclose(x, [[50, 2, 20], [30, 1, 0], [0, 0, 10]])
    assert "callable" in obs[1].definition
    with pytest.raises(ValueError, match="observable 'bad'.*shape"):
        Observable("bad", lambda o: np.zeros(2)).evaluate(objs)


@pytest.mark.parametrize("source, match", [
    ("__import__('os').system('true')", "not allowed"),
    ("j[0].__class__", "attribute '__class__' is not allowed"),
    ("open('f')", "function 'open' is not allowed"),
    ("j[0].pt +", "syntax error"),
    ("lambda: 1", "Lambda is not allowed"),
    ("[x for x in j]", "not allowed"),
    ("'abc'", "constant 'abc' is not allowed"),
    ("j[0].boost(j[1])", "method 'boost' is not allowed"),
    ("abs(x=1)", "keyword arguments"),
    ("j[0:2]", "not allowed"),
    ("j[0].pt | 1", "BitOr"),
    ("abs", "without calling"),
])
def test_disallowed_expressions_name_the_expression(source, match):
    with pytest.raises(ExpressionError, match=match) as info:
        Expression(source)
    assert repr(source)[1:-1] in str(info.value) or "syntax" in str(info.value)


def test_evaluation_errors_name_expression():
    objs = _objects()
    with pytest.raises(ExpressionError, match=r"'j\[0\].nosuch'.*not allowed"):
        Observable("x", "j[0].nosuch").evaluate(objs)
    with pytest.raises(ExpressionError, match=r"observable 'x'.*unknown names \['zz'\]"):
        Observable("x", "zz[0].pt").evaluate(objs)
    with pytest.raises(ExpressionError, match="list per event"):
        Observable("x", "j.pt").evaluate(objs)
    with pytest.raises(ExpressionError, match="vector/object"):
        Observable("x", "j[0]").evaluate(objs)
    with pytest.raises(ExpressionError, match="only collections"):
        Observable("x", "met[0].pt").evaluate(objs)
    with pytest.raises(ExpressionError, match="takes 1 argument"):
        Observable("x", "sqrt(1, 2)").evaluate(objs)


def test_cuts_any_of_and_cutflow(caplog):
    objs = _objects()
    w = np.array([1.0, 2.0, 3.0])
    cuts = ["njets >= 1", Cut("j[0].pt > 40", name="lead jet"), AnyOf(["a[0].pt > 50", "met.pt > 100"])]
    mask, flow = apply_cuts(cuts, objs, weights=w)
    np.testing.assert_array_equal(mask, [True, False, False])
    assert [s.n_events for s in flow.steps] == [2, 1, 1]
    np.testing.assert_allclose([s.sum_weights for s in flow.steps], [3.0, 1.0, 1.0])
    np.testing.assert_allclose(flow.steps[0].cumulative_efficiency, 0.5)
    np.testing.assert_allclose(flow.steps[1].efficiency, 1.0 / 3.0)
    assert flow.n_passed == 1 and flow.efficiency == pytest.approx(1 / 6)
    # missing object: fails by default, passes when asked
    np.testing.assert_array_equal(Cut("j[1].pt > 1").evaluate(objs), [True, False, False])
    np.testing.assert_array_equal(Cut("j[1].pt > 1", pass_if_missing=True).evaluate(objs), [True, True, True])
    with caplog.at_level(logging.INFO, logger="skminer.simulation.cuts"):
        flow.log(label="test")
    assert "lead jet" in caplog.text
    merged = flow.merge(flow)
    assert merged.n_initial == 6 and merged.steps[-1].n_events == 2
    assert merged.efficiency == pytest.approx(flow.efficiency)
    assert CutFlow(**{k: v for k, v in flow.to_dict().items() if k != "steps"}).n_initial == 3
    with pytest.raises(ValueError, match="must return booleans"):
        Cut(lambda o: np.ones(3)).evaluate(objs)


def test_smearing_statistics_efficiency_and_seed():
    n = 20000
    pt = ak.Array(np.full((n, 1), 100.0).tolist())
    objs = EventObjects(n, {"j": make_vectors(pt, pt * 0 + 0.5, pt * 0 + 3.1, pt * 0)})
    rule = ParticleSmearing(pt_resolution=(0.1, 0.0), phi_resolution=(0.0, 0.2), efficiency=0.8)
    out = Smearer({"j": rule}, random_state=3).apply(objs)
    counts = ak.to_numpy(ak.num(out["j"], axis=1))
    assert abs(counts.mean() - 0.8) < 0.015
    pts = ak.to_numpy(ak.flatten(out["j"].pt))
    assert abs(pts.mean() - 100.0) < 0.3 and abs(pts.std() - 10.0) < 0.3
    phis = ak.to_numpy(ak.flatten(out["j"].phi))
    assert np.all((phis >= -np.pi) & (phis < np.pi)) and (phis < 0).any()  # wrapped around
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(out["j"].eta)), 0.5)
    again = Smearer({"j": rule}, random_state=3).apply(objs)
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(again["j"].pt)), pts)

    # energy smearing keeps mass and direction; efficiency function of pt
    objs2 = EventObjects(n, {"j": make_vectors(pt, pt * 0 + 1.0, pt * 0, pt * 0 + 10.0)})
    rule2 = ParticleSmearing(energy_resolution=(0.0, 5.0), efficiency=lambda p, e: np.where(p > 0, 1.0, 0.0))
    out2 = Smearer({"j": rule2}, random_state=0).apply(objs2)
    e0 = math.sqrt((100 * math.cosh(1.0)) ** 2 + 100.0)
    energies = ak.to_numpy(ak.flatten(out2["j"].E))
    assert abs(energies.mean() - e0) < 0.2 and abs(energies.std() - 5.0) < 0.2
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(out2["j"].mass)), 10.0)
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(out2["j"].eta)), 1.0, rtol=1e-12)
    assert ak.to_numpy(ak.flatten(out2["j"].pt)).dtype == np.float64


def test_smearing_sorts_and_validates():
    objs = EventObjects(1, {"j": make_vectors([[50.0, 49.0]], [[0.0, 0.0]], [[0.0, 1.0]], [[0.0, 0.0]])})
    out = Smearer({"j": ParticleSmearing(pt_resolution=(0.0, 10.0))}, random_state=1).apply(objs)
    pts = ak.to_list(out["j"].pt)[0]
    assert pts == sorted(pts, reverse=True)
    with pytest.raises(ValueError, match="not both"):
        ParticleSmearing(energy_resolution=(0.1, 0), pt_resolution=(0.1, 0))
    with pytest.raises(ValueError, match="efficiency"):
        ParticleSmearing(efficiency=1.5)
    with pytest.raises(ValueError, match="non-negative"):
        ParticleSmearing(eta_resolution=(-0.1, 0))
