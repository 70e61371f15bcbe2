"""Unweighting of weighted events at many parameter points, and exact per-event weights by morphing.

All functions only use the :class:`~skminer.events.EventSet` contract (``weights_at``, ``weight_gradients_at``,
``cross_section``, ``cross_section_gradient``, ``__getitem__``), so they work for any event source whose weights
morph.

Cost: unweighting at ``n_theta`` points evaluates the weights of all ``n_events`` events at all points, i.e.
``O(n_events * n_theta)`` work, in blocks of at most ``max_elements`` numbers (memory stays bounded). The
per-event quantities of the drawn events cost ``O(n_drawn * block)`` with small blocks of points.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from .._random import check_random_state

__all__ = ["unweight", "event_weights", "joint_log_likelihoods", "NEGATIVE_WEIGHT_POLICIES"]

logger = logging.getLogger(__name__)

NEGATIVE_WEIGHT_POLICIES = ("clip", "raise")

#: Relative size below which negative morphed weights count as rounding noise (clipped silently).
NEGATIVE_TOLERANCE = 1e-12


def _as_thetas(theta: Any, n_params: int, name: str = "theta") -> np.ndarray:
    arr = np.asarray(theta, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != n_params:
        raise ValueError(f"{name} must have shape (n_theta, {n_params}), got {np.shape(theta)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    return arr


def unweight(events: Any, theta: Any, n_samples: int | np.ndarray, random_state: Any = None,
             negative_weights: str = "clip", max_elements: int = 10_000_000) -> tuple[np.ndarray, np.ndarray]:
    """Draw events with probability proportional to their weight, at several parameter points at once.

    Draws are with replacement (like MadMiner). For each point the weights of all events are computed by
    morphing (``events.weights_at``), accumulated (``cumsum``) and sampled by ``searchsorted`` on uniform
    numbers; there is no Python loop over events.

    Parameters
    ----------
    events : EventSet
        Weighted events (a training split: see :meth:`EventSet.train_test_split`).
    theta : array-like, shape (n_theta, n_params) or (n_params,)
        Parameter points.
    n_samples : int or array-like of int, shape (n_theta,)
        Number of draws per point (the same for every point if an int).
    random_state : None, int or numpy Generator
        Seed.
    negative_weights : {"clip", "raise"}
        Negative weights at a point (e.g. NLO samples) are set to zero for the draw with a logged warning
        counting them (``"clip"``), or raise a ``ValueError`` (``"raise"``). Negative values smaller than
        ``1e-12`` of the largest weight are morphing round-off and always clipped silently.
    max_elements : int
        Largest block of weights (``n_events * n_points``) held in memory at once.

    Returns
    -------
    rows : ndarray of int, shape (n_total,)
        Indices of the drawn events, grouped by point: first the draws at point 0, then point 1, ...
    theta_index : ndarray of int, shape (n_total,)
        For each draw the index of its point in ``theta``.
    """
    if negative_weights not in NEGATIVE_WEIGHT_POLICIES:
        raise ValueError(f"negative_weights must be one of {NEGATIVE_WEIGHT_POLICIES}, got {negative_weights!r}")
    n_params = int(events.space.n_parameters)
    thetas = _as_thetas(theta, n_params)
    n_theta = thetas.shape[0]
    counts = np.broadcast_to(np.asarray(n_samples), (n_theta,))
    if np.any(counts < 0) or not np.all(counts == np.round(counts)):
        raise ValueError(f"n_samples must be non-negative integers, got {n_samples!r}")
    counts = counts.astype(np.int64)
    rng = check_random_state(random_state)
    n_events = len(events)
    if n_events == 0:
        raise ValueError("cannot unweight an empty EventSet")
    block = max(1, int(max_elements) // n_events)
    rows = np.empty(int(counts.sum()), dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    n_negative = np.zeros(n_theta, dtype=np.int64)
    negative_fraction = np.zeros(n_theta)
    n_effective = np.zeros(n_theta)
    active = np.flatnonzero(counts > 0)
    tiny = np.finfo(float).tiny
    for b in range(0, active.size, block):
        pts = active[b:b + block]
        raw = np.asarray(events.weights_at(thetas[pts]), dtype=np.float64).reshape(n_events, pts.size)
        lowest = raw.min(axis=0)
        scale = np.maximum(raw.max(axis=0), -lowest) if np.any(lowest < 0) else 0.0
        if np.any(lowest < -NEGATIVE_TOLERANCE * scale):
            negative = raw < -NEGATIVE_TOLERANCE * scale[None, :]
            n_negative[pts] = negative.sum(axis=0)
            neg_sum = -np.sum(np.where(negative, raw, 0.0), axis=0)
            pos_sum = np.sum(np.where(raw > 0, raw, 0.0), axis=0)
            negative_fraction[pts] = neg_sum / np.maximum(pos_sum, tiny)
            del negative
            if negative_weights == "raise":
                j = pts[int(np.argmax(n_negative[pts] > 0))]
                raise ValueError(f"{n_negative[j]} events have negative weights at theta={thetas[j].tolist()} "
                                 "(negative_weights='raise'); use negative_weights='clip' to ignore them")
        # weights_at normally returns a fresh array (often a Fortran-ordered transpose, so owndata is False):
        # clip and accumulate it in place unless it could alias the events' own weights
        if raw.flags.writeable and not np.may_share_memory(raw, np.asarray(events.weights)):
            w = np.maximum(raw, 0.0, out=raw) if np.any(lowest < 0) else raw
        else:
            w = np.maximum(raw, 0.0)  # a new array: the events' own weights are never modified
        del raw
        sum_sq = np.einsum("ij,ij->j", w, w)
        np.cumsum(w, axis=0, out=w)  # columns are contiguous when weights_at returns Fortran order
        total = w[-1]
        empty = total <= 0
        if np.any(empty):
            j = pts[int(np.argmax(empty))]
            raise ValueError(f"all event weights are zero or negative at theta={thetas[j].tolist()}; "
                             "cannot draw events there")
        n_effective[pts] = total**2 / np.maximum(sum_sq, tiny)
        for c, j in enumerate(pts):  # one vectorised search per point (never per event)
            cum = w[:, c]
            last_positive = np.searchsorted(cum, cum[-1], side="left")  # the last event with positive weight
            u = rng.random(counts[j]) * cum[-1]
            idx = np.searchsorted(cum, u, side="right")
            rows[offsets[j]:offsets[j + 1]] = np.minimum(idx, last_positive)
    if np.any(n_negative):
        logger.warning("unweighting: clipped negative weights to zero at %d of %d parameter points (up to %d "
                       "events, up to %.3g of the positive cross section)", int(np.sum(n_negative > 0)), n_theta,
                       int(n_negative.max()), float(negative_fraction.max()))
    reused = (counts > n_effective) & (counts > 0)
    if np.any(reused):
        j = int(np.argmax(np.where(reused, counts / np.maximum(n_effective, 1e-300), 0.0)))
        logger.warning("unweighting: at %d of %d parameter points more events are drawn than the effective "
                       "number of weighted events (worst: %d draws, %.1f effective events at theta=%s); "
                       "events repeat in the sample", int(reused.sum()), n_theta, int(counts[j]),
                       float(n_effective[j]), thetas[j].tolist())
    theta_index = np.repeat(np.arange(n_theta), counts)
    return rows, theta_index


def event_weights(events: Any, rows: np.ndarray, theta: Any, theta_index: np.ndarray | None = None,
                  gradients: bool = False, max_elements: int = 10_000_000) -> tuple[np.ndarray, np.ndarray | None]:
    """Weights (and their ``theta`` gradients) of selected events, each at its own parameter point.

    Parameters
    ----------
    events : EventSet
    rows : array-like of int, shape (n,)
        Event indices (repeats allowed).
    theta : array-like, shape (n_theta, n_params) or (n_params,)
        Parameter points.
    theta_index : array-like of int, shape (n,), optional
        Point of each row (default: all rows at point 0).
    gradients : bool
        Also return ``grad_theta w``.
    max_elements : int
        Largest block evaluated at once.

    Returns
    -------
    w : ndarray, shape (n,)
    grad : ndarray, shape (n, n_params), or None
    """
    n_params = int(events.space.n_parameters)
    thetas = _as_thetas(theta, n_params)
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    n = rows.shape[0]
    owner = np.zeros(n, dtype=np.int64) if theta_index is None else np.asarray(theta_index, np.int64).reshape(-1)
    if owner.shape != (n,):
        raise ValueError(f"theta_index must have one entry per row ({n}), got shape {np.shape(theta_index)}")
    if n and (owner.min() < 0 or owner.max() >= thetas.shape[0]):
        raise ValueError(f"theta_index must lie in [0, {thetas.shape[0]}), got range [{owner.min()}, {owner.max()}]")
    w = np.empty(n)
    grad = np.empty((n, n_params)) if gradients else None
    if n == 0:
        return w, grad
    order = np.argsort(owner, kind="stable")
    sorted_owner = owner[order]
    used = np.unique(sorted_owner)
    # blocks of points such that (rows in block) x (points in block) stays below max_elements
    per_point = n / used.size
    block = max(1, int(np.sqrt(max_elements / max(per_point, 1.0))))
    for b in range(0, used.size, block):
        pts = used[b:b + block]
        lo = np.searchsorted(sorted_owner, pts[0], side="left")
        hi = np.searchsorted(sorted_owner, pts[-1], side="right")
        sel = order[lo:hi]
        uniq, inverse = np.unique(rows[sel], return_inverse=True)
        sub = events[uniq]
        col = np.searchsorted(pts, owner[sel])
        wb = np.asarray(sub.weights_at(thetas[pts]), dtype=np.float64).reshape(uniq.size, pts.size)
        w[sel] = wb[inverse, col]
        if gradients:
            gb = np.asarray(sub.weight_gradients_at(thetas[pts]), dtype=np.float64)
            grad[sel] = gb.reshape(uniq.size, pts.size, n_params)[inverse, col]
    return w, grad


def joint_log_likelihoods(events: Any, rows: np.ndarray, theta: Any, theta_index: np.ndarray | None = None,
                          score: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Joint log likelihood ``log p(z|theta) + const`` and joint score of selected events from morphing.

    ``log p(z|theta) = log w(z|theta) - log sigma(theta)`` up to a ``theta``-independent constant (the weight
    is ``dsigma(z|theta)`` divided by the sampling density of ``z``), so differences between parameter points
    give the joint log likelihood ratio of eq. (8) of the MadMiner paper, and
    ``t(x, z|theta) = grad w / w - grad sigma / sigma`` is the joint score of eq. (9). ``sigma`` is
    ``events.cross_section`` (the sum of the morphed weights of all events).

    Returns
    -------
    log_p : ndarray, shape (n,)
        ``-inf`` where the weight is zero, ``nan`` where it is negative.
    t : ndarray, shape (n, n_params), or None
        ``nan`` where the weight is not positive.
    """
    n_params = int(events.space.n_parameters)
    thetas = _as_thetas(theta, n_params)
    owner = np.zeros(np.size(rows), dtype=np.int64) if theta_index is None else np.asarray(theta_index, np.int64)
    w, g = event_weights(events, rows, thetas, owner, gradients=score)
    sigma = np.asarray(events.cross_section(thetas), dtype=np.float64).reshape(thetas.shape[0])
    if np.any(sigma <= 0):
        j = int(np.argmax(sigma <= 0))
        raise ValueError(f"cross section is not positive at theta={thetas[j].tolist()} ({sigma[j]})")
    with np.errstate(divide="ignore", invalid="ignore"):
        log_p = np.log(w) - np.log(sigma)[owner]
        t = None
        if score:
            dsigma = np.asarray(events.cross_section_gradient(thetas), dtype=np.float64).reshape(-1, n_params)
            t = g / w[:, None] - (dsigma / sigma[:, None])[owner]
            t[w <= 0] = np.nan
    return log_p, t
