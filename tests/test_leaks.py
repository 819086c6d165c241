"""No bpftrace process, child or BPF program outlives a run that failed, timed out or was interrupted.

The probes here use tracepoints nobody else in the test suite uses
(sys_enter_mincore, sys_enter_getcpu...) so that the programs they load can be
recognised by name even while other tests load programs concurrently.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time

import pytest

from ebpf_lab.bpftrace import bpftrace
from ebpf_lab.errors import ProbeTimeout, ProgramSyntaxError
from ebpf_lab.workloads import workload

from conftest import our_descendants

pytestmark = pytest.mark.privileged

# bpftrace names a tracepoint program after the tracepoint, cut to 15 characters
PROBE = "tracepoint:syscalls:sys_enter_mincore"
PROG_NAME = "sys_enter_minco"


def progs_named(name: str) -> set[int]:
    out = subprocess.run(["bpftool", "prog", "show", "--json"], capture_output=True, text=True, timeout=30).stdout
    return {p["id"] for p in json.loads(out or "[]") if p.get("name") == name}


def bpftrace_children() -> list[int]:
    found = []
    for pid in our_descendants():
        try:
            with open(f"/proc/{pid}/comm") as fh:
                if fh.read().strip() == "bpftrace":
                    found.append(pid)
        except OSError:
            pass
    return found


def assert_clean() -> None:
    """Nothing of ours is left: no child process and no program of our probe.

    Programs are recognised by name: other engineers' tests load programs at
    the same time, so a global count would accuse them (the autouse
    ``no_leaks`` fixture does the global check; rerun alone if it flakes).
    """
    assert our_descendants() == [], "a child process outlived the run"
    deadline = time.monotonic() + 10
    while progs_named(PROG_NAME) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not progs_named(PROG_NAME), "the run's BPF program is still loaded"


@pytest.fixture
def before():
    """No program of our probe is loaded before the test starts."""
    assert not progs_named(PROG_NAME), "another run of this test is active: rerun alone"


def test_failing_run_leaves_nothing(before):
    with pytest.raises(ProgramSyntaxError):
        bpftrace(PROBE + " { @ = count() ")
    assert_clean()


def test_timed_out_run_leaves_nothing_and_kills_the_command(before):
    with pytest.raises(ProbeTimeout) as info:
        bpftrace(PROBE + " { @ = count(); } BEGIN { printf(\"up\\n\"); }", command=workload("sleep", 120_000),
                 timeout=3)
    assert info.value.result.timed_out and list(info.value.result.events["text"]) == ["up"]
    assert bpftrace_children() == []
    assert_clean()


def _interrupt_when_attached(stop: threading.Event) -> None:
    """Send ourselves SIGINT (what Jupyter's stop button does) once the probe is loaded."""
    deadline = time.monotonic() + 30
    while not stop.is_set() and time.monotonic() < deadline:
        if progs_named(PROG_NAME):
            time.sleep(1.5)          # BEGIN runs right after every probe is attached
            os.kill(os.getpid(), signal.SIGINT)
            return
        time.sleep(0.1)


def test_interrupted_run_returns_what_it_collected_and_leaves_nothing(before):
    stop = threading.Event()
    t = threading.Thread(target=_interrupt_when_attached, args=(stop,), daemon=True)
    t.start()
    try:
        with pytest.warns(UserWarning, match="interrupted"):
            r = bpftrace(PROBE + ' { @m = count(); } BEGIN { printf("up\\n"); @x = 7; }', timeout=60)
    except KeyboardInterrupt:   # must never escape bpftrace(): fail this test, not the session
        pytest.fail("KeyboardInterrupt escaped bpftrace()")
    finally:
        stop.set()
        t.join(5)
    assert r.interrupted and not r.timed_out
    assert list(r.events["text"]) == ["up"]
    assert r.maps["@x"].to_dict("list") == {"value": [7]}    # maps printed on SIGINT were collected
    assert bpftrace_children() == []
    assert_clean()
