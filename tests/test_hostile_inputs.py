"""The files of ../shared/cases/hostile-inputs (copied to tests/data/hostile): each gives a clear error naming the
file and the field, quickly and within bounded memory (measured in a fresh interpreter)."""

from __future__ import annotations

import re
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
from skminer.parameters import ParameterSpace
from skminer.simulation import LHEReader
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


def test_observable_power_bomb_fails_at_parse_time() -> None:
    """``9**9**9`` hung in Python's unbounded integer arithmetic; it is rejected while parsing, in a subprocess so
    that a regression fails by timeout instead of hanging the suite."""
    out = run_bounded("Expression('9**9**9')", setup="from skminer.simulation.observables import Expression",
                      timeout=60)
    assert out.error == ("ExpressionError: expression '9**9**9': the constant '9 ** 9 ** 9' overflows float64 "
                         "(exponent too large)"), out


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


# -- LHE weight integrity ------------------------------------------------------------------------------------
LHE_BENCHMARKS = {"sm": [0.0, 0.0], "w": [15.2, 0.1], "neg_w": [-15.4, 0.2], "ww": [0.3, 15.1], "neg_ww": [0.2, -15.3],
                  "w_ww": [15.0, 15.0]}


def lhe_reader(path: Path) -> Any:
    space = ParameterSpace()
    space.add_parameter("CWL2", lha_block="dim6", lha_id=2, range=(-20.0, 20.0))
    space.add_parameter("CPWL2", lha_block="dim6", lha_id=5, range=(-20.0, 20.0))
    for name, value in LHE_BENCHMARKS.items():
        space.add_benchmark(name, value)
    return LHEReader(space).add_sample(path, "sm").add_observable("pt_a", "a[0].pt", default=0.0)


def test_valid_lhe_case_file_reads() -> None:
    events = lhe_reader(HOSTILE / "lhe_base.lhe").read()
    assert events.n_events == 40 and np.all(events.cross_section(list(LHE_BENCHMARKS)) > 0)


def test_weight_id_repeated_in_one_event_names_file_event_and_id() -> None:
    """The last of two values used to win silently (the cross section 50x off)."""
    with pytest.raises(ValueError, match=r"lhe_duplicate_needed_wgt_in_event\.lhe: event 3 lists weight id 'w' "
                                         r"twice \(values \+3\.5161122e-04 and \+9\.9999999e-01\)"):
        lhe_reader(HOSTILE / "lhe_duplicate_needed_wgt_in_event.lhe").read()


def test_implausible_weight_names_file_event_and_id() -> None:
    """A weight of 1e200 used to be accepted and made the Fisher information inf."""
    with pytest.raises(ValueError, match=r"lhe_huge_rwgt_1e200\.lhe: event 4 has weight 'w' = 1e\+200, 1\.52e\+203 "
                                         r"times the mean absolute nominal weight of the file \(0\.0006595\)"):
        lhe_reader(HOSTILE / "lhe_huge_rwgt_1e200.lhe").read()


def _edited_lhe(tmp_path: Path, edit: Callable[[str], str]) -> Path:
    path = tmp_path / "edited.lhe"
    path.write_text(edit((HOSTILE / "lhe_base.lhe").read_text()))
    return path


def _set_weight(text: str, wid: str, value: Callable[[str], str]) -> str:
    return re.sub(rf"<wgt id='{wid}'>\s*(\S+)\s*</wgt>", lambda m: f"<wgt id='{wid}'> {value(m.group(1))} </wgt>",
                  text)


@pytest.mark.parametrize(("value", "message"), [
    (lambda v: "0", r"the weights of benchmark 'ww' \(weight 'ww'\) are 0 in all 40 events"),
    (lambda v: f"-{v.lstrip('+')}", r"the weights of benchmark 'ww' \(weight 'ww'\) are negative or 0 in all 40 "
                                    r"events \(sum -"),
])
def test_benchmark_with_all_zero_or_all_negative_weights_is_refused(tmp_path: Path, value: Callable[[str], str],
                                                                   message: str) -> None:
    path = _edited_lhe(tmp_path, lambda text: _set_weight(text, "ww", value))
    with pytest.raises(ValueError, match=rf"edited\.lhe: {message}"):
        lhe_reader(path).read()


def test_lhe_weight_edge_cases(tmp_path: Path) -> None:
    path = _edited_lhe(tmp_path, lambda text: text.replace("<wgt id='w'>", "<wgt>", 1))
    with pytest.raises(ValueError, match=r"edited\.lhe: event 1 has a <wgt> without an id"):
        lhe_reader(path).read()
    path = _edited_lhe(tmp_path, lambda text: text.replace("<wgt id='w'> +6.2257190e-04", "<wgt id='w'> abc", 1))
    with pytest.raises(ValueError, match=r"edited\.lhe: event 1: weight 'w' is not a number: 'abc'"):
        lhe_reader(path).read()


def test_streamed_chunks_give_the_same_events_and_cutflow() -> None:
    whole = lhe_reader(HOSTILE / "lhe_base.lhe")
    whole.add_cut("a[0].pt > 60")
    chunked = lhe_reader(HOSTILE / "lhe_base.lhe")
    chunked.chunk_events = 7  # 40 events: six chunks, the last one short
    chunked.add_cut("a[0].pt > 60")
    a, b = whole.read(), chunked.read()
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_allclose(a.weights, b.weights, rtol=1e-14)
    (flow_a,), (flow_b,) = a.metadata["cutflows"].values(), b.metadata["cutflows"].values()
    assert 0 < a.n_events < 40 and flow_a["steps"][0]["n_events"] == a.n_events
    assert [s["n_events"] for s in flow_a["steps"]] == [s["n_events"] for s in flow_b["steps"]]
    assert [s["sum_weights"] for s in flow_a["steps"]] == pytest.approx([s["sum_weights"] for s in flow_b["steps"]])
    assert flow_a["sum_weights_initial"] == pytest.approx(flow_b["sum_weights_initial"])
    # event numbers in messages count from the start of the file, not of the chunk
    late = lhe_reader(HOSTILE / "lhe_huge_rwgt_1e200.lhe")
    late.chunk_events = 3
    with pytest.raises(ValueError, match=r"lhe_huge_rwgt_1e200\.lhe: event 4 has weight 'w' = 1e\+200"):
        late.read()
    with pytest.raises(ValueError, match="chunk_events must be a positive integer"):
        LHEReader(ParameterSpace().add_parameter("g").add_benchmark("sm", [0.0]), chunk_events=0)


def test_cli_with_the_observable_power_bomb_case_fails_quickly(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """config/lhe_observable_pow_bomb.yaml of the case folder: the run stops with the expression error."""
    (tmp_path / "lhe").mkdir()
    (tmp_path / "lhe" / "lhe_base.lhe").write_bytes((HOSTILE / "lhe_base.lhe").read_bytes())
    (tmp_path / "config").mkdir()
    cfg = {"output": "out", "seed": 1,
           "simulation": {"simulator": "lhe", "lhe": {"files": ["../lhe/lhe_base.lhe"], "sampling_benchmark": "sm",
                                                      "observables": {"o": "9**9**9"}}},
           "training": {"method": "sally", "params": {"hidden_layer_sizes": [8], "max_epochs": 1}},
           "parameters": [{"name": "CWL2", "lha_block": "dim6", "lha_id": 2, "range": [-20, 20]},
                          {"name": "CPWL2", "lha_block": "dim6", "lha_id": 5, "range": [-20, 20]}],
           "benchmarks": LHE_BENCHMARKS, "plots": {"enabled": False}}
    config = tmp_path / "config" / "analysis.yaml"
    config.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(config)]) == 2
    assert "expression '9**9**9': the constant '9 ** 9 ** 9' overflows float64" in capsys.readouterr().err
    assert not (tmp_path / "config" / "out" / "events.h5").exists()
