# 03.5  func+offset with bcc: a probe inside a function
# Task: write hits_at_offset(variant, command) -> int: put a probe INSIDE a
#   function (at function+offset, which Debian's bpftrace cannot do: bcc can) and
#   return how many times the process started by `command` ran that instruction.
#   Use ebpf_lab.uprobes: instructions(binary, function) lists a function's
#   instructions with their offsets; function_hits(target, [offsets], command=)
#   counts hits per offset for that process only.
# Variants (write both; the grader grades the one your kernel supports and says which):
#   "uprobe": libc's syscall() sets errno only when the syscall failed: find the
#     offset of the first instruction of that path (the target of its jae) and
#     return how many syscall() calls FAILED. Read the offset from the listing:
#     do not hard-code it, it differs between C library builds.
#   "kprobe": the command calls getppid(); count it at __x64_sys_getppid+offset
#     for an offset the kernel accepts (the kprobe listing needs a vmlinux with
#     symbols: +0 is always an instruction start).
# Graded: against commands with random numbers of good and failed opens (uprobe)
#   or getppid calls (kprobe); the int must be exact.
# needs: uprobe, uretprobe
# Function: hits_at_offset(variant: str, command: str) -> int

from ebpf_lab import uprobes


def hits_at_offset(variant: str, command: str) -> int:
    """How many times `command` ran the instruction at function+offset (see the header)."""
    # TODO: 1. uprobe: listing = uprobes.instructions("libc", "syscall"); find the jae
    #          and the offset it jumps to (the errno path)
    #       2. df = uprobes.function_hits("uprobe:libc:syscall", [offset], command=command)
    #       3. return the hits as an int (kprobe: "kprobe:__x64_sys_getppid")
    raise NotImplementedError("03.5 is not written yet: see the TODO in hits_at_offset")
