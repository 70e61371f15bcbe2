"""Save and load fitted skminer estimators: one file per estimator, read back with ``weights_only=True``.

File layout (a :func:`torch.save` archive of a plain dict)::

    {"magic": "skminer-estimator", "version": 1, "class": "SCANDAL", "state": {...}}

``class`` is the bare class name and must be in the allow-list :func:`estimator_registry` (skminer's own
estimator classes); loading never imports arbitrary paths. ``state`` is the dict returned by the estimator's
``_get_fitted_state`` (hyperparameters, fitted attributes, the torch module's ``state_dict``; meta-estimators
such as :class:`~skminer.estimators.ensemble.Ensemble` nest the states of their members), in which numpy
arrays are wrapped as ``{"__ndarray__": tensor}`` so that :func:`torch.load` with ``weights_only=True`` (no
arbitrary unpickling) can read everything back.

Files are written atomically: to a temporary file in the target directory, then :func:`os.replace`.
"""

from __future__ import annotations

import logging
import numbers
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._atomic import atomic_write
from ..methods import METHODS

logger = logging.getLogger("skminer.estimators")

__all__ = ["save_estimator", "load_estimator", "estimator_kind", "estimator_registry", "register_estimator",
           "FILE_MAGIC", "FILE_VERSION"]

#: Marker stored in every estimator file.
FILE_MAGIC = "skminer-estimator"
#: Version of the file layout.
FILE_VERSION = 1
_ARRAY_KEY = "__ndarray__"
_SAFE_TORCH = "2.10"  # the declared floor of pyproject.toml


#: Meta-estimators registered with :func:`register_estimator` (the method classes come from the method table).
_REGISTERED: dict[str, type] = {}


def register_estimator(cls: type) -> type:
    """Class decorator: allow ``cls`` (a skminer meta-estimator such as Ensemble) in estimator files.

    The estimator classes of the methods are allowed through :data:`skminer.methods.METHODS`; registration is
    for classes outside the table, so that this module needs no import of them (no import cycle).
    """
    other = _REGISTERED.get(cls.__name__)
    if other is not None and other is not cls:
        raise ValueError(f"an estimator class named {cls.__name__} is already registered ({other.__module__})")
    _REGISTERED[cls.__name__] = cls
    return cls


def estimator_registry() -> dict[str, type]:
    """The allow-list of estimator classes that can be saved and loaded, keyed by class name.

    Returns
    -------
    dict of str to type
        The classes of every row of :data:`skminer.methods.METHODS` plus the registered meta-estimators
        (:class:`~skminer.estimators.ensemble.Ensemble`).
    """
    registry = {m.class_name: m.load() for m in METHODS.values()}
    registry.update(_REGISTERED)
    return registry


def registered_class_name(estimator: Any) -> str:
    """Name of ``estimator``'s class in :func:`estimator_registry`; ``TypeError`` if it is not allowed."""
    registry = estimator_registry()
    name = type(estimator).__name__
    if registry.get(name) is not type(estimator):
        raise TypeError(f"{type(estimator).__module__}.{type(estimator).__qualname__} is not a skminer estimator "
                        f"that can be saved; allowed classes: {sorted(registry)}")
    return name


def lookup_class(name: Any, where: str = "file") -> type:
    """The allowed class called ``name``; ``ValueError`` naming ``where`` if unknown."""
    registry = estimator_registry()
    if not isinstance(name, str) or name not in registry:
        raise ValueError(f"{where}: unknown estimator class {name!r}; allowed classes: {sorted(registry)}")
    return registry[name]


def params_for_state(params: Mapping[str, Any]) -> dict[str, Any]:
    """Hyperparameters converted to primitives (a random_state object becomes None; it only matters for fitting)."""
    from .base import _primitive

    out: dict[str, Any] = {}
    for k, v in params.items():
        if k == "random_state" and not (v is None or (isinstance(v, numbers.Integral) and not isinstance(v, bool))):
            v = None
        out[k] = _primitive(v)
    return out


def params_from_state(cls: type, params: Mapping[str, Any]) -> dict[str, Any]:
    """Undo :func:`params_for_state` for ``cls`` (lists back to tuples for its tuple-valued parameters)."""
    params = dict(params)
    for name in getattr(cls, "_tuple_params", ()):
        if isinstance(params.get(name), list):
            params[name] = tuple(params[name])
    return params


def _encode(obj: Any, where: str) -> Any:
    """Wrap numpy arrays / scalars so that ``torch.load(weights_only=True)`` can read the state."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, np.ndarray):
        if obj.dtype == object or obj.dtype.kind in "USV":
            return [_encode(v, where) for v in obj.tolist()]
        return {_ARRAY_KEY: torch.from_numpy(np.ascontiguousarray(obj).copy())}
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: state keys must be strings, got {k!r}")
            out[k] = _encode(v, f"{where}.{k}")
        return out
    if isinstance(obj, (list, tuple)):
        return [_encode(v, where) for v in obj]
    raise TypeError(f"{where}: cannot store an object of type {type(obj).__name__} in an estimator file")


def _decode(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        if set(obj) == {_ARRAY_KEY} and isinstance(obj[_ARRAY_KEY], torch.Tensor):
            return obj[_ARRAY_KEY].numpy()
        return {k: _decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v) for v in obj]
    return obj


def save_estimator(estimator: Any, path: str | os.PathLike) -> Path:
    """Write a fitted skminer estimator to one file (atomically).

    Parameters
    ----------
    estimator : estimator
        A fitted instance of a class in :func:`estimator_registry` (including an
        :class:`~skminer.estimators.ensemble.Ensemble` of them).
    path : str or path-like
        Target file; its directory must exist. An existing file is replaced only once the new one is complete.

    Returns
    -------
    pathlib.Path
        The written path.

    Raises
    ------
    TypeError
        If the estimator class is not an allowed skminer estimator.
    sklearn.exceptions.NotFittedError
        If the estimator is not fitted.
    """
    path = Path(path)
    name = registered_class_name(estimator)
    state = estimator._get_fitted_state()
    payload = {"magic": FILE_MAGIC, "version": FILE_VERSION, "class": name, "state": _encode(state, "state")}
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise FileNotFoundError(f"cannot save estimator to {path}: directory {directory} does not exist")
    with atomic_write(path) as tmp, open(tmp, "wb") as fh:
        torch.save(payload, fh)
    logger.debug("saved %s to %s", name, path)
    return path


def estimator_kind(estimator: Any) -> str:
    """What an estimator (instance or class) is, as :func:`load_estimator` compares it: ``"CARL"``, or
    ``"Ensemble of CARL"`` for an :class:`~skminer.estimators.ensemble.Ensemble` instance."""
    if isinstance(estimator, type):
        return estimator.__name__
    template = estimator.get_params(deep=False).get("estimator") if type(estimator).__name__ == "Ensemble" else None
    return type(estimator).__name__ + ("" if template is None else f" of {estimator_kind(template)}")


def _stored_kind(class_name: str, state: Mapping[str, Any]) -> str:
    template = state.get("estimator") if class_name == "Ensemble" else None
    if isinstance(template, Mapping) and isinstance(template.get("class"), str):
        return f"Ensemble of {template['class']}"
    return class_name


def _check_torch_loader() -> None:
    """Refuse to read model files with a torch whose ``weights_only`` loader is not safe (see docs/install.md)."""
    if torch.__version__ < _SAFE_TORCH:
        raise RuntimeError(f"loading skminer model files needs torch >= {_SAFE_TORCH} (torch.load(weights_only=True) "
                           f"is unsafe before 2.6, CVE-2025-32434, and before 2.10, CVE-2026-24747); this is torch "
                           f"{torch.__version__}")


def load_estimator(path: str | os.PathLike, device: str | None = None, *, expected: Any = None,
                   expected_by: str = "the caller") -> Any:
    """Read an estimator written by :func:`save_estimator` (``torch.load(weights_only=True)``, nothing trained).

    Parameters
    ----------
    path : str or path-like
    device : str, optional
        Override the saved ``device`` hyperparameter (e.g. ``"cpu"`` for a model trained on a GPU); for an
        ensemble it applies to every member.
    expected : estimator or class, optional
        What the file must hold (compared by :func:`estimator_kind`, e.g. an unfitted ``Ensemble(CARL(...))``);
        checked before anything is restored.
    expected_by : str
        Who expects it, for the message (e.g. ``"the configuration (training.method)"``).

    Returns
    -------
    estimator
        A fitted estimator of the saved class with the saved hyperparameters.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a (readable, compatible) skminer estimator file, holds another kind of estimator than
        ``expected``, or its stored hyperparameters do not fit its stored tensors; the message names the path.
    RuntimeError
        If the installed torch is older than 2.10 (its ``weights_only`` loader is not safe).
    """
    path = Path(path)
    _check_torch_loader()
    if not path.is_file():
        raise FileNotFoundError(f"estimator file {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for truncated / foreign files
        raise ValueError(f"{path} is not a readable skminer estimator file: {type(err).__name__}: {err}") from err
    if not isinstance(payload, Mapping) or payload.get("magic") != FILE_MAGIC:
        raise ValueError(f"{path} is not a skminer estimator file (missing the {FILE_MAGIC!r} marker)")
    if payload.get("version") != FILE_VERSION:
        raise ValueError(f"{path}: unsupported estimator file version {payload.get('version')!r} "
                         f"(this skminer reads version {FILE_VERSION})")
    cls = lookup_class(payload.get("class"), where=str(path))
    state = payload.get("state")
    if not isinstance(state, Mapping):
        raise ValueError(f"{path}: the estimator state is missing or malformed")
    if expected is not None and _stored_kind(cls.__name__, state) != estimator_kind(expected):
        raise ValueError(f"{path.name} holds a {_stored_kind(cls.__name__, state)}, {expected_by} asks for "
                         f"{estimator_kind(expected)} ({path}); retrain, or point to the right model file")
    try:
        return cls._from_fitted_state(_decode(state), device=device)
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: cannot restore the saved {payload.get('class')}: {err}") from err
