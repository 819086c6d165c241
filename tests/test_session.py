"""The one cleanup path: held commands, process groups, cleanups on every exit."""

import os
import subprocess
import time

import pytest

from ebpf_lab.errors import UsageError
from ebpf_lab.session import ProbeRun, resolve_command
from ebpf_lab.workloads import workload

pytestmark = pytest.mark.unit


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_held_command_keeps_its_pid_and_runs_only_after_release():
    with ProbeRun() as run:
        w = workload("getppid", 23, name="heldone")
        held = run.hold(w, stdout=subprocess.PIPE)
        time.sleep(0.2)
        with open(f"/proc/{held.pid}/comm") as fh:
            assert fh.read().strip().startswith("labhold")  # not yet exec'd
        held.release()
        out, _ = held.proc.communicate(timeout=10)
        assert out.decode().startswith("ns_per_syscall=")
        assert held.proc.returncode == 0


def test_unreleased_command_never_runs_and_is_reaped():
    marker = f"/tmp/ebpf-lab-never-{os.getpid()}"
    with ProbeRun() as run:
        held = run.hold(["/usr/bin/touch", marker])
    assert held.proc.returncode is not None
    assert not os.path.exists(marker)


def test_close_runs_on_exception_and_kills_the_process_group():
    cleaned = []
    with pytest.raises(RuntimeError):
        with ProbeRun() as run:
            proc = run.popen(["/bin/sh", "-c", "sleep 60 & sleep 60"])
            run.on_close(lambda: cleaned.append(True))
            time.sleep(0.2)
            raise RuntimeError("boom")
    assert cleaned == [True]
    assert proc.returncode is not None
    assert not _alive(proc.pid)


def test_resolve_command_makes_paths_absolute():
    assert resolve_command("cat /etc/hosts")[0].startswith("/")
    with pytest.raises(UsageError):
        resolve_command("no-such-program-here")
    with pytest.raises(UsageError):
        resolve_command([])
