# 02.5  Per-process syscall counts as a DataFrame
# Task: write syscall_table(command, comm) -> pandas.DataFrame: run `command`,
#   count every syscall made by processes named `comm` (one tracepoint,
#   raw_syscalls:sys_enter, keyed by args->id), and return a DataFrame with the
#   columns "syscall" (the name, e.g. "openat", from
#   ebpf_lab.syscalls.syscall_name) and "count", largest count first.
# Graded: the command starts processes with a random name that make a random
#   number of getppid() calls and failed opens; the rows must match.
# needs: tracepoint
# Function: syscall_table(command: str, comm: str) -> pandas.DataFrame

import pandas as pd

import ebpf_lab
from ebpf_lab.syscalls import syscall_name


def syscall_table(command: str, comm: str) -> pd.DataFrame:
    """Syscall counts of the processes named `comm` while `command` runs."""
    program = "tracepoint:raw_syscalls:sys_enter /comm == str($1)/ { @calls[args->id] = count(); }"
    result = ebpf_lab.bpftrace(program, command=command, args=[comm])
    calls = result.maps.get("@calls")
    if calls is None:
        return pd.DataFrame({"syscall": pd.Series(dtype=str), "count": pd.Series(dtype="int64")})
    table = pd.DataFrame({"syscall": [syscall_name(nr) for nr in calls["key"]], "count": calls["count"]})
    return table.sort_values("count", ascending=False, kind="stable").reset_index(drop=True)
