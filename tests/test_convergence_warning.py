"""Fit warns (ConvergenceWarning) when it ran all max_epochs while its monitored loss was still falling."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from toy_data import local_sample, ratio_sample

from skminer.estimators import CARL, SALLY
from skminer.estimators._convergence import MIN_FALL_PER_EPOCH, epoch_loss_error, training_unconverged
from skminer.inference.diagnostics import convergence_diagnostics


def test_rule_on_curves():
    falling = [0.9, 0.8, 0.7]
    why = training_unconverged(falling, 1.0, max_epochs=3)
    assert why is not None and "epochs 2-3" in why and "max_epochs=3" in why and "0.9 -> 0.7" in why
    assert "epoch 2," in training_unconverged([0.9, 0.8], 1.0, max_epochs=2)
    # stopped early (fewer epochs than max_epochs), one epoch, a non-finite curve, nothing learned: no verdict
    assert training_unconverged(falling, 1.0, max_epochs=10) is None
    assert training_unconverged([0.5], 1.0, max_epochs=1) is None
    assert training_unconverged([0.9, np.nan, 0.7], 1.0, max_epochs=3) is None
    assert training_unconverged([1.2, 1.1, 1.05], 1.0, max_epochs=3) is None
    # flattened in the last epoch, or rising in one epoch of the window: converged
    assert training_unconverged([0.9, 0.5, 0.4999], 1.0, max_epochs=3) is None
    assert training_unconverged([0.5, 0.45, 0.46, 0.40], 1.0, max_epochs=4) is None
    # a noisy plateau at a constant learning rate: falls in some epochs, not in every epoch of the window
    rng = np.random.default_rng(0)
    plateau = 0.3 + 0.7 * np.exp(-np.arange(50) / 3.0) + 0.02 * rng.normal(size=50)
    assert training_unconverged(plateau, 1.0, max_epochs=50) is None
    # relative to the fit's own total fall, not to the loss's units: the same curve scaled and shifted
    curve = np.array([1.0, 0.6, 0.45, 0.40, 0.38, 0.37, 0.365, 0.36, 0.357, 0.354])
    for scale, shift in ((1.0, 0.0), (1e-6, 0.0), (1e6, -3e6)):
        assert (training_unconverged(scale * curve + shift, scale * 1.2 + shift, max_epochs=10) is None) == (
            training_unconverged(curve, 1.2, max_epochs=10) is None)
    # the threshold: per-epoch falls just above / below MIN_FALL_PER_EPOCH of the total fall
    total = 1.0
    for factor, flagged in ((1.5, True), (0.5, False)):
        step = factor * MIN_FALL_PER_EPOCH * total
        tail = [0.0 + 3 * step, 0.0 + 2 * step, step, 0.0]
        assert (training_unconverged(tail, total + 3 * step, max_epochs=4) is not None) == flagged


def test_short_fit_warns_and_converged_fit_does_not():
    x, t = local_sample(4000, seed=0)
    with pytest.warns(ConvergenceWarning, match=r"SALLY: training did not converge: the validation loss was still "
                                                 r"falling.*raise max_epochs \(now 3\)") as record:
        SALLY(hidden_layer_sizes=(16,), max_epochs=3, random_state=0, n_threads=1).fit(x, t)
    assert record[0].filename == __file__  # points at the user's call
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est = SALLY(hidden_layer_sizes=(16,), max_epochs=30, random_state=0, n_threads=1).fit(x, t)
    assert convergence_diagnostics(est)["violations"] == []


def test_short_ratio_fit_warns_and_diagnostics_agree():
    data = ratio_sample(4000, seed=0)
    with pytest.warns(ConvergenceWarning, match="CARL: training did not converge"):
        est = CARL(hidden_layer_sizes=(16,), max_epochs=3, lr=1e-4, random_state=0, n_threads=1).fit(
            data["X"], data["y"], theta=data["theta"])
    out = convergence_diagnostics(est)
    assert len(out["violations"]) == 1 and out["violations"][0].startswith("training did not converge: the "
                                                                           "validation loss was still falling")


def test_the_validation_curve_is_judged_against_the_untrained_loss_on_its_own_rows():
    """The untrained SALLY loss on all rows of the toy's local sample was 0.95 where its validation rows gave 0.70:
    the total fall of the validation curve was overstated by the split's noise (heavy-tailed t_xz), and a fit of 3
    epochs whose validation loss still fell by 7% of its real total fall per epoch passed as converged."""
    from skminer.augmentation import LocalScoreSampler
    from skminer.simulation.toy import ToySimulator

    events = ToySimulator().simulate(40_000, random_state=0)
    sample = LocalScoreSampler(theta_ref=[0.0, 0.0]).sample(events, n_samples=3000, random_state=1)
    with pytest.warns(ConvergenceWarning, match="SALLY: training did not converge: the validation loss"):
        est = SALLY(max_epochs=3, random_state=0, n_threads=1).fit(sample.x, sample.t_xz)
    assert np.isfinite(est.initial_validation_loss_) and abs(est.initial_validation_loss_ - est.initial_loss_) > 0.1
    assert f"untrained network: {est.initial_validation_loss_:.4g}" in convergence_diagnostics(est)["violations"][0]
    # without a validation split the training curve is judged against the loss on all (training) rows
    plain = SALLY(max_epochs=2, validation_fraction=0, random_state=0, n_threads=1)
    with pytest.warns(ConvergenceWarning, match="the training loss"):
        plain.fit(sample.x, sample.t_xz)
    assert np.isnan(plain.initial_validation_loss_)


def test_no_verdict_when_nothing_measurable_was_learned():
    # pure-noise targets: the validation loss drifts by 0.1% (1.034 -> 1.033, untrained 1.04), far inside its noise
    falling = [1.038, 1.036, 1.034, 1.033]
    assert training_unconverged(falling, 1.04, max_epochs=4) is not None
    assert training_unconverged(falling, 1.04, max_epochs=4, noise=0.02) is None
    assert training_unconverged(falling, 1.04, max_epochs=4, noise=0.001) is not None
    assert training_unconverged(falling, 1.04, max_epochs=4, noise=float("nan")) is not None
    rng = np.random.default_rng(0)
    x, t = rng.normal(size=(2000, 2)), rng.normal(size=(2000, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        SALLY(max_epochs=5, random_state=0, n_threads=1).fit(x, t)
    assert np.isfinite(epoch_loss_error([1.0, 2.0, 3.0], [10, 10, 5]))
    assert np.isnan(epoch_loss_error([1.0], [10]))
