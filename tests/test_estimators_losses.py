"""Unit tests of the loss functions, the torch helpers and the private training machinery."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar

from skminer.estimators import losses
from skminer.estimators._net import (
    RandomValidSplit,
    RatioNet,
    TensorBatchIterator,
    TensorDictDataset,
    build_mlp,
    init_module_,
)
from skminer.estimators._torch_utils import resolve_device, seed_from_random_state, torch_generator

T = torch.tensor


def _bce(p, s):
    return -(s * np.log(p) + (1 - s) * np.log(1 - p))


# ----------------------------------------------------------------------------------------------- loss values
def test_carl_and_alice_losses_match_explicit_formulas():
    log_r = np.array([-2.0, -0.3, 0.0, 0.7, 3.0])
    y = np.array([0.0, 1.0, 0.0, 1.0, 1.0])
    r_xz = np.array([0.1, 2.0, 1.0, 0.5, 30.0])
    s_hat = 1 / (1 + np.exp(log_r))
    assert losses.carl_loss(T(log_r), T(y)).item() == pytest.approx(np.mean(_bce(s_hat, y)), rel=1e-6)
    s_xz = 1 / (1 + r_xz)
    got = losses.alice_loss(T(log_r), T(np.log(r_xz))).item()
    assert got == pytest.approx(np.mean(_bce(s_hat, s_xz)), rel=1e-6)
    # numpy evaluation criterion agrees with the torch loss
    assert losses.ratio_cross_entropy(log_r, s_xz) == pytest.approx(got, rel=1e-6)
    w = np.array([1.0, 2.0, 0.0, 1.0, 3.0])
    assert losses.ratio_cross_entropy(log_r, y, w) == pytest.approx(np.average(_bce(s_hat, y), weights=w))


def test_rolr_loss_formula_and_clipping():
    log_r = np.array([-1.0, 0.5, 2.0, 40.0])
    y = np.array([0.0, 1.0, 0.0, 1.0])
    lr_xz = np.array([-0.5, 0.2, 3.0, 0.0])
    expected = np.mean((1 - y) * (np.exp(-log_r.clip(-10, 10)) - np.exp(-lr_xz)) ** 2
                       + y * (np.exp(log_r.clip(-10, 10)) - np.exp(lr_xz)) ** 2)
    got = losses.rolr_loss(T(log_r, dtype=torch.float64), T(y), T(lr_xz, dtype=torch.float64), log_r_clip=10.0)
    assert got.item() == pytest.approx(expected, rel=1e-9)
    # huge log ratios stay finite in float32
    big = losses.rolr_loss(T([300.0, -300.0]), T([1.0, 0.0]), T([-300.0, 300.0]), log_r_clip=10.0)
    assert torch.isfinite(big)


def test_score_mse_masks_and_averages_over_all_events():
    t_hat = T([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    t_xz = T([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    # mean over the 2 components (MadMiner's normalisation), then over all events
    assert losses.score_mse(t_hat, t_xz).item() == pytest.approx((1 + 4 + 2) / 3 / 2)
    assert losses.score_mse(t_hat, t_xz, T([1.0, 0.0, 1.0])).item() == pytest.approx((1 + 2) / 3 / 2)


def test_score_targets_in_standardised_parameter_units():
    # MadMiner (scale_parameters=True) compares s_k t_hat_k with s_k t_xz_k, s_k the std of theta_k: RatioNet
    # trains on d log r / d theta_std = s d log r / d theta, so it scales the joint-score targets once
    net = RatioNet(1, 4, (3,), theta_mean=[0.0] * 4, theta_scale=[0.5, 2.0, 3.0, 4.0])
    t_xz, t_xz1 = np.array([[1.0, -2.0]]), np.array([[1.0, 1.0]])
    _, targets = net.standardise_arrays({"x": np.zeros((1, 1)), "theta": np.zeros((1, 4))},
                                        {"y": np.zeros(1), "t_xz": t_xz, "t_xz1": t_xz1})
    np.testing.assert_array_equal(targets["t_xz"], [[0.5, -4.0]])   # theta0's scales
    np.testing.assert_array_equal(targets["t_xz1"], [[3.0, 4.0]])   # theta1's scales
    single = RatioNet(1, 1, (3,), theta_mean=[1.0], theta_scale=[0.25])
    _, targets = single.standardise_arrays({"x": np.zeros((2, 1)), "theta": np.ones((2, 1))},
                                           {"y": np.zeros(2), "t_xz": np.array([4.0, 8.0]), "log_r_xz": None})
    np.testing.assert_array_equal(targets["t_xz"], [1.0, 2.0])
    assert targets["log_r_xz"] is None
    g = torch.Generator().manual_seed(1)
    log_r, y = torch.randn(20, generator=g), (torch.rand(20, generator=g) > 0.5).float()
    t_full, t_xz2, t_xz1 = (torch.randn(20, 2, generator=g) for _ in range(3))
    crit = losses.RatioCriterion("xe", score_term=True, alpha=1.0, n_parameters=1, double=True)
    got = crit({"log_r": log_r, "t": t_full}, {"y": y, "t_xz": t_xz2[:, :1], "t_xz1": t_xz1[:, :1]})
    expected = (losses.carl_loss(log_r, y) + losses.score_mse(t_full[:, :1], t_xz2[:, :1], 1 - y)
                + losses.score_mse(-t_full[:, 1:], t_xz1[:, :1], y))
    assert got.item() == pytest.approx(expected.item())


def test_composite_losses_and_criterion():
    g = torch.Generator().manual_seed(0)
    log_r = torch.randn(50, generator=g)
    y = (torch.rand(50, generator=g) > 0.5).float()
    lr_xz = torch.randn(50, generator=g)
    t_hat, t_xz = torch.randn(50, 2, generator=g), torch.randn(50, 2, generator=g)
    score = losses.score_mse(t_hat, t_xz, 1 - y)
    assert losses.cascal_loss(log_r, t_hat, y, t_xz, 0.5) == pytest.approx(
        (losses.carl_loss(log_r, y) + 0.5 * score).item())
    assert losses.rascal_loss(log_r, t_hat, y, lr_xz, t_xz, 2.0) == pytest.approx(
        (losses.rolr_loss(log_r, y, lr_xz) + 2.0 * score).item())
    assert losses.alices_loss(log_r, t_hat, y, lr_xz, t_xz, 3.0) == pytest.approx(
        (losses.alice_loss(log_r, lr_xz) + 3.0 * score).item())
    crit = losses.RatioCriterion("axe", score_term=True, alpha=3.0, log_r_clip=10.0, n_parameters=2)
    got = crit({"log_r": log_r, "t": t_hat}, {"y": y, "log_r_xz": lr_xz, "t_xz": t_xz})
    assert got.item() == pytest.approx(losses.alices_loss(log_r, t_hat, y, lr_xz, t_xz, 3.0, 10.0).item())
    # doubly parameterised: -d log r / d theta1 is matched to t_xz1 on y = 1 events
    t_xz1 = torch.randn(50, 2, generator=g)
    t_full = torch.cat([t_hat, torch.randn(50, 2, generator=g)], dim=1)
    crit2 = losses.RatioCriterion("xe", score_term=True, alpha=1.0, n_parameters=2, double=True)
    got2 = crit2({"log_r": log_r, "t": t_full}, {"y": y, "t_xz": t_xz, "t_xz1": t_xz1})
    expected2 = (losses.carl_loss(log_r, y) + losses.score_mse(t_full[:, :2], t_xz, 1 - y)
                 + losses.score_mse(-t_full[:, 2:], t_xz1, y))
    assert got2.item() == pytest.approx(expected2.item())
    with pytest.raises(ValueError, match="unknown ratio loss"):
        losses.RatioCriterion("nope")


def test_log_r_xz_from_r_xz_checks():
    np.testing.assert_allclose(losses.log_r_xz_from_r_xz([1.0, np.e]), [0.0, 1.0])
    assert losses.log_r_xz_from_r_xz([0.0])[0] == -np.inf
    with pytest.raises(ValueError, match="non-negative"):
        losses.log_r_xz_from_r_xz([1.0, -0.1])
    with pytest.raises(ValueError, match="NaN"):
        losses.log_r_xz_from_r_xz([np.nan])


# --------------------------------------------------------------------- the losses' minimisers are the truth
def _joint_toy(n, th0, th1, seed):
    rng = np.random.default_rng(seed)
    # events at one fixed x: z | x is Gaussian with mean (x + theta)/2 and variance 1/2 for this toy
    x = 0.7
    z0 = (x + th0) / 2 + np.sqrt(0.5) * rng.standard_normal(n)
    z1 = (x + th1) / 2 + np.sqrt(0.5) * rng.standard_normal(n)
    lr0 = ((z0 - th1) ** 2 - (z0 - th0) ** 2) / 2
    lr1 = ((z1 - th1) ** 2 - (z1 - th0) ** 2) / 2
    truth = ((x - th1) ** 2 - (x - th0) ** 2) / 4
    return lr0, lr1, truth


@pytest.mark.parametrize("method", ["carl_on_soft_labels", "alice", "rolr"])
def test_pointwise_minimiser_recovers_true_log_ratio(method):
    """At fixed x, minimising the loss over a constant log r_hat gives the true log r(x) (unbiasedness).

    Weights follow the mixture: equal numbers of y=0 (theta0) and y=1 (theta1) events at this x, each class
    weighted by its density p(x | theta).
    """
    th0, th1 = 0.8, 0.0
    lr0, lr1, truth = _joint_toy(200_000, th0, th1, seed=0)
    w0 = np.exp(-((0.7 - th0) ** 2) / 4)
    w1 = np.exp(-((0.7 - th1) ** 2) / 4)
    y = np.concatenate([np.zeros_like(lr0), np.ones_like(lr1)])
    lr_xz = torch.tensor(np.concatenate([lr0, lr1]), dtype=torch.float64)
    yt = torch.tensor(y, dtype=torch.float64)
    weights = np.concatenate([np.full(lr0.size, w0), np.full(lr1.size, w1)])

    def objective(c):
        lr_hat = torch.full_like(lr_xz, c)
        if method == "rolr":
            per = ((1 - yt) * (torch.exp(-lr_hat) - torch.exp(-lr_xz)) ** 2
                   + yt * (torch.exp(lr_hat) - torch.exp(lr_xz)) ** 2)
            # compare with the library function on the same (unweighted) events
            per_lib = losses.rolr_loss(lr_hat, yt, lr_xz, log_r_clip=50.0) * len(per)
            assert per.sum().item() == pytest.approx(per_lib.item(), rel=1e-9)
        else:
            s = torch.sigmoid(-lr_xz)
            per = torch.nn.functional.binary_cross_entropy_with_logits(-lr_hat, s, reduction="none")
            assert per.mean().item() == pytest.approx(losses.alice_loss(lr_hat, lr_xz).item(), rel=1e-9)
        return float(np.sum(per.numpy() * weights))

    best = minimize_scalar(objective, bounds=(-3, 3), method="bounded", options={"xatol": 1e-6}).x
    assert best == pytest.approx(truth, abs=0.02)


def test_biased_rolr_pairing_would_fail():
    """The opposite pairing (y=0 regressing r) is biased on the same toy: guards the sign convention."""
    th0, th1 = 0.8, 0.0
    lr0, lr1, truth = _joint_toy(200_000, th0, th1, seed=1)
    # y=0 events only: the minimiser of mean (r_hat - r_xz)^2 is E[r_xz | x, theta0] != r(x)
    biased = np.log(np.mean(np.exp(lr0)))
    correct = -np.log(np.mean(np.exp(-lr0)))
    assert abs(correct - truth) < 0.02
    assert abs(biased - truth) > 0.2


# ------------------------------------------------------------------------------------------ torch utilities
def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device(None).type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="device"):
        resolve_device("not-a-device")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_seed_from_random_state_is_local():
    np_state = np.random.get_state()[1].copy()
    torch_state = torch.random.get_rng_state().clone()
    assert seed_from_random_state(3) == 3
    a, b = seed_from_random_state(None), seed_from_random_state(None)
    assert isinstance(a, int) and 0 <= a < 2**31 - 1 and a != b
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    rs = np.random.RandomState(0)
    assert seed_from_random_state(rs) != seed_from_random_state(rs)  # advances the given instance
    assert 0 <= seed_from_random_state(np.random.default_rng(0)) < 2**31 - 1
    with pytest.raises(ValueError, match="random_state"):
        seed_from_random_state("seed")
    with pytest.raises(ValueError, match="non-negative"):
        seed_from_random_state(-1)


def test_build_mlp_and_local_init():
    net = build_mlp(3, 2, (5, 4), "relu")
    assert [type(m).__name__ for m in net] == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert build_mlp(3, 1, ()).__len__() == 1
    with pytest.raises(ValueError, match="activation"):
        build_mlp(3, 1, (4,), "swishy")
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        build_mlp(3, 1, (4, 0))
    a = init_module_(build_mlp(3, 1, (8,)), torch_generator(1))
    b = init_module_(build_mlp(3, 1, (8,)), torch_generator(1))
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_batch_iterator_shuffles_reproducibly_and_covers_all_rows():
    ds = TensorDictDataset({"x": torch.arange(10.0)[:, None]}, {"y": torch.arange(10.0)})
    it = TensorBatchIterator(ds, batch_size=4, shuffle=True, seed=0)
    assert len(it) == 3
    epoch1 = torch.cat([yb["y"] for _, yb in it])
    epoch2 = torch.cat([yb["y"] for _, yb in it])
    assert sorted(epoch1.tolist()) == list(range(10)) and not torch.equal(epoch1, epoch2)
    again = torch.cat([yb["y"] for _, yb in TensorBatchIterator(ds, batch_size=4, shuffle=True, seed=0)])
    assert torch.equal(epoch1, again)
    for xb, yb in it:  # X and y rows stay aligned
        assert torch.equal(xb["x"][:, 0], yb["y"])
    ordered = torch.cat([yb["y"] for _, yb in TensorBatchIterator(ds, batch_size=3)])
    assert torch.equal(ordered, torch.arange(10.0))


def test_random_valid_split_is_random_and_disjoint():
    ds = TensorDictDataset({"x": torch.arange(100.0)[:, None]}, {"y": torch.arange(100.0)})
    train, valid = RandomValidSplit(0.2, seed=0)(ds)
    vy = valid.y["y"].long().tolist()
    assert len(vy) == 20 and len(train) == 80
    assert set(vy).isdisjoint(train.y["y"].long().tolist())
    assert vy != list(range(20)) and vy != list(range(80, 100))  # not the first or last rows
    assert RandomValidSplit(0.2, seed=0)(ds)[1].y["y"].tolist() == valid.y["y"].tolist()
    assert RandomValidSplit(0.5, seed=0)(TensorDictDataset({"x": torch.zeros(1, 1)}, {}))[1] is None


def test_ratio_net_score_is_the_theta_gradient():
    net = init_module_(RatioNet(2, 2, (8,), "tanh", return_score=True), torch_generator(0)).double()
    x = torch.randn(5, 2, dtype=torch.float64, generator=torch_generator(1))
    th = torch.randn(5, 2, dtype=torch.float64, generator=torch_generator(2))
    log_r, t = net.log_r_and_score(x, th)
    eps = 1e-6
    for k in range(2):
        d = torch.zeros_like(th)
        d[:, k] = eps
        fd = (net.log_r(x, th + d) - net.log_r(x, th - d)) / (2 * eps)
        torch.testing.assert_close(t[:, k], fd, rtol=1e-5, atol=1e-8)
    net.eval()
    with torch.no_grad():
        assert set(net(x, th)) == {"log_r"}
    out = net(x, th)  # gradients enabled: the score comes along
    assert set(out) == {"log_r", "t"}
