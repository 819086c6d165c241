# 03.4  Entry and return together: time spent in a function
# Task: measure how long processes named $1 spend inside the sleep function:
#   store the time at entry per thread (@start[tid] = nsecs), and at return
#   keep @longest_ns = max(nsecs - @start[tid]) and @calls = count().
# Variants (write both; the grader grades the one your kernel supports and says which):
#   KPROBE: kprobe:hrtimer_nanosleep and kretprobe:hrtimer_nanosleep
#   UPROBE: uprobe:libc:nanosleep and uretprobe:libc:nanosleep (the workload
#     calls nanosleep() once)
# Graded: the process sleeps a random number of milliseconds; @longest_ns must
#   cover it, and (hidden) @calls must be 1 while a neighbour sleeps too.
# needs: uprobe, uretprobe
# Function: run(variant, command, comm) (given at the end: write KPROBE and UPROBE)

KPROBE = r"""
// TODO: kprobe:hrtimer_nanosleep -> @start[tid] = nsecs;
//       kretprobe:hrtimer_nanosleep -> @longest_ns = max(...); @calls = count();
"""

UPROBE = r"""
// TODO: the same with uprobe:libc:nanosleep and uretprobe:libc:nanosleep
"""


# ---- given: the grader calls run(); keep it as it is ------------------------
def run(variant: str, command: str, comm: str) -> dict:
    """Run the program of `variant` ("kprobe" or "uprobe") for `command`, with $1 = comm."""
    from ebpf_lab.grader.ex03 import run_variant

    return run_variant("03.4", {"kprobe": KPROBE, "uprobe": UPROBE}, variant, command, [comm])
