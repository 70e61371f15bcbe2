"""Evaluation throughput of ``predict_log_ratio`` over many (x, theta) pairs, against a per-theta loop.

Run ``python benchmarks/bench_evaluation.py [--n-pairs N] [--n-thetas T]``. A CARL model is trained briefly on
toy data, then ``predict_log_ratio`` is timed on ``N`` (x, theta) pairs (large batched forward passes) and
against two baselines measured in the same run: a bare torch forward pass over the same network on the same
inputs (the floor) and the per-theta Python loop (one small call per parameter point, as in limit setting code
that loops over the grid).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from skminer.estimators import CARL


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-pairs", type=int, default=1_000_000)
    parser.add_argument("--n-thetas", type=int, default=1000)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    n_fit = 20_000
    model = CARL(hidden_layer_sizes=(100, 100), max_epochs=1, random_state=0).fit(
        rng.normal(size=(n_fit, 5)), rng.integers(0, 2, n_fit).astype(float), theta=rng.uniform(-1, 1, (n_fit, 2)))

    n = args.n_pairs
    x = rng.normal(size=(n, 5))
    theta = rng.uniform(-1, 1, size=(n, 2))

    start = time.perf_counter()
    model.predict_log_ratio(x, theta)
    t_batched = time.perf_counter() - start

    module = model.net_.module_
    inputs = {"x": torch.as_tensor(x, dtype=torch.float32), "theta": torch.as_tensor(theta, dtype=torch.float32)}
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, n, 65536):
            module(**{k: v[i:i + 65536] for k, v in inputs.items()})
    t_floor = time.perf_counter() - start

    per = n // args.n_thetas
    start = time.perf_counter()
    for j in range(args.n_thetas):
        rows = slice(j * per, (j + 1) * per)
        model.predict_log_ratio(x[rows], theta[rows])
    t_loop = time.perf_counter() - start

    print(f"\npredict_log_ratio on {n:,} (x, theta) pairs, network (100, 100), {torch.get_num_threads()} threads")
    print(f"{'implementation':<36}{'seconds':>10}{'pairs/s':>16}{'vs floor':>10}")
    for name, t in (("skminer predict_log_ratio (batched)", t_batched), ("bare torch forward (floor)", t_floor),
                    (f"per-theta loop ({args.n_thetas} calls)", t_loop)):
        print(f"{name:<36}{t:>10.3f}{n / t:>16,.0f}{t / t_floor:>10.2f}")


if __name__ == "__main__":
    main()
