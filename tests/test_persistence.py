"""save_estimator / load_estimator: round trips for every allowed class, weights_only loading, bad files."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LinearRegression

from skminer.estimators import CARL, SALLY
from skminer.estimators.ensemble import Ensemble
from skminer.estimators.persistence import (
    FILE_MAGIC,
    estimator_registry,
    load_estimator,
    save_estimator,
)
from skminer.estimators.sallino import SALLINO

TINY = dict(hidden_layer_sizes=(8,), max_epochs=2, batch_size=64, random_state=0)
N = 300


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N, 2))
    theta = rng.uniform(-1, 1, size=(N, 2))
    return {"X": X, "theta": theta, "theta2": np.hstack([theta, theta[::-1]]), "y": rng.integers(0, 2, N),
            "r_xz": np.exp(0.3 * rng.normal(size=N)), "t_xz": rng.normal(size=(N, 2)),
            "t_xz1": rng.normal(size=(N, 2)), "grid": np.repeat([[0.0, 0.0], [0.5, -0.5]], N // 2, axis=0)}


def _fit_and_predict(name, cls, d):
    """A fitted instance of ``cls`` and a function returning its predictions (a tuple of arrays)."""
    X = d["X"]
    if name == "SALLY":
        return cls(**TINY).fit(X, d["t_xz"]), lambda e: (e.predict(X),)
    if name == "SALLINO":
        est = cls(n_bins=5, **TINY).fit(X, d["t_xz"]).calibrate(X, d["grid"])
        return est, lambda e: (e.predict(X), e.predict_log_ratio(X, [0.5, -0.5], [0.0, 0.0]))
    if name in ("NDE", "SCANDAL"):
        est = cls(flow="nsf" if name == "NDE" else "maf", **TINY).fit(X, theta=d["theta"], t_xz=d["t_xz"])
        return est, lambda e: (e.predict(X, d["theta"]), e.log_likelihood(X, d["grid"][:3]), e.score_at(X, [0.1, 0.2]),
                               e.sample(10, [0.0, 0.0], random_state=3))
    if name == "Ensemble":
        est = Ensemble(CARL(**TINY), n_estimators=2, random_state=1).fit(X, d["y"], theta=d["theta"])
        return est, lambda e: e.predict_log_ratio(X, [0.5, -0.5], return_std=True)
    if name.startswith("Double"):
        est = cls(**TINY).fit(X, d["y"], theta=d["theta2"], r_xz=d["r_xz"], t_xz=d["t_xz"], t_xz1=d["t_xz1"])
        return est, lambda e: (e.predict(X, d["theta2"]), e.predict_log_ratio(X, [0.5, -0.5], [0.0, 0.0]),
                               e.score_at(X, [0.1, 0.2]))
    est = cls(**TINY).fit(X, d["y"], theta=d["theta"], r_xz=d["r_xz"], t_xz=d["t_xz"])
    return est, lambda e: (e.predict(X, d["theta"]), e.predict_log_ratio(X, [0.5, -0.5]), e.score_at(X, [0.1, 0.2]))


@pytest.mark.parametrize("name", sorted(estimator_registry()))
def test_round_trip_gives_identical_predictions(name, data, tmp_path):
    cls = estimator_registry()[name]
    est, predict = _fit_and_predict(name, cls, data)
    path = save_estimator(est, tmp_path / f"{name}.skm")
    assert path.is_file()
    assert [p.name for p in tmp_path.iterdir()] == [f"{name}.skm"]  # no temporary file left behind
    loaded = load_estimator(path)
    assert type(loaded) is cls
    assert repr(loaded.get_params(deep=False)) == repr(est.get_params(deep=False))
    for a, b in zip(predict(est), predict(loaded), strict=True):
        np.testing.assert_array_equal(a, b)
    if hasattr(est, "loss_curve_"):
        assert loaded.loss_curve_ == est.loss_curve_
        assert loaded.best_epoch_ == est.best_epoch_


@pytest.mark.parametrize("selection, lr", [("ema", 0.5), ("best", 0.2)])  # settings under which an epoch is restored
def test_epoch_selection_outcome_survives_round_trip(data, tmp_path, selection, lr):
    est = SALLY(**{**TINY, "max_epochs": 6}, epoch_selection=selection, lr=lr, lr_schedule="constant",
                patience=3).fit(data["X"], data["t_xz"])
    callbacks = dict(est.net_.callbacks_)
    if selection == "ema":  # the values FinalUnlessWorse decided on
        selector = callbacks["epoch_selection"]
        expected = (selector.best_epoch_, selector.restored_, selector.z_, selector.worse_in_a_row_)
        assert np.isfinite(selector.z_)
    else:  # skorch's EarlyStopping
        stopper = callbacks["early_stopping"]
        expected = (stopper.best_epoch_, stopper.best_epoch_ != est.n_epochs_, np.nan, stopper.misses_)
    assert expected[1], "the settings were chosen so that an earlier epoch is restored"
    loaded = load_estimator(save_estimator(est, tmp_path / "sally.skm"))
    for fitted in (est, loaded):
        outcome = (fitted.best_epoch_, fitted.selection_restored_, fitted.selection_z_,
                   fitted.selection_worse_in_a_row_)
        np.testing.assert_equal(outcome, expected)


def test_epoch_selection_outcome_without_validation(data, tmp_path):
    est = SALLY(**TINY, early_stopping=False).fit(data["X"], data["t_xz"])
    loaded = load_estimator(save_estimator(est, tmp_path / "sally.skm"))
    for fitted in (est, loaded):
        assert fitted.best_epoch_ == fitted.n_epochs_ and not fitted.selection_restored_
        assert np.isnan(fitted.selection_z_) and fitted.selection_worse_in_a_row_ == 0


def test_file_is_readable_with_weights_only_and_holds_no_classes(data, tmp_path):
    est = Ensemble(SALLINO(n_bins=4, **TINY), n_estimators=2, random_state=0).fit(data["X"], data["t_xz"])
    path = save_estimator(est, tmp_path / "ens.skm")
    payload = torch.load(path, weights_only=True)
    assert payload["magic"] == FILE_MAGIC
    assert payload["class"] == "Ensemble"
    assert payload["state"]["estimator"]["class"] == "SALLINO"
    assert [m["class"] for m in payload["state"]["members"]] == ["SALLINO", "SALLINO"]


def test_uncalibrated_sallino_round_trip(data, tmp_path):
    est = SALLINO(**TINY).fit(data["X"], data["t_xz"][:, 0])
    loaded = load_estimator(save_estimator(est, tmp_path / "s.skm"))
    np.testing.assert_array_equal(loaded.predict(data["X"]), est.predict(data["X"]))
    assert loaded.predict(data["X"]).ndim == 1
    assert not hasattr(loaded, "calibration_theta_")


def test_device_override_and_overwrite(data, tmp_path):
    path = tmp_path / "sally.skm"
    first = SALLY(**TINY).fit(data["X"], data["t_xz"])
    save_estimator(first, path)
    second = SALLY(**{**TINY, "random_state": 5}).fit(data["X"], data["t_xz"])
    save_estimator(second, str(path))  # replaces the existing file
    loaded = load_estimator(path, device="cpu")
    assert loaded.device == "cpu"
    np.testing.assert_array_equal(loaded.predict(data["X"]), second.predict(data["X"]))


def test_failed_save_leaves_previous_file_intact(data, tmp_path, monkeypatch):
    path = tmp_path / "sally.skm"
    est = SALLY(**TINY).fit(data["X"], data["t_xz"])
    save_estimator(est, path)
    before = path.read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_estimator(est, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sally.skm"]


def test_corrupt_and_foreign_files_raise_errors_naming_the_path(data, tmp_path):
    garbage = tmp_path / "garbage.skm"
    garbage.write_bytes(os.urandom(256))
    with pytest.raises(ValueError, match="garbage.skm"):
        load_estimator(garbage)

    good = save_estimator(SALLY(**TINY).fit(data["X"], data["t_xz"]), tmp_path / "good.skm")
    truncated = tmp_path / "truncated.skm"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated.skm"):
        load_estimator(truncated)

    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(ValueError, match="foreign.pt.*not a skminer estimator file"):
        load_estimator(foreign)

    unknown = tmp_path / "unknown.skm"
    torch.save({"magic": FILE_MAGIC, "version": 1, "class": "os.system", "state": {}}, unknown)
    with pytest.raises(ValueError, match="unknown estimator class 'os.system'"):
        load_estimator(unknown)

    newer = tmp_path / "newer.skm"
    torch.save({"magic": FILE_MAGIC, "version": 99, "class": "SALLY", "state": {}}, newer)
    with pytest.raises(ValueError, match="newer.skm.*version 99"):
        load_estimator(newer)

    mismatched = tmp_path / "mismatched.skm"
    payload = torch.load(good, weights_only=True)
    payload["state"]["params"]["hidden_layer_sizes"] = [16]
    torch.save(payload, mismatched)
    with pytest.raises(ValueError, match="mismatched.skm.*do not fit"):
        load_estimator(mismatched)

    with pytest.raises(FileNotFoundError, match="missing.skm"):
        load_estimator(tmp_path / "missing.skm")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo should-not-run",))


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.skm"
    with open(path, "wb") as fh:
        torch.save({"magic": FILE_MAGIC, "version": 1, "class": "SALLY", "state": _Evil()}, fh,
                   pickle_module=pickle)
    with pytest.raises(ValueError, match="evil.skm.*not a readable"):
        load_estimator(path)


class MyCARL(CARL):
    pass


def test_save_rejects_unfitted_and_foreign_estimators(data, tmp_path):
    with pytest.raises(NotFittedError):
        save_estimator(SALLY(), tmp_path / "a.skm")
    with pytest.raises(TypeError, match="not a skminer estimator"):
        save_estimator(LinearRegression().fit(data["X"], data["y"]), tmp_path / "b.skm")
    with pytest.raises(TypeError, match="MyCARL"):
        save_estimator(MyCARL(**TINY).fit(data["X"], data["y"], theta=data["theta"]), tmp_path / "c.skm")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save_estimator(SALLY(**TINY).fit(data["X"], data["t_xz"]), tmp_path / "no" / "d.skm")
    assert not any(p.name.endswith(".skm") for p in tmp_path.iterdir())


@pytest.mark.parametrize(("name", "value", "message"), [
    ("selection_restored_", "yes", "'selection_restored_' must be a bool, got str 'yes'"),
    ("selection_z_", "abc", "'selection_z_' must be a number, got str 'abc'"),
    ("best_epoch_", 99, "'best_epoch_' = 99 exceeds n_epochs_ = 2"),
    ("selection_worse_in_a_row_", -5, "'selection_worse_in_a_row_' must be >= 0, got -5"),
    ("n_features_in_", True, "'n_features_in_' must be an integer, got bool True"),
    ("loss_curve_", [0.1], "'loss_curve_' has 1 entries for n_epochs_ = 2"),
    ("theta_range_", [[1.0, -1.0], [0.0, 1.0]], "'theta_range_' must be rows \\[min, max\\] with min <= max"),
    ("predict", 1, "unknown fitted attribute 'predict' in the file; CARL restores only \\["),
    ("net_", 1, "unknown fitted attribute 'net_'"),
])
def test_edited_fitted_attributes_are_refused_naming_file_and_attribute(data, tmp_path, name, value, message):
    good = save_estimator(CARL(**TINY).fit(data["X"], data["y"], theta=data["theta"]), tmp_path / "good.skm")
    payload = torch.load(good, weights_only=True)
    payload["state"]["attributes"][name] = value
    edited = tmp_path / "edited.skm"
    torch.save(payload, edited)
    with pytest.raises(ValueError, match=f"edited.skm.*{message}"):
        load_estimator(edited)


def test_every_declared_fitted_attribute_has_a_check():
    from skminer.estimators._state_check import ATTRIBUTE_KINDS

    for cls in estimator_registry().values():
        names = cls._state_attribute_names(cls) if hasattr(cls, "_state_attribute_names") else ()
        assert set(names) <= set(ATTRIBUTE_KINDS), (cls.__name__, set(names) - set(ATTRIBUTE_KINDS))
