"""The one table of inference methods (torch-free): what each method is, can do, needs and is fed by.

Every place that needs to know about methods reads :data:`METHODS` -- configuration validation, the command
line (``--method`` choices), estimator persistence (the allow-list of classes) and the analysis runner
(sampler, fit arguments, which inference to run) -- and callers ask an estimator what it can do through
:func:`capabilities_of` instead of branching on method names or classes. Adding a method means one estimator
class plus one row here.

Capabilities (the inference protocol of ``docs/architecture.md``):

* ``"ratio"``: ``predict_log_ratio(X, theta0, theta1=None)``, the log likelihood ratio;
* ``"score"``: ``score_at(X, theta=None)``, the score ``d log p(x|theta) / d theta``;
* ``"density"``: ``log_likelihood(X, theta)``, the log density ``log p(x|theta)``.

Importing this module imports neither torch nor the estimators; :meth:`Method.load` imports the class.

Reference: J. Brehmer, F. Kling, I. Espejo, K. Cranmer, "MadMiner: Machine learning-based inference for
particle physics", arXiv:1907.10621, table 1 (the methods and the augmented data they use).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["CAPABILITIES", "DEFAULT_METHOD", "Family", "Method", "FAMILIES", "METHODS", "capabilities_of",
           "require_capability", "method_for_class", "fit_arguments", "sampler_arguments", "fit_target"]

#: The capabilities an estimator can declare.
CAPABILITIES: frozenset[str] = frozenset({"ratio", "score", "density"})


@dataclass(frozen=True)
class Family:
    """How the methods of one family are trained (shared by all methods of the family).

    Attributes
    ----------
    name : str
    sampler : str
        Class name in :mod:`skminer.augmentation` that produces the training sample.
    sampler_arguments : mapping of str to str
        Sampler parameter -> key of the context given to :func:`sampler_arguments`.
    fit_positional : tuple of str
        ``TrainingSample`` fields passed positionally to ``fit`` (``X`` first).
    fit_metadata : mapping of str to str
        ``fit`` keyword -> ``TrainingSample`` field (``"theta0+theta1"``: the two stacked column-wise).
    """

    name: str
    sampler: str
    sampler_arguments: Mapping[str, str]
    fit_positional: tuple[str, ...]
    fit_metadata: Mapping[str, str]


@dataclass(frozen=True)
class Method:
    """One row of the method table.

    Attributes
    ----------
    name : str
        Lower-case name used in configurations and on the command line.
    estimator : str
        Import path of the estimator class (``module.Class``).
    family : str
        Key of :data:`FAMILIES` (training data layout and sampler).
    capabilities : frozenset of str
        Subset of :data:`CAPABILITIES` the fitted estimator answers.
    needs_r_xz : bool
        The loss uses the joint likelihood ratio ``r(x, z | theta0, theta1)``.
    needs_t_xz : bool
        The loss uses the joint score ``t(x, z | theta)``.
    alpha : bool
        The loss has a joint-score term weighted by the ``alpha`` parameter.
    ratio_loss : {"xe", "mse", "axe"} or None
        Ratio term of a likelihood-ratio loss (:class:`skminer.estimators.losses.RatioCriterion`): cross entropy
        against the labels (CARL), regression on ``r_xz`` and ``1 / r_xz`` (ROLR), cross entropy against the
        joint-ratio soft labels (ALICE); None for methods trained otherwise.
    needs_calibration : bool
        The ratio is defined only after ``calibrate(X, theta, sample_weight)`` on calibration events at the
        parameter points of interest (its ratio closure on those events holds by construction).
    nuisance_scores : bool
        Trained on the scores of nuisance parameters too when the events have them (for profiling).
    summary : str
        One line for documentation and ``--help``.
    """

    name: str
    estimator: str
    family: str
    capabilities: frozenset[str]
    needs_r_xz: bool = False
    needs_t_xz: bool = False
    alpha: bool = False
    nuisance_scores: bool = False
    ratio_loss: str | None = None
    needs_calibration: bool = False
    summary: str = field(default="", compare=False)

    @property
    def class_name(self) -> str:
        """The estimator's class name."""
        return self.estimator.rpartition(".")[2]

    @property
    def sampler(self) -> str:
        """Class name of the sampler in :mod:`skminer.augmentation`."""
        return FAMILIES[self.family].sampler

    def load(self) -> type:
        """Import and return the estimator class."""
        module, _, name = self.estimator.rpartition(".")
        return getattr(importlib.import_module(module), name)


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("score", "LocalScoreSampler", {"theta_ref": "theta_ref", "include_nuisance": "include_nuisance"},
           ("x", "t_xz"), {"theta": "theta0"}),
    Family("ratio", "RatioSampler", {"theta0_prior": "prior", "theta1": "theta_ref", "n_thetas": "n_thetas"},
           ("x", "y"), {"theta": "theta0", "r_xz": "r_xz", "t_xz": "t_xz"}),
    Family("double_ratio", "DoubleRatioSampler",
           {"theta0_prior": "prior", "theta1_prior": "prior", "n_thetas": "n_thetas", "compute_score": "needs_t_xz"},
           ("x", "y"), {"theta": "theta0+theta1", "r_xz": "r_xz", "t_xz": "t_xz", "t_xz1": "t_xz1"}),
    Family("density", "DensitySampler", {"theta_prior": "prior", "n_thetas": "n_thetas", "compute_score": "needs_t_xz"},
           ("x",), {"theta": "theta0", "t_xz": "t_xz"}),
)}

_SCORE = frozenset({"score"})
_RATIO = frozenset({"ratio", "score"})
_DENSITY = frozenset({"density", "ratio", "score"})
_E = "skminer.estimators."


def _ratio_rows(double: bool) -> tuple[Method, ...]:
    """The six ratio methods (singly or doubly parameterised: same losses, different network inputs)."""
    prefix, cls, family = ("double_", "double_ratio.Double", "double_ratio") if double else ("", "ratio.", "ratio")
    label = "doubly parameterised " if double else ""
    return (
        Method(f"{prefix}carl", f"{_E}{cls}CARL", family, _RATIO, ratio_loss="xe",
               summary=f"{label}calibrated classifier (cross entropy against the labels)"),
        Method(f"{prefix}rolr", f"{_E}{cls}ROLR", family, _RATIO, needs_r_xz=True, ratio_loss="mse",
               summary=f"{label}regression on the joint likelihood ratio"),
        Method(f"{prefix}alice", f"{_E}{cls}ALICE", family, _RATIO, needs_r_xz=True, ratio_loss="axe",
               summary=f"{label}cross entropy against joint-ratio soft labels"),
        Method(f"{prefix}cascal", f"{_E}{cls}CASCAL", family, _RATIO, needs_t_xz=True, alpha=True, ratio_loss="xe",
               summary=f"{label}CARL plus the joint-score term"),
        Method(f"{prefix}rascal", f"{_E}{cls}RASCAL", family, _RATIO, needs_r_xz=True, needs_t_xz=True, alpha=True,
               ratio_loss="mse",
               summary=f"{label}ROLR plus the joint-score term"),
        Method(f"{prefix}alices", f"{_E}{cls}ALICES", family, _RATIO, needs_r_xz=True, needs_t_xz=True, alpha=True,
               ratio_loss="axe",
               summary=f"{label}ALICE plus the joint-score term"),
    )


#: The method table, keyed by name (configuration / command-line spelling).
METHODS: dict[str, Method] = {m.name: m for m in (
    Method("sally", f"{_E}score.SALLY", "score", _SCORE, needs_t_xz=True, nuisance_scores=True,
           summary="score regression at a reference point (locally sufficient statistics)"),
    Method("sallino", f"{_E}sallino.SALLINO", "score", frozenset({"score", "ratio"}), needs_t_xz=True,
           needs_calibration=True,
           summary="SALLY plus one-dimensional densities of the projected score"),
    *_ratio_rows(double=False),
    Method("nde", f"{_E}flows.NDE", "density", _DENSITY, summary="conditional normalizing flow (maximum likelihood)"),
    Method("scandal", f"{_E}flows.SCANDAL", "density", _DENSITY, needs_t_xz=True, alpha=True,
           summary="conditional normalizing flow plus the joint-score term"),
    *_ratio_rows(double=True),
)}


#: The method of a configuration that names none (``training.method``) and of ``skminer demo``.
DEFAULT_METHOD: str = "sally"


def method_for_class(cls: type, *, inherited: bool = False) -> Method | None:
    """The row whose estimator is ``cls`` (by import path), or None (meta-estimators, user classes).

    With ``inherited=True`` a user subclass of a table estimator gets the row of its nearest table ancestor
    (its method-resolution order), so that it trains and is treated like that method.
    """
    for klass in cls.__mro__ if inherited else (cls,):
        path = f"{klass.__module__}.{klass.__qualname__}"
        row = next((m for m in METHODS.values() if m.estimator == path), None)
        if row is not None:
            return row
    return None


def fit_target(estimator: Any) -> str | None:
    """The ``TrainingSample`` field that ``estimator.fit`` takes as its target ``y`` (``"t_xz"`` for SALLY).

    Read from the method table (the family's ``fit_positional``) for the estimator's class or its nearest table
    ancestor; through pipelines (the last step) and meta-estimators with an ``estimator`` template
    (:class:`~skminer.estimators.Ensemble`).

    Parameters
    ----------
    estimator : object

    Returns
    -------
    str or None
        None for estimators fitted without ``y`` (density methods) or outside the table.
    """
    seen: set[int] = set()
    while estimator is not None and id(estimator) not in seen:
        seen.add(id(estimator))
        if getattr(estimator, "steps", None):
            estimator = estimator.steps[-1][1]
            continue
        row = method_for_class(type(estimator), inherited=True)
        if row is not None:
            fields = FAMILIES[row.family].fit_positional
            return fields[1] if len(fields) > 1 else None
        estimator = getattr(estimator, "estimator", None)
    return None


def capabilities_of(estimator: Any) -> frozenset[str]:
    """What the inference protocol can ask of ``estimator``.

    Reads the estimator's ``capabilities`` attribute (skminer estimators, :class:`~skminer.Pipeline`,
    :class:`~skminer.estimators.Ensemble`); a plain :class:`sklearn.pipeline.Pipeline` has the capabilities of its
    last step. Anything else has none.

    Returns
    -------
    frozenset of str
        Subset of :data:`CAPABILITIES`.
    """
    caps = getattr(estimator, "capabilities", None)
    if caps is None and hasattr(estimator, "steps") and getattr(estimator, "steps", None):
        return capabilities_of(estimator.steps[-1][1])
    return frozenset(caps or ()) & CAPABILITIES


def require_capability(estimator: Any, capability: str, purpose: str) -> None:
    """Raise ``TypeError`` naming the missing capability unless ``estimator`` has it.

    Parameters
    ----------
    estimator : object
    capability : {"ratio", "score", "density"}
    purpose : str
        What it is needed for (goes into the message, e.g. ``"AsymptoticLimits mode='ratio'"``).
    """
    if capability not in CAPABILITIES:
        raise ValueError(f"unknown capability {capability!r}; known: {sorted(CAPABILITIES)}")
    caps = capabilities_of(estimator)
    if capability not in caps:
        needs = {"ratio": "predict_log_ratio", "score": "score_at", "density": "log_likelihood"}[capability]
        raise TypeError(f"{purpose} needs an estimator with the {capability!r} capability ({needs}); "
                        f"{type(estimator).__name__} has {sorted(caps) if caps else 'none'}")


def sampler_arguments(method: str | Method, context: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """Sampler class name and its keyword arguments for ``method``.

    Parameters
    ----------
    method : str or Method
    context : mapping
        Values the family's ``sampler_arguments`` refer to: ``theta_ref``, ``prior``, ``n_thetas``,
        ``nuisance`` (whether the events have nuisance parameters). ``needs_t_xz`` and
        ``include_nuisance`` are derived from the row.

    Returns
    -------
    (str, dict)
    """
    row = method if isinstance(method, Method) else METHODS[method]
    family = FAMILIES[row.family]
    ctx = dict(context)
    ctx["needs_t_xz"] = row.needs_t_xz
    ctx["include_nuisance"] = bool(row.nuisance_scores and ctx.get("nuisance", False))
    return family.sampler, {param: ctx[key] for param, key in family.sampler_arguments.items()}


def fit_arguments(method: str | Method, sample: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Positional and keyword arguments of ``fit`` for a training sample of ``method``'s family.

    Parameters
    ----------
    method : str or Method
    sample : TrainingSample
        From the family's sampler.

    Returns
    -------
    args : tuple
    kwargs : dict
        Keyword metadata (``theta``, ``r_xz``, ``t_xz`` ...); fields the sample lacks (None) are left out.
    """
    row = method if isinstance(method, Method) else METHODS[method]
    family = FAMILIES[row.family]
    args = tuple(getattr(sample, f) for f in family.fit_positional)
    kwargs: dict[str, Any] = {}
    for param, source in family.fit_metadata.items():
        parts = [getattr(sample, f) for f in source.split("+")]
        if any(p is None for p in parts):
            continue
        kwargs[param] = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
    return args, kwargs
