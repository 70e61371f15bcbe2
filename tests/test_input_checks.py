"""Inputs never lose events or cross section silently: dropped events, observable defaults, short Delphes trees."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from skminer.config import ConfigError, validate_config
from skminer.parameters import ParameterSpace

LHE_XS = 6.5954e-4  # pb, MANIFEST.md


def _space() -> ParameterSpace:
    space = ParameterSpace()
    space.add_parameter("CWL2", lha_block="dim6", lha_id=2, max_power=2, range=(-20.0, 20.0))
    space.add_parameter("CPWL2", lha_block="dim6", lha_id=5, max_power=2, range=(-20.0, 20.0))
    return space.add_benchmark("sm", [0.0, 0.0])


def _delphes(shared_data, **kwargs):
    pytest.importorskip("uproot")
    from skminer.simulation.delphes import DelphesReader

    root = shared_data / "delphes" / "vbfh_ewdim6_delphes.root"
    lhe = shared_data / "mg5_vbfh_ewdim6" / "unweighted_events.lhe.gz"
    if not root.is_file() or not lhe.is_file():
        pytest.skip("Delphes / LHE sample missing")
    observables = kwargs.pop("observables", {"n_a": "len(a)"})
    cuts = kwargs.pop("cuts", None)
    reader = DelphesReader(_space(), observables=observables, cuts=cuts, **kwargs)
    reader.add_sample(root, "sm", lhe_path=lhe)
    return reader


def test_delphes_tree_shorter_than_lhe(shared_data, caplog):
    """case delphes-fewer-events-than-lhe: 2000 tree events for 5000 LHE events are named; the choice is explicit."""
    with caplog.at_level(logging.WARNING, logger="skminer.simulation.delphes"):
        events = _delphes(shared_data).read()
    assert "2000 events, its LHE file 5000" in caplog.text and "missing_events='vetoed'" in caplog.text
    assert events.weights[:, 0].sum() == pytest.approx(LHE_XS, rel=1e-6)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="skminer.simulation.delphes"):
        vetoed = _delphes(shared_data, missing_events="vetoed").read()
    assert vetoed.weights[:, 0].sum() == pytest.approx(LHE_XS * 2000 / 5000, rel=1e-6)
    assert "LHE file" not in caplog.text  # an explicit choice is not warned about
    assert vetoed.metadata["samples"][0]["n_lhe_events"] == 5000
    explicit = _delphes(shared_data, missing_events="not_processed").read()
    assert explicit.weights[:, 0].sum() == pytest.approx(LHE_XS, rel=1e-6)
    with pytest.raises(ValueError, match="missing_events"):
        _delphes(shared_data, missing_events="maybe")


def test_dropped_events_are_warned_and_defaults_keep_them(shared_data, caplog):
    """An observable missing in most events (a third photon) removes them with a WARNING naming it and the count."""
    with caplog.at_level(logging.WARNING, logger="skminer.simulation"):
        events = _delphes(shared_data, observables={"pt_a3": "a[2].pt"}, missing_events="not_processed").read()
    n_kept = events.n_events
    assert n_kept < 2000 * 0.5
    assert f"observable 'pt_a3' removes {2000 - n_kept} of 2000 events" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="skminer.simulation"):
        kept = _delphes(shared_data, observables={"pt_a3": {"expression": "a[2].pt", "default": 0.0}},
                        missing_events="not_processed").read()
    assert kept.n_events == 2000 and np.sum(kept.x[:, 0] == 0.0) == 2000 - n_kept
    assert "removes" not in caplog.text
    # a cut on a missing object is named too
    with caplog.at_level(logging.WARNING, logger="skminer.simulation"):
        _delphes(shared_data, cuts=["a[2].pt > 10"], missing_events="not_processed").read()
    assert f"cut 'a[2].pt > 10' removes {2000 - n_kept} of 2000 events" in caplog.text
    assert "only because it refers to an object they lack" in caplog.text
    # any cut removing more than a few percent is named with its count, objects present or not
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="skminer.simulation"):
        selected = _delphes(shared_data, cuts=["len(j) >= 2"], missing_events="not_processed").read()
    removed = 2000 - selected.n_events
    assert removed > 0.02 * 2000
    assert f"cut 'len(j) >= 2' removes {removed} of 2000 events" in caplog.text
    assert "object they lack" not in caplog.text
    with pytest.raises(ValueError, match="needs 'expression'"):
        _delphes(shared_data, observables={"x": {"expr": "a[0].pt"}})


def test_config_flags_inconsistent_powers_and_morphing_keys(tmp_path, shared_data):
    lhe = shared_data / "mg5_vbfh_ewdim6" / "unweighted_events.lhe.gz"
    cfg = {"parameters": [{"name": "a", "max_power": 2}], "morphing": {"max_overall_power": 1},
           "benchmarks": {"sm": {"a": 0.0}, "one": {"a": 1.0}},
           "simulation": {"simulator": "lhe", "lhe": {"files": [str(lhe)], "observables": {"x": "j[0].pt"}}}}
    with pytest.raises(ConfigError, match=r"parameters\[0\].max_power.*exceeds morphing.max_overall_power"):
        validate_config(cfg, source="c.yaml")
    cfg["simulation"]["lhe"]["observables"] = {"x": {"expression": "j[0].pt", "default": 0.0}}
    cfg["morphing"]["max_overall_power"] = 2
    assert validate_config(cfg, source="c.yaml")["simulation"]["lhe"]["observables"]["x"]["default"] == 0.0
    cfg["simulation"]["lhe"]["observables"] = {"x": {"expression": "j[0].pt", "dflt": 0.0}}
    with pytest.raises(ConfigError, match="observables.x"):
        validate_config(cfg, source="c.yaml")
    with pytest.raises(ConfigError, match="morphing.fit"):
        validate_config({"morphing": {"fit": "pinv"}}, source="c.yaml")
    with pytest.raises(ConfigError, match="morphing.closure_error"):
        validate_config({"morphing": {"closure_error": 0}}, source="c.yaml")
    with pytest.raises(ConfigError, match="morphing.*closure_tol"):
        validate_config({"morphing": {"closure_tol": 1.0}}, source="c.yaml")
    cfg = validate_config({"morphing": {"fit": "least_squares", "closure_error": 0.05}}, source="c.yaml")
    assert cfg["morphing"] == {"max_overall_power": 2, "fit": "least_squares", "closure_tolerance": 100.0,
                               "closure_error": 0.05}


def test_demo_quick_passes_with_closure_table(tmp_path, capsys):
    """``skminer demo --quick`` exits 0 (binned observed likelihoods without empty bins) and reports its checks."""
    from skminer.cli import main

    assert main(["demo", "--quick", "--output", str(tmp_path / "q")]) == 0
    results = json.loads((tmp_path / "q" / "results.json").read_text())
    rows = results["morphing_closure"]["rows"]
    assert [r["benchmark"] for r in rows] == ["closure_check"] and rows[0]["status"] == "ok"
    assert results["negative_cross_sections"]["negative_points"] == []
    observed = results["observed_limits"]
    assert {"SALLY", "histogram x1", "exact (toy)"} <= set(observed) and observed["n_events"] > 0
    diagnostics = results["diagnostics"]
    assert len(diagnostics["score"]["mean_score"]) == 2 and diagnostics["score"]["full_over_truth"] > 0
    assert diagnostics["convergence"]["members"][0]["n_epochs"] == 3
    out = capsys.readouterr().out
    assert "morphing closure" in out
    for message in diagnostics["score"]["violations"] + diagnostics["convergence"]["violations"]:
        assert message in out  # every violation is printed


def test_cli_stops_on_a_morphing_that_does_not_close(tmp_path, shared_data, capsys):
    """Issue reproduction: the quadratic EWdim6 sample declared linear (max_power 1) with an automatic basis."""
    import yaml

    from skminer.cli import main

    lhe = shared_data / "mg5_vbfh_ewdim6" / "unweighted_events.lhe.gz"
    if not lhe.is_file():
        pytest.skip(f"{lhe} missing")
    points = {"sm": [0.0, 0.0], "w": [15.2, 0.1], "neg_w": [-15.4, 0.2], "ww": [0.3, 15.1], "neg_ww": [0.2, -15.3],
              "w_ww": [15.0, 15.0], "val_1": [5.0, -5.0], "val_2": [-10.0, 10.0]}
    cfg = {"output": "out",
           "parameters": [{"name": "CWL2", "lha_block": "dim6", "lha_id": 2, "max_power": 1, "range": [-20, 20]},
                          {"name": "CPWL2", "lha_block": "dim6", "lha_id": 5, "max_power": 1, "range": [-20, 20]}],
           "benchmarks": {k: dict(zip(["CWL2", "CPWL2"], v, strict=True)) for k, v in points.items()},
           "simulation": {"simulator": "lhe", "lhe": {"files": [str(lhe)], "sampling_benchmark": "sm",
                                                      "observables": {"pt_j1": "j[0].pt"}}}}
    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "morphing fails its closure test" in err and "above the gross threshold 0.01" in err
    assert not (tmp_path / "out" / "events.h5").exists()
    # with the right maximal powers the events are written and `skminer info` prints the closure table
    for p in cfg["parameters"]:
        p["max_power"] = 2
    path.write_text(yaml.safe_dump(cfg))
    from skminer.analysis import Analysis
    from skminer.config import load_config

    Analysis(load_config(path), progress=False).run(stages=("simulate",))
    assert main(["info", str(tmp_path / "out" / "events.h5")]) == 0
    out = capsys.readouterr().out
    assert "morphing closure" in out and out.count(" ok") == 2 and "ERROR" not in out
