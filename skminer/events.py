"""Weighted event samples: observations, per-benchmark weights, morphing and nuisance factors.

An :class:`EventSet` holds ``n_events`` simulated events with observables ``x`` and, for every event, its
contribution to the cross section (in pb) at each benchmark: ``weights[:, b].sum()`` is the cross section at
benchmark ``b``. With a :class:`~skminer.morphing.Morpher` the weights at any parameter point follow exactly from
the columns of the morphing basis benchmarks::

    w(x | theta) = sum_b w_b(theta) w(x | theta_b),        w_b(theta) = morpher.weights(theta)

and systematic uncertainties enter through eq. (19) of the MadMiner paper::

    dsigma(x | theta, nu) = dsigma(x | theta, 0) exp(sum_i a_i(x) nu_i + b_i(x) nu_i^2).

Files: :meth:`EventSet.save` / :meth:`EventSet.load` use skminer's own versioned HDF5 layout (attribute
``skminer_format``); :meth:`EventSet.from_madminer` / :meth:`EventSet.to_madminer` read and write MadMiner's
layout so that analyses can migrate in both directions. The formats live in :mod:`skminer.io`: every write is
atomic (a temporary file in the target directory is renamed over the target only after it was written
completely), and every read checks the file's declared shapes against the data it stores before allocating.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._arrays import from_awkward
from ._random import check_random_state
from .io import (
    FORMAT_VERSION,
    EventFileWriter,
    open_events,
    read_event_rows,
    read_events,
    read_madminer,
    write_events,
    write_madminer,
)
from .morphing import Morpher, parameter_scales
from .parameters import ParameterSpace

__all__ = ["EventSet", "ChunkedEventSet", "FORMAT_VERSION", "SUM_BLOCK"]

logger = logging.getLogger(__name__)

#: A cross section below ``-NEGATIVE_TOLERANCE`` times the sum of the magnitudes it is made of counts as negative.
NEGATIVE_TOLERANCE = 1e-9


def warn_negative_cross_sections(labels: Sequence[str] | Callable[[int], str], xs: np.ndarray,
                                 scale: np.ndarray | None = None, where: str = "") -> bool:
    """Log a WARNING naming the points (``labels``, or a function of the index giving them) whose cross sections
    ``xs`` (pb) are negative.

    A total cross section is never negative (negative event weights at NLO still sum to a positive rate); one that
    is means wrong weights or a morphing outside its physical region. ``scale`` is the sum of the magnitudes
    each value is made of (default ``|xs|``): values above ``-NEGATIVE_TOLERANCE * scale`` are rounding.

    Returns
    -------
    bool
        Whether any was negative.
    """
    xs = np.asarray(xs, dtype=np.float64).reshape(-1)
    scale = np.abs(xs) if scale is None else np.asarray(scale, dtype=np.float64).reshape(-1)
    bad = np.flatnonzero(xs < -NEGATIVE_TOLERANCE * scale)
    if bad.size:
        label = labels if callable(labels) else labels.__getitem__
        shown = ", ".join(f"{label(int(i))}: {xs[i]:.6g} pb" for i in bad[:5])
        more = f" and {bad.size - 5} more" if bad.size > 5 else ""
        logger.warning("%snegative cross section at %d of %d points (%s%s): the event weights or the morphing are "
                       "unphysical there", f"{where}: " if where else "", bad.size, xs.size, shown, more)
    return bool(bad.size)

#: Events per block of the cross-section sums (:func:`block_sums`); out-of-core chunks are multiples of it.
SUM_BLOCK = 4096


class EventSet:
    """Weighted events with observables, per-benchmark weights and an optional morphing setup.

    Parameters
    ----------
    x : array-like, shape (n_events, n_observables)
        Observations (converted to float64; must be finite: apply cuts before building the set).
    weights : array-like, shape (n_events, n_benchmarks)
        Per-event cross-section contributions in pb at each benchmark; ``weights[:, b].sum()`` is the cross
        section at benchmark ``b``. May be negative (NLO), must be finite.
    observable_names : sequence of str
        One unique name per column of ``x``.
    benchmark_names : sequence of str
        One unique name per column of ``weights``; each must be a benchmark of ``space``.
    space : ParameterSpace
        Parameters, benchmark values and nuisance parameter definitions.
    morpher : Morpher, optional
        Morphing setup. If it has no basis yet, ``morphing_basis`` sets it (on a copy).
    morphing_basis : sequence of str, optional
        Benchmarks whose weight columns form the morphing basis, in the order of ``morpher.basis``. When
        omitted, the benchmarks are matched to the rows of ``morpher.basis`` by value.
    sampling_benchmark : array-like of int, shape (n_events,), optional
        Index (into ``benchmark_names``) of the benchmark each event was generated at; ``-1`` means unknown or
        background. Default: all ``-1``.
    nuisance_names : sequence of str
        Names of the nuisance parameters with per-event coefficients (columns of ``nuisance_a``).
    nuisance_a, nuisance_b : array-like, shape (n_events, n_nuisance), optional
        Coefficients of eq. (19). ``nuisance_b`` defaults to zeros.
    observable_definitions : sequence of (str or None), optional
        Expressions that define the observables (metadata only; never evaluated here).
    metadata : mapping, optional
        JSON-serialisable provenance information, saved with the events.

    Attributes
    ----------
    x : ndarray, shape (n_events, n_observables)
        Read-only float64 view.
    weights : ndarray, shape (n_events, n_benchmarks)
        Read-only float64 view. Use ``.copy()`` to modify and build a new set.
    sampling_benchmark : ndarray of int, shape (n_events,)
    nuisance_a, nuisance_b : ndarray, shape (n_events, n_nuisance) or None

    Notes
    -----
    Subsets (:meth:`__getitem__`, :meth:`apply_cuts`, :meth:`shuffle`) share ``space`` and ``morpher`` with
    the original set; their weights are not rescaled. :meth:`train_test_split` rescales (see there).

    Examples
    --------
    >>> events = EventSet.from_madminer("madminer_example.h5")                   # doctest: +SKIP
    >>> events.cross_section([[0.0, 0.0], [5.0, -5.0]])                           # doctest: +SKIP
    >>> train, test = events.train_test_split(test_fraction=0.2, random_state=0)  # doctest: +SKIP
    >>> train.save("train.h5")                                                    # doctest: +SKIP
    """

    def __init__(
        self,
        x: Any,
        weights: Any,
        *,
        observable_names: Sequence[str],
        benchmark_names: Sequence[str],
        space: ParameterSpace,
        morpher: Morpher | None = None,
        morphing_basis: Sequence[str] | None = None,
        sampling_benchmark: Any = None,
        nuisance_names: Sequence[str] = (),
        nuisance_a: Any = None,
        nuisance_b: Any = None,
        observable_definitions: Sequence[str | None] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(space, ParameterSpace):
            raise TypeError(f"space must be a ParameterSpace, got {type(space).__name__}")
        self.space = space
        self.x = _float_matrix(x, "x")
        n_events = self.x.shape[0]
        self.weights = _float_matrix(weights, "weights")
        if self.weights.shape[0] != n_events:
            raise ValueError(f"x has {n_events} events but weights has {self.weights.shape[0]} rows")

        self.observable_names = _names(observable_names, "observable_names", self.x.shape[1], "columns of x")
        self.benchmark_names = _names(benchmark_names, "benchmark_names", self.weights.shape[1],
                                      "columns of weights")
        unknown = [b for b in self.benchmark_names if b not in space.benchmarks]
        if unknown:
            raise ValueError(f"benchmark_names {unknown} are not benchmarks of the parameter space "
                             f"(known: {space.benchmark_names})")
        _check_finite(self.x, "x", self.observable_names, "observable")
        _check_finite(self.weights, "weights", self.benchmark_names, "benchmark")

        if observable_definitions is None:
            self.observable_definitions: list[str | None] = [None] * len(self.observable_names)
        else:
            defs = [None if d is None else str(d) for d in observable_definitions]
            if len(defs) != len(self.observable_names):
                raise ValueError(f"observable_definitions has {len(defs)} entries for "
                                 f"{len(self.observable_names)} observables")
            self.observable_definitions = defs

        self.sampling_benchmark = self._check_sampling(sampling_benchmark, n_events)
        self.nuisance_names, self.nuisance_a, self.nuisance_b = self._check_nuisance(
            nuisance_names, nuisance_a, nuisance_b, n_events)

        try:
            self.metadata: dict[str, Any] = json.loads(json.dumps(dict(metadata or {}), allow_nan=False))
        except (TypeError, ValueError) as err:
            raise ValueError(f"metadata must be JSON-serialisable: {err}") from None

        self.morpher, self.morphing_basis = self._check_morphing(morpher, morphing_basis)
        self._basis_index = (None if self.morphing_basis is None
                             else np.array([self.benchmark_names.index(b) for b in self.morphing_basis]))

    # -- validation -------------------------------------------------------------------------------------
    def _check_sampling(self, sampling_benchmark: Any, n_events: int) -> np.ndarray:
        if sampling_benchmark is None:
            out = np.full(n_events, -1, dtype=np.int64)
        else:
            raw = np.asarray(sampling_benchmark)
            if raw.shape != (n_events,):
                raise ValueError(f"sampling_benchmark must have shape ({n_events},), got {raw.shape}")
            if raw.size and (not np.issubdtype(raw.dtype, np.number) or np.any(raw != np.round(raw))):
                raise ValueError("sampling_benchmark must hold integer benchmark indices")
            out = raw.astype(np.int64)
            bad = (out < -1) | (out >= len(self.benchmark_names))
            if np.any(bad):
                raise ValueError(f"sampling_benchmark values must be -1 (unknown) or in [0, "
                                 f"{len(self.benchmark_names) - 1}], got {out[bad][:5].tolist()}")
        out.flags.writeable = False
        return out

    def _check_nuisance(self, names: Sequence[str], a: Any, b: Any, n_events: int
                        ) -> tuple[list[str], np.ndarray | None, np.ndarray | None]:
        names = [str(n) for n in names]
        if len(set(names)) != len(names):
            raise ValueError(f"nuisance_names must be unique, got {names}")
        if a is None:
            if names or b is not None:
                raise ValueError("nuisance_names / nuisance_b given without nuisance_a")
            return [], None, None
        a = _float_matrix(a, "nuisance_a")
        b = np.zeros_like(a) if b is None else _float_matrix(b, "nuisance_b")
        for arr, label in ((a, "nuisance_a"), (b, "nuisance_b")):
            if arr.shape != (n_events, len(names)):
                raise ValueError(f"{label} must have shape (n_events, n_nuisance) = ({n_events}, {len(names)}) "
                                 f"for nuisance_names {names}, got {arr.shape}")
            _check_finite(arr, label, names, "nuisance parameter")
        return names, a, b

    def _check_morphing(self, morpher: Morpher | None, basis_names: Sequence[str] | None
                        ) -> tuple[Morpher | None, list[str] | None]:
        if morpher is None:
            if basis_names is not None:
                raise ValueError("morphing_basis given without a morpher")
            return None, None
        if not isinstance(morpher, Morpher):
            raise TypeError(f"morpher must be a Morpher, got {type(morpher).__name__}")
        if morpher.n_parameters != self.space.n_parameters:
            raise ValueError(f"morpher has {morpher.n_parameters} parameters, the space "
                             f"{self.space.n_parameters} ({self.space.parameter_names})")
        values = self.benchmark_values
        if basis_names is not None:
            basis_names = [str(b) for b in basis_names]
            missing = [b for b in basis_names if b not in self.benchmark_names]
            if missing:
                raise ValueError(f"morphing_basis {missing} are not among benchmark_names {self.benchmark_names}")
            if len(set(basis_names)) != len(basis_names):
                raise ValueError(f"morphing_basis has duplicates: {basis_names}")
            points = values[[self.benchmark_names.index(b) for b in basis_names]]
            if morpher.basis is None:
                morpher = Morpher.from_dict(morpher.to_dict())
                morpher.set_basis(points)
            elif morpher.basis.shape != points.shape or not np.all(_same_points(morpher.basis, points, values)):
                raise ValueError(f"morphing_basis {basis_names} (points {points.tolist()}) does not match "
                                 f"morpher.basis {morpher.basis.tolist()}")
            return morpher, basis_names
        if morpher.basis is None:
            raise ValueError("morpher has no basis: give morphing_basis (benchmark names) or call set_basis()")
        names = []
        for row in morpher.basis:
            hit = np.flatnonzero(_same_points(values, row[None, :], values))
            if hit.size == 0:
                raise ValueError(f"morpher basis point {row.tolist()} is not one of the benchmarks "
                                 f"{self.benchmark_names}; add its weights or pass morphing_basis")
            names.append(self.benchmark_names[int(hit[0])])
        return morpher, names

    # -- sizes and views --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def n_events(self) -> int:
        """Number of events."""
        return self.x.shape[0]

    @property
    def n_observables(self) -> int:
        """Number of observables (columns of ``x``)."""
        return self.x.shape[1]

    @property
    def n_benchmarks(self) -> int:
        """Number of benchmarks (columns of ``weights``)."""
        return self.weights.shape[1]

    @property
    def n_parameters(self) -> int:
        """Number of parameters of interest."""
        return self.space.n_parameters

    @property
    def n_nuisance(self) -> int:
        """Number of nuisance parameters with per-event coefficients."""
        return len(self.nuisance_names)

    @property
    def benchmark_values(self) -> np.ndarray:
        """Parameter points of the weight columns, shape ``(n_benchmarks, n_parameters)``."""
        return np.stack([self.space.benchmarks[b] for b in self.benchmark_names]).reshape(-1, self.n_parameters)

    def benchmark_index(self, name: str) -> int:
        """Column of benchmark ``name`` in :attr:`weights`."""
        try:
            return self.benchmark_names.index(name)
        except ValueError:
            raise KeyError(f"unknown benchmark {name!r}; known: {self.benchmark_names}") from None

    def __repr__(self) -> str:
        basis = "none" if self.morphing_basis is None else f"{len(self.morphing_basis)} benchmarks"
        return (f"EventSet(n_events={self.n_events}, observables={self.observable_names}, "
                f"benchmarks={self.n_benchmarks}, parameters={self.space.parameter_names}, morphing={basis}, "
                f"nuisance={self.nuisance_names})")

    # -- theta handling ---------------------------------------------------------------------------------
    def _theta(self, theta: Any) -> tuple[np.ndarray, bool]:
        """``(n_theta, n_params)`` float64 array and whether the input was a single point."""
        if isinstance(theta, str | Mapping):
            return self.space.as_theta(theta), True
        if (isinstance(theta, Sequence) and len(theta) > 0
                and all(isinstance(t, str | Mapping) for t in theta)):
            return np.concatenate([self.space.as_theta(t) for t in theta]), False
        try:
            arr = np.asarray(theta, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"theta must be numeric (or benchmark names / mappings of parameter values): {err}"
                             ) from None
        single = arr.ndim <= 1
        if arr.ndim == 0:
            arr = arr.reshape(1)
        arr = arr.reshape(1, -1) if single else arr
        if arr.ndim != 2 or arr.shape[1] != self.n_parameters:
            raise ValueError(f"theta must have shape ({self.n_parameters},) or (n_theta, {self.n_parameters}) "
                             f"for parameters {self.space.parameter_names}, got {np.shape(theta)}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"theta must be finite, got {arr.tolist()}")
        return arr, single

    def _nu(self, nu: Any) -> tuple[np.ndarray, bool]:
        """``(n_nu, n_nuisance)`` float64 array and whether the input was a single point."""
        arr = np.asarray(nu, dtype=np.float64)
        single = arr.ndim <= 1
        arr = arr.reshape(1, -1) if single else arr
        if arr.ndim != 2 or arr.shape[1] != self.n_nuisance:
            raise ValueError(f"nu must have shape ({self.n_nuisance},) or (n_nu, {self.n_nuisance}) for nuisance "
                             f"parameters {self.nuisance_names}, got {np.shape(nu)}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"nu must be finite, got {arr.tolist()}")
        return arr, single

    def _basis_weights(self) -> np.ndarray:
        idx = self._basis_index
        if idx.size and np.array_equal(idx, np.arange(idx[0], idx[0] + idx.size)):
            return self.weights[:, idx[0]:idx[0] + idx.size]  # a view: no copy for the common layout
        return self.weights[:, idx]

    def _weight_sums(self) -> np.ndarray:
        """Column sums of the weights, shape ``(n_benchmarks,)``, summed in fixed blocks of events
        (:func:`block_sums`), so that an out-of-core set (:class:`ChunkedEventSet`) gets the same digits."""
        cached = self.__dict__.get("_weight_sums_cache")
        if cached is None:
            cached = total_of_block_sums(block_sums(self.weights))
            self.__dict__["_weight_sums_cache"] = cached
        return cached

    def _benchmark_columns(self, th: np.ndarray) -> np.ndarray:
        """Columns of the benchmarks equal to the points ``th``; error if one is not a benchmark."""
        values = self.benchmark_values
        match = _same_points(values[None, :, :], th[:, None, :], values)  # (n_theta, n_benchmarks)
        missing = ~match.any(axis=1)
        if np.any(missing):
            raise ValueError(f"this EventSet has no morpher, so weights are only known at its benchmarks "
                             f"{self.benchmark_names}; theta={th[missing][0].tolist()} is none of them "
                             "(build the set with a Morpher and morphing_basis to morph)")
        return np.argmax(match, axis=1)

    # -- weights and cross sections ---------------------------------------------------------------------
    def weights_at(self, theta: Any, nu: Any = None) -> np.ndarray:
        """Event weights at parameter points, by morphing (one matrix product for all points).

        Parameters
        ----------
        theta : array-like, shape (n_params,) or (n_theta, n_params); or a benchmark name or mapping
            Parameter points. A benchmark name or a ``{parameter: value}`` mapping is a single point; a list of
            names / mappings gives one point each (batched output).
        nu : array-like, shape (n_nuisance,) or (n_theta, n_nuisance), optional
            Nuisance parameter values (eq. 19); one row is used for every ``theta``, ``n_theta`` rows are
            paired with the ``theta`` rows.

        Returns
        -------
        ndarray
            ``(n_events, n_theta)``; ``(n_events,)`` for a single point (1-D ``theta`` and ``nu``).

        Raises
        ------
        ValueError
            If there is no morpher and a ``theta`` is not one of the benchmarks.
        """
        th, single = self._theta(theta)
        if self.morpher is None:
            w = self.weights[:, self._benchmark_columns(th)]
        else:
            # (n_theta, n_events) product returned transposed: Fortran order keeps each point's weights
            # contiguous, which is what unweighting (cumsum / searchsorted per point) reads
            w = (self.morpher.weights(th) @ self._basis_weights().T).T
        w, single = self._apply_nu(w, nu, single)
        return w[:, 0] if single else w

    def _apply_nu(self, w: np.ndarray, nu: Any, single: bool) -> tuple[np.ndarray, bool]:
        if nu is None:
            return w, single
        factor = self.total_nuisance_factor(nu)
        nu_single = factor.ndim == 1
        factor = factor.reshape(self.n_events, -1)
        if factor.shape[1] != 1 and w.shape[1] != 1 and factor.shape[1] != w.shape[1]:
            raise ValueError(f"nu has {factor.shape[1]} rows but theta {w.shape[1]}; give one nu row or one per "
                             "theta")
        return w * factor, single and nu_single

    def cross_section(self, theta: Any, nu: Any = None) -> np.ndarray | float:
        """Cross sections (pb) at parameter points: the sums of :meth:`weights_at` over events.

        Without ``nu`` the benchmark columns are summed once (cached) and morphed; with ``nu`` the weights are
        evaluated and summed block by block (:func:`event_block_sums`), so that an out-of-core set gives the same
        digits.

        Parameters
        ----------
        theta, nu
            As :meth:`weights_at`.

        Returns
        -------
        ndarray, shape (n_theta,), or float for a single point (1-D ``theta`` and ``nu``).

        Raises
        ------
        ValueError
            Without a morpher, at a point that is not a benchmark; for ``nu`` of the wrong shape or without
            nuisance coefficients.
        """
        if nu is None:  # morphing is linear: morph the column sums
            return self._cross_section_from_sums(theta, self._weight_sums())
        return total_of_event_sums([event_block_sums(self, "weights_at", theta, nu)])

    def _cross_section_from_sums(self, theta: Any, sums: np.ndarray) -> np.ndarray | float:
        """Cross sections at ``theta`` from the column sums ``sums`` (shape ``(n_benchmarks,)``) of these events'
        weights (or of the events of a file or of several files with this setup)."""
        th, single = self._theta(theta)
        if self.morpher is None:
            xs = sums[self._benchmark_columns(th)]
            scale = np.abs(xs)
        else:
            coeff = self.morpher.weights(th)
            xs = coeff @ sums[self._basis_index]
            scale = np.abs(coeff) @ np.abs(sums[self._basis_index])  # beyond the rounding of a cancelling sum
        warn_negative_cross_sections(lambda i: self._point_label(th[i]), xs, scale)
        return float(xs[0]) if single else xs

    def _point_label(self, theta: np.ndarray) -> str:
        """``theta=[...]``, with the benchmark's name when the point is one."""
        values = self.benchmark_values
        same = np.flatnonzero(_same_points(values, theta[None, :], values)) if values.size else []
        name = f" (benchmark {self.benchmark_names[same[0]]!r})" if len(same) else ""
        return f"theta={np.round(theta, 6).tolist()}{name}"

    def _cross_section_gradient_from_sums(self, theta: Any, sums: np.ndarray) -> np.ndarray:
        """Gradients of the cross section at ``theta`` from the column sums ``sums`` (see
        :meth:`_cross_section_from_sums`)."""
        if self.morpher is None:
            raise ValueError("weight gradients need morphing: these events have no morpher")
        th, single = self._theta(theta)
        g = self.morpher.weight_gradients(th) @ sums[self._basis_index]  # (n_theta, n_params)
        return g[0] if single else g

    def weight_gradients_at(self, theta: Any, nu: Any = None) -> np.ndarray:
        """Gradients of the event weights with respect to ``theta``.

        Returns
        -------
        ndarray
            ``(n_events, n_theta, n_params)``; ``(n_events, n_params)`` for a single point. The nuisance factor
            of eq. (19) does not depend on ``theta`` and multiplies the gradients when ``nu`` is given.
        """
        if self.morpher is None:
            raise ValueError("weight gradients need morphing: this EventSet has no morpher")
        th, single = self._theta(theta)
        g = self.morpher.weight_gradients(th)  # (n_theta, n_params, n_basis)
        n_theta, n_params, n_basis = g.shape
        out = (self._basis_weights() @ g.reshape(n_theta * n_params, n_basis).T).reshape(
            self.n_events, n_theta, n_params)
        if nu is not None:
            factor = self.total_nuisance_factor(nu)
            nu_single = factor.ndim == 1
            factor = factor.reshape(self.n_events, -1)
            if factor.shape[1] != 1 and n_theta != 1 and factor.shape[1] != n_theta:
                raise ValueError(f"nu has {factor.shape[1]} rows but theta {n_theta}")
            out = out * factor[:, :, None]
            single = single and nu_single
        return out[:, 0, :] if single else out

    def cross_section_gradient(self, theta: Any, nu: Any = None) -> np.ndarray:
        """Gradient of the cross section with respect to ``theta``, shape ``(n_theta, n_params)`` (``(n_params,)``
        for one point): the sum of :meth:`weight_gradients_at` over events (block by block with ``nu``, as
        :meth:`cross_section`).

        Raises
        ------
        ValueError
            Without a morpher; for ``nu`` of the wrong shape or without nuisance coefficients.
        """
        if nu is None:  # morphing is linear: morph the column sums
            return self._cross_section_gradient_from_sums(theta, self._weight_sums())
        return total_of_event_sums([event_block_sums(self, "weight_gradients_at", theta, nu)])

    def weight_nuisance_gradients_at(self, theta: Any, nu: Any = None) -> np.ndarray:
        """Gradients of the event weights with respect to the nuisance parameters (eq. 19):
        ``d w(x|theta, nu) / d nu_i = w(x|theta, nu) (a_i(x) + 2 b_i(x) nu_i)``.

        Parameters
        ----------
        theta, nu
            As :meth:`weights_at`; ``nu=None`` is the nominal point ``nu = 0``, where the gradient is ``w a``.

        Returns
        -------
        ndarray
            ``(n_events, n_theta, n_nuisance)``; ``(n_events, n_nuisance)`` for a single point.

        Raises
        ------
        ValueError
            Without nuisance coefficients; for ``nu`` of the wrong shape.
        """
        self._require_nuisance()
        nu = np.zeros(self.n_nuisance) if nu is None else nu
        w = self.weights_at(theta, nu)  # (n_events,) or (n_events, n_points)
        d = self.log_nuisance_factor_gradients(nu)  # (n_events, n_nuisance) or (n_events, n_nu, n_nuisance)
        if w.ndim == 1:
            return w[:, None] * d
        return w[:, :, None] * d.reshape(self.n_events, -1, self.n_nuisance)

    def cross_section_nuisance_gradient(self, theta: Any, nu: Any = None) -> np.ndarray:
        """Gradient of the cross section with respect to the nuisance parameters, the sum of
        :meth:`weight_nuisance_gradients_at` over events (block by block, as :meth:`cross_section` with ``nu``).

        Returns
        -------
        ndarray, shape (n_theta, n_nuisance), or (n_nuisance,) for a single point. In pb per unit of ``nu``.

        Raises
        ------
        ValueError
            Without nuisance coefficients; for ``nu`` of the wrong shape.
        """
        self._require_nuisance()
        return total_of_event_sums([event_block_sums(self, "weight_nuisance_gradients_at", theta, nu)])

    def effective_sample_size(self, theta: Any = None, nu: Any = None) -> np.ndarray | float:
        """Kish effective number of events ``(sum w)^2 / sum w^2``.

        Parameters
        ----------
        theta : optional
            Parameter points as in :meth:`weights_at`; ``None`` gives one value per benchmark column.
        nu : optional
            Nuisance parameters as in :meth:`weights_at`.

        Returns
        -------
        ndarray, shape (n_theta,) or (n_benchmarks,), or float for a single point.
            ``n_events`` for equal weights; much smaller when a few events dominate (negative weights lower it
            further). ``0`` where all weights vanish.
        """
        w = self.weights if theta is None else self.weights_at(theta, nu)
        s = w.sum(axis=0)
        s2 = np.einsum("i...,i...->...", w, w)
        out = np.divide(s * s, s2, out=np.zeros_like(np.asarray(s2, dtype=np.float64)), where=s2 > 0)
        return float(out) if np.ndim(out) == 0 else out

    # -- nuisance parameters (eq. 19) -------------------------------------------------------------------
    def _require_nuisance(self) -> None:
        if self.nuisance_a is None:
            raise ValueError("this EventSet has no nuisance parameters (nuisance_a is None)")

    def nuisance_factors(self, nu: Any) -> np.ndarray:
        """Per-parameter factors ``exp(a_i(x) nu_i + b_i(x) nu_i^2)`` of eq. (19).

        Parameters
        ----------
        nu : array-like, shape (n_nuisance,) or (n_nu, n_nuisance)

        Returns
        -------
        ndarray
            ``(n_events, n_nuisance)`` for one point, ``(n_events, n_nu, n_nuisance)`` for several. Their
            product over the last axis is :meth:`total_nuisance_factor`.
        """
        self._require_nuisance()
        v, single = self._nu(nu)
        expo = self.nuisance_a[:, None, :] * v[None] + self.nuisance_b[:, None, :] * v[None] ** 2
        out = np.exp(expo)
        return out[:, 0, :] if single else out

    def total_nuisance_factor(self, nu: Any) -> np.ndarray:
        """``dsigma(x|theta, nu) / dsigma(x|theta, 0) = exp(sum_i a_i nu_i + b_i nu_i^2)`` (eq. 19).

        Returns
        -------
        ndarray, shape (n_events,) for one point or (n_events, n_nu).
        """
        self._require_nuisance()
        v, single = self._nu(nu)
        expo = self.nuisance_a @ v.T + self.nuisance_b @ (v * v).T  # (n_events, n_nu)
        out = np.exp(expo)
        return out[:, 0] if single else out

    def log_nuisance_factor_gradients(self, nu: Any) -> np.ndarray:
        """``d log(total nuisance factor) / d nu_i = a_i + 2 b_i nu_i`` (the joint score with respect to nu).

        Returns
        -------
        ndarray, shape (n_events, n_nuisance) for one point or (n_events, n_nu, n_nuisance).
        """
        self._require_nuisance()
        v, single = self._nu(nu)
        out = self.nuisance_a[:, None, :] + 2.0 * self.nuisance_b[:, None, :] * v[None]
        return out[:, 0, :] if single else out

    # -- subsets, combination, splits -------------------------------------------------------------------
    def _replace(self, **changes: Any) -> EventSet:
        args: dict[str, Any] = dict(
            x=self.x, weights=self.weights, observable_names=self.observable_names,
            benchmark_names=self.benchmark_names, space=self.space, morpher=self.morpher,
            morphing_basis=self.morphing_basis, sampling_benchmark=self.sampling_benchmark,
            nuisance_names=self.nuisance_names, nuisance_a=self.nuisance_a, nuisance_b=self.nuisance_b,
            observable_definitions=self.observable_definitions, metadata=self.metadata)
        args.update(changes)
        x = args.pop("x")
        weights = args.pop("weights")
        return EventSet(x, weights, **args)

    def _rows(self, index: Any) -> EventSet:
        return self._replace(
            x=self.x[index], weights=self.weights[index], sampling_benchmark=self.sampling_benchmark[index],
            nuisance_a=None if self.nuisance_a is None else self.nuisance_a[index],
            nuisance_b=None if self.nuisance_b is None else self.nuisance_b[index])

    def __getitem__(self, index: Any) -> EventSet:
        """Subset of events (weights are not rescaled).

        ``index`` may be an int, a slice, an integer array or a boolean mask of length ``n_events``.
        """
        if isinstance(index, tuple):
            raise TypeError("EventSet indexing selects events only; use select_observables() for columns")
        if isinstance(index, int | np.integer):
            i = int(index)
            if not -self.n_events <= i < self.n_events:
                raise IndexError(f"event index {i} out of range for {self.n_events} events")
            return self._rows(slice(i, i + 1 if i != -1 else None))
        if isinstance(index, slice):
            return self._rows(index)
        idx = np.asarray(index)
        if idx.dtype == bool:
            if idx.shape != (self.n_events,):
                raise IndexError(f"boolean mask must have shape ({self.n_events},), got {idx.shape}")
        elif idx.size == 0:
            idx = idx.astype(np.int64)
        elif not np.issubdtype(idx.dtype, np.integer) or idx.ndim != 1:
            raise IndexError(f"index must be an int, slice, 1-D integer array or boolean mask; got dtype "
                             f"{idx.dtype} with shape {idx.shape}")
        return self._rows(idx)

    def _row_range(self, start: int, stop: int) -> EventSet:
        """Events ``start:stop`` as views, without re-validating (the rows of a validated set are valid)."""
        out = object.__new__(type(self))
        out.__dict__.update({k: v for k, v in self.__dict__.items() if k != "_weight_sums_cache"})
        for name in ("x", "weights", "sampling_benchmark", "nuisance_a", "nuisance_b"):
            value = self.__dict__[name]
            if value is not None:
                out.__dict__[name] = value[start:stop]
        return out

    def iter_chunks(self, chunk_events: int = 1 << 20) -> Iterator[EventSet]:
        """Consecutive events in chunks of ``chunk_events`` (views; the last chunk may be shorter).

        The same iteration as :meth:`ChunkedEventSet.iter_chunks`, so code written against chunks (the samplers'
        unweighting) runs on in-memory and out-of-core sets alike and gives the same numbers.
        """
        chunk = _chunk_size(chunk_events)
        for start in range(0, self.n_events, chunk):
            yield self._row_range(start, min(start + chunk, self.n_events))

    def apply_cuts(self, mask: Any) -> EventSet:
        """Keep the events where ``mask`` is true (weights unchanged, so cross sections shrink accordingly).

        Parameters
        ----------
        mask : array-like of bool, shape (n_events,)
        """
        m = np.asarray(mask)
        if m.dtype != bool or m.shape != (self.n_events,):
            raise ValueError(f"mask must be a boolean array of shape ({self.n_events},), got dtype {m.dtype} "
                             f"and shape {m.shape}")
        out = self._rows(m)
        logger.info("cuts keep %d of %d events (%.3g%%)", out.n_events, self.n_events,
                    100.0 * out.n_events / max(self.n_events, 1))
        return out

    def select_observables(self, names: Sequence[str | int] | str | int) -> EventSet:
        """Events with a subset (or reordering) of the observables, given by name or column index."""
        if isinstance(names, str | int | np.integer):
            names = [names]
        cols = []
        for n in names:
            if isinstance(n, str):
                if n not in self.observable_names:
                    raise KeyError(f"unknown observable {n!r}; known: {self.observable_names}")
                cols.append(self.observable_names.index(n))
            elif isinstance(n, int | np.integer) and -self.n_observables <= int(n) < self.n_observables:
                cols.append(int(n) % self.n_observables)
            else:
                raise KeyError(f"observable {n!r} is neither a name nor a column index below {self.n_observables}")
        if len(set(cols)) != len(cols):
            raise ValueError(f"observables selected twice: {list(names)}")
        return self._replace(x=self.x[:, cols], observable_names=[self.observable_names[c] for c in cols],
                             observable_definitions=[self.observable_definitions[c] for c in cols])

    def shuffle(self, random_state: Any = None) -> EventSet:
        """A copy with the events in random order."""
        return self._rows(check_random_state(random_state).permutation(self.n_events))

    def train_test_split(self, test_fraction: float = 0.2, random_state: Any = None, *, stratify: bool = True
                         ) -> tuple[EventSet, EventSet]:
        """Random split into training and test events, with weights rescaled per part.

        Each part's weights are multiplied by ``n / n_part`` so that the sum over the events of either part is
        an unbiased estimate of the full cross section at every ``theta`` (a single factor per part keeps the
        morphing relation between the benchmark columns exact; a per-column factor would break it, so the
        sums agree with the total in expectation, not to the last digit).

        Parameters
        ----------
        test_fraction : float
            Fraction of events in the test part, in ``(0, 1)``.
        random_state : None, int or numpy Generator
            Seed.
        stratify : bool
            Split the events of every sampling benchmark (and the unknown ``-1`` group) separately with the
            same fraction and rescale each group by its own factor, so that samples generated at different
            benchmarks keep their proportions exactly.

        Returns
        -------
        train, test : EventSet
        """
        train_idx, test_idx, train_scale, test_scale = _split_indices(
            self.sampling_benchmark, self.benchmark_names, test_fraction, random_state, stratify)
        parts = []
        for idx, scale in ((train_idx, train_scale), (test_idx, test_scale)):
            part = self._rows(idx)
            parts.append(part._replace(weights=part.weights * scale[idx][:, None]))
        logger.info("train/test split: %d / %d events", parts[0].n_events, parts[1].n_events)
        return parts[0], parts[1]

    @classmethod
    def combine(cls, event_sets: Sequence[EventSet], *, mode: str = "sum") -> EventSet:
        """Concatenate event sets with the same observables, benchmarks, parameter space and morphing.

        Parameters
        ----------
        event_sets : sequence of EventSet
        mode : {"sum", "average"}
            ``"sum"``: weights are kept, so cross sections add (e.g. signal plus background processes).
            ``"average"``: the sets are independent samples of the same process; the weights of set ``i`` are
            multiplied by ``n_i / n_total`` so that the combined cross section is the event-weighted average of
            the sets' cross sections (a better estimate of the same cross section).

        Returns
        -------
        EventSet
            Uses the space, morpher, definitions and metadata of the first set.
        """
        sets = list(event_sets)
        if not sets:
            raise ValueError("combine needs at least one EventSet")
        if mode not in ("sum", "average"):
            raise ValueError(f"mode must be 'sum' or 'average', got {mode!r}")
        for i, s in enumerate(sets):
            if not isinstance(s, EventSet):
                raise TypeError(f"event_sets[{i}] is a {type(s).__name__}, not an EventSet")
        first = sets[0]
        for i, s in enumerate(sets[1:], start=1):
            for attr in ("observable_names", "benchmark_names", "nuisance_names", "morphing_basis"):
                if getattr(s, attr) != getattr(first, attr):
                    raise ValueError(f"cannot combine: event_sets[{i}].{attr} = {getattr(s, attr)} differs from "
                                     f"event_sets[0].{attr} = {getattr(first, attr)}")
            if s.space != first.space:
                raise ValueError(f"cannot combine: event_sets[{i}].space = {s.space!r} differs from "
                                 f"event_sets[0].space = {first.space!r}")
            same_basis = s.morpher is None or first.morpher is None or (
                np.array_equal(s.morpher.components, first.morpher.components)
                and np.all(_same_points(s.morpher.basis, first.morpher.basis, first.benchmark_values)))
            if (s.morpher is None) != (first.morpher is None) or not same_basis:
                raise ValueError(f"cannot combine: event_sets[{i}] has a different morpher ({s.morpher!r} vs "
                                 f"{first.morpher!r})")
        n_total = sum(s.n_events for s in sets)
        if mode == "average" and n_total:
            weights = np.concatenate([s.weights * (s.n_events / n_total) for s in sets])
        else:
            weights = np.concatenate([s.weights for s in sets])
        has_nu = any(s.nuisance_a is not None for s in sets)

        def coefficients(s: EventSet, attr: str) -> np.ndarray:
            value = getattr(s, attr)  # None only when there are no nuisance parameters (equal names checked)
            return np.zeros((s.n_events, first.n_nuisance)) if value is None else value

        return first._replace(
            x=np.concatenate([s.x for s in sets]), weights=weights,
            sampling_benchmark=np.concatenate([s.sampling_benchmark for s in sets]),
            nuisance_a=np.concatenate([coefficients(s, "nuisance_a") for s in sets]) if has_nu else None,
            nuisance_b=np.concatenate([coefficients(s, "nuisance_b") for s in sets]) if has_nu else None)

    def copy(self) -> EventSet:
        """Deep copy (arrays, space and morpher)."""
        morpher = None if self.morpher is None else Morpher.from_dict(self.morpher.to_dict())
        return self._replace(
            x=self.x.copy(), weights=self.weights.copy(), space=self.space.copy(), morpher=morpher,
            sampling_benchmark=self.sampling_benchmark.copy(),
            nuisance_a=None if self.nuisance_a is None else self.nuisance_a.copy(),
            nuisance_b=None if self.nuisance_b is None else self.nuisance_b.copy())

    # -- files (formats in skminer.io) ---------------------------------------------------------------------
    def save(self, path: str | os.PathLike, *, compression: str | None = "gzip") -> Path:
        """Write the events to one HDF5 file, atomically.

        The file is written to a temporary name in the same directory and renamed over ``path`` only when
        complete, so an existing file is never left half-written or corrupted by a failure.

        Parameters
        ----------
        path : str or path-like
        compression : {"gzip", "lzf", None}
            Filter of the chunked datasets (gzip level 1 with byte shuffling by default).

        Returns
        -------
        Path
            The written file.
        """
        return write_events(self, path, compression)

    @classmethod
    def load(cls, path: str | os.PathLike) -> EventSet:
        """Read a file written by :meth:`save`.

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        ValueError
            If the file is not a (complete, supported) skminer event file, or declares more data than it stores
            (shapes are checked before anything is allocated); the message names the file and the missing or
            invalid field.
        """
        return read_events(path, cls)

    @classmethod
    def open(cls, path: str | os.PathLike, *, chunk_events: int = 1 << 20) -> ChunkedEventSet:
        """Open a file written by :meth:`save` (or :class:`EventFileWriter`) out of core: nothing is read but its
        setup; see :class:`ChunkedEventSet`.

        Raises
        ------
        FileNotFoundError, ValueError
            As :meth:`load` (every declared shape and stored size is checked on opening).
        """
        return ChunkedEventSet(path, chunk_events=chunk_events, factory=cls)

    @classmethod
    def from_madminer(cls, path: str | os.PathLike, *, include_nuisance: bool = True) -> EventSet:
        """Read a MadMiner HDF5 file (settings and ``samples``), e.g. the output of MadMiner's LHE/Delphes readers.

        Reads ``parameters/*`` (``val_ranges`` or the older ``ranges``), ``benchmarks/*``, ``morphing/*``,
        ``observables/*``, ``samples/{observations, weights, sampling_benchmarks}``, ``sample_summary/*`` and
        ``nuisance_parameters/*``. As in MadMiner's ``DataAnalyzer``, the weights of events generated at
        benchmark ``b`` are multiplied by ``n_b / sum_b' n_b'`` when the file records the number of events per
        sampling benchmark. The morpher is rebuilt from ``morphing/components`` and the benchmark values
        (benchmarks whose morphing-matrix column is zero are not in the basis); the stored matrix is compared
        with the recomputed one. Nuisance benchmarks become the coefficients of eq. (19), computed as MadMiner's
        ``NuisanceMorpher`` does relative to the reference benchmark.

        Parameters
        ----------
        path : str or path-like
        include_nuisance : bool
            Convert nuisance benchmarks into ``nuisance_a``/``nuisance_b``; otherwise drop them.

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        ValueError
            If the file is not a readable HDF5 file, lacks a required field, declares more data than it stores
            or holds inconsistent or invalid content; the message starts with the path.
        """
        return read_madminer(path, cls, include_nuisance=include_nuisance)

    def to_madminer(self, path: str | os.PathLike, *, reference_benchmark: str | None = None) -> Path:
        """Write the events in MadMiner's HDF5 layout (readable by MadMiner 0.9's ``DataAnalyzer``), atomically.

        Parameters are written with both ``val_ranges`` (MadMiner >= 0.9) and ``ranges`` (older versions).
        The morphing matrix has one column per benchmark (zero for benchmarks outside the morphing basis).
        Nuisance parameters become nuisance benchmarks ``w_ref exp(a + b)`` (and ``w_ref exp(-a + b)`` when they
        have a negative variation), so that MadMiner's ``NuisanceMorpher`` recovers ``a`` and ``b``;
        their kinds (and the size of normalisation uncertainties) go to ``systematics/*``. The numbers
        of events per sampling benchmark go to ``sample_summary`` and the stored weights are divided by
        MadMiner's sampling factors, so MadMiner reconstructs exactly these weights.

        Parameters
        ----------
        path : str or path-like
        reference_benchmark : str, optional
            Reference benchmark of the nuisance variations (default: the file's original reference, else the first
            morphing basis benchmark, else the first benchmark).
        """
        return write_madminer(self, path, reference_benchmark=reference_benchmark)


# -- helpers -------------------------------------------------------------------------------------------
def block_sums(w: np.ndarray) -> np.ndarray:
    """Column sums over consecutive blocks of :data:`SUM_BLOCK` rows, shape ``(ceil(n / SUM_BLOCK), n_columns)``.

    Each block's column is summed as one contiguous vector, so its sum depends only on its values (not on the other
    columns or the memory layout): the blocks of chunks that start at multiples of ``SUM_BLOCK`` equal the blocks
    of the whole array, and in-memory and out-of-core cross sections agree to the last digit.
    """
    starts = range(0, w.shape[0], SUM_BLOCK)
    out = np.empty((len(starts), w.shape[1]))
    for i, start in enumerate(starts):
        out[i] = np.ascontiguousarray(w[start:start + SUM_BLOCK].T).sum(axis=1)
    return out


def total_of_block_sums(sums: np.ndarray) -> np.ndarray:
    """The column totals from :func:`block_sums` of consecutive chunks, concatenated in order (each column summed
    as one contiguous vector)."""
    return np.ascontiguousarray(np.asarray(sums, dtype=np.float64).T).sum(axis=1)


def event_block_sums(events: EventSet | ChunkedEventSet, method: str, *args: Any
                     ) -> tuple[np.ndarray, tuple[int, ...]]:
    """Block sums of a per-event quantity: ``getattr(block, method)(*args)`` evaluated on every block of
    :data:`SUM_BLOCK` consecutive events and summed over the block's events (:func:`block_sums`).

    Each block's quantity is computed and summed on its own, so the digits depend only on the block's events: an
    in-memory :class:`EventSet` and a :class:`ChunkedEventSet` of the same file (whose chunks are multiples of
    ``SUM_BLOCK``) give the same block sums. :func:`total_of_event_sums` adds them up.

    Parameters
    ----------
    events : EventSet or ChunkedEventSet
    method : str
        A method of :class:`EventSet` returning an array with one row per event, e.g. ``"weights_at"``.
    *args
        Its arguments.

    Returns
    -------
    sums : ndarray, shape (n_blocks, n_values)
        The flattened quantity summed over each block.
    shape : tuple of int
        The shape of the quantity of one event (``sums`` rows reshape to it).
    """
    parts = []
    shape = None
    for chunk in events.iter_chunks():
        for block in chunk.iter_chunks(SUM_BLOCK):
            q = np.asarray(getattr(block, method)(*args), dtype=np.float64)
            shape = q.shape[1:]
            parts.append(block_sums(q.reshape(q.shape[0], -1)))
    if shape is None:  # no events: the quantity's shape from an empty selection
        shape = np.asarray(getattr(events[0:0], method)(*args)).shape[1:]
        return np.zeros((0, int(np.prod(shape)))), shape
    return np.concatenate(parts), shape


def total_of_event_sums(parts: Sequence[tuple[np.ndarray, tuple[int, ...]]]) -> np.ndarray | float:
    """The sum over all events of :func:`event_block_sums` results of consecutive event sets (e.g. the files of a
    collection, in order): an array of the per-event shape, or a float for a scalar quantity."""
    if not parts:
        raise ValueError("total_of_event_sums needs at least one set of block sums")
    shape = parts[0][1]
    total = total_of_block_sums(np.concatenate([sums for sums, _ in parts])).reshape(shape)
    return float(total) if total.ndim == 0 else total


def _chunk_size(chunk_events: Any) -> int:
    if isinstance(chunk_events, bool) or not isinstance(chunk_events, int | np.integer) or chunk_events < 1:
        raise ValueError(f"chunk_events must be a positive integer, got {chunk_events!r}")
    return int(chunk_events)


class _LazyRows:
    """Read-only rows of one dataset of a :class:`ChunkedEventSet`: ``column[rows]`` reads only those rows
    (int array, boolean mask or slice); ``np.asarray(column)`` reads everything."""

    def __init__(self, events: ChunkedEventSet, name: str, n_columns: int | None) -> None:
        self._events, self._name = events, name
        self.shape = (events.n_events,) if n_columns is None else (events.n_events, n_columns)
        self.dtype = np.dtype(np.int64 if name == "sampling_benchmark" else np.float64)
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> np.ndarray:
        return getattr(self._events[index], self._name)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = getattr(self._events[:], self._name)
        return out if dtype is None else out.astype(dtype)


def _lazy_setup(events: Any, template: EventSet) -> None:
    """Give an out-of-core event source (``n_events`` and ``events[rows]``) the setup of ``template`` (names, space,
    morphing, definitions, metadata) and lazy row views ``x``, ``weights``, ``sampling_benchmark``, ``nuisance_a``,
    ``nuisance_b`` (``None`` without nuisance parameters) that read only the rows they are indexed with."""
    for name in ("space", "morpher", "morphing_basis", "observable_names", "benchmark_names", "nuisance_names",
                 "observable_definitions", "metadata"):
        setattr(events, name, getattr(template, name))
    n_nuisance = len(template.nuisance_names)
    events.x = _LazyRows(events, "x", template.n_observables)
    events.weights = _LazyRows(events, "weights", template.n_benchmarks)
    events.sampling_benchmark = _LazyRows(events, "sampling_benchmark", None)
    events.nuisance_a = None if not n_nuisance else _LazyRows(events, "nuisance_a", n_nuisance)
    events.nuisance_b = None if not n_nuisance else _LazyRows(events, "nuisance_b", n_nuisance)


class ChunkedEventSet:
    """An :class:`EventSet` file read out of core, in chunks of events (see :meth:`EventSet.open`).

    Nothing but the setup is held in memory. The weights and observations are read chunk by chunk:
    :meth:`iter_chunks` yields in-memory :class:`EventSet` chunks (validated like :meth:`EventSet.load`),
    :meth:`cross_section` and :meth:`cross_section_gradient` morph column sums computed in one streamed pass (and
    cached); with nuisance parameters ``nu`` they, :meth:`cross_section_nuisance_gradient` and :meth:`weights_at`
    stream over the chunks once per call, to the digits of the events in memory; indexing (``events[rows]``,
    ``events.x[rows]``) reads only the selected rows, and
    :meth:`train_test_split` writes its two parts to files. The samplers of :mod:`skminer.augmentation` take it
    wherever they take an EventSet (their unweighting streams over :meth:`iter_chunks`) and return exactly
    what they return for ``EventSet.load(path)`` with the same ``random_state``.

    Parameters
    ----------
    path : str or path-like
        A file written by :meth:`EventSet.save` or :class:`EventFileWriter`.
    chunk_events : int
        Events per chunk (rounded up to a multiple of :data:`SUM_BLOCK`); the memory of one chunk is about
        ``chunk_events * 8 * (n_observables + n_benchmarks + 1 + 2 n_nuisance)`` bytes.
    factory : type
        The in-memory class of the chunks (:class:`EventSet` or a subclass).

    Attributes
    ----------
    path : Path
    n_events : int
    x, weights, sampling_benchmark : array-like views that read only the rows they are indexed with
    space, morpher, morphing_basis, observable_names, benchmark_names, nuisance_names, observable_definitions,
    metadata
        As for :class:`EventSet`.

    Raises
    ------
    FileNotFoundError, ValueError
        As :meth:`EventSet.load`.
    """

    #: Tells the samplers' unweighting to stream over the chunks in two passes instead of holding running sums.
    out_of_core = True

    def __init__(self, path: str | os.PathLike, *, chunk_events: int = 1 << 20, factory: type = EventSet) -> None:
        self.path = Path(path)
        chunk = _chunk_size(chunk_events)
        self.chunk_events = -(-chunk // SUM_BLOCK) * SUM_BLOCK
        self._factory = factory
        self._setup, self.n_events = open_events(self.path)
        # an empty set built from the setup: validates names, space and morphing once, and answers the metadata
        self._template = read_event_rows(self.path, self._setup, factory, 0, 0)
        _lazy_setup(self, self._template)
        self._sums: np.ndarray | None = None

    # -- sizes ------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.n_events

    n_observables = property(lambda self: len(self.observable_names), doc="Number of observables.")
    n_benchmarks = property(lambda self: len(self.benchmark_names), doc="Number of benchmarks.")
    n_parameters = property(lambda self: self.space.n_parameters, doc="Number of parameters of interest.")
    n_nuisance = property(lambda self: len(self.nuisance_names), doc="Number of nuisance parameters.")
    benchmark_values = property(lambda self: self._template.benchmark_values,
                                doc="Parameter points of the weight columns, shape ``(n_benchmarks, n_parameters)``.")

    def __repr__(self) -> str:
        return f"ChunkedEventSet({str(self.path)!r}, n_events={self.n_events}, chunk_events={self.chunk_events})"

    # -- reading --------------------------------------------------------------------------------------
    def read_rows(self, start: int, stop: int) -> EventSet:
        """Events ``start:stop`` as an in-memory :class:`EventSet`."""
        start, stop = max(0, int(start)), min(self.n_events, int(stop))
        return read_event_rows(self.path, self._setup, self._factory, start, max(start, stop))

    def iter_chunks(self, chunk_events: int | None = None) -> Iterator[EventSet]:
        """Consecutive in-memory chunks of ``chunk_events`` events (default :attr:`chunk_events`), in file order.

        Reads each HDF5 chunk of the file once when ``chunk_events`` is a multiple of the file's chunking.
        """
        chunk = self.chunk_events if chunk_events is None else _chunk_size(chunk_events)
        for start in range(0, self.n_events, chunk):
            yield self.read_rows(start, start + chunk)

    def load(self) -> EventSet:
        """All events in memory (:meth:`EventSet.load`)."""
        return read_events(self.path, self._factory)

    def __getitem__(self, index: Any) -> EventSet:
        """The selected events as an in-memory :class:`EventSet` (int, slice, integer array or boolean mask),
        read in one pass over the chunks that hold them; the weights are not rescaled."""
        if isinstance(index, tuple):
            raise TypeError("ChunkedEventSet indexing selects events only")
        if isinstance(index, slice):
            start, stop, step = index.indices(self.n_events)
            if step == 1:
                return self.read_rows(start, stop)
            index = np.arange(start, stop, step)
        idx = np.asarray(index)
        if idx.dtype == bool:
            if idx.shape != (self.n_events,):
                raise IndexError(f"boolean mask must have shape ({self.n_events},), got {idx.shape}")
            idx = np.flatnonzero(idx)
        if idx.ndim == 0:
            idx = idx.reshape(1)
        if idx.size and (not np.issubdtype(idx.dtype, np.integer) or idx.ndim != 1):
            raise IndexError(f"index must be an int, slice, 1-D integer array or boolean mask; got dtype {idx.dtype} "
                             f"with shape {idx.shape}")
        idx = idx.astype(np.int64)
        if idx.size and (idx.min() < -self.n_events or idx.max() >= self.n_events):
            raise IndexError(f"event index out of range for {self.n_events} events")
        idx = np.where(idx < 0, idx + self.n_events, idx)
        uniq, inverse = np.unique(idx, return_inverse=True)
        parts = []
        for start in range(0, self.n_events, self.chunk_events):
            lo, hi = np.searchsorted(uniq, [start, start + self.chunk_events])
            if hi > lo:
                parts.append(self.read_rows(start, start + self.chunk_events)[uniq[lo:hi] - start])
        if not parts:
            return self.read_rows(0, 0)
        picked = EventSet.combine(parts) if len(parts) > 1 else parts[0]
        return picked if np.array_equal(uniq, idx) else picked[inverse.reshape(-1)]

    # -- cross sections and weights -------------------------------------------------------------------
    def _weight_block_sums(self) -> np.ndarray:
        """:func:`block_sums` of the weights, streamed, shape ``(ceil(n_events / SUM_BLOCK), n_benchmarks)``."""
        sums = [block_sums(c.weights) for c in self.iter_chunks()]
        return np.concatenate(sums) if sums else np.zeros((0, self.n_benchmarks))  # an empty file sums to 0

    def _weight_sums(self) -> np.ndarray:
        if self._sums is None:
            self._sums = total_of_block_sums(self._weight_block_sums())
        return self._sums

    def cross_section(self, theta: Any, nu: Any = None) -> np.ndarray | float:
        """As :meth:`EventSet.cross_section`, streamed over the chunks; equal to the in-memory value.

        Without ``nu`` the column sums of the weights come from one streamed pass (cached); with ``nu`` every call
        streams over the events once (:func:`event_block_sums`).

        Raises
        ------
        ValueError
            Without a morpher, at a point that is not a benchmark; for ``nu`` of the wrong shape or without
            nuisance coefficients.
        """
        if nu is None:
            return self._template._cross_section_from_sums(theta, self._weight_sums())
        return total_of_event_sums([event_block_sums(self, "weights_at", theta, nu)])

    def cross_section_gradient(self, theta: Any, nu: Any = None) -> np.ndarray:
        """As :meth:`EventSet.cross_section_gradient`, streamed over the chunks; equal to the in-memory value.

        Raises
        ------
        ValueError
            Without a morpher; for ``nu`` of the wrong shape or without nuisance coefficients.
        """
        if nu is None:
            return self._template._cross_section_gradient_from_sums(theta, self._weight_sums())
        return total_of_event_sums([event_block_sums(self, "weight_gradients_at", theta, nu)])

    def cross_section_nuisance_gradient(self, theta: Any, nu: Any = None) -> np.ndarray:
        """As :meth:`EventSet.cross_section_nuisance_gradient`, streamed over the chunks; equal to the in-memory
        value.

        Raises
        ------
        ValueError
            Without nuisance coefficients; for ``nu`` of the wrong shape.
        """
        self._template._require_nuisance()
        return total_of_event_sums([event_block_sums(self, "weight_nuisance_gradients_at", theta, nu)])

    def weights_at(self, theta: Any, nu: Any = None) -> np.ndarray:
        """As :meth:`EventSet.weights_at`, chunk by chunk; the result has ``n_events`` rows (it is in memory)."""
        return np.concatenate([chunk.weights_at(theta, nu) for chunk in self.iter_chunks()])

    # -- splits --------------------------------------------------------------------------------------
    def train_test_split(self, test_fraction: float = 0.2, random_state: Any = None, *, stratify: bool = True,
                         paths: tuple[str | os.PathLike, str | os.PathLike] | None = None
                         ) -> tuple[ChunkedEventSet, ChunkedEventSet]:
        """Split into two event files, streamed chunk by chunk; opens and returns them.

        The events and weights of each part are those of :meth:`EventSet.train_test_split` with the same
        ``random_state`` (the same rows, rescaled by the same factors); each part keeps the file order of its events
        instead of a random order (the samplers draw at random anyway). Only one ``int64`` index per event is held.

        Parameters
        ----------
        test_fraction, random_state, stratify
            As :meth:`EventSet.train_test_split`.
        paths : (train path, test path), optional
            Default: ``<stem>.train.h5`` and ``<stem>.test.h5`` beside the file.
        """
        labels = np.concatenate([chunk.sampling_benchmark for chunk in self.iter_chunks()])
        train_idx, test_idx, train_scale, test_scale = _split_indices(
            labels, self.benchmark_names, test_fraction, random_state, stratify)
        if paths is None:
            paths = (self.path.with_suffix(".train.h5"), self.path.with_suffix(".test.h5"))
        out = []
        for idx, scale, target in ((train_idx, train_scale, paths[0]), (test_idx, test_scale, paths[1])):
            keep = np.zeros(self.n_events, dtype=bool)
            keep[idx] = True
            with EventFileWriter(target) as writer:
                for start, chunk in zip(range(0, self.n_events, self.chunk_events), self.iter_chunks(), strict=True):
                    rows = np.flatnonzero(keep[start:start + chunk.n_events])
                    part = chunk[rows]
                    writer.append(part._replace(weights=part.weights * scale[start + rows][:, None]))
                writer.set_metadata(self.metadata)
            out.append(type(self)(target, chunk_events=self.chunk_events, factory=self._factory))
        logger.info("train/test split (out of core): %d / %d events", out[0].n_events, out[1].n_events)
        return out[0], out[1]


def _split_indices(labels: np.ndarray, benchmark_names: Sequence[str], test_fraction: float, random_state: Any,
                   stratify: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows and weight factors of a train/test split (see :meth:`EventSet.train_test_split`).

    Returns
    -------
    train_idx, test_idx : ndarray of int
        In random order.
    train_scale, test_scale : ndarray, shape (n_events,)
        The factor of each event in its part.
    """
    f = float(test_fraction)
    if not 0.0 < f < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    n_events = labels.shape[0]
    if n_events < 2:
        raise ValueError(f"cannot split {n_events} event(s): both parts need at least one")
    rng = check_random_state(random_state)
    groups = np.unique(labels) if stratify else np.array([0])
    labels = labels if stratify else np.zeros(n_events, dtype=np.int64)
    train_idx, test_idx = [], []
    train_scale = np.empty(n_events)
    test_scale = np.empty(n_events)
    for g in groups:
        members = np.flatnonzero(labels == g)
        n_g = members.size
        if n_g < 2:
            where = (f"the events of sampling benchmark {benchmark_names[g]!r}" if stratify and g >= 0
                     else "the events with unknown sampling benchmark" if stratify else "the set")
            raise ValueError(f"cannot split {where}: {n_g} event(s), and both parts need at least one"
                             + (" (use stratify=False)" if stratify else ""))
        n_test = min(max(int(round(f * n_g)), 1), n_g - 1)
        perm = members[rng.permutation(n_g)]
        test_idx.append(perm[:n_test])
        train_idx.append(perm[n_test:])
        test_scale[perm[:n_test]] = n_g / n_test
        train_scale[perm[n_test:]] = n_g / (n_g - n_test)
    train, test = np.concatenate(train_idx), np.concatenate(test_idx)
    return train[rng.permutation(train.size)], test[rng.permutation(test.size)], train_scale, test_scale


def _same_points(a: np.ndarray, b: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Whether parameter points ``a`` and ``b`` (broadcast, last axis = parameters) agree to 1e-10 of each
    parameter's own scale (the largest ``|value|`` in ``reference``), whatever its units."""
    scale = parameter_scales(np.vstack([np.asarray(reference, dtype=np.float64).reshape(-1, a.shape[-1]),
                                        np.asarray(b, dtype=np.float64).reshape(-1, a.shape[-1])]))
    return np.all(np.abs(np.asarray(a) - np.asarray(b)) <= 1e-10 * scale, axis=-1)


def _float_matrix(a: Any, name: str) -> np.ndarray:
    a = from_awkward(a, name)
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a numeric array: {err}") from None
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_events, n_columns), got shape {arr.shape}")
    view = arr.view()
    view.flags.writeable = False
    return view


def _names(names: Sequence[str], label: str, n: int, what: str) -> list[str]:
    if isinstance(names, str):
        raise TypeError(f"{label} must be a sequence of names, got the string {names!r}")
    out = [str(s) for s in names]
    if len(out) != n:
        raise ValueError(f"{label} has {len(out)} names for {n} {what}")
    if len(set(out)) != len(out):
        dup = sorted({s for s in out if out.count(s) > 1})
        raise ValueError(f"{label} must be unique; duplicated: {dup}")
    return out


def _check_finite(arr: np.ndarray, label: str, columns: Sequence[str], what: str) -> None:
    bad = ~np.isfinite(arr)
    if np.any(bad):
        rows, cols = np.nonzero(bad)
        n_nan = int(np.isnan(arr).sum())
        raise ValueError(f"{label} contains {int(bad.sum())} non-finite values ({n_nan} NaN), first at event "
                         f"{int(rows[0])}, {what} {columns[int(cols[0])]!r}")
