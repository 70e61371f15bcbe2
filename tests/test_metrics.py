"""skminer.metrics: scorers that receive theta / r_xz / t_xz through metadata routing, and clear errors without.

The properness of the augmented-data scores is checked with oracles on the tractable toy of
``test_estimators_toy`` (exact ratio and score): the exact model must outscore perturbed ones.
"""

from __future__ import annotations

import numpy as np
import pytest
import sklearn
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score, cross_validate
from toy_data import local_sample, ratio_sample, true_log_r, true_score

from skminer import MissingMetadataError, metrics
from skminer.estimators import CARL, SALLY, Ensemble

TINY = {"hidden_layer_sizes": (8,), "max_epochs": 2, "random_state": 0}


class OracleRatio:
    """Exact log r(x | theta, 0) of the toy, scaled by ``factor`` (1: exact), shifted by ``shift``."""

    capabilities = frozenset({"ratio", "score"})

    def __init__(self, factor: float = 1.0, shift: float = 0.0) -> None:
        self.factor, self.shift = factor, shift

    def predict(self, X, theta=None):
        theta = np.broadcast_to(np.asarray(theta, dtype=np.float64).reshape(-1, 1), (len(X), 1))
        return self.factor * true_log_r(X, theta[:, 0]) + self.shift

    def score_at(self, X, theta=None):
        return (self.factor * true_score(X, float(np.asarray(theta).reshape(-1)[0])) + self.shift)[:, None]


@pytest.fixture(scope="module")
def data():
    return ratio_sample(3000, seed=3)


def test_proper_scores_rank_the_exact_model_first(data):
    """E[r_xz | x] = r(x): the exact ratio and score beat perturbed ones on augmented data alone."""
    md = {"theta": data["theta"], "r_xz": data["r_xz"], "t_xz": data["t_xz"]}
    exact = OracleRatio()
    for scorer in (metrics.neg_ratio_mse, metrics.neg_score_mse, metrics.neg_log_loss):
        kwargs = {k: md[k] for k in scorer.metadata}
        best = scorer(exact, data["X"], data["y"], **kwargs)
        for wrong in (OracleRatio(1.3), OracleRatio(0.7), OracleRatio(1.0, 0.2)):
            assert scorer(wrong, data["X"], data["y"], **kwargs) < best, (scorer, wrong.factor, wrong.shift)
    auc = metrics.roc_auc(exact, data["X"], data["y"], theta=data["theta"])
    assert auc == pytest.approx(roc_auc_score(data["y"], -exact.predict(data["X"], data["theta"])))
    assert 0.5 < auc < 1.0


def test_cross_validation_routes_theta_and_gives_finite_scores(data):
    carl = CARL(**TINY)
    md = {"theta": data["theta"], "r_xz": data["r_xz"], "t_xz": data["t_xz"]}
    with sklearn.config_context(enable_metadata_routing=True):
        res = cross_validate(carl, data["X"], data["y"], params=md, cv=KFold(2, shuffle=True, random_state=0),
                             scoring={"auc": metrics.roc_auc, "ll": metrics.neg_log_loss,
                                      "r": metrics.neg_ratio_mse, "t": metrics.neg_score_mse}, error_score="raise")
        for key in ("auc", "ll", "r", "t"):
            assert np.all(np.isfinite(res[f"test_{key}"])), key
        # sklearn's own roc_auc cannot pass theta: an error saying so before training (not NaN scores), with the
        # default error_score too
        with pytest.raises(MissingMetadataError, match="scikit-learn's metric scorers"):
            cross_val_score(carl, data["X"], data["y"], params=md, scoring="roc_auc", cv=2, error_score="raise")
        with pytest.raises(ValueError, match="All the 2 fits failed(.|\n)*scikit-learn's metric scorers"):
            cross_val_score(carl, data["X"], data["y"], params=md, scoring="roc_auc", cv=2)
        # the default score with theta forgotten in params
        with pytest.raises(ValueError, match="All the 2 fits failed(.|\n)*cannot give it theta"):
            cross_val_score(carl, data["X"], data["y"], cv=2, params={"r_xz": data["r_xz"]})
        # validation_curve records fit errors as error_score without raising: the refusal is at least a warning
        from sklearn.model_selection import cross_val_predict, validation_curve

        with pytest.warns(UserWarning, match="scikit-learn's metric scorers"):
            validation_curve(carl, data["X"], data["y"], param_name="lr", param_range=[1e-3], params=md, cv=2,
                             scoring="roc_auc")
        # cross_val_predict routes metadata to fit only: predict could never get theta
        with pytest.raises(MissingMetadataError, match="cross_val_predict cannot give the estimator theta"):
            cross_val_predict(carl, data["X"], data["y"], params=md, cv=2)
        # a user's callable that binds theta itself is trusted
        theta_all = data["theta"]

        def bound(est, X, y):
            return float(np.mean(est.predict(X, theta=np.zeros(1)) < 0) + 0 * theta_all.sum())

        scores = cross_val_score(carl, data["X"], data["y"], params=md, scoring=bound, cv=2, error_score="raise")
        assert np.all(np.isfinite(scores))


def test_missing_metadata_is_a_clear_error(data):
    fitted = CARL(**TINY).fit(data["X"], data["y"], theta=data["theta"])
    with sklearn.config_context(enable_metadata_routing=False):
        with pytest.raises(MissingMetadataError, match="routing, which is off"):
            metrics.roc_auc(fitted, data["X"], data["y"])
        # GridSearchCV with routing off: scoring cannot receive theta, so fit refuses before training -- an
        # exception, not NaN scores and an arbitrary best point, whatever error_score says
        for error_score in ("raise", np.nan):
            search = GridSearchCV(CARL(**TINY), {"lr": [1e-3, 1e-2]}, cv=KFold(2), error_score=error_score)
            with pytest.raises(ValueError, match="metadata routing is off"):
                search.fit(data["X"], data["y"], theta=data["theta"])
        # outside cross-validation, fit with theta works without routing
        CARL(**TINY).fit(data["X"], data["y"], theta=data["theta"])
    with sklearn.config_context(enable_metadata_routing=True):
        with pytest.raises(MissingMetadataError, match="pass theta=..."):
            metrics.roc_auc(fitted, data["X"], data["y"])
        with pytest.raises(MissingMetadataError, match="r_xz"):
            metrics.neg_ratio_mse(fitted, data["X"], data["y"], theta=data["theta"])


def test_score_mse_without_theta_uses_the_reference_point_and_refuses_estimators_without_one(data):
    X, t = local_sample(600, seed=4)
    sally = SALLY(**TINY).fit(X, t, theta=[0.0])
    expected = -float(np.mean((sally.predict(X) - t) ** 2))
    assert metrics.neg_score_mse(sally, X, t, t_xz=t) == pytest.approx(expected, rel=1e-12)
    assert metrics.neg_score_mse(sally, X, t, t_xz=t, theta=np.zeros((len(X), 1))) == pytest.approx(expected,
                                                                                                  rel=1e-12)
    with sklearn.config_context(enable_metadata_routing=True):  # cross-validation without theta in params
        scores = cross_val_score(SALLY(**TINY), X, t, params={"t_xz": t}, scoring=metrics.neg_score_mse, cv=2,
                                 error_score="raise")
    assert np.all(np.isfinite(scores))
    carl = CARL(**TINY).fit(data["X"], data["y"], theta=data["theta"])
    with pytest.raises(MissingMetadataError, match=r"neg_score_mse needs theta(.|\n)*CARL at its own reference "
                                                   r"point(.|\n)*CARL.score_at needs theta"):
        metrics.neg_score_mse(carl, data["X"], data["y"], t_xz=data["t_xz"])

class FixedScore:
    """A score model that returns the given scores ``t`` and records ``theta_ref_`` (None: no reference)."""

    capabilities = frozenset({"score"})

    def __init__(self, t, theta_ref=None):
        self.t, self.theta_ref_ = t, theta_ref

    def score_at(self, X, theta=None):
        return self.t[:len(X)]


def test_score_mse_refuses_a_model_and_t_xz_of_different_widths():
    """A model with fewer components than t_xz broadcast (and scored the wrong number); one with more silently
    used the first ones. Only extra nuisance components, with the physics parameters recorded, are dropped."""
    rng = np.random.default_rng(0)
    X, t = rng.normal(size=(200, 3)), rng.normal(size=(200, 2))
    theta = np.zeros((200, 1))
    with pytest.raises(ValueError, match="1 score components but t_xz has 2 columns"):
        metrics.neg_score_mse(FixedScore(t[:, :1]), X, None, t_xz=t)
    with pytest.raises(ValueError, match="1 score components but t_xz has 2 columns"):
        metrics.neg_score_mse(FixedScore(t[:, :1]), X, None, t_xz=t, theta=np.zeros((200, 2)))
    for model in (FixedScore(t), FixedScore(t, theta_ref=np.zeros(2))):  # a second physics component, or unknown
        for kwargs in ({}, {"theta": theta}):
            with pytest.raises(ValueError, match="2 score components but t_xz has 1 columns"):
                metrics.neg_score_mse(model, X, None, t_xz=t[:, :1], **kwargs)
    nuisance = FixedScore(t + 1.0, theta_ref=np.zeros(1))  # one physics parameter and one nuisance component
    for kwargs in ({}, {"theta": theta}):
        assert metrics.neg_score_mse(nuisance, X, None, t_xz=t[:, :1], **kwargs) == pytest.approx(-1.0)
    # the new-user report: a one-output SALLY against the two-column joint score of the simulator
    sally = SALLY(**TINY).fit(X, t[:, 0])
    with pytest.raises(ValueError, match="SALLY estimates 1 score components but t_xz has 2 columns"):
        metrics.neg_score_mse(sally, X, None, t_xz=t)
    assert metrics.neg_score_mse(sally, X, None, t_xz=t[:, 0]) == pytest.approx(
        -float(np.mean((sally.predict(X) - t[:, 0]) ** 2)))


def test_ratio_scorers_refuse_more_than_one_number_per_event(data):
    """A (n, 1) prediction against (n,) r_xz broadcast to an (n, n) error matrix."""
    class ColumnRatio(OracleRatio):
        def __init__(self, columns):
            super().__init__()
            self.columns = columns

        def predict(self, X, theta=None):
            return np.repeat(super().predict(X, theta)[:, None], self.columns, axis=1)

    X, y, theta, r_xz = data["X"], data["y"], data["theta"], data["r_xz"]
    expected = metrics.neg_ratio_mse(OracleRatio(), X, y, theta=theta, r_xz=r_xz)
    assert metrics.neg_ratio_mse(ColumnRatio(1), X, y, theta=theta, r_xz=r_xz) == pytest.approx(expected)
    assert metrics.neg_ratio_mse(OracleRatio(), X, y, theta=theta, r_xz=r_xz[:, None]) == pytest.approx(expected)
    for scorer in (metrics.neg_ratio_mse, metrics.neg_log_loss, metrics.roc_auc):
        md = {"theta": theta, "r_xz": r_xz} if "r_xz" in scorer.metadata else {"theta": theta}
        with pytest.raises(ValueError, match=r"ColumnRatio.predict must hold one number per event"):
            scorer(ColumnRatio(2), X, y, **md)
        with pytest.raises(ValueError, match=r"y must hold one number per event"):
            scorer(OracleRatio(), X, np.stack([y, y], axis=1), **md)
    with pytest.raises(ValueError, match=r"r_xz must hold one number per event"):
        metrics.neg_ratio_mse(OracleRatio(), X, y, theta=theta, r_xz=np.stack([r_xz, r_xz], axis=1))


def test_score_mse_takes_y_as_t_xz_for_score_regressors_and_refuses_unrouted_t_xz_loudly(data):
    """GridSearchCV(SALLY, scoring=neg_score_mse).fit(x, t_xz) scored every point NaN (t_xz not routed) and
    picked the first grid point; a ratio estimator scored by neg_score_mse without t_xz did the same."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skminer.estimators import NDE
    from skminer.methods import fit_target

    assert [fit_target(e) for e in (SALLY(), make_pipeline(StandardScaler(), SALLY()), Ensemble(SALLY()), CARL(),
                                    NDE(), object())] == ["t_xz", "t_xz", "t_xz", "y", None, None]
    X, t = local_sample(600, seed=6)
    sally = SALLY(**TINY).fit(X, t)
    assert metrics.neg_score_mse(sally, X, t) == metrics.neg_score_mse(sally, X, t, t_xz=t)
    with sklearn.config_context(enable_metadata_routing=False):
        search = GridSearchCV(SALLY(**TINY), {"lr": [1e5, 1e-3]}, cv=KFold(2), scoring=metrics.neg_score_mse)
        search.fit(X, t)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_params_ == {"lr": 1e-3}
    carl = CARL(**TINY).fit(data["X"], data["y"], theta=data["theta"])
    with pytest.raises(MissingMetadataError, match="neg_score_mse needs t_xz"):  # the labels are no score
        metrics.neg_score_mse(carl, data["X"], data["y"], theta=data["theta"])
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(CARL(**TINY), {"lr": [1e-3, 1e-2]}, cv=KFold(2), scoring=metrics.neg_score_mse)
        with pytest.raises(ValueError, match=r"fits failed(.|\n)*neg_score_mse \(needs t_xz\)"), \
                pytest.warns(UserWarning, match=r"neg_score_mse \(needs t_xz\)"):
            search.fit(data["X"], data["y"], theta=data["theta"])


def test_ensemble_score_and_grid_search():
    """Case ../shared/cases/ensemble-score: GridSearchCV(Ensemble(SALLY)) over a nested parameter."""
    X, t = local_sample(1200, seed=2)
    tmpl = Ensemble(SALLY(hidden_layer_sizes=[8, 8], max_epochs=2, random_state=0), n_estimators=2, random_state=0)
    gs = GridSearchCV(tmpl, {"estimator__hidden_layer_sizes": [(4,), (16, 16)]},
                      cv=KFold(2, shuffle=True, random_state=0), error_score="raise").fit(X, t)
    assert np.all(np.isfinite(gs.cv_results_["mean_test_score"]))
    best = gs.best_estimator_
    assert best.score(X, t) == pytest.approx(1 - np.sum((t - best.predict(X)) ** 2) / np.sum((t - t.mean()) ** 2))
    # ratio ensembles: the members' criterion on the mean log r, with theta routed to the members
    d = ratio_sample(1000, seed=5)
    with sklearn.config_context(enable_metadata_routing=True):
        gs = GridSearchCV(Ensemble(CARL(**TINY), n_estimators=2, random_state=0), {"estimator__lr": [1e-3, 1e-2]},
                          cv=KFold(2, shuffle=True, random_state=0), error_score="raise")
        gs.fit(d["X"], d["y"], theta=d["theta"], r_xz=d["r_xz"])
    assert np.all(np.isfinite(gs.cv_results_["mean_test_score"]))
    ens = gs.best_estimator_
    member = ens.members_[0]
    assert ens.score(d["X"], d["y"], theta=d["theta"]) == pytest.approx(
        member._score_prediction(ens.predict(d["X"], theta=d["theta"]), d["y"]))
