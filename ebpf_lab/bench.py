"""``ebpf-lab bench``: what watching a syscall costs, one table from one run.

The same workload runs under every tracer: a C loop of N ``getppid()``
syscalls (``ebpf_lab.workloads.workload("getppid", n)``) that measures itself
and prints ``ns_per_syscall=``. Each row filters to the workload's pid, so
only its syscalls count, and is measured ``repeat`` times; the table shows
medians. An untraced run of the same N comes right before every traced run
(interleaved), and each row is compared with those paired untraced runs.

Rows (see :data:`ebpf_lab.bench_rows.ROWS`): untraced; ``syscall_counts``
(ebpf_lab, in-kernel); bpftrace ``count()``; ``trace()`` of every event
(ebpf_lab, ring buffer); bpftrace ``printf``; bcc perf buffer with a Python
callback; ``perf trace -s``; ``strace -c -f``. The slow rows run a smaller N,
chosen so that one repetition takes about ``budget_s`` seconds (the table
marks them): ns per syscall is per syscall, so the figures stay comparable.

Run it::

    $ sudo ebpf-lab bench            # N = 2,000,000, 3 repetitions, 1.5 to 2.5 minutes
    $ sudo ebpf-lab bench --quick    # N = 20,000, 1 repetition (what the test runs)
    $ sudo .venv/bin/python -m ebpf_lab.bench --n 500000 --repeat 5 --json out.json

or from Python: ``report = run_benchmark(n=20_000, repeat=1); print(report.render())``.
The measured table lives in docs/BENCHMARK.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from typing import Callable

from .bench_rows import ROWS, Measurement, RowSpec, measure
from .errors import EbpfLabError, UsageError

__all__ = ["BenchReport", "RowResult", "Target", "machine_info", "main", "row_n", "run_benchmark"]

DEFAULT_N = 2_000_000
QUICK_N = 20_000
# the in-kernel cost of one event through trace() must leave room for this many per second
TRACE_EVENTS_PER_S = 2_000_000


def row_n(spec: RowSpec, n: int, budget_s: float) -> int:
    """The N a row runs with: ``n``, or less for a slow row so one repetition takes about ``budget_s``.

    The smaller N is rounded down to 1, 2 or 5 times a power of ten, and never below 10,000
    (nor above ``n``).
    """
    if spec.expected_ns * n <= budget_s * 1e9:
        return n
    want = budget_s * 1e9 / spec.expected_ns
    power = 10 ** max(0, len(str(int(want))) - 1)
    nice = max(m * power for m in (1, 2, 5) if m * power <= want) if want >= 1 else 1
    return int(min(n, max(nice, 10_000)))


@dataclasses.dataclass
class RowResult:
    """One row of the table: the medians of its repetitions.

    ``baseline_ns`` is the median of the untraced runs paired with this row (same N);
    ``ratio`` and ``added_ns`` compare with it. ``events_per_s`` is events delivered
    per second of the traced loop. ``exact`` is True when every repetition
    delivered + lost == N (None for rows without events). ``error`` is set when the
    row could not run, and then the numbers are None.
    """

    name: str
    label: str
    how: str
    n: int
    scaled: bool = False
    ns_per_syscall: float | None = None
    baseline_ns: float | None = None
    ratio: float | None = None
    added_ns: float | None = None
    events: int | None = None
    lost: int | None = None
    peak_rss_kb: int | None = None
    events_per_s: float | None = None
    exact: bool | None = None
    repeats: list = dataclasses.field(default_factory=list)
    error: str | None = None
    extra: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Target:
    """A goal from the project's issue, checked against this run's numbers."""

    name: str
    goal: str
    measured: str
    ok: bool | None  # None: could not be measured in this run

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "MISS", None: "N/A"}[self.ok]


@dataclasses.dataclass
class BenchReport:
    """Everything one benchmark run measured; ``render()`` prints the table."""

    n: int
    repeat: int
    budget_s: float
    machine: dict
    rows: list[RowResult]
    started: str
    seconds: float = 0.0
    interrupted: bool = False

    def row(self, name: str) -> RowResult:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    def to_frame(self):
        """The table as a pandas DataFrame (one row per tracer)."""
        import pandas as pd  # noqa: PLC0415

        cols = ["name", "label", "n", "scaled", "ns_per_syscall", "baseline_ns", "ratio", "added_ns",
                "events", "lost", "peak_rss_kb", "events_per_s", "exact", "error"]
        return pd.DataFrame([{c: getattr(r, c) for c in cols} for r in self.rows])

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, default=str)

    def targets(self) -> list[Target]:
        """The issue's targets, each PASS or MISS on this run's own numbers."""
        return _targets(self)

    def trace_bound(self) -> str:
        """What limits the trace() row's events per second, in words, from this run's numbers."""
        return _trace_bound(self)

    def render(self) -> str:
        """The machine, the table, its notes and the targets, as Markdown-friendly text."""
        return _render(self)


# --------------------------------------------------------------------------- machine


def _first_line(argv: list[str]) -> str:
    exe = shutil.which(argv[0])
    if exe is None:
        return "not installed"
    try:
        out = subprocess.run([exe] + argv[1:], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0].strip() if text else "unknown"


def machine_info() -> dict:
    """CPU model, cores, kernel, distribution, tool versions, date and load: what the table ran on."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    distro = platform.system()
    try:
        with open("/etc/os-release", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("PRETTY_NAME="):
                    distro = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    try:
        bcc_version = subprocess.run(
            [sys.executable, "-c", "import bcc; print(bcc.__version__)"],
            capture_output=True, text=True, timeout=60).stdout.strip() or "not importable"
    except (OSError, subprocess.TimeoutExpired):
        bcc_version = "unknown"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "distro": distro,
        "bpftrace": _first_line(["bpftrace", "--version"]),
        "bcc": bcc_version,
        "perf": _first_line(["perf", "--version"]),
        "strace": _first_line(["strace", "-V"]),
        "python": platform.python_version(),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg_start": _loadavg(),
    }


def _loadavg() -> str:
    try:
        with open("/proc/loadavg", encoding="ascii") as fh:
            return " ".join(fh.read().split()[:3])
    except OSError:
        return "unknown"


# --------------------------------------------------------------------------- running


def _estimate_s(specs: list[RowSpec], n: int, repeat: int, budget_s: float) -> float:
    total = 0.0
    for spec in specs:
        nr = row_n(spec, n, budget_s)
        startup = 0.0 if spec.name == "untraced" else 1.5
        total += repeat * (nr * (spec.expected_ns + 150) * 1e-9 + startup)
    return total


def run_benchmark(n: int = DEFAULT_N, repeat: int = 3, *, rows: list[str] | None = None,
                  budget_s: float = 3.0, timeout: float = 600,
                  progress: Callable[[str], None] | None = None) -> BenchReport:
    """Measure every row ``repeat`` times on a loop of ``n`` getppid() calls.

    ``rows``: names from :data:`ebpf_lab.bench_rows.ROWS` (default: all).
    ``budget_s``: about how long one repetition of a slow row may take; rows that
    would take longer run a smaller N (marked in the table). ``progress`` receives
    a line per measurement (the CLI prints them on stderr). Needs root.

    A row that cannot run (a tool not installed, an API that fails) keeps its
    error in ``RowResult.error`` and the run goes on.
    """
    from ._bcc import require_root  # noqa: PLC0415

    if n < 1000:
        raise UsageError(f"n={n} is too small to time a syscall", next_step="use n >= 1000 (--quick uses 20,000)")
    if repeat < 1:
        raise UsageError("repeat must be at least 1")
    known = {s.name: s for s in ROWS}
    names = [s.name for s in ROWS] if rows is None else list(rows)
    unknown = [r for r in names if r not in known]
    if unknown:
        raise UsageError(f"unknown benchmark rows: {', '.join(unknown)}",
                         next_step="choose from " + ", ".join(known))
    require_root("the benchmark")
    if "untraced" not in names:
        names.insert(0, "untraced")
    specs = [known[r] for r in names]
    say = progress or (lambda _msg: None)
    started = time.monotonic()
    machine = machine_info()
    say(f"benchmark: N={n:,}, {repeat} repetition(s), rows: {', '.join(names)}; "
        f"estimated {_estimate_s(specs, n, repeat, budget_s):.0f} s")

    measure(  # warm-up: builds labload, warms the page cache; not counted
        "untraced", min(n, 100_000), timeout=timeout)

    results = {s.name: RowResult(s.name, s.label, s.how, row_n(s, n, budget_s)) for s in specs}
    for r in results.values():
        r.scaled = r.n != n
    untraced_at: dict[int, list[float]] = {}
    paired: dict[str, list[float]] = {s.name: [] for s in specs}
    interrupted = False
    try:
        for rep in range(repeat):
            base = measure("untraced", n, timeout=timeout)
            untraced_at.setdefault(n, []).append(base.ns_per_syscall)
            results["untraced"].repeats.append(base)
            say(f"[{rep + 1}/{repeat}] untraced            n={n:>9,}  {base.ns_per_syscall:>10,.1f} ns/syscall")
            for spec in specs:
                if spec.name == "untraced" or results[spec.name].error:
                    continue
                r = results[spec.name]
                pair = measure("untraced", r.n, timeout=timeout)
                untraced_at.setdefault(r.n, []).append(pair.ns_per_syscall)
                paired[spec.name].append(pair.ns_per_syscall)
                try:
                    m = measure(spec.name, r.n, timeout=timeout)
                except (EbpfLabError, ImportError, AttributeError, OSError) as exc:
                    r.error = _short_error(exc)
                    say(f"[{rep + 1}/{repeat}] {spec.name:<20} FAILED: {r.error}")
                    continue
                r.repeats.append(m)
                paired_ns = paired[spec.name]
                m.extra = dict(m.extra, untraced_ns=paired_ns[-1])
                say(f"[{rep + 1}/{repeat}] {spec.name:<20} n={r.n:>9,}  {m.ns_per_syscall:>10,.1f} ns/syscall  "
                    f"events={m.events} lost={m.lost}  ({m.wall_s:.1f} s)")
    except KeyboardInterrupt:  # Ctrl-C: keep what was measured (ProbeRun already ended the tools)
        interrupted = True
        say("interrupted: the table shows the repetitions measured so far")

    for spec in specs:
        _summarise(results[spec.name], spec, untraced_at.get(n, []))
    machine["loadavg_end"] = _loadavg()
    return BenchReport(n=n, repeat=repeat, budget_s=budget_s, machine=machine,
                       rows=[results[s.name] for s in specs], started=machine["date"],
                       seconds=time.monotonic() - started, interrupted=interrupted)


def _short_error(exc: BaseException) -> str:
    if isinstance(exc, (ImportError, AttributeError)):
        return f"not available yet ({exc})"
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _summarise(r: RowResult, spec: RowSpec, untraced_full_n: list[float]) -> None:
    """Medians over the repetitions; ratio and added ns are medians of each traced run
    against the untraced run made just before it (so a slow minute of the machine
    shifts both sides of a pair alike)."""
    ms: list[Measurement] = r.repeats
    if spec.name == "untraced":
        if untraced_full_n:  # every untraced run at the full N, paired ones included
            r.ns_per_syscall = r.baseline_ns = statistics.median(untraced_full_n)
            r.ratio, r.added_ns = 1.0, 0.0
            r.extra = {"runs": len(untraced_full_n), "min_ns": min(untraced_full_n),
                       "max_ns": max(untraced_full_n)}
        return
    if not ms:
        return
    r.ns_per_syscall = statistics.median(m.ns_per_syscall for m in ms)
    bases = [m.extra["untraced_ns"] for m in ms]
    r.baseline_ns = statistics.median(bases)
    r.ratio = statistics.median(m.ns_per_syscall / b for m, b in zip(ms, bases))
    r.added_ns = statistics.median(m.ns_per_syscall - b for m, b in zip(ms, bases))
    if spec.kind != "none":
        r.events = int(statistics.median(m.events for m in ms))
        r.lost = int(statistics.median(m.lost for m in ms))
        r.exact = all(m.events + m.lost == m.n for m in ms)
        rates = [m.events / (m.n * m.ns_per_syscall * 1e-9) for m in ms if m.ns_per_syscall > 0]
        r.events_per_s = statistics.median(rates) if rates else None
        peaks = [m.peak_rss_kb for m in ms if m.peak_rss_kb]
        r.peak_rss_kb = max(peaks) if peaks else None
    extras = [m.extra for m in ms if m.extra]
    if extras:
        r.extra = dict(extras[-1])
        bpe = [e["bytes_per_event"] for e in extras if e.get("bytes_per_event")]
        if bpe:
            r.extra["bytes_per_event"] = statistics.median(bpe)


# --------------------------------------------------------------------------- targets and text


def _targets(rep: BenchReport) -> list[Target]:
    rows = {r.name: r for r in rep.rows}
    out = []
    sc, bc = rows.get("syscall_counts"), rows.get("bpftrace_count")
    if sc and bc and sc.added_ns is not None and bc.added_ns:
        q = sc.added_ns / bc.added_ns
        out.append(Target("syscall_counts vs bpftrace count()", "added ns ratio <= 1.1",
                          f"{sc.added_ns:,.0f} / {bc.added_ns:,.0f} ns = {q:.2f}", q <= 1.1))
    else:
        out.append(Target("syscall_counts vs bpftrace count()", "added ns ratio <= 1.1", "not measured", None))
    tr = rows.get("trace")
    if tr and tr.ns_per_syscall is not None:
        out.append(Target("trace() delivery rate", f">= {TRACE_EVENTS_PER_S:,} events/s",
                          f"{tr.events_per_s:,.0f} events/s", tr.events_per_s >= TRACE_EVENTS_PER_S))
        out.append(Target("trace() slowdown", "workload <= 4x untraced",
                          f"{tr.ratio:.2f}x ({tr.ns_per_syscall:,.0f} vs {tr.baseline_ns:,.0f} ns)", tr.ratio <= 4))
        out.append(Target("trace() accounting", "events + lost == syscalls, every repetition",
                          ", ".join(f"{m.events:,}+{m.lost:,}={m.events + m.lost:,} of {m.n:,}" for m in tr.repeats),
                          bool(tr.exact)))
        bpe = tr.extra.get("bytes_per_event")
        cols = tr.extra.get("columns") or []
        out.append(Target("trace() DataFrame memory", "<= 100 bytes per four-column event",
                          f"{bpe:,.1f} bytes/event, {len(cols)} columns ({', '.join(cols)})" if bpe else "not measured",
                          (bpe <= 100 and len(cols) == 4) if bpe else None))
    else:
        for name, goal in (("trace() delivery rate", f">= {TRACE_EVENTS_PER_S:,} events/s"),
                           ("trace() slowdown", "workload <= 4x untraced"),
                           ("trace() accounting", "events + lost == syscalls"),
                           ("trace() DataFrame memory", "<= 100 bytes per four-column event")):
            out.append(Target(name, goal, "not measured" + (f": {tr.error}" if tr and tr.error else ""), None))
    return out


def _trace_bound(rep: BenchReport) -> str:
    try:
        tr, un = rep.row("trace"), rep.row("untraced")
    except KeyError:
        return "trace() was not measured in this run."
    if tr.ns_per_syscall is None or un.ns_per_syscall is None:
        return "trace() was not measured in this run" + (f" ({tr.error})." if tr.error else ".")
    loop_rate = 1e9 / tr.ns_per_syscall
    ceiling = 1e9 / un.ns_per_syscall
    if tr.added_ns is None or tr.added_ns <= 0:
        return (f"this run was too noisy to say: trace()'s loop ran {tr.ns_per_syscall:,.0f} ns per syscall, "
                f"no slower than its untraced pair ({tr.baseline_ns:,.0f} ns). Rerun on a quiet machine, "
                f"with more repetitions (--repeat 5).")
    split = ""
    floor = next((r for r in rep.rows if r.name == "trace_floor" and r.added_ns is not None), None)
    if floor is not None:
        split = (f" Where the added ns go: the same tracepoint with trace()'s pid filter and only a counter "
                 f"(the trace_floor row) adds {floor.added_ns:,.0f} ns, the price of any BPF program on "
                 f"sys_enter_getppid; the remaining {max(tr.added_ns - floor.added_ns, 0):,.0f} ns are the "
                 f"record itself (ring-buffer reserve and submit, bpf_ktime_get_ns, bpf_get_current_comm, "
                 f"the reader's copies, and the reader competing with the loop for the "
                 f"{rep.machine.get('cores')} cores).")
    if tr.lost == 0:
        return (f"trace() lost no event, so it delivered every event as fast as the traced loop made "
                f"them: {tr.events_per_s:,.0f} events/s = 1e9 / {tr.ns_per_syscall:,.0f} ns per traced syscall. "
                f"The producer bounds the figure: one thread making syscalls, {un.ns_per_syscall:,.0f} ns each "
                f"untraced (at most {ceiling:,.0f}/s), plus {tr.added_ns:,.0f} ns added per traced syscall."
                f"{split} The reader kept up, so only a faster producer (several threads) would show the "
                f"reader's own limit.")
    return (f"trace() lost {tr.lost:,} of {tr.n:,} events: the consumer (Python reading the ring buffer in "
            f"batches) fell behind a loop making {loop_rate:,.0f} syscalls/s, so the consumer bounds the "
            f"delivered figure ({tr.events_per_s:,.0f} events/s); a larger buffer_pages only delays the loss.{split}")


def _fmt(value, spec: str = ",.0f", none: str = "-") -> str:
    if value is None:
        return none
    return format(value, spec)


# what we know about a row whose delivered + lost misses N
_INEXACT_WHY = {
    "bpftrace_printf": "bpftrace reads a perf buffer, and the kernel reports a perf-buffer loss only inside "
                       "the next record that fits: events dropped near the end of a run, when no later event "
                       "follows, are lost without any 'Lost N events' line",
    "bcc_perf": "the perf buffer reports a loss only inside the next record that fits, so events dropped near "
                "the end of a run never reach lost_cb: the callback tool cannot know",
    "perf_trace": "perf trace -s's counts fall short of N by more than the LOST records it prints, often "
                  "with none at all: in our runs a few of 20,000 on a quiet machine (19,994 to 19,999), up "
                  "to two thirds of 50,000 on a loaded one; plain `perf trace` without -s printed all 20,000 "
                  "in six runs of ours",
}


def _render(rep: BenchReport) -> str:
    m = rep.machine
    lines = [
        f"# ebpf-lab bench: the cost of watching getppid(), N = {rep.n:,}, median of {rep.repeat}",
        "",
        f"- machine: {m.get('cpu')}, {m.get('cores')} cores; {m.get('distro')}; kernel {m.get('kernel')}",
        f"- tools: {m.get('bpftrace')}; bcc {m.get('bcc')}; {m.get('perf')}; {m.get('strace')}; "
        f"Python {m.get('python')}",
        f"- date: {m.get('date')}; load average at start {m.get('loadavg_start')}, at end "
        f"{m.get('loadavg_end', '?')}; the whole run took {rep.seconds:.0f} s",
        *(["- INTERRUPTED (Ctrl-C): only the repetitions measured before it are in the table"]
          if rep.interrupted else []),
        "",
        "| row | N | ns/syscall | x untraced | added ns | delivered | lost | tracer peak RSS | events/s |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    notes = []
    for r in rep.rows:
        label = r.label + (" *" if r.scaled else "")
        if r.error:
            lines.append(f"| {label} | {r.n:,} | {r.error} | | | | | | |")
            continue
        exact = ""
        if r.exact is False:
            exact = " (!)"
        lines.append(
            f"| {label} | {r.n:,} | {_fmt(r.ns_per_syscall, ',.1f')} | {_fmt(r.ratio, '.2f')} "
            f"| {_fmt(r.added_ns, ',.1f')} | {_fmt(r.events, ',d')}{exact} | {_fmt(r.lost, ',d')} "
            f"| {_fmt(r.peak_rss_kb / 1024 if r.peak_rss_kb else None, ',.1f')} MB "
            f"| {_fmt(r.events_per_s)} |".replace("| - MB |", "| - |"))
        if r.exact is False:
            notes.append(f"(!) {r.label}: delivered + lost != N in at least one repetition: "
                         + ", ".join(f"{x.events:,}+{x.lost:,} of {x.n:,}" for x in r.repeats)
                         + (f". {_INEXACT_WHY[r.name]}" if r.name in _INEXACT_WHY else ""))
    if any(r.scaled for r in rep.rows):
        notes.insert(0, f"* a slow row: N scaled down so one repetition takes about {rep.budget_s:g} s "
                        "(ns per syscall is per syscall, and each row is compared with untraced runs of its own N).")
    un = next((r for r in rep.rows if r.name == "untraced" and r.extra.get("runs")), None)
    if un is not None:
        lo, hi = un.extra["min_ns"], un.extra["max_ns"]
        noisy = " (a wide spread: other work shared the cores; trust the ratios less)" if hi > 1.25 * lo else ""
        notes.append(f"noise: the {un.extra['runs']} untraced runs at N = {rep.n:,} took {lo:,.1f} to "
                     f"{hi:,.1f} ns per syscall{noisy}.")
    lines += [""] + [f"- {n}" for n in notes] if notes else []
    lines += [
        "",
        "How each row runs (every tracer filtered to the workload's pid; event rows count only "
        "sys_enter_getppid, so delivered + lost must equal N):",
        "",
    ]
    for r in rep.rows:
        lines.append(f"- {r.label}: {r.how}")
    lines += [
        "",
        "Columns: ns/syscall is the loop's own figure (median); x untraced and added ns compare with "
        "the untraced run of the same N made just before each traced run (medians of those pairs); delivered/lost are events that "
        "reached the tracer's user space (for count rows: the in-kernel count of getppid); tracer peak "
        "RSS is VmHWM of the tracer's process; events/s = delivered / duration of the traced loop.",
        "",
        "## Targets",
        "",
    ]
    for t in rep.targets():
        lines.append(f"- {t.verdict}: {t.name}: {t.goal}; measured {t.measured}")
    lines += ["", "What bounds trace(): " + rep.trace_bound(), ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    """``ebpf-lab bench`` / ``python -m ebpf_lab.bench``: run the benchmark and print the table.

    Exit status: 0 when every row was measured (targets may still MISS), 1 when a row
    failed or the run could not start, 2 for bad arguments, 130 after Ctrl-C (the
    table of what was measured is still printed).
    """
    parser = argparse.ArgumentParser(
        prog="ebpf-lab bench",
        description="What watching a syscall costs: a loop of N getppid() calls under each tracer, one table "
        "from one run (needs root). See docs/BENCHMARK.md.")
    parser.add_argument("--n", "-n", type=int, default=None, help=f"getppid() calls per run (default {DEFAULT_N:,})")
    parser.add_argument("--repeat", "-r", type=int, default=None, help="repetitions per row; medians are shown (default 3)")
    parser.add_argument("--quick", action="store_true", help=f"N={QUICK_N:,} and 1 repetition (a smoke test)")
    parser.add_argument("--rows", default=None, help="comma-separated rows: " + ",".join(s.name for s in ROWS))
    parser.add_argument("--budget", type=float, default=3.0, help="seconds one repetition of a slow row may take (3)")
    parser.add_argument("--json", metavar="FILE", default=None, help="also write every measurement as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    n = args.n if args.n is not None else (QUICK_N if args.quick else DEFAULT_N)
    repeat = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()] if args.rows else None
    progress = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    try:
        report = run_benchmark(n, repeat, rows=rows, budget_s=args.budget, progress=progress)
    except UsageError as exc:
        print(f"ebpf-lab bench: {exc}", file=sys.stderr)
        return 2
    except EbpfLabError as exc:
        print(f"ebpf-lab bench: {exc}", file=sys.stderr)
        return 1
    print(report.render())
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            fh.write(report.to_json())
    if report.interrupted:
        return 130
    return 1 if any(r.error for r in report.rows) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
