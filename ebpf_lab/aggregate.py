"""Aggregating in the kernel: count and histogram without sending every event up.

:func:`ebpf_lab.trace` copies every event to user space; at a million
syscalls a second that is costly and may lose events. Here the BPF program
keeps the totals in a map and user space reads the map once at the end:

- :func:`syscall_counts`: calls and failures per syscall, like bcc's
  ``syscount`` (one program on ``raw_syscalls:sys_exit``, a per-CPU array
  indexed by syscall number: no hash, no locks, no events);
- :func:`syscall_latency`: a log2 histogram of each syscall's duration, like
  ``syscount -L`` / ``funclatency``;
- :func:`histogram`: ``hist()``/``lhist()`` of any numeric field of any probe,
  through bpftrace.
"""

from __future__ import annotations

import re
import time
from typing import Sequence

from .errors import UnknownProbeError, UsageError
from .progress import for_duration
from .session import ProbeRun, resolve_command

__all__ = ["histogram", "syscall_counts", "syscall_latency"]

MAX_SYSCALLS = 1024   # array size; syscall ids at or above it are ignored (bounds check)
LOG2_SLOTS = 64


# --------------------------------------------------------------------------- shared

def _check_target(command, pid, duration) -> list[str] | None:
    if command is not None and pid is not None:
        raise UsageError("give command= or pid=, not both",
                         next_step="command= starts a new process; pid= follows one already running")
    if command is None and pid is None and duration is None:
        raise UsageError("counting on the whole machine needs an end",
                         next_step="give duration=5 (seconds), or a command= to count")
    if duration is not None and duration <= 0:
        raise UsageError(f"duration={duration!r} must be a positive number of seconds")
    return resolve_command(command) if command is not None else None


def _pid_filter(pid: int | None) -> str:
    """The compile-time pid check (a constant comparison: cheaper than a map lookup)."""
    if pid is None:
        return ""
    return f"    if ((bpf_get_current_pid_tgid() >> 32) != {int(pid)}) return 0;\n"


def _run_program(make_text, *, argv, pid, duration, attach: Sequence[tuple[str, str]], collect):
    """Hold the command (if any), compile ``make_text(pid)``, attach, run, then ``collect(bpf)``.

    ``attach``: (tracepoint "group:name", function name) pairs. Returns
    ``(collected, text, elapsed, interrupted, pid, output)``.
    """

    from ._bcc import load_bcc, require_root  # noqa: PLC0415
    from .stream import _attach, _pid_alive, load_program  # noqa: PLC0415
    from .codegen import ProbeSpec  # noqa: PLC0415

    if pid is not None and not _pid_alive(int(pid)):
        raise UsageError(f"there is no process {pid}", next_step="check the pid with `ps -p PID`")
    require_root("counting in the kernel")
    bcc = load_bcc()
    with ProbeRun() as run:
        held = run.hold_capturing(argv) if argv is not None else None
        target = held.pid if held is not None else (int(pid) if pid is not None else None)
        text = make_text(target)
        b = None
        for tp, fn in attach:
            if b is None:
                b, _ = load_program(run, bcc, text, probe=f"tracepoint:{tp}", fn_name=fn)
            else:
                load_program_fn(b, bcc, fn, tp, text)
            group, name = tp.split(":")
            _attach(b, bcc, ProbeSpec("tracepoint", group, name), fn)
        started = time.monotonic()
        interrupted = False
        try:
            if held is not None:
                held.release()
            if duration is not None:
                end = started + duration
                with for_duration(duration, desc="counting in the kernel"):
                    while time.monotonic() < end:
                        time.sleep(min(0.05, max(0.0, end - time.monotonic())))
            elif held is not None:
                held.proc.wait()
            else:
                while _pid_alive(target):
                    time.sleep(0.02)
        except KeyboardInterrupt:
            interrupted = True
        elapsed = time.monotonic() - started
        for tp, _fn in attach:
            b.detach_tracepoint(tp=tp.encode())
        collected = collect(b)
        output = held.output() if held is not None else ""
    return collected, text, elapsed, interrupted, target, output


def load_program_fn(b, bcc, fn: str, tp: str, text: str) -> None:
    """Load a second function of an already compiled module (VerifierError on rejection)."""
    from ._bcc import load_func_quietly  # noqa: PLC0415

    load_func_quietly(b, fn, bcc.BPF.TRACEPOINT, text=text, what=f"tracepoint:{tp}")


def _percpu_sum(table, key: int, fields: Sequence[str]) -> tuple[int, ...]:
    vals = table[table.Key(key)]
    return tuple(sum(int(getattr(v, f)) for v in vals) for f in fields)


# --------------------------------------------------------------------------- counts

_COUNTS_C = """
struct cnt_t { u64 count; u64 errors; };
%(decl)s
int lab_counts(void *ctx)
{
%(pid_filter)s    s64 id = *(s64 *)((char *)ctx + 8);      // raw_syscalls:sys_exit: long id
    s64 ret = *(s64 *)((char *)ctx + 16);     //                        long ret
    if ((u64)id >= %(max)d) return 0;
%(body)s    return 0;
}
"""

_COUNTS_ARRAY = """    u32 k = id;
    struct cnt_t *c = counts.lookup(&k);
    if (!c) return 0;
    c->count++;
    if (ret < 0) c->errors++;
"""

_COUNTS_HASH = """    struct key_t key = {};
    key.id = id;
%(fill)s    struct cnt_t zero = {}, *c = counts.lookup_or_try_init(&key, &zero);
    if (!c) return 0;
    c->count++;
    if (ret < 0) c->errors++;
"""


def counts_program(pid: int | None, by: str | None = None) -> str:
    """The C program :func:`syscall_counts` loads (pure: shown in lessons)."""
    if by is None:
        decl = f"BPF_PERCPU_ARRAY(counts, struct cnt_t, {MAX_SYSCALLS});"
        body = _COUNTS_ARRAY
    elif by == "pid":
        decl = "struct key_t { u32 id; u32 pid; };\nBPF_PERCPU_HASH(counts, struct key_t, struct cnt_t, 65536);"
        body = _COUNTS_HASH % {"fill": "    key.pid = bpf_get_current_pid_tgid() >> 32;\n"}
    else:
        decl = "struct key_t { u32 id; char comm[16]; };\nBPF_PERCPU_HASH(counts, struct key_t, struct cnt_t, 65536);"
        body = _COUNTS_HASH % {"fill": "    bpf_get_current_comm(key.comm, sizeof(key.comm));\n"}
    return _COUNTS_C % {"decl": decl, "pid_filter": _pid_filter(pid), "max": MAX_SYSCALLS, "body": body}


def syscall_counts(*, command=None, pid: int | None = None, duration: float | None = None, by: str | None = None):
    """Count syscalls in the kernel: one row per syscall name, most frequent first.

    Columns: ``syscall`` (the running kernel's names, from
    :mod:`ebpf_lab.syscalls`), ``count`` (completed calls, counted at
    ``raw_syscalls:sys_exit`` like bcc's ``syscount``) and ``errors`` (calls
    that returned a negative errno). ``by="pid"`` or ``by="comm"`` adds that
    column and counts per process.

    Which syscalls: those of ``command`` (started held, so nothing from its
    ``exec`` on is missed; counting ends when it exits), of the running
    ``pid``, or of the whole machine for ``duration`` seconds. ``df.attrs``
    holds ``program`` (the C source), ``duration``, ``pid``, ``output``.

    >>> ebpf_lab.syscall_counts(command="ls /")          # doctest: +SKIP
          syscall  count  errors
    0       close     12       0
    ...
    """
    import pandas as pd  # noqa: PLC0415

    from .syscalls import syscall_name  # noqa: PLC0415

    if by not in (None, "pid", "comm"):
        raise UsageError(f"by={by!r}: count per 'pid' or 'comm', or leave it None")
    argv = _check_target(command, pid, duration)

    def collect(b):
        table = b.get_table(b"counts")
        rows = []
        if by is None:
            # one syscall a map lookup: read the whole per-CPU array in one batch when possible
            for k, vals in _array_items(table):
                count = sum(int(v.count) for v in vals)
                if count:
                    rows.append((int(k), count, sum(int(v.errors) for v in vals)))
        else:
            for key, vals in table.items():
                count = sum(int(v.count) for v in vals)
                extra = int(key.pid) if by == "pid" else bytes(key.comm).split(b"\0", 1)[0].decode("utf-8", "replace")
                rows.append((int(key.id), count, sum(int(v.errors) for v in vals), extra))
        return rows

    rows, text, elapsed, interrupted, target, output = _run_program(
        lambda p: counts_program(p, by), argv=argv, pid=pid, duration=duration,
        attach=[("raw_syscalls:sys_exit", "lab_counts")], collect=collect)
    columns = ["syscall", "count", "errors"] + ([by] if by else [])
    data = [(syscall_name(r[0]), r[1], r[2], *r[3:]) for r in rows]
    df = pd.DataFrame(data, columns=columns)
    if by:
        df = df[[by, "syscall", "count", "errors"]]
    df["count"] = df["count"].astype("int64")
    df["errors"] = df["errors"].astype("int64")
    df = df.sort_values(["count", "syscall"], ascending=[False, True], kind="stable").reset_index(drop=True)
    df.attrs.update(program=text, duration=elapsed, interrupted=interrupted, pid=target, command=argv,
                    output=output, probe="tracepoint:raw_syscalls:sys_exit")
    return df


def _array_items(table):
    """(key, per-CPU values) of every slot of a BPF_PERCPU_ARRAY."""
    for i in range(len(table)):
        yield i, table[table.Key(i)]


# --------------------------------------------------------------------------- latency

_LATENCY_C = """
struct key_t { u32 id; u32 slot; };
BPF_HASH(start, u64, u64, 65536);
BPF_HASH(hist, struct key_t, u64, 65536);

int lab_enter(void *ctx)
{
%(pid_filter)s    s64 id = *(s64 *)((char *)ctx + 8);      // raw_syscalls:sys_enter: long id
%(id_filter)s    u64 tid = bpf_get_current_pid_tgid();
    u64 ts = bpf_ktime_get_ns();
    start.update(&tid, &ts);
    return 0;
}

int lab_exit(void *ctx)
{
%(pid_filter)s    u64 tid = bpf_get_current_pid_tgid();
    u64 *tsp = start.lookup(&tid);
    if (!tsp) return 0;
    u64 delta = bpf_ktime_get_ns() - *tsp;
    start.delete(&tid);
    s64 id = *(s64 *)((char *)ctx + 8);
    struct key_t key = {};
    key.id = id;
    key.slot = delta ? bpf_log2l(delta) : 0;   // slot k >= 1 holds [2^(k-1), 2^k - 1] ns
    u64 zero = 0, *c = hist.lookup_or_try_init(&key, &zero);
    if (c) __sync_fetch_and_add(c, 1);
    return 0;
}
"""


def latency_program(pid: int | None, ids: Sequence[int] | None = None) -> str:
    """The C program :func:`syscall_latency` loads (pure)."""
    id_filter = ""
    if ids:
        cond = " && ".join(f"id != {int(i)}" for i in sorted(set(ids)))
        id_filter = f"    if ({cond}) return 0;\n"
    return _LATENCY_C % {"pid_filter": _pid_filter(pid), "id_filter": id_filter}


def log2_bounds(slot: int) -> tuple[int, int]:
    """Inclusive bounds of log2 slot ``slot`` (0 -> [0, 0], 1 -> [1, 1], 3 -> [4, 7])."""
    if slot == 0:
        return 0, 0
    return 1 << (slot - 1), (1 << slot) - 1


def syscall_latency(*, command=None, pid: int | None = None, duration: float | None = None,
                    syscalls: Sequence[str] | str | None = None):
    """How long each syscall took: a log2 histogram per syscall, measured in the kernel.

    Returns one row per non-empty bucket: ``syscall``, ``min`` and ``max``
    (inclusive bucket bounds in nanoseconds, as bpftrace's ``hist()``:
    ``[4, 8)`` is min 4, max 7) and ``count``. ``syscalls=["openat", "read"]``
    keeps only those (decided in the kernel). Targets as in
    :func:`syscall_counts`.
    """
    import pandas as pd  # noqa: PLC0415

    from .syscalls import syscall_name, syscall_nr  # noqa: PLC0415

    argv = _check_target(command, pid, duration)
    ids = None
    if syscalls is not None:
        names = [syscalls] if isinstance(syscalls, str) else list(syscalls)
        ids = [syscall_nr(n) for n in names]  # UnknownProbeError with did-you-mean on a typo

    def collect(b):
        return [(int(k.id), int(k.slot), int(v.value)) for k, v in b.get_table(b"hist").items()]

    rows, text, elapsed, interrupted, target, output = _run_program(
        lambda p: latency_program(p, ids), argv=argv, pid=pid, duration=duration,
        attach=[("raw_syscalls:sys_enter", "lab_enter"), ("raw_syscalls:sys_exit", "lab_exit")], collect=collect)
    data = []
    for nr, slot, count in sorted(rows):
        lo, hi = log2_bounds(slot)
        data.append((syscall_name(nr), lo, hi, count))
    df = pd.DataFrame(data, columns=["syscall", "min", "max", "count"])
    for c in ("min", "max"):
        df[c] = pd.array(df[c].tolist(), dtype="Int64")
    df["count"] = df["count"].astype("int64")
    df = df.sort_values(["syscall", "min"], kind="stable").reset_index(drop=True)
    df.attrs.update(program=text, duration=elapsed, interrupted=interrupted, pid=target, command=argv,
                    output=output, unit="ns")
    return df


# --------------------------------------------------------------------------- histogram

_IDENT = re.compile(r"[A-Za-z_]\w*")
_EXPR_TOKEN = re.compile(r"\s*(?:(?P<num>0[xX][0-9a-fA-F]+|\d+)|(?P<name>[A-Za-z_]\w*)"
                         r"|(?P<op>==|!=|<=|>=|&&|\|\||<<|>>|[<>!()&|^~+\-*/%]))")
_BUILTINS = {"pid": "pid", "tid": "tid", "cpu": "cpu", "time_ns": "nsecs"}


def _bpftrace_expr(text: str, fields: set[str], arg_prefix: str, what: str, probe: str) -> str:
    """Translate a value or filter over field names into bpftrace (nothing else allowed)."""
    out, pos = [], 0
    text = text.strip()
    if not text:
        raise UsageError(f"{what} is empty")
    while pos < len(text):
        m = _EXPR_TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise UsageError(f"{what}={text!r}: cannot use {text[pos:].strip()[:20]!r}",
                             cause="only field names, integer literals and operators are allowed",
                             next_step="write e.g. value='count' or where='ret < 0'")
        pos = m.end()
        if m.group("name"):
            name = m.group("name")
            if name in ("and", "or", "not"):
                out.append({"and": "&&", "or": "||", "not": "!"}[name])
            elif name in fields:
                out.append(f"{arg_prefix}{name}")
            elif name in _BUILTINS:
                out.append(_BUILTINS[name])
            else:
                import difflib  # noqa: PLC0415
                close = difflib.get_close_matches(name, sorted(fields), n=3, cutoff=0.5)
                raise UnknownProbeError(f"{what}={text!r}: {probe} has no numeric field {name!r}", probe=probe,
                                        suggestions=tuple(close),
                                        cause=f"its numeric fields are {', '.join(sorted(fields)) or '(none)'}")
        else:
            out.append(m.group(0).strip())
    return " ".join(out)


def histogram(probe: str, value: str, *, command=None, pid: int | None = None, duration: float | None = None,
              where: str | None = None, kind: str = "log2", lhist: tuple[int, int, int] | None = None):
    """A histogram of ``value`` (a numeric field, or arithmetic over fields) at every hit of ``probe``.

    Built in the kernel by bpftrace's ``hist()`` (``kind="log2"``) or
    ``lhist(value, min, max, step)`` (``kind="linear"`` with
    ``lhist=(min, max, step)``). Returns a DataFrame of ``min``, ``max``
    (inclusive bucket bounds; NA for the open ends) and ``count``, with the
    bpftrace program on ``df.attrs["program"]``.

    >>> histogram("tracepoint:syscalls:sys_exit_read", "ret", command="cat /etc/services")  # doctest: +SKIP
    """
    from . import codegen  # noqa: PLC0415
    from .bpftrace import run as bpftrace_run  # noqa: PLC0415
    from .stream import _available_columns  # noqa: PLC0415

    if kind not in ("log2", "linear", "lhist"):
        raise UsageError(f"kind={kind!r}: use 'log2' (hist) or 'linear' (lhist)")
    if kind != "log2" and (lhist is None or len(lhist) != 3):
        raise UsageError("a linear histogram needs lhist=(min, max, step)", next_step="e.g. lhist=(0, 1000, 100)")
    if kind == "log2" and lhist is not None:
        kind = "linear"
    argv = _check_target(command, pid, duration)
    spec = codegen.parse_probe(probe)
    from ._bcc import require_root  # noqa: PLC0415
    require_root("building a histogram with bpftrace")
    available, spec = _available_columns(spec)
    fields = {c.name for c in available if c.kind == "int"}
    prefix = "args->" if spec.kind == "tracepoint" else ""
    if spec.kind == "tracepoint":
        # tracepoint_columns renames clashing args (args_pid); bpftrace wants the real name
        fields = {f[5:] if f.startswith("args_") else f for f in fields}
    if spec.kind == "rawtracepoint" and spec.name in ("sys_enter", "sys_exit"):
        raise UsageError(f"histogram() over {spec.probe} is not offered",
                         next_step="use tracepoint:raw_syscalls:sys_enter / sys_exit (same events, named fields)")
    val = _bpftrace_expr(value, fields, prefix, "value", spec.probe)
    preds = []
    if where is not None:
        preds.append(f"({_bpftrace_expr(where, fields, prefix, 'where', spec.probe)})")
    if argv is not None:
        preds.append("pid == cpid")
    elif pid is not None:
        preds.append(f"pid == {int(pid)}")
    pred = f" /{' && '.join(preds)}/" if preds else ""
    if kind == "log2":
        agg = f"hist({val})"
    else:
        lo, hi, step = (int(x) for x in lhist)
        agg = f"lhist({val}, {lo}, {hi}, {step})"
    bt_probe = spec.probe if spec.kind != "tracepoint" else f"tracepoint:{spec.target}:{spec.name}"
    program = f"{bt_probe}{pred} {{ @ = {agg}; }}"
    res = bpftrace_run(program, command=argv, pid=pid, duration=duration)
    import pandas as pd  # noqa: PLC0415
    df = res.hists.get("@")
    if df is None:
        df = pd.DataFrame({"min": pd.array([], dtype="Int64"), "max": pd.array([], dtype="Int64"),
                           "count": pd.Series([], dtype="int64")})
    df = df.reset_index(drop=True)
    df.attrs.update(program=program, probe=spec.probe, value=value, duration=res.duration,
                    interrupted=res.interrupted, lost=res.lost, output=res.output)
    return df
