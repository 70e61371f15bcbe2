"""Readers of :mod:`skminer.io` check declared shapes against the data a file stores before allocating anything."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
from _bounded import HOSTILE, run_bounded

from skminer.augmentation import TrainingSample
from skminer.events import EventSet
from skminer.parameters import ParameterSpace

BOMB_ROWS = 2_000_000_000  # 2e9 x 3 doubles = 45 GiB if a reader trusted the declared shape


def small_events(n: int = 50) -> EventSet:
    space = ParameterSpace()
    space.add_parameter("g", max_power=2, range=(-1.0, 1.0))
    for name, value in {"sm": 0.0, "plus": 1.0, "minus": -1.0}.items():
        space.add_benchmark(name, [value])
    rng = np.random.default_rng(0)
    return EventSet(rng.normal(size=(n, 3)), rng.uniform(0.1, 1.0, size=(n, 3)), observable_names=["a", "b", "c"],
                    benchmark_names=["sm", "plus", "minus"], space=space)


def replace(path: Path, name: str, make: Callable[[h5py.File, str], None]) -> Path:
    with h5py.File(path, "r+") as f:
        del f[name]
        make(f, name)
    return path


def unwritten_chunks(f: h5py.File, name: str) -> None:
    f.create_dataset(name, shape=(BOMB_ROWS, 3), dtype="f8", chunks=(65536, 3))


def unwritten_compressed_chunks(f: h5py.File, name: str) -> None:
    ds = f.create_dataset(name, shape=(BOMB_ROWS, 3), dtype="f8", chunks=(65536, 3), compression="gzip")
    ds[:10] = 1.0  # one chunk written, the rest never


def unallocated_contiguous(f: h5py.File, name: str) -> None:
    f.create_dataset(name, shape=(BOMB_ROWS, 3), dtype="f8")


def external_file(f: h5py.File, name: str) -> None:
    f.create_dataset(name, shape=(BOMB_ROWS, 3), dtype="f8", external=[("/dev/zero", 0, h5py.h5f.UNLIMITED)])


BOMBS = {"unwritten chunks": (unwritten_chunks, r"only 0 of its 30518 chunks are stored"),
         "unwritten compressed chunks": (unwritten_compressed_chunks, r"only 1 of its 30518 chunks are stored"),
         "unallocated contiguous": (unallocated_contiguous, r"declares \(2000000000, 3\) \(44\.7 GiB\) but the file "
                                                            r"stores only 0 bytes"),
         "external file": (external_file, r"keeps its data in external files")}


@pytest.mark.parametrize("kind", list(BOMBS))
def test_skminer_reader_refuses_declared_data_the_file_does_not_store(kind: str, tmp_path: Path) -> None:
    make, message = BOMBS[kind]
    path = small_events().save(tmp_path / "bomb.h5")
    with h5py.File(path, "r+") as f:  # a consistent bomb: every per-event dataset declares 2e9 rows
        del f["sampling_benchmark"]
        f.create_dataset("sampling_benchmark", shape=(BOMB_ROWS,), dtype="i8", chunks=(1 << 20,))
    replace(path, "weights", make)
    replace(path, "x", make)
    with pytest.raises(ValueError, match=rf"bomb\.h5: field 'x' .*{message}"):
        EventSet.load(path)


@pytest.mark.parametrize("kind", list(BOMBS))
def test_madminer_reader_refuses_declared_data_the_file_does_not_store(kind: str, tmp_path: Path) -> None:
    make, message = BOMBS[kind]
    path = small_events().to_madminer(tmp_path / "mm_bomb.h5")
    with h5py.File(path, "r+") as f:
        del f["samples/sampling_benchmarks"]
    replace(path, "samples/weights", make)
    replace(path, "samples/observations", make)
    with pytest.raises(ValueError, match=rf"mm_bomb\.h5: field 'samples/observations' .*{message}"):
        EventSet.from_madminer(path)


def test_madminer_names_with_a_bomb_shape_are_refused(tmp_path: Path) -> None:
    path = small_events().to_madminer(tmp_path / "names.h5")
    replace(path, "observables/names", lambda f, n: f.create_dataset(n, shape=(BOMB_ROWS,), dtype="S256"))
    with pytest.raises(ValueError, match=r"names\.h5: field 'observables/names' declares \(2000000000,\)"):
        EventSet.from_madminer(path)


def test_implausible_compression_ratio_is_refused(tmp_path: Path) -> None:
    """All chunks written, but deflate applied twice: a ratio no single HDF5 filter reaches."""
    path = small_events().save(tmp_path / "ratio.h5")
    rows = 4_000_000

    def doubly_deflated(f: h5py.File, name: str) -> None:
        shape = (rows,) if name == "sampling_benchmark" else (rows, 3)
        plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        plist.set_chunk(shape)
        plist.set_deflate(9)
        plist.set_deflate(9)
        dsid = h5py.h5d.create(f.id, name.encode(), h5py.h5t.STD_I64LE if len(shape) == 1 else h5py.h5t.IEEE_F64LE,
                               h5py.h5s.create_simple(shape), dcpl=plist)
        h5py.Dataset(dsid)[...] = 0

    for name in ("x", "weights", "sampling_benchmark"):
        replace(path, name, doubly_deflated)
    with h5py.File(path) as f:  # the file is genuinely complete, only its compression is implausible
        assert f["x"].id.get_num_chunks() == 1 and f["x"].id.get_storage_size() < 96e6 / 1100
    with pytest.raises(ValueError, match=r"ratio\.h5: field 'x' declares .* compression ratio above 1100"):
        EventSet.load(path)


def test_legit_compressed_zeros_load(tmp_path: Path) -> None:
    """Highly compressible but genuine data (gzip level 1 of zeros) stay below the ratio bound."""
    ev = small_events(20_000)
    ev = EventSet(np.zeros_like(ev.x), ev.weights, observable_names=ev.observable_names,
                  benchmark_names=ev.benchmark_names, space=ev.space)
    back = EventSet.load(ev.save(tmp_path / "zeros.h5"))
    np.testing.assert_array_equal(back.x, 0.0)


def test_h5_bomb_case_file_is_refused_quickly_with_bounded_memory() -> None:
    """The 9 KB file of ../shared/cases/hostile-inputs that made EventSet.load allocate about 30 GiB."""
    case = HOSTILE / "h5_bomb_sparse_x.h5"
    out = run_bounded(f"EventSet.load({str(case)!r})", setup="from skminer.events import EventSet")
    assert out.error is not None and out.error.startswith("ValueError: "), out
    assert "h5_bomb_sparse_x.h5: field 'x' declares (2000000000, 2) (29.8 GiB)" in out.error
    assert "only 0 of its 1908 chunks are stored" in out.error
    assert out.peak_rss_mib < 400, out  # importing numpy/scipy/h5py alone takes about 100 MiB


def test_training_sample_with_a_bomb_header_is_refused(tmp_path: Path) -> None:
    """numpy.load allocates from the .npy header before reading: the header is checked against the archive first."""
    sample = TrainingSample(x=np.zeros((10, 2)), t_xz=np.ones((10, 2)))
    path = tmp_path / "sample.npz"
    sample.save(path)
    assert TrainingSample.load(path).x.shape == (10, 2)
    bomb = tmp_path / "bomb.npz"
    header = np.lib.format.header_data_from_array_1_0(np.zeros((10, 2)))
    header["shape"] = (10**10, 2)
    raw = io.BytesIO()
    np.lib.format.write_array_header_1_0(raw, header)
    with zipfile.ZipFile(bomb, "w") as archive:
        archive.writestr("x.npy", raw.getvalue() + np.zeros((10, 2)).tobytes())
    with pytest.raises(ValueError, match=r"bomb\.npz: field 'x' declares shape \(10000000000, 2\) "
                                         r"\(160000000000 bytes\) but the archive stores 160 bytes"):
        TrainingSample.load(bomb)
    packed = tmp_path / "packed.npz"
    with zipfile.ZipFile(packed, "w", compression=zipfile.ZIP_BZIP2) as archive:  # bzip2 packs zeros ~1e5-fold
        archive.writestr("x.npy", b"\0" * 50_000_000)
    with pytest.raises(ValueError, match=r"packed\.npz: field 'x' expands from \d+ to 50000000 bytes"):
        TrainingSample.load(packed)
