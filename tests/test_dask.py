"""GridSearchCV and Ensemble on a dask LocalCluster give the results of local runs (skipped without dask)."""

from __future__ import annotations

import joblib
import numpy as np
import pytest
from sklearn import config_context
from sklearn.model_selection import GridSearchCV, KFold

from skminer.estimators import CARL, Ensemble

distributed = pytest.importorskip("distributed")

from toy_data import ratio_sample  # noqa: E402

TINY = dict(hidden_layer_sizes=(8,), max_epochs=2, batch_size=128, random_state=0)


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


@pytest.fixture(scope="module")
def client():
    # worker processes: dask's nanny starts them with OMP/MKL/OPENBLAS_NUM_THREADS=1, so torch uses one thread each
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as cluster, distributed.Client(cluster) as c:
        yield c


@pytest.mark.slow  # starts two worker processes: ~30 s on an idle machine, minutes on a loaded one
def test_grid_search_and_ensemble_match_local_runs(client):
    assert set(client.run(_torch_threads).values()) == {1}  # no oversubscription: one torch thread per worker
    d = ratio_sample(600, seed=3)
    grid = {"hidden_layer_sizes": [(4,), (8,)], "lr": [1e-3]}

    def search():
        with config_context(enable_metadata_routing=True):
            s = GridSearchCV(CARL(**TINY), grid, cv=KFold(2, shuffle=True, random_state=0), n_jobs=2)
            return s.fit(d["X"], d["y"], theta=d["theta"])

    def ensemble():
        return Ensemble(CARL(**TINY), n_estimators=3, n_jobs=2, random_state=0).fit(d["X"], d["y"],
                                                                                   theta=d["theta"])

    local_search, local_ens = search(), ensemble()
    with joblib.parallel_backend("dask"):
        dask_search, dask_ens = search(), ensemble()
    np.testing.assert_array_equal(dask_search.cv_results_["mean_test_score"],
                                  local_search.cv_results_["mean_test_score"])
    assert dask_search.best_params_ == local_search.best_params_
    x, theta = d["X"][:50], d["theta"][:50]
    np.testing.assert_array_equal(dask_search.best_estimator_.predict(x, theta),  # theta per event
                                  local_search.best_estimator_.predict(x, theta))
    np.testing.assert_array_equal(dask_ens.predict_all("predict", x, theta), local_ens.predict_all("predict", x, theta))
    # an ensemble member fitted on a worker kept the worker's single thread (the client asked for its share)
    assert client.submit(_ensemble_member_threads, pure=False).result() == 1


def _ensemble_member_threads() -> int:
    """Threads an Ensemble member's fit sees on this worker when the client asked for 8."""
    import torch

    from skminer.estimators.ensemble import _fit_member

    class Probe:  # defined here, so nothing has to be unpickled on the worker
        def fit(self, X):
            self.threads = torch.get_num_threads()
            return self

    member, _ = _fit_member(Probe(), np.zeros((1, 1)), None, {}, 8)  # (member, its warnings)
    return member.threads
