"""The schema of the analysis configuration (pydantic v2 models), one model per section.

Every model rejects unknown keys. Numbers are strict (``true`` is not a number, ``5.0`` is not an integer, a quoted
``"1e-3"`` is not a float), names are text: an integer name is accepted when YAML kept its spelling (``1001``)
and refused when it did not (``012`` is the octal 10). Checks that need more than one section (names of
parameters, benchmarks and observables, files) are in :mod:`skminer.config`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from ._yaml import YamlInt
from .methods import DEFAULT_METHOD

__all__ = ["AnalysisConfig", "SIMULATORS"]

SIMULATORS = ("toy", "lhe", "delphes", "hepmc")


def _as_name(value: Any) -> str:
    """A name (benchmark, parameter, observable, weight id): text, or an integer YAML kept the spelling of."""
    if isinstance(value, bool):
        raise ValueError(f"YAML reads this name as the boolean {value}; write it in quotes")
    if isinstance(value, YamlInt):
        if str(int(value)) != value.source:
            raise ValueError(f"YAML reads {value.source!r} as the number {int(value)}; write the name in quotes: "
                             f"'{value.source}'")
        return value.source
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        raise ValueError(f"YAML reads this name as the number {value!r}; write it in quotes")
    if not isinstance(value, str) or not value:
        raise ValueError(f"must be a non-empty name, got {value!r}")
    return value


def _as_point(value: Any, allow_name: bool = True) -> Any:
    """A parameter point: a benchmark name, ``{parameter: value}`` or a list of values (checked for types only)."""
    if value is None:
        return None
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out[_as_name(k)] = _as_number(v, f"value of {k!r}")
        return out
    if isinstance(value, (list, tuple)):
        return [_as_number(v, f"entry {i}") for i, v in enumerate(value)]
    if allow_name:
        return _as_name(value)
    raise ValueError(f"must be {{parameter: value}} or a list of values, got {value!r}")


def _as_histogram(value: Any) -> Any:
    """An observable name, or a pair of names (a two-dimensional histogram)."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(f"a two-dimensional histogram is a pair [name, name], got {list(value)!r}")
        return [_as_name(v) for v in value]
    return _as_name(value)


def _as_number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a number, got {value!r}")
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return value


Name = Annotated[str, BeforeValidator(_as_name)]
Int = Annotated[int, Field(strict=True)]
Float = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Point = Annotated[Any, BeforeValidator(_as_point)]
Values = Annotated[Any, BeforeValidator(lambda v: _as_point(v, allow_name=False))]
Histogram = Annotated[Any, BeforeValidator(_as_histogram)]
Kwargs = Annotated[dict[str, Any], Field(strict=True)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class ParameterSpec(_Section):
    name: Name
    lha_block: Name | None = None
    lha_id: Int | None = None
    max_power: Annotated[int, Field(strict=True, ge=0)] = 2
    range: tuple[Float, Float] = (-1.0, 1.0)

    @model_validator(mode="after")
    def _ordered(self) -> ParameterSpec:
        if not self.range[0] < self.range[1]:
            raise ValueError(f"range must be [low, high] with low < high, got {list(self.range)}")
        return self


class MorphingSpec(_Section):
    max_overall_power: Annotated[int, Field(strict=True, ge=1)] = 2
    fit: Literal["exact", "least_squares"] = "exact"  # least squares only when asked (skminer.closure)
    closure_tolerance: Annotated[float, Field(gt=0)] = 100.0  # WARNING above this many units of weight precision
    closure_error: Annotated[float, Field(gt=0)] = 0.01  # error above this relative deviation


class ObservableSpec(_Section):
    """An observable with a default for events lacking the object it refers to."""

    expression: str
    default: float = float("nan")


class SystematicsSpec(_Section):
    scale: Literal["envelope", "together", "independent"] | None = None
    pdf: Literal["auto", "hessian", "symmhessian", "replicas"] | None = None
    max_pdf_members: Annotated[int, Field(strict=True, ge=1)] | None = None
    seven_point: Annotated[bool, Field(strict=True)] = True


class ReaderSpec(_Section):
    files: Annotated[list[str], Field(min_length=1)]
    observables: Annotated[dict[Name, str | ObservableSpec], Field(min_length=1)]
    cuts: list[str] = []
    sampling_benchmark: Name | None = None
    morphing_basis: list[Name] | None = None
    weight_ids: dict[Name, Name] | None = None
    systematics: SystematicsSpec | None = None


class DelphesSpec(ReaderSpec):
    lhe_files: list[str] | None = None
    weight_names: list[Name] | None = None
    missing_events: Literal["not_processed", "vetoed"] | None = None  # a tree shorter than its LHE file


class HepMCSpec(ReaderSpec):
    lhe_files: list[str] | None = None
    weight_names: list[Name] | None = None
    objects: Kwargs | None = None  # ObjectDefinitions keys, checked in skminer.config


class SimulationSpec(_Section):
    simulator: Literal[SIMULATORS] = "toy"  # type: ignore[valid-type]
    n_events: Annotated[int, Field(strict=True, ge=100)] = 200_000
    toy: Kwargs = {}
    lhe: ReaderSpec | None = None
    delphes: DelphesSpec | None = None
    hepmc: HepMCSpec | None = None


class PriorSpec(_Section):
    kind: Literal["uniform", "gaussian", "benchmarks"] = "uniform"
    n_thetas: Annotated[int, Field(strict=True, ge=1)] = 200
    ranges: list[tuple[Float, Float]] | None = None
    mean: list[Float] | None = None
    std: list[Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)]] | None = None
    names: list[Name] | None = None

    @model_validator(mode="after")
    def _fits_kind(self) -> PriorSpec:
        allowed = {"uniform": {"ranges"}, "gaussian": {"mean", "std"}, "benchmarks": {"names"}}[self.kind]
        given = {k for k in ("ranges", "mean", "std", "names") if getattr(self, k) is not None}
        if given - allowed:
            raise ValueError(f"kind '{self.kind}' takes {sorted(allowed)}, not {sorted(given - allowed)}")
        if self.kind == "gaussian" and (self.mean is None or self.std is None):
            raise ValueError("kind 'gaussian' needs mean and std (one value per parameter)")
        for lo, hi in self.ranges or ():
            if not lo < hi:
                raise ValueError(f"ranges must be [low, high] with low < high, got {[lo, hi]}")
        return self


class AugmentationSpec(_Section):
    n_samples: Annotated[int, Field(strict=True, ge=10)] = 100_000
    test_fraction: Annotated[float, Field(strict=True, gt=0, lt=1)] = 0.3
    theta_ref: Point = None
    prior: PriorSpec = PriorSpec()


class TrainingSpec(_Section):
    method: str = DEFAULT_METHOD  # checked against the method table in skminer.config
    params: Kwargs = {}
    n_ensemble: Annotated[int, Field(strict=True, ge=1)] = 1


class GridSpec(_Section):
    n_points: Annotated[int, Field(strict=True, ge=3)] = 21


class ObservedSpec(_Section):
    file: str | None = None
    theta: Point = None

    @model_validator(mode="after")
    def _one_source(self) -> ObservedSpec:
        if (self.file is None) == (self.theta is None):
            raise ValueError("must be {file: events.h5} or, with the built-in simulator, {theta: point} (pseudo-data)")
        return self


class InferenceSpec(_Section):
    luminosity: Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)] = 1000.0
    theta_ref: Point = None
    histograms: list[Histogram] = []
    n_bins: Annotated[int, Field(strict=True, ge=1)] = 20
    grid: GridSpec = GridSpec()
    limits: Annotated[bool, Field(strict=True)] = True
    cl: list[Annotated[float, Field(strict=True, gt=0, lt=1)]] = [0.68, 0.95]
    observed: ObservedSpec | None = None


class PlotsSpec(_Section):
    enabled: Annotated[bool, Field(strict=True)] = True
    formats: list[Literal["png", "pdf", "svg"]] = ["png"]


class AnalysisConfig(_Section):
    """The whole analysis YAML (see docs/cli.md for the meaning of each field)."""

    output: str = "skminer-output"
    seed: Annotated[int, Field(strict=True, ge=0)] = 0
    parameters: Annotated[list[ParameterSpec], Field(min_length=1)] | None = None
    benchmarks: dict[Name, Values] = {}
    morphing: MorphingSpec = MorphingSpec()
    simulation: SimulationSpec = SimulationSpec()
    augmentation: AugmentationSpec = AugmentationSpec()
    training: TrainingSpec = TrainingSpec()
    inference: InferenceSpec = InferenceSpec()
    plots: PlotsSpec = PlotsSpec()
