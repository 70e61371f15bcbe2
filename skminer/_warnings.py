"""Warnings that point at the user's own line.

A fixed ``stacklevel`` is off whenever a decorator (scikit-learn's ``_fit_context``), a meta-estimator (Pipeline,
GridSearchCV and their joblib loops) or skorch's training loop adds frames between the user's call and skminer:
the warning then names a line inside scikit-learn or joblib, and Python's once-per-location filter may hide it.
:func:`user_stacklevel` walks the stack instead, skipping skminer, scikit-learn, joblib, skorch and torch frames.

:func:`record_warnings` collects the warnings raised in one thread (e.g. in a joblib worker fitting an ensemble
member, whose warnings would otherwise never reach the caller's ``warnings.catch_warnings``), so that they can be
re-emitted where the user sees them.
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["user_stacklevel", "warn_user", "record_warnings"]

#: Packages whose frames lie between the user and the line that warns.
_INTERNAL_PACKAGES = ("skminer", "sklearn", "joblib", "skorch", "torch")


def _internal_dirs() -> tuple[str, ...]:
    # only the packages already imported can have frames on the stack (no import of torch for a warning)
    dirs = []
    for name in _INTERNAL_PACKAGES:
        path = getattr(sys.modules.get(name), "__file__", None)
        if path:
            dirs.append(os.path.dirname(os.path.abspath(path)) + os.sep)
    return tuple(dirs)


def user_stacklevel() -> int:
    """``stacklevel`` for a :func:`warnings.warn` in the calling function that points at the user's code.

    The first frame outside skminer, scikit-learn, joblib, skorch and torch; the outermost frame if every frame
    is internal (e.g. the skminer command line).

    Returns
    -------
    int
    """
    internal = _internal_dirs()
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and os.path.abspath(frame.f_code.co_filename).startswith(internal):
        frame, level = frame.f_back, level + 1
    return level


def warn_user(message: str | Warning, category: type[Warning] = UserWarning) -> None:
    """:func:`warnings.warn` ``message`` as ``category``, attributed to the user's line (:func:`user_stacklevel`).

    Parameters
    ----------
    message : str or Warning
    category : subclass of Warning
    """
    warnings.warn(message, category, stacklevel=user_stacklevel())


_lock = threading.Lock()
_local = threading.local()
_active = 0  # record_warnings contexts open in this process
_saved: tuple = ()  # showwarning and filters before the first of them


def _dispatch(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: object = None,
              line: str | None = None) -> None:
    records = getattr(_local, "records", None)
    if records is not None:
        records.append(warnings.WarningMessage(message, category, filename, lineno, file, line))
    elif _saved:  # a thread that records nothing: as before
        _saved[0](message, category, filename, lineno, file, line)
    else:  # the recording ended while a library's catch_warnings (entered during it) put the dispatcher back
        warnings._showwarnmsg_impl(warnings.WarningMessage(message, category, filename, lineno, file, line))


@contextmanager
def record_warnings() -> Iterator[list[warnings.WarningMessage]]:
    """Record every warning raised in the current thread while the context is open (none is shown).

    Unlike :class:`warnings.catch_warnings` it may be open in several threads at once (joblib's threading
    backend, a dask worker's threads): the first context in the process installs a dispatcher and an ``"always"``
    filter, the last one restores the previous state, and each thread records only its own warnings (other
    threads' warnings are shown as before). Every occurrence is recorded; the filters in force where the records
    are re-emitted decide what is shown.

    Yields
    ------
    list of warnings.WarningMessage
        Filled as warnings are raised.
    """
    global _active, _saved
    with _lock:
        if _active == 0:
            _saved = (warnings.showwarning, list(warnings.filters))
            warnings.showwarning = _dispatch
            warnings.simplefilter("always")
        _active += 1
    previous = getattr(_local, "records", None)
    _local.records = records = []
    try:
        yield records
    finally:
        _local.records = previous
        with _lock:
            _active -= 1
            if _active == 0:
                warnings.showwarning = _saved[0]
                warnings.filters[:] = _saved[1]
                warnings._filters_mutated()  # as warnings.catch_warnings does on exit
                _saved = ()
