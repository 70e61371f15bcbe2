"""skminer's own HDF5 layout for event sets (attribute ``skminer_format``), read and written atomically.

Layout (version :data:`FORMAT_VERSION`): attributes ``skminer_format`` and ``kind = "EventSet"``; a JSON string
``setup`` (parameter space, morpher, morphing basis, observable and benchmark names, observable definitions,
nuisance names, metadata); chunked float64 datasets ``x`` ``(n_events, n_observables)``, ``weights``
``(n_events, n_benchmarks)`` and, with nuisance parameters, ``nuisance_a`` / ``nuisance_b``
``(n_events, n_nuisance)``; int64 ``sampling_benchmark`` ``(n_events,)``.

The reader takes the column counts from ``setup`` and checks every dataset's declared shape and stored size
(:func:`skminer.io._h5.check_storage`) before reading it, so a hostile file cannot make it allocate more than the
data it actually holds.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import h5py

from .._atomic import atomic_write
from ..morphing import Morpher
from ..parameters import ParameterSpace
from ._h5 import (
    append_rows,
    atomic_h5_write,
    check_shape,
    check_storage,
    create_growing,
    dataset,
    open_h5,
    read_dataset,
    reading_errors,
    write_array,
)

if TYPE_CHECKING:
    from ..events import EventSet

__all__ = ["FORMAT_VERSION", "EventFileWriter", "open_events", "read_event_rows", "read_events", "write_events"]

logger = logging.getLogger(__name__)

#: Version of the skminer HDF5 event-file layout written by :func:`write_events`.
FORMAT_VERSION = 1

T = TypeVar("T")


def _setup(events: EventSet) -> dict[str, Any]:
    return {
        "space": events.space.to_dict(),
        "morpher": None if events.morpher is None else events.morpher.to_dict(),
        "morphing_basis": events.morphing_basis,
        "observable_names": events.observable_names,
        "observable_definitions": events.observable_definitions,
        "benchmark_names": events.benchmark_names,
        "nuisance_names": events.nuisance_names,
        "metadata": events.metadata,
    }


def write_events(events: EventSet, path: str | os.PathLike, compression: str | None = "gzip") -> Path:
    """Write ``events`` to one HDF5 file in skminer's layout, atomically (see :meth:`EventSet.save`).

    Raises
    ------
    ValueError
        If ``compression`` is not ``"gzip"``, ``"lzf"`` or ``None``.
    """
    if compression not in ("gzip", "lzf", None):
        raise ValueError(f"compression must be 'gzip', 'lzf' or None, got {compression!r}")
    setup = json.dumps(_setup(events), allow_nan=False)

    def write(f: h5py.File) -> None:
        f.attrs["skminer_format"] = FORMAT_VERSION
        f.attrs["kind"] = "EventSet"
        f.create_dataset("setup", data=setup, dtype=h5py.string_dtype())
        write_array(f, "x", events.x, compression)
        write_array(f, "weights", events.weights, compression)
        write_array(f, "sampling_benchmark", events.sampling_benchmark, compression)
        if events.nuisance_a is not None:
            write_array(f, "nuisance_a", events.nuisance_a, compression)
            write_array(f, "nuisance_b", events.nuisance_b, compression)

    out = atomic_h5_write(path, write)
    logger.info("saved %d events to %s", events.n_events, out)
    return out


def read_events(path: str | os.PathLike, factory: Callable[..., T]) -> T:
    """Read a file written by :func:`write_events` and build the event set with ``factory(x, weights, **kwargs)``.

    Parameters
    ----------
    path : str or path-like
    factory : callable
        Usually :class:`~skminer.events.EventSet` (or a subclass); called with ``x``, ``weights`` and the
        keyword arguments of its constructor.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a complete, supported skminer event file or declares more data than it stores; the
        message starts with the path and names the field.
    """
    path = Path(path)
    with reading_errors(path, "event file"):
        setup, arrays = _read_file(path)
        return _build(path, factory, setup, arrays)


def _read_file(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Setup (parsed JSON) and arrays of a skminer event file, shapes checked before any array is read."""
    with open_h5(path) as f:
        setup, expected = _check_file(f, path)
        arrays: dict[str, Any] = {name: read_dataset(f, path, name) for name in expected}
        arrays.setdefault("nuisance_a", None)
        arrays.setdefault("nuisance_b", None)
    return setup, arrays


def _check_file(f: h5py.File, path: Path) -> tuple[dict[str, Any], list[str]]:
    """Setup of an open skminer event file and the names of its event datasets, after checking every declared
    shape, the event counts and the stored sizes (nothing is read but the setup)."""
    if "skminer_format" not in f.attrs:
        hint = (" It looks like a MadMiner file: use EventSet.from_madminer()."
                if "samples" in f and "benchmarks" in f else "")
        raise ValueError(f"{path}: not a skminer event file (missing attribute 'skminer_format').{hint}")
    version = int(f.attrs["skminer_format"])
    if version > FORMAT_VERSION:
        raise ValueError(f"{path}: skminer_format {version} is newer than this skminer supports "
                         f"({FORMAT_VERSION}); upgrade skminer")
    setup = _read_setup(f, path)
    n_obs = _count(setup, path, "observable_names")
    n_bench = _count(setup, path, "benchmark_names")
    n_nu = _count(setup, path, "nuisance_names") if setup.get("nuisance_names") else 0
    expected: dict[str, tuple[int | None, ...]] = {"x": (None, n_obs), "weights": (None, n_bench),
                                                   "sampling_benchmark": (None,)}
    if n_nu:
        expected.update(nuisance_a=(None, n_nu), nuisance_b=(None, n_nu))
    # every declared shape is checked (and the event counts compared) before the first array is read
    n_events = {name: check_shape(dataset(f, path, name), path, name, shape)[0] for name, shape in expected.items()}
    if len(set(n_events.values())) > 1:
        raise ValueError(f"{path}: the datasets disagree on the number of events: {n_events}")
    for name in expected:
        check_storage(f[name], path, name)
    return setup, list(expected)


def open_events(path: str | os.PathLike) -> tuple[dict[str, Any], int]:
    """Check a skminer event file as :func:`read_events` does, without reading its events.

    Returns
    -------
    setup : dict
        The parsed ``setup`` entry.
    n_events : int

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`read_events`.
    """
    path = Path(path)
    with reading_errors(path, "event file"), open_h5(path) as f:
        setup, _ = _check_file(f, path)
        return setup, int(f["x"].shape[0])


def read_event_rows(path: str | os.PathLike, setup: dict[str, Any], factory: Callable[..., T], start: int,
                    stop: int) -> T:
    """Events ``start:stop`` of a file checked by :func:`open_events`, built with ``factory`` (validated).

    Raises
    ------
    ValueError
        If the file changed or cannot be read (the message starts with the path).
    """
    path = Path(path)
    with reading_errors(path, "event file"), open_h5(path) as f:
        names = ["x", "weights", "sampling_benchmark"] + (["nuisance_a", "nuisance_b"] if setup.get("nuisance_names")
                                                          else [])
        arrays: dict[str, Any] = {name: dataset(f, path, name)[start:stop] for name in names}
        arrays.setdefault("nuisance_a", None)
        arrays.setdefault("nuisance_b", None)
        return _build(path, factory, setup, arrays)


class EventFileWriter:
    """Write an event file chunk by chunk (out-of-core), atomically: ``with EventFileWriter(path) as w:
    w.append(events)``.

    The file is the same layout as :func:`write_events`; it is written to a temporary name beside ``path`` and
    renamed over it only when the ``with`` block ends without an exception. The setup (space, morpher, names) is
    that of the first appended chunk; later chunks must have the same observables, benchmarks and nuisance
    parameters. :meth:`set_metadata` replaces the metadata written with the setup at the end.

    Parameters
    ----------
    path : str or path-like
    compression : {"gzip", "lzf", None}

    Raises
    ------
    ValueError
        On a bad ``compression``, a chunk that does not match the first one, or when no chunk was appended.
    """

    def __init__(self, path: str | os.PathLike, compression: str | None = "gzip") -> None:
        if compression not in ("gzip", "lzf", None):
            raise ValueError(f"compression must be 'gzip', 'lzf' or None, got {compression!r}")
        self.path = Path(path)
        self.compression = compression
        self.n_events = 0
        self._setup: dict[str, Any] | None = None
        self._file: h5py.File | None = None
        self._context: Any = None

    def __enter__(self) -> EventFileWriter:
        self._context = atomic_write(self.path)
        tmp = self._context.__enter__()
        self._file = h5py.File(tmp, "w")
        return self

    def append(self, events: EventSet) -> None:
        """Append the events of an in-memory :class:`~skminer.events.EventSet`."""
        f = self._file
        if f is None:
            raise ValueError("EventFileWriter.append outside its with block")
        arrays = {"x": events.x, "weights": events.weights, "sampling_benchmark": events.sampling_benchmark}
        if events.nuisance_a is not None:
            arrays.update(nuisance_a=events.nuisance_a, nuisance_b=events.nuisance_b)
        if self._setup is None:
            self._setup = _setup(events)
            for name, value in arrays.items():
                create_growing(f, name, value.shape[1:], value.dtype, self.compression)
        else:
            for key in ("observable_names", "benchmark_names", "nuisance_names"):
                if getattr(events, key) != self._setup[key]:
                    raise ValueError(f"{self.path}: appended events have {key} {getattr(events, key)}, the file "
                                     f"{self._setup[key]}")
        for name, value in arrays.items():
            append_rows(f[name], value)
        self.n_events += events.n_events

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        """Metadata written with the setup when the file is closed (JSON-serialisable)."""
        if self._setup is None:
            raise ValueError("set_metadata before the first append")
        self._setup["metadata"] = json.loads(json.dumps(metadata, allow_nan=False))

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        f, self._file = self._file, None
        try:
            if exc is None:
                if self._setup is None:
                    raise ValueError(f"{self.path}: no events were appended")
                f.attrs["skminer_format"] = FORMAT_VERSION
                f.attrs["kind"] = "EventSet"
                f.create_dataset("setup", data=json.dumps(self._setup, allow_nan=False), dtype=h5py.string_dtype())
        except BaseException as err:
            f.close()
            self._context.__exit__(type(err), err, err.__traceback__)
            raise
        f.close()
        self._context.__exit__(exc_type, exc, tb)
        if exc is None:
            logger.info("saved %d events to %s (chunked)", self.n_events, self.path)


def _read_setup(f: h5py.File, path: Path) -> dict[str, Any]:
    raw = read_dataset(f, path, "setup", shape=())
    try:
        setup = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: field 'setup' is not valid JSON ({err})") from None
    if not isinstance(setup, dict):
        raise ValueError(f"{path}: field 'setup' must be a JSON object, got {type(setup).__name__}")
    return setup


def _count(setup: dict[str, Any], path: Path, key: str) -> int:
    value = _entry(setup, path, key)
    if not isinstance(value, list):
        raise ValueError(f"{path}: field 'setup' entry {key!r} must be a list of names, got {type(value).__name__}")
    return len(value)


def _entry(setup: dict[str, Any], path: Path, key: str) -> Any:
    if key not in setup:
        raise ValueError(f"{path}: field 'setup' lacks entry {key!r}")
    return setup[key]


def _build(path: Path, factory: Callable[..., T], setup: dict[str, Any], arrays: dict[str, Any]) -> T:
    space = ParameterSpace.from_dict(_entry(setup, path, "space"))
    morpher_setup = _entry(setup, path, "morpher")
    morpher = None if morpher_setup is None else Morpher.from_dict(morpher_setup)
    return factory(arrays["x"], arrays["weights"], observable_names=_entry(setup, path, "observable_names"),
                   benchmark_names=_entry(setup, path, "benchmark_names"), space=space, morpher=morpher,
                   morphing_basis=_entry(setup, path, "morphing_basis"),
                   sampling_benchmark=arrays["sampling_benchmark"],
                   nuisance_names=_entry(setup, path, "nuisance_names"), nuisance_a=arrays["nuisance_a"],
                   nuisance_b=arrays["nuisance_b"],
                   observable_definitions=_entry(setup, path, "observable_definitions"),
                   metadata=_entry(setup, path, "metadata"))
