"""Known workloads: processes that make an exact, known number of syscalls.

Tests, the grader, the benchmark and the notebooks all need activity whose
ground truth is known in advance: "this process, named ``k3xq``, opened
exactly these 23 files". :func:`workload` returns the argv of the lab's small
C program ``labload`` (built from ``workloads/labload.c`` on first use and
cached per source hash), together with what it will do::

    >>> w = workload("open", 23, name="k3xq")          # doctest: +SKIP
    >>> w                 # an argv list: ['/tmp/.../k3xq', 'open', '23', DIR, PREFIX]
    >>> w.expected["paths"][:2]                          # doctest: +SKIP
    ['/tmp/ebpf-lab-wl-.../f7a1-0', '/tmp/ebpf-lab-wl-.../f7a1-1']

``name=`` makes the process's ``comm`` exactly that name (through a symlink to
the binary), so a probe can filter on ``comm == str($1)``. Introduced for the
tests of the foundation issue; used throughout the lessons.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import secrets
import shutil
import string
import subprocess
import tempfile
from pathlib import Path

from ._cache import cache_dir
from .errors import SetupError, UsageError

__all__ = ["KINDS", "Workload", "build_helper", "labload_path", "random_name", "workload"]

_SOURCES = Path(__file__).with_name("workloads")
KINDS = ("open", "open_missing", "getppid", "read", "connect", "fork", "sleep")
_TEMP_DIRS: list[str] = []


def build_helper(name: str) -> Path:
    """Absolute path to one of the lab's C helpers (``labload``, ``labhold``), built on first use.

    Binaries are cached in the lab's cache directory (``_cache.cache_dir``) by a
    hash of their source, so an edited source is rebuilt and concurrent builders
    never clash.
    """
    source = _SOURCES / f"{name}.c"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    target = cache_dir() / f"{name}-{digest}"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise SetupError(f"no C compiler found to build the lab's helper {name}",
                         cause="gcc is not installed", next_step="run `make setup` (it installs gcc)")
    tmp = target.with_name(f".{target.name}.{os.getpid()}")
    proc = subprocess.run([cc, "-O2", "-Wall", "-o", str(tmp), str(source)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SetupError(f"building {name} failed:\n{proc.stderr}", next_step="check that gcc works: `gcc --version`")
    os.replace(tmp, target)  # atomic: concurrent builders never see half a binary
    return target


def labload_path() -> Path:
    """Absolute path to the compiled ``labload`` workload program."""
    return build_helper("labload")


_ALPHABET = string.ascii_lowercase + string.digits


def random_name(length: int = 8, prefix: str = "") -> str:
    """A random lowercase name that starts with a letter (a valid comm and file name)."""
    first = secrets.choice(string.ascii_lowercase)
    return prefix + first + "".join(secrets.choice(_ALPHABET) for _ in range(length - 1))


def _temp_dir(tag: str) -> str:
    path = tempfile.mkdtemp(prefix=f"ebpf-lab-{tag}-")
    _TEMP_DIRS.append(path)
    return path


@atexit.register
def _remove_temp_dirs() -> None:
    for path in _TEMP_DIRS:
        shutil.rmtree(path, ignore_errors=True)


class Workload(list):
    """An argv (a plain list, so any runner accepts it) plus the ground truth.

    ``expected`` holds what the workload will do: ``comm``, ``count`` and
    kind-specific facts (``paths`` for opens, ``size`` for reads, ``port``).
    """

    def __init__(self, argv: list[str], kind: str, expected: dict):
        super().__init__(argv)
        self.kind = kind
        self.expected = expected

    @property
    def comm(self) -> str:
        return self.expected["comm"]

    def run(self, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run it to completion untraced; returns the CompletedProcess (stdout as text)."""
        return subprocess.run(list(self), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, check=True)


def workload(kind: str, n: int, *, name: str | None = None, wait_stdin: bool = False, **opts) -> Workload:
    """The argv of a workload of ``kind`` making ``n`` operations.

    kinds: ``open`` (create+open+close ``n`` files with random names in a fresh
    temp dir; opts ``dir``, ``prefix``), ``open_missing`` (``n`` failed opens,
    ENOENT), ``getppid`` (``n`` getppid() calls; prints ``ns_per_syscall=``),
    ``read`` (``n`` reads of ``size`` bytes from /dev/zero, default 4096),
    ``connect`` (``n`` TCP connects to 127.0.0.1:``port``), ``fork`` (``n``
    children that exit at once), ``sleep`` (``n`` milliseconds).
    """
    if kind not in KINDS:
        raise UsageError(f"unknown workload kind {kind!r}", next_step=f"use one of {', '.join(KINDS)}")
    if n < 0:
        raise UsageError("a workload's count must be >= 0")
    binary = labload_path()
    prog = str(binary)
    comm = binary.name[:15]
    if name is not None:
        if "/" in name or not name:
            raise UsageError(f"bad workload name {name!r}", next_step="use letters, digits, '-' or '_'")
        link = Path(_temp_dir("bin")) / name
        link.symlink_to(binary)
        prog, comm = str(link), name[:15]
    argv = [prog] + (["-w"] if wait_stdin else []) + [kind, str(n)]
    expected: dict = {"comm": comm, "count": n}
    if kind in ("open", "open_missing"):
        directory = opts.pop("dir", None) or _temp_dir("wl")
        prefix = opts.pop("prefix", None) or random_name(6)
        argv += [directory, prefix]
        expected["paths"] = [f"{directory}/{prefix}-{i}" for i in range(n)]
        expected["dir"], expected["prefix"] = directory, prefix
    elif kind == "read":
        size = int(opts.pop("size", 4096))
        argv.append(str(size))
        expected["size"] = size
    elif kind == "connect":
        port = int(opts.pop("port"))
        argv.append(str(port))
        expected["port"] = port
    if opts:
        raise UsageError(f"unexpected options for workload {kind!r}: {sorted(opts)}")
    return Workload(argv, kind, expected)
