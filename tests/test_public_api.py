"""The public API of ``ebpf_lab`` does not drift by accident.

``__all__`` is written out here in full: adding or removing a public name means
changing this list on purpose, in the same commit. Every lazily loaded name must
resolve to a real object in the module ``_LAZY`` says defines it; until every
module has landed, the missing ones fail here by name.
"""

from __future__ import annotations

import importlib

import pytest

import ebpf_lab
from ebpf_lab import errors

pytestmark = pytest.mark.unit

EXPECTED_ALL = [
    "AttachError",
    "BackendMissingError",
    "BpftraceResult",
    "ConnectBlock",
    "ConnectRule",
    "EbpfLabError",
    "EventsLostWarning",
    "NotSupportedError",
    "PrivilegeError",
    "ProbeError",
    "ProbePicker",
    "ProbeTimeout",
    "ProgramSyntaxError",
    "SetupError",
    "UnknownProbeError",
    "UsageError",
    "VerifierError",
    "bpftrace",
    "check",
    "describe",
    "doctor",
    "hint",
    "histogram",
    "list_probes",
    "live_syscalls",
    "load_ipython_extension",
    "syscall_counts",
    "syscall_latency",
    "syscall_table",
    "trace",
]


def test_all_is_sorted():
    assert list(ebpf_lab.__all__) == sorted(ebpf_lab.__all__)


def test_all_has_no_duplicates():
    assert len(set(ebpf_lab.__all__)) == len(ebpf_lab.__all__)


def test_all_is_exactly_the_public_api():
    assert list(ebpf_lab.__all__) == EXPECTED_ALL


def test_every_exception_in_all_comes_from_the_one_tree():
    exported = {n for n in ebpf_lab.__all__ if n[0].isupper() and n not in ebpf_lab._LAZY}
    assert exported == set(errors.__all__)
    for name in exported:
        cls = getattr(ebpf_lab, name)
        assert cls is getattr(errors, name)
        assert issubclass(cls, errors.EbpfLabError)


def test_lazy_names_are_all_public():
    assert set(ebpf_lab._LAZY) <= set(ebpf_lab.__all__)


@pytest.mark.parametrize("name", sorted(ebpf_lab._LAZY))
def test_lazy_name_resolves(name):
    module_name = f"ebpf_lab.{ebpf_lab._LAZY[name]}"
    module = importlib.import_module(module_name)  # fails by module name until it lands
    assert hasattr(module, name), f"{module_name} does not define {name!r}"
    value = getattr(ebpf_lab, name)
    assert value is getattr(module, name)
    assert callable(value), f"ebpf_lab.{name} should be a function or a class"
    assert (value.__doc__ or "").strip(), f"ebpf_lab.{name} needs a docstring a learner can read"


def test_unknown_name_raises_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'not_a_real_name'"):
        ebpf_lab.not_a_real_name  # noqa: B018


def test_dir_lists_the_public_api():
    assert set(EXPECTED_ALL) <= set(dir(ebpf_lab))
