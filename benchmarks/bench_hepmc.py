"""HepMC object building: skminer's columnar jets/isolation against a per-event loop, in the same run.

Run ``python benchmarks/bench_hepmc.py [--file F] [--repeat R]``. Both sides start from the same particle record
(``read_hepmc_particles``; the shared ttH file repeated ``R`` times) and build the same objects: isolated photons
and leptons (pT > 10 GeV, relative isolation < 0.15 within Delta R 0.3) and anti-kt R = 0.4 jets with pT > 20 GeV
from the remaining visible particles. The baseline does it event by event with numpy and FastJet's classic
PseudoJet interface, as a hand-written analysis loop would; skminer does it for all events at once with awkward
arrays and FastJet's array interface (``skminer.simulation.hepmc.hepmc_objects``). The jet pTs of both are
compared.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from skminer.simulation.hepmc import INVISIBLE_PIDS, HepMCParticles, hepmc_objects, read_hepmc_particles

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "hepmc" / "tth_pythia8_20ev.hepmc.gz"


def per_event_loop(p: HepMCParticles) -> list[np.ndarray]:
    """Baseline: isolation and clustering one event at a time."""
    import fastjet

    jet_def = fastjet.JetDefinition(fastjet.antikt_algorithm, 0.4)
    offsets = np.concatenate([[0], np.cumsum(p.counts)])
    out = []
    for i in range(p.n_events):
        sl = slice(offsets[i], offsets[i + 1])
        pid, status = p.pid[sl], p.status[sl]
        px, py, pz, e = p.px[sl], p.py[sl], p.pz[sl], p.e[sl]
        vis = (status == 1) & ~np.isin(np.abs(pid), INVISIBLE_PIDS)
        pt = np.hypot(px, py)
        with np.errstate(divide="ignore", invalid="ignore"):
            eta = np.arcsinh(pz / pt)
        phi = np.arctan2(py, px)
        keep = vis.copy()
        for k in np.flatnonzero(vis & np.isin(np.abs(pid), (11, 13, 22)) & (pt > 10) & (np.abs(eta) < 2.5)):
            dphi = (phi[vis] - phi[k] + np.pi) % (2 * np.pi) - np.pi
            dr = np.hypot(eta[vis] - eta[k], dphi)
            if pt[vis][dr < 0.3].sum() - pt[k] < 0.15 * pt[k]:
                keep[k] = False
        inputs = [fastjet.PseudoJet(float(a), float(b), float(c), float(d))
                  for a, b, c, d in zip(px[keep], py[keep], pz[keep], e[keep], strict=True)]
        cs = fastjet.ClusterSequence(inputs, jet_def)
        jets = [j.pt() for j in cs.inclusive_jets(20.0) if abs(j.eta()) < 5.0]
        out.append(np.sort(jets)[::-1])
    return out


def repeat(p: HepMCParticles, r: int) -> HepMCParticles:
    return HepMCParticles(np.tile(p.counts, r), *(np.tile(a, r) for a in (p.pid, p.status, p.px, p.py, p.pz, p.e,
                                                                           p.mass)),
                          np.tile(p.weights, (r, 1)), p.weight_names, p.cross_section)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", default=str(DEFAULT))
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    particles = read_hepmc_particles(args.file)
    t_read = time.perf_counter() - t0
    hepmc_objects(particles)  # warm-up: imports and first-call costs stay out of the timings
    particles = repeat(particles, args.repeat)
    n = particles.n_events
    t0 = time.perf_counter()
    objs = hepmc_objects(particles)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    base = per_event_loop(particles)
    t_base = time.perf_counter() - t0
    ours = [np.asarray(j) for j in objs["j"].pt.to_list()]
    same = all(a.size == b.size and np.allclose(a, b, rtol=1e-9) for a, b in zip(ours, base, strict=True))
    print(f"{n} events ({particles.counts.mean():.0f} particles each); reading the file: "
          f"{t_read / (n / args.repeat) * 1e3:.1f} ms/event")
    print(f"{'objects (isolation + anti-kt jets)':<38} {'ms/event':>9} {'ratio':>7}")
    print(f"{'per-event loop (baseline)':<38} {t_base / n * 1e3:>9.2f} {1.0:>7.2f}")
    print(f"{'skminer hepmc_objects (columnar)':<38} {t_ours / n * 1e3:>9.2f} {t_base / t_ours:>7.2f}x")
    print(f"same jets: {same}")


if __name__ == "__main__":
    main()
