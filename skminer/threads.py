"""Thread control: how many threads torch and the BLAS/OpenMP libraries may use, without oversubscribing.

Small networks on a shared machine are the worst case for thread oversubscription: with torch's default of one
thread per core, a 10-epoch SALLY fit on a 2-core machine doing anything else took 48 s with 2 threads and 2 s
with 1 (issue 13; ``benchmarks/bench_threads.py`` measures it). skminer therefore never starts more threads than
the process may use:

* :func:`available_cpus` -- the CPUs this process may run on: its CPU affinity (``os.sched_getaffinity``: a
  batch slot, ``taskset``), a cgroup CPU quota (containers) and ``LOKY_MAX_CPU_COUNT``, as counted by
  :func:`joblib.cpu_count`;
* :func:`default_threads` -- the documented default: ``OMP_NUM_THREADS`` when it is set (a batch system's slot, or
  the limit joblib's process workers get), otherwise the available CPUs shared among the parallel workers
  (``n_workers``, and the threads of a dask worker when running inside one) and no more than other processes
  leave idle (the 1-minute load average, this process counted as one busy CPU), and never more than torch would
  use by itself (a caller's ``torch.set_num_threads`` is a ceiling);
* :func:`limit_threads` -- a context manager that sets torch's intra-op threads and, through threadpoolctl, the
  BLAS/OpenMP pools for a block and restores the caller's settings afterwards. The estimators' ``fit`` and
  prediction methods run inside it (their ``n_threads`` parameter), :class:`~skminer.estimators.Ensemble` gives
  each parallel member ``default_threads(n_workers)``;
* :func:`parallel_limits` -- a joblib configuration for ``GridSearchCV``/``cross_validate`` with ``n_jobs``: each
  process worker gets ``available_cpus() // n_jobs`` threads.

Torch's thread count is one setting per process: threads of one process (joblib's threading backend, dask
threads) share it, so such workers each need their own process for separate limits.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import joblib
from threadpoolctl import ThreadpoolController

from ._scalars import as_count

__all__ = ["available_cpus", "default_threads", "limit_threads", "parallel_limits"]

logger = logging.getLogger(__name__)


def available_cpus() -> int:
    """Number of CPUs this process may use (affinity, cgroup quota, ``LOKY_MAX_CPU_COUNT``; at least 1)."""
    return max(1, int(joblib.cpu_count(only_physical_cores=False)))


def _env_threads() -> int | None:
    value = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    try:
        n = int(value)
    except ValueError:
        return None
    return n if n > 0 else None


def _dask_worker_threads() -> int:
    """Threads of the dask worker this code runs in (1 outside dask)."""
    if "distributed" not in sys.modules:
        return 1
    try:
        from distributed import get_worker

        return max(1, int(get_worker().state.nthreads))
    except (ImportError, ValueError, AttributeError):
        return 1


def default_threads(n_workers: int = 1) -> int:
    """The number of threads one of ``n_workers`` parallel workers should use.

    Parameters
    ----------
    n_workers : int
        Workers running at the same time in this process's CPU allotment (e.g. the members of an
        :class:`~skminer.estimators.Ensemble` fitted in parallel).

    Returns
    -------
    int
        ``OMP_NUM_THREADS`` when set, else ``available_cpus() // (n_workers * dask worker threads)``, and no
        more than the CPUs other processes leave idle (1-minute load average, this process counted as one);
        capped by torch's current setting (a caller's ``torch.set_num_threads``); at least 1.
    """
    import torch

    n_workers = as_count(n_workers, "n_workers")
    env = _env_threads()
    if env is not None:
        share = env
    else:
        share = min(available_cpus() // (n_workers * _dask_worker_threads()), _idle_cpus())
    return max(1, min(share, torch.get_num_threads()))


def _idle_cpus() -> int:
    """CPUs not busy with other work: available CPUs minus the 1-minute load average, counting this process's
    own (single-threaded) work as one; the whole machine's count where the load average is unavailable."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        return available_cpus()
    return max(1, round(available_cpus() - max(0.0, load - 1.0)))


@contextmanager
def limit_threads(n_threads: int | None = None) -> Iterator[int]:
    """Run a block with ``n_threads`` torch and BLAS/OpenMP threads, restoring the caller's settings afterwards.

    Parameters
    ----------
    n_threads : int or None
        Threads for the block; ``None`` uses :func:`default_threads`. Values above :func:`available_cpus` are
        allowed (the caller asked for them) but logged.

    Yields
    ------
    int
        The number of threads in effect.

    Raises
    ------
    ValueError
        If ``n_threads`` is not None or an integer >= 1.
    TypeError
        If ``n_threads`` is a bool or not a number.
    """
    import torch

    if n_threads is None:
        n = default_threads()
    else:
        n = as_count(n_threads, "n_threads")
        if n > 1 and n > available_cpus():
            logger.info("n_threads=%d exceeds the %d CPUs available to this process", n, available_cpus())
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with _controller().limit(limits=n):
            yield n
    finally:
        torch.set_num_threads(previous)


_CONTROLLER: dict[str, Any] = {"controller": None, "n_modules": -1}


def _controller() -> ThreadpoolController:
    """A cached :class:`threadpoolctl.ThreadpoolController`, rebuilt when modules were imported since the last one.

    Building one scans the process's loaded libraries (``/proc/self/maps``, ~10 ms), which made every
    ``predict`` call pay for it. BLAS/OpenMP libraries arrive with imported extension modules, so a new
    controller is built only when ``sys.modules`` has grown.
    """
    if _CONTROLLER["controller"] is None or len(sys.modules) != _CONTROLLER["n_modules"]:
        _CONTROLLER["controller"] = ThreadpoolController()
        _CONTROLLER["n_modules"] = len(sys.modules)
    return _CONTROLLER["controller"]


def parallel_limits(n_jobs: int) -> Any:
    """A joblib configuration giving each of ``n_jobs`` process workers an equal share of the CPUs.

    Use it around ``GridSearchCV(..., n_jobs=n_jobs).fit`` or ``cross_validate``::

        with parallel_limits(2):
            GridSearchCV(SALLY(), grid, n_jobs=2).fit(X, t_xz)

    Each worker process starts with ``OMP_NUM_THREADS`` (and the other thread variables) set to
    ``available_cpus() // n_jobs``, which :func:`default_threads` reads in the worker.

    Parameters
    ----------
    n_jobs : int
        Number of parallel worker processes (``-1``: one per available CPU).

    Returns
    -------
    joblib.parallel_config
        A context manager (loky backend).
    """
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0:
        raise ValueError(f"n_jobs must be a non-zero int, got {n_jobs!r}")
    workers = available_cpus() if n_jobs < 0 else min(n_jobs, available_cpus())
    return joblib.parallel_config(backend="loky", n_jobs=n_jobs,
                                  inner_max_num_threads=max(1, available_cpus() // workers))
