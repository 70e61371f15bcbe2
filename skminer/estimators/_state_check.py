"""Check a saved module state against the architecture its hyperparameters describe, before building anything.

A model file stores hyperparameters (``hidden_layer_sizes``, flow sizes, ...) and the tensors of the trained
module. A loader that builds the module from the hyperparameters first would let a 4 KB file with
``hidden_layer_sizes = (60000, 60000, 60000)`` allocate about 29 GB before noticing that the stored tensors do not
fit. Here the module is built on PyTorch's ``meta`` device (shapes only, no memory) and its ``state_dict`` shapes
are compared with the tensors actually present in the file.

The fitted attributes of a file are checked too (:func:`check_fitted_attributes`): only the names the estimator
declares (each ending in ``_``), each of its type and range, and the relations between them (``best_epoch_`` is one
of the ``n_epochs_`` epochs, the loss curves have one entry per epoch); an attribute named after a method
(``predict``) would otherwise replace it on the restored object.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["check_module_state", "check_fitted_attributes", "ATTRIBUTE_KINDS"]

_SHOWN = 3  # mismatches named in the message


def check_module_state(build: Callable[[], nn.Module], module_state: Mapping[str, Any], owner: str,
                       sizes: Mapping[str, int] | None = None) -> None:
    """Raise unless ``module_state`` has exactly the tensor names and shapes of the module ``build()`` makes.

    Modules whose construction needs data-dependent operations that the ``meta`` device cannot run (zuko's masked
    MLPs compute their masks with ``torch.unique`` and ``nonzero``) are checked by a bound instead: every size in
    ``sizes`` (layer widths, numbers of transforms or bins) may not exceed the largest stored tensor dimension or
    the number of stored tensors, whichever is larger; ``load_state_dict`` then checks the exact shapes.

    Parameters
    ----------
    build : callable
        Builds the module from the estimator's hyperparameters; called once under ``torch.device("meta")``.
    module_state : mapping of str to tensor
        The stored ``state_dict``.
    owner : str
        Names the estimator in the message.
    sizes : mapping of str to int, optional
        Hyperparameters that size the architecture, for the bound above.

    Raises
    ------
    ValueError
        Naming the number of values the hyperparameters imply, the number stored, and the first mismatching
        tensors.
    """
    if not isinstance(module_state, Mapping):
        raise ValueError(f"{owner}: the stored module state is a {type(module_state).__name__}, not a mapping")
    stored: dict[str, tuple[int, ...]] = {}
    for name, value in module_state.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{owner}: stored module tensor {name!r} is a {type(value).__name__}, not a tensor")
        stored[name] = tuple(value.shape)
    try:
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in build().state_dict().items()}
    except NotImplementedError:  # an operation without a meta kernel: bound the sizes instead
        _check_sizes(owner, sizes or {}, stored)
        return
    if expected == stored:
        return
    problems = [f"{k}: stored {stored[k]}, hyperparameters imply {shape}" for k, shape in expected.items()
                if k in stored and stored[k] != shape]
    problems += [f"{k}: missing from the file" for k in expected if k not in stored]
    problems += [f"{k}: not part of this architecture" for k in stored if k not in expected]
    n_expected = sum(_numel(s) for s in expected.values())
    n_stored = sum(_numel(s) for s in stored.values())
    more = f" (and {len(problems) - _SHOWN} more)" if len(problems) > _SHOWN else ""
    raise ValueError(f"{owner}: the stored hyperparameters describe a module of {n_expected:,} values but the file "
                     f"holds {n_stored:,} that do not fit it; refusing to build it: "
                     f"{'; '.join(problems[:_SHOWN])}{more}")


def _check_sizes(owner: str, sizes: Mapping[str, int], stored: Mapping[str, tuple[int, ...]]) -> None:
    bound = max([len(stored), *(n for shape in stored.values() for n in shape)])
    too_big = {name: int(n) for name, n in sizes.items() if int(n) > bound}
    if too_big:
        raise ValueError(f"{owner}: the stored hyperparameters {too_big} exceed every dimension of the "
                         f"{len(stored)} stored tensors (largest {bound}); refusing to build the module they describe")


def _numel(shape: tuple[int, ...]) -> int:
    out = 1
    for n in shape:
        out *= n
    return out


# -- fitted attributes ------------------------------------------------------------------------------------------
def _count(minimum: int) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            return f"must be an integer, got {type(value).__name__} {value!r}"
        return None if value >= minimum else f"must be >= {minimum}, got {value!r}"
    return check


def _flag(value: Any) -> str | None:
    return None if isinstance(value, (bool, np.bool_)) else f"must be a bool, got {type(value).__name__} {value!r}"


def _real(value: Any) -> str | None:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        return f"must be a number, got {type(value).__name__} {value!r}"
    return None


def _numbers(ndim: int | None, finite: bool = False, optional: bool = False) -> Callable[[Any], str | None]:
    """An array (or list) of real numbers, of ``ndim`` dimensions when given."""
    def check(value: Any) -> str | None:
        if value is None:
            return None if optional else "must be an array of numbers, got None"
        if isinstance(value, torch.Tensor):
            value = value.numpy()
        if not isinstance(value, (np.ndarray, list, tuple)):
            return f"must be an array of numbers, got {type(value).__name__} {value!r}"
        try:
            arr = np.asarray(value)
        except ValueError as err:
            return f"must be an array of numbers ({err})"
        if arr.dtype.kind not in "biuf" or (arr.dtype.kind == "b" and arr.size):
            return f"must be an array of numbers, got dtype {arr.dtype} ({_short(value)})"
        if ndim is not None and arr.ndim != ndim:
            return f"must have {ndim} dimension(s), got shape {arr.shape}"
        if finite and not np.all(np.isfinite(arr)):
            return "must be finite"
        return None
    return check


def _names(value: Any) -> str | None:
    if not isinstance(value, (list, tuple, np.ndarray)) or not all(isinstance(v, str) for v in value):
        return f"must be a list of feature names (str), got {_short(value)}"
    return None


def _range(value: Any) -> str | None:
    problem = _numbers(2, finite=True)(value)
    if problem is None:
        arr = np.asarray(value)
        if arr.shape[1] != 2 or np.any(arr[:, 0] > arr[:, 1]):
            problem = f"must be rows [min, max] with min <= max, got {_short(value)}"
    return problem


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


#: The check of every fitted attribute an estimator may declare (``_fitted_attributes``); returns the problem or None.
ATTRIBUTE_KINDS: dict[str, Callable[[Any], str | None]] = {
    "n_features_in_": _count(1),
    "feature_names_in_": _names,
    "n_epochs_": _count(0),
    "best_epoch_": _count(0),
    "loss_curve_": _numbers(1),
    "validation_loss_curve_": _numbers(1, optional=True),
    "selection_restored_": _flag,
    "selection_z_": _real,
    "selection_worse_in_a_row_": _count(0),
    "initial_loss_": _real,
    "initial_validation_loss_": _real,
    "n_parameters_": _count(1),
    "theta_range_": _range,
    "n_outputs_": _count(1),
    "_y_1d_": _flag,
    "theta_ref_": _numbers(None, finite=True, optional=True),
    "theta_ref_scale_": _numbers(1, finite=True, optional=True),
    "calibration_theta_": _numbers(2, finite=True),
    "calibration_scores_": _numbers(None, finite=True),
    "calibration_weights_": _numbers(None, optional=True),
    "calibration_group_": _numbers(1, optional=True),
}


def check_fitted_attributes(attributes: Any, declared: Sequence[str], owner: str) -> None:
    """Raise unless ``attributes`` (a saved state's) hold only ``declared`` names, each of its kind.

    Parameters
    ----------
    attributes : mapping of str to value
        The stored fitted attributes.
    declared : sequence of str
        The names the estimator saves (its ``_state_attribute_names()``); attributes may be missing (files
        written before an attribute existed), never extra.
    owner : str
        Names the estimator in the message.

    Raises
    ------
    ValueError
        Naming the attribute, what it must be and what the file holds.
    """
    if not isinstance(attributes, Mapping):
        raise ValueError(f"{owner}: the stored fitted attributes are a {type(attributes).__name__}, not a mapping")
    known = [name for name in declared if name.endswith("_")]
    for name, value in attributes.items():
        if name not in known:
            raise ValueError(f"{owner}: unknown fitted attribute {name!r} in the file; {owner.rpartition('.')[2]} "
                             f"restores only {known}")
        kind = ATTRIBUTE_KINDS.get(name)
        problem = kind(value) if kind is not None else None
        if problem:
            raise ValueError(f"{owner}: fitted attribute {name!r} {problem}")
    n_epochs = attributes.get("n_epochs_")
    if n_epochs is None:
        return
    if "best_epoch_" in attributes and attributes["best_epoch_"] > n_epochs:
        raise ValueError(f"{owner}: fitted attribute 'best_epoch_' = {attributes['best_epoch_']} exceeds "
                         f"n_epochs_ = {n_epochs}")
    if attributes.get("selection_worse_in_a_row_", 0) > n_epochs:
        raise ValueError(f"{owner}: fitted attribute 'selection_worse_in_a_row_' = "
                         f"{attributes['selection_worse_in_a_row_']} exceeds n_epochs_ = {n_epochs}")
    for name in ("loss_curve_", "validation_loss_curve_"):
        curve = attributes.get(name)
        if curve is not None and len(curve) != n_epochs:
            raise ValueError(f"{owner}: fitted attribute {name!r} has {len(curve)} entries for n_epochs_ = {n_epochs}")
