"""Live views, the probe picker and the progress helper.

unit: rates from snapshots, the top-N table, generated code, progress text.
privileged: a live view over a real workload counts exactly, the Stop button
ends a run that would never end by itself and keeps the counts, and the
generated %%bpftrace cell runs and sees the workload.
"""

from __future__ import annotations

import io
import os
import time

import pandas as pd
import pytest

from ebpf_lab.errors import UsageError
from ebpf_lab.progress import Progress, text_bar, timed
from ebpf_lab.widgets import code_for, rates, top_table_html


# --------------------------------------------------------------------------- unit

@pytest.mark.unit
def test_rates_are_differences_per_second_of_the_busiest():
    history = [(0.0, {"read": 0}), (1.0, {"read": 10, "write": 4}), (3.0, {"read": 30, "write": 4, "close": 1})]
    df = rates(history, top=2)
    assert list(df.columns) == ["read", "write", "total"]
    assert df.index.name == "time_s" and list(df.index) == [1.0, 3.0]
    assert df.to_dict("list") == {"read": [10.0, 10.0], "write": [4.0, 0.0], "total": [14.0, 10.5]}
    assert (df.dtypes == "float64").all()
    assert rates(history[:1]).empty


@pytest.mark.unit
def test_top_table_escapes_and_limits():
    counts = pd.DataFrame({"syscall": ["read", "<w>", "close"], "count": [3000, 20, 1], "errors": [0, 2, 0]})
    text = top_table_html(counts, 2, caption="top 2")
    assert "<td>3,000</td>" in text and "&lt;w&gt;" in text and "close" not in text
    assert text.count("<tr>") == 3


@pytest.mark.unit
def test_code_for_a_bpftrace_cell_and_a_trace_call():
    decls = {"filename": "const char * filename", "flags": "int flags"}
    cell = code_for("tracepoint:syscalls:sys_enter_openat", ["filename", "flags"], decls=decls,
                    command="/usr/bin/cat /etc/hosts")
    assert cell.splitlines() == [
        "%%bpftrace -c '/usr/bin/cat /etc/hosts' --columns comm,pid:int,filename,flags:int",
        "tracepoint:syscalls:sys_enter_openat",
        "/pid == cpid/",
        '{ printf("%s\\t%d\\t%s\\t%d\\n", comm, pid, str(args->filename), args->flags); }',
    ]
    call = code_for("tracepoint:syscalls:sys_enter_openat", ["filename"], style="trace")
    assert 'ebpf_lab.trace("tracepoint:syscalls:sys_enter_openat", ["pid", "comm", "filename"]' in call
    with pytest.raises(UsageError, match="style"):
        code_for("tracepoint:a:b", style="perl")


@pytest.mark.unit
def test_progress_text_in_a_log_and_a_bar():
    assert text_bar(3, 12, desc="grading", unit="ex", note="01.3") == \
        "grading [#######.......................]  3/12 ex  25%  01.3"
    assert len(text_bar(1, 2, desc="x", note="n" * 200)) == 80
    log = io.StringIO()
    with Progress(total=2, desc="grading", mode="text", stream=log) as bar:
        bar.line("01.1 check 1: passed")
        bar.update(1, note="01.1")
        bar.update(1, note="01.2")
        bar.update(0, note="01.2")                     # nothing new: no new line in the log
    lines = log.getvalue().splitlines()
    assert lines[0].startswith("grading [....") and lines[1] == "01.1 check 1: passed"
    assert lines[2].startswith("grading [###############...............]  1/2  50%") and lines[2].endswith("01.1")
    assert lines[3].startswith("grading [##############################]  2/2 100%") and lines[3].endswith("01.2")
    assert len(lines) == 4      # start, the callback's line, one per step; the end repeats nothing
    with pytest.raises(UsageError):
        Progress(mode="loud")


@pytest.mark.unit
def test_progress_widget_and_timed():
    bar = Progress(total=4, desc="run", mode="widget")
    bar.update(3, note="three")
    assert bar._bar.value == 3.0 and "3/4" in bar._label.value and "three" in bar._label.value
    bar.close()
    assert bar._bar.bar_style == "success"
    with timed(0.3, desc="tracing", mode="widget", tick=0.05) as p:
        assert p.total == 0.3 and p.unit == "s"
    assert p.done == 0.3 and p.closed and p._bar.bar_style == "success"
    with pytest.raises(KeyboardInterrupt), timed(5, desc="tracing", mode="widget") as p:
        raise KeyboardInterrupt
    assert p.closed and p.note == "stopped" and p._bar.bar_style == "warning"


# --------------------------------------------------------------------------- privileged

@pytest.mark.privileged
def test_live_view_of_a_command_counts_exactly():
    from ebpf_lab.widgets import live_syscalls
    from ebpf_lab.workloads import workload

    view = live_syscalls(command=workload("getppid", 23), interval=0.2)
    df = view.wait(60)
    assert view.done and not view.stopped and view.error is None
    assert df.set_index("syscall").loc["getppid", "count"] == 23
    assert list(df.columns) == ["syscall", "count", "errors"] and str(df["count"].dtype) == "int64"
    assert df.attrs["pid"] == view.pid and "BPF_PERCPU_ARRAY" in df.attrs["program"]
    assert "ns_per_syscall=" in view.output
    assert view.history[-1][1]["getppid"] == 23
    assert view._button.disabled and "getppid" in view._table.value
    assert view._chart.value[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.privileged
def test_stop_button_ends_a_run_that_never_ends_and_keeps_the_counts():
    """Our own pid never exits: only Stop ends this run. Exactly our 23 getppid() calls are kept."""
    from ebpf_lab.widgets import LiveSyscalls

    view = LiveSyscalls(pid=os.getpid(), interval=0.2).start()
    for _ in range(23):
        os.getppid()
    deadline = time.monotonic() + 30
    while len(view.history) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    live = view.snapshot().set_index("syscall")
    assert live.loc["getppid", "count"] == 23            # in-progress data, read while running
    assert not view.done
    view._button.click()                                 # what a learner's click does
    df = view.wait(30)
    assert view.done and view.stopped and df.attrs["interrupted"]
    assert df.set_index("syscall").loc["getppid", "count"] == 23
    assert "stopped" in view._status.value
    with pytest.raises(UsageError):
        view.start()


@pytest.mark.privileged
def test_live_view_errors_are_raised_at_start():
    from ebpf_lab.widgets import live_syscalls

    with pytest.raises(UsageError, match="no process"):
        live_syscalls(pid=2 ** 22 + 7)
    with pytest.raises(UsageError, match="needs an end"):
        live_syscalls()


@pytest.mark.privileged
def test_picker_code_runs_as_a_bpftrace_cell_and_inserts_the_next_cell():
    from IPython.core.interactiveshell import InteractiveShell

    from ebpf_lab.widgets import ProbePicker
    from ebpf_lab.workloads import workload

    w = workload("open", 23)
    picker = ProbePicker("tracepoint:syscalls:sys_enter_open*", command=" ".join(w))
    picker.filter.value = "openat"
    assert "tracepoint:syscalls:sys_enter_openat" in picker.probes.options
    assert all("openat" in p for p in picker.probes.options)
    code = picker.select("tracepoint:syscalls:sys_enter_openat", ["filename"])
    assert picker.text.value == code and "str(args->filename)" in code

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "ebpf_lab")
    assert picker.insert() == code
    assert shell.rl_next_input == code                   # what IPython puts in the next cell
    line, cell = code.split("\n", 1)
    shell.run_cell_magic("bpftrace", line[len("%%bpftrace "):] + " -o picked", cell)
    events = shell.user_ns.pop("picked").events
    mine = events[events["filename"].str.startswith(w.expected["dir"])]
    assert sorted(mine["filename"]) == sorted(w.expected["paths"])
    assert set(events["pid"]) == {events["pid"].iloc[0]}
