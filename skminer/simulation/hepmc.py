"""Reading showered, hadronised HepMC (2 or 3, ASCII, optionally gzipped) events into an EventSet.

:class:`HepMCReader` reads the files with `pyhepmc <https://scikit-hep.org/pyhepmc>`_ and builds analysis objects
from the particle record (:mod:`~skminer.simulation.jets`): isolated electrons ``e``, muons ``mu``, ``l`` = e + mu
and photons ``a``; jets ``j`` clustered with FastJet (field ``btag`` from b hadrons in the record), ``b`` = the
b-tagged jets; ``p`` all visible final-state particles; the singleton ``met`` (vector sum of the invisible
final-state particles' transverse momenta: neutrinos, neutralino, gravitino) and the scalar ``ht`` (scalar pT sum
of the jets), plus multiplicities ``n_<collection>``, ``njets``, ``nleptons``, ... Observables, cuts, optional
smearing, morphing and nuisance parameters work as in :class:`~skminer.simulation.lhe.LHEReader`.

Weights are taken by name: HepMC3 files name their weights in the run info (Pythia 8 writes the LHE weight ids,
e.g. ``Weight, ymt_150, ...``), HepMC 2.06 files in the ``N`` line; the first weight is the nominal one.
Normalisation (``normalization``): ``"average"`` (default; the weights average to the cross section in pb, as
Pythia 8 writes them for MG5 LHE input), ``"sum"``, ``"xsec"`` (rescaled so that the nominal weights sum to the
``GenCrossSection`` of the file's last event, Pythia's final estimate) or a cross section in pb. All momenta are
converted to GeV.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..morphing import Morpher
from ..parameters import ParameterSpace
from .cuts import Cut
from .jets import ObjectDefinitions, cluster_jets, is_b_hadron, isolated, tag_b_jets
from .lhe import _ALIASES, NOMINAL, _EventFileReader, _Sample, _Sink, _StreamSummary
from .observables import EventObjects, Observable, make_vectors, require_hep
from .smearing import Smearer

__all__ = ["HepMCParticles", "HepMCReader", "hepmc_objects", "iter_hepmc_particles", "read_hepmc_particles"]

logger = logging.getLogger(__name__)

#: Invisible final-state particles: neutrinos, the lightest neutralino, the gravitino.
INVISIBLE_PIDS = (12, 14, 16, 1000022, 1000039)


def require_pyhepmc() -> Any:
    """Import ``pyhepmc`` (the ``hep`` extra) or raise an ImportError that says how to install it."""
    try:
        import pyhepmc
    except ImportError as err:  # pragma: no cover - environment dependent
        raise ImportError(f"HepMC I/O needs pyhepmc ({err}); install it with `pip install skminer[hep]`") from err
    return pyhepmc


@dataclass
class HepMCParticles:
    """The particle records of a HepMC file as flat arrays (all particles of event 0, then event 1, ...).

    Attributes
    ----------
    counts : ndarray, shape (n_events,)
        Particles per event.
    pid, status : ndarray of int, shape (n_particles,)
    px, py, pz, e, mass : ndarray of float64, shape (n_particles,)
        GeV.
    weights : ndarray, shape (n_events, n_weights)
    weight_names : list of str
        Empty when the file names none.
    cross_section : float
        ``GenCrossSection`` of the last event (pb), NaN when absent.
    """

    counts: np.ndarray
    pid: np.ndarray
    status: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    e: np.ndarray
    mass: np.ndarray
    weights: np.ndarray
    weight_names: list[str]
    cross_section: float

    @property
    def n_events(self) -> int:
        return int(self.counts.size)


def iter_hepmc_particles(path: str | os.PathLike, chunk_events: int | None = None, max_events: int | None = None
                         ) -> Iterator[HepMCParticles]:
    """The particle records (all statuses) and named weights of a HepMC file, streamed event by event in chunks.

    Parameters
    ----------
    path : path-like
        HepMC2 or HepMC3 ASCII file, ``.gz`` allowed (the format is detected by pyhepmc).
    chunk_events : int, optional
        Events per chunk (default: all events in one chunk). The memory held is one chunk's particles.
    max_events : int, optional
        Read at most this many events.

    Yields
    ------
    HepMCParticles
        Consecutive events; ``cross_section`` is the ``GenCrossSection`` of the last event read so far.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file cannot be parsed (naming the file and the event), has no events, or its events carry different
        numbers of weights.
    """
    pyhepmc = require_pyhepmc()
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"HepMC file {path} does not exist")
    if chunk_events is not None and (isinstance(chunk_events, bool) or int(chunk_events) < 1):
        raise ValueError(f"chunk_events must be a positive integer, got {chunk_events!r}")
    names: list[str] = []
    xs = math.nan
    n_read = 0
    n_weights: int | None = None
    with pyhepmc.open(path) as f:
        events = iter(f)
        while max_events is None or n_read < max_events:
            counts, blocks, weights = [], [], []
            try:
                for ev in events:
                    scale = 1.0 if ev.momentum_unit == pyhepmc.Units.GEV else 1e-3  # MeV files
                    p = ev.numpy.particles
                    cols = (p.pid, p.status, p.px, p.py, p.pz, p.e, p.generated_mass)
                    block = np.stack([np.asarray(c, dtype=np.float64) for c in cols], axis=1)
                    block[:, 2:] *= scale
                    blocks.append(block)
                    counts.append(block.shape[0])
                    weights.append(list(ev.weights))
                    if not names and ev.run_info is not None and ev.run_info.weight_names:
                        names = list(ev.run_info.weight_names)
                    if ev.cross_section is not None:
                        xs = float(ev.cross_section.xsec())
                    if len(counts) == chunk_events or n_read + len(counts) == max_events:
                        break
            except Exception as err:
                raise ValueError(f"{path}: cannot read HepMC event {n_read + len(counts) + 1}: "
                                 f"{type(err).__name__}: {err}") from None
            if not counts:
                break
            found = {len(w) for w in weights} | ({n_weights} if n_weights is not None else set())
            if len(found) > 1:
                raise ValueError(f"{path}: events have different numbers of weights ({sorted(found)})")
            n_weights = len(weights[0])
            if names and len(names) != n_weights:
                raise ValueError(f"{path}: the run info names {len(names)} weights but events carry {n_weights}")
            table = np.concatenate(blocks)
            yield HepMCParticles(np.asarray(counts, dtype=np.int64), table[:, 0].astype(np.int64),
                                 table[:, 1].astype(np.int64), table[:, 2], table[:, 3], table[:, 4], table[:, 5],
                                 table[:, 6], np.asarray(weights, dtype=np.float64).reshape(len(counts), -1),
                                 list(names), xs)
            n_read += len(counts)
    if n_read == 0:
        raise ValueError(f"{path}: no HepMC events found")


def read_hepmc_particles(path: str | os.PathLike, max_events: int | None = None) -> HepMCParticles:
    """Read every particle (all statuses) and the named weights of a HepMC file (one chunk of
    :func:`iter_hepmc_particles`).

    Parameters
    ----------
    path : path-like
        HepMC2 or HepMC3 ASCII file, ``.gz`` allowed (the format is detected by pyhepmc).
    max_events : int, optional
        Read at most this many events.

    Returns
    -------
    HepMCParticles

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`iter_hepmc_particles`.
    """
    return next(iter_hepmc_particles(path, max_events=max_events))


def particle_vectors(particles: HepMCParticles, mask: np.ndarray, with_index: bool = False) -> Any:
    """``Momentum4D`` records (fields ``pdgid``, ``charge``) of the selected particles, one list per event.

    Charges are those of the charged leptons (-1 for e-, mu-, tau-), 0 otherwise. Each event's list is sorted by
    decreasing pT. ``with_index`` adds the field ``index``: the particle's position in the flat arrays.
    """
    ak, _ = require_hep()
    event_of = np.repeat(np.arange(particles.n_events), particles.counts)[mask]
    cnt = np.bincount(event_of, minlength=particles.n_events)
    pid = particles.pid[mask]
    px, py, pz = particles.px[mask], particles.py[mask], particles.pz[mask]
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.arcsinh(np.divide(pz, pt, out=np.sign(pz) * np.inf, where=pt > 0))
    charge = np.where(np.isin(np.abs(pid), (11, 13, 15)), -np.sign(pid), 0).astype(np.float64)
    extra = {"pdgid": ak.unflatten(pid.astype(np.float64), cnt), "charge": ak.unflatten(charge, cnt)}
    if with_index:
        extra["index"] = ak.unflatten(np.flatnonzero(mask), cnt)
    vecs = make_vectors(*(ak.unflatten(a, cnt) for a in (pt, eta, np.arctan2(py, px),
                                                          np.maximum(particles.mass[mask], 0.0))), **extra)
    return vecs[ak.argsort(vecs.pt, axis=1, ascending=False)]


def missing_momentum(particles: HepMCParticles) -> Any:
    """Singleton ``met``: vector sum of the invisible final-state particles' transverse momenta."""
    ak, _ = require_hep()
    inv = particle_vectors(particles, (particles.status == 1) & np.isin(np.abs(particles.pid), INVISIBLE_PIDS))
    mpx, mpy = ak.to_numpy(ak.sum(inv.px, axis=1)), ak.to_numpy(ak.sum(inv.py, axis=1))
    n = particles.n_events
    return make_vectors(np.hypot(mpx, mpy), np.zeros(n), np.arctan2(mpy, mpx), np.zeros(n))


def hepmc_objects(particles: HepMCParticles, definitions: ObjectDefinitions | None = None,
                  random_state: Any = None) -> EventObjects:
    """Analysis objects of hadron-level events (see the module docstrings of this module and of ``jets``).

    Parameters
    ----------
    particles : HepMCParticles
    definitions : ObjectDefinitions, optional
        Jet, isolation and b-tagging settings (defaults: :class:`ObjectDefinitions`).
    random_state : int, Generator or None
        For b-tagging efficiencies below 1 and mistags.

    Returns
    -------
    EventObjects
        Collections ``e mu l a j b p``, singleton ``met``, scalars ``ht`` and multiplicities.
    """
    ak, _ = require_hep()
    d = ObjectDefinitions() if definitions is None else definitions
    rng = random_state if isinstance(random_state, np.random.Generator) else np.random.default_rng(random_state)
    apid = np.abs(particles.pid)
    final = particles.status == 1
    visible_mask = final & ~np.isin(apid, INVISIBLE_PIDS)
    vis = particle_vectors(particles, visible_mask, with_index=True)
    vis_aeta, vis_apid = abs(vis.eta), abs(vis.pdgid)
    chosen: dict[str, Any] = {}
    taken = np.zeros(apid.size, dtype=bool)
    for name, pid, pt_min, eta_max in (("e", 11, d.lepton_pt_min, d.lepton_eta_max),
                                       ("mu", 13, d.lepton_pt_min, d.lepton_eta_max),
                                       ("a", 22, d.photon_pt_min, d.photon_eta_max)):
        sel = (vis_apid == pid) & (vis.pt > pt_min) & (vis_aeta < eta_max)
        cand = vis[sel]
        iso = isolated(cand, vis, d.isolation_dr, d.isolation_max)
        chosen[name] = cand[iso]
        taken[ak.to_numpy(ak.flatten(cand[iso].index))] = True
    keep = ak.unflatten(~taken[ak.to_numpy(ak.flatten(vis.index))], ak.num(vis, axis=1))
    jets = cluster_jets(vis[keep], d)
    hadrons = particle_vectors(particles, is_b_hadron(particles.pid))
    jets = tag_b_jets(jets, hadrons, d, rng)
    lep = ak.concatenate([chosen["e"], chosen["mu"]], axis=1)
    collections = {"e": chosen["e"], "mu": chosen["mu"], "l": lep[ak.argsort(lep.pt, axis=1, ascending=False)],
                   "a": chosen["a"], "j": jets, "b": jets[jets.btag > 0.5],
                   "p": vis[[f for f in vis.fields if f != "index"]]}
    scalars = {"ht": ak.to_numpy(ak.sum(jets.pt, axis=1)).astype(np.float64)}
    objects = EventObjects(particles.n_events, collections, {"met": missing_momentum(particles)}, scalars)
    return objects.with_multiplicities(_ALIASES)


class HepMCReader(_EventFileReader):
    """Read HepMC files into an :class:`~skminer.events.EventSet` (see the module docstring).

    Parameters
    ----------
    space : ParameterSpace
    benchmarks, weight_ids, morpher, morphing_basis, observables, cuts, smearer, systematics
        As for :class:`~skminer.simulation.lhe.LHEReader`; weight ids are the HepMC weight names.
    objects : ObjectDefinitions or mapping, optional
        Jet clustering, isolation and b-tagging settings (:class:`~skminer.simulation.jets.ObjectDefinitions`).
    normalization : {"average", "sum", "xsec"} or float
        Default weight normalisation (see the module docstring).
    random_state : int, optional
        Seed of b-tagging efficiencies and of the smearer created by :meth:`set_smearing`.
    chunk_events : int
        Events parsed (event by event with pyhepmc), clustered, cut and evaluated at a time (a showered LHC event
        holds ~2000 particles: ~110 MiB of particle records per 1000 events): the memory held is one
        chunk's particles plus the selected events' observables and weights (or only one chunk with
        :meth:`read_to_file`). Random b-tagging and smearing draw chunk by chunk, so changing ``chunk_events``
        changes those draws.

    Examples
    --------
    >>> reader = HepMCReader(space, objects={"jet_radius": 0.4, "jet_pt_min": 25.0})   # doctest: +SKIP
    >>> reader.add_sample("tth.hepmc.gz", "sm")                                          # doctest: +SKIP
    >>> reader.add_observable("pt_b1", "b[0].pt").add_cut("len(b) >= 2")                # doctest: +SKIP
    >>> events = reader.read()                                                           # doctest: +SKIP
    """

    _source = "hepmc"

    def __init__(self, space: ParameterSpace, *, benchmarks: Sequence[str] | None = None,
                 weight_ids: Mapping[str, str] | None = None, morpher: Morpher | None = None,
                 morphing_basis: Sequence[str] | None = None,
                 observables: Sequence[Observable | tuple] | Mapping[str, Any] | None = None,
                 cuts: Sequence[str | Cut | Callable[[EventObjects], Any]] | None = None,
                 smearer: Smearer | None = None, systematics: Any = None,
                 objects: ObjectDefinitions | Mapping[str, Any] | None = None,
                 normalization: str | float = "average", random_state: Any = None,
                 chunk_events: int = 1_000) -> None:
        super().__init__(space, benchmarks=benchmarks, weight_ids=weight_ids, morpher=morpher,
                         morphing_basis=morphing_basis, observables=observables, cuts=cuts, smearer=smearer,
                         systematics=systematics)
        self.objects = objects if isinstance(objects, ObjectDefinitions) else ObjectDefinitions.from_mapping(
            objects, "HepMCReader objects")
        _check_normalization(normalization)
        self.normalization = normalization
        self.random_state = random_state
        self._rng = np.random.default_rng(random_state)
        if isinstance(chunk_events, bool) or not isinstance(chunk_events, int) or chunk_events < 1:
            raise ValueError(f"chunk_events must be a positive integer, got {chunk_events!r}")
        self.chunk_events = chunk_events

    def add_sample(self, path: str | os.PathLike, sampling_benchmark: str | None = None, *,
                   weight_names: Sequence[str] | None = None, process: str = "signal", is_background: bool = False,
                   normalization: str | float | None = None, k_factor: float = 1.0,
                   max_events: int | None = None) -> HepMCReader:
        """Register a HepMC file.

        Parameters
        ----------
        path : path-like
        sampling_benchmark : str, optional
        weight_names : sequence of str, optional
            Names of the event weights in order, for files that name none (overrides the file's names).
        process, is_background, normalization, k_factor
            As in :meth:`skminer.simulation.lhe.LHEReader.add_sample`.
        max_events : int, optional
            Read only the first events.
        """
        p = self._check_sample_args(path, sampling_benchmark, process, k_factor)
        if normalization is not None:
            _check_normalization(normalization)
        options = {"weight_names": None if weight_names is None else [str(w) for w in weight_names],
                   "max_events": max_events}
        self.samples.append(_Sample(p, sampling_benchmark, process, bool(is_background), normalization,
                                    float(k_factor), options))
        return self

    def _stream_sample(self, sample: _Sample, sink: _Sink) -> _StreamSummary:
        """One HepMC file streamed event by event in chunks of ``chunk_events``: objects, weights, cuts and
        observables chunk by chunk; the normalisation factor is returned for the caller to apply."""
        path = sample.path
        t0 = time.perf_counter()
        norm = self.normalization if sample.normalization is None else sample.normalization
        state = {"xs": math.nan, "n": 0}

        def chunks() -> Iterator[tuple[EventObjects, np.ndarray, dict[str, np.ndarray]]]:
            for particles in iter_hepmc_particles(path, self.chunk_events, sample.options.get("max_events")):
                names = sample.options.get("weight_names") or particles.weight_names
                k = particles.weights.shape[1]
                if k == 0:
                    raise ValueError(f"{path}: the events carry no weights")
                if names and len(names) != k:
                    raise ValueError(f"{path}: events carry {k} weights but {len(names)} weight names were given "
                                     f"({list(names)[:10]}...)")
                by_name = {nm: particles.weights[:, i] for i, nm in enumerate(names or []) if nm != NOMINAL}
                state["xs"], state["n"] = particles.cross_section, state["n"] + particles.n_events
                yield hepmc_objects(particles, self.objects, self._rng), particles.weights[:, 0], by_name

        def normalisation() -> tuple[str | float, float, dict[str, Any]]:
            xs = state["xs"]  # Pythia's final estimate: the last event's
            if norm == "xsec" and not (math.isfinite(xs) and xs > 0):
                raise ValueError(f"{path}: normalization='xsec' needs a GenCrossSection in the file (found {xs}); "
                                 f"use 'average', 'sum' or an explicit cross section in pb")
            return norm, xs, {"objects": self.objects.to_dict(), "cross_section_file": xs if math.isfinite(xs)
                              else None}

        summary = self._stream_named(chunks(), sample, path, normalisation, "nominal", "give weight_names", sink)
        logger.debug("%s: %d events processed in %.2f s", path, state["n"], time.perf_counter() - t0)
        return summary


def _check_normalization(value: Any) -> None:
    if isinstance(value, str):
        if value not in ("average", "sum", "xsec"):
            raise ValueError(f"normalization must be 'average', 'sum', 'xsec' or a cross section in pb, got {value!r}")
    elif isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"normalization as a cross section must be a positive number (pb), got {value!r}")
