# 03.1  Arguments: the files a process opens (arg0...argN)
# Task: print the path of every file opened by processes named $1, one per line.
# Variants (write both; the grader grades the one your kernel supports and says which):
#   KPROBE: kprobe:do_sys_openat2, whose declaration is
#     long do_sys_openat2(int dfd, const char __user *filename, struct open_how *how)
#   UPROBE: uprobe:libc:syscall. The workload calls libc's syscall() wrapper,
#     syscall(SYS_openat, AT_FDCWD, path, flags): arg0 is the syscall number
#     (openat is 257 on x86-64), arg1... are the syscall's own arguments.
# Graded: a workload with a random name opens a random number of files while
#   another process opens files in the same folder; every file of $1 must be
#   printed, and (hidden) none of the other process's.
# needs: uprobe, uretprobe
# Function: run(variant, command, comm) (given at the end: write KPROBE and UPROBE)

KPROBE = r"""
// TODO: kprobe:do_sys_openat2 with a filter on comm == str($1);
//       the file name is a user-space pointer: str(uptr(arg1))
"""

UPROBE = r"""
// TODO: uprobe:libc:syscall with a filter on comm and on the syscall number (arg0);
//       print str(argN) of the right argument
"""


# ---- given: the grader calls run(); keep it as it is ------------------------
def run(variant: str, command: str, comm: str) -> dict:
    """Run the program of `variant` ("kprobe" or "uprobe") for `command`, with $1 = comm."""
    from ebpf_lab.grader.ex03 import run_variant

    return run_variant("03.1", {"kprobe": KPROBE, "uprobe": UPROBE}, variant, command, [comm])
