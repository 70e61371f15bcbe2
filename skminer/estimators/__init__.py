"""Neural estimators of the likelihood ratio and the score (scikit-learn compatible).

Score: :class:`SALLY`. Parameterised ratio: :class:`CARL`, :class:`ROLR`, :class:`ALICE`, :class:`CASCAL`,
:class:`RASCAL`, :class:`ALICES`. Doubly parameterised ratio: :class:`DoubleCARL`, :class:`DoubleROLR`,
:class:`DoubleALICE`, :class:`DoubleCASCAL`, :class:`DoubleRASCAL`, :class:`DoubleALICES`.
Loss functions: :mod:`skminer.estimators.losses`.
"""

from . import losses
from .base import NeuralEstimatorBase
from .double_ratio import DoubleALICE, DoubleALICES, DoubleCARL, DoubleCASCAL, DoubleRASCAL, DoubleROLR
from .ratio import ALICE, ALICES, CARL, CASCAL, RASCAL, ROLR, RatioEstimatorBase
from .score import SALLY

__all__ = [
    "losses",
    "NeuralEstimatorBase",
    "RatioEstimatorBase",
    "SALLY",
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
