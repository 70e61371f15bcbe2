"""Reading parton-level Les Houches event files (``.lhe`` / ``.lhe.gz``) into an :class:`~skminer.events.EventSet`.

:class:`LHEReader` reads one or several LHE files with `pylhe <https://github.com/scikit-hep/pylhe>`_, maps the
per-event weights of the ``<rwgt>``/``<weights>`` block (declared in the ``<initrwgt>`` header, e.g. by MG5's
reweighting module ``launch --rwgt_name=<name>``) to the benchmarks of a
:class:`~skminer.parameters.ParameterSpace`, builds parton-level objects, applies smearing and efficiencies
(:mod:`~skminer.simulation.smearing`), evaluates observables and cuts (:mod:`~skminer.simulation.observables`,
:mod:`~skminer.simulation.cuts`), optionally derives nuisance parameters from scale/PDF weights
(:mod:`~skminer.simulation.systematics`) and returns one :class:`~skminer.events.EventSet`.

Objects (final-state particles, status 1, each list sorted by decreasing pt; fields ``pdgid`` and ``charge``):
``e`` electrons, ``mu`` muons, ``l`` = e + mu, ``ta`` taus, ``a`` photons, ``j`` jets = quarks d..b and gluons,
``b`` b quarks, ``p`` all final-state particles (unsmeared); singleton ``met`` = vector sum of the neutrinos'
transverse momenta. Scalars ``n_<collection>`` and ``njets nleptons nelectrons nmuons nphotons``.

Weight normalisation (``normalization``) -- the EventSet contract is ``weights[:, b].sum()`` = cross section in pb:

* ``"average"``: the file's weights average to the cross section (MG5 ``event_norm = average``, the default of
  MG5 LO and NLO runs, and LHA ``IDWTUP = +-4``); every weight is divided by the number of events in the file
  (counted before cuts), so the weights of the file sum to the MC estimate of the cross section.
* ``"sum"``: the weights already sum to the cross section (MG5 ``event_norm = sum``); kept as they are.
* ``"xsec"``: arbitrary weights (e.g. unit weights of Pythia/Sherpa/Whizard, ``IDWTUP = +-3``, MG5
  ``event_norm = unity``); rescaled so that the nominal weights sum to the total cross section of the ``<init>``
  block.
* a float: rescaled so that the nominal weights sum to this cross section (pb).
* ``"auto"`` (default): MG5's ``event_norm`` from the run card in the header if present, else ``"average"`` for
  ``|IDWTUP| = 4`` and ``"xsec"`` for ``|IDWTUP| = 3``; anything else raises and asks for an explicit choice.

Several samples of the *same* ``process`` (e.g. generated at different sampling benchmarks) are averaged: the
weights of sample ``i`` are multiplied by ``N_i / sum_k N_k`` (``N`` = events read, before cuts), which is the
combined MC estimate of the cross section. Samples of *different* processes (signal, backgrounds) are summed.
"""

from __future__ import annotations

import dataclasses
import gzip
import logging
import math
import os
import re
import time
import uuid
import warnings
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..closure import PRECISION_LHE
from ..events import ChunkedEventSet, EventFileWriter, EventSet
from ..morphing import Morpher, parameter_scales
from ..parameters import ParameterSpace
from ._lhe_events import EventChunk, iter_event_chunks
from ._weight_checks import BenchmarkWeightStats, check_event_weights
from .cuts import Cut, CutFlow, DroppedEvents, apply_cuts, as_cuts
from .observables import EventObjects, Observable, as_observables, evaluate_observables, make_vectors, require_hep
from .smearing import ParticleSmearing, Smearer

__all__ = ["LHEReader", "LHEFileInfo", "read_lhe_info", "parse_reweight_points", "NOMINAL"]

logger = logging.getLogger(__name__)

#: Pseudo weight id meaning "the event's nominal weight" (XWGTUP of the event line).
NOMINAL = "nominal"

_JET_PIDS = (1, 2, 3, 4, 5, 21)
_NEUTRINO_PIDS = (12, 14, 16)
_CHARGED_LEPTON_PIDS = (11, 13, 15)
_ALIASES = {"njets": "j", "nleptons": "l", "nelectrons": "e", "nmuons": "mu", "nphotons": "a"}
_SET_PARAM = re.compile(r"set\s+(?:param_card\s+)?(\w+)\s+(\d+)\s+([-+0-9.eEdD]+)", re.IGNORECASE)
_EVENT_NORM = re.compile(r"^\s*(\w+)\s*=\s*event_norm\b", re.MULTILINE)


def _require_pylhe() -> Any:
    try:
        import pylhe
    except ImportError as err:  # pragma: no cover - environment dependent
        raise ImportError(f"reading LHE files needs pylhe ({err}); install it with `pip install skminer[hep]`"
                          ) from err
    return pylhe


# ---------------------------------------------------------------------------------------------------------------
# Header information
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class WeightInfo:
    """One weight declared in ``<initrwgt>``: id, description text, XML attributes and its group."""

    id: str
    text: str
    attributes: dict[str, str]
    group: str | None
    combine: str | None


@dataclass
class LHEFileInfo:
    """Header and ``<init>`` information of an LHE file (no events are read).

    Attributes
    ----------
    path : Path
    cross_section : float
        Sum of the process cross sections of the ``<init>`` block (pb).
    cross_section_error : float
    weighting_strategy : int
        LHA ``IDWTUP``.
    event_norm : str or None
        MG5 run card ``event_norm`` found in the header.
    weights : list of WeightInfo
        Declared weights in file order.
    header_text : str
        Text of the header's other elements (run card, banner, ...).
    """

    path: Path
    cross_section: float
    cross_section_error: float
    weighting_strategy: int
    event_norm: str | None
    weights: list[WeightInfo] = field(default_factory=list)
    header_text: str = ""

    @property
    def weight_ids(self) -> list[str]:
        """Declared weight ids in order."""
        return [w.id for w in self.weights]

    def groups(self) -> dict[str | None, list[WeightInfo]]:
        """Declared weights grouped by weight-group name (``None`` for weights outside groups)."""
        out: dict[str | None, list[WeightInfo]] = {}
        for w in self.weights:
            out.setdefault(w.group, []).append(w)
        return out

    def resolve_normalization(self, normalization: str | float) -> str | float:
        """Turn ``"auto"`` into ``"average"``, ``"sum"`` or ``"xsec"`` (see the module docstring)."""
        if not isinstance(normalization, str):
            value = float(normalization)
            if not math.isfinite(value):
                raise ValueError(f"{self.path}: normalization cross section must be finite, got {normalization!r}")
            return value
        if normalization in ("average", "sum", "xsec"):
            return normalization
        if normalization != "auto":
            raise ValueError(f"normalization must be 'auto', 'average', 'sum', 'xsec' or a cross section in pb, got "
                             f"{normalization!r}")
        if self.event_norm is not None:
            norm = self.event_norm.lower()
            if norm in ("average", "sum"):
                return norm
            if norm == "unity":
                return "xsec"
            raise ValueError(f"{self.path}: run card has event_norm = {self.event_norm!r}, which skminer does not "
                             f"interpret automatically; pass normalization='average', 'sum', 'xsec' or a cross "
                             f"section")
        if abs(self.weighting_strategy) == 4:
            return "average"
        if abs(self.weighting_strategy) == 3:
            return "xsec"
        raise ValueError(f"{self.path}: cannot infer the weight normalisation (IDWTUP = {self.weighting_strategy}, no "
                         f"event_norm in the header); pass normalization='average', 'sum', 'xsec' or a cross section")


def _element_text(el: Any) -> str:
    import xml.etree.ElementTree as ET

    try:
        return ET.tostring(el, encoding="unicode", method="text")
    except Exception:  # pragma: no cover - defensive
        return el.text or ""


def _open_lhe(path: Path) -> Any:
    pylhe = _require_pylhe()
    if not path.exists():
        raise FileNotFoundError(f"LHE file {path} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"LHE path {path} is a directory")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            lhe = pylhe.LHEFile.fromfile(str(path))
    except (ValueError, AttributeError, EOFError, OSError, zlib.error, gzip.BadGzipFile) as err:
        raise ValueError(f"{path}: not a readable LHE file (header/init): {type(err).__name__}: {err}") from None
    for w in caught:
        if "Parse Error" in str(w.message):
            raise ValueError(f"{path}: malformed LHE header/init block: {w.message}")
    return lhe


def _info_from(lhe: Any, path: Path) -> LHEFileInfo:
    init = lhe.init
    xs = float(sum(p.xSection for p in init.procInfo))
    err = float(math.sqrt(sum(p.error ** 2 for p in init.procInfo))) if init.procInfo else 0.0
    weights: list[WeightInfo] = []
    header_text = ""
    if lhe.header is not None:
        for entry in lhe.header.initrwgt.entries:
            if hasattr(entry, "weights"):
                gname = entry.name if entry.name is not None else entry.extra_attributes.get("type")
                for w in entry.weights:
                    weights.append(WeightInfo(w.id, w.name, dict(w.extra_attributes), gname, entry.combine))
            else:
                weights.append(WeightInfo(entry.id, entry.name, dict(entry.extra_attributes), None, None))
        header_text = "\n".join(_element_text(el) for el in lhe.header.extra_elements)
    text_all = header_text + "\n" + (lhe.comment or "")
    m = _EVENT_NORM.search(text_all)
    return LHEFileInfo(path, xs, err, int(init.initInfo.weightingStrategy), m.group(1) if m else None, weights,
                       header_text)


def read_lhe_info(path: str | os.PathLike) -> LHEFileInfo:
    """Read the header and ``<init>`` block of an LHE file (no events).

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file, or header/init block not readable (message names the file).
    """
    path = Path(path)
    lhe = _open_lhe(path)
    info = _info_from(lhe, path)
    close = getattr(lhe.events, "close", None)
    if close is not None:
        close()
    return info


def parse_reweight_points(info: LHEFileInfo) -> dict[str, dict[tuple[str, int], float]]:
    """Parameter settings of MG5 reweighting weights from their ``<initrwgt>`` descriptions.

    MG5 describes each reweighting point as lines ``set param_card <block> <id> <value> # orig: ...``.

    Returns
    -------
    dict
        ``{weight id: {(block (lower case), lha id): value}}`` for weights with such lines (a weight without
        lines, e.g. the SM point, maps to ``{}`` only if it belongs to an MG5 reweighting group).
    """
    out: dict[str, dict[tuple[str, int], float]] = {}
    for w in info.weights:
        settings = {(b.lower(), int(i)): float(v.replace("d", "e").replace("D", "e"))
                    for b, i, v in _SET_PARAM.findall(w.text)}
        if settings or (w.group or "").lower().startswith("mg_reweight"):
            out[w.id] = settings
    return out


# ---------------------------------------------------------------------------------------------------------------
# Event parsing
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class _RawEvents:
    """Particles and weights of all events of one file (flat particle arrays plus counts)."""

    n_events: int
    counts: np.ndarray
    pid: np.ndarray
    status: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    energy: np.ndarray
    mass: np.ndarray
    nominal: np.ndarray
    weights: dict[str, np.ndarray]


def _raw_events(chunk: EventChunk) -> _RawEvents:
    """The particles and weights of one chunk of events in the layout the object builders read."""
    table = chunk.particles
    return _RawEvents(n_events=chunk.n_events, counts=chunk.counts, pid=table[:, 0].astype(np.int64),
                      status=table[:, 1].astype(np.int64), px=table[:, 2], py=table[:, 3], pz=table[:, 4],
                      energy=table[:, 5], mass=table[:, 6], nominal=chunk.nominal, weights=chunk.weights)


def _parton_objects(raw: _RawEvents) -> EventObjects:
    """Build parton-level collections from the flat particle arrays (final state only)."""
    ak, _ = require_hep()
    final = raw.status == 1
    pid = raw.pid[final]
    px, py, pz = raw.px[final], raw.py[final], raw.pz[final]
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.arcsinh(np.divide(pz, pt, out=np.sign(pz) * np.inf, where=pt > 0))
    phi = np.arctan2(py, px)
    mass = np.maximum(raw.mass[final], 0.0)
    apid = np.abs(pid)
    charge = np.where(np.isin(apid, _CHARGED_LEPTON_PIDS), -np.sign(pid), 0.0).astype(np.float64)
    event_of = np.repeat(np.arange(raw.n_events), raw.counts)[final]
    counts = np.bincount(event_of, minlength=raw.n_events)
    allp = make_vectors(*(ak.unflatten(a, counts) for a in (pt, eta, phi, mass)),
                        pdgid=ak.unflatten(pid.astype(np.float64), counts), charge=ak.unflatten(charge, counts))
    allp = allp[ak.argsort(allp.pt, axis=1, ascending=False)]
    apid_j = abs(allp.pdgid)

    def select(mask: Any) -> Any:
        return allp[mask]

    collections = {
        "e": select(apid_j == 11), "mu": select(apid_j == 13), "ta": select(apid_j == 15),
        "a": select(apid_j == 22),
        "j": select((apid_j == 21) | ((apid_j >= 1) & (apid_j <= 5))),
        "b": select(apid_j == 5),
        "p": allp,
    }
    nu = allp[(apid_j == 12) | (apid_j == 14) | (apid_j == 16)]
    mpx, mpy = ak.to_numpy(ak.sum(nu.px, axis=1)), ak.to_numpy(ak.sum(nu.py, axis=1))
    met_pt = np.hypot(mpx, mpy)
    met = make_vectors(met_pt, np.zeros_like(met_pt), np.arctan2(mpy, mpx), np.zeros_like(met_pt))
    return EventObjects(raw.n_events, collections, {"met": met})


def _finish_objects(objects: EventObjects, smearer: Smearer | None) -> EventObjects:
    """Smear, then derive the lepton collection and multiplicities."""
    ak, _ = require_hep()
    if smearer is not None:
        objects = smearer.apply(objects)
    cols = dict(objects.collections)
    if "e" in cols and "mu" in cols and "l" not in cols:
        lep = ak.concatenate([cols["e"], cols["mu"]], axis=1)
        cols["l"] = lep[ak.argsort(lep.pt, axis=1, ascending=False)]
    out = EventObjects(objects.n_events, cols, dict(objects.singletons), dict(objects.scalars))
    return out.with_multiplicities(_ALIASES)


# ---------------------------------------------------------------------------------------------------------------
# Shared reader machinery
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class _Sample:
    path: Path
    sampling_benchmark: str | None
    process: str
    is_background: bool
    normalization: str | float | None
    k_factor: float
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class _SampleResult:
    """What one sample contributes before combination."""

    x: np.ndarray
    weights: np.ndarray  # (n_pass, n_benchmarks), normalised
    sampling: np.ndarray
    nuisance_a: np.ndarray | None
    nuisance_b: np.ndarray | None
    n_read: int
    cutflow: CutFlow
    process: str
    meta: dict[str, Any]
    removed: str = ""  # what removed events (DroppedEvents.describe)


@dataclass
class _StreamSummary:
    """What a streamed sample leaves after its chunks: the normalisation ``factor`` of all its weights (known only
    once every event was read), events read, the (already normalised) cut flow and the metadata."""

    n_read: int
    factor: float
    cutflow: CutFlow
    meta: dict[str, Any]
    removed: str = ""  # what removed events (DroppedEvents.describe)


#: Events per chunk when :meth:`_EventFileReader.read_to_file` copies the events into their file (a few MiB).
_COPY_CHUNK = 1 << 16

#: Receives each chunk of a streamed sample: ``(x, weights before the normalisation factor, nuisance_a, nuisance_b)``.
_Sink = Callable[[np.ndarray, np.ndarray, "np.ndarray | None", "np.ndarray | None"], None]


class _EventFileReader:
    """Observables, cuts, smearing, benchmark mapping and sample combination shared by the LHE/Delphes readers.

    A reader implements either ``_stream_sample(sample, sink)`` (chunk by chunk: :meth:`read_to_file` holds one
    chunk at a time) or ``_read_sample(sample)`` (a whole file at once); each defaults to the other.
    """

    _source = "events"

    def __init__(self, space: ParameterSpace, *, benchmarks: Sequence[str] | None = None,
                 weight_ids: Mapping[str, str] | None = None, morpher: Morpher | None = None,
                 morphing_basis: Sequence[str] | None = None,
                 observables: Sequence[Observable | tuple] | Mapping[str, Any] | None = None,
                 cuts: Sequence[str | Cut | Callable[[EventObjects], Any]] | None = None,
                 smearer: Smearer | None = None, systematics: Any = None) -> None:
        if not isinstance(space, ParameterSpace):
            raise TypeError(f"space must be a ParameterSpace, got {type(space).__name__}")
        self.space = space
        self.benchmarks = list(space.benchmark_names if benchmarks is None else benchmarks)
        if not self.benchmarks:
            raise ValueError("the parameter space has no benchmarks to read weights for")
        unknown = [b for b in self.benchmarks if b not in space.benchmarks]
        if unknown:
            raise ValueError(f"benchmarks {unknown} are not in the parameter space ({space.benchmark_names})")
        self.weight_ids = dict(weight_ids or {})
        bad = [b for b in self.weight_ids if b not in self.benchmarks]
        if bad:
            raise ValueError(f"weight_ids maps unknown benchmarks {bad}; benchmarks read: {self.benchmarks}")
        self.morpher = morpher
        self.morphing_basis = None if morphing_basis is None else list(morphing_basis)
        self.observables: list[Observable] = as_observables(observables or [])
        self.cuts: list[Cut] = as_cuts(cuts)
        self.smearer = smearer
        self.systematics = systematics
        self.samples: list[_Sample] = []
        self.cutflows: dict[str, CutFlow] = {}
        self.timings: dict[str, float] = {}

    # -- configuration ---------------------------------------------------------------------------------------
    def add_observable(self, name: str, definition: str | Callable[[EventObjects], Any], default: float = math.nan
                       ) -> _EventFileReader:
        """Add an observable (expression or callable); returns ``self``."""
        if name in [o.name for o in self.observables]:
            raise ValueError(f"observable {name!r} already defined")
        self.observables.append(Observable(name, definition, default))
        return self

    def add_cut(self, definition: str | Cut | Callable[[EventObjects], Any], name: str | None = None,
                pass_if_missing: bool = False) -> _EventFileReader:
        """Add a cut (ANDed with the others); returns ``self``."""
        self.cuts.append(definition if isinstance(definition, Cut) else Cut(definition, name, pass_if_missing))
        return self

    def set_smearing(self, name: str, rule: ParticleSmearing | None = None, **kwargs: Any) -> _EventFileReader:
        """Set the smearing/efficiency of object ``name`` (creates a seeded :class:`Smearer` if needed)."""
        if self.smearer is None:
            self.smearer = Smearer(random_state=getattr(self, "random_state", None))
        self.smearer.set(name, rule, **kwargs)
        return self

    def _check_sample_args(self, path: str | os.PathLike, sampling_benchmark: str | None, process: str,
                           k_factor: float) -> Path:
        if sampling_benchmark is not None and sampling_benchmark not in self.benchmarks:
            raise ValueError(f"sampling_benchmark {sampling_benchmark!r} is not among the benchmarks read "
                             f"{self.benchmarks}")
        if not isinstance(process, str) or not process:
            raise ValueError(f"process must be a non-empty string, got {process!r}")
        if not (math.isfinite(float(k_factor)) and float(k_factor) > 0):
            raise ValueError(f"k_factor must be positive and finite, got {k_factor!r}")
        return Path(path)

    # -- reading -----------------------------------------------------------------------------------------------
    def _read_sample(self, sample: _Sample) -> _SampleResult:
        """One sample in memory: its streamed chunks concatenated, normalised."""
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]] = []
        summary = self._stream_sample(sample, lambda *part: parts.append(part))
        x = np.concatenate([p[0] for p in parts])
        weights = np.concatenate([p[1] for p in parts])
        weights *= summary.factor  # in place: one copy of the sample's weights at a time
        a = None if parts[0][2] is None else np.concatenate([p[2] for p in parts])
        b = None if parts[0][3] is None else np.concatenate([p[3] for p in parts])
        sampling = np.full(x.shape[0], self._sampling_index(sample), dtype=np.int64)
        return _SampleResult(x, weights, sampling, a, b, summary.n_read, summary.cutflow, sample.process,
                             summary.meta, summary.removed)

    def _stream_sample(self, sample: _Sample, sink: _Sink) -> _StreamSummary:
        """One sample chunk by chunk: ``sink`` gets each chunk's selected events; returns the summary.

        The default reads the whole file (``_read_sample``) as one chunk.
        """
        r = self._read_sample(sample)
        sink(r.x, r.weights, r.nuisance_a, r.nuisance_b)
        return _StreamSummary(r.n_read, 1.0, r.cutflow, r.meta, r.removed)

    def _sampling_index(self, sample: _Sample) -> int:
        return (-1 if sample.sampling_benchmark is None or sample.is_background
                else self.benchmarks.index(sample.sampling_benchmark))

    def _benchmark_columns(self, sample: _Sample, available: Sequence[str], path: Path) -> list[str]:
        """Weight id (or NOMINAL) for each benchmark."""
        if sample.is_background:
            return [NOMINAL] * len(self.benchmarks)
        cols = []
        for b in self.benchmarks:
            if b in self.weight_ids:
                wid = self.weight_ids[b]
            elif b in available:
                wid = b
            elif b == sample.sampling_benchmark:
                wid = NOMINAL
            else:
                raise ValueError(f"{path}: no weight for benchmark {b!r}: the file's weight ids are "
                                 f"{list(available)[:30]}; map benchmarks to ids with weight_ids={{...}}, or "
                                 f"restrict benchmarks=[...]")
            if wid != NOMINAL and wid not in available:
                raise ValueError(f"{path}: weight id {wid!r} (for benchmark {b!r}) is not in the file; known ids: "
                                 f"{list(available)[:30]}")
            cols.append(wid)
        return cols

    def _process_objects(self, objects: EventObjects, weight_matrix: np.ndarray, nominal: np.ndarray,
                         raw_nominal: np.ndarray, raw_weights: Mapping[str, np.ndarray], sample: _Sample, path: Path,
                         dropped: DroppedEvents
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, CutFlow]:
        """Cuts, observables, finite filter, nuisance coefficients for one chunk of a sample.

        ``nominal`` is normalised (cut flow), ``raw_nominal`` and ``raw_weights`` are the weights as stored in the
        file (the nuisance coefficients use ratios of these); the events lost to cuts and undefined observables are
        counted in ``dropped`` (reported once per file).
        """
        if not self.observables:
            raise ValueError("no observables defined: use add_observable(name, expression) before read()")
        mask, flow = apply_cuts(self.cuts, objects, weights=nominal, dropped=dropped)
        sel = objects.subset(mask)
        x = evaluate_observables(self.observables, sel)
        finite = np.all(np.isfinite(x), axis=1)
        full = mask.copy()
        full[mask] = finite
        for k, o in enumerate(self.observables):
            dropped.add(f"observable {o.name!r}", int(np.sum(~np.isfinite(x[:, k]))), x.shape[0],
                        "where it is undefined (give it a default, {expression: ..., default: ...}, to keep them)")
        flow.add("finite observables", full, nominal)
        x = x[finite]
        weights = weight_matrix[full]
        a = b = None
        if self.systematics is not None:
            a, b = self.systematics.coefficients(raw_nominal[full], {k: v[full] for k, v in raw_weights.items()},
                                                 label=str(path))
        return x, weights, a, b, flow

    def _stream_named(self, chunks: Iterable[tuple[EventObjects, np.ndarray, Mapping[str, np.ndarray]]],
                      sample: _Sample, path: Path, normalisation: Callable[[], tuple[str | float, float, dict]],
                      nominal_label: str, names_hint: str, sink: _Sink) -> _StreamSummary:
        """Benchmark weights, smearing, cuts and observables of a sample of named raw weights, chunk by chunk.

        ``chunks`` yields ``(objects, nominal, by_name)`` with the weights as stored in the file; each chunk's
        selected events go to ``sink`` with their weights times ``k_factor``. ``normalisation()``, called once
        every chunk was read, returns the resolved normalisation, the cross section it may need and metadata;
        the returned summary carries the normalisation factor (a single number for the whole sample, so the events
        do not depend on the chunking, up to the rounding of the summed nominal weights for ``"xsec"`` or an
        explicit cross section). ``names_hint`` says how to supply missing weight names in error messages.
        """
        columns: list[str] | None = None
        flow: CutFlow | None = None
        dropped = DroppedEvents()
        stats = BenchmarkWeightStats()
        n_read, nominal_sum = 0, 0.0
        for objects, nominal, by_name in chunks:
            check_event_weights(path, nominal, by_name, nominal_label=nominal_label, first_event=n_read + 1)
            if columns is None:
                columns = self._benchmark_columns(sample, list(by_name), path)
                if self.systematics is not None:
                    missing = [i for i in self.systematics.weight_ids if i not in by_name]
                    if missing:
                        raise ValueError(f"{path}: systematics need weights {missing[:10]} that are not among the "
                                         f"named weights ({names_hint})")
            matrix = np.stack([nominal if c == NOMINAL else by_name[c] for c in columns], axis=1)
            stats.update(matrix)
            matrix *= sample.k_factor
            if self.smearer is not None:
                objects = self.smearer.apply(objects)
            x, weights, a, b, chunk_flow = self._process_objects(objects, matrix, nominal * sample.k_factor, nominal,
                                                                 by_name, sample, path, dropped)
            sink(x, weights, a, b)
            flow = chunk_flow if flow is None else flow.merge(chunk_flow)
            n_read += objects.n_events
            nominal_sum += float(nominal.sum())
        if columns is None:
            raise ValueError(f"{path}: no events")
        dropped.report(label=str(path))
        stats.check(path, self.benchmarks, columns)
        norm, xs, meta = normalisation()
        factor = _normalisation_factor(nominal_sum, n_read, norm, xs, path)
        info = {"path": str(path), **meta, "normalization": norm,
                "weight_ids": dict(zip(self.benchmarks, columns, strict=True)), "k_factor": sample.k_factor,
                "sampling_benchmark": sample.sampling_benchmark, "is_background": sample.is_background}
        return _StreamSummary(n_read, factor, _scaled_cutflow(flow, factor), info, dropped.describe())

    def _each_sample(self, read_one: Callable[[_Sample], Any]) -> list[Any]:
        """``read_one(sample)`` for every sample in order, timed, with cut flows logged and kept."""
        if not self.samples:
            raise ValueError("no samples added: call add_sample(path, ...) first")
        self.cutflows = {}
        results = []
        paths = [str(s.path) for s in self.samples]
        for i, sample in enumerate(self.samples):
            key = paths[i] if paths.count(paths[i]) == 1 else f"{paths[i]} (sample {i + 1})"
            ts = time.perf_counter()
            res = read_one(sample)
            dt = time.perf_counter() - ts
            self.timings[key] = dt
            logger.info("%s: read %d events in %.2f s (%.0f events/s)", sample.path, res.n_read, dt,
                        res.n_read / max(dt, 1e-9))
            self.cutflows[key] = res.cutflow
            res.cutflow.log(logger, label=key)
            results.append(res)
        if sum(r.cutflow.n_passed for r in results) == 0:  # an empty EventSet is never what was asked for
            why = "; ".join(f"{sample.path}: {r.removed}" for sample, r in zip(self.samples, results, strict=True)
                            if r.removed)
            raise ValueError(f"{why or 'the cuts and observables removed every event'}: no events left")
        return results

    def _combination_factors(self, results: Sequence[Any]) -> list[float]:
        """Average within a process (weights * N_i / N_process), sum across processes."""
        n_by_process: dict[str, int] = {}
        for sample, r in zip(self.samples, results, strict=True):
            n_by_process[sample.process] = n_by_process.get(sample.process, 0) + r.n_read
        return [r.n_read / n_by_process[sample.process] for sample, r in zip(self.samples, results, strict=True)]

    def _metadata(self, results: Sequence[Any], n_selected: Sequence[int]) -> dict[str, Any]:
        return {
            "source": self._source,
            "samples": [dict(r.meta, process=sample.process, n_read=r.n_read, n_selected=int(n))
                        for sample, r, n in zip(self.samples, results, n_selected, strict=True)],
            "cutflows": {k: v.to_dict() for k, v in self.cutflows.items()},
            "cuts": [c.name for c in self.cuts],
        }

    def _event_set(self, x: np.ndarray, weights: np.ndarray, sampling: Any, a: np.ndarray | None,
                   b: np.ndarray | None, metadata: dict[str, Any] | None = None) -> EventSet:
        space = self.space if self.systematics is None else self.systematics.add_to_space(self.space)
        return EventSet(x, weights, observable_names=[o.name for o in self.observables],
                        benchmark_names=self.benchmarks, space=space, morpher=self.morpher,
                        morphing_basis=self.morphing_basis, sampling_benchmark=sampling,
                        nuisance_names=[] if a is None else self.systematics.names, nuisance_a=a, nuisance_b=b,
                        observable_definitions=[o.definition for o in self.observables], metadata=metadata)

    def read(self) -> EventSet:
        """Read all samples and return the combined :class:`~skminer.events.EventSet`.

        Raises
        ------
        ValueError
            On bad input, naming the file (and the event where applicable). Nothing is written. Also when the
            cuts and undefined observables leave no event in any sample, naming what removed them (an observable
            with a ``default`` keeps the events that lack its object).
        """
        t0 = time.perf_counter()
        results = self._each_sample(self._read_sample)
        sets = []
        for r, factor in zip(results, self._combination_factors(results), strict=True):
            r.weights *= factor  # the reader's own array, scaled in place
            sets.append(self._event_set(r.x, r.weights, r.sampling, r.nuisance_a, r.nuisance_b))
        combined = EventSet.combine(sets, mode="sum") if len(sets) > 1 else sets[0]
        out = combined._replace(metadata=self._metadata(results, [r.x.shape[0] for r in results]))
        logger.info("read %d samples, %d events in %.2f s", len(results), out.n_events, time.perf_counter() - t0)
        return out

    def save(self, path: str | os.PathLike) -> EventSet:
        """Read all samples and write the EventSet atomically to ``path`` (nothing is written on failure)."""
        events = self.read()
        events.save(path)
        return events

    def read_to_file(self, path: str | os.PathLike, *, compression: str | None = "gzip") -> ChunkedEventSet:
        """Read all samples chunk by chunk into the event file ``path`` (out of core) and open it.

        The memory held is about one chunk of events (``chunk_events`` for LHE files), whatever the files' sizes:
        the selected events of each chunk go to a temporary file beside ``path`` with their weights as read; the
        normalisation of each sample, known once it was read to the end, is applied while copying them into
        ``path``. The file holds exactly the events of :meth:`read` (``EventSet.open(path).load()`` equals
        ``read()``). Written atomically; the temporary file is removed.

        Returns
        -------
        ChunkedEventSet

        Raises
        ------
        ValueError
            As :meth:`read`; nothing is written at ``path``.
        """
        t0 = time.perf_counter()
        path = Path(path)
        raw_path = path.with_name(f".{path.name}.raw-{uuid.uuid4().hex}.h5")
        ranges: list[tuple[int, int]] = []
        try:
            with EventFileWriter(raw_path, compression=None) as raw:
                def read_one(sample: _Sample) -> _StreamSummary:
                    start, index = raw.n_events, self._sampling_index(sample)

                    def sink(x: np.ndarray, w: np.ndarray, a: np.ndarray | None, b: np.ndarray | None) -> None:
                        raw.append(self._event_set(x, w, np.full(x.shape[0], index, dtype=np.int64), a, b))

                    summary = self._stream_sample(sample, sink)
                    ranges.append((start, raw.n_events))
                    return summary

                results = self._each_sample(read_one)
            factors = self._combination_factors(results)
            raw_set = EventSet.open(raw_path, chunk_events=_COPY_CHUNK)
            with EventFileWriter(path, compression=compression) as out:
                for first, chunk in zip(range(0, raw_set.n_events, raw_set.chunk_events), raw_set.iter_chunks(),
                                        strict=True):
                    rows = first + np.arange(chunk.n_events)
                    sample_of = np.searchsorted([stop for _, stop in ranges], rows, side="right")
                    normalised = chunk.weights * np.array([r.factor for r in results])[sample_of][:, None]
                    out.append(chunk._replace(weights=normalised * np.array(factors)[sample_of][:, None]))
                out.set_metadata(self._metadata(results, [stop - start for start, stop in ranges]))
        finally:
            raw_path.unlink(missing_ok=True)
        logger.info("read %d samples, %d events into %s in %.2f s", len(results), out.n_events, path,
                    time.perf_counter() - t0)
        return EventSet.open(path)


def _normalisation_factor(nominal_sum: float, n_events: int, norm: str | float, info_xs: float, path: Path
                          ) -> float:
    """The one factor that turns a file's raw weights into pb per event (see the module docstring)."""
    if norm == "average":
        return 1.0 / n_events
    if norm == "sum":
        return 1.0
    target = info_xs if norm == "xsec" else float(norm)
    if nominal_sum == 0:
        raise ValueError(f"{path}: nominal weights sum to zero; cannot normalise to a cross section")
    if norm == "xsec" and not (math.isfinite(target) and target > 0):
        raise ValueError(f"{path}: the <init> block's cross section is {target!r}; pass normalization='average', "
                         f"'sum' or an explicit cross section")
    return target / nominal_sum


def _scaled_cutflow(flow: CutFlow, factor: float) -> CutFlow:
    """``flow`` with its summed weights multiplied by ``factor`` (efficiencies are ratios and stay)."""
    return CutFlow(flow.n_initial, flow.sum_weights_initial * factor,
                   [dataclasses.replace(step, sum_weights=step.sum_weights * factor) for step in flow.steps])


class LHEReader(_EventFileReader):
    """Read LHE files into an :class:`~skminer.events.EventSet` (see the module docstring).

    Parameters
    ----------
    space : ParameterSpace
        Parameters and benchmarks; the EventSet has one weight column per benchmark in ``benchmarks``.
    benchmarks : sequence of str, optional
        Benchmarks to read (default: all of ``space``).
    weight_ids : mapping of str to str, optional
        ``{benchmark: weight id}`` where they differ (default: a benchmark's weight id is its name, as with
        ``launch --rwgt_name=<name>``; the sampling benchmark without such a weight uses the nominal event weight).
        Use :data:`NOMINAL` for the nominal weight.
    morpher, morphing_basis
        Passed to the EventSet.
    observables : Observables or mapping, optional
        Also addable with :meth:`add_observable`.
    cuts : sequence, optional
        Also addable with :meth:`add_cut`.
    smearer : Smearer, optional
        Detector response for the parton-level objects (``e mu ta a j b met``); or use :meth:`set_smearing`.
    systematics : Systematics, optional
        Nuisance parameters from scale/PDF weights (:class:`~skminer.simulation.systematics.Systematics`).
    normalization : {"auto", "average", "sum", "xsec"} or float
        Default weight normalisation of the samples.
    check_benchmarks : bool
        Compare the benchmark values of ``space`` with MG5 reweighting descriptions (``set param_card <block>
        <id> <value>``) for parameters with LHA block/id; a mismatch raises.
    random_state : int, optional
        Seed of the smearer created by :meth:`set_smearing`.
    chunk_events : int
        Events parsed, smeared, cut and evaluated at a time: the memory held while reading is that of one chunk
        plus the selected events' observables and weights, whatever the file's size. Smearing draws its random
        numbers chunk by chunk, so changing ``chunk_events`` changes smeared values (not their distribution).

    Examples
    --------
    >>> reader = LHEReader(space)                                                   # doctest: +SKIP
    >>> reader.add_sample("unweighted_events.lhe.gz", sampling_benchmark="sm")      # doctest: +SKIP
    >>> reader.add_observable("pt_j1", "j[0].pt").add_cut("len(a) >= 2")           # doctest: +SKIP
    >>> events = reader.save("events.h5")                                           # doctest: +SKIP
    """

    _source = "lhe"

    def __init__(self, space: ParameterSpace, *, benchmarks: Sequence[str] | None = None,
                 weight_ids: Mapping[str, str] | None = None, morpher: Morpher | None = None,
                 morphing_basis: Sequence[str] | None = None,
                 observables: Sequence[Observable | tuple] | Mapping[str, Any] | None = None,
                 cuts: Sequence[str | Cut | Callable[[EventObjects], Any]] | None = None,
                 smearer: Smearer | None = None, systematics: Any = None, normalization: str | float = "auto",
                 check_benchmarks: bool = True, random_state: Any = None, chunk_events: int = 10_000) -> None:
        super().__init__(space, benchmarks=benchmarks, weight_ids=weight_ids, morpher=morpher,
                         morphing_basis=morphing_basis, observables=observables, cuts=cuts, smearer=smearer,
                         systematics=systematics)
        self.normalization = normalization
        self.check_benchmarks = check_benchmarks
        self.random_state = random_state
        if isinstance(chunk_events, bool) or not isinstance(chunk_events, int) or chunk_events < 1:
            raise ValueError(f"chunk_events must be a positive integer, got {chunk_events!r}")
        self.chunk_events = chunk_events

    def add_sample(self, path: str | os.PathLike, sampling_benchmark: str | None = None, *,
                   process: str = "signal", is_background: bool = False, normalization: str | float | None = None,
                   k_factor: float = 1.0) -> LHEReader:
        """Register an LHE file.

        Parameters
        ----------
        path : path-like
            ``.lhe`` or ``.lhe.gz``.
        sampling_benchmark : str, optional
            Benchmark the events were generated at (stored in ``EventSet.sampling_benchmark``).
        process : str
            Samples of the same process are averaged, different processes summed.
        is_background : bool
            Theta-independent sample: every benchmark column gets the nominal weight.
        normalization : optional
            Overrides the reader's ``normalization`` for this file.
        k_factor : float
            Multiplies all weights.
        """
        p = self._check_sample_args(path, sampling_benchmark, process, k_factor)
        self.samples.append(_Sample(p, sampling_benchmark, process, bool(is_background), normalization,
                                    float(k_factor)))
        return self

    def _check_points(self, info: LHEFileInfo, columns: Sequence[str]) -> None:
        if not self.check_benchmarks:
            return
        points = parse_reweight_points(info)
        index = {(p.lha_block.lower(), p.lha_id): k for k, p in enumerate(self.space.parameters)
                 if p.lha_block is not None and p.lha_id is not None}
        scale = parameter_scales(self.space.benchmark_values)  # zero matches to 1e-6 of the parameter's scale
        for bench, wid in zip(self.benchmarks, columns, strict=True):
            if wid not in points:
                continue
            values = self.space.benchmark(bench)
            for key, value in points[wid].items():
                if key in index and not math.isclose(values[index[key]], value, rel_tol=1e-6,
                                                     abs_tol=1e-6 * scale[index[key]]):
                    name = self.space.parameters[index[key]].name
                    raise ValueError(f"{info.path}: weight {wid!r} sets {key[0]} {key[1]} = {value}, but benchmark "
                                     f"{bench!r} has {name} = {values[index[key]]}; check weight_ids / the "
                                     f"parameter space")

    def _stream_sample(self, sample: _Sample, sink: _Sink) -> _StreamSummary:
        """One LHE file, streamed in chunks of ``chunk_events``: each chunk is turned into objects, smeared, cut and
        evaluated, and only the selected events' observables and weights go to ``sink``; the file's normalisation
        (a single factor, known once every event was read) is returned for the caller to apply."""
        path = sample.path
        info = read_lhe_info(path)  # header and <init> with pylhe; the events are streamed by _lhe_events
        norm = info.resolve_normalization(self.normalization if sample.normalization is None
                                          else sample.normalization)
        declared = info.weight_ids
        # weight ids: from <initrwgt>, else from the first event
        columns = self._benchmark_columns(sample, declared, path) if declared else None
        syst_ids = list(self.systematics.weight_ids) if self.systematics is not None else []
        needed: list[str] | None = None
        if declared:
            missing = [w for w in syst_ids if w not in declared]
            if missing:
                raise ValueError(f"{path}: systematics need weight ids {missing[:10]} that the file does not declare "
                                 f"(declared: {declared[:20]})")
            needed = sorted({c for c in columns if c != NOMINAL} | set(syst_ids), key=declared.index)
            self._check_points(info, columns)
        flow: CutFlow | None = None
        dropped = DroppedEvents()
        stats = BenchmarkWeightStats()
        n_read, nominal_sum = 0, 0.0
        for chunk in iter_event_chunks(path, declared=declared, needed=needed, chunk_events=self.chunk_events):
            check_event_weights(path, chunk.nominal, chunk.weights, first_event=chunk.first_event)
            if columns is None:
                columns = self._benchmark_columns(sample, list(chunk.weights), path)
                self._check_points(info, columns)
            raw = _raw_events(chunk)
            matrix = np.stack([raw.nominal if c == NOMINAL else raw.weights[c] for c in columns], axis=1)
            stats.update(matrix)
            objects = _finish_objects(_parton_objects(raw), self.smearer)
            x, weights, a, b, chunk_flow = self._process_objects(objects, matrix * sample.k_factor,
                                                                 raw.nominal * sample.k_factor, raw.nominal,
                                                                 raw.weights, sample, path, dropped)
            sink(x, weights, a, b)
            flow = chunk_flow if flow is None else flow.merge(chunk_flow)
            n_read += chunk.n_events
            nominal_sum += float(chunk.nominal.sum())
        dropped.report(label=str(path))
        stats.check(path, self.benchmarks, columns)
        factor = _normalisation_factor(nominal_sum, n_read, norm, info.cross_section, path)
        meta = {"path": str(path), "normalization": norm, "cross_section_init": info.cross_section,
                "weight_precision": PRECISION_LHE,  # MG5 prints weights with 8 significant digits
                "weight_ids": dict(zip(self.benchmarks, columns, strict=True)), "k_factor": sample.k_factor,
                "sampling_benchmark": sample.sampling_benchmark, "is_background": sample.is_background}
        return _StreamSummary(n_read, factor, _scaled_cutflow(flow, factor), meta, dropped.describe())
