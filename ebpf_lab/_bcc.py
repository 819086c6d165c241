"""Import bcc lazily, with an error that says what to do when it is missing."""

from __future__ import annotations

import os

from .errors import BackendMissingError, PrivilegeError

__all__ = ["load_bcc", "require_root"]


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


class _CapturedStderr:
    """Send fd 2 to a temp file for a while: bcc prints compiler warnings and verifier logs there."""

    def __enter__(self):
        import tempfile  # noqa: PLC0415
        import sys  # noqa: PLC0415

        sys.stderr.flush()
        self._file = tempfile.TemporaryFile(mode="w+b")
        self._saved = os.dup(2)
        os.dup2(self._file.fileno(), 2)
        return self

    def __exit__(self, *exc):
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._file.seek(0)
        self.text = self._file.read().decode("utf-8", "replace")
        self._file.close()


def compile_quietly(bcc, text: str, **kw):
    """Compile and load a bcc program with its stderr captured.

    A verifier rejection becomes :class:`VerifierError` (the whole log kept on
    ``.log``, the last lines in the message); a compile error becomes
    :class:`ProbeError` with clang's messages.
    """
    from .errors import NotSupportedError, ProbeError, VerifierError  # noqa: PLC0415

    cap = _CapturedStderr()
    try:
        with cap:
            return bcc.BPF(text=text.encode() if isinstance(text, str) else text, **kw)
    except Exception as exc:  # bcc raises bare Exception
        log = getattr(cap, "text", "")
        msg = str(exc)
        if "Failed to load program" in msg or "Failed to load program" in log or "processed " in log:
            if "Operation not permitted" in (msg + log) and "processed " not in log:
                raise NotSupportedError(
                    f"the kernel refused to load the program: {msg}", feature="this program type",
                    cause="we are root, so the kernel does not allow this program type "
                          "(bcc's 'Need super-user privileges' hint is misleading here)",
                    next_step="see `ebpf-lab doctor` for what works on this kernel",
                ) from exc
            raise VerifierError(
                "the kernel's verifier rejected the program:\n" + VerifierError.tail(log or msg),
                log=log, program=text, stderr=log,
                cause="the program does something the verifier cannot prove safe "
                      "(an unchecked pointer, an unbounded loop, a too-large stack)",
                next_step="read the last lines of the log above; the whole log is on the exception's .log",
            ) from exc
        errors = "\n".join(ln for ln in log.splitlines() if "error" in ln) or msg
        raise ProbeError(f"bcc could not compile the program:\n{errors}", program=text, stderr=log,
                         cause="a C error in the generated or given program",
                         next_step="fix the C shown above; the full compiler output is on .stderr") from exc
