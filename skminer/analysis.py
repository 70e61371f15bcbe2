"""A whole analysis from a configuration: setup, simulate, augment, train, infer, plot.

Each stage writes its outputs into the output folder and records a key (a hash of its configuration, of its
input files and of the keys of the stages before it) in ``stages.json``. A later run reuses a stage whose key
did not change and whose outputs still exist, so an interrupted or edited analysis resumes where it must.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ._atomic import atomic_write, remove_stale_temporaries
from ._run_folder import changed_outputs, file_sha256, fingerprint, run_lock
from .events import EventSet
from .methods import METHODS, capabilities_of, fit_arguments, sampler_arguments
from .morphing import Morpher
from .parameters import ParameterSpace

__all__ = ["Analysis", "describe_warning", "write_json_atomic"]

logger = logging.getLogger(__name__)

STAGES = ("simulate", "augment", "train", "infer", "plot")


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` atomically (see :func:`skminer._atomic.atomic_write`)."""
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=_json_default))


def _save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    with atomic_write(path, suffix=".npz") as tmp:
        np.savez(tmp, **{k: v for k, v in arrays.items() if v is not None})


@contextmanager
def _recording_stage_warnings(stage: str, sink: list[dict[str, str]]) -> Iterator[None]:
    """Append every warning shown while a stage runs to ``sink`` as ``{"stage", "category", "message"}`` (once
    each), and show it as before (console, or the caller's ``warnings.catch_warnings``)."""
    with warnings.catch_warnings():  # restores showwarning on exit
        show = warnings.showwarning

        def record(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None,
                   line: str | None = None) -> None:
            entry = {"stage": stage, "category": category.__name__, "message": str(message)}
            if entry not in sink:
                sink.append(entry)
            show(message, category, filename, lineno, file, line)

        warnings.showwarning = record
        yield


def describe_warning(entry: dict[str, str]) -> str:
    """One line for a warning recorded during a stage: ``stage <stage>: <category>: <message>``."""
    return f"stage {entry['stage']}: {entry['category']}: {entry['message']}"


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


class Analysis:
    """Run the stages of an analysis described by a validated configuration (see :mod:`skminer.config`).

    Parameters
    ----------
    config : dict
        Output of :func:`skminer.config.load_config` or :func:`skminer.config.validate_config`.
    progress : bool
        Show progress bars.
    """

    def __init__(self, config: dict[str, Any], progress: bool = True) -> None:
        self.config = config
        self.progress = progress
        self.out = Path(config["output"])
        self.results: dict[str, Any] = {}
        #: warnings of each stage (this run's, or those recorded when a reused stage ran), in stage order
        self._stage_warnings: dict[str, list[dict[str, str]]] = {}

    # -- stage bookkeeping ----------------------------------------------------------------------------
    @property
    def _state_path(self) -> Path:
        return self.out / "stages.json"

    def _load_state(self) -> dict[str, Any]:
        if self._state_path.is_file():
            try:
                return json.loads(self._state_path.read_text())
            except json.JSONDecodeError:
                logger.warning("%s is corrupt; all stages will run again", self._state_path)
        return {}

    def _key(self, stage: str, previous: str) -> str:
        from . import __version__

        cfg = self.config
        parts: dict[str, Any] = {"version": __version__, "previous": previous, "seed": cfg["seed"],
                                 "parameters": cfg["parameters"], "benchmarks": cfg["benchmarks"],
                                 "morphing": cfg["morphing"]}
        if stage == "simulate":
            parts["simulation"] = cfg["simulation"]
            kind = cfg["simulation"]["simulator"]
            if kind in ("lhe", "delphes", "hepmc"):
                section = cfg["simulation"][kind]
                parts["files"] = [file_sha256(f) for f in section["files"] + (section.get("lhe_files") or [])]
        elif stage == "augment":
            parts["augmentation"] = cfg["augmentation"]
            parts["method"] = cfg["training"]["method"]
        elif stage == "train":
            parts["training"] = cfg["training"]
        elif stage == "infer":
            parts["inference"] = cfg["inference"]
            observed = cfg["inference"].get("observed") or {}
            if "file" in observed:  # new data at the same path must rerun the observed limits
                parts["observed_file"] = file_sha256(observed["file"])
        elif stage == "plot":
            parts["plots"] = cfg["plots"]
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()

    def run(self, force: bool = False, stages: tuple[str, ...] = STAGES) -> dict[str, Any]:
        """Run the analysis; returns a summary dict (also written to ``summary.json``).

        One run at a time per output folder: the folder is locked for the run (a second run is refused with a
        message naming the first), temporaries of interrupted writes are removed, and a stage is reused only if
        its outputs still have the fingerprints recorded when it ran. A read-only folder whose stages are all up
        to date is used read-only (nothing is written).

        Parameters
        ----------
        force : bool
            Run every stage even when its outputs are up to date.
        stages : tuple of str
            Stop after the last stage listed (stages always run in order).

        Raises
        ------
        skminer._run_folder.FolderInUseError
            Another process is running an analysis in the output folder.
        PermissionError
            The output folder cannot be written and a stage needs to run.
        """
        with run_lock(self.out) as writable:
            if writable:
                remove_stale_temporaries(self.out)
            return self._run_stages(force, stages, writable)

    def _run_stages(self, force: bool, stages: tuple[str, ...], writable: bool) -> dict[str, Any]:
        state = self._load_state()
        previous = ""
        last = max(STAGES.index(s) for s in stages)
        runners: dict[str, Callable[[], list[str]]] = {
            "simulate": self._simulate, "augment": self._augment, "train": self._train,
            "infer": self._infer, "plot": self._plot,
        }
        summary: dict[str, Any] = {"stages": {}}
        bar = tqdm(STAGES[: last + 1], desc="analysis", unit="stage", disable=not self.progress)
        for stage in bar:
            bar.set_postfix_str(stage)
            key = self._key(stage, previous)
            entry = state.get(stage, {})
            changed = self._changed_outputs(stage, entry)
            if stage == "plot" and not self.config["plots"]["enabled"]:
                summary["stages"][stage] = "off"  # plots.enabled: false
                continue
            if not force and entry.get("key") == key and not changed:
                logger.info("stage %s: up to date, reusing %s", stage, entry["outputs"])
                summary["stages"][stage] = "reused"
                self._stage_warnings[stage] = list(entry.get("warnings", []))  # still true of its outputs
            elif not writable:
                raise PermissionError(f"{self.out} is not writable, and stage {stage} needs to run "
                                      f"({'--force' if force else 'its configuration or outputs changed'}); "
                                      "give write access or choose another output folder")
            else:
                logger.info("stage %s: running", stage)
                self._stage_warnings[stage] = raised = []
                with _recording_stage_warnings(stage, raised):
                    outputs = runners[stage]()
                state[stage] = {"key": key, "outputs": outputs, "fingerprints": fingerprint(self.out, outputs),
                                "warnings": raised}
                write_json_atomic(self._state_path, state)
                summary["stages"][stage] = "ran"
                entry = state[stage]
            # the next stage's key covers this stage's output content, so a replaced output reruns what follows
            contents = sorted(fp["sha256"] for fp in entry.get("fingerprints", {}).values())
            previous = hashlib.sha256(json.dumps([key, contents]).encode()).hexdigest()
        if (self.out / "results.json").is_file():
            summary["results"] = json.loads((self.out / "results.json").read_text())
        summary["warnings"] = self._warnings_so_far()
        if writable:
            write_json_atomic(self.out / "summary.json", summary)
        else:
            logger.warning("%s is read-only: every stage is up to date; summary.json was not rewritten", self.out)
        return summary

    def _warnings_so_far(self) -> list[dict[str, str]]:
        """The warnings of the stages run or reused so far (the running stage's up to now), in stage order."""
        return [entry for stage in STAGES for entry in self._stage_warnings.get(stage, [])]

    def _changed_outputs(self, stage: str, entry: dict[str, Any]) -> list[str] | None:
        """Outputs of a recorded stage that are missing or differ from their fingerprints (None: no record)."""
        if not entry:
            return None
        if "fingerprints" not in entry:  # recorded before fingerprints existed: existence only
            return [o for o in entry.get("outputs", []) if not (self.out / o).exists()]
        changed = changed_outputs(self.out, entry["fingerprints"])
        if changed:
            logger.warning("stage %s: %s changed since the stage wrote them (another run in this folder, or edited "
                           "by hand); the stage runs again", stage, changed)
        return changed

    # -- setup ----------------------------------------------------------------------------------------
    def _simulator(self):
        from .simulation.toy import ToySimulator

        return ToySimulator(**self.config["simulation"].get("toy", {}))

    def _space_and_morpher(self) -> tuple[ParameterSpace, Morpher]:
        cfg = self.config
        space = ParameterSpace()
        for p in cfg["parameters"]:
            space.add_parameter(p["name"], p.get("lha_block"), p.get("lha_id"), p.get("max_power", 2),
                                tuple(p.get("range", (-1.0, 1.0))))
        for name, values in cfg["benchmarks"].items():
            space.add_benchmark(name, values)
        morpher = Morpher.from_space(space, cfg["morphing"]["max_overall_power"], fit=cfg["morphing"]["fit"])
        return space, morpher

    def _theta_ref(self, space: ParameterSpace, value: Any) -> np.ndarray:
        """The configured reference point; by default the origin, except for parameters whose range excludes 0
        (a mass, a Yukawa coupling): those take the sampling benchmark's value (else the range's midpoint)."""
        if value is not None:
            return space.as_theta(value)[0]
        theta = np.zeros(space.n_parameters)
        ranges = space.ranges
        outside = (ranges[:, 0] > 0) | (ranges[:, 1] < 0)
        if outside.any():
            sim = self.config["simulation"]
            bench = (sim.get(sim["simulator"]) or {}).get("sampling_benchmark")
            fallback = space.benchmark(bench) if bench in space.benchmark_names else ranges.mean(axis=1)
            theta[outside] = fallback[outside]
            logger.info("theta_ref: parameters %s have ranges without 0; using %s (%s)",
                        [space.parameter_names[i] for i in np.flatnonzero(outside)], theta[outside].tolist(),
                        f"sampling benchmark {bench!r}" if bench in space.benchmark_names else "range midpoints")
        return theta

    # -- stages ---------------------------------------------------------------------------------------
    def _simulate(self) -> list[str]:
        cfg = self.config
        sim_cfg = cfg["simulation"]
        if sim_cfg["simulator"] == "toy":  # the configured benchmarks besides the toy's default basis
            from .simulation.toy import DEFAULT_BASIS

            benchmarks = {**DEFAULT_BASIS, **cfg["benchmarks"]} if cfg["benchmarks"] else None
            events = self._simulator().simulate(sim_cfg["n_events"], benchmarks=benchmarks, random_state=cfg["seed"])
        else:
            events = self._read_files(sim_cfg["simulator"], sim_cfg[sim_cfg["simulator"]])
        events = self._check_morphing(events)
        events.save(self.out / "events.h5")
        logger.info("simulated %d events with observables %s", len(events), events.observable_names)
        return ["events.h5"]

    def _check_morphing(self, events: EventSet) -> EventSet:
        """Morphing closure and positivity over the parameter ranges (:mod:`skminer.closure`), kept in metadata."""
        from .closure import check_morphing_closure, negative_cross_sections

        mcfg = self.config["morphing"]
        closure = check_morphing_closure(events, tolerance=mcfg["closure_tolerance"], gross=mcfg["closure_error"])
        negative = negative_cross_sections(events, tolerance=mcfg["closure_tolerance"])
        return events._replace(metadata={**events.metadata, "morphing_closure": closure.to_dict(),
                                         "negative_cross_sections": negative})

    def _read_files(self, kind: str, section: dict[str, Any]) -> EventSet:
        """Read LHE, Delphes or HepMC files with the configured observables, cuts and morphing basis."""
        from .simulation import DelphesReader, HepMCReader, LHEReader

        space, morpher = self._space_and_morpher()
        basis = section.get("morphing_basis")
        if basis is None and morpher.fit == "least_squares":  # fit the components to every benchmark
            basis = space.benchmark_names
        elif basis is None:  # the best-conditioned basis among the simulated benchmarks, keeping the sampling
            # benchmark and the reference points where the morphing is then exact
            keep = [section.get("sampling_benchmark"), self.config["augmentation"]["theta_ref"],
                    self.config["inference"]["theta_ref"]]
            required = [space.benchmark_index(b) for b in dict.fromkeys(keep)
                        if isinstance(b, str) and b in space.benchmarks]
            index = morpher.select_basis(space.benchmark_values, space.ranges, random_state=self.config["seed"],
                                         required=required)
            basis = [space.benchmark_names[i] for i in index]
        lhe_files = section.get("lhe_files") or [None] * len(section["files"])
        systematics = None
        if section.get("systematics") is not None:  # nuisance parameters from the scale / PDF weight groups
            from .simulation import Systematics

            source = section["files"][0] if kind == "lhe" else lhe_files[0]
            systematics = Systematics.from_lhe(source, **section["systematics"])
        reader_cls = {"lhe": LHEReader, "delphes": DelphesReader, "hepmc": HepMCReader}[kind]
        extra = {"objects": section.get("objects")} if kind == "hepmc" else {}
        if kind == "delphes":
            extra["missing_events"] = section.get("missing_events")
        reader = reader_cls(space, observables=section["observables"], cuts=list(section.get("cuts") or ()),
                            morpher=morpher, morphing_basis=basis, weight_ids=section.get("weight_ids"),
                            systematics=systematics, random_state=self.config["seed"], **extra)
        for f, lhe in zip(section["files"], lhe_files, strict=True):
            options = {"weight_names": section.get("weight_names")} if kind != "lhe" else {}
            if kind == "delphes":
                options["lhe_path"] = lhe
            reader.add_sample(f, sampling_benchmark=section.get("sampling_benchmark"), **options)
        return reader.read()

    def _augment(self) -> list[str]:
        from . import augmentation as aug

        cfg = self.config
        events = EventSet.load(self.out / "events.h5")
        acfg = cfg["augmentation"]
        train, test = events.train_test_split(test_fraction=acfg["test_fraction"], random_state=cfg["seed"])
        train.save(self.out / "events_train.h5")
        test.save(self.out / "events_test.h5")
        theta_ref = self._theta_ref(events.space, acfg["theta_ref"])
        # the method table says which sampler feeds the method and with what (x at theta_ref for score methods,
        # at prior points for ratio and density methods; nuisance scores for SALLY when the events have them)
        name, kwargs = sampler_arguments(cfg["training"]["method"], {
            "theta_ref": theta_ref, "prior": self._prior(events.space),
            "n_thetas": acfg["prior"].get("n_thetas", 200), "nuisance": events.n_nuisance > 0})
        sampler = getattr(aug, name)(**kwargs)
        sample = sampler.sample(train, n_samples=acfg["n_samples"], random_state=cfg["seed"] + 1)
        sample.save(self.out / "train_sample.npz")
        return ["events_train.h5", "events_test.h5", "train_sample.npz"]

    def _prior(self, space: ParameterSpace):
        from . import augmentation as aug

        prior = self.config["augmentation"]["prior"]
        if prior["kind"] == "uniform":
            return aug.UniformPrior(np.asarray(prior.get("ranges", space.ranges), dtype=float))
        if prior["kind"] == "gaussian":
            return aug.GaussianPrior(np.asarray(prior["mean"], float), np.asarray(prior["std"], float))
        return aug.BenchmarkPrior(space, prior.get("names", space.benchmark_names))

    def _make_estimator(self):
        from . import estimators as est

        tcfg = self.config["training"]
        params = dict(tcfg["params"])
        if "hidden_layer_sizes" in params:
            params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
        params.setdefault("random_state", self.config["seed"])
        params.setdefault("verbose", 1 if self.progress else 0)
        model = METHODS[tcfg["method"]].load()(**params)  # the estimators standardise inputs internally
        if tcfg["n_ensemble"] > 1:
            model = est.Ensemble(model, n_estimators=tcfg["n_ensemble"], random_state=self.config["seed"])
        return model

    def _train(self) -> list[str]:
        from .augmentation import TrainingSample
        from .estimators.persistence import save_estimator

        sample = TrainingSample.load(self.out / "train_sample.npz")
        model = self._make_estimator()
        args, kwargs = fit_arguments(self.config["training"]["method"], sample)
        model.fit(*args, **kwargs)
        save_estimator(model, self.out / "model.skm")
        return ["model.skm"]

    def _infer(self) -> list[str]:
        from .estimators.persistence import load_estimator
        from .inference import AsymptoticLimits, FisherInformation, theta_grid
        from .inference.intervals import describe_limits

        cfg = self.config
        icfg = cfg["inference"]
        test = EventSet.load(self.out / "events_test.h5")
        model = load_estimator(self.out / "model.skm", expected=self._make_estimator(),
                               expected_by="the configuration (training.method, training.n_ensemble)")
        space = test.space
        theta_ref = self._theta_ref(space, icfg["theta_ref"])
        lumi = float(icfg["luminosity"])
        fisher = FisherInformation(test)
        toy = self._simulator() if cfg["simulation"]["simulator"] == "toy" else None  # knows the exact answers
        infos: dict[str, np.ndarray] = {
            "rate": fisher.rate_information(theta_ref, lumi),
            "truth": fisher.truth_information(theta_ref, lumi),
        }
        for obs in icfg["histograms"] or test.observable_names[:1]:
            if isinstance(obs, str):
                infos[f"histogram {obs}"] = fisher.histogram_information(theta_ref, lumi, obs, bins=icfg["n_bins"])
            else:  # a pair of observables: two-dimensional histogram
                infos[f"histogram {obs[0]} vs {obs[1]}"] = fisher.histogram_information_2d(
                    theta_ref, lumi, obs[0], obs[1], bins1=icfg["n_bins"], bins2=icfg["n_bins"])
        row = METHODS[cfg["training"]["method"]]
        label = row.class_name
        capabilities = capabilities_of(model)
        arrays: dict[str, np.ndarray] = {}
        n_nu = test.n_nuisance
        # eq. 16 with the estimated score at theta_ref (a (theta, nu) score estimator contributes its theta part);
        # an ensemble also gives the information of every member (their spread)
        if hasattr(model, "predict_all"):
            members = fisher.full_information_members(theta_ref, model, lumi)
            arrays["fisher_members"] = members
            infos[f"full ({label})"] = members.mean(axis=0)
        else:
            infos[f"full ({label})"] = fisher.full_information(theta_ref, model, lumi)
        if n_nu:  # systematics: the same informations with the nuisance parameters profiled (N(0, 1) constraints)
            with_nu = {"truth": fisher.truth_information(theta_ref, lumi, include_nuisance=True)}
            first = (icfg["histograms"] or test.observable_names[:1])[0]
            if isinstance(first, str):
                with_nu[f"histogram {first}"] = fisher.histogram_information(
                    theta_ref, lumi, first, bins=icfg["n_bins"], include_nuisance=True)
            if row.nuisance_scores:
                with_nu[f"full ({label})"] = fisher.full_information(theta_ref, model, lumi, include_nuisance=True)
            for name, info in with_nu.items():
                infos[f"{name}, nuisance profiled"] = fisher.profile_nuisance(info)
        diagnostics = self._diagnostics(test, model, theta_ref, fisher)
        if toy is not None:
            infos["exact (toy)"] = toy.fisher_information(theta_ref, lumi, kind="full")
        results: dict[str, Any] = {"theta_ref": theta_ref, "luminosity": lumi,
                                   "fisher_information": {k: np.asarray(v) for k, v in infos.items()},
                                   "morphing_closure": test.metadata.get("morphing_closure"),
                                   "diagnostics": diagnostics,
                                   "negative_cross_sections": test.metadata.get("negative_cross_sections")}
        if icfg["limits"]:
            grid = theta_grid(space.ranges, icfg["grid"]["n_points"])
            limits = AsymptoticLimits(test, luminosity=lumi)
            hist_obs = icfg["histograms"][:1] or test.observable_names[:1]
            hist_obs = [hist_obs[0]] if isinstance(hist_obs[0], str) else list(hist_obs[0])
            modes = {f"histogram {hist_obs[0]}": {"mode": "histogram", "observables": hist_obs,
                                                   "bins": icfg["n_bins"]}}
            if "ratio" in capabilities:
                if row.needs_calibration:  # SALLINO: densities of t_hat . (theta - theta_ref) on the grid
                    points = np.unique(np.vstack([grid, theta_ref[None, :]]), axis=0)
                    model.calibrate(test.x, points, sample_weight=np.clip(test.weights_at(points), 0.0, None))
                modes[label] = {"mode": "ratio", "estimator": model, "theta_ref": theta_ref}
            else:  # a score estimator: histogram of the estimated score
                modes[label] = {"mode": "score", "estimator": model, "bins": icfg["n_bins"], "theta_ref": theta_ref}
            arrays["grid"] = grid
            results["limits"] = {}
            for name, kwargs in modes.items():
                res = limits.expected_limits(theta_true=theta_ref, grid=grid, **kwargs)
                if res.info.get("diagnostics"):  # ratio closure on the limit grid
                    diagnostics["ratio_on_limit_grid"] = res.info["diagnostics"]
                arrays[_pvalue_key(name)] = res.p_values
                results["limits"][name] = describe_limits(res, icfg["cl"], space.parameter_names)
            if toy is not None:  # the exact likelihood of the built-in simulator, for comparison
                weights = lumi * np.asarray(test.weights_at(theta_ref))
                res = _exact_toy_limits(toy, grid, lumi, test.x, weights)
                arrays[_pvalue_key("exact (toy)")] = res.p_values
                results["limits"]["exact (toy)"] = describe_limits(res, icfg["cl"], space.parameter_names)
            x_observed = self._observed_events(test, space, toy)
            if x_observed is not None:
                results["observed_limits"] = {"n_events": len(x_observed)}
                for name, kwargs in modes.items():
                    res = limits.observed_limits(x_observed, grid, binning_theta=theta_ref, **kwargs)
                    arrays[_pvalue_key(name, observed=True)] = res.p_values
                    results["observed_limits"][name] = describe_limits(res, icfg["cl"], space.parameter_names)
                if toy is not None:
                    res = _exact_toy_limits(toy, grid, lumi, x_observed, np.ones(len(x_observed)))
                    arrays[_pvalue_key("exact (toy)", observed=True)] = res.p_values
                    results["observed_limits"]["exact (toy)"] = describe_limits(res, icfg["cl"], space.parameter_names)
        # every warning of the stages up to here (training's validation split, divergence, extrapolation ...);
        # those of the plot stage, which runs after this file is written, are in summary.json
        raised = self._warnings_so_far()
        diagnostics["warnings"] = {"warnings": raised, "violations": [describe_warning(w) for w in raised]}
        write_json_atomic(self.out / "results.json", results)
        _save_npz_atomic(self.out / "results.npz", **arrays)
        self.results = results
        return ["results.json", "results.npz"]

    def _diagnostics(self, test: EventSet, model: Any, theta_ref: np.ndarray, fisher: Any) -> dict[str, Any]:
        """Sanity checks of the trained model (:mod:`skminer.inference.diagnostics`), for results.json."""
        from .inference.diagnostics import convergence_diagnostics, ratio_diagnostics

        method = self.config["training"]["method"]
        out: dict[str, Any] = {"score": getattr(fisher, "diagnostics_", None),
                               "convergence": convergence_diagnostics(model, label=method.upper())}
        from .methods import capabilities_of

        # E_ref[r_hat(x|theta0, theta_ref)] = 1; a ratio calibrated on these very events closes by construction
        if "ratio" in capabilities_of(model) and not METHODS[method].needs_calibration:
            space = test.space
            inside = [v for v in space.benchmark_values if np.all((v >= space.ranges[:, 0]) & (v <= space.ranges[:, 1]))
                      and not np.array_equal(v, theta_ref)]
            if inside:
                def log_ratio(x: np.ndarray, theta0: np.ndarray) -> np.ndarray:
                    return np.asarray(model.predict_log_ratio(x, theta0, theta_ref)).reshape(-1)

                out["ratio"] = ratio_diagnostics(log_ratio, test.x, test.weights_at, np.array(inside[:5]), theta_ref,
                                                 label=method.upper())
        return out

    def _observed_events(self, test: EventSet, space: ParameterSpace, toy: Any) -> np.ndarray | None:
        """Observed events: from an event file, or (built-in simulator) pseudo-data drawn at a given point."""
        obs = self.config["inference"]["observed"]
        if obs is None:
            return None
        if "file" in obs:
            data = EventSet.load(obs["file"])
            missing = [o for o in test.observable_names if o not in data.observable_names]
            if missing:
                raise ValueError(f"{obs['file']}: observed events lack the observables {missing}")
            w = np.asarray(data.weights, dtype=np.float64)
            if w.size and not np.allclose(w, w.flat[0], rtol=1e-6, atol=0.0):
                lo, hi = float(w.min()), float(w.max())
                raise ValueError(f"{obs['file']}: observed events must be unweighted, but their weights range from "
                                 f"{lo:.4g} to {hi:.4g}; observed limits count each row as one event, so a weighted "
                                 "(simulated) sample would give wrong limits: unweight it first, or for Asimov "
                                 "limits of a simulated point use expected limits")
            return data.x[:, [data.observable_names.index(o) for o in test.observable_names]]
        theta = space.as_theta(obs["theta"])[0]
        rng = np.random.default_rng(self.config["seed"] + 7)
        n = int(rng.poisson(float(self.config["inference"]["luminosity"]) * toy.cross_section(theta)))
        logger.info("pseudo-data: %d events drawn at theta=%s", n, theta.tolist())
        return toy.sample(n, theta, random_state=rng)

    def _plot(self) -> list[str]:
        from . import plotting

        cfg = self.config
        if not cfg["plots"]["enabled"]:
            return []
        results = json.loads((self.out / "results.json").read_text())
        arrays = dict(np.load(self.out / "results.npz"))
        test = EventSet.load(self.out / "events_test.h5")
        written: list[str] = []
        infos = {k: np.asarray(v) for k, v in results["fisher_information"].items()}
        theta_ref = np.asarray(results["theta_ref"])
        for fmt in cfg["plots"]["formats"]:
            name = f"fisher_contours.{fmt}"
            plotting.plot_fisher_contours(infos, theta_ref=theta_ref, parameter_names=test.space.parameter_names,
                                          path=self.out / name)
            written.append(name)
            if "fisher_members" in arrays:
                name = f"fisher_ensemble.{fmt}"
                plotting.plot_fisher_ensemble({"ensemble": arrays["fisher_members"]}, theta_ref=theta_ref,
                                              parameter_names=test.space.parameter_names, path=self.out / name)
                written.append(name)
            if test.morpher is not None:
                name = f"morphing_basis.{fmt}"
                plotting.plot_morphing_basis(test, path=self.out / name)
                written.append(name)
            name = f"observables.{fmt}"
            plotting.plot_distributions(test, thetas=_plot_thetas(test.space, theta_ref), path=self.out / name)
            written.append(name)
            for kind, observed in (("limits", False), ("observed_limits", True)):
                if kind not in results:
                    continue
                pv = {label: arrays[_pvalue_key(label, observed)] for label in results[kind] if label != "n_events"}
                name = f"pvalues{'_observed' if observed else ''}.{fmt}"
                plotting.plot_pvalues(arrays["grid"], pv, parameter_names=test.space.parameter_names,
                                      cls=cfg["inference"]["cl"], luminosity=results["luminosity"],
                                      observed=observed, path=self.out / name)
                written.append(name)
        return written


def _exact_toy_limits(toy: Any, grid: np.ndarray, luminosity: float, x: np.ndarray, counts: np.ndarray) -> Any:
    """Limits from the toy's exact extended likelihood for events ``x`` with multiplicities ``counts``.

    ``log L(theta) = sum_i c_i log p(x_i|theta) + N log(L sigma(theta)) - L sigma(theta)``, ``N = sum_i c_i``:
    Asimov data when ``x`` are weighted events and ``c = L w(theta_true)``, observed data with ``c = 1``.
    """
    from .inference import LimitResult

    kinematic = np.empty(len(grid))
    for i in range(0, len(grid), 64):  # (n_events, 64) blocks of the exact log likelihood
        kinematic[i:i + 64] = counts @ toy.log_likelihood(x, grid[i:i + 64])
    expected = luminosity * np.asarray(toy.cross_section(grid))
    return LimitResult.from_log_likelihood(grid, kinematic + counts.sum() * np.log(expected) - expected,
                                           mode="exact")


def _pvalue_key(label: str, observed: bool = False) -> str:
    """Name of a p-value map in results.npz."""
    return ("pvalues_observed_" if observed else "pvalues_") + label.replace(" ", "_")


def _plot_thetas(space: ParameterSpace, theta_ref: np.ndarray) -> np.ndarray:
    ranges = space.ranges
    pts = [theta_ref]
    for i in range(space.n_parameters):
        p = theta_ref.copy()
        p[i] = ranges[i, 1]
        pts.append(p)
    return np.array(pts)
