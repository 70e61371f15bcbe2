"""Confidence intervals, profiles and contours from grid scans (skminer.inference.intervals)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from skminer.inference import LimitResult, theta_grid
from skminer.inference.intervals import contours_2d, describe_limits, interval_1d, profile


def test_interval_of_a_parabola_is_exact_between_grid_points():
    x = np.linspace(-1, 1, 21)
    q = ((x - 0.33) / 0.2) ** 2
    (iv,) = interval_1d(x, q, 0.68, n_dof=1)
    half = 0.2 * np.sqrt(stats.chi2.ppf(0.68, 1))
    assert iv["lower"] == pytest.approx(0.33 - half, abs=1e-9) and iv["upper"] == pytest.approx(0.33 + half, abs=1e-9)
    assert not iv["lower_open"] and not iv["upper_open"]
    # a wide region runs into the grid edge: open there
    (wide,) = interval_1d(x, ((x - 0.8) / 0.5) ** 2, 0.95)
    assert wide["upper"] == 1.0 and wide["upper_open"] and not wide["lower_open"]
    # two minima: two disjoint intervals
    two = interval_1d(x, np.minimum((x - 0.5) ** 2, (x + 0.5) ** 2) / 0.01, 0.68)
    assert len(two) == 2 and two[0]["upper"] < two[1]["lower"]


def test_contour_area_and_profiles_of_a_gaussian():
    grid = theta_grid([[-1, 1], [-1, 1]], 21)
    sx, sy = 0.2, 0.3
    q = (grid[:, 0] / sx) ** 2 + ((grid[:, 1] - 0.1) / sy) ** 2
    level = stats.chi2.ppf(0.68, 2)
    c = contours_2d(grid, q, 0.68)
    assert c["closed"] and len(c["paths"]) == 1
    assert c["area"] == pytest.approx(np.pi * sx * sy * level, rel=0.01)
    path = np.asarray(c["paths"][0])
    q_path = (path[:, 0] / sx) ** 2 + ((path[:, 1] - 0.1) / sy) ** 2
    np.testing.assert_allclose(q_path, level, rtol=0.01)  # finer than the 0.1 grid spacing would give
    values, prof = profile(grid, q, 1)
    np.testing.assert_allclose(prof, ((values - 0.1) / sy) ** 2 - 0.0, atol=1e-12)
    res = LimitResult.from_log_likelihood(grid, -0.5 * q)
    d = describe_limits(res, [0.68, 0.95], ["a", "b"])
    assert set(d) == {"best_fit", "best_fit_on_grid_edge", "contours", "profiles"}
    assert d["best_fit_on_grid_edge"] == [] and set(d["contours"]) == {"0.68", "0.95"}
    (iv,) = d["profiles"]["b"]["intervals"]["0.68"]
    half = sy * np.sqrt(stats.chi2.ppf(0.68, 1))
    assert iv["lower"] == pytest.approx(0.1 - half, abs=1e-9) and iv["upper"] == pytest.approx(0.1 + half, abs=1e-9)
    assert d["contours"]["0.95"]["area"] > d["contours"]["0.68"]["area"]
