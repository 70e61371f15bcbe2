"""Training speed of skminer estimators against a bare torch loop, per epoch, measured in the same run.

Run ``OMP_NUM_THREADS=1 python benchmarks/bench_training.py [--n-samples N] [--epochs E] [--repeats R]
[--batch-sizes 128,256] [--methods sally,carl,...]``. Methods: ``sally``, the singly parameterised ratio
methods (``carl``, ``rolr``, ``alice``, ``cascal``, ``rascal``, ``alices``), the doubly parameterised ones
(``doublecarl`` ... ``doublealices``: ``theta = [theta0, theta1]``, the score term on ``t_xz`` at ``theta0``
only) and the flows (``nde``, ``scandal``: a :class:`zuko.flows.MAF` with 3 transforms of the same hidden
layers). Default: all but ``doublerolr``, ``doublealice``, ``doublecascal`` and ``doublerascal`` (``doublecarl``
and ``doublealices`` stand for the doubly parameterised loops, which differ from each other only in the loss).

For every method and batch size the script times single epochs, never whole fits:

* **bare torch**: a hand-written loop over pre-made tensors (inputs and targets standardised once, before the
  loop) with the same network, optimizer (Adam with torch's defaults: on CPUs its single-tensor implementation;
  skminer's runs the multi-tensor one, bit for bit the same updates, and ``--bare-foreach`` gives it to the bare
  loop too, so that the ratio shows skminer's own overhead only), batch size and loss (skminer's own loss
  functions, so the work per batch is the same; the flows' negative log-likelihood of raw ``x``, i.e. with the
  Jacobian ``-sum(log x_scale)``, and SCANDAL's score MSE in raw parameter units, as skminer's); each epoch
  shuffles with one gather and slices contiguous batches. Every timed skminer batch runs right after a bare
  batch, so that both see the same load from other processes (pairing whole epochs, as the script did until
  2026-12-01, left ratios that moved by +-10% between runs on a shared machine; pairing batches, +-1-2%).
* **skminer**: ``estimator.fit`` with early stopping off, a constant learning rate and ``epoch_selection="last"``
  (the same work as the bare loop); each batch of the training passes of the private skorch net is timed, from
  fetching it to asking for the next (its ``run_single_epoch`` less per-pass work of microseconds; per-epoch
  callbacks such as the learning-rate schedule take microseconds too).
* **skminer default**: the same with the default ``epoch_selection="ema"`` and exponential learning-rate
  schedule (it also averages the weights, every ``max(1, n_batches // 128)`` batches).

The last column counts function calls per batch (skminer minus bare), which no load distorts. Each runs one
warm-up epoch that is not counted; the fits are repeated ``--repeats`` times. The table shows
median epoch times (sums over their batches) and the median over all batches of the ratio bare seconds / skminer
seconds of adjacent batches (1.0 = as fast as the bare loop; higher is better). Times are CPU seconds of the
(single-threaded) process, which other processes on a shared machine distort less than wall time; ``--clock wall``
uses wall time.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch
import zuko
from torch import Tensor, nn

from skminer import estimators as est
from skminer.estimators import _net, losses

HIDDEN = (100, 100)
FLOW_TRANSFORMS = 3
CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}
clock = CLOCKS["cpu"]
#: Extra keyword arguments of the bare loop's Adam (``--bare-foreach``: torch's multi-tensor implementation, which
#: skminer uses on CPUs and torch picks by default only on CUDA).
bare_adam: dict[str, bool] = {}
RATIO_CLASSES = {"carl": est.CARL, "rolr": est.ROLR, "alice": est.ALICE, "cascal": est.CASCAL,
                 "rascal": est.RASCAL, "alices": est.ALICES, "doublecarl": est.DoubleCARL,
                 "doublerolr": est.DoubleROLR, "doublealice": est.DoubleALICE, "doublecascal": est.DoubleCASCAL,
                 "doublerascal": est.DoubleRASCAL, "doublealices": est.DoubleALICES}
FLOW_CLASSES = {"nde": est.NDE, "scandal": est.SCANDAL}
SCORE_METHODS = ("cascal", "rascal", "alices", "doublecascal", "doublerascal", "doublealices", "scandal")
METHODS = ("sally", *RATIO_CLASSES, *FLOW_CLASSES)
DEFAULT_METHODS = ("sally", "carl", "rolr", "alice", "cascal", "rascal", "alices", "doublecarl", "doublealices",
                   "nde", "scandal")


def _is_double(method: str) -> bool:
    return method.startswith("double")


def _mlp(n_in: int, n_out: int) -> nn.Module:
    layers: list[nn.Module] = []
    for h in HIDDEN:
        layers += [nn.Linear(n_in, h), nn.Tanh()]
        n_in = h
    layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


def _standardise(a: np.ndarray) -> tuple[Tensor, Tensor]:
    a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    scale = a.std(axis=0)
    return (torch.as_tensor((a - a.mean(axis=0)) / scale, dtype=torch.float32),
            torch.as_tensor(scale, dtype=torch.float32))


class BareLoop:
    """A bare torch training loop for ``method`` over pre-made, pre-standardised tensors; :meth:`epoch` runs one
    epoch and returns its seconds."""

    def __init__(self, method: str, data: dict[str, np.ndarray], batch: int) -> None:
        torch.manual_seed(0)
        self.gen = torch.Generator().manual_seed(0)
        self.batch = batch
        x, x_scale = _standardise(data["x"])
        if method == "sally":
            target, _ = _standardise(data["t"])  # SALLY's loss is the MSE in units of the target's spread
            self.tensors = {"x": x, "t": target}
            model = _mlp(x.shape[1], target.shape[1])
            self.loss_fn = _bare_loss(method, model)
        elif method in FLOW_CLASSES:
            theta, theta_scale = _standardise(data["theta"])
            self.tensors = {"x": x, "theta": theta, "t_xz": torch.as_tensor(data["t"], dtype=torch.float32)}
            model = zuko.flows.MAF(x.shape[1], theta.shape[1], transforms=FLOW_TRANSFORMS, hidden_features=HIDDEN,
                                   activation=nn.Tanh)
            self.loss_fn = _bare_flow_loss(method, model, float(torch.log(x_scale).sum()), theta_scale)
        else:
            theta, theta_scale = _standardise(data["theta01" if _is_double(method) else "theta"])
            p = data["t"].shape[1]  # the score term is on theta0, the first p columns
            # the score term compares scores in standardised parameter units (MadMiner's): t_xz scaled once
            self.tensors = {"x": x, "theta": theta, "y": torch.as_tensor(data["y"], dtype=torch.float32),
                            "log_r_xz": torch.as_tensor(np.log(data["r"]), dtype=torch.float32),
                            "t_xz": torch.as_tensor(data["t"], dtype=torch.float32) * theta_scale[:p]}
            model = _mlp(x.shape[1] + theta.shape[1], 1)
            self.loss_fn = _bare_loss(method, model)
        self.opt = torch.optim.Adam(model.parameters(), lr=1e-3, **bare_adam)

    @property
    def n_batches(self) -> int:
        return -(-len(self.tensors["x"]) // self.batch)

    def batches(self) -> Iterator[dict[str, Tensor]]:
        """Batches of successive epochs, without end: each epoch shuffles with one gather and slices it."""
        n = len(self.tensors["x"])
        while True:
            perm = torch.randperm(n, generator=self.gen)
            shuffled = {k: v[perm] for k, v in self.tensors.items()}
            for i in range(0, n, self.batch):
                yield {k: v[i:i + self.batch] for k, v in shuffled.items()}

    def step(self, b: dict[str, Tensor]) -> None:
        """One optimisation step on batch ``b``."""
        self.opt.zero_grad()
        loss = self.loss_fn(b)
        loss.backward()
        self.opt.step()

    def epoch(self) -> float:
        """Run one epoch; its seconds."""
        start = clock()
        batches = self.batches()
        for _ in range(self.n_batches):
            self.step(next(batches))
        return clock() - start


def _bare_loss(method: str, model: nn.Module) -> Callable[[dict[str, Tensor]], Tensor]:
    """The batch loss of ``method`` written directly on the pre-standardised tensors."""
    if method == "sally":
        return lambda b: (model(b["x"]) - b["t"]).pow(2).mean()

    def log_r(b: dict[str, Tensor], theta: Tensor) -> Tensor:
        return model(torch.cat([b["x"], theta], dim=1)).squeeze(1)

    ratio = method.removeprefix("double")
    if ratio == "carl":
        return lambda b: losses.carl_loss(log_r(b, b["theta"]), b["y"])
    if ratio == "rolr":
        return lambda b: losses.rolr_loss(log_r(b, b["theta"]), b["y"], b["log_r_xz"])
    if ratio == "alice":
        return lambda b: losses.alice_loss(log_r(b, b["theta"]), b["log_r_xz"], 10.0)

    def score_loss(b: dict[str, Tensor]) -> Tensor:
        theta = b["theta"].requires_grad_(True)
        lr = log_r(b, theta)
        (t_hat,) = torch.autograd.grad(lr.sum(), theta, create_graph=True)  # in standardised theta units
        if _is_double(method):
            t_hat = t_hat[:, :b["t_xz"].shape[1]]  # d / d theta0
        if ratio == "cascal":
            return losses.cascal_loss(lr, t_hat, b["y"], b["t_xz"], 1.0)
        if ratio == "rascal":
            return losses.rascal_loss(lr, t_hat, b["y"], b["log_r_xz"], b["t_xz"], 1.0)
        return losses.alices_loss(lr, t_hat, b["y"], b["log_r_xz"], b["t_xz"], 1.0, 10.0)

    return score_loss


def _bare_flow_loss(method: str, flow: nn.Module, log_scale_sum: float, theta_scale: Tensor
                    ) -> Callable[[dict[str, Tensor]], Tensor]:
    """The flows' batch loss on pre-standardised tensors: ``-mean log p(x | theta)`` of raw ``x`` (the Jacobian
    ``log_scale_sum``), plus for SCANDAL the score MSE in raw parameter units."""
    if method == "nde":
        return lambda b: -(flow(b["theta"]).log_prob(b["x"]) - log_scale_sum).mean()

    def scandal_loss(b: dict[str, Tensor]) -> Tensor:
        theta = b["theta"].requires_grad_(True)
        log_p = flow(theta).log_prob(b["x"]) - log_scale_sum
        (t_hat,) = torch.autograd.grad(log_p.sum(), theta, create_graph=True)  # d / d standardised theta
        return -log_p.mean() + losses.score_mse(t_hat / theta_scale, b["t_xz"])

    return scandal_loss


def _interleaved(iterator: Iterator, bare: BareLoop, pairs: list[tuple[float, float]]) -> Iterator:
    """Pass on skminer's batches, running one bare batch before fetching each, and record (skminer seconds, bare
    seconds) per batch: skminer's from fetching the batch to asking for the next one, bare's its slicing and step."""
    bare_batches = bare.batches()
    skminer_batches = iter(iterator)
    while True:
        start = clock()
        bare.step(next(bare_batches))
        fetch = clock()
        try:
            batch = next(skminer_batches)
        except StopIteration:
            return
        yield batch
        pairs.append((clock() - fetch, fetch - start))


@contextlib.contextmanager
def paired_training_passes(bare: BareLoop) -> Iterator[list[list[tuple[float, float]]]]:
    """Record, for every training pass of skminer's private net (``SkminerNet.run_single_epoch`` with
    ``training=True``), the (skminer seconds, bare seconds) of each batch, every skminer batch right after a bare
    one (:func:`_interleaved`)."""
    original = _net.SkminerNet.run_single_epoch
    passes: list[list[tuple[float, float]]] = []

    def timed(self, iterator, training, prefix, step_fn, **fit_params):  # noqa: ANN001, ANN202
        if training and iterator is not None:
            passes.append([])
            iterator = _interleaved(iterator, bare, passes[-1])
        original(self, iterator, training, prefix, step_fn, **fit_params)

    _net.SkminerNet.run_single_epoch = timed
    try:
        yield passes
    finally:
        _net.SkminerNet.run_single_epoch = original


def paired_epochs(method: str, data: dict[str, np.ndarray], batch: int, epochs: int, default: bool,
                  bare: BareLoop) -> list[list[tuple[float, float]]]:
    """(skminer, bare) seconds of every batch of ``epochs`` training passes of ``estimator.fit``, each batch
    next to a bare one, after a 1-epoch warm-up fit."""
    settings = {} if default else {"epoch_selection": "last", "lr_schedule": "constant"}
    common = dict(hidden_layer_sizes=HIDDEN, activation="tanh", batch_size=batch, early_stopping=False,
                  validation_fraction=0.0, lr=1e-3, random_state=0, n_threads=1, **settings)
    _fit(method, data, 1, common)  # warm-up
    with paired_training_passes(bare) as pairs:
        _fit(method, data, epochs, common)
    return pairs


@contextlib.contextmanager
def counting_calls() -> Iterator[list[int]]:
    """Count Python and C function calls made while the block runs (``sys.setprofile``)."""
    count = [0]

    def profile(frame, event, arg):  # noqa: ANN001, ANN202
        if event in ("call", "c_call"):
            count[0] += 1

    sys.setprofile(profile)
    try:
        yield count
    finally:
        sys.setprofile(None)


def extra_calls_per_batch(method: str, data: dict[str, np.ndarray], batch: int) -> float:
    """Function calls per batch of one skminer training pass minus those of one bare epoch (load-independent)."""
    bare = BareLoop(method, data, batch)
    with counting_calls() as bare_calls:
        bare.epoch()
    original = _net.SkminerNet.run_single_epoch
    counts: list[int] = []

    def counted(self, iterator, training, prefix, step_fn, **fit_params):  # noqa: ANN001, ANN202
        with counting_calls() as calls:
            original(self, iterator, training, prefix, step_fn, **fit_params)
        if training:
            counts.append(calls[0])

    _net.SkminerNet.run_single_epoch = counted
    try:
        _fit(method, data, 1, dict(hidden_layer_sizes=HIDDEN, activation="tanh", batch_size=batch,
                                   early_stopping=False, validation_fraction=0.0, lr=1e-3, random_state=0,
                                   n_threads=1, epoch_selection="last", lr_schedule="constant"))
    finally:
        _net.SkminerNet.run_single_epoch = original
    n_batches = -(-len(data["x"]) // batch)
    return (counts[0] - bare_calls[0]) / n_batches


def _fit(method: str, data: dict[str, np.ndarray], n_epochs: int, common: dict) -> None:
    if method == "sally":
        est.SALLY(max_epochs=n_epochs, **common).fit(data["x"], data["t"])
        return
    extra = {"alpha": 1.0} if method in SCORE_METHODS else {}
    if method in FLOW_CLASSES:
        FLOW_CLASSES[method](max_epochs=n_epochs, transforms=FLOW_TRANSFORMS, **common, **extra).fit(
            data["x"], theta=data["theta"], t_xz=data["t"])
        return
    theta = data["theta01" if _is_double(method) else "theta"]
    RATIO_CLASSES[method](max_epochs=n_epochs, **common, **extra).fit(
        data["x"], data["y"], theta=theta, r_xz=data["r"], t_xz=data["t"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=3, help="counted epochs per run")
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of each variant")
    parser.add_argument("--batch-sizes", default="128,256")
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS), help=f"any of {', '.join(METHODS)}")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu")
    parser.add_argument("--bare-foreach", action="store_true",
                        help="the bare loop's Adam also runs the multi-tensor (foreach) implementation, as skminer's "
                             "does on CPUs: the ratio then shows skminer's own overhead only")
    args = parser.parse_args(argv)
    global clock
    clock = CLOCKS[args.clock]
    if args.bare_foreach:
        bare_adam["foreach"] = True
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    n = args.n_samples
    data = {"x": rng.normal(size=(n, 5)), "theta": rng.uniform(-1, 1, size=(n, 2)), "t": rng.normal(size=(n, 2)),
            "y": rng.integers(0, 2, size=n).astype(float), "r": np.exp(rng.normal(size=n)),
            "theta01": rng.uniform(-1, 1, size=(n, 4))}  # [theta0, theta1] of the doubly parameterised methods
    methods = [m.strip().lower() for m in args.methods.split(",")]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
    batches = [int(b) for b in args.batch_sizes.split(",")]

    print(f"\nTraining time per epoch, {n} samples, network {HIDDEN}, {torch.get_num_threads()} torch thread(s), "
          f"{args.repeats} x {args.epochs} epochs, each batch next to a bare batch, {args.clock} time, bare Adam "
          f"{'foreach' if args.bare_foreach else 'with torch defaults'}")
    print(f"{'method':<13}{'batch':>6}{'bare ms':>10}{'skminer ms':>12}{'ratio':>8}{'default ms':>12}{'ratio':>8}"
          f"{'extra calls/batch':>19}")
    for method in methods:
        for batch in batches:
            bare = BareLoop(method, data, batch)
            bare.epoch()  # warm-up
            runs: dict[str, list[list[tuple[float, float]]]] = {"skminer": [], "default": []}
            for _ in range(args.repeats):
                for variant in runs:
                    runs[variant] += paired_epochs(method, data, batch, args.epochs, variant == "default", bare)
            bare_ms = statistics.median(sum(b for _, b in epoch) for epoch in runs["skminer"])
            row = f"{method:<13}{batch:>6}{1e3 * bare_ms:>10.1f}"
            for variant in ("skminer", "default"):
                ratio = statistics.median(b / s for epoch in runs[variant] for s, b in epoch)
                row += f"{1e3 * statistics.median(sum(s for s, _ in epoch) for epoch in runs[variant]):>12.1f}"
                row += f"{ratio:>8.2f}"
            print(row + f"{extra_calls_per_batch(method, data, batch):>19.1f}")
    print("ratio = median over batches of (bare batch seconds / the seconds of the skminer batch right after it); "
          "1.00: as fast as the bare loop. ms: median epoch (sum of its batches). skminer: epoch_selection='last', "
          "constant lr (the bare loop's work); default: EMA "
          "weights and the exponential schedule. extra calls/batch: Python and C function calls per batch of a "
          "skminer training pass minus those of the bare loop (sys.setprofile; independent of machine load).")


if __name__ == "__main__":
    main()
