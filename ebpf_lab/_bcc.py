"""Import bcc lazily, with an error that says what to do when it is missing."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from typing import Iterator

from .errors import BackendMissingError, PrivilegeError

__all__ = ["capture_stderr", "compile_quietly", "load_bcc", "load_func_quietly", "require_root"]


def load_bcc():
    """Return the ``bcc`` module from Debian's python3-bpfcc, or raise BackendMissingError."""
    try:
        import bcc  # noqa: PLC0415 - lazy on purpose: pure modules must import without it
    except ImportError as exc:
        raise BackendMissingError(
            f"bcc's Python module cannot be imported ({exc})",
            cause="Debian's python3-bpfcc is not installed, or this Python environment cannot see it",
            next_step="run `make setup` (it installs python3-bpfcc and links it into .venv); "
            "never `pip install bcc`, which is an unrelated project",
        ) from exc
    if not hasattr(bcc, "BPF"):
        raise BackendMissingError(
            "the module named bcc is not the BPF Compiler Collection",
            cause="the unrelated PyPI project 'bcc' is installed",
            next_step="`pip uninstall bcc`, then run `make setup`",
        )
    return bcc


def require_root(what: str = "loading BPF programs") -> None:
    """Raise PrivilegeError unless we hold the capabilities eBPF needs."""
    from .privileges import missing_capabilities

    missing = missing_capabilities()
    if missing:
        raise PrivilegeError(f"{what} needs {', '.join(missing)}, which this process lacks", missing=missing)


@contextlib.contextmanager
def capture_stderr() -> Iterator[list[str]]:
    """Send file descriptor 2 to a temporary file for the duration of the block.

    bcc's C library (clang warnings, ``bpf: Failed to load program``, verifier
    logs) writes to fd 2 directly, so redirecting ``sys.stderr`` is not enough.
    The captured text is appended to the yielded list when the block ends.
    """
    out: list[str] = []
    try:
        sys.stderr.flush()
    except Exception:  # noqa: BLE001 - a closed or odd stderr must not stop us
        pass
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield out
        finally:
            try:
                sys.stderr.flush()
            except Exception:  # noqa: BLE001
                pass
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read().decode("utf-8", "replace"))


def _load_failure(exc: Exception, log: str, text: str, what: str) -> Exception:
    """The lab's error for a bcc failure: not supported, verifier rejection, or compile error."""
    from .errors import NotSupportedError, ProbeError, VerifierError  # noqa: PLC0415

    msg = str(exc)
    if "Failed to load program" in msg + log or "processed " in log:
        if "Operation not permitted" in msg + log and "processed " not in log:
            return NotSupportedError(
                f"the kernel refused to load the program for {what}: {msg}", feature="this program type",
                alternative="a tracepoint",
                cause="we hold the capabilities, so the kernel does not allow this program type "
                      "(bcc's 'Need super-user privileges' hint is misleading here)",
                next_step="see `ebpf-lab doctor` for what works on this kernel",
            )
        return VerifierError(
            f"the kernel's verifier rejected the program for {what}:\n" + VerifierError.tail(log or msg),
            log=log, program=text, stderr=log,
            cause="the program does something the verifier cannot prove safe "
                  "(an unchecked pointer, an unbounded loop, a too-large stack)",
            next_step="read the last lines of the log above; the whole log is on the exception's .log",
        )
    errors = "\n".join(ln for ln in log.splitlines() if "error" in ln) or msg
    return ProbeError(f"bcc could not compile the program for {what}:\n{errors}", program=text, stderr=log,
                      cause="kernel headers missing or mismatched (bcc compiles against "
                            "/lib/modules/$(uname -r)/build), or a C error in the program",
                      next_step="run `ebpf-lab doctor`; the compiler's full output is on .stderr")


def compile_quietly(bcc, text: str, *, what: str = "this probe", **kw):
    """Compile (and auto-load, for bcc's TRACEPOINT_PROBE) a program with stderr captured.

    A verifier rejection becomes :class:`VerifierError` (the whole log kept on
    ``.log``, the last lines in the message); a compile error :class:`ProbeError`
    with clang's messages; a refused program type :class:`NotSupportedError`.
    """
    with capture_stderr() as err:
        try:
            return bcc.BPF(text=text.encode() if isinstance(text, str) else text, **kw)
        except Exception as exc:  # noqa: BLE001 - bcc raises bare Exception
            failed = exc
    raise _load_failure(failed, "".join(err), text, what) from failed


def load_func_quietly(b, fn_name: str, prog_type, *, text: str = "", what: str = "this probe", **kw):
    """``b.load_func`` with stderr captured and failures turned into the lab's errors."""
    with capture_stderr() as err:
        try:
            return b.load_func(fn_name.encode(), prog_type, **kw)
        except Exception as exc:  # noqa: BLE001 - bcc raises bare Exception
            failed = exc
    raise _load_failure(failed, "".join(err), text, what) from failed
