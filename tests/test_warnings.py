"""skminer's warnings reach the user and point at the user's own line (no silent wrong answers)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import sklearn
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skminer.estimators import CARL, SALLY, ExtrapolationWarning

TINY = dict(hidden_layer_sizes=(4,), max_epochs=1, batch_size=64, random_state=0, validation_fraction=0.0)


def _ratio_data(n: int = 64) -> dict[str, np.ndarray]:
    """Ratio-estimator data whose two halves were drawn at theta in [0, 1] and [3, 4]: a model trained on one half
    (KFold(2) without shuffling) extrapolates when scored on the other."""
    rng = np.random.default_rng(0)
    theta = np.concatenate([rng.uniform(0.0, 1.0, n // 2), rng.uniform(3.0, 4.0, n // 2)])[:, None]
    y = np.tile([0.0, 1.0], n // 2)
    return {"X": rng.normal(size=(n, 2)) + theta * y[:, None], "y": y, "theta": theta}


def _extrapolation(where: str) -> None:
    d = _ratio_data()
    if where == "direct":
        CARL(**TINY).fit(d["X"], d["y"], theta=d["theta"]).predict(d["X"][:4], theta=[50.0])
    elif where == "pipeline":
        pipe = make_pipeline(StandardScaler(), CARL(**TINY))
        pipe.fit(d["X"], d["y"], carl__theta=d["theta"]).predict(d["X"][:4], theta=[50.0])
    else:
        with sklearn.config_context(enable_metadata_routing=True):
            GridSearchCV(CARL(**TINY).set_score_request(theta=True), {"lr": [1e-3]}, cv=KFold(2), refit=False,
                         n_jobs=1, error_score="raise").fit(d["X"], d["y"], theta=d["theta"])


def _constant_features(where: str) -> None:
    X, t = np.ones((40, 2)), np.random.default_rng(0).normal(size=(40, 2))
    if where == "direct":
        SALLY(**TINY).fit(X, t)
    elif where == "pipeline":
        make_pipeline(StandardScaler(), SALLY(**TINY)).fit(X, t)
    else:
        GridSearchCV(SALLY(**TINY), {"lr": [1e-3]}, cv=KFold(2), refit=False, n_jobs=1).fit(X, t)


def _empty_validation_split(where: str) -> None:
    rng = np.random.default_rng(0)
    X, t = rng.normal(size=(6, 2)), rng.normal(size=(6, 2))
    est = SALLY(**{**TINY, "validation_fraction": 0.1})
    if where == "direct":
        est.fit(X[:3], t[:3])
    elif where == "pipeline":
        make_pipeline(StandardScaler(), est).fit(X[:3], t[:3])
    else:
        GridSearchCV(est, {"lr": [1e-3]}, cv=KFold(2), refit=False, n_jobs=1).fit(X, t)


@pytest.mark.parametrize("where", ["direct", "pipeline", "grid_search"])
@pytest.mark.parametrize(("call", "category", "match"), [
    (_extrapolation, ExtrapolationWarning, "outside the range of theta it was trained on"),
    (_constant_features, UserWarning, "every feature of X is constant"),
    (_empty_validation_split, UserWarning, "rounds to an empty validation"),
], ids=["extrapolation", "data_check", "validation_split"])
def test_warnings_point_at_the_users_line(call, category, match, where):
    """The training-range and data-check warnings used a fixed stacklevel=3: they named a line in skminer or
    scikit-learn (and Python's once-per-location filter could then hide them), whatever the user called."""
    with pytest.warns(category, match=match) as record:
        call(where)
    assert {w.filename for w in record if issubclass(w.category, category) and re.search(match, str(w.message))} \
        == {__file__}


def test_grid_shape_warning_points_at_the_users_line():
    """Through skminer's Pipeline the fixed stacklevel=3 named pipeline.py."""
    from skminer import GridShapeWarning
    from skminer import make_pipeline as skminer_pipeline

    d = _ratio_data()
    model = CARL(**TINY).fit(d["X"], d["y"], theta=d["theta"])
    pipe = skminer_pipeline(StandardScaler(), CARL(**TINY)).fit(d["X"], d["y"], carl__theta=d["theta"])
    for fitted in (model, pipe):
        with pytest.warns(GridShapeWarning, match="one row per event") as record:
            fitted.predict_log_ratio(d["X"][:5], np.full((5, 1), 0.5))
        assert {w.filename for w in record} == {__file__}


def _ensemble_warnings(n_jobs: int | None, backend: str | None = None) -> list[tuple[type, str, str]]:
    from joblib import parallel_backend

    from skminer.estimators import Ensemble

    X, t = np.ones((40, 2)), np.random.default_rng(0).normal(size=(40, 2))
    ens = Ensemble(SALLY(**TINY), n_estimators=2, n_jobs=n_jobs, random_state=0)
    with pytest.warns(UserWarning, match=r"Ensemble member [01]: SALLY\.fit: every feature of X is constant") as record:
        if backend is None:
            ens.fit(X, t)
        else:
            with parallel_backend(backend, n_jobs=n_jobs):
                ens.fit(X, t)
    return [(w.category, str(w.message), w.filename) for w in record]


def test_ensemble_members_warnings_reach_the_caller_from_worker_processes():
    """With n_jobs=2 the members' fit ran in loky worker processes and their warnings were lost: the caller saw
    nothing. They are now recorded in the worker and re-emitted by Ensemble.fit, naming the member."""
    parallel = _ensemble_warnings(2)
    expected = [(UserWarning, f"Ensemble member {i}: SALLY.fit: every feature of X is constant over the 40 events; "
                 "the model cannot learn anything from them", __file__) for i in (0, 1)]
    assert parallel == expected
    assert _ensemble_warnings(1) == expected  # in-process: the same warnings, once each, not doubled
    assert _ensemble_warnings(2, backend="threading") == expected  # threads record their own warnings


def test_recording_in_threads_restores_the_warning_machinery():
    import threading
    import warnings

    from skminer._warnings import record_warnings

    showwarning, filters = warnings.showwarning, list(warnings.filters)
    barrier, out = threading.Barrier(2), {}

    def work(name: str) -> None:
        with record_warnings() as records:
            barrier.wait()
            warnings.warn(f"from {name}", RuntimeWarning, stacklevel=1)
            barrier.wait()
        out[name] = [str(w.message) for w in records]

    threads = [threading.Thread(target=work, args=(n,)) for n in "ab"]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert out == {"a": ["from a"], "b": ["from b"]}
    assert warnings.showwarning is showwarning and warnings.filters == filters


def test_cli_records_every_stage_warning_in_results_and_the_summary(tmp_path, capsys):
    """Warnings raised while a stage ran (here training's validation-split warning) were printed by Python once,
    mid-run, and appeared neither in results.json nor in the end-of-run diagnostics list."""
    import json

    import yaml

    from skminer.cli import main

    cfg = {"output": str(tmp_path / "out"), "seed": 3, "simulation": {"simulator": "toy", "n_events": 2000},
           "augmentation": {"n_samples": 1000, "test_fraction": 0.5},
           "training": {"method": "sally", "params": {"hidden_layer_sizes": [4], "max_epochs": 1,
                                                      "validation_fraction": 0.01}},
           "inference": {"luminosity": 50.0, "histograms": ["x1"], "n_bins": 3, "grid": {"n_points": 3}},
           "plots": {"enabled": False}}
    path = tmp_path / "analysis.yaml"
    path.write_text(yaml.safe_dump(cfg))
    match = r"SALLY: validation_fraction=0\.01 of \d+ training rows leaves \d+ validation rows"
    with pytest.warns(UserWarning, match=match):  # still shown as it is raised
        assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    recorded = [w for w in results["diagnostics"]["warnings"]["warnings"] if re.match(match, w["message"])]
    assert [(w["stage"], w["category"]) for w in recorded] == [("train", "UserWarning")]
    line = f"stage train: UserWarning: {recorded[0]['message']}"
    assert line in results["diagnostics"]["warnings"]["violations"]
    assert f"diagnostics (warnings): WARNING {line}" in out
    # a rerun reuses every stage: the model still has the problem, and the summary still says so
    assert main(["run", str(path)]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert set(summary["stages"].values()) == {"reused", "off"}
    assert recorded[0] in summary["warnings"]
    assert f"diagnostics (warnings): WARNING {line}" in capsys.readouterr().out


def test_every_public_warning_class_is_exported_at_the_top_level():
    import skminer
    from skminer import ExtrapolationWarning as top_level
    from skminer import GridShapeWarning

    assert top_level is ExtrapolationWarning and issubclass(GridShapeWarning, UserWarning)
    assert {"ExtrapolationWarning", "GridShapeWarning"} <= set(skminer.__all__)
