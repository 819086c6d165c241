"""The %%bpftrace cell magic: option parsing (unit) and a real run in an IPython shell (privileged)."""

from __future__ import annotations

import pytest

from ebpf_lab.errors import ProgramSyntaxError, UsageError
from ebpf_lab.magic import parse_magic_line
from ebpf_lab.workloads import random_name, workload


@pytest.mark.unit
def test_every_option_maps_to_a_bpftrace_argument():
    kwargs, out = parse_magic_line("-c '/usr/bin/ls -l /tmp' -d 2.5 -t 9 -o res --strlen 64 --unsafe "
                                   "-p 42 --columns comm,pid:int cat 7")
    assert out == "res"
    assert kwargs == {"command": "/usr/bin/ls -l /tmp", "duration": 2.5, "timeout": 9.0, "strlen": 64,
                      "pid": 42, "columns": "comm,pid:int", "unsafe": True, "args": ["cat", "7"]}
    long_kwargs, _ = parse_magic_line("--command /bin/true --duration 1 --timeout 3 --output r2 --pid 5")
    assert long_kwargs == {"command": "/bin/true", "duration": 1.0, "timeout": 3.0, "pid": 5}


@pytest.mark.unit
def test_defaults_and_bad_lines():
    assert parse_magic_line("") == ({}, "_bpftrace")
    assert parse_magic_line("-- -5")[0] == {"args": ["-5"]}
    with pytest.raises(UsageError, match="not a Python variable"):
        parse_magic_line("-o 1x")
    with pytest.raises(UsageError, match="expected one argument"):
        parse_magic_line("-d")
    with pytest.raises(UsageError, match="quotes"):
        parse_magic_line("-c 'unterminated")


@pytest.fixture
def shell():
    from IPython.core.interactiveshell import InteractiveShell

    sh = InteractiveShell.instance()
    sh.run_line_magic("load_ext", "ebpf_lab")
    yield sh
    for name in ("_bpftrace", "res"):
        sh.user_ns.pop(name, None)


@pytest.mark.privileged
def test_magic_runs_the_cell_shows_and_stores_the_result(shell, capsys):
    name = random_name()
    w = workload("getppid", 23, name=name)
    cell = ('tracepoint:syscalls:sys_enter_getppid /comm == str($1)/ { @[comm] = count(); @h = hist(23); '
            'printf("%s\\t%d\\n", comm, pid); }\n')
    shell.run_cell_magic("bpftrace", f"-c '{' '.join(w)}' --columns comm,pid:int -o res {name}", cell)
    res = shell.user_ns["res"]
    assert res.maps["@"].to_dict("list") == {"key": [name], "count": [23]}
    assert len(res.events) == 23 and res.events["pid"].dtype == "int64" and set(res.events["comm"]) == {name}
    shown = capsys.readouterr().out
    assert "@h:\n[16, 32)              23 |@@@@" in shown
    assert "<BpftraceResult" in shown
    assert "<b>@</b>" in res._repr_html_() and "[16, 32)" in res._repr_html_()


@pytest.mark.privileged
def test_magic_error_keeps_the_partial_result(shell):
    with pytest.raises(ProgramSyntaxError):
        shell.run_cell_magic("bpftrace", "", "BEGIN { printf(\"x\" }")
    assert shell.user_ns["_bpftrace"].exit_code == 1
