"""Checks of scalar arguments outside ``_parameter_constraints`` (inference, histograms): bools are refused.

``True`` is a :class:`numbers.Integral` and a :class:`numbers.Real` in Python, and ``np.True_ == 1``, so
``float(True)`` and ``int(np.True_)`` quietly turn a flag into a luminosity of 1 pb^-1 or one Asimov replica.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

__all__ = ["BoolArgumentError", "is_bool", "refuse_bool", "as_real", "as_count"]


class BoolArgumentError(TypeError, ValueError):
    """A bool where a number is expected: a ``TypeError``, and a ``ValueError`` like the other invalid values of the
    same argument (as scikit-learn's ``InvalidParameterError``)."""


def is_bool(value: Any) -> bool:
    """Whether ``value`` is a Python or numpy bool (``True``, ``np.True_``)."""
    return isinstance(value, (bool, np.bool_))


def refuse_bool(value: Any, name: str, expected: str) -> None:
    """Raise :class:`BoolArgumentError` naming ``name`` if ``value`` is a bool.

    Parameters
    ----------
    value : object
    name : str
        Argument name for the message.
    expected : str
        What the argument must be (``"a positive number"``).
    """
    if is_bool(value):
        raise BoolArgumentError(f"{name} must be {expected}, not a bool (got {value!r})")


def as_real(value: Any, name: str) -> float:
    """``value`` as a float: a real number, not a bool (``TypeError`` naming ``name`` otherwise; for a bool
    :class:`BoolArgumentError`, also a ``ValueError``).

    Parameters
    ----------
    value : object
    name : str
        Argument name for the message.

    Returns
    -------
    float
    """
    refuse_bool(value, name, "a real number")
    if not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    return float(value)


def as_count(value: Any, name: str, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``: an integer (or integral float), not a bool.

    Parameters
    ----------
    value : object
    name : str
        Argument name for the message.
    minimum : int
        Smallest allowed value.

    Returns
    -------
    int

    Raises
    ------
    TypeError
        For a bool (:class:`BoolArgumentError`, also a ``ValueError``) or a non-number.
    ValueError
        For a non-integral value or one below ``minimum``.
    """
    refuse_bool(value, name, f"an integer >= {minimum}")
    number = as_real(value, name)
    if not np.isfinite(number) or int(number) != number or number < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(number)
