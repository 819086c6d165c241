"""One exception tree for the whole lab.

Every message says three things: what happened, the likely cause, and the next
step. Probe errors keep whatever was collected before the failure on
``.result`` so no data is ever lost, and keep the tool's full output
(``.stderr``, ``.log``) for the curious::

    EbpfLabError
    ├── SetupError                 the machine is not ready
    │   ├── PrivilegeError         not root / missing capabilities
    │   ├── BackendMissingError    bpftrace or bcc not installed
    │   └── NotSupportedError      the kernel lacks a feature (kprobes, fentry, ...)
    ├── ProbeError                 a probe program failed
    │   ├── UnknownProbeError      no such tracepoint / function / field ("did you mean")
    │   ├── ProgramSyntaxError     bpftrace could not parse the program (line, column)
    │   ├── VerifierError          the kernel's verifier rejected the program (full log)
    │   ├── AttachError            loaded, but could not attach
    │   └── ProbeTimeout           the run went past its timeout (partial result kept)
    └── UsageError                 the lab's API was called the wrong way (also a ValueError)

``NotSupportedError`` carries ``feature`` and ``alternative``: the nearest
mechanism that works on this kernel.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AttachError",
    "BackendMissingError",
    "EbpfLabError",
    "NotSupportedError",
    "PrivilegeError",
    "ProbeError",
    "ProbeTimeout",
    "ProgramSyntaxError",
    "SetupError",
    "UnknownProbeError",
    "UsageError",
    "VerifierError",
]


class EbpfLabError(Exception):
    """Base of every error the lab raises on purpose.

    ``what``: what happened; ``cause``: the likely cause; ``next_step``: what
    to do about it. ``result`` holds whatever was collected before the error.
    """

    def __init__(
        self,
        what: str,
        *,
        cause: str | None = None,
        next_step: str | None = None,
        result: Any = None,
    ) -> None:
        self.what = what
        self.cause = cause
        self.next_step = next_step
        self.result = result
        super().__init__(self._message())

    def _message(self) -> str:
        parts = [self.what.rstrip()]
        if self.cause:
            parts.append(f"Likely cause: {self.cause.rstrip()}")
        if self.next_step:
            parts.append(f"Next step: {self.next_step.rstrip()}")
        return "\n".join(parts)


class SetupError(EbpfLabError):
    """The machine is not ready to run probes."""


class PrivilegeError(SetupError):
    """The process lacks the privileges (capabilities) that eBPF needs."""

    def __init__(self, what: str, *, missing: tuple[str, ...] = (), **kw: Any) -> None:
        self.missing = tuple(missing)
        kw.setdefault("cause", "loading BPF programs needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)")
        kw.setdefault("next_step", "run the lab as root: `sudo make lab`, or `sudo ebpf-lab ...`")
        super().__init__(what, **kw)


class BackendMissingError(SetupError):
    """bpftrace or bcc is not installed or cannot be imported."""


class NotSupportedError(SetupError):
    """The running kernel lacks a feature; ``alternative`` names what works instead."""

    def __init__(self, what: str, *, feature: str, alternative: str | None = None, **kw: Any) -> None:
        self.feature = feature
        self.alternative = alternative
        if alternative and kw.get("next_step") is None:
            kw["next_step"] = f"use {alternative} instead, or run this on a kernel with {feature} (see `ebpf-lab doctor`)"
        super().__init__(what, **kw)


class ProbeError(EbpfLabError):
    """A probe program failed to compile, load, attach or run."""

    def __init__(self, what: str, *, stderr: str = "", program: str = "", **kw: Any) -> None:
        self.stderr = stderr
        self.program = program
        super().__init__(what, **kw)


class UnknownProbeError(ProbeError):
    """The program names a probe or field that does not exist on this kernel."""

    def __init__(self, what: str, *, probe: str = "", suggestions: tuple[str, ...] = (), **kw: Any) -> None:
        self.probe = probe
        self.suggestions = tuple(suggestions)
        if suggestions and kw.get("next_step") is None:
            kw["next_step"] = "did you mean " + " or ".join(repr(s) for s in suggestions[:3]) + "?"
        elif kw.get("next_step") is None:
            kw["next_step"] = "list what exists with ebpf_lab.list_probes('tracepoint:syscalls:*')"
        super().__init__(what, **kw)


class ProgramSyntaxError(ProbeError):
    """bpftrace could not parse the program; ``line`` and ``column`` point at it."""

    def __init__(self, what: str, *, line: int | None = None, column: int | None = None, **kw: Any) -> None:
        self.line = line
        self.column = column
        super().__init__(what, **kw)


class VerifierError(ProbeError):
    """The kernel's verifier rejected the program. ``log`` keeps the whole log."""

    def __init__(self, what: str, *, log: str = "", **kw: Any) -> None:
        self.log = log
        super().__init__(what, **kw)

    @staticmethod
    def tail(log: str, lines: int = 8) -> str:
        """The last non-empty lines of a verifier log: usually where the reason is."""
        kept = [ln for ln in log.splitlines() if ln.strip()]
        return "\n".join(kept[-lines:])


class AttachError(ProbeError):
    """The program loaded but could not be attached to its probe."""


class ProbeTimeout(ProbeError):
    """The run went past its timeout and was stopped; ``result`` keeps what was collected."""


class UsageError(EbpfLabError, ValueError):
    """The lab's API was called the wrong way."""
