"""Configuration schema: unknown keys at every depth, YAML's surprising types, names resolved before any stage."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

from skminer.cli import main
from skminer.config import DEFAULTS, ConfigError, load_config, validate_config

DATA = Path(__file__).parent / "data"


def _load_text(tmp_path: Path, text: str, name: str = "analysis.yaml") -> dict:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return load_config(path)


def _error(tmp_path: Path, text: str, name: str = "bad.yaml") -> str:
    with pytest.raises(ConfigError) as err:
        _load_text(tmp_path, text, name)
    message = str(err.value)
    assert name in message
    return message


@pytest.mark.parametrize(("text", "field", "suggestion"), [
    ("inference: {luminosty: 5.0}", "inference.luminosty", "luminosity"),
    ("training: {metod: carl}", "training.metod", "method"),
    ("inference: {grid: {n_point: 5}}", "inference.grid.n_point", "n_points"),
    ("augmentation: {prior: {kind: uniform, n_theta: 5}}", "augmentation.prior.n_theta", "n_thetas"),
    ("plots: {format: [png]}", "plots.format", "formats"),
    ("simulation: {toy: {n_dimm: 3}}", "simulation.toy.n_dimm", "n_dim"),
    ("simulation: {simulator: lhe, lhe: {files: [a.lhe], observables: {o: 'a[0].pt'}, cut: []}}\n"
     "parameters: [{name: k}]", "simulation.lhe.cut", "cuts"),
    ("parameters: [{name: k, rnage: [0, 1]}]\nsimulation: {simulator: lhe}", "parameters[0].rnage", "range"),
])
def test_unknown_keys_rejected_at_every_depth(tmp_path, text, field, suggestion):
    message = _error(tmp_path, text)
    assert f"field '{field}': unknown key (did you mean '{suggestion}'?)" in message


@pytest.mark.parametrize("name", ["nested_typo_inference_luminosty.yaml", "nested_typo_training_metod.yaml"])
def test_hostile_typo_cases_refused_before_anything_runs(tmp_path, name):
    cfg = tmp_path / name  # shared/cases/hostile-inputs/config
    cfg.write_text((DATA / "hostile_config" / name).read_text())
    assert main(["run", str(cfg)]) == 2
    assert not (tmp_path / "out").exists()  # nothing was computed or written


def test_alias_bomb_refused_with_bounded_memory(tmp_path):
    """A 0.7 KB file of nested aliases: refused naming the file, in a child process that stays small and fast."""
    bomb = tmp_path / "laughs.yaml"
    levels = [f"    {c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)]
    bomb.write_text("benchmarks:\n  b1:\n    a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
                    + "".join(levels) + "output: out\n")
    assert bomb.stat().st_size < 1024
    code = textwrap.dedent(f"""
        import resource, sys, time
        from skminer.config import ConfigError, load_config
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t = time.perf_counter()
        try:
            load_config({str(bomb)!r})
        except ConfigError as err:
            print(err)
        print("seconds", time.perf_counter() - t)
        print("maxrss_kib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        print("growth_kib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert "laughs.yaml: YAML aliases expand to more than" in out
    lines = dict(line.split() for line in out.splitlines() if line.startswith(("seconds", "maxrss_kib", "growth")))
    assert float(lines["seconds"]) < 5.0
    assert int(lines["maxrss_kib"]) < 1024**2  # peak RSS of the whole child under 1 GiB (the bomb needs far more)
    assert int(lines["growth_kib"]) < 64 * 1024  # and reading the file added less than 64 MiB to it


def test_moderate_aliases_still_load(tmp_path):
    cfg = _load_text(tmp_path, """
        training:
          method: sally
          params: &p {hidden_layer_sizes: [8], max_epochs: 1}
        augmentation: {prior: {kind: uniform, n_thetas: 5}}
        inference: {grid: {n_points: 3}}
    """)
    assert cfg["training"]["params"] == {"hidden_layer_sizes": [8], "max_epochs": 1}


def test_numeric_weight_ids_match_the_lhe_weights(tmp_path):
    """Unquoted numeric benchmark names (1001:) are the weight ids the LHE file has, exactly as when quoted."""
    pytest.importorskip("pylhe")
    from skminer.analysis import Analysis
    from skminer.events import EventSet

    src = DATA / "yaml_numeric_weight_ids"
    sums = {}
    for name in ("analysis.yaml", "analysis_quoted.yaml"):
        folder = tmp_path / name.split(".")[0]
        folder.mkdir()
        for f in src.iterdir():
            (folder / f.name).write_bytes(f.read_bytes())
        cfg = load_config(folder / name)
        assert cfg["simulation"]["lhe"]["sampling_benchmark"] == "1001"
        assert cfg["simulation"]["lhe"]["morphing_basis"] == ["1001", "1002", "1003"]
        assert list(cfg["benchmarks"]) == ["1001", "1002", "1003", "1004"]
        assert cfg["augmentation"]["theta_ref"] == "1001"
        Analysis(cfg, progress=False).run(stages=("simulate",))
        events = EventSet.load(Path(cfg["output"]) / "events.h5")
        sums[name] = dict(zip(events.benchmark_names, events.weights.sum(axis=0), strict=True))
    assert sums["analysis.yaml"] == sums["analysis_quoted.yaml"]
    # exact cross sections of the synthetic file (shared/cases/yaml-numeric-weight-ids/run.py), in pb
    truth = {"1001": 6.5954000e-04, "1002": 8.2506910e-04, "1003": 8.8325567e-04, "1004": 6.9364895e-04}
    assert set(sums["analysis.yaml"]) == set(truth)
    for name, sigma in truth.items():
        assert sums["analysis.yaml"][name] == pytest.approx(sigma, rel=1e-6)


@pytest.mark.parametrize(("text", "field", "hint"), [
    ("benchmarks: {0012: {theta1: 0.5}}", "benchmarks.0012", "write the name in quotes: '0012'"),
    ("benchmarks: {yes: {theta1: 0.5}}", "benchmarks.true", "boolean"),
    ("benchmarks: {1.5: {theta1: 0.5}}", "benchmarks.1.5", "number 1.5"),
    ("inference: {histograms: [0x1F]}", "inference.histograms[0]", "'0x1F' as the number 31"),
])
def test_names_that_yaml_changed_are_refused_with_a_hint(tmp_path, text, field, hint):
    message = _error(tmp_path, text)
    assert f"field '{field}'" in message and hint in message


def test_exponent_floats_are_numbers(tmp_path):
    """YAML 1.1 reads 1e-3 as a string; the configuration reads it as the float YAML 1.2 and users mean."""
    cfg = _load_text(tmp_path, """
        training: {method: sally, params: {lr: 1e-3, max_epochs: 2}}
        inference: {luminosity: 3e2}
    """)
    assert cfg["training"]["params"]["lr"] == 1e-3 and isinstance(cfg["training"]["params"]["lr"], float)
    assert cfg["inference"]["luminosity"] == 300.0
    assert type(cfg["training"]["params"]["max_epochs"]) is int  # plain ints, no YAML subclass


@pytest.mark.parametrize(("text", "field"), [
    ("seed: 1.5", "seed"),
    ("seed: true", "seed"),
    ("inference: {n_bins: '5'}", "inference.n_bins"),
    ("inference: {luminosity: '1e3'}", "inference.luminosity"),
    ("inference: {luminosity: .inf}", "inference.luminosity"),
    ("inference: {limits: 'yes'}", "inference.limits"),
    ("simulation: {n_events: 2.5e3}", "simulation.n_events"),
    ("plots: {formats: [jpg]}", "plots.formats[0]"),
])
def test_strict_types(tmp_path, text, field):
    assert f"field '{field}'" in _error(tmp_path, text)


@pytest.mark.parametrize(("text", "field", "words"), [
    ("training: {params: {hiden_layer_sizes: [8]}}", "training.params.hiden_layer_sizes",
     "did you mean 'hidden_layer_sizes'"),
    ("training: {method: carl, params: {alpha: 1.0}}", "training.params.alpha", "not a parameter of CARL"),
    ("training: {params: {lr: -1.0}}", "training.params", "lr"),
    ("training: {params: {activation: sigmoidish}}", "training.params", "activation"),
    ("training: {method: salley}", "training.method", "did you mean 'sally'"),
    ("inference: {histograms: [x1, [x2, pt]]}", "inference.histograms[1]", "unknown observable 'pt'"),
    ("inference: {theta_ref: smm}", "inference.theta_ref", "unknown benchmark 'smm'"),
    ("augmentation: {theta_ref: {theta3: 1.0}}", "augmentation.theta_ref", "unknown parameters ['theta3']"),
    ("inference: {observed: {theta: [0.1, 0.2, 0.3]}}", "inference.observed.theta", "one value per parameter"),
    ("augmentation: {prior: {kind: gaussian, mean: [0, 0]}}", "augmentation.prior", "needs mean and std"),
    ("augmentation: {prior: {kind: uniform, ranges: [[-1, 1]]}}", "augmentation.prior.ranges", "one entry per"),
    ("augmentation: {prior: {kind: benchmarks, names: [sm, nope]}}", "augmentation.prior.names[1]", "'nope'"),
    ("augmentation: {prior: {kind: uniform, mean: [0, 0]}}", "augmentation.prior", "takes ['ranges']"),
    ("parameters: [{name: k}]", "parameters", "defines its own parameters"),
    ("benchmarks: {sm: [0, 0]}", "benchmarks", "benchmarks of the built-in simulator"),
    ("benchmarks: {far: [0, 0, 1]}", "benchmarks.far", "one value per parameter"),
    ("simulation: {toy: {n_dim: 0}}", "simulation.toy", "n_dim"),
])
def test_names_and_parameters_resolved_before_the_first_stage(tmp_path, text, field, words):
    message = _error(tmp_path, text)
    assert f"field '{field}'" in message and words in message


def test_typo_in_training_params_stops_before_simulate(tmp_path, capsys):
    path = tmp_path / "a.yaml"
    path.write_text("output: out\nsimulation: {n_events: 1000}\ntraining: {params: {hiden_layer_sizes: [8]}}\n")
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "a.yaml: field 'training.params.hiden_layer_sizes'" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_all_errors_reported_together(tmp_path):
    message = _error(tmp_path, "seed: x\ninference: {luminosty: 1, n_bins: 0}\nplots: {enabled: 1}")
    for field in ("seed", "inference.luminosty", "inference.n_bins", "plots.enabled"):
        assert f"field '{field}'" in message
    assert len(message.splitlines()) == 4


def test_lhe_names_resolved(tmp_path):
    lhe = tmp_path / "e.lhe"
    lhe.write_text("")
    message = _error(tmp_path, """
        parameters: [{name: k, range: [-1, 1]}, {name: k}]
        benchmarks: {sm: {k: 0.0}, b1: {kk: 1.0}}
        simulation:
          simulator: lhe
          lhe:
            files: [e.lhe, missing.lhe]
            observables: {pt: "a[0].pt", bad: "a[0].pt +"}
            cuts: ["import os"]
            sampling_benchmark: smm
            morphing_basis: [sm, sm2]
            weight_ids: {b2: "2"}
        inference: {histograms: [eta]}
    """)
    expected = ["parameters': duplicate parameter names ['k']", "benchmarks.b1': unknown parameters ['kk']",
                "simulation.lhe.files': file not found", "simulation.lhe.observables.bad': ",
                "simulation.lhe.cuts[0]': ", "simulation.lhe.sampling_benchmark': unknown benchmark 'smm'",
                "simulation.lhe.morphing_basis[1]': unknown benchmark 'sm2'",
                "simulation.lhe.weight_ids.b2': unknown benchmark", "inference.histograms[0]': unknown observable"]
    for words in expected:
        assert words in message, words


def test_toy_benchmarks_are_simulated(tmp_path):
    from skminer.analysis import Analysis
    from skminer.events import EventSet

    cfg = validate_config({"output": str(tmp_path / "o"), "simulation": {"n_events": 500},
                           "benchmarks": {"far": {"theta1": 0.5, "theta2": -0.5}}}, source="x")
    Analysis(cfg, progress=False).run(stages=("simulate",))
    events = EventSet.load(tmp_path / "o" / "events.h5")
    assert "far" in events.benchmark_names
    np.testing.assert_allclose(events.space.benchmark("far"), [0.5, -0.5])


def test_defaults_and_output_are_plain_json(tmp_path):
    cfg = validate_config({}, source="x", base_dir=tmp_path)
    assert cfg["output"] == str(tmp_path / DEFAULTS["output"])
    assert cfg["inference"]["luminosity"] == 1000.0 and cfg["training"]["method"] == "sally"
    assert json.loads(json.dumps(cfg)) == cfg  # nothing but JSON types (the stage keys hash it)
    yaml.safe_dump(cfg)


@pytest.mark.parametrize(("section", "method"), [("augmentation", "sally"), ("augmentation", "carl"),
                                                 ("inference", "sally"), ("inference", "sallino")])
def test_reference_point_given_once_is_used_by_both_stages(section, method):
    """docs/cli.md: inference.theta_ref defaults as augmentation.theta_ref; a local-score method is trained where
    its score is used, so a reference point given only for inference moves the training point too."""
    cfg = validate_config({section: {"theta_ref": [0.5, 0.0]}, "training": {"method": method}}, source="x")
    assert cfg["inference"]["theta_ref"] == [0.5, 0.0]
    expected = [0.5, 0.0] if section == "augmentation" or method != "carl" else None
    assert cfg["augmentation"]["theta_ref"] == expected


def test_ratio_method_keeps_its_own_denominator():
    cfg = validate_config({"training": {"method": "alices"}, "inference": {"theta_ref": [0.3, 0.0]}}, source="x")
    assert cfg["augmentation"]["theta_ref"] is None and cfg["inference"]["theta_ref"] == [0.3, 0.0]
    cfg = validate_config({"training": {"method": "carl"}, "augmentation": {"theta_ref": "mixed"},
                           "inference": {"theta_ref": [0.3, 0.0]}}, source="x")
    assert cfg["inference"]["theta_ref"] == [0.3, 0.0]  # a ratio is evaluated anywhere


@pytest.mark.parametrize(("aug", "inf", "same"), [([0.5, 0.0], [0.3, 0.0], False), ("theta1_plus", [1.0, 0.0], True),
                                                  ({"theta1": 0.5}, [0.5, 0.0], True), ("mixed", "sm", False)])
def test_local_score_reference_mismatch_refused_before_any_stage(tmp_path, aug, inf, same):
    text = yaml.safe_dump({"output": "out", "augmentation": {"theta_ref": aug}, "inference": {"theta_ref": inf},
                           "training": {"method": "sally"}})
    if same:
        assert _load_text(tmp_path, text)["inference"]["theta_ref"] == inf
        return
    message = _error(tmp_path, text)
    assert "field 'inference.theta_ref'" in message and "augmentation.theta_ref" in message
    assert main(["run", str(tmp_path / "bad.yaml")]) == 2
    assert not (tmp_path / "out").exists()


def test_sally_run_at_a_reference_point_off_the_origin(tmp_path):
    """A tiny SALLY analysis with augmentation.theta_ref only: the infer stage uses the training point."""
    cfg = {"output": "out", "seed": 1, "simulation": {"simulator": "toy", "n_events": 1000},
           "augmentation": {"n_samples": 300, "test_fraction": 0.5, "theta_ref": [0.5, 0.0]},
           "training": {"method": "sally", "params": {"hidden_layer_sizes": [4], "max_epochs": 1}},
           "inference": {"luminosity": 10.0, "limits": False, "n_bins": 3}, "plots": {"enabled": False}}
    path = tmp_path / "analysis.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(path)]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["theta_ref"] == [0.5, 0.0] and "full (SALLY)" in results["fisher_information"]


@pytest.mark.parametrize(("toy", "theta", "bad"), [({}, [5.0, 5.0], "theta1 = 5 outside [-1.0, 1.0]"),
                                                   ({}, {"theta2": -1.5}, "theta2 = -1.5 outside"),
                                                   ({"parameter_range": [-10.0, 10.0]}, [5.0, 5.0], None),
                                                   ({}, [1.0, -1.0], None)])
def test_observed_pseudo_data_outside_the_parameter_ranges_refused(tmp_path, toy, theta, bad):
    text = yaml.safe_dump({"output": "out", "simulation": {"toy": toy}, "inference": {"observed": {"theta": theta}}})
    if bad is None:
        assert _load_text(tmp_path, text)["inference"]["observed"]["theta"] == theta
        return
    message = _error(tmp_path, text)
    assert "field 'inference.observed.theta'" in message and bad in message


def test_toy_parameter_range_of_the_wrong_shape_names_the_argument(tmp_path):
    from skminer.simulation.toy import ToySimulator

    with pytest.raises(ValueError, match=r"parameter_range must be one \(low, high\) pair .* got \[\(-2, 2\), "
                                         r"\(-2, 2\)\] \(shape \(2, 2\)\)"):
        ToySimulator(parameter_range=[(-2, 2), (-2, 2)])
    for bad in ([1.0, -1.0], [0.0, float("inf")], ["a", 1.0], [True, 2.0], 3.0):
        with pytest.raises(ValueError, match="parameter_range"):
            ToySimulator(parameter_range=bad)
    message = _error(tmp_path, "simulation: {toy: {parameter_range: [[-2, 2], [-2, 2]]}}")
    assert "field 'simulation.toy'" in message and "parameter_range must be one (low, high) pair" in message
