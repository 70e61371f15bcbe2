"""An analytic toy simulator with a morphing structure and an exact likelihood.

Physics picture
---------------
Two theory parameters ``theta = (theta1, theta2)`` enter an amplitude linearly, like the couplings of
dimension-six operators:

.. math::

    M(z|\\theta) = \\sum_{k=0}^{2} v_k(\\theta)\\, c_k\\, \\phi_k(z), \\qquad v = (1, \\theta_1, \\theta_2),
    \\qquad \\phi_k(z) = \\exp\\left(-\\frac{|z - m_k|^2}{4 s^2}\\right),

where ``z`` is a ``n_dim``-dimensional latent ("parton-level") phase-space point, ``m_k`` the centres of three
Gaussian bumps (the SM bump ``k = 0`` and two new-physics bumps), ``s`` their width and ``c_k`` couplings. The
differential cross section is ``dsigma(z|theta) = N |M(z|theta)|^2 >= 0``. It is quadratic in ``theta``
(components ``1, theta1, theta2, theta1^2, theta1 theta2, theta2^2``), so it follows the morphing structure of
eq. (17) of the MadMiner paper exactly, with interference terms of either sign.

Because ``phi_k phi_l = A_kl exp(-|z - mu_kl|^2 / (2 s^2))`` with ``mu_kl = (m_k + m_l) / 2`` and
``A_kl = exp(-|m_k - m_l|^2 / (8 s^2))``, every quantity is a Gaussian mixture with ``theta``-quadratic
coefficients:

* ``sigma(theta) = N (2 pi s^2)^{d/2} v^T G v`` with the positive semi-definite matrix ``G_kl = c_k c_l A_kl``;
* after Gaussian detector smearing ``x = z + N(0, sigma_det^2 I)`` the observed density is
  ``p(x|theta) = sum_kl v_k v_l G_kl N(x; mu_kl, tau^2 I) / (v^T G v)`` with ``tau^2 = s^2 + sigma_det^2``;
* optional extra observables (``n_noise``) are standard-normal noise independent of ``theta``.

Hence ``p(x|theta)``, the score ``t(x|theta) = grad_theta log p(x|theta)``, likelihood ratios and the rate
part of the Fisher information are available in closed form; the kinematic Fisher information
``L sigma E[t t^T]`` is computed by a spectrally accurate quadrature (see :meth:`ToySimulator.fisher_information`).

Weighted events (:meth:`ToySimulator.simulate`) are generated like MadGraph's weighted events: ``z`` is drawn
from a positive proposal ``q(z)`` (a Gaussian mixture covering all bumps) and the weight of an event at
benchmark ``b`` is ``dsigma(z|theta_b) / q(z) / n_events``, so that the weights of each benchmark sum to an
unbiased estimate of ``sigma(theta_b)``. Unweighted events at a single ``theta`` (:meth:`ToySimulator.sample`)
are drawn exactly by rejection sampling from a Gaussian-mixture envelope of ``|M|^2``.

Broadcasting rules (all exact methods)
--------------------------------------
``x`` (or ``z``) is ``(n_events, n_obs)``. ``theta`` is either one point ``(n_params,)`` or a batch
``(n_theta, n_params)``:

* one point: results have shape ``(n_events,)`` (score: ``(n_events, n_params)``);
* a batch: results are evaluated on the grid of all events times all points, shape ``(n_events, n_theta)``
  (score: ``(n_events, n_theta, n_params)``);
* ``paired=True``: ``theta`` has one row per event ``(n_events, n_params)`` (a single point is broadcast),
  results have shape ``(n_events,)`` (score: ``(n_events, n_params)``).

For :meth:`ToySimulator.log_ratio` ``theta0`` and ``theta1`` follow the same rules; when both are batches they
must have the same length and are zipped (point ``j`` of ``theta0`` with point ``j`` of ``theta1``); a single
point is broadcast against a batch.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._random import check_random_state
from ..events import ChunkedEventSet, EventFileWriter, EventSet
from ..morphing import Morpher
from ..parameters import ParameterSpace

__all__ = ["ToySimulator", "DEFAULT_BASIS"]

logger = logging.getLogger(__name__)

#: Default benchmarks of the toy; together they form a well-conditioned morphing basis for the six
#: components ``1, theta1, theta2, theta1^2, theta1 theta2, theta2^2``.
DEFAULT_BASIS: dict[str, tuple[float, float]] = {
    "sm": (0.0, 0.0),
    "theta1_plus": (1.0, 0.0),
    "theta1_minus": (-1.0, 0.0),
    "theta2_plus": (0.0, 1.0),
    "theta2_minus": (0.0, -1.0),
    "mixed": (1.0, 1.0),
}

_DEFAULT_CENTERS_2D = np.array([[0.0, 0.0], [1.0, 0.3], [-0.4, 1.0]])
_PAIRS = [(k, l) for k in range(3) for l in range(k, 3)]  # (0,0) (0,1) (0,2) (1,1) (1,2) (2,2)
_N_PARAMS = 2


def _positive(n: Any, name: str = "n_events") -> int:
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")
    return int(n)


def _v(theta: np.ndarray) -> np.ndarray:
    """Amplitude coefficients ``v = (1, theta1, theta2)``, shape ``(n_theta, 3)``."""
    return np.concatenate([np.ones((theta.shape[0], 1)), theta], axis=1)


def _pair_monomials(theta: np.ndarray) -> np.ndarray:
    """``mult_kl v_k v_l`` for the six pairs ``k <= l`` (mult = 2 off the diagonal), ``(n_theta, 6)``."""
    v = _v(theta)
    return np.stack([(1.0 if k == l else 2.0) * v[:, k] * v[:, l] for k, l in _PAIRS], axis=1)


def _pair_monomial_gradients(theta: np.ndarray) -> np.ndarray:
    """Derivatives of :func:`_pair_monomials`, shape ``(n_theta, n_params, 6)``."""
    v = _v(theta)
    out = np.zeros((theta.shape[0], _N_PARAMS, len(_PAIRS)))
    for p, (k, l) in enumerate(_PAIRS):
        mult = 1.0 if k == l else 2.0
        for i in range(_N_PARAMS):
            out[:, i, p] = mult * ((k == i + 1) * v[:, l] + (l == i + 1) * v[:, k])
    return out


class ToySimulator:
    """Analytic toy process with a quadratic morphing structure and an exact likelihood.

    See the module docstring for the model and the broadcasting rules of the exact methods.

    Parameters
    ----------
    n_dim : int
        Dimension of the latent space ``z`` and of the smeared observables ``x`` (excluding noise columns).
    width : float
        Width ``s`` of the amplitude bumps (``|M|^2`` bumps have standard deviation ``s``).
    couplings : sequence of 3 float
        Couplings ``c_k`` of the SM bump and of the two new-physics bumps.
    centers : array-like, shape (3, n_dim), optional
        Bump centres ``m_k``. Default: ``(0, 0), (1, 0.3), (-0.4, 1)`` in the first two coordinates (padded
        with zeros for ``n_dim > 2``; the first coordinates ``0, 1, -0.4`` for ``n_dim = 1``).
    detector_resolution : float
        Standard deviation ``sigma_det`` of the Gaussian detector smearing ``x = z + noise``.
    n_noise : int
        Number of extra observables that are standard-normal noise, independent of ``z`` and ``theta``.
    sm_cross_section : float
        Total cross section at ``theta = 0`` in pb (fixes the overall normalisation ``N``).
    parameter_range : tuple of float
        Range of interest of both parameters (used for the :class:`~skminer.parameters.ParameterSpace`).
    proposal_scale : float
        Width of the proposal components for weighted events, in units of ``width`` (``> 1`` keeps the
        importance weights bounded).
    """

    parameter_names = ("theta1", "theta2")

    def __init__(self, n_dim: int = 2, width: float = 0.5, couplings: Sequence[float] = (1.0, 0.7, 0.6),
                 centers: np.ndarray | None = None, detector_resolution: float = 0.3, n_noise: int = 0,
                 sm_cross_section: float = 1.0, parameter_range: tuple[float, float] = (-1.0, 1.0),
                 proposal_scale: float = 1.5) -> None:
        self.n_dim = n_dim
        self.width = width
        self.couplings = couplings
        self.centers = centers
        self.detector_resolution = detector_resolution
        self.n_noise = n_noise
        self.sm_cross_section = sm_cross_section
        self.parameter_range = parameter_range
        self.proposal_scale = proposal_scale
        self._setup()

    # -- configuration ---------------------------------------------------------------------------------
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor arguments (scikit-learn style)."""
        return {k: getattr(self, k) for k in ("n_dim", "width", "couplings", "centers", "detector_resolution",
                                               "n_noise", "sm_cross_section", "parameter_range",
                                               "proposal_scale")}

    def set_params(self, **params: Any) -> ToySimulator:
        """Set constructor arguments and recompute the derived constants."""
        valid = self.get_params()
        for key, value in params.items():
            if key not in valid:
                raise ValueError(f"invalid parameter {key!r} for ToySimulator; valid: {sorted(valid)}")
            setattr(self, key, value)
        self._setup()
        return self

    @property
    def range_of_parameters(self) -> tuple[float, float]:
        """``parameter_range`` checked: ``(low, high)``, two finite numbers, ``low < high``, shared by every
        parameter (``ValueError`` naming ``parameter_range`` otherwise)."""
        value = self.parameter_range
        expected = ("parameter_range must be one (low, high) pair of finite numbers with low < high, shared by "
                    f"every parameter {list(self.parameter_names)}")
        try:
            pair = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{expected}, got {value!r}") from None
        if pair.shape != (2,) or any(isinstance(v, bool) for v in value) or not np.all(np.isfinite(pair)) \
                or not pair[0] < pair[1]:
            shape = f" (shape {pair.shape})" if pair.shape != (2,) else ""
            raise ValueError(f"{expected}, got {value!r}{shape}")
        return float(pair[0]), float(pair[1])

    def _setup(self) -> None:
        if int(self.n_dim) != self.n_dim or self.n_dim < 1:
            raise ValueError(f"n_dim must be a positive integer, got {self.n_dim!r}")
        if int(self.n_noise) != self.n_noise or self.n_noise < 0:
            raise ValueError(f"n_noise must be a non-negative integer, got {self.n_noise!r}")
        for name in ("width", "detector_resolution", "sm_cross_section", "proposal_scale"):
            value = float(getattr(self, name))
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be positive and finite, got {getattr(self, name)!r}")
        d = int(self.n_dim)
        c = np.asarray(self.couplings, dtype=np.float64)
        if c.shape != (3,) or not np.all(np.isfinite(c)) or c[0] == 0:
            raise ValueError(f"couplings must be 3 finite floats with a non-zero SM coupling, got {self.couplings!r}")
        if self.centers is None:
            m = np.zeros((3, d))
            m[:, : min(d, 2)] = _DEFAULT_CENTERS_2D[:, : min(d, 2)]
        else:
            m = np.asarray(self.centers, dtype=np.float64)
            if m.shape != (3, d) or not np.all(np.isfinite(m)):
                raise ValueError(f"centers must be a finite array of shape (3, {d}), got shape {m.shape}")
        lo, hi = self.range_of_parameters
        s2 = float(self.width) ** 2
        self._d = d
        self._c = c
        self._m = m
        self._s2 = s2
        self._tau2 = s2 + float(self.detector_resolution) ** 2
        diff = m[:, None, :] - m[None, :, :]
        self._G = c[:, None] * c[None, :] * np.exp(-np.sum(diff**2, axis=2) / (8.0 * s2))
        self._g_pairs = np.array([self._G[k, l] for k, l in _PAIRS])  # coefficients of the pair monomials
        self._mu = np.array([(m[k] + m[l]) / 2.0 for k, l in _PAIRS])  # (6, d)
        self._norm = float(self.sm_cross_section) / ((2.0 * np.pi * s2) ** (d / 2.0) * c[0] ** 2)
        # orthonormal basis of the affine span of the centres (the score only depends on this projection)
        u, sv, _ = np.linalg.svd((m[1:] - m[0]).T, full_matrices=False)
        rank = int(np.sum(sv > 1e-12 * max(1.0, float(np.max(np.abs(m))))))
        self._plane = u[:, :rank]

    # -- parameter space -------------------------------------------------------------------------------
    @property
    def n_parameters(self) -> int:
        """Number of theory parameters (2)."""
        return _N_PARAMS

    @property
    def n_observables(self) -> int:
        """Number of observables: ``n_dim`` smeared coordinates plus ``n_noise`` noise columns."""
        return self._d + int(self.n_noise)

    @property
    def observable_names(self) -> list[str]:
        """Names ``x1 .. x<n_dim>`` then ``noise1 ..``."""
        return [f"x{i + 1}" for i in range(self._d)] + [f"noise{i + 1}" for i in range(int(self.n_noise))]

    def make_space(self) -> ParameterSpace:
        """A new :class:`~skminer.parameters.ParameterSpace` with both parameters and the default benchmarks
        :data:`DEFAULT_BASIS` (a morphing basis)."""
        space = ParameterSpace()
        for name in self.parameter_names:
            space.add_parameter(name, max_power=2, range=tuple(self.parameter_range))
        for name, values in DEFAULT_BASIS.items():
            space.add_benchmark(name, values)
        return space

    @property
    def space(self) -> ParameterSpace:
        """The toy's parameter space (a fresh object on every access, see :meth:`make_space`)."""
        return self.make_space()

    def make_morpher(self) -> Morpher:
        """A :class:`~skminer.morphing.Morpher` for the toy's six components (no basis set)."""
        return Morpher([2, 2], max_overall_power=2)

    # -- argument handling -----------------------------------------------------------------------------
    def _theta(self, theta: Any, name: str = "theta") -> tuple[np.ndarray, bool]:
        if isinstance(theta, str | Mapping):
            return self.space.as_theta(theta), True
        arr = np.asarray(theta, dtype=np.float64)
        single = arr.ndim == 1
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != _N_PARAMS:
            raise ValueError(f"{name} must have shape ({_N_PARAMS},) or (n_theta, {_N_PARAMS}), "
                             f"got {np.shape(theta)}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must be finite")
        return arr, single

    def _paired_theta(self, theta: Any, n: int, name: str = "theta") -> np.ndarray:
        arr, single = self._theta(theta, name)
        if single:
            return np.broadcast_to(arr, (n, _N_PARAMS))
        if arr.shape[0] != n:
            raise ValueError(f"paired=True: {name} must have one row per event ({n}), got {arr.shape[0]} rows")
        return arr

    def _points(self, x: Any, n_cols: int, name: str) -> np.ndarray:
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim == 1 and n_cols == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or arr.shape[1] != n_cols:
            raise ValueError(f"{name} must have shape (n_events, {n_cols}), got {arr.shape}")
        return arr

    # -- closed-form building blocks -------------------------------------------------------------------
    def _kernels(self, points: np.ndarray, means: np.ndarray, var: float) -> tuple[np.ndarray, np.ndarray]:
        """``G_kl exp(-|x - mu_kl|^2 / (2 var))`` for the six pairs, scaled per event by ``exp(-log_scale)``.

        Returns ``(scaled (n, 6), log_scale (n,))``; the Gaussian normalisation is not included.
        """
        sq = np.sum((points[:, None, :] - means[None, :, :]) ** 2, axis=2)  # (n, 6)
        expo = -sq / (2.0 * var)
        log_scale = np.max(expo, axis=1)
        return self._g_pairs[None, :] * np.exp(expo - log_scale[:, None]), log_scale

    def _total(self, theta: np.ndarray) -> np.ndarray:
        """``v^T G v``, shape ``(n_theta,)``."""
        return _pair_monomials(theta) @ self._g_pairs

    def _total_gradient(self, theta: np.ndarray) -> np.ndarray:
        """Gradient of ``v^T G v``, shape ``(n_theta, n_params)``."""
        return _pair_monomial_gradients(theta) @ self._g_pairs

    def _split(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return x[:, : self._d], x[:, self._d:]

    # -- cross section ---------------------------------------------------------------------------------
    def cross_section(self, theta: Any) -> np.ndarray | float:
        """Exact total cross section ``sigma(theta)`` in pb: a float for one point, ``(n_theta,)`` for a batch."""
        th, single = self._theta(theta)
        sigma = self._norm * (2.0 * np.pi * self._s2) ** (self._d / 2.0) * self._total(th)
        return float(sigma[0]) if single else sigma

    def cross_section_gradient(self, theta: Any) -> np.ndarray:
        """Exact ``grad_theta sigma``: ``(n_params,)`` for one point, ``(n_theta, n_params)`` for a batch."""
        th, single = self._theta(theta)
        grad = self._norm * (2.0 * np.pi * self._s2) ** (self._d / 2.0) * self._total_gradient(th)
        return grad[0] if single else grad

    # -- latent (parton-level) quantities --------------------------------------------------------------
    def _amplitude_terms(self, z: np.ndarray) -> np.ndarray:
        """``c_k phi_k(z)``, shape ``(n, 3)``."""
        sq = np.sum((z[:, None, :] - self._m[None, :, :]) ** 2, axis=2)
        return self._c[None, :] * np.exp(-sq / (4.0 * self._s2))

    def differential_cross_section(self, z: Any, theta: Any, paired: bool = False) -> np.ndarray:
        """Parton-level ``dsigma(z|theta) = N |M(z|theta)|^2`` in pb per unit ``z``-volume.

        Parameters
        ----------
        z : array-like, shape (n_events, n_dim)
            Latent points.
        theta : array-like
            Parameter point(s); see the module docstring for the broadcasting rules.
        paired : bool
            One parameter point per event.

        Returns
        -------
        ndarray, shape (n_events,) or (n_events, n_theta)
        """
        z = self._points(z, self._d, "z")
        terms = self._amplitude_terms(z)
        if paired:
            th = self._paired_theta(theta, z.shape[0])
            return self._norm * np.sum(terms * _v(th), axis=1) ** 2
        th, single = self._theta(theta)
        out = self._norm * (terms @ _v(th).T) ** 2
        return out[:, 0] if single else out

    def latent_log_likelihood(self, z: Any, theta: Any, paired: bool = False) -> np.ndarray:
        """``log p(z|theta) = log(dsigma(z|theta) / sigma(theta))`` (``-inf`` where the amplitude vanishes)."""
        z = self._points(z, self._d, "z")
        dsig = self.differential_cross_section(z, theta, paired=paired)
        if paired:
            sigma = np.asarray(self.cross_section(self._paired_theta(theta, z.shape[0])))
        else:
            th, single = self._theta(theta)
            sigma = np.asarray(self.cross_section(th))
            sigma = sigma[0] if single else sigma[None, :]
        with np.errstate(divide="ignore"):
            return np.log(dsig) - np.log(sigma)

    def joint_log_ratio(self, z: Any, theta0: Any, theta1: Any, paired: bool = False) -> np.ndarray:
        """Joint log likelihood ratio ``log r(x, z|theta0, theta1) = log p(z|theta0) - log p(z|theta1)``.

        The detector response ``p(x|z)`` does not depend on ``theta`` and cancels (eq. 8 of the paper).
        Shapes follow the rules of :meth:`log_ratio`.
        """
        z = self._points(z, self._d, "z")
        return self._ratio(lambda th, p: self.latent_log_likelihood(z, th, paired=p), z.shape[0], theta0, theta1,
                           paired)

    def joint_score(self, z: Any, theta: Any, paired: bool = False) -> np.ndarray:
        """Joint score ``t(x, z|theta) = grad_theta log p(z|theta)`` (eq. 9 of the paper).

        Returns
        -------
        ndarray, shape (n_events, n_params), or (n_events, n_theta, n_params) for a batch of points
        """
        z = self._points(z, self._d, "z")
        terms = self._amplitude_terms(z)  # (n, 3)
        if paired:
            th = self._paired_theta(theta, z.shape[0])
            amp = np.sum(terms * _v(th), axis=1)  # (n,)
            with np.errstate(divide="ignore", invalid="ignore"):
                t = 2.0 * terms[:, 1:] / amp[:, None]
            return t - self._total_gradient(th) / self._total(th)[:, None]
        th, single = self._theta(theta)
        amp = terms @ _v(th).T  # (n, n_theta)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = 2.0 * terms[:, None, 1:] / amp[:, :, None]
        t = t - (self._total_gradient(th) / self._total(th)[:, None])[None, :, :]
        return t[:, 0, :] if single else t

    # -- detector-level exact likelihood ---------------------------------------------------------------
    def _log_noise_density(self, noise: np.ndarray) -> np.ndarray:
        if noise.shape[1] == 0:
            return np.zeros(noise.shape[0])
        return -0.5 * np.sum(noise**2, axis=1) - 0.5 * noise.shape[1] * np.log(2.0 * np.pi)

    def log_likelihood(self, x: Any, theta: Any, paired: bool = False) -> np.ndarray:
        """Exact normalised log density ``log p(x|theta)`` of the observables.

        Parameters
        ----------
        x : array-like, shape (n_events, n_observables)
        theta : array-like
            Parameter point(s); see the module docstring for the broadcasting rules.
        paired : bool
            One parameter point per event.

        Returns
        -------
        ndarray, shape (n_events,) or (n_events, n_theta)
        """
        x = self._points(x, self.n_observables, "x")
        xs, noise = self._split(x)
        kern, log_scale = self._kernels(xs, self._mu, self._tau2)
        const = log_scale - 0.5 * self._d * np.log(2.0 * np.pi * self._tau2) + self._log_noise_density(noise)
        with np.errstate(divide="ignore", invalid="ignore"):
            if paired:
                th = self._paired_theta(theta, x.shape[0])
                return np.log(np.sum(kern * _pair_monomials(th), axis=1)) - np.log(self._total(th)) + const
            th, single = self._theta(theta)
            out = np.log(kern @ _pair_monomials(th).T) - np.log(self._total(th))[None, :] + const[:, None]
        return out[:, 0] if single else out

    def score(self, x: Any, theta: Any, paired: bool = False) -> np.ndarray:
        """Exact score ``t(x|theta) = grad_theta log p(x|theta)``.

        Returns
        -------
        ndarray, shape (n_events, n_params), or (n_events, n_theta, n_params) for a batch of points
        """
        x = self._points(x, self.n_observables, "x")
        kern, _ = self._kernels(self._split(x)[0], self._mu, self._tau2)
        return self._score_from_kernels(kern, theta, paired)

    def _score_from_kernels(self, kern: np.ndarray, theta: Any, paired: bool) -> np.ndarray:
        if paired:
            th = self._paired_theta(theta, kern.shape[0])
            num = np.einsum("np,nip->ni", kern, _pair_monomial_gradients(th))
            den = np.sum(kern * _pair_monomials(th), axis=1)
            return num / den[:, None] - self._total_gradient(th) / self._total(th)[:, None]
        th, single = self._theta(theta)
        den = kern @ _pair_monomials(th).T  # (n, n_theta)
        num = np.einsum("np,tip->nti", kern, _pair_monomial_gradients(th))
        t = num / den[:, :, None] - (self._total_gradient(th) / self._total(th)[:, None])[None, :, :]
        return t[:, 0, :] if single else t

    def _mixture_weights(self, theta: Any) -> tuple[np.ndarray, bool]:
        th, single = self._theta(theta)
        return _pair_monomials(th) * self._g_pairs[None, :] / self._total(th)[:, None], single  # (n_theta, 6)

    def observable_mean(self, theta: Any) -> np.ndarray:
        """Exact mean ``E[x|theta]``: ``(n_observables,)`` for one point, ``(n_theta, n_observables)`` else."""
        mix, single = self._mixture_weights(theta)
        mean = np.concatenate([mix @ self._mu, np.zeros((mix.shape[0], int(self.n_noise)))], axis=1)
        return mean[0] if single else mean

    def observable_covariance(self, theta: Any) -> np.ndarray:
        """Exact covariance of ``x`` at ``theta``: ``(n_obs, n_obs)`` or ``(n_theta, n_obs, n_obs)``."""
        mix, single = self._mixture_weights(theta)
        d, n_obs = self._d, self.n_observables
        mean = mix @ self._mu
        second = np.einsum("tp,pi,pj->tij", mix, self._mu, self._mu) + self._tau2 * np.eye(d)[None]
        cov = np.zeros((mix.shape[0], n_obs, n_obs))
        cov[:, :d, :d] = second - mean[:, :, None] * mean[:, None, :]
        cov[:, d:, d:] = np.eye(n_obs - d)[None]
        return cov[0] if single else cov

    def log_ratio(self, x: Any, theta0: Any, theta1: Any, paired: bool = False) -> np.ndarray:
        """Exact ``log r(x|theta0, theta1) = log p(x|theta0) - log p(x|theta1)``.

        ``theta0`` and ``theta1`` are each one point or a batch; two batches must have the same length and are
        zipped; a point is broadcast against a batch. Result: ``(n_events,)`` when both are single points or
        ``paired=True``, otherwise ``(n_events, n_theta)``.
        """
        x = self._points(x, self.n_observables, "x")
        return self._ratio(lambda th, p: self.log_likelihood(x, th, paired=p), x.shape[0], theta0, theta1, paired)

    def _ratio(self, logp, n: int, theta0: Any, theta1: Any, paired: bool) -> np.ndarray:
        if paired:
            return logp(self._paired_theta(theta0, n, "theta0"), True) - logp(
                self._paired_theta(theta1, n, "theta1"), True)
        th0, single0 = self._theta(theta0, "theta0")
        th1, single1 = self._theta(theta1, "theta1")
        if not single0 and not single1 and th0.shape[0] != th1.shape[0]:
            raise ValueError(f"theta0 and theta1 batches must have the same length, got {th0.shape[0]} and "
                             f"{th1.shape[0]}")
        out = logp(th0, False) - logp(th1, False)  # broadcasting (n, n0) - (n, n1) with n0 or n1 == 1
        return out[:, 0] if single0 and single1 else out

    # -- Fisher information ----------------------------------------------------------------------------
    def fisher_information(self, theta: Any, luminosity: float, kind: str = "full",
                           grid_spacing: float = 0.4, margin: float = 12.0) -> np.ndarray:
        """Exact Fisher information of eq. (16) of the MadMiner paper.

        ``I_ij = L / sigma d_i sigma d_j sigma`` (``kind="rate"``) ``+ L sigma E_p[t_i t_j]``
        (``kind="kinematic"``); ``kind="full"`` is the sum.

        The kinematic expectation is an integral over the (at most two-dimensional) affine plane spanned by
        the bump centres (the score does not depend on the orthogonal coordinates, whose distribution is
        ``theta``-independent). It is evaluated with the trapezoidal rule on a regular grid of spacing
        ``grid_spacing * detector_resolution`` covering the centres plus ``margin * tau`` on each side (``tau``
        is the width of the smeared bumps). The finest structures of the integrand are the interference valleys
        of ``p(x|theta)``, whose width is set by the detector resolution. For these smooth, Gaussian-decaying
        integrands the rule converges exponentially: at the defaults the relative accuracy is about ``1e-8``
        (measured against a grid of a quarter of the spacing for detector resolutions 0.02 to 0.3; tested
        against a finer grid and against Monte Carlo). The cost grows like ``detector_resolution^-2``.

        Parameters
        ----------
        theta : array-like, shape (n_params,) or (n_theta, n_params)
            Parameter point(s).
        luminosity : float
            Integrated luminosity in pb^-1.
        kind : {"full", "rate", "kinematic"}
        grid_spacing : float
            Quadrature grid spacing in units of ``detector_resolution``.
        margin : float
            Extent of the grid beyond the bump centres in units of ``tau``.

        Returns
        -------
        ndarray, shape (n_params, n_params) or (n_theta, n_params, n_params)
        """
        if kind not in ("full", "rate", "kinematic"):
            raise ValueError(f"kind must be 'full', 'rate' or 'kinematic', got {kind!r}")
        luminosity = float(luminosity)
        if not (np.isfinite(luminosity) and luminosity >= 0):
            raise ValueError(f"luminosity must be non-negative and finite, got {luminosity!r}")
        th, single = self._theta(theta)
        sigma = np.asarray(self.cross_section(th))
        info = np.zeros((th.shape[0], _N_PARAMS, _N_PARAMS))
        if kind in ("full", "rate"):
            grad = np.asarray(self.cross_section_gradient(th))
            info += luminosity * grad[:, :, None] * grad[:, None, :] / sigma[:, None, None]
        if kind in ("full", "kinematic"):
            info += luminosity * sigma[:, None, None] * self.expected_score_products(th, grid_spacing, margin)
        return info[0] if single else info

    def _quadrature(self, grid_spacing: float, margin: float) -> tuple[np.ndarray, np.ndarray]:
        """Grid points in ``x`` space on the plane of the centres and the quadrature weights of ``p(x)`` there.

        Returns ``(points (n_grid, n_dim), weights (n_grid,))``; the weights include the cell volume and the
        Gaussian normalisation of the in-plane density, so ``sum_g w_g kern_g @ mono / (v^T G v)`` integrates
        ``p``.
        """
        if not (grid_spacing > 0 and margin > 0):
            raise ValueError(f"grid_spacing and margin must be positive, got {grid_spacing!r}, {margin!r}")
        tau = np.sqrt(self._tau2)
        plane = self._plane
        r = plane.shape[1]
        mu_plane = (self._mu - self._m[0]) @ plane  # (6, r)
        h = grid_spacing * float(self.detector_resolution)
        axes = []
        for j in range(r):
            lo = mu_plane[:, j].min() - margin * tau
            hi = mu_plane[:, j].max() + margin * tau
            n = int(np.ceil((hi - lo) / h)) + 1
            axes.append(np.linspace(lo, hi, n))
        n_points = int(np.prod([a.size for a in axes]))
        if n_points > 4_000_000:
            logger.warning("Fisher quadrature uses %d grid points (small detector_resolution); this is slow",
                           n_points)
        mesh = np.meshgrid(*axes, indexing="ij")
        y = np.stack([g.ravel() for g in mesh], axis=1) if r else np.zeros((1, 0))
        cell = np.prod([a[1] - a[0] for a in axes]) if r else 1.0
        points = self._m[0][None, :] + y @ plane.T
        weights = np.full(y.shape[0], cell * (2.0 * np.pi * self._tau2) ** (-r / 2.0))
        return points, weights

    def expected_score_products(self, theta: Any, grid_spacing: float = 0.4, margin: float = 12.0) -> np.ndarray:
        """``E_{p(x|theta)}[t(x|theta) t(x|theta)^T]`` by quadrature (see :meth:`fisher_information`).

        Returns
        -------
        ndarray, shape (n_params, n_params) or (n_theta, n_params, n_params)
        """
        th, single = self._theta(theta)
        points, qw = self._quadrature(grid_spacing, margin)
        kern, log_scale = self._kernels(points, self._mu, self._tau2)
        # in-plane distances equal full distances for points on the plane (the centres lie on it)
        out = np.empty((th.shape[0], _N_PARAMS, _N_PARAMS))
        chunk = max(1, 2_000_000 // max(1, points.shape[0]))
        for start in range(0, th.shape[0], chunk):
            sub = th[start:start + chunk]
            t = self._score_from_kernels(kern, sub, paired=False)  # (n_grid, n_sub, n_params)
            if t.ndim == 2:
                t = t[:, None, :]
            dens = (kern @ _pair_monomials(sub).T) * np.exp(log_scale)[:, None] / self._total(sub)[None, :]
            out[start:start + chunk] = np.einsum("g,gt,gti,gtj->tij", qw, dens, t, t)
        return out[0] if single else out

    # -- event generation ------------------------------------------------------------------------------
    def _proposal(self) -> tuple[np.ndarray, float]:
        means = np.unique(np.round(self._mu, 12), axis=0)
        return means, (float(self.proposal_scale) * float(self.width)) ** 2

    def _log_proposal(self, z: np.ndarray) -> np.ndarray:
        means, var = self._proposal()
        sq = np.sum((z[:, None, :] - means[None, :, :]) ** 2, axis=2)
        expo = -sq / (2.0 * var)
        mx = np.max(expo, axis=1)
        return (mx + np.log(np.mean(np.exp(expo - mx[:, None]), axis=1))
                - 0.5 * self._d * np.log(2.0 * np.pi * var))

    def _smear(self, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = z + float(self.detector_resolution) * rng.standard_normal(z.shape)
        if self.n_noise:
            x = np.concatenate([x, rng.standard_normal((z.shape[0], int(self.n_noise)))], axis=1)
        return x

    def _resolve_benchmarks(self, benchmarks: Any) -> tuple[list[str], np.ndarray]:
        space = self.space
        if benchmarks is None:
            return space.benchmark_names, space.benchmark_values
        if isinstance(benchmarks, Mapping):
            names = [str(k) for k in benchmarks]
            values = np.stack([space.as_theta(v)[0] if not isinstance(v, str) else space.benchmark(v)
                               for v in benchmarks.values()])
        elif isinstance(benchmarks, str):
            raise ValueError("benchmarks must be a sequence of names, a mapping name -> point, or None; "
                             f"got the string {benchmarks!r}")
        else:
            names = [str(b) for b in benchmarks]
            values = np.stack([space.benchmark(b) for b in names]) if names else np.zeros((0, 2))
        if len(set(names)) != len(names):
            raise ValueError(f"benchmarks contain duplicate names: {names}")
        if not names:
            raise ValueError("benchmarks must not be empty")
        return names, values

    def simulate(self, n_events: int, benchmarks: Sequence[str] | Mapping[str, Any] | None = None,
                 random_state: Any = None, return_latent: bool = False) -> EventSet | tuple[EventSet, np.ndarray]:
        """Weighted events with one weight column per benchmark, like a MadGraph run with reweighting.

        Parameters
        ----------
        n_events : int
            Number of events.
        benchmarks : sequence of str, mapping name -> point, or None
            Benchmarks to store weights for. ``None``: the six default benchmarks (:data:`DEFAULT_BASIS`).
            Names refer to :attr:`space`; a mapping may define new points. The morphing basis of the returned
            events is the default basis when all of its names are present, otherwise all given benchmarks
            (they must determine the six morphing components).
        random_state : None, int or numpy Generator
            Seed.
        return_latent : bool
            Also return the latent points ``z`` (``(n_events, n_dim)``), e.g. to compare joint quantities.

        Returns
        -------
        EventSet, or (EventSet, ndarray) with ``return_latent=True``
            ``x`` are the smeared observables; ``weights[:, b].sum()`` is an unbiased estimate of
            :meth:`cross_section` at benchmark ``b``; weights at any ``theta`` follow exactly by morphing.
        """
        n_events = _positive(n_events)
        rng = check_random_state(random_state)
        names, values = self._resolve_benchmarks(benchmarks)
        template = self._empty_set(names, values)
        x, weights, z = self._draw(n_events, n_events, values, rng)
        events = template._replace(x=x, weights=weights, sampling_benchmark=None)
        logger.info("ToySimulator: simulated %d weighted events at %d benchmarks", n_events, len(names))
        return (events, z) if return_latent else events

    def simulate_to_file(self, path: str | os.PathLike, n_events: int,
                         benchmarks: Sequence[str] | Mapping[str, Any] | None = None, random_state: Any = None,
                         chunk_events: int = 1 << 18, compression: str | None = "gzip") -> ChunkedEventSet:
        """:meth:`simulate` out of core: events drawn and written chunk by chunk, then opened as a
        :class:`~skminer.events.ChunkedEventSet`.

        The memory held is one chunk's, whatever ``n_events``. The file holds the events of :meth:`simulate` with a
        Generator that draws the chunks one after the other (so with ``chunk_events >= n_events`` it is exactly
        ``simulate(n_events, benchmarks, random_state)``); the weights are normalised to the total ``n_events``.

        Parameters
        ----------
        path : str or path-like
            Target HDF5 file, written atomically (nothing is left at ``path`` on failure).
        n_events : int
        benchmarks, random_state
            As :meth:`simulate`.
        chunk_events : int
            Events drawn and written at a time.
        compression : {"gzip", "lzf", None}

        Returns
        -------
        ChunkedEventSet
        """
        n_events = _positive(n_events)
        chunk = _positive(chunk_events, "chunk_events")
        rng = check_random_state(random_state)
        names, values = self._resolve_benchmarks(benchmarks)
        template = self._empty_set(names, values)
        with EventFileWriter(path, compression) as writer:
            for start in range(0, n_events, chunk):
                x, weights, _ = self._draw(min(chunk, n_events - start), n_events, values, rng)
                writer.append(template._replace(x=x, weights=weights, sampling_benchmark=None))
        logger.info("ToySimulator: simulated %d weighted events at %d benchmarks into %s", n_events, len(names), path)
        return EventSet.open(path)

    def _draw(self, n: int, n_total: int, values: np.ndarray, rng: np.random.Generator
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``n`` events of a sample of ``n_total``: observations, weights (pb per event) and latent points."""
        means, var = self._proposal()
        comp = rng.integers(0, means.shape[0], size=n)
        z = means[comp] + np.sqrt(var) * rng.standard_normal((n, self._d))
        q = np.exp(self._log_proposal(z))
        weights = self.differential_cross_section(z, values) / q[:, None] / n_total
        if weights.ndim == 1:
            weights = weights[:, None]
        return self._smear(z, rng), weights, z

    def _empty_set(self, names: list[str], values: np.ndarray) -> EventSet:
        """An EventSet without events that carries the space, benchmarks and morphing of simulated events."""
        space = ParameterSpace()
        for name in self.parameter_names:
            space.add_parameter(name, max_power=2, range=tuple(self.parameter_range))
        for name, point in zip(names, values, strict=True):
            space.add_benchmark(name, point)
        basis_names = list(DEFAULT_BASIS) if set(DEFAULT_BASIS) <= set(names) else names
        basis = np.stack([space.benchmark(b) for b in basis_names])
        morpher = self.make_morpher()
        try:
            morpher.set_basis(basis)
        except ValueError as err:
            raise ValueError(f"benchmarks {names} do not determine the 6 morphing components "
                             f"(1, theta1, theta2, theta1^2, theta1*theta2, theta2^2): {err}") from None
        return EventSet(np.zeros((0, self.n_observables)), np.zeros((0, len(names))),
                        observable_names=self.observable_names, benchmark_names=names, space=space, morpher=morpher,
                        morphing_basis=basis_names)

    def sample(self, n_events: int, theta: Any, random_state: Any = None,
               return_latent: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Unweighted events drawn exactly from ``p(x|theta)`` at one parameter point.

        ``z`` is drawn by rejection sampling from the envelope ``(sum_k |a_k|) sum_k |a_k| phi_k(z)^2 >=
        |M(z)|^2`` (Cauchy-Schwarz, ``a_k = v_k c_k``), a positive Gaussian mixture; then smeared.

        Parameters
        ----------
        n_events : int
        theta : array-like, shape (n_params,), benchmark name or mapping
        random_state : None, int or numpy Generator
        return_latent : bool
            Also return ``z``.

        Returns
        -------
        ndarray, shape (n_events, n_observables), or (x, z)
        """
        if int(n_events) != n_events or n_events < 0:
            raise ValueError(f"n_events must be a non-negative integer, got {n_events!r}")
        n_events = int(n_events)
        th, single = self._theta(theta)
        if not single:
            raise ValueError(f"sample draws at one parameter point; got theta with shape {np.shape(theta)}")
        rng = check_random_state(random_state)
        a = _v(th)[0] * self._c
        abs_a = np.abs(a)
        probs = abs_a / abs_a.sum()
        acceptance = self._total(th)[0] / abs_a.sum() ** 2
        accepted: list[np.ndarray] = []
        n_done = 0
        while n_done < n_events:
            n_try = int(1.2 * (n_events - n_done) / acceptance) + 16
            comp = rng.choice(3, size=n_try, p=probs)
            z = self._m[comp] + np.sqrt(self._s2) * rng.standard_normal((n_try, self._d))
            phi = np.exp(-np.sum((z[:, None, :] - self._m[None, :, :]) ** 2, axis=2) / (4.0 * self._s2))
            target = (phi @ a) ** 2
            envelope = abs_a.sum() * ((phi**2) @ abs_a)
            keep = rng.random(n_try) * envelope < target
            accepted.append(z[keep])
            n_done += int(keep.sum())
        z = np.concatenate(accepted)[:n_events] if accepted else np.zeros((0, self._d))
        x = self._smear(z, rng)
        return (x, z) if return_latent else x

    simulate_at = sample

    def __repr__(self) -> str:
        return (f"ToySimulator(n_dim={self.n_dim}, width={self.width}, couplings={tuple(self.couplings)}, "
                f"detector_resolution={self.detector_resolution}, n_noise={self.n_noise})")
