"""Validity checks of a morphing setup against the weights it morphs (no silent wrong answers).

Morphing is exact only when the squared matrix element is the assumed polynomial in the parameters (eq. 17 of
the MadMiner paper, arXiv:1907.10621). Nothing in the basis weights themselves tells whether it is, but every
benchmark whose weights were stored and that is *not* in the basis does:

* :func:`morphing_closure` compares, event by event and in total, the stored weights of those benchmarks with the
  morphed ones (and, for a least-squares basis, the fit residual at the basis points themselves);
* :func:`check_morphing_closure` logs the table, warns above a tolerance relative to the precision of the stored
  weights and raises above a gross deviation;
* :func:`negative_cross_sections` scans the parameter ranges for points where the morphed cross section (or,
  cheaply, the weights of events that are positive at every benchmark) turns negative.

Per-event deviations are measured relative to the event's weight scale ``max(|w_stored|, sum_b |w_b(theta)
w_b|)``: the rounding error of a morphed weight is ``precision * sum_b |w_b(theta) w_b|`` (the morphing amplifies
the rounding of the basis weights by the size of its coefficients), so at a polynomial process the deviation is a
few units of the weights' precision whatever the units and the conditioning, and anything far above that is
physics the morphing does not describe.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = ["ClosureRow", "MorphingClosure", "MorphingClosureError", "check_morphing_closure", "morphing_closure",
           "negative_cross_sections", "weight_precision", "DEFAULT_TOLERANCE", "DEFAULT_GROSS",
           "PRECISION_LHE", "PRECISION_FLOAT32", "PRECISION_FLOAT64"]

logger = logging.getLogger(__name__)

#: Relative precision of weights printed by MadGraph in LHE files (8 significant digits, ``%.7e``).
PRECISION_LHE = 5e-8
#: Relative precision of float32 weights (Delphes ``Weight.Weight``): half a unit in the last place.
PRECISION_FLOAT32 = float(np.finfo(np.float32).eps) / 2
#: Relative precision assumed for float64 weights computed by a simulator: a thousand units of rounding, since
#: the weights are themselves results of (cancelling) float64 arithmetic.
PRECISION_FLOAT64 = 1e3 * float(np.finfo(np.float64).eps)
#: Default warning threshold in units of the weights' precision.
DEFAULT_TOLERANCE = 100.0
#: Default gross relative deviation above which the closure check raises.
DEFAULT_GROSS = 0.01


class MorphingClosureError(ValueError):
    """The morphing disagrees grossly with stored weights of benchmarks outside the basis."""


@dataclass(frozen=True)
class ClosureRow:
    """Closure of one benchmark.

    Attributes
    ----------
    benchmark : str
    kind : {"closure", "fit residual"}
        ``"fit residual"`` for a basis point of a least-squares morphing.
    sigma_stored, sigma_morphed : float
        Cross sections in pb.
    sigma_deviation : float
        ``(sigma_morphed - sigma_stored) / |sigma_stored|``.
    max_deviation, p99_deviation : float
        Largest and 99th-percentile per-event deviation relative to the event's weight scale (module docstring).
    """

    benchmark: str
    kind: str
    sigma_stored: float
    sigma_morphed: float
    sigma_deviation: float
    max_deviation: float
    p99_deviation: float


@dataclass
class MorphingClosure:
    """Table of closure rows and the thresholds they were judged against.

    Attributes
    ----------
    rows : list of ClosureRow
    precision : float
        Relative precision of the stored weights.
    warning_threshold : float
        ``tolerance * precision``: deviations above it are reported as warnings.
    error_threshold : float
        Gross relative deviation above which :func:`check_morphing_closure` raises.
    """

    rows: list[ClosureRow] = field(default_factory=list)
    precision: float = PRECISION_FLOAT64
    warning_threshold: float = DEFAULT_TOLERANCE * PRECISION_FLOAT64
    error_threshold: float = DEFAULT_GROSS

    def status(self, row: ClosureRow) -> str:
        """``"ok"``, ``"WARNING"`` or ``"ERROR"`` for one row."""
        if abs(row.sigma_deviation) > self.error_threshold or row.p99_deviation > self.error_threshold:
            return "ERROR"
        if abs(row.sigma_deviation) > self.warning_threshold or row.max_deviation > self.warning_threshold:
            return "WARNING"
        return "ok"

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (``results.json``, event-file metadata)."""
        return {"precision": self.precision, "warning_threshold": self.warning_threshold,
                "error_threshold": self.error_threshold,
                "rows": [dict(asdict(r), status=self.status(r)) for r in self.rows]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MorphingClosure:
        """Inverse of :meth:`to_dict`."""
        rows = [ClosureRow(**{k: v for k, v in r.items() if k != "status"}) for r in d.get("rows", [])]
        return cls(rows, float(d["precision"]), float(d["warning_threshold"]), float(d["error_threshold"]))

    def __str__(self) -> str:
        if not self.rows:
            return "morphing closure: every benchmark is in the (exact) basis; nothing to compare"
        head = (f"{'benchmark':<18s} {'kind':<12s} {'sigma stored':>13s} {'sigma morphed':>13s} {'d sigma':>10s} "
                f"{'max/event':>10s} {'p99/event':>10s}  status")
        lines = [f"morphing closure (weight precision {self.precision:.2g}, warning above "
                 f"{self.warning_threshold:.2g}, error above {self.error_threshold:.2g}):", head]
        for r in self.rows:
            name = r.benchmark if len(r.benchmark) <= 18 else r.benchmark[:15] + "..."
            lines.append(f"{name:<18s} {r.kind:<12s} {r.sigma_stored:>13.6g} {r.sigma_morphed:>13.6g} "
                         f"{r.sigma_deviation:>10.2e} {r.max_deviation:>10.2e} {r.p99_deviation:>10.2e}  "
                         f"{self.status(r)}")
        return "\n".join(lines)


def weight_precision(events: Any) -> float:
    """Relative precision of an event set's weights.

    ``events.metadata["weight_precision"]`` when set, else the largest ``weight_precision`` of the samples the
    readers record in ``metadata["samples"]`` (LHE: :data:`PRECISION_LHE`; Delphes: float32 and the LHE digits),
    else :data:`PRECISION_FLOAT64`.
    """
    meta = getattr(events, "metadata", None) or {}
    if meta.get("weight_precision") is not None:
        return float(meta["weight_precision"])
    values = [float(s["weight_precision"]) for s in meta.get("samples") or []
              if isinstance(s, Mapping) and s.get("weight_precision") is not None]
    return max(values) if values else PRECISION_FLOAT64


def morphing_closure(events: Any, *, precision: float | None = None, tolerance: float = DEFAULT_TOLERANCE,
                     gross: float = DEFAULT_GROSS) -> MorphingClosure:
    """Compare the morphing with the stored weights of every benchmark outside the basis.

    Parameters
    ----------
    events : EventSet
        Events with a morpher; benchmarks outside ``events.morphing_basis`` are compared. With a least-squares
        morphing (``morpher.fit == "least_squares"``) the basis benchmarks are compared too (the fit residual).
    precision : float, optional
        Relative precision of the stored weights; default :func:`weight_precision`.
    tolerance : float
        Warning threshold in units of ``precision``.
    gross : float
        Relative deviation (of the cross section or the 99th percentile per event) counted as an error.

    Returns
    -------
    MorphingClosure
        Empty when the set has no morpher or no benchmark to compare.
    """
    prec = weight_precision(events) if precision is None else float(precision)
    if not (prec > 0 and math.isfinite(prec)) or not tolerance > 0 or not gross > 0:
        raise ValueError(f"precision, tolerance and gross must be positive, got {precision!r}, {tolerance!r}, "
                         f"{gross!r}")
    out = MorphingClosure([], prec, float(tolerance) * prec, float(gross))
    morpher = getattr(events, "morpher", None)
    if morpher is None or not events.n_events:
        return out
    basis = list(events.morphing_basis)
    least_squares = getattr(morpher, "fit", None) == "least_squares"
    names = [b for b in events.benchmark_names if b not in basis or least_squares]
    if not names:
        return out
    cols = [events.benchmark_index(b) for b in names]
    basis_w = np.asarray(events.weights)[:, [events.benchmark_index(b) for b in basis]]
    coeff = morpher.weights(events.benchmark_values[cols])  # (n_check, n_basis)
    for name, col, c in zip(names, cols, coeff, strict=True):
        stored = np.asarray(events.weights[:, col])
        morphed = basis_w @ c
        scale = np.maximum(np.abs(stored), np.abs(basis_w) @ np.abs(c))
        dev = np.divide(np.abs(morphed - stored), scale, out=np.zeros_like(scale), where=scale > 0)
        s_stored, s_morphed = float(stored.sum()), float(morphed.sum())
        s_scale = abs(s_stored) if s_stored != 0 else float(scale.sum())
        s_dev = (s_morphed - s_stored) / s_scale if s_scale > 0 else 0.0
        out.rows.append(ClosureRow(name, "fit residual" if name in basis else "closure", s_stored, s_morphed,
                                   float(s_dev), float(dev.max()), float(np.quantile(dev, 0.99))))
    return out


def check_morphing_closure(events: Any, *, precision: float | None = None, tolerance: float = DEFAULT_TOLERANCE,
                           gross: float = DEFAULT_GROSS, label: str = "") -> MorphingClosure:
    """:func:`morphing_closure`, logged; WARNING above the tolerance, :class:`MorphingClosureError` above ``gross``.

    Parameters
    ----------
    events, precision, tolerance, gross
        As in :func:`morphing_closure`.
    label : str
        Prefix of the messages (e.g. the file read).

    Returns
    -------
    MorphingClosure

    Raises
    ------
    MorphingClosureError
        If a benchmark's cross section or the 99th percentile of its per-event deviations exceeds ``gross``.
    """
    closure = morphing_closure(events, precision=precision, tolerance=tolerance, gross=gross)
    prefix = f"{label}: " if label else ""
    logger.info("%s%s", prefix, closure)
    bad = [r for r in closure.rows if closure.status(r) != "ok"]
    for r in bad:
        logger.warning("%smorphing %s of benchmark %r: cross section deviates by %.3g (relative), events by up to "
                       "%.3g (99th percentile %.3g) of their weight scale; the weights' precision is %.2g, so the "
                       "morphing does not describe these weights (is the process polynomial with these maximal "
                       "powers?)", prefix, r.kind, r.benchmark, r.sigma_deviation, r.max_deviation,
                       r.p99_deviation, closure.precision)
    gross_rows = [r for r in bad if closure.status(r) == "ERROR"]
    if gross_rows:
        worst = max(gross_rows, key=lambda r: max(abs(r.sigma_deviation), r.p99_deviation))
        raise MorphingClosureError(
            f"{prefix}morphing fails its closure test at {[r.benchmark for r in gross_rows]}: e.g. {worst.benchmark!r} "
            f"has a cross section of {worst.sigma_stored:.6g} pb stored but {worst.sigma_morphed:.6g} pb morphed "
            f"(relative deviation {worst.sigma_deviation:.3g}; 99th percentile per event {worst.p99_deviation:.3g}),"
            f" above the gross threshold {gross:.3g}. Check the parameters' max_power / morphing.max_overall_power "
            f"and the morphing basis, or raise the threshold (morphing.closure_error) if this is understood")
    return closure


def _grid(ranges: np.ndarray, max_points: int) -> np.ndarray:
    n_params = ranges.shape[0]
    n = max(3, int(math.floor(max_points ** (1.0 / n_params))))
    axes = [np.linspace(lo, hi, n) for lo, hi in ranges]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, n_params)


def negative_cross_sections(events: Any, *, ranges: Any = None, max_points: int = 1000,
                            precision: float | None = None, tolerance: float = DEFAULT_TOLERANCE,
                            max_event_block: int = 4_000_000) -> dict[str, Any]:
    """Scan a grid over the parameter ranges for negative morphed cross sections and event weights.

    A cross section counts as negative below ``-tolerance * precision * sum_b |w_b(theta) sigma_b|`` (beyond
    the rounding of a cancelling sum). Per-event weights are checked for the events whose stored weights are
    non-negative at every benchmark (so that NLO samples with genuinely negative weights are not flagged); the
    worst grid point and the fraction of its events with a negative weight are reported.

    Parameters
    ----------
    events : EventSet
        Events with a morpher.
    ranges : array-like, shape (n_parameters, 2), optional
        Default: the parameter space's ranges.
    max_points : int
        Grid size (the same number of points per parameter, at least 3).
    precision, tolerance
        As in :func:`morphing_closure`.
    max_event_block : int
        Events times grid points morphed at once.

    Returns
    -------
    dict
        ``{"n_points", "negative_points": [[...], ...], "min_cross_section", "worst_event_point",
        "worst_event_fraction"}``; a WARNING is logged naming the points when any is negative.
    """
    out: dict[str, Any] = {"n_points": 0, "negative_points": [], "min_cross_section": None,
                           "worst_event_point": None, "worst_event_fraction": 0.0}
    morpher = getattr(events, "morpher", None)
    if morpher is None or not events.n_events:
        return out
    prec = weight_precision(events) if precision is None else float(precision)
    rng = np.asarray(events.space.ranges if ranges is None else ranges, dtype=np.float64).reshape(-1, 2)
    grid = _grid(rng, int(max_points))
    coeff = morpher.weights(grid)  # (n_grid, n_basis)
    basis_idx = [events.benchmark_index(b) for b in events.morphing_basis]
    basis_w = np.asarray(events.weights)[:, basis_idx]
    sigma_b = basis_w.sum(axis=0)
    sigma = coeff @ sigma_b
    limit = tolerance * prec * (np.abs(coeff) @ np.abs(sigma_b))
    negative = sigma < -limit
    out.update(n_points=int(grid.shape[0]), min_cross_section=float(sigma.min()),
               negative_points=grid[negative].tolist())
    if np.any(negative):
        order = np.argsort(sigma[negative])[:5]
        shown = ", ".join(f"{np.round(p, 6).tolist()}: {s:.4g} pb" for p, s in
                          zip(grid[negative][order], sigma[negative][order], strict=True))
        logger.warning("morphed cross section is negative at %d of %d grid points over the parameter ranges %s "
                       "(most negative: %s): the morphing polynomial leaves the physical region; narrow the ranges "
                       "or check the maximal powers", int(negative.sum()), grid.shape[0], rng.tolist(), shown)
    positive = np.all(np.asarray(events.weights) >= 0, axis=1)
    if np.any(positive):
        w_pos = basis_w[positive]
        block = max(1, int(max_event_block) // max(w_pos.shape[0], 1))
        worst, worst_at = 0.0, None
        for i in range(0, grid.shape[0], block):
            c = coeff[i:i + block]
            w = w_pos @ c.T  # (n_events, block)
            tol = tolerance * prec * (np.abs(w_pos) @ np.abs(c).T)
            frac = np.mean(w < -tol, axis=0)
            j = int(np.argmax(frac))
            if frac[j] > worst:
                worst, worst_at = float(frac[j]), grid[i + j].tolist()
        out.update(worst_event_point=worst_at, worst_event_fraction=worst)
        if worst > 0:
            logger.warning("morphed event weights are negative for %.3g%% of the events (all positive at every "
                           "benchmark) at theta=%s, the worst of %d grid points over the parameter ranges",
                           100 * worst, np.round(worst_at, 6).tolist(), grid.shape[0])
    return out
