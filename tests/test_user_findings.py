"""Regressions found by a new user trying skminer (one test per finding, each failing before its fix)."""

from __future__ import annotations

import pytest

from skminer.config import ConfigError, load_config


def test_duplicate_yaml_key_is_refused_naming_it(tmp_path):
    # PyYAML keeps the last of two equal keys silently: the analysis would run with seed 2 and method carl
    # although the file also says seed 1.
    path = tmp_path / "analysis.yaml"
    path.write_text("seed: 1\ntraining:\n  method: carl\nseed: 2\n")
    with pytest.raises(ConfigError, match=r"(?s)analysis\.yaml.*duplicate key 'seed' \(first at line 1\)"):
        load_config(path)


def test_duplicate_nested_yaml_key_is_refused(tmp_path):
    path = tmp_path / "analysis.yaml"
    path.write_text("training:\n  method: carl\n  params: {max_epochs: 2, max_epochs: 3}\n")
    with pytest.raises(ConfigError, match="duplicate key 'max_epochs'"):
        load_config(path)


def test_merge_key_may_still_be_overridden(tmp_path):
    # YAML merge keys ("<<: *base") are meant to be overridden by explicit keys: not a duplicate.
    path = tmp_path / "analysis.yaml"
    path.write_text("benchmarks:\n  a: &base {theta1: 0.5, theta2: 0.0}\n  b: {<<: *base, theta2: 0.5}\n")
    config = load_config(path)
    assert dict(config["benchmarks"]["b"]) == {"theta1": 0.5, "theta2": 0.5}


def test_ctrl_c_during_fit_propagates(monkeypatch):
    # skorch's partial_fit swallows KeyboardInterrupt, so a Ctrl-C returned a model trained for an arbitrary
    # number of epochs as if the fit had finished (skminer run then recorded the train stage as done).
    import numpy as np

    from skminer.estimators import SALLY
    from skminer.estimators._net import SkminerNet

    calls = {"n": 0}
    original = SkminerNet.run_single_epoch

    def interrupted(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # in the second training pass: the user presses Ctrl-C
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SkminerNet, "run_single_epoch", interrupted)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    with pytest.raises(KeyboardInterrupt):
        SALLY(hidden_layer_sizes=(4,), max_epochs=50, random_state=0).fit(x, 2 * x)


def test_early_stopping_still_ends_fit_normally():
    import numpy as np

    from skminer.estimators import SALLY

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 2))
    model = SALLY(hidden_layer_sizes=(4,), max_epochs=200, patience=1, random_state=0, lr=0.5,
                  lr_schedule="constant").fit(x, rng.normal(size=(300, 2)))
    assert model.n_epochs_ < 200


_TINY_RUN = {
    "seed": 3,
    "simulation": {"simulator": "toy", "n_events": 2000},
    "augmentation": {"n_samples": 500, "test_fraction": 0.5},
    "training": {"method": "sally", "params": {"hidden_layer_sizes": [4], "max_epochs": 1}},
    "inference": {"luminosity": 50.0, "n_bins": 4, "grid": {"n_points": 3}, "observed": {"file": "data.h5"}},
    "plots": {"enabled": False},
}


def _observed_run(tmp_path, data):
    import yaml

    from skminer.cli import main

    data.save(tmp_path / "data.h5")
    path = tmp_path / "analysis.yaml"
    path.write_text(yaml.safe_dump(dict(_TINY_RUN, output="out")))
    return main(["run", str(path)])


def test_replaced_observed_file_reruns_the_observed_limits(tmp_path):
    # The infer stage key covered the configuration only: new data saved at the same path were ignored and the
    # observed limits of the old data reported again as up to date.
    import json

    import numpy as np

    from skminer.events import EventSet
    from skminer.simulation import ToySimulator

    toy = ToySimulator()

    def data(n, theta, seed):
        x = toy.sample(n, theta, random_state=seed)
        return EventSet(x, np.ones((n, 1)), observable_names=["x1", "x2"], benchmark_names=["sm"], space=toy.space)

    assert _observed_run(tmp_path, data(40, [0.0, 0.0], 1)) == 0
    first = json.loads((tmp_path / "out" / "results.json").read_text())["observed_limits"]["n_events"]
    assert _observed_run(tmp_path, data(70, [0.5, 0.0], 2)) == 0
    second = json.loads((tmp_path / "out" / "results.json").read_text())["observed_limits"]["n_events"]
    assert (first, second) == (40, 70)


def test_weighted_observed_file_is_refused_naming_it(tmp_path, capsys):
    # A simulated (weighted) event set given as observed data was counted one event per row, weights ignored.
    from skminer.simulation import ToySimulator

    assert _observed_run(tmp_path, ToySimulator().simulate(300, random_state=0)) == 2
    err = capsys.readouterr().err
    assert "data.h5: observed events must be unweighted" in err and "weights range from" in err


def test_observed_limits_without_events_say_why_automatic_bins_fail():
    # Zero observed events is a legal measurement; the data-quantile binning failed with "cannot place quantile
    # bin edges: the total (positive) weight is zero", which names neither the data nor the way out.
    import numpy as np

    from skminer.inference import AsymptoticLimits, theta_grid
    from skminer.simulation import ToySimulator

    events = ToySimulator().simulate(2000, random_state=0)
    limits = AsymptoticLimits(events, luminosity=10.0)
    grid = theta_grid(events.space.ranges, 3)
    with pytest.raises(ValueError, match="x_observed holds no events.*binning_theta="):
        limits.observed_limits(np.empty((0, 2)), grid, observables=["x1"], bins=5)
    res = limits.observed_limits(np.empty((0, 2)), grid, observables=["x1"], bins=5, binning_theta=[0.0, 0.0])
    assert np.all(res.log_likelihood_kinematic == 0.0)
    # no events: log L = -L sigma(theta), maximal where the cross section is smallest
    assert np.allclose(res.log_likelihood, -10.0 * events.cross_section(grid))


def test_ratio_score_documents_both_criteria():
    # score() without r_xz uses the hard labels y (a different number from the soft-label criterion on the same
    # folds) while the docs described only the soft-label one.
    from pathlib import Path

    from skminer.estimators import CARL

    doc = " ".join(CARL.score.__doc__.split())
    assert "with ``r_xz``: against the joint-ratio soft labels" in doc
    assert "without ``r_xz``" in doc and "against the hard labels ``y``" in doc
    page = " ".join((Path(__file__).resolve().parents[1] / "docs" / "howto" / "model-selection.md").read_text()
                    .split())
    assert "otherwise against the hard labels `y`" in page


def test_single_float_edge_is_an_edge_and_float_bins_are_refused_clearly():
    # bins=[0.] for one observable was read as "one entry per dimension" holding the bin count 0.0 and refused
    # with "must be an int or a 1-D array of edges, got 0.0"; bins=0.0 failed with "'float' object is not
    # iterable". A list of floats is the observable's edges (as the same array is), a float scalar is refused.
    import numpy as np

    from skminer.inference import AsymptoticLimits, FisherInformation
    from skminer.simulation.toy import ToySimulator

    events = ToySimulator().simulate(2000, random_state=0)
    limits = AsymptoticLimits(events, 100.0)
    grid = np.array([[0.0, 0.0], [0.5, 0.0]])
    as_list = limits.expected_limits([0.0, 0.0], grid, mode="histogram", observables=[0], bins=[0.0])
    as_array = limits.expected_limits([0.0, 0.0], grid, mode="histogram", observables=[0], bins=np.array([0.0]))
    np.testing.assert_array_equal(as_list.q, as_array.q)
    with pytest.raises(ValueError, match=r"bins must be an int \(the number of bins\).*got float 0\.0"):
        limits.expected_limits([0.0, 0.0], grid, mode="histogram", observables=[0], bins=0.0)
    with pytest.raises(ValueError, match=r"bins for x1 must be an int \(the number of bins\).*got float 0\.0"):
        FisherInformation(events).histogram_information([0.0, 0.0], 100.0, 0, bins=0.0)
    with pytest.raises(ValueError, match="at least two"):
        FisherInformation(events).information_distribution([0.0, 0.0], 100.0, 0, bins=[0.0])
