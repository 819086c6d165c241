"""Which eBPF capabilities this process holds (read from /proc/self/status, not the uid)."""

from __future__ import annotations

__all__ = ["effective_capabilities", "missing_capabilities"]

# bit numbers from linux/capability.h
CAPS = {"CAP_SYS_ADMIN": 21, "CAP_PERFMON": 38, "CAP_BPF": 39, "CAP_NET_ADMIN": 12, "CAP_KILL": 5}


def effective_capabilities(status_text: str | None = None) -> set[str]:
    """Names of the capabilities in this process's effective set."""
    if status_text is None:
        with open("/proc/self/status", encoding="ascii") as fh:
            status_text = fh.read()
    for line in status_text.splitlines():
        if line.startswith("CapEff:"):
            mask = int(line.split()[1], 16)
            return {name for name, bit in CAPS.items() if mask >> bit & 1}
    return set()


def missing_capabilities(status_text: str | None = None) -> tuple[str, ...]:
    """The capabilities tracing needs that we lack: () when we can trace.

    CAP_SYS_ADMIN alone suffices; otherwise CAP_BPF and CAP_PERFMON are both needed.
    """
    have = effective_capabilities(status_text)
    if "CAP_SYS_ADMIN" in have or {"CAP_BPF", "CAP_PERFMON"} <= have:
        return ()
    return tuple(sorted({"CAP_BPF", "CAP_PERFMON"} - have))
