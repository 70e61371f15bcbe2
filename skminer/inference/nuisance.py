"""Nuisance parameters at the level of the Fisher information: constraints, profiling and projection.

With parameters ``(theta, nu)`` the Fisher information is a block matrix. Two ways remove the nuisance block
(section III F of the MadMiner paper):

* *projection* keeps the ``theta`` block, i.e. assumes the nuisance parameters are known exactly;
* *profiling* takes the Schur complement ``I_tt - I_tn I_nn^-1 I_nt``, the information on ``theta`` left when
  ``nu`` is fitted as well (conservative, the frequentist choice).

Gaussian constraints ``nu_k ~ N(0, sigma_k^2)`` add ``diag(1 / sigma_k^2)`` to the nuisance block.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

__all__ = ["nuisance_constraint_information", "profile_information", "project_information"]

logger = logging.getLogger(__name__)


def _as_information(information: np.ndarray, name: str = "information") -> np.ndarray:
    info = np.asarray(information, dtype=np.float64)
    if info.ndim < 2 or info.shape[-1] != info.shape[-2]:
        raise ValueError(f"{name} must be a square matrix or a stack of them (..., n, n), got shape {info.shape}")
    if not np.all(np.isfinite(info)):
        raise ValueError(f"{name} contains non-finite entries")
    return info


def _as_indices(indices: Sequence[int] | np.ndarray, n: int, name: str) -> np.ndarray:
    idx = np.asarray(indices)
    if idx.ndim == 0:
        idx = idx[None]
    if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"{name} must be a non-empty sequence of integer indices, got {indices!r}")
    idx = np.where(idx < 0, idx + n, idx)
    if np.any(idx < 0) or np.any(idx >= n):
        raise ValueError(f"{name} {list(np.asarray(indices))} out of range for a {n}x{n} information matrix")
    if np.unique(idx).size != idx.size:
        raise ValueError(f"{name} contains duplicates: {list(np.asarray(indices))}")
    return idx.astype(int)


def project_information(information: np.ndarray, remaining_indices: Sequence[int]) -> np.ndarray:
    """Fisher information on a subset of parameters when all others are known (sub-matrix).

    Parameters
    ----------
    information : ndarray, shape (..., n, n)
        Fisher information (or a stack of them, e.g. ensemble members).
    remaining_indices : sequence of int
        Parameters to keep, in the order of the output.

    Returns
    -------
    ndarray, shape (..., k, k)
    """
    info = _as_information(information)
    idx = _as_indices(remaining_indices, info.shape[-1], "remaining_indices")
    return info[..., idx[:, None], idx[None, :]].copy()


def profile_information(information: np.ndarray, remaining_indices: Sequence[int]) -> np.ndarray:
    """Fisher information on a subset of parameters when all others are fitted (Schur complement).

    ``I_profiled = I_rr - I_rn I_nn^+ I_nr`` with ``r`` the remaining and ``n`` the profiled parameters. The
    Moore-Penrose inverse handles a singular ``I_nn``: for a positive semi-definite information, directions
    without information on the profiled parameters do not couple to the remaining ones.

    Parameters
    ----------
    information : ndarray, shape (..., n, n)
        Fisher information (or a stack of them).
    remaining_indices : sequence of int
        Parameters to keep; all other parameters are profiled.

    Returns
    -------
    ndarray, shape (..., k, k)
        Symmetric profiled information; never larger (in the matrix ordering) than the projected one.
    """
    info = _as_information(information)
    n = info.shape[-1]
    keep = _as_indices(remaining_indices, n, "remaining_indices")
    rest = np.setdiff1d(np.arange(n), keep)
    i_rr = info[..., keep[:, None], keep[None, :]]
    if rest.size == 0:
        return i_rr.copy()
    i_rn = info[..., keep[:, None], rest[None, :]]
    i_nn = info[..., rest[:, None], rest[None, :]]
    i_nn = 0.5 * (i_nn + np.swapaxes(i_nn, -1, -2))
    inv = np.linalg.pinv(i_nn, hermitian=True)
    out = i_rr - i_rn @ inv @ np.swapaxes(i_rn, -1, -2)
    return 0.5 * (out + np.swapaxes(out, -1, -2))


def nuisance_constraint_information(n_parameters: int, n_nuisance: int,
                                    sigma: float | Sequence[float] | np.ndarray = 1.0) -> np.ndarray:
    """Information from Gaussian constraint terms ``nu_k ~ N(0, sigma_k^2)``.

    Parameters
    ----------
    n_parameters : int
        Number of parameters of interest (first block, zero).
    n_nuisance : int
        Number of nuisance parameters (second block).
    sigma : float or sequence of float
        Widths of the constraints (1 for MadMiner's convention that ``nu = +-1`` is the one-sigma variation).

    Returns
    -------
    ndarray, shape (n_parameters + n_nuisance, n_parameters + n_nuisance)
        Zero except for ``diag(1 / sigma^2)`` in the nuisance block.
    """
    if int(n_parameters) != n_parameters or n_parameters < 0:
        raise ValueError(f"n_parameters must be a non-negative integer, got {n_parameters!r}")
    if int(n_nuisance) != n_nuisance or n_nuisance < 0:
        raise ValueError(f"n_nuisance must be a non-negative integer, got {n_nuisance!r}")
    n_parameters, n_nuisance = int(n_parameters), int(n_nuisance)
    sig = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (n_nuisance,)) if n_nuisance else np.zeros(0)
    if np.any(~np.isfinite(sig)) or np.any(sig <= 0):
        raise ValueError(f"sigma must be positive and finite, got {sigma!r}")
    out = np.zeros((n_parameters + n_nuisance,) * 2)
    idx = np.arange(n_parameters, n_parameters + n_nuisance)
    out[idx, idx] = 1.0 / sig**2
    return out
