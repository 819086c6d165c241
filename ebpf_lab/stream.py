"""``trace()``: every event of one probe, typed, as a pandas DataFrame.

How it works (lesson material):

1. The probe's arguments come from the kernel itself: a tracepoint's tracefs
   ``format`` file, the registers of a uprobe, the ``sys_enter``/``sys_exit``
   raw tracepoints' ``(regs, id|ret)``.
2. :mod:`ebpf_lab.codegen` writes a C program with one fixed-size struct per
   event, filtered *in the kernel* (your command's pid as a constant, a
   ``where=`` expression), pushed into a BPF **ring buffer**. Each failed
   ``bpf_ringbuf_reserve`` (buffer full) bumps a per-CPU ``lost`` counter:
   ``df.attrs["events"] + df.attrs["lost"]`` is every event that fired.
3. bcc compiles and loads it; :class:`ebpf_lab.ringbuf.RingBufReader` maps
   the ring buffer and copies whole spans of records into numpy arrays (no
   Python object per event); the columns become a DataFrame at the end.

Everything is owned by one :class:`~ebpf_lab.session.ProbeRun`: on success,
an error or Ctrl-C the program is detached and unloaded and the command killed.
"""

from __future__ import annotations

import os
import time
import warnings
from typing import Sequence

from . import codegen
from ._bcc import capture_stderr, compile_quietly, load_func_quietly
from .errors import (
    AttachError,
    ProbeError,
    UnknownProbeError,
    UsageError,
)
from .progress import for_duration
from .session import ProbeRun, resolve_command

__all__ = ["EventsLostWarning", "trace"]

DEFAULT_BUFFER_PAGES = 4096      # 16 MiB: about 300,000 events of 56 bytes
POLL_INTERVAL = 0.004            # seconds between reads (records are submitted without wake-ups)


class EventsLostWarning(RuntimeWarning):
    """Some events did not fit in the ring buffer (``df.attrs['lost']`` says how many)."""


# --------------------------------------------------------------------------- helpers

def _suggest(probe: str) -> list[str]:
    try:
        from .catalog import suggest  # noqa: PLC0415
        return suggest(probe)
    except Exception:  # noqa: BLE001 - a courtesy only
        return []


def _available_columns(spec: codegen.ProbeSpec) -> tuple[list[codegen.Column], codegen.ProbeSpec]:
    """The argument columns of ``spec`` on this kernel (raises UnknownProbeError)."""
    if spec.kind == "tracepoint":
        from . import tracefs  # noqa: PLC0415
        try:
            fmt = tracefs.read_format(spec.target, spec.name)
        except UnknownProbeError as exc:
            sugg = exc.suggestions or tuple(_suggest(spec.probe))
            raise UnknownProbeError(f"there is no tracepoint {spec.probe} on this kernel", probe=spec.probe,
                                    suggestions=sugg, cause=exc.cause) from None
        return _rename_clashes(codegen.tracepoint_columns(fmt.fields)), spec
    if spec.kind == "rawtracepoint":
        if spec.name in ("sys_enter", "sys_exit"):
            return codegen.rawtracepoint_columns(spec.name), spec
        from . import catalog  # noqa: PLC0415
        args = catalog._raw_args(spec.name)  # noqa: SLF001 - BTF prototype of btf_trace_NAME
        if not args:
            raise UnknownProbeError(f"there is no raw tracepoint {spec.name!r} on this kernel", probe=spec.probe,
                                    suggestions=tuple(_suggest(spec.probe)),
                                    cause="no btf_trace_NAME prototype in the kernel's BTF")
        return codegen.rawtracepoint_columns(spec.name, args), spec
    # uprobes
    from . import elfsyms  # noqa: PLC0415
    try:
        path = elfsyms.resolve_binary(spec.target)
        elfsyms.symbol_address(path, spec.name)
    except (UnknownProbeError, UsageError, OSError) as exc:
        sugg = tuple(_suggest(spec.probe))
        kw = {} if sugg else {"next_step": f"check the path, then list its functions with "
                                           f"ebpf_lab.list_probes('{spec.kind}:{spec.target}:*')"}
        raise UnknownProbeError(f"cannot place {spec.probe}: {getattr(exc, 'what', exc)}", probe=spec.probe,
                                suggestions=sugg, cause="no such binary, or no such function symbol in it",
                                **kw) from None
    spec = codegen.ProbeSpec(spec.kind, path, spec.name)
    return codegen.uprobe_columns(spec.kind == "uretprobe"), spec


def _rename_clashes(cols: list[codegen.Column]) -> list[codegen.Column]:
    """An argument named like a common column (``pid`` of sched_process_exec) becomes ``args_pid``."""
    import dataclasses  # noqa: PLC0415
    out = []
    for c in cols:
        if c.name in codegen.COMMON_COLUMNS:
            new = "args_" + c.name
            c = dataclasses.replace(c, name=new, fill=c.fill.replace(f"e->{c.name}", f"e->{new}"))
        out.append(c)
    return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def load_program(run: ProbeRun, bcc, program: codegen.Program | str, *, probe: str, fn_name: str = "lab_probe",
                 prog_type=None):
    """Compile and load ``program`` with bcc; register cleanup on ``run``.

    Returns ``(bpf, fn)``. A compile failure raises ProbeError, a verifier
    rejection VerifierError with the whole log on ``.log``.
    """
    text = program.text if isinstance(program, codegen.Program) else program
    b = compile_quietly(bcc, text, what=probe)
    run.on_close(b.cleanup)
    if prog_type is None:
        prog_type = bcc.BPF.TRACEPOINT
    fn = load_func_quietly(b, fn_name, prog_type, text=text, what=probe)
    return b, fn


def _attach(b, bcc, spec: codegen.ProbeSpec, fn_name: str) -> None:
    with capture_stderr() as err:
        try:
            if spec.kind == "tracepoint":
                b.attach_tracepoint(tp=f"{spec.target}:{spec.name}".encode(), fn_name=fn_name.encode())
            elif spec.kind == "rawtracepoint":
                b.attach_raw_tracepoint(tp=spec.name.encode(), fn_name=fn_name.encode())
            elif spec.kind == "uprobe":
                b.attach_uprobe(name=spec.target.encode(), sym=spec.name.encode(), fn_name=fn_name.encode())
            else:
                b.attach_uretprobe(name=spec.target.encode(), sym=spec.name.encode(), fn_name=fn_name.encode())
        except Exception as exc:  # noqa: BLE001 - bcc raises bare Exceptions
            failed = exc
        else:
            failed = None
    if failed is not None:
        raise AttachError(f"could not attach to {spec.probe}: {failed}", stderr="".join(err),
                          cause="the probe point vanished, or the kernel refused this attachment",
                          next_step="check the probe with ebpf_lab.describe(...) and `ebpf-lab doctor`")


def _load_prog_type(bcc, spec: codegen.ProbeSpec):
    return {"tracepoint": bcc.BPF.TRACEPOINT, "rawtracepoint": bcc.BPF.RAW_TRACEPOINT}.get(spec.kind, bcc.BPF.KPROBE)


class PerfReader:
    """The fallback transport: bcc's perf buffer, one ctypes callback per event.

    Same interface as :class:`~ebpf_lab.ringbuf.RingBufReader` (``read``,
    ``pending_bytes``, ``close``). Each callback only copies the record's
    bytes; they become one numpy array per :meth:`read`. ``perf_lost`` is
    what perf itself reported lost (the kernel-side ``lost`` counter counts
    the same drops, from ``perf_submit``'s return value).
    """

    def __init__(self, b, record_dtype, pages: int) -> None:
        import ctypes  # noqa: PLC0415

        import numpy as np  # noqa: PLC0415

        self._np = np
        self._b = b
        self.dtype = record_dtype
        self._parts: list[bytes] = []
        self.perf_lost = 0
        size = record_dtype.itemsize

        def on_event(_cpu, data, _size):
            self._parts.append(ctypes.string_at(data, size))

        def on_lost(count):
            self.perf_lost += int(count)

        self._cbs = (on_event, on_lost)
        self._table = b[b"events"]   # keep it: bcc closes the perf buffers when the table object dies
        self._table.open_perf_buffer(on_event, page_cnt=pages, lost_cb=on_lost)

    def read(self):
        self._b.perf_buffer_poll(timeout=0)
        if not self._parts:
            return self._np.empty(0, dtype=self.dtype)
        raw = b"".join(self._parts)
        self._parts.clear()
        return self._np.frombuffer(bytearray(raw), dtype=self.dtype)

    def pending_bytes(self) -> int:
        return 0

    def close(self) -> None:
        self._parts.clear()
        table, self._table = getattr(self, "_table", None), None
        if table is not None:  # close the per-CPU buffers now, before bcc unloads the maps
            for key in list(getattr(table, "_open_key_fds", {})):
                try:
                    del table[key]
                except (KeyError, OSError):
                    pass


# --------------------------------------------------------------------------- frame

def to_frame(chunks: list, program: codegen.Program, time_offset_ns: int):
    """Turn the record arrays read from the ring buffer into the events DataFrame.

    Strings are decoded once per distinct value (``np.unique``), so a column
    with a few distinct file names costs one ``str`` each; ``comm`` becomes a
    pandas category.
    """
    import numpy as np  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415

    if not chunks:
        chunks = [np.empty(0, dtype=program.record_dtype)]

    def field(name):
        # one column at a time: concatenating whole records first would hold a second copy
        # of every record (the ring's stride, header padding included) next to the chunks
        parts = [c[name] for c in chunks]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    n_rows = sum(len(c) for c in chunks)
    kinds = {c.name: c for c in program.record_columns}
    data = {}
    for name in program.output_columns:
        if name == "time":
            ns = np.asarray(field("time_ns"), dtype=np.int64) + np.int64(time_offset_ns)
            data["time"] = ns.astype("datetime64[ns]")
            continue
        col = kinds[name]
        raw = field(name)
        if col.kind == "int":
            data[name] = np.ascontiguousarray(raw)
        else:
            codes, reps = factorize_bytes(raw)
            texts = [bytes(raw[i]).split(b"\0", 1)[0].decode("utf-8", "replace") for i in reps]
            # distinct raw bytes may decode to the same text (garbage after a NUL): merge them
            ordered = list(dict.fromkeys(texts))
            if len(ordered) != len(texts):
                remap = np.array([ordered.index(t) for t in texts], dtype=np.int64)
                codes = remap[codes] if len(codes) else codes
            if col.kind == "comm":
                data[name] = pd.Categorical.from_codes(codes.astype(np.int32), categories=pd.Index(ordered, dtype=object))
            else:
                data[name] = np.array(ordered + [None], dtype=object)[:-1][codes] if n_rows \
                    else np.array([], dtype=object)
    return pd.DataFrame(data, columns=list(program.output_columns))


def factorize_bytes(raw):
    """Codes and first-row indices of the distinct values of a fixed-size bytes column.

    Works on runs of equal consecutive values (events of one process come in
    runs), so 2 million ``comm`` values cost a few milliseconds instead of a
    sort of 2 million strings.
    """
    import numpy as np  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415

    n = len(raw)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    width = raw.dtype.itemsize
    buf = np.ascontiguousarray(raw).view(np.uint8).reshape(n, width)
    if width % 8:
        buf = np.concatenate([buf, np.zeros((n, 8 - width % 8), dtype=np.uint8)], axis=1)
    words = buf.view(np.uint64)
    # consecutive events mostly repeat a value: factorize the runs, not the rows
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for j in range(words.shape[1]):
        change[1:] |= words[1:, j] != words[:-1, j]
    starts = np.flatnonzero(change)
    sub = words[starts]
    run_codes = np.zeros(len(starts), dtype=np.int64)
    for j in range(sub.shape[1]):
        col = np.ascontiguousarray(sub[:, j])
        if not col.any():
            continue
        c, uniq = pd.factorize(col)
        run_codes, _ = pd.factorize(run_codes * len(uniq) + c)
    k = int(run_codes.max()) + 1
    first = np.empty(k, dtype=np.int64)
    first[run_codes[::-1]] = np.arange(len(run_codes) - 1, -1, -1)
    codes = np.repeat(run_codes, np.diff(np.append(starts, n)))
    reps = starts[first]
    return codes.astype(np.int64), reps


# --------------------------------------------------------------------------- trace

def trace(probe: str, fields: Sequence[str] | None = None, *, command=None, pid: int | None = None,
          duration: float | None = None, max_events: int | None = None, where: str | None = None,
          buffer_pages: int = DEFAULT_BUFFER_PAGES, transport: str = "auto"):
    """Record every event of ``probe`` as one DataFrame row.

    ``probe``: ``"tracepoint:syscalls:sys_enter_openat"``,
    ``"rawtracepoint:sys_enter"``, ``"uprobe:/usr/lib/x86_64-linux-gnu/libc.so.6:malloc"``,
    ``"uretprobe:...:malloc"``.

    Columns: the probe's arguments by name, typed from the kernel's own
    description (``filename`` as ``str``, ``ret`` as a signed int64, ``int
    dfd`` as int32 ...; uprobes give ``arg0``..``arg5`` or ``retval``, the raw
    ``sys_enter`` gives ``id`` and ``arg0``..``arg5``), plus ``time_ns``
    (``bpf_ktime_get_ns``), ``time`` (wall clock), ``pid``, ``tid``, ``comm``
    and ``cpu``. ``fields=["pid", "filename"]`` keeps only those (and makes
    each event smaller in the kernel too).

    Which events (decided *in the kernel*):

    - ``command="cat /etc/hosts"``: start it held before ``exec``, attach,
      then let it run: every event of that process from its ``exec`` on;
    - ``pid=1234``: a running process;
    - neither: the whole machine (then give ``duration`` or ``max_events``);
    - ``where="ret < 0"``: a filter over numeric fields, integer literals and
      ``== != < <= > >= && || !`` (``and``/``or``/``not`` too).

    When it ends: after ``duration`` seconds, after ``max_events`` rows, or
    (with a command or a pid and no duration) when that process exits; the
    buffer is then drained completely.

    ``df.attrs``: ``probe``, ``program`` (the generated C), ``duration``,
    ``events`` (rows delivered), ``lost`` (events dropped because the ring
    buffer was full: counted exactly in the kernel), ``interrupted``,
    ``pid``, ``output`` (the command's stdout), ``read_cpu`` and ``frame_cpu``
    (CPU seconds this process spent reading the buffer and building the frame). When ``lost > 0`` an
    :class:`EventsLostWarning` says what to do. ``buffer_pages`` sets the
    ring buffer's size (a power of two, 4 KiB pages).

    ``transport``: ``"auto"`` (the BPF ring buffer; a perf buffer if this
    kernel has no ring buffer), ``"ringbuf"`` or ``"perf"`` (one Python
    callback per event: much slower, shown for comparison). Losses are
    counted in the kernel either way; ``df.attrs["transport"]`` says which.

    A Ctrl-C (Jupyter's stop button) ends the run and returns what was
    collected, with ``df.attrs["interrupted"] = True``.
    """
    if transport not in ("auto", "ringbuf", "perf"):
        raise UsageError(f"transport={transport!r}: use 'auto', 'ringbuf' or 'perf'")
    import pandas  # noqa: F401, PLC0415 - imported up front, not inside the timed frame building

    from ._bcc import load_bcc, require_root  # noqa: PLC0415
    from .ringbuf import PAGE_SIZE, RingBufReader  # noqa: PLC0415

    spec = codegen.parse_probe(probe)
    if command is not None and pid is not None:
        raise UsageError("give command= or pid=, not both",
                         next_step="command= starts a new process; pid= follows one already running")
    if command is None and pid is None and duration is None and max_events is None:
        raise UsageError(f"tracing {spec.probe} on the whole machine needs an end",
                         next_step="give duration=5 (seconds) or max_events=1000, or a command= to trace")
    if duration is not None and duration <= 0:
        raise UsageError(f"duration={duration!r} must be a positive number of seconds")
    if max_events is not None and max_events <= 0:
        raise UsageError(f"max_events={max_events!r} must be a positive number")
    if pid is not None and not _pid_alive(int(pid)):
        raise UsageError(f"there is no process {pid}", next_step="check the pid with `ps -p PID`")
    require_root("tracing with trace()")
    available, spec = _available_columns(spec)
    record, out_cols = codegen.select_columns(available, fields, spec.probe)
    where_cols = codegen.common_columns() + available
    if where is not None:
        codegen.parse_where(where, where_cols, spec.probe)  # fail before starting anything
    argv = resolve_command(command) if command is not None else None
    bcc = load_bcc()

    with ProbeRun() as run:
        held = run.hold_capturing(argv) if argv is not None else None
        target = held.pid if held is not None else (int(pid) if pid is not None else None)
        used = "perf" if transport == "perf" else "ringbuf"
        program = codegen.generate(spec, record, pid=target, where=where, available=where_cols,
                                   buffer_pages=buffer_pages, output_columns=out_cols, transport=used)
        try:
            b, _fn = load_program(run, bcc, program, probe=spec.probe, prog_type=_load_prog_type(bcc, spec))
        except ProbeError as exc:
            if transport != "auto" or "ringbuf" not in (str(exc) + exc.stderr).lower():
                raise
            used = "perf"   # a kernel without BPF ring buffers (before 5.8): fall back to a perf buffer
            program = codegen.generate(spec, record, pid=target, where=where, available=where_cols,
                                       buffer_pages=buffer_pages, output_columns=out_cols, transport=used)
            b, _fn = load_program(run, bcc, program, probe=spec.probe, prog_type=_load_prog_type(bcc, spec))
        _attach(b, bcc, spec, program.fn_name)
        if used == "ringbuf":
            reader = RingBufReader(b.get_table(b"events").map_fd, buffer_pages * PAGE_SIZE, program.record_dtype)
        else:
            reader = PerfReader(b, program.record_dtype, buffer_pages)
        run.on_close(reader.close)
        offset_ns = time.clock_gettime_ns(time.CLOCK_REALTIME) - time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        chunks: list = []
        count = 0
        interrupted = False
        started = time.monotonic()
        cpu0 = time.thread_time()
        deadline = started + duration if duration is not None else None
        bar = for_duration(duration, desc=f"trace {spec.probe}")
        bar.__enter__()
        run.on_close(lambda: bar.__exit__(None, None, None))
        try:
            if held is not None:
                held.release()
            while True:
                batch = reader.read()
                if len(batch):
                    chunks.append(batch)
                    count += len(batch)
                    if max_events is not None and count >= max_events:
                        break
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                if deadline is None and target is not None:
                    ended = held.proc.poll() is not None if held is not None else not _pid_alive(target)
                    if ended:
                        break
                if not len(batch):
                    wait = POLL_INTERVAL if deadline is None else min(POLL_INTERVAL, max(0.0, deadline - now))
                    time.sleep(wait)
        except KeyboardInterrupt:
            interrupted = True
        elapsed = time.monotonic() - started
        # stop producing, then drain what the kernel had already written
        _detach(b, spec)
        if max_events is None or count < max_events:
            # a program already running on another CPU when we detached may still be
            # writing its record (BUSY): wait for it, briefly, so that none is missed
            settle = time.monotonic() + 1.0
            while True:
                batch = reader.read()
                if len(batch):
                    chunks.append(batch)
                    count += len(batch)
                    continue
                if reader.pending_bytes() == 0 or time.monotonic() > settle:
                    break
                time.sleep(0.001)
        lost = _read_lost(b)
        read_cpu = time.thread_time() - cpu0
        output = ""
        if held is not None:
            if held.proc.poll() is None:
                from .session import kill_process_group  # noqa: PLC0415
                kill_process_group(held.proc, grace=0.5)
            output = held.output()
        reader.close()

    cpu1 = time.thread_time()
    df = to_frame(chunks, program, offset_ns)
    frame_cpu = time.thread_time() - cpu1
    if max_events is not None and len(df) > max_events:
        df = df.iloc[:max_events].reset_index(drop=True)
    df.attrs.update(probe=spec.probe, program=program.text, duration=elapsed, events=len(df), lost=lost,
                    interrupted=interrupted, pid=target, command=argv, where=where, output=output,
                    buffer_pages=buffer_pages, read_cpu=read_cpu, frame_cpu=frame_cpu, transport=used)
    if lost:
        warnings.warn(
            f"{lost} events of {spec.probe} were lost ({len(df)} delivered): the ring buffer "
            f"({buffer_pages} pages) was full because this reader could not keep up with the kernel. "
            "Use a bigger buffer (buffer_pages=...), a where= filter or fewer fields, or count in the "
            "kernel instead (ebpf_lab.syscall_counts / ebpf_lab.histogram).",
            EventsLostWarning, stacklevel=2)
    return df


def _read_lost(b) -> int:
    """Sum the per-CPU ``lost`` counters of a program made by :mod:`ebpf_lab.codegen`."""
    table = b.get_table(b"lost")
    return int(sum(int(v) for v in table[table.Key(0)]))


def _detach(b, spec: codegen.ProbeSpec) -> None:
    """Detach the probe but keep the maps: the buffer can be drained and ``lost`` read after."""
    with capture_stderr():
        if spec.kind == "tracepoint":
            b.detach_tracepoint(tp=f"{spec.target}:{spec.name}".encode())
        elif spec.kind == "rawtracepoint":
            b.detach_raw_tracepoint(tp=spec.name.encode())
        elif spec.kind == "uprobe":
            b.detach_uprobe(name=spec.target.encode(), sym=spec.name.encode())
        else:
            b.detach_uretprobe(name=spec.target.encode(), sym=spec.name.encode())
