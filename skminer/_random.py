"""The one conversion of a scikit-learn style ``random_state`` into a local numpy generator."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

__all__ = ["check_random_state"]


def check_random_state(random_state: Any, name: str = "random_state") -> np.random.Generator:
    """Turn ``random_state`` into a :class:`numpy.random.Generator` without touching global random state.

    Unlike :func:`sklearn.utils.check_random_state` (which returns the global ``RandomState`` for ``None``),
    the result is always a local generator, so seeded code paths never consume numbers from numpy's global
    generator.

    Parameters
    ----------
    random_state : None, int, numpy.random.RandomState or numpy.random.Generator
        ``None``: fresh OS entropy; an int or a :class:`numpy.random.SeedSequence`: a new seeded generator; a
        ``Generator``: returned as is (it is advanced by the caller's draws); a ``RandomState``: advanced by one
        draw, which seeds a new generator.
    name : str
        Argument name used in the error message.

    Returns
    -------
    numpy.random.Generator

    Raises
    ------
    ValueError
        For a negative int or an unsupported type.
    """
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(0, 2**31 - 1))
    if random_state is None or isinstance(random_state, np.random.SeedSequence):
        return np.random.default_rng(random_state)
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {random_state}")
        return np.random.default_rng(int(random_state))
    raise ValueError(f"{name} must be None, an int, a numpy RandomState or Generator, got {random_state!r}")
