"""Export of histogram analyses as `pyhf <https://pyhf.readthedocs.io>`_ (HistFactory) JSON workspaces.

:func:`histogram_workspace` turns the binned likelihood that skminer's histogram limits use
(:class:`~skminer.inference.AsymptoticLimits` with ``mode="histogram"`` or ``"sally"``) into a pyhf workspace:

* one **channel** with the bins of the observable(s) (or of the estimated SALLY score): the same inner edges plus
  under- and overflow bins (:mod:`skminer.inference._histograms`), so ``n_edges + 1`` bins per dimension, flattened
  in C order for several dimensions;
* one **sample per morphing component** (arXiv:1805.00020, eq. 2.3): the expected counts are
  ``nu_b(theta) = L * sum_c theta^{k_c} H_{b,c}`` with the component histograms ``H`` obtained from the basis
  benchmarks' histograms and the inverse component matrix; the monomial ``theta^{k_c}`` is one ``normfactor``
  modifier per parameter in it. pyhf multiplies modifiers linearly and a parameter appears at most once per
  sample, so components with a parameter to a power >= 2 cannot be written and raise a ValueError;
* nuisance parameters of the event set (scale / PDF weights, :mod:`skminer.simulation.systematics`) as a
  ``normsys`` (ratio of the total up / down yield to the nominal one) plus a ``histosys`` (the up / down shapes at
  the nominal yield) modifier of the same name on every sample. pyhf interpolates these with its own codes,
  skminer uses ``exp(a nu + b nu^2)`` per event: the two agree at ``nu = 0, +-1`` only;
* the **observations**: the Asimov counts at ``theta_data`` or the counts of observed events;
* a **measurement** whose parameter of interest is the first parameter (or ``poi``), with the parameter ranges as
  bounds.

Without nuisance parameters pyhf's likelihood of the workspace equals skminer's histogram likelihood, so its
profile-likelihood test statistic and asymptotic p-values reproduce skminer's histogram limits. pyhf itself is
only needed to *use* the workspace (``pip install skminer[pyhf]``); writing it needs numpy alone.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_write
from ..inference._histograms import bin_indices, indicator, inner_edges
from ..methods import require_capability

__all__ = ["PyhfExport", "export_pyhf_files", "histogram_workspace", "write_workspace"]

logger = logging.getLogger(__name__)

PYHF_SCHEMA_VERSION = "1.0.0"


@dataclass
class PyhfExport:
    """A pyhf workspace and what is needed to relate its bins and samples to skminer.

    Attributes
    ----------
    workspace : dict
        The JSON workspace (``channels``, ``observations``, ``measurements``, ``version``).
    edges : list of ndarray
        Inner bin edges per histogram dimension.
    labels : list of str
        The binned quantities (observable names or ``t_hat[i]``).
    components : ndarray of int, shape (n_components, n_params)
        Exponents of the exported morphing components (one sample each).
    """

    workspace: dict[str, Any]
    edges: list[np.ndarray]
    labels: list[str]
    components: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


def _monomial_name(exponents: np.ndarray, names: Sequence[str]) -> str:
    parts = [name if k == 1 else f"{name}^{k}" for name, k in zip(names, exponents, strict=True) if k]
    return "morph_" + ("_".join(parts) if parts else "const")


def _binned_values(events: Any, observables: Sequence[str] | None, estimator: Any, theta_ref: Any = None
                   ) -> tuple[np.ndarray, list[str]]:
    if estimator is not None:
        if observables is not None:
            raise ValueError("give either observables (histograms of observables) or estimator (SALLY score "
                             "histograms), not both")
        require_capability(estimator, "score", "histogram_workspace(estimator=...)")
        x = np.asarray(events.x, dtype=np.float64)
        t = np.asarray(estimator.score_at(x) if theta_ref is None else estimator.score_at(x, theta_ref),
                       dtype=np.float64)
        t = t[:, None] if t.ndim == 1 else t
        if t.ndim != 2 or t.shape[0] != len(events.x) or not np.all(np.isfinite(t)):
            raise ValueError(f"estimator.score_at returned shape {t.shape} or non-finite values for "
                             f"{len(events.x)} events")
        return t, [f"t_hat[{i}]" for i in range(t.shape[1])]
    if not observables:
        raise ValueError("histogram_workspace needs observables=[...] or a SALLY estimator=")
    obs = [observables] if isinstance(observables, str) else list(observables)
    unknown = [o for o in obs if o not in events.observable_names]
    if unknown:
        raise ValueError(f"observables {unknown} are not in the event set ({events.observable_names})")
    cols = [events.observable_names.index(o) for o in obs]
    return np.asarray(events.x, dtype=np.float64)[:, cols], obs


def histogram_workspace(events: Any, luminosity: float, *, observables: Sequence[str] | str | None = None,
                        estimator: Any = None, theta_ref: Any = None, bins: Any = 20, theta_data: Any = None,
                        binning_theta: Any = None,
                        x_observed: np.ndarray | None = None, poi: str | None = None,
                        channel: str | None = None, measurement: str = "skminer") -> PyhfExport:
    """Build a pyhf workspace of a histogram analysis (see the module docstring).

    Parameters
    ----------
    events : EventSet
        Weighted events with a morpher (``events.morpher`` with its basis) that model the expected histograms.
    luminosity : float
        Integrated luminosity in pb^-1 (weights are in pb).
    observables : str or sequence of str, optional
        Observables to histogram (one channel, one dimension each).
    estimator : object, optional
        A fitted estimator with the ``"score"`` capability (:mod:`skminer.methods`): histogram its estimated score
        ``score_at(X, theta_ref)``, shape ``(n, n_parameters)``, instead of observables.
    theta_ref : array-like, shape (n_params,), optional
        Point at which ``estimator`` gives the score (default: its own reference, e.g. SALLY's training point;
        estimators without one, such as the parameterised ratio estimators, need it).
    bins : int, array of edges, hist axis or a sequence of them (one per dimension)
        As for :meth:`~skminer.inference.AsymptoticLimits.expected_limits`; ``int`` bins have equal content at
        ``binning_theta``.
    theta_data : array-like, shape (n_params,), optional
        Point of the Asimov observations (default: ``binning_theta``, else the first basis benchmark).
    binning_theta : array-like, optional
        Point at which automatic edges are placed (default ``theta_data``).
    x_observed : ndarray, shape (n_observed, n_observables), optional
        Observed events: their counts become the observations instead of the Asimov counts.
    poi : str, optional
        Parameter of interest (default: the first parameter).
    channel, measurement : str
        Names in the workspace (channel default: the binned quantities joined by ``_``).

    Returns
    -------
    PyhfExport

    Raises
    ------
    ValueError
        Without a morpher, for a component with a parameter to a power >= 2, for unknown observables or a bad
        luminosity.
    """
    luminosity = float(luminosity)
    if not (np.isfinite(luminosity) and luminosity > 0):
        raise ValueError(f"luminosity must be a positive number of pb^-1, got {luminosity!r}")
    morpher = getattr(events, "morpher", None)
    if morpher is None or morpher.basis is None:
        raise ValueError("histogram_workspace needs an EventSet with a morpher and a morphing basis")
    space = events.space
    names = list(space.parameter_names)
    comps = np.asarray(morpher.components)
    too_high = [_monomial_name(c, names) for c in comps if np.any(c > 1)]
    if too_high:
        raise ValueError(f"pyhf's normfactor modifiers multiply linearly, so the morphing components {too_high} "
                         f"(a parameter to a power >= 2) cannot be written as a pyhf workspace; export a "
                         f"parameter space whose parameters enter at most linearly in each component "
                         f"(max_power=1, e.g. a signal strength or interference-only operators)")
    poi = names[0] if poi is None else poi
    if poi not in names:
        raise ValueError(f"poi {poi!r} is not a parameter ({names})")
    default_point = morpher.basis[0]
    theta_data_ = space.as_theta(theta_data)[0] if theta_data is not None else (
        space.as_theta(binning_theta)[0] if binning_theta is not None else default_point)
    theta_bin = theta_data_ if binning_theta is None else space.as_theta(binning_theta)[0]

    values, labels = _binned_values(events, observables, estimator, theta_ref)
    from ..inference.limits import AsymptoticLimits

    per_dim = AsymptoticLimits._per_dim_bins(bins, values.shape[1])
    w_bin = np.asarray(events.weights_at(theta_bin[None, :]), dtype=np.float64).reshape(-1)
    edges = [inner_edges(values[:, d], b, w_bin, labels[d]) for d, b in enumerate(per_dim)]
    index, n_bins = bin_indices(values, edges)
    ind = indicator(index, n_bins)

    # component histograms: H(basis_j) = sum_c comp_c(basis_j) H_c  =>  H_c = inv(comp(basis)) H(basis)
    basis = np.asarray(morpher.basis, dtype=np.float64)
    comp_at_basis = morpher.component_values(basis)  # (n_basis, n_components)
    inverse = np.linalg.inv(comp_at_basis)
    w_basis = np.asarray(events.weights_at(basis), dtype=np.float64).reshape(len(events.x), basis.shape[0])
    w_comp = w_basis @ inverse.T  # (n_events, n_components): per-event component weights

    nuisances = list(getattr(events, "nuisance_names", []) or [])
    factors_up = factors_down = None
    if nuisances:
        n_nu = len(nuisances)
        factors_up = events.nuisance_factors(np.eye(n_nu))          # (n_events, n_nu, n_nu)
        factors_down = events.nuisance_factors(-np.eye(n_nu))

    samples = []
    for c, exponents in enumerate(comps):
        nominal = luminosity * np.asarray(ind @ w_comp[:, c]).reshape(-1)
        if not np.any(nominal):
            continue
        modifiers: list[dict[str, Any]] = [{"name": p, "type": "normfactor", "data": None}
                                           for p, k in zip(names, exponents, strict=True) if k == 1]
        for k, nu_name in enumerate(nuisances):
            up = luminosity * np.asarray(ind @ (w_comp[:, c] * factors_up[:, k, k])).reshape(-1)
            down = luminosity * np.asarray(ind @ (w_comp[:, c] * factors_down[:, k, k])).reshape(-1)
            total, total_up, total_down = nominal.sum(), up.sum(), down.sum()
            if total == 0 or total_up == 0 or total_down == 0:
                raise ValueError(f"nuisance {nu_name!r}: component {_monomial_name(exponents, names)} has zero "
                                 f"total yield; cannot write normsys ratios")
            modifiers.append({"name": nu_name, "type": "normsys",
                              "data": {"hi": float(total_up / total), "lo": float(total_down / total)}})
            modifiers.append({"name": nu_name, "type": "histosys",
                              "data": {"hi_data": (up * total / total_up).tolist(),
                                       "lo_data": (down * total / total_down).tolist()}})
        samples.append({"name": _monomial_name(exponents, names), "data": nominal.tolist(),
                        "modifiers": modifiers})
    if not samples:
        raise ValueError("every component histogram is empty: no events to export")

    if x_observed is not None:
        x_obs, _ = _binned_values(_Observed(x_observed, events), observables, estimator, theta_ref)
        obs_index, _ = bin_indices(x_obs, edges)
        counts = np.bincount(obs_index, minlength=n_bins).astype(np.float64)
    else:
        w_data = np.asarray(events.weights_at(theta_data_[None, :]), dtype=np.float64).reshape(-1)
        counts = luminosity * np.asarray(ind @ w_data).reshape(-1)
    channel = channel or "_".join(labels).replace("[", "").replace("]", "")
    ranges = np.asarray(space.ranges, dtype=np.float64)
    parameters = [{"name": p, "bounds": [[float(lo), float(hi)]], "inits": [float(theta_data_[i])]}
                  for i, (p, (lo, hi)) in enumerate(zip(names, ranges, strict=True))
                  if any(m["name"] == p for s in samples for m in s["modifiers"])]
    workspace = {
        "channels": [{"name": channel, "samples": samples}],
        "observations": [{"name": channel, "data": counts.tolist()}],
        "measurements": [{"name": measurement, "config": {"poi": poi, "parameters": parameters}}],
        "version": PYHF_SCHEMA_VERSION,
    }
    info = {"luminosity": luminosity, "theta_data": theta_data_.tolist(), "binning_theta": theta_bin.tolist(),
            "observed": x_observed is not None, "nuisance_parameters": nuisances}
    logger.info("pyhf workspace: channel %s with %d bins, %d samples, %d nuisance parameters", channel, n_bins,
                len(samples), len(nuisances))
    return PyhfExport(workspace, edges, labels, comps, info)


@dataclass
class _Observed:
    """Observed events dressed as an event set for :func:`_binned_values` (same observable columns)."""

    x: np.ndarray
    events: Any

    def __post_init__(self) -> None:
        self.x = np.asarray(self.x, dtype=np.float64)
        n_cols = np.asarray(self.events.x).shape[1]
        if self.x.ndim != 2 or self.x.shape[1] != n_cols:
            raise ValueError(f"x_observed must have shape (n_observed, {n_cols}), got {self.x.shape}")
        self.observable_names = list(self.events.observable_names)


def write_workspace(export: PyhfExport | dict[str, Any], path: str | os.PathLike) -> Path:
    """Write a workspace as JSON, atomically; with pyhf installed it is validated against pyhf's schema first.

    Parameters
    ----------
    export : PyhfExport or dict
    path : path-like

    Returns
    -------
    Path
    """
    spec = export.workspace if isinstance(export, PyhfExport) else export
    try:
        import pyhf
    except ImportError:  # pragma: no cover - environment dependent
        logger.info("pyhf not installed: %s written without schema validation", path)
    else:
        pyhf.Workspace(spec)  # raises pyhf.exceptions.InvalidSpecification naming the offending field
    path = Path(path)
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(spec, indent=1))
    return path


def export_pyhf_files(events_path: str | os.PathLike, output: str | os.PathLike, luminosity: float, *,
                      observables: Sequence[str] | None = None, model_path: str | os.PathLike | None = None,
                      bins: int = 20, theta: Sequence[float] | None = None,
                      observed_path: str | os.PathLike | None = None) -> PyhfExport:
    """File-level export behind ``skminer export-pyhf``: events (and a SALLY model) in, workspace JSON out.

    Parameters
    ----------
    events_path : path-like
        skminer HDF5 event file with morphing (e.g. ``<output>/events_test.h5`` of ``skminer run``).
    output : path-like
        Workspace JSON to write (atomically).
    luminosity : float
        pb^-1.
    observables : sequence of str, optional
        Observables to histogram (default: the first observable, unless ``model_path`` is given).
    model_path : path-like, optional
        A saved SALLY model (``.skm``): histogram its estimated score.
    bins : int
        Bins per dimension (equal Asimov content).
    theta : sequence of float, optional
        Asimov point (default: the first basis benchmark).
    observed_path : path-like, optional
        HDF5 event file of observed events (their counts become the observations).
    """
    from ..events import EventSet

    events = EventSet.load(events_path)
    estimator = None
    if model_path is not None:
        from ..estimators.persistence import load_estimator

        estimator = load_estimator(model_path)
    elif not observables:
        observables = events.observable_names[:1]
    x_obs = None
    if observed_path is not None:
        data = EventSet.load(observed_path)
        missing = [o for o in events.observable_names if o not in data.observable_names]
        if missing:
            raise ValueError(f"{observed_path}: observed events lack the observables {missing}")
        x_obs = data.x[:, [data.observable_names.index(o) for o in events.observable_names]]
    export = histogram_workspace(events, luminosity, observables=observables, estimator=estimator, bins=bins,
                                 theta_data=theta, x_observed=x_obs)
    write_workspace(export, output)
    return export
