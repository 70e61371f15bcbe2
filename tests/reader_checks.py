"""Checks shared by the reader tests."""

from __future__ import annotations

import numpy as np


def assert_same_cutflows(a: dict, b: dict) -> None:
    """Cut flows (``to_dict`` form, by file) of a chunked read: the same counts; weight sums added chunk by chunk
    agree to rounding."""
    assert a.keys() == b.keys()
    for key in a:
        assert a[key]["n_initial"] == b[key]["n_initial"]
        assert [s["n_events"] for s in a[key]["steps"]] == [s["n_events"] for s in b[key]["steps"]]
        np.testing.assert_allclose([s["sum_weights"] for s in a[key]["steps"]],
                                   [s["sum_weights"] for s in b[key]["steps"]], rtol=1e-12)
