"""tracefs format parsing, against real format files copied from a 6.18 kernel.

The fixtures in tests/fixtures/tracefs/ are verbatim copies of
/sys/kernel/tracing/events/GROUP/NAME/format, named GROUP.NAME.format, and
bpftrace-0.17-lv.txt is what `bpftrace -lv` printed for the same tracepoints.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ebpf_lab import tracefs
from ebpf_lab.errors import SetupError, UnknownProbeError
from ebpf_lab.tracefs import Field, parse_field_decl, parse_format

FIX = Path(__file__).resolve().parent / "fixtures" / "tracefs"

pytestmark = pytest.mark.unit


def load(group: str, name: str):
    return parse_format((FIX / f"{group}.{name}.format").read_text(), group=group)


def test_sys_enter_openat_fields_in_order():
    fmt = load("syscalls", "sys_enter_openat")
    assert fmt.group == "syscalls" and fmt.name == "sys_enter_openat"
    assert fmt.id == 782
    assert fmt.probe == "tracepoint:syscalls:sys_enter_openat"
    assert [f.name for f in fmt.fields] == ["__syscall_nr", "dfd", "filename", "flags", "mode"]
    assert [f.name for f in fmt.common_fields] == [
        "common_type", "common_flags", "common_preempt_count", "common_pid"]
    fn = fmt.field("filename")
    assert fn == Field(name="filename", type="const char *", offset=24, size=8, signed=False,
                       array_len=None, is_common=False, decl="const char * filename")
    nr = fmt.field("__syscall_nr")
    assert (nr.type, nr.offset, nr.size, nr.signed) == ("int", 8, 4, True)
    assert fmt.field("common_pid").is_common and fmt.field("common_pid").signed
    assert fmt.field("mode").type == "umode_t"
    assert fmt.record_size == 48
    assert fmt.print_fmt.startswith('"dfd: 0x%08lx')


def test_sys_exit_openat_ret_is_signed_long():
    fmt = load("syscalls", "sys_exit_openat")
    assert [(f.name, f.type, f.offset, f.size, f.signed) for f in fmt.fields] == [
        ("__syscall_nr", "int", 8, 4, True), ("ret", "long", 16, 8, True)]


def test_getppid_has_only_the_syscall_number():
    fmt = load("syscalls", "sys_enter_getppid")
    assert [f.name for f in fmt.fields] == ["__syscall_nr"]


def test_raw_syscalls_args_is_an_array_of_six():
    fmt = load("raw_syscalls", "sys_enter")
    args = fmt.field("args")
    assert (args.type, args.array_len, args.size, args.offset) == ("unsigned long", 6, 48, 16)
    assert fmt.field("id").type == "long" and fmt.field("id").signed
    assert args.decl == "unsigned long args[6]"


def test_sched_process_exec_filename_is_data_loc():
    fmt = load("sched", "sched_process_exec")
    fn = fmt.field("filename")
    assert fn.type == "__data_loc char[]"
    assert fn.is_data_loc and fn.is_string
    assert (fn.size, fn.offset, fn.array_len) == (4, 8, None)
    assert [f.name for f in fmt.fields] == ["filename", "pid", "old_pid"]
    assert fmt.field("pid").type == "pid_t"


def test_data_loc_unpacks_offset_and_length():
    # the kernel stores (len << 16) | offset
    assert Field.data_loc((12 << 16) | 20) == (20, 12)
    assert Field.data_loc(0) == (0, 0)


def test_sched_process_fork_comm_is_data_loc_on_6_18():
    # 6.18 stores parent_comm/child_comm as __data_loc (older kernels: char[16])
    fmt = load("sched", "sched_process_fork")
    assert [f.name for f in fmt.fields] == ["parent_comm", "parent_pid", "child_comm", "child_pid"]
    pc = fmt.field("parent_comm")
    assert (pc.type, pc.size, pc.offset, pc.array_len) == ("__data_loc char[]", 4, 8, None)
    assert pc.is_string and fmt.field("child_pid").offset == 20


def test_signal_generate():
    fmt = load("signal", "signal_generate")
    comm = fmt.field("comm")
    assert (comm.type, comm.array_len, comm.size, comm.offset) == ("char", 16, 16, 20)
    assert [f.name for f in fmt.fields] == ["sig", "errno", "code", "comm", "pid", "group", "result"]


def test_net_and_sock_tracepoints():
    fmt = load("sock", "inet_sock_set_state")
    saddr = fmt.field("saddr")
    assert (saddr.type, saddr.array_len, saddr.size) == ("__u8", 4, 4)
    assert fmt.field("skaddr").type == "const void *"
    assert fmt.field("sport").type == "__u16" and not fmt.field("sport").signed
    xmit = load("net", "net_dev_start_xmit")
    assert xmit.field("name").is_data_loc
    assert xmit.field("vlan_tagged").type == "bool"


def test_other_data_loc_and_flexible_arrays():
    assert load("ipi", "ipi_send_cpumask").field("cpumask").type == "__data_loc cpumask_t"
    assert load("dma", "dma_alloc_sgt").field("phys_addrs").type == "__data_loc u64[]"
    buf = load("ftrace", "print").field("buf")
    assert (buf.type, buf.array_len, buf.size) == ("char", 0, 0)
    assert load("ftrace", "kernel_stack").field("caller").array_len == 8


def test_field_typo_suggests():
    fmt = load("syscalls", "sys_enter_openat")
    with pytest.raises(UnknownProbeError) as info:
        fmt.field("filenme")
    assert info.value.suggestions[0] == "filename"
    assert "did you mean" in str(info.value)


def _golden_lv() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current = None
    for line in (FIX / "bpftrace-0.17-lv.txt").read_text().splitlines():
        if line.startswith("tracepoint:"):
            current = line.strip()
            out[current] = []
        elif line.strip():
            out[current].append(line.strip())
    return out


def test_decls_match_bpftrace_lv_golden():
    golden = _golden_lv()
    assert len(golden) >= 10
    for probe, decls in golden.items():
        _, group, name = probe.split(":")
        fmt = load(group, name)
        assert [f.decl for f in fmt.fields] == decls, probe


def test_every_fixture_parses_with_name_line():
    for path in FIX.glob("*.format"):
        group, name = path.name[: -len(".format")].split(".", 1)
        fmt = parse_format(path.read_text(), group=group)
        assert fmt.name == name
        assert len(fmt.common_fields) == 4
        for f in fmt.fields:
            assert not f.is_common and f.size >= 0


@pytest.mark.parametrize("decl, expected", [
    ("const char * filename", ("const char *", "filename", None)),
    ("char comm[16]", ("char", "comm", 16)),
    ("__data_loc char[] filename", ("__data_loc char[]", "filename", None)),
    ("unsigned long args[6]", ("unsigned long", "args", 6)),
    ("char buf[]", ("char", "buf", 0)),
    ("struct open_how * how", ("struct open_how *", "how", None)),
    ("enum dma_data_direction dir", ("enum dma_data_direction", "dir", None)),
])
def test_parse_field_decl(decl, expected):
    assert parse_field_decl(decl) == expected


def test_not_a_format_file():
    with pytest.raises(ValueError):
        parse_format("hello\nworld\n")
    with pytest.raises(ValueError):
        parse_format("name: x\nID: 1\n\tfield:int a;\toffset:x;\n format:\n")


def test_name_override_and_missing_group():
    text = (FIX / "syscalls.sys_enter_openat.format").read_text()
    fmt = parse_format(text)
    assert fmt.group is None and fmt.probe == "tracepoint:sys_enter_openat"
    assert parse_format(text, group="g", name="n").probe == "tracepoint:g:n"


def test_find_tracefs_raises_setup_error_with_mount_hint(monkeypatch, tmp_path):
    monkeypatch.setattr(tracefs, "TRACEFS_CANDIDATES", (tmp_path / "a", tmp_path / "b"))
    with pytest.raises(SetupError) as info:
        tracefs.find_tracefs()
    assert "mount -t tracefs nodev /sys/kernel/tracing" in str(info.value)


def test_find_tracefs_and_read_format_on_a_fake_tree(monkeypatch, tmp_path):
    root = tmp_path / "tracing"
    ev = root / "events" / "syscalls" / "sys_enter_openat"
    ev.mkdir(parents=True)
    (ev / "format").write_text((FIX / "syscalls.sys_enter_openat.format").read_text())
    (root / "available_events").write_text("syscalls:sys_enter_openat\n")
    monkeypatch.setattr(tracefs, "TRACEFS_CANDIDATES", (tmp_path / "none", root))
    assert tracefs.find_tracefs() == root
    assert tracefs.available_events() == ["syscalls:sys_enter_openat"]
    assert tracefs.read_format("syscalls", "sys_enter_openat").field("filename").offset == 24
    with pytest.raises(UnknownProbeError) as info:
        tracefs.read_format("syscalls", "sys_enter_opnat")
    assert info.value.suggestions == ("tracepoint:syscalls:sys_enter_openat",)
