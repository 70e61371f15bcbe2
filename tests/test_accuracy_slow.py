"""Seed-averaged accuracy of every method with its defaults, against the exact likelihood of the built-in toy.

Runs ``benchmarks/bench_accuracy.py`` at its ``--quick`` size (30k training samples, 12 epochs) with the
estimators' defaults and pins each method's errors below thresholds set from the measured run recorded in that
benchmark's docstring (about 1.5 times the measured seed average, so a regression of the training defaults
fails while seed noise does not). Long: ``pytest -m slow tests/test_accuracy_slow.py``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_accuracy.py"
_spec = importlib.util.spec_from_file_location("bench_accuracy", _PATH)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

SEEDS = (0, 1)
#: method -> {metric: threshold}, from the quick ``defaults`` runs in the benchmark's docstring: 1.5 times the
#: two-seed mean for SALLY and ALICES (measured on seeds 0 and 1), twice the seed-0 value for the others (only
#: seed 0 was measured for them, so the margin also covers the seed spread, about 30% for ALICES).
THRESHOLDS: dict[str, dict[str, float]] = {
    "sally": {"score_mse": 0.03, "info_err": 0.065},
    "sallino": {"logr_mse": 0.24, "q_rms": 1.45},
    "carl": {"logr_mse": 0.14, "mean_bias": 0.095, "q_rms": 0.66},
    "rolr": {"logr_mse": 0.14, "mean_bias": 0.072, "q_rms": 1.35},
    "alice": {"logr_mse": 0.055, "mean_bias": 0.032, "q_rms": 1.0},
    "cascal": {"logr_mse": 0.053, "mean_bias": 0.035, "q_rms": 0.52, "info_err": 0.32},
    "rascal": {"logr_mse": 0.095, "mean_bias": 0.064, "q_rms": 1.85, "info_err": 0.61},
    "alices": {"logr_mse": 0.025, "mean_bias": 0.025, "q_rms": 0.45, "info_err": 0.23},
    "nde": {"logr_mse": 0.18, "mean_bias": 0.094, "q_rms": 2.2},
}


@pytest.fixture(scope="module")
def runs():
    sim = bench.ToySimulator()
    out = []
    for seed in SEEDS:
        data = bench.make_data(sim, bench.SIZES["quick"], seed)
        out.append((seed, data, bench.Truth(sim, data["test_x"])))
    return out


@pytest.mark.parametrize("method", sorted(THRESHOLDS))
def test_seed_averaged_error_stays_below_the_measured_threshold(runs, method):
    results = []
    for seed, data, truth in runs:
        params = bench.estimator_params(method, "defaults", True, {}, seed)
        pred = bench.run_skminer(method, data, params)
        results.append(truth.metrics(pred["score"], pred["log_r"]))
    for metric, threshold in THRESHOLDS[method].items():
        mean = float(np.mean([r[metric] for r in results]))
        assert mean < threshold, (method, metric, mean, threshold)
