"""Checks of training data that make a fit useless or its model predict NaN, run at the start of every ``fit``.

Shape and finiteness are sklearn's job (``validate_data`` / ``check_array``); what is checked here is what those
accept but training cannot use:

- a single event (nothing to standardise or validate with);
- values beyond float32's range (about 3.4e38): the networks compute in float32, so such inputs become inf and
  the fitted model predicts NaN;
- labels of one class only (a ratio estimator needs events drawn at theta0 *and* theta1);
- a joint likelihood ratio ``r_xz`` that is 0 (or inf) for every event (NaN and negative values are refused by
  :func:`~skminer.estimators.losses.log_r_xz_from_r_xz`);
- legal but useless data (warnings): every feature constant, a joint score ``t_xz`` that is 0 for every event.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._warnings import warn_user

__all__ = ["check_training_data"]

_FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_training_data(owner: str, X: np.ndarray, *, y: np.ndarray | None = None, r_xz: np.ndarray | None = None,
                        t_xz: np.ndarray | None = None, **arrays: np.ndarray | None) -> None:
    """Refuse training data that cannot give a usable model; warn about data that are legal but useless.

    Parameters
    ----------
    owner : str
        Estimator class name, for the messages.
    X : ndarray, shape (n_events, n_features)
        Validated (finite, 2-D) features.
    y : ndarray, shape (n_events,), optional
        Class labels of a ratio estimator (0: theta0, 1: theta1).
    r_xz : ndarray, shape (n_events,), optional
        Joint likelihood ratio (non-negative, not NaN; inf allowed where p(x, z | theta1) = 0).
    t_xz : ndarray, shape (n_events, n_parameters), optional
        Joint score (the regression target of SALLY, a loss term of the score-based methods).
    **arrays : ndarray, optional
        Further inputs that enter the network (``theta``, ...), checked for their float32 range.

    Raises
    ------
    ValueError
        Naming the estimator, the quantity and its size.

    Warns
    -----
    UserWarning
        If every feature is constant or ``t_xz`` is 0 for every event.
    """
    n = X.shape[0]
    if n < 2:
        raise ValueError(f"{owner}.fit: {n} sample: training needs at least 2 events (one event can be neither "
                         "standardised nor split for validation)")
    for name, a in {"X": X, "t_xz": t_xz, **arrays}.items():
        if a is not None:
            _check_float32_range(owner, name, np.asarray(a, dtype=np.float64))
    if y is not None:
        _check_two_classes(owner, np.asarray(y))
    if r_xz is not None:
        _check_joint_ratio(owner, np.asarray(r_xz, dtype=np.float64))
    if X.shape[1] and np.all(np.ptp(X, axis=0) == 0):
        warn_user(f"{owner}.fit: every feature of X is constant over the {n} events; the model cannot learn "
                      "anything from them", UserWarning)
    if t_xz is not None and not np.any(t_xz):
        warn_user(f"{owner}.fit: the joint score t_xz is 0 for every one of the {n} events; it carries no "
                      "information about theta", UserWarning)


def _check_float32_range(owner: str, name: str, a: np.ndarray) -> None:
    finite = np.isfinite(a)
    if not np.any(finite):
        return
    magnitude = np.abs(np.where(finite, a, 0.0))
    biggest = float(magnitude.max())
    if biggest > _FLOAT32_MAX:
        where = np.unravel_index(int(np.argmax(magnitude)), a.shape)
        raise ValueError(f"{owner}.fit: {name} holds values up to {biggest:.3g} (at index {tuple(map(int, where))}), "
                         f"beyond the float32 range ({_FLOAT32_MAX:.3g}) the network computes in; the model would "
                         f"predict NaN. Rescale {name} (e.g. take a logarithm or change units)")


def _check_two_classes(owner: str, y: np.ndarray) -> None:
    classes = np.unique(y)
    if classes.size < 2:
        raise ValueError(f"{owner}.fit: y holds 1 class only ({_label(classes)} for all {y.shape[0]} events); a "
                         "ratio estimator needs events drawn at theta0 (y = 0) and at theta1 (y = 1)")


def _check_joint_ratio(owner: str, r: np.ndarray) -> None:
    for value, meaning in ((0.0, "p(x, z | theta0) = 0"), (np.inf, "p(x, z | theta1) = 0")):
        if np.all(r == value):
            raise ValueError(f"{owner}.fit: r_xz is {value:g} for every one of the {r.shape[0]} events ({meaning} "
                             "everywhere); the joint ratio is degenerate, check how it was computed")


def _label(classes: Any) -> str:
    return "none" if classes.size == 0 else f"{float(classes[0]):g}"
