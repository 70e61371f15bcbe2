"""Conditional normalizing flows for the likelihood ``p(x | theta)``: NDE and SCANDAL (zuko flows).

* :class:`NDE` maximises ``sum log p_hat(x | theta)`` over events ``x`` drawn at their parameter points
  ``theta`` (neural density estimation with a masked autoregressive flow or a neural spline flow whose context
  is ``theta``).
* :class:`SCANDAL` adds ``alpha`` times the mean squared error between the flow's score
  ``grad_theta log p_hat(x | theta)`` (by autograd) and the joint score ``t_xz = t(x, z | theta)``.

Both standardise ``x`` and ``theta`` inside the network (buffers, so the state dict carries them); training
standardises the arrays once instead of every batch (:class:`~skminer.estimators._net.StandardisedTraining`).

API (conventions of the ratio estimators): ``fit(X, y=None, *, theta, t_xz=None)`` with ``theta`` of shape
``(n_events, n_parameters)`` as metadata (routed by scikit-learn's metadata routing inside a Pipeline or
GridSearchCV); ``log_likelihood(X, theta)``; ``predict_log_ratio(X, theta0, theta1)`` =
``log p_hat(x | theta0) - log p_hat(x | theta1)`` (MadMiner's ratio convention); ``score_at(X, theta)``;
``sample(n, theta, random_state)``; ``score(X, y=None, *, theta)`` = mean log-likelihood (independent of
``alpha``, so ``GridSearchCV`` can tune ``alpha``). The inference-protocol methods (``log_likelihood``,
``predict_log_ratio``, ``score_at``) take parameter *points*: one point ``(n_parameters,)`` or a grid
``(n_theta, n_parameters)`` (result ``(n_theta, n_events, ...)``); ``predict`` and ``score`` take ``theta``
per event ``(n_events, n_parameters)`` or one point, as metadata.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
import zuko
from sklearn.base import _fit_context
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import check_array, check_is_fitted, validate_data
from torch import Tensor, nn

from .._arrays import from_awkward
from .._metadata import MissingMetadataError, missing_metadata_message, refuse_unscorable_fit
from .._scalars import as_count
from ._constraints import IntInterval, RealInterval
from ._data_checks import check_training_data
from ._net import ACTIVATIONS, StandardisedTraining, Standardizer, check_hidden_layer_sizes
from ._protocol import evaluate_grid, one_point, parameter_points
from ._theta_range import training_range, warn_outside_training_range
from ._torch_utils import resolve_device, seed_from_random_state, to_numpy, torch_generator
from .base import NeuralEstimatorBase, _store_params
from .losses import score_mse

__all__ = ["NDE", "SCANDAL", "FlowNet", "FlowCriterion", "FLOWS"]

#: Flow architectures accepted by the ``flow`` parameter.
FLOWS: tuple[str, ...] = ("maf", "nsf")


class FlowNet(StandardisedTraining):
    """Conditional flow ``log p_hat(x | theta)`` with standardised ``x`` and ``theta`` (buffers).

    The flow itself works in standardised units ``u = (x - x_mean) / x_scale`` and context
    ``(theta - theta_mean) / theta_scale``; the density of raw ``x`` is ``q(u) / prod(x_scale)``. Training feeds
    it arrays standardised once (:meth:`standardise_arrays`, between :meth:`begin_standardised_training_` and
    :meth:`end_standardised_training_`, ``standardised_inputs`` true): then ``x`` and ``theta`` are taken in
    standardised units, while the outputs (``log p_hat`` of raw ``x``, the score with respect to raw ``theta``)
    are the same as from raw inputs. Otherwise the inputs are raw and standardised on every call.

    Parameters
    ----------
    n_features, n_parameters : int
        Columns of ``x`` and of ``theta`` (the flow's context).
    flow : {"maf", "nsf"}
        :class:`zuko.flows.MAF` (affine masked autoregressive) or :class:`zuko.flows.NSF` (rational-quadratic
        spline, domain ``[-5, 5]`` in standardised units, linear tails outside).
    transforms : int
        Number of autoregressive transforms.
    hidden_layer_sizes : sequence of int
        Hidden features of each transform's (masked) MLP.
    activation : str
        Key of :data:`skminer.estimators._net.ACTIVATIONS` (smooth activations give smooth scores).
    bins : int
        Spline bins (NSF only).
    x_mean, x_scale, theta_mean, theta_scale : array-like, optional
        Standardisation statistics; the log-density is corrected by ``-sum(log x_scale)``.
    return_score : bool
        If true and gradients are enabled, ``forward`` also returns ``t = grad_theta log p_hat``.
    """

    def __init__(self, n_features: int, n_parameters: int, flow: str = "maf", transforms: int = 3,
                 hidden_layer_sizes: Sequence[int] = (64, 64), activation: str = "tanh", bins: int = 8,
                 x_mean: Any = None, x_scale: Any = None, theta_mean: Any = None, theta_scale: Any = None,
                 return_score: bool = False) -> None:
        super().__init__()
        self.x_std = Standardizer(n_features, x_mean, x_scale)
        self.theta_std = Standardizer(n_parameters, theta_mean, theta_scale)
        kwargs = {"transforms": int(transforms), "hidden_features": tuple(hidden_layer_sizes),
                  "activation": ACTIVATIONS[activation]}
        if flow == "maf":
            self.flow = zuko.flows.MAF(int(n_features), int(n_parameters), **kwargs)
        elif flow == "nsf":
            self.flow = zuko.flows.NSF(int(n_features), int(n_parameters), bins=int(bins), **kwargs)
        else:
            raise ValueError(f"flow must be one of {FLOWS}, got {flow!r}")
        self.return_score = bool(return_score)
        #: inputs arrive standardised (training); set by the begin/end ``_standardised_training_`` methods
        self.standardised_inputs = False

    def _input_standardizers(self) -> list[tuple[str, Standardizer]]:
        return [("x", self.x_std), ("theta", self.theta_std)]

    def begin_standardised_training_(self) -> FlowNet:
        self.standardised_inputs = True
        # the Jacobian term sum(log x_scale), once (the buffers do not change while training)
        self._log_scale_sum = float(torch.log(self.x_std.scale).sum())
        return self

    def end_standardised_training_(self) -> FlowNet:
        self.standardised_inputs = False
        return self

    def log_prob(self, x: Tensor, theta: Tensor) -> Tensor:
        """``log p_hat(x | theta)`` of raw ``x`` (inputs in the units of ``standardised_inputs``), shape (n,)."""
        if self.standardised_inputs:
            return self.flow(theta).log_prob(x) - self._log_scale_sum
        lp = self.flow(self.theta_std(theta)).log_prob(self.x_std(x))
        return lp - torch.log(self.x_std.scale).sum()

    def log_prob_and_score(self, x: Tensor, theta: Tensor, create_graph: bool = False) -> tuple[Tensor, Tensor]:
        """``log p_hat`` (n,) and ``grad_theta log p_hat`` (n, n_parameters) with respect to raw ``theta``;
        needs gradients enabled."""
        theta = theta.detach().requires_grad_(True)
        lp = self.log_prob(x, theta)
        (t,) = torch.autograd.grad(lp.sum(), theta, create_graph=create_graph)
        if self.standardised_inputs:  # d/d theta = d/d theta_std / theta_scale
            t = t / self.theta_std.scale
        return lp, t

    def forward(self, x: Tensor, theta: Tensor) -> dict[str, Tensor]:
        if self.return_score and torch.is_grad_enabled():
            lp, t = self.log_prob_and_score(x, theta, create_graph=self.training)
            return {"log_p": lp, "t": t}
        return {"log_p": self.log_prob(x, theta)}

    @torch.no_grad()
    def sample(self, n: int, theta: Tensor, generator: torch.Generator) -> Tensor:
        """``n`` events from ``p_hat(x | theta)`` for one point ``theta`` (n_parameters,), in ``x`` units (both
        standardised when ``standardised_inputs``).

        The base noise comes from the local CPU ``generator`` (the global RNG is not used).
        """
        context = theta.reshape(1, -1)
        if not self.standardised_inputs:
            context = self.theta_std(context)
        dist = self.flow(context.expand(n, -1))
        eps = torch.randn((n, self.x_std.mean.shape[0]), generator=generator, dtype=torch.float32)
        z = dist.base.mean + dist.base.stddev * eps.to(context.device)
        u = dist.transform.inv(z)
        return u if self.standardised_inputs else u * self.x_std.scale + self.x_std.mean


class FlowCriterion(nn.Module):
    """NLL ``-mean log p_hat(x | theta)`` plus ``alpha`` times :func:`~skminer.estimators.losses.score_mse`
    (mean over events and parameter components; SCANDAL; ``alpha = 0``: NDE)."""

    def __init__(self, alpha: float = 0.0) -> None:
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, y_pred: Mapping[str, Tensor], y_true: Mapping[str, Tensor]) -> Tensor:
        loss = -y_pred["log_p"].mean()
        if self.alpha != 0.0 and "t" in y_pred and "t_xz" in y_true:
            loss = loss + self.alpha * score_mse(y_pred["t"], y_true["t_xz"])
        return loss


def _missing_theta(owner: str, method: str) -> str:
    return missing_metadata_message(f"{owner}.{method}()", "theta", "the parameter point of each event")


class _FlowEstimatorBase(NeuralEstimatorBase):
    """Shared implementation of NDE and SCANDAL (not for direct use)."""

    _fitted_attributes = ("n_parameters_", "theta_range_")
    #: What the inference protocol can ask of these estimators (see :mod:`skminer.methods`).
    capabilities: ClassVar[frozenset[str]] = frozenset({"density", "ratio", "score"})
    __metadata_request__fit = {"theta": True, "t_xz": True}
    __metadata_request__score = {"theta": True}
    __metadata_request__predict = {"theta": True}

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **NeuralEstimatorBase._parameter_constraints,
        "flow": [StrOptions(set(FLOWS))],
        "transforms": [IntInterval(1, None, closed="left")],
        "bins": [IntInterval(1, None, closed="left")],
    }

    def __init__(self, *, flow: str = "maf", transforms: int = 3, hidden_layer_sizes: tuple[int, ...] = (64, 64),
                 activation: str = "tanh", bins: int = 8, optimizer: str = "adam", lr: float = 1e-3,
                 lr_schedule: str = "exponential", lr_final: float = 1e-4, momentum: float = 0.9,
                 weight_decay: float = 0.0, batch_size: int = 128, max_epochs: int = 50, early_stopping: bool = True,
                 epoch_selection: str = "ema", validation_fraction: float = 0.25, patience: int = 10,
                 device: str = "cpu", n_threads: int | None = None, random_state: Any = None,
                 verbose: int = 0) -> None:
        _store_params(self, locals())

    # ------------------------------------------------------------------ configuration
    @property
    def _alpha(self) -> float:
        return float(getattr(self, "alpha", 0.0))

    @property
    def _uses_score(self) -> bool:
        return self._alpha != 0.0

    @property
    def _grad_in_validation(self) -> bool:  # type: ignore[override]
        return self._uses_score

    def _check_params(self) -> None:
        super()._check_params()
        if len(check_hidden_layer_sizes(self.hidden_layer_sizes)) == 0:
            raise ValueError("hidden_layer_sizes must not be empty for a flow (the transforms need a hidden layer)")

    def _build_module(self, **stats: Any) -> nn.Module:
        return FlowNet(self.n_features_in_, self.n_parameters_, self.flow, self.transforms, self.hidden_layer_sizes,
                       self.activation, self.bins, return_score=self._uses_score, **stats)

    def _build_criterion(self) -> nn.Module:
        return FlowCriterion(self._alpha)

    def _architecture_sizes(self) -> dict[str, int]:
        return {**super()._architecture_sizes(), "transforms": int(self.transforms), "bins": int(self.bins)}

    # ------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    def _fit(self, X: Any, theta: Any, t_xz: Any) -> _FlowEstimatorBase:
        owner = type(self).__name__
        self._check_params()
        refuse_unscorable_fit(f"{owner}.fit")
        if theta is None:
            raise MissingMetadataError(_missing_theta(owner, "fit"))
        X = validate_data(self, from_awkward(X), dtype=np.float64)
        n = X.shape[0]
        theta = check_array(theta, dtype=np.float64, ensure_2d=False, input_name="theta")
        if theta.ndim == 1:
            theta = theta.reshape(-1, 1)
        if theta.ndim != 2 or theta.shape[0] != n:
            raise ValueError(f"theta must have one row per event ({n}), got shape {theta.shape}")
        self.n_parameters_ = int(theta.shape[1])
        targets: dict[str, np.ndarray | None] = {}
        if self._uses_score:
            if t_xz is None:
                raise ValueError(f"{owner} needs the joint score t_xz (fit(..., t_xz=...)), or alpha=0")
            t_xz = check_array(t_xz, dtype=np.float64, ensure_2d=False, input_name="t_xz")
            if t_xz.ndim == 1 and self.n_parameters_ == 1:
                t_xz = t_xz.reshape(-1, 1)
            if t_xz.shape != (n, self.n_parameters_):
                raise ValueError(f"t_xz must have shape ({n}, {self.n_parameters_}), got {t_xz.shape}")
            targets["t_xz"] = t_xz
        check_training_data(owner, X, t_xz=targets.get("t_xz"), theta=theta)
        x_mean, x_scale = Standardizer.stats(X)
        th_mean, th_scale = Standardizer.stats(theta)
        stats = {"x_mean": x_mean, "x_scale": x_scale, "theta_mean": th_mean, "theta_scale": th_scale}
        self._train({"x": X, "theta": theta}, targets, stats)
        self.theta_range_ = training_range(theta)
        return self

    # ------------------------------------------------------------------ prediction
    def _broadcast_theta(self, theta: Any, n: int, name: str = "theta") -> np.ndarray:
        p = self.n_parameters_
        theta = np.asarray(theta, dtype=np.float64)
        if theta.ndim == 0:
            theta = theta.reshape(1)
        if theta.ndim == 1:
            if theta.size == p:
                theta = theta.reshape(1, p)
            elif p == 1 and theta.size == n:
                theta = theta.reshape(n, 1)
        if theta.ndim != 2 or theta.shape[1] != p or theta.shape[0] not in (1, n):
            raise ValueError(f"{name} must have shape ({p},) or (n_events={n}, {p}), got shape {theta.shape}")
        if not np.all(np.isfinite(theta)):
            raise ValueError(f"{name} contains NaN or inf")
        return np.broadcast_to(theta, (n, p))

    def _inputs(self, X: Any, theta: Any, method: str, name: str = "theta") -> tuple[np.ndarray, np.ndarray]:
        check_is_fitted(self, "net_")
        if theta is None:
            raise MissingMetadataError(_missing_theta(type(self).__name__, method))
        X = validate_data(self, from_awkward(X), reset=False, dtype=np.float64)
        theta = self._broadcast_theta(theta, X.shape[0], name)
        warn_outside_training_range(self, theta, name)
        return X, theta

    def _grid(self, X: Any, theta: Any, name: str, grad: bool = False) -> tuple[np.ndarray, bool]:
        """``log p_hat`` ``(n_theta, n_events)`` (or the score ``(n_theta, n_events, n_parameters)``) on a grid."""
        check_is_fitted(self, "net_")
        owner = type(self).__name__
        X = validate_data(self, from_awkward(X), reset=False, dtype=np.float64)
        points, single = parameter_points(theta, self.n_parameters_, name, owner, X.shape[0])
        warn_outside_training_range(self, points, name)
        if grad:
            def fn(m, x, th):
                return m.log_prob_and_score(x, th)[1]
        else:
            def fn(m, x, th):
                return m.log_prob(x, th)
        out = evaluate_grid(lambda arrays, g: self._evaluate(fn, arrays, grad=g), X, points, self._eval_batch_size,
                            grad=grad)
        return out, single

    def log_likelihood(self, X: Any, theta: Any) -> np.ndarray:
        """Estimated ``log p(x | theta)`` (inference protocol, ``"density"`` capability).

        Parameters
        ----------
        X : array-like of shape (n_events, n_features)
        theta : array-like of shape (n_parameters,) or (n_theta, n_parameters)
            One parameter point, or a grid of them (every event at every point).

        Returns
        -------
        ndarray of shape (n_events,) for one point, else (n_theta, n_events)
        """
        if theta is None:
            raise MissingMetadataError(_missing_theta(type(self).__name__, "log_likelihood"))
        out, single = self._grid(X, theta, "theta")
        return out[0] if single else out

    def _predict_rows(self, X: Any, theta: Any, method: str) -> np.ndarray:
        X, theta = self._inputs(X, theta, method)
        return self._evaluate(lambda m, x, th: m.log_prob(x, th), [X, theta])

    def predict(self, X: Any, theta: Any = None) -> np.ndarray:
        """Estimated ``log p(x | theta)`` with parameters per event (the scikit-learn face: theta is metadata).

        Parameters
        ----------
        X : array-like of shape (n_events, n_features)
        theta : array-like of shape (n_parameters,) or (n_events, n_parameters)
            One point for all events, or one row per event.

        Returns
        -------
        ndarray of shape (n_events,)
        """
        return self._predict_rows(X, theta, "predict")

    def predict_log_ratio(self, X: Any, theta0: Any, theta1: Any = None) -> np.ndarray:
        """Estimated ``log r(x | theta0, theta1) = log p_hat(x | theta0) - log p_hat(x | theta1)`` (protocol).

        Parameters
        ----------
        X : array-like of shape (n_events, n_features)
        theta0 : array-like of shape (n_parameters,) or (n_theta, n_parameters)
            Numerator point, or a grid of them.
        theta1 : array-like of shape (n_parameters,)
            Denominator point (required: a density estimator has no reference point).

        Returns
        -------
        ndarray of shape (n_events,) for one ``theta0``, else (n_theta, n_events)
        """
        owner = type(self).__name__
        if theta0 is None:
            raise MissingMetadataError(_missing_theta(owner, "predict_log_ratio"))
        if theta1 is None:
            raise ValueError(f"{owner} estimates a density and has no reference point: pass theta1 (the "
                             "denominator point) to predict_log_ratio(X, theta0, theta1)")
        check_is_fitted(self, "net_")
        point1 = one_point(theta1, self.n_parameters_, "theta1", owner)
        log_p0, single = self._grid(X, theta0, "theta0")
        log_p1, _ = self._grid(X, point1, "theta1")
        out = log_p0 - log_p1
        return out[0] if single else out

    def score_at(self, X: Any, theta: Any = None) -> np.ndarray:
        """Estimated score ``grad_theta log p_hat(x | theta)`` by autograd (inference protocol).

        Parameters
        ----------
        X : array-like of shape (n_events, n_features)
        theta : array-like of shape (n_parameters,) or (n_theta, n_parameters)
            Point(s) (required: a density estimator has a score at every point).

        Returns
        -------
        ndarray of shape (n_events, n_parameters) for one point, else (n_theta, n_events, n_parameters)
        """
        if theta is None:
            raise ValueError(f"{type(self).__name__}.score_at needs theta: a density estimator has a score at "
                             "every parameter point, so the point must be given")
        out, single = self._grid(X, theta, "theta", grad=True)
        return out[0] if single else out

    def sample(self, n_samples: int, theta: Any, random_state: Any = None) -> np.ndarray:
        """Draw events from the estimated ``p_hat(x | theta)`` at one parameter point.

        Parameters
        ----------
        n_samples : int
        theta : array-like of shape (n_parameters,)
        random_state : None, int, RandomState or Generator
            Seeds a local generator (global RNGs are untouched).

        Returns
        -------
        ndarray of shape (n_samples, n_features)
        """
        check_is_fitted(self, "net_")
        n_samples = as_count(n_samples, "n_samples", minimum=0)
        theta = np.asarray(theta, dtype=np.float64).reshape(-1)
        if theta.shape != (self.n_parameters_,) or not np.all(np.isfinite(theta)):
            raise ValueError(f"theta must be one finite point of shape ({self.n_parameters_},), got {theta.shape}")
        gen = torch_generator(seed_from_random_state(random_state))
        module = self.net_.module_
        module.eval()
        device = resolve_device(self.net_.device)
        th = torch.as_tensor(theta, dtype=torch.float32, device=device)
        out = [to_numpy(module.sample(min(65536, n_samples - s), th, gen)) for s in range(0, n_samples, 65536)]
        return np.concatenate(out, axis=0) if out else np.zeros((0, self.n_features_in_))

    # sample_weight is accepted because Pipeline.score always forwards it under metadata routing
    def score(self, X: Any, y: Any = None, *, theta: Any = None, sample_weight: Any = None) -> float:
        """Mean estimated log-likelihood ``mean log p_hat(x | theta)`` (greater is better, ``alpha``-independent).

        Parameters
        ----------
        X : array-like of shape (n_events, n_features)
        y : ignored
        theta : array-like of shape (n_events, n_parameters) or (n_parameters,)
        sample_weight : array-like of shape (n_events,), optional

        Returns
        -------
        float
        """
        return self._score_prediction(self._predict_rows(X, theta, "score"), y, sample_weight=sample_weight)

    def _score_prediction(self, log_p: np.ndarray, y: Any = None, *, sample_weight: Any = None) -> float:
        """The :meth:`score` criterion for per-event predictions ``log_p`` (shared with :class:`Ensemble`)."""
        log_p = np.asarray(log_p, dtype=np.float64)
        if sample_weight is None:
            return float(np.mean(log_p))
        w = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
        if w.shape != log_p.shape:
            raise ValueError(f"sample_weight must have shape {log_p.shape}, got {w.shape}")
        return float(np.sum(w * log_p) / np.sum(w))


_PARAMS_DOC = """
    Parameters
    ----------
    flow : {{"maf", "nsf"}}, default="maf"
        Masked autoregressive flow (affine) or neural spline flow (:mod:`zuko.flows`), with ``theta`` as context.
    transforms : int, default=3
        Number of autoregressive transforms.
    hidden_layer_sizes : tuple of int, default=(64, 64)
        Hidden features of each transform's masked MLP.
    activation : str, default="tanh"
        Hidden activation (smooth activations give smooth scores).
    bins : int, default=8
        Spline bins (``flow="nsf"`` only).{alpha}
    optimizer : {{"adam", "amsgrad", "sgd"}}, default="adam"
    lr : float, default=1e-3
    lr_schedule : {{"exponential", "cosine", "constant"}}, default="exponential"
    lr_final : float, default=1e-4
    momentum : float, default=0.9
    weight_decay : float, default=0.0
    batch_size : int, default=128
    max_epochs : int, default=50
    early_stopping : bool, default=True
    epoch_selection : {{"ema", "smoothed", "best", "last"}}, default="ema"
    validation_fraction : float, default=0.25
    patience : int, default=10
    device : str, default="cpu"
    random_state : None, int, RandomState or Generator, default=None
    verbose : int, default=0
        All keyword-only; see :class:`~skminer.estimators.base.NeuralEstimatorBase`.

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The private trained net (module :class:`FlowNet`).
    n_features_in_ : int
    n_parameters_ : int
    theta_range_ : list of [min, max], one per column of the training theta
        Predictions at points beyond it by more than 10% of its width warn
        (:class:`~skminer.estimators.ExtrapolationWarning`).
    n_epochs_, best_epoch_, loss_curve_, validation_loss_curve_
        Training history.
    selection_restored_, selection_z_, selection_worse_in_a_row_
        Outcome of epoch selection (see :class:`~skminer.estimators.base.NeuralEstimatorBase`).
"""

_FIT_DOC = """Train the flow on events ``X`` drawn at their parameter points ``theta``.

        Parameters
        ----------
        X : array-like of shape (n_events, n_features)
        y : ignored
            Present for API compatibility (``GridSearchCV``).
        theta : array-like of shape (n_events, n_parameters) or (n_events,)
            Parameter point at which each event was simulated.
        t_xz : array-like of shape (n_events, n_parameters), optional
            Joint score ``t(x, z | theta)`` (SCANDAL with ``alpha > 0``; ignored by NDE).

        Returns
        -------
        self
        """


class NDE(_FlowEstimatorBase):
    __doc__ = ("Neural density estimation: a conditional normalizing flow ``p_hat(x | theta)`` trained by maximum "
               "likelihood.\n" + _PARAMS_DOC.format(alpha=""))

    def fit(self, X: Any, y: Any = None, *, theta: Any = None, t_xz: Any = None) -> NDE:
        return self._fit(X, theta, None)

    fit.__doc__ = _FIT_DOC


class SCANDAL(_FlowEstimatorBase):
    __doc__ = ("SCANDAL: a conditional flow trained on ``-log p_hat(x | theta) + alpha |grad_theta log p_hat(x | "
               "theta) - t_xz|^2`` (score-augmented neural density estimation).\n" + _PARAMS_DOC.format(alpha="""
    alpha : float, default=1.0
        Weight of the joint-score term relative to the negative log-likelihood."""))

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **_FlowEstimatorBase._parameter_constraints,
        "alpha": [RealInterval(0, np.inf, closed="left")],
    }

    def __init__(self, *, flow: str = "maf", transforms: int = 3, hidden_layer_sizes: tuple[int, ...] = (64, 64),
                 activation: str = "tanh", bins: int = 8, alpha: float = 1.0, optimizer: str = "adam",
                 lr: float = 1e-3, lr_schedule: str = "exponential", lr_final: float = 1e-4, momentum: float = 0.9,
                 weight_decay: float = 0.0, batch_size: int = 128, max_epochs: int = 50, early_stopping: bool = True,
                 epoch_selection: str = "ema", validation_fraction: float = 0.25, patience: int = 10,
                 device: str = "cpu", n_threads: int | None = None, random_state: Any = None,
                 verbose: int = 0) -> None:
        _store_params(self, locals())

    def fit(self, X: Any, y: Any = None, *, theta: Any = None, t_xz: Any = None) -> SCANDAL:
        return self._fit(X, theta, t_xz)

    fit.__doc__ = _FIT_DOC
