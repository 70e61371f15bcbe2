"""Out-of-core event sets: EventSet.open / ChunkedEventSet and the samplers streaming over its chunks give exactly
the numbers of the same file loaded into memory (same random_state)."""

from __future__ import annotations

import numpy as np
import pytest

from skminer.augmentation import (
    DensitySampler,
    DoubleRatioSampler,
    LocalScoreSampler,
    RatioSampler,
    TestSampler,
)
from skminer.augmentation.unweighting import unweight
from skminer.events import SUM_BLOCK, ChunkedEventSet, EventFileWriter, EventSet
from skminer.simulation.toy import ToySimulator

N_EVENTS = 5 * SUM_BLOCK + 123  # several chunks and a short last one


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    path = tmp_path_factory.mktemp("chunked") / "toy.h5"
    chunked = ToySimulator().simulate_to_file(path, N_EVENTS, random_state=7, chunk_events=3000)
    return path, chunked


def test_simulate_to_file_is_simulate_with_one_generator(files, tmp_path):
    path, chunked = files
    assert isinstance(chunked, ChunkedEventSet) and chunked.n_events == len(chunked) == N_EVENTS
    one = ToySimulator().simulate_to_file(tmp_path / "one.h5", 2000, random_state=3, chunk_events=10_000).load()
    ref = ToySimulator().simulate(2000, random_state=3)
    assert np.array_equal(one.x, ref.x) and np.array_equal(one.weights, ref.weights)
    assert one.morphing_basis == ref.morphing_basis and one.benchmark_names == ref.benchmark_names


def test_cross_sections_equal_in_memory(files):
    path, _ = files
    memory = EventSet.load(path)
    chunked = EventSet.open(path, chunk_events=SUM_BLOCK)
    thetas = np.array([[0.0, 0.0], [0.7, -0.3], [-1.0, 1.0]])
    assert np.array_equal(chunked.cross_section(thetas), memory.cross_section(thetas))
    assert chunked.cross_section("sm") == memory.cross_section("sm")
    assert np.array_equal(chunked.cross_section_gradient(thetas), memory.cross_section_gradient(thetas))
    assert np.array_equal(chunked.weights_at(thetas[1]), memory.weights_at(thetas[1]))
    with pytest.raises(ValueError, match="no nuisance parameters"):
        chunked.cross_section(thetas, nu=[0.0])


@pytest.fixture(scope="module")
def nuisance_file(tmp_path_factory):
    """The toy's events with two nuisance parameters (eq. 19 coefficients that vary with x), saved to a file."""
    events = ToySimulator().simulate(N_EVENTS, random_state=8)
    a = np.stack([0.1 + 0.2 * events.x[:, 0], np.full(len(events), -0.05)], axis=1)
    b = np.stack([0.03 * events.x[:, 1], np.full(len(events), 0.02)], axis=1)
    path = tmp_path_factory.mktemp("nuisance") / "toy_nu.h5"
    events._replace(nuisance_names=["nu0", "nu1"], nuisance_a=a, nuisance_b=b).save(path)
    return path


@pytest.mark.parametrize("chunk_events", [SUM_BLOCK, 3 * SUM_BLOCK])
def test_nuisance_cross_sections_equal_in_memory(nuisance_file, chunk_events):
    """cross sections, their theta and nu gradients and the weights at (theta, nu) stream to the in-memory digits."""
    memory = EventSet.load(nuisance_file)
    chunked = EventSet.open(nuisance_file, chunk_events=chunk_events)
    assert chunked.nuisance_names == ["nu0", "nu1"]
    thetas = np.array([[0.0, 0.0], [0.7, -0.3], [-1.0, 1.0]])
    nus = np.array([[0.5, -1.0], [-0.3, 0.2], [1.5, 0.0]])
    for theta, nu in ((thetas, nus[0]), (thetas, nus), (thetas[1], nus[2]), (thetas[2], nus), ("sm", [0.0, 0.0])):
        for method in ("cross_section", "cross_section_gradient", "cross_section_nuisance_gradient", "weights_at"):
            expected = getattr(memory, method)(theta, nu)
            got = getattr(chunked, method)(theta, nu)
            assert np.shape(got) == np.shape(expected), method
            np.testing.assert_array_equal(got, expected, err_msg=f"{method} at theta={theta}, nu={nu}")
    # nu = 0 is the nominal point; d sigma / d nu there is sum(w a), and the block sums match a plain sum closely
    assert chunked.cross_section(thetas, [0.0, 0.0]) == pytest.approx(memory.cross_section(thetas), rel=1e-12)
    w = memory.weights_at(thetas[1])
    np.testing.assert_allclose(chunked.cross_section_nuisance_gradient(thetas[1]), w @ memory.nuisance_a, rtol=1e-12)
    factor = np.exp(memory.nuisance_a @ nus[1] + memory.nuisance_b @ nus[1] ** 2)
    assert chunked.cross_section(thetas[1], nus[1]) == pytest.approx(np.sum(w * factor), rel=1e-12)
    with pytest.raises(ValueError, match="nu must have shape"):
        chunked.cross_section(thetas, nu=[0.0])


def test_nuisance_scores_equal_in_memory(nuisance_file):
    """LocalScoreSampler(include_nuisance=True) streams over the chunks and gives the in-memory sample bitwise."""
    sampler = LocalScoreSampler(theta_ref=[0.2, -0.1], include_nuisance=True)
    memory = sampler.sample(EventSet.load(nuisance_file), 1000, random_state=3)
    chunked = sampler.sample(EventSet.open(nuisance_file, chunk_events=SUM_BLOCK), 1000, random_state=3)
    assert memory.t_xz.shape == (1000, 4)
    for name, value in memory.as_dict().items():
        np.testing.assert_array_equal(getattr(chunked, name), value, err_msg=name)


def test_indexing_reads_the_selected_rows(files):
    path, _ = files
    memory = EventSet.load(path)
    chunked = EventSet.open(path, chunk_events=SUM_BLOCK)
    rows = np.array([N_EVENTS - 1, 5, 5, SUM_BLOCK, 0, 3 * SUM_BLOCK + 17])
    for index in (rows, slice(10, 2 * SUM_BLOCK + 5), memory.x[:, 0] > 0.5, 7):
        assert np.array_equal(chunked[index].x, memory[index].x)
        assert np.array_equal(chunked[index].weights, memory[index].weights)
    assert np.array_equal(chunked.x[rows], memory.x[rows])
    assert np.array_equal(np.asarray(chunked.weights), memory.weights)
    chunks = list(chunked.iter_chunks(SUM_BLOCK))
    assert [c.n_events for c in chunks] == [SUM_BLOCK] * 5 + [123]
    assert np.array_equal(np.concatenate([c.x for c in chunks]), memory.x)
    assert np.array_equal(np.concatenate([c.x for c in memory.iter_chunks(SUM_BLOCK)]), memory.x)


@pytest.mark.parametrize("sampler, n", [
    (RatioSampler(n_thetas=20), 2000),
    (DoubleRatioSampler(n_thetas=10), 1000),
    (DensitySampler(n_thetas=15), 1500),
    (LocalScoreSampler(theta_ref=[0.2, -0.1]), 1000),
    (TestSampler(theta=[[0.0, 0.0], [1.0, 1.0]]), 500),
])
def test_samplers_equal_in_memory(files, sampler, n):
    path, _ = files
    memory = sampler.sample(EventSet.load(path), n, random_state=11)
    chunked = sampler.sample(EventSet.open(path, chunk_events=SUM_BLOCK), n, random_state=11)
    for name, value in memory.as_dict().items():
        np.testing.assert_array_equal(getattr(chunked, name), value, err_msg=name)


@pytest.mark.parametrize("max_elements", [10 * SUM_BLOCK, 3 * 12_345])
def test_unweighting_streams_in_blocks_with_the_same_rows(files, max_elements):
    path, _ = files
    memory = EventSet.load(path)
    thetas = np.random.default_rng(0).uniform(-1, 1, size=(7, 2))
    counts = np.arange(7) * 300
    ref = unweight(memory, thetas, counts, random_state=5, max_elements=memory.n_events * 7)  # one block
    for events in (memory, EventSet.open(path, chunk_events=SUM_BLOCK)):
        rows, owner = unweight(events, thetas, counts, random_state=5, max_elements=max_elements)
        assert np.array_equal(rows, ref[0]) and np.array_equal(owner, ref[1])


def test_train_test_split_streams_the_same_parts(files, tmp_path):
    path, _ = files
    memory = EventSet.load(path)
    chunked = EventSet.open(path, chunk_events=SUM_BLOCK)
    for stratify in (True, False):
        mem_parts = memory.train_test_split(0.3, random_state=4, stratify=stratify)
        ooc_parts = chunked.train_test_split(0.3, random_state=4, stratify=stratify,
                                             paths=(tmp_path / f"train{stratify}.h5", tmp_path / f"test{stratify}.h5"))
        for mem, ooc in zip(mem_parts, ooc_parts, strict=True):
            assert isinstance(ooc, ChunkedEventSet) and ooc.n_events == mem.n_events
            order = np.argsort(mem.x[:, 0])
            ooc_memory = ooc.load()
            order_ooc = np.argsort(ooc_memory.x[:, 0])
            assert np.array_equal(ooc_memory.x[order_ooc], mem.x[order])
            assert np.array_equal(ooc_memory.weights[order_ooc], mem.weights[order])


def test_writer_is_atomic_and_checks_chunks(files, tmp_path):
    path, _ = files
    memory = EventSet.load(path)
    target = tmp_path / "partial.h5"
    with pytest.raises(RuntimeError, match="boom"), EventFileWriter(target) as writer:
        writer.append(memory[:100])
        raise RuntimeError("boom")
    assert not target.exists() and not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match="observable_names"), EventFileWriter(target) as writer:
        writer.append(memory[:100])
        writer.append(memory[:100].select_observables([1, 0]))
    assert not target.exists()
    with pytest.raises(ValueError, match="no events"), EventFileWriter(target):
        pass
    assert not target.exists()
    with EventFileWriter(target) as writer:
        for chunk in memory.iter_chunks(SUM_BLOCK):
            writer.append(chunk)
    loaded = EventSet.load(target)
    assert np.array_equal(loaded.x, memory.x) and np.array_equal(loaded.weights, memory.weights)


def test_open_checks_the_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        EventSet.open(tmp_path / "missing.h5")
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="bad.h5"):
        EventSet.open(bad)
    with pytest.raises(ValueError, match="chunk_events"):
        EventSet.open(bad, chunk_events=0)


@pytest.mark.slow
def test_out_of_core_memory_does_not_grow_with_the_events(tmp_path):
    """simulate -> save -> open -> sample holds chunks, not the events: ten times the events (2e6, 2^18 per chunk)
    peak within 100 MiB of 2e5 events (in memory the events alone would add ~130 MiB, the sampler's sums more).
    Time and the in-memory comparison are in benchmarks/bench_scale.py."""
    from _bounded import run_bounded

    setup = ("from skminer.augmentation import RatioSampler\nfrom skminer.events import EventSet\n"
             "from skminer.simulation.toy import ToySimulator")
    peaks = {}
    for n in (200_000, 2_000_000):
        path = str(tmp_path / f"toy_{n}.h5")
        out = run_bounded(f"ToySimulator().simulate_to_file({path!r}, {n}, random_state=0)\n"
                          f"events = EventSet.open({path!r}, chunk_events=1 << 18)\n"
                          "RatioSampler(n_thetas=10).sample(events, 20_000, random_state=1)", setup, timeout=1200)
        assert out.error is None, out.error
        peaks[n] = out.peak_rss_mib
    assert peaks[2_000_000] < peaks[200_000] + 100, peaks
