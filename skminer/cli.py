"""Command line: ``skminer run analysis.yaml``, ``skminer demo``, ``skminer info``, ``skminer export-pyhf``."""

from __future__ import annotations

import argparse
import copy
import errno
import logging
import os
import sys
from pathlib import Path

import numpy as np

from ._atomic import atomic_write
from ._run_folder import FolderInUseError
from .config import ConfigError, load_config, validate_config
from .methods import DEFAULT_METHOD, FAMILIES, METHODS

__all__ = ["main", "DEMO_CONFIG"]

DEMO_CONFIG = {
    "output": "skminer-demo",
    "seed": 1,
    "simulation": {"simulator": "toy", "n_events": 200_000},
    "augmentation": {"n_samples": 100_000, "test_fraction": 0.3},
    "training": {"method": DEFAULT_METHOD, "params": {"hidden_layer_sizes": [64, 64], "batch_size": 512, "lr": 1e-3,
                                               "max_epochs": 60, "patience": 15}},
    "inference": {"luminosity": 100.0, "histograms": ["x1"], "n_bins": 20, "grid": {"n_points": 25},
                  "observed": {"theta": [0.3, -0.3]}},
    # a benchmark outside the morphing basis: its weights check the morphing (closure table in results.json)
    "benchmarks": {"closure_check": {"theta1": 0.5, "theta2": -0.5}},
}
#: Weight of the score term for ``skminer demo --method cascal|rascal|alices``: the toy's joint score is heavy
#: tailed (standard deviation ~40 where the amplitude nearly vanishes), so the score term is weighted down.
DEMO_SCORE_ALPHA = 0.01


def _print_summary(summary: dict) -> None:
    from .analysis import describe_warning

    print("stages: " + ", ".join(f"{k} ({v})" for k, v in summary["stages"].items()))
    results = summary.get("results") or {}
    if results.get("morphing_closure"):
        from .closure import MorphingClosure

        print(MorphingClosure.from_dict(results["morphing_closure"]))
    printed = set()
    for check, diag in (results.get("diagnostics") or {}).items():
        for message in (diag or {}).get("violations", []):
            print(f"diagnostics ({check}): WARNING {message}")
            printed.add(message)
    for entry in summary.get("warnings", []):  # those of stages after results.json was written (plot)
        message = describe_warning(entry)
        if message not in printed:
            print(f"diagnostics (warnings): WARNING {message}")
    for name, info in results.get("fisher_information", {}).items():
        info = np.asarray(info)
        print(f"Fisher information {name:>22}: " + np.array2string(info, precision=4, suppress_small=True)
              .replace("\n", " "))
    for name, lim in (results.get("limits") or {}).items():
        print(f"expected limits, best fit ({name}): {np.round(np.asarray(lim['best_fit']), 4).tolist()}")
    observed = dict(results.get("observed_limits") or {})
    n_observed = observed.pop("n_events", None)
    for name, lim in observed.items():
        print(f"observed limits ({n_observed} events), best fit ({name}): "
              f"{np.round(np.asarray(lim['best_fit']), 4).tolist()}")


def _run(config: dict, force: bool) -> int:
    from tqdm.contrib.logging import logging_redirect_tqdm

    from .analysis import Analysis

    with logging_redirect_tqdm():
        summary = Analysis(config, progress=True).run(force=force)
    _print_summary(summary)
    print(f"outputs in {config['output']}")
    return 0


def _info(path: str) -> int:
    from .events import EventSet, warn_negative_cross_sections

    events = EventSet.load(path)
    print(events)
    xs = events._weight_sums()
    warn_negative_cross_sections([f"benchmark {b!r}" for b in events.benchmark_names], xs, where=path)
    for name, x in zip(events.benchmark_names, xs, strict=True):
        print(f"  cross section at {name:>16}: {x:.6g} pb")
    if events.morpher is not None:
        from .closure import morphing_closure

        print(morphing_closure(events))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``skminer`` command."""
    parser = argparse.ArgumentParser(prog="skminer", description="Machine-learning-based inference for "
                                     "particle physics (MadMiner's techniques as scikit-learn estimators).")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="run the analysis described by a YAML file")
    p_run.add_argument("config", help="analysis YAML file")
    p_run.add_argument("--force", action="store_true", help="rerun stages even when up to date")
    p_demo = sub.add_parser("demo", help="run a complete example analysis on the built-in simulator")
    p_demo.add_argument("--output", default="skminer-demo", help="output folder (default skminer-demo)")
    p_demo.add_argument("--force", action="store_true", help="rerun stages even when up to date (with "
                        "--write-config: overwrite an existing file)")
    p_demo.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    p_demo.add_argument("--method", choices=list(METHODS), default=DEFAULT_METHOD,
                        help=f"estimator to train (default {DEFAULT_METHOD})")
    p_demo.add_argument("--write-config", metavar="FILE", help="write the demo's YAML config and exit")
    for p in (p_run, p_demo):
        p.add_argument("--threads", type=_positive_int, metavar="N",
                       help="threads for training and evaluation (torch, BLAS, OpenMP; default: the CPUs this "
                            "process may use that other processes leave idle, or OMP_NUM_THREADS)")
    p_info = sub.add_parser("info", help="describe an event file")
    p_info.add_argument("events", help="HDF5 event file")
    p_pyhf = sub.add_parser("export-pyhf", help="write a histogram analysis as a pyhf JSON workspace")
    p_pyhf.add_argument("events", help="HDF5 event file with morphing, e.g. <output>/events_test.h5")
    p_pyhf.add_argument("-o", "--output", required=True, help="workspace JSON file to write")
    p_pyhf.add_argument("--luminosity", type=float, required=True, help="integrated luminosity in pb^-1")
    p_pyhf.add_argument("--observable", action="append", help="observable to histogram (repeat for more dimensions)")
    p_pyhf.add_argument("--model", help="SALLY model (.skm): histogram its estimated score instead")
    p_pyhf.add_argument("--bins", type=int, default=20, help="bins per dimension (default 20)")
    p_pyhf.add_argument("--theta", type=float, nargs="+", help="parameter point of the Asimov observations")
    p_pyhf.add_argument("--observed", help="HDF5 file of observed events (their counts are the observations)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    sys.unraisablehook = _log_unraisable
    if getattr(args, "threads", None) is not None:
        _set_threads(args.threads)
    try:
        if args.command == "run":
            return _run(load_config(args.config), args.force)
        if args.command == "demo":
            raw = copy.deepcopy(DEMO_CONFIG)
            raw["output"] = str(Path(args.output).resolve())
            raw["training"]["method"] = args.method
            if "prior" in FAMILIES[METHODS[args.method].family].sampler_arguments.values():  # sampled theta0
                raw["augmentation"]["prior"] = {"kind": "uniform", "n_thetas": 500}
                if METHODS[args.method].alpha:
                    raw["training"]["params"]["alpha"] = DEMO_SCORE_ALPHA
            if args.quick:
                raw["simulation"]["n_events"] = 20_000
                raw["augmentation"]["n_samples"] = 10_000
                raw["training"]["params"]["max_epochs"] = 3
                raw["inference"]["grid"]["n_points"] = 7
            if args.write_config:
                import yaml

                if Path(args.write_config).exists() and not args.force:
                    raise ValueError(f"{args.write_config} exists; pass --force to overwrite it")
                # relative to the file's folder when it lies under it (the loader resolves it from there), so
                # the config keeps working when its folder is moved or copied
                folder = Path(args.write_config).resolve().parent
                output = Path(raw["output"])
                if output.is_relative_to(folder):
                    raw["output"] = output.relative_to(folder).as_posix() or "."
                with atomic_write(args.write_config) as tmp:
                    tmp.write_text(yaml.safe_dump(raw, sort_keys=False))
                print(f"wrote {args.write_config}")
                return 0
            return _run(validate_config(raw, source="demo"), args.force)
        if args.command == "export-pyhf":
            from .io.pyhf import export_pyhf_files

            export = export_pyhf_files(args.events, args.output, args.luminosity, observables=args.observable,
                                       model_path=args.model, bins=args.bins, theta=args.theta,
                                       observed_path=args.observed)
            print(f"wrote {args.output}: {len(export.workspace['channels'][0]['samples'])} samples, "
                  f"{export.info['nuisance_parameters'] or 'no'} nuisance parameters")
            return 0
        return _info(args.events)
    except KeyboardInterrupt:  # Ctrl-C: one line, no traceback; 130 = 128 + SIGINT, as shells report it
        if args.command in ("run", "demo"):
            print("skminer: interrupted by the user; finished stages are kept (stages.json), rerun the same "
                  "command to continue from the interrupted stage", file=sys.stderr)
        else:
            print("skminer: interrupted by the user; nothing was written", file=sys.stderr)
        return 130
    except (ConfigError, FileNotFoundError, ValueError, KeyError) as err:
        print(f"skminer: error: {err}", file=sys.stderr)
        return 2
    except FolderInUseError as err:
        print(f"skminer: error: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # disk full, file size limit, no permission ...: the previous outputs are intact
        print(f"skminer: error: {err}\n(outputs of earlier runs are unchanged)", file=sys.stderr)
        if err.errno in (errno.EFBIG, errno.ENOSPC, errno.EDQUOT, errno.EIO) and _hdf5_objects_left_open():
            _exit_now(1)
        return 1


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _set_threads(n: int) -> None:
    """Use ``n`` threads in this process and in the worker processes it starts (``--threads``)."""
    import torch
    from threadpoolctl import threadpool_limits

    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):  # read by skminer.threads, workers
        os.environ[var] = str(n)
    torch.set_num_threads(n)
    threadpool_limits(limits=n)


def _log_unraisable(unraisable: sys.UnraisableHookArgs) -> None:
    """Errors raised while objects are released (h5py after a failed write) go to the debug log, not a traceback."""
    logging.getLogger("skminer.cli").debug("ignored %s in %r: %s", type(unraisable.exc_value).__name__,
                                           unraisable.object, unraisable.exc_value)


def _hdf5_objects_left_open() -> bool:
    """Whether HDF5 still holds objects (after a failed write: the broken file's datasets)."""
    h5py = sys.modules.get("h5py")
    return h5py is not None and h5py.h5f.get_obj_count(h5py.h5f.OBJ_ALL, h5py.h5f.OBJ_ALL) > 0


def _exit_now(code: int) -> None:
    """Exit at once, skipping interpreter finalisation.

    After a write that failed inside HDF5 (disk full, ``ulimit -f``), the HDF5 library keeps the broken file's
    objects open and crashes (SIGSEGV) when it closes them at interpreter exit. The message is printed and the
    outputs are consistent (atomic writes), so nothing is lost by not finalising.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
