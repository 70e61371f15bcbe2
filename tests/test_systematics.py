"""Tests of nuisance parameters from scale/PDF weights (eq. 19) — skminer.simulation.systematics."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from skminer.parameters import ParameterSpace
from skminer.simulation.systematics import Systematics, Variation, nuisance_coefficients


def test_two_and_one_sided_reproduce_weights_exactly():
    rng = np.random.default_rng(0)
    c = rng.uniform(0.5, 2.0, 50)
    up = c * rng.uniform(0.7, 1.5, 50)
    down = c * rng.uniform(0.6, 1.3, 50)
    a, b = nuisance_coefficients(c, up, down)
    np.testing.assert_allclose(c * np.exp(a + b), up, rtol=1e-13)
    np.testing.assert_allclose(c * np.exp(-a + b), down, rtol=1e-13)
    np.testing.assert_allclose(c * np.exp(0 * a), c)
    a1, b1 = nuisance_coefficients(c, up)
    np.testing.assert_allclose(c * np.exp(a1), up, rtol=1e-13)
    assert np.all(b1 == 0)


def test_negative_and_zero_weights_are_clipped_with_warning(caplog):
    c = np.array([1.0, -2.0, 0.0, 1.0])
    up = np.array([2.0, -3.0, 1.0, -1.0])  # same-sign ratio ok; zero central -> 0; negative ratio clipped
    down = np.array([0.5, -1.0, 1.0, 0.0])
    with caplog.at_level(logging.WARNING, logger="skminer.simulation.systematics"):
        a, b = nuisance_coefficients(c, up, down, clip=5.0, label="f.lhe")
    assert "f.lhe" in caplog.text and "2 non-positive" in caplog.text
    assert np.all(np.isfinite(a)) and np.all(np.isfinite(b))
    np.testing.assert_allclose(np.exp(a[1] + b[1]) * c[1], up[1])
    assert a[2] == 0 and b[2] == 0
    assert np.all(np.abs(a) <= 5.0) and np.all(np.abs(b) <= 5.0)


def test_envelope_and_space():
    c = np.array([1.0, 2.0])
    w = {"x": np.array([1.2, 1.0]), "y": np.array([0.9, 3.0]), "z": np.array([1.1, 2.2])}
    syst = Systematics([Variation("scale", "scale", ("x", "y", "z"), envelope=True),
                        Variation("pdf_1", "pdf", ("z",))])
    a, b = syst.coefficients(c, w)
    np.testing.assert_allclose(c * np.exp(a[:, 0] + b[:, 0]), [1.2, 3.0])
    np.testing.assert_allclose(c * np.exp(-a[:, 0] + b[:, 0]), [0.9, 1.0])
    np.testing.assert_allclose(c * np.exp(a[:, 1]), w["z"])
    space = syst.add_to_space(ParameterSpace().add_parameter("t").add_benchmark("sm", [0.0]))
    assert space.nuisance_names == ["scale", "pdf_1"]
    assert [n.kind for n in space.nuisance_parameters] == ["scale", "pdf"]
    with pytest.raises(ValueError, match="missing variation weights"):
        syst.coefficients(c, {"x": c})


def test_from_real_lhe_through_reader(shared_data):
    pytest.importorskip("pylhe")
    pytest.importorskip("vector")
    from skminer.simulation.lhe import LHEReader

    path = shared_data / "skhep_testdata_lhe" / "pylhe-testfile-madgraph5-3.5.8-pp_to_jj.lhe.gz"
    syst = Systematics.from_lhe(path, scale="independent", pdf="auto", max_pdf_members=5)
    assert syst.names == ["scale_mur", "scale_muf"] + [f"pdf_NNPDF23_lo_as_0130_qed_{k}" for k in range(1, 6)]
    assert syst.variations[0].up == ("35",) and syst.variations[0].down == ("6",)  # MUR=2 / MUR=0.5
    assert syst.variations[2].up == ("46",)  # PDF member 1 (member 0 = 247000 is the central set)
    space = ParameterSpace().add_parameter("x").add_benchmark("b", [0.0])
    reader = LHEReader(space, systematics=syst).add_sample(path, "b").add_observable("pt", "j[0].pt")
    events = reader.read()
    assert events.nuisance_names == syst.names and events.space.nuisance_names == syst.names
    # reproduce the raw variation weights of the file: read them directly
    import pylhe

    raw = [(e.eventinfo.weight, e.weights["35"], e.weights["6"], e.weights["46"])
           for e in pylhe.LHEFile.fromfile(str(path)).events]
    raw = np.array(raw)
    w0 = events.weights[:, 0]
    np.testing.assert_allclose(w0 * 1000, raw[:, 0], rtol=1e-12)
    f_up = events.total_nuisance_factor(np.eye(7)[0])
    f_down = events.total_nuisance_factor(-np.eye(7)[0])
    np.testing.assert_allclose(w0 * f_up * 1000, raw[:, 1], rtol=1e-10)
    np.testing.assert_allclose(w0 * f_down * 1000, raw[:, 2], rtol=1e-10)
    np.testing.assert_allclose(w0 * events.total_nuisance_factor(np.eye(7)[2]) * 1000, raw[:, 3], rtol=1e-10)
    np.testing.assert_allclose(events.total_nuisance_factor(np.zeros(7)), 1.0)
    env = Systematics.from_lhe(path, pdf=None)
    assert env.names == ["scale"] and len(env.variations[0].up) == 6
    with pytest.raises(ValueError, match="no PDF-variation"):
        Systematics.from_lhe(shared_data / "mg5_test_inputs" / "hj_nlo.lhe.gz")


def test_nlo_file_with_negative_weights(shared_data):
    pytest.importorskip("pylhe")
    pytest.importorskip("vector")
    from skminer.simulation.lhe import LHEReader

    path = shared_data / "mg5_test_inputs" / "hj_fxfx.lhe.gz"
    syst = Systematics.from_lhe(path, scale="together", pdf=None)
    space = ParameterSpace().add_parameter("x").add_benchmark("b", [0.0])
    events = LHEReader(space, systematics=syst).add_sample(path, "b").add_observable("n", "len(p)").read()
    assert np.sum(events.weights[:, 0] < 0) == 198
    assert np.all(np.isfinite(events.nuisance_a)) and np.all(np.abs(events.nuisance_b) <= 10)
