"""A whole toy analysis with its parameters in other units (x 1e-12, x 1e12) gives the same answers, rescaled.

Every threshold in the package (morphing conditioning, point matching, standardisation of inputs and targets,
histogram binning, closure and positivity checks) must be relative to the data's own scale; a fixed absolute
threshold on parameter values shows up here as a refused basis, an unstandardised target or different limits.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from skminer.augmentation import LocalScoreSampler
from skminer.closure import check_morphing_closure, negative_cross_sections
from skminer.estimators import SALLY
from skminer.events import EventSet
from skminer.inference import AsymptoticLimits, FisherInformation, theta_grid
from skminer.morphing import Morpher
from skminer.parameters import ParameterSpace
from skminer.simulation.toy import ToySimulator

LUMI = 200.0


def _rescaled(events: EventSet, scale: float) -> EventSet:
    space = ParameterSpace()
    for p in events.space.parameters:
        space.add_parameter(p.name, max_power=p.max_power, range=tuple(scale * np.asarray(p.range)))
    for name, value in events.space.benchmarks.items():
        space.add_benchmark(name, scale * value)
    return EventSet(events.x, events.weights, observable_names=events.observable_names,
                    benchmark_names=events.benchmark_names, space=space, morpher=Morpher([2, 2], 2),
                    morphing_basis=events.morphing_basis)


def _analysis(events: EventSet, scale: float) -> dict:
    events = _rescaled(events, scale)
    closure = check_morphing_closure(events)
    negative = negative_cross_sections(events)
    train, test = events.train_test_split(0.5, random_state=1)
    theta_ref = np.zeros(2)
    sample = LocalScoreSampler(theta_ref=theta_ref).sample(train, 3000, random_state=2)
    model = SALLY(hidden_layer_sizes=(16,), max_epochs=3, random_state=3, verbose=0).fit(sample.x, sample.t_xz)
    fisher = FisherInformation(test)
    infos = {"truth": fisher.truth_information(theta_ref, LUMI), "rate": fisher.rate_information(theta_ref, LUMI),
             "histogram": fisher.histogram_information(theta_ref, LUMI, "x1", bins=8),
             "full": fisher.full_information(theta_ref, model, LUMI)}
    grid = theta_grid(events.space.ranges, 7)
    limits = AsymptoticLimits(test, luminosity=LUMI)
    p_values = {"histogram": limits.expected_limits(theta_ref, grid, observables=["x1"], bins=8).p_values,
                "sally": limits.expected_limits(theta_ref, grid, mode="sally", estimator=model, bins=6).p_values}
    x_obs = ToySimulator().sample(60, [0.3, -0.3], random_state=4)
    p_values["observed sally"] = limits.observed_limits(x_obs, grid, mode="sally", estimator=model, bins=6,
                                                        binning_theta=theta_ref).p_values
    return {"closure": max(r.max_deviation for r in closure.rows), "negative": negative["negative_points"],
            "infos": infos, "p_values": p_values, "diagnostics": fisher.diagnostics_}


@pytest.mark.parametrize("scale", [1e-12, 1e12])
def test_toy_analysis_in_rescaled_units(scale, caplog):
    toy = ToySimulator()
    events = toy.simulate(6000, benchmarks={**{k: v for k, v in toy.space.benchmarks.items()},
                                            "check": [0.5, -0.5]}, random_state=0)
    reference = _analysis(events, 1.0)
    with caplog.at_level(logging.WARNING):
        scaled = _analysis(events, scale)
    assert "degenerate" not in caplog.text
    assert scaled["closure"] < 1e-12 and reference["closure"] < 1e-12
    assert scaled["negative"] == [] == reference["negative"]
    for name, info in reference["infos"].items():  # theta' = s theta: I' = I / s^2
        np.testing.assert_allclose(scaled["infos"][name] * scale**2, info, rtol=1e-4, err_msg=name)
    for name, p in reference["p_values"].items():
        np.testing.assert_allclose(scaled["p_values"][name], p, rtol=1e-4, atol=1e-6, err_msg=name)
    ref_d, sc_d = reference["diagnostics"], scaled["diagnostics"]
    assert sc_d["full_over_truth"] == pytest.approx(ref_d["full_over_truth"], rel=1e-4)
    np.testing.assert_allclose(np.asarray(sc_d["mean_score"]) * scale, ref_d["mean_score"], rtol=1e-3, atol=1e-6)
