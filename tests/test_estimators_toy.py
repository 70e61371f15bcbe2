"""Checks of the estimator tests' toy (:mod:`toy_data`): its joint quantities are unbiased and the labels do not
leak through theta."""

from __future__ import annotations

import numpy as np
import pytest
from toy_data import double_ratio_sample, ratio_sample, true_log_r, true_score


# ---------------------------------------------------------------------------------------------- the toy's truth
def test_toy_joint_quantities_are_unbiased():
    """E[r_xz | x, y=1] = r(x) and E[t_xz | x, y=0] = t(x), checked in bins of x."""
    d = ratio_sample(200_000, seed=1)
    x, y, th = d["X"][:, 0], d["y"], d["theta"][:, 0]
    sel = (np.abs(th - 0.8) < 0.05)
    # joint ratio averaged over z at fixed x (y=1 events) is the marginal ratio
    m1 = sel & (y == 1) & (np.abs(x - 0.5) < 0.1)
    assert m1.sum() > 500
    assert np.mean(d["r_xz"][m1]) == pytest.approx(np.exp(true_log_r(np.array([0.5]), 0.8))[0], rel=0.05)
    m0 = sel & (y == 0) & (np.abs(x - 1.5) < 0.1)
    assert np.mean(d["t_xz"][m0, 0]) == pytest.approx(true_score(np.array([1.5]), 0.8)[0], abs=0.08)


def test_toy_label_does_not_leak_through_theta():
    d = ratio_sample(20_000, seed=2)
    th0 = np.sort(d["theta"][d["y"] == 0, 0])
    th1 = np.sort(d["theta"][d["y"] == 1, 0])
    np.testing.assert_array_equal(th0, th1)
    dd = double_ratio_sample(20_000, seed=3)
    np.testing.assert_array_equal(np.sort(dd["theta"][dd["y"] == 0], axis=0), np.sort(dd["theta"][dd["y"] == 1],
                                                                                        axis=0))
