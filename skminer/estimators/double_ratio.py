"""Doubly parameterised likelihood-ratio estimators: DoubleCARL, DoubleROLR, DoubleALICE, DoubleCASCAL,
DoubleRASCAL, DoubleALICES.

The network is ``log r_hat(x | theta0, theta1) = f(x, theta0, theta1)``, with ``theta0`` and ``theta1`` both
varying over the training sample. In the scikit-learn methods (``fit``, ``predict``, ``predict_proba``,
``score``) ``theta`` is the stacked array ``[theta0, theta1]`` of shape ``(n_events, 2 * n_parameters)`` (or
``(2 * n_parameters,)`` for one pair at prediction time). The inference protocol takes the points separately:
``predict_log_ratio(X, theta0, theta1)`` (``theta1`` is required: there is no fixed reference) and
``score_at(X, theta)`` (the derivative with respect to ``theta0`` at ``theta0 = theta1 = theta``).

Labels and augmented data as for the singly parameterised estimators: ``y = 0`` for ``x ~ p(x | theta0)``,
``y = 1`` for ``x ~ p(x | theta1)``, both classes sharing the ``(theta0, theta1)`` pairs; ``r_xz`` is the joint
ratio ``r(x, z | theta0, theta1)``, ``t_xz`` the joint score at ``theta0``, and the optional ``t_xz1`` the joint
score at ``theta1``. With ``t_xz1`` the score term of CASCAL/RASCAL/ALICES also matches
``-d log r_hat / d theta1`` (which is ``t(x | theta1)``) to ``t_xz1`` on ``y = 1`` events, as in MadMiner.
"""

from __future__ import annotations

from typing import Any

from .base import ClassifierOutputMixin
from .ratio import _PARAMS_DOC, _RASCAL_ALPHA_DOC, RASCAL, RatioEstimatorBase, _AlphaRatioEstimatorBase

__all__ = ["DoubleCARL", "DoubleROLR", "DoubleALICE", "DoubleCASCAL", "DoubleRASCAL", "DoubleALICES"]

_ALPHA_DOC = """
    alpha : float, default=1.0
        Weight of the joint-score term ``mean[(1 - y) |t_hat0 - t_xz|^2 + y |t_hat1 - t_xz1|^2]`` (the second
        part only when ``t_xz1`` is given) relative to the ratio term; the squared errors are means over the
        components in units of the training spread of ``theta0`` and ``theta1`` (MadMiner's, see
        :func:`skminer.estimators.losses.score_mse`)."""


def _doc(summary: str, alpha: bool) -> str:
    return summary + " Doubly parameterised: ``theta = [theta0, theta1]``.\n" + _PARAMS_DOC.format(
        alpha=_ALPHA_DOC if alpha else "")


def _fit_doc(loss: str) -> str:
    return f"""Train with the doubly parameterised {loss} loss.

        Parameters
        ----------
        X : array-like of shape (n_events, n_features)
        y : array-like of shape (n_events,)
            0: ``x`` drawn at ``theta0``; 1: ``x`` drawn at ``theta1``.
        theta : array-like of shape (n_events, 2 * n_parameters)
            ``[theta0, theta1]`` of every event (shared by both classes).
        r_xz : array-like of shape (n_events,), optional
            Joint likelihood ratio ``r(x, z | theta0, theta1)`` (ROLR, ALICE, RASCAL, ALICES).
        t_xz : array-like of shape (n_events, n_parameters), optional
            Joint score at ``theta0`` (CASCAL, RASCAL, ALICES unless ``alpha == 0``).
        t_xz1 : array-like of shape (n_events, n_parameters), optional
            Joint score at ``theta1`` (optional extra score term for CASCAL, RASCAL, ALICES).

        Returns
        -------
        self
        """


class _DoubleMixin:
    _double = True
    __metadata_request__fit = {"theta": True, "r_xz": True, "t_xz": True, "t_xz1": True}


class DoubleCARL(_DoubleMixin, ClassifierOutputMixin, RatioEstimatorBase):
    __doc__ = _doc("Doubly parameterised CARL.", alpha=False)

    def fit(self, X: Any, y: Any, *, theta: Any = None, r_xz: Any = None, t_xz: Any = None,
            t_xz1: Any = None) -> DoubleCARL:
        return self._fit(X, y, theta, r_xz, t_xz, t_xz1)

    fit.__doc__ = _fit_doc("CARL")


class DoubleROLR(_DoubleMixin, RatioEstimatorBase):
    __doc__ = _doc("Doubly parameterised ROLR.", alpha=False)

    def fit(self, X: Any, y: Any, *, theta: Any = None, r_xz: Any = None, t_xz: Any = None,
            t_xz1: Any = None) -> DoubleROLR:
        return self._fit(X, y, theta, r_xz, t_xz, t_xz1)

    fit.__doc__ = _fit_doc("ROLR")


class DoubleALICE(_DoubleMixin, ClassifierOutputMixin, RatioEstimatorBase):
    __doc__ = _doc("Doubly parameterised ALICE.", alpha=False)

    def fit(self, X: Any, y: Any, *, theta: Any = None, r_xz: Any = None, t_xz: Any = None,
            t_xz1: Any = None) -> DoubleALICE:
        return self._fit(X, y, theta, r_xz, t_xz, t_xz1)

    fit.__doc__ = _fit_doc("ALICE")


class DoubleCASCAL(_DoubleMixin, ClassifierOutputMixin, _AlphaRatioEstimatorBase):
    __doc__ = _doc("Doubly parameterised CASCAL.", alpha=True)

    def fit(self, X: Any, y: Any, *, theta: Any = None, r_xz: Any = None, t_xz: Any = None,
            t_xz1: Any = None) -> DoubleCASCAL:
        return self._fit(X, y, theta, r_xz, t_xz, t_xz1)

    fit.__doc__ = _fit_doc("CASCAL")


class DoubleRASCAL(_DoubleMixin, _AlphaRatioEstimatorBase):
    __doc__ = _doc("Doubly parameterised RASCAL.", alpha=True).replace(*_RASCAL_ALPHA_DOC)
    __init__ = RASCAL.__init__  # RASCAL's default alpha

    def fit(self, X: Any, y: Any, *, theta: Any = None, r_xz: Any = None, t_xz: Any = None,
            t_xz1: Any = None) -> DoubleRASCAL:
        return self._fit(X, y, theta, r_xz, t_xz, t_xz1)

    fit.__doc__ = _fit_doc("RASCAL")


class DoubleALICES(_DoubleMixin, ClassifierOutputMixin, _AlphaRatioEstimatorBase):
    __doc__ = _doc("Doubly parameterised ALICES.", alpha=True)

    def fit(self, X: Any, y: Any, *, theta: Any = None, r_xz: Any = None, t_xz: Any = None,
            t_xz1: Any = None) -> DoubleALICES:
        return self._fit(X, y, theta, r_xz, t_xz, t_xz1)

    fit.__doc__ = _fit_doc("ALICES")
