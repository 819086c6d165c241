# 03.2  Return values: count the failed opens (retval)
# Task: count, in a map named @failed, the opens of processes named $1 that
#   FAILED, using the function's return value (retval) at a return probe.
# Variants (write both; the grader grades the one your kernel supports and says which):
#   KPROBE: kretprobe:do_sys_openat2 returns the new fd, or -errno (below zero).
#   UPROBE: uretprobe:libc:syscall returns -1 on failure (and sets errno); the
#     workload makes its opens (and nothing else) through syscall().
# Graded: the process makes a random number of opens that work and that fail;
#   @failed must be exact (a hidden check adds a noisy neighbour that fails too).
# needs: uprobe, uretprobe
# Function: run(variant, command, comm) (given at the end: write KPROBE and UPROBE)

KPROBE = r"""
kretprobe:do_sys_openat2 /comm == str($1) && (int64)retval < 0/ { @failed = count(); }
"""

UPROBE = r"""
uretprobe:libc:syscall /comm == str($1) && (int64)retval == -1/ { @failed = count(); }
"""


# ---- given: the grader calls run(); keep it as it is ------------------------
def run(variant: str, command: str, comm: str) -> dict:
    """Run the program of `variant` ("kprobe" or "uprobe") for `command`, with $1 = comm."""
    from ebpf_lab.grader.ex03 import run_variant

    return run_variant("03.2", {"kprobe": KPROBE, "uprobe": UPROBE}, variant, command, [comm])
