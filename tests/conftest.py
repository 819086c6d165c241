"""Shared test machinery.

Tiers are pytest markers registered in pyproject.toml (unit, privileged, notebook,
exercises, bench). Privileged tests skip only on a conclusive "not supported"
from `doctor`; under CI (CI=true) a skip of a mechanism this machine is known to
have is turned into a failure, and so is a missing root.

After every privileged test the `no_leaks` check fails the test when a BPF
program, a bpftrace process or a child process of ours is left behind.
"""

from __future__ import annotations

import json
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
    "cgroup socket hooks", "bpf_send_signal", "USDT",
}


def is_root() -> bool:
    from ebpf_lab.privileges import missing_capabilities
    return not missing_capabilities()


def loaded_progs() -> dict[int, str]:
    """Every BPF program loaded on the machine: id -> name (bpftool -j)."""
    try:
        out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True, timeout=30).stdout
    except FileNotFoundError:
        return {}
    try:
        progs = json.loads(out or "[]")
    except json.JSONDecodeError:
        return {}
    return {p["id"]: p.get("name", "") for p in progs}


def held_prog_ids(pids) -> set[int]:
    """IDs of the BPF programs that processes ``pids`` hold open (from /proc/PID/fdinfo).

    bpftool's own "pids" column needs a BPF iterator, which this kernel refuses,
    so the file descriptors are read directly.
    """
    held = set()
    for pid in pids:
        fdinfo = Path(f"/proc/{pid}/fdinfo")
        try:
            entries = list(fdinfo.iterdir())
        except OSError:
            continue
        for entry in entries:
            try:
                text = entry.read_text()
            except OSError:
                continue
            for line in text.splitlines():
                if line.startswith("prog_id:"):
                    held.add(int(line.split()[1]))
    return held


def loaded_prog_ids() -> set[int]:
    return set(loaded_progs())


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
    """Fail the test if it leaves a BPF program or a child process behind.

    In CI the machine is ours alone, so the number of loaded programs must be back
    where it was. On a shared developer machine other runs load programs at the
    same time, so there a leak is a new program held by us or our children, or a
    new program that nobody holds (left attached to a cgroup, say).
    """
    before = loaded_prog_ids()
    yield
    deadline = time.monotonic() + 5
    while True:
        kids = our_descendants()
        ours = {os.getpid(), *kids}
        new = set(loaded_progs()) - before
        extra = new if IN_CI else new & held_prog_ids(ours)
        if not extra and not kids:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not kids, f"child processes left behind: {kids}"
    assert not extra, f"BPF programs left loaded: {sorted(extra)}"


SUMMARY_LINES = pytest.StashKey[list]()


@pytest.fixture(scope="session")
def summary_lines(request) -> list:
    """Lines a test wants in the run's closing summary (the second kernel's timings, say):
    CI logs show them even when every test passed."""
    return request.config.stash.setdefault(SUMMARY_LINES, [])


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    lines = config.stash.get(SUMMARY_LINES, [])
    if lines:
        terminalreporter.section("ebpf-lab measurements")
        for line in lines:
            terminalreporter.write_line(line)


# The override-kernel tier (tests/kernel2/test_override_kernel.py) needs a kernel built from
# source (583 s on an idle machine): it runs only when asked for, and is otherwise deselected
# (not skipped: nothing is wrong with this kernel, the tier simply was not requested).
OVERRIDE_OPTED_IN = os.environ.get("EBPF_LAB_OVERRIDE_KERNEL") in ("required", "build")
OVERRIDE_TIER = "test_override_kernel.py"


def pytest_report_header(config):
    if not OVERRIDE_OPTED_IN:
        return [f"override-kernel tier ({OVERRIDE_TIER}) deselected: run `make test-override-kernel` "
                "or EBPF_LAB_OVERRIDE_KERNEL=build make test to include it"]
    return []


def pytest_collection_modifyitems(config, items):
    for item in items:
        root_tier = any(item.get_closest_marker(m) for m in ("privileged", "notebook", "exercises", "bench"))
        if root_tier and "no_leaks" not in item.fixturenames:
            item.fixturenames.append("no_leaks")
    if not OVERRIDE_OPTED_IN:
        dropped = [i for i in items if i.path.name == OVERRIDE_TIER and i.get_closest_marker("kernel2")]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = [i for i in items if i not in dropped]


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
    from ebpf_lab.features import ALTERNATIVES

    instead = ALTERNATIVES.get(name)
    msg = f"this kernel does not support {name}: {detail}" + (f". Instead: {instead}" if instead else "") \
        + " (or run `make test-kernels` for a kernel that has it)"
    if IN_CI and name in EXPECTED_IN_CI:
        pytest.fail(f"{name} is expected to work on the CI machine but doctor says {status}: {detail}")
    if status == "missing":
        pytest.skip(msg)
    pytest.fail(f"doctor could not decide whether {name} works ({status}): {detail}")
