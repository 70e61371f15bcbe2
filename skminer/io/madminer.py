"""MadMiner's HDF5 layout (``parameters/*``, ``benchmarks/*``, ``morphing/*``, ``samples/*``, ...), both ways.

:func:`read_madminer` reads the settings and samples that MadMiner's LHE / Delphes readers write and that its
``DataAnalyzer`` reads (MadMiner 0.9; older files with ``parameters/ranges`` too); :func:`write_madminer` writes
that layout so that analyses can migrate in both directions. Conventions taken over from MadMiner:

- missing strings are written as ``str(None) == "None"``;
- the weights of events generated at benchmark ``b`` are multiplied by ``n_b / sum_b' n_b'`` when the file records
  the number of events per sampling benchmark (``sample_summary/signal_events``); the writer divides by the same
  factors so MadMiner reconstructs exactly the stored weights;
- nuisance parameters are nuisance *benchmarks* (weight variations); their coefficients ``a``, ``b`` of eq. (19)
  of the MadMiner paper (arXiv:1907.10621) follow from the weight ratios as in MadMiner's ``NuisanceMorpher``,
  clipped to [-10, 10].

Every dataset's declared shape is checked against the others and its stored size against its declared size
(:func:`skminer.io._h5.check_storage`) before it is read.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import h5py
import numpy as np

from ..morphing import Morpher
from ..parameters import ParameterSpace
from ._h5 import atomic_h5_write, check_shape, check_storage, dataset, open_h5, read_dataset, reading_errors, strings

if TYPE_CHECKING:
    from ..events import EventSet

__all__ = ["read_madminer", "write_madminer"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_EMPTY = "None"  # MadMiner >= 0.9 writes str(None) for missing strings
_LOG_CLIP = 10.0  # MadMiner clips the nuisance coefficients a, b to [-10, 10]
_MADMINER_SYSTEMATIC_KINDS = ("scale", "pdf", "norm")


# -- reading ---------------------------------------------------------------------------------------------
@dataclass
class _Benchmarks:
    names: list[str]
    values: np.ndarray  # (n_benchmarks, n_params)
    is_nuisance: np.ndarray  # bool (n_benchmarks,)
    is_reference: np.ndarray  # bool (n_benchmarks,)

    @property
    def physics(self) -> np.ndarray:
        return np.flatnonzero(~self.is_nuisance)

    @property
    def reference(self) -> str | None:
        return next((self.names[i] for i in np.flatnonzero(self.is_reference)), None)


@dataclass
class _Samples:
    x: np.ndarray  # (n_events, n_observables)
    weights: np.ndarray  # (n_events, n_benchmarks), sampling factors applied
    sampling: np.ndarray | None  # (n_events,) int, indices into all benchmarks
    observable_names: list[str] = field(default_factory=list)
    observable_definitions: list[str] = field(default_factory=list)


def read_madminer(path: str | os.PathLike, factory: Callable[..., T], *, include_nuisance: bool = True) -> T:
    """Read a MadMiner HDF5 file and build the event set with ``factory(x, weights, **kwargs)``.

    See :meth:`skminer.events.EventSet.from_madminer` for what is read and how.

    Parameters
    ----------
    path : str or path-like
    factory : callable
        Called as ``factory(x, weights, **kwargs)`` with the keyword arguments of the EventSet constructor.
    include_nuisance : bool
        Convert nuisance benchmarks into ``nuisance_a`` / ``nuisance_b`` (else drop them).

    Raises
    ------
    FileNotFoundError, ValueError
        As :meth:`~skminer.events.EventSet.from_madminer` (a ``ValueError`` message starts with the path).
    """
    path = Path(path)
    with reading_errors(path, "MadMiner file"):
        return _read(path, factory, include_nuisance)


def _read(path: Path, factory: Callable[..., T], include_nuisance: bool) -> T:
    with open_h5(path) as f:
        space, transforms = _read_parameters(f, path)
        bench = _read_benchmarks(f, path, space.n_parameters)
        samples = _read_samples(f, path, len(bench.names))
        morphing = _read_morphing(f, path, bench.physics.size)
        nuisance = _read_nuisance(f, path)
        systematics = _read_systematics(f, path)

    phys = bench.physics
    phys_names = [bench.names[i] for i in phys]
    for i in phys:
        space.add_benchmark(bench.names[i], bench.values[i])
    morpher, basis_names = (None, None) if morphing is None else _rebuild_morpher(path, *morphing, space, phys_names)

    nu_names: list[str] = []
    a = b = None
    if nuisance and include_nuisance:
        a, b = _nuisance_coefficients_of(path, samples.weights, bench, nuisance)
        for name, sname, up, down in nuisance:
            kind, value = systematics.get(sname, ("scale", ""))
            kind = kind if kind in _MADMINER_SYSTEMATIC_KINDS else "scale"
            size = _float_or_none(value) if kind == "norm" else None
            space.add_nuisance(name, kind=kind, up=up, down=down, size=size)
        nu_names = [n for n, _, _, _ in nuisance]

    metadata = {"source": "madminer", "madminer_file": str(path),
                "madminer_parameter_transforms": [_none(t) for t in transforms],
                "madminer_reference_benchmark": bench.reference,
                "madminer_nuisance_systematics": {n: s for n, s, _, _ in nuisance}}
    events = factory(samples.x, samples.weights[:, phys], observable_names=samples.observable_names,
                     benchmark_names=phys_names, space=space, morpher=morpher, morphing_basis=basis_names,
                     sampling_benchmark=_physics_sampling(samples.sampling, phys, len(bench.names)),
                     nuisance_names=nu_names, nuisance_a=a, nuisance_b=b,
                     observable_definitions=[_none(d) for d in samples.observable_definitions], metadata=metadata)
    logger.info("read %s from MadMiner file %s", events, path)
    return events


def _optional(f: h5py.File, path: Path, name: str, shape: Sequence[int | None] | None = None) -> Any:
    return read_dataset(f, path, name, shape) if name in f else None


def _read_parameters(f: h5py.File, path: Path) -> tuple[ParameterSpace, list[str]]:
    """Parameters of interest (``parameters/*``) and their MadMiner transforms."""
    names = strings(read_dataset(f, path, "parameters/names", (None,)))
    n = len(names)
    blocks = strings(read_dataset(f, path, "parameters/lha_blocks", (n,)))
    ids = np.asarray(read_dataset(f, path, "parameters/lha_ids", (n,)))
    max_power_set = dataset(f, path, "parameters/max_power")
    if max_power_set.ndim not in (1, 2) or max_power_set.shape[0] != n:
        raise ValueError(f"{path}: field 'parameters/max_power' has shape {max_power_set.shape}, expected ({n},)")
    max_power = np.asarray(read_dataset(f, path, "parameters/max_power")).reshape(n, -1).max(axis=1)
    range_key = "parameters/val_ranges" if "parameters/val_ranges" in f else "parameters/ranges"
    ranges = np.asarray(read_dataset(f, path, range_key, (n, 2)), dtype=np.float64)
    raw_transforms = _optional(f, path, "parameters/transforms", (n,))
    transforms = [""] * n if raw_transforms is None else strings(raw_transforms)
    space = ParameterSpace()
    for i, name in enumerate(names):
        block = _none(blocks[i])
        # write_madminer writes a parameter without LHA information as block "" and id 0
        lha_id = None if block is None and int(ids[i]) == 0 else int(ids[i])
        space.add_parameter(name, lha_block=block, lha_id=lha_id, max_power=int(max_power[i]),
                            range=(float(ranges[i, 0]), float(ranges[i, 1])))
    return space, transforms


def _read_benchmarks(f: h5py.File, path: Path, n_params: int) -> _Benchmarks:
    names = strings(read_dataset(f, path, "benchmarks/names", (None,)))
    n = len(names)
    if dataset(f, path, "benchmarks/values").size != n * n_params:
        raise ValueError(f"{path}: benchmarks/values has shape {f['benchmarks/values'].shape}, expected "
                         f"({n}, {n_params}) for {n} benchmarks and {n_params} parameters")
    values = np.asarray(read_dataset(f, path, "benchmarks/values"), dtype=np.float64).reshape(n, n_params)
    flags = [_optional(f, path, f"benchmarks/{key}", (n,)) for key in ("is_nuisance", "is_reference")]
    return _Benchmarks(names, values, *(np.zeros(n, bool) if v is None else np.asarray(v).astype(bool)
                                        for v in flags))


def _read_samples(f: h5py.File, path: Path, n_benchmarks: int) -> _Samples:
    """Observables and samples, shapes compared before any sample array is read; sampling factors applied."""
    obs_names = strings(read_dataset(f, path, "observables/names", (None,)))
    raw_defs = _optional(f, path, "observables/definitions", (len(obs_names),))
    obs_defs = [_EMPTY] * len(obs_names) if raw_defs is None else strings(raw_defs)
    x_set = dataset(f, path, "samples/observations")
    w_set = dataset(f, path, "samples/weights")
    if w_set.ndim != 2 or w_set.shape[1] != n_benchmarks:
        raise ValueError(f"{path}: samples/weights has shape {w_set.shape}, expected (n_events, {n_benchmarks}) "
                         "for benchmarks/names")
    if x_set.ndim != 2 or x_set.shape[0] != w_set.shape[0]:
        raise ValueError(f"{path}: samples/observations has shape {x_set.shape}, samples/weights {w_set.shape}")
    n_events = x_set.shape[0]
    if "samples/sampling_benchmarks" in f:
        check_shape(f["samples/sampling_benchmarks"], path, "samples/sampling_benchmarks", (n_events,))
    for ds, name in ((x_set, "samples/observations"), (w_set, "samples/weights")):
        check_storage(ds, path, name)
    sampling = _optional(f, path, "samples/sampling_benchmarks")
    sampling = None if sampling is None else np.asarray(sampling, dtype=np.int64)
    n_signal = _optional(f, path, "sample_summary/signal_events")
    weights = np.asarray(w_set[()], dtype=np.float64)
    weights = _apply_sampling_factors(path, weights, sampling,
                                      None if n_signal is None else np.asarray(n_signal, np.float64).reshape(-1))
    return _Samples(np.asarray(x_set[()], dtype=np.float64), weights, sampling, obs_names, obs_defs)


def _apply_sampling_factors(path: Path, weights: np.ndarray, sampling: np.ndarray | None,
                            n_signal: np.ndarray | None) -> np.ndarray:
    """Weights of mixed samples times MadMiner's sampling factors ``n_b / sum n_b`` (background ``-1``: 1)."""
    if sampling is None or n_signal is None or not n_signal.size or not np.any(sampling >= 0):
        return weights
    if sampling.max() >= n_signal.size or n_signal.sum() <= 0:
        raise ValueError(f"{path}: sample_summary/signal_events {n_signal.tolist()} does not cover "
                         f"samples/sampling_benchmarks up to {int(sampling.max())}")
    factors = np.append(n_signal / n_signal.sum(), 1.0)
    k = factors[np.where(sampling >= 0, sampling, -1)]
    if np.all(k == 1.0):
        return weights
    logger.info("%s: applying MadMiner sampling factors %s", path, factors[:-1].tolist())
    return weights * k[:, None]


def _physics_sampling(sampling: np.ndarray | None, phys: np.ndarray, n_benchmarks: int) -> np.ndarray | None:
    """Sampling benchmark indices renumbered over the physics benchmarks (nuisance benchmarks dropped)."""
    if sampling is None:
        return None
    remap = np.full(n_benchmarks + 1, -1, dtype=np.int64)
    remap[phys] = np.arange(phys.size)
    return np.where(sampling >= 0, remap[np.clip(sampling, 0, n_benchmarks)], -1)


def _read_morphing(f: h5py.File, path: Path, n_physics: int) -> tuple[np.ndarray, np.ndarray] | None:
    if "morphing/components" not in f or "morphing/morphing_matrix" not in f:
        return None
    components = np.asarray(read_dataset(f, path, "morphing/components", (None, None)))
    matrix_set = dataset(f, path, "morphing/morphing_matrix")
    if matrix_set.shape != (components.shape[0], n_physics):
        raise ValueError(f"{path}: morphing/morphing_matrix has shape {matrix_set.shape}, expected "
                         f"({components.shape[0]}, {n_physics}) (components x physics benchmarks)")
    return components, np.asarray(read_dataset(f, path, "morphing/morphing_matrix"), dtype=np.float64)


def _rebuild_morpher(path: Path, components: np.ndarray, matrix: np.ndarray, space: ParameterSpace,
                     phys_names: list[str]) -> tuple[Morpher, list[str]]:
    """Morpher from the components and the benchmarks with a non-zero morphing-matrix column, checked against
    the stored matrix (a deviation is a warning; the recomputed matrix is used)."""
    in_basis = np.any(matrix != 0.0, axis=0)
    basis_names = [n for n, keep in zip(phys_names, in_basis, strict=True) if keep]
    # MadMiner's over-determined morphing (more basis benchmarks than components) is a least-squares fit
    morpher = Morpher(components=components, fit="least_squares" if in_basis.sum() > components.shape[0] else "exact")
    try:
        morpher.set_basis(space.benchmark_values[in_basis])
    except ValueError as err:
        raise ValueError(f"{path}: cannot rebuild the morphing from morphing/components and the "
                         f"benchmarks {basis_names}: {err}") from None
    stored = matrix[:, in_basis]
    dev = float(np.max(np.abs(morpher.matrix - stored)) / max(np.max(np.abs(stored)), 1e-300))
    if dev > 1e-6:
        logger.warning("%s: stored morphing matrix differs from the one recomputed from morphing/components "
                       "and benchmarks/values (max relative deviation %.3g); using the recomputed one", path, dev)
    return morpher, basis_names


def _read_nuisance(f: h5py.File, path: Path) -> list[tuple[str, str, str | None, str | None]]:
    """``(name, systematic, positive benchmark, negative benchmark)`` per nuisance parameter."""
    if "nuisance_parameters/names" not in f:
        return []
    names = strings(read_dataset(f, path, "nuisance_parameters/names", (None,)))
    n = len(names)
    pos = strings(read_dataset(f, path, "nuisance_parameters/benchmark_positive", (n,)))
    neg = strings(read_dataset(f, path, "nuisance_parameters/benchmark_negative", (n,)))
    raw = _optional(f, path, "nuisance_parameters/systematics", (n,))
    syst = [""] * n if raw is None else strings(raw)
    return [(nm, s, _none(p), _none(m)) for nm, s, p, m in zip(names, syst, pos, neg, strict=True)]


def _read_systematics(f: h5py.File, path: Path) -> dict[str, tuple[str, str]]:
    """``{systematic: (type, value)}`` from ``systematics/*`` (value: the size of a normalisation uncertainty)."""
    if "systematics/names" not in f or "systematics/types" not in f:
        return {}
    names = strings(read_dataset(f, path, "systematics/names", (None,)))
    types = strings(read_dataset(f, path, "systematics/types", (len(names),)))
    values = None
    if "systematics/values" in f and f["systematics/values"].dtype.kind in "SOU":
        values = strings(read_dataset(f, path, "systematics/values", (len(names),)))
    return {sn: (st, "" if values is None else values[i]) for i, (sn, st) in enumerate(zip(names, types, strict=True))}


def _nuisance_coefficients_of(path: Path, weights: np.ndarray, bench: _Benchmarks,
                              nuisance: list[tuple[str, str, str | None, str | None]]
                              ) -> tuple[np.ndarray, np.ndarray]:
    if bench.reference is None:
        raise ValueError(f"{path}: nuisance parameters need a reference benchmark, but benchmarks/is_reference "
                         "is missing or has no flag set")
    col = {n: i for i, n in enumerate(bench.names)}
    for name, _, p, m in nuisance:
        for bn in (p, m):
            if bn is not None and bn not in col:
                raise ValueError(f"{path}: nuisance parameter {name!r} refers to benchmark {bn!r}, which is "
                                 "not in benchmarks/names")
    return nuisance_coefficients(weights, col[bench.reference],
                                 [(col[p] if p else None, col[m] if m else None) for _, _, p, m in nuisance])


def nuisance_coefficients(weights: np.ndarray, i_ref: int, columns: Sequence[tuple[int | None, int | None]]
                          ) -> tuple[np.ndarray, np.ndarray]:
    """``a``, ``b`` of eq. (19) from nuisance benchmark weights, as MadMiner's ``NuisanceMorpher`` computes them.

    One-sided (only ``+1``): ``a = log(w_+ / w_ref)``, ``b = 0``; two-sided: ``a = log(w_+ / w_-) / 2``,
    ``b = log(w_+ w_- / w_ref^2) / 2``. Non-finite values (vanishing weights) become 0 and the coefficients are
    clipped to [-10, 10], as in MadMiner.

    Parameters
    ----------
    weights : ndarray, shape (n_events, n_benchmarks)
    i_ref : int
        Column of the reference benchmark.
    columns : sequence of (int or None, int or None)
        Columns of the positive and negative variation of each nuisance parameter.

    Returns
    -------
    a, b : ndarray, shape (n_events, n_nuisance)
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
    clipped = (np.abs(a) > _LOG_CLIP) | (np.abs(b) > _LOG_CLIP)
    if np.any(clipped):
        logger.warning("clipping %d nuisance coefficients to [-%g, %g] as MadMiner does", int(clipped.sum()),
                       _LOG_CLIP, _LOG_CLIP)
    return np.clip(a, -_LOG_CLIP, _LOG_CLIP), np.clip(b, -_LOG_CLIP, _LOG_CLIP)


def _none(s: str | None) -> str | None:
    return None if s is None or s in ("", _EMPTY) else s


def _float_or_none(s: str) -> float | None:
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


# -- writing ---------------------------------------------------------------------------------------------
@dataclass
class _NuisanceBenchmarks:
    """Nuisance parameters of an event set as MadMiner's nuisance benchmarks."""
    names: list[str] = field(default_factory=list)  # benchmark names of the variations
    columns: list[np.ndarray] = field(default_factory=list)  # their weights
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)  # nuisance_parameters/* rows
    systematics: dict[str, tuple[str, str]] = field(default_factory=dict)  # systematics/*: type, value


def write_madminer(events: EventSet, path: str | os.PathLike, *, reference_benchmark: str | None = None) -> Path:
    """Write ``events`` in MadMiner's HDF5 layout, atomically (see :meth:`EventSet.to_madminer`).

    Raises
    ------
    ValueError
        If ``reference_benchmark`` is not a benchmark of ``events`` or a nuisance benchmark name collides with
        another benchmark.
    """
    ref = _reference(events, reference_benchmark)
    nuisance = _nuisance_benchmarks(events, ref)
    weights = events.weights
    if nuisance.columns:
        weights = np.concatenate([weights, np.stack(nuisance.columns, axis=1)], axis=1)
    weights, n_signal, n_background = _remove_sampling_factors(events, weights)
    names = events.benchmark_names + nuisance.names

    def write(f: h5py.File) -> None:
        _write_parameters(f, events)
        values = np.concatenate([events.benchmark_values, np.zeros((len(nuisance.names), events.n_parameters))])
        f.create_dataset("benchmarks/names", data=_encode(names), dtype="S256")
        f.create_dataset("benchmarks/values", data=values)
        f.create_dataset("benchmarks/is_nuisance",
                         data=np.array([0] * events.n_benchmarks + [1] * len(nuisance.names), dtype=np.int64))
        f.create_dataset("benchmarks/is_reference", data=np.array([int(n == ref) for n in names], dtype=np.int64))
        _write_morphing(f, events)
        f.create_dataset("observables/names", data=_encode(events.observable_names), dtype="S256")
        f.create_dataset("observables/definitions", data=_encode(events.observable_definitions), dtype="S256")
        f.create_dataset("samples/observations", data=events.x)
        f.create_dataset("samples/weights", data=weights)
        f.create_dataset("samples/sampling_benchmarks", data=np.asarray(events.sampling_benchmark, dtype=np.int64))
        f.create_dataset("sample_summary/signal_events", data=n_signal)
        f.create_dataset("sample_summary/background_events", data=n_background)
        _write_nuisance(f, nuisance)

    out = atomic_h5_write(path, write)
    logger.info("wrote %d events in MadMiner layout to %s", events.n_events, out)
    return out


def _encode(values: Sequence[str | None]) -> list[bytes]:
    return [(_EMPTY if s is None else s).encode("ascii", "replace") for s in values]


def _reference(events: EventSet, reference_benchmark: str | None) -> str:
    """Reference benchmark of the nuisance variations: the argument, the file's original one, the first basis
    benchmark or the first benchmark."""
    ref = reference_benchmark or events.metadata.get("madminer_reference_benchmark")
    if ref in events.benchmark_names:
        return ref
    if reference_benchmark is not None:
        raise ValueError(f"reference_benchmark {reference_benchmark!r} is not one of {events.benchmark_names}")
    return (events.morphing_basis or events.benchmark_names)[0]


def _nuisance_benchmarks(events: EventSet, ref: str) -> _NuisanceBenchmarks:
    """Weight variations ``w_ref exp(a + b)`` (and ``w_ref exp(-a + b)`` when two-sided) per nuisance parameter,
    so that MadMiner's ``NuisanceMorpher`` recovers ``a`` and ``b``; with their kinds and sizes."""
    out = _NuisanceBenchmarks()
    space_nu = {n.name: n for n in events.space.nuisance_parameters}
    systematics = events.metadata.get("madminer_nuisance_systematics") or {}
    w_ref = events.weights[:, events.benchmark_names.index(ref)]
    taken = set(events.benchmark_names)
    for k, name in enumerate(events.nuisance_names):
        definition = space_nu.get(name)
        a_k, b_k = events.nuisance_a[:, k], events.nuisance_b[:, k]
        two_sided = bool(np.any(b_k != 0.0)) or (definition is not None and definition.down is not None)
        up = (definition.up if definition is not None and definition.up else None) or f"{name}_up"
        down = ((definition.down if definition is not None and definition.down else None) or f"{name}_down"
                ) if two_sided else None
        for bn in (up, down):
            if bn is not None and bn in taken:
                raise ValueError(f"nuisance benchmark name {bn!r} of {name!r} collides with another benchmark")
            if bn is not None:
                taken.add(bn)
        out.names.append(up)
        out.columns.append(w_ref * np.exp(a_k + b_k))
        if down is not None:
            out.names.append(down)
            out.columns.append(w_ref * np.exp(-a_k + b_k))
        kind = definition.kind if definition is not None else "scale"
        sname = systematics.get(name) or kind
        out.rows.append((name, sname, up, down or _EMPTY))
        # the type of each systematic (read back as the nuisance kind) and, for a normalisation uncertainty,
        # its relative size
        if sname not in out.systematics:
            size = definition.size if definition is not None else None
            out.systematics[sname] = (kind, _EMPTY if size is None else repr(float(size)))
    return out


def _remove_sampling_factors(events: EventSet, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Weights divided by MadMiner's sampling factors ``n_b / sum n_b``, events per sampling benchmark, background."""
    ids = events.sampling_benchmark
    n_signal = np.bincount(ids[ids >= 0], minlength=events.n_benchmarks).astype(np.int64)
    n_background = int(np.sum(ids < 0))
    if n_signal.sum() > 0:
        factors = np.append(n_signal / n_signal.sum(), 1.0)
        k = factors[np.where(ids >= 0, ids, -1)]
        if not np.all(k == 1.0):
            weights = weights / k[:, None]
    return weights, n_signal, n_background


def _write_parameters(f: h5py.File, events: EventSet) -> None:
    """``parameters/*`` with both ``val_ranges`` (MadMiner >= 0.9) and ``ranges`` (older versions)."""
    params = events.space.parameters
    transforms = list(events.metadata.get("madminer_parameter_transforms") or [_EMPTY] * len(params))
    if len(transforms) != len(params):
        transforms = [_EMPTY] * len(params)
    f.create_dataset("parameters/names", data=_encode([p.name for p in params]), dtype="S256")
    f.create_dataset("parameters/lha_blocks", data=_encode([p.lha_block or "" for p in params]), dtype="S256")
    f.create_dataset("parameters/lha_ids", data=np.array([p.lha_id or 0 for p in params], dtype=np.int64))
    f.create_dataset("parameters/max_power", data=np.array([p.max_power for p in params], dtype=np.int64))
    f.create_dataset("parameters/val_ranges", data=events.space.ranges)
    f.create_dataset("parameters/ranges", data=events.space.ranges)
    f.create_dataset("parameters/transforms", data=_encode([t if t else _EMPTY for t in transforms]), dtype="S256")


def _write_morphing(f: h5py.File, events: EventSet) -> None:
    """Morphing matrix with one column per physics benchmark (zero outside the morphing basis)."""
    if events.morpher is None:
        return
    matrix = np.zeros((events.morpher.n_components, events.n_benchmarks))
    matrix[:, [events.benchmark_names.index(b) for b in events.morphing_basis]] = events.morpher.matrix
    f.create_dataset("morphing/components", data=events.morpher.components.astype(np.int64))
    f.create_dataset("morphing/morphing_matrix", data=matrix)


def _write_nuisance(f: h5py.File, nuisance: _NuisanceBenchmarks) -> None:
    if not nuisance.rows:
        return
    cols = list(zip(*nuisance.rows, strict=True))
    for key, col in zip(("names", "systematics", "benchmark_positive", "benchmark_negative"), cols, strict=True):
        f.create_dataset(f"nuisance_parameters/{key}", data=_encode(col), dtype="S256")
    syst = nuisance.systematics
    f.create_dataset("systematics/names", data=_encode(list(syst)), dtype="S256")
    f.create_dataset("systematics/types", data=_encode([t for t, _ in syst.values()]), dtype="S256")
    f.create_dataset("systematics/values", data=_encode([v for _, v in syst.values()]), dtype="S256")
    f.create_dataset("systematics/scales", data=_encode([_EMPTY] * len(syst)), dtype="S256")
