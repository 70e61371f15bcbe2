"""Event sources: the built-in simulator with exact likelihood, LHE, HepMC and Delphes readers, jet clustering,
observables, cuts, smearing, systematics, and wrappers around MadGraph5_aMC and Pythia 8.

The readers import their optional dependencies (``pip install skminer[hep]`` / ``skminer[pythia]``) only when
they are used.
"""

from .cuts import AnyOf, Cut, CutFlow, apply_cuts
from .delphes import DelphesReader, read_delphes_objects
from .hepmc import HepMCReader, hepmc_objects, read_hepmc_particles
from .jets import ObjectDefinitions
from .lhe import NOMINAL, LHEReader, read_lhe_info
from .madgraph import MadGraph, MadGraphError, edit_run_card, write_param_card, write_reweight_card
from .observables import EventObjects, Expression, ExpressionError, Observable, evaluate_observables, make_vectors
from .pythia import read_hepmc_objects, shower_lhe, write_hepmc
from .smearing import ParticleSmearing, Smearer
from .systematics import Systematics, Variation, nuisance_coefficients
from .toy import ToySimulator

__all__ = [
    "ToySimulator",
    "LHEReader",
    "read_lhe_info",
    "NOMINAL",
    "DelphesReader",
    "read_delphes_objects",
    "HepMCReader",
    "hepmc_objects",
    "read_hepmc_particles",
    "ObjectDefinitions",
    "Observable",
    "Expression",
    "ExpressionError",
    "EventObjects",
    "make_vectors",
    "evaluate_observables",
    "Cut",
    "AnyOf",
    "CutFlow",
    "apply_cuts",
    "ParticleSmearing",
    "Smearer",
    "Systematics",
    "Variation",
    "nuisance_coefficients",
    "MadGraph",
    "MadGraphError",
    "write_param_card",
    "edit_run_card",
    "write_reweight_card",
    "shower_lhe",
    "write_hepmc",
    "read_hepmc_objects",
]
