"""Samples and cross sections from many event files (skminer.augmentation.event_files): dask on any scheduler gives
the single-process results to the last digit, cross sections combine the files exactly, one file is the out-of-core
sample, and the draws of several files have the distribution of the combined events."""

from __future__ import annotations

import logging
import os
import re
import sys

import numpy as np
import pytest

from skminer.augmentation import (
    DensitySampler,
    DoubleRatioSampler,
    LocalScoreSampler,
    RatioSampler,
    TestSampler,
)
from skminer.augmentation.event_files import EventFiles, sample_files
from skminer.augmentation.unweighting import joint_log_likelihoods, positive_totals, unweight
from skminer.events import SUM_BLOCK, EventSet
from skminer.simulation.toy import ToySimulator

THETAS = np.array([[0.0, 0.0], [0.7, -0.3], [-1.0, 1.0]])
NUS = np.array([[0.5, -1.0], [-0.3, 0.2], [1.5, 0.0]])


@pytest.fixture(scope="module")
def toy_files(tmp_path_factory):
    """Three independent toy simulations of different sizes, each normalised to its own events (mode "average")."""
    folder = tmp_path_factory.mktemp("files")
    paths = [folder / f"toy{k}.h5" for k in range(3)]
    for k, (path, n) in enumerate(zip(paths, (3000, 9000, 2 * SUM_BLOCK + 5), strict=True)):
        ToySimulator().simulate_to_file(path, n, random_state=20 + k, chunk_events=SUM_BLOCK)
    return paths


@pytest.fixture(scope="module")
def nuisance_files(tmp_path_factory):
    """One toy set with nuisance coefficients, cut into files at multiples of SUM_BLOCK (mode "sum"), and the set."""
    events = ToySimulator().simulate(4 * SUM_BLOCK + 321, random_state=9)
    a = np.stack([0.1 + 0.2 * events.x[:, 0], np.full(len(events), -0.05)], axis=1)
    b = np.stack([0.03 * events.x[:, 1], np.full(len(events), 0.02)], axis=1)
    events = events._replace(nuisance_names=["nu0", "nu1"], nuisance_a=a, nuisance_b=b)
    folder = tmp_path_factory.mktemp("nuisance_files")
    cuts = [0, SUM_BLOCK, 3 * SUM_BLOCK, len(events)]
    paths = [folder / f"part{k}.h5" for k in range(3)]
    for path, start, stop in zip(paths, cuts[:-1], cuts[1:], strict=True):
        events[start:stop].save(path)
    return paths, events


def _assert_same_sample(got, expected):
    assert len(got) == len(expected)
    for name, value in expected.as_dict().items():
        np.testing.assert_array_equal(getattr(got, name), value, err_msg=name)
    assert got.as_dict().keys() == expected.as_dict().keys()


def test_cross_sections_of_aligned_files_are_those_of_the_whole_set(nuisance_files):
    """Files cut at multiples of SUM_BLOCK: the per-file sums add up to the digits of the events in one set."""
    paths, whole = nuisance_files
    files = EventFiles(paths, chunk_events=SUM_BLOCK)
    assert files.n_events == len(whole) and files.offsets.tolist() == [0, SUM_BLOCK, 3 * SUM_BLOCK, len(whole)]
    np.testing.assert_array_equal(files.cross_section(THETAS), whole.cross_section(THETAS))
    assert files.cross_section("sm") == whole.cross_section("sm")
    np.testing.assert_array_equal(files.cross_section_gradient(THETAS), whole.cross_section_gradient(THETAS))
    for theta, nu in ((THETAS, NUS), (THETAS[1], NUS[0]), (THETAS, None)):
        if nu is not None:
            np.testing.assert_array_equal(files.cross_section(theta, nu), whole.cross_section(theta, nu))
            np.testing.assert_array_equal(files.cross_section_gradient(theta, nu),
                                          whole.cross_section_gradient(theta, nu))
            np.testing.assert_array_equal(files.weights_at(theta, nu), whole.weights_at(theta, nu))
        np.testing.assert_array_equal(files.cross_section_nuisance_gradient(theta, nu),
                                      whole.cross_section_nuisance_gradient(theta, nu))
    rows = np.array([len(whole) - 1, 0, SUM_BLOCK, SUM_BLOCK - 1, 5, 5])
    np.testing.assert_array_equal(files.x[rows], whole.x[rows])
    np.testing.assert_array_equal(files.nuisance_a[rows], whole.nuisance_a[rows])
    np.testing.assert_array_equal(files[2 * SUM_BLOCK:2 * SUM_BLOCK + 10].weights, whole.weights[2 * SUM_BLOCK:][:10])


@pytest.mark.parametrize("mode", ["sum", "average"])
def test_cross_sections_combine_any_files(toy_files, mode):
    """Files of any sizes: the cross sections of EventSet.combine(mode=...) to rounding."""
    files = EventFiles(toy_files, mode=mode, chunk_events=SUM_BLOCK)
    combined = files.load()
    reference = EventSet.combine([EventSet.load(p) for p in toy_files], mode=mode)
    np.testing.assert_array_equal(combined.weights, reference.weights)
    np.testing.assert_allclose(files.cross_section(THETAS), combined.cross_section(THETAS), rtol=1e-12)
    np.testing.assert_allclose(files.cross_section_gradient(THETAS), combined.cross_section_gradient(THETAS),
                               rtol=1e-12)
    total = sum(EventSet.load(p).cross_section(THETAS) for p in toy_files)
    if mode == "sum":
        np.testing.assert_allclose(files.cross_section(THETAS), total, rtol=1e-12)
    else:  # each toy file estimates the same cross section: their average, not their sum
        np.testing.assert_allclose(files.cross_section(THETAS), total / 3, rtol=0.05)


@pytest.mark.parametrize("sampler, n", [
    (RatioSampler(n_thetas=8), 1000),
    (LocalScoreSampler(theta_ref=[0.2, -0.1]), 500),
    (TestSampler(theta=[[0.0, 0.0], [1.0, 1.0]]), 300),
])
def test_one_file_is_the_out_of_core_sample(toy_files, sampler, n):
    got = sample_files(sampler, toy_files[1:2], n, random_state=5, chunk_events=SUM_BLOCK, use_dask=False)
    _assert_same_sample(got, sampler.sample(EventSet.open(toy_files[1], chunk_events=SUM_BLOCK), n, random_state=5))


def test_positive_totals_are_the_clipped_weight_sums(toy_files):
    memory = EventSet.load(toy_files[1])
    chunked = EventSet.open(toy_files[1], chunk_events=SUM_BLOCK)
    thetas = np.vstack([THETAS, [[3.0, -3.0]]])
    totals = positive_totals(chunked, thetas, max_elements=2 * SUM_BLOCK)
    np.testing.assert_array_equal(totals, positive_totals(memory, thetas, max_elements=2 * SUM_BLOCK))
    np.testing.assert_allclose(totals, memory.weights_at(thetas).sum(axis=0), rtol=1e-12)
    sign = np.where(np.arange(len(memory)) % 7 == 0, -1.0, 1.0)  # NLO-like negative events
    signed = memory._replace(weights=memory.weights * sign[:, None])
    clipped = np.maximum(signed.weights_at(thetas), 0.0).sum(axis=0)
    np.testing.assert_allclose(positive_totals(signed, thetas), clipped, rtol=1e-12)
    assert np.all(clipped < 0.9 * totals)
    with pytest.raises(ValueError, match="negative weights"):
        positive_totals(signed, thetas, negative_weights="raise")


def test_draws_split_among_files_by_their_weight_totals(toy_files):
    """Each draw comes from file k with probability (clipped weight total of k) / (total of all files)."""
    files = EventFiles(toy_files, mode="average", chunk_events=SUM_BLOCK)
    combined = files.load()
    theta = np.array([0.8, -0.6])
    n = 20_000
    rows, owner = unweight(files, theta, n, random_state=3)
    assert rows.shape == (n,) and np.all(owner == 0) and rows.min() >= 0 and rows.max() < files.n_events
    w = np.maximum(combined.weights_at(theta), 0.0)
    for k in range(files.n_files):
        p = w[files.offsets[k]:files.offsets[k + 1]].sum() / w.sum()
        share = np.mean((rows >= files.offsets[k]) & (rows < files.offsets[k + 1]))
        assert abs(share - p) < 5 * np.sqrt(p * (1 - p) / n), (k, share, p)
    # the draws of a point are in random order, not grouped by file (RatioSampler hands them out in order)
    first = np.mean(rows[: n // 2] < files.offsets[1])
    second = np.mean(rows[n // 2:] < files.offsets[1])
    assert abs(first - second) < 5 * np.sqrt(0.5 / n), (first, second)
    # within a file, the draws follow the weights: the mean observable matches the weighted mean of the events
    x = combined.x[rows, 0]
    expected = np.sum(w * combined.x[:, 0]) / w.sum()
    assert abs(x.mean() - expected) < 5 * x.std() / np.sqrt(n)


def test_joint_quantities_are_those_of_the_combined_events(toy_files):
    """r_xz and t_xz of the drawn rows use the events' weights and the cross sections of all files."""
    files = EventFiles(toy_files, mode="average", chunk_events=SUM_BLOCK)
    combined = files.load()
    rows, owner = unweight(files, THETAS, [300, 0, 200], random_state=8)
    assert np.bincount(owner, minlength=3).tolist() == [300, 0, 200]
    got = joint_log_likelihoods(files, rows, THETAS, owner, score=True)
    expected = joint_log_likelihoods(combined, rows, THETAS, owner, score=True)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(files.x[rows], combined.x[rows])


SAMPLERS = [
    (RatioSampler(n_thetas=8), 1000),
    (DoubleRatioSampler(n_thetas=5), 600),
    (DensitySampler(n_thetas=6), 600),
    (TestSampler(theta=[[0.0, 0.0], [1.0, 1.0]]), 300),
]


@pytest.mark.parametrize("scheduler", ["synchronous", "threads"])
def test_dask_gives_the_single_process_sample(toy_files, nuisance_files, scheduler):
    dask = pytest.importorskip("dask")
    with dask.config.set(scheduler=scheduler):
        for sampler, n in SAMPLERS:
            expected = sample_files(sampler, toy_files, n, random_state=4, mode="average", chunk_events=SUM_BLOCK,
                                    use_dask=False)
            got = sample_files(sampler, toy_files, n, random_state=4, mode="average", chunk_events=SUM_BLOCK)
            _assert_same_sample(got, expected)
        paths, _ = nuisance_files
        sampler = LocalScoreSampler(theta_ref=[0.2, -0.1], include_nuisance=True)
        expected = sample_files(sampler, paths, 800, random_state=6, chunk_events=SUM_BLOCK, use_dask=False)
        assert expected.t_xz.shape == (800, 4)
        _assert_same_sample(sample_files(sampler, paths, 800, random_state=6, chunk_events=SUM_BLOCK), expected)
        files = EventFiles(paths, chunk_events=SUM_BLOCK, use_dask=True)
        local = EventFiles(paths, chunk_events=SUM_BLOCK)
        np.testing.assert_array_equal(files.cross_section(THETAS, NUS), local.cross_section(THETAS, NUS))


def test_dask_distributed_cluster_gives_the_single_process_sample(toy_files):
    distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed (skminer[dask])")
    sampler = RatioSampler(n_thetas=8)
    expected = sample_files(sampler, toy_files, 1000, random_state=4, mode="average", chunk_events=SUM_BLOCK,
                            use_dask=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None,
                                  silence_logs=40) as cluster, distributed.Client(cluster):
        got = sample_files(sampler, toy_files, 1000, random_state=4, mode="average", chunk_events=SUM_BLOCK)
    _assert_same_sample(got, expected)


def test_random_state_changes_the_sample(toy_files):
    sampler = RatioSampler(n_thetas=8, shuffle=False)
    a = sample_files(sampler, toy_files, 400, random_state=1, use_dask=False)
    b = sample_files(sampler, toy_files, 400, random_state=2, use_dask=False)
    assert not np.array_equal(a.x, b.x)


def test_errors_name_the_file(toy_files, nuisance_files, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="at least one path"):
        EventFiles([])
    with pytest.raises(TypeError, match="sequence"):
        EventFiles(str(toy_files[0]))
    with pytest.raises(ValueError, match="mode"):
        EventFiles(toy_files, mode="mean")
    with pytest.raises(FileNotFoundError):
        EventFiles([toy_files[0], tmp_path / "missing.h5"])
    with pytest.raises(ValueError, match=rf"{nuisance_files[0][0].name} cannot be combined.*nuisance_names"):
        EventFiles([toy_files[0], nuisance_files[0][0]])
    with pytest.raises(ValueError, match="nuisance"):
        EventFiles(toy_files).cross_section_nuisance_gradient(THETAS)
    with pytest.raises(ValueError, match=rf"{toy_files[0].name}: weights_at.*nu"):
        EventFiles(toy_files).cross_section(THETAS, NUS)
    monkeypatch.setitem(sys.modules, "dask", None)
    with pytest.raises(ImportError, match=r"pip install skminer\[dask\]"):
        EventFiles(toy_files, use_dask=True)
    with pytest.raises(ImportError, match=r"pip install skminer\[dask\]"):
        sample_files(RatioSampler(), toy_files, 10)


def test_an_empty_file_contributes_nothing_and_duplicates_are_refused(tmp_path):
    from skminer.augmentation import RatioSampler

    events = ToySimulator().simulate(600, random_state=3)
    empty, full = tmp_path / "empty.h5", tmp_path / "full.h5"
    events[0:0].save(empty)
    events.save(full)
    assert EventSet.open(empty).cross_section("sm") == EventSet.load(empty).cross_section("sm") == 0.0
    assert EventFiles([empty, full]).cross_section("sm") == pytest.approx(events.cross_section("sm"), rel=1e-12)
    sample = sample_files(RatioSampler(n_thetas=4), [empty, full], 100, 0, use_dask=False)
    assert len(sample.x) == 100
    with pytest.raises(ValueError, match="more than once"):
        EventFiles([full, tmp_path / "." / "full.h5"])


def test_averaging_only_empty_files_gives_the_empty_set_of_the_in_memory_path(tmp_path):
    import warnings

    paths = [tmp_path / "empty0.h5", tmp_path / "empty1.h5"]
    for path in paths:
        ToySimulator().simulate(50, random_state=3)[0:0].save(path)
    for files in (paths[:1], paths):
        in_memory = EventSet.combine([EventSet.load(p) for p in files], mode="average")
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # was a numpy 0/0 RuntimeWarning and NaN weight scales
            combined = EventFiles(files, mode="average")
            assert combined.n_events == in_memory.n_events == 0
            assert combined.cross_section("sm") == in_memory.cross_section("sm") == 0.0
        for events in (combined, in_memory):
            with pytest.raises(ValueError, match="events is empty"):
                RatioSampler(n_thetas=2).sample(events, 10, random_state=0)


def test_a_hard_link_to_a_file_is_a_duplicate(tmp_path):
    full = ToySimulator().simulate(300, random_state=3).save(tmp_path / "a.h5")
    os.link(full, tmp_path / "hardlink_to_a.h5")
    os.symlink(full, tmp_path / "symlink_to_a.h5")
    with pytest.raises(ValueError, match=r"hardlink_to_a.h5 is the same file as .*a\.h5 \(a link to it\).*count twice"):
        EventFiles([full, tmp_path / "hardlink_to_a.h5"])
    with pytest.raises(ValueError, match=r"symlink_to_a.h5 is given more than once in paths"):
        EventFiles([full, tmp_path / "symlink_to_a.h5"])


def _negative(events: EventSet) -> EventSet:
    return EventSet(events.x, -np.asarray(events.weights), observable_names=events.observable_names,
                    benchmark_names=events.benchmark_names, space=events.space, morpher=events.morpher,
                    morphing_basis=events.morphing_basis)


def test_negative_cross_sections_warn_naming_the_benchmark(tmp_path, caplog, capsys):
    from skminer.cli import main

    neg = _negative(ToySimulator().simulate(300, random_state=3))
    path = neg.save(tmp_path / "neg.h5")
    with caplog.at_level(logging.WARNING, logger="skminer.events"):
        assert main(["info", str(path)]) == 0
    assert re.search(r"neg\.h5: negative cross section at 6 of 6 points \(benchmark 'sm': -\d", caplog.text)
    for events in (neg, EventFiles([path])):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="skminer.events"):
            value = events.cross_section("theta1_plus")
        assert value < 0 and f"theta=[1.0, 0.0] (benchmark 'theta1_plus'): {value:.6g} pb" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="skminer.events"):
        ToySimulator().simulate(300, random_state=3).cross_section(np.array([[0.3, 0.2], [0.0, 0.0]]))
    assert "negative cross section" not in caplog.text
