"""Generate the C program and the numpy record type for :func:`ebpf_lab.trace`.

Pure: nothing here touches the kernel. From a probe spelled the bpftrace way
and the tracepoint's fields (parsed from its tracefs ``format`` file by
:mod:`ebpf_lab.tracefs`), :func:`generate` writes

* one C ``struct event_t`` per event, with a member per selected column;
* a BPF program that filters in the kernel (pid as a compile-time constant, a
  validated ``where=`` expression), reserves a slot in a BPF ring buffer,
  fills it and submits it -- and counts every failed reservation in a per-CPU
  ``lost`` counter, so losses are exact;
* the numpy dtype with exactly the struct's layout, so a span of records in
  the ring buffer *is* a numpy structured array.

Type rules (what a learner sees in the DataFrame):

* integers keep the width and signedness of their declared C type (``int
  dfd`` -> int32 even though the syscall record stores 8 bytes; ``long ret``
  -> int64; ``umode_t mode`` -> uint16); unknown types follow the format's
  ``size``/``signed``;
* ``const char *`` arguments are user-space strings: read with
  ``bpf_probe_read_user_str`` into a fixed array, decoded to ``str``;
* ``char name[N]`` and ``__data_loc char[]`` are kernel strings -> ``str``;
* other fixed arrays become one column per element (``args0``...``args5``);
* pointers are ``uint64``.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from .errors import NotSupportedError, UnknownProbeError, UsageError

__all__ = [
    "COMMON_COLUMNS",
    "Column",
    "Program",
    "ProbeSpec",
    "STR_LEN",
    "common_columns",
    "generate",
    "parse_probe",
    "parse_where",
    "rawtracepoint_columns",
    "select_columns",
    "tracepoint_columns",
    "uprobe_columns",
]

STR_LEN = 256          # bytes kept of each user-space / __data_loc string
RB_NO_WAKEUP = 1       # BPF_RB_NO_WAKEUP: the reader polls; no wake-up per event

# C type name -> (size, signed) for the declared types of tracepoint fields
_KNOWN_INTS = {
    "char": (1, True), "signed char": (1, True), "unsigned char": (1, False), "bool": (1, False), "_Bool": (1, False),
    "short": (2, True), "short int": (2, True), "unsigned short": (2, False), "unsigned short int": (2, False),
    "int": (4, True), "signed int": (4, True), "unsigned int": (4, False), "unsigned": (4, False),
    "long": (8, True), "long int": (8, True), "unsigned long": (8, False), "unsigned long int": (8, False),
    "long long": (8, True), "unsigned long long": (8, False),
    "s8": (1, True), "u8": (1, False), "__s8": (1, True), "__u8": (1, False),
    "s16": (2, True), "u16": (2, False), "__s16": (2, True), "__u16": (2, False),
    "s32": (4, True), "u32": (4, False), "__s32": (4, True), "__u32": (4, False),
    "s64": (8, True), "u64": (8, False), "__s64": (8, True), "__u64": (8, False),
    "int8_t": (1, True), "uint8_t": (1, False), "int16_t": (2, True), "uint16_t": (2, False),
    "int32_t": (4, True), "uint32_t": (4, False), "int64_t": (8, True), "uint64_t": (8, False),
    "pid_t": (4, True), "uid_t": (4, False), "gid_t": (4, False), "qid_t": (4, False),
    "umode_t": (2, False), "mode_t": (4, False), "size_t": (8, False), "ssize_t": (8, True),
    "off_t": (8, True), "loff_t": (8, True), "key_t": (4, True), "key_serial_t": (4, True),
    "clockid_t": (4, True), "timer_t": (4, True), "mqd_t": (4, True), "rwf_t": (4, True),
    "aio_context_t": (8, False), "cap_user_header_t": (8, False), "cap_user_data_t": (8, False),
    "dev_t": (4, False), "ino_t": (8, False), "gfp_t": (4, False), "fmode_t": (4, False),
}

_C_INT = {(1, True): "s8", (1, False): "u8", (2, True): "s16", (2, False): "u16",
          (4, True): "s32", (4, False): "u32", (8, True): "s64", (8, False): "u64"}


def _np_int(size: int, signed: bool) -> str:
    return f"<{'i' if signed else 'u'}{size}"


@dataclass(frozen=True)
class Column:
    """One column of the events DataFrame and the struct member that carries it.

    ``kind``: ``"int"`` (a number), ``"str"`` (text, decoded from ``nbytes``
    bytes), ``"comm"`` (the task name, a pandas category). ``value`` is the C
    expression of the value when it is a number (used by ``where=``);
    ``fill`` the C statement(s) that fill ``e->NAME``.
    """

    name: str
    kind: str
    size: int            # bytes in the record
    signed: bool = False
    value: str | None = None
    fill: str = ""
    ctype: str = ""      # declared type, for the learner (describe)

    @property
    def np_format(self) -> str:
        if self.kind == "int":
            return _np_int(self.size, self.signed)
        return f"S{self.size}"

    @property
    def c_member(self) -> str:
        if self.kind == "int":
            return f"{_C_INT[(self.size, self.signed)]} {self.name};"
        return f"char {self.name}[{self.size}];"

    @property
    def align(self) -> int:
        return self.size if self.kind == "int" else 1


@dataclass(frozen=True)
class ProbeSpec:
    """A probe parsed from its bpftrace spelling.

    ``kind``: tracepoint, rawtracepoint, uprobe or uretprobe; ``target``: the
    tracepoint group, or the binary's path (uprobes); ``name``: the event,
    the raw tracepoint or the symbol.
    """

    kind: str
    target: str
    name: str

    @property
    def probe(self) -> str:
        if self.kind == "rawtracepoint":
            return f"rawtracepoint:{self.name}"
        return f"{self.kind}:{self.target}:{self.name}"


_ALIASES = {"t": "tracepoint", "tracepoint": "tracepoint", "rt": "rawtracepoint",
            "rawtracepoint": "rawtracepoint", "u": "uprobe", "uprobe": "uprobe",
            "ur": "uretprobe", "uretprobe": "uretprobe"}
_UNSUPPORTED = {"k": "kprobe", "kprobe": "kprobe", "kr": "kretprobe", "kretprobe": "kretprobe",
                "f": "fentry", "fentry": "fentry", "kfunc": "fentry", "fr": "fexit", "fexit": "fexit",
                "kretfunc": "fexit", "lsm": "lsm"}


def parse_probe(probe: str) -> ProbeSpec:
    """Split ``tracepoint:GROUP:NAME``, ``rawtracepoint:NAME``, ``uprobe:PATH:SYM``, ``uretprobe:PATH:SYM``.

    kprobes, fentry and LSM raise NotSupportedError naming the alternative
    (they do not attach on the lab's kernel); anything else raises UsageError.
    """
    text = probe.strip()
    head, sep, rest = text.partition(":")
    if head in _UNSUPPORTED:
        feature = _UNSUPPORTED[head]
        raise NotSupportedError(
            f"{feature} probes cannot be traced here ({text!r})",
            feature=feature,
            alternative="a tracepoint (ebpf_lab.list_probes('tracepoint:syscalls:*')) "
            "or a raw tracepoint such as 'rawtracepoint:sys_enter'",
            cause="this kernel is built without kprobes, and refuses fentry/LSM programs",
        )
    kind = _ALIASES.get(head)
    if not sep or kind is None or not rest:
        raise UsageError(
            f"cannot read the probe {probe!r}",
            cause="trace() takes one probe spelled the way bpftrace spells it",
            next_step="write 'tracepoint:syscalls:sys_enter_openat', 'rawtracepoint:sys_enter' "
            "or 'uprobe:/usr/lib/x86_64-linux-gnu/libc.so.6:malloc'",
        )
    if "*" in rest or "?" in rest or "," in rest:
        raise UsageError(f"trace() takes exactly one probe, not the pattern {probe!r}",
                         next_step="list the matches with ebpf_lab.list_probes(...) and pick one")
    if kind == "tracepoint":
        group, sep2, name = rest.partition(":")
        if not sep2 or not group or not name:
            raise UsageError(f"a tracepoint needs a group and a name: {probe!r}",
                             next_step="write 'tracepoint:GROUP:NAME', e.g. 'tracepoint:syscalls:sys_enter_openat'")
        return ProbeSpec("tracepoint", group, name)
    if kind == "rawtracepoint":
        name = rest.rsplit(":", 1)[-1]  # bpftrace 0.17 writes rawtracepoint:NAME
        return ProbeSpec("rawtracepoint", "", name)
    path, sep2, sym = rest.rpartition(":")
    if not sep2 or not path or not sym:
        raise UsageError(f"a {kind} needs a binary and a function: {probe!r}",
                         next_step=f"write '{kind}:/usr/lib/x86_64-linux-gnu/libc.so.6:malloc'")
    return ProbeSpec(kind, path, sym)


# --------------------------------------------------------------------------- columns

def common_columns() -> list[Column]:
    """The columns every event has: time_ns, pid (tgid), tid, cpu, comm."""
    return [
        Column("time_ns", "int", 8, True, "((s64)__now)", "e->time_ns = __now;", "u64"),
        Column("pid", "int", 4, True, "((s32)(__pt >> 32))", "e->pid = __pt >> 32;", "pid_t"),
        Column("tid", "int", 4, True, "((s32)__pt)", "e->tid = (u32)__pt;", "pid_t"),
        Column("cpu", "int", 4, True, "((s32)bpf_get_smp_processor_id())", "e->cpu = bpf_get_smp_processor_id();", "int"),
        Column("comm", "comm", 16, fill="bpf_get_current_comm(e->comm, sizeof(e->comm));"),
    ]


COMMON_COLUMNS = ("time_ns", "time", "pid", "tid", "comm", "cpu")


def _base_type(ctype: str) -> str:
    t = re.sub(r"\b(const|volatile|__user|struct|enum)\b", " ", ctype)
    return " ".join(t.split())


def _tp(ctype: str, off: int) -> str:
    return f"(*({ctype} *)((char *)ctx + {off}))"


def tracepoint_columns(fields: Iterable) -> list[Column]:
    """Columns for a tracepoint's own fields (``tracefs.Field`` objects; common_* are skipped).

    Fields this lab cannot carry (``__data_loc`` arrays of non-chars) are left out.
    """
    cols: list[Column] = []
    for f in fields:
        if getattr(f, "is_common", False) or f.name.startswith("common_"):
            continue
        ctype = f.type
        base = _base_type(ctype)
        is_ptr = "*" in ctype
        if ctype.startswith("__data_loc") or ctype.startswith("__rel_loc"):
            if base.replace("__data_loc", "").replace("__rel_loc", "").strip() not in ("char[]", "char []"):
                continue
            if ctype.startswith("__rel_loc"):
                where = f"((char *)ctx + {f.offset} + 4 + ({_tp('u32', f.offset)} & 0xffff))"
            else:
                where = f"((char *)ctx + ({_tp('u32', f.offset)} & 0xffff))"
            cols.append(Column(f.name, "str", STR_LEN, ctype=ctype, fill=(
                f"__builtin_memset(e->{f.name}, 0, sizeof(e->{f.name})); "
                f"bpf_probe_read_kernel_str(e->{f.name}, sizeof(e->{f.name}), {where});")))
            continue
        if is_ptr and base.replace(" ", "").rstrip("*") in ("char", "unsignedchar") and base.count("*") == 1:
            cols.append(Column(f.name, "str", STR_LEN, ctype=ctype, fill=(
                f"__builtin_memset(e->{f.name}, 0, sizeof(e->{f.name})); "
                f"bpf_probe_read_user_str(e->{f.name}, sizeof(e->{f.name}), (void *){_tp('u64', f.offset)});")))
            continue
        if is_ptr:
            cols.append(Column(f.name, "int", 8, False, _tp("u64", f.offset), f"e->{f.name} = {_tp('u64', f.offset)};", ctype))
            continue
        if f.array_len is not None:
            if f.array_len == 0:
                continue
            elem = f.size // f.array_len
            if base in ("char", "signed char", "unsigned char") and elem == 1:
                cols.append(Column(f.name, "str", f.size, ctype=f"{ctype}[{f.array_len}]", fill=(
                    f"bpf_probe_read_kernel(e->{f.name}, {f.size}, (char *)ctx + {f.offset});")))
                continue
            known = _KNOWN_INTS.get(base)
            signed = known[1] if known and known[0] == elem else bool(f.signed)
            if (elem, signed) not in _C_INT:
                continue
            ct = _C_INT[(elem, signed)]
            for i in range(f.array_len):
                name = f"{f.name}{i}"
                off = f.offset + i * elem
                cols.append(Column(name, "int", elem, signed, _tp(ct, off), f"e->{name} = {_tp(ct, off)};", ctype))
            continue
        known = _KNOWN_INTS.get(base)
        if known and known[0] <= f.size:
            size, signed = known
        else:
            size, signed = f.size, bool(f.signed)
        if (size, signed) not in _C_INT:
            continue
        ct = _C_INT[(size, signed)]
        cols.append(Column(f.name, "int", size, signed, _tp(ct, f.offset), f"e->{f.name} = {_tp(ct, f.offset)};", ctype))
    return cols


# x86_64 struct pt_regs offsets (stable ABI: arch/x86/include/uapi/asm/ptrace.h)
_PT_REGS = {"r10": 56, "r9": 64, "r8": 72, "ax": 80, "dx": 96, "si": 104, "di": 112, "orig_ax": 120}
_SYSCALL_ARG_REGS = ("di", "si", "dx", "r10", "r8", "r9")


def _regs_read(reg: str) -> str:
    return f"({{ u64 __v = 0; bpf_probe_read_kernel(&__v, 8, (char *)ctx->args[0] + {_PT_REGS[reg]}); __v; }})"


def rawtracepoint_columns(name: str, raw_args: Sequence[tuple[str, str]] = ()) -> list[Column]:
    """Columns of a raw tracepoint.

    ``sys_enter`` gives ``id`` and the six syscall arguments ``arg0``..``arg5``
    (read from the saved registers); ``sys_exit`` gives ``id`` and ``ret``.
    Others give ``arg0``... as ``raw_args`` (``(name, C type)`` pairs from BTF) lists them.
    """
    if name == "sys_enter":
        cols = [Column("id", "int", 8, True, "((s64)ctx->args[1])", "e->id = (s64)ctx->args[1];", "long")]
        for i, reg in enumerate(_SYSCALL_ARG_REGS):
            cols.append(Column(f"arg{i}", "int", 8, False, _regs_read(reg), f"e->arg{i} = {_regs_read(reg)};",
                               "unsigned long"))
        return cols
    if name == "sys_exit":
        return [
            Column("id", "int", 8, True, f"((s64){_regs_read('orig_ax')})", f"e->id = (s64){_regs_read('orig_ax')};", "long"),
            Column("ret", "int", 8, True, "((s64)ctx->args[1])", "e->ret = (s64)ctx->args[1];", "long"),
        ]
    cols = []
    for i, (aname, ctype) in enumerate(raw_args):
        base = _base_type(ctype)
        signed = "*" not in ctype and _KNOWN_INTS.get(base, (8, False))[1]
        ct = "s64" if signed else "u64"
        cols.append(Column(aname, "int", 8, signed, f"(({ct})ctx->args[{i}])", f"e->{aname} = ({ct})ctx->args[{i}];", ctype))
    return cols


def uprobe_columns(ret: bool, nargs: int = 6) -> list[Column]:
    """``arg0``..``arg5`` (uprobe) or ``retval`` (uretprobe), as integers."""
    if ret:
        return [Column("retval", "int", 8, True, "((s64)PT_REGS_RC(ctx))", "e->retval = (s64)PT_REGS_RC(ctx);", "long")]
    return [Column(f"arg{i}", "int", 8, False, f"((u64)PT_REGS_PARM{i + 1}(ctx))",
                   f"e->arg{i} = (u64)PT_REGS_PARM{i + 1}(ctx);", "unsigned long") for i in range(nargs)]


def select_columns(available: Sequence[Column], fields: Sequence[str] | None, probe: str) -> tuple[list[Column], list[str]]:
    """Pick the columns ``fields`` names; returns (record columns, output column names in order).

    ``fields=None`` means every common column and every argument (but not
    ``__syscall_nr``, which is the same in every event of one probe). The
    common names are ``time_ns``, ``time``, ``pid``, ``tid``, ``comm``, ``cpu``;
    ``time`` needs ``time_ns`` and brings it along in the record.
    An unknown name raises UnknownProbeError with a did-you-mean.
    """
    common = {c.name: c for c in common_columns()}
    by_name = {c.name: c for c in available}
    if fields is None:
        wanted = list(COMMON_COLUMNS) + [c.name for c in available if not c.name.startswith("__")]
    else:
        if isinstance(fields, str):
            fields = [f.strip() for f in fields.split(",") if f.strip()]
        wanted = list(dict.fromkeys(fields))
        if not wanted:
            raise UsageError("fields is empty", next_step="leave fields=None for every column, or name some")
    record: list[Column] = []
    for name in wanted:
        if name == "time":
            col = common["time_ns"]
        elif name in common:
            col = common[name]
        elif name in by_name:
            col = by_name[name]
        else:
            pool = list(COMMON_COLUMNS) + list(by_name)
            close = difflib.get_close_matches(name, pool, n=3, cutoff=0.5)
            raise UnknownProbeError(
                f"{probe} has no field {name!r}",
                probe=probe, suggestions=tuple(close),
                cause=f"its fields are {', '.join(by_name) or '(none)'}; every probe also has "
                f"{', '.join(COMMON_COLUMNS)}",
            )
        if col not in record:
            record.append(col)
    return record, wanted


# --------------------------------------------------------------------------- where

_TOKEN = re.compile(r"\s*(?:(?P<num>0[xX][0-9a-fA-F]+|\d+)|(?P<name>[A-Za-z_]\w*)"
                    r"|(?P<op>==|!=|<=|>=|&&|\|\||[<>!()&|^~+\-*/%]))")
_WORD_OPS = {"and": "&&", "or": "||", "not": "!"}


def parse_where(where: str, columns: Sequence[Column], probe: str = "") -> tuple[str, list[str]]:
    """Check a ``where=`` filter and translate it to C; returns (C expression, field names used).

    Allowed: field names (numbers only: ``ret``, ``id``, ``pid``...), integer
    literals (``257``, ``0x10``), comparisons ``== != < <= > >=``, logic
    ``&& || !`` (or ``and or not``), bit and arithmetic operators and
    parentheses. Anything else -- a string, a function call, a C cast, a
    semicolon -- raises UsageError, so no C can be injected into the program.
    """
    if not isinstance(where, str) or not where.strip():
        raise UsageError("where= must be a non-empty string such as 'ret < 0'")
    numeric = {c.name: c for c in columns if c.kind == "int"}
    text = where.strip()
    pos, out, used, depth = 0, [], [], 0
    prev = None  # "val" or "op"
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            bad = text[pos:].strip()[:20]
            raise UsageError(
                f"where={where!r}: cannot use {bad!r}",
                cause="a filter may only hold field names, integer literals, comparison and logic operators",
                next_step="write something like 'ret < 0' or 'id == 257 && pid != 1'",
            )
        pos = m.end()
        starts_value = bool(m.group("num")) or (bool(m.group("name")) and m.group("name") not in ("and", "or")) \
            or m.group("op") in ("(", "!", "~")
        if starts_value and prev == "val" and m.group("name") != "not":
            raise UsageError(f"where={where!r}: two values in a row near {m.group(0).strip()!r}",
                             next_step="join conditions with && or ||, e.g. 'ret < 0 && pid != 1'")
        if m.group("num"):
            out.append(m.group("num") + "LL" if not m.group("num").lower().startswith("0x") else m.group("num") + "ULL")
            prev = "val"
        elif m.group("name"):
            word = m.group("name")
            if word in _WORD_OPS:
                out.append(_WORD_OPS[word])
                prev = "op"
                continue
            if word not in numeric:
                strings = [c.name for c in columns if c.kind != "int"]
                if word in strings:
                    raise UsageError(f"where={where!r}: {word!r} is a string field; filters compare numbers only",
                                     next_step="filter strings in pandas afterwards: df[df[...].str.contains(...)]")
                close = difflib.get_close_matches(word, list(numeric), n=3, cutoff=0.5)
                kw = {} if close else {"next_step": f"use one of the numeric fields: {', '.join(numeric)}"}
                raise UnknownProbeError(f"where={where!r}: {probe or 'this probe'} has no numeric field {word!r}",
                                        probe=probe, suggestions=tuple(close),
                                        cause="a filter may only name the probe's numeric fields", **kw)
            out.append(f"({numeric[word].value})")
            used.append(word)
            prev = "val"
        else:
            op = m.group("op")
            if op == "(":
                depth += 1
            elif op == ")":
                depth -= 1
                if depth < 0:
                    raise UsageError(f"where={where!r}: unbalanced ')'")
            out.append(op)
            prev = "val" if op == ")" else "op"
    if depth:
        raise UsageError(f"where={where!r}: unbalanced '('")
    if prev != "val":
        raise UsageError(f"where={where!r} ends with an operator", next_step="complete the comparison, e.g. 'ret < 0'")
    return " ".join(out), list(dict.fromkeys(used))


# --------------------------------------------------------------------------- program

@dataclass
class Program:
    """A generated program: ``text`` (C for bcc), ``fn_name``, the record layout and columns."""

    text: str
    fn_name: str
    record_columns: list[Column]
    record_dtype: object                  # numpy dtype (built lazily so this module stays light)
    output_columns: list[str]
    buffer_pages: int
    where_c: str | None = None
    notes: list[str] = field(default_factory=list)


def record_layout(columns: Sequence[Column]) -> tuple[list[Column], list[int], int]:
    """Order members by alignment (largest first) so the struct has no holes; offsets and size."""
    ordered = sorted(columns, key=lambda c: -c.align)
    offsets, off = [], 0
    for c in ordered:
        off = (off + c.align - 1) // c.align * c.align
        offsets.append(off)
        off += c.size
    align = max((c.align for c in ordered), default=1)
    size = max(align, (off + align - 1) // align * align)   # C's sizeof(struct event_t)
    return ordered, offsets, size


def generate(spec: ProbeSpec, columns: Sequence[Column], *, pid: int | None = None, where: str | None = None,
             available: Sequence[Column] | None = None, buffer_pages: int = 4096,
             wakeup: bool = False, output_columns: Sequence[str] | None = None,
             transport: str = "ringbuf") -> Program:
    """Write the BPF C program for ``spec`` that emits ``columns`` to a ring buffer.

    ``pid``: only that process (tgid), a compile-time constant; ``where``: a
    filter over ``available`` columns (see :func:`parse_where`);
    ``buffer_pages``: ring buffer size in pages (a power of two);
    ``wakeup=False`` submits with BPF_RB_NO_WAKEUP (the reader polls).
    ``transport="perf"`` writes to a perf buffer instead (the fallback for
    kernels without a ring buffer): the event is built on the stack and a
    failed ``perf_submit`` is counted in ``lost`` the same way.
    """
    if transport not in ("ringbuf", "perf"):
        raise UsageError(f"transport={transport!r}: use 'ringbuf' or 'perf'")
    import numpy as np  # noqa: PLC0415 - numpy is a dependency, but keep import cheap

    if buffer_pages < 1 or buffer_pages & (buffer_pages - 1):
        raise UsageError(f"buffer_pages={buffer_pages} is not a power of two",
                         next_step="use 1, 2, 4, ... 4096 (pages of 4 KiB)")
    if pid is not None and (not isinstance(pid, int) or pid <= 0):
        raise UsageError(f"pid={pid!r} is not a process id")
    ordered, offsets, size = record_layout(columns)
    members = "\n".join(f"    {c.c_member}" for c in ordered)
    where_c = None
    if where is not None:
        where_c, _ = parse_where(where, available if available is not None else columns, spec.probe)
    if spec.kind == "tracepoint":
        ctx_decl = "void *ctx"
    elif spec.kind == "rawtracepoint":
        ctx_decl = "struct bpf_raw_tracepoint_args *ctx"
    else:
        ctx_decl = "struct pt_regs *ctx"
    body = []
    body.append("    u64 __pt = bpf_get_current_pid_tgid();")
    if pid is not None:
        body.append(f"    if ((__pt >> 32) != {int(pid)}) return 0;")
    if where_c is not None:
        body.append(f"    if (!({where_c})) return 0;")
    alloc_at = len(body)
    count_lost = "{ u32 __z = 0; u64 *__c = lost.lookup(&__z); if (__c) (*__c)++; }"
    if transport == "ringbuf":
        body.append("    struct event_t *e = events.ringbuf_reserve(sizeof(struct event_t));")
        body.append(f"    if (!e) {{ {count_lost} return 0; }}")
    else:
        body.append("    struct event_t __ev = {}, *e = &__ev;")
    if any(c.name == "time_ns" for c in columns):
        # right after the filters (a where= on time_ns needs it before them)
        at = 1 if (where_c is not None and "__now" in where_c) else alloc_at
        body.insert(at, "    u64 __now = bpf_ktime_get_ns();")
    for c in ordered:
        body.append(f"    {c.fill}")
    if transport == "ringbuf":
        body.append(f"    events.ringbuf_submit(e, {0 if wakeup else RB_NO_WAKEUP});")
    else:
        body.append(f"    if (events.perf_submit(ctx, &__ev, sizeof(__ev)) < 0) {count_lost}")
    body.append("    return 0;")
    text = (
        f"// ebpf_lab.trace('{spec.probe}'): generated by ebpf_lab.codegen\n"
        "#include <uapi/linux/ptrace.h>\n"
        "struct event_t {\n" + members + "\n};\n"
        + (f"BPF_RINGBUF_OUTPUT(events, {buffer_pages});\n" if transport == "ringbuf" else "BPF_PERF_OUTPUT(events);\n") +
        "BPF_PERCPU_ARRAY(lost, u64, 1);   // events that found the buffer full, per CPU: exact losses\n"
        f"int lab_probe({ctx_decl})\n{{\n" + "\n".join(body) + "\n}\n"
    )
    dtype = np.dtype({"names": [c.name for c in ordered], "formats": [c.np_format for c in ordered],
                      "offsets": offsets, "itemsize": size})
    return Program(text=text, fn_name="lab_probe", record_columns=list(ordered), record_dtype=dtype,
                   output_columns=list(output_columns or [c.name for c in columns]),
                   buffer_pages=buffer_pages, where_c=where_c)
