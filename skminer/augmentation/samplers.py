"""Training-sample generation ("augmentation"): unweighted events with joint likelihood ratios and scores.

Each sampler is a scikit-learn style object (parameters in ``__init__``, ``get_params``/``set_params``/
``clone`` work) with ``sample(events, n_samples, random_state=None) -> TrainingSample``. They are not
estimators.

Train/test separation: samplers draw (with replacement) from the events they are given. Split the weighted
events first and give only the training part to the training samplers::

    train, test = events.train_test_split(test_fraction=0.3, random_state=0)
    sample = RatioSampler(UniformPrior(space.ranges), theta1=[0, 0]).sample(train, 100_000, random_state=1)
    x_test = TestSampler(theta=[0, 0]).sample(test, 10_000, random_state=2).x

Conventions (``docs/architecture.md``): ``r_xz = p(x, z|theta0) / p(x, z|theta1)``; label ``y = 0`` means the
event was drawn at ``theta0``, ``y = 1`` at ``theta1``; ``t_xz`` is the joint score at ``theta0`` and ``t_xz1``
at ``theta1``. Joint quantities come exactly from morphing the event weights (see
:func:`~skminer.augmentation.unweighting.joint_log_likelihoods`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from .._atomic import atomic_write
from .._random import check_random_state
from .._scalars import as_count
from ..io.npz import check_npz
from .priors import UniformPrior, _FinitePrior, as_prior
from .unweighting import NEGATIVE_WEIGHT_POLICIES, joint_log_likelihoods, unweight

__all__ = ["TrainingSample", "LocalScoreSampler", "RatioSampler", "DoubleRatioSampler", "DensitySampler",
           "TestSampler"]

logger = logging.getLogger(__name__)


@dataclass
class TrainingSample:
    """Unweighted events with their parameter points, labels and joint quantities.

    Attributes
    ----------
    x : ndarray, shape (n, n_observables)
    theta0 : ndarray, shape (n, n_params) or None
        Numerator point (the point the estimator is parameterised in; for SALLY the reference point).
    theta1 : ndarray, shape (n, n_params) or None
        Denominator point.
    y : ndarray, shape (n,) or None
        ``0`` for events drawn at ``theta0``, ``1`` for events drawn at ``theta1`` (float64).
    r_xz : ndarray, shape (n,) or None
        Joint likelihood ratio ``p(x, z|theta0) / p(x, z|theta1)``.
    t_xz : ndarray, shape (n, n_params) or None
        Joint score at ``theta0``.
    t_xz1 : ndarray, shape (n, n_params) or None
        Joint score at ``theta1``.
    """

    x: np.ndarray
    theta0: np.ndarray | None = None
    theta1: np.ndarray | None = None
    y: np.ndarray | None = None
    r_xz: np.ndarray | None = None
    t_xz: np.ndarray | None = None
    t_xz1: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.x)
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and len(value) != n:
                raise ValueError(f"TrainingSample.{f.name} has {len(value)} rows but x has {n}")

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: Any) -> TrainingSample:
        return TrainingSample(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[index]
                                 for f in fields(self)})

    def as_dict(self) -> dict[str, np.ndarray]:
        """The fields that are not ``None``."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def shuffle(self, random_state: Any = None) -> TrainingSample:
        """A copy with the rows in random order."""
        return self[check_random_state(random_state).permutation(len(self))]

    def save(self, path: str | os.PathLike) -> None:
        """Write the non-``None`` fields to an ``.npz`` file atomically (temporary file + ``os.replace``)."""
        with atomic_write(path, suffix=".npz") as tmp:
            np.savez(tmp, **self.as_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> TrainingSample:
        """Read a file written by :meth:`save` (declared array sizes are checked before anything is allocated)."""
        check_npz(path)
        with np.load(path, allow_pickle=False) as data:
            names = {f.name for f in fields(cls)}
            unknown = set(data.files) - names
            if "x" not in data.files or unknown:
                raise ValueError(f"{path}: not a TrainingSample file (fields {sorted(data.files)})")
            return cls(**{k: data[k] for k in data.files})


# -- helpers -------------------------------------------------------------------------------------------
def _check_events(events: Any) -> None:
    for attr in ("x", "space", "weights_at", "cross_section"):
        if not hasattr(events, attr):
            raise TypeError(f"events must be an EventSet, got {type(events).__name__} (no attribute {attr!r})")
    if len(events) == 0:
        raise ValueError("events is empty")


def _check_n(n_samples: Any, even: bool = False) -> int:
    n = as_count(n_samples, "n_samples")
    if even and n % 2:
        raise ValueError(f"n_samples must be even (half the samples per class), got {n_samples!r}")
    return n


def _point(space: Any, value: Any, name: str) -> np.ndarray:
    """One parameter point ``(n_params,)`` from None (the origin), a benchmark name, a mapping or an array."""
    if value is None:
        return np.zeros(space.n_parameters)
    if isinstance(value, str | Mapping):
        return space.as_theta(value)[0]
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.shape != (space.n_parameters,) or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be one finite point with {space.n_parameters} values "
                         f"({space.parameter_names}), got {value!r}")
    return arr


def _thetas(prior: Any, space: Any, n_thetas: int | None, rng: np.random.Generator, name: str) -> np.ndarray:
    """Parameter points from a prior: ``n_thetas`` draws, or every point of a finite prior if ``None``."""
    default = UniformPrior(space.ranges) if prior is None else prior
    p = as_prior(default, space, name)
    if n_thetas is None:
        if not isinstance(p, _FinitePrior):
            raise ValueError(f"n_thetas=None needs a finite prior for {name} (points, benchmarks or a grid), "
                             f"got {type(p).__name__}")
        return p.all_points()
    return np.asarray(p.sample(as_count(n_thetas, "n_thetas"), random_state=rng), dtype=np.float64)


def _split_counts(n: int, n_parts: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` split into ``n_parts`` counts differing by at most one (the larger ones at random parts)."""
    counts = np.full(n_parts, n // n_parts, dtype=np.int64)
    counts[rng.choice(n_parts, size=n % n_parts, replace=False)] += 1
    if n < n_parts:
        logger.info("%d samples for %d parameter points: %d points get no sample", n, n_parts, n_parts - n)
    return counts


def _collapse(points: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge repeated points (e.g. a finite prior sampled more often than it has points), adding their counts.

    The draws at one point are independent, so merging repeated points does not change the sample's
    distribution; it only avoids unweighting at the same point several times.
    """
    uniq, inverse = np.unique(points, axis=0, return_inverse=True)
    if uniq.shape[0] == points.shape[0]:
        return points, counts
    return uniq, np.bincount(inverse.ravel(), weights=counts, minlength=uniq.shape[0]).astype(np.int64)


class _DrawnEvents:
    """The drawn events of an out-of-core set, read in one pass over its chunks; cross sections (and everything
    else that sums over all events) come from the whole set. The joint quantities of the drawn rows are then
    computed in memory, on the same rows in the same order, so they equal those of the set in memory."""

    def __init__(self, parent: Any, rows: np.ndarray) -> None:
        uniq, self.rows = np.unique(rows, return_inverse=True)
        self.rows = self.rows.reshape(-1)
        self.parent, self.drawn = parent, parent[uniq]

    space = property(lambda self: self.parent.space)
    x = property(lambda self: self.drawn.x)
    nuisance_a = property(lambda self: self.drawn.nuisance_a)

    def __len__(self) -> int:
        return len(self.drawn)

    def __getitem__(self, index: Any) -> Any:
        return self.drawn[index]

    def cross_section(self, theta: Any, nu: Any = None) -> Any:
        return self.parent.cross_section(theta, nu)

    def cross_section_gradient(self, theta: Any, nu: Any = None) -> Any:
        return self.parent.cross_section_gradient(theta, nu)

    def cross_section_nuisance_gradient(self, theta: Any, nu: Any = None) -> Any:
        return self.parent.cross_section_nuisance_gradient(theta, nu)


def _drawn(events: Any, rows: np.ndarray) -> tuple[Any, np.ndarray]:
    """``(events, rows)`` for the joint quantities: an out-of-core set's drawn rows read once (:class:`_DrawnEvents`
    with rows renumbered), in-memory events unchanged."""
    if not getattr(events, "out_of_core", False):
        return events, rows
    drawn = _DrawnEvents(events, rows)
    return drawn, drawn.rows


def _x(events: Any, rows: np.ndarray) -> np.ndarray:
    """Observations of the drawn rows (an out-of-core set reads only those rows)."""
    return np.asarray(events.x[rows], dtype=np.float64)


class _Sampler(BaseEstimator):
    """Common parameter checks."""

    def _check_policy(self) -> None:
        if self.negative_weights not in NEGATIVE_WEIGHT_POLICIES:
            raise ValueError(f"negative_weights must be one of {NEGATIVE_WEIGHT_POLICIES}, "
                             f"got {self.negative_weights!r}")

    def _finish(self, sample: TrainingSample, rng: np.random.Generator) -> TrainingSample:
        if getattr(self, "shuffle", False):
            sample = sample[rng.permutation(len(sample))]
        for name in ("r_xz", "t_xz", "t_xz1"):
            value = getattr(sample, name)
            if value is not None and not np.all(np.isfinite(value)):
                bad = int(np.sum(~np.all(np.isfinite(value.reshape(len(sample), -1)), axis=1)))
                logger.warning("%s: %d of %d samples have a non-finite %s (event weight zero or negative at the "
                               "evaluation point)", type(self).__name__, bad, len(sample), name)
        return sample


# -- samplers ------------------------------------------------------------------------------------------
class LocalScoreSampler(_Sampler):
    """Events at a reference point with the joint score there, for SALLY / SALLINO.

    Parameters
    ----------
    theta_ref : None, str, mapping or array-like, shape (n_params,)
        Reference point (benchmark name allowed); ``None`` is the origin (the SM in EFT conventions).
    negative_weights : {"clip", "raise"}
        See :func:`~skminer.augmentation.unweighting.unweight`.
    include_nuisance : bool
        Append the joint score with respect to the nuisance parameters at ``nu = 0`` (eq. 19 of the paper:
        ``t_nu(x, z) = a(z) - sum_events w a / sigma``), so that a score estimator trained on it estimates the
        full score over ``(theta, nu)`` for :meth:`~skminer.inference.FisherInformation.full_information` with
        ``include_nuisance=True`` and the profiling of the nuisances. Needs events with nuisance coefficients.

    Notes
    -----
    :meth:`sample` returns ``TrainingSample(x, theta0=theta_ref, t_xz)``; ``t_xz`` has ``n_params`` columns,
    plus ``n_nuisance`` with ``include_nuisance=True``.
    """

    def __init__(self, theta_ref: Any = None, negative_weights: str = "clip", include_nuisance: bool = False) -> None:
        self.theta_ref = theta_ref
        self.negative_weights = negative_weights
        self.include_nuisance = include_nuisance

    def sample(self, events: Any, n_samples: int, random_state: Any = None) -> TrainingSample:
        """Draw ``n_samples`` events at ``theta_ref`` and compute their joint score.

        Parameters
        ----------
        events : EventSet
            Weighted training events.
        n_samples : int
        random_state : None, int or numpy Generator
        """
        self._check_policy()
        _check_events(events)
        n = _check_n(n_samples)
        rng = check_random_state(random_state)
        theta = _point(events.space, self.theta_ref, "theta_ref")
        a = getattr(events, "nuisance_a", None)
        if self.include_nuisance and (a is None or a.shape[1] == 0):
            raise ValueError("include_nuisance=True but the events have no nuisance parameters (nuisance_a is None)")
        rows, _ = unweight(events, theta[None, :], n, rng, self.negative_weights)
        events, rows = _drawn(events, rows)
        _, t = joint_log_likelihoods(events, rows, theta[None, :], score=True)
        if self.include_nuisance:
            # d/dnu log[w exp(a nu + b nu^2) / sigma(nu)] at nu = 0 is a - sum(w a) / sum(w)
            sigma_gradient = np.asarray(events.cross_section_nuisance_gradient(theta), dtype=np.float64)
            t = np.concatenate([t, np.asarray(events.nuisance_a[rows]) - sigma_gradient / events.cross_section(theta)],
                               axis=1)
        sample = TrainingSample(x=_x(events, rows), theta0=np.repeat(theta[None, :], n, axis=0), t_xz=t)
        return self._finish(sample, rng)


class RatioSampler(_Sampler):
    """Labelled events for parameterised likelihood-ratio estimators (CARL, ROLR, RASCAL, ALICE(S), CASCAL).

    ``n_thetas`` values of ``theta0`` are drawn from ``theta0_prior``. Each value gets the same number of
    ``y = 0`` events (drawn at that ``theta0``) and ``y = 1`` events (drawn at the fixed ``theta1``), and the
    ``y = 1`` events carry that ``theta0`` too, so the distribution of ``theta0`` is identical in both classes
    and the label cannot be read off the parameter feature.

    Parameters
    ----------
    theta0_prior : Prior, benchmark name(s), array of points or None
        Prior of the numerator point; ``None`` is uniform on ``events.space.ranges``.
    theta1 : None, str, mapping or array-like, shape (n_params,)
        Fixed denominator (reference) point; ``None`` is the origin.
    n_thetas : int or None
        Number of distinct ``theta0`` values; ``None`` uses every point of a finite prior once.
    compute_score : bool
        Compute ``t_xz`` (joint score at ``theta0``).
    shuffle : bool
        Return the rows in random order (otherwise grouped by class and ``theta0``).
    negative_weights : {"clip", "raise"}

    Notes
    -----
    :meth:`sample` returns ``TrainingSample(x, theta0, theta1, y, r_xz, t_xz)``.
    """

    def __init__(self, theta0_prior: Any = None, theta1: Any = None, n_thetas: int | None = 100,
                 compute_score: bool = True, shuffle: bool = True, negative_weights: str = "clip") -> None:
        self.theta0_prior = theta0_prior
        self.theta1 = theta1
        self.n_thetas = n_thetas
        self.compute_score = compute_score
        self.shuffle = shuffle
        self.negative_weights = negative_weights

    def sample(self, events: Any, n_samples: int, random_state: Any = None) -> TrainingSample:
        """Draw ``n_samples`` events, half with ``y = 0`` and half with ``y = 1``.

        Parameters
        ----------
        events : EventSet
            Weighted training events.
        n_samples : int
            Total number of samples (even).
        random_state : None, int or numpy Generator
        """
        self._check_policy()
        _check_events(events)
        n = _check_n(n_samples, even=True)
        rng = check_random_state(random_state)
        space = events.space
        theta1 = _point(space, self.theta1, "theta1")
        theta0s = _thetas(self.theta0_prior, space, self.n_thetas, rng, "theta0_prior")
        theta0s, counts = _collapse(theta0s, _split_counts(n // 2, theta0s.shape[0], rng))
        rows0, owner = unweight(events, theta0s, counts, rng, self.negative_weights)
        rows1, _ = unweight(events, theta1[None, :], n // 2, rng, self.negative_weights)
        rows = np.concatenate([rows0, rows1])
        owner = np.concatenate([owner, owner])  # the y = 1 draws are iid: assign them to the theta0 values
        events, rows = _drawn(events, rows)
        log_p0, t = joint_log_likelihoods(events, rows, theta0s, owner, score=self.compute_score)
        log_p1, _ = joint_log_likelihoods(events, rows, theta1[None, :])
        with np.errstate(over="ignore", invalid="ignore"):
            r_xz = np.exp(log_p0 - log_p1)
        sample = TrainingSample(x=_x(events, rows), theta0=theta0s[owner], theta1=np.repeat(theta1[None, :], n, 0),
                                y=np.concatenate([np.zeros(n // 2), np.ones(n // 2)]), r_xz=r_xz, t_xz=t)
        return self._finish(sample, rng)


class DoubleRatioSampler(_Sampler):
    """Labelled events for doubly parameterised ratio estimators: both ``theta0`` and ``theta1`` vary.

    ``n_thetas`` pairs ``(theta0, theta1)`` are drawn from the two priors; each pair gets the same number of
    ``y = 0`` events (drawn at its ``theta0``) and ``y = 1`` events (drawn at its ``theta1``), and all of them
    carry the pair, so neither parameter feature leaks the label.

    Parameters
    ----------
    theta0_prior, theta1_prior : Prior, benchmark name(s), array of points or None
        Priors; ``None`` is uniform on ``events.space.ranges``.
    n_thetas : int or None
        Number of pairs; ``None`` pairs up every point of two finite priors (they must have equally many).
    compute_score : bool
        Compute ``t_xz`` (at ``theta0``) and ``t_xz1`` (at ``theta1``).
    shuffle : bool
    negative_weights : {"clip", "raise"}

    Notes
    -----
    :meth:`sample` returns ``TrainingSample(x, theta0, theta1, y, r_xz, t_xz, t_xz1)``.
    """

    def __init__(self, theta0_prior: Any = None, theta1_prior: Any = None, n_thetas: int | None = 100,
                 compute_score: bool = True, shuffle: bool = True, negative_weights: str = "clip") -> None:
        self.theta0_prior = theta0_prior
        self.theta1_prior = theta1_prior
        self.n_thetas = n_thetas
        self.compute_score = compute_score
        self.shuffle = shuffle
        self.negative_weights = negative_weights

    def sample(self, events: Any, n_samples: int, random_state: Any = None) -> TrainingSample:
        """Draw ``n_samples`` events (even), half per class. See :class:`RatioSampler`."""
        self._check_policy()
        _check_events(events)
        n = _check_n(n_samples, even=True)
        rng = check_random_state(random_state)
        space = events.space
        theta0s = _thetas(self.theta0_prior, space, self.n_thetas, rng, "theta0_prior")
        theta1s = _thetas(self.theta1_prior, space, self.n_thetas, rng, "theta1_prior")
        if theta0s.shape[0] != theta1s.shape[0]:
            raise ValueError(f"n_thetas=None pairs the points of both priors, but theta0_prior has "
                             f"{theta0s.shape[0]} and theta1_prior {theta1s.shape[0]}")
        pairs, counts = _collapse(np.concatenate([theta0s, theta1s], axis=1),
                                  _split_counts(n // 2, theta0s.shape[0], rng))
        theta0s, theta1s = pairs[:, : space.n_parameters], pairs[:, space.n_parameters:]
        rows0, owner = unweight(events, theta0s, counts, rng, self.negative_weights)
        rows1, owner1 = unweight(events, theta1s, counts, rng, self.negative_weights)
        rows = np.concatenate([rows0, rows1])
        owner = np.concatenate([owner, owner1])
        events, rows = _drawn(events, rows)
        log_p0, t0 = joint_log_likelihoods(events, rows, theta0s, owner, score=self.compute_score)
        log_p1, t1 = joint_log_likelihoods(events, rows, theta1s, owner, score=self.compute_score)
        with np.errstate(over="ignore", invalid="ignore"):
            r_xz = np.exp(log_p0 - log_p1)
        sample = TrainingSample(x=_x(events, rows), theta0=theta0s[owner], theta1=theta1s[owner],
                                y=np.concatenate([np.zeros(n // 2), np.ones(n // 2)]), r_xz=r_xz, t_xz=t0,
                                t_xz1=t1)
        return self._finish(sample, rng)


class DensitySampler(_Sampler):
    """Events at parameter points from a prior with the joint score there, for NDE / SCANDAL.

    Parameters
    ----------
    theta_prior : Prior, benchmark name(s), array of points or None
        ``None`` is uniform on ``events.space.ranges``.
    n_thetas : int or None
        Number of distinct parameter points (the events are split evenly among them); ``None`` uses every
        point of a finite prior. The unweighting cost grows like ``len(events) * n_thetas``.
    compute_score : bool
        Compute ``t_xz``.
    shuffle : bool
    negative_weights : {"clip", "raise"}

    Notes
    -----
    :meth:`sample` returns ``TrainingSample(x, theta0=theta, t_xz)``.
    """

    def __init__(self, theta_prior: Any = None, n_thetas: int | None = 1000, compute_score: bool = True,
                 shuffle: bool = True, negative_weights: str = "clip") -> None:
        self.theta_prior = theta_prior
        self.n_thetas = n_thetas
        self.compute_score = compute_score
        self.shuffle = shuffle
        self.negative_weights = negative_weights

    def sample(self, events: Any, n_samples: int, random_state: Any = None) -> TrainingSample:
        """Draw ``n_samples`` events spread evenly over the parameter points."""
        self._check_policy()
        _check_events(events)
        n = _check_n(n_samples)
        rng = check_random_state(random_state)
        thetas = _thetas(self.theta_prior, events.space, self.n_thetas, rng, "theta_prior")
        thetas, counts = _collapse(thetas, _split_counts(n, thetas.shape[0], rng))
        rows, owner = unweight(events, thetas, counts, rng, self.negative_weights)
        events, rows = _drawn(events, rows)
        t = None
        if self.compute_score:
            _, t = joint_log_likelihoods(events, rows, thetas, owner, score=True)
        sample = TrainingSample(x=_x(events, rows), theta0=thetas[owner], t_xz=t)
        return self._finish(sample, rng)


class TestSampler(_Sampler):
    """Unweighted events at one or several parameter points, for evaluation (use the test split).

    Parameters
    ----------
    theta : None, str, mapping, array-like (n_params,) or (n_points, n_params)
        Point(s); ``None`` is the origin. With several points ``n_samples`` events are drawn at each.
    negative_weights : {"clip", "raise"}

    Notes
    -----
    :meth:`sample` returns ``TrainingSample(x, theta0)`` with the rows grouped by point.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, theta: Any = None, negative_weights: str = "clip") -> None:
        self.theta = theta
        self.negative_weights = negative_weights

    def sample(self, events: Any, n_samples: int, random_state: Any = None) -> TrainingSample:
        """Draw ``n_samples`` events per point."""
        self._check_policy()
        _check_events(events)
        n = _check_n(n_samples)
        rng = check_random_state(random_state)
        space = events.space
        if self.theta is None or isinstance(self.theta, str | Mapping):
            thetas = _point(space, self.theta, "theta")[None, :]
        else:
            thetas = np.asarray(self.theta, dtype=np.float64)
            thetas = thetas[None, :] if thetas.ndim == 1 else thetas
            if thetas.ndim != 2 or thetas.shape[1] != space.n_parameters or not np.all(np.isfinite(thetas)):
                raise ValueError(f"theta must be finite with shape ({space.n_parameters},) or (n_points, "
                                 f"{space.n_parameters}), got {np.shape(self.theta)}")
        rows, owner = unweight(events, thetas, n, rng, self.negative_weights)
        return self._finish(TrainingSample(x=_x(events, rows), theta0=thetas[owner]), rng)
