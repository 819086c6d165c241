"""The syscall table of the running kernel.

Unit tests cover the pieces that need no kernel (decoding get_syscall_name's
machine code as captured on 6.18, the consistency filter, the cache, the
header fallback). Privileged tests read the real kernel and check it against
the x86_64 ABI anchors, the syscalls:* tracepoints, and the numbers the kernel
itself reports for a workload's syscalls.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from ebpf_lab import syscalls
from ebpf_lab.errors import SetupError, UnknownProbeError, UsageError

# the first 96 bytes of get_syscall_name on 6.18.44 (read with BPF), at this address:
GSN_ADDRESS = 0xFFFFFFFF814B11A0
GSN_CODE = bytes.fromhex(
    "488b05d9776d0281ffd5010000771b4885c074164863ff488b04f84885c0740c488b0031ffe9412fc5ff"
    "31c031ffe9382fc5ffcccccccccccccccccccccccccc90909090909090909090909090909090415455534863"
    "df81fb002000007f5f49"
)


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """Empty per-process caches and a private cache directory."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    syscalls._table.cache_clear()
    syscalls._maps.cache_clear()
    yield tmp_path
    syscalls._table.cache_clear()
    syscalls._maps.cache_clear()


def fake_kernel(monkeypatch, pairs):
    calls = []

    def reader():
        calls.append(1)
        return list(pairs)

    monkeypatch.setattr(syscalls, "read_kernel_syscalls", reader)
    return calls


@pytest.mark.unit
def test_decode_get_syscall_name():
    # mov rax, [rip+0x26d77d9] -> the syscalls_metadata variable
    assert syscalls.rip_relative_loads(GSN_CODE, GSN_ADDRESS) == [0xFFFFFFFF83B88980]
    # cmp edi, 0x1d5 bounds the index: NR_syscalls - 1 = 469
    assert syscalls.cmp_immediates(GSN_CODE.split(b"\xcc\xcc", 1)[0]) == [469]
    assert syscalls.rip_relative_loads(b"\x90" * 16, GSN_ADDRESS) == []


@pytest.mark.unit
def test_consistent_entries_keep_only_self_describing_slots():
    entries = [(0, 0, "sys_read"), (1, 7, "sys_write"), (2, 2, "garbage"), (3, 3, "sys_x\x01y"),
               (257, 257, "sys_openat")]
    assert syscalls.consistent_entries(entries) == {0: "read", 257: "openat"}


@pytest.mark.unit
def test_headers_give_the_x86_64_abi():
    df = syscalls.syscall_table(source="headers")
    assert list(df.columns) == ["nr", "name"]
    nr = dict(zip(df.name, df.nr))
    assert (nr["openat"], nr["openat2"], nr["getppid"]) == (257, 437, 110)
    assert "header" in df.attrs["source"] and "not the running kernel" in df.attrs["source"]


@pytest.mark.unit
def test_kernel_table_is_cached_per_release_and_boot(monkeypatch, fresh):
    calls = fake_kernel(monkeypatch, [(0, "read"), (4, "newstat"), (257, "openat")])
    df = syscalls.syscall_table()
    assert df.values.tolist() == [[0, "read"], [4, "newstat"], [257, "openat"]]
    assert df.attrs["source"].startswith("running kernel")
    path = syscalls.cache_path()
    boot_id = open("/proc/sys/kernel/random/boot_id").read().strip()
    assert path == fresh / "ebpf-lab" / f"syscalls-{os.uname().release}-{boot_id}.json"
    assert json.loads(path.read_text())["table"] == [[0, "read"], [4, "newstat"], [257, "openat"]]
    # a new process (empty lru caches) reads the file and does not touch the kernel
    syscalls._table.cache_clear()
    syscalls._maps.cache_clear()
    again = syscalls.syscall_table()
    assert again.values.tolist() == df.values.tolist() and len(calls) == 1
    syscalls.syscall_table(refresh=True)
    assert len(calls) == 2


@pytest.mark.unit
def test_names_numbers_and_typos(monkeypatch, fresh):
    fake_kernel(monkeypatch, [(0, "read"), (4, "newstat"), (110, "getppid"), (257, "openat"), (437, "openat2")])
    assert syscalls.syscall_name(257) == "openat"
    assert syscalls.syscall_name(9999) == "syscall_9999"
    assert syscalls.syscall_nr("openat2") == 437
    assert syscalls.syscall_nr("sys_getppid") == 110
    assert syscalls.syscall_nr("newstat") == 4
    assert syscalls.syscall_nr("stat") == 4  # the ABI's name for the kernel's newstat
    with pytest.raises(UnknownProbeError) as info:
        syscalls.syscall_nr("opnat")
    assert info.value.suggestions[0] == "openat"
    assert "did you mean" in str(info.value)
    with pytest.raises(UnknownProbeError):
        syscalls.syscall_nr("write")  # in the headers, but not in this (fake) kernel


@pytest.mark.unit
def test_fallback_to_headers_says_so(monkeypatch, fresh):
    def broken():
        raise SetupError("no way in", cause="test")

    monkeypatch.setattr(syscalls, "read_kernel_syscalls", broken)
    df = syscalls.syscall_table()
    assert "header" in df.attrs["source"]
    assert "no way in" in df.attrs["warning"]
    assert dict(zip(df.name, df.nr))["openat"] == 257
    syscalls._table.cache_clear()
    with pytest.raises(SetupError):
        syscalls.syscall_table(source="kernel")
    with pytest.raises(UsageError):
        syscalls.syscall_table(source="guess")


@pytest.mark.privileged
def test_read_kernel_syscalls_anchors():
    pairs = syscalls.read_kernel_syscalls()
    table = dict(pairs)
    assert (table[257], table[437], table[110], table[0], table[59]) == (
        "openat", "openat2", "getppid", "read", "execve")
    assert len(table) > 300


@pytest.mark.privileged
def test_kernel_names_are_exactly_the_syscall_tracepoints(fresh):
    from ebpf_lab import tracefs

    df = syscalls.syscall_table(source="kernel", refresh=True)
    assert df.attrs["source"].startswith("running kernel")
    events = tracefs.available_events()
    enter = {e.split(":", 1)[1][len("sys_enter_"):] for e in events if e.startswith("syscalls:sys_enter_")}
    assert set(df.name) == enter
    assert df.nr.is_unique and df.nr.is_monotonic_increasing


@pytest.mark.privileged
def test_numbers_match_what_the_kernel_reports_for_a_workload(fresh):
    """bpftrace records args->__syscall_nr of each syscall tracepoint the
    workload hits; the table must give each of those probes' names back."""
    from ebpf_lab.session import ProbeRun
    from ebpf_lab.workloads import workload

    n = 23
    w = workload("open", n)
    prog = ("tracepoint:syscalls:sys_enter_openat, tracepoint:syscalls:sys_enter_close, "
            "tracepoint:syscalls:sys_enter_exit_group /pid == cpid/ "
            "{ @[probe, args->__syscall_nr] = count(); }")
    with ProbeRun() as run:
        proc = run.popen(["bpftrace", "-f", "json", "-e", prog, "-c", " ".join(w)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-500:]
    data = {}
    for line in out.splitlines():
        if line.startswith("{") and '"type": "map"' in line:
            data.update(json.loads(line)["data"]["@"])
    seen = {}
    for key, count in data.items():
        probe, nr = key.rsplit(",", 1)
        seen[probe.split(":")[-1][len("sys_enter_"):]] = (int(nr), count)
    assert set(seen) == {"openat", "close", "exit_group"}, data
    for name, (nr, _count) in seen.items():
        assert syscalls.syscall_name(nr) == name
        assert syscalls.syscall_nr(name) == nr
    assert seen["openat"][1] >= n and seen["exit_group"][1] == 1
