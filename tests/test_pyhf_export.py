"""pyhf export of histogram analyses: pyhf's likelihood and asymptotic calculator reproduce skminer's limits."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from skminer.events import EventSet
from skminer.inference import AsymptoticLimits
from skminer.io.pyhf import histogram_workspace, write_workspace
from skminer.morphing import Morpher
from skminer.parameters import ParameterSpace

pyhf = pytest.importorskip("pyhf")

LUMI = 1000.0  # pb^-1


def linear_events(n: int = 3000, nuisance: bool = False) -> EventSet:
    """One parameter mu entering linearly: dsigma(x|mu) = w0(x) (1 + mu (0.5 + 0.5 tanh x)), all in pb."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(n, 1))
    w0 = np.full(n, 2e-3 / n * 1000)
    w1 = w0 * (1.5 + 0.5 * np.tanh(x[:, 0]))
    space = ParameterSpace().add_parameter("mu", max_power=1, range=(-1.0, 3.0))
    space.add_benchmark("b0", [0.0]).add_benchmark("b1", [1.0])
    extra = {}
    if nuisance:
        extra = {"nuisance_names": ["scale"], "nuisance_a": (0.1 + 0.05 * x), "nuisance_b": np.zeros((n, 1))}
    return EventSet(x, np.stack([w0, w1], axis=1), observable_names=["x"], benchmark_names=["b0", "b1"],
                    space=space, morpher=Morpher.from_space(space), morphing_basis=["b0", "b1"], **extra)


@pytest.fixture(scope="module")
def events() -> EventSet:
    return linear_events()


def test_pyhf_reproduces_histogram_limits(events, tmp_path):
    grid = np.round(np.linspace(-0.5, 2.5, 31), 12)[:, None]
    ours = AsymptoticLimits(events, LUMI).expected_limits([1.0], grid, mode="histogram", observables=["x"], bins=6)
    export = histogram_workspace(events, LUMI, observables=["x"], bins=6, theta_data=[1.0])
    np.testing.assert_array_equal(export.edges[0], ours.info["edges"][0])
    path = write_workspace(export, tmp_path / "ws.json")
    ws = pyhf.Workspace(json.loads(path.read_text()))
    model = ws.model()
    data = ws.data(model)
    assert model.config.poi_name == "mu" and model.config.suggested_bounds()[model.config.poi_index] == [-1.0, 3.0]
    # the likelihood itself: -2 Delta log L on the grid
    ll = np.array([float(model.logpdf(np.array([mu]), data)[0]) for mu in grid[:, 0]])
    q_pyhf = -2.0 * (ll - ll.max())
    np.testing.assert_allclose(q_pyhf, ours.q, rtol=1e-9, atol=1e-9)
    # pyhf's profile-likelihood test statistic and its asymptotic calculator
    init, bounds, fixed = model.config.suggested_init(), model.config.suggested_bounds(), model.config.suggested_fixed()
    for mu, q, p in zip(grid[::5, 0], ours.q[::5], ours.p_values[::5], strict=True):
        t = float(pyhf.infer.test_statistics.tmu(mu, data, model, init, bounds, fixed))
        assert t == pytest.approx(q, rel=1e-9, abs=1e-9)  # measured: 1.1e-11
        if mu > 1.0:  # one-sided q: CL_s+b = 1 - Phi(sqrt q) = half the two-sided Wilks p-value
            calc = pyhf.infer.calculators.AsymptoticCalculator(data, model, init, bounds, fixed, test_stat="q")
            stat = calc.teststatistic(mu)
            sb_dist, b_dist = calc.distributions(mu)
            clsb, _, _ = calc.pvalues(stat, sb_dist, b_dist)
            assert float(clsb) == pytest.approx(0.5 * p, rel=1e-4)
            assert 0.5 * p == pytest.approx(stats.norm.sf(np.sqrt(q)), rel=1e-9)


def test_sally_histogram_export_and_observed_counts(events):
    class Score:  # the inference protocol's score capability, nothing more
        capabilities = frozenset({"score"})

        def score_at(self, X, theta=None):
            return np.tanh(X[:, :1])

    x_obs = np.random.default_rng(1).normal(size=(50, 1))
    export = histogram_workspace(events, LUMI, estimator=Score(), bins=4, theta_data=[0.5], x_observed=x_obs)
    ws = export.workspace
    assert ws["channels"][0]["name"] == "t_hat0" and export.labels == ["t_hat[0]"]
    assert sum(ws["observations"][0]["data"]) == 50
    with pytest.raises(TypeError, match="'score' capability"):
        histogram_workspace(events, LUMI, estimator=object(), bins=4)

    class NeedsPoint(Score):  # like a parameterised ratio estimator: the score exists at a given point only
        def score_at(self, X, theta=None):
            assert theta is not None, "needs theta"
            return np.tanh(X[:, :1] - float(np.asarray(theta).reshape(-1)[0]))

    at = histogram_workspace(events, LUMI, estimator=NeedsPoint(), theta_ref=[0.0], bins=4, theta_data=[0.5],
                             x_observed=x_obs).workspace
    assert at == ws
    assert [s["name"] for s in ws["channels"][0]["samples"]] == ["morph_const", "morph_mu"]
    pyhf.Workspace(ws)
    # the expected counts of the samples add up to L sigma(theta) at any theta
    model = pyhf.Workspace(ws).model()
    for mu in (-0.5, 0.0, 2.0):
        assert model.expected_actualdata(np.array([mu])).sum() == pytest.approx(
            LUMI * float(events.cross_section(np.array([[mu]]))[0]), rel=1e-10)


def test_nuisance_parameters_become_normsys_and_histosys():
    ev = linear_events(nuisance=True)
    ws = histogram_workspace(ev, LUMI, observables="x", bins=3, theta_data=[1.0]).workspace
    sample = ws["channels"][0]["samples"][0]
    mods = {m["type"]: m for m in sample["modifiers"]}
    assert set(mods) == {"normsys", "histosys"} and mods["normsys"]["name"] == "scale"
    nominal = np.array(sample["data"])
    factor = np.exp(0.1 + 0.05 * ev.x[:, 0])
    np.testing.assert_allclose(mods["normsys"]["data"]["hi"], np.sum(ev.weights[:, 0] * factor) / np.sum(
        ev.weights[:, 0]), rtol=1e-10)
    np.testing.assert_allclose(np.sum(mods["histosys"]["data"]["hi_data"]), nominal.sum(), rtol=1e-10)
    model = pyhf.Workspace(ws).model()
    assert set(model.config.parameters) == {"mu", "scale"}
    # at nu = 0 the nuisance modifiers are neutral: pyhf's expectation is skminer's
    pars = model.config.suggested_init()
    pars[model.config.par_slice("mu")] = [2.0]
    pars[model.config.par_slice("scale")] = [0.0]
    assert model.expected_actualdata(pars).sum() == pytest.approx(
        LUMI * float(ev.cross_section(np.array([[2.0]]))[0]), rel=1e-10)


def test_quadratic_components_and_bad_input_are_refused(events):
    space = ParameterSpace().add_parameter("c", max_power=2, range=(-1.0, 1.0))
    for name, v in {"a": -1.0, "b": 0.0, "d": 1.0}.items():
        space.add_benchmark(name, [v])
    x = np.linspace(-1, 1, 30)[:, None]
    w = np.ones((30, 3)) * np.array([2.0, 1.0, 2.0])
    quad = EventSet(x, w, observable_names=["x"], benchmark_names=["a", "b", "d"], space=space,
                    morpher=Morpher.from_space(space), morphing_basis=["a", "b", "d"])
    with pytest.raises(ValueError, match=r"morph_c\^2"):
        histogram_workspace(quad, LUMI, observables=["x"], bins=2)
    with pytest.raises(ValueError, match="not in the event set"):
        histogram_workspace(events, LUMI, observables=["y"])
    with pytest.raises(ValueError, match="luminosity"):
        histogram_workspace(events, -1.0, observables=["x"])


def test_cli_export_pyhf(events, tmp_path, capsys):
    from skminer.cli import main

    path = tmp_path / "events.h5"
    events.save(path)
    out = tmp_path / "ws.json"
    assert main(["export-pyhf", str(path), "-o", str(out), "--luminosity", "1000", "--bins", "6", "--theta",
                 "1.0"]) == 0
    ws = pyhf.Workspace(json.loads(out.read_text()))
    assert ws.channels == ["x"] and ws.get_measurement()["config"]["poi"] == "mu"
    direct = histogram_workspace(events, LUMI, observables=["x"], bins=6, theta_data=[1.0]).workspace
    assert json.loads(out.read_text()) == json.loads(json.dumps(direct))
    assert main(["export-pyhf", str(path), "-o", str(out), "--luminosity", "1000", "--observable", "nope"]) == 2
    assert "not in the event set" in capsys.readouterr().err


def test_cli_docs_say_the_demo_toy_is_refused():
    # docs/cli.md showed export-pyhf on the demo's events, which the exporter refuses (quadratic morphing); the
    # page now says which analyses it applies to, and the toy must indeed be refused.
    from pathlib import Path

    from skminer.simulation.toy import ToySimulator

    toy = ToySimulator().simulate(300, random_state=0)
    with pytest.raises(ValueError, match=r"power >= 2"):
        histogram_workspace(toy, LUMI, observables=[toy.observable_names[0]], bins=2)
    text = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
    example = next(line for line in text.splitlines() if line.startswith("skminer export-pyhf"))
    assert "(*)" in example and "(*) Only for analyses whose parameters enter the morphing at most linearly" in text
