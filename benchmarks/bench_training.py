"""Training throughput of skminer estimators against a plain torch loop, measured in the same run.

Run ``python benchmarks/bench_training.py [--n-samples N] [--epochs E] [--methods sally,carl,...]``. For each
method it trains the skminer estimator (early stopping off, fixed number of epochs) and a hand-written torch
loop with the same network, batch size and loss (the baseline), and prints samples per second per epoch and
the ratio skminer / baseline (1.0 = as fast as a bare loop).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from skminer import estimators as est

HIDDEN = (100, 100)
BATCH = 256


def _mlp(n_in: int, n_out: int) -> nn.Module:
    layers: list[nn.Module] = []
    for h in HIDDEN:
        layers += [nn.Linear(n_in, h), nn.Tanh()]
        n_in = h
    layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


def plain_torch_regression(x: np.ndarray, t: np.ndarray, epochs: int) -> float:
    """A bare training loop for the SALLY loss (MSE on the score); returns seconds per epoch."""
    gen = torch.Generator().manual_seed(0)
    xt = torch.as_tensor(x, dtype=torch.float32)
    tt = torch.as_tensor(t, dtype=torch.float32)
    model = _mlp(x.shape[1], t.shape[1])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    start = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), BATCH):
            idx = perm[i:i + BATCH]
            opt.zero_grad()
            loss = ((model(xt[idx]) - tt[idx]) ** 2).mean()
            loss.backward()
            opt.step()
    return (time.perf_counter() - start) / epochs


def plain_torch_classifier(x: np.ndarray, theta: np.ndarray, y: np.ndarray, epochs: int) -> float:
    """A bare loop for the CARL loss on (x, theta) inputs; returns seconds per epoch."""
    gen = torch.Generator().manual_seed(0)
    inp = torch.as_tensor(np.hstack([x, theta]), dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.float32)
    model = _mlp(inp.shape[1], 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    bce = nn.BCEWithLogitsLoss()
    start = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(inp), generator=gen)
        for i in range(0, len(inp), BATCH):
            idx = perm[i:i + BATCH]
            opt.zero_grad()
            loss = bce(-model(inp[idx]).squeeze(1), yt[idx])  # logit of s = -log r
            loss.backward()
            opt.step()
    return (time.perf_counter() - start) / epochs


def plain_torch_alices(x: np.ndarray, theta: np.ndarray, y: np.ndarray, log_r: np.ndarray, t: np.ndarray,
                       epochs: int, alpha: float = 1.0) -> float:
    """A bare loop for the ALICES loss (soft-label cross entropy + alpha * score MSE through autograd in theta)."""
    gen = torch.Generator().manual_seed(0)
    xt = torch.as_tensor(x, dtype=torch.float32)
    tht = torch.as_tensor(theta, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.float32)
    s_xz = torch.sigmoid(-torch.as_tensor(log_r, dtype=torch.float32))  # 1 / (1 + r_xz)
    tt = torch.as_tensor(t, dtype=torch.float32)
    model = _mlp(x.shape[1] + theta.shape[1], 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    bce = nn.BCEWithLogitsLoss()
    start = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), BATCH):
            idx = perm[i:i + BATCH]
            th = tht[idx].requires_grad_(True)
            log_r_hat = model(torch.cat([xt[idx], th], dim=1)).squeeze(1)
            (t_hat,) = torch.autograd.grad(log_r_hat.sum(), th, create_graph=True)
            mask = (1.0 - yt[idx])[:, None]
            loss = bce(-log_r_hat, s_xz[idx]) + alpha * (mask * (t_hat - tt[idx]) ** 2).sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return (time.perf_counter() - start) / epochs


def _time_fit(estimator, epochs: int, *args, **kwargs) -> float:
    """Seconds per epoch of ``estimator.fit``, after a warm-up fit (lazy imports, first-call setup)."""
    from sklearn.base import clone

    warm = slice(0, 512)
    clone(estimator).set_params(max_epochs=1).fit(*(a[warm] for a in args), **{k: v[warm] for k, v in kwargs.items()})
    start = time.perf_counter()
    estimator.fit(*args, **kwargs)
    return (time.perf_counter() - start) / epochs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=50_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--methods", default="sally,carl,rolr,alice,cascal,rascal,alices")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rng = np.random.default_rng(0)
    n, epochs = args.n_samples, args.epochs
    x = rng.normal(size=(n, 5))
    theta = rng.uniform(-1, 1, size=(n, 2))
    t = rng.normal(size=(n, 2))
    y = rng.integers(0, 2, size=n).astype(float)
    r = np.exp(rng.normal(size=n))
    common = dict(hidden_layer_sizes=HIDDEN, activation="tanh", batch_size=BATCH, max_epochs=epochs,
                  early_stopping=False, validation_fraction=0.0, lr=1e-3, random_state=0)

    rows = []
    base_reg = plain_torch_regression(x, t, epochs)
    base_clf = plain_torch_classifier(x, theta, y, epochs)
    base_score = plain_torch_alices(x, theta, y, np.log(r), t, epochs)
    for method in args.methods.split(","):
        method = method.strip().lower()
        if method == "sally":
            sec = _time_fit(est.SALLY(**common), epochs, x, t)
            base = base_reg
        else:
            cls = {m.lower(): getattr(est, m) for m in ("CARL", "ROLR", "ALICE", "CASCAL", "RASCAL", "ALICES")}
            sec = _time_fit(cls[method](**common), epochs, x, y, theta=theta, r_xz=r, t_xz=t)
            # score-based losses need d log r / d theta (a second autograd pass): compare with such a loop
            base = base_score if method in ("cascal", "rascal", "alices") else base_clf
        rows.append((method, n / sec, n / base, base / sec))

    print(f"\nTraining throughput, {n} samples, {epochs} epochs, batch {BATCH}, network {HIDDEN}, "
          f"{torch.get_num_threads()} threads")
    print(f"{'method':<10}{'skminer (samples/s)':>22}{'plain torch (samples/s)':>26}{'ratio':>8}")
    for method, s, b, ratio in rows:
        print(f"{method:<10}{s:>22,.0f}{b:>26,.0f}{ratio:>8.2f}")
    print("ratio = skminer throughput / plain-loop throughput; baselines: MSE loop (sally), cross-entropy loop "
          "(carl, rolr, alice), ALICES loop with the theta-gradient score term (cascal, rascal, alices)")


if __name__ == "__main__":
    main()
