"""Scorers for cross-validating and comparing skminer estimators (theta, r_xz, t_xz through metadata routing).

scikit-learn's built-in scorers (``"roc_auc"``, ``"neg_log_loss"`` ...) call ``predict_proba(X)`` without
metadata, so a parameterised estimator cannot receive ``theta`` from them. The scorers here request the
metadata they need (``theta``; ``r_xz``; ``t_xz``) and pass it on, so that with
``sklearn.set_config(enable_metadata_routing=True)``::

    cross_validate(CARL(), X, y, params={"theta": theta, "r_xz": r_xz}, scoring={"auc": metrics.roc_auc, ...})

evaluates every fold with the fold's own rows of ``theta``. Greater is better for all of them.

* :data:`roc_auc`: area under the ROC curve of ``s_hat = 1 / (1 + r_hat)`` for the labels ``y``;
* :data:`neg_log_loss`: minus the cross entropy of ``s_hat`` against ``y``;
* :data:`neg_ratio_mse`: minus ``mean[(1 - y) (1/r_hat - 1/r_xz)^2 + y (r_hat - r_xz)^2]``;
* :data:`neg_score_mse`: minus ``mean |t_hat(x | theta) - t_xz|^2`` over events drawn at ``theta`` (``y = 0``);
  without ``theta``, at the estimator's own reference point (SALLY: ``score_at(X)``). The model and ``t_xz``
  must have the same number of score components, except that a model with extra *nuisance* components (SALLY
  trained with ``LocalScoreSampler(include_nuisance=True)`` and fitted with ``theta=`` its reference point, so
  that it records the number of physics parameters) is compared on its physics components; any other mismatch
  is a ``ValueError`` naming both widths. For an estimator whose training target ``y`` *is* the joint score
  (SALLY, SALLINO, an Ensemble or Pipeline of them: :func:`skminer.methods.fit_target`), ``y`` serves as
  ``t_xz`` when ``t_xz`` is not passed, so ``GridSearchCV(SALLY(), ..., scoring=metrics.neg_score_mse).fit(x,
  t_xz)`` works without routing.

Labels, ``r_xz`` and predicted ``log r`` must hold one number per event (never broadcast against each other).

The last two are *proper* augmented-data scores (arXiv:1805.12244, section 3; arXiv:1907.10621, section III):
``E[r_xz | x] = r(x)`` on ``y = 1`` events, ``E[1/r_xz | x] = 1/r(x)`` on ``y = 0`` events and ``E[t_xz | x] =
t(x)`` on events drawn at ``theta``, so their expectation is the error against the unknown true ``r`` / ``t``
plus a model-independent constant: they rank models like the true error does, on validation data alone.

Missing metadata raises :class:`MissingMetadataError`, which says whether routing is off or on (then the caller
did not pass the metadata). Inside scikit-learn's cross-validation the ratio and density estimators refuse to
*fit* when a scorer here cannot receive the metadata it needs (``theta``, and ``t_xz`` for ``neg_score_mse``),
since scikit-learn would turn the scoring error into NaN scores and pick an arbitrary best candidate.
Other scoring errors still become NaN scores with a warning unless ``error_score="raise"``; pass it when
comparing methods.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.special import log_expit
from sklearn.metrics import roc_auc_score
from sklearn.utils.metadata_routing import MetadataRequest
from sklearn.utils.validation import _num_samples

from ._metadata import MissingMetadataError, missing_metadata_message
from .methods import capabilities_of, fit_target
from .pipeline import as_protocol_estimator, final_step

__all__ = ["MissingMetadataError", "ProtocolScorer", "roc_auc", "neg_log_loss", "neg_ratio_mse", "neg_score_mse",
           "SCORERS"]


def _per_event(value: Any, n: int, name: str) -> np.ndarray:
    a = np.asarray(value, dtype=np.float64)
    if a.ndim == 0 or a.shape[0] != n:
        raise ValueError(f"{name} must have one entry per event ({n}), got shape {a.shape}")
    return a


def _one_per_event(value: Any, n: int, name: str) -> np.ndarray:
    """``value`` as shape ``(n,)``: one number per event (shape ``(n,)`` or ``(n, 1)``), never broadcast."""
    a = _per_event(value, n, name)
    if a.size != n:
        raise ValueError(f"{name} must hold one number per event, shape ({n},) or ({n}, 1), got shape {a.shape}")
    return a.reshape(n)


class ProtocolScorer:
    """A scorer ``scorer(estimator, X, y=None, **metadata) -> float`` that requests metadata through routing.

    Parameters
    ----------
    name : str
    function : callable
        ``function(estimator, X, y, **metadata) -> float`` (greater is better).
    metadata : tuple of str
        Metadata requested for scoring (required unless also in ``optional``).
    optional : tuple of str
        Requested metadata that ``function`` can do without (it receives ``None``).
    target : tuple of str
        Requested metadata that the labels ``y`` are, for an estimator trained on it as its target
        (:func:`skminer.methods.fit_target`, e.g. ``t_xz`` for SALLY): when it is not passed, ``function``
        receives ``y`` as that metadata and ``y=None``.
    """

    def __init__(self, name: str, function: Callable[..., float], metadata: tuple[str, ...],
                 optional: tuple[str, ...] = (), target: tuple[str, ...] = ()) -> None:
        self.name = name
        self.function = function
        self.metadata = metadata
        self.optional = optional
        self.target = target

    def __repr__(self) -> str:
        return f"skminer.metrics.{self.name}"

    def get_metadata_routing(self) -> MetadataRequest:
        """Request ``theta`` (and ``r_xz`` / ``t_xz``) for the ``score`` call of the routing caller."""
        request = MetadataRequest(owner=repr(self))
        for key in self.metadata:
            request.score.add_request(param=key, alias=True)
        return request

    def required_metadata(self, estimator: Any) -> tuple[str, ...]:
        """The metadata that must be passed to score ``estimator`` (not optional, and not its fit target ``y``).

        Parameters
        ----------
        estimator : object

        Returns
        -------
        tuple of str
        """
        target = fit_target(estimator)
        return tuple(k for k in self.metadata if k not in self.optional and not (k in self.target and k == target))

    def __call__(self, estimator: Any, X: Any, y: Any = None, **metadata: Any) -> float:
        if y is not None:
            target = fit_target(estimator)
            if target in self.target and metadata.get(target) is None:  # y is that metadata (SALLY: t_xz)
                metadata[target], y = y, None
        for key in self.metadata:
            if metadata.get(key) is None and key not in self.optional:
                raise MissingMetadataError(missing_metadata_message(repr(self), key))
        return float(self.function(as_protocol_estimator(estimator), X, y, **metadata))


def _log_r(estimator: Any, X: Any, theta: Any) -> np.ndarray:
    if "ratio" not in capabilities_of(estimator) or not hasattr(estimator, "predict"):
        raise TypeError(f"{type(estimator).__name__} is not a ratio estimator with predict(X, theta)")
    return _one_per_event(estimator.predict(X, theta=theta), _num_samples(X), f"{type(estimator).__name__}.predict")


def _labels(y: Any, n: int) -> np.ndarray:
    if y is None:
        raise MissingMetadataError("the ratio scorers need the labels y (0: x drawn at theta0, 1: at theta1)")
    return _one_per_event(y, n, "y")


def _roc_auc(estimator: Any, X: Any, y: Any, theta: Any) -> float:
    log_r = _log_r(estimator, X, theta)
    return roc_auc_score(_labels(y, log_r.size), -log_r)  # s = 1 / (1 + r) grows with -log r


def _neg_log_loss(estimator: Any, X: Any, y: Any, theta: Any) -> float:
    log_r = _log_r(estimator, X, theta)
    y = _labels(y, log_r.size)
    # log s = log_expit(-log r), log (1 - s) = log_expit(log r): finite for any log r
    return float(np.mean(y * log_expit(-log_r) + (1 - y) * log_expit(log_r)))


def _neg_ratio_mse(estimator: Any, X: Any, y: Any, theta: Any, r_xz: Any) -> float:
    log_r = _log_r(estimator, X, theta)
    y = _labels(y, log_r.size)
    r_xz = _one_per_event(r_xz, log_r.size, "r_xz")
    with np.errstate(over="ignore", divide="ignore"):
        err = np.where(y == 1, (np.exp(log_r) - r_xz) ** 2, (np.exp(-log_r) - 1.0 / r_xz) ** 2)
    if not np.all(np.isfinite(err)):
        raise ValueError(f"neg_ratio_mse: {int(np.sum(~np.isfinite(err)))} events have an infinite ratio error "
                         "(r_xz or r_hat overflows)")
    return -float(np.mean(err))


def _recorded_parameter_count(estimator: Any) -> int | None:
    """How many physics parameters the (final, first-member) estimator records: ``n_parameters_`` of
    parameterised estimators, the size of SALLY's reference point ``theta_ref_``; None if it records neither."""
    estimator = final_step(estimator)
    members = getattr(estimator, "members_", None)
    if members:
        estimator = final_step(members[0])
    n = getattr(estimator, "n_parameters_", None)
    if n is not None:
        return int(n)
    ref = getattr(estimator, "theta_ref_", None)
    return None if ref is None else int(np.size(ref))


def _compared_components(estimator: Any, t_hat: np.ndarray, p: int) -> np.ndarray:
    """The columns of ``t_hat`` compared with the ``p`` columns of ``t_xz``.

    All of them when the widths agree. A model with more components than ``t_xz`` is cut to the first ``p`` only
    when the extra ones are nuisance components (SALLY trained on ``LocalScoreSampler(include_nuisance=True)``
    targets, compared with the physics score): the estimator must record ``p`` physics parameters. Anything
    else is a mismatch between model and data, and an error.
    """
    k = t_hat.shape[1]
    if k == p:
        return t_hat
    counted = _recorded_parameter_count(estimator)
    if k > p and counted == p:
        return t_hat[:, :p]
    name = type(estimator).__name__
    if k < p:
        why = f"t_xz has {p - k} components that the model does not estimate"
    elif counted is None:
        why = (f"it records no parameter count, so the extra {k - p} components cannot be identified as nuisance "
               "components (fit SALLY with theta=<its reference point> to record it)")
    else:
        why = f"it has {counted} parameters, so its extra components are not just nuisance components"
    raise ValueError(f"neg_score_mse: {name} estimates {k} score components but t_xz has {p} columns; {why}")


def _reference_scores(estimator: Any, X: np.ndarray) -> np.ndarray:
    """``score_at(X)``: the score at the estimator's own reference point (SALLY); a clear error without one."""
    try:
        return np.asarray(estimator.score_at(X), dtype=np.float64).reshape(X.shape[0], -1)
    except ValueError as err:
        raise MissingMetadataError(
            f"{missing_metadata_message(repr(neg_score_mse), 'theta', 'the parameter point of each event')} "
            f"Without theta it scores {type(estimator).__name__} at its own reference point (score_at(X), as for "
            f"SALLY), which failed: {err}") from err


def _neg_score_mse(estimator: Any, X: Any, y: Any, t_xz: Any, theta: Any = None) -> float:
    """Minus mean |t_hat(x|theta) - t_xz|^2 over events drawn at their theta (y = 0 for ratio samples); without
    theta, at the estimator's reference point."""
    if "score" not in capabilities_of(estimator):
        raise TypeError(f"{type(estimator).__name__} has no 'score' capability (score_at)")
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    t_xz = _per_event(t_xz, n, "t_xz").reshape(n, -1)
    keep = np.ones(n, dtype=bool) if y is None or np.ndim(y) != 1 or not np.all(np.isin(y, (0, 1))) else \
        np.asarray(y) == 0
    p = t_xz.shape[1]
    if theta is None:
        t_hat = _compared_components(estimator, _reference_scores(estimator, X[keep]), p)
        return -float(np.mean(np.sum((t_hat - t_xz[keep]) ** 2, axis=1)))
    theta = _per_event(theta, n, "theta").reshape(n, -1)
    points, index = np.unique(theta[keep, :p], axis=0, return_inverse=True)  # Double*: theta0 is the first half
    index = index.reshape(-1)
    x_keep, t_keep = X[keep], t_xz[keep]
    sq = np.empty(x_keep.shape[0])
    for j, point in enumerate(points):  # the protocol evaluates one point for many events
        rows = index == j
        t_hat = np.asarray(estimator.score_at(x_keep[rows], point), dtype=np.float64).reshape(int(rows.sum()), -1)
        sq[rows] = np.sum((_compared_components(estimator, t_hat, p) - t_keep[rows]) ** 2, axis=1)
    return -float(np.mean(sq))


#: ROC AUC of ``s_hat = 1/(1 + r_hat)`` (ratio estimators; requests ``theta``).
roc_auc = ProtocolScorer("roc_auc", _roc_auc, ("theta",))
#: Minus the cross entropy of ``s_hat`` against the labels (ratio estimators; requests ``theta``).
neg_log_loss = ProtocolScorer("neg_log_loss", _neg_log_loss, ("theta",))
#: Minus the ROLR-type squared error of ``r_hat`` against the joint ratio (requests ``theta``, ``r_xz``).
neg_ratio_mse = ProtocolScorer("neg_ratio_mse", _neg_ratio_mse, ("theta", "r_xz"))
#: Minus the squared error of the estimated score against the joint score (requests ``theta``, ``t_xz``;
#: without ``theta`` it scores at the estimator's reference point, e.g. SALLY's; for an estimator trained on ``t_xz``
#: as its target ``y``, SALLY's, ``y`` is ``t_xz`` when ``t_xz`` is not passed).
neg_score_mse = ProtocolScorer("neg_score_mse", _neg_score_mse, ("theta", "t_xz"), optional=("theta",),
                               target=("t_xz",))
#: All scorers by name.
SCORERS: dict[str, ProtocolScorer] = {s.name: s for s in (roc_auc, neg_log_loss, neg_ratio_mse, neg_score_mse)}
