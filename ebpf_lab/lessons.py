"""Small helpers that several lesson notebooks share.

The lab follows a reading path written in 2022 on Ubuntu 22.04 (kernel 5.15,
bpftrace 0.14). Its numbers came from its kernel; the notebooks put them side
by side with the numbers of *your* kernel, computed live. Each helper's
docstring names the lesson that introduced it.
"""

from __future__ import annotations

import os

import pandas as pd

from .errors import EbpfLabError

__all__ = ["POST_2022", "POST_COLUMN", "compare_with_post", "hint", "kernel_release"]

#: what the 2022 post measured on Ubuntu 22.04.1, kernel 5.15.0-52-generic, bpftrace 0.14
POST_2022: dict[str, dict[str, int]] = {
    "probes": {
        "tracepoint:*": 1607,
        "tracepoint:syscalls:*": 686,
        "tracepoint:raw_syscalls:*": 2,
        "kprobe:*": 52464,
    },
    # x86-64 syscall numbers, from /usr/include/asm/unistd_64.h in the post
    "syscalls": {
        "open": 2,
        "openat": 257,
        "open_by_handle_at": 304,
        "open_tree": 428,
        "openat2": 437,
    },
}

POST_COLUMN = "in the 2022 post (Ubuntu 22.04, 5.15)"
KERNEL_COLUMN = "on your kernel"


def kernel_release() -> str:
    """The running kernel's release, as ``uname -r`` prints it (lesson 00)."""
    return os.uname().release


def _count_probes(pattern: str) -> tuple[object, str]:
    from .catalog import count_probes

    try:
        return int(count_probes(pattern)), ""
    except EbpfLabError as exc:  # e.g. kprobes on a kernel without CONFIG_KPROBES
        return pd.NA, exc.what.splitlines()[0]


def _syscall_nr(name: str) -> tuple[object, str]:
    from .syscalls import syscall_nr

    try:
        nr = syscall_nr(name)
    except EbpfLabError as exc:
        return pd.NA, exc.what.splitlines()[0]
    return (pd.NA, "no such syscall on this kernel") if nr is None else (int(nr), "")


def compare_with_post(what: str = "probes") -> pd.DataFrame:
    """The 2022 post's numbers next to the same numbers measured on your kernel.

    ``what="probes"``: how many probes ``bpftrace -l PATTERN`` lists, for the
    patterns the post counted (all tracepoints, the syscall tracepoints, the
    two raw syscall tracepoints, kprobes). ``what="syscalls"``: the syscall
    numbers of the open family that the post looked up in ``unistd_64.h``,
    next to the numbers of the running kernel's own table.

    Returns a DataFrame indexed by pattern (or syscall) with the columns
    ``"in the 2022 post (Ubuntu 22.04, 5.15)"``, ``"on your kernel"`` and
    ``note`` (why a number is missing, if one is). Introduced in lesson 00,
    used again in lessons 01 and 02.
    """
    if what not in POST_2022:
        from .errors import UsageError

        raise UsageError(f"compare_with_post: nothing to compare called {what!r}",
                         next_step=f"use one of {', '.join(map(repr, POST_2022))}")
    measure = _count_probes if what == "probes" else _syscall_nr
    rows = []
    for key, theirs in POST_2022[what].items():
        ours, note = measure(key)
        rows.append({"": key, POST_COLUMN: theirs, KERNEL_COLUMN: ours, "note": note})
    df = pd.DataFrame(rows).set_index("")
    df.index.name = "probes" if what == "probes" else "syscall"
    df[KERNEL_COLUMN] = df[KERNEL_COLUMN].astype("Int64")
    df.attrs["kernel"] = kernel_release()
    return df


def hint(exercise_id: str) -> None:
    """Print the next hint of an exercise that you have not seen yet.

    The same as ``ebpf-lab hint 01.1`` in a terminal: hints come one at a
    time, from the gentlest to the most explicit, and the lab remembers how
    many you have seen (``~/.cache/ebpf-lab/hints.json``). If the exercise has
    no hints, or does not exist, the message says so and what to do instead;
    this function never raises for that. Introduced in lesson 00, used at the
    end of every lesson.
    """
    from .grader import exercise_path, resolve
    from .grader.hints import next_hint

    try:
        spec = resolve(exercise_id)[0]
        number, total, text = next_hint(spec.id, exercise_path(spec))
    except EbpfLabError as exc:
        message = f"No hint for {exercise_id}: {exc}"
    else:
        message = f"Hint {number} of {total} for {spec.id}:\n{text}"
    print(message)
