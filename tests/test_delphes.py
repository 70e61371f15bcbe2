"""Tests of the Delphes ROOT reader on the shared Delphes files and corrupted copies."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("uproot")
pytest.importorskip("awkward")
pytest.importorskip("vector")

from reader_checks import assert_same_cutflows  # noqa: E402

from skminer.parameters import ParameterSpace  # noqa: E402
from skminer.simulation.cuts import AnyOf  # noqa: E402
from skminer.simulation.delphes import DelphesReader, iter_delphes_objects, read_delphes_objects  # noqa: E402

POINTS = {"sm": (0.0, 0.0), "w": (15.2, 0.1), "neg_w": (-15.4, 0.2), "ww": (0.3, 15.1), "neg_ww": (0.2, -15.3),
          "w_ww": (15.0, 15.0), "val_1": (5.0, -5.0), "val_2": (-10.0, 10.0)}


def space() -> ParameterSpace:
    s = ParameterSpace().add_parameter("CWL2", "dim6", 2, 2, (-20, 20)).add_parameter("CPWL2", "dim6", 5, 2, (-20, 20))
    for k, v in POINTS.items():
        s.add_benchmark(k, v)
    return s


@pytest.fixture(scope="module")
def files(shared_data):
    root = shared_data / "delphes" / "vbfh_ewdim6_delphes.root"
    lhe = shared_data / "mg5_vbfh_ewdim6" / "unweighted_events.lhe.gz"
    if not root.exists() or not lhe.exists():
        pytest.skip("Delphes/LHE test files missing")
    return root, lhe


def test_objects_match_branches(files):
    import uproot

    objects, weights = read_delphes_objects(files[0])
    assert objects.n_events == 2000
    tree = uproot.open(files[0])["Delphes"]
    jet_pt = tree["Jet/Jet.PT"].array()
    np.testing.assert_allclose(objects.scalars["njets"], np.asarray(tree["Jet_size"].array()), rtol=0)
    lead = np.array([max(v) if len(v) else np.nan for v in jet_pt.tolist()])
    from skminer.simulation.observables import Observable

    np.testing.assert_allclose(Observable("x", "j[0].pt").evaluate(objects), lead, rtol=1e-6)
    met = np.asarray(tree["MissingET/MissingET.MET"].array()[:, 0])
    np.testing.assert_allclose(Observable("m", "met.pt").evaluate(objects), met, rtol=1e-6)
    assert weights["all"].shape == (2000, 9) and weights["all"].dtype == np.float64
    np.testing.assert_array_equal(weights["event"], weights["all"][:, 0])
    assert 1.3 < objects.scalars["nphotons"].mean() < 1.6


def test_reader_with_lhe_names_cuts_and_trigger(files, tmp_path):
    root, lhe = files
    reader = DelphesReader(space())
    reader.add_sample(root, "sm", lhe_path=lhe)
    reader.add_observable("pt_j1", "j[0].pt", default=0.0).add_observable("m_aa", "(a[0] + a[1]).m")
    reader.add_observable("deta_jj", "abs(j[0].eta - j[1].eta)", default=-1.0)
    reader.add_cut("nphotons >= 2").add_cut(AnyOf(["a[0].pt > 40", "l[0].pt > 25"], name="trigger"))
    events = reader.save(tmp_path / "d.h5")
    flow = reader.cutflows[str(root)]
    assert [s.name for s in flow.steps] == ["nphotons >= 2", "trigger", "finite observables"]
    assert events.n_events == flow.n_passed and 900 < events.n_events < 1200
    assert abs(np.median(events.x[:, 1]) - 125) < 2 and np.mean(np.abs(events.x[:, 1] - 125) < 10) > 0.8
    # the sm column equals the nominal weight; all weights are per-event xsec / N_events (MG5 "average")
    np.testing.assert_allclose(events.weights[:, 0], 6.5954e-4 / 2000, rtol=1e-6)
    # morphing consistency across the Delphes chain: ratios of benchmark sums equal those from the LHE weights
    all_xs = DelphesReader(space()).add_sample(root, "sm", lhe_path=lhe).add_observable("n", "njets").read()
    xs = all_xs.weights.sum(axis=0)
    assert xs[0] == pytest.approx(6.5954e-4, rel=1e-6)
    assert 0.5 < xs[1] / xs[0] < 1.0 and 1.2 < xs[2] / xs[0] < 1.9


def test_weight_names_from_json(files, shared_data):
    root, _ = files
    names = json.loads((shared_data / "delphes" / "weight_names.json").read_text())["vbfh_ewdim6_delphes.root"]
    reader = DelphesReader(space(), benchmarks=["sm", "w"]).add_sample(root, "sm", weight_names=names[1:])
    events = reader.add_observable("n", "njets").read()
    tot = events.weights.sum(axis=0)
    reader2 = DelphesReader(space(), benchmarks=["sm", "w"], weight_ids={"w": "w"})
    events2 = reader2.add_sample(root, "sm", weight_names=names).add_observable("n", "njets").read()
    np.testing.assert_allclose(events2.weights.sum(axis=0), tot)
    with pytest.raises(ValueError, match="Weight.Weight has 9 entries.*3 weight names"):
        DelphesReader(space(), benchmarks=["sm"]).add_sample(root, "sm", weight_names=["a", "b", "c"]) \
            .add_observable("n", "njets").read()
    with pytest.raises(ValueError, match="no weight for benchmark 'w'"):
        DelphesReader(space(), benchmarks=["sm", "w"]).add_sample(root, "sm").add_observable("n", "njets").read()


def test_scale_pdf_systematics_on_delphes(shared_data):
    from skminer.simulation.systematics import Systematics

    root = shared_data / "delphes" / "skhep_pp_jj_delphes.root"
    lhe = shared_data / "skhep_testdata_lhe" / "pylhe-testfile-madgraph5-3.5.8-pp_to_jj.lhe.gz"
    syst = Systematics.from_lhe(lhe, scale="together", pdf=None)
    s = ParameterSpace().add_parameter("x").add_benchmark("b", [0.0])
    events = DelphesReader(s, systematics=syst).add_sample(root, "b", lhe_path=lhe).add_observable(
        "n", "njets").read()
    assert events.nuisance_names == ["scale"] and events.n_events == 1000
    import uproot

    w = np.asarray(uproot.open(root)["Delphes"]["Weight/Weight.Weight"].array(), dtype=np.float64)
    # ids '40' (muR=muF=2) and '1' (0.5) are entries 40 and 1 after the nominal one
    np.testing.assert_allclose(w[:, 0] * events.total_nuisance_factor([1.0]), w[:, 40], rtol=1e-6)
    np.testing.assert_allclose(w[:, 0] * events.total_nuisance_factor([-1.0]), w[:, 1], rtol=1e-6)


def test_corrupt_root_files(files, tmp_path):
    root, lhe = files
    data = root.read_bytes()
    trunc = tmp_path / "trunc.root"
    trunc.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.root"
    garbage.write_bytes(b"not root at all" * 100)
    for bad in (trunc, garbage):
        reader = DelphesReader(space(), benchmarks=["sm"]).add_sample(bad, "sm").add_observable("n", "njets")
        with pytest.raises(ValueError, match=bad.name):
            reader.save(tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()
    with pytest.raises(ValueError, match="no tree 'Nope'"):
        DelphesReader(space(), tree="Nope").add_sample(root, "sm").add_observable("n", "njets").read()



def test_chunked_reading_equals_one_chunk(files, tmp_path):
    """uproot.iterate in small chunks gives exactly the events of one chunk (and of the out-of-core file)."""
    root, lhe = files

    def reader(chunk_events):
        r = DelphesReader(space(), chunk_events=chunk_events).add_sample(root, "sm", lhe_path=lhe)
        r.add_sample(root, "w", lhe_path=lhe, k_factor=1.1)
        r.add_observable("pt_j1", "j[0].pt", default=0.0).add_observable("m_aa", "(a[0] + a[1]).m")
        return r.add_observable("met", "met.pt").add_observable("ht", "ht").add_cut("nphotons >= 2")

    one_reader = reader(10_000)
    one = one_reader.read()
    small_reader = reader(333)
    small = small_reader.read()
    streamed = reader(333).read_to_file(tmp_path / "d.h5").load()
    for events in (small, streamed):
        for name in ("x", "weights", "sampling_benchmark"):
            np.testing.assert_array_equal(getattr(events, name), getattr(one, name), err_msg=name)
        assert events.metadata["samples"] == one.metadata["samples"]
        assert_same_cutflows(events.metadata["cutflows"], one.metadata["cutflows"])
    objects, weights = read_delphes_objects(root)
    chunks = list(iter_delphes_objects(root, chunk_events=700))
    assert [c.n_events for c, _ in chunks] == [700, 700, 600]
    np.testing.assert_array_equal(np.concatenate([w["all"] for _, w in chunks]), weights["all"])
    np.testing.assert_array_equal(np.concatenate([c.scalars["njets"] for c, _ in chunks]), objects.scalars["njets"])
    with pytest.raises(ValueError, match="chunk_events"):
        DelphesReader(space(), chunk_events=0)
