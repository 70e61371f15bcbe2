"""Small torch helpers shared by the neural estimators: device resolution, local seeds, tensor conversion.

Nothing here touches global random state: seeds are turned into local :class:`numpy.random.Generator` and
:class:`torch.Generator` objects, and the global torch RNG is never seeded.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch

from .._random import check_random_state

__all__ = ["resolve_device", "seed_from_random_state", "torch_generator", "as_float_tensor", "to_numpy"]

_SEED_BOUND = 2**31 - 1


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Turn a user ``device`` setting into a :class:`torch.device`.

    Parameters
    ----------
    device : str, torch.device or None
        ``"auto"`` picks ``"cuda"`` when available and ``"cpu"`` otherwise; ``None`` means ``"cpu"``; any other
        string accepted by :class:`torch.device` (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``) is used as is.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        If the string is not a valid device or CUDA is requested but not available.
    """
    if device is None:
        return torch.device("cpu")
    if isinstance(device, torch.device):
        dev = device
    elif isinstance(device, str):
        if device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            dev = torch.device(device)
        except (RuntimeError, ValueError) as err:
            raise ValueError(f"device={device!r} is not a valid torch device (use 'cpu', 'cuda' or 'auto')") from err
    else:
        raise ValueError(f"device must be a string such as 'cpu', 'cuda' or 'auto', got {device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(dev)!r} was requested but CUDA is not available; use device='cpu' or 'auto'")
    return dev


def seed_from_random_state(random_state: Any) -> int:
    """Derive an integer seed from a scikit-learn style ``random_state`` without global side effects.

    Parameters
    ----------
    random_state : None, int, numpy.random.RandomState or numpy.random.Generator
        ``None`` draws fresh OS entropy (non-reproducible, and unlike ``sklearn.utils.check_random_state(None)`` it does
        not consume numbers from numpy's global generator). An int is used directly (reduced modulo 2**31 - 1).
        A ``RandomState`` / ``Generator`` instance is advanced by one draw, as scikit-learn does.

    Returns
    -------
    int
        A seed in ``[0, 2**31 - 1)``.
    """
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ValueError(f"random_state must be a non-negative integer, got {random_state}")
        return int(random_state) % _SEED_BOUND
    return int(check_random_state(random_state).integers(_SEED_BOUND))


def torch_generator(seed: int) -> torch.Generator:
    """A local CPU :class:`torch.Generator` seeded with ``seed`` (the global torch RNG is not touched)."""
    gen = torch.Generator(device="cpu")
    gen.manual_seed(int(seed))
    return gen


def as_float_tensor(a: Any, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Convert an array-like to a contiguous tensor of ``dtype`` on ``device`` (always copies numpy input).

    Copying avoids torch's warning about read-only (memory-mapped) numpy arrays and decouples the tensor
    from the caller's buffer.
    """
    if isinstance(a, torch.Tensor):
        return a.detach().to(device=device, dtype=dtype).contiguous()
    arr = np.array(a, dtype=np.float64 if dtype == torch.float64 else np.float32, copy=True, order="C")
    return torch.from_numpy(arr).to(device)


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """Detach a tensor, move it to the CPU and return a float64 numpy array."""
    return t.detach().cpu().numpy().astype(np.float64)
