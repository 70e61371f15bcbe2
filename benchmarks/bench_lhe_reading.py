"""LHE reading: time and peak memory of skminer's chunked event parser and reader against a plain pylhe pass.

Run ``python benchmarks/bench_lhe_reading.py [--lhe FILE] [--copies 2 8]``. The input's events are repeated
``copies`` times into a temporary file, so that the table shows how time and peak resident memory grow with the
file's size. Every measurement runs in a fresh interpreter (peak RSS from ``resource``, which includes the same
~150 MiB of imports in every row; seconds exclude the imports), single-threaded:

- ``pylhe pass``: iterate ``pylhe.LHEFile.fromfile(path).events`` and read each event's particles and weights
  (the baseline: what reading with pylhe costs before any array is built);
- ``skminer parse``: :func:`skminer.simulation._lhe_events.iter_event_chunks` (particles and weights as arrays,
  duplicate and count checks), chunks of 10 000 events;
- ``LHEReader.read``: the whole reader (objects, one observable, weight checks, normalisation) -> EventSet.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_scale import event_blocks
from bench_scale import replicate as replicate_events

REPO = Path(__file__).resolve().parents[1]
DEFAULT_LHE = REPO.parent / "shared" / "data" / "mg5_vbfh_ewdim6" / "unweighted_events.lhe.gz"

_WORKER = r"""
import json, resource, sys, time
from pathlib import Path
import pylhe
from skminer.parameters import ParameterSpace
from skminer.simulation._lhe_events import iter_event_chunks
from skminer.simulation.lhe import LHEReader, read_lhe_info
kind, path = sys.argv[1], sys.argv[2]
start = time.perf_counter()  # imports excluded: the same for every file size
if kind == "pylhe pass":
    n = 0
    for ev in pylhe.LHEFile.fromfile(path).events:
        n += len(ev.particles) > 0 and len(ev.weights) >= 0
elif kind == "skminer parse":
    info = read_lhe_info(Path(path))
    n = sum(c.n_events for c in iter_event_chunks(Path(path), declared=info.weight_ids, needed=info.weight_ids))
else:
    info = read_lhe_info(Path(path))
    space = ParameterSpace().add_parameter("g")
    for i, wid in enumerate(info.weight_ids):
        space.add_benchmark(wid, [float(i)])
    reader = LHEReader(space, check_benchmarks=False).add_sample(path).add_observable("n", "len(p)")
    n = reader.read().n_events
print(json.dumps({"events": int(n), "seconds": time.perf_counter() - start,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

KINDS = ("pylhe pass", "skminer parse", "LHEReader.read")


def replicate(source: Path, copies: int, target: Path) -> int:
    """Write ``source``'s header once and its events ``copies`` times to ``target``; return the event count."""
    return replicate_events(source, copies * len(event_blocks(source)[1]), target)


def measure(kind: str, path: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", _WORKER, kind, str(path)], capture_output=True, text=True,
                          env=env, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lhe", type=Path, default=DEFAULT_LHE)
    parser.add_argument("--copies", type=int, nargs="+", default=[2, 8])
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for copies in args.copies:
            path = Path(tmp) / f"events_x{copies}.lhe"
            n_events = replicate(args.lhe, copies, path)
            results = {kind: measure(kind, path) for kind in KINDS}
            base = results["pylhe pass"]["seconds"]
            for kind, r in results.items():
                assert r["events"] == n_events or kind == "LHEReader.read", (kind, r, n_events)
                rows.append((n_events, path.stat().st_size / 2**20, kind, r["seconds"], r["seconds"] / base,
                             n_events / r["seconds"], r["peak_rss_mib"]))
    print(f"{'events':>8} {'file MiB':>9} {'':<15} {'seconds':>8} {'vs pylhe':>9} {'events/s':>9} {'peak MiB':>9}")
    for n, size, kind, sec, ratio, rate, rss in rows:
        print(f"{n:>8} {size:>9.1f} {kind:<15} {sec:>8.2f} {ratio:>9.2f} {rate:>9.0f} {rss:>9.0f}")


if __name__ == "__main__":
    main()
