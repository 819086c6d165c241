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


def errno_path_offset(binary: str = "libc", function: str = "syscall") -> int:
    """The offset of the instruction a function's first conditional jump leads to."""
    import re

    listing = uprobes.instructions(binary, function)
    for ins in listing["instruction"]:
        m = re.match(r"j(ae|nb|b|e|ne|a|be|g|ge|l|le|s|ns)\s+[0-9a-f]+ <[^+>]*\+(0x[0-9a-f]+)>", ins)
        if m:
            return int(m.group(2), 16)
    raise ValueError(f"no conditional jump in {function}")


def hits_at_offset(variant: str, command: str) -> int:
    """How many times `command` ran the instruction at function+offset (see the header)."""
    if variant == "uprobe":
        df = uprobes.function_hits("uprobe:libc:syscall", [errno_path_offset()], command=command)
    else:
        df = uprobes.function_hits("kprobe:__x64_sys_getppid", [0], command=command)
    return int(df["hits"].iloc[0])
