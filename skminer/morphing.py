"""Morphing: exact interpolation of event weights between parameter points.

When the squared matrix element is a polynomial in the parameters,
``|M|^2(z|theta) = sum_c f_c(z) prod_i theta_i^{e_ci}`` (eq. 17 of the MadMiner paper), the weight at any
``theta`` is a linear combination of the weights at a basis of ``n_components`` parameter points:
``w(z|theta) = sum_b w_b(theta) w(z|theta_b)``. The morphing weights ``w_b(theta)`` depend only on
``theta`` and the basis.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Sequence

import numpy as np
from scipy import optimize

from .parameters import ParameterSpace

__all__ = ["Morpher", "find_components", "FITS"]

logger = logging.getLogger(__name__)

#: How :meth:`Morpher.set_basis` turns basis points into the morphing matrix: ``"exact"`` needs exactly one point
#: per component (the morphing reproduces every basis point), ``"least_squares"`` fits the components to more
#: points (the morphing no longer reproduces them; the residual must be checked, see
#: :func:`skminer.closure.morphing_closure`).
FITS = ("exact", "least_squares")

#: Largest condition number of the morphing system, computed with every parameter divided by its own scale
#: (so that it does not depend on the units of the parameters): beyond it, rounding errors of the weights are
#: amplified by more than ~1e14 / 1e16 = 1 % (float64).
MAX_CONDITION = 1e14
#: Condition number beyond which a candidate basis is not considered by :meth:`Morpher.optimize_basis` and
#: :meth:`Morpher.select_basis`.
MAX_CANDIDATE_CONDITION = 1e12


def parameter_scales(points: np.ndarray) -> np.ndarray:
    """Natural scale of each parameter: the largest ``|value|`` among ``points`` (1 where all are zero).

    Thresholds on morphing systems (condition numbers, degeneracy) are applied to the parameters divided by
    these scales, so a parameter quoted in GeV^-4 (values ~1e-12) is treated like one of order one.

    Parameters
    ----------
    points : array-like, shape (n_points, n_parameters)
        Basis points, or the ``(low, high)`` ranges transposed.

    Returns
    -------
    ndarray, shape (n_parameters,)
    """
    pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
    scale = np.max(np.abs(pts), axis=0) if pts.size else np.ones(pts.shape[1])
    return np.where((scale > 0) & np.isfinite(scale), scale, 1.0)


def find_components(max_powers: Sequence[int], max_overall_power: int | None = None) -> np.ndarray:
    """Exponent vectors of all monomials allowed by per-parameter and overall maximal powers.

    Parameters
    ----------
    max_powers : sequence of int
        Highest power of each parameter.
    max_overall_power : int or None
        Highest total degree of a monomial; ``None`` means no limit beyond ``max_powers``.

    Returns
    -------
    ndarray of int, shape (n_components, n_parameters)
    """
    max_powers = [int(p) for p in max_powers]
    if not max_powers or any(p < 0 for p in max_powers):
        raise ValueError(f"max_powers must be a non-empty sequence of non-negative ints, got {max_powers}")
    limit = sum(max_powers) if max_overall_power is None else int(max_overall_power)
    comps = [c for c in itertools.product(*(range(p + 1) for p in max_powers)) if sum(c) <= limit]
    comps.sort(key=lambda c: (sum(c), tuple(-e for e in c)))
    return np.array(comps, dtype=int).reshape(-1, len(max_powers))


def _as_theta(theta: np.ndarray, n_params: int) -> tuple[np.ndarray, bool]:
    arr = np.asarray(theta, dtype=np.float64)
    single = arr.ndim == 1
    arr = np.atleast_2d(arr)
    if arr.ndim != 2 or arr.shape[1] != n_params:
        raise ValueError(f"theta must have shape (n_theta, {n_params}) or ({n_params},), got {np.shape(theta)}")
    return arr, single


class Morpher:
    """Morphing between parameter points for a polynomial squared matrix element.

    Parameters
    ----------
    max_powers : sequence of int
        Highest power of each parameter in the squared matrix element.
    max_overall_power : int or None
        Highest total degree of any monomial (``2`` for one insertion of each operator in the amplitude);
        ``None`` allows all products permitted by ``max_powers``.
    components : array-like of int, optional
        Explicit exponent vectors; overrides the two arguments above.
    fit : {"exact", "least_squares"}
        Default of :meth:`set_basis`: whether a basis must have exactly one point per component or the
        components are fitted to more points by least squares.

    Raises
    ------
    ValueError
        If a parameter's ``max_power`` exceeds ``max_overall_power`` (its highest powers could never appear,
        a sign of an inconsistent setup), or ``max_overall_power`` is negative.

    Attributes
    ----------
    components : ndarray of int, shape (n_components, n_parameters)
    basis : ndarray, shape (n_basis, n_parameters) or None
    matrix : ndarray, shape (n_components, n_basis) or None
        Morphing matrix in MadMiner's convention: ``w(theta) = matrix.T @ component_values(theta)``.
    fit : {"exact", "least_squares"}
        How the matrix is obtained (see :data:`FITS`).
    condition_number : float or None
        Condition number of the basis system with the parameters divided by their scales
        (:func:`parameter_scales`): independent of the parameters' units.
    """

    def __init__(self, max_powers: Sequence[int] | None = None, max_overall_power: int | None = None,
                 components: np.ndarray | None = None, fit: str = "exact") -> None:
        if fit not in FITS:
            raise ValueError(f"fit must be one of {FITS}, got {fit!r}")
        if components is not None:
            comps = np.asarray(components)
            if comps.ndim != 2 or not np.all(comps == np.round(comps)) or np.any(comps < 0):
                raise ValueError("components must be a 2-D array of non-negative integer exponents")
            self.components = comps.astype(int)
        elif max_powers is not None:
            if max_overall_power is not None:
                too_high = [i for i, p in enumerate(max_powers) if int(p) > int(max_overall_power)]
                if too_high:
                    raise ValueError(f"max_powers {list(max_powers)} exceed max_overall_power={max_overall_power} "
                                     f"for parameter(s) {too_high}: those powers could never appear; lower the "
                                     "parameters' max_power or raise max_overall_power")
            self.components = find_components(max_powers, max_overall_power)
        else:
            raise ValueError("give either max_powers or components")
        self.basis: np.ndarray | None = None
        self.matrix: np.ndarray | None = None
        self.fit = fit
        self.condition_number: float | None = None

    @classmethod
    def from_space(cls, space: ParameterSpace, max_overall_power: int | None = None, fit: str = "exact"
                   ) -> Morpher:
        """Morpher with the maximal powers of ``space``'s parameters."""
        return cls(space.max_powers, max_overall_power, fit=fit)

    @property
    def n_parameters(self) -> int:
        """Number of parameters."""
        return self.components.shape[1]

    @property
    def n_components(self) -> int:
        """Number of monomials, the minimal size of a basis."""
        return self.components.shape[0]

    # -- monomials ------------------------------------------------------------------------------------
    def component_values(self, theta: np.ndarray) -> np.ndarray:
        """Monomials ``prod_i theta_i^{e_ci}``, shape ``(n_theta, n_components)``."""
        th, _ = _as_theta(theta, self.n_parameters)
        return np.prod(th[:, None, :] ** self.components[None, :, :], axis=2)

    def component_gradients(self, theta: np.ndarray) -> np.ndarray:
        """Derivatives of the monomials, shape ``(n_theta, n_parameters, n_components)``."""
        th, _ = _as_theta(theta, self.n_parameters)
        out = np.empty((th.shape[0], self.n_parameters, self.n_components))
        for i in range(self.n_parameters):
            exps = self.components.copy()
            coef = exps[:, i].astype(np.float64)
            exps[:, i] = np.maximum(exps[:, i] - 1, 0)
            out[:, i, :] = coef[None, :] * np.prod(th[:, None, :] ** exps[None, :, :], axis=2)
        return out

    # -- basis ----------------------------------------------------------------------------------------
    def set_basis(self, basis: np.ndarray, fit: str | None = None) -> Morpher:
        """Fix the basis points and compute the morphing matrix.

        Parameters
        ----------
        basis : array-like, shape (n_basis, n_parameters)
            Parameter points whose weights are known.
        fit : {"exact", "least_squares"}, optional
            Default: the morpher's :attr:`fit`. ``"exact"``: exactly one point per component; the morphing
            reproduces every basis point. ``"least_squares"``: ``n_basis >= n_components`` points, the components
            are fitted by least squares (pseudo-inverse). The morphing then does not reproduce the basis points
            exactly; check the fit residual with :func:`skminer.closure.morphing_closure`.

        Raises
        ------
        ValueError
            If the basis has too few points, more points than components with ``fit="exact"``, or is
            degenerate (condition number above :data:`MAX_CONDITION` with the parameters in units of their
            own scale).
        """
        fit = self.fit if fit is None else fit
        if fit not in FITS:
            raise ValueError(f"fit must be one of {FITS}, got {fit!r}")
        basis = np.asarray(basis, dtype=np.float64)
        if basis.ndim != 2 or basis.shape[1] != self.n_parameters:
            raise ValueError(f"basis must have shape (n_basis, {self.n_parameters}), got {basis.shape}")
        if not np.all(np.isfinite(basis)):
            raise ValueError(f"basis points must be finite, got {basis.tolist()}")
        if basis.shape[0] < self.n_components:
            raise ValueError(f"basis has {basis.shape[0]} points but morphing needs at least "
                             f"{self.n_components} (one per component)")
        if basis.shape[0] > self.n_components and fit == "exact":
            raise ValueError(f"basis has {basis.shape[0]} points for {self.n_components} morphing components: an "
                             "exact morphing needs one point per component. Choose a subset (select_basis) or ask "
                             "for a least-squares fit over all points (fit='least_squares'; its residual is "
                             "reported by the morphing closure check)")
        self.matrix, self.condition_number = self._matrix_for(basis)
        self.basis = basis.copy()
        self.fit = fit
        return self

    def _matrix_for(self, basis: np.ndarray) -> tuple[np.ndarray, float]:
        """Morphing matrix (MadMiner convention) and scale-free condition number of ``basis``."""
        scale = parameter_scales(basis)
        a_scaled = self.component_values(basis / scale)  # (n_basis, n_components), parameters of order one
        # A = A_scaled D with D = diag(prod_i scale_i^e_ci), so pinv(A) = D^-1 pinv(A_scaled)
        d = np.prod(scale[None, :] ** self.components, axis=1)
        cond = float(np.linalg.cond(a_scaled))
        if a_scaled.shape[0] == a_scaled.shape[1]:
            if not np.isfinite(cond) or cond > MAX_CONDITION:
                raise ValueError(f"morphing basis is degenerate (condition number {cond:.3g} with each parameter "
                                 f"in units of its largest basis value {scale.tolist()}); choose other basis "
                                 "points or call optimize_basis")
            return np.linalg.inv(a_scaled) / d[:, None], cond
        if not np.isfinite(cond) or cond > MAX_CONDITION:
            rank = np.linalg.matrix_rank(a_scaled)
            raise ValueError(f"morphing basis has rank {rank} for {self.n_components} components (condition "
                             f"number {cond:.3g} with the parameters in units of {scale.tolist()})")
        return np.linalg.pinv(a_scaled) / d[:, None], cond

    def _require_basis(self) -> np.ndarray:
        if self.matrix is None:
            raise RuntimeError("Morpher has no basis: call set_basis() or optimize_basis() first")
        return self.matrix

    # -- weights --------------------------------------------------------------------------------------
    def weights(self, theta: np.ndarray) -> np.ndarray:
        """Morphing weights ``w_b(theta)``, shape ``(n_theta, n_basis)`` (``(n_basis,)`` for 1-D theta)."""
        matrix = self._require_basis()
        _, single = _as_theta(theta, self.n_parameters)
        w = self.component_values(theta) @ matrix
        return w[0] if single else w

    def weight_gradients(self, theta: np.ndarray) -> np.ndarray:
        """Gradients ``d w_b / d theta_i``, shape ``(n_theta, n_parameters, n_basis)``."""
        matrix = self._require_basis()
        _, single = _as_theta(theta, self.n_parameters)
        g = self.component_gradients(theta) @ matrix
        return g[0] if single else g

    def expected_squared_weights(self, ranges: np.ndarray, n_test: int = 1000, random_state: int | None = 0,
                                 basis: np.ndarray | None = None) -> float:
        """Mean of ``sum_b w_b(theta)^2`` over ``theta`` uniform in ``ranges``.

        Large values mean large cancellations between basis weights and hence poor numerical precision.
        """
        thetas = _uniform(ranges, n_test, np.random.default_rng(random_state), self.n_parameters)
        matrix = self._require_basis() if basis is None else self._matrix_for(np.asarray(basis, float))[0]
        return float(np.mean(np.sum((self.component_values(thetas) @ matrix) ** 2, axis=1)))

    def optimize_basis(self, ranges: np.ndarray, fixed: np.ndarray | None = None, n_trials: int = 200,
                       n_test: int = 1000, refine: bool = True, random_state: int | None = 0) -> np.ndarray:
        """Choose basis points minimising the expected squared morphing weights, then set the basis.

        Parameters
        ----------
        ranges : array-like, shape (n_parameters, 2)
            Parameter ranges over which the squared weights are averaged and in which points are drawn.
        fixed : array-like, shape (n_fixed, n_parameters), optional
            Points that must be in the basis (e.g. benchmarks the user already simulated); the rest is
            completed automatically.
        n_trials : int
            Random candidate bases tried before the local refinement.
        n_test : int
            Parameter points used to estimate the expectation.
        refine : bool
            Refine the best random candidate with Nelder-Mead on the free points.
        random_state : int or None
            Seed.

        Returns
        -------
        ndarray, shape (n_components, n_parameters)
            The basis (fixed points first).
        """
        rng = np.random.default_rng(random_state)
        ranges = np.asarray(ranges, dtype=np.float64).reshape(self.n_parameters, 2)
        fixed = np.zeros((0, self.n_parameters)) if fixed is None else np.atleast_2d(np.asarray(fixed, float))
        if fixed.shape[1] != self.n_parameters:
            raise ValueError(f"fixed points must have {self.n_parameters} columns, got {fixed.shape}")
        n_free = self.n_components - fixed.shape[0]
        if n_free < 0:
            raise ValueError(f"{fixed.shape[0]} fixed points exceed the {self.n_components} components")
        unit = parameter_scales(ranges.T)  # every parameter in units of its range: scale-free conditioning
        test = _uniform(ranges, n_test, rng, self.n_parameters)
        test_components = self.component_values(test / unit)

        def cost(free_flat: np.ndarray) -> float:
            basis = np.vstack([fixed, free_flat.reshape(n_free, self.n_parameters)])
            a = self.component_values(basis / unit)
            cond = np.linalg.cond(a)
            if not np.isfinite(cond) or cond > MAX_CANDIDATE_CONDITION:
                return np.inf
            return float(np.mean(np.sum((test_components @ np.linalg.inv(a)) ** 2, axis=1)))

        if n_free == 0:
            best = np.zeros(0)
        else:
            candidates = [_uniform(ranges, n_free, rng, self.n_parameters).ravel() for _ in range(n_trials)]
            costs = np.array([cost(c) for c in candidates])
            if not np.any(np.isfinite(costs)):
                raise RuntimeError("no non-degenerate random basis found; widen the ranges or increase n_trials")
            best = candidates[int(np.argmin(costs))]
            if refine:
                scale = np.tile(ranges[:, 1] - ranges[:, 0], n_free)
                lo, hi = np.tile(ranges[:, 0], n_free), np.tile(ranges[:, 1], n_free)
                bounds = np.stack([lo, hi], axis=1) / scale[:, None]
                res = optimize.minimize(lambda u: cost(u * scale), best / scale, method="Nelder-Mead",
                                        bounds=bounds,  # basis points stay inside the ranges
                                        options={"maxiter": 200 * best.size, "xatol": 1e-4, "fatol": 1e-6})
                if np.isfinite(res.fun) and res.fun <= cost(best):
                    best = res.x * scale
        basis = np.vstack([fixed, best.reshape(n_free, self.n_parameters)])
        logger.info("optimised morphing basis: expected squared weights %.4g", cost(basis[fixed.shape[0]:].ravel()))
        self.set_basis(basis)
        return basis

    def select_basis(self, candidates: np.ndarray, ranges: np.ndarray, max_combinations: int = 20_000,
                     n_test: int = 1000, random_state: int | None = 0, required: Sequence[int] = ()
                     ) -> np.ndarray:
        """Choose the basis among existing points (e.g. simulated benchmarks), then set it.

        Every subset of ``n_components`` candidates is scored by the expected squared morphing weights over
        ``ranges`` (all subsets when there are at most ``max_combinations``, otherwise that many random ones);
        the best non-degenerate subset becomes the basis.

        Parameters
        ----------
        candidates : array-like, shape (n_candidates, n_parameters)
            Points available as basis (``n_candidates >= n_components``).
        ranges : array-like, shape (n_parameters, 2)
            Parameter ranges over which the squared weights are averaged.
        max_combinations : int
            Largest number of subsets scored.
        n_test : int
            Parameter points used to estimate the expectation.
        random_state : int or None
            Seed of the test points (and of the subsets when they are sampled).
        required : sequence of int
            Candidates that the basis should contain (e.g. the sampling benchmark and the reference point, where
            the morphing is then exact). Subsets containing all of them are preferred; when none of those is
            non-degenerate, every subset is considered and a warning names the left-out candidates.

        Returns
        -------
        ndarray of int, shape (n_components,)
            Indices of the chosen candidates, in basis order.
        """
        cand = np.atleast_2d(np.asarray(candidates, dtype=np.float64))
        if cand.shape[1] != self.n_parameters:
            raise ValueError(f"candidates must have {self.n_parameters} columns, got shape {cand.shape}")
        k = self.n_components
        if cand.shape[0] < k:
            raise ValueError(f"{cand.shape[0]} candidate points cannot span the {k} morphing components")
        required = sorted({int(i) for i in required})
        if any(not 0 <= i < cand.shape[0] for i in required):
            raise ValueError(f"required candidates {required} out of range for {cand.shape[0]} candidates")
        rng = np.random.default_rng(random_state)
        scale = parameter_scales(np.asarray(ranges, dtype=np.float64).reshape(self.n_parameters, 2).T)
        test_components = self.component_values(_uniform(ranges, n_test, rng, self.n_parameters) / scale)
        cand_components = self.component_values(cand / scale)  # (n_candidates, n_components), scale-free
        ok = np.zeros(0, dtype=bool)
        for keep in ([required] if 0 < len(required) <= k else []) + [[]]:
            subsets = self._subsets(cand.shape[0], k, keep, max_combinations, rng)
            a = cand_components[subsets]  # (n_subsets, k, k): rows are basis points
            cond = np.linalg.cond(a)
            ok = np.isfinite(cond) & (cond < MAX_CANDIDATE_CONDITION)
            if np.any(ok):
                break
            if keep:
                logger.warning("no non-degenerate morphing basis contains all of the candidates %s (points %s); "
                               "choosing among all subsets", keep, cand[keep].tolist())
        if not np.any(ok):
            raise ValueError("no subset of the candidate points forms a non-degenerate morphing basis")
        a = a[ok]
        cost = np.empty(a.shape[0])
        for i in range(0, a.shape[0], 256):  # weights(theta) = component_values(theta) @ inv(a), in chunks
            w = test_components[None, :, :] @ np.linalg.inv(a[i:i + 256])
            cost[i:i + 256] = np.mean(np.sum(w**2, axis=2), axis=1)
        best = subsets[ok][int(np.argmin(cost))]
        logger.info("selected morphing basis %s among %d candidates: expected squared weights %.4g",
                    best.tolist(), cand.shape[0], float(cost.min()))
        self.set_basis(cand[best])
        return best

    @staticmethod
    def _subsets(n: int, k: int, keep: Sequence[int], max_combinations: int, rng: np.random.Generator
                 ) -> np.ndarray:
        """Subsets of ``k`` of ``n`` indices that contain ``keep`` (all, or ``max_combinations`` random ones)."""
        rest = np.array([i for i in range(n) if i not in keep], dtype=int)
        m = k - len(keep)
        if math.comb(rest.size, m) <= max_combinations:
            free = np.array(list(itertools.combinations(rest, m)), dtype=int).reshape(-1, m)
        else:
            free = np.array([rng.choice(rest, m, replace=False) for _ in range(max_combinations)]).reshape(-1, m)
        fixed = np.broadcast_to(np.asarray(keep, dtype=int), (free.shape[0], len(keep)))
        return np.sort(np.hstack([fixed, free]), axis=1)

    # -- serialisation --------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """JSON-serialisable description (components and basis)."""
        return {"components": self.components.tolist(),
                "basis": None if self.basis is None else self.basis.tolist(), "fit": self.fit}

    @classmethod
    def from_dict(cls, d: dict) -> Morpher:
        """Inverse of :meth:`to_dict`."""
        m = cls(components=np.asarray(d["components"], dtype=int), fit=d.get("fit") or "exact")
        if d.get("basis") is not None:
            basis = np.asarray(d["basis"], dtype=np.float64)
            # descriptions written before the fit was recorded: more points than components meant least squares
            fit = d.get("fit") or ("least_squares" if basis.shape[0] > m.n_components else "exact")
            m.set_basis(basis, fit=fit)
        return m

    def __repr__(self) -> str:
        nb = None if self.basis is None else self.basis.shape[0]
        return f"Morpher(n_parameters={self.n_parameters}, n_components={self.n_components}, n_basis={nb})"


def _uniform(ranges: np.ndarray, n: int, rng: np.random.Generator, n_params: int) -> np.ndarray:
    ranges = np.asarray(ranges, dtype=np.float64).reshape(n_params, 2)
    return rng.uniform(ranges[:, 0], ranges[:, 1], size=(n, n_params))
