"""Event selections: cuts as boolean expressions, trigger-like alternatives and a logged cut flow.

A :class:`Cut` is an expression in the language of :mod:`skminer.simulation.observables` that evaluates to a
boolean per event (``"j[0].pt > 30"``, ``"njets >= 2"``, ``"abs(j[0].eta - j[1].eta) > 3.5"``) or a callable
``f(objects) -> bool array``. An :class:`AnyOf` passes when any of its conditions passes (a trigger menu such as
"one lepton above 25 GeV or two photons above 20 GeV"). :func:`apply_cuts` combines cuts with AND in the given order
and records a :class:`CutFlow`: the number of events and the summed weight that survive each step.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .observables import EventObjects, Expression, ExpressionError, parse_expression

__all__ = ["AnyOf", "Cut", "CutFlow", "CutFlowStep", "DroppedEvents", "apply_cuts", "as_cuts", "warn_if_dropped",
           "DROP_WARNING_FRACTION"]

logger = logging.getLogger(__name__)


class Cut:
    """A selection requirement.

    Parameters
    ----------
    definition : str or callable
        Boolean expression, or ``f(objects: EventObjects) -> array of bool (n_events,)``.
    name : str, optional
        Label in the cut flow (default: the expression text).
    pass_if_missing : bool
        Outcome for events in which the expression refers to a missing object (e.g. ``j[1].pt > 30`` in a one-jet
        event). Default ``False``: the event fails.
    """

    def __init__(self, definition: str | Expression | Callable[[EventObjects], Any], name: str | None = None,
                 pass_if_missing: bool = False) -> None:
        self.pass_if_missing = bool(pass_if_missing)
        if isinstance(definition, (str, Expression)):
            self.expression: Expression | None = parse_expression(definition)
            self.function: Callable[[EventObjects], Any] | None = None
            self.name = name or self.expression.source
        elif callable(definition):
            self.expression = None
            self.function = definition
            self.name = name or getattr(definition, "__name__", repr(definition))
        else:
            raise TypeError(f"cut definition must be a string expression or a callable, got "
                            f"{type(definition).__name__}")

    def undefined(self, objects: EventObjects) -> np.ndarray:
        """Boolean mask ``(n_events,)`` of events where the expression refers to a missing object.

        Their outcome is ``pass_if_missing``; callables and :class:`AnyOf` report none.
        """
        if self.expression is None:
            return np.zeros(objects.n_events, dtype=bool)
        try:
            return np.isnan(self.expression.evaluate(objects, default=math.nan, dtype=np.float64))
        except ExpressionError as err:
            raise ExpressionError(f"cut {self.name!r}: {err}") from None

    def evaluate(self, objects: EventObjects) -> np.ndarray:
        """Boolean mask ``(n_events,)`` of passing events."""
        if self.expression is not None:
            try:
                return self.expression.evaluate(objects, default=float(self.pass_if_missing), dtype=bool)
            except ExpressionError as err:
                raise ExpressionError(f"cut {self.name!r}: {err}") from None
        try:
            raw = self.function(objects)  # type: ignore[misc]
        except Exception as err:
            raise ValueError(f"cut {self.name!r}: callable failed: {type(err).__name__}: {err}") from err
        out = np.asarray(raw)
        if out.shape != (objects.n_events,):
            raise ValueError(f"cut {self.name!r}: callable returned shape {out.shape}, expected "
                             f"({objects.n_events},)")
        if out.dtype != bool:
            raise ValueError(f"cut {self.name!r}: callable must return booleans, got dtype {out.dtype}")
        return out

    def __repr__(self) -> str:
        return f"Cut({self.name!r})"


class AnyOf(Cut):
    """Passes when at least one of several conditions passes (trigger-like OR).

    Parameters
    ----------
    conditions : sequence of (str, callable or Cut)
    name : str, optional
        Label in the cut flow (default: ``"any of [...]"``).
    """

    def __init__(self, conditions: Sequence[str | Expression | Callable[[EventObjects], Any] | Cut],
                 name: str | None = None) -> None:
        self.conditions = [c if isinstance(c, Cut) else Cut(c) for c in conditions]
        if not self.conditions:
            raise ValueError("AnyOf needs at least one condition")
        self.expression = None
        self.function = None
        self.pass_if_missing = False
        self.name = name or "any of [" + ", ".join(c.name for c in self.conditions) + "]"

    def evaluate(self, objects: EventObjects) -> np.ndarray:
        """Boolean mask: OR of the conditions."""
        out = np.zeros(objects.n_events, dtype=bool)
        for c in self.conditions:
            out |= c.evaluate(objects)
        return out


def as_cuts(cuts: Iterable[str | Expression | Callable[[EventObjects], Any] | Cut] | None) -> list[Cut]:
    """Normalise strings, callables and :class:`Cut` objects to a list of cuts."""
    if cuts is None:
        return []
    if isinstance(cuts, (str, Cut)):
        cuts = [cuts]
    return [c if isinstance(c, Cut) else Cut(c) for c in cuts]


@dataclass(frozen=True)
class CutFlowStep:
    """One step of a cut flow: events and summed weight that pass all cuts up to this one."""

    name: str
    n_events: int
    sum_weights: float
    efficiency: float
    cumulative_efficiency: float


@dataclass
class CutFlow:
    """Numbers of events and summed weights surviving each selection step.

    Attributes
    ----------
    n_initial : int
    sum_weights_initial : float
    steps : list of CutFlowStep
        ``efficiency`` is relative to the previous step, ``cumulative_efficiency`` to the start; both use the
        weights when given (as fractions of the cross section), else the event counts.
    """

    n_initial: int
    sum_weights_initial: float
    steps: list[CutFlowStep] = field(default_factory=list)

    def add(self, name: str, mask: np.ndarray, weights: np.ndarray | None) -> None:
        """Append a step for events passing ``mask`` (cumulative mask of all cuts so far)."""
        n = int(mask.sum())
        s = float(weights[mask].sum()) if weights is not None else float(n)
        prev = self.steps[-1].sum_weights if self.steps else self.sum_weights_initial
        eff = s / prev if prev != 0 else 0.0
        cum = s / self.sum_weights_initial if self.sum_weights_initial != 0 else 0.0
        self.steps.append(CutFlowStep(name, n, s, eff, cum))

    @property
    def n_passed(self) -> int:
        """Events passing all steps."""
        return self.steps[-1].n_events if self.steps else self.n_initial

    @property
    def efficiency(self) -> float:
        """Overall (weighted) efficiency."""
        return self.steps[-1].cumulative_efficiency if self.steps else 1.0

    def merge(self, other: CutFlow) -> CutFlow:
        """Add the counts of another cut flow with the same steps (e.g. from another file)."""
        if [s.name for s in self.steps] != [s.name for s in other.steps]:
            raise ValueError("cannot merge cut flows with different steps")
        out = CutFlow(self.n_initial + other.n_initial, self.sum_weights_initial + other.sum_weights_initial)
        prev = out.sum_weights_initial
        for a, b in zip(self.steps, other.steps, strict=True):
            s = a.sum_weights + b.sum_weights
            out.steps.append(CutFlowStep(a.name, a.n_events + b.n_events, s, s / prev if prev else 0.0,
                                         s / out.sum_weights_initial if out.sum_weights_initial else 0.0))
            prev = s
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (stored in the EventSet metadata by the readers)."""
        return {"n_initial": self.n_initial, "sum_weights_initial": self.sum_weights_initial,
                "steps": [asdict(s) for s in self.steps]}

    def __str__(self) -> str:
        lines = [f"{'step':<40s} {'events':>9s} {'sum w':>12s} {'eff':>8s} {'cum eff':>8s}",
                 f"{'(initial)':<40s} {self.n_initial:>9d} {self.sum_weights_initial:>12.5g} {1:>8.4f} {1:>8.4f}"]
        for s in self.steps:
            name = s.name if len(s.name) <= 40 else s.name[:37] + "..."
            lines.append(f"{name:<40s} {s.n_events:>9d} {s.sum_weights:>12.5g} {s.efficiency:>8.4f} "
                         f"{s.cumulative_efficiency:>8.4f}")
        return "\n".join(lines)

    def log(self, log: logging.Logger | None = None, level: int = logging.INFO, label: str = "") -> None:
        """Write the table to a logger."""
        (log or logger).log(level, "cut flow%s:\n%s", f" ({label})" if label else "", self)


class DroppedEvents:
    """Events lost to cuts and undefined observables, added up over the chunks of a file and reported once.

    Readers that stream a file in chunks pass one to :func:`apply_cuts` so that a cut is reported per file (one
    message with the file's counts), not once per chunk.
    """

    def __init__(self) -> None:
        self.counts: dict[str, list[Any]] = {}

    def add(self, what: str, n_dropped: int, n_total: int, reason: str = "", n_missing: int = 0) -> None:
        """Count ``n_dropped`` of ``n_total`` events lost to ``what`` (``n_missing`` only for lacking an object)."""
        entry = self.counts.setdefault(what, [0, 0, 0, reason])
        entry[0] += n_dropped
        entry[1] += n_total
        entry[2] += n_missing

    def report(self, label: str = "") -> None:
        """:func:`warn_if_dropped` once per cut / observable with the summed counts."""
        for what, (n_dropped, n_total, n_missing, reason) in self.counts.items():
            if n_missing:
                reason = _missing_reason(n_missing)
            warn_if_dropped(what, n_dropped, n_total, reason, label=label)

    def describe(self) -> str:
        """What removed events, one clause per cut / observable that removed any, joined by ``"; "`` (empty if none):
        e.g. ``"observable 'a[5].pt' is undefined in 5000 of 5000 events (give it a default, ...)"``."""
        parts = []
        for what, (n_dropped, n_total, n_missing, reason) in self.counts.items():
            if n_dropped <= 0:
                continue
            if n_missing:
                reason = _missing_reason(n_missing)
            verb = "is undefined in" if what.startswith("observable ") else "removes"
            if what.startswith("observable ") and reason.startswith("where it is undefined "):
                reason = reason[len("where it is undefined "):]
            parts.append(f"{what} {verb} {n_dropped} of {n_total} events{f' {reason}' if reason else ''}")
        return "; ".join(parts)


def _missing_reason(n_missing: int) -> str:
    return (f"({n_missing} of them only because it refers to an object they lack; Cut(..., pass_if_missing=True) "
            "keeps those)")


def apply_cuts(cuts: Sequence[Cut | str | Callable[[EventObjects], Any]], objects: EventObjects,
               weights: np.ndarray | None = None, *, dropped: DroppedEvents | None = None
               ) -> tuple[np.ndarray, CutFlow]:
    """Evaluate cuts (AND, in order) and record the cut flow.

    Parameters
    ----------
    cuts : sequence of Cut, str or callable
    objects : EventObjects
    weights : ndarray, shape (n_events,), optional
        Weights for the weighted efficiencies (e.g. the nominal weight).
    dropped : DroppedEvents, optional
        Count the events each cut removes there (reported later, e.g. once per file) instead of logging them now.

    Returns
    -------
    mask : ndarray of bool, shape (n_events,)
    cutflow : CutFlow
    """
    cut_list = as_cuts(cuts)
    w = None if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if w is not None and w.shape != (objects.n_events,):
        raise ValueError(f"weights must have shape ({objects.n_events},), got {w.shape}")
    flow = CutFlow(objects.n_events, float(w.sum()) if w is not None else float(objects.n_events))
    mask = np.ones(objects.n_events, dtype=bool)
    for cut in cut_list:
        passed = cut.evaluate(objects)
        lost = mask & ~passed
        if lost.any():  # every cut says what it removes; above a few percent as a WARNING
            missing = 0 if cut.pass_if_missing else int(np.sum(lost & cut.undefined(objects)))
            if dropped is not None:
                dropped.add(f"cut {cut.name!r}", int(lost.sum()), int(mask.sum()), n_missing=missing)
            else:
                warn_if_dropped(f"cut {cut.name!r}", int(lost.sum()), int(mask.sum()),
                                _missing_reason(missing) if missing else "")
        elif dropped is not None:
            dropped.add(f"cut {cut.name!r}", 0, int(mask.sum()))
        mask &= passed
        flow.add(cut.name, mask, w)
    return mask, flow


#: Fraction of the events above which losing events to a cut or an undefined observable is a WARNING rather than
#: an INFO message (the cut flow, logged at INFO, has every step).
DROP_WARNING_FRACTION = 0.02


def warn_if_dropped(what: str, n_dropped: int, n_total: int, reason: str, label: str = "") -> None:
    """Log the events lost to ``what``: a WARNING above :data:`DROP_WARNING_FRACTION` of ``n_total``, else INFO."""
    if n_dropped <= 0:
        return
    fraction = n_dropped / max(n_total, 1)
    level = logging.WARNING if fraction > DROP_WARNING_FRACTION else logging.INFO
    logger.log(level, "%s%s removes %d of %d events (%.3g%%)%s", f"{label}: " if label else "", what, n_dropped,
               n_total, 100.0 * fraction, f" {reason}" if reason else "")
