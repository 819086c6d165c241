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
