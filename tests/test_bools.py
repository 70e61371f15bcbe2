"""A bool is never a number: real-valued hyperparameter constraints and the scalar arguments of the inference
refuse ``True`` (``float(True) == 1``: ``lr=True`` trained at lr 1, ``log_r_clip=True`` clipped log r at 1).
"""

from __future__ import annotations

import numpy as np
import pytest

from skminer.estimators import ALICES, CARL, NDE, SALLINO, SALLY, SCANDAL, DoubleCARL
from skminer.estimators._constraints import RealInterval
from skminer.inference import AsymptoticLimits, FisherInformation, theta_grid
from skminer.inference.fisher import distance_for_cl
from skminer.inference.intervals import interval_1d
from skminer.inference.limits import p_values_from_q
from skminer.simulation.toy import ToySimulator


def test_every_real_constraint_of_the_estimators_refuses_bools():
    from sklearn.utils._param_validation import Interval

    for cls in (SALLY, SALLINO, CARL, ALICES, NDE, SCANDAL, DoubleCARL):
        for name, constraints in cls._parameter_constraints.items():
            for c in constraints:
                if isinstance(c, Interval) and c.type is not int and c.type.__name__ == "Real":
                    assert isinstance(c, RealInterval), (cls.__name__, name)
    assert RealInterval(0, None, closed="neither").is_satisfied_by(0.5)
    assert RealInterval(0, None, closed="neither").is_satisfied_by(np.float32(2))


@pytest.fixture(scope="module")
def events():
    return ToySimulator().simulate(500, random_state=1)


def test_inference_scalars_refuse_bools(events):
    fisher = FisherInformation(events)
    with pytest.raises(TypeError, match="luminosity must be a real number, not a bool"):
        fisher.histogram_information([0.0, 0.0], True, 0, bins=5)
    with pytest.raises(TypeError, match="bins .*not a bool"):
        fisher.histogram_information([0.0, 0.0], 10.0, 0, bins=True)
    with pytest.raises(TypeError, match="bins must be an int, bin edges or a histogram axis, not a bool"):
        fisher.information_distribution([0.0, 0.0], 10.0, 0, bins=True)
    for kwargs, name in (({"n_asimov": np.True_}, "n_asimov"), ({"min_simulated": True}, "min_simulated"),
                         ({"min_expected": True}, "min_expected"), ({"max_batch_size": True}, "max_batch_size")):
        with pytest.raises(TypeError, match=f"{name} must be an? (real number|integer >= \\d), not a bool"):
            AsymptoticLimits(events, 10.0, **kwargs)
    with pytest.raises(TypeError, match="luminosity must be a real number, not a bool"):
        AsymptoticLimits(events, True)
    limits = AsymptoticLimits(events, 10.0)
    grid = theta_grid([[-1.0, 1.0], [-1.0, 1.0]], 3)
    with pytest.raises(TypeError, match="bins .*not a bool"):
        limits.expected_limits([0.0, 0.0], grid, observables=[0], bins=True)
    with pytest.raises(TypeError, match="n_dof must be an integer >= 1, not a bool"):
        limits.expected_limits([0.0, 0.0], grid, observables=[0], bins=3, n_dof=True)
    for call in (lambda: distance_for_cl(0.68, True), lambda: p_values_from_q(np.ones(3), np.True_),
                 lambda: interval_1d(np.linspace(-1, 1, 5), np.linspace(-1, 1, 5) ** 2, 0.68, n_dof=True)):
        with pytest.raises(TypeError, match="n_dof must be an integer >= 1, not a bool"):
            call()
    # numbers still work, numpy integers and integral floats included
    assert AsymptoticLimits(events, np.float32(10.0), n_asimov=np.int64(5), min_simulated=0.0).n_asimov == 5
    assert distance_for_cl(0.68, np.int64(2)) == pytest.approx(distance_for_cl(0.68, 2.0))
