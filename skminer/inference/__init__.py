"""Statistical inference: Fisher information, asymptotic limits, profiling and projection of nuisances."""

from .fisher import (
    FisherInformation,
    InformationDistribution,
    distance_for_cl,
    fisher_contour,
    fisher_distance,
    information_mean_and_covariance,
)
from .limits import AsymptoticLimits, LimitResult, fisher_limits, p_values_from_q, theta_grid
from .nuisance import nuisance_constraint_information, profile_information, project_information

__all__ = [
    "AsymptoticLimits",
    "FisherInformation",
    "InformationDistribution",
    "LimitResult",
    "distance_for_cl",
    "fisher_contour",
    "fisher_distance",
    "fisher_limits",
    "information_mean_and_covariance",
    "nuisance_constraint_information",
    "p_values_from_q",
    "profile_information",
    "project_information",
    "theta_grid",
]
