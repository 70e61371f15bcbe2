"""The range of parameter points a parameterised estimator was trained on, and a warning when asked far outside it.

A network ``f(x, theta)`` trained on theta in ``[-1, 1]^2`` returns finite numbers at ``theta = [50, 50]``; they are
an extrapolation, usually flat, and nothing in the numbers says so. The ratio and density estimators store the
per-column ``[min, max]`` of the training ``theta`` as the fitted attribute ``theta_range_`` (saved with the model)
and every prediction at parameter points goes through :func:`warn_outside_training_range`.

A point counts as outside when it lies beyond the range by more than :data:`MARGIN` times the range's width in
that column (for a column trained at a single value: that fraction of the widest column, or of the value's
magnitude when every column is a single value), so that grids spanning the prior's nominal range are not flagged
because the drawn values stop just inside it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._warnings import warn_user

__all__ = ["ExtrapolationWarning", "MARGIN", "training_range", "warn_outside_training_range"]

#: Fraction of the training range's width a point may lie beyond it before the warning.
MARGIN = 0.1

_SHOWN = 3  # worst points named in a message


class ExtrapolationWarning(UserWarning):
    """An estimator was evaluated at parameter points well outside the range of theta it was trained on."""


def training_range(theta: np.ndarray) -> list[list[float]]:
    """Per-column ``[min, max]`` of the training parameter points, as lists of floats (a fitted attribute that a
    state read with ``torch.load(weights_only=True)`` holds without conversion)."""
    theta = np.asarray(theta, dtype=np.float64)
    return [[float(lo), float(hi)] for lo, hi in zip(theta.min(axis=0), theta.max(axis=0), strict=True)]


def _tolerance(bounds: np.ndarray) -> np.ndarray:
    width = bounds[:, 1] - bounds[:, 0]
    fallback = width.max() if width.max() > 0 else np.abs(bounds).max()
    return MARGIN * np.where(width > 0, width, fallback if fallback > 0 else 1.0)


def warn_outside_training_range(estimator: Any, rows: np.ndarray, what: str = "theta") -> None:
    """Warn (:class:`ExtrapolationWarning`) when parameter ``rows`` lie outside ``estimator.theta_range_``.

    Parameters
    ----------
    estimator : estimator
        A fitted estimator; without ``theta_range_`` (a model saved before it existed) nothing is checked.
    rows : ndarray of shape (n_rows, n_columns)
        The parameter rows the network is about to be evaluated at (for a doubly parameterised estimator the
        stacked ``[theta0, theta1]``, as in training).
    what : str
        Names the rows in the message.
    """
    bounds = getattr(estimator, "theta_range_", None)
    if bounds is None:
        return
    bounds = np.asarray(bounds, dtype=np.float64)
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, bounds.shape[0])
    excess = np.maximum(bounds[:, 0] - rows, rows - bounds[:, 1]) / _tolerance(bounds)  # in units of the margin
    worst = excess.max(axis=1)
    outside = np.flatnonzero(worst > 1.0)
    if outside.size == 0:
        return
    order = outside[np.argsort(-worst[outside])][:_SHOWN]
    points = ", ".join(str([float(f"{v:.6g}") for v in rows[i]]) for i in order)
    ranges = " x ".join(f"[{lo:.4g}, {hi:.4g}]" for lo, hi in bounds)
    count = f"{outside.size} of {rows.shape[0]} points" if rows.shape[0] > 1 else "the point"
    warn_user(f"{type(estimator).__name__}: {what} {points} ({count}) lies outside the range of theta it was "
                  f"trained on, {ranges}, by more than {MARGIN:.0%} of that range's width (up to "
                  f"{worst.max() * MARGIN:.3g} widths); the network extrapolates there and its output is not "
                  "reliable", ExtrapolationWarning)
