"""Neural estimators of the likelihood ratio and the score (scikit-learn compatible).

Score: :class:`SALLY`, :class:`SALLINO`. Likelihood (flows): :class:`NDE`, :class:`SCANDAL`.
Parameterised ratio: :class:`CARL`, :class:`ROLR`, :class:`ALICE`, :class:`CASCAL`,
:class:`RASCAL`, :class:`ALICES`. Doubly parameterised ratio: :class:`DoubleCARL`, :class:`DoubleROLR`,
:class:`DoubleALICE`, :class:`DoubleCASCAL`, :class:`DoubleRASCAL`, :class:`DoubleALICES`.
Ensembles: :class:`Ensemble`. One-file persistence: :func:`save_estimator`, :func:`load_estimator`.
Loss functions: :mod:`skminer.estimators.losses`.
"""

from . import losses
from ._theta_range import ExtrapolationWarning
from .base import NeuralEstimatorBase
from .double_ratio import DoubleALICE, DoubleALICES, DoubleCARL, DoubleCASCAL, DoubleRASCAL, DoubleROLR
from .ensemble import Ensemble
from .flows import NDE, SCANDAL
from .persistence import load_estimator, save_estimator
from .ratio import ALICE, ALICES, CARL, CASCAL, RASCAL, ROLR, RatioEstimatorBase
from .sallino import SALLINO
from .score import SALLY

__all__ = [
    "losses",
    "NeuralEstimatorBase",
    "RatioEstimatorBase",
    "SALLY",
    "SALLINO",
    "NDE",
    "SCANDAL",
    "Ensemble",
    "save_estimator",
    "load_estimator",
    "ExtrapolationWarning",
    "CARL",
    "ROLR",
    "ALICE",
    "CASCAL",
    "RASCAL",
    "ALICES",
    "DoubleCARL",
    "DoubleROLR",
    "DoubleALICE",
    "DoubleCASCAL",
    "DoubleRASCAL",
    "DoubleALICES",
]
