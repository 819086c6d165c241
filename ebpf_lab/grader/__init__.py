"""The lab's grader: did YOUR probe see what the workload did?

For each exercise the grader creates a fresh workload with random names and
counts, runs your program (a ``.bt`` file through :func:`ebpf_lab.bpftrace`, or
your Python function) in a separate process with a time limit, and compares
what it reported with what the workload really did::

    >>> import ebpf_lab
    >>> ebpf_lab.check("02.3")          # in a notebook: an HTML table   # doctest: +SKIP

From a terminal: ``ebpf-lab grade 02.3``, ``ebpf-lab grade 02``,
``ebpf-lab grade --all --solutions``. See docs/GRADING.md.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Callable, Iterable

from ..errors import EbpfLabError, UsageError
from .framework import ExerciseSpec, grade_exercise
from .home import find_home
from .model import CheckResult, ExerciseResult, GradeReport

__all__ = ["CheckResult", "ExerciseResult", "GradeReport", "check", "exercise_path", "exercises",
           "grade", "resolve"]


def exercises() -> dict[str, ExerciseSpec]:
    """Every graded exercise, by id, in order.

    Each chapter's checks live in a module ``exNN.py`` of this package with a
    ``SPECS`` list; new chapter modules are found by their name.
    """
    import importlib
    import pkgutil
    import re

    specs: list[ExerciseSpec] = []
    for mod in sorted(m.name for m in pkgutil.iter_modules(__path__) if re.fullmatch(r"ex\d\d", m.name)):
        specs.extend(importlib.import_module(f"{__name__}.{mod}").SPECS)
    return {s.id: s for s in sorted(specs, key=lambda s: tuple(int(x) for x in s.id.split(".")))}


def resolve(targets: Iterable[str] | str | None) -> list[ExerciseSpec]:
    """Exercises named by ids (``02.3``), chapters (``02``, ``02_tracepoints``), or all (None)."""
    specs = exercises()
    if targets is None:
        return list(specs.values())
    if isinstance(targets, str):
        targets = [targets]
    chosen: list[ExerciseSpec] = []
    for t in targets:
        t = t.strip().rstrip("/")
        if t in specs:
            hit = [specs[t]]
        else:
            hit = [s for s in specs.values() if s.chapter == t or s.chapter.split("_")[0] == t
                   or Path(t).name in (s.filename, Path(s.filename).stem)]
        if not hit:
            raise UsageError(f"no exercise or chapter named {t!r}",
                             next_step="use an id such as 02.3 or a chapter such as 02; "
                                       f"known ids: {', '.join(specs)}")
        chosen.extend(s for s in hit if s not in chosen)
    return chosen


def exercise_path(spec: ExerciseSpec, *, solutions: bool = False, home: Path | None = None) -> Path:
    """The learner's file (or the reference solution) for ``spec``."""
    home = home or find_home()
    return home / ("solutions" if solutions else "exercises") / spec.relpath()


def grade(
    targets: Iterable[str] | str | None = None,
    *,
    solutions: bool = False,
    home: Path | None = None,
    progress: Callable[[str], None] | None = None,
    seed: int | None = None,
) -> GradeReport:
    """Grade exercises; never raises for a learner's mistake.

    ``targets``: ids, chapters, or None for all. ``solutions=True`` grades the
    reference answers instead of ``exercises/``. ``progress`` receives one line per
    finished check. Raises :class:`~ebpf_lab.errors.EbpfLabError` only when the
    grader itself cannot run (no exercises folder, unknown id).
    """
    specs = resolve(targets)
    home = home or find_home()
    _ready_to_grade(specs)
    rng = random.Random(seed)
    report = GradeReport()
    for spec in specs:
        path = exercise_path(spec, solutions=solutions, home=home)
        if not path.exists():
            report.exercises.append(ExerciseResult(spec.id, spec.title, str(path),
                                                   error=f"{path} does not exist: restore it with `git checkout -- {path}`"))
            continue
        try:
            report.exercises.append(grade_exercise(spec, path, rng=rng, progress=progress))
        except EbpfLabError:
            raise  # the machine is not ready (no compiler for the workloads, ...): nothing can run
        except Exception as exc:  # noqa: BLE001 - a grader bug must not hide the other results
            report.exercises.append(ExerciseResult(
                spec.id, spec.title, str(path),
                error=f"the grader itself failed ({type(exc).__name__}: {exc}); please report this"))
            if progress:
                progress(f"{spec.id}: the grader failed: {type(exc).__name__}: {exc}")
    return report


def _ready_to_grade(specs: list[ExerciseSpec]) -> None:
    """Raise when no exercise could run at all: no privileges, or no bpftrace for .bt files."""
    import shutil

    from ..errors import BackendMissingError, PrivilegeError
    from ..privileges import missing_capabilities

    missing = missing_capabilities()
    if missing:
        raise PrivilegeError(f"grading runs real probes, and this process lacks {', '.join(missing)}",
                             missing=missing)
    if any(s.kind == "bt" for s in specs) and shutil.which("bpftrace") is None:
        raise BackendMissingError("bpftrace is not installed, so .bt exercises cannot run",
                                  cause="the bpftrace package is missing",
                                  next_step="run `make setup` (it installs bpftrace), or `apt-get install bpftrace`")


def check(exercise_id: str, *, solutions: bool = False) -> ExerciseResult:
    """Grade one exercise from a notebook; the result shows as an HTML table.

    >>> ebpf_lab.check("01.1")        # doctest: +SKIP
    """
    specs = resolve(exercise_id)
    if len(specs) != 1:
        raise UsageError(f"{exercise_id!r} names {len(specs)} exercises",
                         next_step="give one exercise id, such as ebpf_lab.check('02.3')")
    from ..progress import Progress  # noqa: PLC0415

    with Progress(desc=f"grading {specs[0].id}") as bar:
        return grade([specs[0].id], solutions=solutions, progress=bar.line).exercises[0]
