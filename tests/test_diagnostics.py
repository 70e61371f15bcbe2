"""Learned-model diagnostics: exact toy quantities pass, the failures of the issue are warned with their size."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import pytest

from skminer.inference import FisherInformation
from skminer.inference.diagnostics import convergence_diagnostics, ratio_diagnostics, score_diagnostics
from skminer.simulation.toy import ToySimulator

THETA_REF = np.array([0.0, 0.0])


@pytest.fixture(scope="module")
def toy_events():
    toy = ToySimulator()
    return toy, toy.simulate(20_000, random_state=5)


def _score_inputs(toy, events):
    return (events.weights_at(THETA_REF), events.weight_gradients_at(THETA_REF), toy.score(events.x, THETA_REF))


def test_exact_score_passes(toy_events, caplog):
    toy, events = toy_events
    w, g, t = _score_inputs(toy, events)
    with caplog.at_level(logging.WARNING, logger="skminer.inference.diagnostics"):
        out = score_diagnostics(t, w, g, 100.0)
    assert out["violations"] == [] and caplog.text == ""
    assert np.all(np.abs(out["mean_score"]) < 3 * np.asarray(out["mean_score_error"]))
    assert out["full_over_truth"] < 1.0  # detector-level information is below the parton-level one


def test_biased_and_inflated_scores_are_warned(toy_events, caplog):
    """The issue's SALLY after two epochs: mean t_hat 0.26 and full information far above the truth."""
    toy, events = toy_events
    w, g, t = _score_inputs(toy, events)
    with caplog.at_level(logging.WARNING, logger="skminer.inference.diagnostics"):
        out = score_diagnostics(t + np.array([0.26, 0.0]), w, g, 100.0)
    assert out["mean_score"][0] == pytest.approx(0.26, abs=0.02)
    assert "weighted mean of t_hat[0] at the reference is 0.25" in caplog.text and "standard errors" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="skminer.inference.diagnostics"):
        out = score_diagnostics(3.0 * t, w, g, 100.0)
    assert out["full_over_truth"] > 1.5 and out["excess_significance"] > 3
    assert "full information exceeds the truth-level information by a factor" in caplog.text
    # FisherInformation keeps the diagnostics of the last full information it computed
    fisher = FisherInformation(events)
    inflated = SimpleNamespace(capabilities=frozenset({"score"}),  # the inference protocol, nothing more
                               score_at=lambda x, theta=None: 3.0 * toy.score(x, THETA_REF))
    fisher.full_information(THETA_REF, inflated, 100.0)
    assert fisher.diagnostics_["full_over_truth"] == pytest.approx(out["full_over_truth"], rel=1e-6)


def test_ratio_closure_and_calibration(toy_events, caplog):
    toy, events = toy_events
    theta0 = np.array([[0.5, -0.5], [-0.8, 0.3]])

    def exact(x, th0):
        return toy.log_ratio(x, np.broadcast_to(th0, (len(x), th0.size)), THETA_REF, paired=True)

    with caplog.at_level(logging.WARNING, logger="skminer.inference.diagnostics"):
        out = ratio_diagnostics(exact, events.x, events.weights_at, theta0, THETA_REF)
    assert out["violations"] == [] and caplog.text == ""
    for point in out["points"]:
        assert point["mean_r_hat"] == pytest.approx(1.0, abs=3 * point["mean_r_hat_error"] + 1e-3)
        cal = point["calibration"]
        np.testing.assert_allclose(cal["log_r_hat"], cal["log_r_true"], atol=0.05)
    with caplog.at_level(logging.WARNING, logger="skminer.inference.diagnostics"):
        bad = ratio_diagnostics(lambda x, th0: 2.0 * exact(x, th0), events.x, events.weights_at, theta0, THETA_REF)
    assert len(bad["violations"]) == 2 and "where the true ratio averages to 1" in caplog.text
    cal = bad["points"][0]["calibration"]
    assert np.max(np.abs(np.subtract(cal["log_r_hat"], cal["log_r_true"]))) > 0.2


def test_convergence_warning(caplog):
    still_falling = SimpleNamespace(n_epochs_=3, best_epoch_=3, validation_loss_curve_=[1.0, 0.9, 0.8])
    converged = SimpleNamespace(n_epochs_=9, best_epoch_=4, validation_loss_curve_=[1.0, 0.9, 0.8, 0.7, 0.71, 0.72,
                                                                                  0.72, 0.73, 0.74])
    with caplog.at_level(logging.WARNING, logger="skminer.inference.diagnostics"):
        assert convergence_diagnostics(converged)["violations"] == []
        out = convergence_diagnostics(still_falling, label="SALLY")
    assert out["members"] == [{"n_epochs": 3, "best_epoch": 3, "lowest_validation_epoch": 3,
                               "last_improvement": pytest.approx(0.125)}]
    assert ("SALLY: training did not converge: the validation loss was still falling after max_epochs=3 epochs: it "
            "fell in each of epochs 2-3") in caplog.text
    # the final weights kept although an earlier epoch validated lower (not significantly): converged
    kept_final = SimpleNamespace(n_epochs_=9, best_epoch_=9, validation_loss_curve_=converged.validation_loss_curve_)
    assert convergence_diagnostics(kept_final)["violations"] == []
    no_validation = SimpleNamespace(n_epochs_=3, best_epoch_=3, validation_loss_curve_=None,
                                    loss_curve_=[1.0, 0.9, 0.8995])  # flat at the end: no warning
    assert convergence_diagnostics(no_validation)["violations"] == []
    ensemble = SimpleNamespace(estimators_=[converged, still_falling])
    assert convergence_diagnostics(ensemble)["violations"][0].startswith("member 1 did not converge")
    # skminer's Ensemble keeps its fitted members in members_ (it has an unfitted template in `estimator`)
    ours = SimpleNamespace(members_=[still_falling, converged], estimator=SimpleNamespace())
    assert convergence_diagnostics(ours)["violations"][0].startswith("member 0 did not converge")


def test_convergence_of_a_pipeline_is_that_of_its_final_step():
    """A Pipeline was skipped: {'members': [], 'violations': []} whatever its estimator did."""
    from sklearn.pipeline import Pipeline as SkPipeline
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skminer import Pipeline
    from skminer.estimators import SALLY

    still_falling = SimpleNamespace(n_epochs_=3, best_epoch_=3, validation_loss_curve_=[1.0, 0.9, 0.8])
    for cls in (SkPipeline, Pipeline):
        out = convergence_diagnostics(cls([("scale", StandardScaler()), ("model", still_falling)]))
        assert len(out["members"]) == 1 and out["violations"][0].startswith("training did not converge")
        nested = cls([("inner", cls([("scale", StandardScaler()), ("model", still_falling)]))])
        assert convergence_diagnostics(nested)["members"] == out["members"]
    ensemble = SimpleNamespace(members_=[make_pipeline(StandardScaler(), still_falling)] * 2)
    assert len(convergence_diagnostics(ensemble)["violations"]) == 2
    x = np.random.default_rng(0).normal(size=(200, 2))
    fitted = make_pipeline(StandardScaler(), SALLY(hidden_layer_sizes=(4,), max_epochs=2, random_state=0))
    out = convergence_diagnostics(fitted.fit(x, x[:, 0] + 0.1 * x[:, 1]))
    assert out["members"][0]["n_epochs"] == 2


def test_a_diverged_fit_is_a_convergence_violation(caplog):
    """The divergence that fit warns about also goes into the diagnostics (and results.json)."""
    diverged = SimpleNamespace(n_epochs_=2, best_epoch_=2, validation_loss_curve_=[5.0, 4.0],
                               loss_curve_=[732.0, 101.0], initial_loss_=1.09)
    with caplog.at_level(logging.WARNING, logger="skminer.inference.diagnostics"):
        out = convergence_diagnostics(diverged, label="SALLY")
    assert out["violations"] == [
        "training diverged: the training loss of the kept epoch 2 is 101, more than 10 times the magnitude of the "
        "untrained network's loss 1.09 above it (epoch 1: 732, epoch 2: 101); lower lr"]
    assert "SALLY: training diverged" in caplog.text
    fine = SimpleNamespace(**{**vars(diverged), "loss_curve_": [1.0, 0.9], "validation_loss_curve_": [1.0, 1.1]})
    assert convergence_diagnostics(fine)["violations"] == []
