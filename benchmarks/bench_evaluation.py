"""Evaluation throughput of the inference protocol on a grid: every event at every parameter point.

Run ``python benchmarks/bench_evaluation.py [--n-events N] [--n-thetas T]``. A CARL model is trained briefly on
toy data, then ``predict_log_ratio(x, grid)`` (one call, shape ``(T, N)``, batched internally) is timed on
``N x T`` (x, theta) pairs against baselines measured in the same run: a bare torch forward pass over the same
network on the same tiled inputs (the floor), the per-event scikit-learn face ``predict(x_tiled, theta_rows)``
on pre-tiled arrays, and the per-point Python loop (one ``predict_log_ratio(x, point)`` call per grid point, as in
limit-setting code that loops over the grid).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from skminer.estimators import CARL


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-events", type=int, default=1000)
    parser.add_argument("--n-thetas", type=int, default=1000)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    n_fit = 20_000
    model = CARL(hidden_layer_sizes=(100, 100), max_epochs=1, random_state=0).fit(
        rng.normal(size=(n_fit, 5)), rng.integers(0, 2, n_fit).astype(float), theta=rng.uniform(-1, 1, (n_fit, 2)))

    n, k = args.n_events, args.n_thetas
    x = rng.normal(size=(n, 5))
    grid = rng.uniform(-1, 1, size=(k, 2))

    start = time.perf_counter()
    model.predict_log_ratio(x, grid)
    t_grid = time.perf_counter() - start

    x_rows, theta_rows = np.tile(x, (k, 1)), np.repeat(grid, n, axis=0)
    start = time.perf_counter()
    model.predict(x_rows, theta_rows)
    t_rows = time.perf_counter() - start

    module = model.net_.module_
    inputs = {"x": torch.as_tensor(x_rows, dtype=torch.float32),
              "theta": torch.as_tensor(theta_rows, dtype=torch.float32)}
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, n * k, 65536):
            module(**{key: v[i:i + 65536] for key, v in inputs.items()})
    t_floor = time.perf_counter() - start

    start = time.perf_counter()
    for point in grid:
        model.predict_log_ratio(x, point)
    t_loop = time.perf_counter() - start

    pairs = n * k
    print(f"\n{n:,} events x {k:,} parameter points = {pairs:,} pairs, network (100, 100), "
          f"{torch.get_num_threads()} threads")
    print(f"{'implementation':<42}{'seconds':>10}{'pairs/s':>16}{'vs floor':>10}")
    for name, t in (("predict_log_ratio(x, grid) (protocol)", t_grid),
                    ("predict(x_tiled, theta_rows) (per event)", t_rows), ("bare torch forward (floor)", t_floor),
                    (f"per-point loop ({k} calls)", t_loop)):
        print(f"{name:<42}{t:>10.3f}{pairs / t:>16,.0f}{t / t_floor:>10.2f}")


if __name__ == "__main__":
    main()
