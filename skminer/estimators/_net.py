"""Private skorch machinery shared by all neural estimators.

* :func:`build_mlp` / :data:`ACTIVATIONS`: fully connected networks (reused by flows and SALLINO).
* :class:`Standardizer`: affine input scaling stored as module buffers (so it travels with the state dict).
* :class:`StandardisedTraining`: networks that train on arrays standardised once (not per batch) and take raw
  inputs again afterwards; :class:`FoldedStandardisation`, its MLPs, fold the standardisation into their first
  and last linear layers (the flows of :mod:`skminer.estimators.flows` apply it at prediction time).
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
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import Callback
from skorch.dataset import unpack_data
from skorch.history import History
from skorch.utils import TeeGenerator
from torch import Tensor, nn

from ._torch_utils import torch_generator

logger = logging.getLogger("skminer.estimators")

__all__ = [
    "ACTIVATIONS",
    "build_mlp",
    "init_module_",
    "Standardizer",
    "StandardisedTraining",
    "FoldedStandardisation",
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
        Defaults 0 and 1; see :meth:`stats`.
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


class StandardisedTraining(nn.Module):
    """Base of networks that train on arrays standardised once before training, never per batch.

    Subclasses hold :class:`Standardizer` submodules (their buffers travel with the state dict) and declare which
    inputs the network standardises (:meth:`_input_standardizers`, in column order) and which targets it predicts
    in standardised units (:meth:`_output_standardizers`). The training loop transforms the arrays once with
    :meth:`standardise_arrays` (float64), calls :meth:`begin_standardised_training_`, trains, and calls
    :meth:`end_standardised_training_`, after which the network maps raw inputs to raw outputs.
    """

    def _input_standardizers(self) -> list[tuple[str, Standardizer]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _output_standardizers(self) -> dict[str, Standardizer]:
        """Target name -> standardizer of the network output (empty: the output is not standardised)."""
        return {}

    def standardise_arrays(self, inputs: Mapping[str, np.ndarray], targets: Mapping[str, np.ndarray | None]
                           ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray | None]]:
        """Training arrays in the units the network trains in (``(u - mean) / scale``, float64)."""
        def standardise(a: np.ndarray, std: Standardizer) -> np.ndarray:
            mean = std.mean.detach().cpu().double().numpy()
            scale = std.scale.detach().cpu().double().numpy()
            return (np.asarray(a, dtype=np.float64) - mean) / scale

        stds = dict(self._input_standardizers())
        outs = self._output_standardizers()
        new_inputs = {k: standardise(v, stds[k]) if k in stds else v for k, v in inputs.items()}
        new_targets = {k: standardise(v, outs[k]) if k in outs and v is not None else v for k, v in targets.items()}
        return new_inputs, new_targets

    def begin_standardised_training_(self) -> StandardisedTraining:
        """Prepare to train on the arrays of :meth:`standardise_arrays` (default: nothing to do)."""
        return self

    def end_standardised_training_(self) -> StandardisedTraining:  # pragma: no cover - abstract
        """After training: make the network take raw inputs and give raw outputs (in place)."""
        raise NotImplementedError


class FoldedStandardisation(StandardisedTraining):
    """Base of networks that train on standardised arrays and predict with the standardisation folded in.

    Subclasses also hold an ``nn.Sequential`` ``mlp`` of linear layers and activations; the unfolded network
    never applies its standardizers, it always works in standardised units. After training
    (:meth:`end_standardised_training_`), :meth:`fold_standardisation_` rewrites the first and last linear
    layers so that the network maps raw inputs to raw outputs and resets the standardizers to the identity.
    Folding is idempotent, and a state saved before folding existed (real statistics, unfolded weights) gives
    the same network after :meth:`fold_standardisation_`.
    """

    mlp: nn.Sequential

    def end_standardised_training_(self) -> FoldedStandardisation:
        return self.fold_standardisation_()

    @torch.no_grad()
    def fold_standardisation_(self) -> FoldedStandardisation:
        """Fold the standardizers into the first and last linear layers (in place, float64 arithmetic).

        First layer ``W (u - m) / s + b = (W / s) u + (b - (W / s) m)``; last layer (standardised output
        ``o``, target ``o s + m``): ``W' = s W``, ``b' = s b + m``. The standardizers become the identity.
        """
        linears = [m for m in self.mlp if isinstance(m, nn.Linear)]
        first, last = linears[0], linears[-1]
        stds = [std for _, std in self._input_standardizers()]
        mean = torch.cat([std.mean.detach().double().cpu() for std in stds])
        scale = torch.cat([std.scale.detach().double().cpu() for std in stds])
        w = first.weight.detach().double().cpu() / scale[None, :]
        b = first.bias.detach().double().cpu() - w @ mean
        first.weight.copy_(w.to(first.weight.dtype))
        first.bias.copy_(b.to(first.bias.dtype))
        for std in self._output_standardizers().values():
            s_out, m_out = std.scale.detach().double().cpu(), std.mean.detach().double().cpu()
            last.weight.copy_((s_out[:, None] * last.weight.detach().double().cpu()).to(last.weight.dtype))
            last.bias.copy_((s_out * last.bias.detach().double().cpu() + m_out).to(last.bias.dtype))
        for std in stds + list(self._output_standardizers().values()):
            std.mean.zero_()
            std.scale.fill_(1.0)
        return self


class ScoreNet(FoldedStandardisation):
    """``x -> t_hat(x)``: an MLP trained on standardised inputs and targets (see :class:`FoldedStandardisation`).

    Parameters
    ----------
    n_features, n_outputs : int
    hidden_layer_sizes, activation
        See :func:`build_mlp`.
    x_mean, x_scale : array-like, optional
        Input standardisation.
    y_mean, y_scale : array-like, optional
        Output standardisation: the unfolded network predicts ``(t - y_mean) / y_scale`` (target ``"t_xz"``).
    """

    def __init__(self, n_features: int, n_outputs: int, hidden_layer_sizes: Sequence[int] = (100, 100),
                 activation: str = "tanh", x_mean: Any = None, x_scale: Any = None, y_mean: Any = None,
                 y_scale: Any = None) -> None:
        super().__init__()
        self.x_std = Standardizer(n_features, x_mean, x_scale)
        self.mlp = build_mlp(n_features, n_outputs, hidden_layer_sizes, activation)
        self.y_std = Standardizer(n_outputs, y_mean, y_scale)

    def _input_standardizers(self) -> list[tuple[str, Standardizer]]:
        return [("x", self.x_std)]

    def _output_standardizers(self) -> dict[str, Standardizer]:
        return {"t_xz": self.y_std}

    def forward(self, x: Tensor) -> Tensor:
        return self.mlp(x)


class RatioNet(FoldedStandardisation):
    """Parameterised ratio network: ``log r_hat(x | theta) = mlp([x, theta])``.

    ``theta`` holds the parameters the ratio depends on: ``theta0`` (``n_parameters`` columns) for singly
    parameterised estimators, ``[theta0, theta1]`` for doubly parameterised ones. The network trains on
    standardised ``x`` and ``theta`` and predicts from raw ones after folding (:class:`FoldedStandardisation`);
    the score is ``d log r / d theta`` per unit of the input ``theta``: of the standardised one in training
    (where :meth:`standardise_arrays` scales the joint-score targets to match), of the raw one once folded.

    Parameters
    ----------
    n_features, n_theta : int
        Columns of ``x`` and of ``theta``.
    hidden_layer_sizes, activation
        See :func:`build_mlp`.
    x_mean, x_scale, theta_mean, theta_scale : array-like, optional
        Input standardisation.
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

    def _input_standardizers(self) -> list[tuple[str, Standardizer]]:
        return [("x", self.x_std), ("theta", self.theta_std)]

    def standardise_arrays(self, inputs: Mapping[str, np.ndarray], targets: Mapping[str, np.ndarray | None]
                           ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray | None]]:
        """Inputs standardised, and the joint scores in standardised parameter units (float64).

        The unfolded network's score is ``d log r / d theta_std``, and ``d/d theta_std = s d/d theta`` with ``s``
        the scale of ``theta``: ``t_xz`` (at ``theta0``) becomes ``s[:p] t_xz`` and ``t_xz1`` (at ``theta1``,
        doubly parameterised) ``s[p:] t_xz1``, once here, so that the score term compares scores in MadMiner's
        standardised units (``scale_parameters``) with no conversion in the twice-differentiated training graph.
        """
        new_inputs, new_targets = super().standardise_arrays(inputs, targets)
        s = self.theta_std.scale.detach().cpu().double().numpy()
        for name, first in (("t_xz", 0), ("t_xz1", 1)):  # t_xz1 follows theta0's p columns
            t = new_targets.get(name)
            if t is not None:
                t = np.asarray(t, dtype=np.float64)
                p = t.shape[1] if t.ndim == 2 else 1
                cols = s[first * p:(first + 1) * p]
                new_targets[name] = t * cols if t.ndim == 2 else t * cols[0]
        return new_inputs, new_targets

    def log_r(self, x: Tensor, theta: Tensor) -> Tensor:
        """Estimated ``log r``, shape (n,)."""
        return self.mlp(torch.cat([x, theta], dim=1)).squeeze(1)

    def log_r_grid(self, x: Tensor, rows: Tensor) -> Tensor:
        """``log r`` of every event at every parameter row, shape ``(n_rows, n_events)``.

        Equal to :meth:`log_r` on the tiled pairs up to float rounding, but the first linear layer is split:
        its ``x`` part is computed once per event and its ``theta`` part (with the bias) once per row, so no
        tiled inputs are built and the first matrix product runs on ``n_events + n_rows`` rows, not on
        ``n_events * n_rows``.
        """
        first, *rest = self.mlp  # (slicing an nn.Sequential would build a new module on every call)
        n_x = x.shape[1]
        hx = nn.functional.linear(x, first.weight[:, :n_x])
        ht = nn.functional.linear(rows, first.weight[:, n_x:], first.bias)
        h = (ht[:, None, :] + hx[None, :, :]).reshape(-1, hx.shape[1])
        for layer in rest:
            h = layer(h)
        return h.reshape(rows.shape[0], x.shape[0])

    def log_r_and_score(self, x: Tensor, theta: Tensor, create_graph: bool = False) -> tuple[Tensor, Tensor]:
        """``log r`` (n,) and ``d log r / d theta`` (n, n_theta); needs gradients enabled."""
        theta = theta.detach().requires_grad_(True)
        log_r = self.log_r(x, theta)
        (t,) = torch.autograd.grad(log_r.sum(), theta, create_graph=create_graph)
        return log_r, t  # per unit of the input theta: standardised in training, raw once folded

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


#: Callback hooks called per batch; :class:`SkminerNet` calls only the callbacks that implement them.
_BATCH_HOOKS = ("on_batch_begin", "on_batch_end", "on_grad_computed")


class _HistoryRowProxy:
    """Writes ``row[key] = value`` through ``history.record_batch`` (histories other than skorch's ``History``)."""

    def __init__(self, history: Any) -> None:
        self.history = history

    def __setitem__(self, key: str, value: Any) -> None:
        self.history.record_batch(key, value)


class _StopTraining(KeyboardInterrupt):
    """A callback ending training the skorch way (``raise KeyboardInterrupt``, as skorch's ``EarlyStopping``).

    skorch's ``partial_fit`` swallows every ``KeyboardInterrupt``, so a Ctrl-C of the user and a callback's stop
    look alike there; :class:`SkminerNet` tags the callbacks' ones with this class to tell them apart.
    """


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

    def notify(self, method_name: str, **cb_kwargs: Any) -> None:
        if method_name == "on_train_end" and getattr(self, "_user_interrupt", False):
            return  # the fit is aborted: no end-of-training callbacks on a half-finished epoch
        try:
            super().notify(method_name, **cb_kwargs)
        except _StopTraining:
            raise
        except KeyboardInterrupt as err:  # a callback stopping training (skorch's convention)
            raise _StopTraining(*err.args) from err

    def fit_loop(self, X: Any, y: Any = None, epochs: int | None = None, **fit_params: Any) -> SkminerNet:
        try:
            return super().fit_loop(X, y, epochs=epochs, **fit_params)
        except _StopTraining:
            raise
        except KeyboardInterrupt:  # the user's Ctrl-C (SIGINT): remembered, re-raised after skorch's on_train_end
            self._user_interrupt = True
            raise

    def partial_fit(self, X: Any, y: Any = None, classes: Any = None, **fit_params: Any) -> SkminerNet:
        """skorch's ``partial_fit``, except that a Ctrl-C stops the fit with ``KeyboardInterrupt``.

        skorch ends the training loop quietly on any ``KeyboardInterrupt`` and returns a fitted net, so a user
        who pressed Ctrl-C to abort got a model trained for an arbitrary number of epochs, indistinguishable from
        a finished one (and ``skminer run`` recorded the train stage as done). Callbacks that stop training
        (early stopping) still end it normally.
        """
        self._user_interrupt = False
        try:
            super().partial_fit(X, y, classes, **fit_params)
        finally:
            interrupted, self._user_interrupt = self._user_interrupt, False
        if interrupted:
            epoch = len(self.history)
            raise KeyboardInterrupt(f"training interrupted by the user in epoch {epoch}; the fit did not finish")
        return self

    def get_loss(self, y_pred: Any, y_true: Any, X: Any = None, training: bool = False) -> Tensor:
        # targets are dicts of tensors already on the device: no conversion needed
        return self.criterion_(y_pred, y_true)

    def infer(self, x: Any, **fit_params: Any) -> Any:
        # batches are dicts of tensors already on the device (TensorBatchIterator): skip skorch's to_tensor
        if isinstance(x, Mapping) and not fit_params:
            return self.module_(**x)
        return super().infer(x, **fit_params)

    def run_single_epoch(self, iterator: Any, training: bool, prefix: str, step_fn: Any, **fit_params: Any) -> None:
        """skorch's pass over the batches, with the per-batch costs that matter at small batches removed.

        Callbacks and history entries are the same as in skorch, but what skorch resolves per batch is resolved
        once per pass: the train/eval mode (``nn.Module.train`` walks every submodule), the epoch's list of
        batch rows, and the callbacks that implement the batch hooks (``notify`` would look up and call every
        callback's no-op hook, and the net's own). The recorded batch size is the length of the first input
        tensor (skorch's ``get_len`` inspects every tensor of the batch).
        """
        if iterator is None:
            return
        self._set_training(training)
        new_row = self._batch_row_factory()
        begin = [cb.on_batch_begin for cb in self._batch_hooks_["on_batch_begin"]]
        end = [cb.on_batch_end for cb in self._batch_hooks_["on_batch_end"]]
        loss_key, size_key = prefix + "_loss", prefix + "_batch_size"
        batch_count = 0
        for batch in iterator:
            row = new_row()  # skorch's NeuralNet.on_batch_begin, before the callbacks' (they may record into it)
            for hook in begin:
                hook(self, batch=batch, training=training)
            step = step_fn(batch, **fit_params)
            row[loss_key] = step["loss"].item()
            row[size_key] = int(next(iter(batch[0].values())).shape[0])
            for hook in end:
                hook(self, batch=batch, training=training, **step)
            batch_count += 1
        self.history.record(prefix + "_batch_count", batch_count)

    def _batch_row_factory(self) -> Callable[[], Any]:
        """A function that appends a new batch row to the current epoch of the history and returns it.

        A skorch ``History`` is a list of epoch dicts each holding a list of batch dicts: the current epoch's list
        is looked up once, not through ``History.__getitem__``'s general index resolution per batch. Other
        histories (e.g. a distributed one) keep their own bookkeeping (``new_batch`` and ``record_batch``).
        """
        history = self.history
        if type(history) is not History:
            def new_row() -> _HistoryRowProxy:
                history.new_batch()
                return _HistoryRowProxy(history)
            return new_row
        rows = list.__getitem__(history, -1)["batches"]

        def new_plain_row() -> dict[str, Any]:
            row: dict[str, Any] = {}
            rows.append(row)
            return row
        return new_plain_row

    def initialize_callbacks(self) -> SkminerNet:
        super().initialize_callbacks()
        self._batch_hooks_ = {name: [cb for _, cb in self.callbacks_
                                     if getattr(type(cb), name, None) is not getattr(Callback, name)]
                              for name in _BATCH_HOOKS}
        return self

    def train_step(self, batch: Any, **fit_params: Any) -> dict[str, Any]:
        """One optimisation step without skorch's closure (the optimizers here take one gradient per step).

        The module is already in training mode (:meth:`run_single_epoch`). Callbacks are notified with
        ``on_grad_computed`` as in skorch.
        """
        self._zero_grad_optimizer()
        Xi, yi = unpack_data(batch)
        y_pred = self.infer(Xi, **fit_params)
        loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        loss.backward()
        if self._batch_hooks_["on_grad_computed"]:
            self.notify("on_grad_computed", named_parameters=TeeGenerator(self.get_all_learnable_params()),
                        batch=batch, training=True)
        self._step_optimizer(None)
        return {"loss": loss, "y_pred": y_pred}

    def validation_step(self, batch: Any, **fit_params: Any) -> dict[str, Any]:
        Xi, yi = unpack_data(batch)
        with torch.set_grad_enabled(bool(self.grad_in_validation)):
            y_pred = self.infer(Xi, **fit_params)
            loss = self.get_loss(y_pred, yi, X=Xi, training=False)
        return {"loss": loss.detach(), "y_pred": _detach(y_pred)}
