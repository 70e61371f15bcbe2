"""Thread control: a default that never oversubscribes, limits that restore the caller's settings."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest
import torch
from joblib import Parallel, delayed, parallel_backend
from threadpoolctl import threadpool_info, threadpool_limits

import skminer.threads as threads
from skminer.cli import main
from skminer.estimators import SALLY, Ensemble
from skminer.estimators import base as estimator_base
from skminer.threads import available_cpus, default_threads, limit_threads, parallel_limits


@pytest.fixture
def torch_threads():
    """Restore torch's thread count after the test."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _data(n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 2))
    return x, x @ np.array([[1.0, 0.5], [-0.5, 1.0]])


def test_available_cpus_follows_the_affinity():
    code = textwrap.dedent("""
        import os
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
        from skminer.threads import available_cpus, default_threads
        os.environ.pop("OMP_NUM_THREADS", None)
        print(available_cpus(), default_threads())
    """)
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.split() == ["1", "1"], out.stderr
    assert available_cpus() <= len(os.sched_getaffinity(0))


def test_default_threads_respects_omp_num_threads_and_workers(monkeypatch, torch_threads):
    torch.set_num_threads(4)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_threads() == 3  # a batch slot's limit
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    assert default_threads() == 4  # never more than the caller's torch setting
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(threads, "available_cpus", lambda: 4)
    monkeypatch.setattr(threads, "_idle_cpus", lambda: 4)
    assert [default_threads(n) for n in (1, 2, 3, 4, 8)] == [4, 2, 1, 1, 1]
    monkeypatch.setattr(threads, "_idle_cpus", lambda: 1)  # other processes keep three CPUs busy
    assert default_threads() == 1
    with pytest.raises(ValueError, match="n_workers"):
        default_threads(0)


def test_idle_cpus_from_the_load_average(monkeypatch):
    monkeypatch.setattr(threads, "available_cpus", lambda: 4)
    for load, idle in ((0.2, 4), (1.0, 4), (2.0, 3), (4.6, 1), (17.0, 1)):
        monkeypatch.setattr(os, "getloadavg", lambda load=load: (load, load, load))
        assert threads._idle_cpus() == idle, load


def _blas_limits() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


def test_limit_threads_restores_the_callers_settings(torch_threads):
    torch.set_num_threads(2)
    with limit_threads(1) as n:
        assert n == 1 and torch.get_num_threads() == 1
        assert _blas_limits() <= {1}
    assert torch.get_num_threads() == 2
    with pytest.raises(ValueError, match="n_threads"):
        with limit_threads(0):
            pass
    assert torch.get_num_threads() == 2


def test_limit_threads_reuses_its_library_scan_until_modules_are_imported(monkeypatch, torch_threads):
    """Scanning the loaded libraries costs ~10 ms: not on every predict call, but again after new imports."""
    with limit_threads(1):
        pass
    first = threads._controller()
    with limit_threads(1):
        assert _blas_limits() <= {1}
    assert threads._controller() is first
    monkeypatch.setitem(sys.modules, "skminer_test_new_module", types.ModuleType("skminer_test_new_module"))
    assert threads._controller() is not first


def test_fit_and_predict_run_under_the_default_and_leave_global_state(monkeypatch, torch_threads):
    seen = []
    original = estimator_base.SkminerNet.fit

    def recording_fit(self, *args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(estimator_base.SkminerNet, "fit", recording_fit)
    monkeypatch.setattr(threads, "default_threads", lambda n_workers=1: 1)
    torch.set_num_threads(2)
    x, t = _data()
    model = SALLY(hidden_layer_sizes=(4,), max_epochs=1, random_state=0).fit(x, t)
    assert seen == [1] and torch.get_num_threads() == 2
    model.predict(x)
    assert torch.get_num_threads() == 2


def _member_threads(estimator, X, y, fit_params, n_threads):  # a stand-in for ensemble._fit_member (member, warnings)
    with limit_threads(n_threads):
        return torch.get_num_threads()


def test_ensemble_workers_share_the_cpus(monkeypatch, torch_threads):
    from skminer.estimators import ensemble

    monkeypatch.setattr(threads, "available_cpus", lambda: 4)
    monkeypatch.setattr(threads, "_idle_cpus", lambda: 4)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch.set_num_threads(4)
    got = []
    monkeypatch.setattr(ensemble, "_fit_member", lambda *a: got.append(_member_threads(*a)) or (a[0], []))
    x, t = _data()
    with parallel_backend("threading"):
        Ensemble(SALLY(max_epochs=1), n_estimators=2, n_jobs=2, random_state=0).fit(x, t)
    assert got == [2, 2]  # 4 CPUs shared by 2 workers


def _omp_num_threads() -> str | None:
    return os.environ.get("OMP_NUM_THREADS")


def test_parallel_limits_give_each_process_worker_its_share():
    with parallel_limits(2):
        values = Parallel()(delayed(_omp_num_threads)() for _ in range(2))
    assert values == [str(max(1, available_cpus() // 2))] * 2
    with pytest.raises(ValueError, match="n_jobs"):
        parallel_limits(0)


def test_cli_threads_option(monkeypatch, tmp_path, torch_threads, capsys):
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.setenv(var, "1")  # restored after the test
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: x\n")
    pools = {p["user_api"]: p["num_threads"] for p in threadpool_info()}
    try:
        assert main(["run", str(bad), "--threads", "2"]) == 2  # the option is applied before the configuration
        assert os.environ["OMP_NUM_THREADS"] == "2" and torch.get_num_threads() == 2
        assert default_threads() == 2
    finally:
        for api, n in pools.items():
            threadpool_limits(limits=n, user_api=api)
    with pytest.raises(SystemExit):
        main(["demo", "--threads", "0"])
    assert "must be a positive integer" in capsys.readouterr().err


def test_estimator_n_threads_parameter(monkeypatch, torch_threads):
    seen = []
    original = estimator_base.SkminerNet.fit

    def recording_fit(self, *args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(estimator_base.SkminerNet, "fit", recording_fit)
    torch.set_num_threads(2)
    x, t = _data()
    model = SALLY(hidden_layer_sizes=(4,), max_epochs=1, n_threads=1, random_state=0).fit(x, t)
    assert seen == [1] and torch.get_num_threads() == 2 and model.get_params()["n_threads"] == 1
    with pytest.raises(ValueError, match="n_threads"):
        SALLY(n_threads=0).fit(x, t)
