"""Run a snippet in a fresh interpreter under a memory ceiling and report its outcome, peak RSS and time.

Used by the hostile-input tests: a reader that trusts a file's declared sizes would allocate gigabytes, so the
snippet runs in a subprocess with an address-space limit (a regression fails there instead of swapping the
shared machine) and the test asserts on the measured peak resident memory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HOSTILE = Path(__file__).resolve().parent / "data" / "hostile"
_ADDRESS_SPACE_LIMIT = 6 << 30  # bytes; torch's import alone reserves about 1-2 GiB of address space

_WRAPPER = """
import json, resource, sys, time, traceback
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
namespace = {{}}
exec(compile(sys.argv[1], "<setup>", "exec"), namespace)
start = time.perf_counter()
error = None
try:
    exec(compile(sys.argv[2], "<snippet>", "exec"), namespace)
except BaseException as err:  # noqa: BLE001 - reported to the test
    error = f"{{type(err).__name__}}: {{err}}"
# VmHWM belongs to this program's address space; ru_maxrss would keep the forking parent's size across exec
hwm = [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")]
peak_kib = int(hwm[0]) if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("@@" + json.dumps({{"error": error, "seconds": time.perf_counter() - start, "peak_rss_mib": peak_kib / 1024}}))
"""


@dataclass
class Outcome:
    error: str | None  # "Type: message" of the exception the snippet raised, or None
    seconds: float  # time the snippet ran (after interpreter start-up and the setup's imports)
    peak_rss_mib: float  # peak resident memory of the whole interpreter, imports included
    log: str  # stderr (logging output)


def run_bounded(snippet: str, setup: str = "", timeout: float = 120.0) -> Outcome:
    """Run ``setup`` (imports, untimed) then ``snippet`` with ``python -c`` from the repository root,
    single-threaded, and return the snippet's outcome."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", _WRAPPER.format(limit=_ADDRESS_SPACE_LIMIT), setup, snippet],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO, check=False)
    marker = [line for line in proc.stdout.splitlines() if line.startswith("@@")]
    assert marker, f"snippet crashed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    data = json.loads(marker[-1][2:])
    return Outcome(data["error"], data["seconds"], data["peak_rss_mib"], proc.stderr)
