"""SALLY: a neural regressor of the score ``t(x) = grad_theta log p(x | theta)`` at a reference point."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from sklearn.base import RegressorMixin, _fit_context
from sklearn.metrics import r2_score
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from .._arrays import from_awkward
from ._data_checks import check_training_data
from ._net import ScoreNet, Standardizer
from .base import NeuralEstimatorBase
from .losses import ScoreCriterion

__all__ = ["SALLY"]


#: Relative difference (per component, see :meth:`SALLY.score_at`) still taken as the reference point.
_SAME_POINT = 1e-9


def _reference_scales(ref: np.ndarray, t_xz: np.ndarray) -> np.ndarray:
    """Per-component scale of the reference point: ``|ref|``, or for a zero component ``1 / std`` of that score
    component of the training targets (0 when the targets are constant or do not cover that component)."""
    n = ref.shape[0]
    natural = np.zeros(n)
    if t_xz.shape[1] >= n:  # nuisance score components, if any, follow the parameters' components
        spread = np.std(t_xz[:, :n], axis=0)
        with np.errstate(divide="ignore", over="ignore"):
            inverse = 1.0 / spread
        natural = np.where((spread > 0) & np.isfinite(inverse), inverse, 0.0)
    return np.where(ref != 0, np.abs(ref), natural)


class SALLY(RegressorMixin, NeuralEstimatorBase):
    """Score estimator trained on the joint score (SALLY, Brehmer et al.).

    Minimising ``|t_hat(x) - t(x, z | theta_ref)|^2`` over events drawn at ``theta_ref`` makes ``t_hat(x)``
    converge to the score ``t(x | theta_ref)``; the estimated score components are locally sufficient
    statistics (use them as observables, e.g. for the Fisher information or histograms).

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(100, 100, 100)
    activation : str, default="tanh"
    optimizer : {"adam", "amsgrad", "sgd"}, default="adam"
    lr : float, default=1e-3
    lr_schedule : {"exponential", "cosine", "constant"}, default="exponential"
    lr_final : float, default=1e-4
    momentum : float, default=0.9
    weight_decay : float, default=0.0
    batch_size : int, default=128
    max_epochs : int, default=50
    early_stopping : bool, default=True
    epoch_selection : {"ema", "smoothed", "best", "last"}, default="ema"
    validation_fraction : float, default=0.25
    patience : int, default=10
    device : str, default="cpu"
    random_state : None, int, RandomState or Generator, default=None
    verbose : int, default=0
        All keyword-only; see :class:`~skminer.estimators.base.NeuralEstimatorBase` for their meaning. Inputs
        and targets are standardised internally (the statistics are stored in the network), and the loss is the
        mean squared error in units of the per-component target standard deviation.

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The private trained net.
    n_features_in_ : int
    n_outputs_ : int
        Number of score components.
    theta_ref_ : ndarray of shape (n_parameters,) or None
        The reference point given to :meth:`fit` as ``theta=``.
    theta_ref_scale_ : ndarray of shape (n_parameters,) or None
        Per-component scale that :meth:`score_at` compares a requested point with ``theta_ref_`` relative to.
    n_epochs_, best_epoch_, loss_curve_, validation_loss_curve_
        Training history (see the base class).
    selection_restored_, selection_z_, selection_worse_in_a_row_
        Outcome of epoch selection (see :class:`~skminer.estimators.base.NeuralEstimatorBase`).

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> model = make_pipeline(StandardScaler(), SALLY(hidden_layer_sizes=(50,), max_epochs=20))  # doctest: +SKIP
    >>> model.fit(x_train, t_xz_train).predict(x_test)  # doctest: +SKIP
    """

    _fitted_attributes = ("n_outputs_", "_y_1d_", "theta_ref_", "theta_ref_scale_")
    #: What the inference protocol can ask of SALLY (see :mod:`skminer.methods`): the score at its reference.
    capabilities: ClassVar[frozenset[str]] = frozenset({"score"})
    __metadata_request__fit = {"theta": True}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    def _build_module(self, **stats: Any) -> nn.Module:
        return ScoreNet(self.n_features_in_, self.n_outputs_, self.hidden_layer_sizes, self.activation, **stats)

    def _build_criterion(self) -> nn.Module:
        # the network trains on targets standardised with their spread (ScoreNet), so the loss in units of
        # that spread is the plain mean squared error
        return ScoreCriterion(None)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any, *, theta: Any = None) -> SALLY:
        """Train on events ``X`` drawn at the reference point and their joint scores ``y = t_xz``.

        Parameters
        ----------
        X : array-like of shape (n_events, n_features)
        y : array-like of shape (n_events,) or (n_events, n_parameters)
            Joint score ``t(x, z | theta_ref)``. With 1-D ``y``, :meth:`predict` returns 1-D output.
        theta : array-like of shape (n_parameters,) or (n_events, n_parameters), optional
            The reference point (``TrainingSample.theta0`` of a local score sample: the same row for every
            event). Stored as ``theta_ref_`` so that :meth:`score_at` can refuse other points, together with
            ``theta_ref_scale_``, the per-component scale that refusal is relative to (see :meth:`score_at`).

        Returns
        -------
        self
        """
        self._check_params()
        X, y = validate_data(self, from_awkward(X), y, multi_output=True, y_numeric=True, dtype=np.float64)
        self.theta_ref_ = None if theta is None else self._reference_point(theta, X.shape[0])
        self._y_1d_ = y.ndim == 1
        y2 = y.reshape(-1, 1) if y.ndim == 1 else y
        self.theta_ref_scale_ = None if self.theta_ref_ is None else _reference_scales(self.theta_ref_, y2)
        self.n_outputs_ = int(y2.shape[1])
        check_training_data(type(self).__name__, X, t_xz=y2)
        x_mean, x_scale = Standardizer.stats(X)
        y_mean, y_scale = Standardizer.stats(y2)
        return self._train({"x": X}, {"t_xz": y2},
                           {"x_mean": x_mean, "x_scale": x_scale, "y_mean": y_mean, "y_scale": y_scale})

    def predict(self, X: Any) -> np.ndarray:
        """Estimated score ``t_hat(x)`` at the reference point.

        Parameters
        ----------
        X : array-like of shape (n_events, n_features)

        Returns
        -------
        ndarray of shape (n_events,) if fitted with 1-D ``y``, else (n_events, n_outputs)
        """
        check_is_fitted(self, "net_")
        X = validate_data(self, from_awkward(X), reset=False, dtype=np.float64)
        t = self._evaluate(lambda module, x: module(x), [X])
        return t[:, 0] if self._y_1d_ else t

    def _score_prediction(self, prediction: np.ndarray, y: Any, *, sample_weight: Any = None) -> float:
        """The :meth:`score` criterion (R^2) for predictions ``prediction`` (shared with :class:`Ensemble`)."""
        return float(r2_score(y, prediction, sample_weight=sample_weight))

    @staticmethod
    def _reference_point(theta: Any, n: int) -> np.ndarray:
        th = np.asarray(theta, dtype=np.float64)
        if th.ndim == 1 and th.size == n > 1:  # one parameter, one value per event
            th = th.reshape(n, 1)
        elif th.ndim <= 1:  # one point
            th = th.reshape(1, -1)
        if th.shape[0] not in (1, n) or not np.all(np.isfinite(th)):
            raise ValueError(f"theta must be the reference point (one finite row, or the same row for each of the "
                             f"{n} events), got shape {np.shape(theta)}")
        distinct = np.unique(th, axis=0)
        if distinct.shape[0] != 1:
            raise ValueError(f"SALLY learns the score at one reference point, but theta has {distinct.shape[0]} "
                             "distinct rows (use a ratio or density estimator for parameterised training)")
        return distinct[0]

    def score_at(self, X: Any, theta: Any = None) -> np.ndarray:
        """Estimated score ``t_hat(x)`` at the reference point (inference protocol, ``"score"`` capability).

        Parameters
        ----------
        X : array-like of shape (n_events, n_features)
        theta : array-like of shape (n_parameters,), optional
            The point the score is asked at. SALLY knows only its reference: when it was fitted with
            ``theta=`` (``theta_ref_``), any other point raises ``ValueError``; without a recorded reference
            the point is taken on trust. "The same point" allows a relative difference of 1e-9 per component
            (float rounding, whatever the parameters' units): relative to ``|theta_ref_|`` where that component
            is non-zero, and where it is zero relative to ``1 / std(t_xz)`` of that score component in the
            training targets (the shift of theta that moves the log-likelihood by about one unit of score
            spread; the score has the inverse units of theta). A zero component without such a scale (constant
            targets, or a model saved before ``theta_ref_scale_`` existed) must match exactly.

        Returns
        -------
        ndarray of shape (n_events, n_outputs)
            Always 2-D (``n_outputs`` = number of score components, including nuisance components when
            trained with them).

        Raises
        ------
        ValueError
            If ``theta`` differs from the recorded reference point.
        """
        check_is_fitted(self, "net_")
        if theta is not None and getattr(self, "theta_ref_", None) is not None:
            ref = np.asarray(self.theta_ref_, dtype=np.float64)
            th = np.asarray(theta, dtype=np.float64).reshape(-1)
            scale = getattr(self, "theta_ref_scale_", None)
            scale = np.abs(ref) if scale is None else np.asarray(scale, dtype=np.float64)
            if th.shape != ref.shape or not np.all(np.abs(th - ref) <= _SAME_POINT * scale):
                raise ValueError(f"{type(self).__name__} estimates the score only at its reference point "
                                 f"{ref.tolist()}, not at theta={np.asarray(theta).tolist()}")
        t = self.predict(X)
        return t.reshape(-1, 1) if t.ndim == 1 else t
