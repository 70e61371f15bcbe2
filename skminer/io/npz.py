"""Bounded reading of ``.npz`` archives (training samples): declared array sizes checked before numpy allocates.

``numpy.load`` allocates every array from the shape in its ``.npy`` header before reading the data, so a small
archive whose header declares ``(10**10,)`` doubles would make it allocate 80 GB. :func:`check_npz` reads only the
headers and compares each declared size with the size the zip directory records for that member, and the
member's compression ratio with deflate's limit (about 1032:1), before anything is loaded.
"""

from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path

import numpy as np

from ._h5 import MAX_COMPRESSION_RATIO

__all__ = ["check_npz"]


def check_npz(path: str | os.PathLike) -> None:
    """Refuse an ``.npz`` file whose arrays declare more data than the archive holds.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If it is not a zip archive of ``.npy`` members, or a member declares more bytes than it stores or an
        implausible compression ratio; the message names the file and the field.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                _check_member(path, archive, info)
    except zipfile.BadZipFile as err:
        raise ValueError(f"{path}: not an .npz archive ({err})") from None


def _check_member(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    field = info.filename.removesuffix(".npy")
    if info.compress_size and info.file_size > MAX_COMPRESSION_RATIO * info.compress_size:
        raise ValueError(f"{path}: field {field!r} expands from {info.compress_size} to {info.file_size} bytes; a "
                         f"compression ratio above {MAX_COMPRESSION_RATIO:g} is not plausible")
    with archive.open(info) as member:
        try:
            version = np.lib.format.read_magic(member)
            header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                      else np.lib.format.read_array_header_2_0)(member)
        except ValueError as err:
            raise ValueError(f"{path}: field {field!r} is not a .npy array ({err})") from None
        header_bytes = member.tell()
    shape, _, dtype = header
    declared = math.prod(int(n) for n in shape) * dtype.itemsize
    if declared > info.file_size - header_bytes:
        raise ValueError(f"{path}: field {field!r} declares shape {tuple(shape)} ({declared} bytes) but the archive "
                         f"stores {info.file_size - header_bytes} bytes of data")
