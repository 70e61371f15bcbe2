"""Nuisance parameters from scale and PDF variation weights, parameterised as in eq. (19) of the MadMiner paper.

The effect of nuisance parameters ``nu`` on an event weight is

    dsigma(x | theta, nu) = dsigma(x | theta, 0) * exp(sum_i a_i(x) nu_i + b_i(x) nu_i^2).

For a two-sided variation with weights ``up`` (``nu = +1``) and ``down`` (``nu = -1``) around the central weight
``c`` the coefficients reproduce both exactly::

    a = (log(up / c) - log(down / c)) / 2,        b = (log(up / c) + log(down / c)) / 2,

and for a one-sided variation (e.g. a symmetric-Hessian PDF eigenvector, ``nu = +1`` -> ``up``) ``a = log(up / c)``,
``b = 0``. Ratios that are not positive (zero or negative weights, e.g. at NLO) have no logarithm: they are clipped
to ``[exp(-clip), exp(clip)]`` (so ``|a|, |b| <= clip``) and a warning reports how many; events with a zero
central weight get ``a = b = 0``.

:class:`Systematics` builds the variations from the ``<initrwgt>`` weight groups of an LHE file:

* scale: ``scale="envelope"`` (default) -- one nuisance whose ``nu = +-1`` weights are, per event, the largest and
  smallest of the muR/muF variations (ratios to the central weight; 7-point envelope without the anti-correlated
  points unless ``seven_point=False``; dynamical-scale-choice variations excluded);
  ``"together"`` -- one nuisance with muR = muF = 2 (up) and 1/2 (down); ``"independent"`` -- one nuisance for muR
  and one for muF (the other scale at 1); ``None`` -- no scale nuisance.
* PDF: one nuisance per eigenvector. Asymmetric Hessian sets (``combine="hessian"``) pair members ``2k - 1`` (up)
  and ``2k`` (down); symmetric Hessian sets (``"symmhessian"``) give one one-sided nuisance per member. Replica
  sets (``"replicas"``, e.g. NNPDF) are not eigenvector sets: each replica becomes a one-sided nuisance (with a
  warning), limited by ``max_pdf_members``. ``pdf=None`` skips PDFs.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..parameters import ParameterSpace

__all__ = ["Systematics", "Variation", "nuisance_coefficients"]

logger = logging.getLogger(__name__)

_MU_TEXT = {
    "mur": re.compile(r"(?:\bmur|renscfact)\s*=\s*([-+0-9.eEdD]+)", re.IGNORECASE),
    "muf": re.compile(r"(?:\bmuf|facscfact)\s*=\s*([-+0-9.eEdD]+)", re.IGNORECASE),
}
_PDF_TEXT = re.compile(r"(?:\bPDF\s*=\s*|lhapdf\d?\s*=\s*\d+\s+lhapdf2\s*=\s*|MemberID\s*=\s*)(\d+)", re.IGNORECASE)
_DYN_TEXT = re.compile(r"dyn_scale_choice|DYN_SCALE", re.IGNORECASE)
_PDF_IN_ID = re.compile(r"PDF(\d+)", re.IGNORECASE)


def _num(s: str) -> float:
    return float(s.replace("d", "e").replace("D", "e"))


def nuisance_coefficients(central: Any, up: Any, down: Any = None, *, clip: float = 10.0, label: str = ""
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Per-event ``a``, ``b`` of eq. (19) from central, up (``nu=+1``) and optional down (``nu=-1``) weights.

    Parameters
    ----------
    central, up : array-like, shape (n_events,)
    down : array-like, shape (n_events,), optional
        Without it the variation is one-sided (``b = 0``).
    clip : float
        Bound on ``|log(ratio)|``: non-positive or extreme ratios are clipped to ``[exp(-clip), exp(clip)]``.
    label : str
        Name used in warnings.

    Returns
    -------
    a, b : ndarray, shape (n_events,)
        With ``exp(a + b) = up / central`` and ``exp(-a + b) = down / central`` wherever no clipping was needed.
    """
    c = np.asarray(central, dtype=np.float64)
    log_up, n_up = _log_ratio(np.asarray(up, dtype=np.float64), c, clip)
    if down is None:
        a, b = log_up, np.zeros_like(log_up)
        n_bad = n_up
    else:
        log_down, n_down = _log_ratio(np.asarray(down, dtype=np.float64), c, clip)
        a = 0.5 * (log_up - log_down)
        b = 0.5 * (log_up + log_down)
        n_bad = n_up + n_down
    if n_bad:
        logger.warning("%snuisance coefficients: %d non-positive or extreme weight ratios clipped to "
                       "[exp(-%g), exp(%g)] (zero/negative weights)", f"{label}: " if label else "", n_bad, clip, clip)
    return a, b


def _log_ratio(w: np.ndarray, c: np.ndarray, clip: float) -> tuple[np.ndarray, int]:
    if w.shape != c.shape:
        raise ValueError(f"variation weights have shape {w.shape}, central weights {c.shape}")
    zero_c = c == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(zero_c, 1.0, w / np.where(zero_c, 1.0, c))
    bad = ~zero_c & ~((ratio >= math.exp(-clip)) & (ratio <= math.exp(clip)))
    ratio = np.clip(np.nan_to_num(ratio, nan=math.exp(-clip)), math.exp(-clip), math.exp(clip))
    return np.log(ratio), int(bad.sum())


@dataclass(frozen=True)
class Variation:
    """One nuisance parameter defined by weight ids.

    Parameters
    ----------
    name : str
    kind : {"scale", "pdf"}
    up : tuple of str
        Weight id(s) for ``nu = +1``. Several ids with ``envelope=True``.
    down : tuple of str or None
        Weight id(s) for ``nu = -1``; ``None`` for a one-sided variation.
    envelope : bool
        ``up``/``down`` are the per-event maximum/minimum ratio over all ids in ``up`` (``down`` unused).
    """

    name: str
    kind: str
    up: tuple[str, ...]
    down: tuple[str, ...] | None = None
    envelope: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "up", tuple(str(u) for u in self.up))
        if self.down is not None:
            object.__setattr__(self, "down", tuple(str(d) for d in self.down))
        if not self.up:
            raise ValueError(f"variation {self.name!r} needs at least one up weight id")
        if not self.envelope and (len(self.up) != 1 or (self.down is not None and len(self.down) != 1)):
            raise ValueError(f"variation {self.name!r}: exactly one up (and down) id unless envelope=True")

    @property
    def weight_ids(self) -> list[str]:
        """All weight ids used."""
        return [*self.up, *(self.down or ())]


class Systematics:
    """A set of nuisance parameters computed from variation weights (eq. 19).

    Parameters
    ----------
    variations : sequence of Variation
    clip : float
        See :func:`nuisance_coefficients`.

    Examples
    --------
    >>> syst = Systematics.from_lhe("events.lhe.gz", scale="envelope", pdf="auto")   # doctest: +SKIP
    >>> reader = LHEReader(space, systematics=syst)                                 # doctest: +SKIP
    """

    def __init__(self, variations: Sequence[Variation] = (), clip: float = 10.0) -> None:
        self.variations = list(variations)
        names = self.names
        if len(set(names)) != len(names):
            raise ValueError(f"nuisance names must be unique, got {names}")
        if not (math.isfinite(clip) and clip > 0):
            raise ValueError(f"clip must be positive, got {clip!r}")
        self.clip = float(clip)

    @property
    def names(self) -> list[str]:
        """Nuisance parameter names."""
        return [v.name for v in self.variations]

    @property
    def weight_ids(self) -> list[str]:
        """All weight ids the variations need, without duplicates, in order."""
        seen: dict[str, None] = {}
        for v in self.variations:
            for w in v.weight_ids:
                seen.setdefault(w, None)
        return list(seen)

    def __len__(self) -> int:
        return len(self.variations)

    def __repr__(self) -> str:
        return f"Systematics({self.names})"

    def coefficients(self, central: Any, weights: Mapping[str, Any], label: str = ""
                     ) -> tuple[np.ndarray, np.ndarray]:
        """``a``, ``b`` of all nuisances, each ``(n_events, n_nuisance)``.

        Parameters
        ----------
        central : array-like, shape (n_events,)
            Central (nominal) weights.
        weights : mapping of str to array-like
            Variation weights by id (any normalisation common with ``central``).
        label : str
            File name for messages.
        """
        c = np.asarray(central, dtype=np.float64).reshape(-1)
        missing = [w for w in self.weight_ids if w not in weights]
        if missing:
            raise ValueError(f"{label + ': ' if label else ''}missing variation weights {missing[:10]}")
        a = np.zeros((c.size, len(self.variations)))
        b = np.zeros_like(a)
        for k, v in enumerate(self.variations):
            tag = f"{label + ': ' if label else ''}{v.name}"
            if v.envelope:
                zero = c == 0
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratios = np.stack([np.asarray(weights[w], dtype=np.float64) for w in v.up], axis=1) / np.where(
                        zero, 1.0, c)[:, None]
                up = np.max(ratios, axis=1)
                down = np.min(ratios, axis=1)
                a[:, k], b[:, k] = nuisance_coefficients(np.ones_like(c), up, down, clip=self.clip, label=tag)
                a[zero, k] = 0.0
                b[zero, k] = 0.0
            else:
                down = None if v.down is None else weights[v.down[0]]
                a[:, k], b[:, k] = nuisance_coefficients(c, weights[v.up[0]], down, clip=self.clip, label=tag)
        return a, b

    def add_to_space(self, space: ParameterSpace) -> ParameterSpace:
        """Copy of ``space`` with a :class:`~skminer.parameters.NuisanceParameter` per variation (existing ones with
        the same name are kept)."""
        out = space.copy()
        for v in self.variations:
            if v.name in out.nuisance_names:
                continue
            up = ",".join(v.up) if not v.envelope else "max(" + ",".join(v.up) + ")"
            down = (None if v.down is None else ",".join(v.down)) if not v.envelope else "min(" + ",".join(v.up) + ")"
            out.add_nuisance(v.name, kind=v.kind, up=up, down=down)
        return out

    # -- construction from LHE headers -------------------------------------------------------------------------
    @classmethod
    def from_lhe(cls, path: str | os.PathLike, *, scale: str | None = "envelope", pdf: str | None = "auto",
                 max_pdf_members: int | None = None, seven_point: bool = True, clip: float = 10.0) -> Systematics:
        """Build the variations from the ``<initrwgt>`` block of an LHE file (see the module docstring).

        Parameters
        ----------
        path : path-like
        scale : {"envelope", "together", "independent"} or None
        pdf : {"auto", "hessian", "symmhessian", "replicas"} or None
            ``"auto"`` uses the weight group's ``combine`` attribute (replicas when unknown).
        max_pdf_members : int, optional
            Use at most this many PDF members (eigenvector pairs for asymmetric Hessian sets).
        seven_point : bool
            Envelope over the usual 7 points: leave out the anti-correlated (muR, muF) = (2, 1/2) and (1/2, 2).
        clip : float

        Raises
        ------
        ValueError
            If the file declares no scale or PDF weights that were asked for.
        """
        from .lhe import read_lhe_info

        info = read_lhe_info(path)
        return cls.from_weight_info(info.weights, scale=scale, pdf=pdf, max_pdf_members=max_pdf_members,
                                    seven_point=seven_point, clip=clip, label=str(path))

    @classmethod
    def from_weight_info(cls, weights: Sequence[Any], *, scale: str | None = "envelope", pdf: str | None = "auto",
                         max_pdf_members: int | None = None, seven_point: bool = True, clip: float = 10.0,
                         label: str = "") -> Systematics:
        """Like :meth:`from_lhe`, from :class:`~skminer.simulation.lhe.WeightInfo` records."""
        if scale not in ("envelope", "together", "independent", None):
            raise ValueError(f"scale must be 'envelope', 'together', 'independent' or None, got {scale!r}")
        if pdf not in ("auto", "hessian", "symmhessian", "replicas", None):
            raise ValueError(f"pdf must be 'auto', 'hessian', 'symmhessian', 'replicas' or None, got {pdf!r}")
        where = f"{label}: " if label else ""
        scale_vars, pdf_members, central_pdf = _classify(weights)
        variations: list[Variation] = []
        if scale is not None:
            if not scale_vars:
                raise ValueError(f"{where}no scale-variation weights (muR/muF) declared in <initrwgt>")
            lookup = {(r, f): w for w, r, f in scale_vars}

            def find(r: float, f: float) -> str:
                try:
                    return lookup[(r, f)]
                except KeyError:
                    raise ValueError(f"{where}no weight with muR={r}, muF={f} among the scale variations "
                                     f"{sorted(lookup)}") from None

            if scale == "envelope":
                ids = tuple(w for w, r, f in scale_vars if (r, f) != (1.0, 1.0)
                            and not (seven_point and not 0.25 < r / f < 4.0))
                variations.append(Variation("scale", "scale", ids, None, envelope=True))
            elif scale == "together":
                variations.append(Variation("scale", "scale", (find(2.0, 2.0),), (find(0.5, 0.5),)))
            else:
                variations.append(Variation("scale_mur", "scale", (find(2.0, 1.0),), (find(0.5, 1.0),)))
                variations.append(Variation("scale_muf", "scale", (find(1.0, 2.0),), (find(1.0, 0.5),)))
        if pdf is not None:
            if not pdf_members:
                raise ValueError(f"{where}no PDF-variation weights declared in <initrwgt>")
            for set_name, (combine, members) in pdf_members.items():
                mode = pdf if pdf != "auto" else _pdf_mode(combine)
                prefix = set_name if set_name.lower().startswith("pdf") else f"pdf_{set_name}"
                ids = [w for w, _ in members]
                if mode == "hessian":
                    if len(ids) % 2:
                        raise ValueError(f"{where}asymmetric Hessian PDF set {set_name!r} has an odd number of "
                                         f"members ({len(ids)}); use pdf='symmhessian'")
                    pairs = [(ids[2 * k], ids[2 * k + 1]) for k in range(len(ids) // 2)]
                    if max_pdf_members is not None:
                        pairs = pairs[:max_pdf_members]
                    for k, (u, d) in enumerate(pairs, start=1):
                        variations.append(Variation(f"{prefix}_{k}", "pdf", (u,), (d,)))
                else:
                    if mode == "replicas":
                        logger.warning("%sPDF set %r has Monte Carlo replicas, not Hessian eigenvectors; each "
                                       "replica becomes a one-sided nuisance parameter", where, set_name)
                    if max_pdf_members is not None:
                        ids = ids[:max_pdf_members]
                    for k, u in enumerate(ids, start=1):
                        variations.append(Variation(f"{prefix}_{k}", "pdf", (u,), None))
        out = cls(variations, clip=clip)
        logger.info("%s%d nuisance parameters from weight variations (%s)", where, len(out),
                    ", ".join(out.names[:5]) + (" ..." if len(out) > 5 else ""))
        return out


def _pdf_mode(combine: str | None) -> str:
    c = (combine or "").lower()
    if "symm" in c:
        return "symmhessian"
    if "hessian" in c:
        return "hessian"
    return "replicas"


def _scale_values(w: Any) -> tuple[float, float] | None:
    """(muR, muF) factors of a weight, or None if it is no pure scale variation."""
    attrs = {k.lower(): v for k, v in w.attributes.items()}
    text = w.text or ""
    if "dyn_scale" in attrs or _DYN_TEXT.search(text):
        return None
    values = {}
    for key, rx in _MU_TEXT.items():
        if key in attrs:
            values[key] = _num(attrs[key])
        else:
            m = rx.search(text)
            if m:
                values[key] = _num(m.group(1))
    if not values:
        return None
    return float(values.get("mur", 1.0)), float(values.get("muf", 1.0))


def _classify(weights: Sequence[Any]) -> tuple[list[tuple[str, float, float]],
                                                dict[str, tuple[str | None, list[tuple[str, int]]]], int | None]:
    """Split declared weights into scale variations and PDF members (grouped by PDF set)."""
    scale_vars: list[tuple[str, float, float]] = []
    pdf_groups: dict[str, tuple[str | None, list[tuple[str, int]]]] = {}
    central_pdf = None
    for w in weights:
        group = (w.group or "").lower()
        attrs = {k.lower(): v for k, v in w.attributes.items()}
        pdf_id = None
        if "pdf" in attrs:
            pdf_id = int(float(attrs["pdf"]))
        else:
            m = _PDF_TEXT.search(w.text or "")
            if m and ("pdf" in group or "lhapdf" in (w.text or "").lower()):
                pdf_id = int(m.group(1))
            else:
                m = _PDF_IN_ID.search(w.id)
                if m:
                    pdf_id = int(m.group(1))
        mu = _scale_values(w)
        is_pdf_group = "pdf" in group or (w.combine or "").lower() in ("replicas", "hessian", "symmhessian", "gaussian")
        if mu is not None and mu != (1.0, 1.0) and not is_pdf_group:
            scale_vars.append((w.id, *mu))
            if pdf_id is not None and central_pdf is None:
                central_pdf = pdf_id
            continue
        if mu is not None and mu == (1.0, 1.0) and "scale" in group:
            continue  # the central point of a scale group
        if "nominal" in group or "central" == group:
            if pdf_id is not None and central_pdf is None:
                central_pdf = pdf_id
            continue
        if is_pdf_group and (mu is None or mu == (1.0, 1.0)):
            name = w.group or "pdf"
            pdf_groups.setdefault(name, (w.combine, []))[1].append((w.id, pdf_id if pdf_id is not None else -1))
    # drop each set's central member (the PDF id used by the scale variations / nominal weight, e.g. 247000)
    out: dict[str, tuple[str | None, list[tuple[str, int]]]] = {}
    for name, (combine, members) in pdf_groups.items():
        if central_pdf is not None:
            members = [m for m in members if m[1] != central_pdf]
        key = re.sub(r"\W+", "_", name).strip("_") or "pdf"
        out[key] = (combine, members)
    return scale_vars, out, central_pdf
