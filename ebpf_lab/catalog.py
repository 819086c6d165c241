"""The probe catalog: which probes exist on this machine, and what they carry.

Lesson 02 asks "where can I attach?" and this module answers it the way
``bpftrace -l`` and ``bpftrace -lv`` do, as DataFrames::

    >>> from ebpf_lab import list_probes, describe
    >>> list_probes("tracepoint:syscalls:sys_enter_open*")          # doctest: +SKIP
                                        probe        type     target                    name
    0          tracepoint:syscalls:sys_enter_open  tracepoint  syscalls          sys_enter_open
    ...
    >>> describe("tracepoint:syscalls:sys_enter_openat")            # doctest: +SKIP
                                      probe          name          type  offset  size ...

Probe types it can list:

* ``tracepoint:GROUP:NAME`` -- from tracefs ``available_events``, the same set
  ``bpftrace -l 'tracepoint:*'`` prints (the ``ftrace`` group's internal
  formats under ``events/`` are not attachable and are left out, as bpftrace does);
* ``rawtracepoint:NAME`` -- from the kernel's BTF: every ``btf_trace_NAME``
  type is a raw tracepoint (bpftrace 0.17 cannot list these; newer versions
  read them the same way). ``syscalls:*`` events are not raw tracepoints: use
  ``rawtracepoint:sys_enter``;
* ``uprobe:FILE:FUNC`` / ``uretprobe:FILE:FUNC`` -- the function symbols of a
  binary or library (:mod:`ebpf_lab.elfsyms`), exactly bpftrace's list; ``FILE``
  may be a path, a command on PATH (``bash``) or a library's short name (``libc``);
* ``kprobe:FUNC`` / ``kretprobe:FUNC`` -- only where the kernel has kprobes
  (``<tracefs>/kprobe_events`` exists); elsewhere :class:`NotSupportedError`
  names what works instead.

Patterns follow bpftrace: ``*`` is the only wildcard and matches any run of
characters (``?`` and ``[...]`` are literal); the short type names ``t``,
``u``, ``ur``, ``k``, ``kr`` work; ``tracepoint:NAME`` means
``tracepoint:*:NAME``. A pattern with no type prefix searches tracepoints:
``*openat`` -> ``tracepoint:*:*openat`` and ``syscalls:sys_enter_open*`` ->
``tracepoint:syscalls:sys_enter_open*`` (bpftrace 0.17 answers the second form,
and any prefix-less pattern without a leading ``*``, with a FATAL error).
"""

from __future__ import annotations

import difflib
import glob as _glob
import os
import re
from functools import lru_cache
from pathlib import Path

from . import elfsyms, tracefs
from .errors import NotSupportedError, PrivilegeError, UnknownProbeError, UsageError

__all__ = ["count_probes", "describe", "list_probes", "suggest"]

# bpftrace 0.17's probe type names and their short forms
_ALIASES = {
    "tracepoint": "tracepoint", "t": "tracepoint",
    "rawtracepoint": "rawtracepoint",
    "uprobe": "uprobe", "u": "uprobe",
    "uretprobe": "uretprobe", "ur": "uretprobe",
    "kprobe": "kprobe", "k": "kprobe",
    "kretprobe": "kretprobe", "kr": "kretprobe",
}
_OTHER_TYPES = {
    "usdt", "U", "profile", "p", "interval", "i", "software", "s", "hardware", "h",
    "watchpoint", "w", "asyncwatchpoint", "aw", "kfunc", "f", "kretfunc", "fr", "iter", "it",
    "BEGIN", "END",
}
_KPROBE_ALTERNATIVE = "tracepoints (list_probes('tracepoint:syscalls:*')) or uprobes"
COLUMNS = ["probe", "type", "target", "name"]


def _pd():
    import pandas as pd  # noqa: PLC0415 - keep `import ebpf_lab.catalog` light

    return pd


def _glob_regex(pattern: str) -> re.Pattern:
    """bpftrace's wildcard: ``*`` matches anything (``:`` included); nothing else is special."""
    return re.compile("^" + ".*".join(re.escape(p) for p in pattern.split("*")) + "$")


def _split(pattern: str) -> tuple[str, list[str], bool]:
    """``pattern`` -> (canonical type, the parts after it, whether a type was given)."""
    pattern = pattern.strip()
    if not pattern:
        raise UsageError("the probe pattern is empty", next_step="try list_probes('tracepoint:syscalls:*')")
    head, sep, rest = pattern.partition(":")
    if sep and head in _ALIASES:
        return _ALIASES[head], rest.split(":") if rest else [], True
    if sep and head in _OTHER_TYPES or pattern in _OTHER_TYPES or (not sep and head in _ALIASES):
        if not sep and head in _ALIASES:
            raise UsageError(
                f"{head} probes take arguments: {pattern!r} alone names none",
                next_step=f"add a wildcard: list_probes('{head}:*')" if head not in ("uprobe", "u", "uretprobe", "ur")
                else f"name a file and a function: list_probes('{head}:/usr/bin/bash:*')",
            )
        raise UsageError(
            f"list_probes does not list {head!r} probes",
            cause="the lab's catalog covers tracepoint, rawtracepoint, uprobe/uretprobe and kprobe/kretprobe",
            next_step=f"run `bpftrace -l '{pattern}'` in a terminal to see them",
        )
    # no probe type: bpftrace treats a leading '*' as "every type"; we search tracepoints
    parts = pattern.split(":")
    return "tracepoint", parts, False


# ---------------------------------------------------------------- tracepoints

@lru_cache(maxsize=4)
def _tracepoints(root: str) -> tuple[str, ...]:
    return tuple(tracefs.available_events(Path(root)))


def _all_tracepoints() -> tuple[str, ...]:
    """Every tracepoint as ``group:name`` (cached per process and tracefs mount)."""
    return _tracepoints(str(tracefs.find_tracefs()))


def _list_tracepoints(parts: list[str]) -> list[tuple[str, str, str]]:
    if len(parts) == 1:
        parts = ["*", parts[0]]
    if len(parts) != 2:
        raise UsageError(
            f"a tracepoint is GROUP:NAME, not {':'.join(parts)!r}",
            next_step="write it as tracepoint:syscalls:sys_enter_openat (wildcards: tracepoint:syscalls:*)",
        )
    rx = _glob_regex(":".join(parts))
    rows = []
    for ev in _all_tracepoints():
        if rx.match(ev):
            group, name = ev.split(":", 1)
            rows.append((f"tracepoint:{ev}", group, name))
    return rows


# ------------------------------------------------------------ raw tracepoints

@lru_cache(maxsize=1)
def _raw_tracepoints() -> tuple[tuple[str, ...], str]:
    """Raw tracepoint names and where they came from."""
    try:
        from . import btf  # noqa: PLC0415

        names = sorted({n[len("btf_trace_"):] for n in btf.load().names("TYPEDEF") if n.startswith("btf_trace_")})
        if names:
            return tuple(names), "btf_trace_* types in /sys/kernel/btf/vmlinux"
    except Exception:  # noqa: BLE001 - no BTF: fall back to the tracepoint list
        pass
    names = sorted({ev.split(":", 1)[1] for ev in _all_tracepoints() if not ev.startswith("syscalls:")})
    return tuple(names), "tracefs available_events without the syscalls group (no BTF on this kernel)"


def _list_raw(parts: list[str]) -> list[tuple[str, str, str]]:
    if len(parts) != 1:
        raise UsageError(
            f"a raw tracepoint is just a name, not {':'.join(parts)!r}",
            next_step="write it as rawtracepoint:sys_enter (wildcards: rawtracepoint:sched*)",
        )
    rx = _glob_regex(parts[0])
    return [(f"rawtracepoint:{n}", "", n) for n in _raw_tracepoints()[0] if rx.match(n)]


# ------------------------------------------------------------------- uprobes

def _uprobe_targets(target: str) -> list[str]:
    if "*" in target:
        if "/" not in target:
            raise UsageError(
                f"a wildcard in a uprobe file name ({target!r}) needs a path",
                cause="searching every program on the machine would take minutes",
                next_step="give a path pattern such as uprobe:/usr/bin/b*:readline",
            )
        files = sorted(p for p in _glob.glob(target) if os.path.isfile(p) and os.access(p, os.X_OK | os.R_OK))
        if not files:
            raise UnknownProbeError(f"no executable file matches {target!r}", probe=target)
        return files
    return [elfsyms.resolve_binary(target)]


def _list_uprobes(ptype: str, parts: list[str]) -> list[tuple[str, str, str]]:
    if len(parts) != 2 or not parts[0]:
        raise UsageError(
            f"a {ptype} is FILE:FUNCTION, not {':'.join(parts)!r}",
            next_step=f"for example list_probes('{ptype}:/usr/bin/bash:read*') or list_probes('{ptype}:libc:malloc')",
        )
    target, func = parts
    rx = _glob_regex(func)
    many = "*" in target
    rows = []
    for path in _uprobe_targets(target):
        try:
            names = elfsyms.function_symbols(path)
        except UsageError:
            if many:
                continue  # a script among the matched files: not an ELF program
            raise
        rows.extend((f"{ptype}:{path}:{n}", path, n) for n in names if rx.match(n))
    return rows


# ------------------------------------------------------------------- kprobes

def kprobes_supported() -> bool:
    """Whether this kernel can attach kprobes: ``<tracefs>/kprobe_events`` exists."""
    return (tracefs.find_tracefs() / "kprobe_events").exists()


def _no_kprobes(ptype: str) -> NotSupportedError:
    return NotSupportedError(
        f"this kernel has no {ptype}s: {tracefs.find_tracefs() / 'kprobe_events'} does not exist",
        feature="kprobes",
        alternative=_KPROBE_ALTERNATIVE,
        cause="the kernel was built without CONFIG_KPROBES (bpftrace -l 'kprobe:*' aborts here)",
    )


@lru_cache(maxsize=1)
def _kernel_functions() -> tuple[tuple[str, ...], str]:
    root = tracefs.find_tracefs()
    try:
        text = (root / "available_filter_functions").read_text()
        names = {ln.split()[0] for ln in text.splitlines() if ln.strip()}
        return tuple(sorted(names)), "available_filter_functions"
    except OSError:
        pass
    names = set()
    try:
        with open("/proc/kallsyms", encoding="ascii", errors="replace") as fh:
            for line in fh:
                bits = line.split()
                if len(bits) >= 3 and bits[1] in "tT" and not bits[2].startswith("__pfx_"):
                    names.add(bits[2])
    except OSError as exc:
        raise PrivilegeError(f"cannot read /proc/kallsyms: {exc.strerror}") from exc
    return tuple(sorted(names)), ("/proc/kallsyms text symbols (available_filter_functions was not readable: "
                                  "some of these cannot take a kprobe)")


def _list_kprobes(ptype: str, parts: list[str]) -> tuple[list[tuple[str, str, str]], str]:
    if not kprobes_supported():
        raise _no_kprobes(ptype)
    if len(parts) != 1:
        raise UsageError(f"a {ptype} is just a kernel function name", next_step=f"for example {ptype}:do_sys_open*")
    rx = _glob_regex(parts[0])
    names, source = _kernel_functions()
    return [(f"{ptype}:{n}", "", n) for n in names if rx.match(n)], source


# ---------------------------------------------------------------- public API

def list_probes(pattern: str = "tracepoint:*"):
    """The probes matching ``pattern`` on this machine, one row each, sorted.

    Columns: ``probe`` (spelled as bpftrace spells it), ``type``, ``target``
    (the tracepoint group, or the uprobe's file) and ``name``. ``df.attrs``
    says where the list came from (``source``) and anything worth knowing
    (``note``).

    >>> list_probes("tracepoint:syscalls:sys_enter_openat*").probe.tolist()   # doctest: +SKIP
    ['tracepoint:syscalls:sys_enter_openat', 'tracepoint:syscalls:sys_enter_openat2']
    >>> len(list_probes("uprobe:/usr/bin/bash:*"))                            # doctest: +SKIP
    1670

    Raises NotSupportedError for kprobes on a kernel without them,
    UsageError for a malformed pattern.
    """
    pd = _pd()
    ptype, parts, typed = _split(pattern)
    note = ""
    if ptype == "tracepoint":
        rows = _list_tracepoints(parts)
        source = f"{tracefs.find_tracefs()}/available_events"
        if not typed:
            note = f"no probe type in {pattern!r}: searched tracepoints"
        rows = [(p, "tracepoint", t, n) for p, t, n in rows]
    elif ptype == "rawtracepoint":
        raw = _list_raw(parts)
        source = _raw_tracepoints()[1]
        note = "bpftrace 0.17 cannot list raw tracepoints; attach one as rawtracepoint:NAME (args are arg0, arg1...)"
        rows = [(p, ptype, t, n) for p, t, n in raw]
    elif ptype in ("uprobe", "uretprobe"):
        rows = [(p, ptype, t, n) for p, t, n in _list_uprobes(ptype, parts)]
        source = "ELF symbol tables (.dynsym, .symtab, and an installed debug file)"
        dbg = [elfsyms.debug_file_used(t) for t in sorted({r[2] for r in rows})]
        dbg = [d for d in dbg if d]
        if dbg:
            note = "symbols also read from " + ", ".join(dbg)
    else:
        krows, source = _list_kprobes(ptype, parts)
        rows = [(p, ptype, t, n) for p, t, n in krows]
        if "kallsyms" in source:
            note = source
    rows.sort(key=lambda r: r[0])
    df = pd.DataFrame(rows, columns=COLUMNS)
    df.attrs.update(pattern=pattern, source=source, note=note)
    return df


def count_probes(pattern: str = "tracepoint:*") -> int:
    """How many probes match ``pattern`` (``count_probes('tracepoint:syscalls:*')``)."""
    return len(list_probes(pattern))


def _decl_type(f: tracefs.Field) -> str:
    if f.array_len is None:
        return f.type
    return f"{f.type}[{f.array_len or ''}]"


def _raw_args(name: str) -> list[tuple[str, str]]:
    """(argN, C type) of a raw tracepoint, from its ``btf_trace_NAME`` prototype."""
    from . import btf  # noqa: PLC0415

    b = btf.load()
    found = b.find(f"btf_trace_{name}", "TYPEDEF")
    if not found:
        return []
    proto = b.type(b.resolve_modifiers(found[0].size_or_type))
    if proto.kind == "PTR":
        proto = b.type(proto.size_or_type)
    if proto.kind != "FUNC_PROTO":
        return []
    params = b.params(proto)[1:]  # the first is the raw tracepoint's own void *__data
    return [(f"arg{i}", b.c_name(tid)) for i, (_pname, tid) in enumerate(params)]


def describe(probe: str):
    """The arguments of a probe (or of every probe a wildcard matches), one row each.

    Columns: ``probe``, ``name``, ``type``, ``offset``, ``size``, ``signed``,
    ``array_len`` and ``decl`` (the declaration exactly as ``bpftrace -lv``
    prints it, ``const char * filename``). For tracepoints these are the
    fields of the record (``args->NAME`` in bpftrace); the shared ``common_*``
    header is left out, as bpftrace leaves it out.

    Raw tracepoints get their arguments from BTF, named ``arg0``, ``arg1``...
    as bpftrace names them (offset and size are empty). Uprobes get an empty
    frame: Debian's binaries carry no debug information about parameters,
    so use ``arg0``...``arg5`` (``df.attrs['note']`` says so).

    Raises UnknownProbeError ("did you mean") when nothing matches.
    """
    pd = _pd()
    columns = ["probe", "name", "type", "offset", "size", "signed", "array_len", "decl"]
    matched = list_probes(probe)
    if matched.empty:
        sugg = suggest(probe)
        raise UnknownProbeError(
            f"no probe matches {probe!r} on this kernel",
            probe=probe, suggestions=tuple(sugg),
            cause="a typo, or this kernel does not have that probe",
        )
    rows = []
    note = ""
    for _, row in matched.iterrows():
        if row["type"] == "tracepoint":
            fmt = tracefs.read_format(row["target"], row["name"])
            for f in fmt.fields:
                rows.append((row["probe"], f.name, _decl_type(f), f.offset, f.size, f.signed, f.array_len, f.decl))
        elif row["type"] == "rawtracepoint":
            for name, ctype in _raw_args(row["name"]):
                rows.append((row["probe"], name, ctype, None, None, None, None, f"{ctype} {name}"))
            note = "raw tracepoint arguments from BTF; bpftrace names them arg0, arg1..."
        elif row["type"] in ("uprobe", "uretprobe"):
            note = ("no debug information about parameters in this binary "
                    "(bpftrace says 'No DWARF found'): read them as arg0...arg5")
    df = pd.DataFrame(rows, columns=columns)
    df.attrs.update(probe=probe, note=note, probes=matched["probe"].tolist())
    return df


def suggest(probe: str, n: int = 3) -> list[str]:
    """"Did you mean" for a mistyped probe: up to ``n`` real probes close to ``probe``.

    >>> suggest("tracepoint:syscalls:sys_enter_opnat")       # doctest: +SKIP
    ['tracepoint:syscalls:sys_enter_openat', ...]
    >>> suggest("tracepoint:sys_enter_openat")                # doctest: +SKIP
    ['tracepoint:syscalls:sys_enter_openat']

    Cheap enough to call on every error: the listings are cached per process.
    Returns [] when nothing is close (or the probe type cannot be listed here).
    """
    probe = probe.strip()
    head, sep, rest = probe.partition(":")
    if sep and head not in _ALIASES and head not in _OTHER_TYPES:
        close = difflib.get_close_matches(head, [k for k in _ALIASES if len(k) > 2], n=1, cutoff=0.6)
        if close:  # tracepiont:... -> tracepoint:...
            fixed = f"{close[0]}:{rest}"
            return _probes_or_empty(fixed)[:n] or suggest(fixed, n)
    try:
        ptype, parts, _typed = _split(probe)
    except UsageError:
        return []
    try:
        if ptype == "tracepoint":
            pool = _all_tracepoints()
            if len(parts) == 1:  # group left out: tracepoint:sys_enter_openat
                exact = [ev for ev in pool if ev.split(":", 1)[1] == parts[0]]
                if exact:
                    return [f"tracepoint:{ev}" for ev in exact[:n]]
                names = [ev.split(":", 1)[1] for ev in pool]
                close = difflib.get_close_matches(parts[0], names, n=n, cutoff=0.6)
                return [f"tracepoint:{ev}" for c in close for ev in pool if ev.endswith(":" + c)][:n]
            wanted = ":".join(parts)
            group = parts[0]
            same = [ev for ev in pool if ev.startswith(group + ":")]
            close = difflib.get_close_matches(wanted, same, n=n, cutoff=0.6) if same else []
            if not close:
                close = difflib.get_close_matches(wanted, pool, n=n, cutoff=0.6)
            return [f"tracepoint:{c}" for c in close]
        if ptype == "rawtracepoint":
            names = _raw_tracepoints()[0]
            if parts and parts[0] in names:
                return [f"rawtracepoint:{parts[0]}"]
            name = parts[-1] if parts else ""
            return [f"rawtracepoint:{c}" for c in difflib.get_close_matches(name, names, n=n, cutoff=0.6)]
        if ptype in ("uprobe", "uretprobe") and len(parts) == 2 and "*" not in parts[0]:
            path = elfsyms.resolve_binary(parts[0])
            names = elfsyms.function_symbols(path)
            return [f"{ptype}:{path}:{c}" for c in difflib.get_close_matches(parts[1], names, n=n, cutoff=0.6)]
        if ptype in ("kprobe", "kretprobe") and kprobes_supported() and len(parts) == 1:
            names = _kernel_functions()[0]
            return [f"{ptype}:{c}" for c in difflib.get_close_matches(parts[0], names, n=n, cutoff=0.6)]
    except (UnknownProbeError, UsageError, NotSupportedError, OSError):
        return []
    return []


def _probes_or_empty(pattern: str) -> list[str]:
    """``list_probes(pattern).probe`` as a list, or [] instead of an error."""
    try:
        return list_probes(pattern)["probe"].tolist()
    except Exception:  # noqa: BLE001 - a helper for suggestions only
        return []
