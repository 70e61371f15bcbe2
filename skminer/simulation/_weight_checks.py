"""Integrity checks of the per-event weights an event-file reader collects, before they become an EventSet.

- every weight is finite;
- every weight is plausible relative to the file's own scale: a weight more than :data:`MAX_WEIGHT_FACTOR` times
  the mean absolute nominal weight of the file (of the chunk of events read together) is a corrupt or mis-scaled
  weight, not physics (a weight of 1e200
  next to nominal weights of 1e-3 pb made the Fisher information inf);
- the weights of every benchmark are not all zero and not all negative (its cross section would be 0 or
  negative); a non-positive sum of weights of mixed signs is a warning.

Errors name the file, the event (1-based, in file order) and the weight id.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["MAX_WEIGHT_FACTOR", "BenchmarkWeightStats", "check_event_weights"]

logger = logging.getLogger("skminer.simulation")

#: Largest plausible ratio of one weight to the mean absolute nominal weight of its file. Reweighting to a
#: benchmark far from the generation point gives factors of 1e3-1e5 in the tails of distributions; 1e8 leaves a
#: wide margin and still catches corrupt values long before sums of squared weights overflow.
MAX_WEIGHT_FACTOR = 1e8


def check_event_weights(path: Path, nominal: np.ndarray, weights: Mapping[str, np.ndarray],
                        nominal_label: str = "nominal", first_event: int = 1) -> None:
    """Refuse non-finite or implausibly large weights.

    Parameters
    ----------
    path : Path
        The event file, for messages.
    nominal : ndarray, shape (n_events,)
        The nominal event weights as stored in the file.
    weights : mapping of str to ndarray, shape (n_events,)
        Further weights by id.
    nominal_label : str
        How the nominal weight is called in messages.
    first_event : int
        Number of the first event in the file (for chunks); the scale is that of these events.

    Raises
    ------
    ValueError
        Naming the file, the first offending event, the weight id, its value and the file's scale.
    """
    arrays = {nominal_label: np.asarray(nominal, dtype=np.float64),
              **{k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}}
    for label, arr in arrays.items():
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            raise ValueError(f"{path}: event {int(bad[0]) + first_event} has a non-finite weight {arr[bad[0]]!r} "
                             f"(weight {label!r}; {bad.size} events affected)")
    scale = float(np.mean(np.abs(arrays[nominal_label]))) if arrays[nominal_label].size else 0.0
    if scale == 0.0:
        return  # no scale to compare with; all-zero columns are reported by BenchmarkWeightStats
    for label, arr in arrays.items():
        factor = np.abs(arr) / scale
        bad = np.flatnonzero(factor > MAX_WEIGHT_FACTOR)
        if bad.size:
            k = int(bad[0])
            raise ValueError(f"{path}: event {k + first_event} has weight {label!r} = {arr[k]:.4g}, {factor[k]:.3g} "
                             f"times the mean absolute nominal weight of the file ({scale:.4g}); a factor above "
                             f"{MAX_WEIGHT_FACTOR:.0e} is not a plausible reweighting ({bad.size} events affected)")


class BenchmarkWeightStats:
    """Running summary of the weight columns of the benchmarks over the chunks of a file, for
    :meth:`check` (all zero / all negative) without keeping the weights of every event."""

    def __init__(self) -> None:
        self.n = 0
        self.any_nonzero: np.ndarray | None = None
        self.any_positive: np.ndarray | None = None
        self.sums: np.ndarray | None = None
        self.n_negative: np.ndarray | None = None

    def update(self, matrix: np.ndarray) -> None:
        """Add the weights ``matrix`` of shape (n_events, n_benchmarks) of one chunk."""
        if self.sums is None:
            k = matrix.shape[1]
            self.any_nonzero, self.any_positive = np.zeros(k, bool), np.zeros(k, bool)
            self.sums, self.n_negative = np.zeros(k), np.zeros(k, np.int64)
        self.n += matrix.shape[0]
        self.any_nonzero |= np.any(matrix != 0, axis=0)
        self.any_positive |= np.any(matrix > 0, axis=0)
        self.sums += matrix.sum(axis=0)
        self.n_negative += np.sum(matrix < 0, axis=0)

    def check(self, path: Path, benchmarks: Sequence[str], weight_ids: Sequence[str]) -> None:
        """Refuse benchmarks whose weights are all zero or all negative; warn if their sum is not positive.

        Raises
        ------
        ValueError
            Naming the file, the benchmark and its weight id.
        """
        if self.sums is None:
            return
        for k, (bench, wid) in enumerate(zip(benchmarks, weight_ids, strict=True)):
            what = f"{path}: the weights of benchmark {bench!r} (weight {wid!r})"
            if not self.any_nonzero[k]:
                raise ValueError(f"{what} are 0 in all {self.n} events: its cross section would be 0")
            if not self.any_positive[k]:
                raise ValueError(f"{what} are negative or 0 in all {self.n} events (sum {self.sums[k]:.4g}): its "
                                 "cross section would be negative")
            if self.sums[k] <= 0:
                logger.warning("%s sum to %.4g <= 0 (%d of %d events negative): the estimated cross section is not "
                               "positive", what, self.sums[k], int(self.n_negative[k]), self.n)
