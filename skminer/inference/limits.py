"""Asymptotic exclusion limits on a parameter grid (section III E of the MadMiner paper).

The extended likelihood of ``n`` observed events is

    log L(theta) = sum_events log p(x_e|theta) + n log(L sigma(theta)) - L sigma(theta)   (+ const)

and ``q(theta) = -2 [log L(theta) - max_grid log L]`` is asymptotically chi^2-distributed with ``n_params``
degrees of freedom (Wilks), which turns ``q`` into p-values. The kinematic term ``log p(x|theta)`` comes from

* ``mode="histogram"``: a (multi-dimensional) histogram of chosen observables, expected bin contents from
  the morphed event weights (Poisson per bin);
* ``mode="score"`` (alias ``"sally"``): the same with a histogram of the estimated score
  ``estimator.score_at(x, theta_ref)`` (any estimator with the ``"score"`` capability, typically SALLY);
* ``mode="ratio"``: any estimator with the ``"ratio"`` capability, ``sum_events log r_hat(x_e|theta, theta_ref)``;
* ``mode="likelihood"``: any estimator with the ``"density"`` capability, ``sum_events log p_hat(x_e|theta)``.

Estimators are used through the inference protocol (:mod:`skminer.methods`), so ensembles and pipelines
(skminer's or scikit-learn's) work like the estimators they hold.

Expected limits use the Asimov data set: the event set's events weighted with ``L w(theta_true)``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats
from sklearn.utils import check_random_state

from .._arrays import axis_edges
from .._metadata import GridShapeWarning
from .._scalars import as_count, as_real
from .._warnings import warn_user
from ..methods import require_capability
from ..pipeline import as_protocol_estimator
from ._adaptive import refine_scan, regular_grid_index
from ._histograms import BinsArg, bin_indices, indicator, inner_edges, merge_sparse_cells
from .fisher import _as_point, _check_luminosity

__all__ = ["AsymptoticLimits", "LimitResult", "fisher_limits", "theta_grid", "p_values_from_q"]

logger = logging.getLogger(__name__)

MODES = ("histogram", "score", "ratio", "likelihood")
#: Older mode names that mean the same as a mode of :data:`MODES`.
_MODE_ALIASES = {"sally": "score"}


def p_values_from_q(q: np.ndarray, n_dof: int) -> np.ndarray:
    """Wilks p-values ``chi2.sf(q, n_dof)`` of the test statistic ``q = -2 Delta log L``."""
    n_dof = as_count(n_dof, "n_dof")
    q = np.asarray(q, dtype=np.float64)
    return np.where(np.isnan(q), np.nan, stats.chi2.sf(np.where(np.isnan(q), 0.0, q), n_dof))


@dataclass
class LimitResult:
    """Log likelihoods and p-values on a parameter grid.

    Attributes
    ----------
    grid : ndarray, shape (n_grid, n_params)
    log_likelihood : ndarray, shape (n_grid,)
        ``log_likelihood_kinematic + log_likelihood_rate`` (up to a theta-independent constant).
    log_likelihood_kinematic, log_likelihood_rate : ndarray, shape (n_grid,)
        The two parts (the rate part is zero without rate information).
    q : ndarray, shape (n_grid,)
        ``-2 (log L - max log L)``, zero at the best fit; ``inf`` where the likelihood vanishes.
    p_values : ndarray, shape (n_grid,)
        Wilks p-values ``chi2.sf(q, n_dof)``.
    best_fit_index : int
    best_fit : ndarray, shape (n_params,)
    mode : str
    n_dof : int
    """

    grid: np.ndarray
    log_likelihood: np.ndarray
    log_likelihood_kinematic: np.ndarray
    log_likelihood_rate: np.ndarray
    q: np.ndarray
    p_values: np.ndarray
    best_fit_index: int
    best_fit: np.ndarray
    mode: str
    n_dof: int
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_log_likelihood(cls, grid: np.ndarray, log_likelihood: np.ndarray, mode: str = "custom",
                            n_dof: int | None = None, log_likelihood_kinematic: np.ndarray | None = None,
                            log_likelihood_rate: np.ndarray | None = None,
                            info: dict[str, Any] | None = None) -> LimitResult:
        """Build a result from log-likelihood values on a grid (best fit, ``q`` and Wilks p-values).

        Parameters
        ----------
        grid : ndarray, shape (n_grid, n_params)
        log_likelihood : ndarray, shape (n_grid,)
            ``-inf`` marks excluded points; NaN is an error.
        mode : str
            Label stored in the result.
        n_dof : int or None
            Degrees of freedom for Wilks' theorem; default ``n_params``.
        log_likelihood_kinematic, log_likelihood_rate : ndarray or None
            Optional split of ``log_likelihood``.
        info : dict or None
            Extra metadata (binning, ...).
        """
        grid = np.asarray(grid, dtype=np.float64)
        if grid.ndim == 1:
            grid = grid[:, None]
        ll = np.asarray(log_likelihood, dtype=np.float64).reshape(-1)
        if grid.ndim != 2 or grid.shape[0] != ll.size:
            raise ValueError(f"grid has shape {grid.shape} but log_likelihood has {ll.size} entries")
        if np.any(np.isnan(ll)):
            raise ValueError(f"log likelihood is NaN at {int(np.isnan(ll).sum())} grid points")
        if not np.any(np.isfinite(ll)):
            raise ValueError("log likelihood is -inf at every grid point (no grid point compatible with the data)")
        best = int(np.argmax(ll))
        info = dict(info or {})
        info["best_fit_on_edge"] = _warn_if_on_edge(grid, best, mode)
        q = -2.0 * (ll - ll[best])
        dof = grid.shape[1] if n_dof is None else as_count(n_dof, "n_dof")
        kin = ll.copy() if log_likelihood_kinematic is None else np.asarray(log_likelihood_kinematic, np.float64)
        rate = np.zeros_like(ll) if log_likelihood_rate is None else np.asarray(log_likelihood_rate, np.float64)
        return cls(grid=grid, log_likelihood=ll, log_likelihood_kinematic=kin, log_likelihood_rate=rate, q=q,
                   p_values=p_values_from_q(q, dof), best_fit_index=best, best_fit=grid[best].copy(), mode=mode,
                   n_dof=dof, info=info)

    def confidence_region(self, cl: float = 0.68) -> np.ndarray:
        """Boolean mask of the grid points inside the ``cl`` confidence region (``p > 1 - cl``)."""
        if not 0 < cl < 1:
            raise ValueError(f"cl must be in (0, 1), got {cl!r}")
        return self.p_values > 1.0 - cl


def _warn_if_on_edge(grid: np.ndarray, best: int, mode: str) -> list[int]:
    """Columns in which the best fit lies on the edge of the scanned grid, with a warning naming them.

    The scan only sees the grid: a maximum on its edge may be the edge of the range rather than of the likelihood
    (data from a point outside the grid give a corner as the "best fit").
    """
    lo, hi = grid.min(axis=0), grid.max(axis=0)
    tol = 1e-9 * np.maximum(hi - lo, np.finfo(np.float64).tiny)
    point = grid[best]
    edge = [j for j in range(grid.shape[1]) if hi[j] > lo[j]
            and (point[j] - lo[j] <= tol[j] or hi[j] - point[j] <= tol[j])]
    if edge:
        where = ", ".join(f"parameter {j} = {point[j]:g} (grid [{lo[j]:g}, {hi[j]:g}])" for j in edge)
        warn_user(f"limits ({mode}): the best fit {point.tolist()} lies on the edge of the scanned grid: {where}; "
                      "the likelihood may peak outside the grid (unless the true point is on the edge), so the best "
                      "fit and the intervals there are cut by the grid: widen the scanned range", UserWarning)
    return edge


def theta_grid(ranges: np.ndarray | Sequence[Sequence[float]], n_points: int | Sequence[int]) -> np.ndarray:
    """Regular grid of parameter points, shape ``(prod(n_points), n_params)`` (first parameter slowest).

    Parameters
    ----------
    ranges : array-like, shape (n_params, 2)
    n_points : int or sequence of int
        Points per axis (each >= 2).
    """
    ranges = np.asarray(ranges, dtype=np.float64)
    if ranges.ndim != 2 or ranges.shape[1] != 2 or np.any(ranges[:, 1] <= ranges[:, 0]):
        raise ValueError(f"ranges must have shape (n_params, 2) with low < high, got {ranges.tolist()}")
    n = np.broadcast_to(np.asarray(n_points), (ranges.shape[0],))
    if np.any(n < 2) or np.any(n != np.round(n)):
        raise ValueError(f"n_points must be integers >= 2, got {n_points!r}")
    axes = [np.linspace(lo, hi, int(k)) for (lo, hi), k in zip(ranges, n, strict=True)]
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


def fisher_limits(information: np.ndarray, theta_ref: np.ndarray, grid: np.ndarray,
                  n_dof: int | None = None) -> LimitResult:
    """Limits in the local Fisher approximation, ``q(theta) = (theta - theta_ref)^T I (theta - theta_ref)``.

    Parameters
    ----------
    information : ndarray, shape (n, n)
    theta_ref : ndarray, shape (n,)
        Best fit (true point) of the approximation.
    grid : ndarray, shape (n_grid, n)
    n_dof : int or None
        Degrees of freedom, default ``n``.
    """
    info = np.asarray(information, dtype=np.float64)
    if info.ndim != 2 or info.shape[0] != info.shape[1]:
        raise ValueError(f"information must be a square matrix, got shape {info.shape}")
    n = info.shape[0]
    ref = _as_point(theta_ref, n, "theta_ref")
    grid = _as_grid(grid, n)
    delta = grid - ref
    d2 = np.einsum("gi,ij,gj->g", delta, 0.5 * (info + info.T), delta)
    ll = -0.5 * d2
    return LimitResult.from_log_likelihood(grid, ll - ll.max(), mode="fisher", n_dof=n_dof)


def _as_grid(grid: Any, n_params: int) -> np.ndarray:
    g = np.asarray(grid, dtype=np.float64)
    if g.ndim == 1 and n_params == 1:
        g = g[:, None]
    if g.ndim != 2 or g.shape[1] != n_params or g.shape[0] < 1:
        raise ValueError(f"grid must have shape (n_grid, {n_params}), got {np.shape(grid)}")
    if not np.all(np.isfinite(g)):
        raise ValueError("grid contains NaN or inf")
    return g


def _poisson_log_likelihood(counts: np.ndarray, expected: np.ndarray, total: np.ndarray,
                            ) -> tuple[np.ndarray, np.ndarray]:
    """Kinematic ``sum_b n_b log(nu_b / nu_tot)`` and rate ``n log nu_tot - nu_tot`` per grid point.

    counts : (n_bins,); expected : (n_bins, n_grid); total : (n_grid,)
    """
    used = counts != 0
    n = counts.sum()
    nu = expected[used]
    with np.errstate(divide="ignore", invalid="ignore"):
        good = np.all(nu > 0, axis=0) & (total > 0)
        frac = np.where(nu > 0, nu, 1.0) / np.where(total > 0, total, 1.0)[None, :]
        kin = counts[used] @ np.log(frac)
        rate = n * np.log(np.where(total > 0, total, 1.0)) - total
    kin = np.where(good, kin, -np.inf)
    rate = np.where(total > 0, rate, -np.inf)
    return kin, rate


class AsymptoticLimits:
    """Expected and observed limits on a parameter grid from histograms, SALLY scores or ratio estimators.

    Parameters
    ----------
    events : EventSet
        Weighted events with morphing (``weights_at``, ``cross_section``); they model the expected histograms,
        provide the cross section for the rate term and, weighted at ``theta_true``, the Asimov data.
    luminosity : float
        Integrated luminosity in pb^-1.
    max_batch_size : int
        Rows per estimator call in ratio mode (events x grid points), and the size of weight blocks
        (events x grid points) evaluated at once.
    min_expected : float
        Automatic (``int``) histogram binnings for observed limits merge cells with fewer expected events (at the
        binning point and this luminosity) into their nearest neighbour
        (:func:`~skminer.inference._histograms.merge_sparse_cells`).
    min_simulated : int
        Automatic binnings (expected and observed limits) also merge cells with fewer simulated events, so that no
        data event falls into an empty bin and no bin rests on a handful of events. Explicit edges are used as
        given (a WARNING counts observed events in bins without simulated events).
    n_asimov : int or None
        Expected limits in ``"ratio"`` and ``"likelihood"`` mode evaluate the estimator on at most this many
        Asimov events: a random subset (without replacement) of the events with non-zero weight at
        ``theta_true``, reweighted so that the total Asimov weight is unchanged. The cost of those modes is
        proportional to the number of events times grid points; the subset adds Monte-Carlo noise to ``q`` of
        relative size about ``1/sqrt(n_asimov)``. None (default): every event, no noise.
    random_state : None, int, RandomState or Generator
        Seeds the ``n_asimov`` subset (the same seed gives the same subset).

    Attributes
    ----------
    diagnostics_ : dict
        After expected limits in ``mode="ratio"``: the ratio closure ``E_theta1[r_hat(x|theta0, theta1)] = 1`` and
        the calibration curve at up to five grid points, from the evaluations the limits made anyway
        (:func:`~skminer.inference.diagnostics.ratio_diagnostics`; violations are WARNINGs). Also in the
        result's ``info["diagnostics"]``.

    Examples
    --------
    >>> limits = AsymptoticLimits(events, luminosity=300.0)                      # doctest: +SKIP
    >>> res = limits.expected_limits([0, 0], theta_grid([[-1, 1], [-1, 1]], 21), mode="histogram",
    ...                              observables=["x0"], bins=20)              # doctest: +SKIP
    >>> res.best_fit, res.p_values                                              # doctest: +SKIP
    """

    def __init__(self, events: Any, luminosity: float, *, max_batch_size: int = 1_000_000, min_expected: float = 1.0,
                 min_simulated: int = 10, n_asimov: int | None = None, random_state: Any = None) -> None:
        for attr in ("x", "weights_at", "cross_section"):
            if not hasattr(events, attr):
                raise TypeError(f"events must be an EventSet (missing attribute {attr!r}), got {type(events).__name__}")
        self.max_batch_size = as_count(max_batch_size, "max_batch_size")
        self.events = events
        self.luminosity = _check_luminosity(luminosity)
        self.n_parameters = int(events.space.n_parameters)
        self.min_expected = as_real(min_expected, "min_expected")
        if not self.min_expected >= 0:
            raise ValueError(f"min_expected must be >= 0, got {min_expected!r}")
        self.min_simulated = as_count(min_simulated, "min_simulated", minimum=0)
        self.n_asimov = None if n_asimov is None else as_count(n_asimov, "n_asimov")
        self.random_state = random_state

    # -- public ---------------------------------------------------------------------------------------
    def expected_limits(self, theta_true: Any, grid: np.ndarray, mode: str = "histogram", *,
                        observables: Sequence[str | int] | str | int | None = None, bins: Any = 20,
                        estimator: Any = None, theta_ref: Any = None, include_rate: bool = True,
                        binning_theta: Any = None, n_dof: int | None = None,
                        refine: Sequence[float] | None = None) -> LimitResult:
        """Expected limits for the Asimov data set at ``theta_true``.

        Parameters
        ----------
        theta_true : array-like, shape (n_params,)
            Parameter point assumed true; the Asimov data are the events weighted with ``L w(theta_true)``.
        grid : ndarray, shape (n_grid, n_params)
            Parameter points to test (see :func:`theta_grid`).
        mode : {"histogram", "score", "ratio", "likelihood"}
            Source of the kinematic likelihood (module docstring); ``"sally"`` means ``"score"``.
        observables : str, int or sequence, optional
            ``mode="histogram"``: observables (names or column indices) of the (multi-dimensional) histogram.
        bins : int, array of edges, or sequence of them (one per dimension)
            Histogram binning for ``"histogram"`` and ``"sally"``; ``int`` bins get equal Asimov content
            (weighted quantiles at ``binning_theta``), explicit edges get extra under-/overflow bins.
        estimator : estimator, optional
            With the capability the mode needs (``"score"``, ``"ratio"`` or ``"density"``); an Ensemble
            contributes its mean, a Pipeline transforms ``X`` first. A missing capability raises ``TypeError``.
        theta_ref : array-like, optional
            ``"ratio"``: the denominator point ``theta1`` of ``predict_log_ratio`` (default: the first grid
            point; the choice shifts the log likelihood by a constant and leaves ``q`` unchanged).
            ``"score"``: the point the score is asked at (SALLY checks it against its reference).
        include_rate : bool
            Include the Poisson rate term (extended likelihood); otherwise only the shape is used.
        binning_theta : array-like, optional
            Point at which automatic histogram edges are placed; default ``theta_true``.
        n_dof : int, optional
            Degrees of freedom for Wilks' theorem; default ``n_params``.
        refine : sequence of float, optional
            ``"ratio"`` and ``"likelihood"`` modes on a regular grid (:func:`theta_grid`, any row order):
            confidence levels (e.g. ``(0.68, 0.95)``) whose regions must come out as in a dense scan. The scan
            starts on a coarse sub-lattice, halves the spacing step by step and evaluates the estimator only at
            points whose interpolated ``q`` is not clearly on one side of those contours or could be the best
            fit; the others keep the interpolated ``log L`` (``info["evaluated"]`` marks the exact points).
            Regions at other levels are approximate. None (default): every grid point is evaluated.

        Returns
        -------
        LimitResult
        """
        th_true = _as_point(theta_true, self.n_parameters, "theta_true")
        w_true = self._weights(th_true[None, :])[:, 0]
        data_weights = self.luminosity * w_true
        if not data_weights.sum() > 0:
            raise ValueError(f"cross section at theta_true={th_true.tolist()} is not positive")
        binning_w = w_true if binning_theta is None else self._weights(
            _as_point(binning_theta, self.n_parameters, "binning_theta")[None, :])[:, 0]
        return self._limits(grid, mode, x_data=None, data_weights=data_weights, observables=observables, bins=bins,
                            estimator=estimator, theta_ref=theta_ref, include_rate=include_rate,
                            binning_weights=binning_w, n_dof=n_dof, extra={"theta_true": th_true}, refine=refine)

    def observed_limits(self, x_observed: np.ndarray, grid: np.ndarray, mode: str = "histogram", *,
                        observables: Sequence[str | int] | str | int | None = None, bins: Any = 20,
                        estimator: Any = None, theta_ref: Any = None, include_rate: bool = True,
                        binning_theta: Any = None, n_dof: int | None = None,
                        refine: Sequence[float] | None = None) -> LimitResult:
        """Limits from observed events.

        Parameters
        ----------
        x_observed : ndarray, shape (n_observed, n_observables)
            Observed events, same columns as ``events.x``.
        binning_theta : array-like, optional
            Point at which automatic histogram edges are placed (weighted quantiles of the event set); default:
            quantiles of the observed events themselves.

        Other parameters as in :meth:`expected_limits`.

        Returns
        -------
        LimitResult
        """
        x_obs = np.asarray(x_observed, dtype=np.float64)
        n_obs = np.asarray(self.events.x).shape[1]
        if x_obs.ndim == 1 and n_obs == 1:
            x_obs = x_obs[:, None]
        if x_obs.ndim != 2 or x_obs.shape[1] != n_obs:
            raise ValueError(f"x_observed must have shape (n_observed, {n_obs}), got {np.shape(x_observed)}")
        if not np.all(np.isfinite(x_obs)):
            raise ValueError("x_observed contains NaN or inf")
        binning_w = None if binning_theta is None else self._weights(
            _as_point(binning_theta, self.n_parameters, "binning_theta")[None, :])[:, 0]
        return self._limits(grid, mode, x_data=x_obs, data_weights=None, observables=observables, bins=bins,
                            estimator=estimator, theta_ref=theta_ref, include_rate=include_rate,
                            binning_weights=binning_w, n_dof=n_dof, extra={"n_observed": x_obs.shape[0]},
                            refine=refine)

    # -- internals ------------------------------------------------------------------------------------
    def _weights(self, theta: np.ndarray) -> np.ndarray:
        n = len(self.events.x)
        return np.asarray(self.events.weights_at(theta), dtype=np.float64).reshape(n, theta.shape[0])

    def _cross_sections(self, grid: np.ndarray) -> np.ndarray:
        return np.asarray(self.events.cross_section(grid), dtype=np.float64).reshape(grid.shape[0])

    def _grid_chunks(self, n_grid: int, n_rows: int) -> list[slice]:
        size = max(1, self.max_batch_size // max(n_rows, 1))
        return [slice(i, min(i + size, n_grid)) for i in range(0, n_grid, size)]

    def _column_indices(self, observables: Sequence[str | int] | str | int | None) -> list[int]:
        if observables is None:
            raise ValueError("mode='histogram' needs observables (names or column indices of events.x)")
        obs = [observables] if isinstance(observables, (str, int, np.integer)) else list(observables)
        if not obs:
            raise ValueError("observables must not be empty")
        names = list(getattr(self.events, "observable_names", []))
        n_cols = np.asarray(self.events.x).shape[1]
        cols = []
        for o in obs:
            if isinstance(o, str):
                if o not in names:
                    raise ValueError(f"observable {o!r} not in the event set's observables {names}")
                cols.append(names.index(o))
            elif isinstance(o, (int, np.integer)) and -n_cols <= o < n_cols:
                cols.append(int(o) % n_cols)
            else:
                raise ValueError(f"observable {o!r} is neither a known name nor a column index < {n_cols}")
        return cols

    @staticmethod
    def _per_dim_bins(bins: Any, n_dim: int) -> list[BinsArg]:
        bins = axis_edges(bins)  # a hist axis: its edges; refuses bools
        if isinstance(bins, (int, np.integer)):
            return [int(bins)] * n_dim
        if not isinstance(bins, (list, tuple)) and np.ndim(bins) == 0:  # (np.ndim of a list of hist axes fails)
            raise ValueError(f"bins must be an int (the number of bins), bin edges, or one entry per histogram "
                             f"dimension, got {type(bins).__name__} {bins!r}")
        if isinstance(bins, np.ndarray) and bins.ndim == 1 and n_dim == 1 and np.issubdtype(bins.dtype, np.floating):
            return [bins]
        seq = list(bins)
        # one observable: a list of numbers is its edges, [0.5] included (one float cannot be a bin count);
        # only a single int ([20]) is read as the per-dimension entry
        if n_dim == 1 and (len(seq) != 1 or isinstance(seq[0], (float, np.floating))):
            return [np.asarray(seq, dtype=np.float64)]
        if len(seq) != n_dim:
            raise ValueError(f"bins must be an int, edges for one observable, or one entry per histogram "
                             f"dimension ({n_dim}), got {bins!r}")
        return seq

    def _limits(self, grid: Any, mode: str, *, x_data: np.ndarray | None, data_weights: np.ndarray | None,
                observables: Any, bins: Any, estimator: Any, theta_ref: Any, include_rate: bool,
                binning_weights: np.ndarray | None, n_dof: int | None, extra: dict[str, Any],
                refine: Sequence[float] | None = None) -> LimitResult:
        self.diagnostics_: dict[str, Any] = {}  # filled by this call where it checks something (mode="ratio")
        mode = _MODE_ALIASES.get(mode, mode)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        grid = _as_grid(grid, self.n_parameters)
        if refine is not None and mode not in ("ratio", "likelihood"):
            raise ValueError(f"refine applies to mode='ratio' and 'likelihood' (histogram modes evaluate every grid "
                             f"point cheaply), got mode={mode!r}")
        if mode in ("ratio", "likelihood"):
            total = self.luminosity * self._cross_sections(grid)
            n = x_data.shape[0] if data_weights is None else float(data_weights.sum())
            with np.errstate(divide="ignore", invalid="ignore"):
                rate = np.where(total > 0, n * np.log(np.where(total > 0, total, 1.0)) - total, -np.inf)
            info: dict[str, Any] = {}
            x, c, used = self._kinematic_events(x_data, data_weights, info)
            evaluate = self._kinematic_function(mode, estimator, theta_ref, grid)
            recorder = None
            if mode == "ratio" and data_weights is not None:  # Asimov: the closure check reuses the evaluations
                ref = grid[0] if theta_ref is None else _as_point(theta_ref, self.n_parameters, "theta_ref")
                evaluate = recorder = _ClosureRecorder(evaluate, grid, ref)
            if refine is None:
                kin = self._kinematic_terms(grid, x, c, evaluate)
            else:
                kin = self._refined_kinematic_terms(grid, x, c, evaluate, refine, rate if include_rate else None,
                                                    n_dof, info)
            if recorder is not None:
                info["diagnostics"] = self.diagnostics_ = recorder.diagnostics(
                    self._weights, used, type(estimator).__name__, covered=data_weights != 0)
        else:
            if mode == "histogram":
                cols = self._column_indices(observables)
                values = np.asarray(self.events.x, dtype=np.float64)[:, cols]
                data_values = None if x_data is None else x_data[:, cols]
                names = list(getattr(self.events, "observable_names", []))
                labels = [names[c] if len(names) > c else f"x[{c}]" for c in cols]
            else:
                values, data_values = self._score_values(estimator, x_data, theta_ref)
                labels = [f"t_hat[{i}]" for i in range(values.shape[1])]
            per_dim = self._per_dim_bins(bins, values.shape[1])
            if binning_weights is None:  # observed data without binning_theta: quantiles of the data
                if data_values.shape[0] == 0 and any(isinstance(b, (int, np.integer)) for b in per_dim):
                    raise ValueError("x_observed holds no events, and automatic histogram edges are quantiles of "
                                     "the observed events: pass binning_theta= (with no events every binning "
                                     "gives the same likelihood, the rate term alone) or explicit bin edges")
                edges = [inner_edges(data_values[:, d], b, None, labels[d]) for d, b in enumerate(per_dim)]
            else:
                edges = [inner_edges(values[:, d], b, binning_weights, labels[d]) for d, b in enumerate(per_dim)]
            cells = None
            if all(isinstance(b, (int, np.integer)) for b in per_dim):  # automatic: no sparse cells
                bw = binning_weights if binning_weights is not None else self._weights(grid.mean(axis=0)[None])[:, 0]
                index, _ = bin_indices(values, edges)
                # Asimov data fill exactly the simulated cells: only observed data need the expected minimum
                cells = merge_sparse_cells(index, [e.size + 1 for e in edges], self.luminosity * bw,
                                           self.min_expected if x_data is not None else 0.0, self.min_simulated)
            kin, rate, total = self._histogram_terms(grid, values, edges, data_values, data_weights, cells)
            info = {"edges": edges, "observables": labels, "cell_to_bin": cells}
        if not include_rate:
            rate = np.zeros_like(kin)
        ll = kin + rate
        info.update(extra)
        info["cross_sections"] = total / self.luminosity
        return LimitResult.from_log_likelihood(grid, ll, mode=mode, n_dof=n_dof, log_likelihood_kinematic=kin,
                                               log_likelihood_rate=rate, info=info)

    def _score_values(self, estimator: Any, x_data: np.ndarray | None, theta_ref: Any
                      ) -> tuple[np.ndarray, np.ndarray | None]:
        """Estimated scores of the event set (and of the observed events) for the score histogram."""
        if estimator is None:
            raise ValueError("mode='score' needs an estimator with the 'score' capability (e.g. a fitted SALLY)")
        estimator = as_protocol_estimator(estimator)
        require_capability(estimator, "score", "AsymptoticLimits mode='score'")
        ref = None if theta_ref is None else _as_point(theta_ref, self.n_parameters, "theta_ref")
        n_nu = int(getattr(self.events, "n_nuisance", 0) or 0)

        def scores(x: np.ndarray) -> np.ndarray:
            t = np.asarray(estimator.score_at(x, ref), dtype=np.float64)
            if t.ndim != 2 or t.shape[0] != x.shape[0] or not np.all(np.isfinite(t)):
                raise ValueError(f"{type(estimator).__name__}.score_at returned shape {t.shape} or non-finite "
                                 f"values for {x.shape[0]} events")
            if n_nu and t.shape[1] == self.n_parameters + n_nu:
                t = t[:, : self.n_parameters]  # the theta part of a (theta, nu) score estimator
            return t

        values = scores(np.asarray(self.events.x, dtype=np.float64))
        return values, None if x_data is None else scores(x_data)

    def _histogram_terms(self, grid: np.ndarray, values: np.ndarray, edges: list[np.ndarray],
                         data_values: np.ndarray | None, data_weights: np.ndarray | None,
                         cells: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        index, n_bins = bin_indices(values, edges)
        if cells is not None:  # merged cells of an automatic binning
            index, n_bins = cells[index], int(cells.max()) + 1
        ind = indicator(index, n_bins)
        if data_weights is not None:
            counts = np.asarray(ind @ data_weights).reshape(-1)
        else:
            data_index, _ = bin_indices(data_values, edges)
            if cells is not None:
                data_index = cells[data_index]
            counts = np.bincount(data_index, minlength=n_bins).astype(np.float64)
            empty = (counts > 0) & (np.bincount(index, minlength=n_bins) == 0)
            if np.any(empty):
                logger.warning("%d observed events fall into %d histogram bins without simulated events (the "
                               "likelihood is -inf there at every parameter point); use fewer or wider bins",
                               int(counts[empty].sum()), int(empty.sum()))
        kin = np.empty(grid.shape[0])
        rate = np.empty(grid.shape[0])
        total = np.empty(grid.shape[0])
        for sl in self._grid_chunks(grid.shape[0], len(values)):
            w = self._weights(grid[sl])
            expected = self.luminosity * np.asarray(ind @ w).reshape(n_bins, -1)
            total[sl] = expected.sum(axis=0)
            kin[sl], rate[sl] = _poisson_log_likelihood(counts, expected, total[sl])
        if np.any(counts < 0):
            logger.warning("Asimov histogram has %d bins with negative content (negative weights)",
                           int(np.sum(counts < 0)))
        return kin, rate, total

    def _kinematic_function(self, mode: str, estimator: Any, theta_ref: Any, grid: np.ndarray
                            ) -> Any:
        """``f(x, grid_chunk) -> (n_chunk, n_events)``: log r_hat against ``theta_ref`` or log p_hat."""
        capability = "ratio" if mode == "ratio" else "density"
        if estimator is None:
            raise ValueError(f"mode={mode!r} needs an estimator with the {capability!r} capability")
        estimator = as_protocol_estimator(estimator)
        require_capability(estimator, capability, f"AsymptoticLimits mode={mode!r}")
        if mode == "likelihood":
            return lambda x, g: estimator.log_likelihood(x, g)
        ref = grid[0] if theta_ref is None else _as_point(theta_ref, self.n_parameters, "theta_ref")
        return lambda x, g: estimator.predict_log_ratio(x, g, ref)

    def _kinematic_events(self, x_data: np.ndarray | None, data_weights: np.ndarray | None, info: dict[str, Any]
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Events and their weights ``c`` in the kinematic sum: observed events (weight 1), or the Asimov events
        with non-zero weight, subsampled to ``n_asimov`` with the total weight preserved; and, for Asimov data,
        the mask of the event set's rows that are used."""
        if data_weights is None:
            return x_data, np.ones(x_data.shape[0]), None
        nz = np.flatnonzero(data_weights != 0)
        if self.n_asimov is not None and nz.size > self.n_asimov:
            rng = check_random_state(self.random_state)
            keep = np.sort(rng.choice(nz.size, size=self.n_asimov, replace=False))
            total = data_weights[nz].sum()
            nz = nz[keep]
            c = data_weights[nz] * (total / data_weights[nz].sum())
            logger.info("expected limits: %d of %d Asimov events (n_asimov), reweighted to the same total",
                        nz.size, int(np.sum(data_weights != 0)))
        else:
            c = data_weights[nz]
        info["n_asimov"] = int(nz.size)
        used = np.zeros(data_weights.shape[0], dtype=bool)
        used[nz] = True
        return np.asarray(self.events.x, dtype=np.float64)[nz], c, used

    def _refined_kinematic_terms(self, grid: np.ndarray, x: np.ndarray, c: np.ndarray, evaluate: Any,
                                 refine: Sequence[float], rate: np.ndarray | None, n_dof: int | None,
                                 info: dict[str, Any]) -> np.ndarray:
        """Kinematic terms from :func:`~skminer.inference._adaptive.refine_scan` (exact near the contours)."""
        index = regular_grid_index(grid)
        if index is None:
            raise ValueError("refine needs a regular grid (every combination of the per-parameter values once, as "
                             "from theta_grid)")
        shape, rows = index
        cls = np.asarray(refine, dtype=np.float64).reshape(-1)
        if cls.size == 0 or np.any((cls <= 0) | (cls >= 1)):
            raise ValueError(f"refine must be confidence levels in (0, 1), got {refine!r}")
        levels = stats.chi2.ppf(cls, grid.shape[1] if n_dof is None else int(n_dof))
        extra = np.zeros(grid.shape[0]) if rate is None else rate

        def log_likelihood(flat: np.ndarray) -> np.ndarray:
            sel = rows[flat]
            return self._kinematic_terms(grid[sel], x, c, evaluate) + extra[sel]

        ll, evaluated = refine_scan(log_likelihood, shape, levels)
        kin = np.empty(grid.shape[0])
        kin[rows] = ll.reshape(-1)
        with np.errstate(invalid="ignore"):
            kin = np.where(np.isneginf(extra), -np.inf, kin - extra)  # excluded points stay excluded
        mask = np.empty(grid.shape[0], dtype=bool)
        mask[rows] = evaluated.reshape(-1)
        info["evaluated"] = mask
        info["refine"] = cls.tolist()
        logger.info("refined scan: %d of %d grid points evaluated", int(mask.sum()), grid.shape[0])
        return kin

    def _kinematic_terms(self, grid: np.ndarray, x: np.ndarray, c: np.ndarray, evaluate: Any) -> np.ndarray:
        """``sum_events c_e f(x_e | theta)`` for every grid point (``c``: Asimov weights or 1 per observed event)."""
        n = x.shape[0]
        kin = np.empty(grid.shape[0])
        for sl in self._grid_chunks(grid.shape[0], n):
            g = grid[sl]
            with warnings.catch_warnings():  # a chunk may happen to have as many points as there are events
                warnings.simplefilter("ignore", GridShapeWarning)
                values = np.asarray(evaluate(x, g), dtype=np.float64).reshape(-1, n)
            if values.shape[0] != g.shape[0]:
                raise ValueError(f"the estimator returned {values.size} values for {g.shape[0]} grid points x {n} "
                                 "events")
            if np.any(np.isnan(values)):
                raise ValueError(f"the estimator returned NaN for {int(np.isnan(values).sum())} (point, event) pairs")
            kin[sl] = values @ c
        return kin


class _ClosureRecorder:
    """Wraps the kinematic function of ``mode="ratio"`` and keeps ``log r_hat`` at a few grid points.

    From them :meth:`diagnostics` checks ``E_theta1[r_hat(x|theta0, theta1)] = 1`` and the calibration curve
    (:func:`skminer.inference.diagnostics.ratio_diagnostics`) without evaluating the estimator again: up to five
    grid points spread over the grid (first, last and evenly between, the reference excluded).
    """

    N_POINTS = 5

    def __init__(self, evaluate: Any, grid: np.ndarray, theta1: np.ndarray) -> None:
        self.evaluate = evaluate
        self.theta1 = theta1
        pick = np.unique(np.linspace(0, grid.shape[0] - 1, min(self.N_POINTS, grid.shape[0])).round().astype(int))
        self.points = [tuple(p) for p in grid[pick] if not np.array_equal(p, theta1)]
        self.values: dict[tuple[float, ...], np.ndarray] = {}

    def __call__(self, x: np.ndarray, g: np.ndarray) -> np.ndarray:
        out = self.evaluate(x, g)
        rows = np.asarray(out, dtype=np.float64).reshape(-1, x.shape[0])
        for i, point in enumerate(map(tuple, g)):
            if point in self.points and i < rows.shape[0]:
                self.values[point] = rows[i].copy()
        return out

    def diagnostics(self, weights: Any, events: np.ndarray, label: str, covered: np.ndarray) -> dict[str, Any]:
        """Ratio closure on the evaluated events (``events``: mask of the event set's rows that were evaluated, a
        random ``n_asimov`` subset of the ``covered`` rows, those with non-zero Asimov weight).

        Skipped (empty dict, INFO message) when the covered events miss more than 0.1% of the ``theta1`` cross
        section (Asimov weights vanishing where ``theta1`` has events): the average would be biased.
        """
        from .diagnostics import ratio_diagnostics

        w1 = weights(self.theta1[None, :])[:, 0]
        if not self.values or abs(w1[~covered].sum()) > 1e-3 * abs(w1.sum()):
            logger.info("ratio closure not checked: %d grid points recorded, the Asimov events carry %.4g of the "
                        "theta1 cross section", len(self.values), w1[covered].sum() / w1.sum() if w1.sum() else 0.0)
            return {}
        points = np.array([p for p in self.points if p in self.values])
        n = int(events.sum())
        return ratio_diagnostics(lambda x, th0: self.values[tuple(th0)], np.empty((n, 0)),
                                 lambda th: weights(np.asarray(th, dtype=np.float64)[None, :])[:, 0][events],
                                 points, self.theta1, label=label)

