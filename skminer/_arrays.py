"""Array inputs from the HEP ecosystem: awkward arrays and hist / boost-histogram axes.

* :func:`from_awkward` turns a regular, numeric awkward array (``n * k * float64``, also ``n * var * float64``
  when every list has the same length) into a numpy array and refuses record and jagged arrays with a message
  that says what to do, instead of numpy's cast error.
* :func:`axis_edges` gives the bin edges of a ``hist`` / ``boost-histogram`` axis (anything with ``edges``), so
  such an axis can be passed wherever skminer takes ``bins=``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._scalars import refuse_bool

__all__ = ["axis_edges", "from_awkward", "is_awkward"]


def is_awkward(value: Any) -> bool:
    """Whether ``value`` is an awkward ``Array`` (checked without importing awkward)."""
    return type(value).__module__.split(".")[0] == "awkward" and hasattr(value, "layout")


def from_awkward(value: Any, name: str = "X") -> Any:
    """A numpy array for a regular numeric awkward array; anything else is returned unchanged.

    Parameters
    ----------
    value : object
    name : str
        Name of the argument, for error messages.

    Raises
    ------
    ValueError
        For an awkward record array (its field names listed) or a jagged array (different list lengths per
        entry), naming ``name`` and how to build a regular array.
    """
    if not is_awkward(value):
        return value
    import awkward as ak

    fields = ak.fields(value)
    if fields:
        raise ValueError(f"{name} is an awkward record array with fields {fields}; skminer takes a regular numeric "
                         f"array with one column per observable: choose and order the columns explicitly, e.g. "
                         f"np.column_stack([ak.to_numpy({name}[f]) for f in {fields[:3]}])")
    try:
        return ak.to_numpy(value, allow_missing=False)
    except ValueError as err:
        raise ValueError(f"{name} is a jagged or partly missing awkward array of type {value.type}; skminer takes "
                         f"a regular numeric array: give every event the same number of values first, e.g. "
                         f"ak.to_numpy(ak.fill_none(ak.pad_none({name}, k, clip=True), 0.0)) ({err})") from None


def axis_edges(bins: Any, name: str = "bins") -> Any:
    """Bin edges of a hist / boost-histogram axis (an object with ``edges``); other values unchanged.

    Raises
    ------
    TypeError
        For a bool (``True`` would count as one bin).
    ValueError
        For a categorical axis (its edges are not bin boundaries of a continuous variable).
    """
    refuse_bool(bins, name, "an int, bin edges or a histogram axis")  # True == 1: one bin, silently
    if hasattr(bins, "edges") and not isinstance(bins, np.ndarray):
        if "Category" in type(bins).__name__:
            raise ValueError(f"{name}: a categorical axis ({type(bins).__name__}) has no bin edges; use a Regular, "
                             f"Variable or Integer axis")
        return np.asarray(bins.edges, dtype=np.float64)
    return from_awkward(bins, name)
