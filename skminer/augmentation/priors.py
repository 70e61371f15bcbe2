"""Priors over parameter points from which training samples draw their ``theta`` values.

Every prior has ``sample(n, random_state=None) -> ndarray (n, n_params)`` (float64). Finite priors
(:class:`FixedPrior`, :class:`BenchmarkPrior`, :class:`GridPrior`) also list their points with ``all_points()`` and
sample them
*balanced*: each point appears ``floor(n / n_points)`` or ``ceil(n / n_points)`` times, in random order, so a
sample of ``n = n_points`` draws uses every point exactly once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from .._random import check_random_state
from .._scalars import as_count
from ..parameters import ParameterSpace

__all__ = ["Prior", "UniformPrior", "GaussianPrior", "FixedPrior", "BenchmarkPrior", "GridPrior", "as_prior"]


def _check_n(n: Any) -> int:
    return as_count(n, "n", minimum=0)


def _ranges(ranges: Any, name: str = "ranges") -> np.ndarray:
    arr = np.asarray(ranges, dtype=np.float64)
    if arr.ndim == 1 and arr.shape == (2,):
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] < 1:
        raise ValueError(f"{name} must have shape (n_params, 2), got {np.shape(ranges)}")
    if not np.all(np.isfinite(arr)) or np.any(arr[:, 0] > arr[:, 1]):
        raise ValueError(f"{name} must be finite with low <= high in each row, got {arr.tolist()}")
    return arr


class Prior(BaseEstimator):
    """Base class of the priors (scikit-learn style parameters; not an estimator)."""

    def sample(self, n: int, random_state: Any = None) -> np.ndarray:  # pragma: no cover - abstract
        """Draw ``n`` parameter points, shape ``(n, n_params)``."""
        raise NotImplementedError

    @property
    def n_parameters(self) -> int:  # pragma: no cover - abstract
        """Number of parameters."""
        raise NotImplementedError


class _FinitePrior(Prior):
    """A prior on finitely many points, sampled balanced (see the module docstring)."""

    def all_points(self) -> np.ndarray:  # pragma: no cover - abstract
        """All points, shape ``(n_points, n_params)``."""
        raise NotImplementedError

    @property
    def n_parameters(self) -> int:
        return self.all_points().shape[1]

    def sample(self, n: int, random_state: Any = None) -> np.ndarray:
        """Draw ``n`` points balanced over :meth:`all_points` in random order, shape ``(n, n_params)``."""
        n = _check_n(n)
        rng = check_random_state(random_state)
        points = self.all_points()
        k = points.shape[0]
        idx = np.concatenate([np.tile(np.arange(k), n // k), rng.choice(k, size=n % k, replace=False)])
        return points[rng.permutation(idx)].copy()


class UniformPrior(Prior):
    """Independent uniform distributions on ``ranges``.

    Parameters
    ----------
    ranges : array-like, shape (n_params, 2)
        ``(low, high)`` per parameter (e.g. ``space.ranges``).
    """

    def __init__(self, ranges: Any) -> None:
        self.ranges = ranges

    @property
    def n_parameters(self) -> int:
        return _ranges(self.ranges).shape[0]

    def sample(self, n: int, random_state: Any = None) -> np.ndarray:
        """Draw ``n`` points, shape ``(n, n_params)``."""
        n = _check_n(n)
        r = _ranges(self.ranges)
        return check_random_state(random_state).uniform(r[:, 0], r[:, 1], size=(n, r.shape[0]))


class GaussianPrior(Prior):
    """Independent normal distributions.

    Parameters
    ----------
    mean : array-like, shape (n_params,)
    std : float or array-like, shape (n_params,)
        Standard deviations (``>= 0``; 0 fixes the parameter).
    """

    def __init__(self, mean: Any, std: Any = 1.0) -> None:
        self.mean = mean
        self.std = std

    def _moments(self) -> tuple[np.ndarray, np.ndarray]:
        mean = np.atleast_1d(np.asarray(self.mean, dtype=np.float64))
        if mean.ndim != 1 or not np.all(np.isfinite(mean)):
            raise ValueError(f"mean must be a finite vector (n_params,), got {self.mean!r}")
        std = np.asarray(self.std, dtype=np.float64)
        if std.ndim > 1 or (std.ndim == 1 and std.shape != mean.shape) or not np.all(np.isfinite(std)) \
                or np.any(std < 0):
            raise ValueError(f"std must be a non-negative float or vector of shape {mean.shape}, got {self.std!r}")
        std = np.broadcast_to(std, mean.shape)
        return mean, std

    @property
    def n_parameters(self) -> int:
        return self._moments()[0].shape[0]

    def sample(self, n: int, random_state: Any = None) -> np.ndarray:
        """Draw ``n`` points, shape ``(n, n_params)``."""
        n = _check_n(n)
        mean, std = self._moments()
        return mean + std * check_random_state(random_state).standard_normal((n, mean.shape[0]))


class FixedPrior(_FinitePrior):
    """A fixed list of parameter points.

    Parameters
    ----------
    points : array-like, shape (n_points, n_params) or (n_params,)
    """

    def __init__(self, points: Any) -> None:
        self.points = points

    def all_points(self) -> np.ndarray:
        """The points as a float64 array ``(n_points, n_params)``."""
        arr = np.asarray(self.points, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
            raise ValueError(f"points must have shape (n_points, n_params), got {np.shape(self.points)}")
        if not np.all(np.isfinite(arr)):
            raise ValueError("points must be finite")
        return arr


class BenchmarkPrior(_FinitePrior):
    """The named benchmarks of a parameter space.

    Parameters
    ----------
    space : ParameterSpace
    names : sequence of str or None
        Benchmark names; ``None`` uses all benchmarks of ``space``.
    """

    def __init__(self, space: ParameterSpace, names: Sequence[str] | None = None) -> None:
        self.space = space
        self.names = names

    def all_points(self) -> np.ndarray:
        """The benchmark points, shape ``(n_names, n_params)``."""
        if not isinstance(self.space, ParameterSpace):
            raise TypeError(f"space must be a ParameterSpace, got {type(self.space).__name__}")
        if self.names is None:
            names = self.space.benchmark_names
        elif isinstance(self.names, str):
            names = [self.names]
        else:
            names = list(self.names)
        if not names:
            raise ValueError("BenchmarkPrior needs at least one benchmark")
        return np.stack([self.space.benchmark(name) for name in names])


class GridPrior(_FinitePrior):
    """A regular Cartesian grid of parameter points.

    Parameters
    ----------
    ranges : array-like, shape (n_params, 2)
        ``(low, high)`` per parameter; both ends are grid points.
    n_points : int or sequence of int
        Points per parameter.
    """

    def __init__(self, ranges: Any, n_points: int | Sequence[int] = 5) -> None:
        self.ranges = ranges
        self.n_points = n_points

    def all_points(self) -> np.ndarray:
        """The grid points (first parameter varying slowest), shape ``(prod(n_points), n_params)``."""
        r = _ranges(self.ranges)
        counts = np.broadcast_to(np.asarray(self.n_points), (r.shape[0],))
        if np.any(counts < 1) or not np.all(counts == np.round(counts)):
            raise ValueError(f"n_points must be positive integers, got {self.n_points!r}")
        axes = [np.linspace(lo, hi, int(k)) for (lo, hi), k in zip(r, counts, strict=True)]
        mesh = np.meshgrid(*axes, indexing="ij")
        return np.stack([m.ravel() for m in mesh], axis=1)


def as_prior(obj: Any, space: ParameterSpace | None = None, name: str = "theta") -> Prior:
    """Convert a prior, a benchmark name (or list of names), a mapping or an array of points to a prior.

    Parameters
    ----------
    obj : Prior, str, sequence of str, mapping or array-like
        Arrays of shape ``(n_params,)`` or ``(n_points, n_params)`` become a :class:`FixedPrior`; names become a
        :class:`BenchmarkPrior` (needs ``space``); a mapping ``{parameter: value}`` one point.
    space : ParameterSpace, optional
        Used to resolve names and to check the number of parameters.
    name : str
        Argument name for error messages.
    """
    if isinstance(obj, Prior):
        prior = obj
    elif isinstance(obj, str) or (isinstance(obj, Sequence) and obj and all(isinstance(o, str) for o in obj)):
        if space is None:
            raise ValueError(f"{name}: benchmark names need a parameter space")
        prior = BenchmarkPrior(space, [obj] if isinstance(obj, str) else list(obj))
    elif isinstance(obj, Mapping):
        if space is None:
            raise ValueError(f"{name}: a mapping of parameter values needs a parameter space")
        prior = FixedPrior(space.as_theta(obj))
    else:
        try:
            prior = FixedPrior(np.asarray(obj, dtype=np.float64))
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be a Prior, benchmark name(s), mapping or array of points; "
                            f"got {type(obj).__name__}") from None
    if space is not None and prior.n_parameters != space.n_parameters:
        raise ValueError(f"{name}: prior has {prior.n_parameters} parameters but the parameter space has "
                         f"{space.n_parameters} ({space.parameter_names})")
    return prior
