"""Shared base class of the neural estimators (training through a private skorch net, prediction, persistence).

Subclasses (SALLY, the ratio estimators, and flows/SALLINO/ensembles added on top) implement

* ``_build_module(self, **stats) -> torch.nn.Module``: the network, built from hyperparameters and fitted shape
  attributes (``n_features_in_`` ...). ``stats`` are standardisation statistics passed at fit time; when the
  state is restored they are omitted and come back through the module's state dict (buffers).
* ``_build_criterion(self) -> torch.nn.Module``: the loss ``criterion(y_pred, y_true)`` (module output and the
  dict of target tensors).
* ``_fitted_attributes``: names of fitted attributes (besides the ones listed in
  :attr:`NeuralEstimatorBase._base_fitted_attributes`) that :meth:`~NeuralEstimatorBase._get_fitted_state`
  must save; they must be ints, floats, bools, strings, None, lists/tuples of those, or numpy arrays.
* ``_grad_in_validation``: whether validation losses need autograd (losses with ``d/d theta`` terms).

and call :meth:`NeuralEstimatorBase._train` from ``fit`` with dicts of numpy arrays: the module inputs (keys
are the ``forward`` argument names) and the loss targets.
"""

from __future__ import annotations

import logging
import numbers
import warnings
from collections.abc import Callable, Mapping, Sequence
from numbers import Integral
from typing import Any, ClassVar

import numpy as np
import torch
from scipy.special import expit
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from skorch.callbacks import EarlyStopping
from torch import nn

from .._warnings import user_stacklevel
from ..threads import limit_threads
from ._constraints import IntInterval, RealInterval
from ._convergence import epoch_loss_error, initial_monitored_loss, training_unconverged
from ._divergence import InitialLoss, training_divergence
from ._net import (
    ACTIVATIONS,
    FoldedStandardisation,
    LogSink,
    RandomValidSplit,
    SkminerNet,
    StandardisedTraining,
    TensorBatchIterator,
    TensorDictDataset,
    check_hidden_layer_sizes,
    init_module_,
)
from ._state_check import check_fitted_attributes, check_module_state
from ._torch_utils import as_float_tensor, resolve_device, seed_from_random_state, to_numpy, torch_generator
from ._training import (
    EPOCH_SELECTIONS,
    LR_SCHEDULES,
    MIN_PAIRED_BATCHES,
    OPTIMIZERS,
    FinalUnlessWorse,
    SmoothedValidLoss,
    WeightEMA,
    lr_scheduler,
    optimizer_settings,
    valid_batch_size,
)

logger = logging.getLogger("skminer.estimators")

__all__ = ["NeuralEstimatorBase", "ClassifierOutputMixin", "STATE_FORMAT_VERSION", "EVAL_BATCH_SIZE",
           "EVAL_BATCH_SIZES", "eval_batch_size"]

#: Version tag of the dict returned by ``_get_fitted_state``.
STATE_FORMAT_VERSION = 1
#: Rows per forward pass at prediction time on accelerators (large blocks keep them busy).
EVAL_BATCH_SIZE = 65536
#: Rows per forward pass by device type where it differs from :data:`EVAL_BATCH_SIZE`. On CPUs the
#: activations of a few thousand rows stay in cache: 65536-row blocks evaluated 1.2-1.6x slower than
#: 2048-8192-row ones (``benchmarks/bench_evaluation.py --chunks``).
EVAL_BATCH_SIZES: dict[str, int] = {"cpu": 4096}


def eval_batch_size(device: str | torch.device) -> int:
    """Rows per forward pass at prediction time on ``device`` (:data:`EVAL_BATCH_SIZES`, else
    :data:`EVAL_BATCH_SIZE`)."""
    return EVAL_BATCH_SIZES.get(torch.device(device).type, EVAL_BATCH_SIZE)

def _store_params(estimator: BaseEstimator, arguments: Mapping[str, Any]) -> None:
    """Set every ``__init__`` argument as an attribute of the same name (``arguments = locals()``)."""
    for name, value in arguments.items():
        if name not in ("self", "__class__"):
            setattr(estimator, name, value)


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _primitive(value: Any) -> Any:
    """Convert a fitted attribute / parameter to types ``torch.load(weights_only=True)`` can read back."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, np.ndarray):
        if value.dtype == object or value.dtype.kind in "US":
            return [_primitive(v) for v in value.tolist()]
        return value.copy()
    if isinstance(value, (list, tuple)):
        return [_primitive(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _primitive(v) for k, v in value.items()}
    raise TypeError(f"cannot store {type(value).__name__} in a fitted state")


class NeuralEstimatorBase(BaseEstimator):
    """Base class: declared hyperparameters, the skorch training loop, batched evaluation, state export/import.

    Not for direct use. All parameters are keyword-only. The public parameters common to all neural estimators
    are

    hidden_layer_sizes : tuple of int
        Widths of the hidden layers.
    activation : str
        Hidden-layer activation, one of :data:`skminer.estimators._net.ACTIVATIONS`.
    optimizer : {"adam", "amsgrad", "sgd"}
        Adam, Adam with the AMSGrad correction, or stochastic gradient descent with ``momentum``.
    lr : float
        Learning rate of the first epoch.
    lr_schedule : {"exponential", "cosine", "constant"}
        Per-epoch learning-rate schedule from ``lr`` to ``lr_final`` at epoch ``max_epochs``: MadMiner's
        exponential decay ``lr (lr_final / lr)^(e / (max_epochs - 1))``, cosine annealing, or constant ``lr``.
    lr_final : float
        Learning rate of the last epoch (ignored by ``"constant"``).
    momentum : float
        SGD momentum (``optimizer="sgd"`` only).
    weight_decay : float
        L2 penalty on the weights (PyTorch's ``weight_decay``).
    batch_size : int
        Training mini-batch size.
    max_epochs : int
        Maximum number of passes over the training data.
    early_stopping : bool
        Hold out a random ``validation_fraction`` of the data, select the epoch on it and stop early after
        ``patience`` epochs (see ``patience``). If false, train on all data for
        ``max_epochs`` epochs and keep the final (``"ema"``: averaged) weights.
    epoch_selection : {"ema", "smoothed", "best", "last"}
        Which weights training returns (with a validation split). ``"ema"``: an exponential moving average of
        the weights over about one epoch of batches; the final averaged weights, unless the epoch of lowest
        validation loss beats them by more than one standard error of a paired comparison over the validation
        batches (then that epoch's averaged weights; :class:`~skminer.estimators._training.FinalUnlessWorse`);
        ``"smoothed"``: the epoch minimising an exponential moving average (weight 0.3) of the validation loss;
        ``"best"``: the epoch minimising the raw validation loss; ``"last"``: the final epoch. The validation losses of
        augmented-data losses are noisy (their targets ``r_xz``, ``t_xz`` are), so the raw minimum of ``"best"``
        often lands on an early, still noisy epoch; see the measurements in ``benchmarks/bench_accuracy.py``
        and ``docs/howto/training.md``.
    validation_fraction : float
        Fraction of the training data held out for early stopping (0, or too few events for a non-empty
        validation set, disables the split and hence early stopping and epoch selection; a fraction above 0
        that rounds to an empty split warns).
    patience : int
        Epochs before stopping early: with ``epoch_selection="ema"``, epochs in a row whose validation loss is
        worse than the best one's by more than one standard error (overfitting); otherwise epochs without a
        new validation minimum.
    device : str
        Torch device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.
    n_threads : int or None
        Threads of torch and the BLAS/OpenMP libraries while fitting and predicting (the caller's settings are
        restored afterwards). None: :func:`skminer.threads.default_threads` (``OMP_NUM_THREADS``, else the CPUs
        this process may use that other work leaves idle).
    random_state : None, int, RandomState or Generator
        Seeds weight initialisation, the validation split and batch shuffling (locally: the global numpy and
        torch generators are neither seeded nor consumed). Refits agree to the last digit only on the same number
        of threads: with ``n_threads=None`` that number follows the load of the machine, so set ``n_threads`` (or
        ``OMP_NUM_THREADS``) for bitwise reproducibility; other thread counts change float32 sums in the last
        digits.
    verbose : int
        0: quiet; >= 1: log the per-epoch table at INFO level (logger ``skminer.estimators``).

    Fitted attributes (all estimators): ``net_`` (the private skorch net), ``n_features_in_``, ``n_epochs_``,
    ``best_epoch_`` (1-based epoch whose weights were kept), ``loss_curve_`` (training loss per epoch),
    ``validation_loss_curve_`` (list, or None without validation), and the outcome of epoch selection (saved
    with the estimator; absent from files written before skminer recorded it):
    ``selection_restored_`` (bool: the final weights were replaced by those of epoch ``best_epoch_``),
    ``selection_z_`` (float: with ``epoch_selection="ema"``, the final epoch's paired z against the epoch of
    lowest validation loss, :class:`~skminer.estimators._training.FinalUnlessWorse`; 0 when the final epoch is
    itself the lowest; nan without that test),
    ``selection_worse_in_a_row_`` (int: epochs at the end of training that counted towards ``patience``), and
    ``initial_loss_`` (float: the training loss of the network as initialised, on all training rows before the
    first step; fit warns when the kept epoch's training loss lies more than
    :data:`~skminer.estimators._divergence.DIVERGENCE_FACTOR` times its magnitude above it, i.e. training
    diverged, or when the training loss became non-finite), and ``initial_validation_loss_`` (float: the same on
    the validation rows, nan without a validation split; the reference of the ``ConvergenceWarning`` rule for the
    validation curve).
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "hidden_layer_sizes": ["array-like", IntInterval(1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "optimizer": [StrOptions(set(OPTIMIZERS))],
        "lr": [RealInterval(0, np.inf, closed="neither")],
        "lr_schedule": [StrOptions(set(LR_SCHEDULES))],
        "lr_final": [RealInterval(0, np.inf, closed="neither")],
        "momentum": [RealInterval(0, 1, closed="left")],
        "weight_decay": [RealInterval(0, np.inf, closed="left")],
        "batch_size": [IntInterval(1, None, closed="left")],
        "max_epochs": [IntInterval(1, None, closed="left")],
        "early_stopping": ["boolean"],
        "epoch_selection": [StrOptions(set(EPOCH_SELECTIONS))],
        "validation_fraction": [RealInterval(0, 1, closed="left")],
        "patience": [IntInterval(1, None, closed="left")],
        "device": [str, torch.device, None],
        "n_threads": [IntInterval(1, None, closed="left"), None],
        "random_state": ["random_state"],
        "verbose": [Interval(Integral, 0, None, closed="left"), "boolean"],
    }

    _base_fitted_attributes: ClassVar[tuple[str, ...]] = (
        "n_features_in_", "feature_names_in_", "n_epochs_", "best_epoch_", "loss_curve_", "validation_loss_curve_",
        "selection_restored_", "selection_z_", "selection_worse_in_a_row_", "initial_loss_",
        "initial_validation_loss_",
    )
    _fitted_attributes: ClassVar[tuple[str, ...]] = ()
    _tuple_params: ClassVar[tuple[str, ...]] = ("hidden_layer_sizes",)
    _grad_in_validation: ClassVar[bool] = False

    def __init__(self, *, hidden_layer_sizes: tuple[int, ...] = (100, 100, 100), activation: str = "tanh",
                 optimizer: str = "adam", lr: float = 1e-3, lr_schedule: str = "exponential", lr_final: float = 1e-4,
                 momentum: float = 0.9, weight_decay: float = 0.0, batch_size: int = 128, max_epochs: int = 50,
                 early_stopping: bool = True, epoch_selection: str = "ema", validation_fraction: float = 0.25,
                 patience: int = 10, device: str = "cpu", n_threads: int | None = None, random_state: Any = None,
                 verbose: int = 0) -> None:
        _store_params(self, locals())

    # ------------------------------------------------------------------ hooks for subclasses
    def _build_module(self, **stats: Any) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def _build_criterion(self) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------------------ checks
    def _check_params(self) -> None:
        """What ``_parameter_constraints`` cannot express: layer widths, device availability."""
        check_hidden_layer_sizes(self.hidden_layer_sizes)
        resolve_device(self.device)

    # ------------------------------------------------------------------ training
    def _new_module(self, generator: torch.Generator | None = None, **stats: Any) -> nn.Module:
        # construction draws PyTorch's default init from the global RNG: fork it so nothing global changes,
        # then re-initialise from the local generator
        with torch.random.fork_rng(devices=[]):
            module = self._build_module(**stats)
        if generator is not None:
            init_module_(module, generator)
        return module

    def _training_callbacks(self, use_valid: bool) -> list[tuple[str, Any]]:
        """skorch callbacks: learning-rate schedule, then epoch selection (order matters, see WeightEMA)."""
        callbacks: list[tuple[str, Any]] = [("initial_loss", InitialLoss())]  # the divergence reference
        scheduler = lr_scheduler(self.lr_schedule, self.lr, self.lr_final, self.max_epochs)
        if scheduler is not None:
            callbacks.append(("lr_scheduler", scheduler))
        selection = self.epoch_selection
        monitor = "valid_loss"
        if use_valid and selection == "smoothed":
            callbacks.append(("smoothed_valid_loss", SmoothedValidLoss()))
            monitor = "valid_loss_smooth"
        if use_valid and selection == "ema":  # snapshots the averaged weights: listed before weight_ema
            callbacks.append(("epoch_selection", FinalUnlessWorse(patience=int(self.patience),
                                                                  sink=LogSink(self.verbose))))
        elif use_valid:
            callbacks.append(("early_stopping", EarlyStopping(monitor=monitor, patience=int(self.patience),
                                                              load_best=selection in ("best", "smoothed"),
                                                              threshold=0.0, sink=LogSink(self.verbose))))
        if selection == "ema":
            callbacks.append(("weight_ema", WeightEMA()))
        return callbacks

    def _make_net(self, module: nn.Module, criterion: nn.Module, *, seeds: Sequence[int] = (0, 0),
                  n_rows: int = 0) -> SkminerNet:
        """The private skorch net around ``module`` (validation split only when ``early_stopping``)."""
        device = resolve_device(self.device)
        use_valid = bool(self.early_stopping) and RandomValidSplit.n_valid(n_rows, self.validation_fraction) > 0
        optimizer, optimizer_kwargs = optimizer_settings(self.optimizer, self.momentum, self.weight_decay,
                                                             device)
        return SkminerNet(
            module=module,
            criterion=criterion,
            optimizer=optimizer,
            lr=float(self.lr),
            max_epochs=int(self.max_epochs),
            batch_size=int(self.batch_size),
            train_split=RandomValidSplit(self.validation_fraction, seeds[0]) if use_valid else None,
            iterator_train=TensorBatchIterator,
            iterator_train__shuffle=True,
            iterator_train__seed=int(seeds[1]),
            iterator_valid=TensorBatchIterator,
            iterator_valid__batch_size=valid_batch_size(RandomValidSplit.n_valid(n_rows, self.validation_fraction),
                                                        eval_batch_size(device)),
            callbacks=self._training_callbacks(use_valid),
            callbacks__print_log__sink=LogSink(self.verbose),
            device=str(device),
            verbose=int(self.verbose),
            grad_in_validation=self._grad_in_validation,
            **optimizer_kwargs,
        )

    def _check_validation_split(self, n_rows: int) -> None:
        """Warn when a requested validation split (``validation_fraction > 0``) is empty for ``n_rows`` rows, or
        so small that fewer than :data:`~skminer.estimators._training.MIN_PAIRED_BATCHES` validation batches
        remain: then the paired test of epoch selection cannot run and a few events decide early stopping and the
        returned epoch."""
        fraction = float(self.validation_fraction)
        if not self.early_stopping or fraction <= 0:
            return
        name = type(self).__name__
        n_valid = RandomValidSplit.n_valid(n_rows, fraction)
        if n_valid == 0:
            selection = ("" if self.epoch_selection == "last" else
                         f" and epoch selection (epoch_selection={self.epoch_selection!r})")
            warnings.warn(f"{name}: validation_fraction={fraction:g} of {n_rows} training rows rounds to an empty "
                          f"validation or training part, so no validation split is made: early stopping{selection} "
                          f"{'is' if not selection else 'are'} disabled and the final weights after "
                          f"max_epochs={self.max_epochs} epochs are returned; use more events or another "
                          "validation_fraction (0 disables the split without this warning)", UserWarning,
                          stacklevel=user_stacklevel())
            return
        n_batches = -(-n_valid // valid_batch_size(n_valid, eval_batch_size(resolve_device(self.device))))
        if n_batches < MIN_PAIRED_BATCHES:
            rows, batches = ("rows" if n_valid > 1 else "row"), ("batches" if n_batches > 1 else "batch")
            warnings.warn(f"{name}: validation_fraction={fraction:g} of {n_rows} training rows leaves {n_valid} "
                          f"validation {rows} ({n_batches} validation {batches}, fewer than the {MIN_PAIRED_BATCHES} "
                          "that epoch selection's paired test needs), so early stopping and the returned epoch "
                          f"rest on the losses of {n_valid} {rows}; use more events, a larger "
                          "validation_fraction, or validation_fraction=0 (train for max_epochs, keep the final "
                          "weights)", UserWarning, stacklevel=user_stacklevel())

    def _warn_if_diverged(self) -> bool:
        """Warn, naming ``lr`` and the losses, when the training loss went non-finite or the kept epoch's training
        loss is far above the untrained network's (:func:`~skminer.estimators._divergence.training_divergence`); returns
        whether it warned."""
        why = training_divergence(self.loss_curve_, getattr(self, "initial_loss_", None), self.best_epoch_)
        if why is None:
            return False
        hint = f"a smaller lr (now {self.lr!r})"
        if not np.all(np.isfinite(self.loss_curve_)) and "log_r_clip" in self.get_params(deep=False):
            hint += f" or a smaller log_r_clip (now {self.log_r_clip!r})"  # only the ratio estimators clip log r
        warnings.warn(f"{type(self).__name__}: {why}; the returned model is unreliable: use {hint}", RuntimeWarning,
                      stacklevel=user_stacklevel())
        return True

    def _warn_if_unconverged(self) -> None:
        """``ConvergenceWarning``, naming the losses and ``max_epochs``, when the fit ran all ``max_epochs`` while
        its monitored loss was still falling (:func:`~skminer.estimators._convergence.training_unconverged`)."""
        curve = self.validation_loss_curve_ or self.loss_curve_
        monitored = "validation" if self.validation_loss_curve_ else "training"
        prefix = "valid" if self.validation_loss_curve_ else "train"
        last = [b for b in self.net_.history[-1]["batches"] if prefix + "_loss" in b]
        # validation: paired with the untrained network's losses of the same batches; training rows are reshuffled
        initial = dict(self.net_.callbacks_)["initial_loss"].valid_batches_ if prefix == "valid" else None
        noise = epoch_loss_error([b[prefix + "_loss"] for b in last], [b[prefix + "_batch_size"] for b in last],
                                 None if not initial else [loss for loss, _ in initial])
        why = training_unconverged(curve, initial_monitored_loss(self), int(self.max_epochs), monitored, noise)
        if why is not None:
            warnings.warn(f"{type(self).__name__}: training did not converge: {why}; the returned model is not the "
                          f"one more epochs would give: raise max_epochs (now {self.max_epochs!r}) or lr (now "
                          f"{self.lr!r})", ConvergenceWarning, stacklevel=user_stacklevel())

    def _train(self, inputs: Mapping[str, np.ndarray], targets: Mapping[str, np.ndarray | None],
               stats: Mapping[str, Any] | None = None) -> NeuralEstimatorBase:
        """Build module and criterion, train with skorch, and set ``net_`` and the history attributes.

        Parameters
        ----------
        inputs : dict of str to ndarray
            Module inputs, keyed by the module's ``forward`` argument names; first axis = events.
        targets : dict of str to ndarray or None
            Loss targets (``None`` entries are dropped).
        stats : dict, optional
            Keyword arguments for ``_build_module`` (standardisation statistics).
        """
        seed = seed_from_random_state(self.random_state)
        s_init, s_split, s_shuffle = (int(s) for s in np.random.SeedSequence(seed).generate_state(3) % (2**31 - 1))
        device = resolve_device(self.device)
        module = self._new_module(torch_generator(s_init), **(stats or {}))
        if isinstance(module, StandardisedTraining):  # standardise once here, not in every batch
            inputs, targets = module.standardise_arrays(inputs, targets)
            module.begin_standardised_training_()
        X_t = {k: as_float_tensor(v, device) for k, v in inputs.items()}
        y_t = {k: as_float_tensor(v, device) for k, v in targets.items() if v is not None}
        dataset = TensorDictDataset(X_t, y_t)
        self._check_validation_split(len(dataset))
        net = self._make_net(module, self._build_criterion(), seeds=(s_split, s_shuffle), n_rows=len(dataset))
        with limit_threads(self.n_threads):  # never oversubscribe; the caller's setting is restored
            try:
                net.fit(dataset, None)
            except RuntimeError as err:  # torch: a step scale (lr / bias correction, ...) beyond float32
                if "overflow" not in str(err):
                    raise
                raise ValueError(f"{type(self).__name__}: training diverged: an optimizer step overflowed float32 "
                                 f"({err}); lower lr (now {self.lr!r}), lr_final (now {self.lr_final!r}) or "
                                 f"weight_decay (now {self.weight_decay!r})") from err
        self.net_ = net
        hist = net.history
        self.n_epochs_ = len(hist)
        self.loss_curve_ = [float(v) for v in hist[:, "train_loss"]]
        callbacks = dict(net.callbacks_)
        # the outcome of epoch selection: fitted attributes, so that it is saved with the estimator
        self.selection_restored_, self.selection_z_, self.selection_worse_in_a_row_ = False, float("nan"), 0
        if net.train_split is not None:
            self.validation_loss_curve_ = [float(v) for v in hist[:, "valid_loss"]]
            if "epoch_selection" in callbacks:
                selector = callbacks["epoch_selection"]
                self.best_epoch_ = int(selector.best_epoch_)
                self.selection_restored_, self.selection_z_ = bool(selector.restored_), float(selector.z_)
                self.selection_worse_in_a_row_ = int(selector.worse_in_a_row_)
            else:
                es = callbacks["early_stopping"]
                self.best_epoch_ = int(es.best_epoch_) if es.load_best and es.best_epoch_ else self.n_epochs_
                self.selection_restored_ = self.best_epoch_ != self.n_epochs_
                self.selection_worse_in_a_row_ = int(es.misses_)
        else:
            self.validation_loss_curve_ = None
            self.best_epoch_ = self.n_epochs_
        self.initial_loss_ = float(callbacks["initial_loss"].loss_)
        self.initial_validation_loss_ = float(getattr(callbacks["initial_loss"], "valid_loss_", float("nan")))
        if not self._warn_if_diverged():
            self._warn_if_unconverged()
        if isinstance(net.module_, StandardisedTraining):
            net.module_.end_standardised_training_()  # predict from raw inputs
        bad = [name for name, p in net.module_.named_parameters() if not bool(torch.isfinite(p).all())]
        if bad:  # a model with non-finite weights predicts NaN: never hand it back
            raise ValueError(f"{type(self).__name__}: training diverged: the kept weights are not finite "
                             f"({len(bad)} tensors, e.g. {bad[0]}); lower lr (now {self.lr!r}) or check the inputs")
        net.module_.eval()
        logger.debug("%s trained for %d epochs (best %d) on %d events", type(self).__name__, self.n_epochs_,
                     self.best_epoch_, len(dataset))
        return self

    # ------------------------------------------------------------------ evaluation
    @property
    def module_(self) -> nn.Module:
        """The trained torch module (``net_.module_``)."""
        check_is_fitted(self, "net_")
        return self.net_.module_

    @property
    def _eval_batch_size(self) -> int:
        """Rows per forward pass on this estimator's device (:func:`eval_batch_size`)."""
        return eval_batch_size(self.net_.device)

    def _evaluate(self, fn: Callable[..., torch.Tensor], arrays: Sequence[np.ndarray], grad: bool = False,
                  batch_size: int | None = None) -> np.ndarray:
        """Apply ``fn(module, *tensors)`` batch by batch and concatenate the float64 results.

        ``arrays`` share their first axis; with ``grad=True`` autograd is enabled (for ``d/d theta``).
        ``batch_size`` defaults to :attr:`_eval_batch_size`.
        """
        module = self.net_.module_
        module.eval()
        device = self.net_.device
        batch_size = self._eval_batch_size if batch_size is None else int(batch_size)
        n = arrays[0].shape[0]
        outs = []
        with limit_threads(self.n_threads):
            for start in range(0, n, batch_size):
                tensors = [as_float_tensor(a[start:start + batch_size], device) for a in arrays]
                with torch.set_grad_enabled(grad):
                    out = fn(module, *tensors)
                outs.append(to_numpy(out))
        if not outs:
            raise ValueError("no events to evaluate")
        return np.concatenate(outs, axis=0)

    # ------------------------------------------------------------------ persistence hooks
    def _state_attribute_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self._base_fitted_attributes + tuple(self._fitted_attributes)))

    def _architecture_sizes(self) -> dict[str, int]:
        """Hyperparameters that size the module (bounded against a stored state before it is built)."""
        sizes = getattr(self, "hidden_layer_sizes", ()) or ()
        sizes = (sizes,) if isinstance(sizes, numbers.Integral) else sizes
        return {f"hidden_layer_sizes[{i}]": int(n) for i, n in enumerate(sizes)}

    def _get_fitted_state(self) -> dict[str, Any]:
        """Everything needed to rebuild this fitted estimator without training.

        Returns
        -------
        dict
            ``{"format": int, "class": "module.QualName", "params": {...}, "attributes": {...},
            "module_state": {name: tensor}}`` with only primitives, lists, numpy arrays (attributes) and CPU
            tensors (the module's ``state_dict``), so that it can be written with :func:`torch.save` and read
            with ``torch.load(weights_only=True)`` (numpy arrays may need to be converted by the caller).
        """
        check_is_fitted(self, "net_")
        params = {}
        for k, v in self.get_params(deep=False).items():
            if k == "random_state" and not (v is None or _is_int(v)):
                v = None  # a RandomState/Generator instance only matters for fitting
            params[k] = _primitive(v)
        attrs = {name: _primitive(getattr(self, name)) for name in self._state_attribute_names()
                 if hasattr(self, name)}
        module_state = {k: v.detach().cpu().clone() for k, v in self.net_.module_.state_dict().items()}
        return {"format": STATE_FORMAT_VERSION, "class": f"{type(self).__module__}.{type(self).__qualname__}",
                "params": params, "attributes": attrs, "module_state": module_state}

    def _set_fitted_state(self, state: Mapping[str, Any]) -> NeuralEstimatorBase:
        """Restore a state from :meth:`_get_fitted_state` into this (unfitted or fitted) estimator.

        The estimator's own hyperparameters define the architecture; they must match those the state was
        produced with (:meth:`_from_fitted_state` takes them from the state). The module is rebuilt and its
        weights loaded; nothing is trained.
        """
        if not isinstance(state, Mapping) or "module_state" not in state or "attributes" not in state:
            raise ValueError("state must be a dict from _get_fitted_state with 'attributes' and 'module_state'")
        fmt = state.get("format")
        if fmt != STATE_FORMAT_VERSION:
            raise ValueError(f"unsupported fitted-state format {fmt!r} (expected {STATE_FORMAT_VERSION})")
        cls_name = f"{type(self).__module__}.{type(self).__qualname__}"
        if state.get("class") not in (None, cls_name):
            raise ValueError(f"state was saved from {state.get('class')}, cannot load it into {cls_name}")
        self._validate_params()
        self._check_params()
        check_fitted_attributes(state["attributes"], self._state_attribute_names(), cls_name)
        for name, value in state["attributes"].items():
            if name == "feature_names_in_":
                value = np.asarray(value, dtype=object)
            elif isinstance(value, torch.Tensor):
                value = value.numpy()
            setattr(self, name, value)
        # shapes first (on the meta device): stored hyperparameters must not decide what is allocated
        check_module_state(lambda: self._new_module(None), state["module_state"], cls_name,
                           self._architecture_sizes())
        module = self._new_module(None)
        try:
            module.load_state_dict({k: torch.as_tensor(v) for k, v in state["module_state"].items()})
        except RuntimeError as err:
            raise ValueError(f"the saved weights do not fit {cls_name} with these hyperparameters: {err}") from err
        if isinstance(module, FoldedStandardisation):  # states saved before folding (0.x) hold real statistics
            module.fold_standardisation_()
        net = self._make_net(module, self._build_criterion(), n_rows=0)
        net.initialize()
        net.module_.eval()
        self.net_ = net
        return self

    @classmethod
    def _from_fitted_state(cls, state: Mapping[str, Any], device: str | None = None) -> NeuralEstimatorBase:
        """Construct an estimator with the saved hyperparameters and restore its fitted state.

        Parameters
        ----------
        state : dict
            From :meth:`_get_fitted_state` (possibly after ``torch.save`` / ``torch.load(weights_only=True)``).
        device : str, optional
            Override the saved ``device`` parameter (e.g. load a GPU-trained model on a CPU-only machine).
        """
        params = dict(state.get("params", {}))
        for name in cls._tuple_params:
            if isinstance(params.get(name), list):
                params[name] = tuple(params[name])
        if device is not None:
            params["device"] = device
        return cls(**params)._set_fitted_state(state)


class ClassifierOutputMixin:
    """``predict_proba`` for classifier-type ratio estimators: ``P(y=1 | x) = s = 1 / (1 + r)``."""

    classes_ = np.array([0, 1])
    __metadata_request__predict_proba = {"theta": True}

    def predict_proba(self, X: Any, theta: Any = None) -> np.ndarray:
        """Class probabilities ``[P(y=0|x), P(y=1|x)] = [r / (1 + r), 1 / (1 + r)]``.

        Parameters
        ----------
        X : array-like of shape (n_events, n_features)
        theta : array-like
            Per event or one point, as for ``predict`` (routed metadata inside meta-estimators).

        Returns
        -------
        ndarray of shape (n_events, 2)
        """
        log_r = self._predict_rows(X, theta, "predict_proba")  # per-event log r, as predict
        return np.stack([expit(log_r), expit(-log_r)], axis=1)
