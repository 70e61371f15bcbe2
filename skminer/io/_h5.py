"""HDF5 helpers shared by the file formats: bounded reads of untrusted files and atomic, chunked writes.

Reading an untrusted HDF5 file must not let its *declared* shapes decide how much memory is allocated: a file of
a few KB can declare a dataset of ``2e9 x 6`` doubles whose chunks were never written (HDF5 then returns the fill
value for every element), or store it outside the file (external storage, virtual datasets). Before a dataset is
read, :func:`read_dataset` therefore checks

- its shape against the shape the format expects (rank and every known dimension),
- that its data live in the file (no external files, no virtual sources),
- that the bytes stored in the file can hold the declared data: uncompressed data need at least their logical
  size on disk, every chunk of a filtered dataset must be written, and the compression ratio stays below the
  maximum of the filters HDF5 ships (deflate expands at most about 1032-fold).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .._atomic import atomic_write

__all__ = ["CHUNK_BYTES", "MAX_COMPRESSION_RATIO", "append_rows", "atomic_h5_write", "create_growing", "open_h5",
           "read_dataset", "reading_errors", "strings", "write_array"]

#: Target size of one HDF5 chunk written by skminer (bytes).
CHUNK_BYTES = 1 << 20
#: Largest plausible ratio of logical to stored bytes of a compressed dataset. Deflate's format limit is about
#: 1032:1; byte shuffling of constant data does not raise it above that bound by more than a few percent.
MAX_COMPRESSION_RATIO = 1100.0
_VLEN_BYTES = 16  # an HDF5 variable-length element is stored as a (length, heap pointer) pair


def open_h5(path: Path) -> h5py.File:
    """Open ``path`` read-only.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If it is not an HDF5 file h5py can open (the message starts with the path).
    """
    if not path.exists():
        raise FileNotFoundError(f"event file {path} does not exist")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path}: not a readable HDF5 file ({err})") from None


@contextmanager
def reading_errors(path: Path, what: str) -> Iterator[None]:
    """Turn every failure of reading ``path`` into a ``ValueError`` that starts with the path.

    ``FileNotFoundError`` passes unchanged; an ``OSError`` of h5py (corrupt or truncated data that opened but
    cannot be read) and the ``TypeError`` / ``KeyError`` / ``IndexError`` / ``AttributeError`` of malformed content
    become ``ValueError("<path>: ...")`` naming ``what`` (e.g. ``"event file"``).
    """
    try:
        yield
    except FileNotFoundError:
        raise
    except OSError as err:
        raise ValueError(f"{path}: cannot read the {what}, it may be corrupt or truncated ({err})") from None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as err:
        if str(err).startswith(str(path)):
            raise
        raise ValueError(f"{path}: invalid {what}: {err}") from None


def dataset(f: h5py.File, path: Path, name: str) -> h5py.Dataset:
    """The dataset ``name`` of ``f``; a ``ValueError`` naming file and field if it is missing or a group."""
    if name not in f:
        raise ValueError(f"{path}: missing field {name!r}")
    obj = f[name]
    if not isinstance(obj, h5py.Dataset):
        raise ValueError(f"{path}: field {name!r} is a group, expected a dataset")
    return obj


def check_shape(ds: h5py.Dataset, path: Path, name: str, shape: Sequence[int | None]) -> tuple[int, ...]:
    """Check the declared shape of ``ds`` against ``shape`` (``None`` = any length); return the declared shape."""
    declared = tuple(int(n) for n in (ds.shape or ()))
    if len(declared) != len(shape) or any(e is not None and d != e for d, e in zip(declared, shape, strict=True)):
        want = "(" + ", ".join("n" if e is None else str(e) for e in shape) + ("," if len(shape) == 1 else "") + ")"
        raise ValueError(f"{path}: field {name!r} has shape {declared}, expected {want}")
    return declared


def check_storage(ds: h5py.Dataset, path: Path, name: str) -> None:
    """Refuse a dataset whose declared size is not backed by data stored in the file (see the module docstring).

    Raises
    ------
    ValueError
        Naming the file, the field, the declared size and the stored size.
    """
    if ds.is_virtual or ds.external:
        where = "virtual sources" if ds.is_virtual else "external files"
        raise ValueError(f"{path}: field {name!r} keeps its data in {where}; only data stored in the file are read")
    n_elements = int(np.prod(ds.shape, dtype=np.int64)) if ds.shape else 1
    if n_elements == 0:
        return
    vlen = h5py.check_vlen_dtype(ds.dtype) is not None or ds.dtype.kind == "O"
    logical = n_elements * (_VLEN_BYTES if vlen else ds.dtype.itemsize)
    stored = int(ds.id.get_storage_size())
    declared = f"declares {ds.shape} ({_size(logical)})"
    if ds.chunks is not None:
        chunk_shape = np.asarray(ds.chunks, dtype=np.int64)
        expected = int(np.prod(-(-np.asarray(ds.shape, dtype=np.int64) // chunk_shape)))
        written = int(ds.id.get_num_chunks())
        if written < expected:
            raise ValueError(f"{path}: field {name!r} {declared} but only {written} of its {expected} chunks are "
                             "stored in the file; refusing to read data that were never written")
    filtered = bool(ds.compression or ds.shuffle or ds.scaleoffset is not None or ds.fletcher32
                    or (ds.chunks is not None and ds.id.get_create_plist().get_nfilters() > 0))
    if filtered:
        if logical > MAX_COMPRESSION_RATIO * max(stored, 1):
            raise ValueError(f"{path}: field {name!r} {declared} but stores only {_size(stored)}: a compression "
                             f"ratio above {MAX_COMPRESSION_RATIO:g} is not plausible; refusing to decompress it")
    elif stored < logical and not (vlen and ds.shape == ()):
        raise ValueError(f"{path}: field {name!r} {declared} but the file stores only {_size(stored)} of it")


def read_dataset(f: h5py.File, path: Path, name: str, shape: Sequence[int | None] | None = None) -> Any:
    """Read dataset ``name`` after checking its declared ``shape`` and its stored size (see the module docstring).

    Parameters
    ----------
    f : h5py.File
    path : Path
        The file's path, for messages.
    name : str
        Dataset path inside the file.
    shape : sequence of (int or None), optional
        Expected shape; ``None`` entries accept any length. Omitted: any shape.

    Raises
    ------
    ValueError
        If the field is missing, a group, has another shape or declares more data than the file stores.
    """
    ds = dataset(f, path, name)
    if shape is not None:
        check_shape(ds, path, name, shape)
    check_storage(ds, path, name)
    return ds[()]


def strings(values: Any) -> list[str]:
    """Decode HDF5 byte strings (ASCII, undecodable bytes replaced) into a flat list of ``str``."""
    return [v.decode("ascii", "replace") if isinstance(v, bytes) else str(v) for v in np.asarray(values).reshape(-1)]


def _chunked(tail: tuple[int, ...], itemsize: int, n_rows: int | None, compression: str | None) -> dict[str, Any]:
    """Dataset keywords: chunks of about :data:`CHUNK_BYTES` whole rows (at most ``n_rows``) and the filter."""
    row_bytes = itemsize * int(np.prod(tail, dtype=np.int64))
    rows = max(1, CHUNK_BYTES // max(row_bytes, 1))
    kwargs: dict[str, Any] = {"chunks": (int(rows if n_rows is None else max(1, min(n_rows, rows))), *tail)}
    if compression == "gzip":
        kwargs.update(compression="gzip", compression_opts=1, shuffle=True)
    elif compression == "lzf":
        kwargs.update(compression="lzf", shuffle=True)
    return kwargs


def write_array(f: h5py.File, name: str, data: np.ndarray, compression: str | None) -> None:
    """Write ``data`` as a chunked dataset (chunks of about :data:`CHUNK_BYTES`), optionally compressed."""
    data = np.ascontiguousarray(data)
    if data.size == 0:
        f.create_dataset(name, data=data)
        return
    f.create_dataset(name, data=data, **_chunked(data.shape[1:], data.itemsize, data.shape[0], compression))


def create_growing(f: h5py.File, name: str, tail: tuple[int, ...], dtype: Any, compression: str | None
                   ) -> h5py.Dataset:
    """An empty dataset of shape ``(0, *tail)`` that :func:`append_rows` grows, chunked as :func:`write_array`."""
    dtype = np.dtype(dtype)
    return f.create_dataset(name, shape=(0, *tail), maxshape=(None, *tail), dtype=dtype,
                            **_chunked(tail, dtype.itemsize, None, compression))


def append_rows(ds: h5py.Dataset, data: np.ndarray) -> None:
    """Append ``data`` (shape ``(n, *ds.shape[1:])``) to a dataset made by :func:`create_growing`."""
    start = ds.shape[0]
    ds.resize(start + data.shape[0], axis=0)
    ds[start:] = data


def atomic_h5_write(path: str | os.PathLike, write: Callable[[h5py.File], None]) -> Path:
    """Run ``write`` on a new HDF5 file at a temporary name beside ``path``, then rename it over ``path``."""
    with atomic_write(path) as tmp:
        with h5py.File(tmp, "w") as f:
            write(f)
    return Path(path)


def _size(n_bytes: int) -> str:
    if n_bytes < 1024:
        return f"{n_bytes} bytes"
    value = float(n_bytes)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024:
            return f"{value:.1f} {unit}"
    return f"{value / 1024:.1f} TiB"
