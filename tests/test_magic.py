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


@pytest.mark.unit
def test_display_options_are_not_bpftrace_arguments():
    from ebpf_lab.magic import parse_magic_options

    kwargs, out, shown = parse_magic_options("--plot --unit ns -q -d 1 cat")
    assert kwargs == {"duration": 1.0, "args": ["cat"]} and out == "_bpftrace"
    assert shown == {"plot": True, "unit": "ns", "quiet": True}
    assert parse_magic_options("")[2] == {"plot": False, "unit": "value", "quiet": False}
    assert parse_magic_line("--plot -o r")[0] == {}        # the old two-value parser ignores display options


@pytest.mark.privileged
def test_plot_draws_each_histogram_as_a_png(shell, monkeypatch):
    import matplotlib.figure

    import ebpf_lab.magic as magic

    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, *a, **k: shown.append(obj))
    name = random_name()
    w = workload("read", 23, name=name, size=100)
    cell = ('tracepoint:syscalls:sys_exit_read /comm == str($1) && args->ret == 100/ { @bytes = hist(args->ret); '
            '@by[comm] = hist(args->ret); }\n')
    magic.run_cell(f"-c '{' '.join(w)}' --plot --unit bytes -o res {name}", cell, shell.user_ns)
    res = shell.user_ns["res"]
    assert res.hists["@bytes"]["count"].sum() == 23
    figs = [o for o in shown if isinstance(o, matplotlib.figure.Figure)]
    assert len(figs) == 2
    by_title = {f.axes[0].get_title(): f for f in figs}
    assert set(by_title) == {"@bytes (bytes)", "@by (bytes)"}
    for fig in figs:                                     # one bar of 23 in [64, 128), the rest empty
        ax = fig.axes[0]
        assert [int(b.get_width()) for b in ax.patches if b.get_width()] == [23]
        assert "[64, 128)" in [t.get_text() for t in ax.get_yticklabels()]


@pytest.mark.privileged
def test_quiet_shows_nothing_and_duration_shows_progress(shell, capsys):
    shell.run_cell_magic("bpftrace", "-q -d 0.5", "BEGIN { @x = count(); }")
    out = capsys.readouterr()
    assert out.out == "" and shell.user_ns["_bpftrace"].maps["@x"]["count"].tolist() == [1]
    shell.run_cell_magic("bpftrace", "-d 0.5", "BEGIN { @x = count(); }")
    out = capsys.readouterr()
    assert "<BpftraceResult" in out.out
    assert "bpftrace [" in out.err and "s 100%" in out.err          # the terminal progress bar, at its end
