"""Parton showering of LHE files with Pythia 8 (``pythia8mc``) and HepMC3 event files (``pyhepmc``).

* :func:`shower_lhe` showers and hadronises an LHE file with Pythia 8 through the ``pythia8mc`` Python package and
  writes the events, with all LHE weights and their names, to a HepMC3 ASCII file (atomically). ``pythia8mc`` is an
  optional dependency (``pip install skminer[pythia]``), imported only when needed.
* :func:`write_hepmc` writes HEPEVT-like particle records to HepMC3 with pyhepmc; :func:`read_hepmc_objects`
  reads a HepMC (2 or 3) file into :class:`~skminer.simulation.observables.EventObjects` (final-state electrons
  ``e``, muons ``mu``, ``l``, photons ``a``, all visible final-state particles ``p``, ``met`` from the neutrinos)
  plus the named event weights, for observables and cuts at hadron level.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_write
from .hepmc import INVISIBLE_PIDS, missing_momentum, particle_vectors, read_hepmc_particles, require_pyhepmc
from .observables import EventObjects, require_hep

__all__ = ["HepMCRecord", "read_hepmc_objects", "shower_lhe", "write_hepmc"]

logger = logging.getLogger(__name__)


def _require_pythia() -> Any:
    try:
        import pythia8mc
    except ImportError as err:
        raise ImportError(f"showering needs Pythia 8's Python bindings, the pythia8mc package ({err}); install them "
                          f"with `pip install skminer[pythia]`") from err
    return pythia8mc


HepMCRecord = dict  #: keys px py pz e m pid status (arrays), optional parents (n, 2) zero-based, weights (list)


def write_hepmc(path: str | os.PathLike, records: Iterable[HepMCRecord], weight_names: Sequence[str] | None = None
                ) -> Path:
    """Write events to a HepMC3 ASCII file, atomically (temporary file renamed at the end).

    Parameters
    ----------
    path : path-like
        Output file (``.hepmc``; ``.gz`` is compressed by pyhepmc).
    records : iterable of dict
        Per event: float64 arrays ``px py pz e m``, int arrays ``pid status``, optional ``parents`` (shape
        ``(n, 2)``, zero-based inclusive index ranges, ``(-1, -1)`` for none) and ``weights`` (list of float).
    weight_names : sequence of str, optional
        Names of the weights (stored in the run info).

    Returns
    -------
    Path
    """
    pyhepmc = require_pyhepmc()
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"directory {path.parent} does not exist (for {path})")
    run_info = pyhepmc.GenRunInfo()
    if weight_names is not None:
        run_info.weight_names = list(weight_names)
    n = 0
    with atomic_write(path, suffix="".join(path.suffixes) or ".hepmc") as tmp:
        with pyhepmc.open(tmp, "w", format="HepMC3") as f:
            for i, rec in enumerate(records):
                ev = pyhepmc.GenEvent(pyhepmc.Units.GEV, pyhepmc.Units.MM)
                ev.run_info = run_info
                parents = rec.get("parents")
                ev.from_hepevt(i, *(np.asarray(rec[k], dtype=np.float64) for k in ("px", "py", "pz", "e", "m")),
                               np.asarray(rec["pid"], dtype=np.int32), np.asarray(rec["status"], dtype=np.int32),
                               parents=None if parents is None else np.asarray(parents, dtype=np.int32),
                               fortran=False)
                if rec.get("weights") is not None:
                    ev.weights = [float(w) for w in rec["weights"]]
                f.write(ev)
                n += 1
    logger.info("wrote %d events to %s", n, path)
    return path


def read_hepmc_objects(path: str | os.PathLike, max_events: int | None = None
                       ) -> tuple[EventObjects, np.ndarray, list[str]]:
    """Read a HepMC file into (unisolated) final-state particles and weights.

    For analysis objects (isolated leptons and photons, jets, b-tags) use
    :class:`~skminer.simulation.hepmc.HepMCReader` or :func:`~skminer.simulation.hepmc.hepmc_objects`.

    Returns
    -------
    objects : EventObjects
        ``e mu l a p`` collections (every final-state particle of that kind, status 1; ``p`` without the
        invisible particles), ``met`` singleton.
    weights : ndarray, shape (n_events, n_weights), float64
    weight_names : list of str
        From the run info (empty if the file names none).

    Raises
    ------
    ValueError
        If the file cannot be read (naming the file and the event).
    """
    ak, _ = require_hep()
    particles = read_hepmc_particles(path, max_events)
    final = particles.status == 1
    allp = particle_vectors(particles, final & ~np.isin(np.abs(particles.pid), INVISIBLE_PIDS))
    ap = abs(allp.pdgid)
    e, mu = allp[ap == 11], allp[ap == 13]
    lep = ak.concatenate([e, mu], axis=1)
    objects = EventObjects(particles.n_events, {"e": e, "mu": mu, "l": lep[ak.argsort(lep.pt, axis=1, ascending=False)],
                                                "a": allp[ap == 22], "p": allp},
                           {"met": missing_momentum(particles)}).with_multiplicities(
        {"nleptons": "l", "nphotons": "a"})
    return objects, particles.weights, particles.weight_names


def shower_lhe(lhe_path: str | os.PathLike, output: str | os.PathLike, *, n_events: int | None = None,
               settings: Sequence[str] = (), random_state: int | None = None) -> Path:
    """Shower and hadronise an LHE file with Pythia 8; write HepMC3 with the LHE weights and their names.

    Parameters
    ----------
    lhe_path : path-like
        Input ``.lhe``/``.lhe.gz``.
    output : path-like
        HepMC3 ASCII output (written atomically).
    n_events : int, optional
        Stop after this many events (default: all).
    settings : sequence of str
        Extra Pythia ``readString`` settings, e.g. ``["PartonLevel:MPI = off"]``.
    random_state : int, optional
        Pythia seed (``Random:seed``), in [0, 900000000].

    Raises
    ------
    ImportError
        If ``pythia8mc`` is not installed (``pip install skminer[pythia]``).
    RuntimeError
        If Pythia fails to initialise or aborts.
    """
    pythia8mc = _require_pythia()
    lhe_path = Path(lhe_path)
    if not lhe_path.exists():
        raise FileNotFoundError(f"LHE file {lhe_path} does not exist")
    pythia = pythia8mc.Pythia("", False)
    base = ["Beams:frameType = 4", f"Beams:LHEF = {lhe_path}", "Next:numberCount = 0"]
    if random_state is not None:
        base += ["Random:setSeed = on", f"Random:seed = {int(random_state)}"]
    for s in [*base, *settings]:
        if not pythia.readString(s):
            raise ValueError(f"Pythia rejected the setting {s!r}")
    if not pythia.init():
        raise RuntimeError(f"Pythia failed to initialise with {lhe_path}")
    names = list(pythia.info.weightNameVector()) if hasattr(pythia.info, "weightNameVector") else None

    def records() -> Iterable[HepMCRecord]:
        count = 0
        while n_events is None or count < n_events:
            if not pythia.next():
                if pythia.info.atEndOfFile():
                    return
                continue
            ev = pythia.event
            size = ev.size()
            arr = {k: np.empty(size - 1) for k in ("px", "py", "pz", "e", "m")}
            pid = np.empty(size - 1, dtype=np.int32)
            status = np.empty(size - 1, dtype=np.int32)
            parents = np.full((size - 1, 2), -1, dtype=np.int32)
            for i in range(1, size):  # entry 0 is the system
                p = ev[i]
                arr["px"][i - 1], arr["py"][i - 1], arr["pz"][i - 1] = p.px(), p.py(), p.pz()
                arr["e"][i - 1], arr["m"][i - 1] = p.e(), p.m()
                pid[i - 1] = p.id()
                status[i - 1] = 1 if p.isFinal() else (4 if p.status() == -12 else 2)
                m1, m2 = p.mother1(), p.mother2()
                if m1 > 0:
                    parents[i - 1] = (m1 - 1, (m2 if m2 >= m1 else m1) - 1)
            weights = [pythia.info.weightValueByIndex(k) for k in range(pythia.info.numberOfWeights())] \
                if hasattr(pythia.info, "weightValueByIndex") else [pythia.info.weight()]
            yield {**arr, "pid": pid, "status": status, "parents": parents, "weights": weights}
            count += 1

    out = write_hepmc(output, records(), weight_names=names)
    logger.info("Pythia: sigma = %.4g pb from %s", pythia.info.sigmaGen() * 1e9, lhe_path)
    return out
