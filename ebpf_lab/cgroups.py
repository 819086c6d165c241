"""Cgroups the lab creates, so that anything changing kernel behaviour stays scoped.

A :class:`LabCgroup` is a fresh cgroup v2 directory named ``ebpf-lab-<pid>-<random>``
under the cgroup2 mount. The lab moves only processes it started into it, and
removes it on close: every process still inside is killed and the directory is
removed. A *watchdog* (a tiny separate process in its own session) does the same
if the Python process that made the cgroup dies without closing it -- a killed
notebook kernel, say -- so nothing the lab created outlives it.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from .errors import NotSupportedError, SetupError

__all__ = ["LabCgroup", "cgroup2_mount", "remove_cgroup"]

PREFIX = "ebpf-lab-"


def cgroup2_mount(mounts_text: str | None = None) -> Path:
    """Where the unified (v2) cgroup hierarchy is mounted (``/sys/fs/cgroup`` or ``.../unified``)."""
    if mounts_text is None:
        mounts_text = Path("/proc/mounts").read_text()
    for line in mounts_text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] == "cgroup2":
            return Path(parts[1])
    raise NotSupportedError(
        "no cgroup v2 hierarchy is mounted", feature="cgroup v2",
        cause="cgroup socket hooks attach to a cgroup v2 directory",
        next_step="mount one: `mkdir -p /sys/fs/cgroup/unified && mount -t cgroup2 none /sys/fs/cgroup/unified`",
    )


def _procs(path: Path) -> list[int]:
    try:
        return [int(x) for x in (path / "cgroup.procs").read_text().split()]
    except FileNotFoundError:
        return []


def remove_cgroup(path: Path, *, timeout: float = 5.0) -> None:
    """Kill every process in the cgroup ``path`` and remove the directory."""
    deadline = time.monotonic() + timeout
    while path.exists():
        pids = _procs(path)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SetupError(f"could not remove the lab's cgroup {path}: processes {pids} remain",
                                 next_step=f"kill them, then `rmdir {path}`") from None
            time.sleep(0.02)


class LabCgroup:
    """A fresh cgroup v2 directory owned by this process (a context manager)."""

    def __init__(self, *, watchdog: bool = True) -> None:
        self.path = cgroup2_mount() / f"{PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        try:
            self.path.mkdir()
        except PermissionError:
            raise SetupError(f"cannot create a cgroup at {self.path}", cause="not root",
                             next_step="run the lab as root") from None
        self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        self._watchdog: subprocess.Popen | None = None
        if watchdog:
            # the watchdog reads its stdin until EOF, which comes when we exit for any reason
            self._watchdog = subprocess.Popen(
                [sys.executable, "-m", "ebpf_lab.cgroups", str(self.path)],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True, close_fds=True,
            )

    def add(self, pid: int) -> None:
        """Move process ``pid`` (one the lab started) into this cgroup."""
        (self.path / "cgroup.procs").write_text(str(pid))

    @property
    def pids(self) -> list[int]:
        return _procs(self.path)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        remove_cgroup(self.path)
        if self._watchdog is not None:
            self._watchdog.stdin.close()
            try:
                self._watchdog.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._watchdog.kill()
                self._watchdog.wait()
            self._watchdog = None

    def __enter__(self) -> "LabCgroup":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _watch(path: str) -> None:
    """Watchdog body: wait for the owner to go away, then remove its cgroup."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        remove_cgroup(Path(path), timeout=30)


if __name__ == "__main__":
    _watch(sys.argv[1])
