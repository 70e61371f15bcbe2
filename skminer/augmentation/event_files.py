"""Training samples from many event files, file by file, in one process or as dask tasks.

:class:`EventFiles` presents files written by :meth:`~skminer.events.EventSet.save` (or
:class:`~skminer.io.EventFileWriter`) as one set of events to every sampler of :mod:`skminer.augmentation`; the
work over the events (cross sections, the unweighting's weight totals and draws, reading the drawn rows) runs as one
task per file, in a loop or on dask (``use_dask=True``: the scheduler configured with ``dask.config.set`` or a
``dask.distributed.Client``). :func:`sample_files` is the short form.

What is the same, exactly:

- Every result is the same, to the last digit, with ``use_dask=False`` and with dask on any scheduler and number of
  workers: the files are always split the same way, each task's numbers depend only on its file and its
  arguments, and the parts are combined in file order.
- Cross sections (and their gradients, with or without nuisance parameters) are the sums of per-file sums taken in
  blocks of :data:`~skminer.events.SUM_BLOCK` events; they are those of the combined events (:meth:`EventFiles.load`,
  ``EventSet.combine``) to rounding (1e-12 relative), and the same digits when every file but the last holds a
  multiple of ``SUM_BLOCK`` events.
- One file gives exactly the sample of ``sampler.sample(EventSet.open(path), ...)``.
- With several files the draws at each parameter point are split among the files multinomially, in proportion to
  each file's total of the (clipped) weights at that point
  (:func:`~skminer.augmentation.unweighting.positive_totals`), each file draws its share with its own random stream,
  spawned (``numpy.random.SeedSequence.spawn``) from the sampler's generator, and the draws of each point are put in
  random order (so that, e.g., the ``y = 1`` draws of :class:`~skminer.augmentation.RatioSampler`, which are handed
  out to the ``theta0`` values in order, do not come from one file per ``theta0``). The draws are therefore
  independent draws from the combined events, but not the rows that ``sampler.sample(EventSet.combine(...))``
  draws (that uses one stream over all events). The joint quantities (``r_xz``, ``t_xz``) of the drawn events are
  those of the combined events: per-event weights by morphing, divided by the cross sections of all files.

Costs: each file is read three times to unweight (its totals for the split, then the two passes of the streamed
unweighting), and once more for the drawn rows; only the drawn rows and per-file sums travel between tasks.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..events import (
    ChunkedEventSet,
    EventSet,
    _lazy_setup,
    event_block_sums,
    total_of_block_sums,
    total_of_event_sums,
)
from .samplers import TrainingSample
from .unweighting import positive_totals, unweight

__all__ = ["EventFiles", "sample_files"]

logger = logging.getLogger(__name__)

#: A file as the tasks see it: (path, events per chunk, factor of its weights).
_Source = tuple[str, int, float]


class _ScaledFile(ChunkedEventSet):
    """An event file whose weights are read multiplied by one factor (``EventSet.combine(mode="average")``)."""

    def __init__(self, path: str | os.PathLike, *, chunk_events: int, scale: float) -> None:
        super().__init__(path, chunk_events=chunk_events)
        self._scale = scale

    def read_rows(self, start: int, stop: int) -> EventSet:
        part = super().read_rows(start, stop)
        return part._replace(weights=part.weights * self._scale)

    def load(self) -> EventSet:
        part = super().load()
        return part._replace(weights=part.weights * self._scale)


def _open(source: _Source) -> ChunkedEventSet:
    path, chunk_events, scale = source
    if scale == 1.0:
        return ChunkedEventSet(path, chunk_events=chunk_events)
    return _ScaledFile(path, chunk_events=chunk_events, scale=scale)


def _in_file(source: _Source, what: str, func: Any, *args: Any) -> Any:
    """``func(opened file, *args)``, with a ``ValueError`` naming the file."""
    try:
        return func(_open(source), *args)
    except ValueError as err:
        raise ValueError(f"{source[0]}: {what}: {err}") from err


# -- the tasks (module-level functions of plain arguments, so that dask can ship them to other processes) ---------
def _task_weight_block_sums(source: _Source) -> np.ndarray:
    return _in_file(source, "weight sums", ChunkedEventSet._weight_block_sums)


def _task_block_sums(source: _Source, method: str, args: tuple) -> tuple[np.ndarray, tuple[int, ...]]:
    return _in_file(source, method, event_block_sums, method, *args)


def _task_call(source: _Source, method: str, args: tuple) -> np.ndarray:
    return _in_file(source, method, lambda events: getattr(events, method)(*args))


def _file_totals(events: Any, thetas: np.ndarray, negative_weights: str, max_elements: int) -> np.ndarray:
    if len(events) == 0:  # an empty file has nothing to draw: its share of every point is zero
        return np.zeros(len(thetas))
    return positive_totals(events, thetas, negative_weights, max_elements)


def _task_totals(source: _Source, thetas: np.ndarray, negative_weights: str, max_elements: int) -> np.ndarray:
    return _in_file(source, "unweighting", _file_totals, thetas, negative_weights, max_elements)


def _task_draw(source: _Source, thetas: np.ndarray, counts: np.ndarray, seed: np.random.SeedSequence,
               negative_weights: str, max_elements: int) -> np.ndarray:
    def draw(events: ChunkedEventSet) -> np.ndarray:
        return unweight(events, thetas, counts, np.random.default_rng(seed), negative_weights, max_elements)[0]

    return _in_file(source, "unweighting", draw)


def _task_rows(source: _Source, rows: np.ndarray) -> EventSet:
    return _in_file(source, "reading rows", lambda events: events[rows])


def _require_dask() -> Any:
    try:
        import dask
    except ImportError as err:
        raise ImportError("use_dask=True (sample_files' default) needs dask: pip install skminer[dask], or pass "
                          "use_dask=False to run the files one after the other in this process") from err
    return dask


class EventFiles:
    """Several event files as one set of events for the samplers, processed one task per file.

    Parameters
    ----------
    paths : sequence of str or path-like
        Files written by :meth:`EventSet.save` or :class:`~skminer.io.EventFileWriter`, with the same observables,
        benchmarks, nuisance parameters, parameter space and morphing (checked on opening). Their events are taken
        in this order (global event ``i`` of file ``k`` is ``offsets[k] + i``).
    mode : {"sum", "average"}
        As :meth:`EventSet.combine`: ``"sum"`` adds the files' cross sections (e.g. different processes);
        ``"average"`` treats them as independent samples of one process and multiplies the weights of file ``k`` by
        ``n_k / n_total`` (e.g. one simulation written to several files, each normalised to its own events).
        Files without any events make an empty set in either mode, as in :meth:`EventSet.combine`.
    chunk_events : int
        Events per chunk read in a task (see :class:`~skminer.events.ChunkedEventSet`); a task holds one chunk.
    use_dask : bool
        Run the per-file tasks with dask (``dask.delayed``, computed on the current scheduler) instead of a loop.
        The results are the same to the last digit.

    Attributes
    ----------
    paths : list of Path
    n_events : int
        Events of all files.
    offsets : ndarray of int, shape (n_files + 1,)
        First global event of each file, and ``n_events``.
    x, weights, sampling_benchmark, nuisance_a, nuisance_b : array-like
        Lazy views: indexing reads only the selected rows (see :class:`~skminer.events.ChunkedEventSet`).
    space, morpher, morphing_basis, observable_names, benchmark_names, nuisance_names, observable_definitions, metadata
        Those of the first file.

    Raises
    ------
    ValueError
        For no paths, an unknown ``mode``, a file that is not an event file, or files that cannot be combined
        (the message names the file).
    FileNotFoundError
        If a file does not exist.
    ImportError
        With ``use_dask=True`` when dask is not installed (``pip install skminer[dask]``).

    Notes
    -----
    The module docstring (:mod:`skminer.augmentation.event_files`) says which results equal those of the combined
    events and how the random numbers are split among the files.

    Examples
    --------
    >>> files = EventFiles(["part0.h5", "part1.h5"], mode="average", use_dask=True)       # doctest: +SKIP
    >>> sample = RatioSampler(n_thetas=20).sample(files, 10_000, random_state=0)         # doctest: +SKIP
    """

    #: The samplers read the drawn rows once (``_DrawnEvents``) instead of indexing repeatedly.
    out_of_core = True

    def __init__(self, paths: Sequence[str | os.PathLike], *, mode: str = "sum", chunk_events: int = 1 << 20,
                 use_dask: bool = False) -> None:
        if isinstance(paths, str | os.PathLike):
            raise TypeError("paths must be a sequence of event files, not one path")
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("EventFiles needs at least one path")
        seen: dict[tuple[int, int], Path] = {}
        for p in self.paths:  # the same events twice would count twice in every cross section and draw
            try:  # the file's identity (device, inode): also a hard link or a symbolic link to it
                st = p.stat()
            except OSError as err:
                raise FileNotFoundError(f"event file {p} cannot be read: {err.strerror}") from None
            key = (st.st_dev, st.st_ino)
            if key in seen:
                same = "is given more than once" if p.resolve() == seen[key].resolve() else \
                    f"is the same file as {seen[key]} (a link to it)"
                raise ValueError(f"{p} {same} in paths; its events would count twice")
            seen[key] = p
        if mode not in ("sum", "average"):
            raise ValueError(f"mode must be 'sum' or 'average', got {mode!r}")
        self.mode, self.use_dask = mode, bool(use_dask)
        if self.use_dask:
            _require_dask()
        files = [ChunkedEventSet(p, chunk_events=chunk_events) for p in self.paths]
        first = files[0]._template
        for path, f in zip(self.paths[1:], files[1:], strict=True):
            try:
                EventSet.combine([first, f._template])
            except ValueError as err:
                raise ValueError(f"{path} cannot be combined with {self.paths[0]}: {err}") from None
        sizes = np.array([f.n_events for f in files], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(sizes)])
        self.n_events = int(self.offsets[-1])
        # as EventSet.combine: without events there is nothing to average (no 0/0), the files stay as they are
        scales = sizes / self.n_events if mode == "average" and self.n_events else np.ones(len(files))
        self._sources: list[_Source] = [(str(p), files[0].chunk_events, float(s))
                                        for p, s in zip(self.paths, scales, strict=True)]
        self._template = first
        _lazy_setup(self, first)
        self._sums: np.ndarray | None = None

    def __len__(self) -> int:
        return self.n_events

    n_files = property(lambda self: len(self.paths), doc="Number of files.")
    n_parameters = property(lambda self: self.space.n_parameters, doc="Number of parameters of interest.")
    n_nuisance = property(lambda self: len(self.nuisance_names), doc="Number of nuisance parameters.")

    def __repr__(self) -> str:
        return (f"EventFiles({len(self.paths)} files, n_events={self.n_events}, mode={self.mode!r}, "
                f"use_dask={self.use_dask})")

    # -- tasks ----------------------------------------------------------------------------------------
    def _map(self, task: Any, args: Sequence[tuple]) -> list[Any]:
        """``[task(*a) for a in args]``, as dask tasks with ``use_dask``; in order either way."""
        if not self.use_dask:
            return [task(*a) for a in args]
        dask = _require_dask()
        return list(dask.compute(*[dask.delayed(task, pure=True)(*a) for a in args]))

    def _per_file(self, task: Any, *args: Any) -> list[Any]:
        return self._map(task, [(source, *args) for source in self._sources])

    # -- reading ----------------------------------------------------------------------------------------
    def load(self) -> EventSet:
        """All events in memory: ``EventSet.combine([EventSet.load(p) for p in paths], mode=mode)``."""
        return EventSet.combine([EventSet.load(p) for p in self.paths], mode=self.mode)

    def __getitem__(self, index: Any) -> EventSet:
        """The selected events (int, slice, integer array or boolean mask over all files' events) as an in-memory
        :class:`EventSet`, read by one task per file that holds some of them."""
        if isinstance(index, tuple):
            raise TypeError("EventFiles indexing selects events only")
        try:
            idx = np.arange(self.n_events)[index]
        except IndexError as err:
            raise IndexError(f"{err} (EventFiles of {self.n_events} events)") from None
        idx = np.atleast_1d(idx)
        uniq, inverse = np.unique(idx, return_inverse=True)
        bounds = np.searchsorted(uniq, self.offsets)
        wanted = [k for k in range(self.n_files) if bounds[k + 1] > bounds[k]]
        parts = self._map(_task_rows, [(self._sources[k], uniq[bounds[k]:bounds[k + 1]] - self.offsets[k])
                                       for k in wanted])
        if not parts:
            return _open(self._sources[0]).read_rows(0, 0)
        picked = EventSet.combine(parts) if len(parts) > 1 else parts[0]
        return picked if np.array_equal(uniq, idx) else picked[inverse.reshape(-1)]

    # -- cross sections and weights ---------------------------------------------------------------------
    def _weight_sums(self) -> np.ndarray:
        if self._sums is None:
            self._sums = total_of_block_sums(np.concatenate(self._per_file(_task_weight_block_sums)))
        return self._sums

    def cross_section(self, theta: Any, nu: Any = None) -> np.ndarray | float:
        """Cross sections (pb) of all files' events, as :meth:`EventSet.cross_section`.

        Without ``nu`` the column sums of every file's weights are computed once (one task per file, cached) and
        morphed; with ``nu`` every call sums the weights at ``(theta, nu)`` in every file.

        Returns
        -------
        ndarray, shape (n_theta,), or float for a single point.

        Raises
        ------
        ValueError
            As :meth:`EventSet.cross_section`.
        """
        if nu is None:
            return self._template._cross_section_from_sums(theta, self._weight_sums())
        return total_of_event_sums(self._per_file(_task_block_sums, "weights_at", (theta, nu)))

    def cross_section_gradient(self, theta: Any, nu: Any = None) -> np.ndarray:
        """Gradient of the cross section with respect to ``theta``, shape ``(n_theta, n_params)`` (``(n_params,)``
        for one point), as :meth:`EventSet.cross_section_gradient`.

        Raises
        ------
        ValueError
            Without a morpher; for an invalid ``nu``.
        """
        if nu is None:
            return self._template._cross_section_gradient_from_sums(theta, self._weight_sums())
        return total_of_event_sums(self._per_file(_task_block_sums, "weight_gradients_at", (theta, nu)))

    def cross_section_nuisance_gradient(self, theta: Any, nu: Any = None) -> np.ndarray:
        """Gradient of the cross section with respect to the nuisance parameters, shape ``(n_theta, n_nuisance)``
        (``(n_nuisance,)`` for one point), as :meth:`EventSet.cross_section_nuisance_gradient`.

        Raises
        ------
        ValueError
            Without nuisance coefficients; for an invalid ``nu``.
        """
        self._template._require_nuisance()
        return total_of_event_sums(self._per_file(_task_block_sums, "weight_nuisance_gradients_at", (theta, nu)))

    def weights_at(self, theta: Any, nu: Any = None) -> np.ndarray:
        """As :meth:`EventSet.weights_at` for all files' events (in memory: ``n_events`` rows)."""
        return np.concatenate(self._per_file(_task_call, "weights_at", (theta, nu)))

    # -- unweighting (called by skminer.augmentation.unweighting.unweight) ------------------------------------
    def _unweight_rows(self, thetas: np.ndarray, counts: np.ndarray, rng: np.random.Generator,
                       negative_weights: str, max_elements: int) -> np.ndarray:
        """Rows drawn at ``thetas`` (``counts`` per point), grouped by point, in random order within a point."""
        if self.n_files == 1:  # exactly the single file's draws, from the caller's generator
            return unweight(_open(self._sources[0]), thetas, counts, rng, negative_weights, max_elements)[0]
        active = np.flatnonzero(counts > 0)
        # (files, active points): what each file's unweighting draws from
        totals = np.stack(self._per_file(_task_totals, thetas[active], negative_weights, max_elements))
        total = totals.sum(axis=0)
        per_file = np.zeros((self.n_files, thetas.shape[0]), dtype=np.int64)
        for i, j in enumerate(active):
            if not total[i] > 0:
                raise ValueError(f"all event weights are zero or negative at theta={thetas[j].tolist()} in all "
                                 f"{self.n_files} files; cannot draw events there")
            per_file[:, j] = rng.multinomial(counts[j], totals[:, i] / total[i])
        seeds = np.random.SeedSequence(rng.integers(0, 2**63, size=4).tolist()).spawn(self.n_files)
        drawing = [k for k in range(self.n_files) if per_file[k].any()]
        drawn = dict(zip(drawing, self._map(_task_draw, [
            (self._sources[k], thetas, per_file[k], seeds[k], negative_weights, max_elements) for k in drawing]),
            strict=True))
        starts = np.concatenate([np.zeros((self.n_files, 1), dtype=np.int64), np.cumsum(per_file, axis=1)], axis=1)
        pieces = []
        for j in active:  # the point's draws of all files, in random order (exchangeable, as from one stream)
            point = np.concatenate([drawn[k][starts[k, j]:starts[k, j + 1]] + self.offsets[k] for k in drawing])
            pieces.append(point[rng.permutation(point.size)])
        logger.info("EventFiles: %d draws at %d points from %d files (%s)", int(counts.sum()), thetas.shape[0],
                    self.n_files, "dask" if self.use_dask else "one process")
        return np.concatenate(pieces) if pieces else np.empty(0, dtype=np.int64)


def sample_files(sampler: Any, paths: Sequence[str | os.PathLike], n_samples: int, random_state: Any = None, *,
                 mode: str = "sum", chunk_events: int = 1 << 20, use_dask: bool = True) -> TrainingSample:
    """Draw a training sample from many event files, one dask task per file.

    ``sampler.sample(EventFiles(paths, mode=mode, chunk_events=chunk_events, use_dask=use_dask), n_samples,
    random_state)``: see :class:`EventFiles` for what equals the single-process results.

    Parameters
    ----------
    sampler : LocalScoreSampler, RatioSampler, DoubleRatioSampler, DensitySampler or TestSampler
    paths : sequence of str or path-like
        Event files written by :meth:`EventSet.save` or :class:`~skminer.io.EventFileWriter`.
    n_samples : int
        As the sampler's ``sample``.
    random_state : None, int or numpy Generator
    mode : {"sum", "average"}
        How the files' cross sections combine (see :class:`EventFiles`).
    chunk_events : int
        Events per chunk read by a task.
    use_dask : bool
        ``False`` runs the same tasks in a loop in this process (the same sample to the last digit).

    Returns
    -------
    TrainingSample

    Raises
    ------
    ImportError
        With ``use_dask=True`` when dask is not installed (``pip install skminer[dask]``).
    ValueError, FileNotFoundError
        As :class:`EventFiles` and the sampler.
    """
    events = EventFiles(paths, mode=mode, chunk_events=chunk_events, use_dask=use_dask)
    return sampler.sample(events, n_samples, random_state=random_state)
