"""The one resource-safe path every probe run takes.

A :class:`ProbeRun` owns everything a run creates: child processes (bpftrace,
the learner's command), BPF objects, cgroups. Whatever happens inside the
``with`` block -- a normal end, an exception, a timeout, a Jupyter interrupt
(``KeyboardInterrupt``) -- ``close()`` runs every cleanup in reverse order,
kills and reaps every child process group, and swallows nothing but its own
cleanup noise. Cleanup runs at interpreter exit too, for runs that were never
closed.

Commands the lab starts for a learner are *held* before ``exec`` so that a
probe filtered to their pid can be attached first and miss nothing:
:func:`spawn_held` returns a :class:`HeldProcess` whose ``release()`` lets it
run (the pid is the same before and after ``exec``).
"""

from __future__ import annotations

import atexit
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import weakref
from typing import Callable, Sequence

from .errors import UsageError

__all__ = ["HeldProcess", "ProbeRun", "kill_process_group", "resolve_command", "spawn_held", "time_scale"]

_LIVE: "weakref.WeakSet[ProbeRun]" = weakref.WeakSet()


def time_scale() -> float:
    """How much slower than usual this machine runs programs: ``EBPF_LAB_TIME_SCALE`` (default 1).

    Under software emulation (the second kernel of ``make test-kernels``) every
    bpftrace start takes tens of seconds; there the time limits stretch with it.
    """
    try:
        scale = float(os.environ.get("EBPF_LAB_TIME_SCALE", "1"))
    except ValueError:
        return 1.0
    return scale if scale > 0 else 1.0


def resolve_command(command: str | Sequence[str]) -> list[str]:
    """Split a command and make its program an absolute path.

    bpftrace's ``-c`` needs an absolute path on Debian (``cat`` matched two
    binaries), and an absolute path makes the process's ``comm`` predictable.
    """
    argv = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
    if not argv:
        raise UsageError("command is empty", next_step="pass a command such as 'cat /etc/hosts'")
    prog = argv[0]
    if os.sep not in prog:
        found = shutil.which(prog)
        if found is None:
            raise UsageError(
                f"command not found: {prog!r}",
                cause="it is not on PATH",
                next_step="give the full path, for example '/usr/bin/cat'",
            )
        prog = found
    argv[0] = os.path.abspath(prog)
    return argv


def kill_process_group(proc: subprocess.Popen, *, grace: float = 2.0) -> None:
    """End a child started with ``start_new_session=True`` and reap it.

    SIGINT first (bpftrace prints its maps and detaches on SIGINT), then
    SIGTERM, then SIGKILL; always waits so no zombie is left.
    """
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 1.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        except PermissionError:
            proc.send_signal(sig)
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL always ends a process
        pass
    # the group may still hold grandchildren the leader left behind
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class HeldProcess:
    """A command started but held just before ``exec`` until :meth:`release`.

    The process is the lab's tiny ``labhold`` program, which waits for one byte
    on a pipe and then execs the command with the same pid; so a probe filtered
    to ``pid`` sees everything from the command's ``execve`` on.
    """

    def __init__(self, argv: list[str], *, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                 env: dict | None = None, cwd: str | None = None) -> None:
        from .workloads import build_helper  # noqa: PLC0415 - workloads is on the same floor

        self.argv = argv
        rfd, wfd = os.pipe()
        self._release_fd = wfd
        try:
            self.proc = subprocess.Popen(
                [str(build_helper("labhold")), str(rfd), *argv], stdin=subprocess.DEVNULL,
                stdout=stdout, stderr=stderr, env=env, cwd=cwd, start_new_session=True, pass_fds=(rfd,),
            )
        except BaseException:
            os.close(wfd)
            raise
        finally:
            os.close(rfd)
        self.pid = self.proc.pid

    output_file = None  # set by ProbeRun.hold_capturing

    def output(self) -> str:
        """What the command printed so far (stdout and stderr), when started by ``hold_capturing``."""
        if self.output_file is None or self.output_file.closed:
            return ""
        self.output_file.seek(0)
        return self.output_file.read().decode("utf-8", "replace")

    def release(self) -> None:
        """Let the held command ``exec`` and run."""
        if self._release_fd is not None:
            os.write(self._release_fd, b"x")
            os.close(self._release_fd)
            self._release_fd = None

    def close(self) -> None:
        if self._release_fd is not None:
            os.close(self._release_fd)  # EOF: labhold exits without running the command
            self._release_fd = None
        kill_process_group(self.proc, grace=0.5)


def spawn_held(command: str | Sequence[str], **kw) -> HeldProcess:
    """Start ``command`` held before ``exec``; see :class:`HeldProcess`."""
    return HeldProcess(resolve_command(command), **kw)


class ProbeRun:
    """Context manager owning every resource of one probe run.

    >>> with ProbeRun() as run:            # doctest: +SKIP
    ...     proc = run.popen(["bpftrace", "-e", "..."])
    ...     run.on_close(bpf.cleanup)
    """

    def __init__(self) -> None:
        self._closers: list[Callable[[], None]] = []
        self._procs: list[subprocess.Popen] = []
        self.started = time.monotonic()
        self.closed = False
        _LIVE.add(self)

    def popen(self, argv: Sequence[str], **kw) -> subprocess.Popen:
        """Start a child in its own process group, owned by this run."""
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw["start_new_session"] = True
        proc = subprocess.Popen(list(argv), **kw)
        self._procs.append(proc)
        return proc

    def hold(self, command: str | Sequence[str], **kw) -> HeldProcess:
        """Start a held command owned by this run (see :func:`spawn_held`)."""
        held = spawn_held(command, **kw)
        self._procs.append(held.proc)
        self.on_close(held.close)
        return held

    def hold_capturing(self, command: str | Sequence[str]) -> HeldProcess:
        """Hold a command whose stdout and stderr go to a temp file; read them with ``held.output()``."""
        out = tempfile.TemporaryFile(mode="w+b")
        self.on_close(out.close)
        held = self.hold(command, stdout=out, stderr=out)
        held.output_file = out
        return held

    def on_close(self, fn: Callable[[], None]) -> None:
        """Register a cleanup; cleanups run in reverse order of registration."""
        self._closers.append(fn)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        # children first (they may hold attachments), then our own objects
        for proc in reversed(self._procs):
            kill_process_group(proc)
        errors = []
        for fn in reversed(self._closers):
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - cleanup must go on
                errors.append(exc)
        self._closers.clear()
        for proc in self._procs:
            for stream in (proc.stdout, proc.stderr):
                if stream is not None and not stream.closed:
                    stream.close()
        _LIVE.discard(self)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def __enter__(self) -> "ProbeRun":
        return self

    def __exit__(self, *exc) -> None:
        # a second Ctrl-C during cleanup must not leave children behind
        old = None
        try:
            old = signal.signal(signal.SIGINT, signal.SIG_IGN)
        except ValueError:  # not the main thread
            pass
        try:
            self.close()
        finally:
            if old is not None:
                signal.signal(signal.SIGINT, old)


@atexit.register
def _close_all() -> None:
    for run in list(_LIVE):
        run.close()
