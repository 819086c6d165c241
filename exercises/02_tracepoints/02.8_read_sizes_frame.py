# 02.8  Read sizes as a DataFrame with trace()
# Task: write read_sizes(command) -> pandas.DataFrame: record every read() of the
#   process started by `command` with ebpf_lab.trace() (one row per event,
#   delivered through a BPF ring buffer), and return how many reads asked for
#   each size: columns "size" and "reads", most reads first, one row per size.
# Graded: the command makes a random number of reads of one random size; its
#   row must hold the exact count (a hidden check repeats with other numbers).
# needs: tracepoint, ring buffer
# Function: read_sizes(command: str) -> pandas.DataFrame

import pandas as pd

import ebpf_lab


def read_sizes(command: str) -> pd.DataFrame:
    """How many read() calls of each size the process started by `command` made."""
    # TODO: 1. df = ebpf_lab.trace("tracepoint:syscalls:sys_enter_read", ["count"], command=command)
    #          (one row per read; the column "count" is the size asked for)
    #       2. count the rows per size (pandas: value_counts) and return
    #          the columns "size" and "reads"
    raise NotImplementedError("02.8 is not written yet: see the TODO in read_sizes")
