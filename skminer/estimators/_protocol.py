"""Helpers of the inference protocol shared by every estimator (parameter points, grid evaluation).

The protocol itself is documented in ``docs/architecture.md``: ``predict_log_ratio(X, theta0, theta1=None)``,
``score_at(X, theta=None)``, ``log_likelihood(X, theta)`` and the ``capabilities`` frozenset. Parameter
arguments of these methods are *points*, not per-event rows: one point ``(n_parameters,)`` gives one value per
event, a grid ``(n_theta, n_parameters)`` gives ``(n_theta, n_events, ...)``. Per-event parameters (rows aligned
with ``X``, as in training samples) go through the scikit-learn methods ``predict`` / ``predict_proba`` /
``score`` with ``theta=...`` metadata instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._metadata import GridShapeWarning
from .._warnings import warn_user

__all__ = ["parameter_points", "one_point", "evaluate_grid"]


def parameter_points(theta: Any, n_parameters: int, name: str, owner: str, n_events: int | None = None,
                     ) -> tuple[np.ndarray, bool]:
    """Parse a protocol parameter argument into a grid of points.

    Parameters
    ----------
    theta : array-like of shape (n_parameters,) or (n_theta, n_parameters)
        One point, or a grid of points. With one parameter a 1-D array of several values is a grid.
    n_parameters : int
        Number of theory parameters the estimator was trained with.
    name, owner : str
        Argument and class name for error messages.
    n_events : int, optional
        Number of events; a grid with exactly one row per event (> 1) draws a warning, because it usually means
        per-event parameters meant for ``predict(X, theta=...)``.

    Returns
    -------
    points : ndarray of shape (n_theta, n_parameters)
    single : bool
        Whether ``theta`` was one point (the caller then returns the first grid entry).

    Raises
    ------
    ValueError
        On a wrong shape (the message names the argument and the expected shapes) or non-finite values.
    """
    if theta is None:
        raise ValueError(f"{owner}: {name} is required")
    th = np.asarray(theta, dtype=np.float64)
    single = th.ndim <= 1 and th.size == n_parameters
    if th.ndim == 0 or single:
        th = th.reshape(1, -1)
    elif th.ndim == 1 and n_parameters == 1:
        th = th.reshape(-1, 1)
    if th.ndim != 2 or th.shape[1] != n_parameters or th.shape[0] < 1:
        raise ValueError(f"{owner}: {name} must be one parameter point of shape ({n_parameters},) or a grid of "
                         f"shape (n_theta, {n_parameters}), got shape {np.shape(theta)}")
    if not np.all(np.isfinite(th)):
        raise ValueError(f"{owner}: {name} contains NaN or inf")
    if not single and n_events is not None and n_events > 1 and th.shape[0] == n_events:
        warn_user(f"{owner}: {name} has one row per event ({n_events}); protocol methods evaluate every event "
                      "at every row (a grid, result shape (n_theta, n_events)). For one parameter point per event "
                      "use predict(X, theta=...).", GridShapeWarning)
    return th, single


def one_point(theta: Any, n_parameters: int, name: str, owner: str) -> np.ndarray:
    """One finite parameter point of shape ``(n_parameters,)``; ``ValueError`` naming ``name`` otherwise."""
    th = np.asarray(theta, dtype=np.float64)
    if th.size != n_parameters or th.ndim > 2 or (th.ndim == 2 and th.shape[0] != 1):
        raise ValueError(f"{owner}: {name} must be one parameter point of shape ({n_parameters},), got shape "
                         f"{np.shape(theta)}")
    th = th.reshape(n_parameters)
    if not np.all(np.isfinite(th)):
        raise ValueError(f"{owner}: {name} contains NaN or inf")
    return th


def evaluate_grid(evaluate: Callable[..., np.ndarray], X: np.ndarray, rows: np.ndarray, batch_size: int,
                  grad: bool = False) -> np.ndarray:
    """Evaluate ``evaluate(fn_arrays=[x, theta], grad)`` for every event at every parameter row.

    Parameters
    ----------
    evaluate : callable
        ``evaluate([x_block, theta_block], grad) -> ndarray`` with one output row per input row (the estimator's
        batched evaluation).
    X : ndarray of shape (n_events, n_features)
    rows : ndarray of shape (n_theta, k)
        Network parameter inputs, one row per grid point.
    batch_size : int
        Approximate number of (event, point) rows per block.
    grad : bool
        Enable autograd (scores).

    Returns
    -------
    ndarray of shape (n_theta, n_events, ...)
    """
    n = X.shape[0]
    k = rows.shape[0]
    if n == 0:
        raise ValueError("no events to evaluate")
    per_block = max(1, batch_size // n)
    outs = []
    for start in range(0, k, per_block):
        block = rows[start:start + per_block]
        m = block.shape[0]
        xb = X if m == 1 else np.tile(X, (m, 1))
        tb = np.repeat(block, n, axis=0)
        out = np.asarray(evaluate([xb, tb], grad))
        outs.append(out.reshape(m, n, *out.shape[1:]))
    return np.concatenate(outs, axis=0)
