"""The files of ../shared/cases/hostile-inputs (copied to tests/data/hostile): each gives a clear error naming the
file and the field, quickly and within bounded memory (measured in a fresh interpreter)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from _bounded import HOSTILE, run_bounded

from skminer.cli import main
from skminer.estimators import ALICES, CARL, NDE, ROLR, SALLY, Ensemble
from skminer.estimators.persistence import load_estimator, save_estimator
from skminer.simulation.observables import MAX_EXPRESSION_LENGTH, Expression, ExpressionError


def test_model_with_huge_stored_layers_is_refused_before_building_it() -> None:
    """4 KB .skm whose hyperparameters say hidden_layer_sizes=(60000, 60000, 60000): ~29 GB if built first."""
    case = HOSTILE / "model_bomb_huge_layers.skm"
    out = run_bounded(f"load_estimator({str(case)!r})",
                      setup="from skminer.estimators.persistence import load_estimator")
    assert out.error is not None and out.error.startswith("ValueError: "), out
    assert "model_bomb_huge_layers.skm: cannot restore the saved SALLY" in out.error
    assert "describe a module of 7,200,420,010 values but the file holds 50" in out.error
    assert "mlp.0.weight: stored (8, 2), hyperparameters imply (60000, 2)" in out.error
    assert out.peak_rss_mib < 800, out  # torch's import alone is about 300 MiB
    assert out.seconds < 10, out


def test_observable_power_bomb_fails_at_parse_time() -> None:
    """``9**9**9`` hung in Python's unbounded integer arithmetic; it is rejected while parsing, in a subprocess so
    that a regression fails by timeout instead of hanging the suite."""
    out = run_bounded("Expression('9**9**9')", setup="from skminer.simulation.observables import Expression",
                      timeout=60)
    assert out.error == ("ExpressionError: expression '9**9**9': the constant '9 ** 9 ** 9' overflows float64 "
                         "(exponent too large)"), out
    assert out.seconds < 1, out


@pytest.mark.parametrize(("source", "message"), [
    ("1 / (2 - 2)", r"the constant '1 / \(2 - 2\)' divides by zero"),
    ("(-8) ** (1 / 3) + j[0].pt", r"the constant '\(-8\) \*\* \(1 / 3\)' is complex"),
    ("j[0].pt ** (10 ** 400)", r"the constant '10 \*\* 400' overflows"),
    ("-" * 2000 + "1", r"nested too deeply"),
    ("1" + "+1" * MAX_EXPRESSION_LENGTH, rf"has {2 * MAX_EXPRESSION_LENGTH + 1} characters; at most "
                                         rf"{MAX_EXPRESSION_LENGTH}"),
])
def test_expression_cost_is_bounded_at_parse_time(source: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        Expression(source)


def test_constant_exponents_that_fit_float64_still_work() -> None:
    expr = Expression("2 ** 10 * 10 ** -3 + 9 ** 9")
    assert expr._fold(expr._tree.body) == pytest.approx(1.024 + 387420489.0)


# -- model files ---------------------------------------------------------------------------------------------
def _tiny_fit(estimator: Any, n: int = 64) -> Any:
    rng = np.random.default_rng(0)
    x, theta = rng.normal(size=(n, 2)), rng.normal(size=(n, 2))
    if isinstance(estimator, SALLY):
        return estimator.fit(x, rng.normal(size=(n, 2)))
    if isinstance(estimator, NDE):
        return estimator.fit(x, theta=theta)
    return estimator.fit(x, np.arange(n) % 2, theta=theta)


def test_flow_with_huge_stored_layers_is_refused(tmp_path: Path) -> None:
    """Flows cannot be built on the meta device (zuko computes masks from data); their sizes are bounded instead."""
    path = save_estimator(_tiny_fit(NDE(hidden_layer_sizes=(8,), transforms=1, max_epochs=1)), tmp_path / "nde.skm")
    payload = torch.load(path, weights_only=True)
    payload["state"]["params"]["hidden_layer_sizes"] = [60000, 60000]
    torch.save(payload, path)
    with pytest.raises(ValueError, match=r"nde\.skm: cannot restore the saved NDE: .*stored hyperparameters "
                                         r"\{'hidden_layer_sizes\[0\]': 60000, 'hidden_layer_sizes\[1\]': 60000\} "
                                         r"exceed every dimension"):
        load_estimator(path)


def test_loader_names_a_model_of_another_method(tmp_path: Path) -> None:
    path = save_estimator(_tiny_fit(CARL(hidden_layer_sizes=(4,), max_epochs=1)), tmp_path / "model.skm")
    with pytest.raises(ValueError, match=r"^model\.skm holds a CARL, the configuration asks for ALICES"):
        load_estimator(path, expected=ALICES(), expected_by="the configuration")
    with pytest.raises(ValueError, match=r"^model\.skm holds a CARL, the caller asks for Ensemble of CARL"):
        load_estimator(path, expected=Ensemble(CARL()))
    assert isinstance(load_estimator(path, expected=CARL), CARL)


def test_cli_names_a_replaced_model_of_another_method(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Replacing model.skm by a model of another method used to end in a misleading 'needs theta'."""
    cfg = {"seed": 3, "output": "out", "simulation": {"simulator": "toy", "n_events": 600},
           "augmentation": {"n_samples": 300, "test_fraction": 0.5},
           "training": {"method": "sally", "params": {"hidden_layer_sizes": [4], "max_epochs": 1}},
           "inference": {"luminosity": 50.0, "n_bins": 3, "grid": {"n_points": 3}}, "plots": {"enabled": False}}
    config = tmp_path / "analysis.yaml"
    config.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(config)]) == 0
    save_estimator(_tiny_fit(CARL(hidden_layer_sizes=(4,), max_epochs=1)), tmp_path / "out" / "model.skm")
    cfg["inference"]["luminosity"] = 60.0  # the infer stage runs again and loads the replaced model
    config.write_text(yaml.safe_dump(cfg))
    capsys.readouterr()
    assert main(["run", str(config)]) == 2
    err = capsys.readouterr().err
    assert "model.skm holds a CARL, the configuration (training.method, training.n_ensemble) asks for SALLY" in err


# -- degenerate training data --------------------------------------------------------------------------------
RNG = np.random.default_rng(1)
X, THETA, T_XZ = RNG.normal(size=(100, 2)), RNG.normal(size=(100, 2)), RNG.normal(size=(100, 2))
Y = (np.arange(100) % 2).astype(float)


@pytest.mark.parametrize(("fit", "message"), [
    (lambda: SALLY(max_epochs=1).fit(X[:1], T_XZ[:1]), r"SALLY\.fit: 1 sample: training needs at least 2 events"),
    (lambda: CARL(max_epochs=1).fit(X[:1], Y[:1], theta=THETA[:1]), r"CARL\.fit: 1 sample"),
    (lambda: CARL(max_epochs=1).fit(X, np.ones(100), theta=THETA),
     r"CARL\.fit: y holds 1 class only \(1 for all 100 events\)"),
    (lambda: ALICES(max_epochs=1).fit(X, Y, theta=THETA, r_xz=np.zeros(100), t_xz=T_XZ),
     r"ALICES\.fit: r_xz is 0 for every one of the 100 events"),
    (lambda: ROLR(max_epochs=1).fit(X, Y, theta=THETA, r_xz=np.full(100, np.inf)),
     r"ROLR\.fit: r_xz is inf for every one of the 100 events"),
    (lambda: SALLY(max_epochs=1).fit(X * 1e200, T_XZ),
     r"SALLY\.fit: X holds values up to \d\.\d+e\+200 .* beyond the float32 range"),
    (lambda: CARL(max_epochs=1).fit(X, Y, theta=THETA * 1e50), r"CARL\.fit: theta holds values up to"),
    (lambda: NDE(max_epochs=1).fit(X * 1e39, theta=THETA), r"NDE\.fit: X holds values up to"),
    (lambda: SALLY(max_epochs=1).fit(X, T_XZ * 1e300), r"SALLY\.fit: t_xz holds values up to"),
])
def test_degenerate_training_data_is_refused(fit: Callable[[], Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit()


def test_useless_training_data_warn_and_large_legal_inputs_predict_finite_values() -> None:
    with pytest.warns(UserWarning, match=r"SALLY\.fit: the joint score t_xz is 0 for every one of the 100 events"):
        SALLY(max_epochs=1).fit(X, np.zeros_like(T_XZ))
    with pytest.warns(UserWarning, match=r"CARL\.fit: every feature of X is constant over the 100 events"):
        CARL(max_epochs=1).fit(np.ones_like(X), Y, theta=THETA)
    big = CARL(hidden_layer_sizes=(4,), max_epochs=2).fit(X * 1e30, Y, theta=THETA)  # within float32: fine
    assert np.all(np.isfinite(big.predict_log_ratio(X * 1e30, THETA)))
