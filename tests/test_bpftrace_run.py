"""The bpftrace backend against the running kernel: exact counts from workloads we start.

Every probe is filtered to the workload's own process (``comm == str($1)`` with a
random comm, or ``pid == cpid``) so that other activity on the machine cannot
change a number.
"""

from __future__ import annotations

import os

import pytest

from ebpf_lab.bpftrace import BpftraceResult, bpftrace
from ebpf_lab.errors import (
    NotSupportedError,
    ProbeTimeout,
    ProgramSyntaxError,
    UnknownProbeError,
    UsageError,
    VerifierError,
)
from ebpf_lab.workloads import random_name, workload

pytestmark = pytest.mark.privileged
N = 23

OPENS_BY_NAME = r'''tracepoint:syscalls:sys_enter_openat /comm == str($1)/
{ printf("%s\t%d\t%s\n", comm, pid, str(args->filename)); }'''


def ours(df, prefix):
    """Rows about the workload's own files (the dynamic loader opens libraries too)."""
    return df[df["file"].str.startswith(prefix)]


def test_files_opened_by_a_command_named_in_dollar_one():
    name = random_name()
    w = workload("open", N, name=name)
    r = bpftrace(OPENS_BY_NAME, command=w, args=[name], columns=["comm", ("pid", int), "file"])
    assert isinstance(r, BpftraceResult)
    assert r.exit_code == 0 and not r.interrupted and not r.timed_out and r.lost == 0
    mine = ours(r.events, w.expected["dir"] + "/")
    assert sorted(mine["file"]) == sorted(w.expected["paths"])
    assert set(r.events["comm"]) == {name}
    assert r.events["pid"].dtype == "int64" and r.events["pid"].nunique() == 1
    assert r.output == [f"opened={N} failed=0"]             # the workload's own stdout
    assert r.command[0] == w[0] and r.args == (name,)


def test_raw_syscalls_filtered_to_the_kernels_openat_numbers():
    from ebpf_lab.syscalls import syscall_nr

    openat, openat2 = syscall_nr("openat"), syscall_nr("openat2")
    w = workload("open", N)
    prog = r'''tracepoint:raw_syscalls:sys_enter /pid == cpid && (args->id == $1 || args->id == $2)/
    { printf("%d\t%s\n", args->id, str(uptr(args->args[1]))); }'''
    r = bpftrace(prog, command=w, args=[openat, openat2], columns={"nr": int, "file": str})
    mine = ours(r.events, w.expected["dir"] + "/")
    assert sorted(mine["file"]) == sorted(w.expected["paths"])
    assert set(mine["nr"]) == {openat}
    assert set(r.events["nr"]) <= {openat, openat2}


def test_per_process_syscall_counts_are_exact():
    name = random_name()
    w = workload("getppid", N, name=name)
    prog = '''BEGIN { printf("%d\\n", cpid); }
    tracepoint:syscalls:sys_enter_getppid /pid == cpid/ { @[pid, comm] = count(); @bycomm[comm] = count(); }'''
    r = bpftrace(prog, command=w)
    cpid = int(r.events["text"].iloc[0])
    assert r.maps["@"].to_dict("list") == {"key0": [cpid], "key1": [name], "count": [N]}
    assert r.maps["@bycomm"].to_dict("list") == {"key": [name], "count": [N]}
    assert r.maps["@"]["key0"].dtype == "int64"


def test_read_size_histograms_put_every_read_in_its_bucket():
    size = 3000
    w = workload("read", N, size=size)
    prog = '''tracepoint:syscalls:sys_enter_read /pid == cpid/
    { @ = hist(args->count); @lin = lhist(args->count, 0, 10000, 1000); @bysize[args->count] = count(); }'''
    r = bpftrace(prog, command=w)
    h = r.hists["@"]
    bucket = h[(h["min"] == 2048) & (h["max"] == 4095)]
    assert bucket["count"].tolist() == [N]
    lin = r.hists["@lin"]
    assert lin[lin["min"] == 3000]["count"].tolist() == [N] and lin[lin["min"] == 3000]["max"].tolist() == [3999]
    bysize = r.maps["@bysize"]
    assert bysize[bysize["key"] == size]["count"].tolist() == [N]
    assert "[2K, 4K)" in r.hist_text("@") and f"{N:>8} |" in r.hist_text("@")


def test_aggregations_of_known_values():
    prog = '''BEGIN { $i = 1; while ($i <= 23) {
        @s = stats($i); @a = avg($i); @mn = min($i); @mx = max($i); @su = sum($i);
        @l = lhist($i, 0, 30, 5); @h = hist($i); @k[$i % 2] = sum($i); $i++; }
      exit(); }'''
    r = bpftrace(prog)
    assert r.maps["@s"].to_dict("list") == {"count": [23], "average": [12], "total": [276]}
    assert r.maps["@a"].to_dict("list") == {"avg": [12]}
    assert r.maps["@mn"].to_dict("list") == {"min": [1]}
    assert r.maps["@mx"].to_dict("list") == {"max": [23]}
    assert r.maps["@su"].to_dict("list") == {"sum": [276]}
    assert r.maps["@k"].sort_values("key").to_dict("list") == {"key": [0, 1], "sum": [132, 144]}
    assert r.hists["@l"].to_dict("list") == {"min": [0, 5, 10, 15, 20], "max": [4, 9, 14, 19, 24],
                                            "count": [4, 5, 5, 5, 4]}
    assert r.hists["@h"].to_dict("list") == {"min": [1, 2, 4, 8, 16], "max": [1, 3, 7, 15, 31],
                                            "count": [1, 2, 4, 8, 8]}


def test_duration_stops_bpftrace_so_it_runs_END_and_prints_maps():
    r = bpftrace('BEGIN { @started = 1; } END { printf("end\\n"); }', duration=0.5)
    assert list(r.events["text"]) == ["end"]
    assert r.maps["@started"].to_dict("list") == {"value": [1]}
    assert not r.timed_out and not r.interrupted and r.exit_code == 0


def test_timeout_raises_with_what_was_collected():
    with pytest.raises(ProbeTimeout) as info:
        bpftrace('BEGIN { printf("started\\n"); @x = 7; }', timeout=1.5)
    res = info.value.result
    assert res.timed_out and list(res.events["text"]) == ["started"]
    assert res.maps["@x"].to_dict("list") == {"value": [7]}


def test_strlen_truncates_strings():
    name = random_name()
    w = workload("open", 1, name=name)
    r = bpftrace('tracepoint:syscalls:sys_enter_openat /comm == str($1)/ { printf("%s\\n", str(args->filename)); }',
                 command=w, args=[name], strlen=9)
    assert w.expected["paths"][0][:8] in list(r.events["text"])
    assert r.events["text"].str.len().max() == 8
    with pytest.raises(UsageError, match="at most 200"):
        bpftrace("BEGIN { exit(); }", strlen=201)


def test_unsafe_is_needed_for_system():
    with pytest.raises(ProgramSyntaxError, match="unsafe"):
        bpftrace('BEGIN { system("echo hi"); exit(); }')
    r = bpftrace('BEGIN { system("echo hi"); exit(); }', unsafe=True)
    assert list(r.events["text"]) == ["hi"]


def test_syntax_error_from_the_real_bpftrace():
    with pytest.raises(ProgramSyntaxError) as info:
        bpftrace('BEGIN {\n  printf("x" }')
    assert (info.value.line, info.value.column) == (2, 14)
    assert info.value.result.exit_code == 1


def test_unknown_tracepoint_suggests_the_right_one():
    with pytest.raises(UnknownProbeError) as info:
        bpftrace("tracepoint:syscalls:sys_enter_opnat { @ = count(); }")
    assert info.value.probe == "tracepoint:syscalls:sys_enter_opnat"
    try:
        from ebpf_lab.catalog import suggest
    except ImportError:
        return   # catalog not there: the error simply has no suggestion
    assert info.value.suggestions == tuple(suggest("tracepoint:syscalls:sys_enter_opnat", n=3))
    assert "tracepoint:syscalls:sys_enter_openat" in info.value.suggestions


def test_kprobes_fail_cleanly_when_the_kernel_has_none():
    has_kprobes = any(os.path.exists(f"{d}/kprobe_events") for d in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing"))
    prog = "kprobe:do_sys_openat2 { @ = count(); exit(); }"
    if has_kprobes:
        bpftrace(prog, timeout=30, duration=1)
        return
    # one kprobe, two (bpftrace skips them and would run on doing nothing), a wildcard
    for prog in (prog, "kretprobe:vfs_read, kprobe:vfs_write { @ = count(); }", "kprobe:vfs_rea* { @ = count(); }"):
        with pytest.raises(NotSupportedError) as info:
            bpftrace(prog, timeout=30)
        assert info.value.feature == "kprobes"
        assert info.value.alternative == "tracepoints (tracepoint:syscalls:*) or uprobes"
        assert not info.value.result.timed_out


def test_verifier_rejection_keeps_the_full_log():
    prog = '''tracepoint:syscalls:sys_enter_openat { $i = (uint64)0; $j = (uint64)0;
      while ($i < (uint64)args->flags) { if (args->mode > $i) { $j++; } $i++; } @ = $j; }'''
    with pytest.raises(VerifierError) as info:
        bpftrace(prog, timeout=60)
    assert "too complex" in str(info.value)
    assert len(info.value.log.splitlines()) > 100 and "processed" in info.value.log


def test_command_arguments_with_spaces_are_refused_before_starting():
    with pytest.raises(UsageError, match="splits the command on spaces"):
        bpftrace("BEGIN { exit(); }", command=["/bin/echo", "a b"])


def test_columns_that_do_not_convert_keep_the_text_rows():
    with pytest.raises(UsageError, match="column 'n' cannot be converted") as info:
        bpftrace('BEGIN { printf("x\\ty\\n"); exit(); }', columns="s,n:int")
    assert list(info.value.result.events["text"]) == ["x\ty"]


def test_pid_run_ends_when_that_process_exits():
    from ebpf_lab.session import ProbeRun

    with ProbeRun() as owner:
        held = owner.hold(workload("sleep", 1500))
        held.release()
        r = bpftrace('END { printf("end\\n"); }', pid=held.pid, timeout=60)
    assert list(r.events["text"]) == ["end"] and not r.timed_out and r.exit_code == 0 and r.pid == held.pid
