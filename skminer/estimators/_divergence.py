"""Whether training diverged: a non-finite training loss, or a kept epoch far worse than the untrained network.

A learning rate that is far too large does not always overflow: the weights can run away to huge but finite
values (``NDE(lr=1e4)``: training loss 6.7e19 in epoch 1 and 8.5e19 in epoch 2; ``CARL(lr=1e6)``: ``log r`` of
+-3e6). Such a model predicts finite nonsense. The reference that says so on the data's own scale is the loss of
the network *as initialised*, measured on the training data before the first step (:class:`InitialLoss`): it is
the loss of a near-trivial predictor (the small initial weights give ``log r`` ~ 0, a score ~ 0 in standardised
units, the base density of a flow), and a fit that works ends below it. A training loss more than
:data:`DIVERGENCE_FACTOR` times the initial loss's magnitude *above* it is not noise (the epoch loss averages
every batch) but a divergence.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from skorch.callbacks import Callback

__all__ = ["DIVERGENCE_FACTOR", "InitialLoss", "training_divergence"]

#: A kept epoch whose training loss exceeds the initial network's loss ``L0`` by more than this many ``|L0|``
#: counts as diverged.
DIVERGENCE_FACTOR = 10.0


class InitialLoss(Callback):
    """Measure the training criterion of the initialised network on all training rows before the first step, and
    on the validation rows (the rows the validation curve is measured on) before the first epoch's first step.

    Attributes
    ----------
    loss_ : float
        Mean loss per row (nan when there are no rows or the loss is not finite).
    valid_loss_ : float
        Mean loss per validation row (nan without a validation split, or when the loss is not finite): the
        reference for the validation curve, whose rows may have a mean loss far from that of all rows (a
        heavy-tailed joint score puts most of its largest values in the larger part).
    valid_batches_ : list of (float, int)
        Loss and rows of every validation batch behind ``valid_loss_`` (the batches every epoch's validation pass
        sees, in the same order: the untrained network's side of a paired comparison).
    """

    @staticmethod
    def _mean_loss(net: Any, data: Any, batches: list[tuple[float, int]] | None = None) -> float:
        total, rows = 0.0, 0
        training = net.module_.training
        net.module_.eval()
        try:
            with torch.no_grad() if not net.grad_in_validation else torch.enable_grad():
                for batch in net.get_iterator(data, training=False):
                    n = int(next(iter(batch[0].values())).shape[0])
                    loss = float(net.validation_step(batch)["loss"])
                    total += loss * n
                    rows += n
                    if batches is not None:
                        batches.append((loss, n))
        finally:
            net.module_.train(training)
        return total / rows if rows and math.isfinite(total) else float("nan")

    def on_train_begin(self, net: Any, X: Any = None, y: Any = None, **kwargs: Any) -> None:
        self.loss_ = self.valid_loss_ = float("nan")
        self.valid_batches_: list[tuple[float, int]] = []
        self._first_epoch = True
        if X is None or len(X) == 0:
            return
        self.loss_ = self._mean_loss(net, X)

    def on_epoch_begin(self, net: Any, dataset_train: Any = None, dataset_valid: Any = None, **kwargs: Any) -> None:
        if not getattr(self, "_first_epoch", False):
            return
        self._first_epoch = False  # before any step of the first epoch: the untrained network
        if dataset_valid is not None and len(dataset_valid) > 0:
            self.valid_batches_ = []
            self.valid_loss_ = self._mean_loss(net, dataset_valid, self.valid_batches_)


def training_divergence(loss_curve: Sequence[float], initial_loss: float | None, kept_epoch: int) -> str | None:
    """Why training counts as diverged, or None.

    Parameters
    ----------
    loss_curve : sequence of float
        Training loss per epoch.
    initial_loss : float or None
        Loss of the initialised network on the training data (:class:`InitialLoss`; None or nan: unknown, only
        the non-finite check is made).
    kept_epoch : int
        1-based epoch whose weights were kept (``best_epoch_``).

    Returns
    -------
    str or None
        A sentence naming the losses, or None when training did not diverge.
    """
    curve = np.asarray(loss_curve, dtype=np.float64)
    if curve.size == 0:
        return None
    bad = ~np.isfinite(curve)
    if bad.any():
        return (f"the training loss became non-finite in epoch {int(np.argmax(bad)) + 1} of {curve.size} "
                f"({int(bad.sum())} non-finite epochs)")
    if initial_loss is None or not math.isfinite(initial_loss):
        return None
    kept = float(curve[min(max(int(kept_epoch), 1), curve.size) - 1])
    if kept - initial_loss <= DIVERGENCE_FACTOR * abs(initial_loss):
        return None
    return (f"training diverged: the training loss of the kept epoch {int(kept_epoch)} is {kept:.3g}, more than "
            f"{DIVERGENCE_FACTOR:g} times the magnitude of the untrained network's loss {initial_loss:.3g} above it "
            f"(epoch 1: {curve[0]:.3g}, epoch {curve.size}: {curve[-1]:.3g})")
