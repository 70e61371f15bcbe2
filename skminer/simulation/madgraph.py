"""MadGraph5_aMC@NLO wrapper: card writers and non-interactive runs of the user's MG5 installation.

* :func:`write_param_card` sets LHA ``BLOCK``/id entries of a template param card to a benchmark's values.
* :func:`edit_run_card` sets ``value = key`` entries of a run card (``nevents``, ``iseed``, ...).
* :func:`write_reweight_card` writes MG5's reweighting commands, one ``launch --rwgt_name=<benchmark>`` followed by
  ``set <BLOCK> <id> <value>`` lines per benchmark, so the weights in the LHE file carry the benchmark names.
* :class:`MadGraph` runs ``bin/mg5_aMC`` with a generated command script (``generate`` for the process directory,
  ``launch`` for event generation with the given cards), via :mod:`subprocess` without a shell, and returns the
  paths of the produced LHE files. A missing executable, a failed run (the message includes the end of the log) and
  a reweighting that left no weights in the LHE file raise clear errors.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._atomic import atomic_write
from ..parameters import ParameterSpace

__all__ = ["MadGraph", "MadGraphError", "edit_run_card", "write_param_card", "write_reweight_card"]

logger = logging.getLogger(__name__)

_LOG_TAIL_LINES = 40


class MadGraphError(RuntimeError):
    """MG5 failed or produced unusable output."""


def _atomic_write_text(path: Path, text: str) -> Path:
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"directory {path.parent} does not exist (for {path})")
    with atomic_write(path) as tmp:
        tmp.write_text(text)
    return path


def _lha_values(space: ParameterSpace, benchmark: str | Mapping[str, float] | Sequence[float]
                ) -> list[tuple[str, int, float]]:
    theta = space.as_theta(benchmark)[0]
    out = []
    for p, v in zip(space.parameters, theta, strict=True):
        if p.lha_block is None or p.lha_id is None:
            raise ValueError(f"parameter {p.name!r} has no LHA block/id; set lha_block and lha_id to write cards")
        out.append((p.lha_block, int(p.lha_id), float(v)))
    return out


def write_param_card(template: str | os.PathLike, output: str | os.PathLike, space: ParameterSpace,
                     benchmark: str | Mapping[str, float] | Sequence[float]) -> Path:
    """Write a param card with the benchmark's parameter values.

    Parameters
    ----------
    template : path-like
        Existing param card.
    output : path-like
        Written atomically.
    space : ParameterSpace
        Parameters with ``lha_block``/``lha_id``.
    benchmark : str, mapping or sequence
        Benchmark name or parameter values.

    Raises
    ------
    ValueError
        If an LHA block or id is not in the template.
    """
    template = Path(template)
    lines = template.read_text().splitlines(keepends=True)
    for block, lha_id, value in _lha_values(space, benchmark):
        in_block = False
        done = False
        for i, line in enumerate(lines):
            head = line.split("#")[0].split()
            if head and head[0].upper() == "BLOCK":
                in_block = len(head) > 1 and head[1].upper() == block.upper()
                continue
            if head and head[0].upper() == "DECAY":
                in_block = False
                continue
            if in_block and len(head) == 2 and head[0].lstrip("-").isdigit() and int(head[0]) == lha_id:
                comment = line[line.index("#"):].rstrip("\n") if "#" in line else ""
                lines[i] = f"  {lha_id:>4d} {value:.9e} {comment}".rstrip() + "\n"
                done = True
                break
        if not done:
            raise ValueError(f"{template}: no entry {lha_id} in BLOCK {block}")
    return _atomic_write_text(Path(output), "".join(lines))


def edit_run_card(template: str | os.PathLike, output: str | os.PathLike, settings: Mapping[str, Any]) -> Path:
    """Write a run card with ``value = key`` lines changed.

    Parameters
    ----------
    template, output : path-like
    settings : mapping
        ``{key: value}``, e.g. ``{"nevents": 10000, "iseed": 42, "use_syst": False}``.

    Raises
    ------
    ValueError
        If a key is not in the template.
    """
    template = Path(template)
    text = template.read_text()
    for key, value in settings.items():
        if isinstance(value, bool):
            value = "True" if value else "False"
        rx = re.compile(rf"^(\s*)(\S.*?)(\s*=\s*{re.escape(str(key))}\b)", re.MULTILINE)
        text, n = rx.subn(lambda m, v=value: f"{m.group(1)}{v}{m.group(3)}", text, count=1)
        if n == 0:
            raise ValueError(f"{template}: run card has no entry '= {key}'")
    return _atomic_write_text(Path(output), text)


def write_reweight_card(output: str | os.PathLike, space: ParameterSpace, benchmarks: Sequence[str] | None = None,
                        mode: str | None = "LO") -> Path:
    """Write an MG5 reweight card with one ``launch --rwgt_name=<benchmark>`` per benchmark.

    Parameters
    ----------
    output : path-like
    space : ParameterSpace
    benchmarks : sequence of str, optional
        Default: all benchmarks of ``space``.
    mode : str or None
        ``change mode <mode>`` line at the top (``None`` to omit).
    """
    names = list(space.benchmark_names if benchmarks is None else benchmarks)
    if not names:
        raise ValueError("no benchmarks to write a reweight card for")
    lines = [] if mode is None else [f"change mode {mode}"]
    for name in names:
        if not re.fullmatch(r"[A-Za-z0-9_]+", name):
            raise ValueError(f"benchmark name {name!r} cannot be an MG5 rwgt_name (letters, digits, _ only)")
        lines.append(f"launch --rwgt_name={name}")
        for block, lha_id, value in _lha_values(space, name):
            lines.append(f"set {block.upper()} {lha_id} {value!r}")
    return _atomic_write_text(Path(output), "\n".join(lines) + "\n")


class MadGraph:
    """Run a local MG5_aMC installation non-interactively.

    Parameters
    ----------
    mg5 : path-like
        MG5 directory (containing ``bin/mg5_aMC``) or the executable itself.
    python : str, optional
        Interpreter to run the executable with (default: execute it directly).
    timeout : float, optional
        Seconds per MG5 call.

    Raises
    ------
    FileNotFoundError
        If the executable does not exist.
    """

    def __init__(self, mg5: str | os.PathLike, python: str | None = None, timeout: float | None = None) -> None:
        path = Path(mg5)
        exe = path / "bin" / "mg5_aMC" if path.is_dir() else path
        if not exe.is_file():
            raise FileNotFoundError(f"MG5 executable not found at {exe} (give the MG5_aMC directory or bin/mg5_aMC)")
        if python is None and not os.access(exe, os.X_OK):
            raise PermissionError(f"MG5 executable {exe} is not executable; pass python=... to run it with Python")
        self.executable = exe
        self.python = python
        self.timeout = timeout

    def _run(self, commands: Sequence[str], log_path: Path, cwd: Path) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        script = log_path.with_suffix(".mg5")
        _atomic_write_text(script, "\n".join(commands) + "\n")
        cmd = ([self.python] if self.python else []) + [str(self.executable), str(script)]
        logger.info("running %s (log: %s)", " ".join(cmd), log_path)
        with open(log_path, "w") as log:
            try:
                proc = subprocess.run(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                      timeout=self.timeout, check=False)
            except subprocess.TimeoutExpired:
                raise MadGraphError(f"MG5 timed out after {self.timeout} s; log {log_path}:\n"
                                    f"{_tail(log_path)}") from None
        text = log_path.read_text(errors="replace")
        if proc.returncode != 0 or re.search(r"^Command \".*\" interrupted", text, re.MULTILINE):
            raise MadGraphError(f"MG5 failed (exit code {proc.returncode}); script {script}, log {log_path}; last "
                                f"lines:\n{_tail(log_path)}")

    def generate(self, commands: Sequence[str] | str | os.PathLike, process_dir: str | os.PathLike) -> Path:
        """Create a process directory: ``import model``/``generate``/``add process`` lines, then ``output``.

        Parameters
        ----------
        commands : sequence of str, or path of a proc card
            Commands without the final ``output`` (an ``output`` line in a proc card is replaced).
        process_dir : path-like
        """
        if isinstance(commands, (str, os.PathLike)) and Path(commands).is_file():
            lines = Path(commands).read_text().splitlines()
        elif isinstance(commands, str):
            lines = commands.splitlines()
        else:
            lines = list(commands)
        lines = [ln for ln in lines if ln.strip() and not ln.strip().startswith("#")
                 and not ln.strip().startswith(("output", "launch"))]
        out = Path(process_dir).resolve()
        self._run([*lines, f"output {out} -f"], out.parent / f"{out.name}_generate.log", out.parent)
        if not (out / "Cards").is_dir():
            raise MadGraphError(f"MG5 finished but {out}/Cards does not exist")
        return out

    def launch(self, process_dir: str | os.PathLike, *, run_name: str = "run_01", param_card: str | os.PathLike |
               None = None, run_card: str | os.PathLike | None = None, reweight_card: str | os.PathLike | None = None,
               run_settings: Mapping[str, Any] | None = None, shower: str = "OFF") -> Path:
        """Generate events in an existing process directory.

        Parameters
        ----------
        process_dir : path-like
        run_name : str
        param_card, run_card, reweight_card : path-like, optional
            Cards to use (copied by MG5 into the run); ``reweight_card`` switches reweighting on.
        run_settings : mapping, optional
            ``set <key> <value>`` commands (e.g. ``{"nevents": 1000, "iseed": 3}``).
        shower : str
            MG5's shower switch (``OFF`` or e.g. ``Pythia8``).

        Returns
        -------
        Path
            The produced ``Events/<run_name>/unweighted_events.lhe.gz``.

        Raises
        ------
        MadGraphError
            If MG5 fails, produces no LHE file or the reweighting left no weights in it.
        """
        pdir = Path(process_dir).resolve()
        if not (pdir / "Cards").is_dir():
            raise FileNotFoundError(f"{pdir} is not an MG5 process directory (no Cards/); call generate() first")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", run_name):
            raise ValueError(f"run_name {run_name!r} may only contain letters, digits, '_', '.', '-'")
        cmds = [f"launch {pdir} -n {run_name}", f"shower={shower}", "detector=OFF", "analysis=OFF",
                f"reweight={'ON' if reweight_card is not None else 'OFF'}", "done"]
        for key, value in (run_settings or {}).items():
            cmds.append(f"set {key} {value}")
        for card in (param_card, run_card, reweight_card):
            if card is not None:
                card = Path(card).resolve()
                if not card.is_file():
                    raise FileNotFoundError(f"card {card} does not exist")
                cmds.append(str(card))
        cmds.append("done")
        self._run(cmds, pdir / "Events" / f"{run_name}_launch.log", pdir)
        lhe = pdir / "Events" / run_name / "unweighted_events.lhe.gz"
        if not lhe.exists():
            alt = lhe.with_suffix("")
            if not alt.exists():
                raise MadGraphError(f"MG5 finished but produced no {lhe}; log:\n"
                                    f"{_tail(pdir / 'Events' / f'{run_name}_launch.log')}")
            lhe = alt
        if reweight_card is not None:
            self._check_reweighting(lhe, Path(reweight_card))
        logger.info("MG5 run %s produced %s", run_name, lhe)
        return lhe

    @staticmethod
    def _check_reweighting(lhe: Path, reweight_card: Path) -> None:
        from .lhe import read_lhe_info

        expected = re.findall(r"--rwgt_name=(\S+)", reweight_card.read_text())
        ids = read_lhe_info(lhe).weight_ids
        missing = [n for n in expected if n not in ids]
        if missing:
            raise MadGraphError(f"reweighting produced no weights {missing} in {lhe} (declared weight ids: "
                                f"{ids[:20]}); check the MG5 reweight log")

    def run_benchmarks(self, process_dir: str | os.PathLike, space: ParameterSpace, sampling_benchmarks:
                       Sequence[str], *, param_card_template: str | os.PathLike, run_card: str | os.PathLike |
                       None = None, run_settings: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
                       reweight_benchmarks: Sequence[str] | None = None, shower: str = "OFF"
                       ) -> dict[str, Path]:
        """One run per sampling benchmark (its param card), each reweighted to ``reweight_benchmarks``.

        Parameters
        ----------
        run_settings : mapping or sequence of mappings
            Common settings, or one mapping per run (e.g. different seeds).

        Returns
        -------
        dict
            ``{sampling benchmark: LHE path}``; feed them to :meth:`LHEReader.add_sample`.
        """
        pdir = Path(process_dir).resolve()
        cards = pdir / "skminer_cards"
        cards.mkdir(parents=True, exist_ok=True)
        settings = list(run_settings) if isinstance(run_settings, Sequence) else [run_settings or {}] * len(
            sampling_benchmarks)
        if len(settings) != len(sampling_benchmarks):
            raise ValueError(f"run_settings has {len(settings)} entries for {len(sampling_benchmarks)} runs")
        rw_names = list(space.benchmark_names if reweight_benchmarks is None else reweight_benchmarks)
        rw_card = write_reweight_card(cards / "reweight_card.dat", space, rw_names) if rw_names else None
        out = {}
        for k, (bench, sett) in enumerate(zip(sampling_benchmarks, settings, strict=True)):
            pc = write_param_card(param_card_template, cards / f"param_card_{bench}.dat", space, bench)
            rc = None
            if run_card is not None:
                rc = Path(shutil.copyfile(run_card, cards / f"run_card_{k}.dat"))
            out[bench] = self.launch(pdir, run_name=f"run_{k + 1:02d}_{bench}", param_card=pc, run_card=rc,
                                     reweight_card=rw_card, run_settings=sett, shower=shower)
        return out


def _tail(path: Path, n: int = _LOG_TAIL_LINES) -> str:
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:])
