"""Plots of Fisher information contours, p-value maps, observable distributions, morphing and information.

Every function builds a :class:`matplotlib.figure.Figure` directly (Agg canvas, no pyplot state, nothing shown),
returns it, and writes it when ``path`` is given (``.png``, ``.pdf`` or ``.svg``; atomically through a temporary
file and ``os.replace``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import PathPatch
from matplotlib.path import Path as MplPath
from scipy import stats

from ._atomic import atomic_write
from .inference.fisher import InformationDistribution, distance_for_cl
from .inference.intervals import fine_scan, regular_axes
from .inference.nuisance import profile_information, project_information

__all__ = [
    "plot_fisher_contours",
    "plot_fisher_ensemble",
    "plot_pvalues",
    "plot_distributions",
    "plot_morphing_basis",
    "plot_information_distribution",
    "save_figure",
]

logger = logging.getLogger(__name__)

FORMATS = ("png", "pdf", "svg")


# -- helpers ---------------------------------------------------------------------------------------------
def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Write ``fig`` to ``path`` (png, pdf or svg by suffix) atomically; returns the path."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"path {str(path)!r}: unsupported figure format {path.suffix!r}; use one of "
                         f"{['.' + f for f in FORMATS]}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"path {str(path)!r}: directory {str(path.parent)!r} does not exist")
    if fig.canvas is None or not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    with atomic_write(path, suffix=f".{fmt}") as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi)
    logger.info("wrote %s", path)
    return path


def _new_figure(n_panels: int = 1, n_cols: int = 1, panel_size: tuple[float, float] = (5.0, 4.2),
                sharex: bool = False, height_ratios: Sequence[float] | None = None) -> tuple[Figure, np.ndarray]:
    n_rows = int(np.ceil(n_panels / n_cols))
    fig = Figure(figsize=(panel_size[0] * n_cols, panel_size[1] * n_rows), layout="constrained")
    FigureCanvasAgg(fig)
    gridspec_kw = None if height_ratios is None else {"height_ratios": list(height_ratios)}
    axes = fig.subplots(n_rows, n_cols, squeeze=False, sharex=sharex, gridspec_kw=gridspec_kw)
    for ax in axes.ravel()[n_panels:]:
        ax.set_visible(False)
    return fig, axes.ravel()


def _finish(fig: Figure, path: str | os.PathLike | None) -> Figure:
    if path is not None:
        save_figure(fig, path)
    return fig


def _names(parameter_names: Sequence[str] | None, n: int) -> list[str]:
    if parameter_names is None:
        return [rf"$\theta_{{{i}}}$" for i in range(n)]
    names = list(parameter_names)
    if len(names) < n:
        raise ValueError(f"parameter_names has {len(names)} entries, need at least {n}")
    return names


def _as_named(items: Any, what: str) -> dict[str, np.ndarray]:
    """A mapping name -> array from a mapping, a single array or a sequence of arrays."""
    if isinstance(items, Mapping):
        out = {str(k): np.asarray(v, dtype=np.float64) for k, v in items.items()}
    else:
        arr = np.asarray(items, dtype=np.float64) if not isinstance(items, (list, tuple)) else None
        if arr is not None and arr.ndim == 2:
            out = {what: arr}
        else:
            out = {f"{what} {i}": np.asarray(v, dtype=np.float64) for i, v in enumerate(items)}
    if not out:
        raise ValueError(f"no {what} given")
    return out


def _reduce_information(info: np.ndarray, indices: Sequence[int], marginalize: str, name: str) -> np.ndarray:
    info = np.asarray(info, dtype=np.float64)
    if info.ndim < 2 or info.shape[-1] != info.shape[-2]:
        raise ValueError(f"information {name!r} must be a square matrix, got shape {info.shape}")
    if info.shape[-1] == len(indices) and list(indices) == list(range(len(indices))):
        return info
    if marginalize == "profile":
        return profile_information(info, indices)
    if marginalize == "project":
        return project_information(info, indices)
    raise ValueError(f"marginalize must be 'profile' or 'project', got {marginalize!r}")


def _contour_distances(distance: float | Sequence[float], cl: float | Sequence[float] | None) -> list[float]:
    if cl is not None:
        cls = [cl] if np.isscalar(cl) else list(cl)
        return [distance_for_cl(float(c), 2) for c in cls]
    ds = [distance] if np.isscalar(distance) else list(distance)
    if not ds or any(not float(d) > 0 for d in ds):
        raise ValueError(f"distance must be positive, got {distance!r}")
    return [float(d) for d in ds]


def _extent(infos: Sequence[np.ndarray], dmax: float) -> np.ndarray:
    ext = np.zeros(2)
    for m in infos:
        pinv = np.linalg.pinv(0.5 * (m + m.T), hermitian=True)
        ext = np.maximum(ext, np.sqrt(np.clip(np.diag(pinv), 0.0, None)) * dmax)
    return np.where(ext > 0, ext, 1.0)


# -- Fisher information ----------------------------------------------------------------------------------
def plot_fisher_contours(informations: Mapping[str, np.ndarray] | np.ndarray | Sequence[np.ndarray],
                         theta_ref: np.ndarray | Sequence[float] | None = None,
                         parameter_names: Sequence[str] | None = None, *, indices: Sequence[int] = (0, 1),
                         marginalize: str = "profile", distance: float | Sequence[float] = 1.0,
                         cl: float | Sequence[float] | None = None, xlim: tuple[float, float] | None = None,
                         ylim: tuple[float, float] | None = None, colors: Sequence[str] | None = None,
                         resolution: int = 201, ax: Any = None, path: str | os.PathLike | None = None) -> Figure:
    """Contours of constant Fisher distance ``d(theta, theta_ref)`` for several informations overlaid.

    Parameters
    ----------
    informations : mapping name -> ndarray (n, n), one ndarray, or a sequence of them
        Information matrices; larger than 2x2 ones are reduced to the parameters ``indices``.
    theta_ref : array-like, shape (2,) or (n,), optional
        Centre (default zero); if it has ``n`` entries, ``indices`` select the two shown.
    parameter_names : sequence of str, optional
        Axis labels (indexed by ``indices``).
    indices : pair of int
        Parameters on the x and y axes.
    marginalize : {"profile", "project"}
        How other parameters are removed: profiled (conservative) or projected (fixed).
    distance : float or sequence of float
        Fisher distance(s) of the contours (solid, dashed, dotted, ...).
    cl : float or sequence of float, optional
        Confidence levels instead of distances (``d = sqrt(chi2.ppf(cl, 2))``).
    xlim, ylim : pair of float, optional
        Plot ranges; default from the largest ellipse.
    colors : sequence of str, optional
        One colour per information.
    resolution : int
        Grid points per axis for the contour evaluation (singular, e.g. rate-only, informations give bands).
    ax : matplotlib Axes, optional
        Draw into this axes (its figure is returned).
    path : str or Path, optional
        Write the figure here.

    Returns
    -------
    Figure
    """
    infos = _as_named(informations, "information")
    if all(np.shape(v) == (1, 1) for v in infos.values()):
        return _plot_fisher_1d(infos, theta_ref, parameter_names, distance, cl, xlim, colors, ax, path)
    idx = [int(i) for i in indices]
    if len(idx) != 2 or idx[0] == idx[1]:
        raise ValueError(f"indices must be two different parameter indices, got {indices!r}")
    reduced = {k: _reduce_information(v, idx, marginalize, k) for k, v in infos.items()}
    for k, v in reduced.items():
        if v.shape != (2, 2) or not np.all(np.isfinite(v)):
            raise ValueError(f"information {k!r} must reduce to a finite 2x2 matrix, got shape {v.shape}")
    if theta_ref is None:
        ref = np.zeros(2)
    else:
        ref = np.asarray(theta_ref, dtype=np.float64).reshape(-1)
        if ref.size > 2:
            ref = ref[idx]
        if ref.shape != (2,):
            raise ValueError(f"theta_ref must have 2 entries (or one per parameter), got shape {np.shape(theta_ref)}")
    dists = _contour_distances(distance, cl)
    ext = _extent(list(reduced.values()), max(dists)) * 1.3
    xlim = (ref[0] - ext[0], ref[0] + ext[0]) if xlim is None else xlim
    ylim = (ref[1] - ext[1], ref[1] + ext[1]) if ylim is None else ylim
    if ax is None:
        fig, (ax,) = _new_figure()
    else:
        fig = ax.figure
    xs = np.linspace(*xlim, int(resolution))
    ys = np.linspace(*ylim, int(resolution))
    xx, yy = np.meshgrid(xs, ys)
    delta = np.stack([xx - ref[0], yy - ref[1]], axis=-1)
    colors = list(colors) if colors is not None else [f"C{i}" for i in range(len(reduced))]
    if len(colors) < len(reduced):
        raise ValueError(f"colors has {len(colors)} entries for {len(reduced)} informations")
    styles = ["solid", "dashed", "dotted", "dashdot"]
    for (name, m), color in zip(reduced.items(), colors, strict=False):
        d2 = np.einsum("...i,ij,...j->...", delta, 0.5 * (m + m.T), delta)
        if not np.any(d2 > min(dists) ** 2):
            logger.warning("information %r: no contour inside the plot range", name)
        ax.contour(xx, yy, d2, levels=sorted(d**2 for d in dists), colors=[color],
                   linestyles=[styles[i % len(styles)] for i in range(len(dists))])
        ax.plot([], [], color=color, label=name)
    ax.plot(*ref, marker="*", color="k", linestyle="none", markersize=8)
    names = _names(parameter_names, max(idx) + 1)
    ax.set_xlabel(names[idx[0]])
    ax.set_ylabel(names[idx[1]])
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    _distance_legend(ax, dists, cl, n_dof=2)
    return _finish(fig, path)


def _distance_legend(ax: Any, dists: Sequence[float], cl: float | Sequence[float] | None, n_dof: int) -> None:
    """Legend with the informations and one grey entry per line style saying which distance / CL it marks."""
    styles = ["solid", "dashed", "dotted", "dashdot"]
    cls = None if cl is None else ([cl] if np.isscalar(cl) else list(cl))
    handles, labels = ax.get_legend_handles_labels()
    for j, k in enumerate(np.argsort(dists)):
        text = f"d = {dists[k]:.3g}" + (f" ({float(cls[k]):.0%} CL, {n_dof} dof)" if cls is not None else "")
        handles.append(Line2D([], [], color="gray", linestyle=styles[j % len(styles)]))
        labels.append(text)
    ax.legend(handles, labels, fontsize="small", title=r"$d^2 = \Delta\theta^T I \,\Delta\theta$ (Fisher distance)")


def _plot_fisher_1d(infos: dict[str, np.ndarray], theta_ref: Any, parameter_names: Sequence[str] | None,
                    distance: float | Sequence[float], cl: float | Sequence[float] | None,
                    xlim: tuple[float, float] | None, colors: Sequence[str] | None, ax: Any,
                    path: str | os.PathLike | None) -> Figure:
    """One parameter: the parabolas ``d^2 = I (theta - theta_ref)^2`` with horizontal lines at the levels."""
    ref = 0.0 if theta_ref is None else float(np.asarray(theta_ref, dtype=np.float64).reshape(-1)[0])
    if cl is not None:
        cls = [cl] if np.isscalar(cl) else list(cl)
        dists = [distance_for_cl(float(c), 1) for c in cls]
    else:
        dists = _contour_distances(distance, None)
    values = {k: float(v[0, 0]) for k, v in infos.items()}
    if any(not np.isfinite(v) or v < 0 for v in values.values()):
        raise ValueError(f"1x1 informations must be finite and non-negative, got {values}")
    positive = [v for v in values.values() if v > 0]
    half = 1.3 * max(dists) / np.sqrt(min(positive)) if positive else 1.0
    xlim = (ref - half, ref + half) if xlim is None else xlim
    if ax is None:
        fig, (ax,) = _new_figure()
    else:
        fig = ax.figure
    colors = list(colors) if colors is not None else [f"C{i}" for i in range(len(values))]
    if len(colors) < len(values):
        raise ValueError(f"colors has {len(colors)} entries for {len(values)} informations")
    t = np.linspace(*xlim, 401)
    for (name, v), color in zip(values.items(), colors, strict=False):
        ax.plot(t, v * (t - ref) ** 2, color=color, label=name)
    styles = ["solid", "dashed", "dotted", "dashdot"]
    for j, d in enumerate(sorted(dists)):  # line styles by increasing distance, as in the 2-D contours
        ax.axhline(d**2, color="gray", linewidth=0.8, linestyle=styles[j % 4])
    ax.set_xlim(*xlim)
    ax.set_ylim(0, 1.5 * max(dists) ** 2)
    ax.set_xlabel(_names(parameter_names, 1)[0])
    ax.set_ylabel(r"$d^2 = -2 \Delta \log L$ (Fisher approximation)")
    _distance_legend(ax, dists, cl, n_dof=1)
    return _finish(fig, path)


def _radii(m: np.ndarray, directions: np.ndarray, distance: float, rmax: float) -> np.ndarray:
    quad = np.einsum("pi,...ij,pj->...p", directions, 0.5 * (m + np.swapaxes(m, -1, -2)), directions)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = distance / np.sqrt(quad)
    return np.where(quad > 0, np.minimum(r, rmax), rmax)


def plot_fisher_ensemble(members: Mapping[str, np.ndarray] | np.ndarray,
                         theta_ref: np.ndarray | Sequence[float] | None = None,
                         parameter_names: Sequence[str] | None = None, *, covariance: np.ndarray | None = None,
                         n_samples: int = 200, indices: Sequence[int] = (0, 1), marginalize: str = "profile",
                         distance: float | None = None, cl: float | None = 0.68,
                         band: tuple[float, float] = (16.0, 84.0), n_directions: int = 360,
                         random_state: int | None = 0, ax: Any = None,
                         path: str | os.PathLike | None = None) -> Figure:
    """Fisher contours of an ensemble: the contour of the mean information and an uncertainty band.

    The band covers, in every direction from ``theta_ref``, the ``band`` percentiles of the contour radii of the
    individual members.

    Parameters
    ----------
    members : ndarray (n_members, n, n) or mapping name -> such arrays
        Information of each ensemble member (:meth:`FisherInformation.full_information_members`). With
        ``covariance`` given, a single mean matrix ``(n, n)`` instead.
    theta_ref : array-like, optional
        Centre (default zero).
    parameter_names : sequence of str, optional
    covariance : ndarray, shape (n, n, n, n), optional
        Covariance of the information entries (``full_information(..., return_covariance=True)``); members are
        then drawn from a Gaussian around ``members`` (the mean).
    n_samples : int
        Number of matrices drawn with ``covariance``.
    indices, marginalize
        As in :func:`plot_fisher_contours`.
    distance, cl : float, optional
        Contour level as a Fisher distance or as a confidence level (two parameters); ``cl`` wins.
    band : pair of float
        Lower and upper percentile of the band.
    n_directions : int
        Angular resolution.
    random_state : int or None
        Seed for drawing from ``covariance``.
    ax, path
        As in :func:`plot_fisher_contours`.

    Returns
    -------
    Figure
    """
    if isinstance(members, Mapping):
        groups = {str(k): np.asarray(v, dtype=np.float64) for k, v in members.items()}
    else:
        groups = {"ensemble": np.asarray(members, dtype=np.float64)}
    if covariance is not None:
        if len(groups) != 1:
            raise ValueError("covariance works with a single mean information, not a mapping")
        (name, mean), = groups.items()
        cov = np.asarray(covariance, dtype=np.float64)
        n = mean.shape[-1]
        if mean.shape != (n, n) or cov.shape != (n, n, n, n):
            raise ValueError(f"with covariance, members must be the mean (n, n) and covariance (n, n, n, n); got "
                             f"{mean.shape} and {cov.shape}")
        rng = np.random.default_rng(random_state)
        draws = rng.multivariate_normal(mean.ravel(), cov.reshape(n * n, n * n), size=int(n_samples),
                                        check_valid="ignore", method="eigh").reshape(-1, n, n)
        groups = {name: 0.5 * (draws + np.swapaxes(draws, 1, 2))}
    for k, v in groups.items():
        if v.ndim != 3 or v.shape[1] != v.shape[2] or v.shape[0] < 1:
            raise ValueError(f"members {k!r} must have shape (n_members, n, n), got {v.shape}")
    if not 0 <= band[0] < band[1] <= 100:
        raise ValueError(f"band must be two increasing percentiles in [0, 100], got {band!r}")
    idx = [int(i) for i in indices]
    reduced = {k: _reduce_information(v, idx, marginalize, k) for k, v in groups.items()}
    d = distance_for_cl(cl, 2) if cl is not None else (1.0 if distance is None else float(distance))
    if not d > 0:
        raise ValueError(f"distance must be positive, got {distance!r}")
    ref = np.zeros(2) if theta_ref is None else np.asarray(theta_ref, dtype=np.float64).reshape(-1)
    if ref.size > 2:
        ref = ref[idx]
    if ref.shape != (2,):
        raise ValueError(f"theta_ref must have 2 entries, got shape {np.shape(theta_ref)}")
    ext = _extent([m.mean(axis=0) for m in reduced.values()], d) * 1.6
    rmax = float(np.hypot(*ext)) * 2
    if ax is None:
        fig, (ax,) = _new_figure()
    else:
        fig = ax.figure
    phi = np.linspace(0.0, 2 * np.pi, int(n_directions) + 1)
    u = np.stack([np.cos(phi), np.sin(phi)], axis=1)
    for i, (name, ms) in enumerate(reduced.items()):
        color = f"C{i}"
        r_members = _radii(ms, u, d, rmax)  # (n_members, n_dir)
        lo, hi = np.percentile(r_members, band, axis=0)
        r_mean = _radii(ms.mean(axis=0), u, d, rmax)
        outer = ref + hi[:, None] * u
        inner = (ref + lo[:, None] * u)[::-1]
        verts = np.concatenate([outer, inner])
        codes = np.full(len(verts), MplPath.LINETO)
        codes[0] = codes[len(outer)] = MplPath.MOVETO
        ax.add_patch(PathPatch(MplPath(verts, codes), facecolor=color, alpha=0.3, edgecolor="none",
                               label=f"{name}: {band[0]:g}-{band[1]:g}% of {ms.shape[0]} members"))
        ax.plot(*(ref + r_mean[:, None] * u).T, color=color, label=f"{name}: mean")
    ax.plot(*ref, marker="*", color="k", linestyle="none", markersize=8)
    names = _names(parameter_names, max(idx) + 1)
    ax.set_xlabel(names[idx[0]])
    ax.set_ylabel(names[idx[1]])
    ax.set_xlim(ref[0] - ext[0], ref[0] + ext[0])
    ax.set_ylim(ref[1] - ext[1], ref[1] + ext[1])
    ax.legend(fontsize="small", title=f"{cl:.0%} CL" if cl is not None else f"d = {d:g}")
    return _finish(fig, path)


# -- limits ----------------------------------------------------------------------------------------------
def plot_pvalues(grid: np.ndarray, p_values: Mapping[str, np.ndarray] | np.ndarray,
                 parameter_names: Sequence[str] | None = None, *, cls: Sequence[float] = (0.68, 0.95),
                 best_fit: bool = True, show_map: bool | None = None, luminosity: float | None = None,
                 observed: bool | None = None, refine: int = 8, ax: Any = None,
                 path: str | os.PathLike | None = None) -> Figure:
    """p-values on a grid: confidence contours (2 parameters) or curves (1 parameter).

    Contours are drawn on a grid ``refine`` times finer than the evaluation grid, through the test statistic
    ``q = chi2.isf(p, n_params)`` interpolated with cubic splines (:func:`skminer.inference.intervals.fine_scan`),
    so a coarse scan does not give jagged contours. One-parameter curves stop at a tenth of the smallest
    ``1 - cl`` instead of following p-values down to 1e-100.

    Parameters
    ----------
    grid : ndarray, shape (n_grid, n_params)
        A regular product grid (see :func:`skminer.inference.theta_grid`), ``n_params`` 1 or 2.
    p_values : ndarray (n_grid,) or mapping name -> ndarray
        p-values of one or several methods (e.g. :attr:`LimitResult.p_values`).
    parameter_names : sequence of str, optional
    cls : sequence of float
        Confidence levels of the contours (``p = 1 - cl``), solid, dashed, ...
    best_fit : bool
        Mark the grid point with the largest p-value of each method.
    show_map : bool, optional
        Colour map of the p-values; default only for a single method.
    luminosity : float, optional
        Integrated luminosity (pb^-1), shown in the legend title.
    observed : bool, optional
        ``True``: limits from observed data, ``False``: expected (Asimov) limits; shown in the legend title.
    refine : int
        Refinement factor of the contour grid (1: the evaluation grid).
    ax, path
        As in :func:`plot_fisher_contours`.

    Returns
    -------
    Figure
    """
    grid = np.asarray(grid, dtype=np.float64)
    if grid.ndim == 1:
        grid = grid[:, None]
    if grid.ndim != 2 or grid.shape[1] not in (1, 2):
        raise ValueError(f"grid must have shape (n_grid, 1) or (n_grid, 2), got {grid.shape}")
    maps = dict(p_values) if isinstance(p_values, Mapping) else {"p-value": p_values}
    if not maps:
        raise ValueError("no p-values given")
    maps = {str(k): np.asarray(v, dtype=np.float64).reshape(-1) for k, v in maps.items()}
    for k, v in maps.items():
        if v.size != grid.shape[0]:
            raise ValueError(f"p-values {k!r} have {v.size} entries for a grid of {grid.shape[0]} points")
    cls = [float(c) for c in cls]
    if not cls or any(not 0 < c < 1 for c in cls):
        raise ValueError(f"cls must be confidence levels in (0, 1), got {cls!r}")
    axes_vals, pos = regular_axes(grid)
    names = _names(parameter_names, grid.shape[1])
    if ax is None:
        fig, (ax,) = _new_figure(panel_size=(5.6, 4.4))
    else:
        fig = ax.figure
    styles = ["solid", "dashed", "dotted", "dashdot"]
    if grid.shape[1] == 1:
        order = np.argsort(grid[:, 0])
        for i, (name, p) in enumerate(maps.items()):
            ax.plot(grid[order, 0], p[order], color=f"C{i}", label=name)
            if best_fit:
                ax.axvline(grid[np.nanargmax(p), 0], color=f"C{i}", linewidth=0.8, alpha=0.6)
        for j, c in enumerate(sorted(cls)):
            ax.axhline(1 - c, color="gray", linestyle=styles[j % 4], linewidth=0.8, label=f"{c:.0%} CL")
        ax.set_yscale("log")
        ax.set_ylim(0.1 * min(1 - c for c in cls), 1.5)
        ax.set_xlabel(names[0])
        ax.set_ylabel("p-value")
        ax.legend(fontsize="small", title=_limits_title(luminosity, observed))
        return _finish(fig, path)
    shape = (axes_vals[0].size, axes_vals[1].size)
    show_map = len(maps) == 1 if show_map is None else show_map
    levels = sorted(1 - c for c in cls)
    q_levels = sorted(float(stats.chi2.isf(lv, 2)) for lv in levels)
    for i, (name, p) in enumerate(maps.items()):
        z = np.full(shape, np.nan)
        z[pos[:, 0], pos[:, 1]] = p
        if show_map and i == 0:
            with np.errstate(divide="ignore"):
                logp = np.log10(np.clip(z, 1e-300, None))
            mesh = ax.pcolormesh(axes_vals[0], axes_vals[1], logp.T, shading="nearest", cmap="viridis",
                                 vmin=max(-4.0, float(np.nanmin(logp))) if np.any(np.isfinite(logp)) else -4, vmax=0)
            fig.colorbar(mesh, ax=ax, label=r"$\log_{10}$ p-value")
        color = "w" if show_map and len(maps) == 1 else f"C{i}"
        if np.nanmax(z) > levels[0] and np.nanmin(z) < levels[-1]:
            (fx, fy), fq = fine_scan(axes_vals, stats.chi2.isf(np.clip(z, 0.0, 1.0), 2), max(1, int(refine)))
            # q increases outward: the largest CL (smallest p) has the largest q; styles follow the CL order
            ax.contour(fx, fy, fq.T, levels=q_levels, colors=[color],
                       linestyles=[styles[j % 4] for j in range(len(q_levels))])
        else:
            logger.warning("p-values %r: no confidence contour crosses the grid", name)
        ax.plot([], [], color=f"C{i}" if color == "w" else color, label=name)
        if best_fit:
            b = int(np.nanargmax(p))
            ax.plot(grid[b, 0], grid[b, 1], marker="*", color=color, markeredgecolor="k", linestyle="none",
                    markersize=10)
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    handles, labels = ax.get_legend_handles_labels()
    for j, c in enumerate(sorted(cls)):
        handles.append(Line2D([], [], color="gray", linestyle=styles[j % 4]))
        labels.append(f"{c:.0%} CL")
    ax.legend(handles, labels, fontsize="small", title=_limits_title(luminosity, observed))
    return _finish(fig, path)


def _limits_title(luminosity: float | None, observed: bool | None) -> str | None:
    parts = []
    if observed is not None:
        parts.append("observed" if observed else "expected (Asimov)")
    if luminosity is not None:
        parts.append(rf"$L = {luminosity:g}$ pb$^{{-1}}$")
    return ", ".join(parts) or None


# -- events ----------------------------------------------------------------------------------------------
def plot_distributions(events: Any, thetas: np.ndarray | Sequence[Sequence[float]],
                       observables: Sequence[str | int] | None = None, *, bins: int = 30,
                       labels: Sequence[str] | None = None, normalize: bool = False, log: bool = False,
                       n_cols: int = 3, quantile_range: tuple[float, float] = (0.001, 0.999),
                       path: str | os.PathLike | None = None) -> Figure:
    """Histograms of observables at several parameter points, reweighted from one event set by morphing.

    Parameters
    ----------
    events : EventSet
        Weighted events (``weights_at``).
    thetas : array-like, shape (n_theta, n_params)
        Parameter points.
    observables : sequence of str or int, optional
        Observables to show (default all).
    bins : int
        Bins per histogram (equal width between the ``quantile_range`` quantiles of all events).
    labels : sequence of str, optional
        Legend entries per theta.
    normalize : bool
        Show normalised shapes instead of cross sections per bin.
    log : bool
        Logarithmic y axis.
    n_cols : int
        Panels per row.
    quantile_range : pair of float
        Quantiles of the (unweighted) events that bound the x range.
    path : str or Path, optional

    Returns
    -------
    Figure
    """
    space = getattr(events, "space", None)
    n_params = space.n_parameters if space is not None else None
    th = np.asarray(thetas, dtype=np.float64)
    if th.ndim == 1:
        th = th[None, :]
    if th.ndim != 2 or (n_params is not None and th.shape[1] != n_params) or th.shape[0] == 0:
        raise ValueError(f"thetas must have shape (n_theta, {n_params}), got {np.shape(thetas)}")
    x = np.asarray(events.x, dtype=np.float64)
    all_names = list(getattr(events, "observable_names", [])) or [f"x[{i}]" for i in range(x.shape[1])]
    if observables is None:
        cols = list(range(x.shape[1]))
    else:
        cols = []
        for o in observables:
            if isinstance(o, str):
                if o not in all_names:
                    raise ValueError(f"observable {o!r} not in the event set's observables {all_names}")
                cols.append(all_names.index(o))
            elif isinstance(o, (int, np.integer)) and 0 <= o < x.shape[1]:
                cols.append(int(o))
            else:
                raise ValueError(f"observable {o!r} is neither a name nor a column index < {x.shape[1]}")
    if not cols:
        raise ValueError("no observables to plot")
    if int(bins) < 1:
        raise ValueError(f"bins must be >= 1, got {bins!r}")
    labels = [", ".join(f"{v:.3g}" for v in t) for t in th] if labels is None else list(labels)
    if len(labels) != th.shape[0]:
        raise ValueError(f"labels has {len(labels)} entries for {th.shape[0]} parameter points")
    w = np.asarray(events.weights_at(th), dtype=np.float64).reshape(x.shape[0], th.shape[0])
    n_cols = max(1, min(int(n_cols), len(cols)))
    fig, axes = _new_figure(len(cols), n_cols, panel_size=(4.2, 3.4))
    for ax, c in zip(axes, cols, strict=False):
        lo, hi = np.quantile(x[:, c], quantile_range)
        if not hi > lo:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, int(bins) + 1)
        for j in range(th.shape[0]):
            h, _ = np.histogram(x[:, c], bins=edges, weights=w[:, j])
            if normalize:
                total = h.sum()
                h = h / (total * np.diff(edges)) if total != 0 else h
            ax.stairs(h, edges, color=f"C{j}", label=labels[j])
        ax.set_xlabel(all_names[c])
        ax.set_ylabel("normalised density" if normalize else r"$\sigma$ per bin [pb]")
        if log:
            ax.set_yscale("log")
    axes[0].legend(fontsize="small", title=r"$\theta$")
    return _finish(fig, path)


def plot_morphing_basis(morpher: Any, ranges: np.ndarray | Sequence[Sequence[float]] | None = None,
                        parameter_names: Sequence[str] | None = None, *, resolution: int = 80,
                        ax: Any = None, path: str | os.PathLike | None = None) -> Figure:
    """Morphing basis points over a map of the expected squared morphing weights ``sum_b w_b(theta)^2``.

    Parameters
    ----------
    morpher : Morpher or EventSet
        A :class:`~skminer.morphing.Morpher` with a basis, or an event set with ``morpher`` and ``space`` (then
        ``ranges`` and ``parameter_names`` default to the space's).
    ranges : array-like, shape (n_params, 2), optional
        Parameter ranges of the map (1 or 2 parameters).
    parameter_names : sequence of str, optional
    resolution : int
        Grid points per axis.
    ax, path
        As in :func:`plot_fisher_contours`.

    Returns
    -------
    Figure
    """
    if hasattr(morpher, "morpher") and hasattr(morpher, "space"):
        space = morpher.space
        morpher = morpher.morpher
        ranges = space.ranges if ranges is None else ranges
        parameter_names = space.parameter_names if parameter_names is None else parameter_names
    if morpher is None or not hasattr(morpher, "weights") or getattr(morpher, "basis", None) is None:
        raise ValueError("morpher must be a Morpher with a basis (call set_basis or optimize_basis first)")
    if ranges is None:
        raise ValueError("ranges must be given for a Morpher (shape (n_params, 2))")
    n = int(morpher.n_parameters)
    ranges = np.asarray(ranges, dtype=np.float64)
    if ranges.shape != (n, 2) or np.any(ranges[:, 1] <= ranges[:, 0]):
        raise ValueError(f"ranges must have shape ({n}, 2) with low < high, got {ranges.tolist()}")
    if n not in (1, 2):
        raise ValueError(f"plot_morphing_basis shows 1 or 2 parameters, the morpher has {n}")
    names = _names(parameter_names, n)
    basis = np.asarray(morpher.basis, dtype=np.float64)
    if ax is None:
        fig, (ax,) = _new_figure(panel_size=(5.6, 4.4))
    else:
        fig = ax.figure
    res = int(resolution)
    if res < 2:
        raise ValueError(f"resolution must be >= 2, got {resolution!r}")
    if n == 1:
        t = np.linspace(*ranges[0], res)[:, None]
        sq = np.sum(np.asarray(morpher.weights(t)) ** 2, axis=1)
        ax.plot(t[:, 0], sq, color="C0")
        ax.set_yscale("log")
        ax.plot(basis[:, 0], np.sum(np.asarray(morpher.weights(basis)) ** 2, axis=1), "o", color="C3",
                label="basis")
        ax.set_xlabel(names[0])
        ax.set_ylabel(r"$\sum_b w_b(\theta)^2$")
    else:
        xs = np.linspace(*ranges[0], res)
        ys = np.linspace(*ranges[1], res)
        xx, yy = np.meshgrid(xs, ys)
        pts = np.stack([xx.ravel(), yy.ravel()], axis=1)
        sq = np.sum(np.asarray(morpher.weights(pts)) ** 2, axis=1).reshape(xx.shape)
        mesh = ax.pcolormesh(xs, ys, np.log10(np.clip(sq, 1e-300, None)), shading="nearest", cmap="viridis_r")
        fig.colorbar(mesh, ax=ax, label=r"$\log_{10} \sum_b w_b(\theta)^2$")
        ax.plot(basis[:, 0], basis[:, 1], "o", color="C3", markeredgecolor="w", markersize=8, label="basis")
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
    mean_sq = morpher.expected_squared_weights(ranges) if hasattr(morpher, "expected_squared_weights") else None
    ax.legend(fontsize="small", title=None if mean_sq is None else rf"$\langle\sum w^2\rangle$ = {mean_sq:.3g}")
    return _finish(fig, path)


def plot_information_distribution(distribution: InformationDistribution, parameter_names: Sequence[str] | None = None,
                                  *, quantity: str = "diagonal", log: bool = False,
                                  path: str | os.PathLike | None = None) -> Figure:
    """Where in an observable the Fisher information sits (output of ``information_distribution``).

    Top panel: cross section per bin. Bottom panel: per-bin information, the differential (full or truth)
    information as solid lines and the information in the bin rates (histogram) as dashed lines.

    Parameters
    ----------
    distribution : InformationDistribution
    parameter_names : sequence of str, optional
    quantity : {"diagonal", "trace", "determinant"}
        Which scalar(s) of the per-bin matrices to show.
    log : bool
        Logarithmic y axis in the information panel.
    path : str or Path, optional

    Returns
    -------
    Figure
    """
    if not isinstance(distribution, InformationDistribution):
        raise TypeError(f"distribution must be an InformationDistribution, got {type(distribution).__name__}")
    if quantity not in ("diagonal", "trace", "determinant"):
        raise ValueError(f"quantity must be 'diagonal', 'trace' or 'determinant', got {quantity!r}")
    n = distribution.full.shape[-1]
    names = _names(parameter_names, n)
    fig, axes = _new_figure(2, 1, panel_size=(5.6, 2.8), sharex=True, height_ratios=(1, 2))
    edges = distribution.edges
    axes[0].stairs(distribution.cross_sections, edges, color="k")
    axes[0].set_ylabel(r"$\sigma$ per bin [pb]")
    if quantity == "diagonal":
        curves = [(f"I({names[i]}, {names[i]})", distribution.full[:, i, i], distribution.rate[:, i, i])
                  for i in range(n)]
    elif quantity == "trace":
        curves = [("tr I", np.trace(distribution.full, axis1=1, axis2=2),
                   np.trace(distribution.rate, axis1=1, axis2=2))]
    else:
        curves = [("det I", np.linalg.det(distribution.full), np.linalg.det(distribution.rate))]
    for i, (label, full, rate) in enumerate(curves):
        axes[1].stairs(full, edges, color=f"C{i}", label=f"{label} ({distribution.kind})")
        axes[1].stairs(rate, edges, color=f"C{i}", linestyle="dashed", label=f"{label} (bin rate)")
    if log:
        axes[1].set_yscale("log")
    axes[1].set_xlabel(distribution.observable)
    axes[1].set_ylabel("information per bin")
    axes[1].legend(fontsize="small")
    return _finish(fig, path)
