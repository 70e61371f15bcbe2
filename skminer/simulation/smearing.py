"""Simple detector response: Gaussian smearing and reconstruction efficiencies per particle type.

For each object collection (``"e"``, ``"mu"``, ``"a"``, ``"j"``, ``"met"``, ...) a :class:`ParticleSmearing`
gives Gaussian resolutions with a relative and an absolute term, ``sigma(v) = relative * |v| + absolute``, for the
energy *or* the transverse momentum, for eta and for phi, plus an efficiency (a constant or a function of pt and
eta) with which each object is kept. Energy smearing keeps the mass and direction (``|p|`` follows from the smeared
energy); pt smearing keeps eta, phi and the mass. Smeared energies/momenta that come out below the physical limit
are drawn again. The :class:`Smearer` applies the rules to an :class:`~skminer.simulation.observables.EventObjects`
container with its own seeded random generator, vectorised over all objects of all events, in float64; the
collections are re-sorted by decreasing pt afterwards. For example:

>>> smearer = Smearer({"j": ParticleSmearing(energy_resolution=(0.1, 5.0), eta_resolution=(0.0, 0.05),
...                                          efficiency=0.95),
...                    "a": ParticleSmearing(energy_resolution=(0.02, 0.2))}, random_state=1)
>>> smeared = smearer.apply(objects)                                       # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .observables import EventObjects, make_vectors, require_hep

__all__ = ["ParticleSmearing", "Smearer"]

logger = logging.getLogger(__name__)

_MAX_REDRAWS = 100
_COORDINATES = {"pt", "eta", "phi", "mass", "px", "py", "pz", "E", "e", "energy", "x", "y", "z", "t", "tau", "rho",
                "M", "m", "rapidity", "theta"}


def _resolution(value: Any, label: str) -> tuple[float, float]:
    try:
        rel, absolute = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{label} must be a pair (relative, absolute), got {value!r}") from None
    if not (math.isfinite(rel) and math.isfinite(absolute) and rel >= 0 and absolute >= 0):
        raise ValueError(f"{label} terms must be finite and non-negative, got {value!r}")
    return rel, absolute


@dataclass(frozen=True)
class ParticleSmearing:
    """Resolution and efficiency of one particle type.

    Parameters
    ----------
    energy_resolution : (float, float)
        ``(relative, absolute)``: ``sigma_E = relative * E + absolute`` (GeV). Exclusive with ``pt_resolution``.
    pt_resolution : (float, float)
        ``sigma_pt = relative * pt + absolute``.
    eta_resolution, phi_resolution : (float, float)
        ``sigma = relative * |value| + absolute``.
    efficiency : float or callable
        Probability to reconstruct an object: a constant in [0, 1] or ``f(pt, eta) -> probabilities`` acting on
        numpy arrays.
    """

    energy_resolution: tuple[float, float] = (0.0, 0.0)
    pt_resolution: tuple[float, float] = (0.0, 0.0)
    eta_resolution: tuple[float, float] = (0.0, 0.0)
    phi_resolution: tuple[float, float] = (0.0, 0.0)
    efficiency: float | Callable[[np.ndarray, np.ndarray], Any] = 1.0

    def __post_init__(self) -> None:
        for name in ("energy_resolution", "pt_resolution", "eta_resolution", "phi_resolution"):
            object.__setattr__(self, name, _resolution(getattr(self, name), name))
        if any(self.energy_resolution) and any(self.pt_resolution):
            raise ValueError("smear either the energy (energy_resolution) or pt (pt_resolution), not both")
        if not callable(self.efficiency):
            eff = float(self.efficiency)
            if not 0.0 <= eff <= 1.0:
                raise ValueError(f"efficiency must be in [0, 1], got {self.efficiency!r}")
            object.__setattr__(self, "efficiency", eff)

    def efficiencies(self, pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
        """Reconstruction probabilities for objects with the given pt and eta."""
        if callable(self.efficiency):
            p = np.asarray(self.efficiency(pt, eta), dtype=np.float64)
            p = np.broadcast_to(p, pt.shape)
            if not np.all((p >= 0) & (p <= 1)):
                raise ValueError("efficiency function returned values outside [0, 1]")
            return p
        return np.full(pt.shape, float(self.efficiency))


class Smearer:
    """Applies :class:`ParticleSmearing` rules to collections and singletons of :class:`EventObjects`.

    Parameters
    ----------
    rules : mapping of str to ParticleSmearing, optional
        Object name (as used in expressions) to its response.
    random_state : int, numpy Generator or None
        Seed. Successive :meth:`apply` calls continue the same random stream (reproducible as a sequence).
    """

    def __init__(self, rules: Mapping[str, ParticleSmearing] | None = None, random_state: Any = None) -> None:
        self.rules: dict[str, ParticleSmearing] = {}
        for name, rule in (rules or {}).items():
            self.set(name, rule)
        self.random_state = random_state
        self._rng = random_state if isinstance(random_state, np.random.Generator) else np.random.default_rng(
            random_state)

    def set(self, name: str, rule: ParticleSmearing | None = None, **kwargs: Any) -> Smearer:
        """Set the response of object ``name`` (a :class:`ParticleSmearing` or its keyword arguments)."""
        if rule is None:
            rule = ParticleSmearing(**kwargs)
        elif kwargs:
            raise TypeError("give either a ParticleSmearing or keyword arguments, not both")
        if not isinstance(rule, ParticleSmearing):
            raise TypeError(f"rule for {name!r} must be a ParticleSmearing, got {type(rule).__name__}")
        self.rules[name] = rule
        return self

    def __repr__(self) -> str:
        return f"Smearer({self.rules!r}, random_state={self.random_state!r})"

    def apply(self, objects: EventObjects, random_state: Any = None) -> EventObjects:
        """Smear and apply efficiencies; returns a new :class:`EventObjects`.

        Parameters
        ----------
        objects : EventObjects
        random_state : int or Generator, optional
            Overrides the smearer's own random stream for this call.
        """
        ak, _ = require_hep()
        rng = self._rng if random_state is None else (
            random_state if isinstance(random_state, np.random.Generator) else np.random.default_rng(random_state))
        unknown = [n for n in self.rules if n not in objects.collections and n not in objects.singletons]
        if unknown:
            logger.debug("smearing rules for %s have no matching objects (available: %s)", unknown, objects.names)
        collections = dict(objects.collections)
        singletons = dict(objects.singletons)
        for name, rule in self.rules.items():
            if name in collections:
                coll = collections[name]
                counts = ak.to_numpy(ak.num(coll, axis=1))
                flat = ak.flatten(coll, axis=1)
                fields, keep = self._smear_flat(flat, rule, rng, ak)
                jagged = {k: ak.unflatten(v, counts) for k, v in fields.items()}
                new = make_vectors(**jagged)
                new = new[ak.unflatten(keep, counts)]
                order = ak.argsort(new.pt, axis=1, ascending=False)
                collections[name] = new[order]
                logger.debug("smeared %s: kept %d of %d objects", name, int(keep.sum()), keep.size)
            elif name in singletons:
                fields, _ = self._smear_flat(singletons[name], rule, rng, ak, efficiency=False)
                singletons[name] = make_vectors(**fields)
        return EventObjects(objects.n_events, collections, singletons, dict(objects.scalars))

    @staticmethod
    def _smear_flat(flat: Any, rule: ParticleSmearing, rng: np.random.Generator, ak: Any, efficiency: bool = True
                    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        pt = np.asarray(ak.to_numpy(flat.pt), dtype=np.float64).copy()
        eta = np.asarray(ak.to_numpy(flat.eta), dtype=np.float64).copy()
        phi = np.asarray(ak.to_numpy(flat.phi), dtype=np.float64).copy()
        mass = np.asarray(ak.to_numpy(flat.mass), dtype=np.float64).copy()
        mass = np.where(np.isfinite(mass) & (mass > 0), mass, 0.0)
        extra = {k: ak.to_numpy(flat[k]) for k in ak.fields(flat) if k not in _COORDINATES}
        n = pt.size
        if efficiency:
            keep = rng.random(n) < rule.efficiencies(pt, eta)
        else:
            keep = np.ones(n, dtype=bool)
        rel, absolute = rule.energy_resolution
        if rel or absolute:
            p_old = pt * np.cosh(eta)
            energy = np.sqrt(p_old**2 + mass**2)
            new_e = _positive_gaussian(rng, energy, rel * energy + absolute, lower=mass)
            p_new = np.sqrt(np.maximum(new_e**2 - mass**2, 0.0))
            pt = np.divide(pt * p_new, p_old, out=np.zeros_like(pt), where=p_old > 0)
        rel, absolute = rule.pt_resolution
        if rel or absolute:
            pt = _positive_gaussian(rng, pt, rel * pt + absolute, lower=0.0)
        rel, absolute = rule.eta_resolution
        if rel or absolute:
            eta = eta + rng.normal(size=n) * (rel * np.abs(eta) + absolute)
        rel, absolute = rule.phi_resolution
        if rel or absolute:
            phi = phi + rng.normal(size=n) * (rel * np.abs(phi) + absolute)
            phi = np.mod(phi + np.pi, 2 * np.pi) - np.pi
        return {"pt": pt, "eta": eta, "phi": phi, "mass": mass, **extra}, keep


def _positive_gaussian(rng: np.random.Generator, mean: np.ndarray, sigma: np.ndarray, lower: np.ndarray | float
                       ) -> np.ndarray:
    """Gaussian draws around ``mean`` re-drawn where they fall at or below ``lower`` (truncated Gaussian)."""
    lower = np.broadcast_to(np.asarray(lower, dtype=np.float64), mean.shape)
    out = mean + rng.normal(size=mean.shape) * sigma
    bad = (out <= lower) & (sigma > 0)
    for _ in range(_MAX_REDRAWS):
        if not bad.any():
            break
        out[bad] = mean[bad] + rng.normal(size=int(bad.sum())) * sigma[bad]
        bad = (out <= lower) & (sigma > 0)
    if bad.any():  # far in the tail: fall back to the unsmeared value
        out[bad] = mean[bad]
    return out
