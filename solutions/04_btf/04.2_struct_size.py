# 04.2  The size of a struct, from BTF
# Task: write struct_size(struct) -> int: sizeof(struct NAME) in bytes on the
#   running kernel, from its BTF.
# Graded: a struct drawn at random from this kernel's BTF, compared with
#   bpftool's raw dump (the size= of the STRUCT record).
# needs: BTF
# Function: struct_size(struct: str) -> int

from ebpf_lab import btf


def struct_size(struct: str) -> int:
    """sizeof(struct `struct`) on this kernel."""
    return int(btf.load().struct_layout(struct).attrs["size"])
