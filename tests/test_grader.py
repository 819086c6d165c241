"""The grader's framework: scoring, partial credit, hidden checks, skips, formats,
the child process (time limit, what the learner's code can see), and real
bpftrace errors graded as failed checks."""

from __future__ import annotations

import json
import os
import random
import textwrap
import time
from pathlib import Path

import pytest

from ebpf_lab.grader import exercises, formats, hints, home, runner
from ebpf_lab.grader.framework import Check, ExerciseSpec, RunFailure, Scenario, Trial, grade_exercise
from ebpf_lab.grader.model import GradeReport, fail, ok, partial

SECRET_NAME = "secret-check-name-q7"
SECRET_MSG = "secret-message-zz91"


def _spec(trials, **kw):
    return ExerciseSpec(id="99.1", title="fake", chapter="99_fake", filename="99.1_fake.bt", trials=trials, **kw)


def _setup(rng, tmp):
    return Scenario(job={"command": "/bin/true"}, truth={"n": 23})


def _no_missing(_name):
    return None


def _fake_run(outputs):
    """A runner that returns canned outputs, one per trial (an Exception is raised)."""
    it = iter(outputs)

    def run(spec, path, job, timeout):
        out = next(it)
        if isinstance(out, Exception):
            raise out
        return out
    return run


def _grade(spec, outputs, missing=_no_missing):
    return grade_exercise(spec, Path("/nonexistent/99.1_fake.bt"), run=_fake_run(outputs),
                          rng=random.Random(1), mechanism_missing=missing)


def _eq_check(out, truth):
    return ok() if out == truth["n"] else fail(f"expected {truth['n']}, saw {out}")


# --------------------------------------------------------------------------- scoring

@pytest.mark.unit
def test_points_and_partial_credit():
    spec = _spec([Trial(_setup, [
        Check("exact", 3, _eq_check),
        Check("partial", 4, lambda out, t: partial(1, 4, "one of four")),
        Check("wrong", 2, lambda out, t: fail("nope")),
    ])])
    r = _grade(spec, [23])
    assert [c.status for c in r.checks] == ["passed", "partial", "failed"]
    assert [c.score for c in r.checks] == [3, 1, 0]
    assert (r.score, r.max_score) == (4, 9)
    assert not r.passed
    assert r.checks[1].message == "one of four"
    assert r.checks[2].message == "nope"


@pytest.mark.unit
def test_failed_run_fails_its_trial_only_and_other_trials_are_graded():
    spec = _spec([
        Trial(_setup, [Check("a", 1, _eq_check), Check("b", 1, _eq_check)]),
        Trial(_setup, [Check("c", 2, _eq_check)]),
    ])
    r = _grade(spec, [RunFailure("stdin:3:5: ERROR: syntax error"), 23])
    assert [c.status for c in r.checks] == ["failed", "failed", "passed"]
    assert all("stdin:3:5" in c.message for c in r.checks[:2])
    assert (r.score, r.max_score) == (2, 4)


@pytest.mark.unit
def test_a_crashing_check_is_a_failed_check_not_a_crash():
    spec = _spec([Trial(_setup, [Check("reads a dict", 1, lambda out, t: ok() if out["x"] else fail("x")),
                                 Check("fine", 1, _eq_check)])])
    r = _grade(spec, [23])  # 23["x"] raises TypeError
    assert r.checks[0].status == "failed" and "could not be read" in r.checks[0].message
    assert r.checks[1].status == "passed"


@pytest.mark.unit
def test_missing_mechanism_skips_and_names_the_variant_and_counts_nowhere():
    spec = _spec([
        Trial(_setup, [Check("kprobe check", 5, _eq_check)], needs=("kprobe",)),
        Trial(_setup, [Check("tracepoint check", 2, _eq_check)], needs=("tracepoint",)),
    ], variant="02.1 (tracepoint:syscalls:sys_enter_openat)")
    missing = lambda name: "CONFIG_KPROBES is not set" if name == "kprobe" else None  # noqa: E731
    r = _grade(spec, [23], missing=missing)  # only one run happens: the skipped trial never runs
    skipped, graded = r.checks
    assert skipped.status == "skipped" and skipped.score == 0
    assert "needs kprobe, which this kernel lacks" in skipped.message
    assert "02.1" in skipped.message
    assert (r.score, r.max_score) == (2, 2)
    assert r.passed
    assert "SKIP kprobe check" in r.text() and "[" not in r.text().splitlines()[1]


# --------------------------------------------------------------------------- hidden checks

def _hidden_spec():
    return _spec([Trial(_setup, [
        Check("public one", 2, _eq_check),
        Check(SECRET_NAME, 1, lambda out, t: fail(SECRET_MSG), hidden=True),
        Check(SECRET_NAME + "2", 1, lambda out, t: ok(SECRET_MSG), hidden=True),
    ])])


@pytest.mark.unit
def test_hidden_checks_never_leak_in_any_rendering():
    r = _hidden_spec()
    result = _grade(r, [23])
    report = GradeReport([result])
    renderings = [result.text(), result._repr_html_(), json.dumps(result.to_dict()), report.text(),
                  report._repr_html_()] + [formats.render(report, f) for f in formats.FORMATS]
    for text in renderings:
        assert SECRET_NAME not in text
        assert SECRET_MSG not in text
    assert "hidden check 1" in result.text() and "hidden check 2" in result.text()
    # the grader keeps the real verdicts
    assert [c.status for c in result.checks] == ["passed", "failed", "passed"]


@pytest.mark.unit
def test_only_public_checks_passing_is_said():
    result = _grade(_hidden_spec(), [23])
    assert "all public checks pass" in result.summary()
    assert "1 of 2 hidden checks fail" in result.summary()
    assert (result.score, result.max_score) == (3, 4)


# --------------------------------------------------------------------------- formats

@pytest.mark.unit
def test_gradescope_results():
    report = GradeReport([_grade(_hidden_spec(), [23])])
    gs = formats.to_gradescope(report)
    assert gs["score"] == 3 and gs["max_score"] == 4
    tests = gs["tests"]
    assert [t["visibility"] for t in tests] == ["visible", "hidden", "hidden"]
    assert [t["status"] for t in tests] == ["passed", "failed", "passed"]
    assert [t["score"] for t in tests] == [2, 0, 1]
    for t in tests:
        assert set(t) >= {"name", "number", "score", "max_score", "status", "output", "visibility"}
    assert tests[1]["output"] == ""


@pytest.mark.unit
def test_exercism_v3_results():
    report = GradeReport([_grade(_hidden_spec(), [22])])
    ex = formats.to_exercism(report)
    assert ex["version"] == 3 and ex["status"] == "fail"
    assert [t["status"] for t in ex["tests"]] == ["fail", "fail", "pass"]
    assert ex["tests"][0]["message"] == "expected 23, saw 22"
    for t in ex["tests"]:
        assert set(t) == {"name", "status", "message", "test_code", "task_id"}
        assert t["task_id"] == 1
    passing = GradeReport([_grade(_spec([Trial(_setup, [Check("x", 1, _eq_check)])]), [23])])
    assert formats.to_exercism(passing)["status"] == "pass"


@pytest.mark.unit
@pytest.mark.parametrize("fmt", ["json", "gradescope", "exercism", "text"])
def test_results_file_written_when_nothing_could_run(tmp_path, fmt):
    report = GradeReport(error="bpftrace is not installed")
    path = formats.write(report, fmt, tmp_path / "out" / "results.json")
    text = path.read_text()
    assert "bpftrace is not installed" in text
    if fmt == "exercism":
        data = json.loads(text)
        assert data == {"version": 3, "status": "error", "message": "bpftrace is not installed", "tests": []}
    elif fmt == "gradescope":
        data = json.loads(text)
        assert data["score"] == 0 and data["tests"] == []


# --------------------------------------------------------------------------- files, hints, home

@pytest.mark.unit
def test_every_exercise_header_parses_and_matches_its_spec():
    root = Path(__file__).resolve().parent.parent
    for spec in exercises().values():
        path = root / "exercises" / spec.relpath()
        info = home.read_header(path)
        assert info["id"] == spec.id, path
        assert spec.filename.startswith(spec.id + "_")
        for key in ("task", "graded", "needs"):
            assert info.get(key), f"{path}: header has no {key}:"
        if spec.kind == "py":
            assert info.get("function", "").startswith(spec.function + "("), path


@pytest.mark.unit
def test_hints_come_one_at_a_time_and_reset(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    ex = tmp_path / "99.1_fake.bt"
    ex.write_text("// 99.1 fake\n")
    (tmp_path / "99.1_fake.hints.md").write_text("first\n---\nsecond\nline\n---\nthird\n")
    assert hints.next_hint("99.1", ex) == (1, 3, "first")
    assert hints.next_hint("99.1", ex) == (2, 3, "second\nline")
    assert hints.next_hint("99.1", ex) == (3, 3, "third")
    assert hints.next_hint("99.1", ex) == (3, 3, "third")
    saved = json.loads((tmp_path / "cache" / "ebpf-lab" / "hints.json").read_text())
    assert saved == {"99.1": 3}
    hints.reset_hints("99.1")
    assert hints.next_hint("99.1", ex)[0] == 1


@pytest.mark.unit
def test_home_is_found_from_notebooks_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("EBPF_LAB_HOME", raising=False)
    (tmp_path / "exercises").mkdir()
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert home.find_home() == tmp_path.resolve()
    monkeypatch.setenv("EBPF_LAB_HOME", str(tmp_path / "notebooks"))
    from ebpf_lab.errors import SetupError
    with pytest.raises(SetupError, match="EBPF_LAB_HOME"):
        home.find_home()


# --------------------------------------------------------------------------- the child process

def _py_setup(rng, tmp):
    return Scenario(job={"call_args": ["/bin/true"]}, truth={"n": 23})


def _py_spec(function, setup=_py_setup, timeout=20.0, checks=None):
    return ExerciseSpec(id="99.2", title="fake py", chapter="99_fake", filename="99.2_fake.py",
                        function=function, trials=[Trial(setup, checks or [Check("value", 1, _eq_value)],
                                                         timeout=timeout)])


def _eq_value(out, truth):
    return ok() if out == {"type": "value", "value": truth["n"]} else fail(f"saw {out}")


@pytest.mark.unit
def test_a_hanging_program_is_killed_at_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "STARTUP_MARGIN", 2.0)
    f = tmp_path / "99.2_fake.py"
    f.write_text(textwrap.dedent("""
        import subprocess, time
        def answer(command):
            subprocess.Popen(["sleep", "600"], start_new_session=True)   # a grandchild in its own session
            while True:
                time.sleep(0.05)
    """))
    before = set(runner.descendants(os.getpid()))
    t0 = time.monotonic()
    r = grade_exercise(_py_spec("answer", timeout=1.0), f, mechanism_missing=_no_missing)
    assert time.monotonic() - t0 < 15
    assert r.checks[0].status == "failed"
    assert "time limit (3 s)" in r.checks[0].message
    deadline = time.monotonic() + 5
    while set(runner.descendants(os.getpid())) - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not set(runner.descendants(os.getpid())) - before, "the grader left processes behind"


@pytest.mark.unit
def test_learner_code_sees_the_command_but_never_the_truth(tmp_path):
    """The child gets only the job: a hard-coded or peeked answer is impossible."""
    def setup(rng, tmp):
        return Scenario(job={"call_args": ["/bin/true"]}, truth={"n": 7919, "secret": "k3xq-truth"})

    f = tmp_path / "99.2_fake.py"
    f.write_text(textwrap.dedent("""
        import sys, os
        def answer(command):
            seen = open(sys.argv[1]).read() + " ".join(sys.argv) + " ".join(os.environ.values())
            return seen
    """))
    leak = {}

    def check(out, truth):
        leak["seen"] = out["value"]
        return ok()

    r = grade_exercise(_py_spec("answer", setup=setup, checks=[Check("x", 1, check)]), f,
                       mechanism_missing=_no_missing)
    assert r.checks[0].status == "passed"
    assert "/bin/true" in leak["seen"]
    assert "7919" not in leak["seen"] and "k3xq-truth" not in leak["seen"]


@pytest.mark.unit
def test_python_exception_is_a_failed_check_with_the_line(tmp_path):
    f = tmp_path / "99.2_fake.py"
    f.write_text("def answer(command):\n    return 1 / 0\n")
    r = grade_exercise(_py_spec("answer"), f, mechanism_missing=_no_missing)
    assert r.checks[0].status == "failed"
    assert "ZeroDivisionError" in r.checks[0].message and "line 2" in r.checks[0].message


@pytest.mark.unit
def test_python_function_value_and_dataframe_come_back(tmp_path):
    f = tmp_path / "99.2_fake.py"
    f.write_text("import pandas as pd\ndef answer(command):\n    return pd.DataFrame({'a': [1, 2]})\n"
                 "def number(command):\n    return 23\n")
    seen = {}

    def check(out, truth):
        seen.update(out)
        return ok()

    grade_exercise(_py_spec("answer", checks=[Check("x", 1, check)]), f, mechanism_missing=_no_missing)
    assert seen == {"type": "dataframe", "columns": ["a"], "records": [{"a": 1}, {"a": 2}]}
    r = grade_exercise(_py_spec("number"), f, mechanism_missing=_no_missing)
    assert r.passed


# --------------------------------------------------------------------------- real bpftrace

@pytest.mark.privileged
def test_bpftrace_syntax_error_is_a_failed_check_with_line_and_column(tmp_path):
    spec = exercises()["01.1"]
    f = tmp_path / spec.filename
    f.write_text("// 01.1 broken\ntracepoint:syscalls:sys_enter_getppid\n{\n  @calls[comm] = count(;\n}\n")
    r = grade_exercise(spec, f)
    assert r.checks and all(c.status == "failed" for c in r.checks)
    for c in r.checks:
        assert "ProgramSyntaxError" in c.message
        assert "line 4" in c.message and "stdin:4:" in c.message


@pytest.mark.privileged
def test_a_wrong_count_fails_with_expected_and_seen(tmp_path):
    spec = exercises()["01.3"]
    f = tmp_path / spec.filename
    # counts every call twice
    f.write_text("tracepoint:syscalls:sys_enter_getppid /comm == str($1)/ { @calls = count(); @calls = count(); }\n")
    r = grade_exercise(spec, f)
    public = r.checks[0]
    assert public.status == "failed"
    n = int(public.message.split("called getppid() ")[1].split(" times")[0])
    assert public.message.endswith(f"but @calls is {2 * n}")
    assert r.score == 0 and r.max_score == 4


@pytest.mark.privileged
def test_a_program_the_kernel_rejects_is_a_failed_check_with_the_reason(tmp_path):
    spec = exercises()["01.2"]
    f = tmp_path / spec.filename
    strings = ", ".join(["str(args->filename)"] * 10)  # 10 strings of 64 bytes: over the 512-byte stack
    f.write_text('tracepoint:syscalls:sys_enter_openat /pid == cpid/ { printf("' + "%s " * 10 + '\\n", '
                 + strings + "); }\n")
    r = grade_exercise(spec, f)
    assert [c.status for c in r.checks] == ["failed"] * 3
    assert all(c.message.startswith("VerifierError:") and "512 bytes" in c.message for c in r.checks)
    assert "hidden check 1" in r.text() and "512 bytes" not in r.text().split("hidden check 1")[1]


@pytest.mark.unit
def test_resolve_ids_chapters_and_unknown_names():
    from ebpf_lab.errors import UsageError
    from ebpf_lab.grader import resolve

    assert [s.id for s in resolve("02.3")] == ["02.3"]
    chapter = [s.id for s in resolve("01")]
    assert chapter == [s.id for s in resolve("01_bpftrace_basics")] and len(chapter) >= 6
    assert all(i.startswith("01.") for i in chapter)
    assert [s.id for s in resolve(["01.2", "01"])][0] == "01.2"
    with pytest.raises(UsageError, match="known ids"):
        resolve("7.7")


@pytest.mark.unit
def test_text_results_fit_80_columns():
    spec = _spec([Trial(_setup, [Check("a check with a rather long name that goes on " * 2, 1,
                                       lambda out, t: fail("a long message " * 20))])])
    text = _grade(spec, [23]).text()
    assert all(len(line) <= 80 for line in text.splitlines()), text


@pytest.mark.privileged
def test_check_from_the_notebooks_folder_shows_html(monkeypatch):
    import ebpf_lab

    root = Path(__file__).resolve().parent.parent
    (root / "notebooks").mkdir(exist_ok=True)
    monkeypatch.chdir(root / "notebooks")
    monkeypatch.delenv("EBPF_LAB_HOME", raising=False)
    result = ebpf_lab.check("01.1", solutions=True)
    assert result.passed
    html = result._repr_html_()
    assert "01.1" in html and "hidden check 1" in html and "<table>" in html


@pytest.mark.unit
def test_a_grader_bug_in_one_exercise_leaves_the_others_graded(monkeypatch, tmp_path):
    import ebpf_lab.grader as grader

    calls = []

    def fake_grade_exercise(spec, path, **kw):
        calls.append(spec.id)
        if spec.id == "01.1":
            raise KeyError("oops")
        return grader.ExerciseResult(spec.id, spec.title, str(path))

    monkeypatch.setattr(grader, "grade_exercise", fake_grade_exercise)
    monkeypatch.setattr(grader, "_ready_to_grade", lambda specs: None)
    report = grader.grade(["01.1", "01.2"])
    assert calls == ["01.1", "01.2"]
    assert "the grader itself failed (KeyError" in report.exercises[0].error
    assert report.exercises[1].error == ""
    ex = formats.to_exercism(report)
    assert ex["tests"][0]["status"] == "error"
