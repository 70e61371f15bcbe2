"""Training-sample generation: unweighting, joint likelihood ratios and scores, parameter priors."""

from .event_files import EventFiles, sample_files
from .priors import BenchmarkPrior, FixedPrior, GaussianPrior, GridPrior, Prior, UniformPrior, as_prior
from .samplers import (
    DensitySampler,
    DoubleRatioSampler,
    LocalScoreSampler,
    RatioSampler,
    TestSampler,
    TrainingSample,
)
from .unweighting import event_weights, joint_log_likelihoods, positive_totals, unweight

__all__ = [
    "TrainingSample",
    "LocalScoreSampler",
    "RatioSampler",
    "DoubleRatioSampler",
    "DensitySampler",
    "TestSampler",
    "EventFiles",
    "sample_files",
    "Prior",
    "UniformPrior",
    "GaussianPrior",
    "FixedPrior",
    "BenchmarkPrior",
    "GridPrior",
    "as_prior",
    "unweight",
    "positive_totals",
    "event_weights",
    "joint_log_likelihoods",
]
