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
    df = ebpf_lab.trace("tracepoint:syscalls:sys_enter_read", ["count"], command=command)
    per_size = df["count"].value_counts()  # sorted, most first
    return pd.DataFrame({"size": per_size.index.astype("int64"), "reads": per_size.to_numpy()})
