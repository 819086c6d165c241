"""What grading produces: one :class:`CheckResult` per check, one :class:`ExerciseResult`
per exercise, and a :class:`GradeReport` for a whole run. Pure: no kernel, no bpftrace.

A check's outcome is a fraction of its points (partial credit) and a message for
the learner. Hidden checks keep their real name and message on the object for the
grader's own use, but every rendering (text, HTML, JSON, Gradescope, Exercism) goes
through :meth:`CheckResult.public_view`, which shows only "hidden check N" and
pass/fail.
"""

from __future__ import annotations

import html
import textwrap
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CheckResult", "ExerciseResult", "GradeReport", "Outcome", "fail", "ok", "partial"]


@dataclass(frozen=True)
class Outcome:
    """The verdict of one check: ``fraction`` of its points (0.0 .. 1.0) and a message."""

    fraction: float
    message: str = ""


def ok(message: str = "") -> Outcome:
    """Full points."""
    return Outcome(1.0, message)


def fail(message: str) -> Outcome:
    """No points; ``message`` says what was expected and what was seen."""
    return Outcome(0.0, message)


def partial(got: int, of: int, message: str) -> Outcome:
    """``got`` out of ``of`` parts right: that share of the points."""
    if of <= 0:
        return Outcome(0.0, message)
    frac = max(0.0, min(1.0, got / of))
    return Outcome(frac, "" if frac == 1.0 else message)


@dataclass
class CheckResult:
    """One check of one exercise.

    ``status`` is ``"passed"``, ``"partial"``, ``"failed"`` or ``"skipped"``.
    Skipped checks (the kernel lacks a mechanism) count neither toward the score
    nor toward the maximum.
    """

    name: str
    points: float
    score: float
    status: str
    message: str = ""
    hidden: bool = False
    hidden_number: int = 0
    number: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def public_view(self) -> dict[str, Any]:
        """What a learner may see: hidden checks reduced to their number and pass/fail."""
        if self.hidden:
            status = self.status if self.status in ("passed", "skipped") else "failed"
            return {
                "name": f"hidden check {self.hidden_number}",
                "number": self.number,
                "points": self.points,
                "score": self.score,
                "status": status,
                "message": "",
                "hidden": True,
            }
        return {
            "name": self.name,
            "number": self.number,
            "points": self.points,
            "score": self.score,
            "status": self.status,
            "message": self.message,
            "hidden": False,
        }


@dataclass
class ExerciseResult:
    """The result of grading one exercise file."""

    id: str
    title: str
    path: str
    checks: list[CheckResult] = field(default_factory=list)
    error: str = ""  # the grader could not grade this exercise at all

    @property
    def score(self) -> float:
        return round(sum(c.score for c in self.checks if c.status != "skipped"), 2)

    @property
    def max_score(self) -> float:
        return round(sum(c.points for c in self.checks if c.status != "skipped"), 2)

    @property
    def skipped(self) -> list[CheckResult]:
        return [c for c in self.checks if c.status == "skipped"]

    @property
    def passed(self) -> bool:
        graded = [c for c in self.checks if c.status != "skipped"]
        return not self.error and bool(graded) and all(c.passed for c in graded)

    def summary(self) -> str:
        """One sentence about the score, including the "only public checks pass" case."""
        if self.error:
            return f"could not be graded: {self.error}"
        graded = [c for c in self.checks if c.status != "skipped"]
        if not graded:
            return "every check was skipped: this kernel lacks what the exercise needs"
        text = f"{_num(self.score)}/{_num(self.max_score)} points"
        public = [c for c in graded if not c.hidden]
        hidden = [c for c in graded if c.hidden]
        if self.passed:
            text += ", all checks passed"
        elif hidden and public and all(c.passed for c in public):
            text += (f": all public checks pass, but {sum(not c.passed for c in hidden)} of "
                     f"{len(hidden)} hidden checks fail (they test the same task on other inputs)")
        if self.skipped:
            text += f" ({len(self.skipped)} skipped)"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "path": self.path,
            "score": self.score,
            "max_score": self.max_score,
            "passed": self.passed,
            "summary": self.summary(),
            "error": self.error,
            "checks": [c.public_view() for c in self.checks],
        }

    def text(self) -> str:
        """Plain text for a terminal (fits 80 columns)."""
        lines = textwrap.wrap(f"{self.id}  {self.title}: {self.summary()}", 80, subsequent_indent="    ",
                              break_long_words=False)
        for c in self.checks:
            v = c.public_view()
            mark = {"passed": "PASS", "partial": "PART", "failed": "FAIL", "skipped": "SKIP"}[v["status"]]
            pts = "" if v["status"] == "skipped" else f" [{_num(v['score'])}/{_num(v['points'])}]"
            lines.extend(textwrap.wrap(f"  {mark} {v['name']}{pts}", 80, subsequent_indent="       ",
                                       break_long_words=False))
            for ln in v["message"].splitlines():
                # bpftrace's source excerpts keep their layout (the ~~~ marks a column)
                if ln.startswith((" ", "\t")) or set(ln.strip()) <= {"~", "^"}:
                    lines.append(f"       {ln}")
                else:
                    lines.extend(textwrap.wrap(ln, 80, initial_indent="       ", subsequent_indent="         ",
                                               break_long_words=False, break_on_hyphens=False) or [""])
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        colour = {"passed": "#1a7f37", "partial": "#9a6700", "failed": "#cf222e", "skipped": "#6e7781"}
        rows = []
        for c in self.checks:
            v = c.public_view()
            pts = "" if v["status"] == "skipped" else f"{_num(v['score'])}/{_num(v['points'])}"
            msg = html.escape(v["message"]).replace("\n", "<br>")
            rows.append(
                f"<tr><td style='color:{colour[v['status']]};font-weight:bold'>{v['status']}</td>"
                f"<td>{html.escape(v['name'])}</td><td>{pts}</td>"
                f"<td style='text-align:left;font-family:monospace'>{msg}</td></tr>")
        head = (f"<b>{html.escape(self.id)} {html.escape(self.title)}</b>: "
                f"{html.escape(self.summary())}")
        return (f"<div>{head}<table><tr><th>status</th><th>check</th><th>points</th>"
                f"<th>message</th></tr>{''.join(rows)}</table></div>")


@dataclass
class GradeReport:
    """Several exercises graded in one run."""

    exercises: list[ExerciseResult] = field(default_factory=list)
    error: str = ""  # the grader itself could not run

    @property
    def score(self) -> float:
        return round(sum(e.score for e in self.exercises), 2)

    @property
    def max_score(self) -> float:
        return round(sum(e.max_score for e in self.exercises), 2)

    def text(self) -> str:
        if self.error:
            return f"grading could not run: {self.error}"
        parts = [e.text() for e in self.exercises]
        parts.append(f"total: {_num(self.score)}/{_num(self.max_score)} points over "
                     f"{len(self.exercises)} exercise(s)")
        return "\n\n".join(parts)

    def __str__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        return "".join(e._repr_html_() for e in self.exercises) + \
            f"<p>total: {_num(self.score)}/{_num(self.max_score)}</p>"


def _num(x: float) -> str:
    return f"{x:g}"
