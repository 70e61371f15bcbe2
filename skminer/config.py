"""Analysis configuration: loading and validating the YAML file that drives ``skminer run``.

The whole file is checked before the first stage runs: its structure against one schema
(:mod:`skminer._config_schema`, unknown keys rejected at every depth, strict numbers, names as text), then
everything later stages would resolve -- parameter, benchmark and observable names, observable and cut
expressions, input files, the estimator's parameters. Every error names the file and the field with its dotted
path (``inference.luminosty``); all errors of a file are reported together.
"""

from __future__ import annotations

import copy
import difflib
import inspect
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ._config_schema import SIMULATORS, AnalysisConfig
from ._yaml import YamlInt, load_yaml
from .methods import METHODS as _METHOD_TABLE

__all__ = ["ConfigError", "load_config", "validate_config", "DEFAULTS", "METHODS", "SIMULATORS"]

#: Names accepted by ``training.method`` (the rows of :data:`skminer.methods.METHODS`).
METHODS = tuple(_METHOD_TABLE)

#: The configuration ``{}`` gives (every default filled in).
DEFAULTS: dict[str, Any] = AnalysisConfig().model_dump()


class ConfigError(ValueError):
    """A problem with an analysis configuration; the message names the field and the file."""


def load_config(path: str | Path) -> dict[str, Any]:
    """Read and validate a YAML analysis configuration.

    Parameters
    ----------
    path : str or Path
        The YAML file.

    Returns
    -------
    dict
        The configuration with defaults filled in; relative paths are resolved against the file's folder.

    Raises
    ------
    ConfigError
        When the file is missing, empty, is not valid YAML, expands to an alias bomb, or any field is wrong (all wrong
        fields are listed, each with the file name and its dotted path).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: configuration file not found")
    try:
        raw = load_yaml(path.read_text(), source=path)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if raw is None:  # an empty file (or only comments): running every default is never what was meant
        raise ConfigError(f"{path}: the configuration file is empty; write the analysis in it (`skminer demo "
                          "--write-config FILE` writes a complete example), or `{}` for every default")
    return validate_config(raw, source=str(path), base_dir=path.parent)


def validate_config(raw: Mapping[str, Any], source: str = "<config>", base_dir: Path | None = None,
                    ) -> dict[str, Any]:
    """Check every field of ``raw`` and fill in the defaults; see :func:`load_config`.

    Parameters
    ----------
    raw : mapping
        The configuration as read from YAML (or built in Python).
    source : str
        Name of the file (or other origin) for messages.
    base_dir : Path, optional
        Folder that relative paths are relative to (default: the current folder).

    Returns
    -------
    dict
        Plain Python types only (no YAML subclasses), defaults filled in, paths resolved.

    Raises
    ------
    ConfigError
        Naming ``source`` and the dotted path of every wrong field.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: the top level must be a mapping, got {type(raw).__name__}")
    try:
        model = AnalysisConfig.model_validate(dict(raw))
    except ValidationError as err:
        raise ConfigError("\n".join(f"{source}: field '{_dotted(e['loc'], e.get('input'))}': {_message(e)}"
                                    for e in err.errors())) from None
    cfg = _plain(model.model_dump())
    # keyword-argument sections keep only what was written, so that the callee's defaults apply
    for kind in ("lhe", "delphes", "hepmc"):
        section = getattr(model.simulation, kind)
        if section is not None and section.systematics is not None:
            cfg["simulation"][kind]["systematics"] = section.systematics.model_dump(exclude_unset=True)
    cfg["augmentation"]["prior"] = model.augmentation.prior.model_dump(exclude_none=True)
    if model.inference.observed is not None:  # {file: ...} or {theta: ...}
        cfg["inference"]["observed"] = _plain(model.inference.observed.model_dump(exclude_none=True))
    errors = _Resolver(cfg, Path(".") if base_dir is None else Path(base_dir)).check()
    if errors:
        raise ConfigError("\n".join(f"{source}: field '{field}': {msg}" for field, msg in errors))
    return cfg


# -- messages ---------------------------------------------------------------------------------------------
def _dotted(loc: tuple[Any, ...], key: Any = None) -> str:
    """``a.b[0].c`` from a pydantic location; a wrong mapping key (``key``) is shown as written in YAML."""
    out = ""
    for i, part in enumerate(loc):
        if part == "[key]":
            continue
        if i + 1 < len(loc) and loc[i + 1] == "[key]":
            part = key.source if isinstance(key, YamlInt) else str(key).lower() if isinstance(key, bool) else part
            out += f".{part}" if out else str(part)
        elif isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The schema model a location points into (for the list of known keys)."""
    model: type[BaseModel] | None = AnalysisConfig
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if model is not None else None
        if field is None:
            return None
        model = _find_model(field.annotation)
    return model


def _find_model(annotation: Any) -> type[BaseModel] | None:
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _find_model(arg)
        if found is not None:
            return found
    return None


def _unknown_key_message(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown key{hint}; known keys: {known}"


def _message(error: Mapping[str, Any]) -> str:
    loc = tuple(error["loc"])
    if error["type"] == "extra_forbidden":
        parent = _model_at(loc[:-1])
        return _unknown_key_message(str(loc[-1]), list(parent.model_fields) if parent else [])
    msg = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix):]
    if error["type"] in ("int_type", "float_type", "bool_type", "string_type", "literal_error", "dict_type",
                         "list_type", "tuple_type", "finite_number"):
        msg += f", got {error.get('input')!r}"
    return msg


def _plain(value: Any) -> Any:
    """Strip YAML-specific subclasses and tuples, recursively (the configuration is hashed and copied)."""
    if isinstance(value, Mapping):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, YamlInt):
        return int(value)
    return value


# -- checks across sections -------------------------------------------------------------------------------
def _estimator_class(method: str) -> type:
    return _METHOD_TABLE[method].load()


class _Resolver:
    """Checks that need more than one section: names used later resolve, files exist, expressions parse."""

    def __init__(self, cfg: dict[str, Any], base_dir: Path) -> None:
        self.cfg = cfg
        self.base_dir = base_dir
        self.errors: list[tuple[str, str]] = []

    def fail(self, field: str, message: str) -> None:
        self.errors.append((field, message))

    def check(self) -> list[tuple[str, str]]:
        cfg = self.cfg
        out = Path(cfg["output"])
        cfg["output"] = str(out if out.is_absolute() else self.base_dir / out)
        sim = cfg["simulation"]
        kind = sim["simulator"]
        for other in ("lhe", "delphes", "hepmc"):
            if other != kind and sim[other] is not None:
                self.fail(f"simulation.{other}", f"given, but simulation.simulator is '{kind}'")
        if kind == "toy":
            params, benchmarks, observables = self._toy()
        else:
            params, benchmarks, observables = self._reader(kind, sim[kind])
        if params is not None:
            self._benchmark_values(params)
            self._points(params, benchmarks)
            self._reference_points(params)
            self._observed_inside(params, kind)
        if observables is not None:
            for i, h in enumerate(cfg["inference"]["histograms"]):
                for name in [h] if isinstance(h, str) else h:
                    if name not in observables:
                        self.fail(f"inference.histograms[{i}]", f"unknown observable {name!r}; known: {observables}")
        self._inference(kind)
        self._training()
        return self.errors

    # sections ------------------------------------------------------------------------------------------
    def _toy(self) -> tuple[list[str] | None, list[str], list[str] | None]:
        from .simulation.toy import DEFAULT_BASIS, ToySimulator

        cfg = self.cfg
        if cfg["parameters"] is not None:
            self.fail("parameters", "the built-in simulator ('toy') defines its own parameters "
                      f"{list(ToySimulator.parameter_names)}; remove this field or use simulator 'lhe'/'delphes'")
        kwargs = cfg["simulation"]["toy"]
        known = sorted(ToySimulator().get_params())
        unknown = [k for k in kwargs if k not in known]
        for key in unknown:
            self.fail(f"simulation.toy.{key}", _unknown_key_message(str(key), known))
        if unknown:
            return list(ToySimulator.parameter_names), list(DEFAULT_BASIS), None
        try:
            toy = ToySimulator(**kwargs)
        except (TypeError, ValueError) as err:
            self.fail("simulation.toy", str(err))
            return list(ToySimulator.parameter_names), list(DEFAULT_BASIS), None
        clash = sorted(set(cfg["benchmarks"]) & set(DEFAULT_BASIS))
        if clash:
            self.fail("benchmarks", f"{clash} are benchmarks of the built-in simulator already; choose other names")
        return list(toy.parameter_names), list(DEFAULT_BASIS) + list(cfg["benchmarks"]), toy.observable_names

    def _reader(self, kind: str, section: dict[str, Any] | None,
                ) -> tuple[list[str] | None, list[str], list[str] | None]:
        cfg = self.cfg
        benchmarks = list(cfg["benchmarks"])
        if section is None:
            self.fail(f"simulation.{kind}.files", f"a list of files is required for simulator '{kind}'")
            self.fail(f"simulation.{kind}.observables", f"a mapping name -> expression is required for simulator "
                      f"'{kind}'")
            return None, benchmarks, None
        params = None
        if cfg["parameters"] is None:
            self.fail("parameters", f"required for simulator '{kind}'")
        else:
            params = [p["name"] for p in cfg["parameters"]]
            dup = sorted({p for p in params if params.count(p) > 1})
            if dup:
                self.fail("parameters", f"duplicate parameter names {dup}")
        overall = cfg["morphing"]["max_overall_power"]
        for i, p in enumerate(cfg["parameters"] or []):
            if p["max_power"] > overall:
                self.fail(f"parameters[{i}].max_power", f"{p['max_power']} exceeds morphing.max_overall_power = "
                          f"{overall}: those powers could never appear in the morphing; make them consistent")
        for key in ("files", "lhe_files"):
            if section.get(key) is not None:
                section[key] = self._files(f"simulation.{kind}.{key}", section[key])
        if section.get("lhe_files") is not None and len(section["lhe_files"]) != len(section["files"]):
            self.fail(f"simulation.{kind}.lhe_files", f"needs one LHE file per {kind} file")
        if kind != "lhe" and section.get("systematics") is not None and not section.get("lhe_files"):
            self.fail(f"simulation.{kind}.systematics", "needs lhe_files (the variation weight names)")
        if kind == "hepmc":  # jet clustering, isolation and b-tagging settings
            from .simulation.jets import ObjectDefinitions

            try:
                ObjectDefinitions.from_mapping(section.get("objects"), "objects")
            except (TypeError, ValueError) as err:
                self.fail(f"simulation.{kind}.objects", str(err))
        self._expressions(kind, section)
        if section["sampling_benchmark"] is not None and section["sampling_benchmark"] not in benchmarks:
            self.fail(f"simulation.{kind}.sampling_benchmark",
                      f"unknown benchmark {section['sampling_benchmark']!r}; known: {benchmarks}")
        basis = section["morphing_basis"]
        if basis is not None:
            for i, name in enumerate(basis):
                if name not in benchmarks:
                    self.fail(f"simulation.{kind}.morphing_basis[{i}]", f"unknown benchmark {name!r}; "
                              f"known: {benchmarks}")
            if len(set(basis)) != len(basis):
                self.fail(f"simulation.{kind}.morphing_basis", f"lists a benchmark twice: {basis}")
        for name in section["weight_ids"] or {}:
            if name not in benchmarks:
                self.fail(f"simulation.{kind}.weight_ids.{name}", f"unknown benchmark; known: {benchmarks}")
        return params, benchmarks, list(section["observables"])

    def _files(self, field: str, files: list[str]) -> list[str]:
        resolved = [Path(f) if Path(f).is_absolute() else self.base_dir / f for f in files]
        for f in resolved:
            if not f.is_file():
                self.fail(field, f"file not found: {f}")
        return [str(f) for f in resolved]

    def _expressions(self, kind: str, section: dict[str, Any]) -> None:
        from .simulation.observables import ExpressionError, parse_expression

        items = [(f"simulation.{kind}.observables.{name}", expr["expression"] if isinstance(expr, dict) else expr)
                 for name, expr in section["observables"].items()]
        items += [(f"simulation.{kind}.cuts[{i}]", expr) for i, expr in enumerate(section["cuts"])]
        for field, expr in items:
            try:
                parse_expression(expr)
            except (ExpressionError, TypeError) as err:
                self.fail(field, str(err))

    def _benchmark_values(self, params: list[str]) -> None:
        for name, values in self.cfg["benchmarks"].items():
            self._point(f"benchmarks.{name}", values, params, None)

    def _point(self, field: str, value: Any, params: list[str], benchmarks: list[str] | None) -> None:
        """Check a parameter point: a benchmark name, {parameter: value} or one value per parameter."""
        if value is None:
            return
        if isinstance(value, str):
            if benchmarks is not None and value not in benchmarks:
                self.fail(field, f"unknown benchmark {value!r}; known: {benchmarks}")
        elif isinstance(value, dict):
            unknown = [k for k in value if k not in params]
            if unknown:
                self.fail(field, f"unknown parameters {unknown}; known: {params}")
        elif len(value) != len(params):
            self.fail(field, f"needs one value per parameter {params}, got {len(value)}")

    def _points(self, params: list[str], benchmarks: list[str]) -> None:
        aug, inf = self.cfg["augmentation"], self.cfg["inference"]
        self._point("augmentation.theta_ref", aug["theta_ref"], params, benchmarks)
        self._point("inference.theta_ref", inf["theta_ref"], params, benchmarks)
        if inf["observed"] is not None:
            self._point("inference.observed.theta", inf["observed"].get("theta"), params, benchmarks)
        prior = aug["prior"]
        for key in ("ranges", "mean", "std"):
            if key in prior and len(prior[key]) != len(params):
                self.fail(f"augmentation.prior.{key}", f"needs one entry per parameter {params}, "
                          f"got {len(prior[key])}")
        for i, name in enumerate(prior.get("names", ())):
            if name not in benchmarks:
                self.fail(f"augmentation.prior.names[{i}]", f"unknown benchmark {name!r}; known: {benchmarks}")

    def _reference_points(self, params: list[str]) -> None:
        """Give an unset reference point its documented default, and refuse two different ones for a local-score
        method (SALLY, SALLINO), whose estimated score exists only at the point it was trained at."""
        aug, inf = self.cfg["augmentation"], self.cfg["inference"]
        method = _METHOD_TABLE.get(self.cfg["training"]["method"])
        local = method is not None and method.family == "score"
        if inf["theta_ref"] is None:  # docs/cli.md: "default as for augmentation.theta_ref"
            inf["theta_ref"] = copy.deepcopy(aug["theta_ref"])
        elif aug["theta_ref"] is None and local:  # the score is trained where it will be used
            aug["theta_ref"] = copy.deepcopy(inf["theta_ref"])
        if not local:
            return
        train, use = (self._point_values(p, params) for p in (aug["theta_ref"], inf["theta_ref"]))
        if train is not None and use is not None and train != use:
            at_use, at_train = (dict(zip(params, v, strict=True)) for v in (use, train))
            self.fail("inference.theta_ref",
                      f"{at_use} differs from augmentation.theta_ref {at_train}: "
                      f"{method.class_name} estimates the score only at the point it is trained at; set the two "
                      "fields to the same point (or leave inference.theta_ref unset)")

    def _observed_inside(self, params: list[str], kind: str) -> None:
        """Pseudo-data at a point outside the parameter ranges: the limits scan the ranges only, so their best fit
        would be a corner of the grid whatever the data say; refused."""
        observed = self.cfg["inference"]["observed"] or {}
        theta = self._point_values(observed.get("theta"), params)
        if theta is None:
            return
        if kind == "toy":
            from .simulation.toy import ToySimulator

            try:
                lo, hi = ToySimulator(**self.cfg["simulation"]["toy"]).range_of_parameters
            except (TypeError, ValueError):
                return  # reported as simulation.toy
            ranges = [(lo, hi)] * len(params)
        else:
            ranges = [tuple(p["range"]) for p in self.cfg["parameters"] or ()]
        outside = {name: (value, list(r)) for name, value, r in zip(params, theta, ranges, strict=False)
                   if not r[0] <= value <= r[1]}
        if outside:
            detail = ", ".join(f"{name} = {v:g} outside {r}" for name, (v, r) in outside.items())
            self.fail("inference.observed.theta", f"{detail}: the limits scan the parameter ranges only, so the "
                      "best fit would sit on the grid's edge; choose a point inside the ranges or widen them")

    def _point_values(self, value: Any, params: list[str]) -> tuple[float, ...] | None:
        """The values of a checked parameter point, or None when they are unknown here (a misspelt name)."""
        if isinstance(value, str):
            from .simulation.toy import DEFAULT_BASIS

            values = self.cfg["benchmarks"].get(value)
            if values is None and self.cfg["simulation"]["simulator"] == "toy":
                values = DEFAULT_BASIS.get(value)
            return None if values is None else self._point_values(values, params)
        if isinstance(value, Mapping):
            if set(value) - set(params):
                return None
            return tuple(float(value.get(p, 0.0)) for p in params)
        if value is None or len(value) != len(params):
            return None
        return tuple(float(v) for v in value)

    def _inference(self, kind: str) -> None:
        inf = self.cfg["inference"]
        observed = inf["observed"]
        if observed is None:
            return
        if "file" in observed:
            observed["file"] = self._files("inference.observed.file", [observed["file"]])[0]
        elif kind != "toy":
            self.fail("inference.observed.theta", "pseudo-data need the built-in simulator ('toy')")
        if not inf["limits"]:
            self.fail("inference.observed", "observed limits need inference.limits: true")

    def _training(self) -> None:
        tr = self.cfg["training"]
        if tr["method"] not in METHODS:
            close = difflib.get_close_matches(str(tr["method"]), METHODS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            self.fail("training.method", f"must be one of {list(METHODS)}, got {tr['method']!r}{hint}")
            return
        cls = _estimator_class(tr["method"])
        known = sorted(cls._get_param_names())
        params = dict(tr["params"])
        unknown = [k for k in params if k not in known]
        for key in unknown:
            self.fail(f"training.params.{key}",
                      f"not a parameter of {cls.__name__}: {_unknown_key_message(str(key), known)}")
        if unknown:
            return
        for name in getattr(cls, "_tuple_params", ()):
            if isinstance(params.get(name), list):
                params[name] = tuple(params[name])
        try:
            estimator = cls(**params)
            if getattr(cls, "_parameter_constraints", None):
                estimator._validate_params()
            for check in ("_validate_hyperparameters", "_check_params"):  # what the constraints cannot express
                if hasattr(estimator, check):
                    getattr(estimator, check)()
        except (TypeError, ValueError) as err:
            self.fail("training.params", f"{cls.__name__}: {err}")
