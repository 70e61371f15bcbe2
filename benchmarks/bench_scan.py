"""Expected-limit scans in ratio mode against the dense bare-forward floor, measured in the same run.

Run ``OMP_NUM_THREADS=1 python benchmarks/bench_scan.py [--n-events N] [--grid 21] [--repeats R]``. A CARL
model (the default network, three hidden layers of 100) is trained briefly on the analytic toy; then a
``grid x grid`` expected-limit scan over ``N`` Asimov events is timed as

* **bare dense floor**: the network's own layers (``module.mlp``) on pre-made tiled float32 tensors of every
  (event, grid point) pair, in 65536-row blocks (the floor of the issue's measurement) and in 4096-row blocks,
  followed by the weighted sum over events: what any evaluation that sees every pair from scratch costs;
* **dense scan**: ``AsymptoticLimits.expected_limits(mode="ratio")`` over every grid point (the split first
  layer computes the x part once per event and the theta part once per grid point, blocks sized for the CPU);
* **refined scan**: the same with ``refine=(0.68, 0.95)`` (exact evaluations only near those contours and
  the best fit; interpolated elsewhere), with a check that its 68% and 95% regions equal the dense ones;
* **n_asimov**: the dense scan on a quarter of the Asimov events (a Monte-Carlo estimate of ``q``).

Times are CPU seconds of this single-threaded process (``--clock wall`` for wall time), medians of
``--repeats``; ``speed-up`` is the floor (65536-row blocks) time divided by the row's time.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from skminer.augmentation import RatioSampler, UniformPrior
from skminer.estimators import CARL
from skminer.inference import AsymptoticLimits, theta_grid
from skminer.simulation.toy import ToySimulator

CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}
THETA_TRUE = np.array([0.2, -0.1])


def bare_dense_scan(model: CARL, x: np.ndarray, c: np.ndarray, grid: np.ndarray, theta1: np.ndarray,
                    block: int) -> np.ndarray:
    """``sum_e c_e [log r(x_e|theta) - log r(x_e|theta1)]`` for every grid point from tiled pairs."""
    mlp = model.net_.module_.mlp
    n = x.shape[0]
    x_t = torch.as_tensor(x, dtype=torch.float32)
    c_t = torch.as_tensor(c, dtype=torch.float64)
    points = np.vstack([grid, theta1[None, :]])
    pairs = torch.cat([x_t.repeat(points.shape[0], 1),
                       torch.as_tensor(np.repeat(points, n, axis=0), dtype=torch.float32)], dim=1)
    out = torch.empty(pairs.shape[0])
    with torch.no_grad():
        for i in range(0, pairs.shape[0], block):
            out[i:i + block] = mlp(pairs[i:i + block]).squeeze(1)
    sums = (out.double().reshape(points.shape[0], n) @ c_t).numpy()
    return sums[:-1] - sums[-1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-events", type=int, default=10_000)
    parser.add_argument("--grid", type=int, default=21, help="points per axis")
    parser.add_argument("--luminosity", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu")
    args = parser.parse_args(argv)
    clock = CLOCKS[args.clock]
    torch.set_num_threads(1)

    toy = ToySimulator()
    events = toy.simulate(args.n_events, random_state=1)
    theta1 = np.zeros(2)
    sample = RatioSampler(theta0_prior=UniformPrior(events.space.ranges), theta1=theta1, n_thetas=200).sample(
        toy.simulate(20_000, random_state=2), 40_000, random_state=3)
    model = CARL(max_epochs=5, random_state=0, n_threads=1).fit(sample.x, sample.y, theta=sample.theta0)
    grid = theta_grid(events.space.ranges, args.grid)
    limits = AsymptoticLimits(events, args.luminosity)
    quarter = AsymptoticLimits(events, args.luminosity, n_asimov=args.n_events // 4, random_state=0)
    c = args.luminosity * events.weights_at(THETA_TRUE[None, :])[:, 0]
    nz = c != 0
    x_nz, c_nz = np.asarray(events.x, dtype=np.float64)[nz], c[nz]

    def dense():
        return limits.expected_limits(THETA_TRUE, grid, mode="ratio", estimator=model, theta_ref=theta1)

    def refined():
        return limits.expected_limits(THETA_TRUE, grid, mode="ratio", estimator=model, theta_ref=theta1,
                                      refine=(0.68, 0.95))

    def subset():
        return quarter.expected_limits(THETA_TRUE, grid, mode="ratio", estimator=model, theta_ref=theta1)

    runs = {"bare dense floor (65536-row blocks)": lambda: bare_dense_scan(model, x_nz, c_nz, grid, theta1, 65536),
            "bare dense floor (4096-row blocks)": lambda: bare_dense_scan(model, x_nz, c_nz, grid, theta1, 4096),
            "dense scan (expected_limits)": dense, "refined scan (refine=(0.68, 0.95))": refined,
            f"dense scan, n_asimov={args.n_events // 4}": subset}
    times: dict[str, list[float]] = {name: [] for name in runs}
    results = {}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            start = clock()
            results[name] = fn()
            times[name].append(clock() - start)
    med = {name: statistics.median(t) for name, t in times.items()}
    floor = med["bare dense floor (65536-row blocks)"]

    res_dense, res_ref = results["dense scan (expected_limits)"], results["refined scan (refine=(0.68, 0.95))"]
    kin_floor = results["bare dense floor (65536-row blocks)"]
    kin_diff = np.max(np.abs(res_dense.log_likelihood_kinematic - res_dense.log_likelihood_kinematic[0]
                             - (kin_floor - kin_floor[0])))
    same = all(np.array_equal(res_dense.confidence_region(cl), res_ref.confidence_region(cl)) for cl in (0.68, 0.95))
    n_eval = int(res_ref.info["evaluated"].sum())
    res_sub = results[f"dense scan, n_asimov={args.n_events // 4}"]
    print(f"\n{args.grid}x{args.grid} expected-limit scan, {int(nz.sum()):,} Asimov events, CARL (100, 100, 100), "
          f"{torch.get_num_threads()} thread, {args.clock} time, median of {args.repeats}")
    print(f"{'implementation':<42}{'seconds':>10}{'speed-up':>10}")
    for name in runs:
        print(f"{name:<42}{med[name]:>10.2f}{floor / med[name]:>10.2f}")
    print(f"dense scan vs bare floor: max |delta kinematic log L| = {kin_diff:.2e} (float32 rounding)")
    print(f"refined scan: {n_eval} of {grid.shape[0]} grid points evaluated; 68%/95% regions equal to the dense "
          f"scan: {same}; regions have {int(res_dense.confidence_region(0.68).sum())}/"
          f"{int(res_dense.confidence_region(0.95).sum())} points")
    moved = int(np.sum(res_sub.confidence_region(0.68) != res_dense.confidence_region(0.68)))
    print(f"n_asimov subset: max |delta q| vs all events = {np.max(np.abs(res_sub.q - res_dense.q)):.3g} "
          f"(Monte-Carlo noise), 68% region differs at {moved} points")


if __name__ == "__main__":
    main()
