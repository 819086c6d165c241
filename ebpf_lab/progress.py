"""One progress display for long runs, in a notebook and in a terminal.

A tracing run with a duration, a grading run over many exercises or a whole
class: each shows how far it got. In JupyterLab that is an ipywidgets bar with
a line of text; in a terminal a bar redrawn in place on stderr (or, when stderr
is not a terminal -- a CI log -- a plain line per step that says something new,
at most one every ``LOG_EVERY`` seconds otherwise)::

    >>> from ebpf_lab.progress import Progress
    >>> with Progress(total=3, desc="grading") as bar:      # doctest: +SKIP
    ...     for ex in ["01.1", "01.2", "01.3"]:
    ...         bar.update(1, note=ex)

    >>> with timed(5, desc="tracing"):                       # doctest: +SKIP
    ...     run_for_five_seconds()

``Progress.line`` is a ``progress(text)`` callback, the shape the grader's
``grade(progress=...)`` takes. Nothing here touches the kernel.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import IO

__all__ = ["Progress", "for_duration", "in_notebook", "text_bar", "timed"]

BAR_WIDTH = 30
LOG_EVERY = 10.0    # seconds between progress lines in a log when nothing new happened
SHOW_FROM = 2.0     # runs shorter than this (seconds) show no progress


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where widgets can be shown)."""
    try:
        from IPython import get_ipython  # noqa: PLC0415
    except ImportError:  # pragma: no cover - IPython is a dependency
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def text_bar(done: float, total: float | None, *, desc: str = "", unit: str = "", note: str = "",
             width: int = 80, elapsed: float | None = None) -> str:
    """One line of text showing progress, at most ``width`` characters.

    >>> text_bar(3, 12, desc="grading", unit="ex", note="01.3")
    'grading [#######.......................]  3/12 ex  25%  01.3'
    """
    unit_txt = f" {unit}" if unit else ""
    if total:
        frac = max(0.0, min(1.0, done / total))
        bar = "#" * int(frac * BAR_WIDTH)
        text = f"{desc} [{bar:.<{BAR_WIDTH}}] {_num(done):>2}/{_num(total)}{unit_txt} {frac:4.0%}"
    else:
        text = f"{desc} {_num(done)}{unit_txt}"
    if elapsed is not None:
        text += f"  {elapsed:.0f}s"
    if note:
        text += f"  {note}"
    text = text.strip()
    return text if len(text) <= width else text[: width - 1] + "…"


def _num(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


class Progress:
    """Progress of a long run: ``update(n, note=...)``, ``close()``; a context manager.

    ``total``: how many steps (or seconds) make 100%, or None when unknown.
    ``mode``: ``"auto"`` (widgets in a notebook, text otherwise), ``"widget"``,
    ``"text"`` or ``"off"``. ``stream``: where the text goes (stderr).
    Safe to update from a background thread.
    """

    def __init__(self, total: float | None = None, *, desc: str = "", unit: str = "", mode: str = "auto",
                 stream: IO[str] | None = None) -> None:
        if mode not in ("auto", "widget", "text", "off"):
            from .errors import UsageError  # noqa: PLC0415

            raise UsageError(f"Progress(mode={mode!r})", next_step="use 'auto', 'widget', 'text' or 'off'")
        if mode == "auto":
            mode = "widget" if in_notebook() else "text"
        self.total = total
        self.desc = desc
        self.unit = unit
        self.mode = mode
        self.done: float = 0
        self.note = ""
        self.started = time.monotonic()
        self.closed = False
        self.lines: list[str] = []       # every plain line written (text mode, not a tty)
        self._stream = stream if stream is not None else sys.stderr
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._lock = threading.Lock()
        self._last_draw = time.monotonic()
        self._last_note = ""
        self.widget = None
        if mode == "widget":
            self._make_widget()
        self._draw(force=True)

    # ------------------------------------------------------------------ widget
    def _make_widget(self) -> None:
        import ipywidgets as w  # noqa: PLC0415
        from IPython.display import display  # noqa: PLC0415

        self._bar = w.FloatProgress(value=0, min=0, max=float(self.total or 1), description=self.desc,
                                    bar_style="info", layout=w.Layout(width="60%"))
        self._label = w.Label(value="")
        self.widget = w.HBox([self._bar, self._label])
        display(self.widget)

    # ------------------------------------------------------------------ updates
    def update(self, n: float = 1, *, note: str = "") -> None:
        """Advance by ``n`` steps; ``note`` says what is being done now."""
        with self._lock:
            self.done += n
            if note:
                self.note = note
            self._draw()

    def set(self, done: float, *, note: str = "") -> None:
        """Set the position (for time-based progress)."""
        with self._lock:
            self.done = done
            if note:
                self.note = note
            self._draw()

    def line(self, text: str) -> None:
        """A ``progress(text)`` callback: show ``text`` as the note (and, in a log, as a line)."""
        with self._lock:
            self.note = text
            if self.mode == "text" and not self._tty:
                self._write(text + "\n")
                self.lines.append(text)
            else:
                self._draw(force=True)

    def text(self) -> str:
        """The progress as one line of text."""
        return text_bar(self.done, self.total, desc=self.desc, unit=self.unit, note=self.note,
                        elapsed=time.monotonic() - self.started)

    def _draw(self, force: bool = False) -> None:
        if self.mode == "off" or self.closed:
            return
        if self.mode == "widget":
            self._bar.value = float(min(self.done, self._bar.max))
            self._label.value = self.text()[len(self.desc):].strip()
            return
        now = time.monotonic()
        if self._tty:
            if force or now - self._last_draw >= 0.1:
                self._write("\r" + self.text().ljust(79)[:79])
                self._last_draw = now
        elif (force or self.note != self._last_note or now - self._last_draw >= LOG_EVERY
              or (self.total and self.done >= self.total)):
            # a log (CI, a file): a line per new step, or every LOG_EVERY seconds, never a flood
            line = self.text()
            if not self.lines or self.lines[-1] != line:
                self._write(line + "\n")
                self.lines.append(line)
            self._last_draw, self._last_note = now, self.note

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):  # a closed stream must not break a probe run
            pass

    def close(self, *, note: str = "") -> None:
        """Finish: the bar shows the final state (green in a notebook)."""
        with self._lock:
            if self.closed:
                return
            if note:
                self.note = note
            if self.mode == "widget":
                self._draw()
                if self._bar.bar_style != "warning":   # an error or a Ctrl-C stays orange
                    self._bar.bar_style = "success"
            elif self.mode == "text":
                if self._tty:
                    self._write("\r" + self.text().ljust(79)[:79] + "\n")
                else:
                    self._draw(force=True)
            self.closed = True

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is not None and self.mode == "widget":
            self._bar.bar_style = "warning"
        self.close(note="stopped" if exc_type is KeyboardInterrupt else "")


class timed:
    """Show progress through ``seconds`` of wall time while a blocking call runs.

    >>> with timed(5, desc="tracing"):        # doctest: +SKIP
    ...     result = ebpf_lab.bpftrace(program, duration=5)

    A background thread moves the bar twice a second; leaving the block
    stops it (an early end, an error or a Ctrl-C included).
    """

    def __init__(self, seconds: float, *, desc: str = "", mode: str = "auto", stream: IO[str] | None = None,
                 tick: float = 0.5) -> None:
        self.seconds = float(seconds)
        self.progress = Progress(total=self.seconds, desc=desc, unit="s", mode=mode, stream=stream)
        self._tick = tick
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ebpf-lab-progress", daemon=True)

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.wait(self._tick):
            self.progress.set(min(self.seconds, round(time.monotonic() - start, 1)))

    def __enter__(self) -> Progress:
        self._thread.start()
        return self.progress

    def __exit__(self, exc_type, *exc) -> None:
        self._stop.set()
        self._thread.join()
        if exc_type is None:
            self.progress.set(self.seconds)
        self.progress.__exit__(exc_type, *exc)


def for_duration(seconds: float | None, *, desc: str):
    """A :class:`timed` display for a run of ``seconds``, or a no-op for short or open-ended runs.

    What ``bpftrace(duration=...)``, ``trace(duration=...)`` and
    ``syscall_counts(duration=...)`` wrap their waiting in.
    """
    import contextlib  # noqa: PLC0415

    if seconds is None or seconds < SHOW_FROM:
        return contextlib.nullcontext()
    return timed(seconds, desc=desc)
