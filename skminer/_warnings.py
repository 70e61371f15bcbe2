"""Warnings that point at the user's own line.

A fixed ``stacklevel`` is off whenever a decorator (scikit-learn's ``_fit_context``), a meta-estimator (Pipeline,
GridSearchCV and their joblib loops) or skorch's training loop adds frames between the user's call and skminer:
the warning then names a line inside scikit-learn or joblib, and Python's once-per-location filter may hide it.
:func:`user_stacklevel` walks the stack instead, skipping skminer, scikit-learn, joblib, skorch and torch frames.
"""

from __future__ import annotations

import os
import sys
import warnings

__all__ = ["user_stacklevel", "warn_user"]

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
