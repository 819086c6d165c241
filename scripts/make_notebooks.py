#!/usr/bin/env python3
"""Build the lesson notebooks 00-02 from this readable source.

The .ipynb files are generated: edit the cells here, then run

    .venv/bin/python scripts/make_notebooks.py          # writes notebooks/0*.ipynb
    .venv/bin/python scripts/make_notebooks.py --check  # exit 1 if a notebook is stale

The notebooks are written without outputs (CI runs them top to bottom on a real
kernel: tests/test_notebooks.py). A cell is ``md(...)`` or ``code(...)``; the
text is dedented, so write it indented like the code around it.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

import nbformat
from nbformat import v4

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "notebooks"

KERNELSPEC = {"name": "ebpf-lab", "display_name": "ebpf-lab", "language": "python"}


def md(text: str):
    return v4.new_markdown_cell(textwrap.dedent(text).strip("\n"))


def code(text: str):
    return v4.new_code_cell(textwrap.dedent(text).strip("\n"))


def exercises(chapter: str, ids: list[str], intro: str):
    cells = [md(f"""
        ## Exercises

        {textwrap.dedent(intro).strip()}

        Each exercise is a file under `exercises/{chapter}/`. Edit the file, then run its
        check cell: the grader starts a fresh workload with random names and counts, runs
        *your* program against it and shows a score with a message for each check. Before
        you start, every check shows a failing score: that is expected. Stuck? Ask for a
        hint with `lessons.hint("{ids[0]}")` (or `ebpf-lab hint {ids[0]}` in a terminal).
        """)]
    for ex in ids:
        cells.append(code(f'ebpf_lab.check("{ex}")'))
    return cells


# --------------------------------------------------------------------------- 00

def nb00():
    return [
        md(r"""
        # 00 · Start here

        **ebpf-lab** teaches eBPF from Python. Every cell in these notebooks runs a *real*
        probe on the kernel you are running right now, and hands the result back as a pandas
        DataFrame that you can filter, count and plot.

        ### What you will learn
        - what the lab is and how the notebooks are organised;
        - how to ask `ebpf_lab.doctor()` what works on your machine, and how to read its answer
          (`ok` / `missing` / `unknown`, and the `next_step` column);
        - which eBPF mechanisms work on this kernel, which do not, and why;
        - two ways to run a probe: the `ebpf_lab.bpftrace(...)` function and the `%%bpftrace`
          cell magic;
        - how to check an exercise and ask for a hint.
        """),
        md(r"""
        ## The lab in one picture

        ```
        your notebook cell ──> ebpf_lab ──> bpftrace or bcc ──> BPF program in the kernel
               ▲                                                        │
               └──────────── pandas DataFrame <─── events, maps, histograms
        ```

        The lessons follow a well-known reading path for eBPF beginners (a 2022 blog post
        written on Ubuntu 22.04 with kernel 5.15 and bpftrace 0.14): **bpftrace first**
        (lesson 01), then **tracepoints** (lesson 02), then function probes, BTF, and more.
        Where the post quotes a number that came from *its* kernel, the notebook measures
        the same thing on *yours* and shows both.

        Most probes in the lessons are filtered to a process the lab started itself, so the
        numbers you see are exact; and everything a cell starts (BPF programs, child
        processes) is cleaned up when the cell ends, even if you interrupt it.
        """),
        code(r"""
        import ebpf_lab
        from ebpf_lab import lessons, plots
        from ebpf_lab.workloads import workload

        print("ebpf_lab", ebpf_lab.__version__, "on kernel", lessons.kernel_release())
        """),
        md(r"""
        ## Is this machine ready? `ebpf_lab.doctor()`

        `doctor()` does not guess from version numbers: for each mechanism it loads and
        attaches a tiny BPF program and reports what happened. One row per check:

        | column | meaning |
        |---|---|
        | `check` | what was tried (a tool, a kernel fact, an attach type) |
        | `status` | `ok`: it worked · `missing`: it conclusively does not work here · `unknown`: the test itself could not decide |
        | `detail` | what was seen (a version, an error message) |
        | `next_step` | what to do if it is not `ok`, or which mechanism to use instead |
        """),
        code(r"""
        report = ebpf_lab.doctor()
        report
        """),
        md(r"""
        Only `ok` and `missing` are conclusive. A row that is `unknown` means the probe for
        that feature failed for some other reason: read its `detail` before concluding
        anything. The rows that are not `ok`, with what to do about them:
        """),
        code(r"""
        report[report["status"] != "ok"][["check", "status", "next_step"]]
        """),
        code(r"""
        report["status"].value_counts().rename("checks")
        """),
        md(r"""
        ## What works on this kernel, and why

        The first rows are facts about the machine (privileges, kernel, tools); the rest are
        eBPF mechanisms (`ebpf_lab.doctor.MECHANISMS`). Straight from the table above:
        """),
        code(r"""
        from ebpf_lab.doctor import MECHANISMS

        mechanisms = report[report["check"].isin(MECHANISMS)]
        print("works here:      ", ", ".join(mechanisms.loc[mechanisms["status"] == "ok", "check"]))
        print("does not work:   ", ", ".join(mechanisms.loc[mechanisms["status"] == "missing", "check"]))
        print("could not decide:", ", ".join(mechanisms.loc[mechanisms["status"] == "unknown", "check"]) or "-")
        """),
        md(r"""
        The lab's reference machines run a custom, slimmed-down kernel (Debian 12 around a
        6.18 kernel). There, `doctor` finds the following, and the reasons are worth knowing
        (if your table disagrees, your machine wins):

        - **Works:** tracepoints (static, stable hooks the kernel developers placed on
          purpose: syscalls, the scheduler, block I/O, networking), raw tracepoints, uprobes
          (probes on functions in programs and libraries), USDT (static tracepoints built
          into programs), perf events (sampling, timers),
          BPF maps and the ring buffer, cgroup socket hooks, and `bpf_send_signal`.
        - **Does not work:** kprobes and kretprobes (the kernel was built without
          `CONFIG_KPROBES`), fentry/fexit (bpftrace's `kfunc:`) and LSM programs (the kernel
          refuses those program types), and `override()` (needs kprobes and
          `CONFIG_FUNCTION_ERROR_INJECTION`).

        That is why the lessons lean on tracepoints: almost everything the 2022 post did with
        `kprobe:do_sys_openat2` can be done with `tracepoint:syscalls:sys_enter_openat`,
        and a tracepoint is a stable interface that does not change between kernel versions.

        The post counted the probes its kernel offered. Here are its numbers next to yours
        (counted live, the way `bpftrace -l PATTERN | wc -l` does):
        """),
        code(r"""
        lessons.compare_with_post("probes")
        """),
        md(r"""
        ## Running a probe, way 1: `ebpf_lab.bpftrace(...)`

        `ebpf_lab.bpftrace(program, ...)` runs a bpftrace program and returns a
        `BpftraceResult` with

        - `.events`: what the program printed (`printf`), one row per line;
        - `.maps`: the maps it filled (`@name[key] = count()`...), one DataFrame per map;
        - `.hists`: its histograms (`hist()`, `lhist()`), one DataFrame per map;
        - `.lost`: how many events the kernel had to drop (0 is what you want).

        `command=` starts a program for the probe to watch; `args=` fills the positional
        parameters `$1`, `$2`... The program below prints every file `cat` opens, but only
        for processes whose name (`comm`) is `$1`:
        """),
        code(r"""
        result = ebpf_lab.bpftrace(
            'tracepoint:syscalls:sys_enter_openat /comm == str($1)/ '
            '{ printf("%s (%d) -> %s\\n", comm, pid, str(args->filename)); }',
            args=["cat"],
            command="cat /etc/hosts",
        )
        result.events
        """),
        md(r"""
        The file we asked `cat` to print, `/etc/hosts`, comes last. The lines before it are
        the dynamic loader (`/etc/ld.so.cache`, `libc.so.6`) and the C library's locale
        support opening their own files, before `cat` does any work. The 2022 post saw four
        lines; how many you see depends on your locale settings. The result itself shows a
        summary, and `result.output` holds what `cat` printed:
        """),
        code(r"""
        result
        """),
        code(r"""
        result.output
        """),
        md(r"""
        ## Running a probe, way 2: the `%%bpftrace` cell magic

        Load the magic once per notebook with `%load_ext ebpf_lab`. A cell that starts with
        `%%bpftrace` is a bpftrace program. Options go on the first line:
        `-c CMD` runs a command (and the program ends when it exits), `-d SECONDS` stops after
        that long, `-o VAR` stores the `BpftraceResult` in a Python variable, `--strlen N`
        raises the string length limit, and any words at the end become `$1`, `$2`...
        """),
        code(r"""
        %load_ext ebpf_lab
        """),
        code(r"""
        %%bpftrace -c "/usr/bin/cat /etc/hosts" -o opened cat
        tracepoint:syscalls:sys_enter_openat /comm == str($1)/ {
            @opens[str(args->filename)] = count();
        }
        """),
        code(r"""
        opened.maps["@opens"]
        """),
        md(r"""
        ## A first plot: every syscall `cat` made

        `ebpf_lab.syscall_counts(command=...)` counts each syscall the command made (and how
        many of them failed) with an in-kernel map, and `plots.top_syscalls` draws the table.
        The data are captured right now, in this run:
        """),
        code(r"""
        counts = ebpf_lab.syscall_counts(command="cat /etc/hosts")
        counts.head(10)
        """),
        code(r"""
        plots.top_syscalls(counts, n=12)
        """),
        md(r"""
        ## Reproducible activity: the lab's workloads

        `cat` is a real program, so its syscalls depend on your C library. For exact numbers
        the lab ships a tiny C program with known behaviour. `workload(kind, n, name=...)`
        returns its command line (a list you can pass as `command=`); `name=` gives the
        process exactly that `comm`, and `.expected` says what it will do:
        """),
        code(r"""
        w = workload("open", 23, name="opener")
        print(w.comm, w.expected["count"], w.expected["paths"][:2])
        counts = ebpf_lab.syscall_counts(command=w)
        counts[counts["syscall"].isin(["openat", "close"])]
        """),
        md(r"""
        The workload opened and closed its 23 files; the dynamic loader's own opens
        (`ld.so.cache`, `libc.so.6`) and closes come on top, before `main()` runs.
        """),
        md(r"""
        ## Checking exercises

        Lessons 01 onwards end with exercises (`exercises/01_bpftrace_basics/`...). You edit a
        file, then check it from the notebook with `ebpf_lab.check("01.1")`; `lessons.hint(...)`
        (or `ebpf-lab hint 01.1` in a terminal) gives a hint. Try it now: the exercise is
        untouched, so the score is 0. Each line says what the grader expected.
        """),
        code(r"""
        ebpf_lab.check("01.1")
        """),
        code(r"""
        lessons.hint("01.1")
        """),
        md(r"""
        ## Summary

        - `ebpf_lab.doctor()` tells you what works here; trust `ok` and `missing`, and read
          the `detail` of anything `unknown`.
        - On this kernel tracepoints, raw tracepoints, uprobes, perf events, the ring buffer
          and cgroup hooks work; kprobes, fentry, LSM and override do not.
        - `ebpf_lab.bpftrace(program, command=..., args=[...])` and `%%bpftrace` run bpftrace
          programs and hand back DataFrames; `ebpf_lab.syscall_counts(...)` counts syscalls;
          `ebpf_lab.plots` draws them.
        - `ebpf_lab.check("01.1")` grades an exercise, `lessons.hint("01.1")` helps.

        Next: **01 · bpftrace basics**.
        """),
    ]


# --------------------------------------------------------------------------- 01

def nb01():
    return [
        md(r"""
        # 01 · bpftrace basics

        bpftrace is a small language for tracing: you write *which event* to watch, an
        optional *filter*, and *what to do* when it fires. bpftrace compiles it to a BPF
        program, loads it into the kernel and prints what it collects. This lesson follows
        bpftrace's one-liner tutorial and reference guide, on your kernel.

        ### What you will learn
        - the shape of a bpftrace program: `probe /filter/ { action }`;
        - the probe types, and how to list the probes of a type (`ebpf_lab.list_probes`);
        - builtins: `pid`, `tid`, `comm`, `nsecs`, `cpu`, `args`;
        - maps and aggregations: `count`, `sum`, `avg`, `min`, `max`, `hist`, `lhist`;
        - `printf` and `str()`, and the string length limit (`BPFTRACE_STRLEN`, `--strlen`);
        - `interval` and `exit()`; running a command (`-c`, `cpid`); positional
          parameters (`$1`).
        """),
        code(r"""
        import pandas as pd

        import ebpf_lab
        from ebpf_lab import lessons, plots
        from ebpf_lab.workloads import workload

        %load_ext ebpf_lab
        """),
        md(r"""
        ## Hello, world

        `BEGIN` is a special probe that fires once, when the program starts. `exit()` ends
        the program. Everything between `{ }` is the *action*.
        """),
        code(r"""
        %%bpftrace
        BEGIN { printf("hello from bpftrace\n"); exit(); }
        """),
        md(r"""
        ## Probe types, and how to list them

        A probe is written `type:target:name`, the way bpftrace writes it. The types you
        will use in this lab:

        | type | fires when | example | here? |
        |---|---|---|---|
        | `tracepoint` | the kernel passes a static tracepoint | `tracepoint:syscalls:sys_enter_openat` | yes |
        | `rawtracepoint` | same hooks, raw arguments | `rawtracepoint:sys_enter` | yes |
        | `uprobe` / `uretprobe` | a function in a program or library starts / returns | `uprobe:/usr/bin/bash:readline` | yes |
        | `profile`, `interval` | a timer fires (on every CPU / on one CPU) | `profile:hz:99`, `interval:s:1` | yes |
        | `software`, `hardware` | a perf counter overflows | `software:page-faults:100` | yes |
        | `BEGIN`, `END` | the program starts / ends | `BEGIN` | yes |
        | `kprobe` / `kretprobe`, `kfunc` | any kernel function starts / returns | `kprobe:do_sys_openat2` | **no** (see lesson 00) |

        `ebpf_lab.list_probes(pattern)` lists the probes matching a pattern (like
        `bpftrace -l PATTERN`), as a DataFrame:
        """),
        code(r"""
        ebpf_lab.list_probes("tracepoint:sched:sched_process_*")
        """),
        code(r"""
        lessons.compare_with_post("probes")
        """),
        md(r"""
        ## Filters and builtins

        A filter between slashes, `/.../`, decides whether the action runs. Builtins are
        variables bpftrace fills for you at each event:

        | builtin | meaning |
        |---|---|
        | `pid`, `tid` | process id, thread id |
        | `comm` | the process name (16 bytes at most) |
        | `nsecs` | a timestamp in nanoseconds |
        | `cpu` | the CPU the event ran on |
        | `args` | the probe's arguments (`args->filename` for `sys_enter_openat`) |

        Let's start a workload that opens 5 files, under the name `opener5`, and print one
        line per `openat` it makes. `workload(...)` returns a command line as a list; the
        magic's `-c` wants one string, and IPython replaces `{cmd}` in a magic's first line
        with the value of the Python variable `cmd`:
        """),
        code(r"""
        w = workload("open", 5, name="opener5")
        cmd = " ".join(w)
        w.expected["paths"]
        """),
        code(r"""
        %%bpftrace -c "{cmd}" -o seen opener5
        tracepoint:syscalls:sys_enter_openat /comm == str($1)/ {
            printf("%d %d %s cpu=%d t=%llu %s\n", pid, tid, comm, cpu, nsecs, str(args->filename));
        }
        """),
        md(r"""
        The first lines are the loader opening the C library; the last five are the files the
        workload was told to open. `seen.events` holds the printed lines, one `text` column.

        To get real columns, separate the fields with tabs (`\t`) and name them with
        `--columns` (`name:int` for numbers): each line becomes a typed row. With `nsecs` as a
        number, the time between two opens is one subtraction away:
        """),
        code(r"""
        %%bpftrace -c "{cmd}" -o seen --columns pid:int,tid:int,comm,cpu:int,nsecs:int,file opener5
        tracepoint:syscalls:sys_enter_openat /comm == str($1)/ {
            printf("%d\t%d\t%s\t%d\t%llu\t%s\n", pid, tid, comm, cpu, nsecs, str(args->filename));
        }
        """),
        code(r"""
        opens = seen.events
        opens.assign(gap_us=opens["nsecs"].diff() / 1000).tail(5)
        """),
        md(r"""
        ## Maps and aggregations

        Printing every event is slow (each line crosses from the kernel to bpftrace). A
        *map* (`@name`) aggregates inside the kernel, and is printed once at the end.
        Keys go in brackets: `@calls[probe] = count()` counts per probe name.

        | function | keeps |
        |---|---|
        | `count()` | the number of events |
        | `sum(x)`, `avg(x)`, `min(x)`, `max(x)` | total, mean, smallest, largest of `x` |
        | `hist(x)` | a power-of-two histogram of `x` |
        | `lhist(x, min, max, step)` | a linear histogram of `x` |

        A workload that makes 23 `read()` calls of 4096 bytes each from `/dev/zero`:
        """),
        code(r"""
        r = workload("read", 23, name="reader23", size=4096)
        res = ebpf_lab.bpftrace(
            'tracepoint:syscalls:sys_enter_read /comm == str($1)/ {'
            ' @reads = count(); @bytes = sum(args->count); @by_size[args->count] = count(); }',
            args=[r.comm], command=r,
        )
        res
        """),
        md(r"""
        One read more than the 23 we asked for? `@by_size` (a map with a key) says why: 23
        reads of 4096 bytes, and one smaller read: the dynamic loader reading the header of
        `libc.so.6` before the program's `main()` runs. The filter on `comm` kept out
        everything else on the machine, so every number is exact. Each map is a DataFrame:
        """),
        code(r"""
        res.maps["@by_size"]
        """),
        md(r"""
        `avg`, `min` and `max` work the same way. Now the *return values*, the number of bytes
        each read really returned, from `sys_exit_read`, as histograms:
        """),
        code(r"""
        res = ebpf_lab.bpftrace(
            'tracepoint:syscalls:sys_exit_read /comm == str($1)/ {'
            ' @ret_avg = avg(args->ret); @ret_min = min(args->ret); @ret_max = max(args->ret);'
            ' @ret = hist(args->ret); @ret_linear = lhist(args->ret, 0, 8192, 1024); }',
            args=[r.comm], command=r,
        )
        res
        """),
        code(r"""
        res.hists["@ret"]
        """),
        md(r"""
        bpftrace prints a `hist()` as rows of buckets `[min, max)` whose bounds are powers of
        two (`1K` = 1024). `plots.log2_hist` draws it the same way, from the data captured in
        the cell above: 23 reads in `[4K, 8K)`, and the loader's one read lower down.
        """),
        code(r"""
        plots.log2_hist(res.hists["@ret"], unit="bytes", title="read() return values of reader23")
        """),
        code(r"""
        res.hists["@ret_linear"]
        """),
        md(r"""
        ## `printf`, `str()` and the string length limit

        `str(ptr)` copies a string from memory into the BPF program's small stack, so its
        length is limited: 64 bytes by default in bpftrace 0.17. Longer strings are cut.
        Raise the limit with the environment variable `BPFTRACE_STRLEN` (on the command
        line) or `--strlen N` (the magic) / `strlen=N` (`ebpf_lab.bpftrace`); 200 is the
        largest value bpftrace 0.17 accepts.

        A workload whose file names are long (a long prefix):
        """),
        code(r"""
        long = workload("open", 1, name="longname", prefix="a_rather_long_file_name_" * 3)
        long_cmd = " ".join(long)
        path = long.expected["paths"][0]
        print(len(path), path)
        """),
        code(r"""
        %%bpftrace -c "{long_cmd}" -o short longname
        tracepoint:syscalls:sys_enter_openat /comm == str($1)/ { printf("%s\n", str(args->filename)); }
        """),
        code(r"""
        %%bpftrace -c "{long_cmd}" --strlen 200 -o full longname
        tracepoint:syscalls:sys_enter_openat /comm == str($1)/ { printf("%s\n", str(args->filename)); }
        """),
        code(r"""
        for label, run in (("default", short), ("--strlen 200", full)):
            seen_path = run.events["text"].iloc[-1]
            print(f"{label:>13}: {len(seen_path):3} of {len(path)} characters: {seen_path}")
        """),
        md(r"""
        With the default limit bpftrace kept 63 characters (64 bytes, the last one the string's
        terminating zero); with 200 the whole path survived.
        """),
        md(r"""
        ## `interval` and `exit()`

        `interval:ms:200` fires every 200 ms on one CPU: the place to print and clear a map
        every so often (`print(@m); clear(@m);`), or to stop the program with `exit()`. This
        program ticks every 200 ms and stops itself after one second (the last tick and the
        exit fire at the same moment, so you may see four or five ticks). `END` fires once,
        when the program ends: the place for a summary line. `@ticks++` keeps a plain
        integer in a map, which `printf` can print (an aggregation such as `count()` is
        printed by bpftrace itself at the end instead).
        """),
        code(r"""
        %%bpftrace -o ticks
        BEGIN { @start = nsecs; }
        interval:ms:200 { @ticks++; printf("tick at %d ms\n", (nsecs - @start) / 1000000); }
        interval:s:1 { exit(); }
        END { printf("%d ticks, then exit()\n", @ticks); clear(@start); }
        """),
        md(r"""
        A program without `exit()` and without a command runs until you stop it (the stop
        button, Ctrl-C: bpftrace then prints its maps, and you keep the result). `-d SECONDS`
        stops it for you. One second of every syscall on the whole machine, counted per
        process name: the busiest processes right now (your numbers will differ, and change
        from run to run):
        """),
        code(r"""
        %%bpftrace -d 1 -o machine
        tracepoint:raw_syscalls:sys_enter { @[comm] = count(); }
        """),
        code(r"""
        machine.maps["@"].head(5)
        """),
        md(r"""
        ## Running a command: `-c` and `cpid`

        With `-c CMD` bpftrace starts the command itself, holds it until the probes are
        attached, and ends when it exits. The builtin `cpid` is that command's pid, so
        `/pid == cpid/` filters on it without knowing its name:
        """),
        code(r"""
        %%bpftrace -c "/usr/bin/cat /etc/hosts"
        tracepoint:raw_syscalls:sys_enter /pid == cpid/ { @syscalls = count(); }
        """),
        md(r"""
        ## Positional parameters

        `$1`, `$2`... are the words after the program (`bpftrace -e '...' cat`): numbers
        when used as numbers, and strings through `str($1)`. They let you write one program
        and point it at different processes. In the magic, they are the words at the end of
        the first line; in `ebpf_lab.bpftrace`, the list `args=`.
        """),
        code(r"""
        program = 'tracepoint:syscalls:sys_enter_openat /comm == str($1)/ { @[comm] = count(); }'
        a = workload("open", 7, name="seven")
        b = workload("open", 11, name="eleven")
        pd.concat([ebpf_lab.bpftrace(program, args=[x.comm], command=x).maps["@"] for x in (a, b)])
        """),
        md(r"""
        Each count is a little more than 7 or 11: the dynamic loader's own opens
        (`/etc/ld.so.cache`, `libc.so.6`) come before the workload's files.
        """),
        md(r"""
        ## Summary

        - A bpftrace program is `probe /filter/ { action }`; `ebpf_lab.list_probes` lists the
          probes; this kernel has tracepoints, uprobes and timers but no kprobes.
        - Builtins (`pid`, `tid`, `comm`, `nsecs`, `cpu`, `args`) describe the event.
        - Maps aggregate in the kernel: `count`, `sum`, `avg`, `min`, `max`, `hist`, `lhist`;
          `plots.log2_hist` draws a `hist()` as bpftrace prints it.
        - `str()` is cut at 64 bytes unless you raise `BPFTRACE_STRLEN` / `--strlen`.
        - `interval` + `exit()` stop a program; `-c` + `cpid` follow a command; `$1` makes
          a program reusable.
        """),
        *exercises("01_bpftrace_basics", [f"01.{i}" for i in range(1, 7)], """
        Six small bpftrace programs (`.bt` files): count `getppid()` calls per process; print
        the files a `-c` command opens (`cpid`); filter on a name given as `$1`; a histogram of
        read sizes; `count`, `sum`, `avg`, `min` and `max` of some reads; a summary line
        printed in `END`.
        """),
    ]


# --------------------------------------------------------------------------- 02

def nb02():
    return [
        md(r"""
        # 02 · Tracepoints

        A tracepoint is a hook that kernel developers placed in the code on purpose, with
        a documented set of arguments. Tracepoints are grouped (`syscalls`, `sched`,
        `block`, `net`...) and are a stable interface: the same program works on the next
        kernel. On this lab's kernel they are also the way in, since kprobes are not
        available (lesson 00).

        ### What you will learn
        - how to list tracepoints and read their arguments (`ebpf_lab.describe`, and the
          `bpftrace -lv` view it mirrors);
        - how to trace `sys_enter_openat` for a command named in `$1`;
        - how `raw_syscalls:sys_enter` sees *every* syscall, and how to filter it by
          syscall number, with the numbers taken from the running kernel;
        - the scheduler's process tracepoints: `sched_process_fork`, `_exec`, `_exit`;
        - how to turn events into DataFrames with `ebpf_lab.trace()` and counts with
          `ebpf_lab.syscall_counts()`, and how to plot them.
        """),
        code(r"""
        import pandas as pd

        import ebpf_lab
        from ebpf_lab import lessons, plots
        from ebpf_lab.syscalls import syscall_name, syscall_nr
        from ebpf_lab.workloads import workload

        %load_ext ebpf_lab
        """),
        md(r"""
        ## Listing tracepoints

        A tracepoint's name is `tracepoint:GROUP:NAME`. `ebpf_lab.list_probes` takes the same
        wildcards as `bpftrace -l`. The `syscalls` group has two tracepoints per syscall:
        `sys_enter_X` (arguments) and `sys_exit_X` (return value).
        """),
        code(r"""
        ebpf_lab.list_probes("tracepoint:syscalls:sys_enter_open*")
        """),
        md(r"""
        How many are there? The 2022 post counted its kernel's; here are yours:
        """),
        code(r"""
        lessons.compare_with_post("probes")
        """),
        md(r"""
        ## What arguments does a tracepoint have?

        The kernel describes every tracepoint's record in a `format` file under
        `/sys/kernel/tracing/events/GROUP/NAME/format`. `ebpf_lab.describe` reads it and shows
        one row per argument, the way `bpftrace -lv` does:
        """),
        code(r"""
        ebpf_lab.describe("tracepoint:syscalls:sys_enter_openat")
        """),
        md(r"""
        The same view from bpftrace itself (`2>/dev/null` hides a warning about
        `RLIMIT_MEMLOCK` that bpftrace 0.17 prints on this kernel; it is harmless here):
        """),
        code(r"""
        !bpftrace -lv 'tracepoint:syscalls:sys_enter_openat' 2>/dev/null
        """),
        md(r"""
        In a program, these are the fields of `args`: `args->filename`, `args->flags`...
        `filename` is a pointer to a string in the *process's* memory, so it is read with
        `str(args->filename)`.

        ## `sys_enter_openat` for a command named in `$1`

        This is the post's first tracepoint program, unchanged: print the name, pid and file
        of every `openat` made by a process whose `comm` is `$1`.
        """),
        code(r"""
        %%bpftrace -c "/usr/bin/cat /etc/hosts" cat
        tracepoint:syscalls:sys_enter_openat /comm == str($1)/ {
            printf("%s (%d) -> %s\n", comm, pid, str(args->filename));
        }
        """),
        md(r"""
        ## `raw_syscalls`: every syscall, by number

        The `raw_syscalls` group has just two tracepoints, `sys_enter` and `sys_exit`, that fire
        for *every* syscall. They do not know argument names: `args->id` is the syscall
        number and `args->args[0..5]` are the six raw argument registers.
        """),
        code(r"""
        ebpf_lab.describe("tracepoint:raw_syscalls:sys_enter")
        """),
        md(r"""
        Syscall numbers depend on the architecture (and, rarely, on the kernel). The post
        looked them up in a header file of its machine; `syscall_nr` asks the running kernel.
        Side by side:
        """),
        code(r"""
        lessons.compare_with_post("syscalls")
        """),
        code(r"""
        OPENAT, OPENAT2 = syscall_nr("openat"), syscall_nr("openat2")
        OPENAT, OPENAT2
        """),
        md(r"""
        The filename is the second argument (`args[1]`) of both. It is a *user-space*
        pointer, and `raw_syscalls` does not know that, so we say so with `uptr()` before
        reading the string. The numbers are passed as `$2` and `$3`:
        """),
        code(r"""
        %%bpftrace -c "/usr/bin/cat /etc/hosts" -o raw cat {OPENAT} {OPENAT2}
        tracepoint:raw_syscalls:sys_enter /(args->id == $2 || args->id == $3) && comm == str($1)/ {
            printf("%s (%d) -> [%d] %s\n", comm, pid, args->id, str(uptr(args->args[1])));
        }
        """),
        md(r"""
        ## Processes: `sched_process_fork`, `_exec` and `_exit`

        The scheduler's tracepoints follow processes as they are born, change program and
        die. A workload that forks 7 children: each fork fires `sched_process_fork` in the
        parent; each child's exit fires `sched_process_exit`; and the workload itself fired
        `sched_process_exec` when it started.
        """),
        code(r"""
        ebpf_lab.describe("tracepoint:sched:sched_process_fork")
        """),
        code(r"""
        f = workload("fork", 7, name="forker7")
        res = ebpf_lab.bpftrace(
            'tracepoint:sched:sched_process_fork /args->parent_pid == cpid/ { @forks = count(); }'
            ' tracepoint:sched:sched_process_exec /pid == cpid/ { @execs = count(); }'
            ' tracepoint:sched:sched_process_exit /comm == str($1) && pid != cpid/ { @child_exits = count(); }',
            args=[f.comm], command=f,
        )
        res
        """),
        md(r"""
        ## Events as a DataFrame: `ebpf_lab.trace()`

        `ebpf_lab.trace(probe, fields, command=...)` attaches to a tracepoint, runs the command
        and returns one row per event. Without `fields` you get every column: `time_ns`,
        `time`, `pid`, `tid`, `comm`, `cpu` and all the tracepoint's arguments, typed from its
        format (`filename` is a `str`); `fields=[...]` keeps only the columns you name, and
        makes each event smaller in the kernel too. The filter on the command's pid runs in
        the kernel, so the rows are exactly what the command did. A workload that opens 23
        files:
        """),
        code(r"""
        w = workload("open", 23, name="open23")
        opens = ebpf_lab.trace("tracepoint:syscalls:sys_enter_openat", command=w)
        opens.tail()
        """),
        code(r"""
        mine = opens[opens["filename"].str.startswith(w.expected["dir"])]
        len(mine), list(mine["filename"]) == w.expected["paths"]
        """),
        md(r"""
        ## Counting syscalls: `ebpf_lab.syscall_counts()`

        Counting in the kernel is much cheaper than sending every event to Python.
        `syscall_counts` counts every syscall of a command by name, with how many failed:
        """),
        code(r"""
        missing = workload("open_missing", 13, name="missing13")
        counts = ebpf_lab.syscall_counts(command=missing)
        counts.head(8)
        """),
        code(r"""
        plots.top_syscalls(counts, n=10, title="syscalls of missing13 (13 failed opens)")
        """),
        md(r"""
        A tracepoint pair, `sys_enter` and `sys_exit`, also gives *durations*: remember the
        time at entry, subtract it at exit. `ebpf_lab.syscall_latency` does that in the kernel
        and keeps a power-of-two histogram per syscall, in nanoseconds:
        """),
        code(r"""
        latency = ebpf_lab.syscall_latency(command=workload("read", 64, name="reader64"))
        plots.log2_hist(latency, syscall="read", title="how long read() took (64 reads + the loader's)")
        """),
        md(r"""
        ## Syscalls over time

        `raw_syscalls:sys_enter` gives every syscall with a timestamp. One workload, traced
        from its `exec` to its exit: 64 reads of 64 bytes. `syscall_name` turns the numbers
        into names with the running kernel's table:
        """),
        code(r"""
        r = workload("read", 64, name="reader64", size=64)
        events = ebpf_lab.trace("tracepoint:raw_syscalls:sys_enter", ["time_ns", "comm", "id"], command=r)
        events["syscall"] = events["id"].map(syscall_name)
        events["syscall"].value_counts().head(8)
        """),
        md(r"""
        A heat map shows the phases of the process's short life. Each row is a syscall, each
        column 100 µs, the colour the number of calls. First comes `execve`: the lab releases
        the held process, and the kernel takes a while (from a fraction of a millisecond to a
        few) to load the new program: no syscalls in that gap. Then the dynamic loader's start-up (`mmap`, `openat`,
        `close`...), the loop of `read`s, and `exit_group`:
        """),
        code(r"""
        plots.syscall_heatmap(events, bin="100us", top=12)
        """),
        md(r"""
        `execve` is the only event whose `comm` is still the lab's holder: a process takes the
        new program's name during `exec`. Keep the events after it, and look at the rates:
        how many calls per second each syscall ran at, in 20 µs bins (a bin with a single call
        already reads 50,000 calls per second):
        """),
        code(r"""
        after_exec = events[events["comm"] == r.comm]
        plots.syscall_rate(after_exec, by="syscall", bin="20us", top=5)
        """),
        md(r"""
        ## Summary

        - Tracepoints are `tracepoint:GROUP:NAME`; list them with `ebpf_lab.list_probes`, read
          their arguments with `ebpf_lab.describe` (or `bpftrace -lv`).
        - `syscalls:sys_enter_X` / `sys_exit_X` know the arguments of one syscall;
          `raw_syscalls:sys_enter` sees all of them, by number (`args->id`), with raw
          arguments (`uptr()` for user pointers). Take numbers from the running kernel:
          `syscall_nr("openat")`.
        - `sched:sched_process_fork/exec/exit` follow processes.
        - `ebpf_lab.trace()` gives events as a DataFrame, `ebpf_lab.syscall_counts()` counts
          in the kernel, `ebpf_lab.plots` draws both.
        """),
        *exercises("02_tracepoints", [f"02.{i}" for i in range(1, 7)], """
        Three bpftrace programs and three Python functions: the files opened by a process
        named in `$1` (02.1); counting one syscall by number on `raw_syscalls` (02.2, Python);
        only the failed opens, with their errno (02.3); new processes and their parents from
        `sched_process_fork` (02.4); a per-process syscall table as a DataFrame (02.5, Python);
        the slowest syscalls of a command (02.6, Python).
        """),
    ]


NOTEBOOKS = {
    "00_start_here.ipynb": nb00,
    "01_bpftrace_basics.ipynb": nb01,
    "02_tracepoints.ipynb": nb02,
}


def build(name: str, notebooks: dict | None = None) -> nbformat.NotebookNode:
    notebooks = NOTEBOOKS if notebooks is None else notebooks
    nb = v4.new_notebook()
    nb.cells = notebooks[name]()
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    # stable cell ids so that rebuilding an unchanged source changes nothing
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{Path(name).stem[:2]}-{i:03d}"
    nbformat.validate(nb)
    return nb


def main(argv: list[str] | None = None, notebooks: dict | None = None, script: str = "scripts/make_notebooks.py",
         description: str | None = None) -> int:
    """Write the notebooks of ``notebooks`` (or, with --check, fail if one differs); shared with 03-05."""
    notebooks = NOTEBOOKS if notebooks is None else notebooks
    parser = argparse.ArgumentParser(description=description or __doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a notebook differs from this source")
    opts = parser.parse_args(argv)
    stale = []
    for name in notebooks:
        text = nbformat.writes(build(name, notebooks)) + "\n"
        path = OUT / name
        if opts.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            OUT.mkdir(exist_ok=True)
            path.write_text(text)
            print("wrote", path.relative_to(ROOT))
    if stale:
        print(f"stale notebooks (run {script}):", ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
