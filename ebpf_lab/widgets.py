"""Live views and a probe picker for JupyterLab (ipywidgets).

**Live syscall counts.** :func:`live_syscalls` loads the same kernel program
as :func:`ebpf_lab.syscall_counts` (a per-CPU array indexed by syscall number,
text from :func:`ebpf_lab.aggregate.counts_program`), then returns at once: a
background thread reads the array about once a second and redraws a chart of
syscalls per second and a top-N table. The cell is free, so the **Stop** button
works; stopping (or the command exiting, or the duration passing) detaches the
program, reads the totals one last time and keeps them::

    view = ebpf_lab.widgets.live_syscalls(command="/usr/bin/find /usr -name '*.h'")
    view                       # the live widgets: chart, table, Stop
    view.wait()                # in a later cell: block until it ended
    view.result                # the same DataFrame as syscall_counts(): syscall, count, errors

**Probe picker.** :class:`ProbePicker` browses the catalog
(:func:`ebpf_lab.list_probes`, :func:`ebpf_lab.describe`) and writes the code of
a ``%%bpftrace`` cell or a ``trace()`` call for the chosen probe and fields::

    picker = ebpf_lab.widgets.ProbePicker("tracepoint:syscalls:sys_enter_open*")
    picker                     # choose a probe and fields; the code appears below
    picker.insert()            # in a cell: the code becomes the next cell

JupyterLab honours "put this in the next cell" (``set_next_input``) only in
the reply to a cell's execution, not from a button click (a widget message);
so the insertion is ``picker.insert()``, run in a cell (tests/test_browser.py
checks it in JupyterLab).

Introduced in notebook 02 (syscall activity).
"""

from __future__ import annotations

import html
import io
import threading
import time
from typing import Sequence

from .errors import UsageError

__all__ = ["LiveSyscalls", "ProbePicker", "code_for", "live_syscalls", "rates", "top_table_html"]

PROBE = "tracepoint:raw_syscalls:sys_exit"


# --------------------------------------------------------------------------- pure helpers

def rates(history: Sequence[tuple[float, dict[str, int]]], top: int = 5):
    """Syscalls per second between successive snapshots of cumulative counts.

    ``history``: ``(elapsed seconds, {syscall: count so far})`` pairs, oldest
    first. Returns a DataFrame indexed by ``time_s`` (end of each interval)
    with one column per syscall of the ``top`` busiest plus ``total``, in
    calls per second (float64). Pure: unit-tested without a kernel.
    """
    import pandas as pd  # noqa: PLC0415

    if len(history) < 2:
        return pd.DataFrame({"total": pd.Series(dtype="float64")}, index=pd.Index([], name="time_s", dtype="float64"))
    last = history[-1][1]
    busiest = [name for name, _ in sorted(last.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]
    rows, index = [], []
    for (t0, c0), (t1, c1) in zip(history, history[1:]):
        dt = t1 - t0
        if dt <= 0:
            continue
        row = {name: (c1.get(name, 0) - c0.get(name, 0)) / dt for name in busiest}
        row["total"] = (sum(c1.values()) - sum(c0.values())) / dt
        rows.append(row)
        index.append(t1)
    df = pd.DataFrame(rows, index=pd.Index(index, name="time_s", dtype="float64"),
                      columns=[*busiest, "total"], dtype="float64")
    return df


def top_table_html(counts, n: int = 10, *, caption: str = "") -> str:
    """An HTML table of the ``n`` busiest rows of a ``syscall, count, errors`` frame."""
    rows = counts.head(n)
    body = "".join(
        f"<tr><td style='text-align:left'>{html.escape(str(r.syscall))}</td>"
        f"<td>{int(r.count):,}</td><td>{int(r.errors):,}</td></tr>" for r in rows.itertuples())
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return ("<table class='ebpf-lab-top'>" + cap +
            "<tr><th>syscall</th><th>calls</th><th>errors</th></tr>" + body + "</table>")


def _frame(totals: dict[int, tuple[int, int]]):
    import pandas as pd  # noqa: PLC0415

    from .syscalls import syscall_name  # noqa: PLC0415

    data = [(syscall_name(nr), c, e) for nr, (c, e) in totals.items() if c]
    df = pd.DataFrame(data, columns=["syscall", "count", "errors"])
    df["count"] = df["count"].astype("int64")
    df["errors"] = df["errors"].astype("int64")
    return df.sort_values(["count", "syscall"], ascending=[False, True], kind="stable").reset_index(drop=True)


def _chart_png(rate_df, *, title: str) -> bytes:
    """A PNG of ``rates()``: one line per syscall, ``total`` dashed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    fig = Figure(figsize=(6.4, 3.2), dpi=80)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if len(rate_df):
        for col in rate_df.columns:
            style = dict(color="black", linestyle="--", linewidth=1.2) if col == "total" else dict(linewidth=1.6)
            ax.plot(rate_df.index, rate_df[col], label=col, **style)
        ax.legend(loc="upper left", fontsize=8, ncol=2)
    else:
        ax.text(0.5, 0.5, "waiting for the first second...", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("time since start (s)")
    ax.set_ylabel("syscalls per second")
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


# --------------------------------------------------------------------------- live view

class LiveSyscalls:
    """A running count of syscalls shown live; see :func:`live_syscalls`.

    Attributes: ``result`` (the final DataFrame, once ``done``), ``history``
    (every snapshot: elapsed seconds and counts by syscall name), ``pid``,
    ``program`` (the C text), ``error`` (an exception raised while running),
    ``stopped`` (the Stop button or :meth:`stop` ended it).
    """

    def __init__(self, *, command=None, pid: int | None = None, duration: float | None = None,
                 top: int = 10, interval: float = 1.0, widgets: bool = True) -> None:
        from .aggregate import _check_target  # noqa: PLC0415

        if interval <= 0:
            raise UsageError(f"interval={interval!r} must be a positive number of seconds")
        self._argv = _check_target(command, pid, duration)
        self.duration = duration
        self.top = int(top)
        self.interval = float(interval)
        self.history: list[tuple[float, dict[str, int]]] = []
        self.result = None
        self.error: BaseException | None = None
        self.stopped = False
        self.pid: int | None = pid
        self.program = ""
        self.output = ""
        self._stop = threading.Event()
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._ui = None
        if widgets:
            self._make_widgets()

    # ------------------------------------------------------------------ widgets
    def _make_widgets(self) -> None:
        import ipywidgets as w  # noqa: PLC0415

        self._status = w.HTML(value="starting...")
        self._button = w.Button(description="Stop", icon="stop", button_style="danger",
                                tooltip="end the run cleanly and keep what was counted")
        self._button.on_click(lambda _b: self.stop())
        self._chart = w.Image(format="png", layout=w.Layout(width="520px"))
        self._table = w.HTML(value="")
        self._ui = w.VBox([w.HBox([self._button, self._status]), w.HBox([self._chart, self._table])])

    @property
    def widget(self):
        """The ipywidgets box (None when made with ``widgets=False``)."""
        return self._ui

    def _ipython_display_(self) -> None:
        from IPython.display import display  # noqa: PLC0415

        if self._ui is not None:
            display(self._ui)
        else:
            display(self.result if self.result is not None else repr(self))

    def __repr__(self) -> str:
        state = "done" if self.done else "running"
        return f"<LiveSyscalls {state} pid={self.pid} snapshots={len(self.history)}>"

    def _redraw(self, df, elapsed: float, final: bool = False) -> None:
        if self._ui is None:
            return
        what = f"pid {self.pid}" if self.pid is not None else "the whole machine"
        if final:
            why = "stopped" if self.stopped else ("error" if self.error else "ended")
            state = f"<b>{why}</b> after {elapsed:.1f} s"
            self._button.disabled = True
        else:
            state = f"<b>running</b> {elapsed:.0f} s" + (f" of {self.duration:g} s" if self.duration else "")
        total = int(df["count"].sum()) if len(df) else 0
        self._status.value = f"{state} &middot; {what} &middot; {total:,} syscalls"
        self._chart.value = _chart_png(rates(self.history, top=5), title=f"syscalls per second, {what}")
        self._table.value = top_table_html(df, self.top, caption=f"top {self.top} by calls")

    # ------------------------------------------------------------------ run
    def start(self) -> "LiveSyscalls":
        """Load and attach (errors are raised here), then poll in a background thread."""
        from ._bcc import load_bcc, require_root  # noqa: PLC0415
        from .aggregate import counts_program  # noqa: PLC0415
        from .codegen import ProbeSpec  # noqa: PLC0415
        from .session import ProbeRun  # noqa: PLC0415
        from .stream import _attach, _pid_alive, load_program  # noqa: PLC0415

        if self._thread is not None:
            raise UsageError("this live view was already started", next_step="make a new one with live_syscalls()")
        if self.pid is not None and not _pid_alive(int(self.pid)):
            raise UsageError(f"there is no process {self.pid}", next_step="check the pid with `ps -p PID`")
        require_root("a live view of syscalls")
        bcc = load_bcc()
        run = ProbeRun()
        try:
            held = None
            if self._argv is not None:
                held = run.hold_capturing(self._argv)
                self.pid = held.pid
            self.program = counts_program(self.pid)
            b, _ = load_program(run, bcc, self.program, probe=PROBE, fn_name="lab_counts")
            _attach(b, bcc, ProbeSpec("tracepoint", "raw_syscalls", "sys_exit"), "lab_counts")
        except BaseException:
            run.close()
            raise
        self._run, self._bpf, self._held = run, b, held
        self._started = time.monotonic()
        if held is not None:
            held.release()
        self._thread = threading.Thread(target=self._loop, name="ebpf-lab-live", daemon=True)
        self._thread.start()
        return self

    def _read(self) -> dict[int, tuple[int, int]]:
        from .aggregate import _array_items  # noqa: PLC0415

        totals = {}
        for k, vals in _array_items(self._bpf.get_table(b"counts")):
            count = sum(int(v.count) for v in vals)
            if count:
                totals[int(k)] = (count, sum(int(v.errors) for v in vals))
        return totals

    def snapshot(self):
        """The counts so far (syscall, count, errors), read from the kernel now."""
        if self.result is not None:
            return self.result
        with self._lock:
            if self._thread is None or self._done.is_set():
                raise UsageError("the live view is not running", next_step="start it with live_syscalls(...)")
            return _frame(self._read())

    def _finished(self) -> bool:
        from .stream import _pid_alive  # noqa: PLC0415

        if self.duration is not None and time.monotonic() - self._started >= self.duration:
            return True
        if self._held is not None:
            return self._held.proc.poll() is not None
        if self.pid is not None and self.duration is None:
            return not _pid_alive(int(self.pid))
        return False

    def _record(self) -> object:
        with self._lock:
            df = _frame(self._read())
        elapsed = time.monotonic() - self._started
        self.history.append((elapsed, dict(zip(df["syscall"], df["count"].astype(int)))))
        return df, elapsed

    def _loop(self) -> None:
        df, elapsed = None, 0.0
        try:
            next_draw = self._started + self.interval
            while not self._stop.is_set() and not self._finished():
                now = time.monotonic()
                if now >= next_draw:
                    df, elapsed = self._record()
                    self._redraw(df, elapsed)
                    next_draw += self.interval
                self._stop.wait(min(0.05, max(0.0, next_draw - time.monotonic())))
            with self._lock:
                self._bpf.detach_tracepoint(tp=b"raw_syscalls:sys_exit")
            df, elapsed = self._record()
            self.result = df
            if self._held is not None:
                self.output = self._held.output()
            df.attrs.update(program=self.program, duration=elapsed, interrupted=self.stopped, pid=self.pid,
                            command=self._argv, output=self.output, probe=PROBE)
        except BaseException as exc:  # noqa: BLE001 - kept on .error, re-raised by wait()
            self.error = exc
        finally:
            self._run.close()
            try:
                if df is not None:
                    self._redraw(df, elapsed, final=True)
            except Exception:  # noqa: BLE001 - drawing must not hide the result
                pass
            self._done.set()

    @property
    def done(self) -> bool:
        """True once the run has ended and everything it loaded is gone."""
        return self._done.is_set()

    def stop(self) -> None:
        """End the run cleanly (what the Stop button does); the counts are kept in ``result``."""
        if not self._done.is_set():
            self.stopped = True
            self._stop.set()

    def wait(self, timeout: float | None = None):
        """Block until the run ends; return ``result``. A Ctrl-C here stops the run and keeps the counts."""
        try:
            if not self._done.wait(timeout):
                raise UsageError(f"the live view is still running after {timeout} s",
                                 next_step="call view.stop(), or wait longer")
        except KeyboardInterrupt:
            self.stop()
            self._done.wait()
        if self.error is not None:
            raise self.error
        return self.result


def live_syscalls(*, command=None, pid: int | None = None, duration: float | None = None, top: int = 10,
                  interval: float = 1.0) -> LiveSyscalls:
    """Count syscalls in the kernel and watch the counts live; returns at once.

    The same targets as :func:`ebpf_lab.syscall_counts`: a ``command`` (started
    held, so nothing is missed; the view ends when it exits), a running
    ``pid``, or the whole machine for ``duration`` seconds (``duration`` also
    limits the other two). Every ``interval`` seconds the chart (syscalls per
    second, the five busiest and the total) and the table (top ``top``) are
    redrawn. The **Stop** button (or ``view.stop()``) ends the run and keeps the
    counts; ``view.wait()`` blocks until the end and returns ``view.result``,
    a DataFrame like ``syscall_counts()``'s (``syscall``, ``count``,
    ``errors``; int64).

    >>> view = live_syscalls(command="/usr/bin/du -s /usr")    # doctest: +SKIP
    >>> view                                                   # doctest: +SKIP
    """
    return LiveSyscalls(command=command, pid=pid, duration=duration, top=top, interval=interval).start()


# --------------------------------------------------------------------------- probe picker

def _field_type(decl: str) -> str:
    return "str" if "char *" in decl.replace("char*", "char *") or "char[" in decl.replace(" ", "") else "int"


def code_for(probe: str, fields: Sequence[str] = (), *, style: str = "bpftrace", decls: dict[str, str] | None = None,
             command: str = "/usr/bin/ls /") -> str:
    """The code of a ``%%bpftrace`` cell or a ``trace()`` call for ``probe`` and ``fields``.

    ``style="bpftrace"``: a cell that prints one tab-separated line per event of
    ``command`` (a ``--columns`` option turns them into a typed DataFrame);
    ``style="trace"``: the same through :func:`ebpf_lab.trace`.
    ``decls`` maps a field to its C declaration (from :func:`ebpf_lab.describe`)
    so strings are printed with ``str()``. Pure.

    >>> print(code_for("tracepoint:syscalls:sys_enter_openat", ["filename"], style="trace"))
    df = ebpf_lab.trace("tracepoint:syscalls:sys_enter_openat", ["pid", "comm", "filename"],
                        command="/usr/bin/ls /")
    df
    """
    decls = decls or {}
    if style == "trace":
        cols = ", ".join(repr(c).replace("'", '"') for c in ["pid", "comm", *fields])
        return (f'df = ebpf_lab.trace("{probe}", [{cols}],\n'
                f'                    command="{command}")\ndf')
    if style != "bpftrace":
        raise UsageError(f"style={style!r}", next_step="use 'bpftrace' (a %%bpftrace cell) or 'trace'")
    fmts, vals, cols = ["%s", "%d"], ["comm", "pid"], ["comm", "pid:int"]
    kind = probe.split(":", 1)[0]
    for f in fields:
        if kind in ("tracepoint", "t") and _field_type(decls.get(f, "")) == "str":
            fmts.append("%s")
            vals.append(f"str(args->{f})")
            cols.append(f)
        else:
            fmts.append("%d")
            vals.append(f"args->{f}" if kind in ("tracepoint", "t") else f)
            cols.append(f"{f}:int")
    fmt = "\\t".join(fmts) + "\\n"
    return (f"%%bpftrace -c '{command}' --columns {','.join(cols)}\n"
            f"{probe}\n"
            f"/pid == cpid/\n"
            f"{{ printf(\"{fmt}\", {', '.join(vals)}); }}")


class ProbePicker:
    """Browse the probe catalog and generate code for the chosen probe.

    A filter box, the list of matching probes, the chosen probe's fields (from
    :func:`ebpf_lab.describe`, tick the ones to record), the kind of code
    (``%%bpftrace`` cell or ``trace()`` call) and the generated code in a text
    box. ``picker.code`` is that text; ``picker.insert()`` (run in a cell) makes
    it the next cell.
    """

    def __init__(self, pattern: str = "tracepoint:syscalls:*", *, command: str = "/usr/bin/ls /") -> None:
        import ipywidgets as w  # noqa: PLC0415

        from .catalog import list_probes  # noqa: PLC0415

        self.pattern = pattern
        self.command = command
        self._all = list(list_probes(pattern)["probe"])
        if not self._all:
            raise UsageError(f"no probe matches {pattern!r}",
                             next_step="try a wider pattern, such as 'tracepoint:syscalls:*'")
        self.filter = w.Text(placeholder="filter, e.g. openat", description="filter")
        self.probes = w.Select(options=self._all[:500], rows=10, description="probe",
                               layout=w.Layout(width="480px"))
        self.fields = w.SelectMultiple(options=[], rows=6, description="fields")
        self.style = w.ToggleButtons(options=[("%%bpftrace cell", "bpftrace"), ("trace() call", "trace")],
                                     value="bpftrace")
        self.text = w.Textarea(rows=6, layout=w.Layout(width="95%"))
        self.hint = w.HTML("<i>run <code>picker.insert()</code> in a cell to make this code the next cell, "
                           "or copy it from the box</i>")
        self.info = w.HTML()
        self._decls: dict[str, str] = {}
        self.filter.observe(self._on_filter, names="value")
        self.probes.observe(self._on_probe, names="value")
        self.fields.observe(self._refresh, names="value")
        self.style.observe(self._refresh, names="value")
        self.widget = w.VBox([self.filter, w.HBox([self.probes, self.fields]), self.style, self.text,
                              w.HBox([self.hint, self.info])])
        self.probes.value = self._all[0]

    def _on_filter(self, change) -> None:
        words = change["new"].split()
        hits = [p for p in self._all if all(wd in p for wd in words)]
        self.probes.options = hits[:500]
        self.info.value = f"{len(hits)} of {len(self._all)} probes" + (" (first 500 shown)" if len(hits) > 500 else "")

    def _on_probe(self, change) -> None:
        from .catalog import describe  # noqa: PLC0415

        probe = change["new"]
        if not probe:
            return
        try:
            d = describe(probe)
        except Exception as exc:  # noqa: BLE001 - show it, keep the picker alive
            self._decls = {}
            self.fields.options = []
            self.info.value = html.escape(str(exc).splitlines()[0])
        else:
            names = [n for n in d["name"] if not str(n).startswith("__")] if "name" in d else []
            self._decls = dict(zip(d["name"], d["decl"])) if "decl" in d else {}
            self.fields.options = names
            self.info.value = html.escape(f"{probe}: {len(names)} fields")
        self._refresh()

    def _refresh(self, _change=None) -> None:
        self.text.value = self.code

    @property
    def code(self) -> str:
        """The generated code for the current choice."""
        if not self.probes.value:
            return ""
        return code_for(self.probes.value, list(self.fields.value), style=self.style.value, decls=self._decls,
                        command=self.command)

    def select(self, probe: str, fields: Sequence[str] = (), style: str = "bpftrace") -> str:
        """Choose a probe, fields and code style from Python (as the widgets would); returns the code."""
        if probe not in self.probes.options:
            self.filter.value = probe.split(":")[-1]
        self.probes.value = probe
        self.fields.value = tuple(fields)
        self.style.value = style
        return self.code

    def insert(self) -> str:
        """Make the generated code the next cell (run this in a cell); returns the code."""
        from IPython import get_ipython  # noqa: PLC0415

        code = self.text.value or self.code
        shell = get_ipython()
        if shell is None:
            raise UsageError("picker.insert() needs IPython or Jupyter",
                             next_step="copy picker.code into your editor instead")
        shell.set_next_input(code)
        return code

    def _ipython_display_(self) -> None:
        from IPython.display import display  # noqa: PLC0415

        display(self.widget)
