"""Results files: plain JSON, Gradescope's ``results.json`` and Exercism's version 3.

Every writer goes through :meth:`CheckResult.public_view`, so a hidden check's
name and message never reach a file. A report whose ``error`` is set (the grader
could not run) still produces a valid file that says why.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .model import GradeReport

__all__ = ["FORMATS", "render", "to_exercism", "to_gradescope", "to_json", "write"]

FORMATS = ("text", "json", "gradescope", "exercism")


def to_json(report: GradeReport) -> dict[str, Any]:
    return {
        "score": report.score,
        "max_score": report.max_score,
        "error": report.error,
        "exercises": [e.to_dict() for e in report.exercises],
    }


def to_gradescope(report: GradeReport) -> dict[str, Any]:
    """Gradescope autograder ``results.json``.

    Hidden checks get ``visibility: "hidden"`` (Gradescope never shows them to the
    student, only their points count); they are also anonymized here. Skipped
    checks appear with 0/0 points and their reason.
    """
    if report.error:
        return {"score": 0, "output": f"The grader could not run: {report.error}",
                "visibility": "visible", "stdout_visibility": "hidden", "tests": []}
    tests = []
    for e in report.exercises:
        if e.error:
            tests.append({"name": f"{e.id} {e.title}", "number": e.id, "score": 0, "max_score": 0,
                          "status": "failed", "output": f"could not be graded: {e.error}",
                          "visibility": "visible"})
        for c in e.checks:
            v = c.public_view()
            skipped = v["status"] == "skipped"
            tests.append({
                "name": f"{e.id} {v['name']}",
                "number": v["number"],
                "score": 0 if skipped else v["score"],
                "max_score": 0 if skipped else v["points"],
                "status": "passed" if v["status"] in ("passed", "skipped") else "failed",
                "output": v["message"] if not v["hidden"] else "",
                "visibility": "hidden" if v["hidden"] else "visible",
            })
    return {"score": report.score, "max_score": report.max_score,
            "output": "; ".join(f"{e.id}: {e.summary()}" for e in report.exercises),
            "visibility": "visible", "stdout_visibility": "hidden", "tests": tests}


def to_exercism(report: GradeReport) -> dict[str, Any]:
    """Exercism test-runner interface, version 3.

    ``status`` is ``pass`` (every graded check passed), ``fail``, or ``error``
    (nothing could be graded, with ``message``). Skipped checks are left out of
    ``tests`` (Exercism has no "skipped" status); hidden ones appear anonymized.
    """
    if report.error or not report.exercises or all(e.error for e in report.exercises):
        reason = report.error or "; ".join(f"{e.id}: {e.error}" for e in report.exercises) or "no exercise found"
        return {"version": 3, "status": "error", "message": reason, "tests": []}
    tests = []
    for task_id, e in enumerate(report.exercises, start=1):
        if e.error:
            tests.append({"name": f"{e.id} {e.title}", "status": "error", "message": e.error,
                          "test_code": "", "task_id": task_id})
        for c in e.checks:
            v = c.public_view()
            if v["status"] == "skipped":
                continue
            tests.append({"name": f"{e.id} {v['name']}",
                          "status": "pass" if v["status"] == "passed" else "fail",
                          "message": None if v["status"] == "passed" else (v["message"] or "failed"),
                          "test_code": "" if v["hidden"] else f"ebpf-lab grade {e.id}",
                          "task_id": task_id})
    if not tests:  # every check was skipped: nothing could run on this kernel
        reasons = sorted({c.message for e in report.exercises for c in e.checks if c.message})
        return {"version": 3, "status": "error", "message": "; ".join(reasons) or "no check could run",
                "tests": []}
    status = "pass" if all(t["status"] == "pass" for t in tests) else "fail"
    return {"version": 3, "status": status, "tests": tests}


def render(report: GradeReport, fmt: str) -> str:
    """The report as text in ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "text":
        return report.text() + "\n"
    if fmt == "json":
        return json.dumps(to_json(report), indent=2) + "\n"
    if fmt == "gradescope":
        return json.dumps(to_gradescope(report), indent=2) + "\n"
    if fmt == "exercism":
        return json.dumps(to_exercism(report), indent=2) + "\n"
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def write(report: GradeReport, fmt: str, path: str | Path) -> Path:
    """Write the report to ``path`` (creating folders); returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(render(report, fmt))
    return p
