"""The ``%%bpftrace`` cell magic: write bpftrace in a cell, get DataFrames back.

Load it with ``%load_ext ebpf_lab``, then::

    %%bpftrace -c "/usr/bin/cat /etc/hosts" --columns comm,pid:int,file cat
    tracepoint:syscalls:sys_enter_openat /comm == str($1)/
    { printf("%s\\t%d\\t%s\\n", comm, pid, str(args->filename)); }

The cell runs through :func:`ebpf_lab.bpftrace` (the same function, the same
errors), shows the events table, each map, and each histogram drawn the way
bpftrace prints it, and stores the :class:`~ebpf_lab.bpftrace.BpftraceResult`
in the notebook as ``_bpftrace`` (or the name given with ``-o``).

Options: ``-c/--command CMD``, ``-d/--duration SECONDS``, ``-t/--timeout
SECONDS``, ``-o/--output VAR``, ``--strlen N``, ``--unsafe``, ``-p/--pid PID``,
``--columns a,b:int,c``; words after the options fill ``$1``, ``$2``...
Display: ``--plot`` also draws each histogram with
:func:`ebpf_lab.plots.log2_hist` (``--unit ns`` names what was measured);
``-q/--quiet`` stores the result without showing it. A run with ``-d`` shows a
progress bar while it lasts.
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from .errors import EbpfLabError, UsageError

__all__ = ["load_ipython_extension", "parse_magic_line", "parse_magic_options", "run_cell"]

DEFAULT_OUTPUT = "_bpftrace"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would exit the kernel
        raise UsageError(f"%%bpftrace: {message}", next_step="see the options with %%bpftrace? or "
                         "help(ebpf_lab.magic); for example: %%bpftrace -c '/usr/bin/ls /' -d 5")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="%%bpftrace", add_help=False,
                description="Run the cell's bpftrace program; words after the options fill $1, $2...")
    p.add_argument("-c", "--command", help="command for bpftrace to start (-c); tracing ends when it exits")
    p.add_argument("-d", "--duration", type=float, help="seconds to trace, then stop and print maps")
    p.add_argument("-t", "--timeout", type=float, help="seconds after which the run is stopped (ProbeTimeout)")
    p.add_argument("-o", "--output", default=DEFAULT_OUTPUT, help="variable that receives the result")
    p.add_argument("--strlen", type=int, help="bytes kept of each string (at most 200)")
    p.add_argument("--unsafe", action="store_true", help="allow signal(), system() and friends")
    p.add_argument("-p", "--pid", type=int, help="bpftrace -p PID")
    p.add_argument("--columns", help="tab-separated printf fields as columns: comm,pid:int,file")
    p.add_argument("--plot", action="store_true", help="also draw each histogram as a bar chart")
    p.add_argument("--unit", default="value", help="what the histogram measured, for --plot (ns, bytes...)")
    p.add_argument("-q", "--quiet", action="store_true", help="store the result, show nothing")
    p.add_argument("args", nargs="*", help="values of $1, $2...")
    return p


def parse_magic_line(line: str) -> tuple[dict[str, Any], str]:
    """Parse the ``%%bpftrace`` line into (keyword arguments of :func:`ebpf_lab.bpftrace`, output name).

    >>> parse_magic_line('-d 2 --columns comm,pid:int -o r cat')
    ({'duration': 2.0, 'columns': 'comm,pid:int', 'args': ['cat']}, 'r')
    """
    kwargs, output, _display = parse_magic_options(line)
    return kwargs, output


def parse_magic_options(line: str) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """Like :func:`parse_magic_line`, plus the display options (``plot``, ``unit``, ``quiet``).

    >>> parse_magic_options('--plot --unit ns -d 1')
    ({'duration': 1.0}, '_bpftrace', {'plot': True, 'unit': 'ns', 'quiet': False})
    """
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"%%bpftrace: cannot split the options line ({exc})",
                         next_step="close the quotes around -c's command") from exc
    ns, extra = _parser().parse_known_args(words)
    ns.args = list(ns.args) + extra   # negative numbers and the like are arguments too
    if not ns.output.isidentifier():
        raise UsageError(f"%%bpftrace: -o {ns.output!r} is not a Python variable name")
    kwargs = {k: v for k, v in (("command", ns.command), ("duration", ns.duration), ("timeout", ns.timeout),
                                ("strlen", ns.strlen), ("pid", ns.pid), ("columns", ns.columns)) if v is not None}
    if ns.unsafe:
        kwargs["unsafe"] = True
    if ns.args:
        kwargs["args"] = ns.args
    return kwargs, ns.output, {"plot": ns.plot, "unit": ns.unit, "quiet": ns.quiet}


def _show(result, *, plot: bool = False, unit: str = "value") -> None:
    """Show a result: a one-line summary, the events, each map, each histogram as bpftrace draws it.

    With ``plot``, each histogram is drawn as a figure too (:func:`ebpf_lab.plots.log2_hist`).
    """
    from IPython.display import display

    from .bpftrace_json import hist_text

    print(repr(result))
    if len(result.events):
        display(result.events)
    for name, df in result.maps.items():
        print(f"{name}:")
        display(df)
    for name, df in result.hists.items():
        text = hist_text(df)
        keyed = any(str(c).startswith("key") for c in df.columns)
        print(text if keyed else f"{name}:\n{text}")
        if plot:
            _plot_hist(name, df, unit)
    if result.warnings:
        print("bpftrace said:\n" + "\n".join(result.warnings[-10:]))


def _plot_hist(name: str, df, unit: str) -> None:
    from IPython.display import display

    from .errors import UsageError as _UsageError
    from .plots import log2_hist

    try:
        fig = log2_hist(df, unit=unit, title=f"{name} ({unit})")
    except _UsageError as exc:  # several key columns: say how to draw one
        print(f"--plot: {name} not drawn: {exc}")
        return
    display(fig)   # log2_hist closed it already: shown once, no pile-up


def run_cell(line: str, cell: str, user_ns: dict | None = None):
    """What ``%%bpftrace`` does: run ``cell`` with the options in ``line``, show and store the result.

    On an error the partial result (if any) is stored too, then the error is raised.
    """
    from .bpftrace import run

    from .progress import timed

    kwargs, output, shown = parse_magic_options(line)
    ns = user_ns if user_ns is not None else {}
    try:
        if kwargs.get("duration") and not shown["quiet"]:
            with timed(kwargs["duration"], desc="bpftrace"):
                result = run(cell, **kwargs)
        else:
            result = run(cell, **kwargs)
    except EbpfLabError as exc:
        if exc.result is not None:
            ns[output] = exc.result
        raise
    ns[output] = result
    if not shown["quiet"]:
        _show(result, plot=shown["plot"], unit=shown["unit"])
    return result


def load_ipython_extension(ipython) -> None:
    """Register ``%%bpftrace`` (called by ``%load_ext ebpf_lab``)."""

    def bpftrace_magic(line: str, cell: str) -> None:
        run_cell(line, cell, ipython.user_ns)

    bpftrace_magic.__doc__ = __doc__ + "\n" + _parser().format_help()
    ipython.register_magic_function(bpftrace_magic, magic_kind="cell", magic_name="bpftrace")
