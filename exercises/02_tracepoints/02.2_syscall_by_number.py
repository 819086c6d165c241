# 02.2  raw_syscalls:sys_enter and the syscall number
# Task: write count_syscall(command, syscall) -> int: run `command` and return how
#   many times that process entered the system call named `syscall`, using the
#   single tracepoint raw_syscalls:sys_enter (which fires for EVERY syscall and
#   gives only its number, args->id). Look the number up on the running kernel
#   with ebpf_lab.syscalls.syscall_nr(name); do not hard-code it.
# Graded: count_syscall is called with a command that makes a random number of
#   calls of one syscall (and, in a hidden check, of another syscall); the int you
#   return must be exact.
# needs: tracepoint
# Function: count_syscall(command: str, syscall: str) -> int
# Usage: `ebpf-lab grade 02.2`; to try it by hand, paste the function into a
#   notebook cell and call count_syscall("/bin/ls /", "openat").

import ebpf_lab
from ebpf_lab.syscalls import syscall_nr


def count_syscall(command: str, syscall: str) -> int:
    """How many times the process started by `command` entered `syscall`."""
    # TODO: 1. nr = syscall_nr(syscall)
    #       2. a bpftrace program on tracepoint:raw_syscalls:sys_enter that counts
    #          the calls of the -c command (cpid) whose args->id is nr
    #       3. ebpf_lab.bpftrace(program, command=command) and read the count
    #          from result.maps (a dict of DataFrames)
    raise NotImplementedError("02.2 is not written yet: see the TODO in count_syscall")
