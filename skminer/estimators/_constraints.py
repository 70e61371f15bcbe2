"""Parameter constraints of the estimators beyond scikit-learn's (``_parameter_constraints`` entries).

* :class:`IntInterval`: ``Interval(Integral, ...)`` that refuses bools. ``True`` is an :class:`numbers.Integral` in
  Python, so scikit-learn's interval accepts ``n_estimators=True`` as 1 (its own estimators do too); for a count,
  a bool is always a mistake.
* :class:`RealInterval`: ``Interval(Real, ...)`` that refuses bools, for the same reason: ``lr=True`` trained at
  ``lr=1`` and ``log_r_clip=True`` clipped ``log r`` at 1, silently.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, ClassVar

from sklearn.utils._param_validation import Interval

from .._scalars import is_bool

__all__ = ["IntInterval", "RealInterval"]


class _NoBoolInterval(Interval):
    """scikit-learn's ``Interval(kind, left, right, closed=...)``, but a bool does not satisfy it."""

    _kind: ClassVar[type]
    _noun: ClassVar[str]

    def __init__(self, left: Real | None, right: Real | None, *, closed: str) -> None:
        super().__init__(self._kind, left, right, closed=closed)

    def is_satisfied_by(self, val: Any) -> bool:
        return not is_bool(val) and super().is_satisfied_by(val)

    def __str__(self) -> str:
        return super().__str__().replace(self._noun, f"{self._noun} (not a bool)", 1)


class IntInterval(_NoBoolInterval):
    """scikit-learn's ``Interval(Integral, left, right, closed=...)``, but a bool does not satisfy it.

    Parameters
    ----------
    left, right : int or None
        Bounds (None: unbounded).
    closed : {"left", "right", "both", "neither"}
        Which bounds belong to the interval.
    """

    _kind, _noun = Integral, "an int"


class RealInterval(_NoBoolInterval):
    """scikit-learn's ``Interval(Real, left, right, closed=...)``, but a bool does not satisfy it.

    Parameters
    ----------
    left, right : float or None
        Bounds (None: unbounded).
    closed : {"left", "right", "both", "neither"}
        Which bounds belong to the interval.
    """

    _kind, _noun = Real, "a float"
