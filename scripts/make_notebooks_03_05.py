#!/usr/bin/env python3
"""Build the lesson notebooks 03-05 (kprobes, BTF, override) from this readable source.

The same conventions as scripts/make_notebooks.py (which builds 00-02, and whose
``md``/``code``/``exercises`` helpers this file reuses):

    .venv/bin/python scripts/make_notebooks_03_05.py          # writes notebooks/03..05
    .venv/bin/python scripts/make_notebooks_03_05.py --check  # exit 1 if one is stale

Each lesson asks ``ebpf_lab.doctor`` what the kernel supports, runs the real
mechanism live where it can, and otherwise runs the closest mechanism that works
while saying what differs; output of the real mechanism from another kernel is
shown only through ``ebpf_lab.recorded``, which labels it (or says "no recording
yet").
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_notebooks  # noqa: E402
from make_notebooks import code, exercises, md  # noqa: E402

IDS = {
    "03_kprobes.ipynb": [f"03.{i}" for i in range(1, 6)],
    "04_btf.ipynb": [f"04.{i}" for i in range(1, 6)],
    "05_override.ipynb": [f"05.{i}" for i in range(1, 8)],
}


# --------------------------------------------------------------------------- 03

def nb03():
    return [
        md(r"""
        # 03 · kprobes, kretprobes, and the same ideas with uprobes

        A **kprobe** attaches to (almost) any function of the running kernel; a **kretprobe**
        fires when it returns. They see what no tracepoint shows, at a price: kernel
        functions are not a stable interface, they change, get inlined or renamed between
        versions. The 2022 post moved from tracepoints to `kprobe:do_sys_openat2` here.

        ### What you will learn
        - how to find out whether your kernel has kprobes (`ebpf_lab.doctor`), and what the
          lab does when it does not;
        - `arg0`...`argN`: a kprobe's arguments have no names; `str(uptr(arg1))` reads a
          user-space string;
        - `retval` in a return probe;
        - how to list traceable functions (`available_filter_functions`, `/proc/kallsyms`), and
          why inlined and `notrace` functions cannot be probed;
        - `func+offset`: a probe *inside* a function, why bpftrace needs bfd for it, and how
          bcc does it;
        - the same ideas, live, with **uprobes** and **uretprobes** on the C library.
        """),
        code(r"""
        import shlex
        from pathlib import Path

        import pandas as pd

        import ebpf_lab
        from ebpf_lab import lessons, plots, recorded, uprobes
        from ebpf_lab.workloads import workload

        %load_ext ebpf_lab
        """),
        md(r"""
        ## Does this kernel have kprobes?

        `doctor` tries: it loads and *attaches* a tiny kprobe program. On the lab's own kernel
        the program loads but cannot attach (`CONFIG_KPROBES` is not set), so the row says
        `missing`. Ubuntu's and Debian's stock kernels have kprobes.
        """),
        code(r"""
        report = ebpf_lab.doctor()
        report[report["check"].isin(["kprobe", "kretprobe", "uprobe", "uretprobe"])]
        """),
        code(r"""
        HAVE_KPROBES = ebpf_lab.doctor.supports("kprobe") and ebpf_lab.doctor.supports("kretprobe")
        print("kprobes on this kernel:", "yes: the kprobe cells below run live" if HAVE_KPROBES
              else "no: the kprobe cells show a labelled recording, and the uprobe cells run live")
        """),
        md(r"""
        How many kprobes? The post counted 52,464 on Ubuntu's 5.15. Here is yours (empty if
        there are none), and a recording from Debian's stock 6.1 kernel, booted under QEMU on
        the lab's machine by `scripts/record_kprobes.sh` (the recording is labelled: it did
        not come from your kernel):
        """),
        code(r"""
        lessons.compare_with_post("probes")
        """),
        code(r"""
        recorded.show("kprobe_count")   # bpftrace -l "kprobe:*" | wc -l, then the same for tracepoints
        """),
        md(r"""
        ## Which functions can be probed?

        bpftrace lists kprobes from `available_filter_functions` in tracefs: the functions
        ftrace can patch. Not every function is there:

        - **inlined** functions have no code of their own: the compiler copied their body into
          each caller, so there is no address to attach to (they may still appear in the
          source, and even in BTF, but not in the list);
        - functions marked **`notrace`** (and whole files built without `-pg`: the tracing code
          itself, early boot code, parts of the scheduler) are left out on purpose, so that a
          probe cannot recurse into itself or run where it is not safe.

        On the lab's kernel reading that file fails even as root (a kernel policy), so the list
        of *symbols* in `/proc/kallsyms` is the next best thing: every function that exists as
        code, traceable or not.
        """),
        code(r"""
        try:
            traceable = Path("/sys/kernel/tracing/available_filter_functions").read_text().split("\n")
            print(len(traceable), "functions can take a kprobe on this kernel")
        except OSError as exc:
            print("available_filter_functions:", exc.strerror, "(even as root: this kernel's policy)")
        """),
        code(r"""
        rows = [line.split()[:3] for line in Path("/proc/kallsyms").read_text().splitlines()]
        kallsyms = pd.DataFrame(rows, columns=["address", "type", "name"])
        text = kallsyms[kallsyms["type"].isin(["t", "T"])]
        print(len(text), "functions in /proc/kallsyms (T: global, t: static)")
        names = ["do_sys_openat2", "vfs_open", "vfs_read", "__x64_sys_connect", "hrtimer_nanosleep", "getname"]
        pd.DataFrame({"function": names, "in /proc/kallsyms": [n in set(text["name"]) for n in names]})
        """),
        md(r"""
        ## `arg0`...`argN`: the post's kprobe

        A tracepoint's arguments have names (`args->filename`); a kprobe's do not. They follow
        the C declaration of the function,

        `long do_sys_openat2(int dfd, const char __user *filename, struct open_how *how)`

        so `arg0` is `dfd` and `arg1` is `filename`, a pointer into the *process's* memory:
        `uptr()` says so, and `str()` copies the string. (Lesson 04 shows how BTF gives the
        names back, with `kfunc`.) The post's program, live if your kernel has kprobes:
        """),
        code(r"""
        KPROBE_OPENAT2 = ('kprobe:do_sys_openat2 /comm == str($1)/ '
                          '{ printf("%s (%d) -> %s\\n", comm, pid, str(uptr(arg1))); }')
        try:
            live = ebpf_lab.bpftrace(KPROBE_OPENAT2, args=["cat"], command="cat /etc/hosts")
            print(live.events.to_string(index=False))
        except ebpf_lab.NotSupportedError as exc:
            print(exc)
        """),
        md(r"""
        Where the kernel has no kprobes, the lab raises `NotSupportedError` with the nearest
        alternative. Here is what the same program printed on a kernel that has them:
        """),
        code(r"""
        recorded.show("kprobe_openat2")
        """),
        md(r"""
        ## The same idea, live: `uprobe` and its arguments

        A **uprobe** is a kprobe for user space: it attaches to a function in a program or a
        library (`uprobe:/usr/lib/x86_64-linux-gnu/libc.so.6:malloc`, or `uprobe:libc:malloc`
        for short). Its arguments are `arg0`, `arg1`... too, and they point into user memory
        already, so `str(arg0)` needs no `uptr()`.

        The lab's workload makes its syscalls through the C library's `syscall()` wrapper,
        `syscall(SYS_openat, AT_FDCWD, path, flags)`: `arg0` is the syscall number (257 for
        `openat` on x86-64) and the syscall's own arguments follow, so the path is `arg2`:
        """),
        code(r"""
        w = workload("open", 5, name="opener5")
        res = ebpf_lab.bpftrace(
            'uprobe:libc:syscall /comm == str($1) && arg0 == 257/ { printf("%s\\n", str(arg2)); }',
            args=[w.comm], command=w)
        res.events["text"].tolist() == w.expected["paths"]
        """),
        md(r"""
        Exactly the five files, and nothing from the dynamic loader: the loader calls the
        `openat` syscall directly, not through libc's `syscall()`. That is the point of
        a uprobe: it sees one *function*, not every way into the kernel.

        A numeric argument: `malloc(size)`'s `arg0`, as a histogram, for `ls`:
        """),
        code(r"""
        res = ebpf_lab.bpftrace('uprobe:libc:malloc /pid == cpid/ { @bytes = hist(arg0); @calls = count(); }',
                                command="/usr/bin/ls /usr/lib")
        res.maps["@calls"]
        """),
        code(r"""
        plots.log2_hist(res.hists["@bytes"], unit="bytes", title="malloc() sizes asked for by ls")
        """),
        md(r"""
        ## `retval`: return probes

        A **kretprobe** fires when the function returns; `retval` is its return value (for
        `do_sys_openat2`, the new file descriptor, or `-errno`). Recorded on a kernel with
        kprobes, for `cat /etc/hosts /no/such/file`:
        """),
        code(r"""
        recorded.show("kretprobe_openat2")
        """),
        md(r"""
        Live, with a **uretprobe** on libc's `syscall()`: it returns -1 when the syscall
        failed (and puts the error in `errno`). A workload whose 13 opens all fail:
        """),
        code(r"""
        missing = workload("open_missing", 13, name="missing13")
        res = ebpf_lab.bpftrace('uretprobe:libc:syscall /comm == str($1)/ { @ret[(int64)retval] = count(); }',
                                args=[missing.comm], command=missing)
        res.maps["@ret"]
        """),
        md(r"""
        A return value can be a string too. `getenv(name)` returns a pointer to the value, or
        NULL: store the argument at entry (per thread, `@name[tid]`), print both at return:
        """),
        code(r"""
        res = ebpf_lab.bpftrace(
            'uprobe:libc:getenv /pid == cpid/ { @name[tid] = str(arg0); }'
            ' uretprobe:libc:getenv /pid == cpid/ {'
            ' printf("%s -> %s\\n", @name[tid], retval ? str(retval) : "(not set)"); }',
            command="/usr/bin/ls /")
        res.events.drop_duplicates().head(8)
        """),
        md(r"""
        (`bash`'s `readline()` is the classic example: `uretprobe:/usr/bin/bash:readline
        { printf("%s\n", str(retval)); }` prints every line typed at an interactive bash. It
        needs a terminal, so the lesson uses `getenv`.)

        ## `func+offset`: a probe inside a function

        `kprobe:do_sys_openat2+9` or `uprobe:...:syscall+34` attaches at an instruction *inside*
        the function. bpftrace must check that the offset is the start of an instruction, which
        it does with the bfd library; Debian's (and Ubuntu's) bpftrace 0.17 is built without it:
        """),
        code(r"""
        !bpftrace --info 2>&1 | grep -E "version|bfd"
        """),
        code(r"""
        try:
            ebpf_lab.bpftrace("uprobe:libc:syscall+34 { exit(); }")
        except ebpf_lab.ProbeError as exc:
            print(exc.what)
        """),
        md(r"""
        On the stock 6.1 kernel the same bpftrace tried `kprobe:do_sys_openat2+9` without
        checking, and the kernel refused it (`+9` is in the middle of an instruction there):
        """),
        code(r"""
        recorded.show("kprobe_offset_bpftrace")
        """),
        md(r"""
        bcc places offsets itself (`attach_uprobe(sym_off=...)`, `attach_kprobe(event_off=...)`),
        and the lab lists the instructions so you can pick a real boundary:
        `uprobes.instructions(binary, function)` is the `gdb x/i` view the post used.
        """),
        code(r"""
        listing = uprobes.instructions("libc", "syscall")
        listing
        """),
        md(r"""
        After the `syscall` instruction, the wrapper compares the result with -4095 and jumps
        (`jae`) to the code that stores `errno`: that code runs **only when the syscall failed**.
        `uprobes.function_hits` attaches a bcc uprobe at each offset given and counts how often
        the command (and the processes it starts) ran it. We probe the entry, the `jae`, the
        first `ret` and the first instruction of the `errno` path, for 17 opens that work (each
        followed by a `close`, also through `syscall()`), then 13 that fail:
        """),
        code(r"""
        good = workload("open", 17, name="mixed")
        bad = workload("open_missing", 13, name="mixed", dir=good.expected["dir"])
        both = ["/bin/sh", "-c", f"{shlex.join(good)}; {shlex.join(bad)}"]
        jae = listing[listing["instruction"].str.startswith("j")].iloc[0]
        errno_path = int(jae["instruction"].split("+")[-1].rstrip(">"), 16)
        first_ret = listing[listing["instruction"] == "ret"]["offset"].iloc[0]
        hits = uprobes.function_hits("uprobe:libc:syscall", [0, int(jae["offset"]), int(first_ret), errno_path],
                                     command=both)
        hits
        """),
        code(r"""
        ax = hits.plot.bar(x="offset", y="hits", legend=False, figsize=(8, 3.2),
                           title="libc syscall(): hits per instruction (17 opens + 17 closes + 13 failed opens)")
        ax.set_ylabel("hits");
        """),
        md(r"""
        47 calls enter; 34 (the opens and closes that worked) return at the first `ret`; 13
        take the `jae` to the `errno` path. One probe at the right offset counts failures
        without a return probe. (A caution measured on this kernel: with a probe on the
        `syscall` instruction itself, a probe on the instruction right after it counted
        nothing, while alone it counts every call. The kernel runs a probed instruction out of
        line; choose a few instructions that tell you something rather than all of them.)

        ## Summary

        - kprobes and kretprobes reach any traceable kernel function: `arg0`...`argN` in the
          order of the C declaration, `str(uptr(argN))` for user strings, `retval` at return.
          This kernel has none; the notebook showed labelled recordings from one that has.
        - Inlined and `notrace` functions cannot be probed; `available_filter_functions` lists
          what can, `/proc/kallsyms` what exists.
        - uprobes and uretprobes are the same idea for programs and libraries, and work here.
        - `func+offset` needs bpftrace with bfd; bcc does it, through `uprobes.function_hits`,
          at instruction boundaries from `uprobes.instructions`.
        """),
        *exercises("03_kprobes", IDS["03_kprobes.ipynb"], """
        Five exercises, each in two variants in one file: a `KPROBE` program and a `UPROBE`
        program. The grader grades the kprobe variant where the kernel has kprobes, else the
        uprobe variant, and says which. 03.1 prints arguments (the files opened); 03.2 counts
        failures from return values; 03.3 keys a map by a numeric argument; 03.4 pairs entry
        and return to time a function; 03.5 (Python) counts hits at `func+offset` with bcc.
        """),
    ]


# --------------------------------------------------------------------------- 04

def nb04():
    return [
        md(r"""
        # 04 · BTF: the kernel describes its own types

        A kprobe only knows `arg0`, `arg1`...; `bpftrace -lv 'kfunc:vfs_open'` prints the
        argument *names and types*, and `bpftrace -lv 'struct path'` a struct's layout, with
        no kernel headers installed. Both come from **BTF** (BPF Type Format): a compact
        description of every type, function and enum of the kernel, built in with
        `CONFIG_DEBUG_INFO_BTF` and exposed at `/sys/kernel/btf/vmlinux`.

        ### What you will learn
        - what BTF holds, and how to read it from Python with the lab's reader `ebpf_lab.btf`;
        - struct layouts (offsets, sizes), function signatures, enums and typedefs;
        - that the answers match `bpftool btf dump`, the reference tool;
        - fentry/fexit (`kfunc:`) programs, which use BTF to give arguments their names, where
          the kernel allows them, and what to use where it does not.
        """),
        code(r"""
        import os

        import pandas as pd

        import ebpf_lab
        from ebpf_lab import btf, lessons, recorded
        from ebpf_lab.workloads import workload

        %load_ext ebpf_lab
        """),
        code(r"""
        report = ebpf_lab.doctor()
        report[report["check"].isin(["BTF", "fentry/fexit", "kprobe", "tracepoint", "raw tracepoint"])]
        """),
        md(r"""
        ## What is in the file

        `btf.load()` reads `/sys/kernel/btf/vmlinux` with nothing but Python's `struct` module
        (no root, no bpftool) and keeps it cached. Every type has an id and a *kind*: `INT`,
        `PTR`, `STRUCT`, `FUNC`, `FUNC_PROTO`, `ENUM`, `TYPEDEF`...
        """),
        code(r"""
        b = btf.load()
        print(f"{os.path.getsize(btf.VMLINUX) / 1e6:.1f} MB, {len(b):,} types")
        kinds = pd.Series([t.kind for t in b.types[1:]]).value_counts()
        kinds
        """),
        code(r"""
        ax = kinds.plot.barh(figsize=(8, 4), title="the kernel's BTF types, by kind")
        ax.set_xlabel("types");
        """),
        md(r"""
        ## A struct's layout: `struct path`

        The post's `bpftrace -lv "struct path"`, and the same from the reader with offsets and
        sizes (what `pahole` prints):
        """),
        code(r"""
        !bpftrace -lv "struct path" 2>/dev/null
        """),
        code(r"""
        b.struct_layout("path")
        """),
        md(r"""
        A bigger one: the first members of `struct task_struct`, the kernel's process
        descriptor, and its total size. These offsets are what a BPF program uses when it reads
        `task->pid`: they differ between kernels, which is why the lab does not trust headers
        of another kernel version (lesson 00) and why BTF-based tools (CO-RE) work everywhere.
        """),
        code(r"""
        task = b.struct_layout("task_struct")
        print("sizeof(struct task_struct) =", task.attrs["size"], "bytes,", len(task), "members")
        task[task["member"].isin(["pid", "tgid", "real_parent", "comm", "cred"])]
        """),
        md(r"""
        bpftrace uses the same BTF to walk structs from a tracepoint: `curtask` is the current
        `task_struct`, and `curtask->real_parent->comm` follows a pointer, with offsets read from
        BTF. This works on this kernel:
        """),
        code(r"""
        kid = workload("getppid", 3, name="kid3")
        res = ebpf_lab.bpftrace(
            'tracepoint:syscalls:sys_enter_getppid /pid == cpid/ '
            '{ printf("%s %d -> parent %d %s\\n", comm, pid, curtask->real_parent->tgid, curtask->real_parent->comm); }',
            command=kid)
        res.events
        """),
        md(r"""
        The parent is `bpftrace` itself: it started the command (`-c`).

        ## A function's arguments: `kfunc:vfs_open`

        `FUNC` records point at a `FUNC_PROTO` whose parameters have names and types.
        `func_args` is the view of `bpftrace -lv 'kfunc:vfs_open'`; bpftrace refuses that on a
        kernel without fentry, the reader does not need it:
        """),
        code(r"""
        b.func_args("vfs_open")
        """),
        code(r"""
        recorded.show("kfunc_vfs_open_args")   # bpftrace -lv kfunc:vfs_open on a kernel with fentry
        """),
        md(r"""
        And the names of the kprobe arguments from lesson 03: `arg1` of `do_sys_openat2` is
        `filename`.
        """),
        code(r"""
        args = b.func_args("do_sys_openat2")
        args.assign(kprobe=[f"arg{i}" for i in range(len(args) - 1)] + ["retval"])
        """),
        md(r"""
        ## Enums and typedefs

        Enumerator values (`BPF_MAP_TYPE_RINGBUF` is the ring buffer map type), and how a
        typedef resolves, step by step:
        """),
        code(r"""
        b.enum_values("bpf_map_type").tail(6)
        """),
        code(r"""
        b.enumerator("BPF_MAP_TYPE_RINGBUF"), b.typedef_chain("u32"), b.typedef_chain("pid_t")
        """),
        md(r"""
        ## Checked against bpftool

        `dump_raw(id)` prints a type exactly as `bpftool btf dump file ... format raw` does;
        the lab's tests compare all of them. One, side by side:
        """),
        code(r"""
        path_id = b.struct_layout("path").attrs["type_id"]
        print(b.dump_raw(path_id))
        """),
        code(r"""
        !bpftool btf dump file /sys/kernel/btf/vmlinux format raw | grep -A2 "^\[{path_id}\] "
        """),
        md(r"""
        ## fentry/fexit (`kfunc:`): BTF for probes

        `kfunc:vfs_open` (fentry) is a faster kprobe that knows its arguments by name through
        BTF: `args->path`, `args->file`, and `retval` in `kretfunc` (fexit). It needs the kernel
        to accept BPF *tracing* programs. Live where supported:
        """),
        code(r"""
        KFUNC = ('kfunc:vfs_open /comm == str($1)/ '
                 '{ printf("%s (%d) vfs_open %s\\n", comm, pid, str(args->path->dentry->d_name.name)); }')
        if ebpf_lab.doctor.supports("fentry/fexit"):
            print(ebpf_lab.bpftrace(KFUNC, args=["cat"], command="cat /etc/hosts").events.to_string(index=False))
        else:
            try:
                ebpf_lab.bpftrace(KFUNC, args=["cat"], command="cat /etc/hosts")
            except ebpf_lab.EbpfLabError as exc:   # bpftrace refuses kfunc here, one way or another
                print(type(exc).__name__, exc.what, sep=": ")
        """),
        code(r"""
        recorded.show("kfunc_vfs_open")
        """),
        md(r"""
        Where `kfunc` is refused, tracepoints carry named arguments too (their `format` files,
        lesson 02), and `curtask` walks kernel structs through BTF as above. The file names
        that `vfs_open` saw, from the tracepoint at the syscall's entry instead (a different
        place: a path as the process passed it, not the dentry the kernel found):
        """),
        code(r"""
        res = ebpf_lab.bpftrace('tracepoint:syscalls:sys_enter_openat /comm == str($1)/ '
                                '{ printf("%s (%d) openat %s\\n", comm, pid, str(args->filename)); }',
                                args=["cat"], command="cat /etc/hosts")
        res.events
        """),
        md(r"""
        (A line with an empty name means the string was not in memory yet when the probe read
        it: a BPF program cannot wait for a page fault, so `str()` gives up.)

        ## Summary

        - BTF describes the kernel's types; `/sys/kernel/btf/vmlinux` holds it; `ebpf_lab.btf`
          reads it: `struct_layout`, `func_args`, `enum_values`, `enumerator`, `typedef_chain`,
          and `dump_raw` matches bpftool.
        - bpftrace uses BTF for `-lv`, for `curtask->...`, and for `kfunc` arguments by name.
        - fentry/fexit need a kernel that accepts tracing programs; elsewhere, tracepoints and
          BTF struct walking are the alternative.
        """),
        *exercises("04_btf", IDS["04_btf.ipynb"], """
        Five Python functions that answer questions about *your* kernel from BTF: a field's
        offset (04.1), a struct's size (04.2), a function's argument names (04.3), an
        enumerator's value (04.4), what a typedef names (04.5). The grader draws the question at
        random from the kernel's own types and checks your answer with bpftool.
        """),
    ]


# --------------------------------------------------------------------------- 05

def nb05():
    return [
        md(r"""
        # 05 · `override()` and an application firewall for `connect()`

        bpftrace's `override(rc)` (the helper `bpf_override_return`) makes a kernel function
        return `rc` at once, *without running it*: fault injection from a BPF program. The
        reading path ends with an exercise on it, `connect_block`: block `connect()` by pid,
        name, address with mask and port, as a deny list or an allow list.

        ### What you will learn
        - what `override()` does, and why it only works on functions marked
          `ALLOW_ERROR_INJECTION`; how to read that list;
        - which kernel options it needs, and why it fails on this kernel (`doctor`);
        - `ebpf_lab.ConnectBlock`: the firewall with three mechanisms: a cgroup `connect4`
          program (works here), a `bpf_send_signal` kill switch (works here), and `override`
          (where the kernel allows it);
        - deny lists and allow lists, and that the rules only touch the lab's own processes.
        """),
        code(r"""
        import gzip
        import os
        import re
        import shlex
        import socket
        import subprocess
        from pathlib import Path

        import pandas as pd

        import ebpf_lab
        from ebpf_lab import ConnectBlock, ConnectRule, lessons, recorded
        from ebpf_lab.firewall import cgroup_program, override_program, signal_program
        from ebpf_lab.workloads import workload
        """),
        code(r"""
        report = ebpf_lab.doctor()
        report[report["check"].isin(["override", "kprobe", "cgroup socket hooks", "bpf_send_signal"])]
        """),
        md(r"""
        ## What `override()` does, and where it is allowed

        In a kprobe at the start of a function, `bpf_override_return(ctx, rc)` sets the return
        value and makes the CPU return to the caller at once: the function body never runs. It
        works only on kprobes (not kretprobes, fentry or uprobes), and only on functions the
        kernel lists as safe to fail: those marked `ALLOW_ERROR_INJECTION(func, ERRNO)` in the
        source (syscall entry points like `__x64_sys_connect`, `should_failslab`...). The
        kernel needs `CONFIG_KPROBES`, `CONFIG_FUNCTION_ERROR_INJECTION` and
        `CONFIG_BPF_KPROBE_OVERRIDE`.

        The list is in debugfs, and each entry leaves an `_eil_addr_FUNCTION` symbol in
        `/proc/kallsyms`. On this kernel:
        """),
        code(r"""
        try:
            listed = Path("/sys/kernel/debug/error_injection/list").read_text().splitlines()
            print(len(listed), "functions accept override(); for example:", listed[:3])
        except OSError as exc:
            print("/sys/kernel/debug/error_injection/list:", exc.strerror)
        eil = [ln.split()[2] for ln in Path("/proc/kallsyms").read_text().splitlines() if "_eil_addr_" in ln]
        print(len(eil), "_eil_addr_ symbols in /proc/kallsyms")
        """),
        code(r"""
        def kernel_options(*names):
            "The kernel's build options, from /proc/config.gz (or /boot/config-RELEASE)."
            try:
                text = gzip.decompress(Path("/proc/config.gz").read_bytes()).decode()
            except OSError:
                text = Path(f"/boot/config-{os.uname().release}").read_text()
            found = {}
            for n in names:
                m = re.search(rf"^(CONFIG_{n}=\S+|# CONFIG_{n} is not set)", text, re.M)
                found[f"CONFIG_{n}"] = m.group(1).split("=")[-1] if m and "=" in m.group(1) else "not set"
            return pd.Series(found, name="on your kernel")

        kernel_options("KPROBES", "FUNCTION_ERROR_INJECTION", "BPF_KPROBE_OVERRIDE", "BPF_EVENTS")
        """),
        md(r"""
        Debian's stock kernel has kprobes but not error injection: the same check there, and
        what bpftrace says when `override()` is used on it:
        """),
        code(r"""
        recorded.show("error_injection")
        """),
        code(r"""
        recorded.show("override_connect")
        """),
        md(r"""
        A kernel built with `CONFIG_FUNCTION_ERROR_INJECTION` and `CONFIG_BPF_KPROBE_OVERRIDE`
        (the lab builds one from Debian's own source: `make override-kernel`) lists the
        functions that may be overridden, `__x64_sys_connect` among them. There the same kind of
        one-liner, scoped with `pid == cpid` to the workload bpftrace starts, makes each of its
        23 `connect()` calls return -1 before the kernel does any work, and the workload sees
        `EPERM` (`denied=23`):
        """),
        code(r"""
        recorded.show("error_injection_override_kernel")
        """),
        code(r"""
        recorded.show("override_connect_eperm")
        """),
        md(r"""
        ## `connect_block` with what works: a cgroup `connect4` program

        A `BPF_PROG_TYPE_CGROUP_SOCK_ADDR` program attached to a cgroup runs at every
        `connect()` made by a process in that cgroup, *before* the kernel starts the
        connection, and sees the address, the port, the pid and the name. Returning 0 makes
        `connect()` fail with `EPERM`. `ConnectBlock` generates it from rules and attaches it
        to a cgroup the lab creates; `run()` starts a command inside that cgroup. Nothing else
        on the machine is affected.

        A rule matches when every field given matches (`pid`, `comm`, `net` with a mask,
        `port`). The C generated for "processes named `blocked23` may not connect to port P":
        """),
        code(r"""
        server = socket.create_server(("127.0.0.1", 0), backlog=256)   # something to connect to
        PORT = server.getsockname()[1]
        rules = [ConnectRule(comm="blocked23", port=PORT)]
        print(cgroup_program(rules)[-900:])
        """),
        md(r"""
        Now three workloads, 23 connects each, to the listening port: `blocked23` and
        `allowed23` inside the lab's cgroup, and `outside23` outside it, running at the same
        time. Each reports what it experienced:
        """),
        code(r"""
        inside_blocked = workload("connect", 23, name="blocked23", port=PORT)
        inside_allowed = workload("connect", 23, name="allowed23", port=PORT)
        outside = workload("connect", 23, name="outside23", port=PORT)
        with ConnectBlock(rules, mode="deny") as fw:
            other = subprocess.Popen(outside, stdout=subprocess.PIPE, text=True)
            seen = {"blocked23 (in the cgroup)": fw.run(inside_blocked).stdout.strip(),
                    "allowed23 (in the cgroup)": fw.run(inside_allowed).stdout.strip(),
                    "outside23 (not in it)": other.communicate(timeout=60)[0].strip()}
            stats = fw.stats
        pd.Series(seen, name="the workload's own report")
        """),
        code(r"""
        stats
        """),
        code(r"""
        ax = stats.set_index("rule")["hits"].plot.barh(figsize=(8, 2.8), title="connect() calls seen in the lab's cgroup")
        ax.set_xlabel("connects");
        """),
        md(r"""
        The outside process never passed through the program: it is not in the cgroup. An
        **allow list** (`mode="allow"`) turns the rules around: whatever matches no rule is
        blocked. Only port P for everyone, here, and a second port that is not allowed:
        """),
        code(r"""
        with ConnectBlock([ConnectRule(port=PORT)], mode="allow") as fw:
            to_port = fw.run(workload("connect", 11, name="anyname", port=PORT)).stdout.strip()
            elsewhere = fw.run(workload("connect", 11, name="anyname", port=PORT + 1 if PORT < 65535 else PORT - 1)).stdout.strip()
        to_port, elsewhere
        """),
        md(r"""
        ## The kill switch: `bpf_send_signal`

        The post's `connect_block.bt` used a kprobe. Without kprobes, a program at
        `tracepoint:syscalls:sys_enter_connect` can still *react*: `bpf_send_signal(SIGKILL)`
        (bpftrace's `signal("KILL")`, which needs `--unsafe`) kills the process as it returns to
        user space. It is a kill switch, not a filter: the connect may already be on its way.
        `ConnectBlock(mechanism="signal", unsafe=True)` limits it to the lab's cgroup:
        """),
        code(r"""
        print(signal_program(rules)[-700:])
        """),
        code(r"""
        with ConnectBlock(rules, mode="deny", mechanism="signal", unsafe=True) as fw:
            killed = fw.run(workload("connect", 23, name="blocked23", port=PORT))
            spared = fw.run(workload("connect", 23, name="allowed23", port=PORT))
        pd.DataFrame({"exit status": [killed.returncode, spared.returncode],
                      "report": [killed.stdout.strip() or "(killed before reporting)", spared.stdout.strip()]},
                     index=["blocked23", "allowed23"])
        """),
        md(r"""
        ## `override()`, where the kernel allows it

        The override mechanism is a kprobe on `__x64_sys_connect` (on the error-injection list)
        calling `bpf_override_return(ctx, -EPERM)`: the syscall fails without running, for
        every process the program matches, whichever cgroup hook exists. The generated C:
        """),
        code(r"""
        print(override_program(rules)[-650:])
        """),
        code(r"""
        try:
            with ConnectBlock(rules, mode="deny", mechanism="override", unsafe=True) as fw:
                print(fw.run(workload("connect", 23, name="blocked23", port=PORT)).stdout)
        except ebpf_lab.NotSupportedError as exc:
            print(exc)
        """),
        code(r"""
        server.close()
        """),
        md(r"""
        ## Summary

        - `override()` / `bpf_override_return` skip a kernel function and return a chosen value;
          only from kprobes, only on `ALLOW_ERROR_INJECTION` functions (debugfs
          `error_injection/list`, `_eil_addr_` symbols), only with `CONFIG_FUNCTION_ERROR_INJECTION`
          and `CONFIG_BPF_KPROBE_OVERRIDE`. Neither this kernel nor Debian's stock one has it.
        - A cgroup `connect4` program blocks `connect()` before it starts (EPERM), scoped to a
          cgroup; `bpf_send_signal` is a blunter kill switch; both work here.
        - `ConnectBlock(rules, mode="deny"|"allow", mechanism=...)` generates, attaches and
          cleans up all three; `ConnectRule(pid=, comm=, net=, port=)` says what matches.
        """),
        *exercises("05_override", IDS["05_override.ipynb"], """
        Seven functions that return firewall rules; the grader enforces them for real on fresh
        workloads. A port (05.1); a process name and a port (05.2); a network with a mask (05.3);
        an allow list of ports (05.4); an allow list of one name and port (05.5); the same rules
        as a kill switch (05.6, `bpf_send_signal`); and with `override()` (05.7, skipped on a
        kernel without it, naming 05.2).
        """),
    ]


NOTEBOOKS = {
    "03_kprobes.ipynb": nb03,
    "04_btf.ipynb": nb04,
    "05_override.ipynb": nb05,
}


def build(name: str) -> nbformat.NotebookNode:
    return make_notebooks.build(name, NOTEBOOKS)


def main(argv: list[str] | None = None) -> int:
    return make_notebooks.main(argv, NOTEBOOKS, "scripts/make_notebooks_03_05.py", __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
