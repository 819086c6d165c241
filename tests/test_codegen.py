"""Unit tests: the generated C / numpy record type, the where= checker, the ring-buffer record walker.

No root, no bcc: formats are real tracefs ``format`` texts from the lab's kernel,
and the ring buffer is simulated in a memfd laid out like the kernel's mapping.
"""

from __future__ import annotations

import mmap
import os
import struct

import numpy as np
import pytest

from ebpf_lab import codegen as cg
from ebpf_lab.errors import NotSupportedError, UnknownProbeError, UsageError
from ebpf_lab.ringbuf import BUSY_BIT, DISCARD_BIT, PAGE_SIZE, RingBufReader, record_stride, span_dtype
from ebpf_lab.tracefs import parse_format

pytestmark = pytest.mark.unit

OPENAT = """name: sys_enter_openat
ID: 782
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int dfd;\toffset:16;\tsize:8;\tsigned:0;
\tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;
\tfield:int flags;\toffset:32;\tsize:8;\tsigned:0;
\tfield:umode_t mode;\toffset:40;\tsize:8;\tsigned:0;

print fmt: "dfd: 0x%08lx, filename: 0x%08lx, flags: 0x%08lx, mode: 0x%08lx", ((unsigned long)(REC->dfd)), ((unsigned long)(REC->filename)), ((unsigned long)(REC->flags)), ((unsigned long)(REC->mode))
"""

EXIT_GETPPID = """name: sys_exit_getppid
ID: 304
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
\tfield:long ret;\toffset:16;\tsize:8;\tsigned:1;

print fmt: "0x%lx", REC->ret
"""

RAW_SYS_ENTER = """name: sys_enter
ID: 443
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:long id;\toffset:8;\tsize:8;\tsigned:1;
\tfield:unsigned long args[6];\toffset:16;\tsize:48;\tsigned:0;

print fmt: "NR %ld (%lx, %lx, %lx, %lx, %lx, %lx)", REC->id, REC->args[0], REC->args[1], REC->args[2], REC->args[3], REC->args[4], REC->args[5]
"""

EXEC = """name: sched_process_exec
ID: 365
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;
\tfield:pid_t pid;\toffset:12;\tsize:4;\tsigned:1;
\tfield:pid_t old_pid;\toffset:16;\tsize:4;\tsigned:1;

print fmt: "filename=%s pid=%d old_pid=%d", __get_str(filename), REC->pid, REC->old_pid
"""

SWITCH_COMM = """name: sched_switch
ID: 1
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:char prev_comm[16];\toffset:8;\tsize:16;\tsigned:0;
\tfield:pid_t prev_pid;\toffset:24;\tsize:4;\tsigned:1;

print fmt: "prev_comm=%s prev_pid=%d", REC->prev_comm, REC->prev_pid
"""


def cols(text):
    return {c.name: c for c in cg.tracepoint_columns(parse_format(text).fields)}


# --------------------------------------------------------------------------- probes

@pytest.mark.parametrize("probe, kind, target, name", [
    ("tracepoint:syscalls:sys_enter_openat", "tracepoint", "syscalls", "sys_enter_openat"),
    ("t:sched:sched_switch", "tracepoint", "sched", "sched_switch"),
    ("rawtracepoint:sys_enter", "rawtracepoint", "", "sys_enter"),
    ("uprobe:/usr/lib/x86_64-linux-gnu/libc.so.6:malloc", "uprobe", "/usr/lib/x86_64-linux-gnu/libc.so.6", "malloc"),
    ("uretprobe:/bin/bash:readline", "uretprobe", "/bin/bash", "readline"),
])
def test_parse_probe(probe, kind, target, name):
    spec = cg.parse_probe(probe)
    assert (spec.kind, spec.target, spec.name) == (kind, target, name)


@pytest.mark.parametrize("probe", ["kprobe:do_sys_openat2", "kretprobe:vfs_read", "kfunc:vfs_read", "lsm:file_open"])
def test_kernel_function_probes_name_the_alternative(probe):
    with pytest.raises(NotSupportedError) as exc:
        cg.parse_probe(probe)
    assert "tracepoint" in exc.value.alternative
    assert "Next step" in str(exc.value)


@pytest.mark.parametrize("probe", ["sys_enter_openat", "tracepoint:syscalls", "tracepoint:syscalls:sys_enter_*",
                                   "uprobe:malloc", "hardware:cycles:1000"])
def test_bad_probes_are_usage_errors(probe):
    with pytest.raises(UsageError):
        cg.parse_probe(probe)


# --------------------------------------------------------------------------- types

def test_openat_types_follow_the_declared_c_types():
    c = cols(OPENAT)
    assert c["dfd"].np_format == "<i4"          # int, stored in 8 bytes, AT_FDCWD = -100 stays negative
    assert c["flags"].np_format == "<i4"
    assert c["mode"].np_format == "<u2"         # umode_t
    assert c["filename"].kind == "str" and c["filename"].size == cg.STR_LEN
    assert "bpf_probe_read_user_str" in c["filename"].fill
    assert "ctx + 24" in c["filename"].fill


def test_ret_is_signed_64_bit():
    c = cols(EXIT_GETPPID)
    assert c["ret"].np_format == "<i8"
    assert c["ret"].value == "(*(s64 *)((char *)ctx + 16))"


def test_fixed_arrays_become_one_column_per_element():
    c = cols(RAW_SYS_ENTER)
    assert c["id"].np_format == "<i8"
    assert [n for n in c if n.startswith("args")] == [f"args{i}" for i in range(6)]
    assert c["args5"].value == "(*(u64 *)((char *)ctx + 56))"


def test_kernel_strings():
    c = cols(EXEC)
    assert c["filename"].kind == "str"
    assert "bpf_probe_read_kernel_str" in c["filename"].fill and "& 0xffff" in c["filename"].fill
    assert c["pid"].np_format == "<i4"
    c = cols(SWITCH_COMM)
    assert c["prev_comm"].kind == "str" and c["prev_comm"].size == 16


def test_raw_syscalls_and_uprobes():
    enter = {c.name: c for c in cg.rawtracepoint_columns("sys_enter")}
    assert list(enter) == ["id"] + [f"arg{i}" for i in range(6)]
    exit_ = {c.name: c for c in cg.rawtracepoint_columns("sys_exit")}
    assert exit_["ret"].np_format == "<i8" and "orig_ax" not in exit_["id"].value  # offsets, not names
    assert [c.name for c in cg.uprobe_columns(False)] == [f"arg{i}" for i in range(6)]
    assert [c.name for c in cg.uprobe_columns(True)] == ["retval"]


# --------------------------------------------------------------------------- columns

def test_default_columns_and_selection():
    available = cg.tracepoint_columns(parse_format(OPENAT).fields)
    record, out = cg.select_columns(available, None, "tracepoint:syscalls:sys_enter_openat")
    assert out == ["time_ns", "time", "pid", "tid", "comm", "cpu", "dfd", "filename", "flags", "mode"]
    assert "__syscall_nr" not in [c.name for c in record]
    record, out = cg.select_columns(available, ["time", "filename"], "p")
    assert out == ["time", "filename"]
    assert [c.name for c in record] == ["time_ns", "filename"]


def test_unknown_field_says_did_you_mean():
    available = cg.tracepoint_columns(parse_format(OPENAT).fields)
    with pytest.raises(UnknownProbeError) as exc:
        cg.select_columns(available, ["filname"], "tracepoint:syscalls:sys_enter_openat")
    assert exc.value.suggestions[0] == "filename"
    assert "did you mean 'filename'" in str(exc.value)


# --------------------------------------------------------------------------- where

def where_cols():
    return cg.common_columns() + cg.tracepoint_columns(parse_format(EXIT_GETPPID).fields)


@pytest.mark.parametrize("where, used", [
    ("ret < 0", ["ret"]),
    ("ret == -2 && pid != 1", ["ret", "pid"]),
    ("(ret >= 0x10) or not (cpu == 1)", ["ret", "cpu"]),
])
def test_where_translates_field_names(where, used):
    c_expr, names = cg.parse_where(where, where_cols(), "p")
    assert names == used
    assert "(*(s64 *)((char *)ctx + 16))" in c_expr


@pytest.mark.parametrize("where", [
    "ret < 0; bpf_override_return(ctx, 0)",
    "ret < 0) return 1; if (1",
    "bpf_trace_printk(1)",
    "(char) ret",
    "ret < 0 \"x\"",
    "ret 1",
    "ret <",
    "((ret < 0)",
    "ret[0] == 1",
    "",
])
def test_where_rejects_anything_else(where):
    with pytest.raises((UsageError, UnknownProbeError)):
        cg.parse_where(where, where_cols(), "p")


def test_where_unknown_field_and_string_field():
    with pytest.raises(UnknownProbeError) as exc:
        cg.parse_where("rett < 0", where_cols(), "p")
    assert "ret" in exc.value.suggestions
    with pytest.raises(UsageError, match="string field"):
        cg.parse_where("comm == 1", where_cols(), "p")


# --------------------------------------------------------------------------- program

def test_generated_program_and_record_layout():
    spec = cg.parse_probe("tracepoint:syscalls:sys_enter_openat")
    available = cg.tracepoint_columns(parse_format(OPENAT).fields)
    record, out = cg.select_columns(available, None, spec.probe)
    prog = cg.generate(spec, record, pid=4243, where="dfd == -100", available=cg.common_columns() + available,
                       buffer_pages=64, output_columns=out)
    text = prog.text
    assert "if ((__pt >> 32) != 4243) return 0;" in text
    assert "BPF_RINGBUF_OUTPUT(events, 64);" in text
    assert "lost.lookup" in text and "(*__c)++" in text
    assert "ringbuf_submit(e, 1)" in text          # BPF_RB_NO_WAKEUP
    assert text.index("!= 4243") < text.index("events.ringbuf_reserve") and text.index("100LL") < text.index("events.ringbuf_reserve")
    dt = prog.record_dtype
    # largest alignment first: no holes, and every field at a multiple of its size
    for name in dt.names:
        fmt, off = dt.fields[name][:2]
        if fmt.kind in "iu":
            assert off % fmt.itemsize == 0
    assert dt.itemsize % 8 == 0
    assert dt.itemsize == 8 + 4 * 5 + 2 + 16 + 256 + 2   # padded to 8
    assert prog.output_columns == out


@pytest.mark.parametrize("pages", [0, 3, 100])
def test_buffer_pages_must_be_a_power_of_two(pages):
    spec = cg.parse_probe("tracepoint:syscalls:sys_exit_getppid")
    record = cg.tracepoint_columns(parse_format(EXIT_GETPPID).fields)
    with pytest.raises(UsageError, match="power of two"):
        cg.generate(spec, record, buffer_pages=pages)


# --------------------------------------------------------------------------- ring buffer walker

REC = np.dtype([("time_ns", "<i8"), ("pid", "<i4"), ("ret", "<i4")])   # 16 bytes -> 24-byte slots


class FakeRing:
    """A memfd laid out like a ring buffer map's mmap: consumer page, producer page, data twice."""

    def __init__(self, data_size=PAGE_SIZE):
        self.size = data_size
        self.fd = os.memfd_create("ringbuf-test")
        os.ftruncate(self.fd, 2 * PAGE_SIZE + 2 * data_size)
        self.mm = mmap.mmap(self.fd, 2 * PAGE_SIZE + 2 * data_size)
        self.prod = 0

    def put(self, values, flags=0, length=None):
        rec = np.array([values], dtype=REC).tobytes()
        length = REC.itemsize if length is None else length
        slot = record_stride(length)
        off = self.prod % self.size
        hdr = struct.pack("<II", length | flags, 0) + rec.ljust(slot - 8, b"\0")
        for base in (2 * PAGE_SIZE + off, 2 * PAGE_SIZE + self.size + off):   # the double mapping
            end = min(base + slot, 2 * PAGE_SIZE + 2 * self.size)
            self.mm[base:end] = hdr[:end - base]
        if off + slot > self.size:   # wrapped: the start of the data area holds the tail
            tail = hdr[self.size - off:]
            self.mm[2 * PAGE_SIZE:2 * PAGE_SIZE + len(tail)] = tail
        self.prod += slot
        self.mm[PAGE_SIZE:PAGE_SIZE + 8] = struct.pack("<Q", self.prod)

    def set_flags(self, pos, flags):
        off = pos % self.size
        for base in (2 * PAGE_SIZE + off, 2 * PAGE_SIZE + self.size + off):
            (val,) = struct.unpack_from("<I", self.mm, base)
            struct.pack_into("<I", self.mm, base, (val & ~(BUSY_BIT | DISCARD_BIT)) | flags)

    @property
    def cons(self):
        return struct.unpack_from("<Q", self.mm, 0)[0]

    def close(self):
        self.mm.close()
        os.close(self.fd)


def test_span_dtype_puts_the_header_first():
    dt = span_dtype(REC)
    assert dt.itemsize == 24 == record_stride(16)
    assert dt.fields["_len"][1] == 0 and dt.fields["time_ns"][1] == 8
    assert record_stride(20) == 32 and record_stride(56) == 64


def test_reader_takes_whole_spans_and_advances_the_consumer():
    ring = FakeRing()
    try:
        with RingBufReader(ring.fd, ring.size, REC) as reader:
            for i in range(23):
                ring.put((1000 + i, 7, -i))
            out = reader.read()
            assert out["time_ns"].tolist() == [1000 + i for i in range(23)]
            assert out["ret"].tolist() == [-i for i in range(23)]
            assert ring.cons == 23 * 24 == reader.consumer_pos
            assert len(reader.read()) == 0
    finally:
        ring.close()


def test_reader_stops_at_busy_and_skips_discarded():
    ring = FakeRing()
    try:
        with RingBufReader(ring.fd, ring.size, REC) as reader:
            for i in range(5):
                ring.put((i, 1, 0))
            ring.set_flags(1 * 24, DISCARD_BIT)
            ring.set_flags(3 * 24, BUSY_BIT)
            out = reader.read()
            assert out["time_ns"].tolist() == [0, 2]       # 1 discarded, 3 still being written
            assert ring.cons == 3 * 24 and reader.discarded == 1
            ring.set_flags(3 * 24, 0)                       # the producer commits it
            assert reader.read()["time_ns"].tolist() == [3, 4]
            assert ring.cons == 5 * 24
    finally:
        ring.close()


def test_reader_follows_records_across_the_wrap():
    ring = FakeRing()
    per_lap = ring.size // 24
    try:
        with RingBufReader(ring.fd, ring.size, REC) as reader:
            got = []
            for lap in range(3):
                for i in range(per_lap - 7):
                    ring.put((lap * 10000 + i, 2, 0))
                got.extend(reader.read()["time_ns"].tolist())
            want = [lap * 10000 + i for lap in range(3) for i in range(per_lap - 7)]
            assert got == want
            assert ring.cons == ring.prod
    finally:
        ring.close()


def test_reader_skips_a_discarded_record_of_another_size():
    ring = FakeRing()
    try:
        with RingBufReader(ring.fd, ring.size, REC) as reader:
            ring.put((1, 1, 1))
            ring.put((2, 2, 2), flags=DISCARD_BIT, length=40)
            ring.put((3, 3, 3))
            assert reader.read()["time_ns"].tolist() == [1, 3]
            assert ring.cons == 24 + 48 + 24
    finally:
        ring.close()


# --------------------------------------------------------------------------- records -> DataFrame

def test_records_read_in_several_chunks_become_one_typed_frame():
    """stream.to_frame (pure): chunks as the ring-buffer reader returns them -> one row per record."""
    from ebpf_lab.stream import to_frame

    cols = cg.common_columns() + [
        cg.Column("filename", "str", 32), cg.Column("ret", "int", 8, True)]
    record, out = cg.select_columns(cols, ["time", "pid", "comm", "filename", "ret"], "tracepoint:x:y")
    program = cg.generate(cg.ProbeSpec("tracepoint", "x", "y"), record, output_columns=out)
    rows = [(1_000, 7, b"cat", b"/etc/hosts\0junk", -2), (2_000, 7, b"cat", b"/etc/hosts", 3),
            (3_000, 8, b"sh", b"", 0), (4_000, 7, b"cat", b"/tmp/a", -13)]

    def chunk(part):
        a = np.zeros(len(part), dtype=program.record_dtype)
        for i, (t, pid, comm, fn, ret) in enumerate(part):
            a[i]["time_ns"], a[i]["pid"], a[i]["comm"], a[i]["filename"], a[i]["ret"] = t, pid, comm, fn, ret
        return a

    df = to_frame([chunk(rows[:1]), chunk([]), chunk(rows[1:3]), chunk(rows[3:])], program, time_offset_ns=5)
    assert list(df.columns) == ["time", "pid", "comm", "filename", "ret"]
    assert df["time"].astype("int64").tolist() == [1_005, 2_005, 3_005, 4_005]
    assert df["pid"].tolist() == [7, 7, 8, 7] and str(df["pid"].dtype) == "int32"
    assert df["ret"].tolist() == [-2, 3, 0, -13] and str(df["ret"].dtype) == "int64"
    assert df["comm"].astype(str).tolist() == ["cat", "cat", "sh", "cat"] and str(df["comm"].dtype) == "category"
    # bytes after the first NUL are not part of the string: both /etc/hosts rows are equal
    assert df["filename"].tolist() == ["/etc/hosts", "/etc/hosts", "", "/tmp/a"]
    empty = to_frame([], program, time_offset_ns=0)
    assert len(empty) == 0 and list(empty.columns) == list(df.columns)
