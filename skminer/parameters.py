"""Theory parameter space: parameters of interest, benchmarks and nuisance parameters."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = ["Parameter", "NuisanceParameter", "ParameterSpace"]

NUISANCE_KINDS = ("scale", "pdf", "norm")


@dataclass(frozen=True)
class Parameter:
    """A theory parameter of interest.

    Parameters
    ----------
    name : str
        Unique name, e.g. ``"CWL2"``.
    lha_block, lha_id : str or None, int or None
        Location of the parameter in the param card (LHA block name and id).
    max_power : int
        Highest power with which the parameter appears in the squared matrix element (2 for one
        dimension-six insertion in the amplitude).
    range : tuple of float
        Range of interest ``(low, high)``, used for basis optimisation, priors and plots.
    """

    name: str
    lha_block: str | None = None
    lha_id: int | None = None
    max_power: int = 2
    range: tuple[float, float] = (-1.0, 1.0)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"parameter name must be a non-empty string, got {self.name!r}")
        if int(self.max_power) != self.max_power or self.max_power < 0:
            raise ValueError(f"parameter {self.name!r}: max_power must be a non-negative integer, "
                             f"got {self.max_power!r}")
        lo, hi = (float(v) for v in self.range)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"parameter {self.name!r}: range must be finite with low < high, got {self.range!r}")
        object.__setattr__(self, "range", (lo, hi))
        object.__setattr__(self, "max_power", int(self.max_power))
        if self.lha_id is not None:
            object.__setattr__(self, "lha_id", int(self.lha_id))


@dataclass(frozen=True)
class NuisanceParameter:
    """A nuisance parameter with a standard-normal constraint.

    Parameters
    ----------
    name : str
        Unique name.
    kind : {"scale", "pdf", "norm"}
        Source of the systematic: scale variation, PDF eigenvector, or overall normalisation.
    up, down : str or None
        Names of the weight variations that correspond to ``nu = +1`` and ``nu = -1``. A PDF eigenvector
        only has ``up``. For ``"norm"``, ``up`` holds the relative uncertainty as a string-free float via
        :attr:`size`.
    size : float or None
        Relative size of a normalisation uncertainty (``kind="norm"``).
    """

    name: str
    kind: str = "scale"
    up: str | None = None
    down: str | None = None
    size: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"nuisance parameter name must be a non-empty string, got {self.name!r}")
        if self.kind not in NUISANCE_KINDS:
            raise ValueError(f"nuisance parameter {self.name!r}: kind must be one of {NUISANCE_KINDS}, "
                             f"got {self.kind!r}")


@dataclass
class ParameterSpace:
    """Parameters of interest, named benchmarks (parameter points) and nuisance parameters.

    Examples
    --------
    >>> space = ParameterSpace()
    >>> space.add_parameter("CWL2", lha_block="dim6", lha_id=2, range=(-20, 20))  # doctest: +ELLIPSIS
    ParameterSpace(...)
    >>> space.add_benchmark("sm", {"CWL2": 0.0}).benchmark("sm")
    array([0.])
    """

    parameters: list[Parameter] = field(default_factory=list)
    benchmarks: dict[str, np.ndarray] = field(default_factory=dict)
    nuisance_parameters: list[NuisanceParameter] = field(default_factory=list)

    # -- building -------------------------------------------------------------------------------------
    def add_parameter(
        self,
        name: str,
        lha_block: str | None = None,
        lha_id: int | None = None,
        max_power: int = 2,
        range: tuple[float, float] = (-1.0, 1.0),  # noqa: A002 - mirrors the Parameter field
    ) -> ParameterSpace:
        """Add a parameter of interest; returns ``self`` for chaining."""
        if name in self.parameter_names:
            raise ValueError(f"parameter {name!r} already exists")
        if self.benchmarks:
            raise ValueError("add all parameters before adding benchmarks")
        self.parameters.append(Parameter(name, lha_block, lha_id, max_power, tuple(range)))
        return self

    def add_benchmark(self, name: str, values: Mapping[str, float] | Sequence[float] | np.ndarray,
                      ) -> ParameterSpace:
        """Add a named parameter point.

        Parameters
        ----------
        name : str
            Benchmark name (unique).
        values : mapping or sequence of float
            Either ``{parameter_name: value}`` (missing parameters default to 0) or a sequence in the order of
            :attr:`parameter_names`.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"benchmark name must be a non-empty string, got {name!r}")
        if name in self.benchmarks:
            raise ValueError(f"benchmark {name!r} already exists")
        if not self.parameters:
            raise ValueError("add parameters before benchmarks")
        if isinstance(values, Mapping):
            unknown = set(values) - set(self.parameter_names)
            if unknown:
                raise ValueError(f"benchmark {name!r}: unknown parameters {sorted(unknown)}; "
                                 f"known: {self.parameter_names}")
            point = np.array([float(values.get(p, 0.0)) for p in self.parameter_names], dtype=np.float64)
        else:
            point = np.asarray(values, dtype=np.float64).reshape(-1)
            if point.shape != (self.n_parameters,):
                raise ValueError(f"benchmark {name!r}: expected {self.n_parameters} values "
                                 f"({self.parameter_names}), got {point.size}")
        if not np.all(np.isfinite(point)):
            raise ValueError(f"benchmark {name!r}: values must be finite, got {point}")
        self.benchmarks[name] = point
        return self

    def add_nuisance(self, name: str, kind: str = "scale", up: str | None = None, down: str | None = None,
                     size: float | None = None) -> ParameterSpace:
        """Add a nuisance parameter (see :class:`NuisanceParameter`); returns ``self``."""
        if name in self.nuisance_names or name in self.parameter_names:
            raise ValueError(f"nuisance parameter {name!r} already exists")
        self.nuisance_parameters.append(NuisanceParameter(name, kind, up, down, size))
        return self

    # -- views ----------------------------------------------------------------------------------------
    @property
    def parameter_names(self) -> list[str]:
        """Names of the parameters of interest, in order."""
        return [p.name for p in self.parameters]

    @property
    def n_parameters(self) -> int:
        """Number of parameters of interest."""
        return len(self.parameters)

    @property
    def benchmark_names(self) -> list[str]:
        """Benchmark names in insertion order."""
        return list(self.benchmarks)

    @property
    def n_benchmarks(self) -> int:
        """Number of benchmarks."""
        return len(self.benchmarks)

    @property
    def benchmark_values(self) -> np.ndarray:
        """Benchmark points, shape ``(n_benchmarks, n_parameters)``."""
        if not self.benchmarks:
            return np.zeros((0, self.n_parameters))
        return np.stack(list(self.benchmarks.values()))

    def benchmark(self, name: str) -> np.ndarray:
        """The parameter point of benchmark ``name``."""
        try:
            return self.benchmarks[name].copy()
        except KeyError:
            raise KeyError(f"unknown benchmark {name!r}; known: {self.benchmark_names}") from None

    def benchmark_index(self, name: str) -> int:
        """Position of benchmark ``name`` in :attr:`benchmark_names`."""
        try:
            return self.benchmark_names.index(name)
        except ValueError:
            raise KeyError(f"unknown benchmark {name!r}; known: {self.benchmark_names}") from None

    @property
    def nuisance_names(self) -> list[str]:
        """Names of the nuisance parameters."""
        return [n.name for n in self.nuisance_parameters]

    @property
    def n_nuisance(self) -> int:
        """Number of nuisance parameters."""
        return len(self.nuisance_parameters)

    @property
    def ranges(self) -> np.ndarray:
        """Parameter ranges, shape ``(n_parameters, 2)``."""
        return np.array([p.range for p in self.parameters], dtype=np.float64).reshape(-1, 2)

    @property
    def max_powers(self) -> np.ndarray:
        """Maximal powers per parameter."""
        return np.array([p.max_power for p in self.parameters], dtype=int)

    def as_theta(self, theta: Any) -> np.ndarray:
        """Convert a benchmark name, mapping or array to a float64 array ``(n_theta, n_parameters)``."""
        if isinstance(theta, str):
            return self.benchmark(theta)[None, :]
        if isinstance(theta, Mapping):
            unknown = set(theta) - set(self.parameter_names)
            if unknown:
                raise ValueError(f"unknown parameters {sorted(unknown)}; known: {self.parameter_names}")
            return np.array([[float(theta.get(p, 0.0)) for p in self.parameter_names]])
        arr = np.asarray(theta, dtype=np.float64)
        if arr.ndim == 1 and arr.shape[0] == self.n_parameters:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self.n_parameters:
            raise ValueError(f"theta must have shape (n_theta, {self.n_parameters}), got {arr.shape}")
        return arr

    # -- serialisation --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description."""
        return {
            "parameters": [asdict(p) for p in self.parameters],
            "benchmarks": {k: v.tolist() for k, v in self.benchmarks.items()},
            "nuisance_parameters": [asdict(n) for n in self.nuisance_parameters],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ParameterSpace:
        """Inverse of :meth:`to_dict`."""
        try:
            space = cls()
            for p in d["parameters"]:
                space.add_parameter(p["name"], p.get("lha_block"), p.get("lha_id"), p.get("max_power", 2),
                                    tuple(p.get("range", (-1.0, 1.0))))
            for name, values in d.get("benchmarks", {}).items():
                space.add_benchmark(name, values)
            for n in d.get("nuisance_parameters", []):
                space.add_nuisance(n["name"], n.get("kind", "scale"), n.get("up"), n.get("down"), n.get("size"))
        except KeyError as err:
            raise ValueError(f"parameter space description lacks field {err}") from None
        return space

    def copy(self) -> ParameterSpace:
        """Deep copy."""
        return ParameterSpace.from_dict(self.to_dict())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ParameterSpace):
            return NotImplemented
        return (self.parameters == other.parameters and self.nuisance_parameters == other.nuisance_parameters
                and self.benchmark_names == other.benchmark_names
                and np.array_equal(self.benchmark_values, other.benchmark_values))

    def __repr__(self) -> str:
        return (f"ParameterSpace(parameters={self.parameter_names}, benchmarks={self.benchmark_names}, "
                f"nuisance={self.nuisance_names})")
