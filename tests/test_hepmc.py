"""HepMC reader: jets (fastjet), isolation, b-tagging, weights by name, morphing, CLI; on the shared HepMC files."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("pyhepmc")
pytest.importorskip("fastjet")
ak = pytest.importorskip("awkward")
pytest.importorskip("vector")

from reader_checks import assert_same_cutflows  # noqa: E402

from skminer.morphing import Morpher  # noqa: E402
from skminer.parameters import ParameterSpace  # noqa: E402
from skminer.simulation import DelphesReader, HepMCReader, ObjectDefinitions  # noqa: E402
from skminer.simulation.hepmc import (  # noqa: E402
    HepMCParticles,
    hepmc_objects,
    iter_hepmc_particles,
    read_hepmc_particles,
)
from skminer.simulation.jets import is_b_hadron, isolated  # noqa: E402
from skminer.simulation.observables import make_vectors  # noqa: E402

YMT = {"ymt_150": 150.0, "ymt_173": 173.0, "ymt_200": 200.0, "ymt_neg173": -173.0}


def tth_space() -> ParameterSpace:
    s = ParameterSpace().add_parameter("ymt", "yukawa", 6, 2, (100.0, 250.0))
    for name, value in YMT.items():
        s.add_benchmark(name, [value])
    return s


@pytest.fixture(scope="module")
def tth(shared_data):
    path = shared_data / "hepmc" / "tth_pythia8_20ev.hepmc.gz"
    if not path.exists():
        pytest.skip("shared HepMC3 file missing")
    return path


def _particles(rows: list[list[tuple]]) -> HepMCParticles:
    """Particle records from per-event rows (pid, status, px, py, pz, e)."""
    table = np.array([r for ev in rows for r in ev], dtype=np.float64)
    n = len(rows)
    return HepMCParticles(np.array([len(ev) for ev in rows]), table[:, 0].astype(int), table[:, 1].astype(int),
                          table[:, 2], table[:, 3], table[:, 4], table[:, 5], np.zeros(len(table)),
                          np.ones((n, 1)), ["nominal"], float("nan"))


def test_b_hadron_ids():
    assert is_b_hadron(np.array([511, -521, 531, 541, 553, 5122, -5232, 5332, 10511])).all()
    assert not is_b_hadron(np.array([5, -5, 21, 411, 421, 4122, 211, 5101, 5203, 22, 11, 1000005])).any()


def test_clustering_merges_within_r_and_splits_beyond():
    # two 50 GeV particles 0.2 apart in phi, a third at Delta phi = 1.5: two anti-kt R = 0.4 jets
    def p(pt: float, phi: float) -> tuple:
        return (211, 1, pt * np.cos(phi), pt * np.sin(phi), 0.0, pt)

    parts = _particles([[p(50, 0.0), p(50, 0.2), p(30, 1.5)]])
    jets = hepmc_objects(parts, ObjectDefinitions(jet_radius=0.4, jet_pt_min=20.0))["j"]
    assert ak.to_list(ak.num(jets)) == [2]
    np.testing.assert_allclose(ak.to_list(jets.pt[0]), [100 * np.cos(0.1), 30.0], rtol=1e-9)
    jets_big = hepmc_objects(parts, ObjectDefinitions(jet_radius=2.0, jet_pt_min=20.0))["j"]
    assert ak.to_list(ak.num(jets_big)) == [1]
    # the pT threshold
    assert ak.to_list(ak.num(hepmc_objects(parts, ObjectDefinitions(jet_pt_min=40.0))["j"])) == [1]


def test_isolation_and_removal_from_jets():
    photon = (22, 1, 60.0, 0.0, 0.0, 60.0)
    near = (211, 1, 20.0 * np.cos(0.1), 20.0 * np.sin(0.1), 0.0, 20.0)  # 33% of the photon's pT within 0.3
    far = (211, 1, -25.0, 0.0, 0.0, 25.0)
    objs = hepmc_objects(_particles([[photon, far], [photon, near, far]]))
    assert ak.to_list(ak.num(objs["a"])) == [1, 0]
    # an isolated photon is not clustered into a jet; a non-isolated one is
    assert ak.to_list(ak.num(objs["j"])) == [1, 2]
    loose = hepmc_objects(_particles([[photon, near, far]]), ObjectDefinitions(isolation_max=0.5))
    assert ak.to_list(ak.num(loose["a"])) == [1]
    cand = make_vectors(ak.Array([[60.0]]), ak.Array([[0.0]]), ak.Array([[0.0]]), ak.Array([[0.0]]))
    parts = make_vectors(ak.Array([[60.0, 20.0]]), ak.Array([[0.0, 0.0]]), ak.Array([[0.0, 0.1]]),
                         ak.Array([[0.0, 0.0]]))
    assert ak.to_list(isolated(cand, parts, 0.3, 0.15)) == [[False]]
    assert ak.to_list(isolated(cand, parts, 0.05, 0.15)) == [[True]]


def test_btag_from_hadrons_and_efficiency():
    b_hadron = (511, 2, 40.0, 0.0, 10.0, 45.0)
    jet_parts = [(211, 1, 40.0, 1.0, 10.0, 42.0), (211, 1, 0.0, -50.0, 0.0, 50.0)]
    objs = hepmc_objects(_particles([[b_hadron, *jet_parts]]))
    assert ak.to_list(objs["j"].btag) == [[0.0, 1.0]]  # sorted by pT: the 50 GeV light jet first
    assert ak.to_list(ak.num(objs["b"])) == [1]
    none = hepmc_objects(_particles([[b_hadron, *jet_parts]] * 400), ObjectDefinitions(btag_efficiency=0.5),
                         random_state=3)
    rate = float(ak.mean(ak.num(none["b"])))
    assert 0.4 < rate < 0.6
    with pytest.raises(ValueError, match="btag_efficiency"):
        ObjectDefinitions(btag_efficiency=1.5)
    with pytest.raises(ValueError, match="unknown object definitions"):
        ObjectDefinitions.from_mapping({"jet_R": 0.4})


def test_tth_objects_are_physical(tth):
    """ttH(bb): before isolation and clustering there were 180-360 'photons' per event; now analysis objects."""
    objs = hepmc_objects(read_hepmc_particles(tth))
    n_a, n_l, n_j, n_b = (ak.to_numpy(ak.num(objs[k])) for k in ("a", "l", "j", "b"))
    assert n_a.max() <= 2 and n_l.max() <= 3
    assert n_j.min() >= 4 and 5 <= n_j.mean() <= 10  # Delphes on the same LHE events: 6.9 jets per event
    assert n_b.mean() >= 2.0  # four b quarks per event (t -> bW twice, H -> bb)
    assert ak.all(objs["j"].pt > 20.0) and ak.all(abs(objs["l"].eta) < 2.5)
    two_b = objs["b"][n_b >= 2]
    m_bb = ak.to_numpy((two_b[:, 0] + two_b[:, 1]).m)
    assert np.all(np.isfinite(m_bb)) and np.all(m_bb > 10.0)


def test_tth_reader_cross_sections_match_lhe_weights_and_morphing(tth, shared_data):
    space = tth_space()
    morpher = Morpher.from_space(space)
    reader = HepMCReader(space, morpher=morpher, morphing_basis=["ymt_150", "ymt_173", "ymt_200"])
    events = reader.add_sample(tth, "ymt_173").add_observable("ht", "ht").add_observable("n_b", "len(b)").read()
    assert events.n_events == 20
    xs = events.weights.sum(axis=0)
    # the LHE cross sections (unweighted events: every weight is sigma in pb), through Pythia and HepMC
    np.testing.assert_allclose(xs, [0.30037263, 0.399549, 0.53399579, 0.399549], rtol=1e-7)
    # sigma ~ ymt^2: morphing from 150/173/200 predicts the -173 weights event by event
    np.testing.assert_allclose(events.weights_at(np.array([[-173.0]]))[:, 0], events.weights[:, 3], rtol=1e-6)
    # the same LHE weights read from the Delphes file of the same LHE events (names from weight_names.json)
    root = shared_data / "delphes" / "tth_delphes.root"
    if root.exists():
        names = json.loads((shared_data / "delphes" / "weight_names.json").read_text())["tth_delphes.root"]
        delphes = DelphesReader(space).add_sample(root, "ymt_173", weight_names=names).add_observable(
            "n", "njets").read()
        np.testing.assert_allclose(delphes.weights.sum(axis=0), xs, rtol=1e-6)
    meta = events.metadata["samples"][0]
    assert meta["objects"]["jet_radius"] == 0.4 and meta["weight_ids"]["ymt_150"] == "ymt_150"


def test_tth_cuts_smearing_and_normalisation(tth):
    space = tth_space()
    base = HepMCReader(space, benchmarks=["ymt_173"]).add_sample(tth, "ymt_173", max_events=10)
    plain = base.add_observable("pt_j1", "j[0].pt").read()
    smeared = (HepMCReader(space, benchmarks=["ymt_173"], random_state=1).add_sample(tth, "ymt_173", max_events=10)
               .add_observable("pt_j1", "j[0].pt").set_smearing("j", pt_resolution=(0.1, 0.0)).read())
    ratio = smeared.x[:, 0] / plain.x[:, 0]
    assert np.all(ratio != 1.0) and 0.7 < ratio.mean() < 1.3
    cut = (HepMCReader(space, benchmarks=["ymt_173"]).add_sample(tth, "ymt_173", normalization=2.0)
           .add_observable("pt_j1", "j[0].pt").add_cut("len(b) >= 3").read())
    n_pass = cut.n_events
    assert 0 < n_pass < 20
    np.testing.assert_allclose(cut.weights.sum(), 2.0 * n_pass / 20)
    with pytest.raises(ValueError, match="GenCrossSection"):
        HepMCReader(space, normalization="xsec").add_sample(tth, "ymt_173").add_observable("h", "ht").read()
    with pytest.raises(ValueError, match="normalization"):
        HepMCReader(space, normalization="mean")


def test_hepmc2_weights_by_name(shared_data):
    path = shared_data / "mg5_test_inputs" / "test.hepmc.gz"
    if not path.exists():
        pytest.skip("HepMC2 test file missing")
    particles = read_hepmc_particles(path)
    assert particles.weights.shape == (10, 146)
    central = "DYN_SCALE=1_MUF=1.0_MUR=1.0_PDF=247000_MERGING=0.000"
    up = "DYN_SCALE=1_MUF=2.0_MUR=2.0_PDF=247000_MERGING=0.000"
    space = ParameterSpace().add_parameter("x").add_benchmark("sm", [0.0]).add_benchmark("alt", [1.0])
    events = (HepMCReader(space, weight_ids={"sm": central, "alt": up}, objects={"jet_pt_min": 5.0})
              .add_sample(path, "sm").add_observable("n_j", "njets").read())
    names = particles.weight_names
    expected = particles.weights[:, [names.index(central), names.index(up)]].mean(axis=0)
    np.testing.assert_allclose(events.weights.sum(axis=0), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="weight id 'nope'"):
        HepMCReader(space, weight_ids={"sm": "nope"}).add_sample(path, "sm").add_observable("n", "njets").read()


def _rewrite_weights(src, dst, edit, extra_names=()) -> None:
    """Copy a HepMC3 file with the weights of event ``k`` (0-based) replaced by ``edit(k, weights)``, the names
    ``extra_names`` appended to the run's weight names."""
    pyhepmc = pytest.importorskip("pyhepmc")
    with pyhepmc.open(src) as f:
        events = list(f)
    run_info = pyhepmc.GenRunInfo()
    run_info.tools = events[0].run_info.tools
    run_info.weight_names = [*events[0].run_info.weight_names, *extra_names]
    with pyhepmc.open(dst, "w") as out:
        for k, event in enumerate(events):
            weights = edit(k, list(event.weights))
            event.run_info = run_info
            event.weights = weights
            out.write(event)


def _with_variation_weights(src, dst) -> np.ndarray:
    """Copy of the ttH HepMC3 file with two extra named weights, a scale-like up/down pair varying per event
    (no shared HepMC file carries real scale variations: the HepMC2 file's MUR/MUF weights equal the central
    one). Returns the factors (up, down) relative to the nominal weight, shape (n_events, 2)."""
    factors = np.array([[1.1 + 0.01 * k, 0.9 - 0.02 * k] for k in range(20)])
    _rewrite_weights(src, dst, lambda k, w: [*w, w[0] * factors[k, 0], w[0] * factors[k, 1]],
                     extra_names=("mur_up", "mur_down"))
    return factors


def test_hepmc_weights_get_the_lhe_integrity_checks(tth, tmp_path):
    """The checks of LHE weights (implausible values, all-zero benchmarks) guard HepMC (and Delphes) weights."""
    huge = tmp_path / "huge.hepmc"
    _rewrite_weights(tth, huge, lambda k, w: [x * (1e30 if k == 2 and i == 3 else 1.0) for i, x in enumerate(w)])
    with pytest.raises(ValueError, match=r"huge\.hepmc: event 3 has weight 'ymt_200' = .*times the mean absolute"):
        HepMCReader(tth_space()).add_sample(huge, "ymt_173").add_observable("ht", "ht").read()
    zero = tmp_path / "zero.hepmc"
    _rewrite_weights(tth, zero, lambda k, w: [0.0 if i == 1 else x for i, x in enumerate(w)])
    with pytest.raises(ValueError, match=r"benchmark 'ymt_150' .* are 0 in all 20 events"):
        HepMCReader(tth_space()).add_sample(zero, "ymt_173").add_observable("ht", "ht").read()


def test_hepmc_systematics_reproduce_the_variation_weights(tth, tmp_path):
    """Nuisance parameters from named HepMC weights (eq. 19 of arXiv:1907.10621): nu = +-1 reproduces the stored
    variation weights event by event, as for LHE files; a missing weight name is an error naming it."""
    from skminer.simulation.systematics import Systematics, Variation

    path = tmp_path / "tth_syst.hepmc"
    factors = _with_variation_weights(tth, path)
    syst = Systematics([Variation("scale", "scale", up=("mur_up",), down=("mur_down",))])
    events = (HepMCReader(tth_space(), benchmarks=["ymt_173"], systematics=syst).add_sample(path, "ymt_173")
              .add_observable("ht", "ht").read())
    assert events.nuisance_names == ["scale"] and events.n_events == 20
    w0 = events.weights[:, 0]
    np.testing.assert_allclose(w0 * events.total_nuisance_factor(np.array([1.0])), w0 * factors[:, 0], rtol=1e-10)
    np.testing.assert_allclose(w0 * events.total_nuisance_factor(np.array([-1.0])), w0 * factors[:, 1], rtol=1e-10)
    np.testing.assert_allclose(events.total_nuisance_factor(np.array([0.0])), 1.0)
    missing = Systematics([Variation("s", "scale", up=("nope",), down=("mur_down",))])
    with pytest.raises(ValueError, match="nope"):
        (HepMCReader(tth_space(), benchmarks=["ymt_173"], systematics=missing).add_sample(path, "ymt_173")
         .add_observable("ht", "ht").read())


def test_cli_run_hepmc(tth, tmp_path):
    yaml = pytest.importorskip("yaml")
    from skminer.cli import main

    cfg = {
        "output": str(tmp_path / "out"), "seed": 0,
        "parameters": [{"name": "ymt", "lha_block": "yukawa", "lha_id": 6, "max_power": 2, "range": [100, 250]}],
        "benchmarks": {k: {"ymt": v} for k, v in YMT.items()},
        "simulation": {"simulator": "hepmc", "hepmc": {
            "files": [str(tth)], "sampling_benchmark": "ymt_173", "objects": {"jet_radius": 0.5},
            "observables": {"ht": "ht", "pt_b1": "b[0].pt if len(b) > 0 else 0.0"}}},
        "augmentation": {"n_samples": 200, "test_fraction": 0.5},
        "training": {"method": "sally", "params": {"hidden_layer_sizes": [8], "max_epochs": 2}},
        "inference": {"luminosity": 100.0, "histograms": ["ht"], "n_bins": 2, "grid": {"n_points": 5}},
        "plots": {"enabled": True, "formats": ["png"]},
    }
    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(path)]) == 0
    from skminer.events import EventSet

    events = EventSet.load(tmp_path / "out" / "events.h5")
    np.testing.assert_allclose(events.weights.sum(axis=0), [0.30037263, 0.399549, 0.53399579, 0.399549], rtol=1e-7)
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["theta_ref"] == [173.0]  # the sampling benchmark: the range of ymt excludes 0
    for name, lim in results["limits"].items():  # intervals per CL and the profile, for every method
        assert set(lim["intervals"]) == {"0.68", "0.95"}, name
        for iv in lim["intervals"]["0.68"]:
            assert 100.0 <= iv["lower"] <= iv["upper"] <= 250.0
        assert lim["profiles"]["ymt"]["values"][0] == 100.0
    assert (tmp_path / "out" / "pvalues.png").is_file()
    cfg["simulation"]["hepmc"]["objects"] = {"jet_R": 0.4}
    path.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(path)]) == 2


def test_streamed_event_by_event_in_chunks_equals_one_chunk(tth, shared_data, tmp_path):
    """pyhepmc streamed in chunks of a few events gives exactly the events of one chunk (deterministic b-tags),
    also out of core; an explicit cross section normalises the nominal weights summed chunk by chunk."""
    def reader(chunk_events, normalization="average"):
        r = HepMCReader(tth_space(), chunk_events=chunk_events, normalization=normalization)
        r.add_sample(tth, "ymt_173").add_sample(tth, "ymt_173", max_events=13)
        return r.add_observable("ht", "ht").add_observable("n_b", "len(b)").add_observable("met", "met.pt")

    one = reader(1000).read()
    for chunk_events in (3,):
        small = reader(chunk_events).read()
        for name in ("x", "weights", "sampling_benchmark"):
            np.testing.assert_array_equal(getattr(small, name), getattr(one, name), err_msg=name)
        assert small.metadata["samples"] == one.metadata["samples"]
        assert_same_cutflows(small.metadata["cutflows"], one.metadata["cutflows"])
    streamed = reader(7).read_to_file(tmp_path / "h.h5").load()
    np.testing.assert_array_equal(streamed.weights, one.weights)
    xsec_one, xsec_small = reader(1000, 2.0).read(), reader(3, 2.0).read()
    np.testing.assert_allclose(xsec_small.weights, xsec_one.weights, rtol=1e-14)
    whole = read_hepmc_particles(tth)
    chunks = list(iter_hepmc_particles(tth, chunk_events=6))
    assert [c.n_events for c in chunks] == [6, 6, 6, 2]
    np.testing.assert_array_equal(chunks[-1].cross_section, whole.cross_section)  # NaN: the file has none
    np.testing.assert_array_equal(np.concatenate([c.px for c in chunks]), whole.px)
    np.testing.assert_array_equal(np.concatenate([c.weights for c in chunks]), whole.weights)
    assert [c.n_events for c in iter_hepmc_particles(tth, chunk_events=6, max_events=8)] == [6, 2]
