"""Where the lab keeps what it computes once and reuses: one place for every module.

``$EBPF_LAB_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/ebpf-lab``, else
``~/.cache/ebpf-lab``. Kept here: the built workload helpers (``workloads``),
the running kernel's syscall table (``syscalls``), doctor's conclusive findings
(``doctor``) and a learner's hint progress (``grader.hints``). A guest kernel
under QEMU sees the host's home read-only and points ``EBPF_LAB_CACHE_DIR`` at
a scratch directory (tests/kernel2/guest.py).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir() -> Path:
    """The lab's cache directory (not created here: writers create it when they write)."""
    explicit = os.environ.get("EBPF_LAB_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ebpf-lab"
