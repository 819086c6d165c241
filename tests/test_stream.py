"""Privileged tests of trace(): real programs on the running kernel, exact counts per workload.

Every test starts its own workload (random names, a prime count) and checks
the rows filtered to that workload's pid. Leak checks run after each test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import warnings

import numpy as np
import pytest

from ebpf_lab.errors import NotSupportedError, UnknownProbeError, UsageError, VerifierError
from ebpf_lab.stream import EventsLostWarning, trace
from ebpf_lab.workloads import labload_path, random_name, workload

pytestmark = pytest.mark.privileged

N = 23


def test_openat_rows_are_exactly_the_workload_files():
    w = workload("open", N, name=random_name())
    df = trace("tracepoint:syscalls:sys_enter_openat", command=w)
    pid = df.attrs["pid"]
    assert df.attrs["events"] == len(df) and df.attrs["lost"] == 0
    assert df.attrs["transport"] == "ringbuf"
    assert set(df["pid"]) == {pid} and set(df["tid"]) == {pid}
    assert set(df["comm"].astype(str)) == {w.comm}
    mine = df[df["filename"].str.startswith(w.expected["dir"] + "/")]
    assert mine["filename"].tolist() == w.expected["paths"]          # every file, in order, right strings
    assert (mine["dfd"] == -100).all()                                # AT_FDCWD as a signed int
    # the rest are the dynamic loader's: its cache and the shared libraries of labload
    others = df[~df.index.isin(mine.index)]["filename"].tolist()
    libs = subprocess.run(["ldd", str(labload_path())], capture_output=True, text=True, check=True).stdout
    wanted = ["/etc/ld.so.cache"] + [ln.split("=>")[1].split("(")[0].strip()
                                     for ln in libs.splitlines() if "=>" in ln]
    assert sorted(others) == sorted(wanted)
    assert "opened=23" in df.attrs["output"]


def test_getppid_exit_returns_our_pid_and_dtypes():
    df = trace("tracepoint:syscalls:sys_exit_getppid", command=workload("getppid", N))
    assert len(df) == N and df.attrs["events"] == N and df.attrs["lost"] == 0
    assert (df["ret"] == os.getpid()).all()
    dtypes = {c: str(t) for c, t in df.dtypes.items()}
    assert dtypes == {"time_ns": "int64", "time": "datetime64[ns]", "pid": "int32", "tid": "int32",
                      "comm": "category", "cpu": "int32", "ret": "int64"}
    assert df["time_ns"].is_monotonic_increasing
    # wall clock from the monotonic clock: within a minute of now
    now = np.datetime64("now", "ns")
    assert abs((df["time"].iloc[0] - now) / np.timedelta64(1, "s")) < 60
    assert "BPF_RINGBUF_OUTPUT" in df.attrs["program"]


def test_where_is_applied_in_the_kernel_and_strings_decode():
    w = workload("open_missing", N)
    df = trace("tracepoint:syscalls:sys_exit_openat", ["pid", "ret"], command=w, where="ret < 0")
    assert len(df) == N and (df["ret"] == -2).all()    # ENOENT; the loader's successful opens filtered out
    assert list(df.columns) == ["pid", "ret"]


def test_filtering_excludes_a_concurrent_process():
    # both workloads wait on stdin; once the probe is loaded the other one starts, then ours:
    # the other is still running when tracing ends, so its getppid calls overlapped the window
    other = subprocess.Popen(list(workload("getppid", 3_000_017, wait_stdin=True)), stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL)
    ours = subprocess.Popen(list(workload("getppid", N, wait_stdin=True)), stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL)
    before = _lab_probe_ids()

    def release():
        for _ in range(600):
            if _lab_probe_ids() - before:
                break
            threading.Event().wait(0.05)
        threading.Event().wait(0.3)
        for proc, pause in ((other, 0.05), (ours, 0)):
            proc.stdin.write(b"x")
            proc.stdin.close()
            threading.Event().wait(pause)

    releaser = threading.Thread(target=release, daemon=True)
    releaser.start()
    try:
        df = trace("tracepoint:syscalls:sys_enter_getppid", ["pid", "comm"], pid=ours.pid)
        still_running = other.poll() is None
    finally:
        releaser.join()
        for proc in (other, ours):
            proc.kill()
            proc.wait()
    assert len(df) == N and set(df["pid"]) == {ours.pid}
    assert still_running, "the concurrent workload ended too early to prove anything"


def _lab_probe_ids() -> set[int]:
    out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True).stdout
    return {p["id"] for p in json.loads(out or "[]") if p.get("name") == "lab_probe"}


def test_running_pid_until_it_exits():
    proc = subprocess.Popen(list(workload("getppid", N, wait_stdin=True)), stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL)
    before = _lab_probe_ids()

    def release_once_attached():   # the workload starts only when trace() has loaded its program
        for _ in range(600):
            if _lab_probe_ids() - before:
                threading.Event().wait(0.5)
                break
            threading.Event().wait(0.05)
        proc.stdin.write(b"x")
        proc.stdin.close()

    releaser = threading.Thread(target=release_once_attached, daemon=True)
    releaser.start()
    try:
        df = trace("tracepoint:syscalls:sys_exit_getppid", ["pid", "ret"], pid=proc.pid)
    finally:
        releaser.join()
        proc.kill()
        proc.wait()
    assert len(df) == N and (df["ret"] == os.getpid()).all() and set(df["pid"]) == {proc.pid}


def test_raw_tracepoint_sys_enter_ids_and_args():
    from ebpf_lab.syscalls import syscall_nr

    nr = syscall_nr("getppid")
    df = trace("rawtracepoint:sys_enter", ["id", "arg0"], command=workload("getppid", N), where=f"id == {nr}")
    assert len(df) == N and (df["id"] == nr).all()


def test_uprobe_and_uretprobe_on_libc_syscall():
    from ebpf_lab.elfsyms import resolve_library
    from ebpf_lab.syscalls import syscall_nr

    libc = resolve_library("c")
    enter = trace(f"uprobe:{libc}:syscall", ["arg0"], command=workload("getppid", N),
                  where=f"arg0 == {syscall_nr('getppid')}")
    assert len(enter) == N
    ret = trace(f"uretprobe:{libc}:syscall", ["retval"], command=workload("getppid", N),
                where=f"retval == {os.getpid()}")
    assert len(ret) == N


def test_losses_are_counted_exactly_with_a_tiny_buffer():
    n = 200_003
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = trace("tracepoint:syscalls:sys_enter_getppid", ["time_ns"], command=workload("getppid", n),
                   buffer_pages=1)
    lost = df.attrs["lost"]
    assert lost > 0, "a one-page buffer should overflow at 200,000 events"
    assert df.attrs["events"] + lost == n
    assert len(df) == df.attrs["events"]
    msgs = [str(w.message) for w in caught if issubclass(w.category, EventsLostWarning)]
    assert len(msgs) == 1 and f"{lost} events" in msgs[0] and "buffer_pages" in msgs[0]


def test_four_column_events_are_small():
    n = 20_011
    df = trace("tracepoint:syscalls:sys_exit_getppid", ["time_ns", "pid", "comm", "ret"],
               command=workload("getppid", n))
    assert len(df) == n and df.attrs["lost"] == 0
    assert df.memory_usage(deep=True).sum() / len(df) <= 100


def test_max_events_and_duration():
    df = trace("tracepoint:syscalls:sys_enter_getppid", ["pid"], command=workload("getppid", 5000), max_events=N)
    assert len(df) == N
    df = trace("tracepoint:syscalls:sys_enter_getppid", ["pid"], duration=0.3, where=f"pid == {os.getpid()}")
    assert len(df) == 0 and 0.3 <= df.attrs["duration"] < 5


def _interrupt_when_running(comm: str) -> threading.Thread:
    """SIGINT this process once a process called ``comm`` runs (the trace loop is then live)."""
    def watch():
        for _ in range(3000):
            for d in os.listdir("/proc"):
                if d.isdigit():
                    try:
                        with open(f"/proc/{d}/comm") as fh:
                            if fh.read().strip() == comm:
                                os.kill(os.getpid(), signal.SIGINT)
                                return
                    except OSError:
                        pass
            threading.Event().wait(0.01)
    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


def test_interrupt_returns_what_was_collected():
    w = workload("sleep", 20_000, name=random_name())
    watcher = _interrupt_when_running(w.comm)
    df = trace("tracepoint:syscalls:sys_enter_getppid", ["pid"], command=w)
    watcher.join()
    assert df.attrs["interrupted"] is True
    assert df.attrs["duration"] < 10


def test_bad_input_errors():
    with pytest.raises(UnknownProbeError) as exc:
        trace("tracepoint:syscalls:sys_exit_getppid", ["rett"], command=workload("getppid", 1))
    assert "ret" in exc.value.suggestions
    with pytest.raises(UnknownProbeError) as exc:
        trace("tracepoint:syscalls:sys_enter_opnat", command=workload("getppid", 1))
    assert "tracepoint:syscalls:sys_enter_openat" in exc.value.suggestions
    with pytest.raises(NotSupportedError):
        trace("kprobe:do_sys_openat2", duration=1)
    with pytest.raises(UsageError):
        trace("tracepoint:syscalls:sys_enter_getppid")          # whole machine, no end
    with pytest.raises(UsageError):
        trace("tracepoint:syscalls:sys_exit_getppid", command=workload("getppid", 1), where="ret < 0; x")


def test_verifier_rejection_keeps_the_log_and_leaves_nothing_loaded():
    from ebpf_lab._bcc import load_bcc
    from ebpf_lab.session import ProbeRun
    from ebpf_lab.stream import load_program

    bcc = load_bcc()
    bad = "int lab_probe(void *ctx) { return *(int *)((char *)ctx + 100000); }"
    with ProbeRun() as run:
        with pytest.raises(VerifierError) as exc:
            load_program(run, bcc, bad, probe="tracepoint:syscalls:sys_enter_getppid")
    assert "processed" in exc.value.log and "disallowed" in exc.value.log
    assert "disallowed" in str(exc.value)            # the relevant line is in the message
    assert exc.value.program == bad


def test_perf_buffer_fallback_is_exact_too():
    df = trace("tracepoint:syscalls:sys_exit_getppid", ["pid", "ret"], command=workload("getppid", N),
               transport="perf")
    assert df.attrs["transport"] == "perf" and "BPF_PERF_OUTPUT" in df.attrs["program"]
    assert len(df) == N and (df["ret"] == os.getpid()).all()
    n = 50_021
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = trace("tracepoint:syscalls:sys_enter_getppid", ["pid"], command=workload("getppid", n),
                   transport="perf", buffer_pages=1)
    assert df.attrs["lost"] > 0 and df.attrs["events"] + df.attrs["lost"] == n
    assert any(issubclass(w.category, EventsLostWarning) for w in caught)
