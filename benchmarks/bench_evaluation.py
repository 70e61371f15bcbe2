"""Evaluation throughput of the inference protocol on a grid: every event at every parameter point.

Run ``OMP_NUM_THREADS=1 python benchmarks/bench_evaluation.py [--n-events N] [--n-thetas T] [--repeats R]
[--chunks]``. A CARL model (hidden layers (100, 100)) is trained briefly on toy data, then
``predict_log_ratio(x, grid)`` (one call, shape ``(T, N)``) is timed on ``N x T`` (x, theta) pairs against
baselines measured in the same run:

* **bare torch floor**: the trained network's layers (``module.mlp``, a plain ``nn.Sequential``) on pre-made
  tiled float32 tensors of all pairs, in blocks of 2048 to 65536 rows and in one pass; the floor is the fastest
  of them (none of skminer's evaluation code runs);
* the per-event scikit-learn face ``predict(x_tiled, theta_rows)`` on pre-tiled arrays;
* the per-point Python loop (one ``predict_log_ratio(x, point)`` call per grid point, as in limit-setting code
  that loops over the grid).

``--chunks`` also times skminer's per-event evaluation with every block size (the measurement behind
``skminer.estimators.base.EVAL_BATCH_SIZES``). Times are CPU seconds of this single-threaded process
(``--clock wall`` for wall time), medians of ``--repeats``; ``vs floor`` = time / floor time.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch

from skminer._metadata import GridShapeWarning
from skminer.estimators import CARL
from skminer.estimators import base as est_base

CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}
BLOCKS = (2048, 4096, 8192, 16384, 65536)


def bare_forward(mlp: torch.nn.Module, pairs: torch.Tensor, block: int | None) -> torch.Tensor:
    """The network on pre-made pairs, in blocks of ``block`` rows (None: one pass)."""
    with torch.no_grad():
        if block is None:
            return mlp(pairs)
        return torch.cat([mlp(pairs[i:i + block]) for i in range(0, pairs.shape[0], block)])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-events", type=int, default=1000)
    parser.add_argument("--n-thetas", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunks", action="store_true", help="time skminer's evaluation at every block size")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu")
    args = parser.parse_args(argv)
    clock = CLOCKS[args.clock]
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", GridShapeWarning)  # a grid as long as the events is meant here
    rng = np.random.default_rng(0)
    n_fit = 20_000
    model = CARL(hidden_layer_sizes=(100, 100), max_epochs=1, random_state=0, n_threads=1).fit(
        rng.normal(size=(n_fit, 5)), rng.integers(0, 2, n_fit).astype(float), theta=rng.uniform(-1, 1, (n_fit, 2)))

    n, k = args.n_events, args.n_thetas
    x = rng.normal(size=(n, 5))
    grid = rng.uniform(-1, 1, size=(k, 2))
    x_rows, theta_rows = np.tile(x, (k, 1)), np.repeat(grid, n, axis=0)
    pairs = torch.as_tensor(np.hstack([x_rows, theta_rows]), dtype=torch.float32)
    mlp = model.net_.module_.mlp

    runs: dict[str, Callable[[], object]] = {
        **{f"bare torch, {b}-row blocks": (lambda b=b: bare_forward(mlp, pairs, b)) for b in BLOCKS},
        "bare torch, one pass": lambda: bare_forward(mlp, pairs, None),
        "predict_log_ratio(x, grid) (protocol)": lambda: model.predict_log_ratio(x, grid),
        "predict(x_tiled, theta_rows) (per event)": lambda: model.predict(x_rows, theta_rows),
        f"per-point loop ({k} calls)": lambda: [model.predict_log_ratio(x, point) for point in grid],
    }
    if args.chunks:
        def per_event(b: int) -> Callable[[], object]:
            return lambda: model._evaluate(lambda m, a, t: m.log_r(a, t), [x_rows, theta_rows], batch_size=b)
        runs.update({f"skminer per-event, {b}-row blocks": per_event(b) for b in BLOCKS})
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            start = clock()
            fn()
            times[name].append(clock() - start)
    med = {name: statistics.median(t) for name, t in times.items()}
    floor_name = min((name for name in med if name.startswith("bare torch")), key=med.get)
    floor = med[floor_name]

    pairs_n = n * k
    print(f"\n{n:,} events x {k:,} parameter points = {pairs_n:,} pairs, network (100, 100), "
          f"{torch.get_num_threads()} thread, {args.clock} time, median of {args.repeats}; skminer's CPU block size "
          f"{est_base.eval_batch_size('cpu')}; floor = {floor_name}")
    print(f"{'implementation':<44}{'seconds':>10}{'pairs/s':>14}{'vs floor':>10}")
    for name in runs:
        print(f"{name:<44}{med[name]:>10.3f}{pairs_n / med[name]:>14,.0f}{med[name] / floor:>10.2f}")


if __name__ == "__main__":
    main()
