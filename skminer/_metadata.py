"""Errors for metadata (theta, r_xz, t_xz) that did not reach an estimator or scorer, with the right reason."""

from __future__ import annotations

import sklearn

__all__ = ["MissingMetadataError", "GridShapeWarning", "missing_metadata_message"]


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
