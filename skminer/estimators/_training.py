"""Training options of the neural estimators as skorch pieces: optimizer, learning-rate schedule, epoch selection.

* :func:`optimizer_settings`: ``optimizer`` in :data:`OPTIMIZERS` -> a torch optimizer class and its skorch
  ``optimizer__*`` keyword arguments (AMSGrad is Adam with ``amsgrad=True``; SGD uses ``momentum``).
* :func:`lr_scheduler`: ``lr_schedule`` in :data:`LR_SCHEDULES` -> a :class:`skorch.callbacks.LRScheduler`
  stepping once per epoch from ``lr`` (first epoch) to ``lr_final`` (epoch ``max_epochs``), or ``None``.
  ``"exponential"`` is MadMiner's schedule ``lr_e = lr (lr_final / lr)^(e / (max_epochs - 1))``.
* :class:`WeightEMA` and :class:`SmoothedValidLoss`: the callbacks behind ``epoch_selection`` (see
  :data:`EPOCH_SELECTIONS` and :class:`~skminer.estimators.base.NeuralEstimatorBase`).
"""

from __future__ import annotations

from typing import Any

import torch
from skorch.callbacks import Callback, LRScheduler
from torch import nn

__all__ = ["OPTIMIZERS", "LR_SCHEDULES", "EPOCH_SELECTIONS", "optimizer_settings", "lr_scheduler", "WeightEMA",
           "SmoothedValidLoss"]

#: Values of the ``optimizer`` parameter.
OPTIMIZERS: tuple[str, ...] = ("adam", "amsgrad", "sgd")
#: Values of the ``lr_schedule`` parameter.
LR_SCHEDULES: tuple[str, ...] = ("constant", "exponential", "cosine")
#: Values of the ``epoch_selection`` parameter.
EPOCH_SELECTIONS: tuple[str, ...] = ("ema", "smoothed", "best", "last")


def optimizer_settings(name: str, momentum: float, weight_decay: float) -> tuple[type[torch.optim.Optimizer],
                                                                                  dict[str, Any]]:
    """Torch optimizer class and skorch ``optimizer__*`` keyword arguments for an ``optimizer`` name.

    Parameters
    ----------
    name : {"adam", "amsgrad", "sgd"}
    momentum : float
        SGD momentum (ignored by Adam/AMSGrad).
    weight_decay : float
        L2 penalty coefficient (PyTorch's ``weight_decay``; coupled, as in :class:`torch.optim.Adam`).

    Returns
    -------
    (type, dict)
    """
    if name == "sgd":
        return torch.optim.SGD, {"optimizer__momentum": float(momentum), "optimizer__weight_decay": float(weight_decay)}
    if name in ("adam", "amsgrad"):
        return torch.optim.Adam, {"optimizer__amsgrad": name == "amsgrad",
                                  "optimizer__weight_decay": float(weight_decay)}
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")


def lr_scheduler(schedule: str, lr: float, lr_final: float, max_epochs: int) -> LRScheduler | None:
    """A per-epoch :class:`skorch.callbacks.LRScheduler` from ``lr`` to ``lr_final``, or ``None`` for "constant".

    Parameters
    ----------
    schedule : {"constant", "exponential", "cosine"}
    lr, lr_final : float
        Learning rates of the first and of the last (``max_epochs``-th) epoch.
    max_epochs : int

    Returns
    -------
    LRScheduler or None
    """
    if schedule == "constant":
        return None
    steps = max(int(max_epochs) - 1, 1)
    if schedule == "exponential":
        gamma = (float(lr_final) / float(lr)) ** (1.0 / steps)
        return LRScheduler(policy=torch.optim.lr_scheduler.ExponentialLR, gamma=gamma)
    if schedule == "cosine":
        return LRScheduler(policy=torch.optim.lr_scheduler.CosineAnnealingLR, T_max=steps, eta_min=float(lr_final))
    raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {schedule!r}")


class SmoothedValidLoss(Callback):
    """Record ``valid_loss_smooth``: an exponential moving average over epochs of the validation loss.

    Parameters
    ----------
    weight : float
        Weight of the newest epoch (``1`` means no smoothing).
    """

    def __init__(self, weight: float = 0.3) -> None:
        self.weight = weight

    def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
        hist = net.history
        current = float(hist[-1, "valid_loss"])
        if len(hist) > 1 and "valid_loss_smooth" in hist[-2]:
            current = self.weight * current + (1.0 - self.weight) * float(hist[-2, "valid_loss_smooth"])
        hist.record("valid_loss_smooth", current)


class WeightEMA(Callback):
    """Exponential moving average of the weights over training batches; validation sees the averaged weights.

    After every training batch ``w_ema <- decay w_ema + (1 - decay) w`` with ``decay = 1 - 1 / (horizon
    n_batches)`` (the average spans about ``horizon`` epochs). The averaged weights are swapped into the module
    for the validation batches, so the recorded ``valid_loss`` and an early-stopping snapshot taken in
    ``on_epoch_end`` (callbacks listed *before* this one) refer to them; training resumes from the raw weights.

    At the end of training the module holds the final averaged weights, unless a callback named
    ``"early_stopping"`` restored an earlier snapshot (taken while the averaged weights were swapped in).

    Parameters
    ----------
    horizon : float
        Averaging span in epochs.
    """

    def __init__(self, horizon: float = 1.0) -> None:
        self.horizon = horizon

    def initialize(self) -> WeightEMA:
        self.ema_: list[torch.Tensor] | None = None
        self.raw_: list[torch.Tensor] | None = None
        self.decay_ = 0.0
        return self

    @staticmethod
    def _params(module: nn.Module) -> list[torch.Tensor]:
        return [p for p in module.parameters()]

    def on_train_begin(self, net: Any, X: Any = None, y: Any = None, **kwargs: Any) -> None:
        self.ema_ = [p.detach().clone() for p in self._params(net.module_)]
        self.raw_ = None

    def on_epoch_begin(self, net: Any, dataset_train: Any = None, **kwargs: Any) -> None:
        n_rows = len(dataset_train) if dataset_train is not None else 1
        n_batches = max(1, -(-n_rows // int(net.batch_size)))
        self.decay_ = 1.0 - 1.0 / max(1.0, float(self.horizon) * n_batches)

    @torch.no_grad()
    def on_batch_end(self, net: Any, batch: Any = None, training: bool = False, **kwargs: Any) -> None:
        if training and self.ema_ is not None:
            torch._foreach_lerp_(self.ema_, [p.detach() for p in self._params(net.module_)], 1.0 - self.decay_)

    @torch.no_grad()
    def _swap_in(self, net: Any) -> None:
        if self.raw_ is None and self.ema_ is not None:
            params = self._params(net.module_)
            self.raw_ = [p.detach().clone() for p in params]
            for p, e in zip(params, self.ema_, strict=True):
                p.copy_(e)

    @torch.no_grad()
    def _swap_out(self, net: Any) -> None:
        if self.raw_ is not None:
            for p, r in zip(self._params(net.module_), self.raw_, strict=True):
                p.copy_(r)
            self.raw_ = None

    def on_batch_begin(self, net: Any, batch: Any = None, training: bool = False, **kwargs: Any) -> None:
        if not training:
            self._swap_in(net)

    def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
        self._swap_out(net)

    @torch.no_grad()
    def on_train_end(self, net: Any, X: Any = None, y: Any = None, **kwargs: Any) -> None:
        self._swap_out(net)
        stopper = dict(net.callbacks_).get("early_stopping")
        restored = (stopper is not None and stopper.load_best and stopper.best_model_weights_ is not None
                    and stopper.best_epoch_ != net.history[-1, "epoch"])
        if not restored and self.ema_ is not None:
            for p, e in zip(self._params(net.module_), self.ema_, strict=True):
                p.copy_(e)
