# 04.4  The value of an enumerator, from BTF
# Task: write enum_value(name) -> int: the value of the enumerator `name` (say
#   BPF_MAP_TYPE_RINGBUF) on the running kernel, from its BTF.
# Graded: an enumerator drawn at random from every enum of this kernel's BTF,
#   compared with bpftool's raw dump (val=).
# needs: BTF
# Function: enum_value(name: str) -> int

from ebpf_lab import btf


def enum_value(name: str) -> int:
    """The value of enumerator `name` on this kernel."""
    # TODO: the reader can look up one enumerator by its name
    raise NotImplementedError("04.4 is not written yet: see the TODO in enum_value")
