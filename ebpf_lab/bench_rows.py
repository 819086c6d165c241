"""The rows of the benchmark: one way each of watching the same ``getppid()`` loop.

Every row runs the shared workload ``workload("getppid", n)`` (a C loop of ``n``
``getppid()`` syscalls that prints its own ``ns_per_syscall=``) under one
tracer, filtered to the workload's pid, and returns a :class:`Measurement`:
ns per syscall (the workload's own figure), events delivered, events lost and
the tracer's peak memory.

Every tracer runs in a process of its own, and its peak memory is the
kernel's high-water mark ``VmHWM`` in ``/proc/<pid>/status``, read every
10 ms until it exits (``os.wait4``'s ``ru_maxrss`` would not do: a child
forked from a big Python process inherits its parent's high-water mark
through ``exec``). The rows written in Python (ebpf_lab's own
``syscall_counts`` and ``trace``, and a tiny bcc program) run in
``python -m ebpf_lab.bench_rows``, which reads its own ``VmHWM`` at the end
and prints one JSON line. The parsers at the top are pure and tested
without root.

Used by :mod:`ebpf_lab.bench` (``ebpf-lab bench``); see docs/BENCHMARK.md.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from typing import Callable

from .errors import BackendMissingError, ProbeError, ProbeTimeout, UsageError

__all__ = [
    "ROWS",
    "Measurement",
    "RowSpec",
    "getppid_number",
    "measure",
    "parse_bpftrace_count",
    "parse_bpftrace_printf",
    "parse_lost",
    "parse_ns_per_syscall",
    "parse_perf_trace_summary",
    "parse_strace_summary",
]

# --------------------------------------------------------------------------- pure parsers

_NS_RE = re.compile(r"^ns_per_syscall=([0-9.]+)\s*$", re.M)
_LOST_RE = re.compile(r"\bLOST\s+(\d+)\s+events\b", re.I)

# getppid's number where the running kernel's table is not at hand
_GETPPID_NR = {"x86_64": 110, "aarch64": 173, "riscv64": 173, "arm64": 173}


def parse_ns_per_syscall(text: str) -> float:
    """The workload's own ``ns_per_syscall=<float>`` figure from its output.

    Raises ProbeError when the line is missing (the workload did not finish).
    """
    found = _NS_RE.findall(text)
    if not found:
        raise ProbeError(
            "the getppid workload did not report ns_per_syscall",
            cause="it was killed, or its output went somewhere else",
            next_step="run it by hand: python -c \"from ebpf_lab.workloads import workload; "
            "print(workload('getppid', 1000).run().stdout)\"",
            stderr=text[-2000:],
        )
    return float(found[-1])


def parse_lost(text: str) -> int:
    """Sum of every ``Lost N events`` / ``LOST N events!`` line (bpftrace, perf)."""
    return sum(int(m) for m in _LOST_RE.findall(text))


def parse_bpftrace_count(stdout: str, syscall_nr: int) -> int:
    """The count for ``syscall_nr`` in bpftrace ``-f json`` output of ``@[args->id] = count()``."""
    total = None
    for line in stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if obj.get("type") == "map":
            for _name, values in obj.get("data", {}).items():
                if isinstance(values, dict) and str(syscall_nr) in values:
                    total = (total or 0) + int(values[str(syscall_nr)])
    if total is None:
        raise ProbeError(f"bpftrace printed no count for syscall {syscall_nr}",
                         cause="the probe saw no getppid() from the workload, or bpftrace stopped early",
                         next_step="run the bpftrace line from docs/BENCHMARK.md by hand", stderr=stdout[-2000:])
    return total


def parse_bpftrace_printf(stdout: str) -> int:
    """Number of event lines (digits only: one ``printf("%d\\n", tid)`` each)."""
    return sum(1 for line in stdout.splitlines() if line.isdigit())


def parse_perf_trace_summary(text: str, syscall: str = "getppid") -> int:
    """Calls of ``syscall`` in ``perf trace -s`` output (``   getppid   20000   0 ...``).

    Sums over threads: perf prints one block per thread.
    """
    total = None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == syscall and parts[1].isdigit():
            total = (total or 0) + int(parts[1])
    if total is None:
        raise ProbeError(f"no {syscall} line in perf trace's summary", stderr=text[-2000:],
                         cause="perf trace did not trace the workload",
                         next_step="run `perf trace -s -- CMD` on the workload by hand")
    return total


def parse_strace_summary(text: str, syscall: str = "getppid") -> int:
    """Calls of ``syscall`` in ``strace -c`` output (the syscall name is the last column).

    The ``calls`` column is the fourth; an ``errors`` column may sit between it and the name.
    """
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[-1] == syscall:
            return int(parts[3])
    raise ProbeError(f"no {syscall} line in strace's summary", stderr=text[-2000:],
                     cause="strace did not trace the workload",
                     next_step="run `strace -c -f` on the workload by hand")


def getppid_number() -> int:
    """getppid's syscall number on this machine (from ebpf_lab.syscalls when it is there)."""
    try:
        from .syscalls import syscall_table  # noqa: PLC0415 - optional, written by another module

        table = syscall_table()
        for key in ("number", "nr", "id"):
            if hasattr(table, "columns") and key in table.columns and "name" in table.columns:
                hit = table[table["name"] == "getppid"][key]
                if len(hit):
                    return int(hit.iloc[0])
    except Exception:  # noqa: BLE001 - fall back to the architecture's table
        pass
    try:
        return _GETPPID_NR[platform.machine()]
    except KeyError:
        raise UsageError(f"the getppid syscall number on {platform.machine()} is unknown to the benchmark",
                         next_step="add it to _GETPPID_NR in ebpf_lab/bench_rows.py") from None


# --------------------------------------------------------------------------- measurements


@dataclasses.dataclass
class Measurement:
    """One run of one row.

    ``events``/``lost``: None where the row delivers no events (untraced).
    ``peak_rss_kb``: the tracer's peak resident memory (None for untraced).
    ``extra``: row-specific facts (``bytes_per_event`` for trace()).
    """

    row: str
    n: int
    ns_per_syscall: float
    events: int | None = None
    lost: int | None = None
    peak_rss_kb: int | None = None
    wall_s: float = 0.0
    extra: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class RowSpec:
    """A row of the table: its name, how it is run, and what it costs roughly.

    ``expected_ns`` sizes the row's N so one repetition takes about the time
    budget (strace at ~90 µs/syscall would take minutes at 2 M syscalls);
    ``exact`` says whether delivered + lost must equal N: true where the kernel counts
    (maps, the ring buffer's failed reserves) or ptrace stops the tracee; false for
    perf buffers, whose losses at the end of a run go unreported, and perf trace -s.
    """

    name: str
    label: str
    how: str
    expected_ns: float
    exact: bool = True
    kind: str = "events"  # "none" | "count" (in-kernel aggregation) | "events" (every event to user space)


ROWS: tuple[RowSpec, ...] = (
    RowSpec("untraced", "untraced", "the C loop alone", 150, exact=False, kind="none"),
    RowSpec("syscall_counts", "ebpf_lab syscall_counts()", "in-kernel count per syscall, pid filter (bcc)",
            400, kind="count"),
    RowSpec("bpftrace_count", "bpftrace count()",
            "tracepoint:raw_syscalls:sys_enter /pid == cpid/ { @[args->id] = count(); }", 400, kind="count"),
    RowSpec("trace", "ebpf_lab trace()", "every sys_enter_getppid to a DataFrame (ring buffer)", 600),
    RowSpec("trace_floor", "trace()'s probe, counting only",
            "sys_enter_getppid with trace()'s pid filter and one per-CPU counter, no record (bcc): "
            "the floor under trace()", 300, kind="count"),
    RowSpec("bpftrace_printf", "bpftrace printf", "every sys_enter_getppid printf'd (perf buffer)", 10_000,
            exact=False),
    RowSpec("bcc_perf", "bcc perf buffer + Python callback", "every sys_enter_getppid to a Python callback",
            10_000, exact=False),
    RowSpec("perf_trace", "perf trace -s", "perf trace -s -- CMD (summary only)", 50_000, exact=False),
    RowSpec("strace", "strace -c -f", "strace -c -f -- CMD (ptrace)", 90_000),
)


class _Collected:
    def __init__(self) -> None:
        self.stdout = b""
        self.stderr = b""
        self.status: int | None = None
        self.peak_rss_kb: int | None = None
        self.wall_s = 0.0


def vm_hwm_kb(pid: int | str = "self") -> int | None:
    """The peak resident memory (``VmHWM``, kB) of a live process, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _run_tracer(argv: list[str], *, timeout: float, env: dict | None = None) -> _Collected:
    """Run a tracer process to completion in a ProbeRun, sampling its VmHWM until it exits."""
    from .session import ProbeRun  # noqa: PLC0415

    out = _Collected()
    t0 = time.monotonic()
    with ProbeRun() as run:
        proc = run.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        chunks: dict[str, list[bytes]] = {"out": [], "err": []}

        def pump(stream, key):
            for block in iter(lambda: stream.read(1 << 16), b""):
                chunks[key].append(block)

        threads = [threading.Thread(target=pump, args=(proc.stdout, "out"), daemon=True),
                   threading.Thread(target=pump, args=(proc.stderr, "err"), daemon=True)]
        for t in threads:
            t.start()
        deadline = t0 + timeout
        status = None
        while True:
            hwm = vm_hwm_kb(proc.pid)  # None once it has exited (a zombie has no memory)
            if hwm is not None:
                out.peak_rss_kb = max(out.peak_rss_kb or 0, hwm)
            pid, st = os.waitpid(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                status = st
                proc.returncode = os.waitstatus_to_exitcode(st)
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        if status is None:
            # ProbeRun.close() kills and reaps the whole process group
            run.close()
            for t in threads:
                t.join(timeout=5)
            out.stdout, out.stderr = b"".join(chunks["out"]), b"".join(chunks["err"])
            raise ProbeTimeout(f"{os.path.basename(argv[0])} did not finish within {timeout:.0f} s",
                               cause="the row's N is too large for this machine, or the tracer hung",
                               next_step="run the benchmark with a smaller n (--n 200000) or --quick",
                               stderr=out.stderr.decode(errors="replace")[-2000:])
        for t in threads:
            t.join(timeout=10)
        out.stdout, out.stderr = b"".join(chunks["out"]), b"".join(chunks["err"])
        out.status = proc.returncode
    out.wall_s = time.monotonic() - t0
    return out


def _check_rc(name: str, res: _Collected, argv: list[str]) -> None:
    if res.status != 0:
        err = res.stderr.decode(errors="replace")
        raise ProbeError(f"{name} exited with status {res.status}", stderr=err[-4000:],
                         cause=(err.strip().splitlines() or ["(no output)"])[-1],
                         next_step="run it by hand: " + " ".join(argv))


def _workload_argv(n: int) -> list[str]:
    from .workloads import workload  # noqa: PLC0415

    return list(workload("getppid", n))


def _measure_untraced(n: int, timeout: float) -> Measurement:
    argv = _workload_argv(n)
    t0 = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return Measurement("untraced", n, parse_ns_per_syscall(proc.stdout), wall_s=time.monotonic() - t0)


def _bpftrace_argv(program: str, cmd: list[str], fmt_json: bool = False) -> list[str]:
    import shlex  # noqa: PLC0415

    exe = _which("bpftrace", "apt-get install bpftrace")
    return [exe] + (["-f", "json"] if fmt_json else []) + ["-e", program, "-c", shlex.join(cmd)]


def _which(tool: str, install: str) -> str:
    import shutil  # noqa: PLC0415

    exe = shutil.which(tool)
    if exe is None:
        raise BackendMissingError(f"{tool} is not installed, so its benchmark row cannot run",
                                  next_step=f"`{install}` (scripts/setup.sh does it), or leave the row out "
                                  f"with --rows")
    return exe


def _measure_bpftrace_count(n: int, timeout: float) -> Measurement:
    prog = "tracepoint:raw_syscalls:sys_enter /pid == cpid/ { @[args->id] = count(); }"
    argv = _bpftrace_argv(prog, _workload_argv(n), fmt_json=True)
    res = _run_tracer(argv, timeout=timeout)
    _check_rc("bpftrace", res, argv)
    out = res.stdout.decode(errors="replace")
    events = parse_bpftrace_count(out, getppid_number())
    return Measurement("bpftrace_count", n, parse_ns_per_syscall(out), events=events, lost=0,
                       peak_rss_kb=res.peak_rss_kb, wall_s=res.wall_s)


def _measure_bpftrace_printf(n: int, timeout: float) -> Measurement:
    prog = 'tracepoint:syscalls:sys_enter_getppid /pid == cpid/ { printf("%d\\n", tid); }'
    argv = _bpftrace_argv(prog, _workload_argv(n))
    res = _run_tracer(argv, timeout=timeout)
    _check_rc("bpftrace", res, argv)
    out, err = res.stdout.decode(errors="replace"), res.stderr.decode(errors="replace")
    return Measurement("bpftrace_printf", n, parse_ns_per_syscall(out), events=parse_bpftrace_printf(out),
                       lost=parse_lost(out) + parse_lost(err), peak_rss_kb=res.peak_rss_kb, wall_s=res.wall_s)


def _run_with_summary(tool: str, tracer_argv: list[str], n: int, timeout: float):
    """Run a tracer that writes its summary to ``-o FILE`` around the workload; return (result, summary text)."""
    import tempfile  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="ebpf-lab-bench-") as tmp:
        summary = os.path.join(tmp, "summary.txt")
        argv = tracer_argv + ["-o", summary, "--"] + _workload_argv(n)
        res = _run_tracer(argv, timeout=timeout)
        _check_rc(tool, res, argv)
        with open(summary, encoding="utf-8", errors="replace") as fh:
            return res, fh.read()


def _measure_perf_trace(n: int, timeout: float) -> Measurement:
    exe = _which("perf", "apt-get install linux-perf")
    res, text = _run_with_summary("perf trace", [exe, "trace", "-s"], n, timeout)
    out = res.stdout.decode(errors="replace")
    return Measurement("perf_trace", n, parse_ns_per_syscall(out), events=parse_perf_trace_summary(text),
                       lost=parse_lost(text) + parse_lost(res.stderr.decode(errors="replace")),
                       peak_rss_kb=res.peak_rss_kb, wall_s=res.wall_s)


def _measure_strace(n: int, timeout: float) -> Measurement:
    exe = _which("strace", "apt-get install strace")
    res, text = _run_with_summary("strace", [exe, "-c", "-f"], n, timeout)
    out = res.stdout.decode(errors="replace")
    # ptrace stops the tracee at every syscall: strace cannot lose one
    return Measurement("strace", n, parse_ns_per_syscall(out), events=parse_strace_summary(text), lost=0,
                       peak_rss_kb=res.peak_rss_kb, wall_s=res.wall_s)


def _measure_in_python(row: str, n: int, timeout: float) -> Measurement:
    """Run a Python row in its own interpreter (``python -m ebpf_lab.bench_rows``)."""
    argv = [sys.executable, "-m", "ebpf_lab.bench_rows", row, str(n)]
    env = dict(os.environ)
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = pkg_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    res = _run_tracer(argv, timeout=timeout, env=env)
    out, err = res.stdout.decode(errors="replace"), res.stderr.decode(errors="replace")
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if res.status != 0 or not lines:
        raise ProbeError(f"the benchmark row {row!r} failed (status {res.status})", stderr=err[-4000:],
                         cause=(err.strip().splitlines() or ["(no output)"])[-1],
                         next_step=f"run it alone to see the whole error: {' '.join(argv)}")
    data = json.loads(lines[-1])
    if "unavailable" in data:
        raise ProbeError(data["unavailable"], next_step=f"see {' '.join(argv)}")
    m = Measurement(**data)
    m.wall_s = res.wall_s
    return m


# --------------------------------------------------------------------------- rows run in a child interpreter


def _held_workload(run, n: int):
    """The workload held before ``exec`` (session.ProbeRun.hold): attach first, then release."""
    return run.hold(_workload_argv(n), stdout=subprocess.PIPE)


def _finish_workload(held, timeout: float) -> float:
    try:
        out = held.proc.stdout.read()
        held.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ProbeTimeout("the getppid workload did not finish in time",
                           next_step="use a smaller n") from None
    return parse_ns_per_syscall(out.decode(errors="replace"))


BCC_PERF_PROGRAM = r"""
struct event_t { u32 pid; u32 tid; u64 ts; };
BPF_PERF_OUTPUT(events);
TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
    u64 id = bpf_get_current_pid_tgid();
    if ((id >> 32) != TARGET_PID)
        return 0;
    struct event_t e = {};
    e.pid = id >> 32;
    e.tid = (u32)id;
    e.ts = bpf_ktime_get_ns();
    events.perf_submit(args, &e, sizeof(e));
    return 0;
}
"""


def _child_bcc_perf(n: int, timeout: float) -> Measurement:
    """The classic bcc tool shape: perf buffer, one Python callback per event."""
    from ._bcc import load_bcc, require_root  # noqa: PLC0415
    from .session import ProbeRun  # noqa: PLC0415

    require_root("the bcc perf buffer row")
    bcc = load_bcc()
    state = {"events": 0, "lost": 0}
    with ProbeRun() as run:
        held = _held_workload(run, n)
        b = bcc.BPF(text=BCC_PERF_PROGRAM, cflags=[f"-DTARGET_PID={held.pid}"])
        run.on_close(b.cleanup)
        table = b["events"]

        def on_event(cpu, data, size):
            table.event(data)  # decode, as bcc's tools do
            state["events"] += 1

        def on_lost(count):
            state["lost"] += count

        table.open_perf_buffer(on_event, page_cnt=64, lost_cb=on_lost)

        def close_buffers():  # before b.cleanup(), or bcc's __del__ complains about a closed map
            for key in list(getattr(table, "_open_key_fds", {})):
                del table[key]

        run.on_close(close_buffers)
        held.release()
        deadline = time.monotonic() + timeout
        while held.proc.poll() is None and time.monotonic() < deadline:
            b.perf_buffer_poll(timeout=50)
        ns = _finish_workload(held, timeout=10)
        # drain what is still in the buffers
        idle = 0
        while state["events"] + state["lost"] < n and idle < 10:
            before = state["events"] + state["lost"]
            b.perf_buffer_poll(timeout=50)
            idle = idle + 1 if state["events"] + state["lost"] == before else 0
    return Measurement("bcc_perf", n, ns, events=state["events"], lost=state["lost"])


TRACE_FLOOR_PROGRAM = r"""
BPF_PERCPU_ARRAY(hits, u64, 1);
TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
    u64 __pt = bpf_get_current_pid_tgid();        // trace()'s own filter prologue
    if ((__pt >> 32) != TARGET_PID)
        return 0;
    u32 z = 0;
    u64 *c = hits.lookup(&z);
    if (c)
        (*c)++;
    return 0;
}
"""


def _child_trace_floor(n: int, timeout: float) -> Measurement:
    """trace()'s tracepoint and filter with the record left out: what any per-event probe there costs."""
    from ._bcc import load_bcc, require_root  # noqa: PLC0415
    from .session import ProbeRun  # noqa: PLC0415

    require_root("the trace() floor row")
    bcc = load_bcc()
    with ProbeRun() as run:
        held = _held_workload(run, n)
        b = bcc.BPF(text=TRACE_FLOOR_PROGRAM, cflags=[f"-DTARGET_PID={held.pid}"])
        run.on_close(b.cleanup)
        held.release()
        ns = _finish_workload(held, timeout=timeout)
        hits = b["hits"]
        events = int(sum(int(v) for v in hits[hits.Key(0)]))
    return Measurement("trace_floor", n, ns, events=events, lost=0)


# the columns of trace()'s row: the issue's "four-column event"
TRACE_FIELDS = ("time", "pid", "tid", "comm")


def _child_syscall_counts(n: int, timeout: float) -> Measurement:
    from . import syscall_counts  # noqa: PLC0415

    df = syscall_counts(command=_workload_argv(n))
    hit = df[df["syscall"] == "getppid"]["count"]
    return Measurement("syscall_counts", n, _ns_from_attrs(df, "syscall_counts"),
                       events=int(hit.sum()) if len(hit) else 0, lost=0,
                       extra={"total_syscalls": int(df["count"].sum())})


def _child_trace(n: int, timeout: float) -> Measurement:
    from . import trace  # noqa: PLC0415

    df = trace("tracepoint:syscalls:sys_enter_getppid", list(TRACE_FIELDS), command=_workload_argv(n))
    mem = int(df.memory_usage(deep=True, index=True).sum())
    extra = {"columns": list(map(str, df.columns)), "rows": len(df),
             "bytes_per_event": mem / len(df) if len(df) else None}
    return Measurement("trace", n, _ns_from_attrs(df, "trace"), events=int(df.attrs["events"]),
                       lost=int(df.attrs["lost"]), extra=extra)


def _ns_from_attrs(df, api: str) -> float:
    """The workload's report, which the lab's API keeps in ``df.attrs["output"]``."""
    output = df.attrs.get("output")
    if output is None:
        raise ProbeError(f"{api}() kept no command output in df.attrs['output']",
                         cause="the benchmark needs the workload's own ns_per_syscall line",
                         next_step=f"make {api}(command=...) store the command's stdout in df.attrs['output']")
    return parse_ns_per_syscall(output)


_CHILD_ROWS = {"bcc_perf": _child_bcc_perf, "syscall_counts": _child_syscall_counts, "trace": _child_trace,
               "trace_floor": _child_trace_floor}

_MEASURE: dict[str, Callable[[int, float], Measurement]] = {
    "untraced": _measure_untraced,
    "bpftrace_count": _measure_bpftrace_count,
    "bpftrace_printf": _measure_bpftrace_printf,
    "perf_trace": _measure_perf_trace,
    "strace": _measure_strace,
}


def measure(row: str, n: int, *, timeout: float = 600) -> Measurement:
    """Measure one row once with a workload of ``n`` getppid() calls."""
    if row in _MEASURE:
        return _MEASURE[row](n, timeout)
    if row in _CHILD_ROWS:
        return _measure_in_python(row, n, timeout)
    raise UsageError(f"unknown benchmark row {row!r}", next_step="use one of " + ", ".join(r.name for r in ROWS))


def _child_main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in _CHILD_ROWS:
        print(f"usage: python -m ebpf_lab.bench_rows {{{'|'.join(_CHILD_ROWS)}}} N", file=sys.stderr)
        return 2
    try:
        m = _CHILD_ROWS[argv[0]](int(argv[1]), 600.0)
    except (ImportError, AttributeError) as exc:  # the API is not written yet
        print(json.dumps({"unavailable": f"not available yet ({exc})"}), flush=True)
        return 0
    m.peak_rss_kb = vm_hwm_kb()
    print(json.dumps(dataclasses.asdict(m)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
