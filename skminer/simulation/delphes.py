"""Reading Delphes ROOT files into an :class:`~skminer.events.EventSet` with uproot and awkward.

:class:`DelphesReader` reads the ``Delphes`` tree: ``Jet`` (``j``, fields ``btag``, ``tautag``, ``charge``),
``Electron`` (``e``), ``Muon`` (``mu``), ``l`` = e + mu, ``Photon`` (``a``), ``MissingET`` (singleton ``met``)
and the scalar ``ht`` (``ScalarHT``), plus multiplicities ``n_<collection>``, ``njets``, ``nleptons``, ...
Observables, cuts (including trigger-like :class:`~skminer.simulation.cuts.AnyOf` selections), optional extra
smearing and nuisance parameters work as in :class:`~skminer.simulation.lhe.LHEReader`.

Benchmark weights come from the ``Weight.Weight`` branch, which carries every LHE weight of the event (Pythia's
nominal weight first, then the LHE ``<rwgt>`` weights in file order). Delphes does not store weight *names*: give
them as ``weight_names`` or let the reader take them from the LHE file the events were showered from
(``lhe_path``), which also supplies the weight normalisation (see :mod:`skminer.simulation.lhe`) and the cross
section. Without an LHE file the default normalisation is ``"average"`` (MG5's default: every event weight is the
cross section, so the weights are divided by the number of events in the tree).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..closure import PRECISION_FLOAT32, PRECISION_LHE
from ..morphing import Morpher
from ..parameters import ParameterSpace
from .cuts import Cut
from .lhe import (
    _ALIASES,
    NOMINAL,
    _EventFileReader,
    _open_lhe,
    _Sample,
    _Sink,
    _StreamSummary,
    read_lhe_info,
)
from .observables import EventObjects, Observable, make_vectors, require_hep
from .smearing import Smearer

__all__ = ["DelphesReader", "iter_delphes_objects", "read_delphes_objects", "count_lhe_events", "MISSING_EVENTS"]

logger = logging.getLogger(__name__)

_ELECTRON_MASS = 0.000510999
_MUON_MASS = 0.1056584

_BRANCHES = {
    "j": ("Jet", {"pt": "PT", "eta": "Eta", "phi": "Phi", "mass": "Mass", "btag": "BTag", "tautag": "TauTag",
                  "charge": "Charge"}),
    "e": ("Electron", {"pt": "PT", "eta": "Eta", "phi": "Phi", "charge": "Charge"}),
    "mu": ("Muon", {"pt": "PT", "eta": "Eta", "phi": "Phi", "charge": "Charge"}),
    "a": ("Photon", {"pt": "PT", "eta": "Eta", "phi": "Phi"}),
}
_MASSES = {"e": _ELECTRON_MASS, "mu": _MUON_MASS, "a": 0.0}

#: Meanings of a Delphes tree with fewer events than its LHE file. ``"not_processed"``: the Delphes run processed
#: only the first events (an unbiased subsample): the weights are normalised to the tree's events, the LHE cross
#: section is kept. ``"vetoed"``: the missing events were removed upstream (merging vetoes, event filters, failed
#: showers): the accepted cross section is ``n_tree / n_lhe`` of the LHE one.
MISSING_EVENTS = ("not_processed", "vetoed")


def count_lhe_events(path: str | os.PathLike) -> int:
    """Number of ``<event>`` blocks of a (gzipped) LHE file, counted by streaming its lines."""
    import gzip

    path = Path(path)
    with open(path, "rb") as raw:
        gz = raw.read(2) == b"\x1f\x8b"
    opener = gzip.open if gz else open
    n = 0
    with opener(path, "rb") as f:
        for line in f:
            if line.lstrip().startswith(b"<event"):
                n += 1
    return n


def _missing_events_factor(path: Path, n_tree: int, n_lhe: int, norm: str | float, missing: str | None) -> float:
    """Factor on the normalised weights for a tree with fewer events than its LHE file (see MISSING_EVENTS)."""
    if n_tree == n_lhe:
        return 1.0
    if n_tree > n_lhe:
        raise ValueError(f"{path}: the tree has {n_tree} events but its LHE file only {n_lhe}; wrong lhe_path?")
    if missing is None:
        logger.warning("%s: the Delphes tree has %d events, its LHE file %d (%.3g%%); normalising as if Delphes "
                       "processed only the first %d events (missing_events='not_processed'). If the other %d events "
                       "were vetoed upstream (merging, filters), the cross section is %.3g times smaller: set "
                       "missing_events='vetoed'", path, n_tree, n_lhe, 100.0 * n_tree / n_lhe, n_tree,
                       n_lhe - n_tree, n_lhe / n_tree)
        missing = "not_processed"
    else:
        logger.info("%s: tree %d events, LHE file %d; missing_events=%r", path, n_tree, n_lhe, missing)
    fraction = n_tree / n_lhe
    if missing == "vetoed":  # "average"/"xsec"/explicit cross sections normalise to the tree: scale down
        return 1.0 if norm == "sum" else fraction
    return 1.0 / fraction if norm == "sum" else 1.0  # "sum" of a subsample underestimates the total


def _require_uproot() -> Any:
    try:
        import uproot
    except ImportError as err:  # pragma: no cover - environment dependent
        raise ImportError(f"reading Delphes files needs uproot ({err}); install it with `pip install skminer[hep]`"
                          ) from err
    return uproot


def _open_tree(path: Path, tree: str) -> Any:
    uproot = _require_uproot()
    if not path.exists():
        raise FileNotFoundError(f"Delphes file {path} does not exist")
    try:
        f = uproot.open(path)
    except Exception as err:
        raise ValueError(f"{path}: not a readable ROOT file: {type(err).__name__}: {err}") from None
    try:
        t = f[tree]
    except Exception as err:
        raise ValueError(f"{path}: no tree {tree!r} ({type(err).__name__}: {err}); keys: {f.keys()}") from None
    return t


_SCALAR_BRANCHES = ("MissingET/MissingET.MET", "MissingET/MissingET.Phi", "ScalarHT/ScalarHT.HT",
                    "Event/Event.Weight", "Weight/Weight.Weight")


def _branch_names(keys: set[str]) -> list[str]:
    """The branches the reader uses that the tree has."""
    names = [f"{branch}/{branch}.{leaf}" for branch, fields in _BRANCHES.values() for leaf in fields.values()]
    return [nm for nm in (*names, *_SCALAR_BRANCHES) if nm in keys]


def _objects_from_arrays(arr: Mapping[str, Any], n: int, path: Path, first_event: int
                         ) -> tuple[EventObjects, dict[str, Any]]:
    """Objects and weights of ``n`` events from the branch arrays of :func:`_branch_names` (see
    :func:`read_delphes_objects`); ``first_event`` (0-based) numbers the events in messages."""
    ak, _ = require_hep()
    collections: dict[str, Any] = {}
    for name, (branch, fields) in _BRANCHES.items():
        if f"{branch}/{branch}.PT" not in arr:
            logger.debug("%s: no %s branch; collection %r left empty", path, branch, name)
            empty = ak.Array([[]] * n)
            collections[name] = make_vectors(empty, empty, empty, empty)
            continue
        get = {k: arr[f"{branch}/{branch}.{leaf}"] for k, leaf in fields.items() if f"{branch}/{branch}.{leaf}" in arr}
        mass = get.pop("mass", None)
        if mass is None:
            mass = get["pt"] * 0 + _MASSES[name]
        extra = {k: ak.values_astype(v, np.float64) for k, v in get.items() if k not in ("pt", "eta", "phi")}
        vecs = make_vectors(get["pt"], get["eta"], get["phi"], mass, **extra)
        collections[name] = vecs[ak.argsort(vecs.pt, axis=1, ascending=False)]
    lep = ak.concatenate([collections["e"], collections["mu"]], axis=1)
    collections["l"] = lep[ak.argsort(lep.pt, axis=1, ascending=False)]

    def first(name: str, missing: float) -> np.ndarray:
        return ak.to_numpy(ak.fill_none(ak.firsts(arr[name]), missing)).astype(np.float64)

    if "MissingET/MissingET.MET" in arr:
        met_pt, met_phi = first("MissingET/MissingET.MET", 0.0), first("MissingET/MissingET.Phi", 0.0)
    else:
        met_pt = met_phi = np.zeros(n)
    singletons = {"met": make_vectors(met_pt, np.zeros(n), met_phi, np.zeros(n))}
    scalars = {"ht": first("ScalarHT/ScalarHT.HT", 0.0)} if "ScalarHT/ScalarHT.HT" in arr else {}
    weights: dict[str, Any] = {"event": None, "all": None}
    if "Event/Event.Weight" in arr:
        weights["event"] = first("Event/Event.Weight", np.nan)
    if "Weight/Weight.Weight" in arr:
        ww = arr["Weight/Weight.Weight"]
        counts = ak.to_numpy(ak.num(ww, axis=1))
        if n and np.any(counts != counts[0]):
            bad = int(np.flatnonzero(counts != counts[0])[0])
            raise ValueError(f"{path}: event {first_event + bad + 1} has {counts[bad]} weights, event "
                             f"{first_event + 1} has {counts[0]}")
        weights["all"] = np.asarray(ak.to_numpy(ww), dtype=np.float64).reshape(n, -1) if n else np.zeros((0, 0))
    objects = EventObjects(n, collections, singletons, scalars).with_multiplicities(_ALIASES)
    return objects, weights


def iter_delphes_objects(path: str | os.PathLike, tree: str = "Delphes", chunk_events: int | None = None
                         ) -> Iterator[tuple[EventObjects, dict[str, Any]]]:
    """The reconstructed objects and weights of a Delphes file in chunks of events, read with ``uproot.iterate``.

    Parameters
    ----------
    path : path-like
    tree : str
    chunk_events : int, optional
        Events per chunk (default: all events in one chunk). The memory held is one chunk's branches.

    Yields
    ------
    objects, weights
        As :func:`read_delphes_objects`, for consecutive events; a tree without events yields one empty chunk.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file; not a ROOT file, no such tree, unreadable branches (naming the file), events with different
        numbers of weights.
    """
    path = Path(path)
    t = _open_tree(path, tree)
    names = _branch_names(set(t.keys()))
    n_total = int(t.num_entries)
    if n_total == 0:
        yield _objects_from_arrays({}, 0, path, 0)
        return
    step = n_total if chunk_events is None else int(chunk_events)
    if step < 1:
        raise ValueError(f"chunk_events must be a positive integer, got {chunk_events!r}")
    chunks = t.iterate(names, step_size=step, library="ak", how=dict)
    start = 0
    while True:
        try:
            arrays = next(chunks)
        except StopIteration:
            return
        except Exception as err:
            raise ValueError(f"{path}: cannot read branches {names} from event {start + 1} on (truncated or corrupt "
                             f"file?): {type(err).__name__}: {err}") from None
        n = len(next(iter(arrays.values()))) if arrays else min(step, n_total - start)
        yield _objects_from_arrays(arrays, n, path, start)
        start += n


def read_delphes_objects(path: str | os.PathLike, tree: str = "Delphes") -> tuple[EventObjects, dict[str, Any]]:
    """Read the reconstructed objects and weights of a Delphes file.

    Returns
    -------
    objects : EventObjects
        Collections ``j e mu a`` (those present in the file), ``l``; singleton ``met``; scalars ``ht`` and
        multiplicities.
    weights : dict
        ``"event"``: ``Event.Weight`` (n_events,) float64 or None; ``"all"``: ``Weight.Weight`` as a float64 array
        (n_events, n_weights) or None.
    """
    return next(iter_delphes_objects(path, tree))


class DelphesReader(_EventFileReader):
    """Read Delphes ROOT files into an :class:`~skminer.events.EventSet` (see the module docstring).

    Parameters
    ----------
    space : ParameterSpace
    benchmarks, weight_ids, morpher, morphing_basis, observables, cuts, smearer, systematics
        As for :class:`~skminer.simulation.lhe.LHEReader`. ``systematics`` needs the variation weight names, i.e.
        ``lhe_path`` or ``weight_names`` per sample.
    normalization : {"average", "sum", "xsec"} or float
        Default weight normalisation when a sample has no LHE file (``"xsec"`` needs one).
    tree : str
        Tree name.
    missing_events : {None, "not_processed", "vetoed"}
        What a tree with fewer events than its LHE file means for the normalisation (see :data:`MISSING_EVENTS`).
        ``None``: normalise as for ``"not_processed"`` and log a WARNING naming both counts.
    chunk_events : int
        Events read (``uproot.iterate``), cut and evaluated at a time: the memory held is one chunk's branches plus
        the selected events' observables and weights (or only one chunk with :meth:`read_to_file`). Extra smearing
        draws its random numbers chunk by chunk, so changing ``chunk_events`` changes smeared values.

    Examples
    --------
    >>> reader = DelphesReader(space)                                                   # doctest: +SKIP
    >>> reader.add_sample("delphes.root", "sm", lhe_path="unweighted_events.lhe.gz")   # doctest: +SKIP
    >>> reader.add_observable("m_aa", "(a[0] + a[1]).m").add_cut("len(a) >= 2")       # doctest: +SKIP
    >>> events = reader.read()                                                          # doctest: +SKIP
    """

    _source = "delphes"

    def __init__(self, space: ParameterSpace, *, benchmarks: Sequence[str] | None = None,
                 weight_ids: Mapping[str, str] | None = None, morpher: Morpher | None = None,
                 morphing_basis: Sequence[str] | None = None,
                 observables: Sequence[Observable | tuple] | Mapping[str, Any] | None = None,
                 cuts: Sequence[str | Cut | Callable[[EventObjects], Any]] | None = None,
                 smearer: Smearer | None = None, systematics: Any = None, normalization: str | float = "average",
                 tree: str = "Delphes", random_state: Any = None, missing_events: str | None = None,
                 chunk_events: int = 100_000) -> None:
        super().__init__(space, benchmarks=benchmarks, weight_ids=weight_ids, morpher=morpher,
                         morphing_basis=morphing_basis, observables=observables, cuts=cuts, smearer=smearer,
                         systematics=systematics)
        if missing_events not in (None, *MISSING_EVENTS):
            raise ValueError(f"missing_events must be None or one of {list(MISSING_EVENTS)}, got {missing_events!r}")
        self.missing_events = missing_events
        self.normalization = normalization
        self.tree = tree
        self.random_state = random_state
        if isinstance(chunk_events, bool) or not isinstance(chunk_events, int) or chunk_events < 1:
            raise ValueError(f"chunk_events must be a positive integer, got {chunk_events!r}")
        self.chunk_events = chunk_events

    def add_sample(self, path: str | os.PathLike, sampling_benchmark: str | None = None, *,
                   lhe_path: str | os.PathLike | None = None, weight_names: Sequence[str] | None = None,
                   process: str = "signal", is_background: bool = False, normalization: str | float | None = None,
                   k_factor: float = 1.0) -> DelphesReader:
        """Register a Delphes file.

        Parameters
        ----------
        path : path-like
        sampling_benchmark : str, optional
        lhe_path : path-like, optional
            The LHE file the events came from: weight names, normalisation and cross section.
        weight_names : sequence of str, optional
            Names of the ``Weight.Weight`` entries in order; a leading nominal entry may be omitted (then
            ``len(weight_names)`` is one less than the number of entries). Overrides names from ``lhe_path``.
        process, is_background, normalization, k_factor
            As in :meth:`skminer.simulation.lhe.LHEReader.add_sample`.
        """
        p = self._check_sample_args(path, sampling_benchmark, process, k_factor)
        options = {"lhe_path": None if lhe_path is None else Path(lhe_path),
                   "weight_names": None if weight_names is None else [str(w) for w in weight_names]}
        self.samples.append(_Sample(p, sampling_benchmark, process, bool(is_background), normalization,
                                    float(k_factor), options))
        return self

    def _names_from_lhe(self, lhe_path: Path) -> tuple[list[str], Any]:
        info = read_lhe_info(lhe_path)
        ids = info.weight_ids
        if not ids:  # no <initrwgt>: ids of the first event
            lhe = _open_lhe(lhe_path)
            for ev in lhe.events:
                ids = list(ev.weights)
                break
        return ids, info

    def _stream_sample(self, sample: _Sample, sink: _Sink) -> _StreamSummary:
        """One Delphes file in chunks of ``chunk_events`` (``uproot.iterate``): objects, weights, cuts and
        observables chunk by chunk; the normalisation factor is returned for the caller to apply."""
        path = sample.path
        t0 = time.perf_counter()
        n = int(_open_tree(path, self.tree).num_entries)
        if n == 0:
            raise ValueError(f"{path}: the tree {self.tree!r} has no events")
        lhe_path = sample.options.get("lhe_path")
        given = sample.options.get("weight_names")
        info = None
        lhe_names: list[str] | None = None
        if lhe_path is not None:
            lhe_names, info = self._names_from_lhe(lhe_path)
        names = given if given is not None else lhe_names
        norm_setting = self.normalization if sample.normalization is None else sample.normalization
        if info is not None:
            norm = info.resolve_normalization("auto" if sample.normalization is None else sample.normalization)
            xs = info.cross_section
        else:
            if norm_setting == "auto":
                norm_setting = "average"
            if norm_setting == "xsec":
                raise ValueError(f"{path}: normalization='xsec' needs the cross section: give lhe_path")
            if isinstance(norm_setting, str) and norm_setting not in ("average", "sum"):
                raise ValueError(f"normalization must be 'average', 'sum', 'xsec' or a cross section in pb, got "
                                 f"{norm_setting!r}")
            norm, xs = norm_setting, math.nan
        n_lhe = None if lhe_path is None else count_lhe_events(lhe_path)
        factor = 1.0 if n_lhe is None else _missing_events_factor(path, n, n_lhe, norm, self.missing_events)
        if factor != 1.0:  # a tree shorter than its LHE file (MISSING_EVENTS)
            sample = dataclasses.replace(sample, k_factor=sample.k_factor * factor)

        def chunks() -> Iterator[tuple[EventObjects, np.ndarray, dict[str, np.ndarray]]]:
            for objects, w in iter_delphes_objects(path, self.tree, self.chunk_events):
                yield (objects, *self._named_weights(path, w, names))

        meta = {"lhe_path": None if lhe_path is None else str(lhe_path), "n_lhe_events": n_lhe,
                "missing_events": self.missing_events,
                # float32 Weight.Weight of weights printed with 8 digits in the LHE file
                "weight_precision": PRECISION_FLOAT32 + (PRECISION_LHE if lhe_path is not None else 0.0)}
        summary = self._stream_named(chunks(), sample, path, lambda: (norm, xs, meta), "Event.Weight",
                                     "give lhe_path or weight_names", sink)
        logger.debug("%s: %d events processed in %.2f s", path, n, time.perf_counter() - t0)
        return summary

    @staticmethod
    def _named_weights(path: Path, w: Mapping[str, Any], names: Sequence[str] | None
                       ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The nominal weight and the named weights of one chunk."""
        nominal, all_w = w["event"], w["all"]
        if nominal is None:
            if all_w is None or all_w.shape[1] == 0:
                raise ValueError(f"{path}: no Event.Weight or Weight.Weight branch; cannot weight the events")
            nominal = all_w[:, 0]
        by_name: dict[str, np.ndarray] = {}
        if all_w is not None and names is not None:
            k = all_w.shape[1]
            if len(names) == k - 1:
                names = [NOMINAL, *names]
            if len(names) != k:
                raise ValueError(f"{path}: Weight.Weight has {k} entries per event but {len(names)} weight names "
                                 f"were given/derived ({list(names)[:10]}...)")
            by_name = {nm: all_w[:, i] for i, nm in enumerate(names) if nm != NOMINAL}
        elif names is not None and all_w is None:
            raise ValueError(f"{path}: weight names given but the file has no Weight.Weight branch")
        return nominal, by_name
