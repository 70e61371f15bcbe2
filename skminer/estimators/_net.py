"""Private skorch machinery shared by all neural estimators.

* :func:`build_mlp` / :data:`ACTIVATIONS`: fully connected networks (reused by flows and SALLINO).
* :class:`Standardizer`: affine input scaling stored as module buffers (so it travels with the state dict).
* :class:`ScoreNet` (x -> score) and :class:`RatioNet` (x, theta -> log r, and d log r / d theta by autograd).
* :class:`TensorDictDataset`, :class:`TensorBatchIterator`, :class:`RandomValidSplit`: a tensor-slicing
  replacement for skorch's ``Dataset``/``DataLoader`` pair (tensors live on the training device; each epoch
  does one gather per tensor and yields contiguous slices, about twice as fast as the default loader).
* :class:`SkminerNet`: a :class:`skorch.NeuralNet` that computes validation losses with gradients enabled
  when the loss needs ``d/d theta`` (score terms).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from skorch import NeuralNet
from skorch.dataset import unpack_data
from torch import Tensor, nn

from ._torch_utils import torch_generator

logger = logging.getLogger("skminer.estimators")

__all__ = [
    "ACTIVATIONS",
    "build_mlp",
    "init_module_",
    "Standardizer",
    "ScoreNet",
    "RatioNet",
    "TensorDictDataset",
    "TensorBatchIterator",
    "RandomValidSplit",
    "SkminerNet",
    "LogSink",
]

#: Activation names accepted by the ``activation`` parameter.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "softplus": nn.Softplus,
    "leaky_relu": nn.LeakyReLU,
    "identity": nn.Identity,
}


def check_activation(activation: str) -> None:
    """Raise a ``ValueError`` naming the parameter if ``activation`` is unknown."""
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")


def check_hidden_layer_sizes(hidden_layer_sizes: Any) -> tuple[int, ...]:
    """Validate ``hidden_layer_sizes`` (an int or a sequence of positive ints; empty means linear)."""
    sizes = (hidden_layer_sizes,) if isinstance(hidden_layer_sizes, (int, np.integer)) else hidden_layer_sizes
    try:
        sizes = tuple(sizes)
    except TypeError:
        msg = f"hidden_layer_sizes must be an int or a sequence of ints, got {hidden_layer_sizes!r}"
        raise ValueError(msg) from None
    for s in sizes:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1:
            raise ValueError(f"hidden_layer_sizes must contain positive ints, got {hidden_layer_sizes!r}")
    return tuple(int(s) for s in sizes)


def build_mlp(n_inputs: int, n_outputs: int, hidden_layer_sizes: Sequence[int] = (100, 100),
              activation: str = "tanh") -> nn.Sequential:
    """Fully connected network ``n_inputs -> hidden... -> n_outputs`` with a linear output layer.

    Parameters
    ----------
    n_inputs, n_outputs : int
    hidden_layer_sizes : sequence of int
        Widths of the hidden layers (empty: a linear model).
    activation : str
        Key of :data:`ACTIVATIONS`.

    Returns
    -------
    torch.nn.Sequential
        Weights use PyTorch's default initialisation; call :func:`init_module_` with a local generator for
        reproducible weights without touching the global RNG.
    """
    check_activation(activation)
    sizes = check_hidden_layer_sizes(hidden_layer_sizes)
    layers: list[nn.Module] = []
    n_prev = int(n_inputs)
    for width in sizes:
        layers += [nn.Linear(n_prev, width), ACTIVATIONS[activation]()]
        n_prev = width
    layers.append(nn.Linear(n_prev, int(n_outputs)))
    return nn.Sequential(*layers)


@torch.no_grad()
def init_module_(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Re-initialise every ``nn.Linear`` of ``module`` from a local generator (in place).

    Uses PyTorch's default scheme, ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for weights and biases.
    """
    for m in module.modules():
        if isinstance(m, nn.Linear):
            bound = 1.0 / math.sqrt(max(m.in_features, 1))
            w = torch.rand(m.weight.shape, generator=generator, dtype=torch.float32) * (2 * bound) - bound
            m.weight.copy_(w)
            if m.bias is not None:
                b = torch.rand(m.bias.shape, generator=generator, dtype=torch.float32) * (2 * bound) - bound
                m.bias.copy_(b)
    return module


class Standardizer(nn.Module):
    """``(u - mean) / scale`` with buffers (constant columns get scale 1).

    Parameters
    ----------
    n_features : int
    mean, scale : array-like of shape (n_features,), optional
        Defaults 0 and 1; see :meth:`from_data`.
    """

    def __init__(self, n_features: int, mean: Any = None, scale: Any = None) -> None:
        super().__init__()
        m = np.zeros(n_features) if mean is None else np.asarray(mean, dtype=np.float64).reshape(n_features)
        s = np.ones(n_features) if scale is None else np.asarray(scale, dtype=np.float64).reshape(n_features)
        # constant columns (spread at rounding level of their mean) keep scale 1; a threshold relative to the
        # column's own size, so parameters in any units (1e-12 or 1e12) are standardised alike
        s = np.where(np.isfinite(s) & (s > 0) & (s > 1e-12 * np.abs(m)), s, 1.0)
        self.register_buffer("mean", torch.as_tensor(m, dtype=torch.float32))
        self.register_buffer("scale", torch.as_tensor(s, dtype=torch.float32))

    @staticmethod
    def stats(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Column means and standard deviations (float64) of a 2-D array."""
        data = np.asarray(data, dtype=np.float64)
        if data.shape[0] == 0:
            return np.zeros(data.shape[1]), np.ones(data.shape[1])
        return data.mean(axis=0), data.std(axis=0)

    def forward(self, u: Tensor) -> Tensor:
        return (u - self.mean) / self.scale


class ScoreNet(nn.Module):
    """``x -> t_hat(x)``: standardised inputs, MLP, outputs mapped back to target units.

    Parameters
    ----------
    n_features, n_outputs : int
    hidden_layer_sizes, activation
        See :func:`build_mlp`.
    x_mean, x_scale : array-like, optional
        Input standardisation.
    y_mean, y_scale : array-like, optional
        Output de-standardisation: ``t_hat = mlp(x_std) * y_scale + y_mean``.
    """

    def __init__(self, n_features: int, n_outputs: int, hidden_layer_sizes: Sequence[int] = (100, 100),
                 activation: str = "tanh", x_mean: Any = None, x_scale: Any = None, y_mean: Any = None,
                 y_scale: Any = None) -> None:
        super().__init__()
        self.x_std = Standardizer(n_features, x_mean, x_scale)
        self.mlp = build_mlp(n_features, n_outputs, hidden_layer_sizes, activation)
        self.y_std = Standardizer(n_outputs, y_mean, y_scale)

    def forward(self, x: Tensor) -> Tensor:
        out = self.mlp(self.x_std(x))
        return out * self.y_std.scale + self.y_std.mean


class RatioNet(nn.Module):
    """Parameterised ratio network: ``log r_hat(x | theta) = mlp([x_std, theta_std])``.

    ``theta`` holds the parameters the ratio depends on: ``theta0`` (``n_parameters`` columns) for singly
    parameterised estimators, ``[theta0, theta1]`` for doubly parameterised ones.

    Parameters
    ----------
    n_features, n_theta : int
        Columns of ``x`` and of ``theta``.
    hidden_layer_sizes, activation
        See :func:`build_mlp`.
    x_mean, x_scale, theta_mean, theta_scale : array-like, optional
        Input standardisation (gradients with respect to ``theta`` are taken through it).
    return_score : bool
        If true and gradients are enabled, ``forward`` also returns ``t = d log r_hat / d theta``
        (with ``create_graph`` in training mode so the loss can be back-propagated through it).
    """

    def __init__(self, n_features: int, n_theta: int, hidden_layer_sizes: Sequence[int] = (100, 100),
                 activation: str = "tanh", x_mean: Any = None, x_scale: Any = None, theta_mean: Any = None,
                 theta_scale: Any = None, return_score: bool = False) -> None:
        super().__init__()
        self.x_std = Standardizer(n_features, x_mean, x_scale)
        self.theta_std = Standardizer(n_theta, theta_mean, theta_scale)
        self.mlp = build_mlp(n_features + n_theta, 1, hidden_layer_sizes, activation)
        self.return_score = bool(return_score)

    def log_r(self, x: Tensor, theta: Tensor) -> Tensor:
        """Estimated ``log r``, shape (n,)."""
        return self.mlp(torch.cat([self.x_std(x), self.theta_std(theta)], dim=1)).squeeze(1)

    def log_r_and_score(self, x: Tensor, theta: Tensor, create_graph: bool = False) -> tuple[Tensor, Tensor]:
        """``log r`` (n,) and ``d log r / d theta`` (n, n_theta); needs gradients enabled."""
        theta = theta.detach().requires_grad_(True)
        log_r = self.log_r(x, theta)
        (t,) = torch.autograd.grad(log_r.sum(), theta, create_graph=create_graph)
        return log_r, t

    def forward(self, x: Tensor, theta: Tensor) -> dict[str, Tensor]:
        if self.return_score and torch.is_grad_enabled():
            log_r, t = self.log_r_and_score(x, theta, create_graph=self.training)
            return {"log_r": log_r, "t": t}
        return {"log_r": self.log_r(x, theta)}


class TensorDictDataset(torch.utils.data.Dataset):
    """Inputs and targets as dicts of equally long tensors (already on the training device).

    Indexing returns ``(X_batch, y_batch)`` dicts; :meth:`subset` slices every tensor at once.
    """

    def __init__(self, X: Mapping[str, Tensor], y: Mapping[str, Tensor]) -> None:
        self.X = dict(X)
        self.y = dict(y)
        lengths = {int(v.shape[0]) for v in list(self.X.values()) + list(self.y.values())}
        if len(lengths) != 1:
            raise ValueError(f"all training tensors must have the same number of rows, got lengths {lengths}")
        self.n = lengths.pop()

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, idx: Any) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        return {k: v[idx] for k, v in self.X.items()}, {k: v[idx] for k, v in self.y.items()}

    def subset(self, idx: Tensor | np.ndarray) -> TensorDictDataset:
        """A new dataset holding rows ``idx`` (a gather, i.e. a copy)."""
        X, y = self[torch.as_tensor(idx, dtype=torch.long, device=self._device())]
        return TensorDictDataset(X, y)

    def _device(self) -> torch.device:
        return next(iter(self.X.values())).device


class TensorBatchIterator:
    """Batch iterator over a :class:`TensorDictDataset` (replaces skorch's ``DataLoader``).

    Parameters
    ----------
    dataset : TensorDictDataset
    batch_size : int
    shuffle : bool
        Reshuffle at the start of every pass (training batches).
    seed : int, optional
        Seed of the local generator used for shuffling; successive passes differ but are reproducible.
    """

    def __init__(self, dataset: TensorDictDataset, batch_size: int = 128, shuffle: bool = False,
                 seed: int | None = None) -> None:
        if not isinstance(dataset, TensorDictDataset):
            raise TypeError(f"TensorBatchIterator needs a TensorDictDataset, got {type(dataset).__name__}")
        self.dataset = dataset
        self.batch_size = max(1, int(batch_size))
        self.shuffle = shuffle
        self._generator = torch_generator(0 if seed is None else seed) if shuffle else None

    def __len__(self) -> int:
        return (len(self.dataset) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[tuple[dict[str, Tensor], dict[str, Tensor]]]:
        ds = self.dataset
        n = len(ds)
        if self.shuffle and n > 1:
            perm = torch.randperm(n, generator=self._generator).to(ds._device())
            X, y = ds[perm]
        else:
            X, y = ds.X, ds.y
        for start in range(0, n, self.batch_size):
            sl = slice(start, start + self.batch_size)
            yield {k: v[sl] for k, v in X.items()}, {k: v[sl] for k, v in y.items()}


class RandomValidSplit:
    """skorch ``train_split``: a random (seeded) validation subset of ``fraction`` of the rows.

    When the data are too few for both parts to be non-empty, no validation set is returned.
    """

    def __init__(self, fraction: float, seed: int) -> None:
        self.fraction = float(fraction)
        self.seed = int(seed)

    @staticmethod
    def n_valid(n: int, fraction: float) -> int:
        """Number of validation rows for ``n`` rows (0 if the split would leave an empty part)."""
        k = int(round(fraction * n))
        return k if 1 <= k <= n - 1 else 0

    def __call__(self, dataset: TensorDictDataset, y: Any = None, **fit_params: Any):
        n = len(dataset)
        k = self.n_valid(n, self.fraction)
        if k == 0:
            return dataset, None
        perm = np.random.default_rng(self.seed).permutation(n)
        return dataset.subset(np.sort(perm[k:])), dataset.subset(np.sort(perm[:k]))


_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")  # skorch colours its table; logs stay plain


class LogSink:
    """Picklable ``sink`` for skorch's ``PrintLog``/``EarlyStopping``: INFO if ``verbose`` else DEBUG logs."""

    def __init__(self, verbose: int = 0) -> None:
        self.verbose = int(verbose)

    def __call__(self, text: str) -> None:
        logger.log(logging.INFO if self.verbose else logging.DEBUG, "%s", _ANSI_ESCAPE.sub("", text))


def _detach(out: Any) -> Any:
    if isinstance(out, Tensor):
        return out.detach()
    if isinstance(out, Mapping):
        return {k: _detach(v) for k, v in out.items()}
    return out


class SkminerNet(NeuralNet):
    """skorch ``NeuralNet`` over :class:`TensorDictDataset` batches.

    Parameters
    ----------
    *args, **kwargs
        As for :class:`skorch.NeuralNet`.
    grad_in_validation : bool
        Compute validation losses with autograd enabled (needed when the loss contains ``d/d theta``).
    """

    def __init__(self, *args: Any, grad_in_validation: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.grad_in_validation = grad_in_validation

    def get_loss(self, y_pred: Any, y_true: Any, X: Any = None, training: bool = False) -> Tensor:
        # targets are dicts of tensors already on the device: no conversion needed
        return self.criterion_(y_pred, y_true)

    def validation_step(self, batch: Any, **fit_params: Any) -> dict[str, Any]:
        self._set_training(False)
        Xi, yi = unpack_data(batch)
        with torch.set_grad_enabled(bool(self.grad_in_validation)):
            y_pred = self.infer(Xi, **fit_params)
            loss = self.get_loss(y_pred, yi, X=Xi, training=False)
        return {"loss": loss.detach(), "y_pred": _detach(y_pred)}
