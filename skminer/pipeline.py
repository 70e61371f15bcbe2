"""A scikit-learn Pipeline that forwards skminer's inference protocol through its transformers.

:class:`Pipeline` is :class:`sklearn.pipeline.Pipeline` plus the protocol of its final estimator:
``predict_log_ratio(X, theta0, theta1=None)``, ``score_at(X, theta=None)``, ``log_likelihood(X, theta)``,
``calibrate`` (SALLINO) and ``capabilities``. ``X`` is transformed by the fitted transformers; the parameter
points never are (they are not features). Each method exists only when the final estimator has it
(:func:`sklearn.utils.metaestimators.available_if`).

:func:`as_protocol_estimator` lets :class:`~skminer.inference.FisherInformation` and
:class:`~skminer.inference.AsymptoticLimits` accept a plain :class:`sklearn.pipeline.Pipeline` too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn import pipeline as _sk
from sklearn.utils.metaestimators import available_if

from .methods import capabilities_of

__all__ = ["Pipeline", "make_pipeline", "as_protocol_estimator", "final_step"]


def _final_has(method: str) -> Callable[[Any], bool]:
    def check(self: Pipeline) -> bool:
        return hasattr(self._final_estimator, method)
    return check


class Pipeline(_sk.Pipeline):
    """:class:`sklearn.pipeline.Pipeline` that also answers skminer's inference protocol.

    Parameters are those of :class:`sklearn.pipeline.Pipeline` (``steps``, ``transform_input``, ``memory``,
    ``verbose``). Metadata such as ``theta`` reaches the final estimator's ``fit`` / ``predict`` / ``score``
    as in any scikit-learn pipeline (metadata routing, or ``<step>__theta=`` for ``fit`` without it).

    Examples
    --------
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skminer import CARL, make_pipeline
    >>> pipe = make_pipeline(StandardScaler(), CARL(hidden_layer_sizes=(8,), max_epochs=2))
    >>> sorted(pipe.capabilities)
    ['ratio', 'score']
    """

    @property
    def capabilities(self) -> frozenset[str]:
        """The inference-protocol capabilities of the final estimator."""
        return capabilities_of(self._final_estimator)

    def _features(self, X: Any) -> Any:
        """``X`` passed through the fitted transformers (not the final estimator)."""
        for _, transformer in self.steps[:-1]:
            if transformer is None or transformer == "passthrough":
                continue
            X = transformer.transform(X)
        return X

    @available_if(_final_has("predict_log_ratio"))
    def predict_log_ratio(self, X: Any, theta0: Any, theta1: Any = None, **kwargs: Any) -> np.ndarray:
        """The final estimator's ``predict_log_ratio`` on the transformed ``X`` (see the protocol)."""
        return self._final_estimator.predict_log_ratio(self._features(X), theta0, theta1, **kwargs)

    @available_if(_final_has("score_at"))
    def score_at(self, X: Any, theta: Any = None, **kwargs: Any) -> np.ndarray:
        """The final estimator's ``score_at`` on the transformed ``X`` (the score ``d log p(x|theta)/d theta``)."""
        return self._final_estimator.score_at(self._features(X), theta, **kwargs)

    @available_if(_final_has("log_likelihood"))
    def log_likelihood(self, X: Any, theta: Any, **kwargs: Any) -> np.ndarray:
        """The final estimator's ``log_likelihood`` on the transformed ``X``.

        The density is that of the *transformed* features; a non-linear transformer changes it by its Jacobian,
        which cancels in likelihood ratios and scores but not in the log likelihood itself.
        """
        return self._final_estimator.log_likelihood(self._features(X), theta, **kwargs)

    @available_if(_final_has("predict_all"))
    def predict_all(self, method: str, X: Any, *args: Any, **kwargs: Any) -> np.ndarray:
        """Per-member outputs of a final :class:`~skminer.estimators.Ensemble` on the transformed ``X``."""
        return self._final_estimator.predict_all(method, self._features(X), *args, **kwargs)

    @available_if(_final_has("calibrate"))
    def calibrate(self, X: Any, *args: Any, **kwargs: Any) -> Pipeline:
        """Calibrate a final SALLINO (or an Ensemble of them) on the transformed calibration events."""
        self._final_estimator.calibrate(self._features(X), *args, **kwargs)
        return self


def make_pipeline(*steps: Any, memory: Any = None, transform_input: Any = None, verbose: bool = False) -> Pipeline:
    """:func:`sklearn.pipeline.make_pipeline` building a skminer :class:`Pipeline` (steps named after classes)."""
    sk = _sk.make_pipeline(*steps, memory=memory, transform_input=transform_input, verbose=verbose)
    return Pipeline(sk.steps, memory=memory, transform_input=transform_input, verbose=verbose)


def final_step(estimator: Any) -> Any:
    """The estimator at the end of (nested) scikit-learn or skminer pipelines; ``estimator`` itself otherwise.

    Parameters
    ----------
    estimator : object

    Returns
    -------
    object
        The last step of the last step ... of ``estimator`` (``"passthrough"`` or None if that is the last step).
    """
    while isinstance(estimator, _sk.Pipeline):
        estimator = estimator.steps[-1][1]
    return estimator


def as_protocol_estimator(estimator: Any) -> Any:
    """``estimator``, with a plain :class:`sklearn.pipeline.Pipeline` wrapped as a skminer :class:`Pipeline`.

    The wrapper shares the (fitted) steps, so nothing is copied or refitted.
    """
    if isinstance(estimator, _sk.Pipeline) and not isinstance(estimator, Pipeline):
        return Pipeline(estimator.steps, memory=estimator.memory, transform_input=estimator.transform_input,
                        verbose=estimator.verbose)
    return estimator
