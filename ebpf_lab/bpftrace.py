"""The bpftrace backend: run a bpftrace program, get pandas DataFrames back.

>>> r = bpftrace('tracepoint:syscalls:sys_enter_openat /comm == str($1)/ '
...              '{ printf("%s\\t%d\\t%s\\n", comm, pid, str(args->filename)); }',
...              command="cat /etc/hosts", args=["cat"],
...              columns=["comm", ("pid", int), "file"])        # doctest: +SKIP
>>> r.events                   # one row per printf line, typed columns  # doctest: +SKIP
>>> r.maps["@"], r.hists["@"]  # every map bpftrace printed on exit      # doctest: +SKIP

bpftrace runs with ``-f json`` as a child of a :class:`~ebpf_lab.session.ProbeRun`
(its own process group, killed and reaped on every exit path). Its stdout is
read line by line in a thread as it arrives, so a run cut short by a timeout
or a Jupyter interrupt still returns what was printed. bpftrace's error
messages become the lab's exceptions (see :func:`diagnose`), each carrying the
partial result on ``.result``.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import warnings
from typing import Callable, Sequence


from . import bpftrace_json as bj
from .progress import for_duration
from .errors import (
    AttachError,
    BackendMissingError,
    EbpfLabError,
    NotSupportedError,
    ProbeError,
    ProbeTimeout,
    ProgramSyntaxError,
    UnknownProbeError,
    UsageError,
    VerifierError,
)

__all__ = ["MAX_STRLEN", "BpftraceResult", "bpftrace", "diagnose", "run"]

MAX_STRLEN = 200          # bpftrace 0.17: strings live on the 512-byte BPF stack
DEFAULT_TIMEOUT = 60.0    # seconds, when neither timeout nor duration is given
_GRACE = 5.0              # seconds bpftrace gets after SIGINT to print its maps
_HARMLESS = re.compile(r"couldn't set RLIMIT_MEMLOCK")
_KPROBE_ALT = "tracepoints (tracepoint:syscalls:*) or uprobes"
_KPROBE_IN_PROGRAM = re.compile(r"(^|[\s,{}])k(ret)?probe:")
# bpftrace 0.17 skips kprobes it cannot attach and, with none left, runs on doing nothing
_KPROBE_SKIPPED = re.compile(r"could not attach probe k(ret)?probe:")


# --------------------------------------------------------------------------- result

class BpftraceResult:
    """What one bpftrace run produced.

    Attributes: ``events`` (DataFrame of printed lines), ``lines`` (the same
    lines as a list of str), ``maps`` and
    ``hists`` (dicts map name -> DataFrame, e.g. ``maps["@counts"]``), ``lost``
    (events bpftrace reported lost), ``stderr`` (bpftrace's whole stderr,
    harmless warnings included), ``warnings`` (stderr lines that matter),
    ``output`` (stdout lines of ``command``, which shares bpftrace's stdout),
    ``program``, ``command`` (argv or None), ``args``, ``pid``, ``duration``
    (seconds of wall time), ``interrupted``, ``timed_out``, ``exit_code``,
    ``attached_probes``.

    A map that bpftrace printed more than once (``print(@)`` in an
    ``interval`` probe, then again on exit) holds its last printing.
    """

    def __init__(self, *, program: str, collector: bj.OutputCollector, columns=None, stderr: str = "",
                 duration: float = 0.0, interrupted: bool = False, timed_out: bool = False,
                 exit_code: int | None = None, command: list[str] | None = None,
                 args: Sequence[str] = (), pid: int | None = None) -> None:
        self.program = program
        self.columns = columns
        self.lines = collector.event_lines()
        try:
            self.events = collector.events(columns)
        except UsageError:
            self.events = collector.events(None)
            self.columns_error = True
        self.maps = collector.maps()
        self.hists = collector.hists()
        self.lost = collector.lost
        self.output = list(collector.output)
        self.attached_probes = collector.attached_probes
        self.stderr = stderr
        self.warnings = [ln for ln in stderr.splitlines() if ln.strip() and not _HARMLESS.search(ln)]
        self.duration = duration
        self.interrupted = interrupted
        self.timed_out = timed_out
        self.exit_code = exit_code
        self.command = command
        self.args = tuple(args)
        self.pid = pid

    def hist_text(self, name: str = "@") -> str:
        """Histogram ``name`` drawn the way bpftrace prints it (see :func:`~ebpf_lab.bpftrace_json.hist_text`)."""
        if name not in self.hists:
            raise UsageError(f"no histogram named {name!r} in this result",
                             next_step=f"use one of {sorted(self.hists) or 'none: the program printed no hist()'}")
        return bj.hist_text(self.hists[name])

    def _status(self) -> str:
        bits = [f"{self.duration:.2f} s"]
        if self.interrupted:
            bits.append("interrupted")
        if self.timed_out:
            bits.append("timed out")
        if self.lost:
            bits.append(f"{self.lost} events lost")
        if self.exit_code not in (0, None):
            bits.append(f"exit code {self.exit_code}")
        return ", ".join(bits)

    def __repr__(self) -> str:
        parts = [f"<BpftraceResult {self._status()}: {len(self.events)} event rows"]
        if self.maps:
            parts.append("maps " + ", ".join(f"{k} ({len(v)} rows)" for k, v in self.maps.items()))
        if self.hists:
            parts.append("hists " + ", ".join(f"{k} ({int(v['count'].sum())} values)" for k, v in self.hists.items()))
        return "; ".join(parts) + ">"

    def _repr_html_(self) -> str:
        out = [f"<div><b>bpftrace</b> ({html.escape(self._status())}): "
               f"{len(self.events)} event rows, {len(self.maps)} maps, {len(self.hists)} hists</div>"]
        if len(self.events):
            out.append("<div><b>events</b></div>" + self.events.head(20).to_html(max_rows=20))
            if len(self.events) > 20:
                out.append(f"<div>... {len(self.events) - 20} more rows in <code>.events</code></div>")
        for name, df in self.maps.items():
            out.append(f"<div><b>{html.escape(name)}</b></div>" + df.head(20).to_html(max_rows=20))
        for name, df in self.hists.items():
            out.append(f"<div><b>{html.escape(name)}</b></div><pre>{html.escape(bj.hist_text(df))}</pre>")
        if self.warnings:
            out.append("<pre style='color:#a00'>" + html.escape("\n".join(self.warnings[-10:])) + "</pre>")
        return "\n".join(out)


# --------------------------------------------------------------------------- errors

_LOC = re.compile(r"^(?P<src>[^\s:]+):(?P<line>\d+):(?P<col>\d+)(?:-(?P<end>\d+))?: ERROR: (?P<msg>.*)$")
_TP_STRUCT = re.compile(r"struct _tracepoint_([A-Za-z0-9_]+?)_(sys_\w+|\w+)'")


def _important(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.strip() and not _HARMLESS.search(ln)]


def _excerpt(lines: list[str], i: int) -> str:
    """The error line plus bpftrace's source excerpt and ``~~~`` marker under it."""
    return "\n".join(lines[i:i + 3])


def diagnose(stderr: str, *, stdout: Sequence[str] = (), program: str = "", exit_code: int | None = None,
             pid: int | None = None, suggest: Callable[[str], list[str]] | None = None,
             verifier_log: str | None = None) -> EbpfLabError | None:
    """Turn bpftrace 0.17's error output into one of the lab's exceptions (or ``None``).

    Pure: it only reads text. ``stdout`` are the non-JSON stdout lines
    (bpftrace prints "No probes to attach" there), ``suggest`` maps a probe
    name to "did you mean" candidates, ``verifier_log`` is the verbose log of
    a rejected program when it was fetched.
    """
    lines = _important(stderr)
    common = {"stderr": stderr, "program": program}
    for i, ln in enumerate(lines):
        m = _LOC.match(ln)
        if not m:
            continue
        msg, line, col = m.group("msg"), int(m.group("line")), int(m.group("col"))
        where = f"line {line}, column {col}"
        excerpt = _excerpt(lines, i)
        if msg.startswith("syntax error"):
            return ProgramSyntaxError(
                f"bpftrace could not parse the program at {where}: {msg}\n{excerpt}", line=line, column=col,
                cause="a typo, a missing bracket, quote or semicolon near that place",
                next_step="fix the program at the place marked with ~~~ (bpftrace counts lines from 1)", **common)
        tp = re.match(r"tracepoint not found: (\S+)", msg)
        if tp:
            probe = "tracepoint:" + tp.group(1)
            return UnknownProbeError(
                f"this kernel has no tracepoint {tp.group(1)!r}\n{excerpt}", probe=probe,
                suggestions=tuple(suggest(probe) if suggest else ()),
                cause="a misspelled tracepoint, or one that this kernel does not have", **common)
        if "kfunc/kretfunc not available" in msg:
            return NotSupportedError(
                f"bpftrace refused the kfunc probe: {msg}\n{excerpt}", feature="fentry/fexit (kfunc)",
                alternative="tracepoints (tracepoint:syscalls:*) or raw tracepoints",
                cause="this kernel refuses BPF tracing programs (fentry/fexit)")
        if "available_filter_functions" in msg and re.search(r"\bk(ret)?func:", program):
            # 0.17 reads the traceable-function list to resolve a kfunc's args->; it is EPERM here
            return NotSupportedError(
                f"bpftrace cannot resolve the kfunc probe's arguments: {msg}\n{excerpt}",
                feature="fentry/fexit (kfunc)",
                alternative="tracepoints (tracepoint:syscalls:*) or raw tracepoints; "
                            "the function's arguments can be read from BTF with ebpf_lab.btf",
                cause="the kernel does not let bpftrace read available_filter_functions, and refuses "
                      "BPF tracing programs (fentry/fexit)")
        if "does not contain a field named" in msg:
            st = _TP_STRUCT.search(msg)
            probe = f"tracepoint:{st.group(1)}:{st.group(2)}" if st else ""
            field = re.search(r"field named '([^']+)'", msg)
            return UnknownProbeError(
                f"no field {field.group(1) if field else ''!r} at {where}: {msg}\n{excerpt}", probe=probe,
                cause="a misspelled field name; tracepoint fields are listed in its format file",
                next_step=f"list the fields with ebpf_lab.describe({probe!r}) or `bpftrace -lv {probe}`"
                if probe else "list the fields with `bpftrace -lv PROBE`", **common)
        if "uprobe target file" in msg or "No such file" in msg:
            return UnknownProbeError(f"{msg}\n{excerpt}", probe="",
                                     cause="the binary or library path of the uprobe is wrong",
                                     next_step="give the full path, e.g. uprobe:/usr/bin/bash:readline "
                                     "(find a library with `ldconfig -p`)", **common)
        return ProgramSyntaxError(
            f"bpftrace rejected the program at {where}: {msg}\n{excerpt}", line=line, column=col,
            cause="the program parses but does not make sense to bpftrace (types, functions, arguments)",
            next_step="fix the part marked with ~~~; `man bpftrace` lists functions and their arguments", **common)

    text = "\n".join(lines)
    if "kprobe_events" in text or re.search(r"Error attaching probe: '?k(ret)?probe:", text):
        return NotSupportedError(
            "kprobes cannot be attached on this kernel: " + (lines[-1] if lines else ""),
            feature="kprobes", alternative=_KPROBE_ALT,
            cause="the kernel is built without CONFIG_KPROBES (there is no kprobe_events file)")
    if "BPF stack limit of 512 bytes" in text:
        return VerifierError(
            "the program needs more than the 512 bytes of stack a BPF program may use",
            log=stderr, cause="too many strings (each str() takes BPFTRACE_STRLEN bytes) in one probe",
            next_step="print fewer strings per printf, lower strlen=, or split the work across probes", **common)
    if "Error loading program" in text or "Failed to load program" in text:
        log = verifier_log or ""
        tail = VerifierError.tail(log) if log else "(run bpftrace with -v to see the verifier log)"
        return VerifierError(
            f"the kernel's verifier rejected the program:\n{tail}", log=log or stderr,
            cause="a loop the verifier cannot bound, an unchecked memory access, or a program too large",
            next_step="bound every loop with a constant, read memory through bpftrace builtins; "
            "the full log is on the exception's .log", **common)
    if "Error attaching probe" in text or "perf_event_open failed" in text:
        return AttachError(
            "a probe loaded but could not be attached: " + "; ".join(ln for ln in lines if "rror" in ln or "failed" in ln),
            cause="this kernel or machine lacks the event (hardware counters inside a VM, for example)",
            next_step="check what works here with `ebpf-lab doctor`; use a tracepoint or a software event", **common)
    no_probes = any("No probes to attach" in ln for ln in stdout) or "No probes to attach" in text
    if no_probes and "available_filter_functions" in text and _KPROBE_IN_PROGRAM.search(program):
        return NotSupportedError(
            "no kprobe matched: bpftrace cannot list the kernel's functions here (available_filter_functions)",
            feature="kprobes", alternative=_KPROBE_ALT,
            cause="the kernel is built without CONFIG_KPROBES, and its function list is not readable")
    if no_probes:
        return UnknownProbeError(
            "no probe matched: the program's probes name nothing that exists", probe="",
            cause="a wildcard that matches nothing, or a uprobe symbol that the binary does not have",
            next_step="list what exists with `bpftrace -l 'PATTERN'` or ebpf_lab.list_probes()", **common)
    if "No such process" in text:
        return UsageError(f"there is no process with pid {pid}" if pid else "bpftrace: no such process",
                          cause="the process ended before bpftrace attached",
                          next_step="start the process first, or use command= so bpftrace starts it")
    if "BPFTRACE_STRLEN" in text:
        return UsageError(text, next_step=f"use strlen= between 1 and {MAX_STRLEN}")
    if exit_code not in (0, None) and lines:
        errs = [ln for ln in lines if "ERROR" in ln] or lines[-3:]
        return ProbeError("bpftrace failed: " + "\n".join(errs), cause="see bpftrace's message above",
                          next_step="read the full output on the exception's .stderr", **common)
    return None


# --------------------------------------------------------------------------- running

def _suggest(probe: str) -> list[str]:
    try:
        from .catalog import suggest  # noqa: PLC0415 - optional, may not exist yet
        return list(suggest(probe, n=3))
    except Exception:  # noqa: BLE001 - no suggestion is better than a crash
        return []


def _find_bpftrace() -> str:
    path = shutil.which("bpftrace")
    if path is None:
        raise BackendMissingError("bpftrace is not installed (not found on PATH)",
                                  cause="the bpftrace package is missing",
                                  next_step="run `make setup`, or `apt-get install bpftrace`")
    return path


def _reader(stream, sink: Callable[[str], None]) -> threading.Thread:
    def run() -> None:
        try:
            for raw in iter(stream.readline, b""):
                sink(raw.decode("utf-8", errors="replace"))
        except (OSError, ValueError):
            pass
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _verifier_log(argv: list[str], env: dict, timeout: float) -> str:
    """Run the same program once more with ``-v`` to capture the verifier's log."""
    from .session import ProbeRun

    with ProbeRun() as probe_run:
        proc = probe_run.popen([argv[0], "-v", *argv[1:]], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            return ""
    text = err.decode("utf-8", errors="replace")
    head, sep, log = text.partition("Error log:")
    if not sep:
        return ""
    return "\n".join(ln for ln in log.strip("\n").splitlines() if not ln.startswith("ERROR:")).strip()


def _build_argv(bpftrace_path: str, program: str, *, command, pid, args, unsafe) -> tuple[list[str], list[str] | None]:
    argv = [bpftrace_path, "-f", "json"]
    if unsafe:
        argv.append("--unsafe")
    if pid is not None:
        argv += ["-p", str(int(pid))]
    cmd = None
    if command is not None:
        from .session import resolve_command

        cmd = resolve_command(command)
        spaced = [a for a in cmd if not a or any(ch.isspace() for ch in a)]
        if spaced:
            raise UsageError(f"command argument {spaced[0]!r} holds a space (or is empty)",
                             cause="bpftrace 0.17's -c splits the command on spaces and knows no quotes",
                             next_step="put the command in a small shell script and pass its path, "
                             "or avoid spaces in the arguments")
        argv += ["-c", " ".join(cmd)]
    argv += ["-e", program]
    if args:
        argv.append("--")
        argv += [str(a) for a in args]
    return argv, cmd


def run(program: str, *, command: str | Sequence[str] | None = None, pid: int | None = None,
        args: Sequence = (), duration: float | None = None, timeout: float | None = None,
        strlen: int | None = None, unsafe: bool = False, columns=None) -> BpftraceResult:
    """Run a bpftrace program and return its output as DataFrames.

    Parameters:

    - ``program``: bpftrace source, e.g.
      ``'tracepoint:syscalls:sys_enter_getppid /pid == cpid/ { @ = count(); }'``.
    - ``command``: a command for bpftrace to start (``-c``); tracing ends when
      it exits, and ``cpid`` is its pid. Its program is made an absolute path.
      Its stdout ends up in ``result.output``.
    - ``pid``: bpftrace's ``-p PID``: the process for uprobes and USDT; the run
      ends when that process exits. It does *not* filter tracepoints: add
      ``/pid == $1/`` with ``args=[pid]`` for that.
    - ``args``: values for ``$1``, ``$2``... (``str($1)`` for strings).
    - ``duration``: seconds to trace after the probes are attached, then
      bpftrace is stopped with SIGINT and prints its maps.
    - ``timeout``: seconds after which the run is stopped and
      :class:`~ebpf_lab.errors.ProbeTimeout` raised (its ``.result`` holds what
      was collected); default 60, or ``duration + 30``.
    - ``strlen``: bytes kept of each string (``BPFTRACE_STRLEN``, at most 200).
    - ``unsafe``: allow functions that change the system (``signal()``, ``system()``).
    - ``columns``: split each printed line on tabs into typed columns:
      ``["comm", ("pid", int), "file"]``, ``{"pid": int, "file": str}`` or
      ``"comm,pid:int,file"``. Without it ``events`` has one ``text`` column.

    A Jupyter interrupt (Ctrl-C, the stop button) ends the run normally: the
    maps bpftrace prints on exit are collected, and the result comes back
    with ``interrupted=True`` and a warning. Errors are the lab's exceptions
    (syntax, unknown probe, kernel without kprobes, verifier...), each with
    the partial result on ``.result``.
    """
    if not isinstance(program, str) or not program.strip():
        raise UsageError("the bpftrace program is empty",
                         next_step="pass a program such as 'BEGIN { printf(\"hello\\n\"); exit(); }'")
    if strlen is not None and not (isinstance(strlen, int) and 1 <= strlen <= MAX_STRLEN):
        raise UsageError(f"strlen={strlen!r} is out of range: bpftrace 0.17 keeps at most {MAX_STRLEN} bytes per string",
                         cause="strings live on the 512-byte BPF stack",
                         next_step=f"use a strlen between 1 and {MAX_STRLEN}")
    if duration is not None and duration <= 0:
        raise UsageError(f"duration={duration!r} must be a positive number of seconds")
    if timeout is None:
        timeout = DEFAULT_TIMEOUT if duration is None else duration + 30.0
    if timeout <= 0:
        raise UsageError(f"timeout={timeout!r} must be a positive number of seconds")
    if duration is not None and timeout < duration:
        raise UsageError(f"timeout={timeout} is shorter than duration={duration}",
                         next_step="give a timeout longer than the duration, or leave it out")
    if columns is not None:
        bj.parse_columns_spec(columns)   # fail fast on a malformed spec
    path = _find_bpftrace()
    from ._bcc import require_root

    require_root("running bpftrace")
    argv, cmd = _build_argv(path, program, command=command, pid=pid, args=args, unsafe=unsafe)
    env = dict(os.environ)
    if strlen is not None:
        env["BPFTRACE_STRLEN"] = str(strlen)

    from .session import ProbeRun

    collector = bj.OutputCollector(program)
    err_lines: list[str] = []
    interrupted = timed_out = False
    started = time.monotonic()
    with ProbeRun() as probe_run:
        proc = probe_run.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        readers = [_reader(proc.stdout, collector.feed), _reader(proc.stderr, err_lines.append)]

        def kprobes_skipped() -> bool:
            return any(_KPROBE_SKIPPED.search(ln) for ln in list(err_lines))

        try:
            with for_duration(duration, desc="bpftrace"):
                interrupted, timed_out, aborted = _wait(proc, collector, started, duration, timeout,
                                                        abort=kprobes_skipped)
        except BaseException:
            _signal_group(proc, signal.SIGKILL)
            raise
        finally:
            # bpftrace has ended or had its grace period: whatever is left in its
            # group (the -c command's children) would keep the pipes open
            _signal_group(proc, signal.SIGKILL)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover - the ProbeRun retries
                pass
            for t in readers:
                t.join(timeout=5)
        exit_code = proc.poll()
    elapsed = time.monotonic() - started
    stderr = "".join(err_lines)
    result = BpftraceResult(program=program, collector=collector, columns=columns, stderr=stderr,
                            duration=elapsed, interrupted=interrupted, timed_out=timed_out,
                            exit_code=exit_code, command=cmd, args=[str(a) for a in args], pid=pid)
    if timed_out:
        raise ProbeTimeout(f"bpftrace was still running after the timeout of {timeout:g} s and was stopped",
                           cause="the program never calls exit() and no duration= or command= ends it, "
                           "or the command runs longer than the timeout",
                           next_step="pass duration=SECONDS, end the program with exit(), or raise timeout=; "
                           "what was collected is on the exception's .result",
                           stderr=stderr, program=program, result=result)
    if not interrupted and (exit_code != 0 or aborted):   # bpftrace exits 0 whatever the command did
        verifier_log = None
        if "Error loading program" in stderr:
            verifier_log = _verifier_log(argv, env, timeout=max(10.0, timeout - elapsed))
        err = diagnose(stderr, stdout=collector.output, program=program, exit_code=exit_code, pid=pid,
                       suggest=_suggest, verifier_log=verifier_log)
        if err is not None:
            err.result = result
            raise err
    if getattr(result, "columns_error", False):
        try:
            bj.events_frame(result.lines, columns)
        except UsageError as exc:   # explain it, and keep the text rows on .result
            exc.result = result
            raise
    if interrupted:
        warnings.warn("bpftrace was interrupted: returning what it collected so far (result.interrupted is True)",
                      stacklevel=2)
    if result.lost:
        warnings.warn(f"bpftrace lost {result.lost} events: printf output came faster than it was read. "
                      "Aggregate in maps (count(), hist()) instead of printing every event.", stacklevel=2)
    return result


def _wait(proc: subprocess.Popen, collector: bj.OutputCollector, started: float,
          duration: float | None, timeout: float, abort: Callable[[], bool] = lambda: False,
          ) -> tuple[bool, bool, bool]:
    """Wait for bpftrace to end; returns (interrupted, timed_out, aborted)."""
    stop_at = None
    sent_stop = False
    try:
        while proc.poll() is None:
            now = time.monotonic()
            if now - started > timeout:
                _stop(proc)
                return False, True, False
            if abort():
                _stop(proc)
                return False, False, True
            if duration is not None and not sent_stop:
                if stop_at is None and collector.attached_probes is not None:
                    stop_at = now + duration
                if stop_at is None and now - started > duration + 10:   # no attach message: count from start
                    stop_at = started + duration
                if stop_at is not None and now >= stop_at:
                    _signal_group(proc, signal.SIGINT)
                    sent_stop = True
            try:
                proc.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                pass
    except KeyboardInterrupt:
        _stop(proc)
        return True, False, False
    return False, False, False


def _stop(proc: subprocess.Popen) -> None:
    """SIGINT so bpftrace prints its maps and detaches; the ProbeRun kills it if it does not end."""
    _signal_group(proc, signal.SIGINT)
    deadline = time.monotonic() + _GRACE
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            proc.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            pass
        except KeyboardInterrupt:   # a second Ctrl-C: stop waiting, the ProbeRun kills it
            break


from ._callable import callable_module  # noqa: E402

bpftrace = callable_module(__name__, run)
