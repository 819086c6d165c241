"""Every solution passes every check; every untouched exercise fails every check
with its learner-facing message, and nothing crashes.

Parametrized over the exercise ids found on disk (the headers of the files in
exercises/), so a new exercise is tested as soon as it exists. Each grading
starts the workloads and bpftrace for real (about 1 s per exercise).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ebpf_lab.grader import exercises
from ebpf_lab.grader.framework import grade_exercise
from ebpf_lab.grader.hints import hints_for
from ebpf_lab.grader.home import read_header

from conftest import require_feature

ROOT = Path(__file__).resolve().parent.parent


def _ids_on_disk() -> list[str]:
    ids = []
    for f in sorted((ROOT / "exercises").glob("*/*")):
        if f.suffix in (".bt", ".py"):
            ids.append(read_header(f).get("id", f.name))
    return ids


IDS = _ids_on_disk()


def _skip_if_kernel_lacks(spec, result) -> None:
    """All checks skipped: they must say why and name the variant; then skip conclusively."""
    if not result.checks or any(c.status != "skipped" for c in result.checks):
        return
    for c in result.checks:
        assert "which this kernel lacks" in c.message, c.message
        if spec.variant:
            assert spec.variant in c.message
    for need in {n for t in spec.trials for n in t.needs}:
        require_feature(need)
    pytest.fail(f"{spec.id}: every check was skipped, but doctor says the kernel has what it needs")


def _file(kind: str, exercise_id: str) -> tuple:
    specs = exercises()
    assert exercise_id in specs, f"{exercise_id} is on disk but the grader has no checks for it"
    spec = specs[exercise_id]
    return spec, ROOT / kind / spec.relpath()


@pytest.mark.unit
def test_every_chapter_has_at_least_six_exercises():
    for chapter in ("01_bpftrace_basics", "02_tracepoints"):
        assert sum(s.chapter == chapter for s in exercises().values()) >= 6
    assert sorted(IDS) == sorted(exercises()), "every spec has a file and every file a spec"


@pytest.mark.unit
@pytest.mark.parametrize("exercise_id", IDS)
def test_files_mirror_and_have_hints(exercise_id):
    spec, path = _file("exercises", exercise_id)
    solution = ROOT / "solutions" / spec.relpath()
    assert path.exists() and solution.exists()
    assert read_header(path) == read_header(solution), "exercise and solution share the header"
    assert 2 <= len(hints_for(path)) <= 3
    needs = {n for t in spec.trials for n in t.needs}
    assert set(n.strip() for n in read_header(path)["needs"].split(",")) == needs


@pytest.mark.exercises
@pytest.mark.usefixtures("no_leaks")
@pytest.mark.parametrize("exercise_id", IDS)
def test_solution_passes_every_check(exercise_id):
    spec, path = _file("solutions", exercise_id)
    result = grade_exercise(spec, path)
    assert result.checks
    _skip_if_kernel_lacks(spec, result)
    bad = [(c.name, c.status, c.message) for c in result.checks if c.status != "passed"]
    assert not bad, f"{exercise_id} solution: {bad}"
    assert result.score == result.max_score > 0


@pytest.mark.exercises
@pytest.mark.usefixtures("no_leaks")
@pytest.mark.parametrize("exercise_id", IDS)
def test_untouched_exercise_fails_every_check_with_a_message(exercise_id):
    spec, path = _file("exercises", exercise_id)
    result = grade_exercise(spec, path)
    assert result.checks and not result.error
    _skip_if_kernel_lacks(spec, result)
    for c in result.checks:
        assert c.status == "failed", (c.name, c.status)
        assert c.message.strip(), f"{c.name}: no message for the learner"
        # a message for the learner, not a crash of the grader
        assert "Traceback" not in c.message and "could not be read" not in c.message
    first = result.checks[0].message
    assert re.search(r"not written yet|expected|printed|opened|failed|started", first), first
    assert result.score == 0
