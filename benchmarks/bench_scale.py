"""Scale: peak memory and time of read/simulate -> save -> load -> sample, against numpy+h5py and pylhe baselines.

Run ``python benchmarks/bench_scale.py [--sizes 1e5 1e6] [--lhe-sizes 1e5 1e6] [--large]`` (``--large`` adds
``1e7`` toy events; ``--sizes 1e8`` is accepted, the out-of-core path is the one that fits). Every stage runs in a
fresh interpreter, one thread, and reports its wall time (imports excluded) and its peak resident memory
(``VmHWM`` of ``/proc/self/status``, imports included; the ``imports`` rows show what the imports alone cost).
All rows of one size are measured in the same run, so the ratios compare like with like; ``--clock cpu`` times
the stage's CPU seconds instead of wall seconds (for a machine that other work shares).

Toy pipeline (``ToySimulator``, 2 observables, 6 benchmark weights per event):

- ``numpy+h5py``: draw arrays of the same shapes with numpy and write them with h5py (gzip 1 + shuffle, the
  chunking skminer uses); load them; sample = morph the weights at the same parameter points, ``cumsum`` and
  ``searchsorted`` (the bare unweighting, no joint ratios or scores).
- ``in-memory``: ``ToySimulator.simulate`` -> ``EventSet.save``; ``EventSet.load``; load + ``RatioSampler``.
- ``out-of-core``: ``ToySimulator.simulate_to_file`` (chunks of 2^18 events); ``EventSet.open``; open +
  ``RatioSampler`` streaming over the file's chunks.

LHE pipeline (the shared MG5 file's events repeated into a temporary file under ``--tmp``):

- ``pylhe pass``: iterate ``pylhe.LHEFile.fromfile(path).events`` touching every event's particles and weights;
- ``LHEReader``: read (chunks of 10 000 events, one observable) -> ``EventSet.save``, or ``read_to_file`` (out of
  core: one chunk of events in memory); then load (or open) + ``TestSampler`` at two benchmarks.

Ratio sampling draws ``--n-samples`` samples over ``--n-thetas`` points (``RatioSampler(n_thetas=...)``).
Large files are deleted when the benchmark ends; check ``df -h`` before ``--lhe-sizes 1e7`` (13.5 GB).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_LHE = REPO.parent / "shared" / "data" / "mg5_vbfh_ewdim6" / "unweighted_events.lhe.gz"
N_OBSERVABLES, N_BENCHMARKS = 2, 6
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def _peak_mib() -> float:
    """Peak resident memory of this process (``VmHWM``; ``ru_maxrss`` would keep a forking parent's size)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource  # pragma: no cover - not Linux

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- stages (each runs in its own interpreter; imports are inside so that baselines import only numpy/h5py) --------
def _numpy_save(n: int, path: str, args: argparse.Namespace) -> int:
    import h5py
    import numpy as np

    rng = np.random.default_rng(0)
    chunk = 1_000_000
    with h5py.File(path, "w") as f:
        dsets = {}
        for name, cols in (("x", N_OBSERVABLES), ("weights", N_BENCHMARKS)):
            rows = max(1, min(n, (1 << 20) // (8 * cols)))
            dsets[name] = f.create_dataset(name, shape=(n, cols), dtype="f8", chunks=(rows, cols),
                                           compression="gzip", compression_opts=1, shuffle=True)
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            dsets["x"][start:start + m] = rng.standard_normal((m, N_OBSERVABLES))
            dsets["weights"][start:start + m] = rng.random((m, N_BENCHMARKS)) / n
    return n


def _numpy_load(n: int, path: str, args: argparse.Namespace) -> int:
    import h5py

    with h5py.File(path, "r") as f:
        x, w = f["x"][()], f["weights"][()]
    return int(x.shape[0] + 0 * w.shape[0])


def _numpy_sample(n: int, path: str, args: argparse.Namespace) -> int:
    import h5py
    import numpy as np

    with h5py.File(path, "r") as f:
        x, w = f["x"][()], f["weights"][()]
    rng = np.random.default_rng(1)
    coefficients = rng.standard_normal((args.n_thetas + 1, N_BENCHMARKS)) ** 2
    per_theta = args.n_samples // 2 // args.n_thetas
    drawn = 0
    for k, c in enumerate(coefficients):  # one pass per point (the last is the reference): morph, accumulate, search
        cum = np.cumsum(w @ c)
        m = per_theta if k < args.n_thetas else args.n_samples // 2
        rows = np.searchsorted(cum, rng.random(m) * cum[-1], side="right")
        drawn += x[np.minimum(rows, n - 1)].shape[0]
    return drawn


def _skminer_simulate_save(n: int, path: str, args: argparse.Namespace) -> int:
    from skminer.simulation.toy import ToySimulator

    events = ToySimulator().simulate(n, random_state=0)
    events.save(path)
    return events.n_events


def _skminer_simulate_to_file(n: int, path: str, args: argparse.Namespace) -> int:
    from skminer.simulation.toy import ToySimulator

    return ToySimulator().simulate_to_file(path, n, random_state=0).n_events


def _skminer_load(n: int, path: str, args: argparse.Namespace) -> int:
    from skminer.events import EventSet

    return EventSet.load(path).n_events


def _skminer_open(n: int, path: str, args: argparse.Namespace) -> int:
    from skminer.events import EventSet

    events = EventSet.open(path)
    events.cross_section("sm")  # one streamed pass (the cached column sums)
    return events.n_events


def _ratio_sample(events, args: argparse.Namespace) -> int:
    from skminer.augmentation import RatioSampler

    sampler = RatioSampler(n_thetas=args.n_thetas, compute_score=True)
    return len(sampler.sample(events, args.n_samples, random_state=1))


def _skminer_sample(n: int, path: str, args: argparse.Namespace) -> int:
    from skminer.events import EventSet

    return _ratio_sample(EventSet.load(path), args)


def _skminer_open_sample(n: int, path: str, args: argparse.Namespace) -> int:
    from skminer.events import EventSet

    return _ratio_sample(EventSet.open(path), args)


def _imports_skminer(n: int, path: str, args: argparse.Namespace) -> int:
    import skminer.augmentation  # noqa: F401
    import skminer.events  # noqa: F401
    import skminer.simulation.lhe  # noqa: F401
    import skminer.simulation.toy  # noqa: F401

    return 0


def _imports_numpy(n: int, path: str, args: argparse.Namespace) -> int:
    import h5py  # noqa: F401
    import numpy  # noqa: F401

    return 0


def _pylhe_pass(n: int, path: str, args: argparse.Namespace) -> int:
    import pylhe

    count = 0
    for ev in pylhe.LHEFile.fromfile(path).events:
        count += len(ev.particles) > 0 and len(ev.weights) >= 0
    return count


def _lhe_reader(path: str):
    from skminer.parameters import ParameterSpace
    from skminer.simulation.lhe import LHEReader, read_lhe_info

    info = read_lhe_info(Path(path))
    space = ParameterSpace().add_parameter("g")
    for i, wid in enumerate(info.weight_ids):
        space.add_benchmark(wid, [float(i)])
    return LHEReader(space, check_benchmarks=False).add_sample(path).add_observable("n", "len(p)")


def _lhe_read_save(n: int, path: str, args: argparse.Namespace) -> int:
    events = _lhe_reader(path).read()
    events.save(path + ".h5")
    return events.n_events


def _lhe_read_to_file(n: int, path: str, args: argparse.Namespace) -> int:
    return _lhe_reader(path).read_to_file(path + ".ooc.h5").n_events


def _lhe_sample(events, args: argparse.Namespace) -> int:
    from skminer.augmentation import TestSampler

    return len(TestSampler(theta=events.space.benchmark_values[:2]).sample(events, args.n_samples, random_state=1))


def _lhe_load_sample(n: int, path: str, args: argparse.Namespace) -> int:
    from skminer.events import EventSet

    return _lhe_sample(EventSet.load(path + ".h5"), args)


def _lhe_open_sample(n: int, path: str, args: argparse.Namespace) -> int:
    from skminer.events import EventSet

    return _lhe_sample(EventSet.open(path + ".ooc.h5"), args)


STAGES = {
    "imports numpy+h5py": _imports_numpy, "imports skminer": _imports_skminer,
    "numpy+h5py simulate->save": _numpy_save, "numpy+h5py load": _numpy_load, "numpy+h5py load+sample": _numpy_sample,
    "in-memory simulate->save": _skminer_simulate_save, "in-memory load": _skminer_load,
    "in-memory load+sample": _skminer_sample,
    "out-of-core simulate->save": _skminer_simulate_to_file, "out-of-core open": _skminer_open,
    "out-of-core open+sample": _skminer_open_sample,
    "pylhe pass": _pylhe_pass, "LHEReader read->save": _lhe_read_save, "LHEReader load+sample": _lhe_load_sample,
    "LHEReader read_to_file": _lhe_read_to_file, "LHEReader open+sample": _lhe_open_sample,
}
#: Stage whose time and memory each stage is compared with.
BASELINE = {
    "in-memory simulate->save": "numpy+h5py simulate->save", "out-of-core simulate->save": "numpy+h5py simulate->save",
    "in-memory load": "numpy+h5py load", "out-of-core open": "numpy+h5py load",
    "in-memory load+sample": "numpy+h5py load+sample", "out-of-core open+sample": "numpy+h5py load+sample",
    "LHEReader read->save": "pylhe pass", "LHEReader read_to_file": "pylhe pass",
    "imports skminer": "imports numpy+h5py",
}
TOY_STAGES = ("imports numpy+h5py", "imports skminer", "numpy+h5py simulate->save", "numpy+h5py load",
              "numpy+h5py load+sample", "in-memory simulate->save", "in-memory load", "in-memory load+sample",
              "out-of-core simulate->save", "out-of-core open", "out-of-core open+sample")
LHE_STAGES = ("pylhe pass", "LHEReader read->save", "LHEReader read_to_file", "LHEReader load+sample",
              "LHEReader open+sample")


def _worker(stage: str, n: int, path: str, args: argparse.Namespace) -> None:
    import importlib

    if not stage.startswith("imports"):  # the seconds exclude imports (the same at every size)
        for module in ("h5py", "numpy") if stage.startswith("numpy") else ("pylhe",) if stage == "pylhe pass" else (
                "skminer.augmentation", "skminer.events", "skminer.simulation.lhe", "skminer.simulation.toy"):
            importlib.import_module(module)
    clock = CLOCKS[args.clock]
    start = clock()
    count = STAGES[stage](n, path, args)
    print(json.dumps({"count": int(count), "seconds": clock() - start, "peak_mib": _peak_mib()}))


def measure(stage: str, n: int, path: Path, args: argparse.Namespace, timeout: float) -> dict[str, float]:
    """Run one stage in a fresh interpreter; ``{"seconds", "peak_mib", "count"}`` or an ``"error"``."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1"}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", stage, str(n), str(path),
           "--n-samples", str(args.n_samples), "--n-thetas", str(args.n_thetas), "--clock", args.clock]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout {timeout:.0f} s"}
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": f"rc {proc.returncode}: {tail[:80]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def event_blocks(source: Path) -> tuple[str, list[str], str]:
    """Header, ``<event>`` blocks and trailer of an LHE file (``.lhe`` or ``.lhe.gz``)."""
    opener = gzip.open if source.read_bytes()[:2] == b"\x1f\x8b" else open
    with opener(source, "rt") as fh:
        text = fh.read()
    head_end = text.index("<event>")
    tail_start = text.rindex("</event>") + len("</event>")
    blocks = [b + "</event>\n" for b in text[head_end:tail_start].split("</event>") if "<event>" in b]
    return text[:head_end], blocks, text[tail_start:]


def replicate(source: Path, n_events: int, target: Path) -> int:
    """Write ``source``'s header once and its events repeated (and cut) to ``n_events`` into ``target``."""
    head, blocks, tail = event_blocks(source)
    copies, rest = divmod(n_events, len(blocks))
    body = "".join(blocks)
    with open(target, "w") as out:
        out.write(head)
        for _ in range(copies):
            out.write(body)
        out.write("".join(blocks[:rest]))
        out.write(tail)
    return n_events


def _row(pipeline: str, n: int, stage: str, r: dict[str, float], results: dict[str, dict[str, float]]) -> str:
    if "error" in r:
        return f"{pipeline:<5} {n:>10.0e} {stage:<28} {r['error']}"
    base = results.get(BASELINE.get(stage, ""), {})
    t_ratio = f"{r['seconds'] / base['seconds']:>8.2f}" if "seconds" in base and base["seconds"] > 0 else f"{'':>8}"
    m_ratio = f"{r['peak_mib'] / base['peak_mib']:>8.2f}" if "peak_mib" in base else f"{'':>8}"
    return (f"{pipeline:<5} {n:>10.0e} {stage:<28} {r['seconds']:>9.2f} {r['peak_mib']:>9.0f} {t_ratio} {m_ratio} "
            f"{BASELINE.get(stage, '')}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="*", default=[1e5, 1e6], help="toy event counts")
    parser.add_argument("--large", action="store_true", help="add 1e7 toy events")
    parser.add_argument("--lhe-sizes", type=float, nargs="*", default=[1e5, 1e6], help="LHE event counts")
    parser.add_argument("--lhe", type=Path, default=DEFAULT_LHE)
    parser.add_argument("--n-samples", type=int, default=100_000)
    parser.add_argument("--n-thetas", type=int, default=100)
    parser.add_argument("--stages", nargs="*", default=None, help="only these stages (names as in the table)")
    parser.add_argument("--tmp", type=Path, default=None, help="folder for the large files (default: $TMPDIR)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per stage")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall time, or CPU time of the stage's process (less distorted on a shared machine)")
    parser.add_argument("--worker", nargs=3, metavar=("STAGE", "N", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        stage, n, path = args.worker
        _worker(stage, int(n), path, args)
        return
    sizes = sorted({int(s) for s in args.sizes} | ({10**7} if args.large else set()))
    wanted = set(args.stages) if args.stages else set(STAGES)
    header = (f"{'':<5} {'events':>10} {'stage':<28} {args.clock + ' s':>9} {'peak MiB':>9} {'t ratio':>8} "
              f"{'m ratio':>8} ratios against")
    lines = [header]
    tmp = tempfile.mkdtemp(prefix="bench_scale_", dir=args.tmp)
    try:
        for n in sizes:
            path = Path(tmp) / f"toy_{n}.h5"
            results: dict[str, dict[str, float]] = {}
            for stage in TOY_STAGES:
                if stage not in wanted:
                    continue
                target = path.with_name(f"ooc_{n}.h5") if stage.startswith("out-of-core") else path
                target = path.with_name(f"np_{n}.h5") if stage.startswith("numpy") else target
                results[stage] = measure(stage, n, target, args, args.timeout)
                lines.append(_row("toy", n, stage, results[stage], results))
                print(lines[-1], flush=True)
            for f in Path(tmp).glob("*.h5"):
                f.unlink()
        for n in sorted({int(s) for s in args.lhe_sizes}):
            path = Path(tmp) / f"events_{n}.lhe"
            replicate(args.lhe, n, path)
            results = {}
            for stage in LHE_STAGES:
                if stage in wanted:
                    results[stage] = measure(stage, n, path, args, args.timeout)
                    lines.append(_row("lhe", n, stage, results[stage], results))
                    print(lines[-1], flush=True)
            for f in Path(tmp).glob("*events_*"):
                f.unlink()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
