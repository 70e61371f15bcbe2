"""Unweighting of weighted events at many parameter points, and exact per-event weights by morphing.

All functions only use the :class:`~skminer.events.EventSet` contract (``weights_at``, ``weight_gradients_at``,
``cross_section``, ``cross_section_gradient``, ``__getitem__``), so they work for any event source whose weights
morph.

Cost: unweighting at ``n_theta`` points evaluates the weights of all ``n_events`` events at all points, i.e.
``O(n_events * n_theta)`` work, in tiles of :data:`TILE_ROWS` events by a block of points, at most
``max_elements`` numbers at once (memory stays bounded). An out-of-core
:class:`~skminer.events.ChunkedEventSet` is streamed in two passes over the same tiles, so it gives the same
rows as the events in memory. The per-event quantities of the drawn events cost ``O(n_drawn * block)`` with small
blocks of points.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np

from .._random import check_random_state

__all__ = ["unweight", "positive_totals", "event_weights", "joint_log_likelihoods", "NEGATIVE_WEIGHT_POLICIES"]

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
    morphing (``weights_at``), accumulated (``cumsum``) and sampled by ``searchsorted`` on uniform numbers; there is
    no Python loop over events. The weights are computed in tiles (:data:`TILE_ROWS` events x a block of points,
    ``events.iter_chunks``); an out-of-core :class:`~skminer.events.ChunkedEventSet` is streamed in two passes (the
    totals, then the draws), with each tile's running sum continuing the previous one's, and gives exactly the rows
    of the same events in memory.

    Parameters
    ----------
    events : EventSet or ChunkedEventSet
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
        Largest block of weights (``rows x points``) held in memory at once.

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
    active = np.flatnonzero(counts > 0)
    rows = np.empty(int(counts.sum()), dtype=np.int64)
    theta_index = np.repeat(np.arange(n_theta), counts)
    if active.size == 0:
        return rows, theta_index
    own_draws = getattr(events, "_unweight_rows", None)
    if own_draws is not None:  # a collection of files draws file by file (skminer.augmentation.event_files)
        rows[:] = own_draws(thetas, counts, rng, negative_weights, int(max_elements))
        return rows, theta_index
    blocks = _point_blocks(active, n_events, max_elements)
    plan = _Plan(thetas, counts, min(TILE_ROWS, n_events), negative_weights)
    if getattr(events, "out_of_core", False):
        _draw_streamed(events, plan, blocks, rows, rng)
    else:
        _draw_in_memory(events, plan, blocks, rows, rng)
    plan.log(active)
    return rows, theta_index


#: Events per tile of the weight computation (a tile is ``TILE_ROWS`` events x one block of points).
TILE_ROWS = 1 << 18


def _point_blocks(points: np.ndarray, n_events: int, max_elements: int) -> list[np.ndarray]:
    """``points`` in blocks such that ``n_events x block`` weights stay below ``max_elements`` (the same tiles of rows
    x points in memory and out of core: the same digits of every weight)."""
    n_block = max(1, min(points.size, int(max_elements) // n_events))
    return [points[b:b + n_block] for b in range(0, points.size, n_block)]


def positive_totals(events: Any, theta: Any, negative_weights: str = "clip", max_elements: int = 10_000_000
                    ) -> np.ndarray:
    """The sums over events of the weights that :func:`unweight` draws from: the morphed weights at each point with
    negative weights clipped to zero, in one pass over the events (streamed for an out-of-core set).

    Parameters
    ----------
    events : EventSet or ChunkedEventSet
    theta : array-like, shape (n_theta, n_params) or (n_params,)
    negative_weights : {"clip", "raise"}
        As :func:`unweight` (``"raise"`` raises on the first negative weight beyond round-off).
    max_elements : int
        Largest block of weights held at once.

    Returns
    -------
    ndarray, shape (n_theta,)
        In pb, like the weights; ``0`` where no weight is positive.

    Raises
    ------
    ValueError
        For an empty event set, invalid ``theta`` or ``negative_weights``, or negative weights with ``"raise"``.
    """
    if negative_weights not in NEGATIVE_WEIGHT_POLICIES:
        raise ValueError(f"negative_weights must be one of {NEGATIVE_WEIGHT_POLICIES}, got {negative_weights!r}")
    thetas = _as_thetas(theta, int(events.space.n_parameters))
    n_events = len(events)
    if n_events == 0:
        raise ValueError("cannot unweight an empty EventSet")
    plan = _Plan(thetas, np.zeros(thetas.shape[0], dtype=np.int64), min(TILE_ROWS, n_events), negative_weights)
    _streamed_totals(events, plan, _point_blocks(np.arange(thetas.shape[0]), n_events, max_elements))
    return plan.total.copy()


class _Plan:
    """Points, draws per point, tile size and the negative-weight / effective-size bookkeeping of :func:`unweight`."""

    def __init__(self, thetas: np.ndarray, counts: np.ndarray, tile_rows: int, negative_weights: str) -> None:
        self.thetas, self.counts, self.tile_rows = thetas, counts, tile_rows
        self.negative_weights = negative_weights
        self.offsets = np.concatenate([[0], np.cumsum(counts)])
        self.n_negative = np.zeros(counts.size, dtype=np.int64)
        self.negative_sum = np.zeros(counts.size)
        self.total = np.zeros(counts.size)
        self.sum_sq = np.zeros(counts.size)

    def tiles(self, events: Any) -> Iterator[tuple[int, Any]]:
        """``(first row, events)`` of consecutive tiles (``events.iter_chunks``; the whole set if it has none)."""
        iter_chunks = getattr(events, "iter_chunks", None)
        start = 0
        for tile in (iter_chunks(self.tile_rows) if iter_chunks is not None else [events]):
            yield start, tile
            start += len(tile)

    def clipped(self, tile: Any, pts: np.ndarray, out: np.ndarray | None, count: bool) -> np.ndarray:
        """Weights of ``tile`` at the points ``pts``, negatives clipped to zero, into ``out`` (``(n_tile, n_pts)``;
        ``None``: a new array); with ``count``, negatives are counted (or raise, with ``negative_weights="raise"``).
        """
        raw = np.asarray(tile.weights_at(self.thetas[pts]), dtype=np.float64).reshape(len(tile), pts.size)
        lowest = raw.min(axis=0)
        negative_any = bool(np.any(lowest < 0))
        if count and negative_any:
            self._count_negatives(raw, lowest, pts)
        if out is None:  # weights_at's fresh (Fortran-ordered) product is clipped in place, never the events' own
            fresh = raw.flags.writeable and not np.may_share_memory(raw, np.asarray(tile.weights))
            out = raw if fresh else np.array(raw, order="F")
            if negative_any:
                np.maximum(out, 0.0, out=out)
        elif negative_any:
            np.maximum(raw, 0.0, out=out)
        else:
            np.copyto(out, raw)
        if count:
            self.sum_sq[pts] += np.einsum("ij,ij->j", out, out)
        return out

    def _count_negatives(self, raw: np.ndarray, lowest: np.ndarray, pts: np.ndarray) -> None:
        scale = np.maximum(raw.max(axis=0), -lowest)
        cols = np.flatnonzero(lowest < -NEGATIVE_TOLERANCE * scale)
        if not cols.size:  # negatives below the round-off tolerance are clipped silently
            return
        sub = raw[:, cols]
        negative = sub < -NEGATIVE_TOLERANCE * scale[cols][None, :]
        self.n_negative[pts[cols]] += negative.sum(axis=0)
        self.negative_sum[pts[cols]] -= np.sum(np.where(negative, sub, 0.0), axis=0)
        if self.negative_weights == "raise":
            j = pts[cols[int(np.argmax(negative.any(axis=0)))]]
            raise ValueError(f"{int(self.n_negative[j])} events have negative weights at "
                             f"theta={self.thetas[j].tolist()} (negative_weights='raise'); use "
                             "negative_weights='clip' to ignore them")

    def check_totals(self, pts: np.ndarray) -> None:
        empty = self.total[pts] <= 0
        if np.any(empty):
            point = self.thetas[pts[int(np.argmax(empty))]].tolist()
            raise ValueError(f"all event weights are zero or negative at theta={point}; cannot draw events there")

    def log(self, active: np.ndarray) -> None:
        tiny = np.finfo(float).tiny
        if np.any(self.n_negative):
            fraction = self.negative_sum / np.maximum(self.total, tiny)
            logger.warning("unweighting: clipped negative weights to zero at %d of %d parameter points (up to %d "
                           "events, up to %.3g of the positive cross section)", int(np.sum(self.n_negative > 0)),
                           self.counts.size, int(self.n_negative.max()), float(fraction.max()))
        n_effective = self.total ** 2 / np.maximum(self.sum_sq, tiny)
        reused = (self.counts > n_effective) & (self.counts > 0)
        if np.any(reused):
            j = int(np.argmax(np.where(reused, self.counts / np.maximum(n_effective, 1e-300), 0.0)))
            logger.warning("unweighting: at %d of %d parameter points more events are drawn than the effective "
                           "number of weighted events (worst: %d draws, %.1f effective events at theta=%s); "
                           "events repeat in the sample", int(reused.sum()), self.counts.size, int(self.counts[j]),
                           float(n_effective[j]), self.thetas[j].tolist())


def _draw_in_memory(events: Any, plan: _Plan, blocks: list[np.ndarray], rows: np.ndarray,
                    rng: np.random.Generator) -> None:
    """Per block of points: the running sums over all events (tile by tile), then one search per point."""
    for pts in blocks:
        if len(events) <= plan.tile_rows:  # one tile: its weights become the running sums in place
            cum = plan.clipped(events, pts, None, count=True)
        else:
            cum = np.empty((len(events), pts.size), order="F")  # columns contiguous for cumsum / searchsorted
            for start, tile in plan.tiles(events):
                plan.clipped(tile, pts, cum[start:start + len(tile)], count=True)
        np.cumsum(cum, axis=0, out=cum)
        plan.total[pts] = cum[-1]
        plan.check_totals(pts)
        for c, j in enumerate(pts):  # one vectorised search per point (never per event)
            col = cum[:, c]
            last_positive = np.searchsorted(col, col[-1], side="left")
            u = rng.random(plan.counts[j]) * col[-1]
            rows[plan.offsets[j]:plan.offsets[j + 1]] = np.minimum(np.searchsorted(col, u, side="right"),
                                                                   last_positive)


def _draw_streamed(events: Any, plan: _Plan, blocks: list[np.ndarray], rows: np.ndarray,
                   rng: np.random.Generator) -> None:
    """Out of core, in two passes over the events: the totals, then the draws landing in each tile.

    Each tile's running sums continue the previous tile's (accumulated in event order), so they are the digits of
    :func:`_draw_in_memory`'s sums, and the uniform numbers are drawn point after point as there.
    """
    active = np.concatenate(blocks)
    running_sums = _streamed_totals(events, plan, blocks)
    for pts in blocks:
        plan.check_totals(pts)
    draws = {j: rng.random(plan.counts[j]) * plan.total[j] for j in active}
    order = {j: np.argsort(u, kind="stable") for j, u in draws.items()}
    ordered = {j: draws[j][order[j]] for j in active}
    last_positive = np.zeros(plan.counts.size, dtype=np.int64)
    final = plan.total.copy()
    plan.total[:] = 0.0
    for start, tile in plan.tiles(events):
        for pts in blocks:
            cum = running_sums(tile, pts, count=False)
            for c, j in enumerate(pts):
                col = cum[:, c]
                if col[-1] <= col[0]:
                    continue
                a, b = np.searchsorted(ordered[j], col[[0, -1]], side="left")
                if b > a:
                    hits = np.searchsorted(col[1:], ordered[j][a:b], side="right")
                    rows[plan.offsets[j] + order[j][a:b]] = start + hits
                last_positive[j] = start + np.searchsorted(col[1:], col[-1], side="left")
    for j in active:  # a draw rounded up to the total (r * total == total): the last positive event, as in memory
        beyond = ordered[j] >= final[j]
        rows[plan.offsets[j] + order[j][beyond]] = last_positive[j]


def _streamed_totals(events: Any, plan: _Plan, blocks: list[np.ndarray]) -> Any:
    """First pass of :func:`_draw_streamed`: ``plan.total`` becomes the running sums' totals over all tiles (negative
    weights counted). Returns the function that continues the running sums of one tile (the second pass's)."""
    tile_cum = np.empty((plan.tile_rows + 1, max(b.size for b in blocks)), order="F")

    def running_sums(tile: Any, pts: np.ndarray, count: bool) -> np.ndarray:
        cum = tile_cum[:len(tile) + 1, :pts.size]
        cum[0] = plan.total[pts]
        plan.clipped(tile, pts, cum[1:], count)
        np.cumsum(cum, axis=0, out=cum)
        plan.total[pts] = cum[-1]
        return cum

    for _, tile in plan.tiles(events):
        for pts in blocks:
            running_sums(tile, pts, count=True)
    return running_sums


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
