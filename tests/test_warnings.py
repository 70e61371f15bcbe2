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

TINY = dict(hidden_layer_sizes=(4,), max_epochs=1, batch_size=64, random_state=0)


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
    est = SALLY(**TINY, validation_fraction=0.1)
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
