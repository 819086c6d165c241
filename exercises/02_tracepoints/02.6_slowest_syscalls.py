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


def slowest_syscalls(command: str, k: int) -> pd.DataFrame:
    """The k syscalls of `command` with the longest single call, in ns."""
    # TODO: 1. sys_enter (pid == cpid): remember @start[tid] = nsecs
    #       2. sys_exit with /@start[tid]/: @max_ns[args->id] = max(nsecs - @start[tid]);
    #          then delete(@start[tid])
    #       3. run with ebpf_lab.bpftrace(program, command=command), turn
    #          result.maps["@max_ns"] (columns key, max) into syscall/max_ns rows
    raise NotImplementedError("02.6 is not written yet: see the TODO in slowest_syscalls")
