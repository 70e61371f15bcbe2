"""One output folder, one run: the lock, stale temporaries, fingerprinted stage outputs, disk full, read-only."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from skminer._atomic import atomic_write, remove_stale_temporaries
from skminer._run_folder import LOCK_NAME, FolderInUseError, run_lock
from skminer.cli import main

TINY = {
    "output": "out",
    "seed": 3,
    "simulation": {"simulator": "toy", "n_events": 2000},
    "augmentation": {"n_samples": 1000, "test_fraction": 0.5},
    "training": {"method": "sally", "params": {"hidden_layer_sizes": [8], "max_epochs": 1}},
    "inference": {"luminosity": 50.0, "n_bins": 5, "grid": {"n_points": 3}},
    "plots": {"enabled": False},
}
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
       "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])}


def _write(folder: Path, cfg: dict, name: str = "analysis.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _skminer(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "skminer", *args], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A folder holding a finished tiny analysis (copied by each test that changes it)."""
    folder = tmp_path_factory.mktemp("finished")
    assert main(["run", str(_write(folder, TINY))]) == 0
    return folder


def _copy(finished: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "analysis"
    shutil.copytree(finished, dst, copy_function=shutil.copy2)  # keeps mtimes: stages stay up to date
    return dst


def test_second_run_on_the_same_folder_is_refused(tmp_path):
    """Two `skminer run` processes on one folder: the second is refused, naming the first.

    The first trains for (practically) ever, so it certainly holds the lock while the second starts, however fast
    training is (at 200 epochs the first once finished during the second's start-up, and the second, finding the
    folder up to date, rightly exited 0); it is killed at the end."""
    cfg = dict(TINY, simulation={"simulator": "toy", "n_events": 20000},
               training={"method": "sally", "params": {"hidden_layer_sizes": [32, 32], "max_epochs": 1_000_000,
                                                       "early_stopping": False}})
    path = _write(tmp_path, cfg)
    first = _skminer("run", str(path))
    lock = tmp_path / "out" / LOCK_NAME
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # until the first holds the lock
            if lock.is_file() and lock.read_text() and json.loads(lock.read_text())["pid"] == first.pid:
                break
            assert first.poll() is None, first.communicate()
            time.sleep(0.2)
        second = _skminer("run", str(path))
        _, err = second.communicate(timeout=120)
        assert first.poll() is None, "the first run ended before the second was refused; the test proves nothing"
        assert second.returncode == 1
        assert f"is in use by process {first.pid}" in err and "analysis.yaml" in err
        assert "stage" not in err  # refused before running or reusing anything
    finally:
        first.kill()
        first.communicate()


def test_lock_is_released_and_reacquired(tmp_path):
    with run_lock(tmp_path) as writable:
        assert writable
        with pytest.raises(FolderInUseError, match=str(os.getpid())), run_lock(tmp_path):
            pass
    with run_lock(tmp_path) as writable:  # released when the first run ended
        assert writable


def test_stale_temporaries_removed_by_the_next_run(finished, tmp_path, caplog):
    folder = _copy(finished, tmp_path)
    out = folder / "out"
    stale = [out / ".events.h5.0123456789abcdef0123456789abcdef.tmp",
             out / ".train_sample.npz.fedcba9876543210fedcba9876543210.npz"]
    for path in stale:
        path.write_bytes(b"half written")
    keep = out / ".hidden_by_the_user"
    keep.write_text("x")
    assert main(["run", str(folder / "analysis.yaml")]) == 0
    assert not any(p.exists() for p in stale) and keep.exists()
    assert "removed 2 temporary file(s) of interrupted writes" in caplog.text
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["stages"].values()) == {"reused", "off"}  # plots.enabled: false


def test_atomic_write_temporaries_match_the_cleanup_pattern(tmp_path):
    """The cleanup recognises exactly the names atomic_write uses (a killed write leaves one of these)."""
    names = []
    for suffix in (".tmp", ".npz"):
        with pytest.raises(KeyboardInterrupt), atomic_write(tmp_path / "target.h5", suffix=suffix) as tmp:
            names.append(tmp.name)
            tmp.write_text("partial")
            shutil.copy(tmp, tmp_path / tmp.name.replace(".target", ".copy"))  # survives the rollback
            raise KeyboardInterrupt
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == sorted(n.replace(".target", ".copy") for n in names)


def test_replaced_output_is_detected_and_the_stage_reruns(finished, tmp_path, caplog):
    """A folder mixed by another run (an output replaced after its stage recorded it) is not taken as up to date."""
    folder = _copy(finished, tmp_path)
    out = folder / "out"
    model = out / "model.skm"
    original = _sha(model)
    other = dict(TINY, seed=4)  # another analysis: every output differs
    other_folder = tmp_path / "other"
    other_folder.mkdir()
    assert main(["run", str(_write(other_folder, other))]) == 0
    shutil.copy(other_folder / "out" / "model.skm", model)  # what an interleaved second run leaves behind
    assert main(["run", str(folder / "analysis.yaml")]) == 0
    stages = json.loads((out / "summary.json").read_text())["stages"]
    assert "model.skm'] changed since the stage wrote them" in caplog.text
    assert stages["train"] == "ran" and stages["simulate"] == stages["augment"] == "reused"
    assert _sha(model) == original  # training is seeded: the run's own model is back ...
    assert stages["infer"] == "reused"  # ... so the results it recorded are consistent again

    # an upstream output replaced: its stage runs again and, being seeded, restores it; what follows is reused
    test_events = _sha(out / "events_test.h5")
    shutil.copy(other_folder / "out" / "events_test.h5", out / "events_test.h5")
    assert _sha(out / "events_test.h5") != test_events
    assert main(["run", str(folder / "analysis.yaml")]) == 0
    stages = json.loads((out / "summary.json").read_text())["stages"]
    assert stages == {"simulate": "reused", "augment": "ran", "train": "reused", "infer": "reused", "plot": "off"}
    assert _sha(out / "events_test.h5") == test_events


def _limit_file_size(limit: int):
    def set_limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return set_limit


def test_disk_full_exits_cleanly_and_keeps_the_previous_file(finished, tmp_path):
    folder = _copy(finished, tmp_path)
    events = folder / "out" / "events.h5"
    before = _sha(events)
    proc = _skminer("run", str(folder / "analysis.yaml"), "--force",
                    preexec_fn=_limit_file_size(events.stat().st_size // 4))
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err  # not a crash (negative: killed by a signal)
    message = err[err.index("skminer: error:"):]  # (h5py prints the errors of its cleanup before it)
    assert "File too large" in message and message.rstrip().endswith("(outputs of earlier runs are unchanged)")
    assert "Traceback" not in message
    assert _sha(events) == before
    assert not [p for p in (folder / "out").iterdir() if p.name.startswith(".events.h5.")]  # no temporary left


def _make_read_only(folder: Path) -> bool:
    """Make ``folder`` unwritable, also for root (immutable attribute); False when that is impossible here."""
    folder.chmod(0o555)
    probe = folder / ".probe"
    try:
        probe.write_text("x")
    except PermissionError:
        return True
    probe.unlink()
    if shutil.which("chattr") and subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0:
        return True
    folder.chmod(0o755)
    return False


def _make_writable(folder: Path) -> None:
    if shutil.which("chattr"):
        subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
    folder.chmod(0o755)


def test_read_only_folder(finished, tmp_path, capsys):
    folder = _copy(finished, tmp_path)
    out = folder / "out"
    if not _make_read_only(out):
        pytest.skip("cannot make a folder read-only here")
    try:
        assert main(["run", str(folder / "analysis.yaml")]) == 0  # everything up to date: read-only use
        captured = capsys.readouterr()
        assert "expected limits" in captured.out
        changed = dict(TINY, inference=dict(TINY["inference"], luminosity=80.0))
        _write(folder, changed)
        assert main(["run", str(folder / "analysis.yaml")]) == 1
        err = capsys.readouterr().err
        assert f"{out} is not writable, and stage infer needs to run" in err
    finally:
        _make_writable(out)
