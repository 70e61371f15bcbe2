"""Confidence intervals, contours and profiles from a test statistic on a regular parameter grid.

Limits are evaluated on a grid (:func:`~skminer.inference.theta_grid`); users want the confidence *regions*:

* :func:`interval_1d`: the intervals ``{theta : q(theta) < chi2.ppf(cl, n_dof)}`` of a one-dimensional scan, with
  endpoints where a cubic spline through ``q`` (which follows the nearly quadratic ``q`` much better than straight
  lines between coarse grid points; linear below 4 points) crosses the threshold; an endpoint that stops at the
  edge of the grid is flagged open;
* :func:`profile`: ``q`` profiled over all other parameters (the minimum over their grid values) as a function of
  one parameter, with its one-degree-of-freedom intervals;
* :func:`contours_2d`: the closed or open paths of ``q = chi2.ppf(cl, 2)`` of a two-parameter scan on the finer
  grid (contourpy, as matplotlib uses) and the enclosed area (fine-grid cells inside the region);
* :func:`describe_limits`: all of the above for a :class:`~skminer.inference.LimitResult`, JSON-ready.

Wilks' theorem (asymptotic chi-square distribution of ``q``) as in the rest of :mod:`skminer.inference`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import interpolate, stats

from .._scalars import as_count

__all__ = ["contours_2d", "describe_limits", "fine_scan", "interval_1d", "profile", "regular_axes"]

logger = logging.getLogger(__name__)


def regular_axes(grid: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Axes of a regular product grid and the position of each grid point on them.

    Parameters
    ----------
    grid : ndarray, shape (n_grid, n_params)

    Returns
    -------
    axes : list of ndarray
        Sorted unique values per parameter.
    positions : ndarray of int, shape (n_grid, n_params)

    Raises
    ------
    ValueError
        If the points do not form a full product grid.
    """
    grid = np.asarray(grid, dtype=np.float64)
    axes, pos = [], []
    for j in range(grid.shape[1]):
        vals, inv = np.unique(grid[:, j], return_inverse=True)
        axes.append(vals)
        pos.append(inv.reshape(-1))
    if int(np.prod([a.size for a in axes])) != grid.shape[0]:
        raise ValueError(f"grid of {grid.shape[0]} points is not a regular product grid (axes with "
                         f"{[a.size for a in axes]} values); use theta_grid()")
    return axes, np.stack(pos, axis=1)


def _on_axes(grid: np.ndarray, q: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    axes, pos = regular_axes(grid)
    cube = np.full(tuple(a.size for a in axes), np.nan)
    cube[tuple(pos.T)] = np.asarray(q, dtype=np.float64).reshape(-1)
    return axes, cube


def fine_scan(axes: Sequence[np.ndarray], q: np.ndarray, factor: int = 8) -> tuple[list[np.ndarray], np.ndarray]:
    """``q`` interpolated on a grid ``factor`` times finer per axis (cubic splines; linear below 4 points).

    Infinite ``q`` (vanishing likelihood) is capped at ten times the largest finite value first; the result is
    clipped at 0.
    """
    q = np.asarray(q, dtype=np.float64)
    finite = np.isfinite(q)
    if not finite.any():
        raise ValueError("q is not finite anywhere on the grid")
    cap = max(10.0 * float(np.max(q[finite])), 1.0)
    q = np.where(finite, q, cap)
    fine_axes = [np.linspace(a[0], a[-1], (a.size - 1) * int(factor) + 1) if a.size > 1 else a for a in axes]
    varying = [i for i, a in enumerate(axes) if a.size > 1]
    if not varying:
        return fine_axes, q
    method = "cubic" if all(axes[i].size >= 4 for i in varying) else "linear"
    squeezed = q.reshape([axes[i].size for i in varying])
    interp = interpolate.RegularGridInterpolator([axes[i] for i in varying], squeezed, method=method)
    mesh = np.meshgrid(*[fine_axes[i] for i in varying], indexing="ij")
    fine = interp(np.stack([m.reshape(-1) for m in mesh], axis=1)).reshape(mesh[0].shape)
    return fine_axes, np.clip(fine, 0.0, None).reshape([a.size for a in fine_axes])


def interval_1d(values: np.ndarray, q: np.ndarray, cl: float, n_dof: int = 1, factor: int = 8
                ) -> list[dict[str, Any]]:
    """Intervals where ``q < chi2.ppf(cl, n_dof)`` along one parameter.

    ``q`` is interpolated with a not-a-knot cubic spline (linear below 4 points) and the endpoints are the
    spline's exact crossings of the threshold, so they are not limited by the grid spacing.

    Parameters
    ----------
    values : ndarray, shape (n,)
        Parameter values (sorted, distinct).
    q : ndarray, shape (n,)
        Test statistic at ``values`` (``inf`` is capped, see :func:`fine_scan`).
    cl : float
        Confidence level in (0, 1).
    n_dof : int
        Degrees of freedom of the threshold.
    factor : int
        Unused by the spline root finding; kept for a uniform signature with :func:`contours_2d`.

    Returns
    -------
    list of dict
        One ``{"lower", "upper", "lower_open", "upper_open"}`` per disjoint interval, in increasing order;
        ``*_open`` means the interval reaches the edge of the scanned range (the limit lies beyond it).
    """
    x = np.asarray(values, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if x.size < 2:
        raise ValueError("an interval needs at least two scan points")
    finite = np.isfinite(q)
    if not finite.any():
        raise ValueError("q is not finite anywhere on the scan")
    q = np.where(finite, q, max(10.0 * float(np.max(q[finite])), 1.0))
    level = float(stats.chi2.ppf(cl, as_count(n_dof, "n_dof")))
    spline = interpolate.PPoly.from_spline(interpolate.make_interp_spline(x, q, k=3 if x.size >= 4 else 1))
    roots = np.sort(np.unique(np.real(spline.solve(level, extrapolate=False))))
    roots = roots[(roots > x[0]) & (roots < x[-1])]
    bounds = np.concatenate([[x[0]], roots, [x[-1]]])
    mids = 0.5 * (bounds[:-1] + bounds[1:])
    inside = spline(mids) < level
    out: list[dict[str, Any]] = []
    for k, ins in enumerate(inside):
        if not ins:
            continue
        if out and out[-1]["upper"] == bounds[k]:  # a tangent root: merge with the previous piece
            out[-1]["upper"] = float(bounds[k + 1])
            out[-1]["upper_open"] = k + 1 == len(bounds) - 1
            continue
        out.append({"lower": float(bounds[k]), "upper": float(bounds[k + 1]), "lower_open": k == 0,
                    "upper_open": k + 1 == len(bounds) - 1})
    return out


def profile(grid: np.ndarray, q: np.ndarray, index: int) -> tuple[np.ndarray, np.ndarray]:
    """``q`` profiled over every parameter but ``index``: its grid values and the minimum of ``q`` at each.

    Returns
    -------
    values : ndarray, shape (n_values,)
    q_profile : ndarray, shape (n_values,)
        Shifted so that its minimum is 0.
    """
    axes, cube = _on_axes(grid, q)
    others = tuple(i for i in range(len(axes)) if i != index)
    prof = np.nanmin(cube, axis=others) if others else cube
    return axes[index], prof - np.nanmin(prof)


def contours_2d(grid: np.ndarray, q: np.ndarray, cl: float, n_dof: int = 2, factor: int = 8) -> dict[str, Any]:
    """Contour paths of ``q = chi2.ppf(cl, n_dof)`` of a two-parameter scan and the area inside.

    Returns
    -------
    dict
        ``"paths"``: list of ``[[x, y], ...]`` polylines (closed ones repeat their first point; open ones end
        at the grid edge), ``"area"``: area of ``{q < level}`` within the grid (parameter units squared),
        ``"closed"``: whether every path is closed (the region lies inside the scanned range).
    """
    import contourpy

    axes, cube = _on_axes(grid, q)
    if len(axes) != 2:
        raise ValueError(f"contours need a two-parameter grid, got {len(axes)} parameters")
    (fx, fy), fq = fine_scan(axes, cube, factor)
    level = float(stats.chi2.ppf(cl, as_count(n_dof, "n_dof")))
    lines = contourpy.contour_generator(fx, fy, fq.T, line_type=contourpy.LineType.Separate).lines(level)
    paths = [np.round(np.asarray(line, dtype=np.float64), 12).tolist() for line in lines]
    closed = all(np.allclose(p[0], p[-1]) for p in paths) if paths else False
    cell = (fx[1] - fx[0]) * (fy[1] - fy[0])
    weights = np.ones_like(fq)  # trapezoid weights: edge points cover half cells
    weights[[0, -1], :] *= 0.5
    weights[:, [0, -1]] *= 0.5
    area = float(np.sum(weights[fq < level]) * cell)
    return {"paths": paths, "area": area, "closed": closed}


def describe_limits(result: Any, cls: Sequence[float], parameter_names: Sequence[str] | None = None,
                    factor: int = 8) -> dict[str, Any]:
    """Intervals, profiles and (two parameters) contours of a :class:`~skminer.inference.LimitResult`, for JSON.

    Parameters
    ----------
    result : LimitResult
        With ``grid`` (a regular product grid), ``q`` and ``n_dof``.
    cls : sequence of float
        Confidence levels.
    parameter_names : sequence of str, optional
    factor : int
        Refinement of the interpolation grid.

    Returns
    -------
    dict
        ``best_fit``; ``best_fit_on_grid_edge`` (the parameters in which it lies on the edge of the scanned grid,
        when the result records them); ``intervals`` (one parameter: ``{cl: [interval, ...]}`` with ``n_dof`` of
        the result);
        ``contours`` (two parameters: ``{cl: {"paths", "area", "closed"}}``); ``profiles``
        (``{name: {"values", "q", "intervals": {cl: [...]}}}``, one degree of freedom).
    """
    grid = np.asarray(result.grid, dtype=np.float64)
    q = np.asarray(result.q, dtype=np.float64)
    n_params = grid.shape[1]
    names = list(parameter_names) if parameter_names is not None else [f"theta{i}" for i in range(n_params)]
    out: dict[str, Any] = {"best_fit": np.asarray(result.best_fit).tolist()}
    edge = getattr(result, "info", {}).get("best_fit_on_edge")
    if edge is not None:
        out["best_fit_on_grid_edge"] = [names[j] for j in edge]
    if n_params == 1:
        order = np.argsort(grid[:, 0])
        out["intervals"] = {f"{c:g}": interval_1d(grid[order, 0], q[order], c, int(result.n_dof), factor)
                            for c in cls}
    elif n_params == 2:
        out["contours"] = {f"{c:g}": contours_2d(grid, q, c, int(result.n_dof), factor) for c in cls}
    profiles = {}
    for i, name in enumerate(names):
        values, prof = profile(grid, q, i)
        profiles[name] = {"values": values.tolist(), "q": np.where(np.isfinite(prof), prof, None).tolist(),
                          "intervals": {f"{c:g}": interval_1d(values, prof, c, 1, factor) for c in cls}}
    out["profiles"] = profiles
    return out
