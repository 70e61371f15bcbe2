"""Analysis configuration: loading and validating the YAML file that drives ``skminer run``.

Every error names the offending field with its dotted path (``training.method``) and the file.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

__all__ = ["ConfigError", "load_config", "validate_config", "DEFAULTS", "RATIO_METHODS", "FLOW_METHODS",
           "SCORE_METHODS", "METHODS", "SIMULATORS", "READER_KEYS"]

RATIO_METHODS = ("carl", "rolr", "alice", "cascal", "rascal", "alices")
FLOW_METHODS = ("nde", "scandal")
SCORE_METHODS = ("sally", "sallino")
METHODS = SCORE_METHODS + RATIO_METHODS + FLOW_METHODS
SIMULATORS = ("toy", "lhe", "delphes", "hepmc")
_READER_COMMON = {"files", "observables", "cuts", "sampling_benchmark", "morphing_basis", "weight_ids", "systematics"}
#: Keys of ``simulation.<lhe|delphes>.systematics`` (arguments of ``Systematics.from_lhe``).
SYSTEMATICS_KEYS = {"scale", "pdf", "max_pdf_members", "seven_point"}
#: Keys of ``simulation.lhe``, ``simulation.delphes`` and ``simulation.hepmc`` (``objects``: jet clustering,
#: isolation and b-tagging settings, see ``skminer.simulation.ObjectDefinitions``).
READER_KEYS = {"lhe": _READER_COMMON, "delphes": _READER_COMMON | {"lhe_files", "weight_names"},
               "hepmc": _READER_COMMON | {"lhe_files", "weight_names", "objects"}}

DEFAULTS: dict[str, Any] = {
    "output": "skminer-output",
    "seed": 0,
    "parameters": None,
    "benchmarks": {},
    "morphing": {"max_overall_power": 2},
    "simulation": {"simulator": "toy", "n_events": 200_000, "toy": {}, "lhe": None, "delphes": None, "hepmc": None},
    "augmentation": {"n_samples": 100_000, "test_fraction": 0.3, "theta_ref": None,
                     "prior": {"kind": "uniform", "n_thetas": 200}},
    "training": {"method": "sally", "params": {}, "n_ensemble": 1},
    "inference": {"luminosity": 1000.0, "theta_ref": None, "histograms": [], "n_bins": 20,
                  "grid": {"n_points": 21}, "limits": True, "cl": [0.68, 0.95], "observed": None},
    "plots": {"enabled": True, "formats": ["png"]},
}


class ConfigError(ValueError):
    """A problem with an analysis configuration; the message names the field and the file."""


def _merge(defaults: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(defaults))
    for key, value in given.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


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
        When the file is missing, is not valid YAML, or a field is wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: configuration file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if raw is None:
        raw = {}
    return validate_config(raw, source=str(path), base_dir=path.parent)


def _fail(source: str, field: str, message: str) -> ConfigError:
    return ConfigError(f"{source}: field '{field}': {message}")


def validate_config(raw: Mapping[str, Any], source: str = "<config>", base_dir: Path | None = None,
                    ) -> dict[str, Any]:
    """Fill defaults into ``raw`` and check every field; see :func:`load_config`."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: the top level must be a mapping, got {type(raw).__name__}")
    unknown = set(raw) - set(DEFAULTS)
    if unknown:
        raise ConfigError(f"{source}: unknown top-level fields {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    cfg = _merge(DEFAULTS, raw)
    base_dir = Path(".") if base_dir is None else base_dir

    out = Path(str(cfg["output"]))
    cfg["output"] = str(out if out.is_absolute() else base_dir / out)
    if not isinstance(cfg["seed"], int):
        raise _fail(source, "seed", f"must be an integer, got {cfg['seed']!r}")

    sim = cfg["simulation"]
    if sim["simulator"] not in SIMULATORS:
        raise _fail(source, "simulation.simulator", f"must be one of {list(SIMULATORS)}, got {sim['simulator']!r}")
    if sim["simulator"] in ("lhe", "delphes", "hepmc"):
        kind = sim["simulator"]
        section = sim.get(kind)
        if not isinstance(section, Mapping) or not section.get("files"):
            raise _fail(source, f"simulation.{kind}.files", f"a list of files is required for simulator '{kind}'")
        unknown = set(section) - READER_KEYS[kind]
        if unknown:
            raise _fail(source, f"simulation.{kind}",
                        f"unknown keys {sorted(unknown)}; known: {sorted(READER_KEYS[kind])}")
        for key in ("files", "lhe_files"):
            if section.get(key) is None:
                continue
            if not isinstance(section[key], list):
                raise _fail(source, f"simulation.{kind}.{key}", "must be a list of file paths")
            files = [Path(f) if Path(f).is_absolute() else base_dir / f for f in section[key]]
            for f in files:
                if not f.is_file():
                    raise _fail(source, f"simulation.{kind}.{key}", f"file not found: {f}")
            section[key] = [str(f) for f in files]
        if section.get("lhe_files") is not None and len(section["lhe_files"]) != len(section["files"]):
            raise _fail(source, f"simulation.{kind}.lhe_files", f"needs one LHE file per {kind} file")
        syst = section.get("systematics")
        if syst is not None:
            if not isinstance(syst, Mapping) or set(syst) - SYSTEMATICS_KEYS:
                raise _fail(source, f"simulation.{kind}.systematics",
                            f"must be a mapping with keys from {sorted(SYSTEMATICS_KEYS)}, got {syst!r}")
            if kind in ("delphes", "hepmc") and not section.get("lhe_files"):
                raise _fail(source, f"simulation.{kind}.systematics", "needs lhe_files (the variation weight names)")
        if kind == "hepmc":
            from .simulation.jets import ObjectDefinitions

            try:
                ObjectDefinitions.from_mapping(section.get("objects"), "objects")
            except (TypeError, ValueError) as err:
                raise _fail(source, f"simulation.{kind}.objects", str(err)) from None
        if not isinstance(section.get("observables"), Mapping) or not section["observables"]:
            raise _fail(source, f"simulation.{kind}.observables", "a mapping name -> expression is required")
        if cfg["parameters"] is None:
            raise _fail(source, "parameters", f"required for simulator '{kind}'")
    elif not isinstance(sim["n_events"], int) or sim["n_events"] < 100:
        raise _fail(source, "simulation.n_events", f"must be an integer >= 100, got {sim['n_events']!r}")

    if cfg["parameters"] is not None:
        if not isinstance(cfg["parameters"], list) or not cfg["parameters"]:
            raise _fail(source, "parameters", "must be a non-empty list of {name, lha_block, lha_id, ...}")
        for i, p in enumerate(cfg["parameters"]):
            if not isinstance(p, Mapping) or "name" not in p:
                raise _fail(source, f"parameters[{i}]", "each parameter needs at least a 'name'")
            extra = set(p) - {"name", "lha_block", "lha_id", "max_power", "range"}
            if extra:
                raise _fail(source, f"parameters[{i}]", f"unknown keys {sorted(extra)}")
    if not isinstance(cfg["benchmarks"], Mapping):
        raise _fail(source, "benchmarks", "must be a mapping name -> {parameter: value}")

    aug = cfg["augmentation"]
    for key in ("n_samples",):
        if not isinstance(aug[key], int) or aug[key] < 10:
            raise _fail(source, f"augmentation.{key}", f"must be an integer >= 10, got {aug[key]!r}")
    if not (isinstance(aug["test_fraction"], (int, float)) and 0 < aug["test_fraction"] < 1):
        raise _fail(source, "augmentation.test_fraction", f"must be in (0, 1), got {aug['test_fraction']!r}")
    if aug["prior"].get("kind") not in ("uniform", "benchmarks", "gaussian"):
        raise _fail(source, "augmentation.prior.kind",
                    f"must be 'uniform', 'benchmarks' or 'gaussian', got {aug['prior'].get('kind')!r}")

    tr = cfg["training"]
    if tr["method"] not in METHODS:
        raise _fail(source, "training.method", f"must be one of {list(METHODS)}, got {tr['method']!r}")
    if not isinstance(tr["params"], Mapping):
        raise _fail(source, "training.params", "must be a mapping of estimator parameters")
    if not isinstance(tr["n_ensemble"], int) or tr["n_ensemble"] < 1:
        raise _fail(source, "training.n_ensemble", f"must be a positive integer, got {tr['n_ensemble']!r}")

    inf = cfg["inference"]
    if not isinstance(inf["luminosity"], (int, float)) or inf["luminosity"] <= 0:
        raise _fail(source, "inference.luminosity", f"must be a positive number (pb^-1), got {inf['luminosity']!r}")
    if not isinstance(inf["histograms"], list) or not all(
            isinstance(h, str) or (isinstance(h, list) and len(h) == 2 and all(isinstance(o, str) for o in h))
            for h in inf["histograms"]):
        raise _fail(source, "inference.histograms",
                    "must be a list of observable names or [name, name] pairs (two-dimensional histograms)")
    if not isinstance(inf["grid"].get("n_points"), int) or inf["grid"]["n_points"] < 3:
        raise _fail(source, "inference.grid.n_points", "must be an integer >= 3")
    observed = inf["observed"]
    if observed is not None:
        if not isinstance(observed, Mapping) or len(observed) != 1 or not set(observed) <= {"file", "theta"}:
            raise _fail(source, "inference.observed",
                        "must be {file: events.h5} or, with the built-in simulator, {theta: point} (pseudo-data)")
        if "file" in observed:
            f = Path(str(observed["file"]))
            f = f if f.is_absolute() else base_dir / f
            if not f.is_file():
                raise _fail(source, "inference.observed.file", f"file not found: {f}")
            observed["file"] = str(f)
        elif sim["simulator"] != "toy":
            raise _fail(source, "inference.observed.theta", "pseudo-data need the built-in simulator ('toy')")
        if not inf["limits"]:
            raise _fail(source, "inference.observed", "observed limits need inference.limits: true")
    for c in inf["cl"]:
        if not (isinstance(c, float) and 0 < c < 1):
            raise _fail(source, "inference.cl", f"confidence levels must be floats in (0, 1), got {c!r}")
    if not isinstance(cfg["plots"]["formats"], list) or not set(cfg["plots"]["formats"]) <= {"png", "pdf", "svg"}:
        raise _fail(source, "plots.formats", "must be a list drawn from ['png', 'pdf', 'svg']")
    return cfg
