"""Binning shared by the histogram Fisher information and the histogram likelihoods (numpy-2 safe).

A binning of one variable is stored as its *inner* edges ``e_1 < ... < e_{k}``: it has ``k + 1`` bins, the
first and last open (under- and overflow), so every finite value falls into exactly one bin and no rate is
lost. ``bin = searchsorted(inner, value, side="right")``, i.e. bin ``j`` holds ``e_j <= value < e_{j+1}``.

Automatic binnings of several variables have cells that few or no simulated events fill (a 20 x 20 grid of
correlated scores is mostly empty), and data falling into them make the likelihood ``-inf``.
:func:`merge_sparse_cells` therefore joins every cell with less than a minimum expected count (or a minimum number
of simulated events) to the nearest cell that has enough.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from scipy import sparse, spatial

from .._arrays import axis_edges

logger = logging.getLogger(__name__)

BinsArg = int | Sequence[float] | np.ndarray


def weighted_quantiles(values: np.ndarray, weights: np.ndarray | None, levels: np.ndarray) -> np.ndarray:
    """Quantiles of ``values`` under non-negative ``weights`` (uniform when ``None``)."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="stable")
    v = values[order]
    w = np.ones_like(v) if weights is None else np.clip(np.asarray(weights, np.float64)[order], 0.0, None)
    total = w.sum()
    if not np.isfinite(total) or total <= 0:
        raise ValueError("cannot place quantile bin edges: the total (positive) weight is zero")
    cum = np.cumsum(w) / total
    pos = np.searchsorted(cum, np.asarray(levels, np.float64), side="left")
    return v[np.clip(pos, 0, v.size - 1)]


def inner_edges(values: np.ndarray, bins: BinsArg, weights: np.ndarray | None, name: str) -> np.ndarray:
    """Inner bin edges of one variable.

    Parameters
    ----------
    values : ndarray, shape (n,)
        The variable for all events (used for automatic edges).
    bins : int, array-like or hist axis
        ``int``: that many bins with equal (weighted) content, edges at weighted quantiles; duplicate edges of
        discrete variables are merged. Array (or a ``hist`` / ``boost-histogram`` axis: its ``edges``): the edges
        themselves (strictly increasing); values below the first and above the last edge fill extra
        under-/overflow bins.
    weights : ndarray or None
        Event weights for the quantiles (negative weights count as zero).
    name : str
        Name of the variable for error messages.
    """
    bins = axis_edges(bins, f"bins for {name}")  # refuses bools
    if isinstance(bins, (int, np.integer)):
        n_bins = int(bins)
        if n_bins < 1:
            raise ValueError(f"bins for {name} must be >= 1, got {bins}")
        if n_bins == 1:
            return np.zeros(0)
        finite = np.isfinite(values)
        w = None if weights is None else np.asarray(weights)[finite]
        edges = np.unique(weighted_quantiles(values[finite], w, np.arange(1, n_bins) / n_bins))
        if edges.size < n_bins - 1:
            logger.info("observable %s: %d quantile bins requested, %d distinct (discrete values)", name, n_bins,
                        edges.size + 1)
        return edges
    edges = np.asarray(bins, dtype=np.float64)
    if edges.ndim == 0:
        raise ValueError(f"bins for {name} must be an int (the number of bins) or a 1-D array of edges, got "
                         f"{type(bins).__name__} {bins!r}: a single number is a bin count only as an int")
    if edges.ndim != 1 or edges.size < 1:
        raise ValueError(f"bins for {name} must be an int or a 1-D array of edges, got {bins!r}")
    if not np.all(np.isfinite(edges)) or np.any(np.diff(edges) <= 0):
        raise ValueError(f"bin edges for {name} must be finite and strictly increasing, got {edges}")
    return edges


def bin_indices(values: np.ndarray, edges: Sequence[np.ndarray]) -> tuple[np.ndarray, int]:
    """Flat bin index of each row of ``values`` (n, d) for per-dimension inner ``edges``; and the bin count."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if values.shape[1] != len(edges):
        raise ValueError(f"values have {values.shape[1]} columns but the binning has {len(edges)} dimensions")
    if not np.all(np.isfinite(values)):
        raise ValueError("observable values for the histogram contain NaN or inf")
    dims = tuple(e.size + 1 for e in edges)
    per_dim = [np.searchsorted(e, values[:, d], side="right") for d, e in enumerate(edges)]
    flat = np.ravel_multi_index(per_dim, dims) if per_dim else np.zeros(values.shape[0], dtype=int)
    return np.asarray(flat, dtype=np.int64), int(np.prod(dims))


def indicator(index: np.ndarray, n_bins: int) -> sparse.csr_matrix:
    """Sparse ``(n_bins, n_events)`` matrix with a one where event ``i`` falls into bin ``b``."""
    n = index.size
    return sparse.csr_matrix((np.ones(n), (index, np.arange(n))), shape=(n_bins, n))


def merge_sparse_cells(index: np.ndarray, dims: Sequence[int], expected: np.ndarray, min_expected: float,
                       min_events: int) -> np.ndarray:
    """Map histogram cells to merged bins that each have enough expected events and simulated events.

    Cells with an expected count below ``min_expected`` or fewer than ``min_events`` simulated events are joined to
    the nearest (in cell-index space, a k-d tree query) cell that has both; every merged bin then has at least the
    minimum counts, so no data event can fall into a bin without simulated events. When few cells have both (a
    fine multi-dimensional binning of a small expected yield: 20 x 20 cells for 100 expected events), blocks of 2,
    4, ... cells per dimension are joined first: the blocking in which the most blocks have both (the finest on
    ties), so that the histogram keeps its shape instead of collapsing to one bin or a handful (the rate alone, or
    little more). When no two blocks of any blocking have both, all cells form one bin, with a WARNING.

    Parameters
    ----------
    index : ndarray of int, shape (n_events,)
        Flat cell of every simulated event (:func:`bin_indices`).
    dims : sequence of int
        Cells per dimension.
    expected : ndarray, shape (n_events,)
        Expected number of events each simulated event stands for (luminosity times weight at the binning point).
    min_expected : float
        Minimum expected count per merged bin.
    min_events : int
        Minimum number of simulated events per merged bin.

    Returns
    -------
    ndarray of int, shape (prod(dims),)
        Merged bin of every cell, ``0 .. n_merged - 1``.
    """
    dims = tuple(int(d) for d in dims)
    n_cells = int(np.prod(dims))
    counts = np.bincount(index, minlength=n_cells)
    mu = np.bincount(index, weights=np.asarray(expected, dtype=np.float64), minlength=n_cells)
    coords = np.stack(np.unravel_index(np.arange(n_cells), dims), axis=1)
    # the blocking (block cells per dimension) with the most dense blocks, the finest on ties: each dense block
    # becomes a bin, so this keeps the most shape (the finest blocking with *some* dense block could keep one)
    best = None
    block = 1
    while True:
        block_dims = tuple(-(-d // block) for d in dims)
        to_block = np.ravel_multi_index(tuple((coords // block).T), block_dims)
        n_blocks = int(np.prod(block_dims))
        block_counts = np.bincount(to_block, weights=counts, minlength=n_blocks)
        block_mu = np.bincount(to_block, weights=mu, minlength=n_blocks)
        dense = (block_mu >= min_expected) & (block_counts >= min_events)
        if best is None or int(dense.sum()) > best[0]:
            best = (int(dense.sum()), block, block_dims, to_block, n_blocks, dense)
        if n_blocks == 1:
            break
        block *= 2
    n_dense, block, block_dims, to_block, n_blocks, dense = best
    if n_dense <= 1 and n_cells > 1:
        logger.warning("no two blocks of histogram cells of the %s binning have %g expected and %d simulated "
                       "events each (total expected %.4g, %d events): using a single bin (the rate alone); use "
                       "fewer bins per dimension or explicit edges", "x".join(map(str, dims)), min_expected,
                       min_events, mu.sum(), counts.sum())
        return np.zeros(n_cells, dtype=np.int64)
    if n_dense == 0:  # one cell in all
        return np.zeros(n_cells, dtype=np.int64)
    if block > 1:
        logger.info("histogram: %d of the %s cells have %g expected and %d simulated events: cells joined in blocks "
                    "of %d per dimension first (%d of those blocks do); fewer bins per dimension would avoid this",
                    int(np.sum((mu >= min_expected) & (counts >= min_events))), "x".join(map(str, dims)),
                    min_expected, min_events, block, n_dense)
    remap = np.empty(n_blocks, dtype=np.int64)
    remap[dense] = np.arange(int(dense.sum()))
    if not np.all(dense):
        block_coords = np.stack(np.unravel_index(np.arange(n_blocks), block_dims), axis=1).astype(np.float64)
        _, nearest = spatial.cKDTree(block_coords[dense]).query(block_coords[~dense])
        remap[~dense] = nearest
        reason = (f"fewer than {min_expected:g} expected or {min_events} simulated events" if min_expected > 0
                  else f"fewer than {min_events} simulated events")
        logger.info("histogram: %d of %d cells have %s and were merged into their nearest neighbours (%d bins)",
                    int(np.sum(~dense)), n_blocks, reason, int(dense.sum()))
    return remap[to_block]
