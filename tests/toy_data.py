"""A toy simulator with tractable likelihood, shared by the estimator tests (its truth is checked in
``test_estimators_toy.py``).

Latent ``z ~ N(theta, 1)`` (one parameter), observed ``x = z + N(0, 1)``. Hence
``p(x | theta) = N(x; theta, sqrt 2)``, the joint ratio ``r(x, z | th0, th1) = N(z; th0, 1) / N(z; th1, 1)``,
the joint score ``t(x, z | th0) = z - th0``, the true ratio ``log r(x) = [(x - th1)^2 - (x - th0)^2] / 4`` and
the true score ``t(x | th) = (x - th) / 2``.

Test modules import the generators from here (pytest puts ``tests/`` on ``sys.path``).
"""

from __future__ import annotations

import numpy as np

THETA1 = 0.0  # reference point of the singly parameterised ratio samples
PRIOR = (-1.0, 1.0)  # uniform prior for theta0 (and theta1 for the doubly parameterised samples)


def true_log_r(x: np.ndarray, theta0: np.ndarray, theta1: np.ndarray | float = THETA1) -> np.ndarray:
    """Exact ``log p(x | theta0) - log p(x | theta1)``."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    return ((x - theta1) ** 2 - (x - theta0) ** 2) / 4.0


def true_score(x: np.ndarray, theta: np.ndarray | float) -> np.ndarray:
    """Exact ``d/d theta log p(x | theta)``."""
    return (np.asarray(x, dtype=np.float64).reshape(-1) - theta) / 2.0


def simulate(theta: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Latent ``z`` and observed ``x`` for each entry of ``theta`` (1-D arrays)."""
    z = theta + rng.standard_normal(theta.shape)
    x = z + rng.standard_normal(theta.shape)
    return x, z


def joint_log_r(z: np.ndarray, theta0: np.ndarray, theta1: np.ndarray | float) -> np.ndarray:
    return ((z - theta1) ** 2 - (z - theta0) ** 2) / 2.0


def ratio_sample(n: int, seed: int, theta1: float = THETA1) -> dict[str, np.ndarray]:
    """``2 n`` shuffled events for singly parameterised ratio estimators.

    Each prior draw ``theta0`` gives one event at ``theta0`` (y=0) and one at ``theta1`` (y=1), so the label does
    not leak through theta. Keys: ``X (2n, 1)``, ``y``, ``theta (2n, 1)``, ``r_xz``, ``t_xz (2n, 1)``.
    """
    rng = np.random.default_rng(seed)
    th0 = rng.uniform(*PRIOR, size=n)
    x0, z0 = simulate(th0, rng)
    x1, z1 = simulate(np.full(n, theta1), rng)
    th = np.concatenate([th0, th0])
    x = np.concatenate([x0, x1])
    z = np.concatenate([z0, z1])
    y = np.concatenate([np.zeros(n), np.ones(n)])
    perm = rng.permutation(2 * n)
    return {"X": x[perm, None], "y": y[perm], "theta": th[perm, None],
            "r_xz": np.exp(joint_log_r(z, th, theta1))[perm], "t_xz": (z - th)[perm, None]}


def double_ratio_sample(n: int, seed: int) -> dict[str, np.ndarray]:
    """``2 n`` shuffled events for doubly parameterised estimators: ``theta = [theta0, theta1]`` both from the prior.

    Keys: ``X``, ``y``, ``theta (2n, 2)``, ``r_xz``, ``t_xz``, ``t_xz1`` (joint score at theta1).
    """
    rng = np.random.default_rng(seed)
    th0 = rng.uniform(*PRIOR, size=n)
    th1 = rng.uniform(*PRIOR, size=n)
    x0, z0 = simulate(th0, rng)
    x1, z1 = simulate(th1, rng)
    t0 = np.concatenate([th0, th0])
    t1 = np.concatenate([th1, th1])
    x = np.concatenate([x0, x1])
    z = np.concatenate([z0, z1])
    y = np.concatenate([np.zeros(n), np.ones(n)])
    perm = rng.permutation(2 * n)
    return {"X": x[perm, None], "y": y[perm], "theta": np.stack([t0, t1], axis=1)[perm],
            "r_xz": np.exp(joint_log_r(z, t0, t1))[perm], "t_xz": (z - t0)[perm, None],
            "t_xz1": (z - t1)[perm, None]}


def local_sample(n: int, seed: int, theta_ref: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Events at ``theta_ref`` and their joint scores (SALLY training data): ``X (n, 1)``, ``t_xz (n,)``."""
    rng = np.random.default_rng(seed)
    x, z = simulate(np.full(n, theta_ref), rng)
    return x[:, None], z - theta_ref


def ratio_eval_grid(n_x: int = 2000, seed: int = 12345) -> tuple[np.ndarray, np.ndarray]:
    """Evaluation points: ``x ~ p(x | THETA1)`` crossed with a theta0 grid over the prior.

    Returns ``X (n, 1)`` and ``theta0 (n, 1)`` with ``n = 9 n_x``.
    """
    rng = np.random.default_rng(seed)
    x, _ = simulate(np.full(n_x, THETA1), rng)
    grid = np.linspace(*PRIOR, 9)
    return np.tile(x, grid.size)[:, None], np.repeat(grid, n_x)[:, None]


def log_r_mse(estimator, theta1: float | None = None) -> float:
    """MSE of the estimated log ratio against the truth on :func:`ratio_eval_grid`.

    ``theta1=None``: singly parameterised estimator (reference THETA1). Otherwise the doubly parameterised
    estimator is evaluated at ``[theta0, theta1]``.
    """
    X, th0 = ratio_eval_grid()
    # the inference protocol on the grid: every event at every theta0 point, shape (n_theta, n_x)
    points = np.unique(th0[:, 0])
    x = X[: X.shape[0] // points.size]
    pred = estimator.predict_log_ratio(x, points[:, None], None if theta1 is None else [theta1])
    assert pred.shape == (points.size, x.shape[0])
    truth = np.stack([true_log_r(x, p, THETA1 if theta1 is None else theta1) for p in points])
    return float(np.mean((pred - truth) ** 2))


def double_log_r_mse(estimator, n: int = 20_000, seed: int = 54321) -> float:
    """MSE of a doubly parameterised estimator's log ratio on random ``(theta0, theta1)`` prior pairs, with
    ``x ~ p(x | theta1)`` for each pair."""
    rng = np.random.default_rng(seed)
    th0 = rng.uniform(*PRIOR, size=n)
    th1 = rng.uniform(*PRIOR, size=n)
    x, _ = simulate(th1, rng)
    pred = estimator.predict(x[:, None], np.stack([th0, th1], axis=1))  # per-event [theta0, theta1]
    return float(np.mean((pred - true_log_r(x, th0, th1)) ** 2))
