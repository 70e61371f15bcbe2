"""Ratio-sample generation time: skminer's batched RatioSampler against a per-theta loop, in the same run.

Run ``python benchmarks/bench_sampling.py [--n-events N] [--n-samples S] [--n-thetas T]``. The baseline is
the way MadMiner's augmentation works: for every theta separately, morph the weights of all events, unweight,
and compute the joint ratio and score of the drawn events (one pass over the events per theta). skminer's
sampler does the same work in blocks of parameter points with matrix products. Both produce the same kind of
sample (x, theta0, y, r_xz, t_xz) from the same toy events.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from skminer.augmentation import RatioSampler, UniformPrior
from skminer.simulation.toy import ToySimulator


def per_theta_loop(events, thetas: np.ndarray, theta1: np.ndarray, n_samples: int, rng: np.random.Generator) -> int:
    """Baseline: one pass over all events for each theta (numerator), plus the reference draws."""
    morpher = events.morpher
    basis_w = events.weights[:, [events.benchmark_names.index(b) for b in events.morphing_basis]]
    per_theta = n_samples // 2 // len(thetas)
    w1 = basis_w @ morpher.weights(theta1[None, :])[0]
    sigma1 = float(w1.sum())
    total = 0
    for theta in thetas:
        w0 = basis_w @ morpher.weights(theta[None, :])[0]
        sigma0 = float(w0.sum())
        grad_w = morpher.weight_gradients(theta[None, :])[0]  # (n_params, n_basis)
        grad_sigma = basis_w.sum(0) @ grad_w.T
        for w in (w0, w1):
            p = np.clip(w, 0, None)
            rows = rng.choice(len(p), size=per_theta, p=p / p.sum())
            r_xz = (w0[rows] / sigma0) / (w1[rows] / sigma1)
            grad = np.einsum("nb,pb->np", basis_w[rows], grad_w)
            t_xz = grad / w0[rows, None] - grad_sigma / sigma0
            assert t_xz.shape == (len(rows), theta.size) and np.all(np.isfinite(r_xz))
            total += len(rows)
    return total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-events", type=int, default=200_000)
    parser.add_argument("--n-samples", type=int, default=100_000)
    parser.add_argument("--n-thetas", type=int, default=500)
    args = parser.parse_args(argv)
    events = ToySimulator().simulate(args.n_events, random_state=0)
    theta1 = np.zeros(2)
    prior = UniformPrior(events.space.ranges)
    thetas = prior.sample(args.n_thetas, random_state=1)

    start = time.perf_counter()
    sample = RatioSampler(theta0_prior=prior, theta1=theta1, n_thetas=args.n_thetas).sample(
        events, args.n_samples, random_state=2)
    t_skminer = time.perf_counter() - start
    start = time.perf_counter()
    n_base = per_theta_loop(events, thetas, theta1, args.n_samples, np.random.default_rng(3))
    t_base = time.perf_counter() - start

    print(f"\nRatio sampling: {args.n_events} weighted events, {args.n_samples} samples, {args.n_thetas} thetas")
    print(f"{'implementation':<28}{'samples':>10}{'seconds':>10}{'samples/s':>14}")
    print(f"{'skminer RatioSampler':<28}{len(sample):>10}{t_skminer:>10.2f}{len(sample) / t_skminer:>14,.0f}")
    print(f"{'per-theta loop (baseline)':<28}{n_base:>10}{t_base:>10.2f}{n_base / t_base:>14,.0f}")
    print(f"speed-up (baseline time / skminer time, per sample): "
          f"{(t_base / n_base) / (t_skminer / len(sample)):.1f}x")


if __name__ == "__main__":
    main()
