"""Run the learner's program in a separate process with a time limit.

The grader starts ``python -m ebpf_lab.grader._child JOB.json RESULT.json`` in its
own session. The child reads the job (what the learner may know: a command,
positional arguments; never the expected values), runs the learner's ``.bt``
file through :func:`ebpf_lab.bpftrace` or imports the learner's ``.py`` file and
calls its function, and writes a normalized JSON result. At the time limit the
child and everything it started (bpftrace, workloads) are ended and reaped.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ..session import ProbeRun, kill_process_group, time_scale
from .framework import ExerciseSpec, RunFailure, Unsupported

__all__ = ["descendants", "run_in_child", "time_scale"]

# seconds the child may use on top of the trial's limit to start Python and bpftrace
STARTUP_MARGIN = 8.0


def descendants(pid: int) -> list[int]:
    """Live descendants of ``pid`` (read from /proc)."""
    parents: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            rest = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if rest[0] != "Z":
            parents[int(d.name)] = int(rest[1])
    found, frontier = [], {pid}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier}
        found.extend(frontier)
    return found


def _kill_tree(proc: subprocess.Popen) -> None:
    # bpftrace and workloads run in sessions of their own: collect them first
    kids = descendants(proc.pid)
    kill_process_group(proc, grace=3.0)
    for pid in descendants(proc.pid) + kids:
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and any(_alive(p) for p in kids):
        time.sleep(0.1)
    for pid in kids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def run_in_child(spec: ExerciseSpec, path: Path, job: dict, timeout: float, *,
                 margin: float | None = None) -> Any:
    """Run the learner's file once for ``job``; return its normalized output.

    Raises :class:`RunFailure` with a learner-facing message when the program
    could not run (parse or verifier error, exception, time limit).
    """
    scale = time_scale()
    timeout *= scale
    full = dict(job)
    full.update(kind=spec.kind, path=str(Path(path).resolve()), function=spec.function,
                timeout=timeout)
    with tempfile.TemporaryDirectory(prefix="ebpf-lab-child-") as tmp:
        job_file = Path(tmp) / "job.json"
        out_file = Path(tmp) / "result.json"
        job_file.write_text(json.dumps(full))
        env = dict(os.environ)
        pkg_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = pkg_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        with ProbeRun() as run:
            proc = run.popen([sys.executable, "-m", "ebpf_lab.grader._child", str(job_file), str(out_file)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                             cwd=str(Path(path).resolve().parent))
            limit = timeout + (STARTUP_MARGIN if margin is None else margin) * scale
            try:
                captured, _ = proc.communicate(timeout=limit)
            except subprocess.TimeoutExpired:
                _kill_tree(proc)
                raise RunFailure(
                    f"your program was stopped at the time limit ({limit:g} s) and reported nothing: "
                    "does it wait for something that never comes (a missing exit(), an endless loop)?"
                ) from None
            if not out_file.exists():
                tail = "\n".join((captured or b"").decode(errors="replace").strip().splitlines()[-8:])
                raise RunFailure(f"your program's process ended without a result (exit status "
                                 f"{proc.returncode}). Its last output:\n{tail}")
            result = json.loads(out_file.read_text())
    if "unsupported" in result:
        raise Unsupported(result["unsupported"]["feature"], result["unsupported"]["message"])
    if "error" in result:
        raise RunFailure(result["error"])
    return result["output"]
