"""Whether training stopped while the loss was still falling (the fit-time ``ConvergenceWarning``).

A network stopped too early predicts numbers as confidently as a converged one (SALLY after three epochs:
Fisher information far from the truth, no word). The rule reads only the fit's own loss curve, on the data's own
scale: the reference for "still falling" is how much the loss fell in the whole fit.

* The monitored curve is the validation loss per epoch, or the training loss without a validation split; the
  total fall is the loss of the network as initialised (:class:`~skminer.estimators._divergence.InitialLoss`), on
  the same rows as the curve (:func:`initial_monitored_loss`), minus the lowest loss of the curve. (On all rows
  instead, the untrained SALLY loss of the toy was 0.95 where its validation rows gave 0.70-1.14: the verdict
  then followed the split's noise.)
* The window is the last ``max(2, ceil(n_epochs / 5))`` epochs. The loss still falls there when it fell in every
  epoch of the window, by more than :data:`MIN_FALL_PER_EPOCH` of the total fall per epoch on average and in the
  last epoch (a curve that flattened in its last epoch counts as converged). (A
  curve that only fluctuates, as at a constant learning rate, falls in every epoch of a window of ``m`` by chance
  with a probability of about ``2^-m``, and then rarely by that much; a curve that converged under a decaying
  learning rate falls by far less per epoch.)
* A fit that stopped early (fewer epochs than ``max_epochs``) stopped because the loss no longer fell: no check.
  A fit of one epoch cannot be judged from its curve: no check. A fit whose total fall is below
  :data:`MIN_TOTAL_FALL_IN_ERRORS` standard errors of an epoch's loss (from the spread of its batches) learned
  nothing measurable (pure-noise targets drift by 0.1% of the loss): no check either.

Measured on the built-in toy (20k events, 2026-12-01): fits at the defaults (50 epochs, the learning rate decaying
tenfold) fall by 0.1-0.5% of the total per epoch at the end; 3-5 epochs by 4-9% in the last epoch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["MIN_FALL_PER_EPOCH", "MIN_TOTAL_FALL_IN_ERRORS", "epoch_loss_error", "initial_monitored_loss",
           "training_unconverged"]

#: Mean fall of the monitored loss per epoch over the final window, as a fraction of its total fall, above which
#: training counts as stopped while still falling.
MIN_FALL_PER_EPOCH = 0.02
#: A total fall of the monitored loss smaller than this many standard errors of an epoch's loss is not judged.
MIN_TOTAL_FALL_IN_ERRORS = 2.0


def initial_monitored_loss(estimator: object) -> float | None:
    """Loss of the untrained network on the rows of the monitored curve: ``initial_validation_loss_`` for a fit
    with a validation split, else ``initial_loss_`` (also for models saved before the former existed).

    Parameters
    ----------
    estimator : fitted skminer neural estimator

    Returns
    -------
    float or None
    """
    if getattr(estimator, "validation_loss_curve_", None):
        valid = getattr(estimator, "initial_validation_loss_", None)
        if valid is not None and math.isfinite(valid):
            return float(valid)
    return getattr(estimator, "initial_loss_", None)


def epoch_loss_error(losses: Sequence[float], sizes: Sequence[float],
                     reference: Sequence[float] | None = None) -> float:
    """Standard error of an epoch's loss (the size-weighted mean of its batch losses) from the spread of its
    batches, or with ``reference`` of its difference to another pass over the same batches (paired: the spread
    of the rows' own losses cancels); nan with fewer than two batches.

    Parameters
    ----------
    losses, sizes : sequence of float
        Loss and number of rows of every batch of the epoch.
    reference : sequence of float, optional
        Losses of the same batches from another pass (e.g. the untrained network's).

    Returns
    -------
    float
    """
    loss, size = np.asarray(losses, dtype=np.float64), np.asarray(sizes, dtype=np.float64)
    if reference is not None:
        ref = np.asarray(reference, dtype=np.float64)
        if ref.shape != loss.shape:
            return float("nan")
        loss = loss - ref
    if loss.size < 2 or size.sum() <= 0 or not np.all(np.isfinite(loss)):
        return float("nan")
    w = size / size.sum()
    mean = float(w @ loss)
    return float(np.sqrt(np.sum(w**2 * (loss - mean) ** 2) * loss.size / (loss.size - 1)))


def training_unconverged(curve: Sequence[float], initial_loss: float | None, max_epochs: int,
                         monitored: str = "validation", noise: float | None = None) -> str | None:
    """Why training counts as stopped while the loss was still falling, or None.

    Parameters
    ----------
    curve : sequence of float
        Monitored loss per epoch (validation loss, or training loss without a validation split).
    initial_loss : float or None
        Loss of the network as initialised, on the rows of ``curve`` (:func:`initial_monitored_loss`; None or nan:
        the curve's first epoch stands in).
    max_epochs : int
        The epoch budget: a shorter curve stopped early and is not checked.
    monitored : str
        Name of the curve in the message ("validation" or "training").
    noise : float, optional
        Standard error of the last epoch's loss (:func:`epoch_loss_error`). A total fall below
        :data:`MIN_TOTAL_FALL_IN_ERRORS` of it is no measurable learning (data with nothing to learn drift by
        fractions of their noise): no verdict. None or nan: not checked.

    Returns
    -------
    str or None
        A sentence naming the fall in the final epochs and the total fall, or None.
    """
    loss = np.asarray(curve, dtype=np.float64)
    n = loss.size
    if n < 2 or n < int(max_epochs) or not np.all(np.isfinite(loss)):
        return None
    start = float(initial_loss) if initial_loss is not None and math.isfinite(initial_loss) else float(loss[0])
    total = start - float(loss.min())
    if total <= 0.0 or (noise is not None and math.isfinite(noise) and total < MIN_TOTAL_FALL_IN_ERRORS * noise):
        return None
    m = max(2, math.ceil(n / 5))
    window = loss[-(m + 1):]
    steps = np.diff(window)  # negative: falling
    fall = -float(steps.mean())
    if not np.all(steps < 0.0) or min(fall, -float(steps[-1])) <= MIN_FALL_PER_EPOCH * total:
        return None
    epochs = f"epoch {n}" if steps.size == 1 else f"each of epochs {n - steps.size + 1}-{n}"
    return (f"the {monitored} loss was still falling after max_epochs={n} epochs: it fell in {epochs}, by "
            f"{100 * fall / total:.3g}% of the fit's total fall per epoch on average "
            f"({window[0]:.4g} -> {window[-1]:.4g}; untrained network: {start:.4g})")
