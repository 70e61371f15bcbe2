"""Adaptive evaluation of a log likelihood on a regular parameter grid, refined around chosen q levels.

:func:`refine_scan` starts from a coarse sub-lattice of the grid (every ``2^k``-th point per axis, the last point
always included) and halves the spacing until it reaches the full grid. At each step it estimates ``q`` at the
new points by cubic interpolation of the coarser lattice, with the difference to multilinear interpolation as
an error estimate, and evaluates exactly only the points whose estimate is not clearly on one side of every
contour level (or could be the best fit); the others keep the estimate. The contour masks at the requested
levels then agree with a dense scan wherever ``q`` is smooth on the scale of the coarse lattice, while the
number of evaluated points grows with the contour length instead of the grid area.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.interpolate import RegularGridInterpolator

__all__ = ["regular_grid_index", "refine_scan"]


def regular_grid_index(grid: np.ndarray) -> tuple[tuple[int, ...], np.ndarray] | None:
    """Mesh shape of a full regular (tensor-product) grid and the grid row of every mesh point.

    Parameters
    ----------
    grid : ndarray of shape (n_grid, n_params)
        Points in any order (e.g. :func:`~skminer.inference.theta_grid`).

    Returns
    -------
    (shape, rows) or None
        ``rows[flat_mesh_index]`` is the grid row at that mesh point (C order over the sorted axis values);
        None if ``grid`` is not every combination of its per-axis values exactly once.
    """
    axes = [np.unique(grid[:, d]) for d in range(grid.shape[1])]
    shape = tuple(len(a) for a in axes)
    if int(np.prod(shape)) != grid.shape[0]:
        return None
    index = tuple(np.searchsorted(axes[d], grid[:, d]) for d in range(grid.shape[1]))
    flat = np.ravel_multi_index(index, shape)
    if np.unique(flat).size != grid.shape[0]:
        return None
    rows = np.empty(grid.shape[0], dtype=np.intp)
    rows[flat] = np.arange(grid.shape[0])
    return shape, rows


def _lattice(n: int, stride: int) -> np.ndarray:
    """Indices ``0, stride, 2 stride, ...`` of an axis with ``n`` points, plus the last one."""
    return np.unique(np.r_[np.arange(0, n, stride), n - 1])


def _estimate(coarse: Sequence[np.ndarray], q: np.ndarray, inherited: np.ndarray, fine: Sequence[np.ndarray]
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``q`` at the fine lattice points from the coarse lattice: cubic interpolation, its difference to the
    multilinear one (an interpolation error estimate) and the multilinear interpolation of the coarse points'
    own uncertainty ``inherited`` (0 where they were evaluated). NaN everywhere when an axis has fewer than 4
    points or a value is not finite."""
    axes = [c.astype(np.float64) for c in coarse]
    points = np.stack(np.meshgrid(*fine, indexing="ij"), axis=-1).reshape(-1, len(fine)).astype(np.float64)
    values = np.where(np.isfinite(q), q, np.nan)
    linear = RegularGridInterpolator(axes, values, method="linear")(points)
    if min(c.size for c in coarse) >= 4 and np.all(np.isfinite(values)):
        best = RegularGridInterpolator(axes, values, method="cubic")(points)
    else:  # no error estimate: the caller evaluates every point
        best = np.full_like(linear, np.nan)
    carried = RegularGridInterpolator(axes, inherited, method="linear")(points)
    shape = tuple(f.size for f in fine)
    return best.reshape(shape), np.abs(best - linear).reshape(shape), carried.reshape(shape)


def refine_scan(evaluate: Callable[[np.ndarray], np.ndarray], shape: Sequence[int], levels: Sequence[float],
                coarse_stride: int | None = None, margin: float = 3.0, tolerance: float = 0.2
                ) -> tuple[np.ndarray, np.ndarray]:
    """Log likelihood on a regular mesh, evaluated exactly near the contours ``q = level`` and the best fit.

    Parameters
    ----------
    evaluate : callable
        ``evaluate(flat_mesh_indices) -> log_likelihood`` (one call per refinement step, all new points at
        once); ``-inf`` marks excluded points.
    shape : sequence of int
        Mesh points per axis.
    levels : sequence of float
        Values of ``q = -2 (log L - max log L)`` whose contours must be resolved exactly.
    coarse_stride : int, optional
        Spacing of the starting lattice, a power of 2 (default: the largest that leaves at least 5 points on
        the shortest axis).
    margin, tolerance : float
        A point of the finer lattice is evaluated exactly when its estimated ``q`` (cubic interpolation of the
        coarser lattice) lies within ``margin * error + tolerance`` of a level or of 0 (a possible best fit),
        where ``error`` is the difference between the cubic and the multilinear estimate; larger is more
        conservative.

    Returns
    -------
    log_likelihood : ndarray of shape ``shape``
        Exact where evaluated, multilinear interpolations elsewhere.
    evaluated : ndarray of bool, shape ``shape``
    """
    shape = tuple(int(n) for n in shape)
    levels = np.asarray(levels, dtype=np.float64).reshape(-1)
    if coarse_stride is None:  # at least 5 points on the shortest axis (cubic estimates need 4)
        coarse_stride = 1
        while (min(shape) - 1) // (2 * coarse_stride) >= 4:
            coarse_stride *= 2
    ll = np.full(shape, np.nan)
    uncertainty = np.zeros(shape)  # of q where estimated (0 where evaluated)
    evaluated = np.zeros(shape, dtype=bool)

    def run(mask: np.ndarray) -> None:
        flat = np.flatnonzero(mask)
        if flat.size:
            ll.flat[flat] = np.asarray(evaluate(flat), dtype=np.float64).reshape(-1)
            evaluated.flat[flat] = True

    stride = int(coarse_stride)
    start = np.zeros(shape, dtype=bool)
    start[np.ix_(*[_lattice(n, stride) for n in shape])] = True
    run(start)
    while stride > 1:
        coarse = [_lattice(n, stride) for n in shape]
        stride //= 2
        fine = [_lattice(n, stride) for n in shape]
        best = np.max(ll[evaluated])
        q_hat, error, carried = _estimate(coarse, -2.0 * (ll[np.ix_(*coarse)] - best),
                                          uncertainty[np.ix_(*coarse)], fine)
        # exact where the estimate is not clearly on one side of every level, or could be the best fit
        slack = margin * error + carried + tolerance
        need = ~np.isfinite(q_hat) | ~np.isfinite(slack) | (q_hat <= slack)
        for level in levels:
            need |= np.abs(q_hat - level) <= slack
        fine_ix = np.ix_(*fine)
        fine_mask = np.zeros(shape, dtype=bool)
        fine_mask[fine_ix] = need & ~evaluated[fine_ix]
        run(fine_mask)
        done = evaluated[fine_ix]
        ll[fine_ix] = np.where(done, ll[fine_ix], np.where(np.isfinite(q_hat), best - 0.5 * q_hat, -np.inf))
        uncertainty[fine_ix] = np.where(done, 0.0, np.where(np.isfinite(slack), slack - tolerance, 0.0))
    return ll, evaluated
