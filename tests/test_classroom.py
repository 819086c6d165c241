"""Grading a class: submissions/<learner>/exercises/... -> gradebook.csv + one report per learner.

unit: learner discovery, statuses, the CSV layout and the command line, with the
grader replaced by a stand-in. privileged: real grading of four learners on
exercise 01.1 (a correct answer, the untouched stub, nothing handed in, a
program that does not parse).
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from ebpf_lab.errors import UsageError
from ebpf_lab.grader import classroom, exercises, resolve
from ebpf_lab.grader.home import find_home
from ebpf_lab.grader.model import CheckResult, ExerciseResult, GradeReport

SPEC = resolve("01.1")[0]


def _hand_in(root: Path, learner: str, text: str | None, spec=SPEC) -> None:
    folder = root / learner / "exercises" / spec.chapter
    folder.mkdir(parents=True, exist_ok=True)
    if text is not None:
        (folder / spec.filename).write_text(text)


@pytest.mark.unit
def test_find_learners(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        classroom.find_learners(tmp_path / "nope")
    with pytest.raises(UsageError, match="no learner folder"):
        classroom.find_learners(tmp_path)
    _hand_in(tmp_path, "zoe", None)
    _hand_in(tmp_path, "al.ice", "x")
    (tmp_path / "not-a-learner").mkdir()
    assert classroom.find_learners(tmp_path) == ["al.ice", "zoe"]
    _hand_in(tmp_path, "bad name", None)
    with pytest.raises(UsageError, match="not plain names"):
        classroom.find_learners(tmp_path)


@pytest.mark.unit
def test_spec_points_and_statuses():
    assert classroom.spec_points(SPEC) == 4     # 01.1: keyed (1) + exact (2) + hidden (1)
    assert all(classroom.spec_points(s) > 0 for s in exercises().values())

    def ex(*statuses, error=""):
        pts = {"passed": 1, "partial": 0.5, "failed": 0, "skipped": 0}
        return ExerciseResult("9.9", "t", "p", [CheckResult(f"c{i}", 1, pts[s], s) for i, s in enumerate(statuses)],
                              error=error)

    assert classroom._status(ex("passed", "passed")) == "passed"
    assert classroom._status(ex("passed", "failed")) == "partial"
    assert classroom._status(ex("failed", "failed")) == "failed"
    assert classroom._status(ex("skipped")) == "skipped"
    assert classroom._status(ex("passed", error="boom")) == "error"


@pytest.fixture
def fake_grade(monkeypatch):
    """A stand-in grader: a file containing 'good' passes, anything else fails; records its calls."""
    calls = []

    def grade(targets, *, home, seed=None, **_kw):
        spec = resolve(targets)[0]
        path = Path(home) / "exercises" / spec.relpath()
        calls.append((Path(home).name, spec.id, seed))
        good = "good" in path.read_text()
        return GradeReport([ExerciseResult(spec.id, spec.title, str(path), [
            CheckResult("visible", 3, 3 if good else 0, "passed" if good else "failed", "" if good else "try again"),
            CheckResult("secret", 1, 1 if good else 0, "passed" if good else "failed", "the answer", hidden=True,
                        hidden_number=1)])])

    monkeypatch.setattr("ebpf_lab.grader.grade", grade)
    return calls


@pytest.mark.unit
def test_gradebook_csv_and_reports(tmp_path, fake_grade):
    subs, out = tmp_path / "submissions", tmp_path / "out"
    two = resolve("01.2")[0]
    _hand_in(subs, "alice", "good", SPEC)
    _hand_in(subs, "alice", "bad", two)
    _hand_in(subs, "bob", "bad", SPEC)
    lines = []
    res = classroom.grade_class(subs, out, ["01.1", "01.2"], seed=7, progress=lines.append, show_progress="off")
    with open(out / "gradebook.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == classroom.COLUMNS
    assert [(r["learner"], r["exercise"], r["score"], r["max_score"], r["status"]) for r in rows] == [
        ("alice", "01.1", "4", "4", "passed"),
        ("alice", "01.2", "0", "4", "failed"),
        ("bob", "01.1", "0", "4", "failed"),
        ("bob", "01.2", "0", str(classroom.spec_points(two)), "missing"),
    ]
    assert fake_grade == [("alice", "01.1", 7), ("alice", "01.2", 7), ("bob", "01.1", 8)]
    assert lines[0] == "alice 01.1: passed 4/4" and len(lines) == 4
    assert res.totals() == {"alice": (4.0, 8.0), "bob": (0.0, 4.0 + classroom.spec_points(two))}
    assert str(res.frame()["score"].dtype) == "float64"
    text = (out / "learners" / "alice.txt").read_text()
    assert "01.2" in text and "hidden check 1" in text and "the answer" not in text   # hidden stays hidden
    data = json.loads((out / "learners" / "bob.json").read_text())
    assert [e["id"] for e in data["exercises"]] == ["01.1"] and data["score"] == 0


@pytest.mark.unit
def test_command_line(tmp_path, fake_grade, capsys):
    _hand_in(tmp_path / "s", "alice", "good")
    assert classroom.main(["--submissions", str(tmp_path / "s"), "--out", str(tmp_path / "o"),
                           "--exercises", "01.1"]) == 0
    out = capsys.readouterr().out
    assert "alice  4/4" in out and "gradebook.csv" in out
    assert classroom.main(["--submissions", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert classroom.main(["--submissions", str(tmp_path / "s"), "--out", str(tmp_path / "o"),
                           "--exercises", "99.9"]) == 2
    assert classroom.main(["--out", "x"]) == 2           # --submissions is required


@pytest.mark.privileged
def test_real_class_of_four_on_exercise_01_1(tmp_path):
    home = find_home()
    subs, out = tmp_path / "submissions", tmp_path / "gradebook"
    _hand_in(subs, "alice", (home / "solutions" / SPEC.relpath()).read_text())
    _hand_in(subs, "bob", (home / "exercises" / SPEC.relpath()).read_text())
    _hand_in(subs, "carol", None)
    _hand_in(subs, "dave", "tracepoint:syscalls:sys_enter_getppid { @calls[comm] = count( }\n")
    res = classroom.grade_class(subs, out, ["01.1"], show_progress="off")
    got = {r["learner"]: (r["score"], r["max_score"], r["status"]) for r in res.rows}
    assert got == {"alice": (4, 4, "passed"), "bob": (0, 4, "failed"), "carol": (0, 4, "missing"),
                   "dave": (0, 4, "failed")}
    assert "syntax" in (out / "learners" / "dave.txt").read_text().lower()
    with open(res.gradebook, newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 4
    shutil.rmtree(subs)
