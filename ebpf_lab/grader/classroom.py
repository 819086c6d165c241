"""Grade a whole class: a folder of learners' submissions -> a CSV gradebook.

Layout of the submissions folder (each learner's folder mirrors the lab's own
``exercises/``; a learner hands in only the files they worked on)::

    submissions/
        alice/exercises/01_bpftrace_basics/01.1_count_per_process.bt
        alice/exercises/02_tracepoints/02.2_syscall_by_number.py
        bob/exercises/01_bpftrace_basics/01.1_count_per_process.bt

Each learner's files are graded by :func:`ebpf_lab.grader.grade` -- the same
function as ``ebpf-lab grade`` -- with ``home`` set to the learner's folder, so
every learner's probe is run against its own fresh random workload. Written to
``--out``:

- ``gradebook.csv``: one row per learner and exercise: ``learner``,
  ``exercise``, ``title``, ``score``, ``max_score``, ``status`` (``passed``,
  ``partial``, ``failed``, ``skipped``, ``error``, ``missing``), ``summary``;
- ``learners/<learner>.txt`` and ``learners/<learner>.json``: each learner's
  full report (hidden checks anonymised, as the learner would see them).

From a terminal::

    python -m ebpf_lab.grader.classroom --submissions submissions/ --out gradebook/ --exercises 01 02.3

Learners' submissions run as root (eBPF needs it): grade on a machine set
aside for it, never on a shared server. See docs/CLASSROOM.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ..errors import EbpfLabError, UsageError

__all__ = ["COLUMNS", "ClassResult", "find_learners", "grade_class", "main", "spec_points"]

COLUMNS = ["learner", "exercise", "title", "score", "max_score", "status", "summary"]
_LEARNER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def find_learners(submissions: str | Path) -> list[str]:
    """The learners of a submissions folder: its sub-folders that hold ``exercises/``, sorted.

    Raises :class:`UsageError` when the folder does not exist or holds no learner.
    """
    root = Path(submissions)
    if not root.is_dir():
        raise UsageError(f"submissions folder {root} does not exist",
                         next_step="give the folder that holds one folder per learner: --submissions DIR")
    learners = sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "exercises").is_dir())
    if not learners:
        raise UsageError(f"{root} holds no learner folder with an exercises/ folder inside",
                         cause="each learner's files must sit in <learner>/exercises/<chapter>/<file>, "
                               "mirroring the lab's exercises/",
                         next_step=f"lay it out as {root}/alice/exercises/01_bpftrace_basics/01.1_...bt")
    bad = [n for n in learners if not _LEARNER_RE.match(n)]
    if bad:
        raise UsageError(f"learner folder names {bad} are not plain names",
                         next_step="rename them to letters, digits, '.', '_', '@' or '-' (they name result files)")
    return learners


def spec_points(spec) -> float:
    """The points an exercise is worth when every check runs (a missing file scores 0 of these)."""
    return round(sum(c.points for t in spec.trials for c in t.checks), 2)


def _status(result) -> str:
    if result.error:
        return "error"
    graded = [c for c in result.checks if c.status != "skipped"]
    if not graded:
        return "skipped"
    if result.passed:
        return "passed"
    return "partial" if result.score > 0 else "failed"


@dataclass
class ClassResult:
    """What :func:`grade_class` produced: the rows of the gradebook and where the files are."""

    rows: list[dict] = field(default_factory=list)
    gradebook: Path | None = None
    reports: dict[str, Path] = field(default_factory=dict)   # learner -> text report

    def frame(self):
        """The gradebook as a DataFrame (score and max_score float64)."""
        import pandas as pd  # noqa: PLC0415

        df = pd.DataFrame(self.rows, columns=COLUMNS)
        return df.astype({"score": "float64", "max_score": "float64"})

    def pivot(self):
        """One row per learner, one column per exercise (its score), then ``total`` and ``max``."""
        df = self.frame()
        table = df.pivot(index="learner", columns="exercise", values="score")
        table.columns.name = None
        sums = df.groupby("learner")[["score", "max_score"]].sum()
        return table.assign(total=sums["score"], max=sums["max_score"])

    def _repr_html_(self) -> str:
        where = f"<p>gradebook: <code>{self.gradebook}</code></p>" if self.gradebook else ""
        return self.pivot().to_html() + where

    def totals(self) -> dict[str, tuple[float, float]]:
        """learner -> (score, max_score) over every graded exercise."""
        out: dict[str, tuple[float, float]] = {}
        for r in self.rows:
            s, m = out.get(r["learner"], (0.0, 0.0))
            out[r["learner"]] = (round(s + r["score"], 2), round(m + r["max_score"], 2))
        return out


def grade_class(submissions: str | Path, out: str | Path, exercises: Sequence[str] | None = None, *,
                seed: int | None = None, progress: Callable[[str], None] | None = None,
                show_progress: str = "auto") -> ClassResult:
    """Grade every learner of ``submissions`` on ``exercises`` (ids or chapters; None: all).

    Writes ``gradebook.csv`` and ``learners/<learner>.{txt,json}`` under ``out``
    and returns a :class:`ClassResult`. A learner's mistake never stops the run
    (it becomes a row's ``status``); an :class:`~ebpf_lab.errors.EbpfLabError`
    is raised only when the grader cannot run at all (not root, no bpftrace).
    ``progress`` receives one line per graded exercise; ``show_progress`` is
    the :class:`~ebpf_lab.progress.Progress` mode (a bar in a notebook, a line
    per step in a log).
    """
    from ..progress import Progress  # noqa: PLC0415
    from . import exercise_path, grade, resolve  # noqa: PLC0415
    from .formats import to_json  # noqa: PLC0415
    from .model import GradeReport  # noqa: PLC0415

    root = Path(submissions).resolve()      # the grader's child process runs elsewhere
    learners = find_learners(root)
    specs = resolve(list(exercises) if exercises else None)
    out_dir = Path(out)
    (out_dir / "learners").mkdir(parents=True, exist_ok=True)
    result = ClassResult()
    bar = Progress(total=len(learners) * len(specs), desc="class", unit="ex", mode=show_progress)
    with bar:
        for n, learner in enumerate(learners):
            home = root / learner
            report = GradeReport()
            for spec in specs:
                path = exercise_path(spec, home=home)
                if not path.exists():
                    row = dict(learner=learner, exercise=spec.id, title=spec.title, score=0.0,
                               max_score=spec_points(spec), status="missing",
                               summary=f"not handed in ({spec.relpath()})")
                else:
                    # each learner gets workloads of their own; a seed makes the whole run repeatable
                    one = grade([spec.id], home=home, seed=None if seed is None else seed + n)
                    ex = one.exercises[0]
                    report.exercises.append(ex)
                    row = dict(learner=learner, exercise=spec.id, title=spec.title, score=ex.score,
                               max_score=ex.max_score, status=_status(ex), summary=ex.summary())
                result.rows.append(row)
                line = f"{learner} {spec.id}: {row['status']} {row['score']:g}/{row['max_score']:g}"
                bar.update(1, note=line)
                if progress:
                    progress(line)
            text_path = out_dir / "learners" / f"{learner}.txt"
            text_path.write_text(report.text() + "\n")
            (out_dir / "learners" / f"{learner}.json").write_text(json.dumps(to_json(report), indent=2) + "\n")
            result.reports[learner] = text_path
    result.gradebook = _write_csv(out_dir / "gradebook.csv", result.rows)
    return result


def _write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        for r in rows:
            writer.writerow({**r, "score": f"{r['score']:g}", "max_score": f"{r['max_score']:g}"})
    return path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ebpf-lab classroom",
        description="Grade every learner's submissions into a CSV gradebook and one report per learner.")
    p.add_argument("--submissions", required=True, metavar="DIR",
                   help="folder with one folder per learner, each holding exercises/<chapter>/<file>")
    p.add_argument("--out", required=True, metavar="DIR", help="where gradebook.csv and learners/ are written")
    p.add_argument("--exercises", nargs="+", metavar="ID", help="ids (02.3) or chapters (02); default: all")
    p.add_argument("--seed", type=int, help="make the random workloads repeatable")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: 0 when every learner was graded (whatever the scores), 1 when grading
    could not run, 2 for a usage mistake. Prints each learner's total at the end."""
    parser = _parser()
    try:
        ns = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        res = grade_class(ns.submissions, ns.out, ns.exercises, seed=ns.seed)
    except UsageError as exc:
        print(f"ebpf-lab classroom: {exc}", file=sys.stderr)
        return 2
    except EbpfLabError as exc:
        print(f"ebpf-lab classroom: grading could not run: {exc}", file=sys.stderr)
        return 1
    width = max(len(n) for n in res.totals())
    for learner, (score, max_score) in res.totals().items():
        print(f"{learner:<{width}}  {score:g}/{max_score:g}")
    print(f"gradebook: {res.gradebook}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
