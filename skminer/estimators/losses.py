"""Loss functions of the "mining gold" likelihood-ratio and score estimators (Brehmer et al.; MadMiner).

Conventions (as in MadMiner):

* ``r(x | theta0, theta1) = p(x | theta0) / p(x | theta1)``; label ``y = 0`` means ``x ~ p(x | theta0)`` and
  ``y = 1`` means ``x ~ p(x | theta1)``. The classifier output is ``s = P(y = 1 | x) = 1 / (1 + r)``, i.e.
  ``logit(s) = -log r``. All cross entropies are computed from logits (``log r``), never from ``s``.
* The networks return ``log r``; the estimated score is ``t_hat = d log r_hat / d theta0``.
* The joint likelihood ratio enters as ``log_r_xz = log r(x, z | theta0, theta1)``; the joint score ``t_xz`` is
  ``grad_theta log p(x, z | theta)`` at ``theta0``; for doubly parameterised estimators ``t_xz1`` is the joint
  score at ``theta1``, which is matched to ``-d log r_hat / d theta1``.
* Score terms are averaged over the parameter components and over *all* events of a batch (masked events
  contribute zero), in standardised parameter units: ``mean_i mask_i mean_k s_k^2 (t_hat_ik - t_xz_ik)^2`` with
  ``s_k`` the standard deviation of ``theta_k`` in the training sample. This is MadMiner's normalisation of the
  hyperparameter ``alpha`` (its trainers rescale theta and t_xz by default, ``scale_parameters=True``), so the same
  ``alpha`` weighs the score term equally in both tools. Migration: before skminer 0.2 the components were summed
  in raw parameter units, so the loss of an old ``alpha = a`` is the loss of a new ``alpha = a * n_parameters /
  s_k^2`` (for equal ``s_k``).

The torch functions are differentiable and operate on batches; :class:`RatioCriterion` and
:class:`ScoreCriterion` wrap them as ``torch.nn.Module`` criteria for the skorch training loop.
:func:`ratio_cross_entropy` is the numpy (float64) evaluation criterion behind the estimators' ``score``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "RATIO_LOSSES",
    "carl_loss",
    "rolr_loss",
    "alice_loss",
    "score_mse",
    "cascal_loss",
    "rascal_loss",
    "alices_loss",
    "sally_loss",
    "log_r_xz_from_r_xz",
    "ratio_cross_entropy",
    "RatioCriterion",
    "ScoreCriterion",
]

#: Ratio terms of :class:`RatioCriterion`: cross entropy against the labels (CARL), regression on the joint
#: ratio (ROLR), cross entropy against the joint-ratio soft labels (ALICE). Which method uses which is a column of
#: the method table (``skminer.methods.Method.ratio_loss``).
RATIO_LOSSES: tuple[str, ...] = ("xe", "mse", "axe")


def _flat(t: Tensor) -> Tensor:
    return t.reshape(t.shape[0]) if t.ndim > 1 else t


def _as(t: Tensor, like: Tensor) -> Tensor:
    """``t`` in ``like``'s dtype; the tensor itself when it already is (no dispatch: these losses run per batch)."""
    return t if t.dtype == like.dtype else t.to(like.dtype)


def _shaped(t: Tensor, like: Tensor) -> Tensor:
    """``t`` reshaped to ``like``'s shape; the tensor itself when it already has it."""
    return t if t.shape == like.shape else t.reshape(like.shape)


def carl_loss(log_r_hat: Tensor, y: Tensor) -> Tensor:
    """CARL: binary cross entropy of ``s_hat = 1 / (1 + r_hat)`` against the labels.

    Parameters
    ----------
    log_r_hat : Tensor, shape (n,)
        Estimated log likelihood ratio.
    y : Tensor, shape (n,)
        Labels (0: ``x ~ theta0``, 1: ``x ~ theta1``).

    Returns
    -------
    Tensor
        Scalar mean loss.
    """
    return F.binary_cross_entropy_with_logits(-_flat(log_r_hat), _as(_flat(y), log_r_hat))


def alice_loss(log_r_hat: Tensor, log_r_xz: Tensor, log_r_clip: float | None = None) -> Tensor:
    """ALICE: cross entropy of ``s_hat`` against ``s_xz = 1 / (1 + r_xz)`` (the joint-ratio "soft label").

    Parameters
    ----------
    log_r_hat : Tensor, shape (n,)
    log_r_xz : Tensor, shape (n,)
        Joint log likelihood ratio ``log r(x, z | theta0, theta1)``.
    log_r_clip : float or None
        Clip ``|log r_xz|`` at this value before forming the soft label (``None``: no clipping).
    """
    target = _flat(log_r_xz)
    if log_r_clip is not None:
        target = target.clamp(-log_r_clip, log_r_clip)
    return F.binary_cross_entropy_with_logits(-_flat(log_r_hat), torch.sigmoid(-target))


def rolr_loss(log_r_hat: Tensor, y: Tensor, log_r_xz: Tensor, log_r_clip: float = 10.0) -> Tensor:
    """ROLR: ``(1 - y) |1/r_hat - 1/r_xz|^2 + y |r_hat - r_xz|^2``, averaged over the batch.

    Events drawn at ``theta1`` (``y = 1``) regress ``r``, events drawn at ``theta0`` (``y = 0``) regress ``1/r``:
    only this pairing is unbiased, because ``E[r(x, z) | x] = r(x)`` when ``z ~ p(z | x, theta1)`` and
    ``E[1/r(x, z) | x] = 1/r(x)`` when ``z ~ p(z | x, theta0)`` (MadMiner's ``ratio_mse_num``/``ratio_mse_den``).
    Both ``log r_hat`` and ``log r_xz`` are clipped to ``[-log_r_clip, log_r_clip]`` before exponentiation,
    which keeps the loss finite (beyond the clip the gradient of the estimate vanishes, as in MadMiner).
    """
    y = _as(_flat(y), log_r_hat)
    lr_hat = _flat(log_r_hat).clamp(-log_r_clip, log_r_clip)
    lr_xz = _flat(log_r_xz).clamp(-log_r_clip, log_r_clip)
    inverse = (torch.exp(-lr_hat) - torch.exp(-lr_xz)) ** 2
    direct = (torch.exp(lr_hat) - torch.exp(lr_xz)) ** 2
    return ((1.0 - y) * inverse + y * direct).mean()


def score_mse(t_hat: Tensor, t_xz: Tensor, mask: Tensor | None = None) -> Tensor:
    """Masked squared error of a score: ``mean_i mask_i mean_k (t_hat_ik - t_xz_ik)^2`` (MadMiner's).

    Parameters
    ----------
    t_hat, t_xz : Tensor, shape (n, n_params) or (n,)
        Estimated and joint score, in the same parameter units (the ratio estimators train with both per unit
        of the standardised parameters, as MadMiner's ``scale_parameters=True``).
    mask : Tensor, shape (n,), optional
        Event weights (e.g. ``1 - y`` to use only events drawn at ``theta0``). The mean runs over all ``n``
        events, masked ones contributing zero, and over the ``n_params`` components.
    """
    sq = (t_hat - _shaped(t_xz, t_hat)).pow(2)
    sq = (sq if sq.ndim == 2 else sq.reshape(sq.shape[0], -1)).mean(dim=1)
    if mask is not None:
        sq = sq * _as(_flat(mask), sq)
    return sq.mean()


def cascal_loss(log_r_hat: Tensor, t_hat: Tensor, y: Tensor, t_xz: Tensor, alpha: float) -> Tensor:
    """CASCAL: CARL cross entropy plus ``alpha`` times the score MSE on ``y = 0`` events."""
    return carl_loss(log_r_hat, y) + alpha * score_mse(t_hat, t_xz, 1.0 - _as(_flat(y), t_hat))


def rascal_loss(log_r_hat: Tensor, t_hat: Tensor, y: Tensor, log_r_xz: Tensor, t_xz: Tensor, alpha: float,
                log_r_clip: float = 10.0) -> Tensor:
    """RASCAL: ROLR loss plus ``alpha`` times the score MSE on ``y = 0`` events."""
    return (rolr_loss(log_r_hat, y, log_r_xz, log_r_clip)
            + alpha * score_mse(t_hat, t_xz, 1.0 - _as(_flat(y), t_hat)))


def alices_loss(log_r_hat: Tensor, t_hat: Tensor, y: Tensor, log_r_xz: Tensor, t_xz: Tensor, alpha: float,
                log_r_clip: float | None = None) -> Tensor:
    """ALICES: ALICE cross entropy plus ``alpha`` times the score MSE on ``y = 0`` events."""
    return (alice_loss(log_r_hat, log_r_xz, log_r_clip)
            + alpha * score_mse(t_hat, t_xz, 1.0 - _as(_flat(y), t_hat)))


def sally_loss(t_hat: Tensor, t_xz: Tensor, scale: Tensor | None = None) -> Tensor:
    """SALLY: mean squared error between estimated and joint score, optionally in units of ``scale``.

    Parameters
    ----------
    t_hat, t_xz : Tensor, shape (n, n_outputs)
    scale : Tensor, shape (n_outputs,), optional
        Per-component scale; the loss is ``mean(((t_hat - t_xz) / scale)^2)`` over events and components.
    """
    diff = t_hat - _shaped(t_xz, t_hat)
    if scale is not None:
        diff = diff / scale
    return diff.pow(2).mean()


def log_r_xz_from_r_xz(r_xz: np.ndarray) -> np.ndarray:
    """``log r_xz`` in float64 for a non-negative joint ratio (``0 -> -inf``, ``inf -> inf``).

    Raises
    ------
    ValueError
        If ``r_xz`` contains NaN or negative values.
    """
    r = np.asarray(r_xz, dtype=np.float64)
    if np.any(np.isnan(r)):
        raise ValueError("r_xz contains NaN")
    if np.any(r < 0):
        raise ValueError(f"r_xz must be non-negative (a likelihood ratio), found minimum {r.min():.4g}")
    with np.errstate(divide="ignore"):
        return np.log(r)


def _log_sigmoid_np(u: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -u)


def ratio_cross_entropy(log_r_hat: np.ndarray, target: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
    """Mean binary cross entropy of ``s_hat = 1 / (1 + r_hat)`` against target probabilities (float64).

    Parameters
    ----------
    log_r_hat : ndarray, shape (n,)
        Estimated log likelihood ratio.
    target : ndarray, shape (n,)
        Target ``P(y = 1)``: the labels ``y`` or the joint-ratio soft labels ``s_xz = 1 / (1 + r_xz)``.
    sample_weight : ndarray, shape (n,), optional
        Event weights for the mean.

    Returns
    -------
    float
        ``-mean[s log s_hat + (1 - s) log(1 - s_hat)]`` (lower is better).
    """
    lr = np.asarray(log_r_hat, dtype=np.float64).reshape(-1)
    s = np.asarray(target, dtype=np.float64).reshape(-1)
    if lr.shape != s.shape:
        raise ValueError(f"log_r_hat has {lr.size} entries but target has {s.size}")
    # log s_hat = log sigmoid(-log r), log(1 - s_hat) = log sigmoid(log r)
    xe = -(s * _log_sigmoid_np(-lr) + (1.0 - s) * _log_sigmoid_np(lr))
    return float(np.average(xe, weights=sample_weight))


class RatioCriterion(nn.Module):
    """Loss of a (singly or doubly) parameterised likelihood-ratio estimator as a torch criterion.

    ``forward(y_pred, y_true)`` takes the module output ``{"log_r": (n,), "t": (n, k)}`` (``"t"`` only for
    score methods, ``k = n_parameters`` or ``2 n_parameters`` for doubly parameterised networks, the latter being
    ``[d/d theta0, d/d theta1]``) and the targets ``{"y", "log_r_xz", "t_xz", "t_xz1"}`` (those the method needs).

    Parameters
    ----------
    loss : {"xe", "mse", "axe"}
        Ratio term (:data:`RATIO_LOSSES`; the method table's ``ratio_loss`` column).
    score_term : bool
        Add ``alpha`` times the joint-score MSE (CASCAL, RASCAL, ALICES: the table's ``alpha`` column).
    alpha : float
        Weight of the score term.
    log_r_clip : float
        Clip for ``|log r|`` where the loss exponentiates it (ROLR/RASCAL) and for the joint ratio target.
    n_parameters : int
        Number of theory parameters (columns of ``theta0``).
    double : bool
        Doubly parameterised network: the score term also matches ``-d log r_hat / d theta1`` to ``t_xz1`` on
        ``y = 1`` events when ``t_xz1`` is given.

    The score term compares ``t`` with the targets in whatever units both are given; :class:`RatioNet` trains
    with both in standardised parameter units (MadMiner's ``scale_parameters``).
    """

    def __init__(self, loss: str, score_term: bool = False, alpha: float = 0.0, log_r_clip: float = 10.0,
                 n_parameters: int = 1, double: bool = False) -> None:
        super().__init__()
        if loss not in RATIO_LOSSES:
            raise ValueError(f"unknown ratio loss {loss!r}; expected one of {RATIO_LOSSES}")
        self.base = loss
        self.uses_score = bool(score_term)
        self.alpha = float(alpha)
        self.log_r_clip = float(log_r_clip)
        self.n_parameters = int(n_parameters)
        self.double = bool(double)

    def forward(self, y_pred: Mapping[str, Tensor], y_true: Mapping[str, Tensor]) -> Tensor:
        log_r = y_pred["log_r"]
        y = y_true["y"]
        if self.base == "xe":
            loss = carl_loss(log_r, y)
        elif self.base == "mse":
            loss = rolr_loss(log_r, y, y_true["log_r_xz"], self.log_r_clip)
        else:
            loss = alice_loss(log_r, y_true["log_r_xz"], self.log_r_clip)
        if self.uses_score and self.alpha != 0.0:
            t = y_pred.get("t")
            if t is None:
                raise RuntimeError("the score term needs the module's score output (gradients must be enabled)")
            p = self.n_parameters
            y_f = _as(_flat(y), t)
            t0 = t if t.shape[1] == p else t[:, :p]  # singly parameterised: no slicing op
            score = score_mse(t0, y_true["t_xz"], 1.0 - y_f)
            if self.double and y_true.get("t_xz1") is not None:
                score = score + score_mse(-t[:, p:], y_true["t_xz1"], y_f)
            loss = loss + self.alpha * score
        return loss


class ScoreCriterion(nn.Module):
    """SALLY criterion: :func:`sally_loss` with a fixed per-component ``scale`` (buffer)."""

    def __init__(self, scale: np.ndarray | Tensor | None = None) -> None:
        super().__init__()
        if scale is None:
            self.scale = None
        else:
            self.register_buffer("scale", torch.as_tensor(np.asarray(scale, dtype=np.float32)))

    def forward(self, y_pred: Tensor, y_true: Mapping[str, Tensor] | Tensor) -> Tensor:
        target = y_true["t_xz"] if isinstance(y_true, Mapping) else y_true
        return sally_loss(y_pred, target, self.scale)
