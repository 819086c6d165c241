"""The ``ebpf-lab`` command line: each subcommand, errors as messages with exit
status 2, results files, hints, and 80-column output."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

from ebpf_lab import cli

ROOT = Path(__file__).resolve().parent.parent


def _run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------- no root needed

@pytest.mark.unit
@pytest.mark.parametrize("sub", ["doctor", "list", "describe", "run", "grade", "hint"])
def test_every_subcommand_has_help(capsys, sub):
    with pytest.raises(SystemExit) as e:
        cli.main([sub, "--help"])
    assert e.value.code == 0
    assert "usage: ebpf-lab" in capsys.readouterr().out


@pytest.mark.unit
def test_unknown_exercise_is_a_message_with_status_2_and_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "ebpf_lab", "grade", "09.9"], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2
    assert "no exercise or chapter named '09.9'" in proc.stderr
    assert "Next step:" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.unit
@pytest.mark.parametrize("fmt", ["exercism", "gradescope", "json"])
def test_results_file_is_written_when_the_grader_cannot_run(capsys, tmp_path, fmt):
    out = tmp_path / "results.json"
    code, _, err = _run(capsys, "grade", "09.9", "--format", fmt, "--output", str(out))
    assert code == 2
    data = json.loads(out.read_text())
    text = json.dumps(data)
    assert "09.9" in text
    if fmt == "exercism":
        assert data["version"] == 3 and data["status"] == "error"


@pytest.mark.unit
def test_results_file_when_exercises_folder_is_missing(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("EBPF_LAB_HOME", str(tmp_path))
    out = tmp_path / "results.json"
    code, _, err = _run(capsys, "grade", "--all", "--format", "exercism", "--output", str(out))
    assert code == 2 and "EBPF_LAB_HOME" in err
    data = json.loads(out.read_text())
    assert data["status"] == "error" and "exercises/" in data["message"]


@pytest.mark.unit
def test_hint_shows_the_next_one_and_reset(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    code, first, _ = _run(capsys, "hint", "02.3")
    assert code == 0 and "hint 1 of 3" in first
    code, second, _ = _run(capsys, "hint", "02.3")
    assert "hint 2 of 3" in second and second != first
    assert json.loads((tmp_path / "ebpf-lab" / "hints.json").read_text()) == {"02.3": 2}
    code, out, _ = _run(capsys, "hint", "02.3", "--reset")
    assert code == 0
    code, again, _ = _run(capsys, "hint", "02.3")
    assert again == first
    for line in (first + second).splitlines():
        assert len(line) <= 80, line


@pytest.mark.unit
def test_hint_without_id_is_a_usage_error(capsys):
    code, _, err = _run(capsys, "hint")
    assert code == 2 and "give its id" in err


@pytest.mark.unit
def test_bench_passes_the_rest_of_the_command_line(capsys, monkeypatch):
    seen = {}
    fake = types.ModuleType("ebpf_lab.bench")
    fake.main = lambda argv: seen.setdefault("argv", argv) and 0
    monkeypatch.setitem(sys.modules, "ebpf_lab.bench", fake)
    assert cli.main(["bench", "--n", "1000", "--quick"]) == 0
    assert seen["argv"] == ["--n", "1000", "--quick"]


@pytest.mark.unit
def test_run_missing_file_is_a_message(capsys, tmp_path):
    code, _, err = _run(capsys, "run", str(tmp_path / "nope.bt"))
    assert code == 2 and "no such file" in err


# --------------------------------------------------------------------------- real kernel

@pytest.mark.privileged
def test_doctor_prints_the_report(capsys):
    code, out, err = _run(capsys, "doctor")
    assert code == 0, err
    assert "tracepoint" in out


@pytest.mark.privileged
def test_list_and_describe(capsys):
    code, out, _ = _run(capsys, "list", "tracepoint:sched:sched_process_fo*")
    assert code == 0 and out.split() == ["tracepoint:sched:sched_process_fork"]
    code, out, _ = _run(capsys, "describe", "tracepoint:syscalls:sys_enter_openat")
    assert code == 0
    assert "const char * filename;" in out
    code, _, err = _run(capsys, "describe", "tracepoint:syscalls:sys_enter_opennat")
    assert code == 2 and "sys_enter_openat" in err and "Traceback" not in err


@pytest.mark.privileged
def test_run_prints_maps_and_histograms_in_80_columns(capsys, tmp_path):
    from ebpf_lab.workloads import workload

    w = workload("read", 23, name="clirun7", size=3000)
    code, out, err = _run(capsys, "run", str(ROOT / "solutions/01_bpftrace_basics/01.4_read_sizes.bt"),
                          "clirun7", "-c", " ".join(w))
    assert code == 0, err
    assert "--- histogram @bytes" in out
    row = [ln for ln in out.splitlines() if ln.startswith("[2K, 4K)")]
    assert row and row[0].split()[2] == "23"
    assert all(len(ln) <= 80 for ln in out.splitlines())


@pytest.mark.privileged
def test_run_syntax_error_is_a_message_with_line_and_column(capsys, tmp_path):
    bad = tmp_path / "bad.bt"
    bad.write_text("BEGIN { printf(\"x\") \n")
    code, out, err = _run(capsys, "run", str(bad))
    assert code == 2
    assert "line 2, column 1" in err and "Traceback" not in err


@pytest.mark.privileged
def test_grade_solutions_gradescope_file_and_progress(capsys, tmp_path):
    out = tmp_path / "results.json"
    code, stdout, err = _run(capsys, "grade", "01.1", "--solutions", "--format", "gradescope",
                             "--output", str(out))
    assert code == 0
    data = json.loads(out.read_text())
    assert data["score"] == data["max_score"] == 4
    assert [t["visibility"] for t in data["tests"]] == ["visible", "visible", "hidden"]
    # one progress line per check, on stderr
    assert [ln for ln in err.splitlines() if ln.startswith("01.1 ")] == [
        "01.1 @calls is keyed by process name: passed",
        "01.1 @calls[name] is the number of getppid() calls: passed",
        "01.1 hidden check 1: passed",
    ]


@pytest.mark.privileged
def test_grade_untouched_exercise_exits_0_with_text_summary(capsys):
    code, out, _ = _run(capsys, "grade", "02.2")
    assert code == 0
    assert "02.2" in out and "0/5 points" in out and "not written yet" in out
    assert all(len(ln) <= 80 or ln.startswith("       ") for ln in out.splitlines())


@pytest.mark.unit
def test_grade_without_bpftrace_writes_an_error_results_file(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no bpftrace on PATH
    out = tmp_path / "results.json"
    code, _, err = _run(capsys, "grade", "01.1", "--format", "exercism", "--output", str(out))
    assert code == 2 and "bpftrace is not installed" in err and "Traceback" not in err
    data = json.loads(out.read_text())
    assert data["status"] == "error" and "bpftrace is not installed" in data["message"]


@pytest.mark.unit
def test_grade_without_privileges_says_so(capsys, tmp_path, monkeypatch):
    import ebpf_lab.privileges

    monkeypatch.setattr(ebpf_lab.privileges, "missing_capabilities", lambda: ("CAP_BPF", "CAP_PERFMON"))
    out = tmp_path / "results.json"
    code, _, err = _run(capsys, "grade", "02", "--format", "gradescope", "--output", str(out))
    assert code == 2 and "CAP_BPF" in err and "sudo" in err
    data = json.loads(out.read_text())
    assert data["score"] == 0 and "CAP_BPF" in data["output"]
