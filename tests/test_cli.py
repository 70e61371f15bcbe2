"""The command line and the config-driven analysis: demo end to end, resumable stages, config errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from skminer.cli import main
from skminer.config import ConfigError, load_config, validate_config
from skminer.methods import METHODS

TINY = {
    "seed": 3,
    "simulation": {"simulator": "toy", "n_events": 4000},
    "augmentation": {"n_samples": 2000, "test_fraction": 0.5},
    "training": {"method": "sally", "params": {"hidden_layer_sizes": [16], "max_epochs": 2}},
    "inference": {"luminosity": 50.0, "histograms": ["x1", ["x1", "x2"]], "n_bins": 5, "grid": {"n_points": 5},
                  "observed": {"theta": [0.5, -0.5]}},
    "plots": {"formats": ["png"]},
}


def _write(tmp_path: Path, cfg: dict, name: str = "analysis.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def test_run_writes_results_and_reuses_stages(tmp_path, capsys):
    cfg = dict(TINY, output="out")
    path = _write(tmp_path, cfg)
    assert main(["run", str(path)]) == 0
    out = tmp_path / "out"
    for name in ("events.h5", "model.skm", "results.json", "fisher_contours.png", "pvalues.png", "pvalues_observed.png",
                 "observables.png", "stages.json"):
        assert (out / name).is_file(), name
    results = json.loads((out / "results.json").read_text())
    info = results["fisher_information"]
    assert {"rate", "truth", "histogram x1", "histogram x1 vs x2", "full (SALLY)", "exact (toy)"} <= set(info)
    truth = np.asarray(info["truth"])
    assert truth.shape == (2, 2) and np.all(np.linalg.eigvalsh(truth) > 0)
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["stages"].values()) == {"ran"}
    observed = results["observed_limits"]
    assert observed["n_events"] > 0 and set(observed) == {"n_events", "histogram x1", "SALLY", "exact (toy)"}
    assert set(results["limits"]) == {"histogram x1", "SALLY", "exact (toy)"}
    assert results["limits"]["exact (toy)"]["best_fit"] == [0.0, 0.0]  # Asimov data at theta_ref
    p_obs = np.load(out / "results.npz")["pvalues_observed_SALLY"]
    assert p_obs.shape == (25,) and p_obs.max() == pytest.approx(1.0)

    # a second run reuses everything; changing the inference config reruns only infer and plot
    mtime = (out / "model.skm").stat().st_mtime_ns
    assert main(["run", str(path)]) == 0
    assert set(json.loads((out / "summary.json").read_text())["stages"].values()) == {"reused"}
    cfg["inference"] = dict(cfg["inference"], luminosity=80.0)
    _write(tmp_path, cfg)
    assert main(["run", str(path)]) == 0
    stages = json.loads((out / "summary.json").read_text())["stages"]
    assert stages == {"simulate": "reused", "augment": "reused", "train": "reused", "infer": "ran", "plot": "ran"}
    assert (out / "model.skm").stat().st_mtime_ns == mtime
    assert json.loads((out / "results.json").read_text())["luminosity"] == 80.0
    printed = capsys.readouterr().out
    assert "Fisher information" in printed


@pytest.mark.parametrize(("method", "params"), [("alices", {"alpha": 0.5}), ("scandal", {"alpha": 0.01}),
                                                ("nde", {"transforms": 2}), ("sallino", {"n_bins": 5}),
                                                ("double_carl", {})])
def test_run_with_ratio_and_density_methods(tmp_path, method, params):
    cfg = dict(TINY, output="out", training={"method": method, "params": {"hidden_layer_sizes": [16],
                                                                          "max_epochs": 2, **params}})
    cfg["augmentation"] = dict(TINY["augmentation"], prior={"kind": "uniform", "n_thetas": 20})
    cfg["inference"] = dict(TINY["inference"], grid={"n_points": 3})
    assert main(["run", str(_write(tmp_path, cfg))]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    name = METHODS[method].class_name  # the analysis runner knows methods only through the table
    assert name in results["limits"] and name in results["observed_limits"]
    info = np.asarray(results["fisher_information"][f"full ({name})"])  # from score_at at theta_ref
    assert info.shape == (2, 2) and np.all(np.isfinite(info))
    assert len(results["limits"][name]["best_fit"]) == 2
    # the ratio closure of the expected limits, from the evaluations on the limit grid (3 x 3, reference excluded)
    assert len(results["diagnostics"]["ratio_on_limit_grid"]["points"]) == 4
    if method == "sallino":  # calibrated on the test events at every grid point: Asimov best fit at theta_ref
        assert results["limits"][name]["best_fit"] == [0.0, 0.0]
    if method == "nde":
        assert np.load(tmp_path / "out" / "train_sample.npz", allow_pickle=False).files.count("t_xz") == 0


def test_demo_write_config_roundtrips(tmp_path):
    path = tmp_path / "demo.yaml"
    assert main(["demo", "--write-config", str(path)]) == 0
    cfg = load_config(path)
    assert cfg["training"]["method"] == "sally"
    assert main(["demo", "--method", "alices", "--write-config", str(path)]) == 2  # exists: kept without --force
    assert load_config(path)["training"]["method"] == "sally"
    assert main(["demo", "--method", "alices", "--write-config", str(path), "--force"]) == 0
    cfg = load_config(path)
    assert cfg["training"]["method"] == "alices" and cfg["training"]["params"]["alpha"] == 0.01


def test_demo_write_config_output_is_relative_to_the_file(tmp_path, monkeypatch):
    # an absolute output path made the written config unusable once its folder was moved or shared
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cfg").mkdir()
    assert main(["demo", "--write-config", "cfg/demo.yaml", "--output", "cfg/run"]) == 0
    assert yaml.safe_load((tmp_path / "cfg" / "demo.yaml").read_text())["output"] == "run"
    (tmp_path / "cfg").rename(tmp_path / "moved")
    assert Path(load_config(tmp_path / "moved" / "demo.yaml")["output"]) == tmp_path / "moved" / "run"
    # the default output (./skminer-demo) is not under cfg/: kept absolute
    assert main(["demo", "--write-config", "moved/other.yaml"]) == 0
    written = yaml.safe_load((tmp_path / "moved" / "other.yaml").read_text())["output"]
    assert written == str(tmp_path / "skminer-demo")
    assert main(["demo", "--write-config", "here.yaml"]) == 0
    assert yaml.safe_load((tmp_path / "here.yaml").read_text())["output"] == "skminer-demo"


def test_ctrl_c_ends_with_one_line_and_status_130(tmp_path, capsys, monkeypatch):
    # Ctrl-C in a stage ended with a traceback; the finished stages are kept and a rerun continues after them
    from skminer.analysis import Analysis

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(Analysis, "_augment", interrupted)
    path = _write(tmp_path, dict(TINY, output="out"))
    capsys.readouterr()
    assert main(["run", str(path)]) == 130
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (  # before it: the progress bar
        "skminer: interrupted by the user; finished stages are kept (stages.json), rerun the same command to "
        "continue from the interrupted stage")
    assert "Traceback" not in err
    assert list(json.loads((tmp_path / "out" / "stages.json").read_text())) == ["simulate"]


def test_info_command(tmp_path, capsys):
    from skminer.simulation.toy import ToySimulator

    path = ToySimulator().simulate(500, random_state=0).save(tmp_path / "ev.h5")
    assert main(["info", str(path)]) == 0
    assert "cross section" in capsys.readouterr().out


@pytest.mark.parametrize(("change", "field"), [
    ({"training": {"method": "magic"}}, "training.method"),
    ({"seed": "abc"}, "seed"),
    ({"inference": {"luminosity": -1}}, "inference.luminosity"),
    ({"simulation": {"simulator": "lhe"}}, "simulation.lhe.files"),
    ({"bogus": 1}, "bogus"),
    ({"inference": {"histograms": [["x1"]]}}, "inference.histograms"),
    ({"augmentation": {"test_fraction": 1.5}}, "augmentation.test_fraction"),
    ({"inference": {"observed": {"file": "nope.h5"}}}, "inference.observed.file"),
    ({"inference": {"observed": {"theta": [0, 0], "file": "x"}}}, "inference.observed"),
])
def test_bad_config_names_the_field(tmp_path, change, field):
    path = _write(tmp_path, change, "bad.yaml")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert field in str(err.value) and "bad.yaml" in str(err.value)
    assert main(["run", str(path)]) == 2


def test_missing_and_invalid_yaml(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.yaml")]) == 2
    assert "not found" in capsys.readouterr().err
    bad = tmp_path / "broken.yaml"
    bad.write_text("training: [unclosed")
    with pytest.raises(ConfigError, match="broken.yaml"):
        load_config(bad)


def test_validate_config_fills_defaults():
    cfg = validate_config({}, source="x")
    assert cfg["training"]["method"] == "sally" and cfg["inference"]["luminosity"] > 0


VBFH_POINTS = {"sm": [0.0, 0.0], "w": [15.2, 0.1], "neg_w": [-15.4, 0.2], "ww": [0.3, 15.1], "neg_ww": [0.2, -15.3],
               "w_ww": [15.0, 15.0], "val_1": [5.0, -5.0], "val_2": [-10.0, 10.0]}


@pytest.mark.parametrize("kind", ["lhe", "delphes"])
def test_run_on_real_madgraph_events(tmp_path, shared_data, kind):
    """A whole analysis from a real MG5 sample with reweighting (parton level or through Pythia + Delphes)."""
    lhe = shared_data / "mg5_vbfh_ewdim6" / "unweighted_events.lhe.gz"
    root = shared_data / "delphes" / "vbfh_ewdim6_delphes.root"
    for f in (lhe, root):
        if not f.is_file():
            pytest.skip(f"{f} missing")
    observables = {"pt_j1": "j[0].pt", "dphi_jj": "abs(j[0].deltaphi(j[1]))", "m_aa": "(a[0] + a[1]).m"}
    section = {"files": [str(lhe)], "sampling_benchmark": "sm", "observables": observables}
    if kind == "delphes":
        section.update(files=[str(root)], lhe_files=[str(lhe)], cuts=["len(j) >= 2", "len(a) >= 2"])
    cfg = {
        "output": "out", "seed": 1,
        "parameters": [{"name": "CWL2", "lha_block": "dim6", "lha_id": 2, "range": [-20.0, 20.0]},
                       {"name": "CPWL2", "lha_block": "dim6", "lha_id": 5, "range": [-20.0, 20.0]}],
        "benchmarks": {k: dict(zip(["CWL2", "CPWL2"], v, strict=True)) for k, v in VBFH_POINTS.items()},
        "simulation": {"simulator": kind, kind: section},
        "augmentation": {"n_samples": 2000, "test_fraction": 0.4},
        "training": {"method": "sally", "params": {"hidden_layer_sizes": [16], "max_epochs": 2}},
        "inference": {"luminosity": 3.0e5, "histograms": ["pt_j1"], "n_bins": 5, "grid": {"n_points": 5}},
    }
    assert main(["run", str(_write(tmp_path, cfg))]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert {"truth", "rate", "histogram pt_j1", "full (SALLY)"} <= set(results["fisher_information"])
    from skminer.events import EventSet

    events = EventSet.load(tmp_path / "out" / "events.h5")
    assert events.observable_names == ["pt_j1", "dphi_jj", "m_aa"] and len(events.morphing_basis) == 6
    if kind == "delphes":
        assert 0 < len(events) < 2000  # the cuts removed events without two jets and two photons
    # whichever basis was selected, morphing reproduces the benchmarks outside it (Delphes stores float32)
    others = [b for b in events.benchmark_names if b not in events.morphing_basis]
    assert others
    for name in others:
        np.testing.assert_allclose(events.weights_at(name), events.weights[:, events.benchmark_index(name)],
                                   rtol=1e-4 if kind == "lhe" else 1e-3)
    assert (tmp_path / "out" / "morphing_basis.png").is_file()


def test_reader_config_errors(tmp_path):
    cfg = {"parameters": [{"name": "a"}], "simulation": {"simulator": "delphes", "delphes": {
        "files": ["missing.root"], "observables": {"x": "j[0].pt"}}}}
    with pytest.raises(ConfigError, match="simulation.delphes.files.*file not found"):
        validate_config(cfg, source="c.yaml", base_dir=tmp_path)
    (tmp_path / "a.root").write_bytes(b"")
    cfg["simulation"]["delphes"] = {"files": ["a.root"], "observables": {"x": "j[0].pt"}, "bogus": 1}
    with pytest.raises(ConfigError, match="simulation.delphes.*bogus"):
        validate_config(cfg, source="c.yaml", base_dir=tmp_path)
    cfg["simulation"]["delphes"] = {"files": ["a.root"], "observables": {"x": "j[0].pt"}, "lhe_files": []}
    with pytest.raises(ConfigError, match="lhe_files"):
        validate_config(cfg, source="c.yaml", base_dir=tmp_path)


def test_run_with_ensemble(tmp_path):
    cfg = dict(TINY, output="out", training={"method": "sally", "n_ensemble": 2,
                                             "params": {"hidden_layer_sizes": [8], "max_epochs": 2}})
    cfg["inference"] = dict(TINY["inference"], limits=False, observed=None)
    assert main(["run", str(_write(tmp_path, cfg))]) == 0
    out = tmp_path / "out"
    assert (out / "fisher_ensemble.png").is_file()
    members = np.load(out / "results.npz")["fisher_members"]
    assert members.shape == (2, 2, 2)
    mean = np.asarray(json.loads((out / "results.json").read_text())["fisher_information"]["full (SALLY)"])
    np.testing.assert_allclose(mean, members.mean(axis=0))


def test_run_with_systematics_from_lhe_weight_groups(tmp_path, shared_data):
    """Scale/PDF weights become nuisance parameters; SALLY learns their score; informations are profiled.

    The QCD dijet file has no EFT reweighting, so a stand-in parameter k morphs linearly between the nominal
    weight (k = 0) and the muR = 2 weight (id "35", k = 1): a mechanical check of the whole chain.
    """
    lhe = shared_data / "skhep_testdata_lhe" / "pylhe-testfile-madgraph5-3.5.8-pp_to_jj.lhe.gz"
    if not lhe.is_file():
        pytest.skip(f"{lhe} missing")
    cfg = {
        "output": "out", "seed": 2,
        "parameters": [{"name": "k", "max_power": 1, "range": [-1.0, 1.0]}],
        "benchmarks": {"sm": {"k": 0.0}, "mur2": {"k": 1.0}},
        "simulation": {"simulator": "lhe", "lhe": {
            "files": [str(lhe)], "sampling_benchmark": "sm", "weight_ids": {"mur2": "35"},
            "observables": {"pt_j1": "j[0].pt", "eta_j1": "j[0].eta"},
            "systematics": {"scale": "envelope", "pdf": "hessian", "max_pdf_members": 2}}},
        "augmentation": {"n_samples": 1000, "test_fraction": 0.4},
        "training": {"method": "sally", "params": {"hidden_layer_sizes": [8], "max_epochs": 2}},
        "inference": {"luminosity": 1.0e-3, "histograms": ["pt_j1"], "n_bins": 4, "grid": {"n_points": 5}},
    }
    assert main(["run", str(_write(tmp_path, cfg))]) == 0
    from skminer.events import EventSet

    events = EventSet.load(tmp_path / "out" / "events.h5")
    assert events.nuisance_names[0] == "scale" and len(events.nuisance_names) == 3
    sample = np.load(tmp_path / "out" / "train_sample.npz")
    assert sample["t_xz"].shape[1] == 1 + 3  # parameter score and the three nuisance scores
    info = {k: np.asarray(v) for k, v in
            json.loads((tmp_path / "out" / "results.json").read_text())["fisher_information"].items()}
    for name in ("truth", "histogram pt_j1", "full (SALLY)"):
        profiled = info[f"{name}, nuisance profiled"]
        assert profiled.shape == (1, 1) and 0 <= profiled[0, 0] <= info[name][0, 0] * (1 + 1e-9), name
    # the scale uncertainty is what k mimics here: profiling it removes most of the truth information
    assert info["truth, nuisance profiled"][0, 0] < 0.5 * info["truth"][0, 0]


def test_observed_limits_from_an_event_file(tmp_path):
    from skminer.events import EventSet
    from skminer.simulation import ToySimulator

    toy = ToySimulator()
    x = toy.sample(300, [0.6, 0.0], random_state=1)
    data = EventSet(x[:, ::-1], np.ones((300, 1)), observable_names=["x2", "x1"], benchmark_names=["sm"],
                    space=toy.space)  # columns in another order: matched by name
    data.save(tmp_path / "data.h5")
    cfg = dict(TINY, output="out", inference=dict(TINY["inference"], observed={"file": "data.h5"}, luminosity=300.0,
                                                  grid={"n_points": 9}))
    assert main(["run", str(_write(tmp_path, cfg))]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["observed_limits"]["n_events"] == 300
    # 300 events drawn at theta1 = 0.6: the histogram fit lands on the positive side of theta1
    assert results["observed_limits"]["histogram x1"]["best_fit"][0] > 0


def test_empty_config_file_refused_naming_it(tmp_path, capsys):
    for text in ("", "# only a comment\n"):
        path = tmp_path / "empty.yaml"
        path.write_text(text)
        with pytest.raises(ConfigError, match=r"empty.yaml: the configuration file is empty"):
            load_config(path)
        assert main(["run", str(path)]) == 2
        assert "empty.yaml: the configuration file is empty" in capsys.readouterr().err
    assert not (tmp_path / "skminer-output").exists()
    (tmp_path / "defaults.yaml").write_text("{}")
    assert load_config(tmp_path / "defaults.yaml")["training"]["method"] == "sally"


def test_unusable_output_folder_is_a_failed_write_naming_the_path(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cfg = dict(TINY, output=str(blocker / "out"))
    assert main(["run", str(_write(tmp_path, cfg))]) == 1
    err = capsys.readouterr().err
    assert f"cannot create or write the output folder {blocker / 'out'}" in err and "Errno" not in err


def test_disabled_plots_are_reported_off(tmp_path, capsys):
    cfg = {"output": "out", "seed": 1, "simulation": {"simulator": "toy", "n_events": 1000},
           "augmentation": {"n_samples": 300, "test_fraction": 0.5},
           "training": {"method": "sally", "params": {"hidden_layer_sizes": [4], "max_epochs": 1}},
           "inference": {"luminosity": 10.0, "limits": False, "n_bins": 3}, "plots": {"enabled": False}}
    assert main(["run", str(_write(tmp_path, cfg))]) == 0
    stages = json.loads((tmp_path / "out" / "summary.json").read_text())["stages"]
    assert stages["plot"] == "off" and stages["infer"] == "ran"
    assert "plot (off)" in capsys.readouterr().out
