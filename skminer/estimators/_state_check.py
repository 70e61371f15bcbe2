"""Check a saved module state against the architecture its hyperparameters describe, before building anything.

A model file stores hyperparameters (``hidden_layer_sizes``, flow sizes, ...) and the tensors of the trained
module. A loader that builds the module from the hyperparameters first would let a 4 KB file with
``hidden_layer_sizes = (60000, 60000, 60000)`` allocate about 29 GB before noticing that the stored tensors do not
fit. Here the module is built on PyTorch's ``meta`` device (shapes only, no memory) and its ``state_dict`` shapes
are compared with the tensors actually present in the file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

__all__ = ["check_module_state"]

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
