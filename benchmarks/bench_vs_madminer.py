"""Training speed per epoch of skminer against madminer 0.9.6, same machine, data, network and batch size (issue 13).

Run ``OMP_NUM_THREADS=1 python benchmarks/bench_vs_madminer.py --madminer VENV [--methods sally,carl,...]
[--batch-sizes 128,256] [--epochs 5] [--repeats 5] [--n-train 20000] [--hidden 100,100,100]``, where ``VENV`` is
a virtual environment with madminer 0.9.6 (``python3 -m venv VENV && VENV/bin/pip install torch==2.13.0 &&
VENV/bin/pip install madminer==0.9.6 "numpy<1.24"``).

Data: :func:`bench_accuracy.make_data` (the toy simulator, seed 0) with ``--n-train`` training events, written
once as ``.npy`` files; SALLY trains on the SM events and their joint scores, the ratio methods on the
``theta0``/SM pairs with ``r_xz`` and ``t_xz``. Both tools train on the same events with MadMiner's budget
(:data:`bench_accuracy.BUDGET`: hidden ``(100, 100, 100)``, tanh, validation fraction 0.25) at the chosen batch size
and ``--epochs`` epochs, one torch thread each:

* **madminer**: a whole ``ScoreEstimator.train`` / ``ParameterizedRatioEstimator.train`` (the shared
  :data:`bench_accuracy.MADMINER_TRAIN`, from the ``.npy`` files: its own loop with a validation pass every epoch,
  AMSGrad, exponential learning-rate decay 1e-3 -> 1e-4, ``n_workers=0``, ``early_stopping=False``, which only
  stops it from keeping the best epoch; it never ends training early without a patience) in one persistent
  madminer process that times each ``train`` with its own CPU clock;
* **skminer**: a whole ``fit`` on the in-memory arrays with the estimator defaults within the same budget
  (``max_epochs``, ``batch_size``, ``hidden_layer_sizes``, ``activation``, ``validation_fraction`` equal,
  ``n_threads=1``; the default ``early_stopping=True`` is what gives skminer its validation pass, and its
  ``patience=10`` cannot stop a 5-epoch fit: the script checks that every fit ran all epochs), timed with this
  process's CPU clock.

Per epoch = CPU seconds of the whole ``train``/``fit`` (set-up included) / epochs; "marginal" = (seconds of the
``--epochs``-epoch run - seconds of a 1-epoch run) / (``--epochs`` - 1), the cost of one more epoch without the
set-up (skminer's set-up includes a pass of the untrained network over the data, the reference of its
divergence check). Each tool first trains one warm-up epoch per method and batch size (not counted); then every
repeat runs madminer (``--epochs``, then 1 epoch) and skminer (the same) next to each other. The table gives the
medians over the repeats of the times and of the ratio madminer / skminer within a repeat (higher: skminer
faster). CPU time is distorted less than wall time by other processes, but not undistorted: on the shared 2-core
machine single runs moved by up to +-30% and the ratios by about +-0.2 between runs of the script.

Recorded in ``docs/benchmarks.md`` ("Training speed against madminer 0.9.6"), 2026-12-01, 2-core development
machine: ``OMP_NUM_THREADS=1 python benchmarks/bench_vs_madminer.py --madminer /work/mm-venv`` (defaults: all seven
methods, batch 128 and 256, 5 epochs, 5 repeats, 20 000 events, hidden ``(100, 100, 100)``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from bench_accuracy import BUDGET, MADMINER_TRAIN, estimator_params, fit_skminer, make_data
from sklearn.exceptions import ConvergenceWarning

from skminer.simulation.toy import ToySimulator

METHODS = ("sally", "carl", "rolr", "alice", "cascal", "rascal", "alices")
RESULT = "RESULT "

#: madminer's side: train the jobs read from stdin (one JSON object a line), answer each with its CPU seconds.
_TIMING_SCRIPT = MADMINER_TRAIN + r'''
import time
torch.set_num_threads(1)
d = sys.argv[1]
for line in sys.stdin:
    job = json.loads(line)
    np.random.seed(job["seed"])
    torch.manual_seed(job["seed"])
    start = time.process_time()
    mm_train(d, job["method"], job["budget"], early_stopping=False)
    print("''' + RESULT + r'''" + json.dumps({"cpu_s": time.process_time() - start}), flush=True)
'''

logger = logging.getLogger("bench_vs_madminer")


class MadminerWorker:
    """One madminer process (``venv/bin/python``) that trains on the ``.npy`` files in ``data_dir`` on request."""

    def __init__(self, venv: Path, data_dir: str) -> None:
        python = venv / "bin" / "python"
        if not python.exists():
            raise FileNotFoundError(f"--madminer {venv}: no {python}")
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        self.proc = subprocess.Popen([str(python), "-c", _TIMING_SCRIPT, data_dir], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)

    def train(self, method: str, budget: dict[str, Any], seed: int) -> float:
        """CPU seconds of one madminer ``train`` of ``method`` with ``budget``, measured in the madminer process."""
        stdin: IO[str] = self.proc.stdin  # type: ignore[assignment]
        stdout: IO[str] = self.proc.stdout  # type: ignore[assignment]
        stdin.write(json.dumps({"method": method, "budget": budget, "seed": seed}) + "\n")
        stdin.flush()
        for line in stdout:
            if line.startswith(RESULT):
                return float(json.loads(line[len(RESULT):])["cpu_s"])
        raise RuntimeError(f"the madminer process ended (exit code {self.proc.wait()}) while training {method}")

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait()


def skminer_seconds(method: str, data: dict[str, np.ndarray], params: dict[str, Any]) -> float:
    """CPU seconds of one skminer ``fit`` of ``method`` with ``params``; checks that it ran ``max_epochs``."""
    start = time.process_time()
    model = fit_skminer(method, data, params)
    seconds = time.process_time() - start
    if model.n_epochs_ != params["max_epochs"]:
        raise RuntimeError(f"skminer {method} ran {model.n_epochs_} of {params['max_epochs']} epochs")
    return seconds


def time_method(worker: MadminerWorker, method: str, batch: int, data: dict[str, np.ndarray],
                hidden: tuple[int, ...], epochs: int, repeats: int) -> list[float]:
    """Seconds per epoch of madminer and skminer (whole runs / ``epochs``) and the ratio madminer / skminer, then
    the same for the marginal seconds per epoch ((``epochs``-epoch run - 1-epoch run) / (``epochs`` - 1)): medians
    over ``repeats`` repeats after a 1-epoch warm-up of each tool; each repeat runs madminer, then skminer, and the
    ratios are medians of the ratios within a repeat (runs next to each other see similar load)."""
    def budget(n_epochs: int) -> dict[str, Any]:
        return {"hidden_layer_sizes": hidden, "max_epochs": n_epochs, "batch_size": batch,
                "validation_fraction": BUDGET["validation_fraction"], "alpha": 1.0}

    def params(n_epochs: int, seed: int) -> dict[str, Any]:
        return estimator_params(method, "defaults", False, {
            "hidden_layer_sizes": hidden, "activation": "tanh", "max_epochs": n_epochs, "batch_size": batch,
            "validation_fraction": BUDGET["validation_fraction"], "n_threads": 1}, seed)

    runs = {"madminer": lambda n_epochs, seed: worker.train(method, budget(n_epochs), seed),
            "skminer": lambda n_epochs, seed: skminer_seconds(method, data, params(n_epochs, seed))}
    for run in runs.values():  # warm-ups
        run(1, 0)
    whole: dict[str, list[float]] = {tool: [] for tool in runs}
    marginal: dict[str, list[float]] = {tool: [] for tool in runs}
    for seed in range(repeats):
        for tool, run in runs.items():
            long, short = run(epochs, seed), run(1, seed)
            whole[tool].append(long / epochs)
            marginal[tool].append((long - short) / (epochs - 1))
    logger.info("%s batch %d s/epoch: madminer %s, skminer %s; marginal: madminer %s, skminer %s", method, batch,
                *([round(t, 3) for t in times[tool]] for times in (whole, marginal) for tool in runs))
    out = []
    for times in (whole, marginal):
        out += [statistics.median(times["madminer"]), statistics.median(times["skminer"]),
                statistics.median(m / s for m, s in zip(times["madminer"], times["skminer"], strict=True))]
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--madminer", type=Path, required=True, metavar="VENV", help="madminer 0.9.6 virtual env")
    ap.add_argument("--methods", default=",".join(METHODS), help=f"any of {', '.join(METHODS)}")
    ap.add_argument("--batch-sizes", default="128,256")
    ap.add_argument("--epochs", type=int, default=5, help="epochs of every timed train / fit")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--n-train", type=int, default=20_000)
    ap.add_argument("--hidden", default=",".join(map(str, BUDGET["hidden_layer_sizes"])),
                    help="hidden layer sizes of both tools' networks")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    warnings.filterwarnings("ignore", category=ConvergenceWarning)  # a few epochs: expected
    methods = [m.strip().lower() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        ap.error(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
    if args.epochs < 2:
        ap.error("--epochs must be at least 2 (madminer validates only when training more than one epoch)")
    batches = [int(b) for b in args.batch_sizes.split(",")]
    hidden = tuple(int(h) for h in args.hidden.split(","))
    torch.set_num_threads(1)
    data = make_data(ToySimulator(), {"n_train": args.n_train, "n_theta0": 200, "n_test": 1, "n_cal": 1}, seed=0)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, v in data.items():
            np.save(os.path.join(tmp, k + ".npy"), v)
        worker = MadminerWorker(args.madminer, tmp)
        try:
            for method in methods:
                for batch in batches:
                    rows.append((method, batch, *time_method(worker, method, batch, data, hidden, args.epochs,
                                                             args.repeats)))
        finally:
            worker.close()

    print(f"\nSeconds per epoch (CPU), {args.n_train} samples (validation {BUDGET['validation_fraction']}), hidden "
          f"{hidden} tanh, one torch thread each, median of {args.repeats} x {args.epochs}-epoch train/fit")
    print("| method | batch | madminer 0.9.6 s/epoch | skminer s/epoch | madminer / skminer | marginal: madminer "
          "s/epoch | skminer s/epoch | madminer / skminer |")
    print("| --- " * 8 + "|")
    for method, batch, mm, sk, ratio, mm_marginal, sk_marginal, ratio_marginal in rows:
        print(f"| {method.upper()} | {batch} | {mm:.3f} | {sk:.3f} | {ratio:.2f} | {mm_marginal:.3f} | "
              f"{sk_marginal:.3f} | {ratio_marginal:.2f} |")
    print(f"s/epoch: CPU seconds of a whole {args.epochs}-epoch train / fit (set-up included) / {args.epochs}; "
          f"marginal: (seconds of the {args.epochs}-epoch run - seconds of a 1-epoch run of the same repeat) / "
          f"{args.epochs - 1}, the cost of one more epoch without the set-up; times: medians over the repeats; ratios: "
          "medians over the repeats of the ratio within a repeat")


if __name__ == "__main__":
    sys.exit(main())
