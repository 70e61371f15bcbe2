"""Integer arguments go through skminer._scalars.as_count (numpy bools refused, numpy ints accepted) and the
information distribution takes a hist axis as bins, like the histogram code."""

from __future__ import annotations

import numpy as np
import pytest

from skminer.augmentation import LocalScoreSampler, RatioSampler, UniformPrior
from skminer.inference import FisherInformation
from skminer.simulation.toy import ToySimulator
from skminer.threads import default_threads, limit_threads


@pytest.fixture(scope="module")
def events():
    return ToySimulator().simulate(600, random_state=1)


def test_counts_refuse_numpy_bools_and_accept_numpy_ints(events):
    """The copied checks tested isinstance(x, bool), which np.True_ is not: np.True_ became 1 sample / 1 point."""
    with pytest.raises(TypeError, match="n_samples must be an integer >= 1, not a bool"):
        LocalScoreSampler().sample(events, np.True_)
    with pytest.raises(TypeError, match="n_thetas must be an integer >= 1, not a bool"):
        RatioSampler(n_thetas=np.True_).sample(events, 10)
    with pytest.raises(TypeError, match="n must be an integer >= 0, not a bool"):
        UniformPrior([[0.0, 1.0]]).sample(np.True_)
    with pytest.raises(ValueError, match=r"n_samples must be an integer >= 1, got 2\.5"):
        LocalScoreSampler().sample(events, 2.5)
    assert len(LocalScoreSampler().sample(events, np.int64(10), random_state=0).x) == 10
    assert UniformPrior([[0.0, 1.0]]).sample(np.int64(0)).shape == (0, 1)
    # thread counts: numpy ints from a config or a CPU computation are counts too; bools are not
    assert default_threads(np.int64(1)) >= 1
    with limit_threads(np.int64(1)) as n:
        assert n == 1
    with pytest.raises(TypeError, match="n_workers must be an integer >= 1, not a bool"):
        default_threads(True)
    with pytest.raises(TypeError, match="n_threads must be an integer >= 1, not a bool"):
        with limit_threads(np.True_):
            pass


def test_flow_sample_count():
    from skminer.estimators import NDE

    rng = np.random.default_rng(0)
    theta = rng.uniform(-1, 1, size=(200, 1))
    nde = NDE(hidden_layer_sizes=(4,), transforms=1, max_epochs=1, random_state=0, validation_fraction=0.0)
    nde.fit(theta + rng.normal(size=(200, 1)), theta=theta)
    assert nde.sample(np.int64(3), [0.0], random_state=0).shape == (3, 1)
    assert nde.sample(0, [0.0]).shape == (0, 1)
    with pytest.raises(TypeError, match="n_samples must be an integer >= 0, not a bool"):
        nde.sample(np.True_, [0.0])


def test_information_distribution_takes_a_hist_axis(events):
    hist = pytest.importorskip("hist")
    fisher = FisherInformation(events)
    edges = np.linspace(-2.0, 2.0, 6)
    expected = fisher.information_distribution([0.0, 0.0], 10.0, "x1", bins=edges)
    by_axis = fisher.information_distribution([0.0, 0.0], 10.0, "x1", bins=hist.axis.Regular(5, -2.0, 2.0))
    np.testing.assert_allclose(by_axis.edges, expected.edges, rtol=0, atol=1e-12)
    np.testing.assert_allclose(by_axis.full, expected.full, rtol=1e-12)
    with pytest.raises(TypeError, match="bins must be an int, bin edges or a histogram axis, not a bool"):
        fisher.information_distribution([0.0, 0.0], 10.0, "x1", bins=True)
