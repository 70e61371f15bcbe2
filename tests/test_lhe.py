"""Tests of the LHE reader on real MG5 / scikit-hep-testdata files and on corrupted copies."""

from __future__ import annotations

import gzip
import math

import numpy as np
import pytest

pytest.importorskip("pylhe")
pytest.importorskip("awkward")
pytest.importorskip("vector")

from skminer.events import ChunkedEventSet, EventSet  # noqa: E402
from skminer.parameters import ParameterSpace  # noqa: E402
from skminer.simulation.lhe import LHEReader, parse_reweight_points, read_lhe_info  # noqa: E402
from skminer.simulation.smearing import ParticleSmearing  # noqa: E402

VBFH_POINTS = {"sm": (0.0, 0.0), "w": (15.2, 0.1), "neg_w": (-15.4, 0.2), "ww": (0.3, 15.1), "neg_ww": (0.2, -15.3),
               "w_ww": (15.0, 15.0), "val_1": (5.0, -5.0), "val_2": (-10.0, 10.0)}
VBFH_XSEC = {"sm": 6.5954e-4, "w": 5.530e-4, "neg_w": 1.0275e-3, "ww": 8.179e-4, "neg_ww": 7.917e-4,
             "w_ww": 6.573e-4, "val_1": 6.136e-4, "val_2": 9.695e-4}


def vbfh_space() -> ParameterSpace:
    space = ParameterSpace()
    space.add_parameter("CWL2", "dim6", 2, 2, (-20, 20)).add_parameter("CPWL2", "dim6", 5, 2, (-20, 20))
    for name, values in VBFH_POINTS.items():
        space.add_benchmark(name, values)
    return space


@pytest.fixture(scope="module")
def vbfh(shared_data):
    path = shared_data / "mg5_vbfh_ewdim6" / "unweighted_events.lhe.gz"
    if not path.exists():
        pytest.skip(f"{path} missing")
    return path


def test_vbfh_benchmarks_cross_sections_and_observables(vbfh, tmp_path):
    reader = LHEReader(vbfh_space())
    reader.add_sample(vbfh, sampling_benchmark="sm")
    reader.add_observable("pt_j1", "j[0].pt").add_observable("m_aa", "(a[0] + a[1]).m")
    reader.add_observable("dphi_jj", "abs(j[0].deltaphi(j[1]))").add_observable("n_j", "njets")
    events = reader.save(tmp_path / "vbfh.h5")
    assert events.n_events == 5000
    info = read_lhe_info(vbfh)
    assert info.event_norm == "average" and info.cross_section == pytest.approx(6.5954e-4, rel=1e-12)
    xs = events.weights.sum(axis=0)
    np.testing.assert_allclose(xs[0], info.cross_section, rtol=1e-9)  # same as the <init> block
    for k, name in enumerate(events.benchmark_names):
        assert xs[k] == pytest.approx(VBFH_XSEC[name], rel=2e-3), name  # MG5's printed cross sections
    np.testing.assert_allclose(events.x[:, 1], 125.0, atol=0.1)  # h -> a a: the Higgs mass
    assert np.all(events.x[:, 3] == 2) and np.all(events.x[:, 2] <= np.pi)
    assert np.all(events.sampling_benchmark == 0)
    assert events.weights.dtype == np.float64
    loaded = EventSet.load(tmp_path / "vbfh.h5")
    np.testing.assert_array_equal(loaded.weights, events.weights)
    assert loaded.observable_definitions[1] == "(a[0] + a[1]).m"
    assert loaded.metadata["samples"][0]["normalization"] == "average"
    pts = parse_reweight_points(info)
    assert pts["w"] == {("dim6", 2): 15.2, ("dim6", 5): 0.1} and pts["sm"] == {}


def test_morphing_golden_check_through_reader(vbfh):
    """The 6 basis benchmarks morph to val_1/val_2 per event (MANIFEST's golden test), via the EventSet."""
    from skminer.morphing import Morpher

    space = vbfh_space()
    reader = LHEReader(space, morpher=Morpher.from_space(space, max_overall_power=2),
                       morphing_basis=["sm", "w", "neg_w", "ww", "neg_ww", "w_ww"])
    reader.add_sample(vbfh, "sm").add_observable("pt_a1", "a[0].pt")
    events = reader.read()[:500]
    pred = events.weights_at(np.array([[5.0, -5.0], [-10.0, 10.0]]))
    truth = events.weights[:, [events.benchmark_index("val_1"), events.benchmark_index("val_2")]]
    np.testing.assert_allclose(pred, truth, rtol=2e-5)


def test_cuts_smearing_and_combination_of_samples(vbfh):
    space = vbfh_space()
    reader = LHEReader(space, benchmarks=["sm", "w"])
    reader.add_sample(vbfh, "sm").add_sample(vbfh, "w")
    reader.add_observable("pt_a1", "a[0].pt").add_cut("a[0].pt > 60", name="hard photon")
    events = reader.read()
    flow = reader.cutflows[f"{vbfh} (sample 1)"]
    assert [s.name for s in flow.steps] == ["hard photon", "finite observables"]
    assert events.n_events == sum(f.n_passed for f in reader.cutflows.values())
    # two samples of the same process are averaged: the cross section stays that of one file (after cuts)
    one = LHEReader(space, benchmarks=["sm", "w"])
    one.add_sample(vbfh, "sm").add_observable("pt_a1", "a[0].pt").add_cut("a[0].pt > 60")
    ref = one.read()
    np.testing.assert_allclose(events.weights.sum(axis=0), ref.weights.sum(axis=0), rtol=1e-12)
    assert set(np.unique(events.sampling_benchmark)) == {0, 1}
    # smearing and a 90 % photon efficiency: fewer photons, resolution visible in m_aa
    sm = LHEReader(space, benchmarks=["sm"], random_state=1).add_sample(vbfh, "sm")
    sm.set_smearing("a", ParticleSmearing(energy_resolution=(0.02, 0.5), efficiency=0.9))
    sm.add_observable("n_a", "len(a)").add_observable("m_aa", "(a[0] + a[1]).m", default=0.0)
    x = sm.read().x
    assert abs(x[:, 0].mean() - 1.8) < 0.02
    m = x[x[:, 0] == 2, 1]
    assert 1.0 < np.std(m) < 5.0 and abs(np.median(m) - 125.0) < 0.5
    # a background process is summed and gets the nominal weight in every benchmark column
    both = LHEReader(space, benchmarks=["sm", "w"])
    both.add_sample(vbfh, "sm").add_sample(vbfh, process="bkg", is_background=True).add_observable("pt", "a[0].pt")
    ev2 = both.read()
    xs = ev2.weights.sum(axis=0)
    np.testing.assert_allclose(xs, [2 * 6.5954e-4, 6.5954e-4 + VBFH_XSEC["w"]], rtol=2e-3)
    assert np.sum(ev2.sampling_benchmark == -1) == 5000


def test_benchmark_mapping_and_mismatch_errors(vbfh):
    space = vbfh_space()
    reader = LHEReader(space, benchmarks=["sm", "w"], weight_ids={"w": "neg_w"})
    reader.add_sample(vbfh, "sm").add_observable("pt", "a[0].pt")
    with pytest.raises(ValueError, match="sets dim6 2 = -15.4.*benchmark 'w'"):
        reader.read()
    ok = LHEReader(space, benchmarks=["sm", "w"], weight_ids={"w": "neg_w"}, check_benchmarks=False)
    ok.add_sample(vbfh, "sm").add_observable("pt", "a[0].pt")
    assert ok.read().weights[:, 1].sum() == pytest.approx(VBFH_XSEC["neg_w"], rel=2e-3)
    bad = LHEReader(space, benchmarks=["sm"], weight_ids={"sm": "nosuch"})
    bad.add_sample(vbfh, "sm").add_observable("pt", "a[0].pt")
    with pytest.raises(ValueError, match="weight id 'nosuch'.*not in the file"):
        bad.read()
    with pytest.raises(ValueError, match="no observables"):
        LHEReader(space).add_sample(vbfh, "sm").read()
    with pytest.raises(ValueError, match="sampling_benchmark 'x'"):
        LHEReader(space).add_sample(vbfh, "x")


@pytest.mark.parametrize("name, expected_norm, n", [
    ("skhep_testdata_lhe/pylhe-testfile-madgraph5-3.5.8-pp_to_jj.lhe.gz", "average", 1000),
    ("skhep_testdata_lhe/pylhe-testfile-madgraph-2.2.1-Z-mlm.lhe.gz", "xsec", 10000),
    ("skhep_testdata_lhe/pylhe-testfile-madgraph-2.0.0-wbj.lhe", "average", 59),
    ("mg5_test_inputs/hj_nlo.lhe.gz", "average", 100),
])
def test_normalisation_against_init_block(shared_data, name, expected_norm, n):
    path = shared_data / name
    space = ParameterSpace().add_parameter("x").add_benchmark("b", [0.0])
    reader = LHEReader(space).add_sample(path, "b").add_observable("n_p", "len(p)")
    events = reader.read()
    info = read_lhe_info(path)
    assert events.metadata["samples"][0]["normalization"] == expected_norm
    assert events.n_events == n
    total = events.weights[:, 0].sum()
    if expected_norm == "xsec" or name.endswith("pp_to_jj.lhe.gz") or name.endswith("wbj.lhe"):
        # LO/unit weights: the sum reproduces the <init> cross section
        assert total == pytest.approx(info.cross_section, rel=2e-7)
    else:
        # NLO with 4 negative-weight events in 100: the sum is the sample's MC estimate (mean weight)
        assert total == pytest.approx(35.84599128, rel=1e-9)
        assert np.sum(events.weights[:, 0] < 0) == 4


def test_lepton_and_met_objects(shared_data):
    path = shared_data / "mg5_test_inputs" / "test_spinmode_none.lhe.gz"  # u u~ > z e+ e-, z > e+ e- / nu nu ...
    space = ParameterSpace().add_parameter("x").add_benchmark("b", [0.0])
    reader = LHEReader(space).add_sample(path, "b")
    reader.add_observable("n_l", "nleptons").add_observable("q", "sum(l.charge)")
    reader.add_observable("met", "met.pt").add_observable("m_ll", "(l[0] + l[1]).m", default=-1)
    events = reader.read()
    assert np.all(events.x[:, 0] >= 2) and np.all(events.x[:, 1] == 0)
    assert events.weights[:, 0].sum() == pytest.approx(0.08122878, rel=1e-6)


def _write_gz(path, text):
    with gzip.open(path, "wt") as f:
        f.write(text)


def test_corrupt_inputs_give_clear_errors_and_write_nothing(vbfh, tmp_path):
    text = gzip.open(vbfh, "rt").read()
    space = vbfh_space()

    def run(p, **kw):
        r = LHEReader(space, benchmarks=["sm", "w"], **kw).add_sample(p, "sm").add_observable("pt", "a[0].pt")
        return r.save(tmp_path / "out.h5")

    truncated = tmp_path / "truncated.lhe.gz"
    cut = text.index("<event>", len(text) // 2) + 200
    _write_gz(truncated, text[:cut])
    with pytest.raises(ValueError, match=r"truncated\.lhe\.gz.*(event \d+|after event)"):
        run(truncated)
    raw_trunc = tmp_path / "rawtrunc.lhe.gz"
    raw_trunc.write_bytes(vbfh.read_bytes()[: 300_000])
    with pytest.raises(ValueError, match="rawtrunc.lhe.gz.*event"):
        run(raw_trunc)
    missing = tmp_path / "missing_wgt.lhe.gz"
    k = text.index("<wgt id='w'>", text.index("<event>") + 10 * 900)
    event_no = text[:k].count("<event>")
    end = text.index("</wgt>", k) + len("</wgt>")
    _write_gz(missing, text[:k] + text[end:])
    with pytest.raises(ValueError, match=rf"missing_wgt\.lhe\.gz: event {event_no} has no weight with id 'w'"):
        run(missing)
    nan = tmp_path / "nan.lhe.gz"
    k = text.index("<wgt id='w'>", text.index("<event>") + 20 * 900)
    event_no = text[:k].count("<event>")
    end = text.index("</wgt>", k)
    _write_gz(nan, text[:k] + "<wgt id='w'> nan " + text[end:])
    with pytest.raises(ValueError, match=rf"nan\.lhe\.gz: event {event_no} has a non-finite weight"):
        run(nan)
    garbage = tmp_path / "garbage.lhe"
    garbage.write_text("this is not an LHE file\n")
    with pytest.raises(ValueError, match="garbage.lhe"):
        run(garbage)
    with pytest.raises(FileNotFoundError, match="nosuch.lhe"):
        run(tmp_path / "nosuch.lhe")
    assert not (tmp_path / "out.h5").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_malformed_real_file_is_reported(shared_data):
    path = shared_data / "mg5_test_inputs" / "madspin_event.lhe"  # has a mismatched XML tag after event 1
    space = ParameterSpace().add_parameter("x").add_benchmark("b", [0.0])
    reader = LHEReader(space).add_sample(path, "b").add_observable("n", "len(p)")
    with pytest.raises(ValueError, match=r"madspin_event\.lhe: malformed or truncated LHE file after event 1"):
        reader.read()


def test_streamed_reading_matches_one_chunk_and_records_timings(vbfh):
    """Reading in chunks (memory bounded by the chunk) gives the events of one pass; the speed is measured in
    benchmarks/bench_lhe_reading.py, not asserted here."""
    def read(chunk_events):
        reader = LHEReader(vbfh_space(), chunk_events=chunk_events).add_sample(vbfh, "sm")
        reader.add_observable("m", "(a[0] + a[1]).m").add_cut("len(a) >= 2")
        return reader, reader.read()

    one_reader, one = read(10_000)
    chunked_reader, chunked = read(1_234)
    np.testing.assert_array_equal(one.x, chunked.x)
    np.testing.assert_allclose(one.weights, chunked.weights, rtol=1e-12)
    assert one_reader.cutflows[str(vbfh)].n_passed == chunked_reader.cutflows[str(vbfh)].n_passed == one.n_events
    assert math.isfinite(one_reader.timings[str(vbfh)]) and one_reader.timings[str(vbfh)] > 0


def test_read_to_file_streams_the_events_of_read(vbfh, tmp_path):
    """Out of core (one chunk of events in memory at a time) the file holds exactly the events of read(): samples
    averaged within a process and summed across, each normalised once it was read to the end."""
    def reader():
        r = LHEReader(vbfh_space(), chunk_events=777)
        r.add_sample(vbfh, "sm").add_sample(vbfh, "sm", k_factor=1.3)
        r.add_sample(vbfh, process="background", is_background=True, normalization=2.5e-4)
        return r.add_observable("m", "(a[0] + a[1]).m").add_observable("pt", "j[0].pt").add_cut("j[0].pt > 30")

    memory = reader().read()
    chunked = reader().read_to_file(tmp_path / "events.h5")
    assert isinstance(chunked, ChunkedEventSet) and sorted(p.name for p in tmp_path.iterdir()) == ["events.h5"]
    loaded = chunked.load()
    for name in ("x", "weights", "sampling_benchmark"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(memory, name), err_msg=name)
    assert loaded.metadata == memory.metadata and loaded.space == memory.space
    assert chunked.cross_section("sm") == memory.cross_section("sm")
    bad = LHEReader(vbfh_space()).add_sample(vbfh, "sm")  # no observable: fails, writes nothing
    with pytest.raises(ValueError, match="no observables"):
        bad.read_to_file(tmp_path / "bad.h5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.h5"]


def test_observable_undefined_in_every_event_is_an_error(vbfh, tmp_path):
    # a[5].pt on a sample with two photons removed every event and read() returned an empty EventSet with only a
    # WARNING; the error names the observable, the count and the way to keep the events (a default).
    reader = LHEReader(vbfh_space(), benchmarks=["sm"]).add_sample(vbfh, "sm")
    reader.add_observable("pt_a1", "a[0].pt").add_observable("pt_a6", "a[5].pt")
    with pytest.raises(ValueError, match=r"observable 'pt_a6' is undefined in (\d+) of \1 events "
                                         r"\(give it a default.*no events left"):
        reader.read()
    with pytest.raises(ValueError, match="no events left"):
        reader.read_to_file(tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()
    cut = LHEReader(vbfh_space(), benchmarks=["sm"]).add_sample(vbfh, "sm").add_observable("pt_a1", "a[0].pt")
    with pytest.raises(ValueError, match=r"cut 'a\[0\].pt < 0' removes (\d+) of \1 events.*no events left"):
        cut.add_cut("a[0].pt < 0").read()
    kept = LHEReader(vbfh_space(), benchmarks=["sm"]).add_sample(vbfh, "sm")
    events = kept.add_observable("pt_a6", "a[5].pt", default=-1.0).read()
    assert events.n_events > 0 and np.all(events.x == -1.0)
