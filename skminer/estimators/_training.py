"""Training options of the neural estimators as skorch pieces: optimizer, learning-rate schedule, epoch selection.

* :func:`optimizer_settings`: ``optimizer`` in :data:`OPTIMIZERS` -> a torch optimizer class and its skorch
  ``optimizer__*`` keyword arguments (AMSGrad is Adam with ``amsgrad=True``; SGD uses ``momentum``; on CPUs the
  multi-tensor ``foreach`` implementation).
* :func:`lr_scheduler`: ``lr_schedule`` in :data:`LR_SCHEDULES` -> a :class:`skorch.callbacks.LRScheduler`
  stepping once per epoch from ``lr`` (first epoch) to ``lr_final`` (epoch ``max_epochs``), or ``None``.
  ``"exponential"`` is MadMiner's schedule ``lr_e = lr (lr_final / lr)^(e / (max_epochs - 1))``.
* :class:`WeightEMA`, :class:`FinalUnlessWorse` and :class:`SmoothedValidLoss`: the callbacks behind
  ``epoch_selection`` (see :data:`EPOCH_SELECTIONS` and :class:`~skminer.estimators.base.NeuralEstimatorBase`).
* :func:`valid_batch_size`: validation batches small enough for :class:`FinalUnlessWorse`'s paired test.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from skorch.callbacks import Callback, LRScheduler
from torch import nn

logger = logging.getLogger("skminer.estimators")

__all__ = ["OPTIMIZERS", "LR_SCHEDULES", "EPOCH_SELECTIONS", "optimizer_settings", "lr_scheduler", "WeightEMA",
           "FinalUnlessWorse", "SmoothedValidLoss", "valid_batch_size"]

#: Values of the ``optimizer`` parameter.
OPTIMIZERS: tuple[str, ...] = ("adam", "amsgrad", "sgd")
#: Values of the ``lr_schedule`` parameter.
LR_SCHEDULES: tuple[str, ...] = ("constant", "exponential", "cosine")
#: Values of the ``epoch_selection`` parameter.
EPOCH_SELECTIONS: tuple[str, ...] = ("ema", "smoothed", "best", "last")

#: Validation batches aimed at by :func:`valid_batch_size` (the paired test's sample size).
N_VALID_BATCHES = 64
#: Fewest validation batches with which :func:`paired_z` estimates a standard error (with fewer, epoch selection
#: compares two validation losses without one).
MIN_PAIRED_BATCHES = 3


def optimizer_settings(name: str, momentum: float, weight_decay: float, device: str | torch.device = "cpu"
                       ) -> tuple[type[torch.optim.Optimizer], dict[str, Any]]:
    """Torch optimizer class and skorch ``optimizer__*`` keyword arguments for an ``optimizer`` name.

    Parameters
    ----------
    name : {"adam", "amsgrad", "sgd"}
    momentum : float
        SGD momentum (ignored by Adam/AMSGrad).
    weight_decay : float
        L2 penalty coefficient (PyTorch's ``weight_decay``; coupled, as in :class:`torch.optim.Adam`).
    device : str or torch.device
        Training device. On CPUs the optimizers run torch's multi-tensor (``foreach``) implementation, which
        torch itself picks only for CUDA tensors: the same updates bit for bit, without a Python loop over the
        parameters (the single-tensor Adam step was a quarter of a training step at batch 128). Elsewhere
        torch's own default stays.

    Returns
    -------
    (type, dict)
    """
    common = {"optimizer__weight_decay": float(weight_decay)}
    if torch.device(device).type == "cpu":
        common["optimizer__foreach"] = True
    if name == "sgd":
        return torch.optim.SGD, {"optimizer__momentum": float(momentum), **common}
    if name in ("adam", "amsgrad"):
        return torch.optim.Adam, {"optimizer__amsgrad": name == "amsgrad", **common}
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


def valid_batch_size(n_valid: int, largest: int) -> int:
    """Validation batch size: about :data:`N_VALID_BATCHES` batches, at least 16 and at most ``largest`` rows.

    The batches are the units of :class:`FinalUnlessWorse`'s paired test; their size does not change the
    validation loss (a mean over all validation events).
    """
    return int(min(max(16, -(-int(n_valid) // N_VALID_BATCHES)), max(16, int(largest))))


def _batch_losses(net: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validation loss and size of each batch of the current epoch (from skorch's history)."""
    batches = [b for b in net.history[-1]["batches"] if "valid_loss" in b]
    return (np.array([b["valid_loss"] for b in batches], dtype=np.float64),
            np.array([b["valid_batch_size"] for b in batches], dtype=np.float64))


def paired_z(loss: np.ndarray, reference: np.ndarray, sizes: np.ndarray) -> float:
    """z statistic of ``mean(loss) - mean(reference)`` from per-batch losses of the same validation batches.

    Both epochs see the same events in the same batches, so the difference per batch cancels the (large)
    event-to-event spread of noisy targets and keeps only how the two networks differ. Returns ``nan`` with
    fewer than :data:`MIN_PAIRED_BATCHES` batches, ``inf`` (``-inf``) for a positive (negative) difference without
    spread.
    """
    if len(loss) < MIN_PAIRED_BATCHES:
        return float("nan")
    w = sizes / sizes.sum()
    d = loss - reference
    mean = float(np.sum(w * d))
    var = float(np.sum(w**2 * (d - mean) ** 2)) * len(d) / (len(d) - 1)
    if var <= 0.0:
        return 0.0 if mean == 0.0 else float(np.copysign(np.inf, mean))
    return mean / var**0.5


class FinalUnlessWorse(Callback):
    """Keep the final weights unless the epoch of lowest validation loss is significantly better.

    With a decaying learning rate the last epochs are the most converged, and the validation loss of
    augmented-data losses is noisy (its targets ``r_xz``, ``t_xz`` are heavy-tailed): the raw minimum is often
    an early epoch that only looks better by chance. So the epoch of lowest validation loss is snapshotted
    (listed before :class:`WeightEMA`, the snapshot holds the averaged weights that were validated) and
    restored at the end only if the final epoch is worse than it by more than ``z`` standard errors of a
    paired comparison over the validation batches (:func:`paired_z`); otherwise the final weights stay. (The
    per-batch differences estimate the standard error; consecutive epochs are correlated, so a run of epochs
    each a little worse is no more evidence than one.)
    With fewer than :data:`MIN_PAIRED_BATCHES` validation batches the plain comparison decides.

    The same test stops training early: after ``patience`` epochs in a row that are each worse than the best by
    more than ``z`` standard errors (overfitting), not after ``patience`` epochs without a new minimum, which
    under noisy validation losses cut the learning-rate decay short (an ALICES fit stopped at epoch 23 of 30 and
    kept epoch 13).

    Parameters
    ----------
    z : float
        Threshold in standard errors (1: the one-standard-error rule; a final epoch as good as the best is
        then replaced by it in about 16% of fits, which costs little, while keeping an overfitted final epoch
        costs much: see ``docs/howto/training.md``).
    patience : int or None
        Significantly worse epochs in a row that stop training (None: never stop early).
    sink : callable, optional
        Receives one line when training stops early and one saying which weights are returned (default: DEBUG
        log).

    A non-finite validation loss counts as significantly worse than any finite one: a fit that diverges keeps
    (or returns to) its last finite snapshot; without any finite epoch the final weights stay, and the
    estimator reports the divergence.

    Attributes
    ----------
    best_epoch_ : int
        1-based epoch whose weights training returns.
    restored_ : bool
        Whether the final weights were replaced by the snapshot.
    z_ : float
        The final epoch's paired z against the snapshot: 0 when the final epoch is itself the lowest (nothing to
        test), nan when no test could be made (too few validation batches, or no finite epoch).
    """

    def __init__(self, z: float = 1.0, patience: int | None = None, sink: Any = None) -> None:
        self.z = z
        self.patience = patience
        self.sink = sink

    def initialize(self) -> FinalUnlessWorse:
        self.best_loss_ = np.inf
        self.best_epoch_ = 0
        self.best_state_: dict[str, torch.Tensor] | None = None
        self.best_batches_: tuple[np.ndarray, np.ndarray] | None = None
        self.restored_ = False
        self.z_ = float("nan")
        self.worse_in_a_row_ = 0
        return self

    def on_train_begin(self, net: Any, X: Any = None, y: Any = None, **kwargs: Any) -> None:
        self.initialize()

    def _say(self, text: str) -> None:
        (self.sink or logger.debug)(text)

    def _worse_than_best(self, net: Any) -> tuple[bool, float]:
        """Whether the current epoch is worse than the snapshot by more than ``z`` standard errors, and z."""
        current, sizes = _batch_losses(net)
        loss = float(net.history[-1, "valid_loss"])
        if not np.isfinite(loss) or not np.all(np.isfinite(current)):
            return True, float("inf")
        if self.best_batches_ is None:  # no finite epoch yet: nothing to compare with
            return False, float("nan")
        best, best_sizes = self.best_batches_
        z = float("nan")
        if len(current) == len(best) and np.array_equal(sizes, best_sizes):
            z = paired_z(current, best, sizes)
        if np.isnan(z):
            return loss > self.best_loss_, z
        return z > self.z, z

    def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
        loss = float(net.history[-1, "valid_loss"])
        if loss < self.best_loss_:
            self.best_loss_ = loss
            self.best_epoch_ = int(net.history[-1, "epoch"])
            self.best_state_ = {k: v.detach().clone() for k, v in net.module_.state_dict().items()}
            self.best_batches_ = _batch_losses(net)
            self.worse_in_a_row_ = 0
            return
        worse, _ = self._worse_than_best(net)
        self.worse_in_a_row_ = self.worse_in_a_row_ + 1 if worse else 0
        if self.patience is not None and self.worse_in_a_row_ >= self.patience:
            self._say(f"Stopping: {self.worse_in_a_row_} epochs in a row validated worse than epoch "
                      f"{self.best_epoch_} by more than {self.z:g} standard errors (or not finite).")
            raise KeyboardInterrupt  # how skorch callbacks end training (skorch.callbacks.EarlyStopping)

    @torch.no_grad()
    def on_train_end(self, net: Any, X: Any = None, y: Any = None, **kwargs: Any) -> None:
        last = int(net.history[-1, "epoch"])
        self.restored_ = False
        if self.best_state_ is None or self.best_epoch_ == last:
            if self.best_state_ is not None:  # the final epoch is the lowest: it differs from itself by 0
                self.z_ = 0.0
            self.best_epoch_ = last
            return
        worse, self.z_ = self._worse_than_best(net)
        if worse:
            net.module_.load_state_dict(self.best_state_)
            self.restored_ = True
            self._say(f"Restoring epoch {self.best_epoch_}: the final epoch {last} validated worse by "
                      f"z = {self.z_:.2f} standard errors (threshold {self.z:g}).")
        else:
            self._say(f"Keeping the final weights (epoch {last}): the lowest validation loss (epoch "
                      f"{self.best_epoch_}) is better by only z = {self.z_:.2f} standard errors.")
            self.best_epoch_ = last


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

    Every ``k`` training batches ``w_ema <- d^k w_ema + (1 - d^k) w`` with ``d = 1 - 1 / (horizon n_batches)``
    (the average spans about ``horizon`` epochs) and ``k = max(1, n_batches // 128)``: at least 128 updates
    per epoch, so that the average is as smooth as a per-batch one while large epochs do not pay an update
    per batch (it cost 5-10% of the training time at batch 128). The averaged weights are swapped into the module
    for the validation batches, so the recorded ``valid_loss`` and an early-stopping snapshot taken in
    ``on_epoch_end`` (callbacks listed *before* this one) refer to them; training resumes from the raw weights.

    At the end of training the module holds the final averaged weights, unless a callback listed before this
    one restored an earlier snapshot (taken while the averaged weights were swapped in) and says so with a true
    ``restored_`` attribute (:class:`FinalUnlessWorse`).

    Parameters
    ----------
    horizon : float
        Averaging span in epochs.
    """

    #: Training batches per epoch above which the average is updated every ``n_batches // UPDATES`` batches.
    UPDATES = 128

    def __init__(self, horizon: float = 1.0) -> None:
        self.horizon = horizon

    def initialize(self) -> WeightEMA:
        self.ema_: list[torch.Tensor] | None = None
        self.raw_: list[torch.Tensor] | None = None
        self.live_: list[torch.Tensor] = []
        self.decay_ = 0.0
        self.stride_ = 1
        self.count_ = 0
        return self

    @staticmethod
    def _params(module: nn.Module) -> list[torch.Tensor]:
        return [p for p in module.parameters()]

    def on_train_begin(self, net: Any, X: Any = None, y: Any = None, **kwargs: Any) -> None:
        self.live_ = [p.detach() for p in self._params(net.module_)]  # views of the trained parameters
        self.ema_ = [p.clone() for p in self.live_]
        self.raw_ = None

    def on_epoch_begin(self, net: Any, dataset_train: Any = None, **kwargs: Any) -> None:
        n_rows = len(dataset_train) if dataset_train is not None else 1
        n_batches = max(1, -(-n_rows // int(net.batch_size)))
        self.stride_ = max(1, n_batches // self.UPDATES)
        self.decay_ = (1.0 - 1.0 / max(1.0, float(self.horizon) * n_batches)) ** self.stride_
        self.count_ = 0

    def on_batch_end(self, net: Any, batch: Any = None, training: bool = False, **kwargs: Any) -> None:
        # no torch.no_grad() needed (its context manager cost more Python calls per batch than the update):
        # the average and the detached parameter views do not require gradients, so autograd records nothing
        if training and self.ema_ is not None:
            self.count_ += 1
            if self.count_ % self.stride_ == 0:
                torch._foreach_lerp_(self.ema_, self.live_, 1.0 - self.decay_)

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
        # A callback that ends training raises in on_epoch_end, before this callback swaps the raw weights back:
        # they are dropped, never copied back over a restored snapshot (which they silently were before).
        self.raw_ = None
        restored = any(getattr(cb, "restored_", False) for _, cb in net.callbacks_)
        if not restored and self.ema_ is not None:
            for p, e in zip(self._params(net.module_), self.ema_, strict=True):
                p.copy_(e)
