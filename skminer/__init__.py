"""skminer: machine-learning-based inference for particle physics as scikit-learn estimators.

The techniques of "Mining gold from implicit models" (SALLY, SALLINO, CARL, ROLR, ALICE, CASCAL, RASCAL,
ALICES, NDE, SCANDAL) with the theory setup (parameters, benchmarks, morphing), event handling (EventSet,
simulators, LHE/Delphes readers), augmentation (joint likelihood ratio and score) and inference (Fisher
information, asymptotic limits) around them.

The public names are importable from the top level; heavy submodules (torch) load on first use.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("skminer")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without installation
    __version__ = "0.0.0+unknown"

# public name -> submodule that defines it
_EXPORTS: dict[str, str] = {
    "Parameter": "parameters",
    "NuisanceParameter": "parameters",
    "ParameterSpace": "parameters",
    "Morpher": "morphing",
    "EventSet": "events",
    "ToySimulator": "simulation",
    "LHEReader": "simulation",
    "DelphesReader": "simulation",
    "HepMCReader": "simulation",
    "Systematics": "simulation",
    "MadGraph": "simulation",
    "TrainingSample": "augmentation",
    "LocalScoreSampler": "augmentation",
    "RatioSampler": "augmentation",
    "DoubleRatioSampler": "augmentation",
    "DensitySampler": "augmentation",
    "TestSampler": "augmentation",
    "UniformPrior": "augmentation",
    "GaussianPrior": "augmentation",
    "FixedPrior": "augmentation",
    "BenchmarkPrior": "augmentation",
    "GridPrior": "augmentation",
    "SALLY": "estimators",
    "SALLINO": "estimators",
    "NDE": "estimators",
    "SCANDAL": "estimators",
    "Ensemble": "estimators",
    "save_estimator": "estimators",
    "load_estimator": "estimators",
    "CARL": "estimators",
    "ROLR": "estimators",
    "ALICE": "estimators",
    "CASCAL": "estimators",
    "RASCAL": "estimators",
    "ALICES": "estimators",
    "DoubleCARL": "estimators",
    "DoubleROLR": "estimators",
    "DoubleALICE": "estimators",
    "DoubleCASCAL": "estimators",
    "DoubleRASCAL": "estimators",
    "DoubleALICES": "estimators",
    "FisherInformation": "inference",
    "AsymptoticLimits": "inference",
    "profile_information": "inference",
    "project_information": "inference",
    "Pipeline": "pipeline",
    "make_pipeline": "pipeline",
    "METHODS": "methods",
    "capabilities_of": "methods",
    "MissingMetadataError": "_metadata",
    "GridShapeWarning": "_metadata",
    "ExtrapolationWarning": "estimators",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'skminer' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
