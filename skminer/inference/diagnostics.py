"""Sanity checks of learned models against identities that the true score and likelihood ratio satisfy.

A trained network gives numbers whether or not it learned the score or the likelihood ratio. These checks use
exact identities of the true quantities, evaluated on weighted test events (arXiv:1907.10621, sec. "Is the
neural network a black box?", and arXiv:1805.00020):

* the expected score at the reference point vanishes, ``E_ref[t(x|theta_ref)] = 0``;
* the detector-level Fisher information cannot exceed the truth-level one, ``I_full <= I_truth``;
* the likelihood ratio integrates to one, ``E_theta1[r(x|theta0, theta1)] = 1``, and is calibrated: in bins of
  ``r_hat`` the ratio of the weighted event densities at ``theta0`` and ``theta1`` equals ``r_hat``;
* training converged: the best validation epoch is not the last one.

Each check returns its numbers with statistical errors from the test events; a violation beyond
:data:`N_SIGMA` standard errors (and, where a tiny but significant bias is harmless, beyond
:data:`MIN_RELEVANT` of the quantity's own spread) is logged as a WARNING with its size.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import linalg

from ..pipeline import final_step

__all__ = ["score_diagnostics", "ratio_diagnostics", "convergence_diagnostics", "N_SIGMA", "MIN_RELEVANT"]

logger = logging.getLogger(__name__)

#: Standard errors beyond which a deviation from an identity counts as a violation.
N_SIGMA = 3.0
#: Smallest relative size of a violation worth a warning (mean score relative to its standard deviation,
#: deviation of E[r_hat] from 1).
MIN_RELEVANT = 0.01


def _weighted_mean_and_error(values: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted mean, its standard error (events as independent draws) and the weighted standard deviation."""
    total = weights.sum()
    mean = weights @ values / total
    resid = values - mean
    error = np.sqrt((weights**2) @ resid**2) / abs(total)
    std = np.sqrt(np.abs(weights @ resid**2 / total))
    return mean, error, std


def score_diagnostics(t_hat: np.ndarray, weights: np.ndarray, weight_gradients: np.ndarray, luminosity: float,
                      *, label: str = "score estimator") -> dict[str, Any]:
    """Mean estimated score at the reference and full vs truth-level Fisher information.

    Parameters
    ----------
    t_hat : ndarray, shape (n_events, n)
        Estimated score at the reference point.
    weights : ndarray, shape (n_events,)
        Event weights at the reference point (pb).
    weight_gradients : ndarray, shape (n_events, n)
        Their gradients with respect to the parameters.
    luminosity : float
        Integrated luminosity in pb^-1.
    label : str
        Name in the messages.

    Returns
    -------
    dict
        ``mean_score``, ``mean_score_error``, ``score_std`` (per component); ``full_over_truth``: the largest
        generalised eigenvalue of ``I_full v = lambda I_truth v`` (above 1 where the full information exceeds the
        truth), ``excess_direction`` (its ``v``, normalised), ``excess_significance`` (the excess
        ``v^T (I_full - I_truth) v`` in standard errors) and ``violations`` (messages).
    """
    t = np.asarray(t_hat, dtype=np.float64).reshape(len(weights), -1)
    w = np.asarray(weights, dtype=np.float64)
    g = np.asarray(weight_gradients, dtype=np.float64).reshape(len(w), -1)
    lumi = float(luminosity)
    violations: list[str] = []
    mean, error, std = _weighted_mean_and_error(t, w)
    for k in range(t.shape[1]):
        if abs(mean[k]) > N_SIGMA * error[k] and abs(mean[k]) > MIN_RELEVANT * std[k]:
            violations.append(f"weighted mean of t_hat[{k}] at the reference is {mean[k]:.4g} +- {error[k]:.2g} "
                              f"({abs(mean[k]) / error[k]:.1f} standard errors, {abs(mean[k]) / std[k]:.3g} of its "
                              "spread) where the true score averages to 0")
    ok = w > 0
    rate = lumi / w.sum() * np.outer(g.sum(axis=0), g.sum(axis=0))
    full = lumi * (t[ok].T * w[ok]) @ t[ok] + rate
    scaled = g[ok] / np.sqrt(w[ok])[:, None]
    truth = lumi * scaled.T @ scaled
    try:
        values, vectors = linalg.eigh(full, truth)  # scale-free: relative to the truth in every direction
    except (linalg.LinAlgError, ValueError):
        values, vectors = np.linalg.eigh(full - truth)
    v = vectors[:, -1] / np.linalg.norm(vectors[:, -1])
    ratio = float(values[-1])
    # per-event contributions to v^T (I_full - I_truth) v (the rate term is common to both)
    per_event = lumi * (w[ok] * (t[ok] @ v) ** 2 - (g[ok] @ v) ** 2 / w[ok])
    excess = float(v @ (full - truth) @ v)
    n = per_event.size
    sigma = float(np.sqrt(n / max(n - 1, 1) * np.sum((per_event - per_event.mean()) ** 2))) if n else 0.0
    significance = excess / sigma if sigma > 0 else (np.inf if excess > 0 else 0.0)
    if excess > 0 and significance > N_SIGMA:
        violations.append(f"full information exceeds the truth-level information by a factor {ratio:.4g} along "
                          f"theta direction {np.round(v, 4).tolist()} ({significance:.1f} standard errors); no "
                          "detector-level information can, so t_hat is not the score")
    for message in violations:
        logger.warning("%s: %s", label, message)
    return {"mean_score": mean.tolist(), "mean_score_error": error.tolist(), "score_std": std.tolist(),
            "full_over_truth": ratio, "excess_direction": v.tolist(), "excess_significance": float(significance),
            "violations": violations}


def ratio_diagnostics(log_ratio: Callable[[np.ndarray, np.ndarray], np.ndarray], x: np.ndarray,
                      weights_at: Callable[[np.ndarray], np.ndarray], theta0: np.ndarray, theta1: np.ndarray,
                      *, n_bins: int = 10, label: str = "ratio estimator") -> dict[str, Any]:
    """Closure ``E_theta1[r_hat(x|theta0, theta1)] = 1`` and the calibration curve at several ``theta0``.

    Parameters
    ----------
    log_ratio : callable
        ``log_ratio(X, theta0) -> (n,)`` estimates ``log r(x|theta0, theta1)`` at one point ``theta0`` of shape
        ``(n_parameters,)``.
    x : ndarray, shape (n_events, n_observables)
        Test events.
    weights_at : callable
        ``weights_at(theta) -> (n_events,)`` event weights at a parameter point.
    theta0 : ndarray, shape (n_points, n_parameters)
        Numerator points checked.
    theta1 : ndarray, shape (n_parameters,)
        The estimator's denominator.
    n_bins : int
        Bins of ``log r_hat`` (equal ``theta1`` cross section) for the calibration curve.
    label : str
        Name in the messages.

    Returns
    -------
    dict
        ``points``: per ``theta0``, ``{"theta0", "mean_r_hat", "mean_r_hat_error", "calibration": {"log_r_hat",
        "log_r_true"}}`` (per bin of ``log r_hat``: the log of the ``theta1``-average of ``r_hat`` and the log of the
        ratio of the bin's probabilities at ``theta0`` and ``theta1``; equal for a calibrated estimator), and
        ``violations``.
    """
    x = np.asarray(x, dtype=np.float64)
    w1 = np.asarray(weights_at(np.asarray(theta1, dtype=np.float64)), dtype=np.float64).reshape(-1)
    sigma1 = w1.sum()
    out: dict[str, Any] = {"theta1": np.asarray(theta1, float).tolist(), "points": [], "violations": []}
    for th0 in np.atleast_2d(np.asarray(theta0, dtype=np.float64)):
        lr = np.asarray(log_ratio(x, th0), dtype=np.float64).reshape(-1)
        r = np.exp(np.clip(lr, -50.0, 50.0))
        mean, error, _ = _weighted_mean_and_error(r[:, None], w1)
        w0 = np.asarray(weights_at(th0), dtype=np.float64).reshape(-1)
        edges = np.unique(_quantiles(lr, np.clip(w1, 0.0, None), n_bins))
        index = np.searchsorted(edges, lr, side="right")
        p0 = np.bincount(index, weights=w0, minlength=edges.size + 1) / w0.sum()
        norm = np.bincount(index, weights=w1, minlength=edges.size + 1)
        p1 = norm / sigma1
        # in every bin the theta1-average of r_hat must equal the ratio of the bin's probabilities
        pred = np.bincount(index, weights=w1 * r, minlength=edges.size + 1)
        good = (p0 > 0) & (p1 > 0) & (norm > 0) & (pred > 0)
        calibration = {"log_r_hat": np.log(pred[good] / norm[good]).tolist(),
                       "log_r_true": np.log(p0[good] / p1[good]).tolist()}
        out["points"].append({"theta0": th0.tolist(), "mean_r_hat": float(mean[0]),
                              "mean_r_hat_error": float(error[0]), "calibration": calibration})
        dev = float(mean[0] - 1.0)
        if abs(dev) > N_SIGMA * error[0] and abs(dev) > MIN_RELEVANT:
            out["violations"].append(f"E_theta1[r_hat(x|theta0={np.round(th0, 6).tolist()}, theta1)] = "
                                     f"{mean[0]:.4g} +- {error[0]:.2g} where the true ratio averages to 1 "
                                     f"({abs(dev) / error[0]:.1f} standard errors)")
    for message in out["violations"]:
        logger.warning("%s: %s", label, message)
    return out


def _quantiles(values: np.ndarray, weights: np.ndarray, n_bins: int) -> np.ndarray:
    order = np.argsort(values)
    cum = np.cumsum(weights[order])
    if cum[-1] <= 0:
        return np.zeros(0)
    pos = np.searchsorted(cum / cum[-1], np.arange(1, n_bins) / n_bins)
    return values[order][np.clip(pos, 0, values.size - 1)]


def _divergence(member: Any) -> str | None:
    """:func:`~skminer.estimators._divergence.training_divergence` of a fitted member (None without a loss curve)."""
    curve = getattr(member, "loss_curve_", None)
    if not curve:
        return None
    from ..estimators._divergence import training_divergence  # torch: only for fitted neural estimators

    return training_divergence(curve, getattr(member, "initial_loss_", None),
                               int(getattr(member, "best_epoch_", len(curve))))


def convergence_diagnostics(estimator: Any, *, label: str = "estimator") -> dict[str, Any]:
    """Whether training stopped while the validation loss was still falling, or diverged.

    Reads ``n_epochs_``, ``best_epoch_`` and ``validation_loss_curve_`` (or ``loss_curve_``) of the estimator, or
    of every member of an ensemble (:class:`~skminer.estimators.Ensemble`'s ``members_``, or ``estimators_``); of
    a (scikit-learn or skminer) pipeline, those of its final step. "Still falling" is the rule fit warns with
    (``ConvergenceWarning``, :func:`skminer.estimators._convergence.training_unconverged`): the monitored loss fell
    in every one of the last ``max(2, ceil(n_epochs / 5))`` epochs of a fit that ran all ``max_epochs``, by more
    than 2% of its total fall per epoch. A training loss that became non-finite, or a kept epoch far above the
    untrained network's loss ``initial_loss_``, is a violation too (the check that fit warns with,
    :func:`skminer.estimators._divergence.training_divergence`).

    Returns
    -------
    dict
        Per member ``{"n_epochs", "best_epoch", "last_improvement"}`` (relative decrease of the monitored loss in
        the last epoch) and ``violations``.
    """
    estimator = final_step(estimator)
    members = [final_step(m) for m in getattr(estimator, "members_", None) or getattr(estimator, "estimators_", None)
               or [getattr(estimator, "estimator", estimator)]]
    out: dict[str, Any] = {"members": [], "violations": []}
    for i, m in enumerate(members):
        n_epochs, best = getattr(m, "n_epochs_", None), getattr(m, "best_epoch_", None)
        validation = getattr(m, "validation_loss_curve_", None)
        curve = validation or getattr(m, "loss_curve_", None)
        if n_epochs is None or best is None or not curve:
            continue
        last = float((curve[-2] - curve[-1]) / abs(curve[-1])) if len(curve) > 1 and curve[-1] != 0 else 0.0
        # the epoch of lowest validation loss, not the kept one: epoch selection may keep the final weights
        # although an earlier epoch validated lower (skminer.estimators._training.FinalUnlessWorse)
        lowest = int(np.argmin(validation)) + 1 if validation else int(best)
        out["members"].append({"n_epochs": int(n_epochs), "best_epoch": int(best), "lowest_validation_epoch": lowest,
                               "last_improvement": last})
        who = f"member {i}" if len(members) > 1 else "training"
        diverged = _divergence(m)
        if diverged is not None:
            out["violations"].append(f"{diverged}; lower lr" if len(members) == 1 else f"{who}: {diverged}; lower lr")
        else:  # the rule fit warns with (ConvergenceWarning)
            from ..estimators._convergence import (  # the estimators package imports torch
                initial_monitored_loss,
                training_unconverged,
            )

            why = training_unconverged(curve, initial_monitored_loss(m), getattr(m, "max_epochs", n_epochs),
                                       "validation" if validation else "training")
            if why is not None:
                out["violations"].append(f"{who} did not converge: {why}; train longer (raise max_epochs)")
    for message in out["violations"]:
        logger.warning("%s: %s", label, message)
    return out
