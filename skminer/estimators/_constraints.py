"""Parameter constraints of the estimators beyond scikit-learn's (``_parameter_constraints`` entries).

* :class:`IntInterval`: ``Interval(Integral, ...)`` that refuses bools. ``True`` is an :class:`numbers.Integral` in
  Python, so scikit-learn's interval accepts ``n_estimators=True`` as 1 (its own estimators do too); for a count,
  a bool is always a mistake.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

from sklearn.utils._param_validation import Interval

__all__ = ["IntInterval"]


class IntInterval(Interval):
    """scikit-learn's ``Interval(Integral, left, right, closed=...)``, but a bool does not satisfy it.

    Parameters
    ----------
    left, right : int or None
        Bounds (None: unbounded).
    closed : {"left", "right", "both", "neither"}
        Which bounds belong to the interval.
    """

    def __init__(self, left: Real | None, right: Real | None, *, closed: str) -> None:
        super().__init__(Integral, left, right, closed=closed)

    def is_satisfied_by(self, val: Any) -> bool:
        return not isinstance(val, bool) and super().is_satisfied_by(val)

    def __str__(self) -> str:
        return super().__str__().replace("an int", "an int (not a bool)", 1)
