"""Atomic file writes: everything skminer writes goes to a temporary file beside the target first.

A failed or interrupted write never leaves a half-written target and never damages an existing one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_write"]


@contextmanager
def atomic_write(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is synced and renamed over ``path``.

    Parameters
    ----------
    path : path-like
        The target file. Its directory must exist.
    suffix : str
        Suffix of the temporary file (some writers pick the format from it, e.g. ``".npz"``).

    Raises
    ------
    IsADirectoryError, FileNotFoundError
        If ``path`` is a directory or its directory does not exist (naming the path).
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"directory {path.parent} does not exist (for {path})")
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}{suffix}")
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))  # permissions follow the umask
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
