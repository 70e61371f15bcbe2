"""The output folder of an analysis: one run at a time, stale temporaries removed, outputs fingerprinted.

* :func:`run_lock` takes an exclusive ``flock`` on ``<folder>/.skminer.lock`` for the whole run and writes who
  holds it (pid, host, start time, command) into the file, so a second run on the same folder is refused with
  a message naming the first. The kernel releases the lock when the process ends, however it ends.
* :func:`skminer._atomic.remove_stale_temporaries` (called under the lock) removes what killed writes left.
* :func:`fingerprint` / :func:`changed_outputs` record each output's size, mtime and SHA-256, so that a stage
  whose outputs were replaced since they were recorded (by another run, by hand) is not taken as up to date.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import socket
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["FolderInUseError", "OutputFolderError", "run_lock", "fingerprint", "changed_outputs", "file_sha256",
           "LOCK_NAME"]

logger = logging.getLogger(__name__)

LOCK_NAME = ".skminer.lock"
_READ_ONLY_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})


class FolderInUseError(RuntimeError):
    """Another process is running an analysis in the same output folder."""


class OutputFolderError(OSError):
    """The output folder cannot be created or written (a failed write: exit status 1 in the CLI)."""

    def __str__(self) -> str:  # the message names the folder and the reason; no "[Errno n]" prefix
        return str(self.strerror)


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another process (its details could not be read)"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info.get("started", 0))))
    return (f"process {info.get('pid')} on {info.get('host')} (started {started}: "
            f"{' '.join(str(a) for a in info.get('argv', []))})")


@contextmanager
def run_lock(folder: str | os.PathLike) -> Iterator[bool]:
    """Hold the folder's lock for the duration of a run.

    Parameters
    ----------
    folder : path-like
        The output folder (created if missing and possible).

    Yields
    ------
    bool
        True when the folder is writable and locked; False when it cannot be written (read-only file system or
        no permission): then nothing may be written and no lock is held.

    Raises
    ------
    FolderInUseError
        When another process holds the lock (the message names it).
    """
    folder = Path(folder)
    path = folder / LOCK_NAME
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe, probe_path = tempfile.mkstemp(prefix=".skminer-probe-", dir=folder)  # can entries be created?
        os.close(probe)
        os.unlink(probe_path)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as err:
        if err.errno in _READ_ONLY_ERRNOS and folder.is_dir():
            logger.debug("%s is not writable (%s): read-only use", folder, err.strerror)
            yield False
            return
        raise OutputFolderError(err.errno, f"cannot create or write the output folder {folder}: "
                                f"{err.strerror or err}") from err
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderInUseError(f"{folder} is in use by {_holder(path)}; wait for it to finish or choose another "
                                   "output folder") from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "argv": sys.argv}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        yield True
    finally:
        os.close(fd)  # releases the lock


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's content (hex), read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fingerprint(folder: Path, outputs: list[str]) -> dict[str, dict[str, Any]]:
    """Size, modification time (ns) and SHA-256 of each output file (relative to ``folder``)."""
    out = {}
    for name in outputs:
        st = (folder / name).stat()
        out[name] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": file_sha256(folder / name)}
    return out


def changed_outputs(folder: Path, recorded: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Outputs that are missing or whose content differs from their recorded fingerprint.

    A file whose size and mtime are unchanged is taken as unchanged without reading it; otherwise (copied folder,
    touched file, another run's output) its SHA-256 decides.
    """
    changed = []
    for name, fp in recorded.items():
        path = folder / name
        try:
            st = path.stat()
        except FileNotFoundError:
            changed.append(name)
            continue
        if st.st_size == fp.get("size") and st.st_mtime_ns == fp.get("mtime_ns"):
            continue
        if st.st_size != fp.get("size") or file_sha256(path) != fp.get("sha256"):
            changed.append(name)
    return changed
