"""Errors for metadata (theta, r_xz, t_xz) that did not reach an estimator or scorer, with the right reason."""

from __future__ import annotations

import sys
from typing import Any

import sklearn

from ._warnings import warn_user

__all__ = ["MissingMetadataError", "GridShapeWarning", "missing_metadata_message", "refuse_unscorable_fit"]

#: The scikit-learn functions that fit and score one candidate on one split (GridSearchCV, cross_validate,
#: cross_val_score, validation_curve, learning_curve all go through the first) or fit and predict (cross_val_predict).
_FIT_AND_SCORE = ("sklearn.model_selection._validation", "_fit_and_score")
_FIT_AND_PREDICT = ("sklearn.model_selection._validation", "_fit_and_predict")


class MissingMetadataError(ValueError):
    """An estimator or scorer did not receive the metadata (theta, r_xz, t_xz) it needs."""


class GridShapeWarning(UserWarning):
    """A protocol method got a grid with one row per event: probably per-event parameters meant for ``predict``.

    Code that builds genuine grids (AsymptoticLimits) filters it.
    """


def missing_metadata_message(owner: str, name: str, what: str = "") -> str:
    """Why ``name`` did not reach ``owner``: scikit-learn's metadata routing is off, or on but it was not passed.

    Parameters
    ----------
    owner : str
        ``Class.method`` or scorer name.
    name : str
        The metadata (``"theta"``, ``"r_xz"``, ``"t_xz"``).
    what : str, optional
        What the metadata is, for the message.
    """
    head = f"{owner} needs {name}{f' ({what})' if what else ''}, but {name} is None."
    if not sklearn.get_config().get("enable_metadata_routing", False):
        return (f"{head} Inside a Pipeline, GridSearchCV or cross_validate, {name} reaches it only through "
                "scikit-learn's metadata routing, which is off (without it, meta-estimators pass metadata to fit "
                f"only, never to scoring): call sklearn.set_config(enable_metadata_routing=True) and pass {name}=... "
                "to the outer fit / params.")
    return (f"{head} Metadata routing is on, so pass {name}=... to the outer call (cross_validate(..., "
            f"params={{'{name}': ...}}), GridSearchCV.fit(..., {name}=...), pipe.predict(X, {name}=...)). "
            "scikit-learn's own scorers ('roc_auc', 'neg_log_loss' ...) never pass metadata to the estimator: "
            "use the scorers of skminer.metrics instead.")


def _scorers_without(scorer: Any, name: str, score_params: Any, routing: bool, estimator: Any = None) -> list[str]:
    """The scorers in ``scorer`` that cannot hand ``name`` (or other metadata they need) to ``estimator`` on this
    split."""
    if type(scorer).__name__ == "_MultimetricScorer":
        return [b for s in getattr(scorer, "_scorers", {}).values()
                for b in _scorers_without(s, name, score_params, routing, estimator)]
    module = type(scorer).__module__
    if not (module.startswith("sklearn.metrics") or module == "skminer.metrics"):
        return []  # a user's callable may bind the metadata itself
    if not routing:  # scoring receives no metadata at all
        return [repr(scorer)]
    if module.startswith("sklearn.metrics") and type(scorer).__name__ != "_PassthroughScorer":
        # scikit-learn's metric scorers route metadata to the metric, never to the estimator's predict
        return [repr(scorer)]
    params = score_params if isinstance(score_params, dict) else {}
    needs = getattr(scorer, "required_metadata", None)  # skminer.metrics scorers: what else they need
    missing = [k for k in dict.fromkeys([name, *(needs(estimator) if needs is not None else ())])
               if params.get(k) is None]
    if missing and missing != [name]:
        return [f"{scorer!r} (needs {', '.join(missing)})"]
    return [repr(scorer)] if missing else []


def refuse_unscorable_fit(owner: str, name: str = "theta") -> None:
    """Refuse to fit inside scikit-learn's cross-validation when the scoring can never give the estimator ``name``.

    An estimator that needs ``name`` (``theta``) for every prediction cannot be scored by scikit-learn's built-in
    scorers, nor by any scorer while metadata routing is off. scikit-learn turns errors in *scoring* into NaN scores
    with only a warning (``error_score=np.nan``, its default) and then picks an arbitrary best candidate, but
    collects errors in *fit* and raises them ("All the fits failed"). So the estimator checks, when its ``fit`` is
    called from scikit-learn's ``_fit_and_score``, whether that call's scorer can pass ``name``, and raises
    :class:`MissingMetadataError` before any training if not, and also issues it as a ``UserWarning``:
    ``validation_curve`` records fit errors as ``error_score`` without raising or warning. Plain callables as
    scorers are trusted (they may bind the metadata themselves). Called from ``cross_val_predict``, which routes
    metadata to ``fit`` only, it always raises. Outside cross-validation this does nothing. A scorer of
    :mod:`skminer.metrics` that needs more metadata than ``name`` to score this estimator
    (``ProtocolScorer.required_metadata``: ``t_xz`` for ``neg_score_mse``) must receive that too.

    Parameters
    ----------
    owner : str
        ``Class.fit`` for the message.
    name : str
        The metadata every prediction needs.

    Raises
    ------
    MissingMetadataError
        Inside ``_fit_and_score`` with a scorer that cannot deliver ``name``, or inside ``cross_val_predict``.
    """
    frame = sys._getframe(1)
    while frame is not None and (frame.f_globals.get("__name__"), frame.f_code.co_name) not in (_FIT_AND_SCORE,
                                                                                                _FIT_AND_PREDICT):
        frame = frame.f_back
    if frame is None:
        return
    if frame.f_code.co_name == _FIT_AND_PREDICT[1]:
        message = (f"{owner}: cross_val_predict cannot give the estimator {name}, which every prediction needs: "
                   "scikit-learn routes metadata to fit only, never to predict. Use cross_validate(..., "
                   "return_estimator=True, return_indices=True) and call predict(X_test, "
                   f"{name}=...) on each fold's estimator.")
        raise MissingMetadataError(message)
    routing = bool(sklearn.get_config().get("enable_metadata_routing", False))
    blocked = _scorers_without(frame.f_locals.get("scorer"), name, frame.f_locals.get("score_params"), routing,
                               frame.f_locals.get("estimator"))
    if not blocked:
        return
    if not routing:
        how = ("metadata routing is off, so scoring receives no metadata: call "
               "sklearn.set_config(enable_metadata_routing=True), pass "
               f"{name}=... to the outer fit / params, and score with skminer.metrics scorers or the default score")
    else:
        how = (f"use a scorer that requests {name} (skminer.metrics.roc_auc, neg_log_loss, neg_ratio_mse, "
               f"neg_score_mse, or the estimator's own score) and pass {name}=... (and whatever else a scorer is "
               "listed as needing) to the outer fit / params; "
               "scikit-learn's metric scorers ('roc_auc', make_scorer(...)) never pass metadata to the estimator")
    message = (f"{owner}: this cross-validation cannot score the estimator, because the scorer "
               f"{', '.join(blocked)} cannot give it {name}, which every prediction needs, or lacks metadata it "
               f"needs itself; {how}. (Raised at fit because scikit-learn would turn the scoring error into NaN "
               "scores and pick an arbitrary best candidate.)")
    # validation_curve records fit errors as error_score without ever raising or warning: say it here as well
    warn_user(message, UserWarning)
    raise MissingMetadataError(message)
