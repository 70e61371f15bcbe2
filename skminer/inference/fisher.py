"""Fisher information (section II D of the MadMiner paper, eqs. 13-16).

For events described by the differential cross section ``dsigma(x|theta)`` and an integrated luminosity ``L``
the Fisher information of the extended (Poisson) likelihood is

    I_ij(theta) = L * integral dx  d_i dsigma(x|theta) d_j dsigma(x|theta) / dsigma(x|theta)
                = L / sigma * d_i sigma d_j sigma  +  L * sigma * E[t_i(x|theta) t_j(x|theta)]      (eq. 16)

with the score ``t = grad_theta log p(x|theta)``. :class:`FisherInformation` estimates it from weighted events
(an :class:`~skminer.events.EventSet`), whose weights and their theta-gradients come from morphing:

* :meth:`~FisherInformation.truth_information`: everything at parton level observable,
  ``L * sum_events grad w grad w^T / w``;
* :meth:`~FisherInformation.rate_information`: the first term of eq. 16;
* :meth:`~FisherInformation.full_information`: eq. 16 with any estimator of the score ``t(x)`` (the ``"score"``
  capability of the inference protocol: SALLY, ratio and density estimators, ensembles, pipelines);
* :meth:`~FisherInformation.histogram_information` / :meth:`~FisherInformation.histogram_information_2d`:
  the information in histograms of one or two observables;
* :meth:`~FisherInformation.information_distribution`: where in an observable the information sits.

Nuisance parameters ``nu`` (eq. 19, ``w(nu) = w(0) exp(a nu + b nu^2)``) extend ``theta``: the weight gradient
with respect to ``nu_k`` at ``nu = 0`` is ``w a_k``. Pass ``include_nuisance=True`` to get matrices over
``(theta, nu)``; add :meth:`~FisherInformation.nuisance_constraint_information` and profile with
:func:`~skminer.inference.nuisance.profile_information`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from .._arrays import axis_edges
from .._scalars import as_count, as_real
from ..methods import require_capability
from ..pipeline import as_protocol_estimator
from ._histograms import BinsArg, bin_indices, indicator, inner_edges
from .diagnostics import score_diagnostics
from .nuisance import nuisance_constraint_information, profile_information, project_information

__all__ = [
    "FisherInformation",
    "InformationDistribution",
    "fisher_distance",
    "fisher_contour",
    "distance_for_cl",
    "information_mean_and_covariance",
    "profile_information",
    "project_information",
]

logger = logging.getLogger(__name__)


@dataclass
class InformationDistribution:
    """Fisher information binned in one observable (output of :meth:`FisherInformation.information_distribution`).

    Attributes
    ----------
    edges : ndarray, shape (n_bins + 1,)
        Bin edges of the observable.
    cross_sections : ndarray, shape (n_bins,)
        Cross section in each bin (pb).
    rate : ndarray, shape (n_bins, n, n)
        Information in the event count of each bin, ``L grad sigma_b grad sigma_b^T / sigma_b`` (zero for bins
        with ``sigma_b <= 0``); their sum is the histogram information.
    full : ndarray, shape (n_bins, n, n)
        Differential information per bin, ``L sum_{events in b} w u u^T``, with ``u`` the score of the extended
        likelihood: ``t_hat(x) + grad sigma / sigma`` with a score estimator, the joint ``grad w / w`` without
        (truth level). Summed over all bins it is the full (or truth) information.
    observable : str
        Name of the observable.
    kind : str
        ``"full"`` (score estimator) or ``"truth"``.
    """

    edges: np.ndarray
    cross_sections: np.ndarray
    rate: np.ndarray
    full: np.ndarray
    observable: str
    kind: str

    @property
    def n_bins(self) -> int:
        """Number of bins."""
        return self.cross_sections.size

    @property
    def centers(self) -> np.ndarray:
        """Bin centres."""
        return 0.5 * (self.edges[1:] + self.edges[:-1])


def _as_point(theta: Any, n_params: int, name: str = "theta") -> np.ndarray:
    th = np.asarray(theta, dtype=np.float64).reshape(-1)
    if th.shape != (n_params,):
        raise ValueError(f"{name} must be a single parameter point with {n_params} entries, got shape "
                         f"{np.shape(theta)}")
    if not np.all(np.isfinite(th)):
        raise ValueError(f"{name} must be finite, got {th}")
    return th


def _check_luminosity(luminosity: float) -> float:
    lumi = as_real(luminosity, "luminosity")
    if not np.isfinite(lumi) or lumi <= 0:
        raise ValueError(f"luminosity must be positive and finite (pb^-1), got {luminosity!r}")
    return lumi


def _symmetrize(m: np.ndarray) -> np.ndarray:
    return 0.5 * (m + np.swapaxes(m, -1, -2))


def information_mean_and_covariance(members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of an ensemble of information matrices.

    Parameters
    ----------
    members : ndarray, shape (n_members, n, n)

    Returns
    -------
    mean : ndarray, shape (n, n)
    covariance : ndarray, shape (n, n, n, n)
        ``covariance[i, j, k, l] = Cov(I_ij, I_kl)`` over members (``ddof=1``; zero for one member).
    """
    m = np.asarray(members, dtype=np.float64)
    if m.ndim != 3 or m.shape[1] != m.shape[2]:
        raise ValueError(f"members must have shape (n_members, n, n), got {m.shape}")
    n = m.shape[1]
    mean = m.mean(axis=0)
    if m.shape[0] < 2:
        return mean, np.zeros((n, n, n, n))
    flat = m.reshape(m.shape[0], -1)
    cov = np.cov(flat, rowvar=False, ddof=1).reshape(n, n, n, n)
    return mean, cov


def fisher_distance(information: np.ndarray, theta: np.ndarray, theta_ref: np.ndarray) -> np.ndarray:
    """Local Fisher distance ``d(theta, theta_ref) = sqrt((theta - theta_ref)^T I (theta - theta_ref))`` (eq. 15).

    Parameters
    ----------
    information : ndarray, shape (n, n)
    theta : ndarray, shape (n,) or (n_theta, n)
    theta_ref : ndarray, shape (n,)

    Returns
    -------
    float or ndarray, shape (n_theta,)
    """
    info = np.asarray(information, dtype=np.float64)
    if info.ndim != 2 or info.shape[0] != info.shape[1]:
        raise ValueError(f"information must be a square matrix, got shape {info.shape}")
    n = info.shape[0]
    ref = _as_point(theta_ref, n, "theta_ref")
    th = np.asarray(theta, dtype=np.float64)
    single = th.ndim == 1
    th = np.atleast_2d(th)
    if th.ndim != 2 or th.shape[1] != n:
        raise ValueError(f"theta must have shape ({n},) or (n_theta, {n}), got {np.shape(theta)}")
    delta = th - ref
    d2 = np.einsum("ti,ij,tj->t", delta, _symmetrize(info), delta)
    d = np.sqrt(np.clip(d2, 0.0, None))
    return d[0] if single else d


def distance_for_cl(cl: float, n_dof: int) -> float:
    """Fisher distance of a confidence level in the asymptotic (chi^2) limit: ``sqrt(chi2.ppf(cl, n_dof))``.

    For two parameters, 68% CL is ``d = 1.509`` and 95% CL ``d = 2.448``.
    """
    if not 0 < cl < 1:
        raise ValueError(f"cl must be in (0, 1), got {cl!r}")
    return float(np.sqrt(stats.chi2.ppf(cl, as_count(n_dof, "n_dof"))))


def fisher_contour(information: np.ndarray, theta_ref: np.ndarray, distance: float = 1.0,
                   n_points: int = 200) -> np.ndarray:
    """Points of the ellipse ``d(theta, theta_ref) = distance`` for a 2x2 information.

    Parameters
    ----------
    information : ndarray, shape (2, 2)
        Positive-definite information (profile or project larger matrices first).
    theta_ref : ndarray, shape (2,)
    distance : float
        Fisher distance of the contour (see :func:`distance_for_cl`).
    n_points : int
        Number of points; the first point is repeated at the end to close the curve.

    Returns
    -------
    ndarray, shape (n_points + 1, 2)
    """
    info = _symmetrize(np.asarray(information, dtype=np.float64))
    if info.shape != (2, 2):
        raise ValueError(f"fisher_contour needs a 2x2 information, got shape {info.shape}; profile or project "
                         "the other parameters first")
    ref = _as_point(theta_ref, 2, "theta_ref")
    if not distance > 0:
        raise ValueError(f"distance must be positive, got {distance!r}")
    eigval, eigvec = np.linalg.eigh(info)
    if eigval[0] <= 1e-12 * max(abs(eigval[1]), 1e-300):
        raise ValueError(f"information is not positive definite (eigenvalues {eigval}); the contour is unbounded")
    phi = np.linspace(0.0, 2 * np.pi, int(n_points) + 1)
    circle = np.stack([np.cos(phi), np.sin(phi)], axis=1)
    return ref + distance * (circle / np.sqrt(eigval)) @ eigvec.T


class FisherInformation:
    """Fisher information matrices from weighted events.

    Parameters
    ----------
    events : EventSet
        Events with weights per benchmark and a morphing setup (``weights_at``, ``weight_gradients_at``); for
        nuisance parameters, ``nuisance_a`` of shape ``(n_events, n_nuisance)``.

    Notes
    -----
    All results are float64 arrays of shape ``(n, n)`` with ``n = n_parameters`` (plus ``n_nuisance`` with
    ``include_nuisance=True``), in units where the luminosity is in pb^-1 and weights in pb.

    Events with ``w(theta) <= 0`` cannot enter ``grad w grad w^T / w`` (truth information); they are skipped
    and the fraction of skipped ``|w|`` is logged as a warning. Histogram bins with ``sigma_b <= 0`` are skipped
    likewise. Estimator-based terms ``w t t^T`` accept negative weights.
    """

    def __init__(self, events: Any) -> None:
        for attr in ("x", "weights_at", "weight_gradients_at"):
            if not hasattr(events, attr):
                raise TypeError(f"events must be an EventSet (missing attribute {attr!r}), got {type(events).__name__}")
        self.events = events
        self.n_parameters = int(events.space.n_parameters)

    # -- helpers --------------------------------------------------------------------------------------
    @property
    def n_nuisance(self) -> int:
        """Number of nuisance parameters with per-event coefficients ``a`` in the event set."""
        a = getattr(self.events, "nuisance_a", None)
        return 0 if a is None else int(np.asarray(a).reshape(len(self.events.x), -1).shape[1])

    def _nuisance_a(self) -> np.ndarray:
        a = getattr(self.events, "nuisance_a", None)
        if a is None or self.n_nuisance == 0:
            raise ValueError("include_nuisance=True but the event set has no nuisance parameters (nuisance_a is None)")
        a = np.asarray(a, dtype=np.float64).reshape(len(self.events.x), -1)
        if not np.all(np.isfinite(a)):
            raise ValueError("events.nuisance_a contains NaN or inf")
        return a

    def _weights_and_gradients(self, theta: Any, include_nuisance: bool) -> tuple[np.ndarray, np.ndarray]:
        """Weights ``(n_events,)`` and gradients ``(n_events, n)`` w.r.t. ``theta`` (and ``nu`` at ``nu = 0``)."""
        th = _as_point(theta, self.n_parameters)
        w = np.asarray(self.events.weights_at(th[None, :]), dtype=np.float64).reshape(len(self.events.x), -1)[:, 0]
        g = np.asarray(self.events.weight_gradients_at(th[None, :]), dtype=np.float64)
        g = g.reshape(len(self.events.x), -1, self.n_parameters)[:, 0, :]
        if include_nuisance:
            g = np.concatenate([g, w[:, None] * self._nuisance_a()], axis=1)
        return w, g

    def _observable(self, observable: str | int | np.ndarray, name: str = "observable") -> tuple[np.ndarray, str]:
        """Values of an observable for all events and its name."""
        n_events = len(self.events.x)
        x = np.asarray(self.events.x)
        if isinstance(observable, str):
            names = list(getattr(self.events, "observable_names", []))
            if observable not in names:
                raise ValueError(f"{name} {observable!r} not in the event set's observables {names}")
            return np.asarray(x[:, names.index(observable)], dtype=np.float64), observable
        if isinstance(observable, (int, np.integer)) and not isinstance(observable, bool):
            if not -x.shape[1] <= observable < x.shape[1]:
                raise ValueError(f"{name} index {observable} out of range for {x.shape[1]} observables")
            names = list(getattr(self.events, "observable_names", []))
            label = names[observable] if len(names) == x.shape[1] else f"x[{observable}]"
            return np.asarray(x[:, observable], dtype=np.float64), label
        values = np.asarray(observable, dtype=np.float64)
        if values.shape != (n_events,):
            raise ValueError(f"{name} must be a name, a column index or an array of shape ({n_events},), got "
                             f"{type(observable).__name__} with shape {np.shape(observable)}")
        return values, "observable"

    @staticmethod
    def _binned_information(index: np.ndarray, n_bins: int, w: np.ndarray, g: np.ndarray,
                            luminosity: float) -> tuple[np.ndarray, np.ndarray]:
        """Per-bin information ``L g_b g_b^T / sigma_b`` (zero where ``sigma_b <= 0``) and ``sigma_b``."""
        ind = indicator(index, n_bins)
        sigma_b = np.asarray(ind @ w).reshape(-1)
        grad_b = np.asarray(ind @ g).reshape(n_bins, -1)
        ok = sigma_b > 0
        if np.any(~ok & (np.abs(grad_b).sum(axis=1) > 0)):
            logger.warning("%d of %d histogram bins have sigma <= 0 and are skipped", int(np.sum(~ok)), n_bins)
        per_bin = np.zeros((n_bins, g.shape[1], g.shape[1]))
        gb = grad_b[ok]
        per_bin[ok] = luminosity * gb[:, :, None] * gb[:, None, :] / sigma_b[ok, None, None]
        return per_bin, sigma_b

    # -- informations ---------------------------------------------------------------------------------
    def truth_information(self, theta: Any, luminosity: float, include_nuisance: bool = False) -> np.ndarray:
        """Parton-level (truth) information ``L * sum_events grad w grad w^T / w``.

        Equals ``L * sum_events w t_xz t_xz^T + rate information`` with the joint score
        ``t_xz = grad log w - grad log sigma``: the information when every property of the simulated events is
        observable. An upper bound to every other information here.

        Parameters
        ----------
        theta : array-like, shape (n_parameters,)
            Parameter point.
        luminosity : float
            Integrated luminosity in pb^-1.
        include_nuisance : bool
            Extend to ``(theta, nu)`` at ``nu = 0``.

        Returns
        -------
        ndarray, shape (n, n)
        """
        lumi = _check_luminosity(luminosity)
        w, g = self._weights_and_gradients(theta, include_nuisance)
        ok = w > 0
        if not np.all(ok):
            bad = np.abs(w[~ok]).sum()
            frac = bad / max(np.abs(w).sum(), 1e-300)
            logger.warning("truth information: skipping %d events with w(theta) <= 0 (%.3g%% of sum |w|)",
                           int(np.sum(~ok)), 100 * frac)
        scaled = g[ok] / np.sqrt(w[ok])[:, None]
        return _symmetrize(lumi * scaled.T @ scaled)

    def rate_information(self, theta: Any, luminosity: float, include_nuisance: bool = False) -> np.ndarray:
        """Information in the total rate, ``L / sigma * grad sigma grad sigma^T`` (first term of eq. 16).

        Parameters
        ----------
        theta : array-like, shape (n_parameters,)
        luminosity : float
            Integrated luminosity in pb^-1.
        include_nuisance : bool
            Extend to ``(theta, nu)`` at ``nu = 0``.

        Returns
        -------
        ndarray, shape (n, n)
        """
        lumi = _check_luminosity(luminosity)
        w, g = self._weights_and_gradients(theta, include_nuisance)
        sigma = w.sum()
        if not sigma > 0:
            raise ValueError(f"cross section at theta={np.asarray(theta).tolist()} is {sigma:.4g} <= 0")
        grad = g.sum(axis=0)
        return _symmetrize(lumi / sigma * np.outer(grad, grad))

    def _predict_scores(self, estimator: Any, x: np.ndarray, theta: np.ndarray, n_out: int, purpose: str
                        ) -> np.ndarray:
        """Estimated scores ``(n_members, n_events, n_out)`` at ``theta`` through the inference protocol.

        An :class:`~skminer.estimators.Ensemble` (also at the end of a Pipeline) gives one row per member
        (``predict_all("score_at", ...)``), any other estimator with the ``"score"`` capability one row. A
        score estimator trained on ``(theta, nu)`` scores (``n_parameters + n_nuisance`` components) gives its
        theta part when ``n_out == n_parameters``.
        """
        estimator = as_protocol_estimator(estimator)
        require_capability(estimator, "score", purpose)
        owner = type(estimator).__name__
        if hasattr(estimator, "predict_all"):
            t = np.asarray(estimator.predict_all("score_at", x, theta), dtype=np.float64)
        else:
            t = np.asarray(estimator.score_at(x, theta), dtype=np.float64)[None]
        if t.ndim != 3 or t.shape[1] != x.shape[0]:
            raise ValueError(f"{owner}.score_at returned shape {t.shape[1:]}, expected ({x.shape[0]}, {n_out})")
        width = t.shape[2]
        if width == self.n_parameters + self.n_nuisance and n_out == self.n_parameters and self.n_nuisance:
            t = t[:, :, :n_out]  # the theta part of a (theta, nu) score estimator
        elif width != n_out:
            raise ValueError(f"{owner}.score_at returned {width} score components, expected {n_out} (one per "
                             "parameter" + (" and nuisance parameter)" if n_out > self.n_parameters else ")"))
        if not np.all(np.isfinite(t)):
            bad = int(np.sum(~np.all(np.isfinite(t), axis=2)))
            raise ValueError(f"{owner}.score_at returned NaN or inf for {bad} (member, event) pairs")
        return t

    def full_information_members(self, theta: Any, estimator: Any, luminosity: float, include_rate: bool = True,
                                 include_nuisance: bool = False) -> np.ndarray:
        """Eq. 16 for every member of an ensemble, shape ``(n_members, n, n)``.

        Any other estimator counts as an ensemble of one. See :meth:`full_information` for the arguments.
        The sanity checks of the (member-averaged) estimated score are left in ``diagnostics_``
        (:func:`~skminer.inference.diagnostics.score_diagnostics`; violations are logged as warnings).
        """
        lumi = _check_luminosity(luminosity)
        w, g = self._weights_and_gradients(theta, include_nuisance)
        n_out = g.shape[1]
        nz = w != 0
        x = np.asarray(self.events.x, dtype=np.float64)[nz]
        t = self._predict_scores(estimator, x, _as_point(theta, self.n_parameters), n_out,
                                 "FisherInformation.full_information")
        self.diagnostics_ = score_diagnostics(t.mean(axis=0), w[nz], g[nz], lumi)  # mean score, full <= truth
        kin = lumi * np.einsum("e,mei,mej->mij", w[nz], t, t, optimize=True)
        if include_rate:
            sigma = w.sum()
            if not sigma > 0:
                raise ValueError(f"cross section at theta={np.asarray(theta).tolist()} is {sigma:.4g} <= 0")
            grad = g.sum(axis=0)
            kin = kin + lumi / sigma * np.outer(grad, grad)[None]
        return _symmetrize(kin)

    def full_information(self, theta: Any, estimator: Any, luminosity: float, include_rate: bool = True,
                         include_nuisance: bool = False, return_covariance: bool = False,
                         ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Detector-level information with any estimator of the score (eq. 16).

        ``I = L * sum_events w(theta) t_hat(x) t_hat(x)^T + L / sigma grad sigma grad sigma^T``, i.e.
        ``L sigma E_theta[t_hat t_hat^T]`` plus the rate term, with the expectation over the events weighted at
        ``theta`` and ``t_hat = estimator.score_at(x, theta)``.

        Parameters
        ----------
        theta : array-like, shape (n_parameters,)
            Parameter point (the estimator's reference point).
        estimator : estimator with the ``"score"`` capability
            Any skminer estimator answering ``score_at(X, theta)`` -- SALLY (whose reference point must be
            ``theta``), SALLINO, ratio, doubly parameterised ratio and density estimators -- an
            :class:`~skminer.estimators.Ensemble` of them (the mean over members; the member spread with
            ``return_covariance=True``), or a Pipeline (skminer's or scikit-learn's) ending in one.
        luminosity : float
            Integrated luminosity in pb^-1.
        include_rate : bool
            Add the rate term (first term of eq. 16).
        include_nuisance : bool
            Information on ``(theta, nu)``; the estimator must then return ``n_parameters + n_nuisance`` score
            components (trained on the joint score including the nuisance components ``a``). Without it, such an
            estimator contributes its first ``n_parameters`` components.
        return_covariance : bool
            Also return the covariance of the information over ensemble members.

        Returns
        -------
        information : ndarray, shape (n, n)
            For an ensemble, the mean over members.
        covariance : ndarray, shape (n, n, n, n)
            Only with ``return_covariance=True``: ``Cov(I_ij, I_kl)`` over members (zero for one estimator).

        Raises
        ------
        TypeError
            If the estimator lacks the ``"score"`` capability (the message names it).
        """
        members = self.full_information_members(theta, estimator, luminosity, include_rate, include_nuisance)
        mean, cov = information_mean_and_covariance(members)
        return (mean, cov) if return_covariance else mean

    def histogram_information(self, theta: Any, luminosity: float, observable: str | int | np.ndarray,
                              bins: BinsArg = 20, include_nuisance: bool = False) -> np.ndarray:
        """Information in a histogram of one observable, ``sum_bins L grad sigma_b grad sigma_b^T / sigma_b``.

        Parameters
        ----------
        theta : array-like, shape (n_parameters,)
        luminosity : float
            Integrated luminosity in pb^-1.
        observable : str, int or ndarray
            Observable name, column index of ``events.x``, or per-event values ``(n_events,)``.
        bins : int or array-like
            Number of bins with equal cross section at ``theta`` (edges at weighted quantiles), or explicit
            edges; events outside explicit edges fill under-/overflow bins, so the rate is always included.
        include_nuisance : bool
            Extend to ``(theta, nu)`` at ``nu = 0``.

        Returns
        -------
        ndarray, shape (n, n)
            Includes the rate information; bins with ``sigma_b <= 0`` are skipped.
        """
        lumi = _check_luminosity(luminosity)
        values, name = self._observable(observable)
        w, g = self._weights_and_gradients(theta, include_nuisance)
        edges = inner_edges(values, bins, w, name)
        index, n_bins = bin_indices(values, [edges])
        per_bin, _ = self._binned_information(index, n_bins, w, g, lumi)
        return _symmetrize(per_bin.sum(axis=0))

    def histogram_information_2d(self, theta: Any, luminosity: float, observable1: str | int | np.ndarray,
                                 observable2: str | int | np.ndarray, bins1: BinsArg = 10, bins2: BinsArg = 10,
                                 include_nuisance: bool = False) -> np.ndarray:
        """Information in a two-dimensional histogram of two observables.

        Parameters
        ----------
        theta : array-like, shape (n_parameters,)
        luminosity : float
            Integrated luminosity in pb^-1.
        observable1, observable2 : str, int or ndarray
            Observables (name, column index or per-event values).
        bins1, bins2 : int or array-like
            Binning of each axis, as in :meth:`histogram_information` (quantiles of each marginal).
        include_nuisance : bool
            Extend to ``(theta, nu)`` at ``nu = 0``.

        Returns
        -------
        ndarray, shape (n, n)
        """
        lumi = _check_luminosity(luminosity)
        v1, n1 = self._observable(observable1, "observable1")
        v2, n2 = self._observable(observable2, "observable2")
        w, g = self._weights_and_gradients(theta, include_nuisance)
        edges = [inner_edges(v1, bins1, w, n1), inner_edges(v2, bins2, w, n2)]
        index, n_bins = bin_indices(np.stack([v1, v2], axis=1), edges)
        per_bin, _ = self._binned_information(index, n_bins, w, g, lumi)
        return _symmetrize(per_bin.sum(axis=0))

    def information_distribution(self, theta: Any, luminosity: float, observable: str | int | np.ndarray,
                                 bins: int | Sequence[float] | np.ndarray = 20, estimator: Any = None,
                                 include_nuisance: bool = False) -> InformationDistribution:
        """Distribution of the (differential) Fisher information over an observable.

        Parameters
        ----------
        theta : array-like, shape (n_parameters,)
        luminosity : float
            Integrated luminosity in pb^-1.
        observable : str, int or ndarray
            Observable name, column index or per-event values.
        bins : int, array-like or hist axis
            ``int``: equal-width bins between the smallest and largest value of events with ``w != 0``;
            array or a ``hist`` / ``boost-histogram`` axis: explicit edges (events outside are left out, with a
            log message).
        estimator : estimator with the ``"score"`` capability, or None
            As for :meth:`full_information` (an ensemble contributes its mean score). ``None``: truth level.
        include_nuisance : bool
            Extend to ``(theta, nu)`` at ``nu = 0`` (the estimator must then return nuisance components too).

        Returns
        -------
        InformationDistribution
        """
        lumi = _check_luminosity(luminosity)
        values, name = self._observable(observable)
        w, g = self._weights_and_gradients(theta, include_nuisance)
        nz = w != 0
        bins = axis_edges(bins)  # a hist axis: its edges; refuses bools
        if isinstance(bins, (int, np.integer)):
            if bins < 1:
                raise ValueError(f"bins must be >= 1, got {bins}")
            if not np.any(nz):
                raise ValueError("all event weights vanish at theta; no distribution to bin")
            lo, hi = float(values[nz].min()), float(values[nz].max())
            if hi <= lo:
                hi = lo + 1.0
            edges = np.linspace(lo, hi, int(bins) + 1)
        else:
            edges = np.asarray(bins, dtype=np.float64)
            if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0) or not np.all(np.isfinite(edges)):
                raise ValueError(f"bins must be an int or at least two finite, increasing edges, got {bins!r}")
        n_bins = edges.size - 1
        index = np.searchsorted(edges, values, side="right") - 1
        index[values == edges[-1]] = n_bins - 1
        inside = (index >= 0) & (index < n_bins)
        if np.any(~inside & nz):
            logger.info("information distribution: %d events outside the bin edges are left out",
                        int(np.sum(~inside & nz)))
        sel = inside & nz
        per_bin_rate, sigma_b = self._binned_information(index[sel], n_bins, w[sel], g[sel], lumi)
        if estimator is None:
            pos = sel & (w > 0)
            if np.any(sel & (w < 0)):
                logger.warning("information distribution: skipping %d events with w(theta) < 0",
                               int(np.sum(sel & (w < 0))))
            u = g[pos] / w[pos, None]
            ww, idx = w[pos], index[pos]
            kind = "truth"
        else:
            sigma = w.sum()
            if not sigma > 0:
                raise ValueError(f"cross section at theta={np.asarray(theta).tolist()} is {sigma:.4g} <= 0")
            x = np.asarray(self.events.x, dtype=np.float64)[sel]
            t = self._predict_scores(estimator, x, _as_point(theta, self.n_parameters), g.shape[1],
                                     "FisherInformation.information_distribution").mean(axis=0)
            u = t + g.sum(axis=0)[None, :] / sigma
            ww, idx = w[sel], index[sel]
            kind = "full"
        contrib = lumi * ww[:, None, None] * u[:, :, None] * u[:, None, :]
        full = np.zeros((n_bins, g.shape[1], g.shape[1]))
        np.add.at(full, idx, contrib)
        return InformationDistribution(edges=edges, cross_sections=sigma_b, rate=per_bin_rate,
                                       full=_symmetrize(full), observable=name, kind=kind)

    # -- nuisance parameters --------------------------------------------------------------------------
    def nuisance_constraint_information(self, sigma: float | Sequence[float] | np.ndarray = 1.0) -> np.ndarray:
        """Information of the ``N(0, sigma^2)`` constraints on the event set's nuisance parameters.

        Returns
        -------
        ndarray, shape (n_parameters + n_nuisance, n_parameters + n_nuisance)
            Identity (``1/sigma^2``) in the nuisance block, zero elsewhere; add it to an information computed
            with ``include_nuisance=True`` before profiling.
        """
        if self.n_nuisance == 0:
            raise ValueError("the event set has no nuisance parameters (nuisance_a is None)")
        return nuisance_constraint_information(self.n_parameters, self.n_nuisance, sigma)

    def profile_nuisance(self, information: np.ndarray, constrain: bool = True) -> np.ndarray:
        """Profile the nuisance parameters out of an information over ``(theta, nu)``.

        Parameters
        ----------
        information : ndarray, shape (n_parameters + n_nuisance, n_parameters + n_nuisance)
            Computed with ``include_nuisance=True``.
        constrain : bool
            Add the ``N(0, 1)`` constraint information first.

        Returns
        -------
        ndarray, shape (n_parameters, n_parameters)
        """
        info = np.asarray(information, dtype=np.float64)
        n = self.n_parameters + self.n_nuisance
        if info.shape[-2:] != (n, n):
            raise ValueError(f"information must have shape ({n}, {n}) (parameters + nuisance parameters), "
                             f"got {info.shape}")
        if constrain:
            info = info + self.nuisance_constraint_information()
        return profile_information(info, list(range(self.n_parameters)))
