"""Hadron-level object definitions: jet clustering, isolation and b-tagging from a generator's particle record.

A showered and hadronised event (HepMC) holds ~1000 final-state particles, most of them soft photons from
``pi0`` decays and hadrons. Analysis objects are built from them as in a truth-level (Rivet-style) analysis:

* **Isolated leptons and photons**: final-state electrons, muons and photons above ``lepton_pt_min`` /
  ``photon_pt_min`` inside ``|eta| < lepton_eta_max`` / ``photon_eta_max`` whose isolation,
  the scalar pT sum of the other visible final-state particles within ``Delta R < isolation_dr`` divided by
  their own pT, is below ``isolation_max``. Leptons and photons from hadron decays sit inside jets and fail.
* **Jets**: the visible final-state particles (neutrinos and the isolated leptons and photons removed) clustered
  with FastJet (``fastjet`` Python package, arXiv:1111.6097) with the anti-kt algorithm (arXiv:0802.1189) of
  radius ``jet_radius`` (or kt / Cambridge-Aachen), keeping jets with ``pt > jet_pt_min`` and
  ``|eta| < jet_eta_max``.
* **b-tagging**: a jet is b-tagged (field ``btag`` = 1) when a b hadron (PDG id with a b quark, any status,
  ``pt > btag_hadron_pt_min``) lies within ``Delta R < btag_dr`` of its axis; ``btag_efficiency`` and
  ``mistag_rate`` turn the truth label into a tag with those probabilities (drawn with the reader's seed).

All momenta in GeV. The defaults follow common LHC truth-level choices (jets anti-kt R = 0.4, pT > 20 GeV;
leptons and photons pT > 10 GeV, ``|eta| < 2.5``, relative isolation < 0.15 in a cone of 0.3).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from .observables import make_vectors, require_hep

__all__ = ["ObjectDefinitions", "cluster_jets", "is_b_hadron", "isolated", "tag_b_jets"]

_ALGORITHMS = {"antikt": "antikt_algorithm", "kt": "kt_algorithm", "cambridge": "cambridge_algorithm"}


def _require_fastjet() -> Any:
    try:
        import fastjet
    except ImportError as err:  # pragma: no cover - environment dependent
        raise ImportError(f"jet clustering needs the fastjet package ({err}); install it with "
                          f"`pip install skminer[hep]`") from err
    return fastjet


@dataclass(frozen=True)
class ObjectDefinitions:
    """Thresholds and algorithms that turn a particle record into analysis objects (see the module docstring).

    Parameters
    ----------
    jet_algorithm : {"antikt", "kt", "cambridge"}
    jet_radius : float
        Jet radius R (> 0).
    jet_pt_min, jet_eta_max : float
        Jet selection (GeV; pseudorapidity).
    lepton_pt_min, lepton_eta_max, photon_pt_min, photon_eta_max : float
        Candidate selection before isolation (GeV; pseudorapidity).
    isolation_dr : float
        Isolation cone Delta R.
    isolation_max : float
        Largest relative isolation (scalar pT sum in the cone / candidate pT) of an isolated object.
    btag_dr : float
        Largest Delta R between a jet and a b hadron for a b-tag.
    btag_hadron_pt_min : float
        Smallest pT (GeV) of a b hadron used for tagging.
    btag_efficiency, mistag_rate : float
        Probability to tag a b jet and a non-b jet (1 and 0: the truth label).
    """

    jet_algorithm: str = "antikt"
    jet_radius: float = 0.4
    jet_pt_min: float = 20.0
    jet_eta_max: float = 5.0
    lepton_pt_min: float = 10.0
    lepton_eta_max: float = 2.5
    photon_pt_min: float = 10.0
    photon_eta_max: float = 2.5
    isolation_dr: float = 0.3
    isolation_max: float = 0.15
    btag_dr: float = 0.3
    btag_hadron_pt_min: float = 5.0
    btag_efficiency: float = 1.0
    mistag_rate: float = 0.0

    def __post_init__(self) -> None:
        if self.jet_algorithm not in _ALGORITHMS:
            raise ValueError(f"jet_algorithm must be one of {sorted(_ALGORITHMS)}, got {self.jet_algorithm!r}")
        for f in fields(self):
            if f.name == "jet_algorithm":
                continue
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"object definition {f.name} must be a finite non-negative number, got {value!r}")
            object.__setattr__(self, f.name, float(value))
        for name in ("jet_radius", "isolation_dr", "btag_dr"):
            if getattr(self, name) <= 0:
                raise ValueError(f"object definition {name} must be positive, got {getattr(self, name)}")
        for name in ("btag_efficiency", "mistag_rate"):
            if getattr(self, name) > 1:
                raise ValueError(f"object definition {name} is a probability, got {getattr(self, name)}")

    @classmethod
    def from_mapping(cls, values: dict[str, Any] | None, source: str = "objects") -> ObjectDefinitions:
        """Build from a mapping (e.g. the ``objects`` section of a configuration), naming unknown keys."""
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{source}: unknown object definitions {unknown}; known: {sorted(known)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The definitions as a JSON-serialisable dict."""
        return asdict(self)


def is_b_hadron(pid: np.ndarray) -> np.ndarray:
    """Whether PDG ids are hadrons containing a b quark (B mesons ``5xx``, bottomonia, b baryons ``5xxx``).

    Parameters
    ----------
    pid : ndarray of int

    Returns
    -------
    ndarray of bool, same shape
    """
    a = np.abs(np.asarray(pid, dtype=np.int64)) % 10000  # drop the excitation digits n nr
    hadron = a >= 100
    q1, q2, q3 = (a // 1000) % 10, (a // 100) % 10, (a // 10) % 10  # quark digits, ordered heaviest first
    meson_b = (q1 == 0) & (q2 == 5)
    baryon_b = (q1 == 5) & (q3 > 0)  # q3 = 0: a diquark, not a hadron
    return hadron & (meson_b | baryon_b)


def _delta_r(eta1: Any, phi1: Any, eta2: Any, phi2: Any) -> Any:
    dphi = (phi1 - phi2 + np.pi) % (2 * np.pi) - np.pi
    return np.sqrt((eta1 - eta2) ** 2 + dphi ** 2)


def isolated(candidates: Any, particles: Any, dr: float, max_relative: float) -> Any:
    """Mask of candidates whose relative isolation is below ``max_relative``.

    Parameters
    ----------
    candidates : awkward.Array (n_events * var), records with ``pt eta phi``
        Candidates; each must also be among ``particles`` (its own pT is subtracted from the cone sum).
    particles : awkward.Array (n_events * var)
        Visible final-state particles of the same events.
    dr : float
        Cone size Delta R.
    max_relative : float
        Largest (cone pT sum - own pT) / own pT.

    Returns
    -------
    awkward.Array of bool, same structure as ``candidates``
    """
    ak, _ = require_hep()
    pairs = ak.cartesian({"c": candidates[["pt", "eta", "phi"]], "p": particles[["pt", "eta", "phi"]]},
                         nested=True)
    d = _delta_r(pairs.c.eta, pairs.c.phi, pairs.p.eta, pairs.p.phi)
    cone = ak.sum(ak.where(d < dr, pairs.p.pt, 0.0), axis=2) - candidates.pt
    return cone < max_relative * candidates.pt


def cluster_jets(particles: Any, definitions: ObjectDefinitions) -> Any:
    """Cluster particles into jets with FastJet.

    Parameters
    ----------
    particles : awkward.Array (n_events * var) of ``Momentum4D`` records
    definitions : ObjectDefinitions
        Algorithm, radius and the jet pT and pseudorapidity selection.

    Returns
    -------
    awkward.Array (n_events * var)
        ``Momentum4D`` jets (pt, eta, phi, mass) sorted by decreasing pT.
    """
    ak, _ = require_hep()
    fastjet = _require_fastjet()
    n = len(particles)
    if n == 0 or len(ak.flatten(particles)) == 0:
        empty = ak.Array([[]] * n)
        return make_vectors(empty, empty, empty, empty)
    inputs = ak.zip({"px": particles.px, "py": particles.py, "pz": particles.pz, "E": particles.E},
                    with_name="Momentum4D")
    jet_def = fastjet.JetDefinition(getattr(fastjet, _ALGORITHMS[definitions.jet_algorithm]), definitions.jet_radius)
    raw = fastjet.ClusterSequence(inputs, jet_def).inclusive_jets(min_pt=definitions.jet_pt_min)
    counts = ak.to_numpy(ak.num(raw, axis=1))
    flat = {k: ak.to_numpy(ak.flatten(raw[k])).astype(np.float64) for k in ("px", "py", "pz", "E")}
    pt = np.hypot(flat["px"], flat["py"])
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.arcsinh(np.divide(flat["pz"], pt, out=np.sign(flat["pz"]) * np.inf, where=pt > 0))
    mass = np.sqrt(np.clip(flat["E"] ** 2 - flat["px"] ** 2 - flat["py"] ** 2 - flat["pz"] ** 2, 0.0, None))
    jets = make_vectors(*(ak.unflatten(a, counts) for a in (pt, eta, np.arctan2(flat["py"], flat["px"]), mass)))
    jets = jets[abs(jets.eta) < definitions.jet_eta_max]
    return jets[ak.argsort(jets.pt, axis=1, ascending=False)]


def tag_b_jets(jets: Any, b_hadrons: Any, definitions: ObjectDefinitions, rng: np.random.Generator) -> Any:
    """Add a ``btag`` field (0/1) to jets from Delta R matching to b hadrons.

    Parameters
    ----------
    jets : awkward.Array (n_events * var) of ``Momentum4D``
    b_hadrons : awkward.Array (n_events * var)
        b hadrons (``pt eta phi``) of the same events, any status.
    definitions : ObjectDefinitions
        ``btag_dr``, ``btag_hadron_pt_min``, ``btag_efficiency``, ``mistag_rate``.
    rng : numpy Generator
        Draws the tags when the efficiency is below 1 or the mistag rate above 0.

    Returns
    -------
    awkward.Array
        The jets with the ``btag`` field.
    """
    ak, _ = require_hep()
    hadrons = b_hadrons[b_hadrons.pt > definitions.btag_hadron_pt_min]
    pairs = ak.cartesian({"j": jets[["eta", "phi"]], "b": hadrons[["eta", "phi"]]}, nested=True)
    truth = ak.any(_delta_r(pairs.j.eta, pairs.j.phi, pairs.b.eta, pairs.b.phi) < definitions.btag_dr, axis=2)
    flat = ak.to_numpy(ak.flatten(truth)).astype(bool)
    if definitions.btag_efficiency < 1 or definitions.mistag_rate > 0:
        prob = np.where(flat, definitions.btag_efficiency, definitions.mistag_rate)
        flat = rng.random(flat.size) < prob
    tag = ak.unflatten(flat.astype(np.float64), ak.num(jets, axis=1))
    return make_vectors(jets.pt, jets.eta, jets.phi, jets.mass, btag=tag)
