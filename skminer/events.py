"""Weighted event samples: observations, per-benchmark weights, morphing, nuisance factors and HDF5 I/O.

An :class:`EventSet` holds ``n_events`` simulated events with observables ``x`` and, for every event, its
contribution to the cross section (in pb) at each benchmark: ``weights[:, b].sum()`` is the cross section at
benchmark ``b``. With a :class:`~skminer.morphing.Morpher` the weights at any parameter point follow exactly from
the columns of the morphing basis benchmarks::

    w(x | theta) = sum_b w_b(theta) w(x | theta_b),        w_b(theta) = morpher.weights(theta)

and systematic uncertainties enter through eq. (19) of the MadMiner paper::

    dsigma(x | theta, nu) = dsigma(x | theta, 0) exp(sum_i a_i(x) nu_i + b_i(x) nu_i^2).

Files: :meth:`EventSet.save` / :meth:`EventSet.load` use skminer's own versioned HDF5 layout (attribute
``skminer_format``); :meth:`EventSet.from_madminer` / :meth:`EventSet.to_madminer` read and write MadMiner's
layout so that analyses can migrate in both directions. Every write is atomic: a temporary file in the target
directory is renamed over the target only after it was written completely.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ._atomic import atomic_write
from .morphing import Morpher
from .parameters import ParameterSpace

__all__ = ["EventSet", "FORMAT_VERSION"]

logger = logging.getLogger(__name__)

#: Version of the skminer HDF5 event-file layout written by :meth:`EventSet.save`.
FORMAT_VERSION = 1

_CHUNK_BYTES = 1 << 20  # about 1 MiB per HDF5 chunk
_MADMINER_EMPTY = "None"  # MadMiner >= 0.9 writes str(None) for missing strings
_MADMINER_LOG_CLIP = 10.0  # MadMiner clips the nuisance coefficients a, b to [-10, 10]


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
            elif morpher.basis.shape != points.shape or not np.allclose(morpher.basis, points, rtol=1e-10,
                                                                        atol=1e-12):
                raise ValueError(f"morphing_basis {basis_names} (points {points.tolist()}) does not match "
                                 f"morpher.basis {morpher.basis.tolist()}")
            return morpher, basis_names
        if morpher.basis is None:
            raise ValueError("morpher has no basis: give morphing_basis (benchmark names) or call set_basis()")
        names = []
        for row in morpher.basis:
            hit = np.flatnonzero(np.all(np.isclose(values, row[None, :], rtol=1e-10, atol=1e-12), axis=1))
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

    def _benchmark_columns(self, th: np.ndarray) -> np.ndarray:
        """Columns of the benchmarks equal to the points ``th``; error if one is not a benchmark."""
        values = self.benchmark_values
        tol = 1e-12 * np.maximum(1.0, np.abs(th))[:, None, :]
        match = np.all(np.abs(values[None, :, :] - th[:, None, :]) <= tol, axis=2)  # (n_theta, n_benchmarks)
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

        Returns
        -------
        ndarray, shape (n_theta,), or float for a single point.
        """
        if nu is None and self.morpher is not None:  # morphing is linear: morph the column sums
            th, single = self._theta(theta)
            xs = self.morpher.weights(th) @ self._basis_weights().sum(axis=0)
            return float(xs[0]) if single else xs
        w = self.weights_at(theta, nu)
        return float(w.sum()) if w.ndim == 1 else w.sum(axis=0)

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
        """Gradient of the cross section, shape ``(n_theta, n_params)`` (``(n_params,)`` for one point)."""
        if nu is None and self.morpher is not None:  # morphing is linear: morph the column sums
            th, single = self._theta(theta)
            g = self.morpher.weight_gradients(th) @ self._basis_weights().sum(axis=0)  # (n_theta, n_params)
            return g[0] if single else g
        g = self.weight_gradients_at(theta, nu)
        return g.sum(axis=0)

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
        return self._rows(_rng(random_state).permutation(self.n_events))

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
        f = float(test_fraction)
        if not 0.0 < f < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
        if self.n_events < 2:
            raise ValueError(f"cannot split {self.n_events} event(s): both parts need at least one")
        rng = _rng(random_state)
        groups = (np.unique(self.sampling_benchmark) if stratify
                  else np.array([0]))
        labels = self.sampling_benchmark if stratify else np.zeros(self.n_events, dtype=np.int64)
        train_idx, test_idx = [], []
        train_scale = np.empty(self.n_events)
        test_scale = np.empty(self.n_events)
        for g in groups:
            members = np.flatnonzero(labels == g)
            n_g = members.size
            if n_g < 2:
                where = (f"the events of sampling benchmark {self.benchmark_names[g]!r}" if stratify and g >= 0
                         else "the events with unknown sampling benchmark" if stratify else "the set")
                raise ValueError(f"cannot split {where}: {n_g} event(s), and both parts need at least one"
                                 + (" (use stratify=False)" if stratify else ""))
            n_test = min(max(int(round(f * n_g)), 1), n_g - 1)
            perm = members[rng.permutation(n_g)]
            test_idx.append(perm[:n_test])
            train_idx.append(perm[n_test:])
            test_scale[perm[:n_test]] = n_g / n_test
            train_scale[perm[n_test:]] = n_g / (n_g - n_test)
        parts = []
        for idx, scale in ((np.concatenate(train_idx), train_scale), (np.concatenate(test_idx), test_scale)):
            idx = idx[rng.permutation(idx.size)]
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
            if (s.morpher is None) != (first.morpher is None) or (
                    s.morpher is not None and not (np.array_equal(s.morpher.components, first.morpher.components)
                                                   and np.allclose(s.morpher.basis, first.morpher.basis))):
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

    # -- skminer HDF5 files ----------------------------------------------------------------------------
    def _setup(self) -> dict[str, Any]:
        return {
            "space": self.space.to_dict(),
            "morpher": None if self.morpher is None else self.morpher.to_dict(),
            "morphing_basis": self.morphing_basis,
            "observable_names": self.observable_names,
            "observable_definitions": self.observable_definitions,
            "benchmark_names": self.benchmark_names,
            "nuisance_names": self.nuisance_names,
            "metadata": self.metadata,
        }

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
        if compression not in ("gzip", "lzf", None):
            raise ValueError(f"compression must be 'gzip', 'lzf' or None, got {compression!r}")
        setup = json.dumps(self._setup(), allow_nan=False)

        def write(f: h5py.File) -> None:
            f.attrs["skminer_format"] = FORMAT_VERSION
            f.attrs["kind"] = "EventSet"
            f.create_dataset("setup", data=setup, dtype=h5py.string_dtype())
            _write_array(f, "x", self.x, compression)
            _write_array(f, "weights", self.weights, compression)
            _write_array(f, "sampling_benchmark", self.sampling_benchmark, compression)
            if self.nuisance_a is not None:
                _write_array(f, "nuisance_a", self.nuisance_a, compression)
                _write_array(f, "nuisance_b", self.nuisance_b, compression)

        out = _atomic_h5_write(path, write)
        logger.info("saved %d events to %s", self.n_events, out)
        return out

    @classmethod
    def load(cls, path: str | os.PathLike) -> EventSet:
        """Read a file written by :meth:`save`.

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        ValueError
            If the file is not a (complete, supported) skminer event file; the message names the file and the
            missing or invalid field.
        """
        path = Path(path)
        try:
            setup, arrays = _read_skminer(path)
        except FileNotFoundError:
            raise
        except OSError as err:  # corrupt or truncated data that h5py can open but not read
            raise ValueError(f"{path}: cannot read the event file, it may be corrupt or truncated ({err})") from None
        except (ValueError, TypeError, KeyError) as err:
            if str(err).startswith(str(path)):
                raise
            raise ValueError(f"{path}: invalid event file: {err}") from None
        return cls._from_setup(path, setup, arrays)

    @classmethod
    def _from_setup(cls, path: Path, setup: dict[str, Any], arrays: dict[str, Any]) -> EventSet:
        def field(name: str) -> Any:
            if name not in setup:
                raise ValueError(f"{path}: field 'setup' lacks entry {name!r}")
            return setup[name]

        try:
            space = ParameterSpace.from_dict(field("space"))
            morpher = None if field("morpher") is None else Morpher.from_dict(field("morpher"))
            return cls(arrays["x"], arrays["weights"], observable_names=field("observable_names"),
                       benchmark_names=field("benchmark_names"), space=space, morpher=morpher,
                       morphing_basis=field("morphing_basis"), sampling_benchmark=arrays["sampling_benchmark"],
                       nuisance_names=field("nuisance_names"), nuisance_a=arrays["nuisance_a"],
                       nuisance_b=arrays["nuisance_b"], observable_definitions=field("observable_definitions"),
                       metadata=field("metadata"))
        except (TypeError, KeyError, AttributeError) as err:
            raise ValueError(f"{path}: invalid event file: {err}") from None
        except ValueError as err:
            if str(err).startswith(str(path)):
                raise
            raise ValueError(f"{path}: invalid event file: {err}") from None

    # -- MadMiner files --------------------------------------------------------------------------------
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
            If the file is not a readable HDF5 file, lacks a required field or holds inconsistent or invalid
            content; the message starts with the path.
        """
        path = Path(path)
        try:
            return cls._read_madminer(path, include_nuisance)
        except FileNotFoundError:
            raise
        except OSError as err:  # corrupt or truncated data that h5py can open but not read
            raise ValueError(f"{path}: cannot read the MadMiner file, it may be corrupt or truncated ({err})"
                             ) from None
        except (ValueError, TypeError, KeyError, IndexError) as err:
            if str(err).startswith(str(path)):
                raise
            raise ValueError(f"{path}: invalid MadMiner file: {err}") from None

    @classmethod
    def _read_madminer(cls, path: Path, include_nuisance: bool) -> EventSet:
        with _open_h5(path) as f:
            names = _strings(_read(f, path, "parameters/names"))
            n_params = len(names)
            blocks = _strings(_read(f, path, "parameters/lha_blocks"))
            ids = np.asarray(_read(f, path, "parameters/lha_ids")).reshape(-1)
            max_power = np.asarray(_read(f, path, "parameters/max_power")).reshape(n_params, -1).max(axis=1)
            range_key = "parameters/val_ranges" if "parameters/val_ranges" in f else "parameters/ranges"
            ranges = np.asarray(_read(f, path, range_key), dtype=np.float64).reshape(n_params, 2)
            transforms = (_strings(f["parameters/transforms"][()]) if "parameters/transforms" in f
                          else [""] * n_params)
            bnames = _strings(_read(f, path, "benchmarks/names"))
            bvalues = np.asarray(_read(f, path, "benchmarks/values"), dtype=np.float64).reshape(len(bnames), -1)
            is_nuisance = (np.asarray(f["benchmarks/is_nuisance"][()]).astype(bool) if "benchmarks/is_nuisance" in f
                           else np.zeros(len(bnames), bool))
            is_reference = (np.asarray(f["benchmarks/is_reference"][()]).astype(bool)
                            if "benchmarks/is_reference" in f else np.zeros(len(bnames), bool))
            components = np.asarray(f["morphing/components"][()]) if "morphing/components" in f else None
            matrix = (np.asarray(f["morphing/morphing_matrix"][()], dtype=np.float64)
                      if "morphing/morphing_matrix" in f else None)
            obs_names = _strings(_read(f, path, "observables/names"))
            obs_defs = (_strings(f["observables/definitions"][()]) if "observables/definitions" in f
                        else [_MADMINER_EMPTY] * len(obs_names))
            x = np.asarray(_read(f, path, "samples/observations"), dtype=np.float64)
            w_all = np.asarray(_read(f, path, "samples/weights"), dtype=np.float64)
            sampling = (np.asarray(f["samples/sampling_benchmarks"][()], dtype=np.int64)
                        if "samples/sampling_benchmarks" in f else None)
            n_signal = (np.asarray(f["sample_summary/signal_events"][()], dtype=np.float64).reshape(-1)
                        if "sample_summary/signal_events" in f else None)
            nuisance: list[tuple[str, str, str | None, str | None]] = []
            if "nuisance_parameters/names" in f:
                nu_names = _strings(f["nuisance_parameters/names"][()])
                pos = _strings(_read(f, path, "nuisance_parameters/benchmark_positive"))
                neg = _strings(_read(f, path, "nuisance_parameters/benchmark_negative"))
                syst = (_strings(f["nuisance_parameters/systematics"][()]) if "nuisance_parameters/systematics" in f
                        else [""] * len(nu_names))
                nuisance = [(n, s, _none(p), _none(m)) for n, s, p, m in zip(nu_names, syst, pos, neg, strict=True)]
            systematics: dict[str, tuple[str, str]] = {}
            if "systematics/names" in f and "systematics/types" in f:
                svalues = (_strings(f["systematics/values"][()]) if "systematics/values" in f
                           and f["systematics/values"].dtype.kind in "SOU" else None)
                for i, (sn, st) in enumerate(zip(_strings(f["systematics/names"][()]),
                                                 _strings(f["systematics/types"][()]), strict=True)):
                    systematics[sn] = (st, "" if svalues is None else svalues[i])

        if bvalues.shape[1] != n_params:
            raise ValueError(f"{path}: benchmarks/values has {bvalues.shape[1]} columns for {n_params} parameters")
        if w_all.ndim != 2 or w_all.shape[1] != len(bnames):
            raise ValueError(f"{path}: samples/weights has shape {w_all.shape}, expected (n_events, {len(bnames)}) "
                             "for benchmarks/names")
        if x.ndim != 2 or x.shape[0] != w_all.shape[0]:
            raise ValueError(f"{path}: samples/observations has shape {x.shape}, samples/weights {w_all.shape}")

        space = ParameterSpace()
        for i, name in enumerate(names):
            block = _none(blocks[i])
            # to_madminer writes a parameter without LHA information as block "" and id 0
            lha_id = None if block is None and int(ids[i]) == 0 else int(ids[i])
            space.add_parameter(name, lha_block=block, lha_id=lha_id, max_power=int(max_power[i]),
                                range=(float(ranges[i, 0]), float(ranges[i, 1])))
        phys = np.flatnonzero(~is_nuisance)
        phys_names = [bnames[i] for i in phys]
        for i in phys:
            space.add_benchmark(bnames[i], bvalues[i])

        # weights of mixed samples: MadMiner's sampling factors n_b / sum n_b (background -1: factor 1)
        weights_all = w_all
        if sampling is not None and sampling.shape != (x.shape[0],):
            raise ValueError(f"{path}: samples/sampling_benchmarks has shape {sampling.shape}, expected "
                             f"({x.shape[0]},)")
        if sampling is not None and n_signal is not None and n_signal.size and np.any(sampling >= 0):
            if sampling.max() >= n_signal.size or n_signal.sum() <= 0:
                raise ValueError(f"{path}: sample_summary/signal_events {n_signal.tolist()} does not cover "
                                 f"samples/sampling_benchmarks up to {int(sampling.max())}")
            factors = np.append(n_signal / n_signal.sum(), 1.0)
            k = factors[np.where(sampling >= 0, sampling, -1)]
            if not np.all(k == 1.0):
                logger.info("%s: applying MadMiner sampling factors %s", path, factors[:-1].tolist())
                weights_all = w_all * k[:, None]
        sampling_phys = None
        if sampling is not None:
            remap = np.full(len(bnames) + 1, -1, dtype=np.int64)
            remap[phys] = np.arange(phys.size)
            sampling_phys = np.where(sampling >= 0, remap[np.clip(sampling, 0, len(bnames))], -1)

        morpher = basis_names = None
        if components is not None and matrix is not None:
            if matrix.shape != (components.shape[0], phys.size):
                raise ValueError(f"{path}: morphing/morphing_matrix has shape {matrix.shape}, expected "
                                 f"({components.shape[0]}, {phys.size}) (components x physics benchmarks)")
            in_basis = np.any(matrix != 0.0, axis=0)
            basis_names = [n for n, keep in zip(phys_names, in_basis, strict=True) if keep]
            morpher = Morpher(components=components)
            try:
                morpher.set_basis(space.benchmark_values[in_basis])
            except ValueError as err:
                raise ValueError(f"{path}: cannot rebuild the morphing from morphing/components and the "
                                 f"benchmarks {basis_names}: {err}") from None
            stored = matrix[:, in_basis]
            dev = float(np.max(np.abs(morpher.matrix - stored)) / max(np.max(np.abs(stored)), 1e-300))
            if dev > 1e-6:
                logger.warning("%s: stored morphing matrix differs from the one recomputed from morphing/components "
                               "and benchmarks/values (max relative deviation %.3g); using the recomputed one",
                               path, dev)

        nu_names: list[str] = []
        a = b = None
        if nuisance and include_nuisance:
            ref = [bnames[i] for i in np.flatnonzero(is_reference)]
            if not ref:
                raise ValueError(f"{path}: nuisance parameters need a reference benchmark, but benchmarks/is_reference "
                                 "is missing or has no flag set")
            col = {n: i for i, n in enumerate(bnames)}
            for name, _, p, m in nuisance:
                for bn in (p, m):
                    if bn is not None and bn not in col:
                        raise ValueError(f"{path}: nuisance parameter {name!r} refers to benchmark {bn!r}, which is "
                                         "not in benchmarks/names")
            a, b = _madminer_nuisance_coefficients(weights_all, col[ref[0]],
                                                   [(col[p] if p else None, col[m] if m else None)
                                                    for _, _, p, m in nuisance])
            for name, sname, p, m in nuisance:
                kind, value = systematics.get(sname, ("scale", ""))
                kind = kind if kind in ("scale", "pdf", "norm") else "scale"
                size = _float_or_none(value) if kind == "norm" else None
                space.add_nuisance(name, kind=kind, up=p, down=m, size=size)
            nu_names = [n for n, _, _, _ in nuisance]

        metadata = {"source": "madminer", "madminer_file": str(path),
                    "madminer_parameter_transforms": [_none(t) for t in transforms],
                    "madminer_reference_benchmark": next((bnames[i] for i in np.flatnonzero(is_reference)), None),
                    "madminer_nuisance_systematics": {n: s for n, s, _, _ in nuisance}}
        events = cls(x, weights_all[:, phys], observable_names=obs_names, benchmark_names=phys_names, space=space,
                     morpher=morpher, morphing_basis=basis_names, sampling_benchmark=sampling_phys,
                     nuisance_names=nu_names, nuisance_a=a, nuisance_b=b,
                     observable_definitions=[_none(d) for d in obs_defs], metadata=metadata)
        logger.info("read %s from MadMiner file %s", events, path)
        return events

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
        n_phys = self.n_benchmarks
        params = self.space.parameters
        transforms = list(self.metadata.get("madminer_parameter_transforms") or [_MADMINER_EMPTY] * len(params))
        if len(transforms) != len(params):
            transforms = [_MADMINER_EMPTY] * len(params)
        transforms = [t if t else _MADMINER_EMPTY for t in transforms]

        # nuisance benchmarks
        ref = reference_benchmark or self.metadata.get("madminer_reference_benchmark")
        if ref not in self.benchmark_names:
            if reference_benchmark is not None:
                raise ValueError(f"reference_benchmark {reference_benchmark!r} is not one of {self.benchmark_names}")
            ref = (self.morphing_basis or self.benchmark_names)[0]
        ref_col = self.benchmark_names.index(ref)
        space_nu = {n.name: n for n in self.space.nuisance_parameters}
        systematics = self.metadata.get("madminer_nuisance_systematics") or {}
        extra_names: list[str] = []
        extra_cols: list[np.ndarray] = []
        nu_rows: list[tuple[str, str, str, str]] = []
        syst_rows: dict[str, tuple[str, str]] = {}
        w_ref = self.weights[:, ref_col]
        taken = set(self.benchmark_names)
        for k, name in enumerate(self.nuisance_names):
            definition = space_nu.get(name)
            a_k, b_k = self.nuisance_a[:, k], self.nuisance_b[:, k]
            two_sided = bool(np.any(b_k != 0.0)) or (definition is not None and definition.down is not None)
            up = (definition.up if definition is not None and definition.up else None) or f"{name}_up"
            down = ((definition.down if definition is not None and definition.down else None) or f"{name}_down"
                    ) if two_sided else None
            for bn in (up, down):
                if bn is not None and bn in taken:
                    raise ValueError(f"nuisance benchmark name {bn!r} of {name!r} collides with another benchmark")
                if bn is not None:
                    taken.add(bn)
            extra_names.append(up)
            extra_cols.append(w_ref * np.exp(a_k + b_k))
            if down is not None:
                extra_names.append(down)
                extra_cols.append(w_ref * np.exp(-a_k + b_k))
            kind = definition.kind if definition is not None else "scale"
            sname = systematics.get(name) or kind
            nu_rows.append((name, sname, up, down or _MADMINER_EMPTY))
            # MadMiner's systematics/* group: the type of each systematic (read back as the nuisance kind) and,
            # for a normalisation uncertainty, its relative size
            if sname not in syst_rows:
                size = definition.size if definition is not None else None
                syst_rows[sname] = (kind, _MADMINER_EMPTY if size is None else repr(float(size)))

        # sampling factors: MadMiner multiplies the weights of events generated at b by n_b / sum n_b
        ids = self.sampling_benchmark
        n_signal = np.bincount(ids[ids >= 0], minlength=n_phys).astype(np.int64)
        n_background = int(np.sum(ids < 0))
        weights = self.weights
        if extra_cols:
            weights = np.concatenate([weights, np.stack(extra_cols, axis=1)], axis=1)
        if n_signal.sum() > 0:
            factors = np.append(n_signal / n_signal.sum(), 1.0)
            k = factors[np.where(ids >= 0, ids, -1)]
            if not np.all(k == 1.0):
                weights = weights / k[:, None]

        all_names = self.benchmark_names + extra_names
        values = np.concatenate([self.benchmark_values, np.zeros((len(extra_names), self.n_parameters))])

        def enc(strings: Sequence[str | None]) -> list[bytes]:
            return [(_MADMINER_EMPTY if s is None else s).encode("ascii", "replace") for s in strings]

        def write(f: h5py.File) -> None:
            f.create_dataset("parameters/names", data=enc([p.name for p in params]), dtype="S256")
            f.create_dataset("parameters/lha_blocks", data=enc([p.lha_block or "" for p in params]), dtype="S256")
            f.create_dataset("parameters/lha_ids", data=np.array([p.lha_id or 0 for p in params], dtype=np.int64))
            f.create_dataset("parameters/max_power", data=np.array([p.max_power for p in params], dtype=np.int64))
            f.create_dataset("parameters/val_ranges", data=self.space.ranges)
            f.create_dataset("parameters/ranges", data=self.space.ranges)
            f.create_dataset("parameters/transforms", data=enc(transforms), dtype="S256")
            f.create_dataset("benchmarks/names", data=enc(all_names), dtype="S256")
            f.create_dataset("benchmarks/values", data=values)
            f.create_dataset("benchmarks/is_nuisance",
                             data=np.array([0] * n_phys + [1] * len(extra_names), dtype=np.int64))
            f.create_dataset("benchmarks/is_reference",
                             data=np.array([int(n == ref) for n in all_names], dtype=np.int64))
            if self.morpher is not None:
                matrix = np.zeros((self.morpher.n_components, n_phys))
                matrix[:, self._basis_index] = self.morpher.matrix
                f.create_dataset("morphing/components", data=self.morpher.components.astype(np.int64))
                f.create_dataset("morphing/morphing_matrix", data=matrix)
            f.create_dataset("observables/names", data=enc(self.observable_names), dtype="S256")
            f.create_dataset("observables/definitions", data=enc(self.observable_definitions), dtype="S256")
            f.create_dataset("samples/observations", data=self.x)
            f.create_dataset("samples/weights", data=weights)
            f.create_dataset("samples/sampling_benchmarks", data=np.asarray(ids, dtype=np.int64))
            f.create_dataset("sample_summary/signal_events", data=n_signal)
            f.create_dataset("sample_summary/background_events", data=n_background)
            if nu_rows:
                cols = list(zip(*nu_rows, strict=True))
                for key, col in zip(("names", "systematics", "benchmark_positive", "benchmark_negative"), cols,
                                    strict=True):
                    f.create_dataset(f"nuisance_parameters/{key}", data=enc(col), dtype="S256")
                f.create_dataset("systematics/names", data=enc(list(syst_rows)), dtype="S256")
                f.create_dataset("systematics/types", data=enc([t for t, _ in syst_rows.values()]), dtype="S256")
                f.create_dataset("systematics/values", data=enc([v for _, v in syst_rows.values()]), dtype="S256")
                f.create_dataset("systematics/scales", data=enc([_MADMINER_EMPTY] * len(syst_rows)), dtype="S256")

        out = _atomic_h5_write(path, write)
        logger.info("wrote %d events in MadMiner layout to %s", self.n_events, out)
        return out


# -- helpers -------------------------------------------------------------------------------------------
def _rng(random_state: Any) -> np.random.Generator:
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(0, 2**31 - 1))
    return np.random.default_rng(random_state)


def _float_matrix(a: Any, name: str) -> np.ndarray:
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


def _write_array(f: h5py.File, name: str, data: np.ndarray, compression: str | None) -> None:
    data = np.ascontiguousarray(data)
    if data.size == 0:
        f.create_dataset(name, data=data)
        return
    row_bytes = data.itemsize * int(np.prod(data.shape[1:], dtype=np.int64))
    rows = int(max(1, min(data.shape[0], _CHUNK_BYTES // max(row_bytes, 1))))
    kwargs: dict[str, Any] = {"chunks": (rows, *data.shape[1:])}
    if compression == "gzip":
        kwargs.update(compression="gzip", compression_opts=1, shuffle=True)
    elif compression == "lzf":
        kwargs.update(compression="lzf", shuffle=True)
    f.create_dataset(name, data=data, **kwargs)


def _atomic_h5_write(path: str | os.PathLike, write: Callable[[h5py.File], None]) -> Path:
    """Run ``write`` on a new HDF5 file at a temporary name beside ``path``, then rename it over ``path``."""
    with atomic_write(path) as tmp:
        with h5py.File(tmp, "w") as f:
            write(f)
    return Path(path)


def _read_skminer(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Setup (parsed JSON) and arrays of a file written by :meth:`EventSet.save`."""
    with _open_h5(path) as f:
        if "skminer_format" not in f.attrs:
            hint = (" It looks like a MadMiner file: use EventSet.from_madminer()."
                    if "samples" in f and "benchmarks" in f else "")
            raise ValueError(f"{path}: not a skminer event file (missing attribute 'skminer_format').{hint}")
        version = int(f.attrs["skminer_format"])
        if version > FORMAT_VERSION:
            raise ValueError(f"{path}: skminer_format {version} is newer than this skminer supports "
                             f"({FORMAT_VERSION}); upgrade skminer")
        setup_raw = _read(f, path, "setup")
        try:
            setup = json.loads(setup_raw.decode() if isinstance(setup_raw, bytes) else str(setup_raw))
        except (ValueError, UnicodeDecodeError) as err:
            raise ValueError(f"{path}: field 'setup' is not valid JSON ({err})") from None
        if not isinstance(setup, dict):
            raise ValueError(f"{path}: field 'setup' must be a JSON object, got {type(setup).__name__}")
        arrays = {name: _read(f, path, name) for name in ("x", "weights", "sampling_benchmark")}
        for name in ("nuisance_a", "nuisance_b"):
            arrays[name] = _read(f, path, name) if setup.get("nuisance_names") else None
    return setup, arrays


def _open_h5(path: Path) -> h5py.File:
    if not path.exists():
        raise FileNotFoundError(f"event file {path} does not exist")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path}: not a readable HDF5 file ({err})") from None


def _read(f: h5py.File, path: Path, name: str) -> Any:
    if name not in f:
        raise ValueError(f"{path}: missing field {name!r}")
    obj = f[name]
    if not isinstance(obj, h5py.Dataset):
        raise ValueError(f"{path}: field {name!r} is a group, expected a dataset")
    return obj[()]


def _strings(values: Any) -> list[str]:
    return [v.decode("ascii", "replace") if isinstance(v, bytes) else str(v) for v in np.asarray(values).reshape(-1)]


def _none(s: str | None) -> str | None:
    return None if s is None or s in ("", _MADMINER_EMPTY) else s


def _float_or_none(s: str) -> float | None:
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


def _madminer_nuisance_coefficients(weights: np.ndarray, i_ref: int, columns: Sequence[tuple[int | None, int | None]]
                                    ) -> tuple[np.ndarray, np.ndarray]:
    """``a``, ``b`` of eq. (19) from nuisance benchmark weights, as MadMiner's ``NuisanceMorpher`` computes them.

    One-sided (only ``+1``): ``a = log(w_+ / w_ref)``, ``b = 0``; two-sided: ``a = log(w_+ / w_-) / 2``,
    ``b = log(w_+ w_- / w_ref^2) / 2``. Non-finite values (vanishing weights) become 0 and the coefficients are
    clipped to [-10, 10], as in MadMiner.
    """
    n = weights.shape[0]
    a = np.zeros((n, len(columns)))
    b = np.zeros((n, len(columns)))
    w_ref = weights[:, i_ref]
    with np.errstate(divide="ignore", invalid="ignore"):
        for k, (pos, neg) in enumerate(columns):
            if pos is None and neg is None:
                continue
            if neg is None:
                a[:, k] = np.log(weights[:, pos] / w_ref)
            elif pos is None:
                a[:, k] = -np.log(weights[:, neg] / w_ref)
            else:
                a[:, k] = 0.5 * np.log(weights[:, pos] / weights[:, neg])
                b[:, k] = 0.5 * np.log(weights[:, pos] * weights[:, neg] / w_ref**2)
    bad = ~np.isfinite(a) | ~np.isfinite(b)
    if np.any(bad):
        logger.warning("nuisance coefficients undefined (non-positive weight ratios) for %d event/parameter pairs; "
                       "set to 0 as in MadMiner", int(bad.sum()))
        a[~np.isfinite(a)] = 0.0
        b[~np.isfinite(b)] = 0.0
    clipped = (np.abs(a) > _MADMINER_LOG_CLIP) | (np.abs(b) > _MADMINER_LOG_CLIP)
    if np.any(clipped):
        logger.warning("clipping %d nuisance coefficients to [-%g, %g] as MadMiner does", int(clipped.sum()),
                       _MADMINER_LOG_CLIP, _MADMINER_LOG_CLIP)
    return np.clip(a, -_MADMINER_LOG_CLIP, _MADMINER_LOG_CLIP), np.clip(b, -_MADMINER_LOG_CLIP, _MADMINER_LOG_CLIP)
