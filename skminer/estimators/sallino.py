"""SALLINO: "score approximates likelihood locally in one dimension" (Brehmer, Cranmer, Louppe, Pavez 2018).

A SALLY network estimates the score ``t_hat(x)`` at a reference point ``theta_ref``. In the local
approximation ``log p(x | theta) ~ log p(x | theta_ref) + t(x) . (theta - theta_ref)``, the likelihood ratio
between ``theta0`` and ``theta1`` depends on ``x`` only through the scalar projection

.. math:: h(x | \\theta_0, \\theta_1) = \\hat t(x) \\cdot (\\theta_0 - \\theta_1),

so SALLINO estimates it with one-dimensional densities of ``h``:

.. math:: \\hat r(x | \\theta_0, \\theta_1) = \\hat p(h(x) | \\theta_0) / \\hat p(h(x) | \\theta_1).

The densities are histograms of ``h`` over *calibration events* at ``theta0`` and ``theta1``. Workflow:

1. ``fit(X, t_xz)``: train the score network on events drawn at ``theta_ref`` (exactly as :class:`SALLY`).
2. ``calibrate(X_cal, theta, sample_weight=None)``: store the estimated scores of calibration events and their
   weights at a grid of parameter points, either

   * unweighted events, each drawn at its own point: ``theta`` has one row per event; the distinct rows form
     the grid; or
   * weighted events valid at every grid point: ``theta`` is the grid ``(n_grid, n_parameters)`` and
     ``sample_weight[:, j]`` are the event weights at ``theta[j]`` (e.g. ``EventSet.weights_at(grid)``;
     negative weights are allowed, bins with a negative total are floored).

3. ``predict_log_ratio(X, theta0, theta1=None)``: both points must be on the calibration grid (``theta1``
   defaults to the reference point when ``fit`` was given ``theta=``; a grid of ``theta0`` gives
   ``(n_theta, n_events)``). The histogram of
   ``h`` for the pair uses ``n_bins`` bins of equal probability under the equal mixture of the two calibration
   distributions (outer bins open to infinity); the bin widths cancel in the ratio.

The calibration is part of the fitted state (saved by :func:`~skminer.estimators.persistence.save_estimator`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from sklearn.base import _fit_context
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from .._arrays import from_awkward
from ..morphing import parameter_scales
from ._constraints import IntInterval, RealInterval
from ._protocol import one_point, parameter_points
from .base import _store_params
from .score import SALLY

__all__ = ["SALLINO"]

_CALIBRATION_ATTRIBUTES = ("calibration_theta_", "calibration_scores_", "calibration_weights_",
                           "calibration_group_")


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Quantiles of a weighted sample (non-negative weights, mid-point CDF, linear interpolation)."""
    order = np.argsort(values, kind="stable")
    v = values[order]
    w = weights[order]
    total = w.sum()
    cdf = (np.cumsum(w) - 0.5 * w) / total
    return np.interp(probs, cdf, v)


class SALLINO(SALLY):
    """SALLINO: SALLY score network plus one-dimensional histograms of ``h = t_hat(x) . (theta0 - theta1)``.

    See the module docstring for the method and the ``fit`` / ``calibrate`` / ``predict_log_ratio`` workflow.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(100, 100, 100)
    activation : str, default="tanh"
    optimizer, lr, lr_schedule, lr_final, momentum, weight_decay, batch_size, max_epochs, early_stopping, \
    epoch_selection, validation_fraction, patience
        Training of the score network, as for :class:`~skminer.estimators.score.SALLY` (same defaults).
    n_bins : int, default=20
        Number of histogram bins of ``h`` per parameter pair.
    min_probability : float, default=1e-6
        Floor of the per-bin probabilities (keeps the log ratio finite for empty bins).
    device : str, default="cpu"
    random_state : None, int, RandomState or Generator, default=None
    verbose : int, default=0

    Attributes
    ----------
    net_, n_features_in_, n_outputs_, n_epochs_, best_epoch_, loss_curve_, validation_loss_curve_
        As for :class:`SALLY`.
    selection_restored_, selection_z_, selection_worse_in_a_row_
        As for :class:`SALLY`.
    calibration_theta_ : ndarray of shape (n_grid, n_parameters)
        Calibration grid (after :meth:`calibrate`).
    calibration_scores_ : ndarray of shape (n_calibration, n_parameters)
        Estimated scores of the calibration events.
    calibration_weights_ : ndarray of shape (n_calibration, n_grid) or None
        Event weights at each grid point (weighted calibration).
    calibration_group_ : ndarray of int of shape (n_calibration,) or None
        Grid index of each event (unweighted calibration).
    """

    _fitted_attributes = SALLY._fitted_attributes + _CALIBRATION_ATTRIBUTES
    #: Score at the reference; log likelihood ratios between calibration points after :meth:`calibrate`.
    capabilities: ClassVar[frozenset[str]] = frozenset({"score", "ratio"})

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **SALLY._parameter_constraints,
        "n_bins": [IntInterval(1, None, closed="left")],
        "min_probability": [RealInterval(0, 1, closed="neither")],
    }

    def __init__(self, *, hidden_layer_sizes: tuple[int, ...] = (100, 100, 100), activation: str = "tanh",
                 optimizer: str = "adam", lr: float = 1e-3, lr_schedule: str = "exponential", lr_final: float = 1e-4,
                 momentum: float = 0.9, weight_decay: float = 0.0, batch_size: int = 128, max_epochs: int = 50,
                 early_stopping: bool = True, epoch_selection: str = "ema", validation_fraction: float = 0.25,
                 patience: int = 10, n_bins: int = 20, min_probability: float = 1e-6, device: str = "cpu",
                 n_threads: int | None = None, random_state: Any = None, verbose: int = 0) -> None:
        _store_params(self, locals())

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any, *, theta: Any = None) -> SALLINO:
        """Train the score network (as :meth:`SALLY.fit`) and discard any previous calibration.

        Parameters
        ----------
        X : array-like of shape (n_events, n_features)
            Events drawn at the reference point.
        y : array-like of shape (n_events,) or (n_events, n_parameters)
            Joint score ``t(x, z | theta_ref)``.
        theta : array-like, optional
            The reference point, as for :meth:`SALLY.fit`; it is also the default ``theta1`` of
            :meth:`predict_log_ratio`.

        Returns
        -------
        self
        """
        for name in _CALIBRATION_ATTRIBUTES:
            if hasattr(self, name):
                delattr(self, name)
        super().fit(X, y, theta=theta)
        return self

    def _scores(self, X: np.ndarray) -> np.ndarray:
        t = self.predict(X)
        return t.reshape(-1, 1) if t.ndim == 1 else t

    def calibrate(self, X: Any, theta: Any, sample_weight: Any = None) -> SALLINO:
        """Store the estimated scores and weights of calibration events at a grid of parameter points.

        Parameters
        ----------
        X : array-like of shape (n_calibration, n_features)
            Calibration events (independent of the training events).
        theta : array-like
            Without ``sample_weight``: the point each (unweighted) event was drawn at, shape
            ``(n_calibration, n_parameters)``; the distinct rows form the grid. With ``sample_weight``: the grid,
            shape ``(n_grid, n_parameters)``.
        sample_weight : array-like of shape (n_calibration, n_grid), optional
            Weights of every event at every grid point (cross-section weights; any normalisation).

        Returns
        -------
        self
        """
        check_is_fitted(self, "net_")
        X = validate_data(self, from_awkward(X), reset=False, dtype=np.float64)
        n = X.shape[0]
        p = self.n_outputs_
        theta = check_array(theta, dtype=np.float64, ensure_2d=False, input_name="theta")
        if theta.ndim == 1 and p == 1:
            theta = theta.reshape(-1, 1)
        if theta.ndim != 2 or theta.shape[1] != p:
            raise ValueError(f"theta must have {p} columns (one per score component), got shape {theta.shape}")
        if sample_weight is None:
            if theta.shape[0] != n:
                raise ValueError(f"without sample_weight, theta must have one row per calibration event ({n}), "
                                 f"got shape {theta.shape}")
            grid, group = np.unique(theta, axis=0, return_inverse=True)
            weights = None
            group = group.reshape(-1).astype(np.int64)
        else:
            grid = theta
            weights = check_array(sample_weight, dtype=np.float64, ensure_2d=False, input_name="sample_weight")
            if weights.ndim == 1 and grid.shape[0] == 1:
                weights = weights.reshape(-1, 1)
            if weights.shape != (n, grid.shape[0]):
                raise ValueError(f"sample_weight must have shape (n_calibration={n}, n_grid={grid.shape[0]}), "
                                 f"got {weights.shape}")
            if np.any(weights.sum(axis=0) <= 0):
                bad = np.flatnonzero(weights.sum(axis=0) <= 0)
                raise ValueError(f"sample_weight: the weights at grid points {bad.tolist()} do not have a positive "
                                 "sum")
            group = None
        if len(np.unique(grid, axis=0)) != grid.shape[0]:
            raise ValueError("theta: the calibration grid contains duplicate points")
        self.calibration_theta_ = np.ascontiguousarray(grid)
        self.calibration_scores_ = self._scores(X)
        self.calibration_weights_ = weights
        self.calibration_group_ = group
        return self

    # ------------------------------------------------------------------ prediction
    def _grid_index(self, point: np.ndarray, name: str) -> int:
        grid = self.calibration_theta_
        # relative to each parameter's own scale, whatever its units; a parameter that is zero at every
        # calibration point has no scale there: the reference point's (SALLY.score_at), else an exact match
        scale = parameter_scales(grid)
        constant_zero = np.all(grid == 0, axis=0)
        if np.any(constant_zero):
            ref_scale = getattr(self, "theta_ref_scale_", None)
            fallback = np.zeros(grid.shape[1]) if ref_scale is None or len(ref_scale) != grid.shape[1] \
                else np.asarray(ref_scale, dtype=np.float64)
            scale = np.where(constant_zero, fallback, scale)
        tol = 1e-9 * scale
        hits = np.flatnonzero(np.all(np.abs(grid - point) <= tol, axis=1))
        if hits.size == 0:
            raise ValueError(f"{name}={point.tolist()} is not a calibration point; calibrated points: "
                             f"{grid.tolist()}")
        return int(hits[0])

    def _grid_weights(self, i: int) -> np.ndarray:
        if self.calibration_weights_ is not None:
            return np.asarray(self.calibration_weights_[:, i], dtype=np.float64)
        return (np.asarray(self.calibration_group_) == i).astype(np.float64)

    def _log_ratio_pair(self, t_x: np.ndarray, i0: int, i1: int) -> np.ndarray:
        direction = self.calibration_theta_[i0] - self.calibration_theta_[i1]
        if not np.any(direction):
            return np.zeros(t_x.shape[0])
        h_cal = self.calibration_scores_ @ direction
        h_x = t_x @ direction
        w0 = self._grid_weights(i0)
        w1 = self._grid_weights(i1)
        pos0 = np.clip(w0, 0.0, None)
        pos1 = np.clip(w1, 0.0, None)
        mix = pos0 / pos0.sum() + pos1 / pos1.sum()
        probs = np.linspace(0.0, 1.0, int(self.n_bins) + 1)[1:-1]
        inner = np.unique(_weighted_quantiles(h_cal, mix, probs)) if probs.size else np.zeros(0)
        n_b = inner.size + 1
        bins_cal = np.searchsorted(inner, h_cal, side="right")
        floor = float(self.min_probability)
        p0 = np.clip(np.bincount(bins_cal, weights=w0, minlength=n_b) / w0.sum(), floor, None)
        p1 = np.clip(np.bincount(bins_cal, weights=w1, minlength=n_b) / w1.sum(), floor, None)
        bins_x = np.searchsorted(inner, h_x, side="right")
        return np.log(p0[bins_x]) - np.log(p1[bins_x])

    def predict_log_ratio(self, X: Any, theta0: Any, theta1: Any = None) -> np.ndarray:
        """Estimated ``log r(x | theta0, theta1) = log p_hat(h | theta0) - log p_hat(h | theta1)`` (protocol).

        Parameters
        ----------
        X : array-like of shape (n_events, n_features)
        theta0 : array-like of shape (n_parameters,) or (n_theta, n_parameters)
            One calibration point, or several (the events' scores are computed once for all of them).
        theta1 : array-like of shape (n_parameters,), optional
            A calibration point; default the reference point ``theta_ref_`` (when fitted with ``theta=``).

        Returns
        -------
        ndarray of shape (n_events,) for one ``theta0``, else (n_theta, n_events)

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Before :meth:`calibrate`.
        ValueError
            If a point is not on the calibration grid, or ``theta1`` is missing and no reference is known.
        """
        check_is_fitted(self, "net_")
        owner = type(self).__name__
        if not hasattr(self, "calibration_theta_"):
            raise NotFittedError(f"{owner} needs calibration events: call calibrate(X_cal, theta, sample_weight) "
                                 "after fit")
        p = self.n_outputs_
        if theta1 is None:
            theta1 = getattr(self, "theta_ref_", None)
            if theta1 is None:
                raise ValueError(f"{owner}: pass theta1 (a calibration point), or fit with theta=<reference point> "
                                 "so that it defaults to the reference")
        X = validate_data(self, from_awkward(X), reset=False, dtype=np.float64)
        th0, single = parameter_points(theta0, p, "theta0", owner, X.shape[0])
        i1 = self._grid_index(one_point(theta1, p, "theta1", owner), "theta1")
        t_x = self._scores(X)
        out = np.stack([self._log_ratio_pair(t_x, self._grid_index(row, "theta0"), i1) for row in th0], axis=0)
        return out[0] if single else out
