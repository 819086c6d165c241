"""Shared test machinery.

Tiers are pytest markers registered in pyproject.toml (unit, privileged, notebook,
exercises, bench). Privileged tests skip only on a conclusive "not supported"
from `doctor`; under CI (CI=true) a skip of a mechanism this machine is known to
have is turned into a failure, and so is a missing root.

After every privileged test the `no_leaks` check fails the test when a BPF
program, a bpftrace process or a child process of ours is left behind.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# What KERNEL_FACTS.md says works on the CI machine: in CI these may never skip.
EXPECTED_IN_CI = {
    "tracepoint", "raw tracepoint", "uprobe", "uretprobe", "perf event", "ring buffer",
    "cgroup socket hooks", "bpf_send_signal",
}


def is_root() -> bool:
    from ebpf_lab.privileges import missing_capabilities
    return not missing_capabilities()


def loaded_prog_ids() -> set[int]:
    """IDs of every BPF program loaded on the machine (bpftool, else /proc fdinfo)."""
    try:
        out = subprocess.run(["bpftool", "prog", "show"], capture_output=True, text=True, timeout=30).stdout
    except FileNotFoundError:
        return set()
    ids = set()
    for line in out.splitlines():
        head = line.split(":", 1)[0]
        if head.isdigit():
            ids.add(int(head))
    return ids


def our_descendants() -> list[int]:
    """PIDs of live (non-zombie) descendants of this test process."""
    me = os.getpid()
    parents: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        rest = stat.rsplit(")", 1)[1].split()
        if rest[0] == "Z":
            continue
        parents[int(d.name)] = int(rest[1])
    found, frontier = [], {me}
    while frontier:
        nxt = {pid for pid, ppid in parents.items() if ppid in frontier}
        found.extend(nxt)
        frontier = nxt
    return sorted(found)


@pytest.fixture
def no_leaks():
    """Fail the test if it leaves a BPF program or a child process behind."""
    before = loaded_prog_ids()
    yield
    deadline = time.monotonic() + 5
    while True:
        extra_progs = loaded_prog_ids() - before
        kids = our_descendants()
        if not extra_progs and not kids:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not kids, f"child processes left behind: {kids}"
    assert not extra_progs, f"BPF programs left loaded: {sorted(extra_progs)}"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("privileged") or item.get_closest_marker("notebook") \
                or item.get_closest_marker("exercises") or item.get_closest_marker("bench"):
            if "no_leaks" not in item.fixturenames and item.get_closest_marker("privileged"):
                item.fixturenames.append("no_leaks")


@pytest.fixture(autouse=True)
def _needs_root(request):
    needs = any(request.node.get_closest_marker(m) for m in ("privileged", "notebook", "exercises", "bench"))
    if needs and not is_root():
        if IN_CI:
            pytest.fail("CI must run as root: privileged tests cannot be skipped in CI")
        pytest.skip("needs root (CAP_BPF and CAP_PERFMON): run `sudo make test`, or deselect with -m unit")


def require_feature(name: str) -> None:
    """Skip unless `doctor` says the mechanism works; in CI, fail for expected ones."""
    from ebpf_lab.doctor import mechanism_status

    status, detail = mechanism_status(name)
    if status == "ok":
        return
    msg = f"this kernel does not support {name}: {detail}"
    if IN_CI and name in EXPECTED_IN_CI:
        pytest.fail(f"{name} is expected to work on the CI machine but doctor says {status}: {detail}")
    if status == "missing":
        pytest.skip(msg)
    pytest.fail(f"doctor could not decide whether {name} works ({status}): {detail}")
