# 03.3  A numeric argument as a map key: read sizes
# Task: count the read() calls of processes named $1 by the size they asked for,
#   in a map keyed by that size: @sizes[SIZE] = count().
# Variants (write both; the grader grades the one your kernel supports and says which):
#   KPROBE: kprobe:vfs_read(struct file *file, char __user *buf, size_t count, loff_t *pos)
#   UPROBE: uprobe:libc:syscall; the workload reads with syscall(SYS_read, fd, buf, count)
#     (read is syscall number 0 on x86-64).
# Graded: the process reads a random number of times with one random size;
#   @sizes[that size] must be exact (a hidden check adds a noisy neighbour).
# needs: uprobe, uretprobe
# Function: run(variant, command, comm) (given at the end: write KPROBE and UPROBE)

KPROBE = r"""
kprobe:vfs_read /comm == str($1)/ { @sizes[arg2] = count(); }
"""

UPROBE = r"""
uprobe:libc:syscall /comm == str($1) && arg0 == 0/ { @sizes[arg3] = count(); }
"""


# ---- given: the grader calls run(); keep it as it is ------------------------
def run(variant: str, command: str, comm: str) -> dict:
    """Run the program of `variant` ("kprobe" or "uprobe") for `command`, with $1 = comm."""
    from ebpf_lab.grader.ex03 import run_variant

    return run_variant("03.3", {"kprobe": KPROBE, "uprobe": UPROBE}, variant, command, [comm])
