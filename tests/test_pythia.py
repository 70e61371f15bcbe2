"""Tests of the Pythia wrapper (skipped without pythia8mc) and of the HepMC I/O with pyhepmc."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

pytest.importorskip("pyhepmc")
pytest.importorskip("vector")

from skminer.simulation.observables import Observable  # noqa: E402
from skminer.simulation.pythia import read_hepmc_objects, shower_lhe, write_hepmc  # noqa: E402

HAS_PYTHIA = importlib.util.find_spec("pythia8mc") is not None


def test_read_real_hepmc3(shared_data):
    path = shared_data / "hepmc" / "tth_pythia8_20ev.hepmc.gz"
    objects, weights, names = read_hepmc_objects(path)
    assert objects.n_events == 20
    assert names == ["Weight", "ymt_150", "ymt_173", "ymt_200", "ymt_neg173"]
    assert weights.shape == (20, 5) and weights.dtype == np.float64
    np.testing.assert_allclose(weights[0], [0.399549, 0.30037263, 0.399549, 0.53399579, 0.399549], rtol=1e-12)
    n_p = Observable("n", "len(p)").evaluate(objects)
    assert np.all(n_p > 100)
    # momentum balance of the visible + invisible final state in the transverse plane
    sum_px = Observable("s", "sum(p.px)").evaluate(objects) + Observable("m", "met.px").evaluate(objects)
    np.testing.assert_allclose(sum_px, 0.0, atol=1e-3)


def test_read_hepmc2_from_mg5(shared_data):
    objects, weights, names = read_hepmc_objects(shared_data / "mg5_test_inputs" / "test.hepmc.gz")
    assert objects.n_events == 10 and weights.shape[1] == 146 and len(names) == 146


def test_write_read_roundtrip(tmp_path):
    rec = {"px": [0, 0, 10.0, -10.0], "py": [0, 0, 5.0, -5.0], "pz": [50.0, -50.0, 20.0, -20.0],
           "e": [50.0, 50.0, np.sqrt(525.0), np.sqrt(525.0)], "m": [0, 0, 0, 0], "pid": [2, -2, 11, -11],
           "status": [4, 4, 1, 1], "parents": [[-1, -1], [-1, -1], [0, 1], [0, 1]], "weights": [2.0, 3.0]}
    out = write_hepmc(tmp_path / "x.hepmc", [rec, rec], weight_names=["nominal", "alt"])
    objects, weights, names = read_hepmc_objects(out)
    assert names == ["nominal", "alt"] and weights.tolist() == [[2.0, 3.0], [2.0, 3.0]]
    np.testing.assert_allclose(Observable("m", "(e[0] + e[1]).m").evaluate(objects), 2 * np.sqrt(525.0))
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp") or p.name.startswith(".")]


def test_corrupt_hepmc(tmp_path):
    bad = tmp_path / "bad.hepmc"
    bad.write_text("HepMC::Version 3.02.06\nHepMC::Asciiv3-START_EVENT_LISTING\nE 0 1 x\nP nonsense\n")
    with pytest.raises(ValueError, match="bad.hepmc"):
        read_hepmc_objects(bad)


@pytest.mark.skipif(HAS_PYTHIA, reason="pythia8mc is installed; the missing-package message cannot be tested")
def test_missing_pythia_message(shared_data, tmp_path):
    with pytest.raises(ImportError, match=r"pip install skminer\[pythia\]"):
        shower_lhe(shared_data / "mg5_vbfh_ewdim6" / "unweighted_events.lhe.gz", tmp_path / "o.hepmc")


@pytest.mark.skipif(not HAS_PYTHIA, reason="pythia8mc (Pythia 8 Python bindings) is not installed; "
                    "pip install skminer[pythia]")
def test_shower_small_lhe(shared_data, tmp_path):
    out = shower_lhe(shared_data / "mg5_vbfh_ewdim6" / "unweighted_events.lhe.gz", tmp_path / "o.hepmc",
                     n_events=3, random_state=1, settings=["PartonLevel:MPI = off"])
    objects, weights, names = read_hepmc_objects(out)
    assert objects.n_events == 3 and weights.shape[0] == 3
    assert Observable("n", "len(a)").evaluate(objects).min() >= 2
