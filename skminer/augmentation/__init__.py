"""Training-sample generation: unweighting, joint likelihood ratios and scores, parameter priors."""

from .priors import BenchmarkPrior, FixedPrior, GaussianPrior, GridPrior, Prior, UniformPrior, as_prior
from .samplers import (
    DensitySampler,
    DoubleRatioSampler,
    LocalScoreSampler,
    RatioSampler,
    TestSampler,
    TrainingSample,
)
from .unweighting import event_weights, joint_log_likelihoods, unweight

__all__ = [
    "TrainingSample",
    "LocalScoreSampler",
    "RatioSampler",
    "DoubleRatioSampler",
    "DensitySampler",
    "TestSampler",
    "Prior",
    "UniformPrior",
    "GaussianPrior",
    "FixedPrior",
    "BenchmarkPrior",
    "GridPrior",
    "as_prior",
    "unweight",
    "event_weights",
    "joint_log_likelihoods",
]
