"""Ensembles of skminer estimators: bootstrap members trained in parallel, mean and spread of their outputs.

Members are :func:`sklearn.base.clone`\\ s of a template estimator, each with its own ``random_state`` and (by
default) its own bootstrap resample of the training events; per-event fit metadata (``theta``, ``r_xz``,
``t_xz`` ...) is resampled with the same indices. Training uses :class:`joblib.Parallel` with the active
backend (so ``with joblib.parallel_backend("dask"): ens.fit(...)`` distributes it).

Predictions: an ensemble answers the inference protocol of its members (``capabilities`` are the template's):
``predict_log_ratio(X, theta0, theta1=None)``, ``score_at(X, theta=None)``, ``log_likelihood(X, theta)`` and
``predict`` return the member mean and, with ``return_std=True``, the member standard deviation (``ddof=1``).
:meth:`Ensemble.predict_all` stacks the per-member outputs of any public prediction method along a new first
axis (:class:`~skminer.inference.FisherInformation` uses it for the information spread over members).
:meth:`Ensemble.score` applies the members' model-selection criterion to the mean prediction, and metadata
(``theta``, ``r_xz``, ``t_xz``) is routed to the members' requests, so ``GridSearchCV(Ensemble(...))`` works.
:meth:`Ensemble.calibrate` forwards the calibration data to every SALLINO member.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.base import BaseEstimator, _fit_context, clone
from sklearn.utils import get_tags
from sklearn.utils._param_validation import HasMethods
from sklearn.utils.metadata_routing import MetadataRouter, MethodMapping
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_array, check_is_fitted

from .._arrays import from_awkward
from .._warnings import record_warnings, warn_user
from ..methods import capabilities_of
from ..threads import default_threads, limit_threads
from ._constraints import IntInterval
from ._theta_range import ExtrapolationWarning
from ._torch_utils import seed_from_random_state
from .persistence import lookup_class, params_for_state, params_from_state, register_estimator, registered_class_name

logger = logging.getLogger("skminer.estimators")

__all__ = ["Ensemble"]

_STATE_FORMAT = 1
_BLOCKED_METHODS = frozenset({"fit", "set_params", "get_params", "calibrate", "partial_fit"})


def _fit_member(estimator: Any, X: Any, y: Any, fit_params: Mapping[str, Any], n_threads: int | None
                ) -> tuple[Any, list[tuple[type[Warning], str]]]:
    """The fitted member and the warnings its fit raised, as ``(category, message)`` without repeats.

    The warnings are recorded here, in the worker, because a worker process's warnings never reach the caller;
    :meth:`Ensemble.fit` re-emits them (also with ``n_jobs=1``, so that both give the same warnings).
    """
    # in the worker: its share of the CPUs (torch + threadpoolctl), never above the worker's own limit (a dask
    # worker whose nanny set OMP_NUM_THREADS=1, a loky worker with joblib's limits: the share was computed on the
    # client, possibly from another machine's CPU count)
    with record_warnings() as records, limit_threads(max(1, min(n_threads, torch.get_num_threads()))):
        fitted = estimator.fit(X, **fit_params) if y is None else estimator.fit(X, y, **fit_params)
    raised = dict.fromkeys((w.category, str(w.message)) for w in records)  # picklable, in order, once each
    return fitted, list(raised)


#: Per-event metadata that may be infinite (a joint likelihood ratio of 0 or inf is a valid value).
_MAY_BE_INFINITE = frozenset({"r_xz"})


def _warn_once(records: list[warnings.WarningMessage], n_members: int) -> None:
    """Re-emit the members' prediction warnings once per call: each distinct one once, and one
    :class:`ExtrapolationWarning` only (the members' messages differ just by their bootstrap training ranges)."""
    seen: set[tuple[type[Warning], str]] = set()
    extrapolation = False
    for record in records:
        message = str(record.message)
        if issubclass(record.category, ExtrapolationWarning):
            if extrapolation:
                continue
            extrapolation = True
            message = f"Ensemble of {n_members} members (member 0's training range): {message}"
        if (record.category, message) in seen:
            continue
        seen.add((record.category, message))
        warn_user(message, record.category)


def _check_per_event_metadata(metadata: Mapping[str, Any]) -> None:
    """Refuse NaN (and, except in ``r_xz``, inf) in per-event metadata before the bootstrap: a bad row that no
    member happens to draw would otherwise pass unnoticed."""
    for key, value in metadata.items():
        arr = np.asarray(value)
        if not np.issubdtype(arr.dtype, np.number):
            continue
        bad = np.isnan(arr) if key in _MAY_BE_INFINITE else ~np.isfinite(arr)
        if bad.any():
            rows = np.flatnonzero(bad.reshape(arr.shape[0], -1).any(axis=1))
            raise ValueError(f"Input {key} contains {'NaN' if key in _MAY_BE_INFINITE else 'NaN or infinity'} "
                             f"in {rows.size} events (first: event {int(rows[0])})")


def _take(a: Any, idx: np.ndarray | None) -> Any:
    if idx is None or a is None:
        return a
    if hasattr(a, "iloc"):
        return a.iloc[idx]
    return np.asarray(a)[idx]


@register_estimator
class Ensemble(BaseEstimator):
    """An ensemble of independently trained copies of a skminer estimator.

    Parameters
    ----------
    estimator : estimator
        Unfitted template (SALLY, SALLINO, a ratio estimator, NDE/SCANDAL, ...). Members are ``clone(estimator)``
        with ``random_state`` set per member (when the template has that parameter).
    n_estimators : int, default=5
        Number of members.
    bootstrap : bool, default=True
        Train each member on a bootstrap resample (drawn with replacement, same size) of the events; if false
        every member sees all events and members differ only through their seeds.
    n_jobs : int or None, default=None
        Parallel fits through :class:`joblib.Parallel` (``None``: 1 unless a joblib backend context says
        otherwise; ``-1``: all cores). Each parallel worker limits torch to its share of the cores while it
        trains.
    random_state : None, int, RandomState or Generator, default=None
        Seeds the member seeds and the bootstrap resamples.

    Attributes
    ----------
    members_ : list of estimators
        The fitted members.
    member_seeds_ : list of int
        The ``random_state`` given to each member.
    n_features_in_ : int
        Columns of ``X`` seen in :meth:`fit`.

    Examples
    --------
    >>> ens = Ensemble(SALLY(max_epochs=20), n_estimators=5, n_jobs=2, random_state=0)  # doctest: +SKIP
    >>> ens.fit(x, t_xz)  # doctest: +SKIP
    >>> t_mean, t_std = ens.predict(x_test, return_std=True)  # doctest: +SKIP
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "estimator": [HasMethods(["fit", "get_params"])],
        "n_estimators": [IntInterval(1, None, closed="left")],
        "bootstrap": ["boolean"],
        "n_jobs": [IntInterval(None, -1, closed="right"), IntInterval(1, None, closed="left"), None],
        "random_state": ["random_state"],
    }

    def __init__(self, estimator: Any, n_estimators: int = 5, *, bootstrap: bool = True, n_jobs: int | None = None,
                 random_state: Any = None) -> None:
        self.estimator = estimator
        self.n_estimators = n_estimators
        self.bootstrap = bootstrap
        self.n_jobs = n_jobs
        self.random_state = random_state

    # ------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=False)  # the members validate their own parameters
    def fit(self, X: Any, y: Any = None, **fit_params: Any) -> Ensemble:
        """Train ``n_estimators`` clones of the template, each on its own bootstrap resample.

        Parameters
        ----------
        X : array-like of shape (n_events, n_features)
        y : array-like, optional
            Target / labels as expected by the template's ``fit`` (SALLY: ``t_xz``; ratio estimators: labels;
            flows: omit).
        **fit_params
            Forwarded to every member's ``fit`` (``theta=``, ``r_xz=``, ``t_xz=`` ...). Array-likes with one
            row per event are resampled with the member's bootstrap indices; anything else is passed as is.

        Returns
        -------
        self

        Warns
        -----
        Warning
            Every warning a member's fit raised (also in a worker process), once per member, with its category,
            prefixed ``"Ensemble member <i>: "`` and attributed to the caller's line.
        """
        X_arr = X if hasattr(X, "iloc") else from_awkward(X)
        # checked here, before the bootstrap, with the template's own tolerance for NaN and sparse input; the
        # members get X as given (a DataFrame stays a DataFrame for a column-selecting template)
        inner = get_tags(self.estimator).input_tags
        checked = check_array(X_arr, accept_sparse=inner.sparse, ensure_all_finite=not inner.allow_nan, dtype=None,
                              input_name="X", estimator=self)
        if not hasattr(X_arr, "iloc") and not hasattr(X_arr, "tocsr"):
            X_arr = checked
        n = X_arr.shape[0]
        if y is not None and np.shape(y)[0] != n:
            raise ValueError(f"y must have one entry per event ({n}), got shape {np.shape(y)}")
        per_event = {k: v is not None and np.ndim(v) >= 1 and np.shape(v)[0] == n for k, v in fit_params.items()}
        _check_per_event_metadata({k: v for k, v in fit_params.items() if per_event[k]})
        seed = seed_from_random_state(self.random_state)
        states = np.random.SeedSequence(seed).generate_state(2 * self.n_estimators) % (2**31 - 1)
        member_seeds = [int(s) for s in states[: self.n_estimators]]
        boot_seeds = [int(s) for s in states[self.n_estimators:]]

        has_rs = "random_state" in self.estimator.get_params(deep=False)
        jobs = []
        for i in range(self.n_estimators):
            est = clone(self.estimator)
            if has_rs:
                est.set_params(random_state=member_seeds[i])
            idx = np.random.default_rng(boot_seeds[i]).integers(0, n, size=n) if self.bootstrap else None
            params = {k: (_take(v, idx) if per_event[k] else v) for k, v in fit_params.items()}
            jobs.append((est, _take(X_arr, idx), _take(y, idx), params))

        n_workers = min(effective_n_jobs(self.n_jobs), self.n_estimators)
        n_threads = default_threads(n_workers)  # the process's CPUs (affinity, quota), shared among the workers
        logger.debug("Ensemble: fitting %d members with %d parallel workers", self.n_estimators, n_workers)
        results = Parallel(n_jobs=self.n_jobs)(
            delayed(_fit_member)(est, Xi, yi, params, n_threads) for est, Xi, yi, params in jobs)
        for i, (_, raised) in enumerate(results):
            for category, message in raised:
                warn_user(f"Ensemble member {i}: {message}", category)
        self.members_ = [member for member, _ in results]
        self.member_seeds_ = member_seeds if has_rs else [None] * self.n_estimators
        self.n_features_in_ = int(X_arr.shape[1])
        return self

    @available_if(lambda self: hasattr(self.estimator, "calibrate"))
    def calibrate(self, X: Any, *args: Any, **kwargs: Any) -> Ensemble:
        """Call ``calibrate`` on every member with the same calibration data (SALLINO members).

        Parameters
        ----------
        X : array-like of shape (n_calibration, n_features)
        *args, **kwargs
            As for the members' ``calibrate`` (``theta``, ``sample_weight``).

        Returns
        -------
        self
        """
        check_is_fitted(self, "members_")
        if not all(callable(getattr(m, "calibrate", None)) for m in self.members_):
            raise ValueError(f"the members ({type(self.members_[0]).__name__}) have no calibrate method")
        for member in self.members_:
            member.calibrate(X, *args, **kwargs)
        return self

    # ------------------------------------------------------------------ prediction
    def predict_all(self, method: str, X: Any, *args: Any, **kwargs: Any) -> np.ndarray:
        """Per-member outputs of ``member.<method>(X, *args, **kwargs)``, stacked along a new first axis.

        Parameters
        ----------
        method : str
            Name of a public prediction method of the members, e.g. ``"predict"``, ``"predict_log_ratio"``,
            ``"score_at"``, ``"log_likelihood"``.
        X : array-like of shape (n_events, n_features)
        *args, **kwargs
            Further arguments of the method (``theta`` ...).

        Returns
        -------
        ndarray of shape (n_estimators, ...)

        Notes
        -----
        The members' warnings are shown once per call: each distinct message once, and a single
        :class:`~skminer.estimators.ExtrapolationWarning` (member 0's, naming its training range) however many
        members warn.
        """
        check_is_fitted(self, "members_")
        if not isinstance(method, str) or method.startswith("_") or method in _BLOCKED_METHODS:
            raise ValueError(f"method must be the name of a public prediction method, got {method!r}")
        fns = [getattr(m, method, None) for m in self.members_]
        if not all(callable(f) for f in fns):
            raise ValueError(f"the members ({type(self.members_[0]).__name__}) have no method {method!r}")
        outs: list[np.ndarray] = []
        records: list[warnings.WarningMessage] = []
        try:
            with record_warnings() as records:  # N members would each warn about the same points
                for f in fns:
                    outs.append(np.asarray(f(X, *args, **kwargs), dtype=np.float64))
        finally:
            _warn_once(records, len(fns))
        return np.stack(outs, axis=0)

    def _reduce(self, method: str, X: Any, args: tuple, kwargs: dict, return_std: bool
                ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        outs = self.predict_all(method, X, *args, **kwargs)
        mean = outs.mean(axis=0)
        if not return_std:
            return mean
        std = outs.std(axis=0, ddof=1) if outs.shape[0] > 1 else np.zeros_like(mean)
        return mean, std

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        inner = get_tags(self.estimator).input_tags
        tags.input_tags.sparse = inner.sparse
        tags.input_tags.allow_nan = inner.allow_nan
        return tags

    @property
    def capabilities(self) -> frozenset[str]:
        """The inference-protocol capabilities of the members (those of the template estimator)."""
        return capabilities_of(self.estimator)

    def predict(self, X: Any, *args: Any, return_std: bool = False, **kwargs: Any
                ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Member mean of ``predict`` (and the member standard deviation with ``return_std=True``)."""
        return self._reduce("predict", X, args, kwargs, return_std)

    def _member_method(self, method: str) -> bool:
        return hasattr(self.members_[0] if hasattr(self, "members_") else self.estimator, method)

    @available_if(lambda self: self._member_method("predict_proba"))
    def predict_proba(self, X: Any, *args: Any, **kwargs: Any) -> np.ndarray:
        """Member mean of ``predict_proba`` (classifier-type ratio members), shape ``(n_events, 2)``."""
        return self._reduce("predict_proba", X, args, kwargs, False)

    def predict_members(self, X: Any) -> np.ndarray:
        """Per-member ``predict(X)``, shape ``(n_estimators, n_events, ...)``."""
        return self.predict_all("predict", X)

    @available_if(lambda self: "ratio" in self.capabilities)
    def predict_log_ratio(self, X: Any, theta0: Any, theta1: Any = None, *, return_std: bool = False
                          ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Member mean (and std with ``return_std=True``) of ``predict_log_ratio`` (inference protocol).

        Parameters
        ----------
        X : array-like of shape (n_events, n_features)
        theta0 : array-like of shape (n_parameters,) or (n_theta, n_parameters)
        theta1 : array-like of shape (n_parameters,), optional
            As for the members.
        return_std : bool, default=False

        Returns
        -------
        ndarray of shape (n_events,) or (n_theta, n_events), and the member standard deviation of the same shape
        """
        return self._reduce("predict_log_ratio", X, (theta0, theta1), {}, return_std)

    @available_if(lambda self: "score" in self.capabilities)
    def score_at(self, X: Any, theta: Any = None, *, return_std: bool = False
                 ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Member mean (and std with ``return_std=True``) of the estimated score ``score_at`` (protocol).

        Returns
        -------
        ndarray of shape (n_events, n_parameters) (or with a leading grid axis), and the member std
        """
        return self._reduce("score_at", X, (theta,), {}, return_std)

    @available_if(lambda self: "density" in self.capabilities)
    def log_likelihood(self, X: Any, theta: Any, *, return_std: bool = False
                       ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Member mean (and std with ``return_std=True``) of ``log_likelihood`` (density members; protocol)."""
        return self._reduce("log_likelihood", X, (theta,), {}, return_std)

    def score(self, X: Any, y: Any = None, **params: Any) -> float:
        """The members' model-selection criterion applied to the ensemble's (mean) prediction.

        SALLY / SALLINO: R^2 of the mean predicted score; ratio estimators: minus the cross entropy of the mean
        ``log r_hat``; NDE / SCANDAL: the mean of the averaged ``log p_hat``. Greater is better, so
        :class:`~sklearn.model_selection.GridSearchCV` can tune an ensemble.

        Parameters
        ----------
        X : array-like of shape (n_events, n_features)
        y : array-like, optional
            As for the members' ``score``.
        **params
            The members' ``score`` metadata (``theta``, ``r_xz``, ``sample_weight``); ``theta`` goes to the
            prediction, the rest to the criterion.

        Returns
        -------
        float
        """
        check_is_fitted(self, "members_")
        criterion = getattr(self.members_[0], "_score_prediction", None)
        if criterion is None:
            raise TypeError(f"the members ({type(self.members_[0]).__name__}) have no skminer score criterion")
        predict_params = {k: params.pop(k) for k in ("theta",) if k in params}
        prediction = self.predict(X, **predict_params)
        return criterion(prediction, y, **params)

    def get_metadata_routing(self) -> MetadataRouter:
        """Route ``fit`` / ``score`` / ``predict`` metadata (theta, r_xz, t_xz ...) to the template's requests."""
        mapping = MethodMapping()
        for method in ("fit", "score", "predict", "predict_proba"):
            mapping.add(caller=method, callee=method)
        return MetadataRouter(owner=type(self).__name__).add(estimator=self.estimator, method_mapping=mapping)

    # ------------------------------------------------------------------ persistence hooks
    def _get_fitted_state(self) -> dict[str, Any]:
        """Template class and hyperparameters, own parameters and the nested fitted states of the members."""
        check_is_fitted(self, "members_")
        own = {k: v for k, v in self.get_params(deep=False).items() if k != "estimator"}
        return {
            "format": _STATE_FORMAT,
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "params": params_for_state(own),
            "estimator": {"class": registered_class_name(self.estimator),
                          "params": params_for_state(self.estimator.get_params(deep=False))},
            "attributes": {"member_seeds_": list(self.member_seeds_), "n_features_in_": int(self.n_features_in_)},
            "members": [{"class": registered_class_name(m), "state": m._get_fitted_state()} for m in self.members_],
        }

    @classmethod
    def _from_fitted_state(cls, state: Mapping[str, Any], device: str | None = None) -> Ensemble:
        """Rebuild a fitted ensemble from :meth:`_get_fitted_state` (``device`` overrides every member's)."""
        if not isinstance(state, Mapping) or state.get("format") != _STATE_FORMAT or "members" not in state:
            raise ValueError("state is not an Ensemble state from _get_fitted_state")
        template_cls = lookup_class(state["estimator"]["class"], where="Ensemble template")
        template = template_cls(**params_from_state(template_cls, state["estimator"]["params"]))
        if device is not None and "device" in template.get_params(deep=False):
            template.set_params(device=device)
        ens = cls(estimator=template, **dict(state.get("params", {})))
        members = []
        for i, entry in enumerate(state["members"]):
            member_cls = lookup_class(entry.get("class"), where=f"Ensemble member {i}")
            members.append(member_cls._from_fitted_state(entry["state"], device=device))
        ens.members_ = members
        attrs = state.get("attributes", {})
        ens.member_seeds_ = list(attrs.get("member_seeds_", [None] * len(members)))
        ens.n_features_in_ = int(attrs.get("n_features_in_", 0))
        return ens
