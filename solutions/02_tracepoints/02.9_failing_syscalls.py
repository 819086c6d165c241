# 02.9  Which syscalls fail? syscall_counts()
# Task: write failing_syscalls(command) -> pandas.DataFrame: count the syscalls
#   of the process started by `command` with ebpf_lab.syscall_counts() (counted
#   in the kernel; columns syscall, count, errors) and return only the syscalls
#   that failed at least once, with a new column error_pct = 100 * errors / count
#   rounded to 1 decimal, most errors first.
# Graded: the command makes a random number of calls that fail (opens of missing
#   files; in a hidden check, connects to a closed port); their row must count
#   every failure.
# needs: tracepoint
# Function: failing_syscalls(command: str) -> pandas.DataFrame

import pandas as pd

import ebpf_lab


def failing_syscalls(command: str) -> pd.DataFrame:
    """The syscalls of `command` that failed at least once, with their error rate."""
    counts = ebpf_lab.syscall_counts(command=command)
    failed = counts[counts["errors"] > 0].copy()
    failed["error_pct"] = (100 * failed["errors"] / failed["count"]).round(1)
    return failed.sort_values("errors", ascending=False, kind="stable").reset_index(drop=True)
