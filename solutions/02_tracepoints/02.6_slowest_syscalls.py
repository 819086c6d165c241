# 02.6  The slowest syscalls of a command
# Task: write slowest_syscalls(command, k) -> pandas.DataFrame: run `command` and,
#   for each syscall the process made, measure the longest time between
#   raw_syscalls:sys_enter and raw_syscalls:sys_exit (nsecs, per thread: tid).
#   Return the k slowest syscalls: columns "syscall" (name, from
#   ebpf_lab.syscalls.syscall_name) and "max_ns", slowest first, one row each.
# Graded: the command sleeps a random number of milliseconds in one syscall
#   among many fast ones; k is random. The sleep must come first with at least
#   its real duration.
# needs: tracepoint
# Function: slowest_syscalls(command: str, k: int) -> pandas.DataFrame

import pandas as pd

import ebpf_lab
from ebpf_lab.syscalls import syscall_name

PROGRAM = """
tracepoint:raw_syscalls:sys_enter /pid == cpid/ { @start[tid] = nsecs; }
tracepoint:raw_syscalls:sys_exit /@start[tid]/ {
    @max_ns[args->id] = max(nsecs - @start[tid]);
    delete(@start[tid]);
}
END { clear(@start); }
"""


def slowest_syscalls(command: str, k: int) -> pd.DataFrame:
    """The k syscalls of `command` with the longest single call, in ns."""
    result = ebpf_lab.bpftrace(PROGRAM, command=command)
    longest = result.maps.get("@max_ns")
    if longest is None:
        return pd.DataFrame({"syscall": pd.Series(dtype=str), "max_ns": pd.Series(dtype="int64")})
    value = [c for c in longest.columns if c != "key"][0]
    table = pd.DataFrame({"syscall": [syscall_name(nr) for nr in longest["key"]],
                          "max_ns": longest[value].astype("int64")})
    return table.sort_values("max_ns", ascending=False, kind="stable").head(k).reset_index(drop=True)
