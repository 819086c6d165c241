"""How an exercise is described and graded.

An :class:`ExerciseSpec` names the learner's file and lists :class:`Trial` s. A
trial is one fresh scenario: ``setup(rng)`` builds a workload with random names and
counts and returns a :class:`Scenario` -- what the learner's program is given
(``job``: a command, positional args) and the ground truth that stays in the
grader (``truth``). The learner's program then runs ONCE per trial, in a separate
process with a time limit (see :mod:`.runner`), and every :class:`Check` of the
trial compares what the program reported with the truth.

If the run fails (parse error, verifier error, time limit), each check of that
trial fails with that message; the other trials are still graded. If the kernel
lacks a mechanism a trial needs, its checks are skipped, naming what works here.
"""

from __future__ import annotations

import functools
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .model import CheckResult, ExerciseResult, Outcome, fail

__all__ = ["Check", "ExerciseSpec", "RunFailure", "Scenario", "Trial", "Unsupported", "grade_exercise"]


@dataclass
class Scenario:
    """A freshly made workload: ``job`` goes to the learner's program, ``truth`` does not.

    ``job`` keys: ``command`` (str: what bpftrace runs with ``-c``, or what a
    Python exercise's function receives), ``args`` (bpftrace positional
    parameters), ``call_args`` (Python: positional arguments of the function),
    ``noise`` (argv of a background process that runs during the probe, so a
    missing filter shows). ``cleanup`` runs after grading the trial.
    """

    job: dict[str, Any]
    truth: dict[str, Any]
    cleanup: Callable[[], None] | None = None


@dataclass
class Check:
    """One graded property. ``fn(output, truth) -> Outcome``."""

    name: str
    points: float
    fn: Callable[[Any, dict], Outcome]
    hidden: bool = False


@dataclass
class Trial:
    setup: Callable[[random.Random, Path], Scenario]
    checks: list[Check]
    needs: tuple[str, ...] = ("tracepoint",)
    timeout: float = 20.0


@dataclass
class ExerciseSpec:
    """One exercise: id (``02.3``), title, file name inside its chapter folder."""

    id: str
    title: str
    chapter: str
    filename: str
    trials: list[Trial]
    function: str | None = None  # Python exercises: the function the grader calls
    variant: str = ""  # for a skipped check: the variant that works on this kernel

    @property
    def kind(self) -> str:
        return "py" if self.filename.endswith(".py") else "bt"

    def relpath(self) -> str:
        return f"{self.chapter}/{self.filename}"


class RunFailure(Exception):
    """The learner's program did not produce output: the message is for the learner."""


class Unsupported(RunFailure):
    """The run found that the kernel lacks ``feature`` (a NotSupportedError): skip, do not fail."""

    def __init__(self, feature: str, message: str = "") -> None:
        self.feature = feature
        super().__init__(message or f"this kernel lacks {feature}")


@functools.lru_cache(maxsize=None)
def _mechanism_missing(name: str) -> str | None:
    """The reason a mechanism is missing, or None if it works or we cannot tell."""
    try:
        from ..doctor import mechanism_status
    except ImportError:
        if name in ("kprobe", "kretprobe"):  # without doctor: the catalog's conclusive check
            try:
                from ..catalog import kprobes_supported
                return None if kprobes_supported() else "the kernel has no kprobe_events (CONFIG_KPROBES unset)"
            except Exception:  # noqa: BLE001
                return None
        return None
    try:
        status, detail = mechanism_status(name)
    except Exception:  # noqa: BLE001 - doctor trouble must not stop grading
        return None
    return (detail or "not supported") if status == "missing" else None


def grade_exercise(
    spec: ExerciseSpec,
    path: Path,
    *,
    run: Callable[[ExerciseSpec, Path, dict, float], Any] | None = None,
    rng: random.Random | None = None,
    progress: Callable[[str], None] | None = None,
    mechanism_missing: Callable[[str], str | None] = _mechanism_missing,
) -> ExerciseResult:
    """Grade the learner's file ``path`` against ``spec``; never raises for the learner's faults.

    ``run(spec, path, job, timeout)`` runs the learner's program once and returns its
    normalized output or raises :class:`RunFailure`; the default runs it in a child
    process (:func:`.runner.run_in_child`).
    """
    from .runner import run_in_child

    run = run or run_in_child
    rng = rng or random.Random()
    result = ExerciseResult(spec.id, spec.title, str(path))
    hidden_n = 0
    number = 0
    for trial in spec.trials:
        missing = [(m, why) for m in trial.needs if (why := mechanism_missing(m))]
        output: Any = None
        failure = ""
        scenario = None
        tmp = Path(tempfile.mkdtemp(prefix="ebpf-lab-grade-"))
        try:
            if not missing:
                try:
                    scenario = trial.setup(rng, tmp)
                    output = run(spec, path, scenario.job, trial.timeout)
                except Unsupported as exc:
                    # doctor could not tell beforehand; the kernel said so conclusively
                    missing = [(exc.feature, str(exc))]
                except RunFailure as exc:
                    failure = str(exc)
            for check in trial.checks:
                number += 1
                if check.hidden:
                    hidden_n += 1
                cr = CheckResult(name=check.name, points=check.points, score=0.0, status="failed",
                                 hidden=check.hidden, hidden_number=hidden_n if check.hidden else 0,
                                 number=f"{spec.id}.{number}")
                if missing:
                    names = ", ".join(m for m, _ in missing)
                    cr.status = "skipped"
                    cr.message = f"skipped: needs {names}, which this kernel lacks"
                    if spec.variant:
                        cr.message += f"; the variant that works here is {spec.variant}"
                elif failure:
                    cr.message = failure
                else:
                    try:
                        outcome = check.fn(output, scenario.truth)
                    except RunFailure as exc:  # a check's own "not there" message
                        outcome = fail(str(exc))
                    except Exception as exc:  # noqa: BLE001 - odd output is the learner's, not a crash
                        outcome = fail(f"your program's output could not be read: {type(exc).__name__}: {exc}")
                    frac = max(0.0, min(1.0, float(outcome.fraction)))
                    cr.score = round(check.points * frac, 2)
                    cr.status = "passed" if frac == 1.0 else ("partial" if frac > 0 else "failed")
                    cr.message = outcome.message
                result.checks.append(cr)
                if progress:
                    v = cr.public_view()
                    progress(f"{spec.id} {v['name']}: {v['status']}")
        finally:
            if scenario is not None and scenario.cleanup:
                try:
                    scenario.cleanup()
                except Exception:  # noqa: BLE001
                    pass
            shutil.rmtree(tmp, ignore_errors=True)
    return result
