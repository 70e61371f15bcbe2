"""Fit time against the number of torch threads, on an idle machine and next to competing CPU-bound processes.

Run ``python benchmarks/bench_threads.py [--n-events N] [--epochs E] [--repeats R] [--competitors K]``. For each
thread count from 1 to the CPUs available to the process (and the default of :func:`skminer.threads.default_threads`)
it fits a SALLY estimator (early stopping off, fixed epochs) inside :func:`skminer.threads.limit_threads`, first
alone, then while ``K`` busy-looping processes compete for the same CPUs. It prints the median fit time of
``R`` repeats and the ratio to the one-thread fit of the same condition (measured in the same run).

Measured on the 2-CPU development machine while five other developers ran test suites on it (load average
17-21, so "alone" already competes with other work); the numbers swing with that load:

``--epochs 10 --repeats 3`` (load 17): one thread 4.63 s per fit; with two threads the three fits had not finished
after 3.5 minutes (stopped), i.e. more than ten times slower.

``--epochs 5 --repeats 3`` (load 21, half an hour later)::

    condition              threads   fit [s]  vs 1 thread
    alone                        1      1.49         1.00
    alone                        2      1.71         1.15
    1 competing                  1      3.24         1.00
    1 competing                  2      3.45         1.06

Two threads never helped on the shared machine; :func:`skminer.threads.default_threads` chose one thread in both
runs (the load average leaves no idle CPU).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import time

import numpy as np

from skminer.estimators import SALLY
from skminer.simulation.toy import ToySimulator
from skminer.threads import available_cpus, default_threads, limit_threads


def _spin(stop: mp.Event) -> None:  # a competing CPU-bound process
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


def _data(n_events: int) -> tuple[np.ndarray, np.ndarray]:
    sim = ToySimulator()
    x, z = sim.sample(n_events, np.zeros(2), random_state=0, return_latent=True)
    return x, sim.joint_score(z, np.zeros(2))


def _fit_seconds(x: np.ndarray, t: np.ndarray, epochs: int, n_threads: int, repeats: int) -> float:
    times = []
    for r in range(repeats):
        model = SALLY(hidden_layer_sizes=(100, 100), batch_size=128, max_epochs=epochs, early_stopping=False,
                      random_state=r)
        with limit_threads(n_threads):
            start = time.perf_counter()
            model.fit(x, t)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-events", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--competitors", type=int, default=1)
    args = parser.parse_args()

    x, t = _data(args.n_events)
    cpus = available_cpus()
    counts = sorted(set(range(1, cpus + 1)) | {default_threads()})
    print(f"CPUs available: {cpus}; default_threads(): {default_threads()}; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '(unset)')}; load average {os.getloadavg()[0]:.1f}")
    print(f"SALLY (100, 100), batch 128, {args.n_events} events, {args.epochs} epochs, median of {args.repeats}")
    print(f"{'condition':<22}{'threads':>8}{'fit [s]':>10}{'vs 1 thread':>13}")
    for condition in ("alone", f"{args.competitors} competing"):
        stop = mp.Event()
        spinners = []
        if condition != "alone":
            spinners = [mp.Process(target=_spin, args=(stop,), daemon=True) for _ in range(args.competitors)]
            for p in spinners:
                p.start()
        try:
            base = None
            for n in counts:
                seconds = _fit_seconds(x, t, args.epochs, n, args.repeats)
                base = seconds if base is None else base
                print(f"{condition:<22}{n:>8}{seconds:>10.2f}{seconds / base:>13.2f}")
        finally:
            stop.set()
            for p in spinners:
                p.join()


if __name__ == "__main__":
    main()
