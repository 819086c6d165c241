"""The probe catalog and ELF symbols: unit tests on fake trees and compiled
programs, privileged tests that compare with bpftrace 0.17 on the real kernel."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from ebpf_lab import catalog, elfsyms, tracefs
from ebpf_lab.errors import NotSupportedError, UnknownProbeError, UsageError

FIX = Path(__file__).resolve().parent / "fixtures" / "tracefs"

EVENTS = [
    "raw_syscalls:sys_enter", "raw_syscalls:sys_exit",
    "sched:sched_process_exec", "sched:sched_process_fork", "sched:sched_switch",
    "syscalls:sys_enter_open", "syscalls:sys_enter_openat", "syscalls:sys_enter_openat2",
    "syscalls:sys_exit_openat", "syscalls:sys_enter_getppid",
]


# ------------------------------------------------------------------ fake tracefs

@pytest.fixture
def fake_tracefs(monkeypatch, tmp_path):
    root = tmp_path / "tracing"
    root.mkdir()
    (root / "available_events").write_text("\n".join(reversed(EVENTS)) + "\n")
    for ev in EVENTS:
        group, name = ev.split(":")
        d = root / "events" / group / name
        d.mkdir(parents=True)
        fixture = FIX / f"{group}.{name}.format"
        if fixture.exists():
            (d / "format").write_text(fixture.read_text())
    monkeypatch.setattr(tracefs, "TRACEFS_CANDIDATES", (tmp_path / "absent", root))
    catalog._kernel_functions.cache_clear()
    yield root
    catalog._kernel_functions.cache_clear()


@pytest.mark.unit
def test_glob_star_is_the_only_wildcard():
    rx = catalog._glob_regex("sys_enter_open*")
    assert rx.match("sys_enter_openat") and rx.match("sys_enter_open")
    assert not rx.match("xsys_enter_open")
    assert catalog._glob_regex("*:sys_enter").match("raw_syscalls:sys_enter")
    assert catalog._glob_regex("a*c").match("ab:bc")  # '*' crosses ':' as in bpftrace
    assert not catalog._glob_regex("sched_process_[e]xec").match("sched_process_exec")
    assert catalog._glob_regex("a?c").match("a?c") and not catalog._glob_regex("a?c").match("abc")


@pytest.mark.unit
def test_type_aliases_and_bad_patterns():
    assert catalog._split("t:syscalls:x") == ("tracepoint", ["syscalls", "x"], True)
    assert catalog._split("ur:libc:malloc") == ("uretprobe", ["libc", "malloc"], True)
    assert catalog._split("*openat") == ("tracepoint", ["*openat"], False)
    for bad in ("", "tracepoint", "software:*", "kfunc:vfs_read", "BEGIN"):
        with pytest.raises(UsageError):
            catalog._split(bad)


@pytest.mark.unit
def test_list_tracepoints_on_fake_tree(fake_tracefs):
    df = catalog.list_probes("tracepoint:syscalls:sys_enter_open*")
    assert df.probe.tolist() == [
        "tracepoint:syscalls:sys_enter_open", "tracepoint:syscalls:sys_enter_openat",
        "tracepoint:syscalls:sys_enter_openat2"]
    assert list(df.columns) == ["probe", "type", "target", "name"]
    assert df.iloc[1].to_dict() == {"probe": "tracepoint:syscalls:sys_enter_openat", "type": "tracepoint",
                                     "target": "syscalls", "name": "sys_enter_openat"}
    assert df.attrs["source"].endswith("available_events")
    everything = catalog.list_probes()
    assert everything.probe.tolist() == sorted(f"tracepoint:{e}" for e in EVENTS)
    assert catalog.count_probes("tracepoint:syscalls:*") == 5
    # one argument means any group, as in bpftrace
    assert catalog.list_probes("tracepoint:sys_enter").probe.tolist() == ["tracepoint:raw_syscalls:sys_enter"]
    assert catalog.list_probes("t:*openat").probe.tolist() == [
        "tracepoint:syscalls:sys_enter_openat", "tracepoint:syscalls:sys_exit_openat"]
    assert catalog.count_probes("tracepoint:nosuch:*") == 0


@pytest.mark.unit
def test_patterns_without_a_type_search_tracepoints(fake_tracefs):
    df = catalog.list_probes("*openat")
    assert df.probe.tolist() == ["tracepoint:syscalls:sys_enter_openat", "tracepoint:syscalls:sys_exit_openat"]
    assert "searched tracepoints" in df.attrs["note"]
    assert catalog.list_probes("sched:sched_process_e*").probe.tolist() == ["tracepoint:sched:sched_process_exec"]


@pytest.mark.unit
def test_suggest_on_fake_tree(fake_tracefs):
    assert catalog.suggest("tracepoint:syscalls:sys_enter_opnat")[0] == "tracepoint:syscalls:sys_enter_openat"
    assert catalog.suggest("tracepoint:sys_enter_openat") == ["tracepoint:syscalls:sys_enter_openat"]
    assert catalog.suggest("tracepiont:syscalls:sys_enter_openat") == ["tracepoint:syscalls:sys_enter_openat"]
    assert catalog.suggest("tracepoint:sched:sched_proces_exec")[0] == "tracepoint:sched:sched_process_exec"
    assert catalog.suggest("tracepoint:zzz:qqqqqqqq") == []
    assert len(catalog.suggest("tracepoint:syscalls:sys_enter_open", n=2)) == 2


@pytest.mark.unit
def test_describe_on_fake_tree(fake_tracefs):
    df = catalog.describe("tracepoint:syscalls:sys_enter_openat")
    assert df.name.tolist() == ["__syscall_nr", "dfd", "filename", "flags", "mode"]
    assert df.decl.tolist() == ["int __syscall_nr", "int dfd", "const char * filename", "int flags", "umode_t mode"]
    row = df[df.name == "filename"].iloc[0]
    assert (row.type, row.offset, row["size"]) == ("const char *", 24, 8)
    raw = catalog.describe("tracepoint:raw_syscalls:sys_enter")
    assert raw[raw.name == "args"].iloc[0].type == "unsigned long[6]"
    many = catalog.describe("tracepoint:syscalls:sys_*_openat")
    assert sorted(set(many.probe)) == ["tracepoint:syscalls:sys_enter_openat", "tracepoint:syscalls:sys_exit_openat"]
    with pytest.raises(UnknownProbeError) as info:
        catalog.describe("tracepoint:syscalls:sys_enter_opnat")
    assert "tracepoint:syscalls:sys_enter_openat" in info.value.suggestions


@pytest.mark.unit
def test_kprobes_not_supported_without_kprobe_events(fake_tracefs):
    for pattern in ("kprobe:*", "kretprobe:do_sys_open*", "k:vfs_read"):
        with pytest.raises(NotSupportedError) as info:
            catalog.list_probes(pattern)
        assert info.value.feature == "kprobes"
        assert "list_probes('tracepoint:syscalls:*')" in info.value.alternative
        assert "kprobe_events" in str(info.value)


@pytest.mark.unit
def test_kprobes_listed_where_the_kernel_has_them(fake_tracefs):
    (fake_tracefs / "kprobe_events").write_text("")
    (fake_tracefs / "available_filter_functions").write_text("vfs_read\nvfs_write\ndo_sys_openat2\nmod_fn [mymod]\n")
    df = catalog.list_probes("kprobe:vfs_*")
    assert df.probe.tolist() == ["kprobe:vfs_read", "kprobe:vfs_write"]
    assert catalog.list_probes("kretprobe:mod_fn").probe.tolist() == ["kretprobe:mod_fn"]
    assert df.attrs["source"] == "available_filter_functions"


@pytest.mark.unit
def test_kprobes_fall_back_to_kallsyms_when_filter_functions_unreadable(fake_tracefs):
    (fake_tracefs / "kprobe_events").write_text("")
    (fake_tracefs / "available_filter_functions").mkdir()  # reading it fails like EPERM does
    df = catalog.list_probes("kprobe:get_syscall_nam*")
    assert "kallsyms" in df.attrs["note"] and "kallsyms" in df.attrs["source"]
    assert df.probe.tolist() == ["kprobe:get_syscall_name"]


# ------------------------------------------------------------------ ELF symbols

C_SOURCE = r"""
#include <stdio.h>
int lab_gamma = 7;                                  /* an object, not a function */
__attribute__((noinline)) int lab_alpha(void) { return 0x1234567; }
__attribute__((noinline, used)) static int lab_beta(int x) { return x * 3 + lab_gamma; }
__attribute__((used)) void lab_delta(void) __asm__("lab_delta.part.0");
void lab_delta(void) {}
int main(void) { printf("%d\n", lab_alpha() + lab_beta(2)); return 0; }
"""


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    cc = shutil.which("gcc") or shutil.which("cc")
    assert cc, "gcc is needed to build the ELF fixtures (make setup installs it)"
    d = tmp_path_factory.mktemp("elf")
    src = d / "prog.c"
    src.write_text(C_SOURCE)
    exe = d / "prog"
    subprocess.run([cc, "-O1", "-g", "-o", str(exe), str(src)], check=True)
    return exe


@pytest.mark.unit
def test_function_symbols_of_a_compiled_program(compiled):
    names = elfsyms.function_symbols(str(compiled))
    assert {"lab_alpha", "lab_beta", "main"} <= set(names)
    assert "lab_gamma" not in names            # OBJECT
    assert "printf" not in names               # undefined: lives in libc
    assert "lab_delta.part.0" not in names     # compiler fragments are left out, like bpftrace
    assert names == sorted(set(names))


@pytest.mark.unit
def test_symbol_address_is_the_file_offset_of_the_code(compiled):
    off = elfsyms.symbol_address(str(compiled), "lab_alpha")
    code = compiled.read_bytes()[off:off + 16]
    assert bytes.fromhex("b867452301") in code   # mov eax, 0x1234567
    with pytest.raises(UnknownProbeError) as info:
        elfsyms.symbol_address(str(compiled), "lab_alpah")
    assert any(s.endswith(":lab_alpha") for s in info.value.suggestions)


@pytest.mark.unit
def test_debuglink_file_adds_the_symbols_a_stripped_binary_lost(compiled, tmp_path):
    objcopy = shutil.which("objcopy")
    assert objcopy, "binutils is needed (make setup installs it)"
    exe = tmp_path / "stripped"
    dbg = tmp_path / "stripped.debug"
    subprocess.run([objcopy, "--only-keep-debug", str(compiled), str(dbg)], check=True)
    subprocess.run([objcopy, "--strip-all", "--remove-section=.note.gnu.build-id",
                    f"--add-gnu-debuglink={dbg}", str(compiled), str(exe)], check=True)
    os.chmod(exe, 0o755)
    assert "lab_beta" in elfsyms.function_symbols(str(exe))      # static: only in the debug file
    assert elfsyms.debug_file_used(str(exe)) == str(dbg)
    dbg.write_bytes(dbg.read_bytes() + b"x")                      # a wrong CRC is not ours
    os.utime(exe, ns=(os.stat(exe).st_atime_ns, os.stat(exe).st_mtime_ns + 1000))
    assert "lab_beta" not in elfsyms.function_symbols(str(exe))


@pytest.mark.unit
def test_resolve_library_from_ldconfig(monkeypatch):
    entries = (
        ("libcrypt.so.1", "libc6,x86-64", "/lib/x86_64-linux-gnu/libcrypt.so.1"),
        ("libc.so.6", "libc6", "/lib/i386-linux-gnu/libc.so.6"),
        ("libc.so.6", "libc6,x86-64", "/lib/x86_64-linux-gnu/libc.so.6"),
    )
    monkeypatch.setattr(elfsyms, "_ldconfig_entries", lambda: entries)
    monkeypatch.setattr(elfsyms, "_machine_flag", lambda: "x86-64")
    assert elfsyms.resolve_library("libc") == "/lib/x86_64-linux-gnu/libc.so.6"
    assert elfsyms.resolve_library("c") == "/lib/x86_64-linux-gnu/libc.so.6"
    assert elfsyms.resolve_library("crypt") == "/lib/x86_64-linux-gnu/libcrypt.so.1"
    assert elfsyms.resolve_library("/opt/x.so") == "/opt/x.so"
    with pytest.raises(UnknownProbeError):
        elfsyms.resolve_library("libnosuchthing")


@pytest.mark.unit
def test_uprobe_listing_and_errors(compiled):
    df = catalog.list_probes(f"uprobe:{compiled}:lab_*")
    assert df.probe.tolist() == [f"uprobe:{compiled}:lab_alpha", f"uprobe:{compiled}:lab_beta"]
    assert set(df.type) == {"uprobe"} and set(df.target) == {str(compiled)}
    ret = catalog.list_probes(f"ur:{compiled}:lab_alpha")
    assert ret.probe.tolist() == [f"uretprobe:{compiled}:lab_alpha"]
    with pytest.raises(UnknownProbeError):
        catalog.list_probes("uprobe:/nonexistent/prog:*")
    with pytest.raises(UsageError):
        catalog.list_probes(f"uprobe:{compiled}")
    with pytest.raises(UsageError):
        catalog.list_probes(f"uprobe:{compiled.parent / 'prog.c'}:*")  # not an ELF file
    d = catalog.describe(f"uprobe:{compiled}:lab_alpha")
    assert d.empty and "arg0" in d.attrs["note"]
    assert catalog.suggest(f"uprobe:{compiled}:lab_alpah") == [f"uprobe:{compiled}:lab_alpha"]


# ------------------------------------------------------- against bpftrace, for real

def bpftrace_list(pattern: str, verbose: bool = False) -> list[str]:
    argv = ["bpftrace", "-lv" if verbose else "-l", pattern]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{argv} failed: {proc.stderr[-500:]}"
    return [ln for ln in proc.stdout.splitlines() if ln.strip()]


@pytest.mark.privileged
def test_every_tracepoint_matches_bpftrace():
    ours = catalog.list_probes("tracepoint:*").probe.tolist()
    theirs = bpftrace_list("tracepoint:*")
    assert len(ours) > 100
    assert set(ours) == set(theirs)
    assert ours == sorted(ours) and len(ours) == len(set(ours))


@pytest.mark.privileged
@pytest.mark.parametrize("pattern", [
    "tracepoint:syscalls:*", "tracepoint:syscalls:sys_enter_open*", "t:sched:*",
    "tracepoint:*openat", "tracepoint:sys*", "tracepoint:*:sys_enter",
])
def test_tracepoint_patterns_match_bpftrace(pattern):
    theirs = bpftrace_list(pattern)
    assert theirs, f"bpftrace listed nothing for {pattern}"
    assert catalog.list_probes(pattern).probe.tolist() == sorted(theirs)
    assert catalog.count_probes(pattern) == len(theirs)


@pytest.mark.privileged
@pytest.mark.parametrize("pattern", ["uprobe:/usr/bin/bash:*", "uprobe:libc:*", "uretprobe:libc:mall*"])
def test_uprobe_listing_matches_bpftrace(pattern):
    theirs = bpftrace_list(pattern)
    assert len(theirs) > 1
    assert catalog.list_probes(pattern).probe.tolist() == sorted(theirs)


@pytest.mark.privileged
def test_describe_matches_bpftrace_lv_on_random_tracepoints():
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    probes = rng.sample(catalog.list_probes("tracepoint:*").probe.tolist(), 30)
    for probe in probes:
        lines = bpftrace_list(probe, verbose=True)
        assert lines[0] == probe, f"seed {seed}"
        expected = [ln.strip() for ln in lines[1:]]
        df = catalog.describe(probe)
        assert df.decl.tolist() == expected, f"{probe} (seed {seed})"
        assert set(df.probe) <= {probe}


@pytest.mark.privileged
def test_suggest_on_the_real_kernel():
    assert catalog.suggest("tracepoint:syscalls:sys_enter_opnat")[0] == "tracepoint:syscalls:sys_enter_openat"
    assert catalog.suggest("tracepoint:sys_enter_openat") == ["tracepoint:syscalls:sys_enter_openat"]
    assert catalog.suggest("t:sched:sched_proces_exec")[0] == "tracepoint:sched:sched_process_exec"
    assert catalog.suggest("uprobe:libc:mallc")[0] == f"uprobe:{elfsyms.resolve_library('libc')}:malloc"
    assert catalog.suggest("rawtracepoint:sys_entr")[0] == "rawtracepoint:sys_enter"


@pytest.mark.privileged
def test_kprobes_follow_kprobe_events():
    has_kprobes = (tracefs.find_tracefs() / "kprobe_events").exists()
    if has_kprobes:
        df = catalog.list_probes("kprobe:vfs_read")
        assert df.probe.tolist() == ["kprobe:vfs_read"]
    else:
        with pytest.raises(NotSupportedError):
            catalog.list_probes("kprobe:*")
        # and bpftrace cannot list them either here
        proc = subprocess.run(["bpftrace", "-l", "kprobe:vfs_read"], capture_output=True, text=True, timeout=60)
        assert proc.returncode != 0 or "kprobe:vfs_read" not in proc.stdout


@pytest.mark.privileged
def test_listed_raw_tracepoints_attach_and_syscall_events_are_not_among_them():
    from conftest import require_feature

    require_feature("raw tracepoint")
    from ebpf_lab._bcc import load_bcc
    from ebpf_lab.session import ProbeRun

    raw = catalog.list_probes("rawtracepoint:*")
    names = raw.name.tolist()
    assert "sys_enter" in names and "sched_switch" in names
    assert "sys_enter_openat" not in names  # a syscalls: event, not a raw tracepoint
    picks = random.Random().sample(names, 3)
    bcc = load_bcc()
    with ProbeRun() as run:
        b = bcc.BPF(text="int f(void *ctx) { return 0; }")
        run.on_close(b.cleanup)
        for name in picks:
            b.attach_raw_tracepoint(tp=name, fn_name="f")
        with pytest.raises(Exception):
            b.attach_raw_tracepoint(tp="sys_enter_openat", fn_name="f")
    d = catalog.describe("rawtracepoint:sched_switch")
    assert d.name.tolist() == ["arg0", "arg1", "arg2", "arg3"]
    assert d.type.tolist()[1:3] == ["struct task_struct *", "struct task_struct *"]


@pytest.mark.privileged
def test_uprobe_at_symbol_address_counts_exactly_the_workload_calls():
    """A uprobe placed at elfsyms.symbol_address(libc, 'syscall') fires once per
    syscall() call of the labload getppid workload (it calls syscall(SYS_getppid))."""
    from conftest import require_feature

    require_feature("uprobe")
    from ebpf_lab._bcc import load_bcc
    from ebpf_lab.session import ProbeRun
    from ebpf_lab.workloads import workload

    libc = elfsyms.resolve_library("libc")
    offset = elfsyms.symbol_address(libc, "syscall")
    n = 23
    bcc = load_bcc()
    with ProbeRun() as run:
        held = run.hold(workload("getppid", n))
        b = bcc.BPF(text=f"""
            BPF_ARRAY(hits, u64, 1);
            int on_call(struct pt_regs *ctx) {{
                if ((bpf_get_current_pid_tgid() >> 32) != {held.pid}) return 0;
                u32 k = 0; u64 *v = hits.lookup(&k); if (v) __sync_fetch_and_add(v, 1);
                return 0;
            }}""")
        run.on_close(b.cleanup)
        b.attach_uprobe(name=libc, addr=offset, fn_name="on_call", pid=held.pid)
        held.release()
        assert held.proc.wait(timeout=60) == 0
        assert b["hits"][b["hits"].Key(0)].value == n
