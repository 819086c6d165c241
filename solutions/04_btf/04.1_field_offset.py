# 04.1  The offset of a struct field, from BTF
# Task: write field_offset(struct, field) -> int: the offset in BYTES of `field`
#   inside `struct` on the running kernel, read from its BTF
#   (/sys/kernel/btf/vmlinux) with the lab's reader ebpf_lab.btf.
# Graded: the grader picks a struct and one of its fields at random from every
#   struct this kernel has, and compares with `bpftool btf dump file
#   /sys/kernel/btf/vmlinux format raw` (bits_offset / 8).
# needs: BTF
# Function: field_offset(struct: str, field: str) -> int

from ebpf_lab import btf


def field_offset(struct: str, field: str) -> int:
    """Byte offset of `field` in `struct` on this kernel."""
    layout = btf.load().struct_layout(struct)
    return int(layout.loc[layout["member"] == field, "offset"].iloc[0])
