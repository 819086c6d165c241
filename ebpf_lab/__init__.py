"""ebpf-lab: learn eBPF from Python with real probes and pandas DataFrames.

The public API. Names load lazily so that ``import ebpf_lab`` is quick and the
pure parts work on a machine without bcc or bpftrace::

    >>> import ebpf_lab
    >>> ebpf_lab.doctor()                                        # doctest: +SKIP
    >>> r = ebpf_lab.bpftrace('tracepoint:syscalls:sys_enter_openat '
    ...                       '/comm == str($1)/ { printf("%s\\n", str(args->filename)); }',
    ...                       args=["cat"], command="cat /etc/hosts")   # doctest: +SKIP
    >>> r.events                                                  # doctest: +SKIP

Load the notebook magic with ``%load_ext ebpf_lab``.
"""

from __future__ import annotations

import importlib

from .errors import (
    AttachError,
    BackendMissingError,
    EbpfLabError,
    NotSupportedError,
    PrivilegeError,
    ProbeError,
    ProbeTimeout,
    ProgramSyntaxError,
    SetupError,
    UnknownProbeError,
    UsageError,
    VerifierError,
)

__version__ = "0.1.0"

# public name -> module that defines it (loaded on first use)
_LAZY = {
    "BpftraceResult": "bpftrace",
    "ConnectBlock": "firewall",
    "ConnectRule": "firewall",
    "EventsLostWarning": "stream",
    "ProbePicker": "widgets",
    "bpftrace": "bpftrace",
    "check": "grader",
    "describe": "catalog",
    "doctor": "doctor",
    "hint": "lessons",
    "histogram": "aggregate",
    "list_probes": "catalog",
    "live_syscalls": "widgets",
    "load_ipython_extension": "magic",
    "syscall_counts": "aggregate",
    "syscall_latency": "aggregate",
    "syscall_table": "syscalls",
    "trace": "stream",
}

__all__ = sorted([
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
    *_LAZY,
])


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ebpf_lab' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
