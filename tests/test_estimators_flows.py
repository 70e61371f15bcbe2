"""NDE and SCANDAL (conditional zuko flows) against the exact likelihood of the analytic ToySimulator."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold

from skminer.estimators._net import init_module_
from skminer.estimators.flows import NDE, SCANDAL, FlowCriterion, FlowNet
from skminer.simulation.toy import ToySimulator

TOY = ToySimulator()  # 2 parameters, 2 observables
THETA_REF = np.zeros(2)
EVAL_THETA = np.array([[0.5, -0.5], [-0.5, 0.5], [0.8, 0.8], [-0.8, 0.2]])
FAST = dict(hidden_layer_sizes=(32, 32), batch_size=256, lr=2e-3, max_epochs=20)

# Measured (toy above, 500 prior points x 20 events, FAST settings, data/init seeds 0-2; [max]):
#   log r MSE on x ~ p(x|0) over EVAL_THETA vs theta_ref:  NDE 0.089-0.116 [0.116]  SCANDAL 0.046-0.055 [0.055]
#   log p(x|0) MSE:                                         NDE 0.027-0.042 [0.042]  SCANDAL 0.020-0.025 [0.025]
#   score |t_hat - t|^2 at theta_ref:                        NDE 0.68-0.88   [0.88]   SCANDAL 0.21-0.30   [0.30]
#   mean true (log r)^2 = 0.247; one epoch at lr 1e-6: log r 0.35, log p 0.60, score 2.0.
FAST_LOG_R = {"NDE": 0.16, "SCANDAL": 0.08}
FAST_LOG_P = {"NDE": 0.07, "SCANDAL": 0.04}
FAST_SCORE = {"NDE": 1.3, "SCANDAL": 0.45}
# Slow test (2000 prior points x 25 events, 40 epochs, seeds 0-2; [max]):
#   log r MSE  NDE 0.023-0.037 [0.037]  SCANDAL 0.016-0.022 [0.022]
#   log p MSE  NDE 0.005-0.015 [0.015]  SCANDAL 0.024-0.032 [0.032]  (the score term costs some normalisation)
#   score MSE  NDE 0.40-0.54   [0.54]   SCANDAL 0.13-0.18   [0.18]
SLOW_LOG_R = {"NDE": 0.05, "SCANDAL": 0.03}
SLOW_LOG_P = {"NDE": 0.025, "SCANDAL": 0.045}
SLOW_SCORE = {"NDE": 0.7, "SCANDAL": 0.25}


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def density_sample(n_theta: int, per_theta: int, seed: int) -> dict[str, np.ndarray]:
    """Events from the exact toy at ``n_theta`` uniform prior points, with their joint scores (shuffled)."""
    rng = np.random.default_rng(seed)
    points = rng.uniform(-1, 1, size=(n_theta, 2))
    xs, zs = [], []
    for point in points:
        x, z = TOY.sample(per_theta, point, random_state=rng, return_latent=True)
        xs.append(x)
        zs.append(z)
    x, z = np.concatenate(xs), np.concatenate(zs)
    theta = np.repeat(points, per_theta, axis=0)
    perm = rng.permutation(len(x))
    return {"X": x[perm], "theta": theta[perm], "t_xz": TOY.joint_score(z, theta, paired=True)[perm]}


def metrics(est, n: int = 2000) -> tuple[float, float, float]:
    """MSE of log r(x|theta, 0) over EVAL_THETA, of log p(x|0), and mean |t_hat - t|^2 at 0, for x ~ p(x|0)."""
    x = TOY.sample(n, THETA_REF, random_state=12345)
    log_r = np.concatenate([est.predict_log_ratio(x, th, THETA_REF) for th in EVAL_THETA])
    true_r = np.concatenate([TOY.log_ratio(x, th, THETA_REF) for th in EVAL_THETA])
    mse_p = np.mean((est.log_likelihood(x, THETA_REF) - TOY.log_likelihood(x, THETA_REF)) ** 2)
    mse_t = np.mean(np.sum((est.score_at(x, THETA_REF) - TOY.score(x, THETA_REF)) ** 2, axis=1))
    return float(np.mean((log_r - true_r) ** 2)), float(mse_p), float(mse_t)


@pytest.fixture(scope="module")
def data():
    return density_sample(500, 20, seed=0)


@pytest.fixture(scope="module")
def trained(data):
    models = {
        "NDE": NDE(random_state=0, **FAST).fit(data["X"], theta=data["theta"]),
        "SCANDAL": SCANDAL(alpha=1.0, random_state=0, **FAST).fit(data["X"], theta=data["theta"],
                                                                   t_xz=data["t_xz"]),
    }
    return models, {k: metrics(m) for k, m in models.items()}


@pytest.mark.parametrize("name", ["NDE", "SCANDAL"])
def test_converges_to_exact_likelihood(trained, name):
    _, res = trained
    mse_r, mse_p, mse_t = res[name]
    assert mse_r < FAST_LOG_R[name]
    assert mse_p < FAST_LOG_P[name]
    assert mse_t < FAST_SCORE[name]


def test_scandal_beats_nde(trained):
    _, res = trained
    assert res["SCANDAL"][0] < res["NDE"][0]
    assert res["SCANDAL"][2] < 0.6 * res["NDE"][2]


def test_untrained_flow_fails_the_thresholds(data):
    est = NDE(max_epochs=1, lr=1e-6, random_state=0, **{k: v for k, v in FAST.items() if k not in ("lr",
                                                                                                  "max_epochs")})
    mse_r, mse_p, _ = metrics(est.fit(data["X"], theta=data["theta"]))
    assert mse_r > 1.5 * max(FAST_LOG_R.values())
    assert mse_p > 5 * max(FAST_LOG_P.values())


def test_prediction_methods_are_consistent(trained):
    est = trained[0]["SCANDAL"]
    x = TOY.sample(300, THETA_REF, random_state=1)
    th0, th1 = np.array([0.3, -0.2]), np.array([-0.1, 0.4])
    np.testing.assert_allclose(est.predict_log_ratio(x, th0, th1),
                               est.log_likelihood(x, th0) - est.log_likelihood(x, th1), atol=1e-5)
    np.testing.assert_array_equal(est.predict(x, th0), est.log_likelihood(x, th0))
    per_event = np.tile(th0, (300, 1))
    np.testing.assert_allclose(est.predict(x, per_event), est.log_likelihood(x, th0), atol=1e-6)
    # a grid of points: (n_theta, n_events), row j equal to the single-point call
    grid = np.stack([th0, th1, [0.0, 0.0]])
    np.testing.assert_allclose(est.log_likelihood(x, grid)[1], est.log_likelihood(x, th1), atol=1e-6)
    np.testing.assert_allclose(est.predict_log_ratio(x, grid, th1)[0], est.predict_log_ratio(x, th0, th1),
                               atol=1e-6)
    assert est.score_at(x, grid).shape == (3, 300, 2)
    with pytest.raises(ValueError, match="no reference point: pass theta1"):
        est.predict_log_ratio(x, th0)
    # autograd score vs central differences of the log-likelihood
    eps = 1e-2
    fd = np.stack([(est.log_likelihood(x, th0 + eps * e) - est.log_likelihood(x, th0 - eps * e)) / (2 * eps)
                   for e in np.eye(2)], axis=1)
    np.testing.assert_allclose(est.score_at(x, th0), fd, atol=2e-2)


def test_sample_matches_toy_moments_and_is_local(trained):
    est = trained[0]["SCANDAL"]
    theta = np.array([0.5, -0.5])
    torch_state = torch.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    s = est.sample(20_000, theta, random_state=3)
    assert torch.equal(torch.get_rng_state(), torch_state)
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)
    np.testing.assert_array_equal(s, est.sample(20_000, theta, random_state=3))
    assert not np.array_equal(s, est.sample(20_000, theta, random_state=4))
    assert s.shape == (20_000, 2)
    # measured max deviations (this model, random_state 3 and 4): mean 0.023-0.030, covariance 0.053-0.055
    # (statistical error ~0.006); other points: up to 0.07 / 0.06
    np.testing.assert_allclose(s.mean(axis=0), TOY.observable_mean(theta), atol=0.08)
    np.testing.assert_allclose(np.cov(s.T), TOY.observable_covariance(theta), atol=0.08)
    assert est.sample(0, theta).shape == (0, 2)


def test_reproducible_and_one_dimensional():
    rng = np.random.default_rng(5)
    theta = rng.uniform(-1, 1, size=800)
    x = (theta + rng.normal(size=800))[:, None]
    a = NDE(flow="nsf", transforms=2, random_state=1, **{**FAST, "max_epochs": 3}).fit(x, theta=theta)
    b = NDE(flow="nsf", transforms=2, random_state=1, **{**FAST, "max_epochs": 3}).fit(x, theta=theta)
    np.testing.assert_array_equal(a.log_likelihood(x, [0.2]), b.log_likelihood(x, [0.2]))
    assert a.n_parameters_ == 1 and a.score_at(x, 0.2).shape == (800, 1)
    assert a.predict(x, theta).shape == (800,)
    assert a.log_likelihood(x, theta[:5]).shape == (5, 800)


def test_sklearn_api_and_gridsearch_over_alpha(data):
    est = SCANDAL(alpha=0.5, flow="nsf", bins=4)
    params = clone(est).get_params()
    assert params["alpha"] == 0.5 and params["bins"] == 4 and params["flow"] == "nsf"
    small = {k: v[:1500] for k, v in data.items()}
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(SCANDAL(hidden_layer_sizes=(16,), max_epochs=2, batch_size=256, random_state=0),
                              {"alpha": [0.0, 1.0]}, cv=KFold(2, shuffle=True, random_state=0))
        search.fit(small["X"], theta=small["theta"], t_xz=small["t_xz"])
    assert search.best_params_["alpha"] in (0.0, 1.0)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    # score is the mean log-likelihood
    best = search.best_estimator_
    assert best.score(small["X"], theta=small["theta"]) == pytest.approx(
        np.mean(best.predict(small["X"], small["theta"])))


def test_input_errors(data):
    X, theta = data["X"][:200], data["theta"][:200]
    with pytest.raises(ValueError, match="needs theta"):
        NDE().fit(X)
    with pytest.raises(ValueError, match="one row per event"):
        NDE().fit(X, theta=theta[:10])
    with pytest.raises(ValueError, match="t_xz"):
        SCANDAL().fit(X, theta=theta)
    with pytest.raises(ValueError, match="'flow' parameter of NDE must be a str among"):
        NDE(flow="realnvp").fit(X, theta=theta)
    with pytest.raises(ValueError, match="alpha"):
        SCANDAL(alpha=-1.0).fit(X, theta=theta, t_xz=data["t_xz"][:200])
    est = NDE(max_epochs=1, hidden_layer_sizes=(8,)).fit(X, theta=theta)
    with pytest.raises(ValueError, match="theta1 must be one parameter point"):
        est.predict_log_ratio(X, [0.0, 0.0], [0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="needs theta"):
        est.log_likelihood(X, None)
    with pytest.raises(ValueError, match="one finite point"):
        est.sample(5, np.zeros((2, 2)))


def _far_from_unit_flow(flow: str) -> tuple[FlowNet, dict[str, torch.Tensor]]:
    """A float64 FlowNet whose statistics are far from the unit scale, and raw inputs at those scales."""
    rng = np.random.default_rng(7)
    stats = {"x_mean": rng.normal(scale=40.0, size=3), "x_scale": rng.uniform(0.05, 30.0, size=3),
             "theta_mean": rng.normal(scale=40.0, size=2), "theta_scale": rng.uniform(0.05, 30.0, size=2)}
    net = FlowNet(3, 2, flow, 2, (16, 16), "tanh", bins=4, return_score=True, **stats)
    init_module_(net, torch.Generator().manual_seed(0))
    raw = {k: torch.as_tensor(stats[f"{k}_mean"] + stats[f"{k}_scale"] * rng.normal(size=(64, len(stats[f"{k}_mean"]))))
           for k in ("x", "theta")}
    raw["t_xz"] = torch.as_tensor(rng.normal(size=(64, 2)) / stats["theta_scale"])
    return net.double(), raw


@pytest.mark.parametrize("flow", ["maf", "nsf"])
def test_training_on_standardised_arrays_equals_the_per_batch_standardisation(flow):
    # the loss, its gradients and the outputs of the training path (arrays standardised once) against standardising
    # inside the network on every call, in float64: any wrong Jacobian or score unit shows up far above 1e-9
    net, raw = _far_from_unit_flow(flow)
    net.train()
    criterion = FlowCriterion(alpha=1.0)
    params = [p for p in net.parameters() if p.requires_grad]

    def loss_and_grads(x, theta):  # noqa: ANN001, ANN202
        out = net(x, theta)
        loss = criterion(out, {"t_xz": raw["t_xz"]})
        return out, loss, torch.autograd.grad(loss, params)

    out_raw, loss_raw, grads_raw = loss_and_grads(raw["x"], raw["theta"])
    inputs, _ = net.standardise_arrays({"x": raw["x"].numpy(), "theta": raw["theta"].numpy()}, {})
    net.begin_standardised_training_()
    out_std, loss_std, grads_std = loss_and_grads(torch.as_tensor(inputs["x"]), torch.as_tensor(inputs["theta"]))
    torch.testing.assert_close(out_std["log_p"], out_raw["log_p"], rtol=1e-10, atol=0)
    torch.testing.assert_close(out_std["t"], out_raw["t"], rtol=1e-9, atol=0)
    torch.testing.assert_close(loss_std, loss_raw, rtol=1e-10, atol=0)
    for g_std, g_raw in zip(grads_std, grads_raw, strict=True):
        torch.testing.assert_close(g_std, g_raw, rtol=1e-7, atol=1e-12)
    # sampling in standardised units: the raw samples, standardised
    theta0 = raw["theta"][0]
    u = net.sample(50, (theta0 - net.theta_std.mean) / net.theta_std.scale, torch.Generator().manual_seed(1))
    net.end_standardised_training_()
    x = net.sample(50, theta0, torch.Generator().manual_seed(1))
    torch.testing.assert_close(u * net.x_std.scale + net.x_std.mean, x, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(net(raw["x"], raw["theta"])["log_p"], out_raw["log_p"], rtol=0, atol=0)


def test_fitted_flow_predicts_raw_units_and_normalises():
    # x ~ N(30 + 5 theta, 4^2) with theta ~ U(4, 6): far from the unit scale in x, so a lost Jacobian (log 4.9), a
    # score in the wrong units (theta scale 0.58) or a flow trained in other units than it predicts in breaks the
    # integral, the equalities or the fit below
    rng = np.random.default_rng(3)
    theta = rng.uniform(80.0, 120.0, size=1500) / 20.0
    x = (30.0 + 5.0 * theta + 4.0 * rng.normal(size=1500))[:, None]
    t_xz = 5.0 * (x[:, 0] - 30.0 - 5.0 * theta) / 16.0
    est = SCANDAL(alpha=0.1, transforms=2, hidden_layer_sizes=(16, 16), batch_size=128, max_epochs=6, lr=3e-3,
                  random_state=0).fit(x, theta=theta, t_xz=t_xz)
    module = est.module_
    assert not module.standardised_inputs  # predictions take raw inputs
    points = np.array([[4.5], [5.5]])
    grid = np.linspace(-40.0, 140.0, 20001)[:, None]
    density = np.exp(est.log_likelihood(grid, points))
    np.testing.assert_allclose(np.trapezoid(density, grid[:, 0], axis=1), 1.0, atol=2e-3)
    # measured (4-15 epochs): mean log p -2.832 to -2.831 (exact -2.833), score MSE 0.04-0.14, sample means within
    # 0.5 of 52.5 and 57.5, spreads 3.95-4.25; trained in one set of units and evaluated in another (standardised
    # twice): mean log p -3.6 to -3.9, score MSE 3.4-5.6, means 35-55, spreads 6.4-31
    exact = -0.5 * np.log(2 * np.pi * 16.0) - 0.5 * ((x[:, 0] - 30.0 - 5.0 * theta) / 4.0) ** 2
    assert est.predict(x, theta).mean() == pytest.approx(exact.mean(), abs=0.05)
    score = est.score_at(x[:500], [5.0])[:, 0]
    assert np.mean((score - 5.0 * (x[:500, 0] - 55.0) / 16.0) ** 2) < 0.3
    for point, mean in zip(points, (52.5, 57.5), strict=True):
        s = est.sample(4000, point, random_state=0)
        assert abs(s.mean() - mean) < 1.0 and 3.5 < s.std() < 4.6
    # the per-call standardisation of prediction equals the flow evaluated on arrays standardised once
    log_p = est.log_likelihood(x[:200], points[0])
    score = est.score_at(x[:200], points[0])
    inputs, _ = module.standardise_arrays({"x": x[:200], "theta": np.broadcast_to(points[0], (200, 1))}, {})
    module.begin_standardised_training_()
    try:
        std_inputs = [torch.as_tensor(inputs[k], dtype=torch.float32) for k in ("x", "theta")]
        lp_std, t_std = module.log_prob_and_score(*std_inputs)
    finally:
        module.end_standardised_training_()
    np.testing.assert_allclose(log_p, lp_std.detach().numpy(), rtol=1e-5)
    np.testing.assert_allclose(score, t_std.numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["NDE", "SCANDAL"])
def test_converges_with_more_data(name):
    d = density_sample(2000, 25, seed=0)
    cls = {"NDE": NDE, "SCANDAL": SCANDAL}[name]
    est = cls(random_state=0, **{**FAST, "max_epochs": 40}).fit(d["X"], theta=d["theta"], t_xz=d["t_xz"])
    mse_r, mse_p, mse_t = metrics(est)
    assert mse_r < SLOW_LOG_R[name]
    assert mse_p < SLOW_LOG_P[name]
    assert mse_t < SLOW_SCORE[name]
