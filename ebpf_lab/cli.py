"""The ``ebpf-lab`` command line.

::

    ebpf-lab doctor                       what works on this kernel
    ebpf-lab list 'tracepoint:sched:*'    probes matching a pattern
    ebpf-lab describe tracepoint:syscalls:sys_enter_openat
    ebpf-lab run FILE.bt [-c CMD] [-d SECONDS] [ARGS...]
    ebpf-lab grade [ID | CHAPTER | --all] [--solutions] [--format F] [--output PATH]
    ebpf-lab hint ID [--reset]
    ebpf-lab bench ...                    (see ebpf_lab.bench)

Every lab error is printed as its message (what happened, likely cause, next
step) with exit status 2 and no traceback. ``grade`` exits 0 whatever the score.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import textwrap
from pathlib import Path
from typing import Sequence

from .errors import EbpfLabError, SetupError, UsageError

__all__ = ["main"]

WIDTH = 80


def _width() -> int:
    return min(WIDTH, shutil.get_terminal_size((WIDTH, 24)).columns)


def _frame_text(df, *, max_rows: int = 40) -> str:
    """A DataFrame as text that fits the terminal (long cells cut with '...')."""
    import pandas as pd

    if df is None or len(df) == 0:
        return "(empty)"
    shown = df.head(max_rows)
    with pd.option_context("display.width", _width(), "display.max_columns", 20,
                           "display.max_colwidth", 48, "display.max_rows", max_rows + 1):
        text = shown.to_string(index=False)
    w = _width()
    lines = [ln if len(ln) <= w else ln[: w - 3] + "..." for ln in text.splitlines()]
    if len(df) > max_rows:
        lines.append(f"... {len(df) - max_rows} more rows")
    return "\n".join(lines)


# --------------------------------------------------------------------------- subcommands

def _module(name: str):
    """Import ``ebpf_lab.<name>``; a missing module is a SetupError, not a traceback."""
    import importlib

    try:
        return importlib.import_module(f"ebpf_lab.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"ebpf_lab.{name}":
            raise
        raise SetupError(f"this installation of ebpf-lab has no {name} module",
                         cause="the checkout is incomplete or older than this command",
                         next_step="update the checkout (`git pull`) and run `make setup`") from None


def _cmd_doctor(ns: argparse.Namespace) -> int:
    doctor_mod = _module("doctor")
    print(doctor_mod.render_text(doctor_mod.doctor()))
    return 0


def _cmd_list(ns: argparse.Namespace) -> int:
    list_probes = _module("catalog").list_probes

    df = list_probes(ns.pattern)
    if ns.count:
        print(len(df))
        return 0
    w = _width()
    for probe in df["probe"].tolist()[: ns.limit] if ns.limit else df["probe"].tolist():
        print(probe if len(probe) <= w else probe[: w - 3] + "...")
    if ns.limit and len(df) > ns.limit:
        print(f"... {len(df) - ns.limit} more (use --limit 0 to see all)", file=sys.stderr)
    note = df.attrs.get("note") if hasattr(df, "attrs") else None
    if note:
        print(textwrap.fill(f"note: {note}", _width()), file=sys.stderr)
    return 0


def _cmd_describe(ns: argparse.Namespace) -> int:
    describe = _module("catalog").describe

    df = describe(ns.probe)
    for probe, group in df.groupby("probe", sort=False) if len(df) else []:
        print(probe)
        for decl in group["decl"].tolist():
            print(f"    {decl};")
    if not len(df):
        note = df.attrs.get("note", "no arguments are known for this probe")
        print(textwrap.fill(f"{ns.probe}: {note}", _width()))
    return 0


def _cmd_run(ns: argparse.Namespace) -> int:
    bt = _module("bpftrace")
    path = Path(ns.file)
    if not path.exists():
        raise UsageError(f"no such file: {path}", next_step="give the path of a .bt file")
    result = bt.bpftrace(path.read_text(), command=ns.command, args=list(ns.args),
                         duration=ns.duration, timeout=ns.timeout)
    print(render_result(result))
    return 0


def render_result(result) -> str:
    """A :class:`~ebpf_lab.bpftrace.BpftraceResult` as text for an 80-column terminal."""
    from .bpftrace_json import hist_text

    out: list[str] = []
    w = _width()
    lines = list(getattr(result, "lines", []) or [])
    if lines:
        out.append(f"--- printed ({len(lines)} lines)")
        for ln in lines[:200]:
            out.append(ln if len(ln) <= w else ln[: w - 3] + "...")
        if len(lines) > 200:
            out.append(f"... {len(lines) - 200} more lines")
    for name, df in (result.maps or {}).items():
        out.append(f"--- map {name}")
        out.append(_frame_text(df))
    for name, df in (result.hists or {}).items():
        out.append(f"--- histogram {name}")
        out.append(hist_text(df, width=max(20, w - 28)) if len(df) else "(empty)")
    if not out:
        out.append("(the program printed nothing and left no maps)")
    cmd_out = list(getattr(result, "output", []) or [])
    if cmd_out:
        out.append(f"--- output of the command ({len(cmd_out)} lines)")
        out.extend(ln if len(ln) <= w else ln[: w - 3] + "..." for ln in cmd_out[:20])
        if len(cmd_out) > 20:
            out.append(f"... {len(cmd_out) - 20} more lines")
    for warning in list(getattr(result, "warnings", []) or [])[-5:]:
        out.append(f"bpftrace: {warning}"[:w])
    if getattr(result, "lost", 0):
        out.append(f"warning: {result.lost} events were lost")
    return "\n".join(out)


def _cmd_grade(ns: argparse.Namespace) -> int:
    from . import grader
    from .grader.model import GradeReport

    if ns.all and ns.target:
        raise UsageError("give either exercise ids/chapters or --all, not both")
    targets = None if (ns.all or not ns.target) else ns.target
    if ns.submissions:
        # a class: every learner's folder, a CSV gradebook and a results file per learner
        from .grader import classroom

        return classroom.main(["--submissions", ns.submissions, "--out", ns.output or "gradebook",
                               *(["--exercises", *targets] if targets else [])])

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        report = grader.grade(targets, solutions=ns.solutions, progress=progress)
    except EbpfLabError as exc:
        # the grader itself cannot run: still leave a results file that says why
        if ns.output or ns.format != "text":
            report = GradeReport(error=str(exc))
            _emit(report, ns)
        raise
    _emit(report, ns)
    return 0


def _emit(report, ns: argparse.Namespace) -> None:
    from .grader import formats

    if ns.output:
        path = formats.write(report, ns.format, ns.output)
        print(f"results written to {path}", file=sys.stderr)
        if ns.format != "text":
            print(report.text())
    else:
        sys.stdout.write(formats.render(report, ns.format))


def _cmd_hint(ns: argparse.Namespace) -> int:
    from . import grader
    from .grader.hints import next_hint, reset_hints

    if ns.reset:
        if ns.id:
            grader.resolve(ns.id)
        reset_hints(ns.id)
        print(f"hint progress reset for {ns.id or 'every exercise'}")
        return 0
    if not ns.id:
        raise UsageError("which exercise?", next_step="give its id, for example `ebpf-lab hint 02.3`")
    specs = grader.resolve(ns.id)
    if len(specs) != 1:
        raise UsageError(f"{ns.id!r} names {len(specs)} exercises", next_step="give one exercise id, such as 02.3")
    spec = specs[0]
    number, total, text = next_hint(spec.id, grader.exercise_path(spec))
    print(f"{spec.id} {spec.title}: hint {number} of {total}")
    for para in text.split("\n\n"):
        print(textwrap.fill(" ".join(para.split()), _width()) if not para.lstrip().startswith("`") else para)
        print()
    if number == total:
        print("That was the last hint; the notebook of the chapter has a worked example.")
    return 0


def _cmd_bench(rest: list[str]) -> int:
    return int(_module("bench").main(rest) or 0)


# --------------------------------------------------------------------------- parser

def _run_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("file")
    s.add_argument("-c", dest="command", help="command to start and trace (cpid is its pid)")
    s.add_argument("-d", dest="duration", type=float, help="trace for this many seconds")
    s.add_argument("--timeout", type=float, default=None, help="stop after this many seconds")
    s.add_argument("args", nargs="*", help="positional parameters $1, $2, ...")
    s.set_defaults(fn=_cmd_run)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ebpf-lab", description="Learn eBPF with real probes on this kernel.")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")
    sub.required = True

    s = sub.add_parser("doctor", help="what works on this kernel, and what to do about what does not")
    s.set_defaults(fn=_cmd_doctor)

    s = sub.add_parser("list", help="list probes matching a pattern, e.g. 'tracepoint:syscalls:*open*'")
    s.add_argument("pattern", nargs="?", default="tracepoint:*")
    s.add_argument("--limit", type=int, default=0, help="show at most this many (0: all)")
    s.add_argument("--count", action="store_true", help="print only how many match")
    s.set_defaults(fn=_cmd_list)

    s = sub.add_parser("describe", help="the arguments of a probe (args->NAME)")
    s.add_argument("probe")
    s.set_defaults(fn=_cmd_describe)

    s = sub.add_parser("run", help="run a bpftrace file and print its output readably")
    _run_arguments(s)

    s = sub.add_parser("grade", help="grade exercises: an id (02.3), a chapter (02), or --all")
    s.add_argument("target", nargs="*", help="exercise ids or chapters")
    s.add_argument("--all", action="store_true", help="grade every exercise")
    s.add_argument("--solutions", action="store_true", help="grade the reference solutions instead")
    s.add_argument("--format", choices=("text", "json", "gradescope", "exercism"), default="text")
    s.add_argument("--output", help="write the results to this file (with --submissions: a folder)")
    s.add_argument("--submissions", metavar="DIR",
                   help="grade a class: DIR holds one folder per learner (see docs/CLASSROOM.md)")
    s.set_defaults(fn=_cmd_grade)

    s = sub.add_parser("hint", help="show the next hint of an exercise")
    s.add_argument("id", nargs="?")
    s.add_argument("--reset", action="store_true", help="start the hints again (of ID, or of all)")
    s.set_defaults(fn=_cmd_hint)

    sub.add_parser("bench", help="compare tracing overheads (see `ebpf-lab bench --help`)", add_help=False)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ebpf-lab``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "bench":
            return _cmd_bench(argv[1:])
        if argv and argv[0] == "run":
            # options may come after the positional parameters: run F.bt cat -c CMD
            run = argparse.ArgumentParser(prog="ebpf-lab run",
                                          description="run a bpftrace file and print its output readably")
            _run_arguments(run)
            ns = run.parse_intermixed_args(argv[1:])
        else:
            ns = build_parser().parse_args(argv)
        return ns.fn(ns)
    except EbpfLabError as exc:
        print(f"ebpf-lab: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ebpf-lab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
