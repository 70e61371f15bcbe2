"""Atomic file writes: everything skminer writes goes to a temporary file beside the target first.

A failed or interrupted write never leaves a half-written target and never damages an existing one.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_write", "remove_stale_temporaries"]

logger = logging.getLogger(__name__)

#: Names of the temporary files :func:`atomic_write` creates: ``.<target name>.<32 hex digits><suffix>``.
_TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{32}(\.[A-Za-z0-9]+)?$")


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
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}{suffix}")  # see _TEMPORARY
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))  # permissions follow the umask
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files that killed :func:`atomic_write` calls left in ``folder``.

    Only call it while no other process writes into ``folder`` (the analysis runner holds the folder's lock).

    Returns
    -------
    list of Path
        The files removed.
    """
    removed = []
    for entry in os.scandir(folder):
        if entry.is_file(follow_symlinks=False) and _TEMPORARY.match(entry.name):
            Path(entry.path).unlink(missing_ok=True)
            removed.append(Path(entry.path))
    if removed:
        logger.warning("removed %d temporary file(s) of interrupted writes in %s: %s", len(removed), folder,
                       [p.name for p in removed])
    return removed
